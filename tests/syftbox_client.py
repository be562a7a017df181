"""Runs a real SyftBox 0.4 client with a shorter sync interval, for tests
only (the stock interval, 1 s, is hard-coded in SyncManager). Usage: the
SyftBox venv's python, this file, then the `syftbox client` arguments."""
import os
import sys

from syftbox.client.plugins.sync import manager
from syftbox.main import main

interval = float(os.environ.get("SYFTBOX_TEST_SYNC_INTERVAL", "1"))
original = manager.SyncManager.__init__


def patched(self, *args, **kwargs):
    original(self, *args, **kwargs)
    self.sync_interval = interval


manager.SyncManager.__init__ = patched
sys.argv = ["syftbox", "client", *sys.argv[1:]]
sys.exit(main())
