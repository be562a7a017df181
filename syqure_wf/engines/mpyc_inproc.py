"""An MPyC party on the file transport in its own process (``transport:
files``, the default): no proxy process, no TCP, nothing listens.

The launcher (``unpickle.py``) calls ``serve`` before the program runs. It
starts the party's proxy in a thread (``transport/inproc.py``) and gives
MPyC's event loop its own ``create_server`` and ``create_connection``:
where MPyC would listen for lower peers and dial higher ones, its
``MessageExchanger`` gets an in-process transport to the channel of that
peer. MPyC itself is not modified; what it sends (its pid and PRSS keys
first, then its frames) is carried as before, in the same files.
"""
from __future__ import annotations

import os

from ..transport.inproc import FD_VAR, ProxyThread, read_settings

HOST = "files"  # the -P host of a peer: reached through the files, never dialled


def party_args(pid: int, parties: int) -> list[str]:
    """MPyC's ``-P``/``-I``: an entry per party (its port is the pid, never
    used); the party's own entry has no host, as MPyC wants."""
    return [a for k in range(parties) for a in ("-P", f"{'' if k == pid else HOST}:{k}")] + ["-I", str(pid)]


def serve(runtime) -> ProxyThread | None:
    """The party's proxy in this process, if its runner asked for one."""
    fd = os.environ.pop(FD_VAR, None)
    if fd is None:
        return None
    thread = ProxyThread(read_settings(int(fd)))
    attach(runtime, thread.side)
    thread.start()
    return thread


def attach(runtime, side) -> None:
    """MPyC's loop opens its connections through ``side`` (inproc.PartySide)."""
    loop = runtime._loop

    async def create_server(factory, host=None, port=None, **_):
        return side.listen(loop, factory)

    async def create_connection(factory, host=None, port=None, **_):
        protocol = factory()
        peer = getattr(protocol, "peer_pid", None)
        return await side.connect(loop, protocol, port if peer is None else peer)

    loop.create_server = create_server
    loop.create_connection = create_connection
