"""The proxy as one session (transport/protocol/session.py): observations
in, commands out, times as numbers. No files, no sockets, no sleeping: each
test walks the session the way its interpreter does."""
from hypothesis import given, settings
from hypothesis import strategies as st

from syqure_wf.errors import CorruptMessage, PeerFailed
from syqure_wf.transport.protocol import events as ev
from syqure_wf.transport.protocol.inbound import STALLED_LOOK
from syqure_wf.transport.protocol.judge import WAIT_ABSENT, Decision, Verdict
from syqure_wf.transport.protocol.liveness import FAST_BEAT
from syqure_wf.transport.protocol.session import WRITER_POLL, PartySession
from syqure_wf.transport.settings import ProxySettings
from syqure_wf.transport.watch import Wakeups

WHOLE = Decision(Verdict.DELIVER, length=5)
END = Decision(Verdict.END)
INCOMPLETE = Decision(Verdict.WAIT, reason="00000000.msg has 10 of 13 bytes")


def session(parties=2, *, start_timeout=600.0, run_id="r", layout_syncs=False, sealing=None, **kw):
    s = ProxySettings(pid=0, parties=parties, data_dir="/nowhere", base_port=1, party_base_port=1,
                      run_id=run_id, start_timeout=start_timeout, **kw)
    if sealing:
        s.secret = b"k" * 32
    ses = PartySession(s, 0.0, synced=layout_syncs, reused=False, settles=layout_syncs,
                       wheres={p: f"/data/{p}_to_0" for p in range(1, parties)},
                       wakeups=Wakeups("/data", "ext4", misses=1))
    for p in range(1, parties):
        ses.handle(ev.Opened(p, inbox_empty=True, keyed=True), 0.0)
    return ses


def record(heartbeat, state="running", inc="A", **kw):
    return {"run_id": "r", "incarnation": inc, "heartbeat": heartbeat, "state": state, **kw}


# -- a message comes in
def test_a_whole_message_from_a_known_writer_is_delivered_at_the_first_look():
    ses = session()
    assert ses.handle(ev.Next(1), 0.0) == [ev.Look(1, 0)]
    assert ses.handle(ev.Looked(1, WHOLE, 0), 0.0) == [ev.Deliver(1, 0)]


def test_nothing_is_delivered_before_the_writer_is_seen_running():
    ses = session()
    ses.handle(ev.Opened(1, inbox_empty=False, keyed=True), 0.0)  # something was there before us
    ses.handle(ev.Next(1), 0.0)
    assert ses.handle(ev.Looked(1, WHOLE, 0), 0.0) == [ev.ReadWriter(1, 0.0)]
    # the first reading of a record proves nothing: it may be a dead run's
    assert ses.handle(ev.WriterRead(1, record(1), "A"), 0.1) == [ev.ReadWriter(1, WRITER_POLL)]
    assert ses.handle(ev.WriterRead(1, record(2), "A"), 0.2) == [ev.TrustWriter(1, "A"), ev.Look(1, 0)]
    assert ses.handle(ev.Looked(1, WHOLE, 0), 0.2) == [ev.Deliver(1, 0)]
    # proven once: the next message is not proven again
    ses.handle(ev.Delivered(1, 5, end=False, dropped=False), 0.3)
    ses.handle(ev.Next(1), 0.3)
    assert ses.handle(ev.Looked(1, WHOLE, 0), 0.3) == [ev.Deliver(1, 1)]


def test_a_dead_writer_fails_the_run_naming_what_it_left():
    ses = session(peer_timeout=5.0)
    ses.handle(ev.Opened(1, inbox_empty=False, keyed=True), 0.0)
    ses.handle(ev.Next(1), 0.0)
    ses.handle(ev.Looked(1, WHOLE, 0), 0.0)
    # the peer runs, as incarnation B; the messages are stamped by another, not running
    assert ses.handle(ev.WriterRead(1, record(1, inc="B"), "old"), 0.0) == [ev.ReadWriter(1, WRITER_POLL)]
    assert ses.handle(ev.WriterRead(1, record(2, inc="B"), "old"), 3.0) == [ev.ReadWriter(1, WRITER_POLL)]
    assert ses.handle(ev.WriterRead(1, record(3, inc="B"), "old"), 6.0) == [ev.List(1)]
    [fail] = ses.handle(ev.Listed(1, {0: {"msg", "ready"}}), 6.0)
    assert type(fail) is ev.Fail and "whose writer is not running" in str(fail.error)
    assert "/data/1_to_0 holds 1 message(s) (from seq 0)" in str(fail.error)


