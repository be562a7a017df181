"""Framing: how a TCP byte stream becomes messages. Pure, no I/O.

Both framings turn bytes into the same events, so the writer of message
files does not care which is in use:

* ``Begin(length)``: a message of ``length`` payload bytes starts; its file
  starts with the 8-byte little-endian length header.
* ``Data(chunk)``: the next payload bytes.
* ``End()``: the message is complete.

``sequre``: the stream is frames ``[8-byte LE length L][L bytes]``; each
frame is one message whose file content is exactly the frame, so the
receiving side forwards the whole file. ``stream``: any bytes, cut into
chunks of what arrived together; the header is the proxy's own and the
receiving side forwards only the payload.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from ...errors import FramingError

HEADER = struct.Struct("<q")
FRAMINGS = ("sequre", "stream")
DEFAULT_MAX_MESSAGE = 1 << 30
DEFAULT_CHUNK = 4 << 20


@dataclass(frozen=True)
class Begin:
    length: int


@dataclass(frozen=True)
class Data:
    chunk: bytes | memoryview  # a memoryview into the bytes that were fed, from SequreParser


@dataclass(frozen=True)
class End:
    pass


END = End()
Event = Begin | Data | End


class SequreParser:
    """Incremental parser of Sequre frames; lengths and data may be split."""

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE, channel: str = "?"):
        self.max_message = max_message
        self.channel = channel
        self._header = bytearray()
        self._remaining: int | None = None  # payload bytes still due, None = in header

    @property
    def in_frame(self) -> bool:
        return self._remaining is not None or bool(self._header)

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        view = memoryview(data)
        while view:
            if self._remaining is None:
                take = HEADER.size - len(self._header)
                self._header += view[:take]
                view = view[take:]
                if len(self._header) < HEADER.size:
                    break
                (length,) = HEADER.unpack(self._header)
                self._header.clear()
                if length < 0 or length > self.max_message:
                    raise FramingError(
                        f"channel {self.channel}: the local party sent an impossible frame "
                        f"length {length} (max {self.max_message}); this is not Sequre-framed "
                        "traffic (TLS or an unframed protocol?): use --framing stream")
                events.append(Begin(length))
                self._remaining = length
            take = min(self._remaining, len(view))
            if take:
                events.append(Data(view[:take]))
                view = view[take:]
                self._remaining -= take
            if self._remaining == 0:
                events.append(END)
                self._remaining = None
        return events

    def eof(self) -> None:
        """The stream ended; a frame cut in the middle is an error."""
        if self.in_frame:
            raise FramingError(f"channel {self.channel}: the local party closed the "
                               "connection in the middle of a frame")


class StreamChunker:
    """Coalesces what arrived together into messages of at most ``chunk`` bytes."""

    def __init__(self, chunk: int = DEFAULT_CHUNK):
        self.chunk = chunk

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        for start in range(0, len(data), self.chunk):
            piece = data[start:start + self.chunk]
            events += [Begin(len(piece)), Data(piece), END]
        return events

    def eof(self) -> None:
        pass


def make_framer(framing: str, *, max_message: int = DEFAULT_MAX_MESSAGE,
                chunk: int = DEFAULT_CHUNK, channel: str = "?") -> SequreParser | StreamChunker:
    if framing == "sequre":
        return SequreParser(max_message, channel)
    if framing == "stream":
        return StreamChunker(min(chunk, max_message))
    raise ValueError(f"unknown framing {framing!r} (choose {', '.join(FRAMINGS)})")

