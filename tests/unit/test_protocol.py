"""The pure protocol core (syqure_wf/transport/protocol): holes, stalls, dead
writers, drain, resume, start orders and hostile slots, decided from
observations and times given as numbers: no files, no sockets, no sleeping."""
import hashlib
import struct

import pytest

from syqure_wf.errors import PeerFailed
from syqure_wf.transport.protocol import completion, inbound, outbound
from syqure_wf.transport.protocol.completion import ChannelState, Drain, Linger, PeerEnd, Settle
from syqure_wf.transport.protocol.inbound import Arrival, Inbox, WriterProof, writer_known_at_start
from syqure_wf.transport.protocol.judge import WAIT_ABSENT, Decision, Rules, Slot, Verdict, judge
from syqure_wf.transport.protocol.liveness import FAST_BEAT, PeerWatch, SyncWatch, beat_interval
from syqure_wf.transport.protocol.names import decode_marker, encode_marker, split_sizes

H = struct.Struct("<q")
DELIVER = Decision(Verdict.DELIVER, length=5)
INCOMPLETE = Decision(Verdict.WAIT, reason="00000000.msg has 10 of 13 bytes")
BOUND, LOOK = 30.0, 0.25


def arrival(seq=0, known=True):
    return Arrival(seq, Inbox(seq), writer_known=known, look_every=LOOK)


# -- inbound order: holes and stalls
def test_a_hole_stalls_and_fails_after_its_bound_naming_the_missing_file():
    a = arrival()
    assert a.looked(WAIT_ABSENT, 0.0, BOUND, 1.0) == inbound.Wait(1.0)  # the first look lists nothing
    a.waited(False)  # a wait that no event ended: a later slot may be there
    assert isinstance(a.looked(WAIT_ABSENT, 0.0, BOUND, 1.0), inbound.List)
    step = a.listed({1: {"msg", "ready"}}, 0.0, BOUND, 1.0)
    assert step == inbound.Wait(inbound.STALLED_LOOK)  # a stall looks often
    a.waited(False)
    assert isinstance(a.looked(WAIT_ABSENT, 10.0, BOUND, 1.0), inbound.List)
    assert isinstance(a.listed({1: {"msg", "ready"}}, 10.0, BOUND, 1.0), inbound.Wait)
    a.looked(WAIT_ABSENT, 30.5, BOUND, 1.0)
    step = a.listed({1: {"msg", "ready"}}, 30.5, BOUND, 1.0)
    assert isinstance(step, inbound.Stalled) and step.seconds == 30.5
    assert "00000000.msg is missing while message 1 is there" in step.reason


def test_a_hole_that_fills_clears_the_stall():
    a = arrival()
    a.waited(False)
    a.looked(WAIT_ABSENT, 0.0, BOUND, 1.0)
    a.listed({2: {"end"}}, 0.0, BOUND, 1.0)
    a.looked(WAIT_ABSENT, 29.0, BOUND, 1.0)
    assert a.listed({}, 29.0, BOUND, 1.0) == inbound.Wait(1.0)
    assert a.stalled_since is None
    assert a.looked(DELIVER, 100.0, BOUND, 1.0) == inbound.Take(DELIVER)


def test_listing_is_rationed_and_skipped_after_an_event():
    a = arrival()
    a.waited(False)
    assert isinstance(a.looked(WAIT_ABSENT, 0.0, BOUND, 1.0), inbound.List)
    a.listed({}, 0.0, BOUND, 1.0)
    a.waited(True)  # an event woke us, and nothing stalls: a look is enough
    assert a.looked(WAIT_ABSENT, 5.0, BOUND, 1.0) == inbound.Wait(1.0)
    a.waited(False)
    assert a.looked(WAIT_ABSENT, 5.1, BOUND, 1.0) == inbound.List()
    a.listed({}, 5.1, BOUND, 1.0)
    a.waited(False)
    assert a.looked(WAIT_ABSENT, 5.2, BOUND, 1.0) == inbound.Wait(1.0)  # within look_every of the last


def test_an_incomplete_message_stalls_from_its_first_sight():
    a = arrival()
    assert a.looked(INCOMPLETE, 3.0, BOUND, 1.0) == inbound.Wait(inbound.STALLED_LOOK)
    assert isinstance(a.looked(INCOMPLETE, 33.0, BOUND, 1.0), inbound.Wait)
    step = a.looked(INCOMPLETE, 33.5, BOUND, 1.0)
    assert isinstance(step, inbound.Stalled) and "10 of 13 bytes" in step.reason


def test_a_stall_bound_stretched_by_a_slow_sync_holds_longer():
    a = arrival()
    a.looked(INCOMPLETE, 0.0, BOUND, 1.0)
    assert isinstance(a.looked(INCOMPLETE, 200.0, 300.0, 1.0), inbound.Wait)


