"""An MPyC party on the file transport in its own process (``transport:
files``, the default): no proxy process, no TCP, nothing listens.

The launcher (``unpickle.py``) calls ``start`` before it imports MPyC: the
party's proxy runs in a thread (``transport/party_thread.py``) from then
on, its record beating. Then ``attach`` gives MPyC's event loop its own
``create_server`` and ``create_connection``: where MPyC would listen for
lower peers and dial higher ones, its ``MessageExchanger`` gets an
in-process transport to the channel of that peer (``transport/inproc.py``).
MPyC itself is not modified; what it sends (its pid and PRSS keys first,
then its frames) is carried as before, in the same files.
"""
from __future__ import annotations

import os
import socket

from ..transport.party_thread import FD_VAR, ProxyThread, read_settings

HOST = "files"  # the -P host of a peer: reached through the files, never dialled


def party_args(pid: int, parties: int) -> list[str]:
    """MPyC's ``-P``/``-I``: an entry per party (its port is the pid, never
    used); the party's own entry has no host, as MPyC wants."""
    return [a for k in range(parties) for a in ("-P", f"{'' if k == pid else HOST}:{k}")] + ["-I", str(pid)]


def start() -> ProxyThread | None:
    """The party's proxy in this process, if its runner asked for one: as
    early as can be, for the heartbeats (MPyC's imports take seconds)."""
    fd = os.environ.pop(FD_VAR, None)
    if fd is None:
        return None
    runner = socket.socket(fileno=int(fd))
    thread = ProxyThread(read_settings(runner), runner)
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

    def run_until_complete(future):
        side.lend(loop)
        try:
            return run(future)
        finally:  # a write of the loop's last turn is batched (inproc.End.flush): out before the party computes on
            side.flush()

    run = loop.run_until_complete
    loop.create_server = create_server
    loop.create_connection = create_connection
    loop.run_until_complete = run_until_complete


def transport_view(cfg, pid: int, launch) -> None:
    """What the transport touches from the party's process, for its
    confinement (run/confine.py): the package, and the message folder
    (layout shared; a confined party of the syftbox layout keeps its proxy,
    ``RunConfig.in_process``)."""
    from pathlib import Path

    import syqure_wf

    package = Path(syqure_wf.__file__).resolve().parent  # the launcher imports it from its folder's parent
    launch.reads += [package, (package.parent,)]
    if cfg.layout != "syftbox":
        launch.writes.append(cfg.data_dir)


def make_folders(cfg, pid: int, launch) -> None:
    """The folders its transport writes, made by the runner before the party
    is confined (a Landlock rule needs its path to exist)."""
    from pathlib import Path

    from ..files.private import make_private_dir

    for folder in launch.writes:
        make_private_dir(Path(folder))
