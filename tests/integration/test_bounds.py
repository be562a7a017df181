"""What a peer sends is data, bounded (issue 33): every number a peer's
JSON holds is finite, a site's policy bounds the message size, and the
agent's memory and files of runs do not grow with a peer's folders. The
pickles an MPyC party takes are in test_unpickle_bounds.py."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from conftest import wait_until
from syqure_wf.sites import lifecycle as lc
from syqure_wf.sites.manifest import ManifestError, encode, from_config, parse
from syqure_wf.sites.policy import Policy, decide
from syqure_wf.files import peer_json as records
from syqure_wf.transport.protocol.liveness import PeerWatch

EMAILS = ["a@x.org", "b@y.org", "c@z.org"]


@pytest.fixture
def program(tmp_path):
    (tmp_path / "main.py").write_text("print(1)\n")
    return tmp_path / "main.py"


def manifest(program, **raw) -> dict:
    config = {"engine": {"name": "mpyc", "program": program.name}, **raw}
    return from_config(config, "run.yaml", program.parent, EMAILS, EMAILS[0], 3600, now=1000.0)


# -- every number is finite

@pytest.mark.parametrize("text", ['{"heartbeat": NaN}', '{"expires": Infinity}', '[-Infinity]',
                                  '{"expires": 1e999}', '{"a": [1, {"b": -1e400}]}'])
def test_the_one_reader_refuses_numbers_that_are_not_finite(text):
    assert records.json_of(text) == (None, records.NOT_FINITE)
    assert records.json_of(text.encode()) == (None, records.NOT_FINITE)
    assert records.mapping_of(text) is None
    assert records.json_of('{"heartbeat": 1.5e3, "n": 7}') == ({"heartbeat": 1500.0, "n": 7}, "")
    assert not records.finite(10 ** 400) and not records.finite(True) and records.finite(-2.5)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999", str(10 ** 400), '"nan"'])
def test_a_manifest_whose_expiry_is_no_time_is_refused_not_arriving(program, value):
    data = encode(manifest(program)).replace(b'"expires": 4600.0', b'"expires": ' + value.encode())
    assert data != encode(manifest(program))
    with pytest.raises(ManifestError) as caught:
        parse(data)
    assert caught.value.code != "incomplete"  # refused at once, not waited for


def nan_manifests(agent, program, count: int) -> None:
    """``count`` manifests from EMAILS[1] to every site, each expiring at NaN."""
    for i in range(count):
        m = manifest(program)
        m.update(run_id=f"nan-{i}", submitter=EMAILS[1], expires=math.nan)
        path = agent.board.manifest_path(EMAILS[1], f"nan-{i}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(m))  # json.dumps writes NaN


def test_manifests_that_never_expire_fill_no_live_run_slots(tmp_path, program):
    """Twenty runs that never expire filled a submitter's slots until an
    operator rejected each one; each is refused now, and the next run from
    the same submitter finds room."""
    from syqure_wf.sites.agent import Agent
    from syqure_wf.sites.intake import MAX_LIVE_PER_SUBMITTER

    for site in EMAILS:
        (tmp_path / "datasites" / site / "app_data" / "syqure").mkdir(parents=True)
    policy = tmp_path / "policy.yaml"
    policy.write_text("submitters: ['*']\n")
    agent = Agent(tmp_path, EMAILS[2], policy, say=lambda line: None)
    nan_manifests(agent, program, MAX_LIVE_PER_SUBMITTER + 2)
    agent.reconcile()
    # refused (an audit line each), never held: a NaN is no JSON a reader takes, not even for its parties
    assert all(r.state in lc.ENDED for r in agent.runs.values()), {r.state for r in agent.runs.values()}
    refused = [json.loads(line) for line in agent.board.audit_path.read_text().splitlines()]
    assert sum(1 for e in refused if records.NOT_FINITE in e.get("reason", "")) == MAX_LIVE_PER_SUBMITTER + 2
    assert agent.intake.room(EMAILS[1], 1000, agent.runs) is None


def test_a_peer_state_whose_heartbeat_is_nan_is_refused_and_its_silence_still_counts(tmp_path):
    from syqure_wf.sites.board import Board

    (tmp_path / "datasites").mkdir()
    board = Board(tmp_path, EMAILS[0])
    path = board.state_path(EMAILS[1], EMAILS[0], "r1")
    path.parent.mkdir(parents=True)
    from syqure_wf.sites.signature import sign
    from syqure_wf.keys.sitekey import load_or_create

    key = load_or_create(tmp_path, EMAILS[1])  # a state is its site's signed word: the NaN is inside the signature
    good = {"site": EMAILS[1], "run_id": "r1", "submitter": EMAILS[0], "state": lc.RUNNING, "heartbeat": 1000.0,
            "expires": 5000.0}
    path.write_bytes(sign(key, "state", json.dumps(good).encode()))
    assert board.state_of(EMAILS[1], EMAILS[0], "r1")["heartbeat"] == 1000.0
    for heartbeat in (math.nan, math.inf):
        path.write_bytes(sign(key, "state", json.dumps({**good, "heartbeat": heartbeat}).encode()))
        assert board.state_of(EMAILS[1], EMAILS[0], "r1") is None
    with pytest.raises(ValueError):  # a record parsed elsewhere: the same rule
        lc.peer_record({**good, "heartbeat": 10 ** 400}, EMAILS[1], EMAILS[0], "r1")
    # a heartbeat far in the future would never go stale either
    far = {s: {**good, "heartbeat": 1e300} for s in EMAILS}
    assert lc.outcome(far, 5000.0, 1001.0)[0] == "failed"
    assert lc.outcome({s: good for s in EMAILS}, 5000.0, 1001.0)[0] == "waiting"


def test_a_party_status_whose_heartbeat_is_nan_never_proves_the_peer_alive(tmp_path):
    """NaN != NaN: a NaN heartbeat count looked like one that moves on every
    reading, so a dead peer stayed live for ever. The status reader refuses
    it, and the peer's silence fails it after the bound."""
    from syqure_wf.transport.status import read_status

    folder = tmp_path / "status"
    folder.mkdir()
    watch = PeerWatch(pid=1, run_id="r1", started=0.0)
    record = {"pid": 1, "run_id": "r1", "state": "running", "incarnation": "i1", "heartbeat": 3}
    (folder / "party-1.json").write_text(json.dumps(record))
    watch.observe(read_status(folder, 1), 1.0)
    (folder / "party-1.json").write_text(json.dumps({**record, "heartbeat": math.nan}))
    for now in range(2, 20):
        watch.observe(read_status(folder, 1), float(now))
    with pytest.raises(Exception, match="no heartbeat"):
        watch.check(20.0, 0.0, 600.0, 5.0)


