"""A real MPC job end to end (issue 3): real MPyC parties, real proxies,
real files, started by the real CLI."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from conftest import (PROGRAMS, PY, engine_of, free_base, message_files, one_line_error, output,
                      processes_mentioning, wait_until)
from jobs import EXAMPLE, cli, party_pids, plain_sum, rounds_config, running
from summary_schema import checked_summary


def test_example_job_through_files_equals_plain_sum(procs, tmp_path):
    work = tmp_path / "run"
    proc = procs.start(cli("run", "--config", EXAMPLE / "config.yaml", "--workdir", work, "--json"))
    assert procs.wait(proc, 120) == 0, output(proc)
    out, _ = proc.communicate()
    summary = json.loads(out)
    assert summary["ok"] and [p["state"] for p in summary["parties"]] == ["done"] * 3
    for pid in range(3):
        result = json.loads((work / "outputs" / f"party-{pid}.json").read_text())
        assert result["allele_count"] == plain_sum("allele_count")
        assert result["allele_number"] == plain_sum("allele_number")
        assert len(result["variants"]) == 10_000
    assert message_files(work / "messages") == []
    # one output format (docs/outputs.md): summary.json beside the results, no local path
    written = checked_summary(work / "outputs" / "summary.json", "run")
    assert [(p["pid"], p["state"], p["result"]) for p in written["parties"]] == [
        (pid, "done", f"party-{pid}.json") for pid in range(3)]
    assert str(tmp_path) not in (work / "outputs" / "summary.json").read_text()
    for f in (work / "messages" / "status").iterdir():  # shares and records stay private
        assert f.stat().st_mode & 0o077 == 0
    for pid in range(3):  # a local disk: events announced every message, nobody polls
        record = json.loads((work / "messages" / "status" / f"party-{pid}.json").read_text())
        assert record["wakeup"].startswith(f"change events on {work / 'messages'} ("), record["wakeup"]


@pytest.mark.parametrize("victim", ["runner", "engine"])
def test_killing_a_party_stops_the_others_naming_it(procs, tmp_path, victim):
    config = rounds_config(tmp_path)
    work = tmp_path / "run"
    proc = procs.start(cli("run", "--config", config, "--quiet"), log=tmp_path / "run.log")
    wait_until(lambda: running(work, 3), 60, "all parties to exchange messages", step=0.2)
    runner = party_pids(work)[1]
    if victim == "runner":
        os.kill(runner, signal.SIGKILL)
    else:
        engine = engine_of(runner)
        os.kill(engine, signal.SIGKILL)
    killed_at = time.monotonic()
    assert procs.wait(proc, 30) == 1
    elapsed = time.monotonic() - killed_at
    text = output(proc)
    assert elapsed < 10, f"took {elapsed:.1f} s\n{text}"
    for pid in (0, 2):
        record = json.loads((work / "messages" / "status" / f"party-{pid}.json").read_text())
        assert record["state"] == "failed" and "party 1" in record["reason"], record
    assert "party 1" in text.splitlines()[-1]
    # no runner, proxy or engine left: engines carry the run folder in their environment
    wait_until(lambda: not processes_mentioning(str(work)), 10, "every process of the run to be gone")


def test_a_party_that_never_starts_is_named(procs, tmp_path):
    config = rounds_config(tmp_path, timeouts={"start": 3})
    cfg_path = tmp_path / "run" / "config.yaml"
    from syqure_wf.run import config as config_mod
    from syqure_wf.run.local import prepare

    prepare(config_mod.load(config))  # resolves the run id once, for every party
    runners = [procs.start(cli("party", "--config", cfg_path, "--pid", p)) for p in (0, 1)]
    for r in runners:
        assert procs.wait(r, 30) == 1
        assert "party 2 never started" in output(r)


def test_two_runs_in_one_folder_never_mix(procs, tmp_path):
    config = rounds_config(tmp_path)
    work = tmp_path / "run"
    first = procs.start(cli("run", "--config", config, "--quiet"))
    wait_until(lambda: running(work, 3), 60, "the first run to carry messages", step=0.2)
    second = procs.start(cli("run", "--config", config, "--quiet"))
    assert procs.wait(second, 30) != 0
    text = output(second)
    assert "earlier run" in text or "in use" in text or "holds messages" in text, text
    procs.kill(first)
    wait_until(lambda: not processes_mentioning(str(work)), 10, "the first run's processes to be gone")
    # what the killed run left behind is refused, never delivered to a new run
    left = message_files(work / "messages")
    if left:
        third = procs.start(cli("run", "--config", config, "--quiet"))
        assert procs.wait(third, 30) == 2
        assert "earlier run" in one_line_error(output(third))


BAD = {
    "unknown engine": ({"engine": {"name": "spdz"}}, "engine.name"),
    "missing program": ({"engine": {"name": "mpyc", "program": "nowhere.py"}}, "no such file"),
    "one party": ({"parties": 1}, "parties"),
    "duplicate pids": ({"parties": [{"pid": 0}, {"pid": 1}, {"pid": 1}]}, "pid 1 appears twice"),
    "ports overlap": ({"parties": [{"pid": p, "base_port": 30000} for p in range(3)]}, "would both use port"),
    "tls with sequre framing": ({"engine": {"name": "sequre", "program": "x.codon", "tls": True},
                                 "framing": "sequre"}, "TLS"),
    "inputs missing": ({"inputs": {"1": "missing.json"}}, "no such file"),
    "unknown key": ({"engin": {}}, "unknown setting"),
    "not yaml": ("engine: [unclosed", "not valid YAML"),
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_configuration_is_one_line_and_exit_2(procs, tmp_path, case, command):
    body, words = BAD[case]
    base = {"engine": {"name": "mpyc", "program": str(EXAMPLE / "allele_counts.py")}, "parties": 3,
            "workdir": str(tmp_path / "run")}
    path = tmp_path / "bad.yaml"
    path.write_text(body if isinstance(body, str) else yaml.safe_dump({**base, **body}))
    proc = procs.start(cli(command, "--config", path))
    assert procs.wait(proc, 30) == 2
    line = one_line_error(output(proc))
    assert words in line and str(path) in line
    assert not (tmp_path / "run" / "logs").exists()  # nothing started


def test_validate_accepts_the_example():
    import subprocess
    done = subprocess.run(cli("validate", "--config", EXAMPLE / "config.yaml"), capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0 and "ok: 3 parties, engine mpyc" in done.stdout


def sequre_wire_config(tmp_path, **extra):
    cfg = {"engine": {"name": "sequre", "command": f"{{python}} {PROGRAMS / 'sequre_wire.py'} {{pid}} {{parties}} env 40"},
           "parties": 3, "workdir": str(tmp_path / "run"), **extra}
    path = tmp_path / "wire.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_sequre_engine_carries_sequre_frames(procs, tmp_path):
    """The sequre engine's ports and environment (SEQURE_PORT_BASE, SEQURE_CP_IPS)
    with a program that speaks Sequre's wire protocol (Codon is not installable here)."""
    base = free_base(span=300)
    path = sequre_wire_config(tmp_path, ports={"base": base, "stride": 100})
    proc = procs.start(cli("run", "--config", path, "--json"))
    assert procs.wait(proc, 120) == 0, output(proc)
    summary = json.loads(proc.communicate()[0])
    for party in summary["parties"]:
        for ch in party["channels"].values():  # one file per frame under sequre framing
            assert ch["sent_messages"] == 40 and ch["received_messages"] == 40
    for pid in range(3):
        assert "all byte-exact" in (tmp_path / "run" / "logs" / f"party-{pid}.log").read_text()


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/unshare").exists(), reason="needs root and unshare")
def test_port_base_compiled_in_runs_with_a_namespace_per_party(procs, tmp_path):
    """A Sequre build that ignores SEQURE_PORT_BASE: every party on Sequre's
    own ports. isolation: none is refused on one host, naming the fix; the
    default (auto) gives each party a network namespace."""
    fixed = {"name": "sequre", "command": f"{{python}} {PROGRAMS / 'sequre_wire.py'} {{pid}} {{parties}} 9000 20",
             "port_base_compiled_in": True}
    refused = sequre_wire_config(tmp_path, engine=fixed, isolation="none")
    proc = procs.start(cli("run", "--config", refused))
    assert procs.wait(proc, 30) == 2
    line = one_line_error(output(proc))
    assert "would both use port 900" in line and "isolation: netns" in line
    isolated = sequre_wire_config(tmp_path, engine=fixed)
    proc = procs.start(cli("run", "--config", isolated, "--quiet"))
    assert procs.wait(proc, 120) == 0, output(proc) + (tmp_path / "run/logs/party-1.runner.log").read_text()


