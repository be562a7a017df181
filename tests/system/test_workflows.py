"""The workflows (issue 4): real Snakemake runs of the real workflow, the
embedding in a host pipeline, and the Nextflow scripts linted offline (the
real Nextflow runs: test_nextflow.py)."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from conftest import PROGRAMS, PY, REPO, free_base, message_files, processes_mentioning, wait_until
from jobs import copy_repo, plain_sum
from summary_schema import checked_summary

from syqure_wf import __version__

SNAKEMAKE = [PY, "-m", "snakemake"]


def snakemake(cwd: Path, *args, timeout=240):
    return subprocess.run([*SNAKEMAKE, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_local_3party_profile_runs_the_example(tmp_path):
    root = copy_repo(tmp_path / "clone")
    first = snakemake(root, "--profile", "local-3party")
    assert first.returncode == 0, first.stderr[-3000:]
    for pid in range(3):
        result = json.loads((root / "results/allele-counts" / f"party-{pid}.json").read_text())
        assert result["allele_count"] == plain_sum("allele_count")
        assert result["allele_number"] == plain_sum("allele_number")
    summary = checked_summary(root / "results/allele-counts/summary.json", "parties")
    assert [p["state"] for p in summary["parties"]] == ["done"] * 3
    assert message_files(root / "runs") == []
    assert not processes_mentioning(str(root))
    again = snakemake(root, "--profile", "local-3party")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    shutil.rmtree(root / "results")
    plan = snakemake(root, "--profile", "local-3party", "-n")
    assert plan.returncode == 0 and "party" in plan.stdout and not (root / "results").exists()


def test_too_few_cores_is_refused_up_front(tmp_path):
    root = copy_repo(tmp_path / "clone")
    done = snakemake(root, "--profile", "local-3party", "--cores", "2", timeout=60)
    assert done.returncode != 0
    assert "3 parties must run at once" in done.stdout + done.stderr
    assert not (root / "runs").exists()


def test_a_failing_party_fails_snakemake_quickly(tmp_path):
    root = copy_repo(tmp_path / "clone")
    (root / "fail.py").write_bytes((PROGRAMS / "party1_fails.py").read_bytes())
    (root / "fail.yaml").write_text(yaml.safe_dump({"run": "fails", "mpc": {
        "engine": {"name": "mpyc", "program": "fail.py"}, "parties": 3,
        "ports": {"base": free_base(span=300), "stride": 100}}}))
    t0 = time.monotonic()
    done = snakemake(root, "--profile", "local-3party", "--configfile", "fail.yaml", timeout=120)
    elapsed = time.monotonic() - t0
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "party 1 gives up: broken input" in out and "party 1" in out
    assert elapsed < 60, f"took {elapsed:.0f} s"
    wait_until(lambda: not processes_mentioning(str(root)), 10, "no process of the run left")
    assert message_files(root / "runs") == []
    assert not (root / "runs/fails/config.yaml").exists()  # the next attempt is a new run


def test_embedded_as_a_module_in_a_host_workflow(tmp_path):
    host = tmp_path / "host"
    shutil.copytree(REPO / "tests/host-workflow", host)
    (host / "config.yaml").write_text(yaml.safe_dump({
        "make_data": str(REPO / "examples/allele-counts/make_data.py"),
        "syqure_snakefile": str(REPO / "workflow/Snakefile"),
        "syqure": {"run": "host", "mpc": {
            "engine": {"name": "mpyc", "program": "examples/allele-counts/allele_counts.py"},
            "parties": 3, "inputs": {1: "sites/site1.json", 2: "sites/site2.json"},
            "ports": {"base": free_base(span=300), "stride": 100}}}}))
    done = snakemake(host, "--cores", "4")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    report = dict(line.split(" ", 1) for line in (host / "report.txt").read_text().splitlines())
    sites = [json.loads((host / "sites" / f"site{i}.json").read_text()) for i in (1, 2)]
    assert int(report["total_allele_count"]) == sum(sites[0]["allele_count"]) + sum(sites[1]["allele_count"])
    assert report["variants"] == "300"
    checked_summary(host / "mpc/results/host/summary.json")  # the module's outputs carry its prefix
    assert message_files(host / "mpc/runs") == []


# -- Nextflow, linted: reftrace parses DSL2 offline, in a second (test_nextflow.py runs it).

RULES = REPO / "tests" / "nextflow_rules.py"


def pipeline(dest: Path) -> Path:
    """The Nextflow pipeline alone: the root's main.nf and nextflow.config, and nextflow/."""
    shutil.copytree(REPO / "nextflow", dest / "nextflow")
    for name in ("main.nf", "nextflow.config", "nextflow_schema.json"):
        shutil.copy(REPO / name, dest / name)
    return dest


