import struct

import pytest

from syqure_wf.transport.protocol.inbound import Inbox
from syqure_wf.transport.protocol.judge import Slot, Verdict, judge
from syqure_wf.transport.protocol.names import check_id, file_name, parse_name
from syqure_wf.transport.protocol.outbound import Outbox

H = lambda n: struct.pack("<q", n)  # noqa: E731


@pytest.mark.parametrize("slot,verdict,words", [
    (Slot(0), Verdict.WAIT, ""),
    (Slot(0, ready=True), Verdict.WAIT, "is not"),
    (Slot(0, ready=True, msg="file", size=4, header=b"\0\0\0\0"), Verdict.WAIT, "shorter"),
    (Slot(0, ready=True, msg="file", size=10, header=H(5)), Verdict.WAIT, "10 of 13"),
    (Slot(0, ready=True, msg="file", size=13, header=H(5)), Verdict.DELIVER, ""),
    (Slot(0, ready=True, msg="file", size=14, header=H(5)), Verdict.CORRUPT, "longer"),
    (Slot(0, ready=True, msg="file", size=8, header=H(-1)), Verdict.CORRUPT, "negative"),
    (Slot(0, ready=True, msg="file", size=8, header=H(1 << 40)), Verdict.CORRUPT, "maximum"),
    (Slot(0, ready=True, msg="link"), Verdict.CORRUPT, "symbolic link"),
    (Slot(0, ready=True, msg="dir"), Verdict.CORRUPT, "directory"),
    (Slot(0, end=True), Verdict.END, ""),
    (Slot(0, end=True, ready=True, msg="file"), Verdict.CORRUPT, "beside"),
    (Slot(0, msg="file", size=13, header=H(5)), Verdict.WAIT, ""),  # no marker yet
])
def test_judge(slot, verdict, words):
    d = judge(slot, max_message=1 << 30)
    assert d.verdict is verdict and words in d.reason
    if verdict is Verdict.DELIVER:
        assert d.length == 5


def test_names_round_trip_and_grow_past_eight_digits():
    assert file_name(7, "msg") == "00000007.msg"
    assert parse_name(file_name(123456789, "ready")) == (123456789, "ready")
    for junk in ("7.msg", ".00000001.msg.tmp", "00000001.msg.syftrejected", "../00000001.msg"):
        assert parse_name(junk) is None


def test_inbox_gap_and_outbox_consumption():
    inbox = Inbox(next_seq=3)
    assert inbox.gap({4: {"msg", "ready"}}) == 4
    assert inbox.gap({3: {"ready"}, 4: {"ready"}}) is None
    assert inbox.gap({}) is None
    out = Outbox()
    for _ in range(3):
        out.allocate()
    assert out.unconsumed({1: {"msg"}, 5: {"msg"}}) == [1]


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden", "a" * 200, "x..y", "é"])
def test_ids_that_could_escape_are_refused(bad):
    with pytest.raises(ValueError):
        check_id(bad, "run id")


# Hostile files: whatever the reader sees on disk, a message is delivered only
# when it is whole, and nothing else is ever delivered.
from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=500, deadline=None)
@given(ready=st.booleans(), end=st.booleans(), kind=st.sampled_from(["file", "link", "dir", "other", None]),
       length=st.integers(-(1 << 62), 1 << 62), size=st.integers(0, 1 << 20), max_message=st.integers(1, 1 << 16))
def test_judge_delivers_only_whole_messages(ready, end, kind, length, size, max_message):
    header = struct.pack("<q", length) if size >= 8 else b"\0" * size
    d = judge(Slot(3, ready, end, kind, size, header), max_message)
    if d.verdict is Verdict.DELIVER:
        assert ready and not end and kind == "file" and 0 <= length <= max_message and size == 8 + length
        assert d.length == length
    if kind in ("link", "dir", "other") and ready and not end:
        assert d.verdict is Verdict.CORRUPT


@pytest.mark.parametrize("field,value", [("run_id", "../escape"), ("run_id", "a/b"),
                                         ("email", "../../etc@x"), ("email", "a/b@c")])
def test_traversal_in_ids_and_emails_is_refused(tmp_path, field, value):
    from syqure_wf.run import config
    from syqure_wf.errors import ConfigError

    raw = {"layout": "syftbox", "syftbox": {"folder": str(tmp_path)}, "run_id": "ok",
           "parties": [{"pid": p, "email": f"p{p}@x.org"} for p in range(2)],
           "engine": {"name": "command", "command": "true"}}
    if field == "run_id":
        raw["run_id"] = value
    else:
        raw["parties"][1]["email"] = value
    with pytest.raises(ConfigError):
        config.check_schema(raw, "c.yaml")
        config.resolve(raw, None, tmp_path)