# -- bounds a site sets

def test_a_sites_max_message_refuses_a_larger_one_and_bounds_its_party(program, tmp_path):
    from syqure_wf.sites.partyconfig import party_config
    from syqure_wf.sites.policy import load

    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("submitters: ['*']\nmax_message: 1048576\nmemory: 3G\n")
    policy = load(policy_file)
    assert policy.max_message == 1 << 20 and policy.memory == 3 << 30
    big = parse(encode(manifest(program, max_message=1 << 30)))
    d = decide(big, Policy(submitters=["*"], max_message=1 << 20), EMAILS[1], 1001.0)
    assert d.state == lc.REJECTED and d.code == "limit" and "max_message" in d.reason
    small = parse(encode(manifest(program)))
    raw = party_config(small, 1, tmp_path, tmp_path, None, tmp_path / "w", policy)
    assert raw["max_message"] == 1 << 20  # unset by the submitter: the site's bound, not the transport's 1 GiB
    assert raw["memory"] == 3 << 30  # each of its parties' memory limit
    assert Policy().max_message < 1 << 30


# -- the smaller items

@pytest.mark.skipif(os.getuid() != 0, reason="another local user's process needs root to start")
def test_the_sync_probe_trusts_no_other_users_process_or_file(tmp_path, monkeypatch, procs):
    """Another local user runs a 'syftbox -c CONFIG' process whose
    configuration names this site's folder: the probe would have watched
    its client (and held the run's bounds still while it 'was down')."""
    from syqure_wf.files.syftbox_client import find_client

    folder = tmp_path / "SyftBox"
    folder.mkdir()
    config = tmp_path / "theirs.json"
    config.write_text(json.dumps({"data_dir": str(folder), "email": "m@evil.org", "client_url": "http://127.0.0.1:9"}))
    os.chown(config, 65534, 65534)
    monkeypatch.delenv("SYFTBOX_CLIENT_CONFIG_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.syftbox of ours
    theirs = procs.start(["/bin/sh", "-c", "sleep 60; true  # syftbox", "syftbox", "-c", str(config)],
                         user=65534, group=65534, cwd="/")
    wait_until(lambda: "syftbox" in Path(f"/proc/{theirs.pid}/cmdline").read_text(), 10, "their process")
    assert find_client(folder) is None
    monkeypatch.setenv("SYFTBOX_CLIENT_CONFIG_PATH", str(config))  # named, but still not ours
    assert find_client(folder) is None
    os.chown(config, os.getuid(), os.getgid())
    assert find_client(folder).email == "m@evil.org"  # the same file, ours: taken


def test_a_slot_that_never_matches_its_digest_fails_the_run_after_a_few_reads():
    """A peer's marker whose digest no content matches made the reader read
    and hash the whole message on every look (every 0.2 s) until the stall
    bound (minutes over SyftBox). After DIGEST_TRIES whole reads: corrupt."""
    import hashlib
    import struct

    from syqure_wf.transport.protocol import inbound
    from syqure_wf.transport.protocol.judge import Rules, Slot, Verdict, judge
    from syqure_wf.transport.protocol.names import decode_marker, encode_marker

    body = struct.pack("<q", 20) + b"x" * 20
    record = decode_marker(encode_marker("r", 20, 1, hashlib.sha256(b"not this").hexdigest(), "w"))
    slot = Slot(7, ready=True, marked=True, record=record, where="/in", parts=(len(body),), content=body)
    d = judge(slot, rules=Rules(max_message=1 << 20, run_id="r", max_file=1 << 10, writer="w"))
    assert d.verdict is Verdict.WAIT and d.mismatch
    arrival = inbound.Arrival(7, inbound.Inbox(7), writer_known=True, look_every=0.25)
    steps = [arrival.looked(d, float(t), 300.0, 0.2) for t in range(inbound.DIGEST_TRIES)]
    assert all(isinstance(s, inbound.Wait) for s in steps[:-1])
    assert isinstance(steps[-1], inbound.Corrupt) and "does not match its digest" in steps[-1].reason
    # a message still arriving is no mismatch: waited for up to the stall bound as before
    short = Slot(**{**slot.__dict__, "parts": (len(body) - 1,)})
    assert not judge(short, rules=Rules(max_message=1 << 20, run_id="r", max_file=1 << 10, writer="w")).mismatch


def test_an_inbox_flooded_with_names_is_never_listed_whole(tmp_path, monkeypatch):
    """A peer that writes a million names into an inbox made every look
    list (and hold) them all; past MAX_LISTED the run fails, naming it."""
    from syqure_wf.errors import SyqureError
    from syqure_wf.transport import folder
    from syqure_wf.transport.shared import SharedFolder

    layout = SharedFolder(tmp_path / "data", 0, 2)
    inbox = layout.inbox(1)
    inbox.mkdir(parents=True, exist_ok=True)
    for seq in range(12):
        (inbox / f"{seq:08d}.ready").touch()
    assert len(layout.listing(inbox)) == 12
    monkeypatch.setattr(folder, "MAX_LISTED", 10)
    with pytest.raises(SyqureError, match="more than 10 files"):
        layout.listing(inbox)


def agent_with(tmp_path, policy_text: str, me: str = EMAILS[2]):
    from syqure_wf.sites.agent import Agent

    for site in EMAILS:
        (tmp_path / "datasites" / site / "app_data" / "syqure" / "jobs").mkdir(parents=True, exist_ok=True)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text)
    return Agent(tmp_path, me, policy, say=lambda line: None)


