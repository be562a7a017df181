"""Ends of stream are sealed messages (issue 31): an ``.end`` file that
anyone but the peer's proxy wrote (a sync server, a user of the folder)
neither truncates a stream nor splices it into a second connection; the
run's result is right."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import PY, REPO, free_base, output, wait_until
from proxies import connect as _connect, frame, party0_listener, sealed_proxy as proxy

EXAMPLE = REPO / "examples/allele-counts"


def test_a_planted_end_neither_truncates_nor_splices_a_sealed_stream(procs, tmp_path):
    data, secret = tmp_path / "msgs", tmp_path / "run.secret"
    secret.write_text(os.urandom(32).hex())
    b0, b1 = free_base(), free_base()
    got: list[bytes] = []
    listener = party0_listener(b0 + 1, got)
    procs.start(proxy(0, data, b0, secret))
    procs.start(proxy(1, data, b1, secret))
    sock = wait_until(lambda: _connect(b1 + 1), 15, "proxy 1 to listen")
    inbox = data / "1_to_0"
    wait_until(lambda: (inbox / ".run").exists(), 15, "proxy 1's outbox")
    for seq in (0, 1, 2):  # before the sender's messages: the slots a reader waits on
        (inbox / f"{seq:08d}.end").write_bytes(b"")
    time.sleep(0.5)  # the reader looked at the planted slot 0 (today's code ended the stream there)
    frames = [b"SHARE-%d" % i * 1000 for i in range(3)]
    for payload in frames:
        sock.sendall(frame(payload))
    sock.close()  # party 1's end of stream: the sealed one
    listener.join(timeout=30)
    assert not listener.is_alive(), "party 0 never saw the end of the stream"
    assert b"".join(got) == b"".join(frame(p) for p in frames)  # one connection, all of it, then the end


def _plant_ends(views, run_id, stop: threading.Event, planted: list) -> None:
    """As a sync server could: a well-formed ``.end`` (this run, the writer's
    incarnation) in every empty slot of every receiving site's synced view
    of a sender's outbox (``views``: those folders), each slot once (a
    SyftBox client moves what its server refused aside: planting again
    would only keep the sync busy)."""
    done: set = set()
    while not stop.is_set():
        for folder in views:
            try:
                writer = (folder / "writer.id").read_text().strip()
                present = set(os.listdir(folder))
            except OSError:
                continue
            for seq in range(16):
                if (folder, seq) not in done and not {f"{seq:08d}.ready", f"{seq:08d}.msg"} & present:
                    done.add((folder, seq))
                    tmp = folder.parent / f".plant-{folder.name}.tmp"  # a name no party reads
                    try:
                        tmp.write_text(json.dumps({"run": run_id, "writer": writer}))
                        os.rename(tmp, folder / f"{seq:08d}.end")
                        planted.append(f"{folder.name}/{seq:08d}.end")
                    except OSError:
                        pass
        time.sleep(0.02)


def _run_with_planted_ends(procs, tmp_path, config: Path, run_id: str, views, bound: float = 300) -> None:
    stop, planted = threading.Event(), []
    planter = threading.Thread(target=_plant_ends, args=(views, run_id, stop, planted), daemon=True)
    planter.start()
    proc = procs.start([PY, "-m", "syqure_wf", "run", "--config", config, "--json", "--quiet"])
    try:
        assert procs.wait(proc, bound) == 0, output(proc)
    finally:
        stop.set()
        planter.join()
    assert planted, "no end was planted"
    sites = [json.loads((EXAMPLE / "data" / f"site{i}.json").read_text()) for i in (1, 2)]
    for pid in range(3):
        result = json.loads((tmp_path / "run/outputs" / f"party-{pid}.json").read_text())
        assert result["allele_count"] == [a + b for a, b in zip(sites[0]["allele_count"], sites[1]["allele_count"])]


def test_ends_planted_in_a_syftbox_folder(procs, tmp_path):
    """The syftbox layout, sealed by the sites' keys, on one folder as a
    finished sync shows it: what a sync server writes lands in these folders."""
    run_id, emails = f"ends-{int(time.time())}", [f"site{p}@example.org" for p in range(3)]
    cfg = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    cfg.update(run_id=run_id, workdir=str(tmp_path / "run"), layout="syftbox",
               inputs={k: str(EXAMPLE / v) for k, v in cfg["inputs"].items()},
               ports={"base": free_base(span=300), "stride": 100},
               syftbox={"folder": str(tmp_path / "SyftBox")},
               parties=[{"pid": p, "email": emails[p]} for p in range(3)])
    cfg["engine"]["program"] = str(EXAMPLE / cfg["engine"]["program"])
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg))
    views = [tmp_path / "SyftBox/datasites" / emails[s] / "app_data/syqure/runs" / run_id / f"{s}_to_{r}"
             for s in range(3) for r in range(3) if s != r]
    _run_with_planted_ends(procs, tmp_path, config, run_id, views)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ends_planted_by_the_sync_through_real_syftbox(procs, tmp_path):
    """The planted files stay in the reader's view: its client's upload of
    them is refused by the server (SyftBox keeps them as ``.syftrejected``)."""
    from syftbox_net import EMAILS, SyftBoxNet, job_config

    net = SyftBoxNet(procs, tmp_path / "syftbox", EMAILS, 0.1)
    run_id = f"ends-{int(time.time())}"
    views = [net.folders[reader] / "datasites" / sender / "app_data/syqure/runs" / run_id / f"{s}_to_{r}"
             for r, reader in enumerate(EMAILS) for s, sender in enumerate(EMAILS) if s != r]
    _run_with_planted_ends(procs, tmp_path, job_config(tmp_path, net, run_id), run_id, views, bound=800)


def test_a_peer_sealing_in_another_format_is_named():
    """A peer of the whole-message format (no ``seal_format`` in its record)
    cannot open ours nor we its: the run stops at once, naming it."""
    from types import SimpleNamespace

    from syqure_wf.transport.protocol.session import PartySession
    from syqure_wf.transport.segments import VERSION

    s = SimpleNamespace(pid=0, run_id="r", sealing="secret")
    me = PartySession(s, 0.0, synced=False, reused=False, wheres={1: "1_to_0"}, seal_format=VERSION)
    me.peers[1].watch.incarnation = "i1"
    assert me.sealing_problem(1, {"sealing": "secret", "seal_format": VERSION, "incarnation": "i1"}) is None
    assert me.sealing_problem(1, {"sealing": "secret", "incarnation": "i0"}) is None  # a dead incarnation's record
    assert "party 1 seals its messages in format 1, this party in format 2" in \
        me.sealing_problem(1, {"sealing": "secret", "incarnation": "i1"})
    s.sealing = "off"
    assert me.sealing_problem(1, {"sealing": "off", "incarnation": "i1"}) is None