def test_a_failed_peer_fails_the_wait_for_its_writer():
    ses = session()
    ses.handle(ev.Opened(1, inbox_empty=False, keyed=True), 0.0)
    ses.handle(ev.Next(1), 0.0)
    ses.handle(ev.Looked(1, WHOLE, 0), 0.0)
    ses.handle(ev.WriterRead(1, record(1), "A"), 0.0)
    [fail] = ses.handle(ev.WriterRead(1, record(2, state="failed", reason="boom"), "A"), 0.1)
    assert isinstance(fail.error, PeerFailed) and "party 1 failed: boom" in str(fail.error)


def test_a_hole_stalls_and_fails_after_its_bound():
    ses = session(stall_timeout=30.0)
    ses.handle(ev.Next(1), 0.0)
    assert ses.handle(ev.Looked(1, WAIT_ABSENT, 0), 0.0) == [ev.Wait(1, 0.25)]
    assert ses.handle(ev.Woken(1, by_event=False), 0.3) == [ev.Look(1, 0)]
    assert ses.handle(ev.Looked(1, WAIT_ABSENT, 0), 0.3) == [ev.List(1)]
    assert ses.handle(ev.Listed(1, {1: {"msg", "ready"}}), 0.3) == [ev.Wait(1, STALLED_LOOK)]
    ses.handle(ev.Woken(1, by_event=False), 31.0)
    assert ses.handle(ev.Looked(1, WAIT_ABSENT, 0), 31.0) == [ev.List(1)]
    [fail] = ses.handle(ev.Listed(1, {1: {"msg", "ready"}}), 31.0)
    assert isinstance(fail.error, CorruptMessage)
    assert str(fail.error).startswith("channel 0-1: /data/1_to_0: 00000000.msg is missing while message 1")


def test_the_stall_bound_stands_still_while_the_sync_is_down():
    ses = session(stall_timeout=30.0)
    ses.handle(ev.Next(1), 0.0)
    assert ses.handle(ev.Looked(1, INCOMPLETE, 0), 0.0) == [ev.Wait(1, STALLED_LOOK)]
    ses.sync.observe("server unreachable", 10.0, 10.0)
    ses.sync.observe(None, 1000.0, 1000.0)  # 990 s down: no peer could write then
    ses.handle(ev.Woken(1, by_event=False), 1015.0)
    assert ses.handle(ev.Looked(1, INCOMPLETE, 0), 1015.0) == [ev.Wait(1, STALLED_LOOK)]
    ses.handle(ev.Woken(1, by_event=False), 1021.0)
    [fail] = ses.handle(ev.Looked(1, INCOMPLETE, 0), 1021.0)
    assert "has 10 of 13 bytes for 31.0 s" in str(fail.error)


# -- the wake-up decision
def test_an_arrival_no_event_announced_turns_the_proxy_to_polling_once():
    ses = session()
    ses.handle(ev.Next(1), 0.0)
    assert ses.handle(ev.Looked(1, WAIT_ABSENT, 7), 0.0) == [ev.Wait(1, 0.25)]
    ses.handle(ev.Woken(1, by_event=False), 0.25)
    # found, and the wake-up count did not move: queued events are read first
    assert ses.handle(ev.Looked(1, WHOLE, 7), 0.25) == [ev.Flush(1)]
    note, deliver = ses.handle(ev.Flushed(1, 7), 0.25)
    assert type(note) is ev.Note and "polling" in note.text and deliver == ev.Deliver(1, 0)
    assert ses.wakeups.polling