def test_corrupt_is_fatal_at_once():
    a = arrival()
    assert a.looked(Decision(Verdict.CORRUPT, reason="x"), 0.0, BOUND, 1.0) == inbound.Corrupt("x")


def test_out_of_order_and_already_delivered_slots_are_not_holes_or_deliveries():
    inbox = Inbox(5)
    assert inbox.gap({3: {"msg", "ready"}, 4: {"end"}}) is None  # behind us: never delivered again
    assert inbox.gap({7: {"ready"}, 6: {"msg"}}) == 7  # a .msg without marker is not yet a message
    assert inbox.delivered_before({3: {"msg", "ready"}, 4: {"end"}, 5: {"ready"}}) == [(3, "msg"), (4, "end")]


# -- the writer's proof, and the start orders
def test_a_dead_writers_message_is_never_taken():
    a = arrival(known=False)
    assert a.looked(DELIVER, 0.0, BOUND, 1.0) == inbound.Prove()
    watch, proof = PeerWatch(1, "r"), WriterProof(0.0)
    stale = {"run_id": "r", "state": "running", "heartbeat": 7, "incarnation": "dead"}
    for t in (0.0, 5.0, 10.0):
        watch.observe(stale, t)  # a record that never changes: no running process
        assert proof.observe(watch.writes_as("dead"), t, 10.0) == "wait"
    assert proof.observe(watch.writes_as("dead"), 10.5, 10.0) == "dead"


def test_a_live_writer_is_proven_by_its_moving_heartbeat_then_taken():
    a = arrival(known=False)
    watch, proof = PeerWatch(1, "r"), WriterProof(0.0)
    watch.observe({"run_id": "r", "state": "running", "heartbeat": 1, "incarnation": "w"}, 0.0)
    assert not watch.writes_as("w")
    watch.observe({"run_id": "r", "state": "running", "heartbeat": 2, "incarnation": "w"}, 1.0)
    assert not watch.writes_as("other")  # another process's stamp proves nothing
    assert proof.observe(watch.writes_as("w"), 1.0, 10.0) == "proven"
    a.proven()
    assert a.looked(DELIVER, 1.0, BOUND, 1.0) == inbound.Take(DELIVER)


@pytest.mark.parametrize("start_timeout,synced,inbox_empty,known", [
    (600, False, True, True),  # we started first: whatever comes next is a running writer's
    (600, False, False, False),  # the peer's first message came before us: prove its writer
    (600, True, True, False),  # a sync brings old files any time: always prove
    (0, False, False, True),  # no status records to judge by: refused at start instead
])
def test_start_orders_decide_whether_the_writer_must_be_proven(start_timeout, synced, inbox_empty, known):
    assert writer_known_at_start(start_timeout, synced, inbox_empty) is known


def test_we_beat_fast_while_a_peer_waits_for_our_beat():
    assert beat_interval(1.0, True) == FAST_BEAT and beat_interval(1.0, False) == 1.0


# -- outbound: sequence, resume, consumption

def test_one_publication_order_and_its_restart_for_every_layout():
    """The crash-safety rule: content, count, marker where the reader deletes
    (a restart announces what was counted and not marked); content, marker,
    count where the writer deletes (a restart steps past the marker)."""
    P, C, M = outbound.PLACE, outbound.COUNT, outbound.MARK
    assert outbound.publication(reader_removes=True) == (P, C, M)
    assert outbound.publication(reader_removes=False) == (P, M, C)
    assert outbound.announce(True, 3, placed=True, marked=False)
    assert not outbound.announce(False, 3, placed=True, marked=False)  # its marker was out before the count
    assert not outbound.announce(True, 3, placed=True, marked=True)
    assert not outbound.announce(True, 3, placed=False, marked=False)
    assert not outbound.announce(True, 0, placed=True, marked=False)  # nothing counted yet


def test_resume_continues_the_sequence_never_reusing_a_seq():
    # killed after placing 3 (counted) and writing its marker, and after counting the end 4
    assert outbound.resume_seq({2: {"msg", "ready"}, 3: {"msg", "ready"}}, 3) == 4
    assert outbound.resume_seq({}, 5) == 5  # its marker never made it: a hole the reader reports
    out = outbound.Outbox(outbound.resume_seq({0: {"ready"}}, 0))
    assert out.allocate() == 1 and out.allocate() == 2


