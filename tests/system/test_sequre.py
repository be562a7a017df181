"""Real Sequre end to end (issue 11): real Codon 0.18 and both Sequre
flavours (../shared/sequre), the shipped example compiled once and run
through real proxies, each party in its own network namespace."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import yaml

from conftest import PY, REPO, command_lines, message_files, one_line_error, output, wait_until
from jobs import FIELDS
from sequre_install import sequre_env, sequre_home

from syqure_wf.engines.build import Toolchain, build_key, compile_error

EXAMPLE = REPO / "examples" / "allele-counts"
pytestmark = [pytest.mark.minutes(3), pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                reason="Sequre's compiled-in ports need a network namespace per party (root, unshare)")]


@pytest.fixture(scope="session")
def home():
    return sequre_home()


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """One build cache for the session: each flavour's example compiles once."""
    return tmp_path_factory.mktemp("builds")


def cli(*args):
    return [PY, "-m", "syqure_wf", *map(str, args)]


def run(procs, tmp_path, env, *args, name="run", timeout=600):
    proc = procs.start(cli(*args), log=tmp_path / f"{name}.log", env=env)
    code = procs.wait(proc, timeout)
    return code, output(proc)


@pytest.fixture(scope="session")
def mpyc_result(tmp_path_factory):
    """The MPyC job's result on the same data: what Sequre must match."""
    import subprocess

    work = tmp_path_factory.mktemp("mpyc") / "run"
    subprocess.run(cli("run", "--config", EXAMPLE / "config.yaml", "--workdir", work, "--quiet"),
                   check=True, timeout=180, capture_output=True)
    return json.loads((work / "outputs" / "party-0.json").read_text())


def check_results(work: Path, expected: dict) -> None:
    for pid in range(3):
        result = json.loads((work / "outputs" / f"party-{pid}.json").read_text())
        for field in FIELDS:
            assert result[field] == expected[field], f"party {pid}: {field} differs from the MPyC job's"
        assert result["party"] == pid
    assert message_files(work / "messages") == []


def test_fork_example_through_files_equals_the_mpyc_job(procs, tmp_path, home, cache, mpyc_result):
    """The shipped example as shipped, with the fork's codon on PATH: Sequre
    frames one file each (framing sequre), every party's JSON as the MPyC job's."""
    env = sequre_env(home, "fork", cache)
    work = tmp_path / "run"
    code, text = run(procs, tmp_path, env, "run", "--config", EXAMPLE / "config-sequre.yaml", "--workdir", work)
    assert code == 0, text
    assert "compiling allele_counts.codon" in text and "fork Sequre" in text
    resolved = yaml.safe_load((work / "config.yaml").read_text())
    assert resolved["framing"] == "sequre" and resolved["isolation"] == "netns"
    check_results(work, mpyc_result)
    record = json.loads((work / "messages" / "status" / "party-1.json").read_text())
    assert sum(ch["sent_messages"] for ch in record["channels"].values()) > 0
    # its listener binds every interface (compiled in): its namespace is what keeps it private
    assert record["local_hop"] == "proven" and "network namespace of its own" in record["listener"]


def test_a_rerun_compiles_nothing(procs, tmp_path, home, cache, mpyc_result):
    env = sequre_env(home, "fork", cache)
    code, text = run(procs, tmp_path, env, "build", "--config", EXAMPLE / "config-sequre.yaml", name="build")
    assert code == 0, text
    built = [p for p in cache.iterdir() if p.is_dir() and p.name.startswith("allele_counts-")]
    stamps = {p: (p / "allele_counts").stat().st_mtime_ns for p in built}
    for attempt in range(2):
        work = tmp_path / f"run{attempt}"
        started = time.monotonic()
        code, text = run(procs, tmp_path, env, "run", "--config", EXAMPLE / "config-sequre.yaml",
                         "--workdir", work, name=f"run{attempt}")
        assert code == 0, text
        assert "compiling" not in text, text
        assert time.monotonic() - started < 45  # a compile alone takes about a minute here
        check_results(work, mpyc_result)
    assert {p: (p / "allele_counts").stat().st_mtime_ns for p in built} == stamps
    code, text = run(procs, tmp_path, env, "build", "--config", EXAMPLE / "config-sequre.yaml", name="again")
    assert code == 0 and "from the cache, nothing compiled" in text, text


def test_upstream_with_tls_through_stream_framing(procs, tmp_path, home, cache, mpyc_result):
    """Upstream Sequre: raw seed bytes, then TLS (its default) on every
    channel; only stream framing carries it."""
    env = sequre_env(home, "upstream", cache)
    work = tmp_path / "run"
    code, text = run(procs, tmp_path, env, "run", "--config", EXAMPLE / "config-sequre.yaml", "--workdir", work)
    assert code == 0, text
    assert "upstream Sequre" in text
    resolved = yaml.safe_load((work / "config.yaml").read_text())
    assert resolved["framing"] == "stream"
    for pid in range(3):
        log = (work / "logs" / f"party-{pid}.log").read_text(errors="replace")
        assert "TLS=ON" in log and "TLS handshake complete" in log, log[-2000:]
    check_results(work, mpyc_result)