def test_an_announced_arrival_keeps_the_proxy_on_events():
    ses = session()
    ses.handle(ev.Next(1), 0.0)
    ses.handle(ev.Looked(1, WAIT_ABSENT, 7), 0.0)
    ses.handle(ev.Woken(1, by_event=True), 0.1)
    assert ses.handle(ev.Looked(1, WHOLE, 8), 0.1) == [ev.Deliver(1, 0)]
    ses.handle(ev.Delivered(1, 5, end=False, dropped=False), 0.1)
    ses.handle(ev.Next(1), 0.1)
    ses.handle(ev.Looked(1, WAIT_ABSENT, 8), 0.1)
    assert ses.handle(ev.Looked(1, WHOLE, 8), 0.2) == [ev.Flush(1)]
    assert ses.handle(ev.Flushed(1, 9), 0.2) == [ev.Deliver(1, 1)]  # the event was queued, not missing
    assert not ses.wakeups.polling


# -- delivered: progress before the files go, in seq order
@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1 << 20), st.booleans(), st.booleans()), max_size=30))
def test_delivery_is_counted_in_seq_order_and_recorded_before_it_is_consumed(steps):
    ses = session()
    ses.progress = True
    ses.peers[1].inbox.next_seq = 0
    for seq, (length, end, dropped) in enumerate(steps):
        commands = ses.handle(ev.Delivered(1, length, end, dropped), 0.0)
        assert commands[:2] == [ev.RecordReceived(1, seq + 1), ev.Consume(1, seq, "end" if end else "msg")]
        assert commands[2:] == ([ev.HalfClose(1)] if end else [])
    inbox = ses.peers[1].inbox
    assert inbox.next_seq == len(steps)
    assert inbox.delivered == sum(not end for _, end, _ in steps)
    assert inbox.bytes == sum(length for length, end, _ in steps if not end)
    assert ses.peers[1].dropped == sum(dropped for _, _, dropped in steps)


# -- heartbeats and peers' records
def test_a_beat_reads_every_peer_and_rests_fast_while_our_first_message_is_unread():
    ses = session(parties=3, heartbeat=1.0)
    assert ses.handle(ev.Tick(), 0.0) == [ev.Beat({"1": 0.0, "2": 0.0}), ev.ReadPeers()]
    assert ses.handle(ev.PeerRecords({1: record(1), 2: record(1)}), 0.0)[-1] == ev.Rest(1.0)
    ses.peers[2].outbox.allocate()  # a first message out
    assert ses.handle(ev.PeerRecords({1: record(2), 2: record(2)}), 0.5)[-1] == ev.LookFirst((2,))
    assert ses.handle(ev.FirstLooked({2: False}), 0.5) == [ev.Rest(FAST_BEAT)]
    assert ses.handle(ev.FirstLooked({2: True}), 0.6) == [ev.Rest(1.0)]


def test_a_live_peer_is_trusted_as_reader_and_must_seal_alike():
    ses = session(sealing=True)
    ses.handle(ev.PeerRecords({1: record(1, sealing="secret")}), 0.0)
    commands = ses.handle(ev.PeerRecords({1: record(2, sealing="off")}), 0.5)
    assert commands[0] == ev.TrustReader(1, "A")
    assert "party 1 seals its messages with off, this party with secret" in str(commands[1].error)


def test_a_peer_never_seen_is_checked_for_another_file_protocol_then_fails_its_start():
    ses = session(start_timeout=10.0)
    assert ses.handle(ev.PeerRecords({1: None}), 1.0)[0] == ev.CheckNative(1)
    commands = ses.handle(ev.PeerRecords({1: None}), 11.0)
    assert commands[0] == ev.CheckNative(1) and "party 1 never started" in str(commands[1].error)


def test_the_party_runner_asks_the_session_whether_a_peer_failed():
    ses = session()
    assert ses.peer_failure(1, record(1, state="failed", reason="x"), 0.0) == "party 1 failed: x"
    ses = session(run_id=None)  # no run id: a first record may be a dead run's
    assert ses.peer_failure(1, record(1, state="failed"), 0.0) is None


