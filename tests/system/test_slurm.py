"""The slurm-3party profile on a real SLURM cluster (issue 13): Debian's
slurm-wlm, one slurmctld and three slurmd on this host (slurm_cluster.py),
the real Snakemake SLURM executor. Each party is its own job on the node
placement.yaml names; prepare, build and collect are jobs too."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import PROGRAMS, PY, REPO, message_files, wait_until
from fuse_views import fuse_problem
from slurm_cluster import NODES, Cluster
from jobs import copy_repo

pytestmark = [pytest.mark.minutes(5), pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                reason="the test cluster runs its daemons as root")]
# no accounting database here: squeue answers, and sees finished jobs (MinJobAge)
# a --configfile given here replaces the profile's list: the placement goes with it
PLACEMENT = "profiles/slurm-3party/placement.yaml"
SLURM_ARGS = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("slurm"), views=fuse_problem() is None)
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def clean_queue(cluster):
    yield cluster
    leftover = cluster.jobs()
    for line in leftover:
        cluster.run("scancel", line.split()[0])
    assert not leftover, f"jobs left in the queue: {leftover}"


def snakemake(cluster, root: Path, *args, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "snakemake", "--profile", "profiles/slurm-3party", *SLURM_ARGS, *map(str, args)],
                          cwd=root, env={**cluster.env, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def submitted(text: str) -> list[str]:
    """Rules whose jobs went to SLURM, in order."""
    return [line.split("slurm_logs/rule_")[1].split("/")[0] for line in text.splitlines()
            if "has been submitted with SLURM jobid" in line]


def nodes_of(run: Path) -> dict[int, str]:
    return {p: json.loads((run / "messages" / "status" / f"party-{p}.json").read_text()).get("node") for p in range(3)}


def test_example_one_party_per_node_as_local(clean_queue, tmp_path):
    cluster = clean_queue
    root = copy_repo(tmp_path / "clone")
    done = snakemake(cluster, root)
    assert done.returncode == 0, done.stderr[-4000:]
    text = done.stdout + done.stderr
    assert sorted(submitted(text)) == ["collect", "party", "party", "party", "prepare"], text[-3000:]
    assert nodes_of(root / "runs/allele-counts") == dict(enumerate(NODES))
    local = copy_repo(tmp_path / "local")
    same = subprocess.run([PY, "-m", "snakemake", "--profile", "local-3party"], cwd=local, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert same.returncode == 0, same.stderr[-3000:]
    for pid in range(3):
        on_slurm = json.loads((root / f"results/allele-counts/party-{pid}.json").read_text())
        here = json.loads((local / f"results/allele-counts/party-{pid}.json").read_text())
        assert on_slurm == here
    assert message_files(root / "runs") == []


def test_each_node_sees_the_run_folder_through_its_own_fuse_mount(clean_queue, tmp_path):
    """As nodes see an NFS export: each node's jobs see the clone through a
    FUSE mount of their own, and no node's writes raise a change event on
    another. Nothing is set for it (no poll_ms): one party per node, the job
    completes right, and each party's record says why its proxy polls."""
    cluster = clean_queue
    if not cluster.views:
        pytest.skip(f"no FUSE views on the test cluster: {fuse_problem()}")
    root = copy_repo(cluster.shared / tmp_path.name)
    try:
        started = time.monotonic()
        done = snakemake(cluster, root)
        print(f"slurm-3party, a FUSE view per node: {time.monotonic() - started:.1f} s")
        assert done.returncode == 0, done.stderr[-4000:]
        assert sorted(submitted(done.stdout + done.stderr)) == ["collect", "party", "party", "party", "prepare"]
        run = root / "runs/allele-counts"
        assert nodes_of(run) == dict(enumerate(NODES))
        sites = [json.loads((REPO / "examples/allele-counts/data" / f"site{i}.json").read_text()) for i in (1, 2)]
        for pid in range(3):
            record = json.loads((run / "messages" / "status" / f"party-{pid}.json").read_text())
            assert record["wakeup"].startswith(f"{run / 'messages'} is on fuse, "), record["wakeup"]
            result = json.loads((root / f"results/allele-counts/party-{pid}.json").read_text())
            assert result["allele_count"] == [a + b for a, b in zip(sites[0]["allele_count"], sites[1]["allele_count"])]
        assert message_files(root / "runs") == []
    finally:
        shutil.rmtree(root, ignore_errors=True)


def rounds_config(root: Path, **timeouts) -> Path:
    """A job that runs long enough to be interfered with."""
    cfg = yaml.safe_load((root / "config/config.yaml").read_text())
    cfg["run"] = "rounds"
    cfg["mpc"] = {"engine": {"name": "mpyc", "program": str(PROGRAMS / "mpyc_rounds.py"), "args": ["--rounds", "100000"]},
                  "parties": 3, "timeouts": {"peer": 5, **timeouts}}
    path = root / "config" / "rounds.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def party_jobs(cluster) -> dict[int, tuple[str, str]]:
    """pid -> (SLURM job id, state) of the party jobs in the queue (by node)."""
    found = {}
    for line in cluster.jobs():
        jobid, _name, state, node = (line.split() + [""])[:4]
        if node in NODES:
            found[NODES.index(node)] = (jobid, state)
    return found


