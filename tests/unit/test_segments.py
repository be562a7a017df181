"""Sealing in segments (issue 31): the pure format (segments.py) and the
sealed folder around a real shared layout on disk. Tampering, truncation,
reordering and swapping are refused; a large message is sealed as it is
written and opened as it is sent; an end of stream is a sealed message."""
from __future__ import annotations

import io
import os
import struct
import tracemalloc

import pytest
from cryptography.exceptions import InvalidTag

from syqure_wf.errors import CorruptMessage
from syqure_wf.transport.shared import SharedFolder
from syqure_wf.transport.protocol.judge import Verdict
from syqure_wf.transport.seal import SealedFolder, secret_key
from syqure_wf.transport.segments import (HEAD, SEALED_SEGMENT, SEGMENT, TAG, Opening, Seal, plain_size,
                                          sealed_size)

KEY = os.urandom(32)


def seal(run="run-a", src=0, dst=1, key=KEY) -> Seal:
    return Seal(key, run, src, dst)


def opened(sealed, seq=5, run="run-a") -> bytes:
    """Through the streaming reader, as a proxy sends a large message."""
    source = io.BytesIO(bytes(sealed))
    return b"".join(bytes(p) for p in Opening(seal(run), seq, len(sealed), source.readinto).pieces())


SIZES = [1, 8, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, 3 * SEGMENT + 7, 17 * SEGMENT + 1]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_whole_and_streamed(size):
    plain = os.urandom(size)
    sealed = seal().seal(5, plain)
    assert len(sealed) == sealed_size(size) and plain_size(len(sealed)) == size
    assert seal().open(5, sealed) == plain
    assert opened(sealed) == plain


def test_sizes_no_segment_is_empty():
    assert [plain_size(n) for n in range(HEAD + TAG + 2)] == [None] * (HEAD + TAG + 1) + [1]
    # one byte past whole segments: a last segment of a tag alone is no message
    assert plain_size(HEAD + 2 * SEALED_SEGMENT + TAG) is None
    assert plain_size(HEAD + 2 * SEALED_SEGMENT) == 2 * SEGMENT


def segments_of(sealed: bytes) -> tuple[bytes, list[bytes]]:
    body = sealed[HEAD:]
    return sealed[:HEAD], [body[i:i + SEALED_SEGMENT] for i in range(0, len(body), SEALED_SEGMENT)]


def refused(sealed, seq=5, run="run-a") -> None:
    with pytest.raises(InvalidTag):
        seal(run).open(seq, sealed)
    with pytest.raises(InvalidTag):
        opened(sealed, seq, run)


def test_bound_to_run_direction_seq_and_key():
    sealed = seal().seal(5, os.urandom(3 * SEGMENT))
    refused(sealed, seq=6)
    refused(sealed, run="run-b")
    with pytest.raises(InvalidTag):
        seal(src=1, dst=0).open(5, sealed)
    with pytest.raises(InvalidTag):
        seal(key=os.urandom(32)).open(5, sealed)


def test_tampered_truncated_reordered_swapped_refused():
    plain = os.urandom(4 * SEGMENT + 100)
    sealed = seal().seal(5, plain)
    head, segs = segments_of(sealed)
    altered = bytearray(sealed)
    altered[HEAD + 2 * SEALED_SEGMENT + 9] ^= 1
    refused(altered)
    refused(sealed[:-1])  # cut inside the last segment
    refused(head + b"".join(segs[:3]))  # cut after whole segments: segment 2 was not the last
    refused(head + segs[0] + segs[2] + segs[1] + b"".join(segs[3:]))  # reordered
    refused(bytes([9]) + sealed[1:])  # another format
    other = seal().seal(5, os.urandom(len(plain)))  # the same seq sealed again: another nonce
    _, theirs = segments_of(other)
    refused(head + segs[0] + theirs[1] + b"".join(segs[2:]))  # swapped in from another message
    later = seal().seal(6, os.urandom(len(plain)))
    refused(head + segs[0] + segments_of(later)[1][1] + b"".join(segs[2:]))
    assert seal().seal(5, b"x") != seal().seal(5, b"x")  # a fresh nonce each time


