"""The transport's defaults: one table (PROTOCOL.md, Liveness). The proxy's
settings, the CLI's options and a run's configuration take them from here.
Seconds unless said otherwise."""
from __future__ import annotations

from types import MappingProxyType

from .framing import DEFAULT_CHUNK, DEFAULT_MAX_MESSAGE  # noqa: F401 (bytes: the framing's)

DEFAULT_MAX_FILE = 8 << 20  # bytes: under SyftBox's 10 MB limit on a file

# name -> seconds; 0 means never, where a bound may be off
TIMEOUTS = MappingProxyType({
    "connect": 300.0,  # the local party must be reachable by then
    "start": 600.0,  # a peer must show its status by then (0: never check)
    "peer": 5.0,  # a live peer's heartbeat changes at least this often (0: never check)
    "stall": 30.0,  # an incomplete message or a seq hole may last this long
    "drain": 60.0,  # after the party exited, for the peers to consume
    "sync": 1800.0,  # this site's sync may be down this long (syftbox layout; 0: for ever)
})
# A SyftBox sync brings a peer's news in bursts, seconds to minutes apart.
SYFTBOX_TIMEOUTS = MappingProxyType({"peer": 300.0, "stall": 300.0, "drain": 300.0})

HEARTBEAT = 1.0  # seconds between this party's heartbeats
LINGER = 2.0  # a standalone proxy waits this long for a new connection
