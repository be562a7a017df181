"""The syftbox layout: parties on different machines whose only link is a
SyftBox-synced folder (SyftBox 0.4: a 1 s sync, files written in place on
the receiving side, small files first, and a user writes only in their own datasite).

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

A caller may name the run folder instead: party A's are then
``{datasites}/{email_A}/{run_dir}/`` (Biovault's SEQURE_FILE_DIR), and the
run is its folder: a rerun there clears what the party's own earlier run
left (``reused_folder``) instead of refusing it. No file exceeds ``max_file_size`` (SyftBox 0.4
refuses files over 10 MB): a large message spans several files.
"""
from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SyqureError
from ..files.private import CREATE, FILE_MODE, make_private_dir, read_small, remove_file, write_private
from .folder import Content, Folder, Layout, MessageWriter, Publication, listed
from .protocol import names, outbound
from .protocol.defaults import DEFAULT_MAX_FILE
from .protocol.framing import DEFAULT_MAX_MESSAGE, HEADER
from .protocol.judge import WAIT_ABSENT, Decision, Rules, Slot, Verdict, judge
from .protocol.names import NATIVE_SUFFIX

APP = "syqure"


def run_folder(folder: str | os.PathLike, email: str, run_id: str, app: str = APP,
               run_dir: str | None = None) -> Path:
    """A party's folder of a run: ``datasites/{email}/app_data/{app}/runs/{run_id}``,
    or Biovault's ``datasites/{email}/{run_dir}``."""
    names.check_id(run_id, "run id")
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
    reader_removes = False  # a SyftBox user writes only in its own datasite: the writer removes
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
        self.reused_folder = run_dir is not None
        self.root = self.runs[pid]
        self._tmp: Path = self.root / ".tmp"
        self._consumed_upto: dict[int, int] = {}  # by peer: what it said it consumed
        self.incarnation: str | None = None  # this proxy process, in its markers and records
        self._writers: dict[int, str] = {}  # by peer: the live incarnation that writes to us
        self._readers: dict[int, str] = {}  # by peer: the live incarnation that reads from us

    # -- where things are
    def outbox(self, peer: int) -> Path:
        return self.root / names.direction_name(self.pid, peer)

    def inbox(self, peer: int) -> Path:
        return self.runs[peer] / names.direction_name(peer, self.pid)

    def status_dir(self) -> Path:
        return self.root / names.STATUS

    def status_dir_of(self, pid: int) -> Path:
        return self.runs[pid] / names.STATUS

    def _record(self, reader: int, writer: int) -> Path:
        """Where ``reader`` records what it consumed from ``writer``."""
        return self.runs[reader] / "consumed" / names.direction_name(writer, reader)

    def clear_leftovers(self, folder: Path) -> None:
        """This party's own earlier run in the same folder: its messages are
        never to be delivered, so they go (they are this party's to remove)."""
        for name in names.leftovers(listed(folder)):
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
        for sub, readers in ((names.STATUS, run_readers), ("consumed", run_readers), ("keys", run_readers)):
            make_private_dir(self.root / sub)
            self._grant(self.root / sub, readers)
        for peer in self.peers():
            out = self.outbox(peer)
            make_private_dir(out)
            self._grant(out, [self.emails[peer]], keep=self.reused_folder)  # the caller's own, where it wrote them
            if self.reused_folder and not resume:
                self.clear_leftovers(out)
                remove_file(self._record(self.pid, peer))
            elif not resume:
                self.refuse_leftovers(out, "use a new run id")
            write_private(out / names.RUN_STAMP, self.run_id.encode())
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
        self._publish(self.outbox(peer), names.file_name(seq, names.END),
                      names.encode_end(self.run_id, self.incarnation))

    def _publish(self, folder: Path, name: str, data) -> None:
        # Under a name the sync ignores, then renamed: never synced half-written.
        tmp = self._tmp / f"{folder.name}.{name}.tmp"
        fd = os.open(tmp, CREATE | os.O_TRUNC, FILE_MODE)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(tmp, folder / name)

    # -- reading: what is on disk, for the judge (protocol/judge.py)
    def look(self, peer: int, seq: int, peek: bool = False) -> tuple[Decision, Content]:
        folder = self.inbox(peer)
        rules = Rules(self.max_message, self.run_id, self.max_file, self._writers.get(peer))
        end = read_small(folder / names.file_name(seq, names.END)) if self.plain_ends else None
        if end is not None:
            return judge(Slot(seq, end=True, marked=True, record=names.decode_record(end), where=str(folder)),
                         rules=rules), None
        raw = read_small(folder / names.file_name(seq, names.READY))
        if raw is None:
            return WAIT_ABSENT, None
        slot = Slot(seq, ready=True, marked=True, record=names.decode_marker(raw), where=str(folder))
        decision = judge(slot, rules=rules)
        if decision.verdict is not Verdict.FETCH:
            return decision, None
        content, got = bytearray(), []
        for index, size in enumerate(decision.sizes):
            data = read_small(folder / names.part_name(seq, index), size + 1)
            got.append(-1 if data is None else len(data))
            if data is None or len(data) != size:
                break  # the judge names it
            content += data
        decision = judge(replace(slot, parts=tuple(got), content=content), rules=rules)
        deliver = decision.verdict is Verdict.DELIVER and not peek
        return decision, (content if deliver else None)

    def native_peer(self, peer: int, since: float) -> str | None:
        """Is ``peer`` (never seen alive) on the Sequre fork's own file
        transport? Its messages are ``.request`` files, and with
        SEQURE_FILE_DEBUG=1 (Biovault's setting) it logs to
        ``file_transport.log`` as it starts; ``since``: our start, on the wall
        clock, so that an earlier run's log says nothing."""
        inbox = self.inbox(peer)
        try:
            native = next((f for f in listed(inbox) if f.endswith(NATIVE_SUFFIX)), None)
        except OSError:
            native = None
        if native:
            return self._native(peer, f"{native} in {inbox}")
        log = self.runs[peer] / "file_transport.log"
        try:
            st = os.lstat(log)  # a peer's link is never followed: it would test a file of ours
        except OSError:
            return None
        if stat.S_ISREG(st.st_mode) and st.st_mtime >= since:
            return self._native(peer, f"its {log}")
        return None

    def _native(self, peer: int, evidence: str) -> str:
        return (f"party {peer} ({self.emails[peer]}) runs the Sequre fork's own file transport ({evidence}): "
                "that site starts the syqure binary with SEQURE_TRANSPORT=file; point its "
                "runner.syqure.binary (or SEQURE_NATIVE_BIN) at syqure-wf-biovault, as here")

    def consume(self, peer: int, seq: int, what: str) -> None:
        """Never delete the sender's files (SyftBox would undo it): record it."""
        write_private(self._record(self.pid, peer), names.encode_consumed(self.run_id, seq, self.incarnation))

    def consumed_by(self, peer: int) -> int:
        """The highest seq ``peer`` says it consumed from us (-1: none)."""
        record = names.decode_record(read_small(self._record(peer, self.pid)))
        self._consumed_upto[peer] = outbound.consumed_upto(record, self.run_id, self._readers.get(peer),
                                                           self._consumed_upto.get(peer, -1))
        return self._consumed_upto[peer]

    def unconsumed(self, peer: int, next_seq: int) -> list[int]:
        """What ``peer`` has not consumed yet (a query: ``reap`` removes what it has)."""
        return outbound.unconsumed(self.listing(self.outbox(peer)), next_seq, self.consumed_by(peer))

    def reap(self, peer: int) -> None:
        """Remove what ``peer`` recorded as consumed: its writer's to remove."""
        out = self.outbox(peer)
        for seq, kind in outbound.reapable(self.listing(out), self.consumed_by(peer)):
            remove_file(out / f"{seq:08d}.{kind}")


