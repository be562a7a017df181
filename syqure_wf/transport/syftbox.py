"""The syftbox layout: parties on different machines whose only link is a
SyftBox-synced folder (FINDINGS.md, SyftBox section).

A SyftBox user can write only in their own datasite, so the messages from A
to B live in A's datasite and B never deletes them; B records what it
consumed in its own datasite, and A removes what B consumed::

    {folder}/datasites/{email_A}/app_data/{app}/runs/{run_id}/
        {A}_to_{B}/{seq:08d}.msg, .part1, .part2, …, .ready, .end   (read: B only)
        consumed/{B}_to_{A}                                           (read: the run's parties)
        status/party-{A}.json                                         (read: the run's parties)
        keys/party-{A}.json        A's handshake (peerkeys.py)        (read: the run's parties)
        .tmp/                                                         (never synced)

A sync delivers markers before files, files partly written, and old files
again: every marker carries the run id, the writer's incarnation, the
length, the number of files and a SHA-256 of the message, and a message is
delivered only when all of it is there and matches, and once its writer is
known to be running, only from that writer. A consumption record names the
reader's incarnation: a writer removes only what its live reader consumed,
so a dead run's records never remove a new run's messages.

Biovault's layout is the same with other folders: party A's are
``{datasites}/{email_A}/{run_dir}/`` (``run_dir``: its SEQURE_FILE_DIR), and
the run is its folder: a rerun there clears what the party's own earlier
run left (``fresh``) instead of refusing it. No file exceeds ``max_file_size`` (SyftBox 0.4
refuses files over 10 MB): a large message spans several files.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from . import mailbox
from ..errors import SyqureError
from .folder import FILE_MODE, _CREATE, Layout, make_private_dir, read_small, remove_file, write_private
from .framing import DEFAULT_MAX_MESSAGE, HEADER

DEFAULT_MAX_FILE = 8 << 20  # under SyftBox's 10 MB limit
NATIVE_SUFFIX = ".request"  # the Sequre fork's own file transport names its messages so
APP = "syqure"


def run_folder(folder: str | os.PathLike, email: str, run_id: str, app: str = APP,
               run_dir: str | None = None) -> Path:
    """A party's folder of a run: ``datasites/{email}/app_data/{app}/runs/{run_id}``,
    or Biovault's ``datasites/{email}/{run_dir}``."""
    mailbox.check_id(run_id, "run id")
    if "/" in email or email.startswith(".") or not email:
        raise SyqureError(f"email {email!r} is not allowed")
    if run_dir is not None:
        parts = Path(run_dir).parts
        if not parts or Path(run_dir).is_absolute() or any(x in ("..", ".") or x.startswith(".") for x in parts):
            raise SyqureError(f"run folder {run_dir!r} is not allowed: relative, without '..' or hidden names")
        return Path(folder).expanduser() / "datasites" / email / run_dir
    return Path(folder).expanduser() / "datasites" / email / "app_data" / app / "runs" / run_id


def permissions(readers: list[str]) -> dict[str, bytes]:
    """Read access for ``readers`` only, for SyftBox 0.4 and for current SyftBox."""
    old = "".join(f"- path: '**'\n  user: {email}\n  permissions: [read]\n" for email in readers)
    new = "rules:\n  - pattern: '**'\n    access:\n      read: [" + ", ".join(readers) + "]\n"
    return {"syftperm.yaml": old.encode(), "syft.pub.yaml": new.encode()}


