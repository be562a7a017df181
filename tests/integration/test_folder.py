"""The shared layout's file handling on a real folder: consumed files are
written again (pool), markers are links to one empty file, and nothing of it
changes what a reader sees or weakens what the folder keeps private."""
import os
import stat

import pytest

from syqure_wf.transport.protocol.judge import WAIT_ABSENT, Verdict
from syqure_wf.transport.protocol.names import MSG, READY, RUN_STAMP, file_name
from syqure_wf.errors import SyqureError
from syqure_wf.transport.shared import FilePool
from syqure_wf.transport.shared import SharedFolder, clean
from syqure_wf.transport.protocol.framing import HEADER


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def send(folder: SharedFolder, peer: int, seq: int, payload: bytes) -> None:
    w = folder.open_message(peer, seq)
    w.write(frame(payload))
    w.commit()


def receive(folder: SharedFolder, peer: int, seq: int) -> bytes:
    decision, content = folder.look(peer, seq)
    assert decision.verdict is Verdict.DELIVER, decision
    folder.consume(peer, seq, MSG)
    return bytes(content[HEADER.size:])


@pytest.fixture
def pair(tmp_path):
    a, b = SharedFolder(tmp_path, 0, 2, "r1"), SharedFolder(tmp_path, 1, 2, "r1")
    a.prepare()
    b.prepare()
    yield a, b, tmp_path
    a.release()
    b.release()


def test_consumed_files_are_written_again_with_exact_content(pair):
    a, b, root = pair
    sizes = [300, 5, 120, 0, 4000, 7]  # shrinking ones must be cut to size
    consumed_inodes = set()
    for seq, n in enumerate(sizes):
        send(a, 1, seq, bytes([seq]) * n)
        consumed_inodes.add(os.stat(root / "0_to_1" / file_name(seq, MSG)).st_ino)
        assert receive(b, 0, seq) == bytes([seq]) * n
    assert os.listdir(root / "0_to_1") == [RUN_STAMP]  # consumed: gone from the direction
    for seq, n in enumerate(reversed(sizes)):
        send(b, 0, seq, b"r" * n)
        msg = root / "1_to_0" / file_name(seq, MSG)
        st = os.stat(msg)
        assert st.st_ino in consumed_inodes  # a pooled file, not a new one
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_nlink == 1
        ready = os.stat(root / "1_to_0" / file_name(seq, READY))
        assert ready.st_size == 0 and stat.S_IMODE(ready.st_mode) == 0o600
        assert receive(a, 1, seq) == b"r" * n


def test_markers_are_links_to_one_empty_file(pair):
    a, _, root = pair
    for seq in range(3):
        send(a, 1, seq, b"x")
    inodes = {os.stat(root / "0_to_1" / file_name(s, READY)).st_ino for s in range(3)}
    assert len(inodes) == 1


@pytest.mark.parametrize("unsafe", ["readable by others", "linked elsewhere", "large"])
def test_pool_never_reuses_an_unsafe_file(pair, unsafe):
    a, b, root = pair
    send(a, 1, 0, b"z" * (100_000 if unsafe == "large" else 10))
    msg = root / "0_to_1" / file_name(0, MSG)
    if unsafe == "readable by others":
        os.chmod(msg, 0o644)
    elif unsafe == "linked elsewhere":
        os.link(msg, root / "elsewhere")
    receive(b, 0, 0)
    send(b, 0, 0, b"fresh")
    out = os.stat(root / "1_to_0" / file_name(0, MSG))
    assert stat.S_IMODE(out.st_mode) == 0o600 and out.st_nlink == 1 and out.st_size == HEADER.size + 5
    if unsafe == "linked elsewhere":
        assert (root / "elsewhere").read_bytes()[HEADER.size:] == b"z" * 10  # untouched


