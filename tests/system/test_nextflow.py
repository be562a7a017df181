"""The Nextflow pipeline run by a real Nextflow (issue 25): 24.10.0 from its
Maven Central jars (nextflow_install.py), offline, one NXF_HOME per session.
Every profile gives what `syqure-wf run` gives; the parties of a run all run
at once or the run is refused before anything starts; a failing party or a
SIGINT ends every party and proxy; the pipeline embeds in a host pipeline.
The commands are the ones README.md and main.nf show."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import PROGRAMS, PY, REPO, free_base, message_files, processes_mentioning, wait_until
from summary_schema import checked_summary

pytestmark = pytest.mark.minutes(7)

EXAMPLE = REPO / "examples/allele-counts"
MAIN = "main.nf"  # the pipeline at the repository's root (nextflow run <repository> runs it)
PIPELINE = ("main.nf", "nextflow.config", "nextflow_schema.json")


def clone(dest: Path) -> Path:
    """What a fresh clone holds of the pipeline and its example."""
    dest.mkdir(parents=True)
    for name in ("nextflow", "examples"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in PIPELINE:
        shutil.copy(REPO / name, dest / name)
    return dest


def run_config(root: Path, name: str = "run.yaml", **changes) -> Path:
    """The example's configuration with ports of this test's own."""
    cfg = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    cfg.pop("workdir")
    cfg = {**cfg, "engine": {**cfg["engine"], "program": str(EXAMPLE / cfg["engine"]["program"])},
           "inputs": {pid: str(EXAMPLE / path) for pid, path in cfg["inputs"].items()},
           "ports": {"base": free_base(span=300), "stride": 100}, **changes}
    path = root / name
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> list[dict]:
    """What `syqure-wf run` computes for the example: every party's result."""
    work = tmp_path_factory.mktemp("reference")
    done = subprocess.run(["syqure-wf", "run", "--config", run_config(work), "--workdir", work / "run", "--quiet"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return [json.loads((work / "run/outputs" / f"party-{pid}.json").read_text()) for pid in range(3)]


def tasks(out: str, how: str) -> list[str]:
    """The tasks Nextflow names as `Submitted` or `Cached`."""
    return sorted(line.split(f"{how} process > ")[1] for line in out.splitlines() if f"{how} process > " in line)


def task_folders(root: Path) -> list[Path]:
    return [p for p in (root / "work").glob("*/*") if p.is_dir()]


def git_repository(tmp_path: Path, tag: str = "v-test") -> str:
    """The pipeline as `nextflow run <repository> -r <tag>` gets it: a git
    repository of a clone's files on this machine (bare, as Nextflow 24.10
    takes a local one), tagged; its file: URL."""
    work = clone(tmp_path / "repo")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x",
           "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "syqure-wf"], ["tag", tag],
                 ["clone", "-q", "--bare", ".", str(tmp_path / "syqure-wf.git")]):
        done = subprocess.run(["git", *args], cwd=work, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    return f"file:{tmp_path / 'syqure-wf.git'}"


# Nextflow 24.10 refuses a repository in offline mode, file: ones too (fixed
# in 25.04): online, with nothing to download (no plugin) and no version check
FROM_GIT = {"NXF_OFFLINE": "false", "NXF_DISABLE_CHECK_LATEST": "true"}


@pytest.mark.timeout(600)  # two runs
def test_local_profile_gives_what_syqure_wf_run_gives_and_resume_reruns_nothing(nextflow, reference, tmp_path):
    """Run as a site runs a release: `nextflow run <repository> -r <tag>`,
    from a launch folder of its own."""
    repository = git_repository(tmp_path)
    root = tmp_path / "launch"
    root.mkdir()
    config = run_config(root)
    first = nextflow.run("run", repository, "-r", "v-test", "-profile", "local", "--run_config", config, cwd=root,
                         env=FROM_GIT)
    assert "revision: " in first.stdout and "[v-test]" in first.stdout, first.stdout[-3000:]
    assert first.returncode == 0, first.stdout[-4000:]
    assert tasks(first.stdout, "Submitted") == ["SYQURE:BUILD (allele-counts)", "SYQURE:COLLECT (allele-counts)",
                                                 *(f"SYQURE:PARTY (party {p})" for p in range(3)),
                                                 "SYQURE:PREPARE (allele-counts)"]
    results = root / "results/allele-counts"
    for pid in range(3):
        assert json.loads((results / f"party-{pid}.json").read_text()) == reference[pid]
    summary = checked_summary(results / "summary.json", "parties")
    assert [p["state"] for p in summary["parties"]] == ["done"] * 3
    assert sorted(p.name for p in results.iterdir()) == ["party-0.json", "party-1.json", "party-2.json", "summary.json"]
    info = root / "results/pipeline_info"
    versions = yaml.safe_load((info / "versions.yml").read_text())
    assert set(versions["SYQURE:PARTY"]) == {"syqure-wf", "python", "mpyc"}, versions
    assert (info / "versions.yml").read_text().count('"SYQURE:PARTY":') == 1
    assert {p.name.split("_2")[0] for p in info.iterdir()} == {  # nf-core's reports, by default
        "allele-counts.run.yaml", "execution_report", "execution_timeline", "execution_trace", "versions.yml"}
    # PREPARE wrote its run.yaml in its work folder, nothing in the run folder;
    # the parties made the run folder and left no message behind
    prepare = next(d for d in task_folders(root) if "syqure-wf prepare" in (d / ".command.sh").read_text())
    assert sorted(p.name for p in prepare.iterdir() if not p.name.startswith(".")) == ["given", "run.yaml",
                                                                                      "versions.yml"]
    assert (prepare / "given/run.yaml").is_symlink()  # its input, staged
    run_dir = root / "runs/allele-counts"
    assert sorted(p.name for p in run_dir.iterdir()) == ["logs", "messages"]
    assert message_files(run_dir) == []
    assert not processes_mentioning(str(root))
    again = nextflow.run("run", repository, "-r", "v-test", "-profile", "local", "--run_config", config, "-resume",
                         cwd=root, env=FROM_GIT)
    assert again.returncode == 0, again.stdout[-4000:]
    assert tasks(again.stdout, "Submitted") == [] and len(tasks(again.stdout, "Cached")) == 6, again.stdout
    assert json.loads((results / "party-0.json").read_text()) == reference[0]


@pytest.mark.parametrize("limit, named", [("executor.cpus = 2", "executor.cpus is 2"),
                                          ("executor.queueSize = 2", "executor.queueSize is 2")])
def test_fewer_cpus_or_a_smaller_queue_than_parties_is_refused_before_anything_starts(nextflow, tmp_path, limit, named):
    root = clone(tmp_path / "clone")
    (root / "small.config").write_text(limit + "\n")
    done = nextflow.run("run", MAIN, "-profile", "local", "-c", "small.config", "--run_config", run_config(root),
                        cwd=root, timeout=120)
    assert done.returncode != 0
    assert f"3 parties must run at once here but {named}" in done.stdout, done.stdout[-2000:]
    assert task_folders(root) == [] and not (root / "runs").exists() and not (root / "results/allele-counts").exists()


def test_the_syftbox_profile_without_a_pid_is_one_line(nextflow, tmp_path):
    root = clone(tmp_path / "clone")
    done = nextflow.run("run", MAIN, "-profile", "syftbox", "--run_config", run_config(root), cwd=root, timeout=120)
    assert done.returncode != 0
    assert "this profile runs this machine's party only: give --pid (0..2)" in done.stdout, done.stdout[-2000:]
    assert task_folders(root) == [] and not (root / "runs").exists()


def test_stub_run_writes_nothing_outside_the_work_folders(nextflow, tmp_path):
    root = clone(tmp_path / "clone")
    done = nextflow.run("run", MAIN, "-profile", "local", "-stub-run", "--run_config", run_config(root), cwd=root)
    assert done.returncode == 0, done.stdout[-3000:]
    assert len(tasks(done.stdout, "Submitted")) == 6
    results = root / "results/allele-counts"
    assert sorted(p.name for p in results.iterdir()) == ["party-0.json", "party-1.json", "party-2.json", "summary.json"]
    checked_summary(results / "summary.json", "parties")  # the stubs write outputs of the real shape
    assert json.loads((results / "party-1.json").read_text()) == {"stub": True, "pid": 1}
    assert not (root / "runs").exists()


def test_help_lists_every_parameter_and_runs_nothing(nextflow, tmp_path):
    root = clone(tmp_path / "clone")
    done = nextflow.run("run", MAIN, "--help", cwd=root, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:]
    schema = json.loads((REPO / "nextflow_schema.json").read_text())
    declared = {name: spec for group in schema["$defs"].values() for name, spec in group["properties"].items()}
    for name, spec in declared.items():
        assert (f"  --{name} " in done.stdout) != bool(spec.get("hidden")), name
    assert "Submitted process" not in done.stdout and task_folders(root) == []
    assert not (root / "results").exists() and not (root / "runs").exists()


@pytest.mark.timeout(600)  # two launches of Nextflow
def test_every_parameter_of_the_config_is_declared_and_an_unknown_one_is_refused(nextflow, tmp_path):
    text = (REPO / "nextflow.config").read_text()
    params = text.split("params {")[1].split("\n}")[0]
    given = {line.split("=")[0].strip() for line in params.splitlines() if "=" in line}
    schema = json.loads((REPO / "nextflow_schema.json").read_text())
    declared = {name for group in schema["$defs"].values() for name in group["properties"]}
    assert given == declared
    root = clone(tmp_path / "clone")
    for wrong, said in (("--partiton", "unknown parameter --partiton: did you mean --partition?"),
                        ("--config", "--config is not a parameter: the run configuration is --run_config")):
        done = nextflow.run("run", MAIN, "-profile", "local", wrong, "x", cwd=root, timeout=180)
        assert done.returncode != 0 and said in done.stdout, done.stdout[-2000:]
    assert task_folders(root) == [] and not (root / "runs").exists()


def fail_config(root: Path) -> Path:
    (root / "fail.py").write_bytes((PROGRAMS / "party1_fails.py").read_bytes())
    return run_config(root, "fail.yaml", engine={"name": "mpyc", "program": str(root / "fail.py")}, inputs={})


def test_a_failing_party_fails_the_run_within_seconds_naming_it(nextflow, tmp_path):
    root = clone(tmp_path / "clone")
    t0 = time.monotonic()
    done = nextflow.run("run", MAIN, "-profile", "local", "--run_config", fail_config(root), "--run", "fails", cwd=root)
    elapsed = time.monotonic() - t0
    assert done.returncode != 0
    out = done.stdout + done.stderr
    # Nextflow reports the first failed task it sees: party 1 itself, with its
    # program's last lines, or a peer that stopped because of it, naming it
    assert "Error executing process > 'SYQURE:PARTY (party " in out, out[-3000:]
    assert "party 1: the mpyc program exited with code 1" in out, out[-3000:]
    assert elapsed < 60, f"took {elapsed:.0f} s"
    wait_until(lambda: not processes_mentioning(str(root)), 10, "no process of the run left")
    assert message_files(root / "runs") == []
    assert not (root / "results/fails/summary.json").exists()


@pytest.mark.slow
def test_resume_after_a_failed_run_prepares_a_new_run(nextflow, tmp_path):
    """A failed run is over: -resume after the fix prepares a new run (a new
    run id) and starts every party in it, not in the failed one."""
    root = clone(tmp_path / "clone")
    config = fail_config(root)
    failed = nextflow.run("run", MAIN, "-profile", "local", "--run_config", config, "--run", "fails", cwd=root)
    assert failed.returncode != 0 and "party 1: the mpyc program exited with code 1" in failed.stdout
    (root / "fail.py").write_text(  # fixed: every party computes and writes its result
        "import json, os\n"
        "from mpyc.runtime import mpc\n"
        "async def main():\n"
        "    await mpc.start()\n"
        "    total = await mpc.output(mpc.sum(mpc.input(mpc.SecInt(32)(mpc.pid + 1))))\n"
        "    await mpc.shutdown()\n"
        "    json.dump({'total': total}, open(os.environ['SYQURE_OUTPUT'], 'w'))\n"
        "mpc.run(main())\n")
    again = nextflow.run("run", MAIN, "-profile", "local", "--run_config", config, "--run", "fails", "-resume", cwd=root)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "SYQURE:PREPARE (fails)" in tasks(again.stdout, "Submitted")
    summary = checked_summary(root / "results/fails/summary.json", "parties")
    assert [p["state"] for p in summary["parties"]] == ["done"] * 3
    assert json.loads((root / "results/fails/party-2.json").read_text()) == {"total": 6}


def test_sigint_stops_every_party_and_proxy(nextflow, procs, tmp_path):
    root = clone(tmp_path / "clone")
    shutil.copy(PROGRAMS / "mpyc_rounds.py", root / "rounds.py")
    config = run_config(root, "long.yaml", engine={"name": "mpyc", "program": str(root / "rounds.py"),
                                                    "args": ["--rounds", "100000"]}, inputs={})
    proc = procs.start(nextflow.args("run", MAIN, "-profile", "local", "--run_config", config, "--run", "long"),
                       log=tmp_path / "nextflow.log", cwd=root, env=nextflow.env)
    status = root / "runs/long/messages/status"

    def all_running():
        records = [json.loads(p.read_text()) for p in status.glob("party-*.json")] if status.is_dir() else []
        return len(records) == 3 and all(r.get("state") == "running" for r in records)

    wait_until(all_running, 120, "every party running", step=0.2)
    assert len(processes_mentioning(str(root))) >= 6  # three runners (each its proxy) and their programs
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    assert procs.wait(proc, 60) != 0
    wait_until(lambda: not processes_mentioning(str(root)), 20, "no party or proxy left after SIGINT")
    print(f"\nSIGINT: nextflow and every party gone in {time.monotonic() - t0:.1f} s")
    records = [json.loads(p.read_text()) for p in status.glob("party-*.json")]
    assert {r["state"] for r in records} == {"failed"} and all("SIGTERM" in r["reason"] or "SIGINT" in r["reason"]
                                                                for r in records), records


def test_embedded_in_a_host_pipeline_with_report_and_trace(nextflow, reference, tmp_path):
    host = tmp_path / "host"
    shutil.copytree(REPO / "tests/host-nextflow", host)
    shutil.copytree(REPO / "nextflow", host / "nextflow")
    config = run_config(host, "mpc.yaml", inputs={})  # each site's input comes from SITE_COUNTS
    done = nextflow.run("run", "main.nf", "--config", config, "--make_data", EXAMPLE / "make_data.py",
                        "-with-report", "report.html", "-with-trace", "trace.txt", cwd=host)
    assert done.returncode == 0, done.stdout[-4000:]
    report = dict(line.split(" ", 1) for line in (host / "results/report.txt").read_text().splitlines())
    made = subprocess.run([PY, EXAMPLE / "make_data.py", "--variants", "300", "--seed", "11", "--out", tmp_path / "made"],
                          capture_output=True, timeout=60)
    assert made.returncode == 0
    sites = [json.loads((tmp_path / "made" / f"site{i}.json").read_text()) for i in (1, 2)]
    assert report == {"variants": "300", "parties_done": "3",
                      "total_allele_count": str(sum(sites[0]["allele_count"]) + sum(sites[1]["allele_count"]))}
    assert sorted(p.name for p in (host / "results/mpc").iterdir()) == [
        "party-0.json", "party-1.json", "party-2.json", "summary.json"]
    checked_summary(host / "results/mpc/summary.json", "parties")
    trace = [line.split("\t") for line in (host / "trace.txt").read_text().splitlines()]
    names = {row[trace[0].index("name")]: row[trace[0].index("status")] for row in trace[1:]}
    assert set(names.values()) == {"COMPLETED"} and len(names) == 9, names
    assert {"SITE_COUNTS (site 1)", "SYQURE:PARTY (party 2)", "REPORT (1)"} <= set(names)
    html = (host / "report.html").read_text()
    assert "SYQURE:PARTY" in html and "REPORT" in html
    assert message_files(host / "runs") == []
    assert not processes_mentioning(str(host))


# -- the other profiles, each on its real counterpart (slow)

@pytest.mark.slow
def test_syftbox_profile_one_nextflow_per_site_started_seconds_apart(nextflow, procs, reference, tmp_path):
    """Three sites on a real SyftBox server, each with its own client, its own
    launch folder and its own configuration (its SyftBox folder, its input
    only), each running `nextflow run nextflow/main.nf -profile syftbox --pid N`."""
    from syftbox_net import EMAILS, SyftBoxNet

    net = SyftBoxNet(procs, tmp_path / "syftbox", EMAILS, interval=0.1)
    run_id = f"nf-sbx-{int(time.time())}"
    base = free_base(span=300)
    runs = []
    for pid in (2, 0, 1):  # not in pid order, seconds apart
        site = clone(tmp_path / f"site{pid}")
        cfg = {"layout": "syftbox", "run_id": run_id, "syftbox": {"folder": str(net.folders[EMAILS[pid]])},
               "parties": [{"pid": p, "email": EMAILS[p]} for p in range(3)],
               "engine": {"name": "mpyc", "program": str(EXAMPLE / "allele_counts.py")},
               "inputs": {pid: str(EXAMPLE / f"data/site{pid}.json")} if pid else {},
               "ports": {"base": base, "stride": 100}}
        (site / "run.yaml").write_text(yaml.safe_dump(cfg))
        runs.append((pid, site, procs.start(
            nextflow.args("run", MAIN, "-profile", "syftbox", "--pid", pid, "--run_config", "run.yaml", "--run_id", run_id),
            log=site / "nextflow.out", cwd=site, env=nextflow.env)))
        time.sleep(3)
    for _pid, site, proc in runs:
        assert procs.wait(proc, 300) == 0, (site / "nextflow.out").read_text()[-4000:]
    for pid, site, _ in runs:
        results = site / "results/allele-counts"
        assert json.loads((results / f"party-{pid}.json").read_text()) == reference[pid]
        summary = checked_summary(results / "summary.json", "parties")
        assert [p["result"] for p in summary["parties"]] == [f"party-{pid}.json" if p == pid else None for p in range(3)]
        assert summary["run_id"] == run_id and [p["state"] for p in summary["parties"]] == ["done"] * 3
        own = net.folders[EMAILS[pid]] / "datasites" / EMAILS[pid] / "app_data/syqure/runs" / run_id
        assert own.is_dir() and not [f for f in own.glob("*_to_*/*") if f.name[:1].isdigit()]
        assert not processes_mentioning(str(site))


@pytest.mark.slow
@pytest.mark.timeout(2100)  # it may wait for test_slurm.py's cluster to stop (one at a time: slurm_cluster.py)
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="the test cluster runs its daemons as root")
def test_slurm_profile_one_party_per_node(nextflow, reference, tmp_path_factory):
    """Every process a job on the real SLURM test cluster (slurm_cluster.py),
    each party on the node --placement names."""
    from slurm_cluster import NODES, Cluster

    cluster = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        root = clone(cluster.shared / "pipeline")  # one host: the nodes share every folder
        (root / "placement.json").write_text(json.dumps({"placement": {str(p): n for p, n in enumerate(NODES)}}))
        (root / "poll.config").write_text("executor { pollInterval = '1 sec'; queueStatInterval = '2 sec' }\n")
        done = nextflow.run("run", MAIN, "-profile", "slurm", "-c", "poll.config", "-params-file", "placement.json",
                            "--run_config", run_config(root), "--partition", "compute", cwd=root,
                            env={"SLURM_CONF": str(cluster.conf)}, timeout=600)
        assert done.returncode == 0, done.stdout[-4000:] + cluster.logs()
        status = root / "runs/allele-counts/messages/status"
        nodes = {p: json.loads((status / f"party-{p}.json").read_text()).get("node") for p in range(3)}
        assert nodes == dict(enumerate(NODES))
        for pid in range(3):
            assert json.loads((root / f"results/allele-counts/party-{pid}.json").read_text()) == reference[pid]
        jobs = cluster.run("squeue", "-h", "-t", "all", "-o", "%j %N %T").stdout.splitlines()
        assert sorted(j.split()[1] for j in jobs if "PARTY" in j) == list(NODES), jobs
        assert len(jobs) == 6 and all(j.endswith("COMPLETED") for j in jobs), jobs  # prepare, build, parties, collect
        assert message_files(root / "runs") == [] and cluster.jobs() == []
    finally:
        cluster.stop()


@pytest.mark.slow
def test_sequre_fork_builds_once_and_every_party_runs_that_build(nextflow, reference, tmp_path):
    """Real Sequre (the fork, sequre_install.py) under -profile local: BUILD
    compiles the program once, into a fresh cache; each PARTY gets BUILD's
    binary (a network namespace each: the ports are compiled in) and compiles
    nothing; the results are the MPyC job's."""
    from sequre_install import sequre_env, sequre_home
    from jobs import FIELDS

    env = sequre_env(sequre_home(), "fork", tmp_path / "builds")
    root = clone(tmp_path / "clone")
    cfg = yaml.safe_load((EXAMPLE / "config-sequre.yaml").read_text())
    cfg.pop("workdir")
    cfg["engine"]["program"] = str(EXAMPLE / cfg["engine"]["program"])
    cfg["inputs"] = {pid: str(EXAMPLE / path) for pid, path in cfg["inputs"].items()}
    (root / "sequre.yaml").write_text(yaml.safe_dump(cfg))
    done = nextflow.run("run", MAIN, "-profile", "local", "--run_config", "sequre.yaml", "--run", "sequre", cwd=root,
                        env={"PATH": env["PATH"], "SYQURE_WF_CACHE": env["SYQURE_WF_CACHE"],
                             "SEQURE_CERT_DIR": env["SEQURE_CERT_DIR"]}, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:]
    folders = {(d / ".command.sh").read_text(): d for d in task_folders(root)}
    build = next(d for text, d in folders.items() if "syqure-wf build" in text)
    assert "compiled in" in (build / ".command.err").read_text()
    parties = [d for text, d in folders.items() if "syqure-wf party" in text]
    assert len(parties) == 3
    for party in parties:
        assert "--binary program" in (party / ".command.sh").read_text()
        assert (party / "program").resolve() == (build / "program").resolve()
        assert "compil" not in (party / ".command.err").read_text()
    assert len([p for p in (tmp_path / "builds").iterdir() if p.is_dir()]) == 1  # one build, in the cache
    for pid in range(3):
        result = json.loads((root / f"results/sequre/party-{pid}.json").read_text())
        assert {f: result[f] for f in FIELDS} == {f: reference[0][f] for f in FIELDS}
    versions = yaml.safe_load((root / "results/pipeline_info/versions.yml").read_text())
    assert versions["SYQURE:BUILD"]["sequre"] == "fork" and versions["SYQURE:BUILD"]["codon"].startswith("0.18")
    resolved = yaml.safe_load((root / "results/pipeline_info/sequre.run.yaml").read_text())
    assert resolved["isolation"] == "netns" and resolved["framing"] == "sequre"
    assert message_files(root / "runs") == [] and not processes_mentioning(str(root))


@pytest.mark.slow
@pytest.mark.timeout(3000)  # the image is built first where this session has not yet
def test_podman_profile_runs_every_process_in_the_image(nextflow, reference, tmp_path):
    """`-profile local,podman`: every process in localhost/syqure-wf:<version>
    (the image CI builds), the parties over the host's loopback; the results
    are `syqure-wf run`'s."""
    from container_image import env, image
    from syqure_wf import __version__

    tag = image()  # built by the project's recipe (container/build.sh), once per session
    assert tag.endswith(f":{__version__}"), tag  # the tag every module names
    root = clone(tmp_path / "clone")
    example = root / "examples/allele-counts"  # inside the launch folder: mounted into the tasks
    config = run_config(root, engine={"name": "mpyc", "program": str(example / "allele_counts.py")},
                        inputs={1: str(example / "data/site1.json"), 2: str(example / "data/site2.json")})
    done = nextflow.run("run", MAIN, "-profile", "local,podman", "--run_config", config, cwd=root,
                        env={"PWD": str(root), "CONTAINERS_CONF": env()["CONTAINERS_CONF"]}, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:]
    for pid in range(3):
        assert json.loads((root / f"results/allele-counts/party-{pid}.json").read_text()) == reference[pid]
    checked_summary(root / "results/allele-counts/summary.json", "parties")
    command = next((root / "work").glob("*/*/.command.run")).read_text()
    assert "podman" in command and tag in command and "--network host" in command
    assert message_files(root / "runs") == []
