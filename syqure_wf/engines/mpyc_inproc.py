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

    loop.create_server = create_server
    loop.create_connection = create_connection


def transport_view(cfg, pid: int, launch) -> None:
    """What the transport touches from the party's process, for its
    confinement (run/confine.py): the message folder (layout
    shared); or this party's run folder, the synced datasites (read), the
    site's own key folder and published key, its SyftBox client's
    configuration and ports (the sync probe) (layout syftbox)."""
    from pathlib import Path
    from urllib.parse import urlsplit

    import syqure_wf

    package = Path(syqure_wf.__file__).resolve().parent  # the launcher imports it from its folder's parent
    launch.reads += [package, (package.parent,)]
    if cfg.layout != "syftbox":
        launch.writes.append(cfg.data_dir)
    else:
        from ..transport.sitekey import did_path, private_dir
        from ..transport.sync_health import find_client

        box, email = cfg.syftbox_folder(pid), cfg.party(pid).email
        launch.writes += [cfg.run_folder(pid), private_dir(box, email), did_path(box, email).parent]
        launch.reads += [box / "datasites", *(p for p in (box.parent / ".syftbox", Path("~/.syftbox").expanduser())
                                              if p.is_dir())]
        client = find_client(box)
        if client is not None:  # found here, where /proc is readable: the party looks there only
            launch.env["SYFTBOX_CLIENT_CONFIG_PATH"] = str(client.config)
            launch.reads.append(client.config)
            for url in (client.client_url, client.server_url):
                parts = urlsplit(url or "")
                if parts.hostname:
                    launch.ports.append(parts.port or (443 if parts.scheme == "https" else 80))


def make_folders(cfg, pid: int, launch) -> None:
    """Made by the runner, before the party is confined: the folders its
    transport writes (a Landlock rule needs its path to exist), and the
    peers' inboxes it watches before their sync brings them (made by a
    proxy itself, but a confined party may not make folders in a peer's
    datasite)."""
    from pathlib import Path

    from ..transport.files import make_private_dir
    from ..transport.protocol.names import direction_name

    for folder in launch.writes:
        make_private_dir(Path(folder))
    if cfg.layout == "syftbox":
        for q in range(cfg.n):
            if q != pid:
                (cfg.run_folder(q, pid) / direction_name(q, pid)).mkdir(parents=True, exist_ok=True)
