import struct

import pytest
from hypothesis import given, settings, strategies as st

from syqure_wf.errors import FramingError
from syqure_wf.transport.protocol.framing import Begin, Data, End, SequreParser, StreamChunker


def frames_of(events):
    out, cur = [], None
    for ev in events:
        if isinstance(ev, Begin):
            cur = bytearray()
        elif isinstance(ev, Data):
            cur += ev.chunk
        else:
            out.append(bytes(cur))
    return out


def frame(payload: bytes) -> bytes:
    return struct.pack("<q", len(payload)) + payload


def test_split_at_every_position():
    stream = frame(b"hello") + frame(b"") + frame(b"x" * 100)
    for cut in range(len(stream) + 1):
        p = SequreParser()
        events = p.feed(stream[:cut]) + p.feed(stream[cut:])
        assert frames_of(events) == [b"hello", b"", b"x" * 100]
        p.eof()


def test_several_frames_in_one_read_and_byte_by_byte():
    stream = b"".join(frame(bytes([i]) * i) for i in range(20))
    p = SequreParser()
    assert frames_of(p.feed(stream)) == [bytes([i]) * i for i in range(20)]
    p = SequreParser()
    events = [ev for b in stream for ev in p.feed(bytes([b]))]
    assert frames_of(events) == [bytes([i]) * i for i in range(20)]


@pytest.mark.parametrize("data", [
    bytes.fromhex("160301020001000001fc0303"),  # a TLS ClientHello
    b"GET / HTTP/1.1\r\n\r\n",  # unframed text
    struct.pack("<q", -5),
    struct.pack("<q", (1 << 30) + 1),
])
def test_impossible_length_names_stream_framing(data):
    with pytest.raises(FramingError, match="--framing stream"):
        SequreParser(channel="0-1").feed(data)


def test_eof_inside_a_frame_is_an_error():
    p = SequreParser()
    p.feed(frame(b"abcdef")[:10])
    with pytest.raises(FramingError, match="middle of a frame"):
        p.eof()


def test_chunker_coalesces_and_bounds():
    c = StreamChunker(chunk=4)
    events = c.feed(b"abcdefghij")
    assert frames_of(events) == [b"abcd", b"efgh", b"ij"]
    assert sum(isinstance(e, End) for e in events) == 3


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=12), st.lists(st.integers(1, 50), max_size=40))
def test_parser_reassembles_any_split(payloads, cuts):
    stream = b"".join(frame(p) for p in payloads)
    p, events, pos = SequreParser(max_message=1000), [], 0
    for c in cuts + [len(stream)]:
        events += p.feed(stream[pos:pos + c])
        pos += c
    events += p.feed(stream[pos:])
    assert frames_of(events) == payloads


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_parser_never_invents_bytes(junk):
    # Hostile input: either a FramingError, or frames whose bytes all came from the input.
    p = SequreParser(max_message=64)
    try:
        events = p.feed(junk)
    except FramingError:
        return
    assert sum(len(f) + 8 for f in frames_of(events)) <= len(junk)
