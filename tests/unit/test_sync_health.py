"""This site's sync, as the proxy judges it: the pure bookkeeping of
SyncWatch (a clock that stands still while the sync is down), and finding a
SyftBox client by its configuration."""
from __future__ import annotations

import json

from syqure_wf.files.syftbox_client import find_client
from syqure_wf.transport.sync_health import SyncWatch, describe


def test_the_clock_stands_still_while_the_sync_is_down():
    w = SyncWatch(0.0)
    assert w.clock(10.0) == 10.0 and w.observe(None, 10.0, 1000.0) is None
    assert w.observe("SyftBox server http://s unreachable", 10.0, 1000.0) == "down"
    assert w.observe("SyftBox server http://s unreachable", 40.0, 1030.0) is None  # still down: no news
    assert w.clock(70.0) == 10.0 and w.down_for(70.0) == 60.0
    assert w.record() == {"state": "down", "since": 1000.0, "reason": "SyftBox server http://s unreachable"}
    assert describe(w.record()).startswith("sync down since ") and describe(w.record()).endswith("(SyftBox server http://s unreachable)")
    assert w.observe(None, 70.0, 1060.0) == "up" and w.last_outage == 60.0
    assert w.clock(75.0) == 15.0 and w.record() == {"state": "up"} and describe(w.record()) == ""
    assert w.observe("SyftBox client at http://c not answering", 80.0, 1070.0) == "down"
    assert w.clock(90.0) == 20.0
    assert w.observe(None, 100.0, 1090.0) == "up" and w.clock(100.0) == 20.0 and w.paused == 80.0


def test_a_client_is_found_by_the_folder_its_configuration_names(tmp_path, monkeypatch):
    folder = tmp_path / "SyftBox"
    folder.mkdir()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"data_dir": str(folder), "email": "a@x.org", "server_url": "http://127.0.0.1:1/",
                                  "client_url": "http://127.0.0.1:2/"}))
    monkeypatch.setenv("SYFTBOX_CLIENT_CONFIG_PATH", str(config))
    client = find_client(folder)
    assert client and client.email == "a@x.org" and client.client_url == "http://127.0.0.1:2"
    assert client.server_url == "http://127.0.0.1:1"
    assert find_client(tmp_path) is None  # another folder: not this client's