def test_a_cancelled_party_job_fails_the_run_naming_it(clean_queue, tmp_path):
    cluster = clean_queue
    root = copy_repo(tmp_path / "clone")
    config = rounds_config(root)
    proc = subprocess.Popen([PY, "-m", "snakemake", "--profile", "profiles/slurm-3party", *SLURM_ARGS,
                             "--configfile", str(config), PLACEMENT], cwd=root, env=cluster.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        status = root / "runs/rounds/messages/status"

        def all_running():
            jobs = party_jobs(cluster)
            recs = [json.loads(p.read_text()) for p in status.glob("party-*.json")] if status.is_dir() else []
            return (len(jobs) == 3 and all(s == "RUNNING" for _, s in jobs.values()) and len(recs) == 3
                    and all(r["state"] == "running" for r in recs))

        wait_until(all_running, 120, "three party jobs running", step=0.5)
        victim = party_jobs(cluster)[1][0]
        assert cluster.run("scancel", victim).returncode == 0
        cancelled = time.monotonic()

        def others_failed():
            recs = {p: json.loads((status / f"party-{p}.json").read_text()) for p in (0, 2)}
            return all(r["state"] == "failed" for r in recs.values()) and recs

        recs = wait_until(others_failed, 30, "parties 0 and 2 to fail", step=0.2)
        took = time.monotonic() - cancelled
        assert took < 5 + 5, f"the others took {took:.1f} s to stop (timeouts.peer is 5 s)"
        for r in recs.values():
            assert "party 1" in r["reason"], r["reason"]
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait(10)
    assert proc.returncode != 0
    assert "party 1" in out, out[-3000:]
    wait_until(lambda: not cluster.jobs(), 30, "no job of the run left in the queue")


@pytest.mark.slow
def test_a_party_slurm_cannot_start_is_waited_for_then_named(clean_queue, tmp_path):
    cluster = clean_queue
    blocker = cluster.run("sbatch", "--parsable", "--nodelist=node-c", "--exclusive", "--job-name=other-work",
                          "--wrap", "sleep 600").stdout.strip()
    try:
        wait_until(lambda: any(line.startswith(blocker) and "RUNNING" in line for line in cluster.jobs()),
                   30, "the other work to run on node-c")
        root = copy_repo(tmp_path / "clone")
        config = rounds_config(root, start=20)
        started = time.monotonic()
        done = snakemake(cluster, root, "--configfile", config, PLACEMENT, timeout=400)
        took = time.monotonic() - started
        assert done.returncode != 0
        text = done.stdout + done.stderr
        status = root / "runs/rounds/messages/status"
        for p in (0, 1):
            record = json.loads((status / f"party-{p}.json").read_text())
            assert record["state"] == "failed" and "party 2 never started" in record["reason"], record
        assert "party 2 never started" in text or "party 2" in text, text[-3000:]
        assert took < 300, f"snakemake took {took:.0f} s"
        assert [line for line in cluster.jobs() if not line.startswith(blocker)] == []
    finally:
        cluster.run("scancel", blocker)
        wait_until(lambda: not cluster.jobs(), 30, "the other work to go")


@pytest.mark.slow
def test_sequre_example_on_slurm_builds_once(clean_queue, tmp_path):
    """The Sequre example: the build is a job; every party job runs its binary.
    The test cluster's nodes share one host, so each party gets a network
    namespace (isolation: netns), as on any cluster whose nodes share hosts."""
    from sequre_install import sequre_env, sequre_home

    cluster = clean_queue
    home = sequre_home()
    root = copy_repo(tmp_path / "clone")
    cfg = yaml.safe_load((root / "config/config-sequre.yaml").read_text())
    cfg["mpc"]["isolation"] = "netns"
    config = root / "config" / "sequre-slurm.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = sequre_env(home, "fork", tmp_path / "builds")
    done = snakemake(cluster, root, "--configfile", config, PLACEMENT, env={"PATH": env["PATH"], "SYQURE_WF_CACHE": env["SYQURE_WF_CACHE"]})
    assert done.returncode == 0, done.stderr[-4000:]
    text = done.stdout + done.stderr
    assert sorted(submitted(text)) == ["build", "collect", "party", "party", "party", "prepare"], text[-3000:]
    assert nodes_of(root / "runs/allele-counts-sequre") == dict(enumerate(NODES))
    sites = [json.loads((REPO / "examples/allele-counts/data" / f"site{i}.json").read_text()) for i in (1, 2)]
    for pid in range(3):
        result = json.loads((root / f"results/allele-counts-sequre/party-{pid}.json").read_text())
        assert result["allele_count"] == [a + b for a, b in zip(sites[0]["allele_count"], sites[1]["allele_count"])]


def test_doctor_checks_the_profiles_scheduler(clean_queue, tmp_path):
    """On the real cluster: sbatch and squeue answer; sacct (the executor's
    default where it is installed) fails without an accounting database and
    doctor says to use squeue; with slurm-status-command: squeue, it passes."""
    cluster = clean_queue

    def doctor(profile: Path):
        proc = subprocess.run([PY, "-m", "syqure_wf", "doctor", "--profile", str(profile)], cwd=tmp_path,
                              env=cluster.env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc.returncode, {line[6:22].strip(): line for line in proc.stdout.splitlines()}

    code, lines = doctor(REPO / "profiles/slurm-3party")
    assert lines["sbatch"].startswith("ok") and lines["squeue"].startswith("ok"), lines
    if shutil.which("sacct", path=cluster.env.get("PATH")):
        assert code == 1 and lines["status command"].startswith("FAIL  status command   sacct:"), lines
        assert lines["status command"].endswith("-> set slurm-status-command: squeue in the profile "
                                                "(no accounting database)")
    profile = tmp_path / "profile"
    profile.mkdir()
    settings = yaml.safe_load((REPO / "profiles/slurm-3party/config.yaml").read_text())
    (profile / "config.yaml").write_text(yaml.safe_dump({**settings, "slurm-status-command": "squeue"}))
    code, lines = doctor(profile)
    assert code == 0 and lines["status command"] == "ok    status command   squeue answers", lines