def test_no_network_namespaces_is_one_line_saying_what_to_do(procs, tmp_path):
    """Where namespaces cannot be made (here: no unshare on PATH), a Sequre
    build's run on one host stops before anything starts, saying why and
    what to do instead."""
    fixed = {"name": "sequre", "command": f"{{python}} {PROGRAMS / 'sequre_wire.py'} {{pid}} {{parties}} 9000 20",
             "port_base_compiled_in": True}
    path = sequre_wire_config(tmp_path, engine=fixed)
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python3").symlink_to(PY)
    proc = procs.start(cli("run", "--config", path), env={**os.environ, "PATH": str(bare)})
    assert procs.wait(proc, 30) == 2
    line = one_line_error(output(proc))
    assert "network namespace" in line and "unshare" in line and "one party per machine" in line, line
    assert not (tmp_path / "run" / "logs").exists()


def test_the_run_configuration_is_frozen_and_changed_only_by_replace(tmp_path):
    """No step changes what another step sees: a new configuration, never
    the old one changed (issue 27)."""
    import dataclasses

    from syqure_wf.run import config as config_mod
    from syqure_wf.run.isolation import isolate

    cfg = config_mod.resolve({"engine": {"name": "command", "command": "true"}, "isolation": "none"}, None, tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.isolation = "netns"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.party(1).input = tmp_path / "x"
    for mapping in (cfg.engine, cfg.raw, cfg.syftbox, cfg.party(1).env):
        with pytest.raises(TypeError):
            mapping["binary"] = "x"
    with pytest.raises((AttributeError, TypeError)):
        cfg.parties.append(cfg.party(0))
    built = cfg.with_engine(binary="/b").with_party(1, input=tmp_path / "in.json")
    assert built.engine["binary"] == "/b" and built.party(1).input == tmp_path / "in.json"
    assert "binary" not in cfg.engine and cfg.party(1).input is None and built.party(0) is cfg.party(0)
    settled = isolate(cfg, 3)
    assert settled is not cfg and settled.isolation == "none" and cfg.isolation == "none"
    assert yaml.safe_load(yaml.safe_dump(built.resolved()))["engine"]["binary"] == "/b"
