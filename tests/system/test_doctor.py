"""`syqure-wf doctor` on this machine, and on machines where one thing is
missing or broken: Codon off PATH, a Sequre stdlib without its plugin, a
read-only message folder, no network namespaces, a SyftBox client or server
down, SLURM tools missing (the real cluster: test_slurm.py)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import HERE, PY, REPO
from sequre_install import sequre_env, sequre_home

EXAMPLE = REPO / "examples/allele-counts"


def doctor(*args, env=None, prefix=()):
    proc = subprocess.run([*prefix, PY, "-m", "syqure_wf", "doctor", *map(str, args)], capture_output=True,
                          text=True, timeout=400, env=env or os.environ, stdin=subprocess.DEVNULL, cwd=REPO)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    lines = {}
    for line in proc.stdout.splitlines():
        state, name = line[:5].strip(), line[6:22].strip()
        lines[name] = (state, line[23:])
    return proc.returncode, lines, proc.stdout + proc.stderr


def config(tmp_path: Path, name="run.yaml", **changes) -> Path:
    cfg = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    cfg.update(program_paths(cfg), workdir=str(tmp_path / "run"), **changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def program_paths(cfg: dict) -> dict:
    engine = dict(cfg["engine"])
    engine["program"] = str(EXAMPLE / engine["program"])
    return {"engine": engine, "inputs": {k: str(EXAMPLE / v) for k, v in cfg.get("inputs", {}).items()}}


def sequre_config(tmp_path: Path, **changes) -> Path:
    cfg = yaml.safe_load((EXAMPLE / "config-sequre.yaml").read_text())
    cfg.update(program_paths(cfg), workdir=str(tmp_path / "run"), **changes)
    path = tmp_path / "sequre.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def without(path_var: str, *tools: str) -> str:
    """PATH without the folders that hold any of ``tools``."""
    keep = [d for d in path_var.split(os.pathsep) if not any(Path(d, t).exists() for t in tools)]
    return os.pathsep.join(keep)


def test_the_mpyc_example_can_run_here(tmp_path):
    code, lines, out = doctor("--config", config(tmp_path))
    assert code == 0, out
    assert lines["python"][0] == "ok" and lines["mpyc"][0] == "ok" and lines["config"][0] == "ok"
    assert lines["message folder"][0] == "ok" and str(tmp_path / "run" / "messages") in lines["message folder"][1]
    assert not (tmp_path / "run").exists()  # the check creates nothing


def test_sequre_can_run_here_and_the_plugin_check_is_cached(tmp_path):
    home = sequre_home()
    env = sequre_env(home, "fork", tmp_path / "cache")
    code, lines, out = doctor("--config", sequre_config(tmp_path), env=env)
    assert code == 0, out
    assert lines["codon"][0] == "ok" and "0.18" in lines["codon"][1]
    assert lines["sequre stdlib"] == ("ok", f"{home / 'fork' / 'stdlib'} (fork flavour)")
    assert lines["sequre plugin"][0] == "ok" and lines["libgmp"][0] == "ok"
    assert lines["namespaces"][0] == "ok"  # three parties here: one namespace each
    assert lines["sequre listener"][0] == "ok" and "binds 0.0.0.0" in lines["sequre listener"][1]
    assert len(list((tmp_path / "cache" / "doctor").glob("plugin-*.ok"))) == 1


def test_no_codon_on_path_fails_naming_it(tmp_path):
    env = {**os.environ, "PATH": without(os.environ["PATH"], "codon")}
    code, lines, out = doctor("--config", sequre_config(tmp_path), env=env)
    assert code == 1
    state, detail = lines["codon"]
    assert state == "FAIL" and "codon was not found" in detail and "PATH" in detail.split("->")[1]
    assert "check(s) failed: codon" in out
    # the MPyC job needs no Codon: the same machine can run it
    code, lines, _ = doctor("--config", config(tmp_path), env=env)
    assert code == 0 and lines["codon"][0] == "--"


def test_a_stdlib_without_its_plugin_fails(tmp_path):
    home = sequre_home()
    broken = tmp_path / "sequre-no-plugin"
    (broken / "bin").mkdir(parents=True)
    shutil.copy(home / "fork" / "plugin.toml", broken)
    (broken / "stdlib").symlink_to(home / "fork" / "stdlib")  # the stdlib, but no build/libsequre.so
    wrapper = (home / "fork" / "bin" / "codon").read_text().replace(str(home / "fork"), str(broken))
    (broken / "bin" / "codon").write_text(wrapper)
    (broken / "bin" / "codon").chmod(0o755)
    env = {**os.environ, "PATH": f"{broken / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "SYQURE_WF_CACHE": str(tmp_path / "cache")}
    code, lines, out = doctor("--config", sequre_config(tmp_path), env=env)
    assert code == 1, out
    assert lines["codon"][0] == "ok" and lines["sequre stdlib"][0] == "ok"
    state, detail = lines["sequre plugin"]
    assert state == "FAIL" and "libsequre.so" in detail and "reinstall the Sequre plugin" in detail
    assert not (tmp_path / "cache" / "doctor").exists() or not list((tmp_path / "cache" / "doctor").iterdir())


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a read-only tmpfs")
def test_a_read_only_message_folder_fails(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=True, timeout=30)
    try:
        code, lines, out = doctor("--config", config(tmp_path, data_dir=str(folder / "messages")))
    finally:
        subprocess.run(["umount", str(folder)], check=True, timeout=30)
    assert code == 1
    state, detail = lines["message folder"]
    assert state == "FAIL" and str(folder) in detail and "Read-only file system" in detail


def test_no_network_namespaces_fails_where_the_run_needs_them(tmp_path):
    home = sequre_home()
    env = sequre_env(home, "fork", tmp_path / "cache")
    # unshare refused, as a container's seccomp profile does (a user namespace needs no CAP_SYS_ADMIN)
    no_admin = [PY, str(HERE / "nosys.py"), "unshare=EPERM", "--"]
    code, lines, out = doctor("--config", sequre_config(tmp_path), env=env, prefix=no_admin)
    assert code == 1, out
    state, detail = lines["namespaces"]
    assert state == "FAIL" and "Operation not permitted" in detail and "one party per machine" in detail
    # one Sequre party per machine needs none
    code, lines, out = doctor("--config", sequre_config(tmp_path), "--pid", "1", env=env, prefix=no_admin)
    assert code == 0, out
    assert lines["namespaces"][0] == "--"


def test_slurm_tools_missing_fail_naming_them(tmp_path):
    env = {**os.environ, "PATH": without(os.environ["PATH"], "sbatch", "squeue", "sacct")}
    code, lines, out = doctor("--config", config(tmp_path), "--profile", REPO / "profiles/slurm-3party", env=env)
    assert code == 1
    assert lines["sbatch"][0] == "FAIL" and lines["squeue"][0] == "FAIL" and lines["status command"][0] == "FAIL"
    assert "not found on PATH" in lines["status command"][1]
    code, lines, _ = doctor("--config", config(tmp_path), "--profile", REPO / "profiles/local-3party", env=env)
    assert code == 0 and lines["slurm"][0] == "--"


def test_a_bad_config_is_one_failed_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("parties: [\n")
    code, lines, out = doctor("--config", bad)
    assert code == 1 and lines["config"][0] == "FAIL" and "not valid YAML" in lines["config"][1]