class SyftboxWriter(Publication):
    """A message being written: parts as the bytes come, the marker last."""

    order = outbound.publication(SyftboxFolder.reader_removes)

    def __init__(self, folder: SyftboxFolder, peer: int, seq: int):
        self.folder, self.seq = folder, seq
        self.out = folder.outbox(peer)
        self.buffer = bytearray()
        self.digest = hashlib.sha256()
        self.parts = 0
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.buffer += data
        self.digest.update(data)
        self.size += len(data)
        while len(self.buffer) >= self.folder.max_file:
            self._flush(self.folder.max_file)

    def _flush(self, n: int) -> None:
        self.folder._publish(self.out, names.part_name(self.seq, self.parts), self.buffer[:n])
        del self.buffer[:n]
        self.parts += 1

    def _place(self) -> None:
        """The last part out (``commit`` marks it, then counts it: Publication)."""
        if self.buffer or not self.parts:
            self._flush(len(self.buffer))

    def _mark(self) -> None:
        length = self.size - HEADER.size
        self.folder._publish(self.out, names.file_name(self.seq, names.READY),
                             names.encode_marker(self.folder.run_id, length, self.parts,
                                                 self.digest.hexdigest(), self.folder.incarnation))

    def abort(self) -> None:
        for index in range(self.parts):
            remove_file(self.out / names.part_name(self.seq, index))


if TYPE_CHECKING:  # the port's Protocols, as mypy checks them
    def _ports(layout: SyftboxFolder, writer: SyftboxWriter) -> tuple[Folder, MessageWriter]:
        return layout, writer