def test_validate_reports_codons_error_with_file_and_line(procs, tmp_path, home, cache):
    shutil.copytree(EXAMPLE, tmp_path / "ex", ignore=shutil.ignore_patterns("*.json"))
    program = tmp_path / "ex" / "allele_counts.codon"
    text = program.read_text()
    broken_line = next(i for i, ln in enumerate(text.splitlines(), 1) if "ac1 = Stensor.enc" in ln)
    program.write_text(text.replace("ac1 = Stensor.enc(m, counts if me == 1 else zeros, source_pid=1, modulus=modulus)",
                                    "ac1 = Stensor.enc(m, counts if me == 1 else zeros, 1)"))
    env = sequre_env(home, "fork", cache)
    code, text = run(procs, tmp_path, env, "validate", "--config", tmp_path / "ex" / "config-sequre.yaml")
    assert code == 1
    line = one_line_error(text.split("\n", 1)[1] if text.startswith("compiling") else text)
    assert re.search(rf"allele_counts\.codon:{broken_line}:\d+(-\d+)?: .*no method 'enc'", line), line
    code, text = run(procs, tmp_path, env, "validate", "--config", EXAMPLE / "config-sequre.yaml", name="good")
    assert code == 0 and ": ok, program " in text, text


def test_a_killed_sequre_party_fails_the_run_naming_it(procs, tmp_path, home, cache):
    env = sequre_env(home, "fork", cache)
    code, text = run(procs, tmp_path, env, "build", "--config", EXAMPLE / "config-sequre.yaml", name="build")
    assert code == 0, text
    work = tmp_path / "run"
    proc = procs.start(cli("run", "--config", EXAMPLE / "config-sequre.yaml", "--workdir", work, "--quiet"),
                       log=tmp_path / "run.log", env=env)

    def victim():  # party 2's Sequre binary, as soon as it runs
        return next((pid for pid, args in command_lines()
                     if args and args[0].endswith(b"/allele_counts") and args[-1] == b"2"), None)

    pid = wait_until(victim, 60, "party 2's Sequre program to start", step=0.005)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    code = procs.wait(proc, 60)
    took = time.monotonic() - killed
    line = [ln for ln in output(proc).splitlines() if "error:" in ln][-1]
    assert code == 1 and "party 2" in line and "SIGKILL" in line, output(proc)
    assert took < 20, f"the run took {took:.1f} s to fail"


# -- the cache key (pure: a toolchain stand-in, real files)

def test_the_cache_key_covers_imports_flavour_version_and_flags(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "prog.codon").write_text("from helper import f\nimport lib.sub\nfrom sequre import mpc\n")
    (tmp_path / "helper.codon").write_text("def f(): return 1\n")
    (tmp_path / "lib" / "sub.codon").write_text("X = 1\n")
    (tmp_path / "unrelated.codon").write_text("Y = 2\n")
    prog = tmp_path / "prog.codon"
    fork = Toolchain("/bin/true", "0.18.0", None, "fork")
    key = build_key(prog, fork, ["-release"])
    (tmp_path / "unrelated.codon").write_text("Y = 3\n")
    assert build_key(prog, fork, ["-release"]) == key
    for change in (lambda: (tmp_path / "helper.codon").write_text("def f(): return 2\n"),
                   lambda: (tmp_path / "lib" / "sub.codon").write_text("X = 2\n")):
        change()
        assert build_key(prog, fork, ["-release"]) != key
        key = build_key(prog, fork, ["-release"])
    assert build_key(prog, fork, ["-debug"]) != key
    assert build_key(prog, Toolchain("/bin/true", "0.18.0", None, "upstream"), ["-release"]) != key
    assert build_key(prog, Toolchain("/bin/true", "0.19.0", None, "fork"), ["-release"]) != key


def test_compile_error_is_one_line_with_file_and_line():
    text = ("codon build ...\n\x1b[1m/w/ex/prog.codon:12:5-9: \x1b[1;31merror:\x1b[0m\x1b[1m name 'x' is not defined\x1b[0m\n"
            "/w/ex/prog.codon:40:1: error: during the realization of main()\n")
    import syqure_wf.engines.build as b

    assert compile_error(b._ANSI.sub("", text), Path("/w/ex/prog.codon")) == "prog.codon:12:5-9: name 'x' is not defined"


def test_snakemake_builds_once_and_runs_the_sequre_example(tmp_path, home, cache, mpyc_result):
    """The workflow with the Sequre config: a build job whose binary every
    party job runs; the same results as the MPyC job; a rerun does nothing."""
    import subprocess

    from jobs import copy_repo

    root = copy_repo(tmp_path / "clone")
    env = sequre_env(home, "fork", cache)
    cmd = [PY, "-m", "snakemake", "--profile", "local-3party", "--configfile", "config/config-sequre.yaml"]
    first = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert first.returncode == 0, first.stderr[-3000:]
    text = first.stdout + first.stderr
    assert text.count("rule build:") == 1 and text.count("rule party:") == 3, text[-3000:]
    for pid in range(3):
        result = json.loads((root / "results/allele-counts-sequre" / f"party-{pid}.json").read_text())
        for field in FIELDS:
            assert result[field] == mpyc_result[field]
    again = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
