"""The folder port: what the channels and the proxy ask of a message
folder, whatever its layout (``Folder``, and ``MessageWriter`` for one
message being written: typing Protocols, checked by mypy), what every
layout shares (``Layout``), and the crash-safety rule of publishing a
message, written once (``Publication``, by ``protocol/outbound.py``'s
``publication``).

The layouts: ``shared.py`` (one folder, the reader deletes) and
``syftbox.py`` (each sender's datasite, the writer deletes); ``seal.py``'s
``SealedFolder`` wraps either. They are thin adapters around ``protocol``:
they gather what is on disk into a Slot for the judge
(``protocol/judge.py``) and never follow a symbolic link.

The port lives here, not in a module of its own: "the folder" is what the
channels, the proxy and PROTOCOL.md call it (``Hub.folder``,
``Proxy.folder``), so this is the file a reader opens to learn what a
folder must do.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Protocol, Union

from ..errors import SyqureError
from ..files.private import read_small, write_private
from .protocol import inbound, names, outbound
from .protocol.judge import Decision

# names an inbox may hold: far more than a writer has ahead of its reader, far fewer
# than a peer flooding it would make every look list (and hold in memory)
MAX_LISTED = 100_000


class Opened(Protocol):
    """A large sealed message, opened as it is sent (``seal.OpenedMessage``)."""

    def pieces(self, skip: int) -> Iterator[bytes | bytearray | memoryview]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Opened: ...

    def __exit__(self, *exc: object) -> None: ...


# What a look gives with DELIVER: the content (its header included) in memory,
# an open file a large message is sent from (sendfile; the caller closes it), or
# a large sealed message opened as it is sent; None with any other verdict.
Content = Union[bytes, bytearray, BinaryIO, Opened, None]


class MessageWriter(Protocol):
    """One outgoing message: its bytes as they come (its 8-byte header
    first), then ``commit`` publishes it, calling ``placed`` (the proxy's
    progress count) where ``Publication`` says, or ``abort`` drops it."""

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def commit(self, placed: Callable[[], None] | None = None) -> None: ...

    def abort(self) -> None: ...


class Folder(Protocol):
    """A run's message folder as one party sees it, in any layout. What a
    channel (``channel.py``, ``link.py``, ``inproc.py``) and the proxy
    (``proxy.py``, ``party_thread.py``) call; every layout implements it."""

    max_message: int  # the largest message content read (a sealed run's files hold more)
    plain_ends: bool  # ends of stream are ``.end`` files (a sealed run seals them as messages)

    @property
    def layout(self) -> str: ...  # its name: "shared", "syftbox"

    @property
    def arrivals(self) -> str: ...  # which file events announce a peer's message (watch.py)

    @property
    def synced(self) -> bool: ...  # a peer's files arrive as a sync writes them, late and in bursts

    @property
    def reused_folder(self) -> bool: ...  # a caller's named run folder: a rerun clears this party's own files

    @property
    def pid(self) -> int: ...

    @property
    def parties(self) -> int: ...

    @property
    def run_id(self) -> str | None: ...

    def peers(self) -> list[int]: ...

    # -- where things are
    def outbox(self, peer: int) -> Path: ...

    def inbox(self, peer: int) -> Path: ...

    def status_dir(self) -> Path: ...

    def status_dir_of(self, pid: int) -> Path: ...

    def progress_path(self) -> Path: ...

    # -- start of a run: folders, leftovers, whose files count
    def prepare(self, resume: bool = False) -> None: ...

    def refuse_early_inbox(self) -> None: ...

    def stamp_writer(self, incarnation: str) -> None: ...

    def writer_stamp(self, peer: int) -> str | None: ...

    def trust_writer(self, peer: int, incarnation: str) -> None: ...

    def trust_reader(self, peer: int, incarnation: str) -> None: ...

    def native_peer(self, peer: int, since: float) -> str | None: ...

    def check_inbox_run(self, peer: int) -> None: ...

    # -- writing, and what a restart finds of it
    def open_message(self, peer: int, seq: int) -> MessageWriter: ...

    def write_end(self, peer: int, seq: int) -> None: ...

    def resume_outbox(self, peer: int, next_seq: int) -> int: ...

    def unconsumed(self, peer: int, next_seq: int) -> list[int]: ...

    def reap(self, peer: int) -> None: ...

    # -- reading
    def look(self, peer: int, seq: int, peek: bool = False) -> tuple[Decision, Content]: ...

    def listing(self, folder: str | os.PathLike[str]) -> dict[int, set[str]]: ...

    def consume(self, peer: int, seq: int, what: str) -> None: ...

    def drop_delivered(self, peer: int, next_seq: int) -> None: ...

    # -- end of a proxy, of a failed run
    def release(self) -> None: ...

    def discard_unconsumed(self) -> int: ...


class Publication:
    """A message writer's ``commit``, in the order ``outbound.publication``
    gives for its layout (``order``): the crash-safety rule of every layout,
    written once. A layout's writer says how it places its content
    (``_place``) and marks it (``_mark``)."""

    order: tuple[str, str, str]

    def commit(self, placed: Callable[[], None] | None = None) -> None:
        for step in self.order:
            if step == outbound.PLACE:
                self._place()
            elif step == outbound.MARK:
                self._mark()
            elif placed is not None:
                placed()

    def _place(self) -> None:
        raise NotImplementedError

    def _mark(self) -> None:
        raise NotImplementedError


def listed(folder: str | os.PathLike[str], cap: int | None = None) -> list[str]:
    """The names in a message folder; SyqureError once there are more than
    ``cap`` (MAX_LISTED: a peer's flood, not a run): never read whole."""
    cap = MAX_LISTED if cap is None else cap
    out: list[str] = []
    with os.scandir(folder) as it:
        for entry in it:
            if len(out) >= cap:
                raise SyqureError(f"{folder} holds more than {cap} files: not a run's messages")
            out.append(entry.name)
    return out


class Layout:
    """What every layout shares: its parties, the message files of a folder,
    what a restart finds of its writing, and what a party may remove of its own.
    (A base of the layouts, each a ``Folder``; not a ``Folder`` itself.)"""

    layout: str
    pid: int
    parties: int
    reader_removes: bool  # the reader removes what it consumed (shared), or the writer does (syftbox)
    _tmp: str | Path  # never synced: temporary files, the proxy's counters
    reused_folder = False  # the caller names the run folder and reruns reuse it: a rerun clears this party's own earlier files
    synced = False  # a peer's files arrive as it writes them
    # Ends of stream are ``.end`` files; a sealed run (seal.SealedFolder) seals
    # them as messages instead, and an ``.end`` file there is nobody's: unseen.
    plain_ends = True

    def peers(self) -> list[int]:
        return [p for p in range(self.parties) if p != self.pid]

    # each layout's own (Folder)
    def outbox(self, peer: int) -> Path:
        raise NotImplementedError

    def inbox(self, peer: int) -> Path:
        raise NotImplementedError

    def consume(self, peer: int, seq: int, what: str) -> None:
        raise NotImplementedError

    def listing(self, folder: str | os.PathLike[str]) -> dict[int, set[str]]:
        try:
            present = names.group(listed(folder))
        except FileNotFoundError:
            return {}
        if not self.plain_ends:
            for seq in [s for s, kinds in present.items() if names.END in kinds]:
                present[seq].discard(names.END)
                if not present[seq]:
                    del present[seq]
        return present

    def refuse_leftovers(self, folder: str | os.PathLike[str], remedy: str) -> None:
        """A writer's fresh outbox must be empty: anything there is an earlier run's."""
        left = names.leftovers(listed(folder))
        if left:
            raise SyqureError(f"{folder} holds {len(left)} message file(s) of an earlier run "
                              f"({left[0]}, ...): run 'syqure-wf clean' or {remedy}")

    def writer_stamp(self, peer: int) -> str | None:
        """The incarnation token of the proxy that writes to us from ``peer``."""
        raw = read_small(Path(self.inbox(peer)) / names.WRITER_STAMP, 256)
        return raw.decode(errors="replace").strip() if raw else None

    def stamp_writer(self, incarnation: str) -> None:
        """Say in every outbox which proxy process writes there (after the leftovers check)."""
        for peer in self.peers():
            write_private(Path(self.outbox(peer)) / names.WRITER_STAMP, incarnation.encode())

    def trust_writer(self, peer: int, incarnation: str) -> None:
        """``peer``'s running proxy, proven to write our inbox (layouts whose
        files name their writer use it: syftbox)."""

    def trust_reader(self, peer: int, incarnation: str) -> None:
        """``peer``'s running proxy, seen alive (syftbox: its consumption records count)."""

    def native_peer(self, peer: int, since: float) -> str | None:
        """Why ``peer`` speaks another file protocol here, or None (the syftbox layout knows the Sequre fork's)."""
        return None

    def refuse_early_inbox(self) -> None:
        """Without status records to judge a writer by (seed sbproxy peers), a
        message already in an inbox at start may be a dead run's: refused."""
        for peer in self.peers():
            self.refuse_leftovers(self.inbox(peer), "give every proxy the same --run-id")

    def removable(self) -> list[str | Path]:
        """Folders whose message files this party may remove after a failed run."""
        return [self.outbox(p) for p in self.peers()]

    def release(self) -> None:
        """Give back what the layout holds while a proxy runs."""

    def reap(self, peer: int) -> None:
        """Remove what ``peer`` consumed of ours, where the writer does (syftbox)."""

    def progress_path(self) -> Path:
        """Where this party's proxy keeps its counters (never synced)."""
        return Path(self._tmp) / f"party{self.pid}.progress"

    def resume_outbox(self, peer: int, next_seq: int) -> int:
        """The next seq to write after a restart: the last message counted
        announced if the publication order left it placed and unannounced
        (``outbound.announce``), then past any marker already out."""
        present = self.listing(self.outbox(peer))
        kinds = present.get(next_seq - 1, set())
        if outbound.announce(self.reader_removes, next_seq, names.MSG in kinds, names.READY in kinds):
            self._announce(peer, next_seq - 1)
        return outbound.resume_seq(present, next_seq)

    def _announce(self, peer: int, seq: int) -> None:
        """Make the marker of message ``seq`` to ``peer``, already whole in the outbox."""
        raise NotImplementedError(f"the {self.layout} layout announces no message after a restart")

    def drop_delivered(self, peer: int, next_seq: int) -> None:
        """Remove what a killed proxy delivered but had not yet removed."""
        for seq, kind in inbound.Inbox(next_seq).delivered_before(self.listing(self.inbox(peer))):
            self.consume(peer, seq, kind)

    def discard_unconsumed(self) -> int:
        """Remove the message files of a failed run that nobody will read."""
        removed = 0
        for folder in self.removable():
            for name in names.leftovers(listed(folder)):
                os.unlink(os.path.join(folder, name))
                removed += 1
        return removed