def submit(agent, program, run_id: str, extra: bytes = b"") -> None:
    m = manifest(program)
    m.update(run_id=run_id, submitter=EMAILS[1])
    path = agent.board.manifest_path(EMAILS[1], run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(signed_manifest(agent.board.folder, encode(m) + extra))


def signed_manifest(folder, data: bytes) -> bytes:
    """A manifest as its submitter writes it: signed with its site key (sites/signature.py)."""
    from syqure_wf.sites.signature import sign
    from syqure_wf.keys.sitekey import load_or_create

    return sign(load_or_create(folder, EMAILS[1]), "manifest", data)


def test_ended_runs_are_evicted_and_their_records_rotated(tmp_path, program, monkeypatch):
    """Every run folder a submitter made stayed in the agent's memory and
    left a private folder, rejected or not. Past KEEP_ENDED, the oldest
    ended runs are forgotten (a rewrite of one is no new run) and the
    private folders of those that never ran here removed."""
    from syqure_wf.sites import agent as agent_module

    monkeypatch.setattr(agent_module, "KEEP_ENDED", 5)
    agent = agent_with(tmp_path, "submitters: ['*']\nunlisted_programs: reject\n")
    for i in range(12):
        submit(agent, program, f"run-{i:02d}")
    agent.reconcile()
    assert len(agent.runs) == 5 and all(r.state == lc.REJECTED for r in agent.runs.values())
    assert sorted(k[1] for k in agent.runs) == [f"run-{i:02d}" for i in range(7, 12)]  # the newest kept
    kept = sorted(p.name for p in (agent.board.private / "runs" / EMAILS[1]).iterdir())
    assert kept == [f"run-{i:02d}" for i in range(7, 12)]
    submit(agent, program, "run-00", extra=b"\n")  # a forgotten run, rewritten: refused, not answered again
    agent.reconcile()
    assert ("run-00" not in {k[1] for k in agent.runs} and len(agent.runs) == 5)
    audit = agent.board.audit_path.read_text()
    assert "a run id that ended here already" in audit


def test_only_accepted_submitters_jobs_are_watched(tmp_path):
    """Every datasite's jobs/ was watched, a stranger's too: each file a
    stranger wrote there woke the agent."""
    import threading

    from syqure_wf.sites.events import Events

    agent = agent_with(tmp_path, f"submitters: ['{EMAILS[1]}']\n")
    agent.events = Events(threading.Event()).start()
    try:
        agent._watch_folders()
        watched = set(agent.events._watched)
    finally:
        agent.events.close()
    stranger = str(tmp_path.resolve() / "datasites" / EMAILS[0])
    assert watched and not [w for w in watched if w.startswith(stranger)], watched
    assert str(agent.board.app(EMAILS[1]) / "jobs") in watched


def test_a_status_record_peers_read_names_nothing_of_this_machine(tmp_path):
    """A party's record in the syftbox layout published the host name, local
    paths and the command line (with the MPyC listener's port) to every peer
    site. Now those stay in a private copy; a path in a reason is hidden."""
    import socket

    from syqure_wf.transport.status import StatusRecord

    home = tmp_path / "home" / "alice"
    shared, private = tmp_path / "status", tmp_path / "logs" / "party-1.status.json"
    shared.mkdir()
    private.parent.mkdir()
    rec = StatusRecord(shared, 1, 3, "r1", published=True, private=private, hide=(str(home),))
    rec.update(state="running", log=str(home / "run" / "logs" / "party-1.log"), output=str(home / "out.json"),
               command="python prog.py -P 127.0.0.1:20001 -P :20102 -I 1", wakeup=f"change events on {home} (ext4)")
    rec.update(state="failed", reason=f"the mpyc program exited with code 1 (log: {home}/run/logs/party-1.log)")
    text = (shared / "party-1.json").read_text()
    for local in (str(home), "20102", "20001", "prog.py", socket.gethostname(), '"host"'):
        assert local not in text, (local, text)
    published = json.loads(text)
    assert published["state"] == "failed" and published["reason"].endswith("(log: …/run/logs/party-1.log)")
    kept = json.loads(private.read_text())
    assert kept["command"].endswith("-I 1") and kept["host"] == os.uname().nodename
    # a record no peer reads (the shared layout) keeps everything, as before
    local_rec = StatusRecord(shared, 2, 3, "r1")
    local_rec.update(state="running", log="/x/party-2.log")
    assert json.loads((shared / "party-2.json").read_text())["log"] == "/x/party-2.log"


@pytest.mark.skipif(os.getuid() != 0, reason="a folder of another user needs root to make")
def test_a_build_cache_or_private_folder_of_another_user_is_refused(tmp_path):
    """Another local user's cache handed us their binary, and their folder
    our private records: each is refused now, naming the owner."""
    from syqure_wf.engines.build import _ready
    from syqure_wf.errors import SyqureError

    entry = tmp_path / "cache" / "prog-abc"
    entry.mkdir(parents=True)
    (entry / "prog").write_text("#!/bin/sh\necho theirs\n")
    (entry / "prog").chmod(0o755)
    (entry / "build.log").write_text("")
    assert _ready(entry / "prog")  # ours: taken
    for path in (entry, entry / "prog"):
        os.chown(path, 65534, 65534)
        with pytest.raises(SyqureError, match="belongs to another user"):
            _ready(entry / "prog")
        os.chown(path, 0, 0)
    (entry / "prog").chmod(0o777)
    with pytest.raises(SyqureError, match="may be changed by other users"):
        _ready(entry / "prog")

    private = tmp_path / "syqure-wf" / EMAILS[2]
    private.mkdir(parents=True)
    os.chown(private, 65534, 65534)
    with pytest.raises(SyqureError, match="belongs to another user"):
        agent_with(tmp_path, "submitters: ['*']\n")


def test_tls_true_for_mpyc_is_refused_with_one_line(program, tmp_path):
    """engine.tls: true never switched MPyC's TLS on, yet a site was shown
    'tls true' and approved a digest that said so."""
    import yaml

    from syqure_wf.errors import ConfigError
    from syqure_wf.run.config import load

    with pytest.raises(ConfigError, match="tls: true means nothing for MPyC"):
        manifest(program, engine={"name": "mpyc", "program": "main.py", "tls": True})
    m = manifest(program)
    m["config"]["engine"]["tls"] = True
    with pytest.raises(ManifestError, match="tls: true means nothing for MPyC"):
        parse(encode(m))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"engine": {"name": "mpyc", "program": str(program), "tls": True},
                                      "parties": 3, "workdir": str(tmp_path / "run")}))
    with pytest.raises(ConfigError, match="tls: true means nothing for MPyC"):
        load(config)