def reftrace(*args, cwd=None):
    return subprocess.run(["reftrace", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_nextflow_lints_clean_and_a_broken_copy_fails(tmp_path):
    good = reftrace("lint", "-r", RULES, "-d", pipeline(tmp_path / "good"))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "No issues found" in good.stdout
    broken = pipeline(tmp_path / "broken")
    main = broken / "nextflow/main.nf"
    main.write_text(main.read_text().replace("checkAllAtOnce(run.parties_here as int)", "checkAllAtOnce(run.parties_here as int", 1))
    bad = reftrace("lint", "-r", RULES, "-d", broken)
    assert bad.returncode == 1 and "main.nf" in bad.stdout + bad.stderr
    config = broken / "nextflow.config"
    shutil.copy(REPO / "nextflow/main.nf", main)
    assert reftrace("lint", "-r", RULES, "-d", broken).returncode == 0
    config.write_text(config.read_text().replace("profiles {", "profiles {{", 1))
    assert reftrace("lint", "-r", RULES, "-d", broken).returncode == 1


def test_nextflow_passes_reftraces_default_rules(tmp_path):
    """reftrace's own rules (nf-core's: params only inside closures, labels),
    which it writes as rules.py into the folder it runs in: a temporary one."""
    defaults = tmp_path / "defaults"
    defaults.mkdir()
    good = reftrace("lint", "-d", pipeline(tmp_path / "good"), cwd=defaults)
    # one deliberate departure: PARTY's label is process_mpc (no retry, the run's own time), not nf-core's process_single
    warnings = [line.strip() for line in good.stdout.splitlines() if "Warning" in line]
    assert good.returncode == 0 and warnings == [
        "Warning on line 7: process 'PARTY' has no standard label",
        "Warning on line 7: process 'PARTY' has non-standard labels: ['process_mpc']"], good.stdout + good.stderr
    assert (defaults / "rules.py").exists()
    broken = pipeline(tmp_path / "broken")
    config = broken / "nextflow.config"
    text = config.read_text()
    assert "queue = { params.partition }" in text
    config.write_text(text.replace("queue = { params.partition }", "queue = params.partition"))
    bad = reftrace("lint", "-d", broken, cwd=defaults)
    assert bad.returncode == 1 and "violates closure rule" in bad.stdout, bad.stdout


def test_host_nextflow_script_includes_syqure(tmp_path):
    host = tmp_path / "host"
    shutil.copytree(REPO / "tests/host-nextflow", host)
    shutil.copytree(REPO / "nextflow", host / "nextflow")
    assert reftrace("lint", "-r", RULES, "-d", host).returncode == 0
    info = json.loads(reftrace("info", "modules", "-d", ".", cwd=host).stdout)
    assert info["unresolved_includes"] == []
    resolved = {i["module_path"]: i["includes"] for i in info["resolved_includes"]}
    assert resolved["main.nf"] == ["nextflow/main.nf"]
    include = next(m for m in info["modules"] if m["path"] == "main.nf")["includes"][0]
    assert include["from_module"] == "./nextflow/main" and include["items"][0]["name"] == "SYQURE"


def test_slurm_profile_pins_each_party_to_its_node(tmp_path):
    root = copy_repo(tmp_path / "clone")
    plan = snakemake(root, "--profile", "profiles/slurm-3party", "-n", timeout=60)
    assert plan.returncode == 0, plan.stderr[-2000:]
    text = plan.stdout + plan.stderr
    for pid, node in ((0, "node-a"), (1, "node-b"), (2, "node-c")):
        block = text.split(f"wildcards: pid={pid}")[1].split("\n")[1]
        assert f"slurm_extra=--nodelist={node}" in block


def test_nextflow_slurm_profile_places_each_party(tmp_path):
    """reftrace parses the slurm profile's process scope (the real run on the
    test cluster: test_nextflow.py, slow). Every process is a SLURM job in the
    chosen partition; PARTY's cluster options come from the placement; BUILD
    gets memory to compile."""
    from reftrace import ConfigFile

    config = ConfigFile.from_file(str(REPO / "nextflow.config")).config_file
    text = (REPO / "nextflow.config").read_text().splitlines()
    slurm = [s for s in config.process_scopes if "executor = 'slurm'" in "\n".join(text[s.line_number - 1:s.line_number + 3])]
    assert len(slurm) == 1, [s.line_number for s in config.process_scopes]
    scope = slurm[0]
    assert {d.name for d in scope.directives} >= {"executor", "queue"}
    named = {n.name: {d.name: d for d in n.directives} for n in scope.named_scopes}
    assert "memory" in named["BUILD"]
    assert "placement" in str(named["PARTY"]["clusterOptions"].value)
    line = text[named["PARTY"]["clusterOptions"].line_number - 1]
    assert "--nodelist=${params.placement[meta.pid as String]}" in line


def test_every_nextflow_module_is_written_as_nf_core_writes_them(tmp_path):
    """A meta map with its inputs, versions.yml, a stub (-stub-run runs them:
    test_nextflow.py) and its conda environment; the rule fails a module without one."""
    modules = sorted((REPO / "nextflow/modules").glob("*/main.nf"))
    assert len(modules) == 5
    for module in modules:
        text = module.read_text()
        assert "tuple val(meta)" in text and "path 'versions.yml', emit: versions" in text and "stub:" in text, module
        assert 'conda "${moduleDir}/environment.yml"' in text and (module.parent / "environment.yml").exists()
        # the image next to conda, tagged with the package's version; ext.args and ext.when read; meta.yml
        assert f"    container 'localhost/syqure-wf:{__version__}'\n" in text, module
        assert "task.ext.args ?: ''" in text and "${args}" in text and "task.ext.when" in text, module
        meta = yaml.safe_load((module.parent / "meta.yml").read_text())
        assert meta["name"] == module.parent.name and meta["input"] and meta["output"], module
        assert f'"{module.parent.name.upper()}"' not in text  # versions through `syqure-wf versions`
        assert 'syqure-wf versions' in text.split("stub:")[0], module
    broken = pipeline(tmp_path / "broken")
    party = broken / "nextflow/modules/party/main.nf"
    party.write_text(party.read_text().replace('    conda "${moduleDir}/environment.yml"\n', "")
                     .replace("    container 'localhost/syqure-wf:" + __version__ + "'\n", ""))
    bad = reftrace("lint", "-r", RULES, "-d", broken)
    assert bad.returncode == 1 and "process 'PARTY' names no conda environment or container" in bad.stdout, bad.stdout


def test_prepare_with_a_run_dir_writes_only_its_output(tmp_path):
    """What Nextflow's PREPARE runs in its work folder: run.yaml there, the
    run folder named in it but not made (the parties make it)."""
    work, run_dir = tmp_path / "work", tmp_path / "runs" / "nf"
    work.mkdir()
    done = subprocess.run(["syqure-wf", "prepare", "--config", REPO / "examples/allele-counts/config.yaml", "--out",
                           "run.yaml", "--run-dir", run_dir, "--parties-here", "3"], cwd=work, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in work.iterdir()) == ["run.yaml"] and not (tmp_path / "runs").exists()
    resolved = yaml.safe_load((work / "run.yaml").read_text())
    assert resolved["workdir"] == str(run_dir) and resolved["data_dir"] == str(run_dir / "messages")


def git_clone_of_the_repo(tmp_path: Path, tag: str = "v-test") -> Path:
    """A git repository on this machine holding what a clone has, tagged."""
    repo = copy_repo(tmp_path / "remote")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x",
           "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "syqure-wf"], ["tag", tag]):
        done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    return repo


def test_a_module_pulled_from_git_runs_the_example(tmp_path):
    """The workflow as a host pulls it from a git repository (Snakemake's
    gitfile, as github() does from GitHub): its files come through
    workflow.source_path, the default example program from the repository."""
    repo = git_clone_of_the_repo(tmp_path)
    host = tmp_path / "host"
    host.mkdir()
    (host / "Snakefile").write_text(f'''
module syqure:
    snakefile: gitfile("{repo}", path="workflow/Snakefile", tag="v-test")
    config: config["syqure"]
    prefix: "mpc"

use rule * from syqure as syqure_*

rule all:
    input: "mpc/results/git/summary.json"
    default_target: True
''')
    data = REPO / "examples/allele-counts/data"
    (host / "config.yaml").write_text(yaml.safe_dump({"syqure": {"run": "git", "mpc": {
        "engine": {"name": "mpyc", "program": "examples/allele-counts/allele_counts.py"},  # in the repository
        "parties": 3, "inputs": {1: str(data / "site1.json"), 2: str(data / "site2.json")},
        "ports": {"base": free_base(span=300), "stride": 100}}}}))
    done = snakemake(host, "--cores", "4", "--configfile", "config.yaml")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    summary = checked_summary(host / "mpc/results/git/summary.json", "parties")
    assert [p["result"] for p in summary["parties"]] == [f"party-{p}.json" for p in range(3)]
    result = json.loads((host / "mpc/results/git/party-0.json").read_text())
    assert result["allele_count"] == plain_sum("allele_count")
    assert not (host / "workflow").exists() and not (host / "examples").exists()  # nothing of the repo copied here
    again = snakemake(host, "--cores", "4", "--configfile", "config.yaml")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stderr[-2000:]


def test_snakemake_lint_is_clean_in_every_mode(tmp_path):
    root = copy_repo(tmp_path / "clone")
    (root / "submit.yaml").write_text(yaml.safe_dump({"run": "sub", "submit": {
        "to": ["a@x.org", "b@y.org", "c@z.org"], "syftbox_folder": str(tmp_path), "email": "a@x.org",
        "expires": 60, "timeout": 30}, "mpc": {"engine": {"name": "mpyc", "program": "examples/allele-counts/allele_counts.py"},
                                            "inputs": {1: "counts", 2: "counts"}}}))
    for extra in ([], ["--configfile", "config/config-sequre.yaml"], ["--configfile", "submit.yaml"]):
        done = snakemake(root, "--lint", *extra, timeout=120)
        assert done.returncode == 0 and "workflow is in a good condition" in done.stdout + done.stderr, (
            extra, (done.stdout + done.stderr)[-3000:])
    plan = snakemake(root, "-n", "-p", "--cores", "1", "--configfile", "submit.yaml", timeout=120)
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "--expires 60" in plan.stdout and "--timeout 30" in plan.stdout  # the submit step's expiry and wait
