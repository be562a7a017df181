"""The syftbox layout (issue 5): each direction in its sender's datasite,
consumption recorded by the reader, large messages in several files,
every message checked against its digest."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import PROGRAMS, PY, free_base, output
from faultsync import FaultSync

pytestmark = pytest.mark.minutes(5)

EMAILS = ["cp0@a.org", "cp1@b.org", "cp2@c.org"]


def syftbox_config(tmp_path: Path, folders: list[Path], parties: int, count: int, max_bytes: int, **extra) -> Path:
    cfg = {"layout": "syftbox", "run_id": "sbx-test",
           "parties": [{"pid": p, "email": EMAILS[p], "folder": str(folders[p])} for p in range(parties)],
           "syftbox": {"max_file_size": 16384},
           "engine": {"name": "command", "convention": "sequre",
                      "command": f"{{python}} {PROGRAMS / 'sequre_wire.py'} {{pid}} {{parties}} {{party_base_port}} {count} {max_bytes}"},
           "framing": "sequre", "workdir": str(tmp_path / "run"),
           "ports": {"base": free_base(span=300), "stride": 100}, **extra}
    for p in range(parties):
        cfg["parties"][p]["party_base_port"] = cfg["ports"]["base"] + 100 * p  # Sequre: one base per party
    path = tmp_path / "sbx.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_faulty_sync_delivers_every_message_once_in_order(procs, tmp_path):
    folders = [tmp_path / f"box{p}" for p in range(2)]
    sync = FaultSync({EMAILS[p]: folders[p] for p in range(2)}, seed=5)
    sync.start()
    try:
        path = syftbox_config(tmp_path, folders, parties=2, count=600, max_bytes=300000)
        proc = procs.start([PY, "-m", "syqure_wf", "run", "--config", path, "--json", "--quiet"])
        assert procs.wait(proc, 240) == 0, output(proc)
    finally:
        sync.stop()
    summary = json.loads(proc.communicate()[0])
    for party in summary["parties"]:
        for ch in party["channels"].values():
            assert ch["sent_messages"] == 600 and ch["received_messages"] == 600
    for pid in range(2):  # sequre_wire checks every frame's bytes and order
        assert "all byte-exact" in (tmp_path / "run" / "logs" / f"party-{pid}.log").read_text()
    assert sync.faults["truncated"] > 10 and sync.faults["redelivered"] > 0, sync.faults
    # the writer removed what its reader consumed; nothing of the run is left to read
    for p in range(2):
        run = folders[p] / "datasites" / EMAILS[p] / "app_data/syqure/runs/sbx-test"
        assert not [f for f in run.glob("*_to_*/0*")], list(run.glob("*_to_*/*"))
        perm = yaml.safe_load((run / f"{p}_to_{1 - p}" / "syftperm.yaml").read_text())
        assert perm == [{"path": "**", "user": EMAILS[1 - p], "permissions": ["read"]}]


@pytest.mark.slow
@pytest.mark.timeout(900)  # the run's own bound below is 8 hops (600 s)
def test_sync_minutes_apart_trips_no_timeout(procs, tmp_path):
    """A sync that moves files once every 75 s: the peers stay alive and
    heartbeating, every bound (peer 30 s, stall 30 s, drain 60 s) is shorter
    than one hop, and the run still finishes, byte-exact: the bounds stretch
    to the pace the sync has shown."""
    hop = 75.0
    folders = [tmp_path / f"box{p}" for p in range(2)]
    sync = FaultSync({EMAILS[p]: folders[p] for p in range(2)}, seed=3, interval=hop)
    sync.start()
    try:
        path = syftbox_config(tmp_path, folders, parties=2, count=20, max_bytes=300000,
                              timeouts={"peer": 30, "stall": 30, "drain": 60})
        proc = procs.start([PY, "-m", "syqure_wf", "run", "--config", path, "--json", "--quiet"])
        assert procs.wait(proc, 8 * hop) == 0, output(proc)
    finally:
        sync.stop()
    for pid in range(2):
        assert "all byte-exact" in (tmp_path / "run" / "logs" / f"party-{pid}.log").read_text()
        record = json.loads((folders[pid] / "datasites" / EMAILS[pid] / "app_data/syqure/runs/sbx-test"
                             / "status" / f"party-{pid}.json").read_text())
        assert record["state"] == "done"
        # the peer's heartbeats really came minutes apart, beyond the bound given
        assert record["peer_gaps"][str(1 - pid)] > 30, record


@pytest.mark.parametrize("run_dir", [None, "biovault/run-1"])
def test_a_peer_on_the_forks_own_file_transport_is_named_whoever_runs_it(tmp_path, run_dir):
    """The Sequre fork's file transport is recognised in any syftbox run, not
    only in a folder a caller (Biovault) named: its .request files, or its log
    written since we started; an earlier run's log says nothing."""
    import os
    import time

    from syqure_wf.transport.syftbox import SyftboxFolder

    box = SyftboxFolder(tmp_path, 0, EMAILS, "run-native", run_dir=run_dir)
    box.prepare()
    since = time.time()
    assert box.reused_folder is (run_dir is not None)
    assert box.native_peer(2, since) is None
    log = box.runs[2] / "file_transport.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("file transport up\n")
    os.utime(log, (since - 60, since - 60))
    assert box.native_peer(2, since) is None
    inbox = box.inbox(1)
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "00000000.request").write_bytes(b"x")
    assert f"party 1 ({EMAILS[1]}) runs the Sequre fork's own file transport (00000000.request in " \
        in box.native_peer(1, since)
    os.utime(log, None)
    assert "its " + str(log) in box.native_peer(2, since)


def test_a_peers_link_named_as_the_forks_log_is_never_followed(tmp_path):
    """Attack: a peer's ``file_transport.log`` that is a link to a file of
    ours, fresh or not, says nothing about the peer (and tests nothing of ours)."""
    import os
    import time

    from syqure_wf.transport.syftbox import SyftboxFolder

    box = SyftboxFolder(tmp_path, 0, EMAILS, "run-native-link")
    box.prepare()
    since = time.time() - 60
    ours = tmp_path / "ours.txt"
    ours.write_text("written now\n")
    log = box.runs[1] / "file_transport.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(ours, log)
    assert box.native_peer(1, since) is None
    os.unlink(log)
    os.mkdir(log)  # not a file either
    assert box.native_peer(1, since) is None