def test_full_pool_deletes_what_it_cannot_keep(pair):
    a, b, root = pair
    for seq in range(FilePool.LIMIT + 5):
        send(a, 1, seq, b"m")
    for seq in range(FilePool.LIMIT + 5):
        receive(b, 0, seq)
    assert len(os.listdir(root / ".tmp" / "party1.r1")) == FilePool.LIMIT + 1  # and the marker


def test_release_and_clean_remove_pooled_shares(pair):
    a, b, root = pair
    send(a, 1, 0, b"share")
    receive(b, 0, 0)
    pool = root / ".tmp" / "party1.r1"
    assert len(os.listdir(pool)) == 2
    b.release()
    assert not pool.exists()
    send(b, 0, 0, b"again")  # after release the writer creates files again
    assert receive(a, 1, 0) == b"again"
    assert clean(root) > 0  # a crashed proxy's pool is cleaned too
    assert not (root / ".tmp" / "party0.r1").exists()


def test_pool_folder_that_is_a_link_is_refused_and_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("mine")
    root = tmp_path / "data"
    (root / ".tmp").mkdir(parents=True)
    (root / ".tmp" / "party0.r1").symlink_to(victim)
    folder = SharedFolder(root, 0, 2, "r1")
    with pytest.raises(SyqureError, match="symbolic link"):
        folder.prepare()
    folder.release()
    clean(root)
    assert (victim / "keep").read_text() == "mine"


# -- what a restarted proxy finds (progress.py keeps its counters)

class Killed(Exception):
    pass


def test_message_placed_but_not_announced_is_announced_on_resume(pair):
    a, b, root = pair
    send(a, 1, 0, b"first")

    def die():
        raise Killed  # the proxy dies between placing the message and its marker

    w = a.open_message(1, 1)
    w.write(frame(b"second"))
    with pytest.raises(Killed):
        w.commit(die)
    assert b.look(0, 1)[0] is WAIT_ABSENT  # no reader may have it yet
    # counters said 2 (recorded in ``placed``): the restarted writer announces 1 and goes on at 2
    assert a.resume_outbox(1, 2) == 2
    assert [receive(b, 0, s) for s in (0, 1)] == [b"first", b"second"]


def test_resume_steps_over_markers_already_out(pair):
    a, _, _ = pair
    for seq in range(3):
        send(a, 1, seq, b"m")
    a.write_end(1, 3)
    assert a.resume_outbox(1, 1) == 4


def test_every_layout_counts_a_message_where_the_one_rule_says(tmp_path):
    """Where the reader deletes (shared) the proxy's count comes before the
    marker, where the writer deletes (syftbox) after it: one rule
    (``outbound.publication``), both layouts' writers, real files."""
    from syqure_wf.transport.protocol import outbound
    from syqure_wf.transport.syftbox import SyftboxFolder

    shared = SharedFolder(tmp_path / "data", 0, 2, "r1")
    box = SyftboxFolder(tmp_path / "sync", 0, ["a@example.org", "b@example.org"], "r1")
    assert shared.reader_removes and not box.reader_removes
    for layout in (shared, box):
        layout.prepare()
        layout.stamp_writer("w1")
        counted_with = []
        w = layout.open_message(1, 0)
        w.write(frame(b"m"))
        w.commit(lambda: counted_with.append(layout.listing(layout.outbox(1)).get(0, set())))
        order = outbound.publication(layout.reader_removes)
        assert (READY in counted_with[0]) is (order.index(outbound.MARK) < order.index(outbound.COUNT)), layout
        assert READY in layout.listing(layout.outbox(1))[0]
        layout.release()


def test_delivered_but_not_removed_is_dropped_not_delivered_again(pair):
    a, b, root = pair
    for seq in range(3):
        send(a, 1, seq, b"m%d" % seq)
    b.look(0, 0)  # delivered; the proxy is killed before removing the files
    b.drop_delivered(0, 1)
    assert sorted(b.listing(root / "0_to_1")) == [1, 2]
    assert receive(b, 0, 1) == b"m1"