def test_a_writer_never_repeats_a_nonce():
    s = seal()
    nonces = set()
    for size in (10, 3 * SEGMENT, 10, SEGMENT + 1):
        sealed = s.seal(1, bytes(size))
        first = int.from_bytes(sealed[1:HEAD], "big")
        used = {first + i for i in range(-(-size // SEGMENT))}
        assert not used & nonces
        nonces |= used


# -- the sealed folder on a real shared layout ----------------------------------

def folders(tmp_path, max_message=1 << 30):
    pair = []
    for pid in (0, 1):
        keys = {1 - pid: (secret_key(b"s" * 32, "r1", pid, 1 - pid), secret_key(b"s" * 32, "r1", 1 - pid, pid))}
        inner = SharedFolder(tmp_path, pid, 2, "r1", max_message)
        inner.prepare()
        pair.append(SealedFolder(inner, "r1", keys))
    return pair


def write(folder, seq, payload, chunk=1 << 16):
    w = folder.open_message(0, seq)
    w.write(struct.pack("<q", len(payload)))
    for i in range(0, len(payload), chunk):
        w.write(payload[i:i + chunk])
    w.commit()


def read(folder, seq):
    decision, content = folder.look(1, seq)
    if decision.verdict is not Verdict.DELIVER:
        return decision.verdict, None
    if isinstance(content, bytearray):
        return decision.verdict, bytes(content)
    with content:
        return decision.verdict, b"".join(bytes(p) for p in content.pieces(0))


@pytest.mark.parametrize("size", [5, SEGMENT - 8, SEGMENT * 20 + 3])
def test_sealed_folder_round_trip_and_end(tmp_path, size):
    reader, writer = folders(tmp_path)
    payload = os.urandom(size)
    write(writer, 0, payload, chunk=7777)
    writer.write_end(0, 1)
    assert not list((tmp_path / "1_to_0").glob("*.end"))  # the end is a sealed message
    assert read(reader, 0) == (Verdict.DELIVER, struct.pack("<q", size) + payload)
    assert read(reader, 1) == (Verdict.END, None)
    reader.consume(1, 1, "end")
    assert not list((tmp_path / "1_to_0").glob("00000001.*"))


def test_an_unsealed_end_is_nobodys(tmp_path):
    reader, writer = folders(tmp_path)
    inbox = tmp_path / "1_to_0"
    for seq in (0, 1, 7):
        (inbox / f"{seq:08d}.end").write_bytes(b"")  # planted: neither truncates nor counts as a marker
    assert reader.look(1, 0)[0].verdict is Verdict.WAIT
    assert reader.listing(inbox) == {}
    write(writer, 0, b"share")
    assert read(reader, 0) == (Verdict.DELIVER, struct.pack("<q", 5) + b"share")


def test_an_end_sealed_for_another_seq_is_refused(tmp_path):
    reader, writer = folders(tmp_path)
    writer.write_end(0, 0)
    inbox = tmp_path / "1_to_0"
    os.rename(inbox / "00000000.msg", inbox / "00000003.msg")
    os.rename(inbox / "00000000.ready", inbox / "00000003.ready")
    with pytest.raises(CorruptMessage, match="message 3 from party 1 failed authentication"):
        reader.look(1, 3)


def test_a_large_message_is_written_and_read_a_few_segments_at_a_time(tmp_path):
    size = 48 << 20
    reader, writer = folders(tmp_path)
    payload = b"\x5a" * size
    tracemalloc.start()
    try:
        write(writer, 0, memoryview(payload), chunk=1 << 20)
        _, written_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        decision, content = reader.look(1, 0)
        got = 0
        with content:
            for piece in content.pieces(0):
                assert bytes(piece[-3:]) == b"\x5a" * 3
                got += len(piece)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decision.length == size and got == size + 8
    assert written_peak < 8 << 20 and read_peak < 8 << 20, (written_peak, read_peak)  # of a 48 MiB message


def test_a_segment_that_does_not_open_stops_the_message_there(tmp_path):
    reader, writer = folders(tmp_path)
    write(writer, 0, os.urandom(10 * SEGMENT))
    path = tmp_path / "1_to_0" / "00000000.msg"
    data = bytearray(path.read_bytes())
    data[8 + HEAD + 5 * SEALED_SEGMENT + 3] ^= 1
    path.write_bytes(data)
    decision, content = reader.look(1, 0)
    got = []
    with pytest.raises(CorruptMessage, match="failed authentication"), content:
        for piece in content.pieces(0):
            got.append(len(piece))
    assert sum(got) < 5 * SEGMENT  # nothing from the altered segment on


def test_a_writer_given_more_than_its_header_says_stops(tmp_path):
    _, writer = folders(tmp_path)
    w = writer.open_message(0, 0)
    w.write(struct.pack("<q", 2 * SEGMENT))
    with pytest.raises(CorruptMessage, match="more bytes written than its header says"):
        w.write(bytes(3 * SEGMENT))
    w.abort()