def test_consumption_counts_only_this_runs_live_reader_and_never_goes_back():
    rec = {"run": "r", "upto": 4, "reader": "live"}
    assert outbound.consumed_upto(rec, "r", "live", -1) == 4
    assert outbound.consumed_upto(rec, "r", "dead", -1) == -1  # a dead run's record removes nothing
    assert outbound.consumed_upto({**rec, "run": "old"}, "r", "live", -1) == -1
    assert outbound.consumed_upto({**rec, "upto": "4"}, "r", "live", 2) == 2
    assert outbound.consumed_upto({**rec, "upto": 1}, "r", "live", 4) == 4
    present = {3: {"msg", "ready"}, 4: {"msg", "part1", "ready"}, 5: {"end"}, 6: {"msg"}}
    assert outbound.unconsumed(present, 6, 4) == [5]
    assert outbound.reapable(present, 4) == [(3, "msg"), (3, "ready"), (4, "msg"), (4, "part1"), (4, "ready")]
    assert outbound.unconsumed(present, 6) == [3, 4, 5]  # where the reader deletes


# -- completion: two modes
def states(**kw):
    base = dict(name="0-1", peer=1, active=False, pending=False, connections=1, unconsumed=0)
    return [ChannelState(**{**base, **kw})]


def test_linger_is_done_once_the_same_quiet_state_held():
    linger = Linger(2.0)
    assert linger.observe(None, 0.0) == 0.0  # busy: wait for a change
    assert linger.observe((1,), 1.0) == 2.0
    assert linger.observe((2,), 3.0) == 2.0  # a new connection came and went: again
    assert linger.observe((2,), 4.0) == 1.0
    assert linger.observe((2,), 5.0) is None
    assert completion.busy(states(connections=0), need_connections=True)
    assert not completion.busy(states(connections=0), need_connections=False)


def test_drain_fails_a_peer_that_finished_without_consuming():
    drain = Drain(0, exited=0.0)
    peers = {1: PeerEnd(finished=True, consume_patience=3.0, drain_patience=60.0)}
    drain.check(states(unconsumed=2), peers, 1.0)
    drain.check(states(unconsumed=2), peers, 4.0)
    with pytest.raises(PeerFailed, match="party 1 finished without consuming 2 message"):
        drain.check(states(unconsumed=2), peers, 4.5)


def test_drain_waits_for_a_running_peer_up_to_its_bound():
    drain = Drain(0, exited=0.0)
    peers = {1: PeerEnd(finished=False, consume_patience=3.0, drain_patience=60.0)}
    drain.check(states(unconsumed=2), peers, 59.0)
    with pytest.raises(PeerFailed, match=r"party 0 exited but channel\(s\) 0-1 did not drain within 60 s"):
        drain.check(states(unconsumed=2), peers, 61.0)


def test_a_consumption_record_late_behind_the_status_resets_the_clock():
    drain = Drain(0, exited=0.0)
    done = {1: PeerEnd(True, 3.0, 60.0)}
    drain.check(states(unconsumed=1), done, 1.0)
    drain.check(states(unconsumed=0), done, 2.0)  # it came
    drain.check(states(unconsumed=1), done, 4.5)  # counted afresh
    drain.check(states(unconsumed=1), done, 7.0)


def test_settle_waits_for_empty_outboxes_within_a_bound():
    settle = Settle(0.0, quiet_for=2.5, bound=10.0)
    assert not settle.observe(True, 1.0)
    assert not settle.observe(False, 2.0)  # a sync brought a file back
    assert not settle.observe(True, 4.0)
    assert settle.observe(True, 4.5)
    assert Settle(0.0).observe(False, 10.0)  # never quiet: the bound ends it


# -- liveness of this site's sync
def test_the_peer_clock_stands_still_while_the_sync_is_down():
    sync = SyncWatch(0.0)
    assert sync.observe("client not answering", 10.0, 1000.0) == "down"
    assert sync.clock(70.0) == 10.0
    assert sync.observe(None, 70.0, 1060.0) == "up"
    assert sync.clock(75.0) == 15.0


# -- the one judge: self-checking (syftbox) slots
RULES = Rules(max_message=1 << 20, run_id="r", max_file=16, writer="w")


def marked(payload: bytes, run="r", writer="w", **marker):
    body = H.pack(len(payload)) + payload
    record = decode_marker(encode_marker(run, len(payload), len(split_sizes(len(body), 16)),
                                         hashlib.sha256(body).hexdigest(), writer))
    record.update(marker)
    return Slot(7, ready=True, marked=True, record=record, where="/in"), body


def fetched(slot, body, sizes):
    parts, at = [], 0
    for size in sizes:
        parts.append(len(body[at:at + size]))
        at += size
    return Slot(**{**slot.__dict__, "parts": tuple(parts), "content": body})


def test_a_marked_message_is_fetched_then_delivered():
    slot, body = marked(b"x" * 20)
    d = judge(slot, rules=RULES)
    assert d.verdict is Verdict.FETCH and d.sizes == (16, 12)
    d = judge(fetched(slot, body, d.sizes), rules=RULES)
    assert d.verdict is Verdict.DELIVER and d.length == 20