class SyftboxFolder(Layout):
    layout = "syftbox"
    arrivals = "writes"  # a sync client writes files in place, in any order
    synced = True  # what a peer writes arrives late, in bursts: bounds stretch (status.PeerWatch)

    def __init__(self, folder, pid: int, emails: list[str], run_id: str,
                 max_message: int = DEFAULT_MAX_MESSAGE, max_file: int = DEFAULT_MAX_FILE, app: str = APP,
                 run_dir: str | None = None):
        if not run_id:
            raise SyqureError("the syftbox layout needs a run id shared by every party")
        self.pid, self.parties, self.emails = pid, len(emails), emails
        self.run_id, self.max_message, self.max_file = run_id, max_message, max_file
        self.runs = {p: run_folder(folder, emails[p], run_id, app, run_dir) for p in range(len(emails))}
        self.fresh = run_dir is not None
        self.root = self.runs[pid]
        self._tmp = self.root / ".tmp"
        self._consumed_upto: dict[int, int] = {}  # by peer: what it said it consumed
        self.incarnation: str | None = None  # this proxy process, in its markers and records
        self._writers: dict[int, str] = {}  # by peer: the live incarnation that writes to us
        self._readers: dict[int, str] = {}  # by peer: the live incarnation that reads from us

    # -- where things are
    def outbox(self, peer: int) -> Path:
        return self.root / mailbox.direction_name(self.pid, peer)

    def inbox(self, peer: int) -> Path:
        return self.runs[peer] / mailbox.direction_name(peer, self.pid)

    def status_dir(self) -> Path:
        return self.root / "status"

    def status_dir_of(self, pid: int) -> Path:
        return self.runs[pid] / "status"

    def _record(self, reader: int, writer: int) -> Path:
        """Where ``reader`` records what it consumed from ``writer``."""
        return self.runs[reader] / "consumed" / mailbox.direction_name(writer, reader)

    def clear_leftovers(self, folder: Path) -> None:
        """This party's own earlier run in the same folder: its messages are
        never to be delivered, so they go (they are this party's to remove)."""
        for name in mailbox.leftovers(os.listdir(folder)):
            remove_file(folder / name)

    # -- whose files count: told by the proxy from the peers' live records
    def stamp_writer(self, incarnation: str) -> None:
        self.incarnation = incarnation
        super().stamp_writer(incarnation)

    def trust_writer(self, peer: int, incarnation: str) -> None:
        self._writers[peer] = incarnation

    def trust_reader(self, peer: int, incarnation: str) -> None:
        self._readers[peer] = incarnation

    # -- start of a run
    def prepare(self, resume: bool = False) -> None:
        run_readers = [self.emails[p] for p in range(self.parties)]
        make_private_dir(self.root)
        make_private_dir(self._tmp)
        for sub, readers in (("status", run_readers), ("consumed", run_readers), ("keys", run_readers)):
            make_private_dir(self.root / sub)
            self._grant(self.root / sub, readers)
        for peer in self.peers():
            out = self.outbox(peer)
            make_private_dir(out)
            self._grant(out, [self.emails[peer]], keep=self.fresh)  # Biovault's own, where it wrote them
            if self.fresh and not resume:
                self.clear_leftovers(out)
                remove_file(self._record(self.pid, peer))
            elif not resume:
                self.refuse_leftovers(out, "use a new run id")
            write_private(out / mailbox.RUN_STAMP, self.run_id.encode())
            # The peer's folder arrives with the sync; made here so that it can be
            # watched from the start (an empty folder carries nothing to reject).
            self.inbox(peer).mkdir(parents=True, exist_ok=True)

    def _grant(self, folder: Path, readers: list[str], keep: bool = False) -> None:
        for name, content in permissions(readers).items():
            if not (keep and (folder / name).exists()):
                write_private(folder / name, content)

    def check_inbox_run(self, peer: int) -> None:
        pass  # every marker carries the run id and is checked in look()

    # -- writing: parts, then the marker that says how to check them
    def open_message(self, peer: int, seq: int) -> "SyftboxWriter":
        return SyftboxWriter(self, peer, seq)

    def write_end(self, peer: int, seq: int) -> None:
        self._publish(self.outbox(peer), mailbox.file_name(seq, mailbox.END),
                      json.dumps({"run": self.run_id, "writer": self.incarnation}).encode())

    def _publish(self, folder: Path, name: str, data) -> None:
        # Under a name the sync ignores, then renamed: never synced half-written.
        tmp = self._tmp / f"{folder.name}.{name}.tmp"
        fd = os.open(tmp, _CREATE | os.O_TRUNC, FILE_MODE)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(tmp, folder / name)

    # -- reading
    def look(self, peer: int, seq: int, peek: bool = False):
        folder = self.inbox(peer)
        end = read_small(folder / mailbox.file_name(seq, mailbox.END))
        if end is not None:
            record = _json(end)
            if record is None:
                return mailbox.Decision(mailbox.Verdict.WAIT, reason="end marker still arriving"), None
            if record.get("run") != self.run_id:
                return self._other_run(folder, seq, record), None
            if self._earlier_writer(peer, record):
                return mailbox.Decision(mailbox.Verdict.WAIT, reason=f"end {seq} is an earlier writer's"), None
            return mailbox.Decision(mailbox.Verdict.END), None
        raw = read_small(folder / mailbox.file_name(seq, mailbox.READY))
        if raw is None:
            if self.fresh and (folder / f"{seq:08d}{NATIVE_SUFFIX}").exists():
                raise SyqureError(self._native(peer, f"{seq:08d}{NATIVE_SUFFIX} in {folder}"))
            return mailbox.WAIT_ABSENT, None
        marker = mailbox.decode_marker(raw)
        if marker is None:
            return mailbox.Decision(mailbox.Verdict.WAIT, reason=f"marker {seq} still arriving"), None
        if marker.get("run") != self.run_id:
            return self._other_run(folder, seq, marker), None
        if self._earlier_writer(peer, marker):
            return mailbox.Decision(mailbox.Verdict.WAIT, reason=f"message {seq} is an earlier writer's"), None
        length, parts = int(marker["length"]), int(marker["parts"])
        if length < 0 or length > self.max_message:
            return mailbox.Decision(mailbox.Verdict.CORRUPT,
                                    reason=f"message {seq} claims {length} bytes (max {self.max_message})"), None
        sizes = mailbox.split_sizes(HEADER.size + length, self.max_file)
        if parts != len(sizes):
            return mailbox.Decision(mailbox.Verdict.CORRUPT,
                                    reason=f"message {seq} claims {parts} files, its length needs {len(sizes)}"), None
        content = bytearray()
        for index, size in enumerate(sizes):
            name = mailbox.part_name(seq, index)
            data = read_small(folder / name, size + 1)
            if data is None or len(data) < size:
                return mailbox.Decision(mailbox.Verdict.WAIT, reason=f"{name} is not all there yet"), None
            if len(data) > size:
                return mailbox.Decision(mailbox.Verdict.WAIT, reason=f"{name} is longer than its marker says"), None
            content += data
        if hashlib.sha256(content).hexdigest() != marker["sha256"]:
            return mailbox.Decision(mailbox.Verdict.WAIT, reason=f"message {seq} does not match its digest"), None
        (header,) = HEADER.unpack_from(content)
        if header != length:
            return mailbox.Decision(mailbox.Verdict.CORRUPT, reason=f"message {seq}: header says {header}"), None
        return mailbox.Decision(mailbox.Verdict.DELIVER, length=length), (None if peek else content)

    def native_peer(self, peer: int, since: float) -> str | None:
        """Biovault: is ``peer`` on the fork's own file transport? Its messages
        are ``.request`` files, and with SEQURE_FILE_DEBUG=1 (Biovault's
        setting) it logs to ``file_transport.log`` as it starts; ``since``: our
        start, on the wall clock, so that an earlier run's log says nothing."""
        if not self.fresh:
            return None
        inbox = self.inbox(peer)
        try:
            native = next((f for f in os.listdir(inbox) if f.endswith(NATIVE_SUFFIX)), None)
        except OSError:
            native = None
        if native:
            return self._native(peer, f"{native} in {inbox}")
        log = self.runs[peer] / "file_transport.log"
        try:
            if log.stat().st_mtime >= since:
                return self._native(peer, f"its {log}")
        except OSError:
            pass
        return None

    def _native(self, peer: int, evidence: str) -> str:
        return (f"party {peer} ({self.emails[peer]}) runs the Sequre fork's own file transport ({evidence}): "
                "that site starts the syqure binary with SEQURE_TRANSPORT=file; point its "
                "runner.syqure.binary (or SEQURE_NATIVE_BIN) at syqure-wf-biovault, as here")

    def _earlier_writer(self, peer: int, record: dict) -> bool:
        """A file of a writer that is not the one known to be running: left by
        an earlier run in this folder, or synced again (never delivered)."""
        trusted = self._writers.get(peer)
        return bool(trusted and record.get("writer") and record["writer"] != trusted)

    def _other_run(self, folder: Path, seq: int, record: dict) -> mailbox.Decision:
        return mailbox.Decision(mailbox.Verdict.CORRUPT,
                                reason=f"message {seq} in {folder} belongs to run {record.get('run')!r}, "
                                       f"not {self.run_id!r}")

    def consume(self, peer: int, seq: int, what: str) -> None:
        """Never delete the sender's files (SyftBox would undo it): record it."""
        write_private(self._record(self.pid, peer),
                      json.dumps({"run": self.run_id, "upto": seq, "reader": self.incarnation}).encode())

    def consumed_by(self, peer: int) -> int:
        """The highest seq ``peer`` says it consumed from us (-1: none)."""
        record = _json(read_small(self._record(peer, self.pid)) or b"")
        if record and record.get("run") == self.run_id and isinstance(record.get("upto"), int) \
                and self._from_live_reader(peer, record):
            self._consumed_upto[peer] = max(self._consumed_upto.get(peer, -1), record["upto"])
        return self._consumed_upto.get(peer, -1)

    def _from_live_reader(self, peer: int, record: dict) -> bool:
        """A consumption record counts once its reader is known to be running:
        a dead run's record must not remove a new run's messages."""
        return record.get("reader") == self._readers.get(peer)

    def unconsumed(self, peer: int, next_seq: int) -> list[int]:
        """What ``peer`` has not consumed yet; what it has is removed here, by its writer."""
        upto = self.consumed_by(peer)
        out = self.outbox(peer)
        left = []
        for seq, kinds in self.listing(out).items():
            if seq <= upto:
                for kind in kinds:
                    remove_file(out / f"{seq:08d}.{kind}")
            elif seq < next_seq:
                left.append(seq)
        return sorted(left)


