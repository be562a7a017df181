"""A proxy's settings (defaults: ``protocol/defaults.py``) and the message
folder they make."""
from __future__ import annotations

from dataclasses import dataclass

from .shared import SharedFolder
from .protocol.defaults import DEFAULT_MAX_FILE, HEARTBEAT, LINGER, TIMEOUTS
from .protocol.framing import DEFAULT_CHUNK, DEFAULT_MAX_MESSAGE


@dataclass
class ProxySettings:
    pid: int
    parties: int
    data_dir: str
    base_port: int
    party_base_port: int
    framing: str = "sequre"
    convention: str = "sequre"
    host: str = "127.0.0.1"
    poll_ms: float | None = None
    max_message: int = DEFAULT_MAX_MESSAGE
    chunk: int = DEFAULT_CHUNK
    run_id: str | None = None
    dial: str = "auto"  # eager | lazy | auto (eager for the sequre convention)
    connect_timeout: float = TIMEOUTS["connect"]  # the local party must be reachable by then
    start_timeout: float = TIMEOUTS["start"]  # a peer must show its status by then (0: never check)
    peer_timeout: float = TIMEOUTS["peer"]  # a live peer's heartbeat changes at least this often
    stall_timeout: float = TIMEOUTS["stall"]  # an incomplete message or a seq hole may last this long
    drain_timeout: float = TIMEOUTS["drain"]  # after the party exited, for the peers to consume
    sync_timeout: float = TIMEOUTS["sync"]  # this site's sync may be down this long (syftbox layout; 0: for ever)
    sync_probe: bool = True  # ask this site's SyftBox client and server whether the sync works
    sync_relay: str | None = None  # in a network namespace: the probe's verdicts, written outside (sync_relay.py)
    heartbeat: float = HEARTBEAT
    linger: float = LINGER  # a standalone proxy waits this long for a new connection
    layout: str = "shared"
    syftbox: dict | None = None  # layout syftbox: folder, emails (by pid), max_file, app
    secret: bytes | None = None  # seal every message (seal.py) with this run secret (syftbox: mixed in)
    seal: str = "auto"  # auto: syftbox by the sites' keys, shared by the secret if any; off: never
    pinned: dict | None = None  # syftbox: email -> the fingerprint its site key must have
    party_pid: int | None = None  # standalone: the party's process, whose connections alone are taken

    @property
    def sealing(self) -> str:
        """How this party seals: site-keys, secret or off (in its status record)."""
        if self.seal == "off":
            return "off"
        if self.layout == "syftbox":
            return "site-keys"
        return "secret" if self.secret else "off"

    @property
    def eager(self) -> bool:
        return self.dial == "eager" or (self.dial == "auto" and self.convention == "sequre")


def make_folder(s: ProxySettings):
    """The message folder of the run's layout, sealed: by the sites' keys in the
    syftbox layout (the handshake gives them), by a run secret if there is one."""
    if s.layout == "syftbox":
        from .syftbox import SyftboxFolder

        box = s.syftbox or {}
        folder = SyftboxFolder(box["folder"], s.pid, box["emails"], s.run_id, s.max_message,
                               box.get("max_file") or DEFAULT_MAX_FILE, box.get("app") or "syqure",
                               box.get("run_dir"))
    else:
        folder = SharedFolder(s.data_dir, s.pid, s.parties, s.run_id, s.max_message)
    if s.sealing == "site-keys":
        from .seal import SealedFolder

        folder = SealedFolder(folder, s.run_id)
    elif s.sealing == "secret":
        from .seal import SealedFolder, secret_key

        folder = SealedFolder(folder, s.run_id, {p: (secret_key(s.secret, s.run_id, s.pid, p),
                                                     secret_key(s.secret, s.run_id, p, s.pid))
                                                 for p in folder.peers()})
    return folder