# -- the handshake
def test_a_channel_is_released_once_its_peers_key_is_verified_and_beats_fast_until():
    ses = session(parties=3, heartbeat=1.0)
    assert [type(c) for c in ses.handle(ev.KeysPending({1: None, 2: None}), 0.0)] == [ev.PollKey, ev.PollKey]
    assert ses.handle(ev.PeerRecords({1: record(1), 2: record(1)}), 0.0)[-1] == ev.Rest(FAST_BEAT)
    assert ses.handle(ev.KeyVerified(2), 0.1) == [ev.Unhold(2)]
    assert ses.peers[2].keyed and ses.keys_pending == {1}
    ses.handle(ev.KeyVerified(1), 0.2)
    assert ses.handle(ev.PeerRecords({1: record(2), 2: record(2)}), 0.5)[-1] == ev.Rest(1.0)


def test_a_peer_not_keyed_at_the_start_gets_fast_beats_from_the_first_beat():
    # the first beat comes before the handshake's first poll: a peer whose key is pending must
    # see our heartbeat move at once, as it must before it takes our contribution
    ses = session(heartbeat=1.0)
    ses.handle(ev.Opened(1, inbox_empty=True, keyed=False), 0.0)
    ses.handle(ev.Tick(), 0.0)
    assert ses.handle(ev.PeerRecords({1: record(1)}), 0.0)[-1] == ev.Rest(FAST_BEAT)
    ses.handle(ev.KeyVerified(1), 0.1)
    assert ses.handle(ev.PeerRecords({1: record(2)}), 0.5)[-1] == ev.Rest(1.0)


# -- the end
def quiet(ses, *, active=False, pending=False, connections=1):
    from syqure_wf.transport.protocol.completion import ChannelState

    return ev.Surveyed(tuple(ChannelState(ses.peers[p].name, p, active, pending, connections) for p in ses.peers))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["quiet", "busy", "unconsumed"]), max_size=12),
       st.sampled_from([0.25, 0.5, 2.0, 8.0]))  # binary fractions: no float dust in the test's sums
def test_lingering_is_done_only_after_a_quiet_state_held_for_the_linger(rounds, linger):
    ses = session(linger=linger)
    assert ses.handle(ev.Lingering(), 0.0) == [ev.Survey()]
    now, quiet_since, watched = 0.0, None, False
    for kind in rounds + ["quiet"] * 3:
        now += linger / 2
        commands = ses.handle(quiet(ses, active=kind == "busy"), now)
        if kind == "busy":
            assert commands == [ev.Idle(ses.rescan()), ev.Survey()]
            quiet_since = None
            continue
        assert commands == [ev.Count()]
        commands = ses.handle(ev.Counted({1: int(kind == "unconsumed")}), now)
        if kind == "unconsumed":
            # the first time, the watch is set and the count made again at once (a removal before the
            # watch raised no event); after that, the next survey waits for a change
            assert commands == ([ev.Idle(ses.rescan())] if watched else [ev.WatchConsumption()]) + [ev.Survey()]
            quiet_since, watched = None, True
            continue
        quiet_since = now if quiet_since is None else quiet_since
        if now - quiet_since >= linger:
            assert commands == [ev.Done()]
            return
        assert commands[-1] == ev.Survey() and type(commands[0]) is ev.Sleep
    raise AssertionError("never done")


def test_a_drain_fails_when_a_finished_peer_left_our_messages_unconsumed():
    ses = session(heartbeat=1.0)
    ses.handle(ev.PeerRecords({1: record(1)}), 0.0)
    ses.handle(ev.PeerRecords({1: record(2, state="done")}), 0.5)
    assert ses.handle(ev.PartyExited(), 1.0) == [ev.Survey()]
    assert ses.handle(quiet(ses), 1.0) == [ev.Count()]
    assert ses.handle(ev.Counted({1: 2}), 1.0)[-1] == ev.Survey()
    ses.handle(quiet(ses), 5.0)
    [fail] = ses.handle(ev.Counted({1: 2}), 5.0)
    assert "party 1 finished without consuming 2 message(s) of channel 0-1" in str(fail.error)