@pytest.mark.parametrize("change,verdict,words", [
    (dict(run="old"), Verdict.CORRUPT, "belongs to run 'old'"),
    (dict(writer="earlier"), Verdict.WAIT, "earlier writer's"),  # a duplicate synced again
    (dict(length=1 << 21), Verdict.CORRUPT, "claims 2097152 bytes"),
    (dict(length=-1), Verdict.CORRUPT, "claims -1 bytes"),
    (dict(parts=5), Verdict.CORRUPT, "claims 5 files"),
    (dict(parts="many"), Verdict.CORRUPT, "without numbers"),
])
def test_marked_slots_the_judge_refuses_before_reading(change, verdict, words):
    run, writer = change.pop("run", "r"), change.pop("writer", "w")
    slot, _ = marked(b"x" * 20, run, writer, **change)
    d = judge(slot, rules=RULES)
    assert d.verdict is verdict and words in d.reason


def test_marked_content_that_does_not_match_is_never_delivered():
    slot, body = marked(b"x" * 20)
    sizes = (16, 12)
    short = Slot(**{**fetched(slot, body, sizes).__dict__, "parts": (16, -1)})
    assert "00000007.part1 is not all there yet" in judge(short, rules=RULES).reason
    long = Slot(**{**fetched(slot, body, sizes).__dict__, "parts": (17,)})
    assert "longer than its marker" in judge(long, rules=RULES).reason
    flipped = Slot(**{**fetched(slot, body, sizes).__dict__, "content": body[:-1] + b"y"})
    assert judge(flipped, rules=RULES).reason == "message 7 does not match its digest"
    # a whole, digest-true file whose header lies about its length
    liar = H.pack(19) + b"x" * 20
    slot = Slot(7, ready=True, marked=True, where="/in", record={"run": "r", "writer": "w", "length": 20,
                                                                  "parts": 2, "sha256": hashlib.sha256(liar).hexdigest()})
    d = judge(Slot(**{**slot.__dict__, "parts": (16, 12), "content": liar}), rules=RULES)
    assert d.verdict is Verdict.CORRUPT and "header says 19" in d.reason


def test_marked_end_and_arriving_markers():
    end = Slot(3, end=True, marked=True, record={"run": "r", "writer": "w"})
    assert judge(end, rules=RULES).verdict is Verdict.END
    assert judge(Slot(3, end=True, marked=True), rules=RULES).reason == "end marker still arriving"
    assert judge(Slot(3, ready=True, marked=True), rules=RULES).reason == "marker 3 still arriving"
    assert judge(Slot(3, marked=True), rules=RULES) is WAIT_ABSENT
    other = Slot(3, end=True, marked=True, record={"run": "x", "writer": "w"})
    assert judge(other, rules=RULES).verdict is Verdict.CORRUPT


def test_plain_slots_keep_their_rules_under_the_one_judge():
    assert judge(Slot(0, end=True, msg="file"), 1 << 20).verdict is Verdict.CORRUPT  # end beside a message
    assert judge(Slot(0, ready=True, msg="file", size=13, header=H.pack(5)), 1 << 20).verdict is Verdict.DELIVER


# -- the one reader of peer files: no file a peer writes stops a reader

DEEP = b"[" * 200_000 + b"]" * 200_000


def test_json_nested_too_deep_is_named_never_raised():
    from syqure_wf.files.peer_json import ARRIVING, json_of, mapping_of

    assert json_of(DEEP) == (None, "nested too deep")
    assert json_of(b'{"a": 1') == (None, ARRIVING) and json_of(b"") == (None, ARRIVING)
    assert json_of(b"\xff\xfe") == (None, ARRIVING)
    assert mapping_of(b"[1]") is None and mapping_of(b'{"a": 1}') == {"a": 1}


def test_a_peers_nested_marker_record_or_status_is_no_record(tmp_path):
    from syqure_wf.transport.protocol.names import decode_marker, decode_record
    from syqure_wf.transport.status import read_status, status_path

    assert decode_marker(DEEP) is None and decode_record(DEEP) is None
    status_path(tmp_path, 1).write_bytes(DEEP)
    assert read_status(tmp_path, 1) is None


def test_a_nested_contribution_or_did_document_is_refused_naming_it():
    from syqure_wf.keys import handshake, sitekey

    for parse, args in ((handshake.parse, ()), (sitekey.parse_did, ("a@b.org",))):
        with pytest.raises(sitekey.Refused, match="nested too deep"):
            parse(b"{\"x\": " + b"[" * 5_000 + b"]" * 5_000 + b"}", *args)