class SyftboxWriter:
    """A message being written: parts as the bytes come, the marker last."""

    def __init__(self, folder: SyftboxFolder, peer: int, seq: int):
        self.folder, self.seq = folder, seq
        self.out = folder.outbox(peer)
        self.buffer = bytearray()
        self.digest = hashlib.sha256()
        self.parts = 0
        self.size = 0

    def write(self, data) -> None:
        self.buffer += data
        self.digest.update(data)
        self.size += len(data)
        while len(self.buffer) >= self.folder.max_file:
            self._flush(self.folder.max_file)

    def _flush(self, n: int) -> None:
        self.folder._publish(self.out, mailbox.part_name(self.seq, self.parts), self.buffer[:n])
        del self.buffer[:n]
        self.parts += 1

    def commit(self, placed=None) -> None:
        """Publish the marker, then call ``placed``: the writer removes only
        what its reader recorded as consumed, so a marker out before a restart
        is still there after it."""
        if self.buffer or not self.parts:
            self._flush(len(self.buffer))
        length = self.size - HEADER.size
        self.folder._publish(self.out, mailbox.file_name(self.seq, mailbox.READY),
                             mailbox.encode_marker(self.folder.run_id, length, self.parts,
                                                   self.digest.hexdigest(), self.folder.incarnation))
        if placed:
            placed()

    def abort(self) -> None:
        for index in range(self.parts):
            remove_file(self.out / mailbox.part_name(self.seq, index))


def _json(raw: bytes) -> dict | None:
    try:
        record = json.loads(raw) if raw else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