def test_a_drain_counts_again_at_once_when_it_starts_watching_consumption():
    # a peer's removal between the count and the watch raises no event: waiting for one then
    # took the rescan's pace (1 s) at the end of a run
    ses = session(heartbeat=1.0)
    ses.handle(ev.PartyExited(), 0.0)
    ses.handle(quiet(ses), 0.0)
    assert ses.handle(ev.Counted({1: 1}), 0.0) == [ev.WatchConsumption(), ev.Survey()]
    ses.handle(quiet(ses), 0.0)
    assert ses.handle(ev.Counted({1: 1}), 0.0) == [ev.Idle(ses.rescan()), ev.Survey()]


def test_a_drained_run_over_a_sync_settles_until_the_outboxes_stay_empty():
    ses = session(layout_syncs=True)
    ses.handle(ev.PartyExited(), 0.0)
    ses.handle(quiet(ses), 0.0)
    assert ses.handle(ev.Counted({1: 0}), 0.0) == [ev.Tidy(0.0)]
    assert ses.handle(ev.Tidied(False), 1.0) == [ev.Tidy(0.25)]  # a sync brought a file back
    assert ses.handle(ev.Tidied(True), 2.0) == [ev.Tidy(0.25)]
    assert ses.handle(ev.Tidied(True), 3.6) == [ev.Done()]


# -- a message goes out: each seq once, in order, recorded before its marker
@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 1 << 20), st.none()), max_size=30), st.integers(0, 3))
def test_outbound_seqs_are_allocated_once_in_order_and_recorded_before_the_marker(stream, resumed_at):
    ses = session()
    ses.handle(ev.Resumed(1, resumed_at, 0), 0.0)
    seq = resumed_at
    for length in stream:  # a message of ``length`` bytes, or the end of a connection (None)
        if length is None:
            assert ses.handle(ev.Closed(1), 0.0) == [ev.RecordSent(1, seq + 1), ev.WriteEnd(1, seq)]
        else:
            began = ses.handle(ev.Began(1, length), 0.0)
            assert began == ([ev.BeatSoon()] if seq == 0 else []) + [ev.Open(1, seq, length)]
            assert ses.handle(ev.Framed(1), 0.0) == [ev.Commit(1, seq + 1)]
        seq += 1
    out = ses.peers[1].outbox
    assert out.next_seq == seq
    assert out.sent == sum(length is not None for length in stream)
    assert out.bytes == sum(length for length in stream if length is not None)


def test_an_end_marker_is_published_in_its_layouts_order():
    # outbound.publication: counted before the marker where the reader removes (shared); marked
    # before the count where only the writer removes (syftbox: a restart resumes past the marker,
    # where a count first and a kill before the marker would leave a hole the peer stalls on)
    for reader_removes, order in ((True, [ev.RecordSent(1, 1), ev.WriteEnd(1, 0)]),
                                  (False, [ev.WriteEnd(1, 0), ev.RecordSent(1, 1)])):
        ses = PartySession(ProxySettings(pid=0, parties=2, data_dir="/nowhere", base_port=1, party_base_port=1),
                           0.0, synced=False, reused=False, wheres={1: "/data/1_to_0"}, reader_removes=reader_removes)
        assert ses.handle(ev.Closed(1), 0.0) == order


# -- this site's sync
def test_a_sync_down_stops_the_peer_clock_is_said_once_each_way_and_fails_after_its_bound():
    ses = session(sync_timeout=100.0)
    assert ses.handle(ev.SyncVerdict(None, 1000.0), 1.0) == []
    [down] = ses.handle(ev.SyncVerdict("server unreachable", 1010.0), 10.0)
    assert down.change == "down" and down.record["state"] == "down" and down.record["since"] == 1010.0
    assert ses.handle(ev.SyncVerdict("server unreachable", 1060.0), 60.0) == []  # said once
    assert ses.clock(60.0) == 10.0  # the peer clock stood still
    [up] = ses.handle(ev.SyncVerdict(None, 1070.0), 70.0)
    assert up == ev.SyncChanged("up", {"state": "up"}, 60.0)
    ses.handle(ev.SyncVerdict("client not answering", 1100.0), 100.0)
    assert ses.handle(ev.SyncVerdict("client not answering", 1200.0), 200.0) == []
    assert ses.handle(ev.SyncVerdict("client not answering", 1201.0), 201.0) == [
        ev.SyncLost("client not answering", 1100.0, 100.0)]
