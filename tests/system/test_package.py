"""The package as a site installs it (issue 36): `python -m build` makes a
wheel and an sdist from the tracked files; the wheel holds every module and
data file of the package and nothing else; installed into a fresh venv (not
editable, dependencies from the index) it runs `doctor` and the example."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import REPO
from jobs import EXAMPLE, plain_sum

pytestmark = pytest.mark.slow


def tracked_copy(dest: Path) -> Path:
    """The checkout's tracked files (as they are in the work tree): a build
    writes build/ and *.egg-info beside its sources, never into the checkout."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True,
                           timeout=60).stdout.decode().split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    src = tracked_copy(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(src)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def version() -> str:
    namespace: dict = {}
    exec((REPO / "syqure_wf" / "__init__.py").read_text(), namespace)
    return namespace["__version__"]


def test_the_wheel_holds_the_package_and_nothing_else(dist):
    wheel, = dist.glob("*.whl")
    assert wheel.name.startswith(f"syqure_wf-{version()}-py3-none-any")
    names = set(zipfile.ZipFile(wheel).namelist())
    package = {str(p.relative_to(REPO)) for p in (REPO / "syqure_wf").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert package <= names, f"missing from the wheel: {sorted(package - names)[:10]}"
    strays = {n for n in names if not n.startswith(("syqure_wf/", f"syqure_wf-{version()}.dist-info/"))}
    assert not strays, strays
    info = f"syqure_wf-{version()}.dist-info"
    assert f"{info}/licenses/LICENSE" in names
    meta = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert f"Version: {version()}" in meta and "Requires-Python: >=3.11" in meta
    assert "License-Expression: Apache-2.0" in meta
    entry = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "syqure-wf = syqure_wf.cli:main" in entry and "sbproxy = syqure_wf.cli:sbproxy" in entry


def test_the_sdist_builds_the_same_package(dist):
    sdist, = dist.glob("*.tar.gz")
    names = tarfile.open(sdist).getnames()
    top = f"syqure_wf-{version()}"
    for need in ("LICENSE", "pyproject.toml", "README.md", "syqure_wf/__init__.py", "syqure_wf/schemas/run.schema.yaml"):
        assert f"{top}/{need}" in names, need


def test_the_wheel_in_a_fresh_venv_runs_doctor_and_the_example(dist, tmp_path):
    wheel, = dist.glob("*.whl")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of the checkout's
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py, bin_ = venv / "bin" / "python", venv / "bin"
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    where = subprocess.run([str(py), "-c", "import syqure_wf; print(syqure_wf.__file__)"], capture_output=True,
                           text=True, timeout=60, cwd=tmp_path, env=env)
    assert str(venv) in where.stdout, where.stdout + where.stderr  # the wheel's copy, not the checkout's
    said = subprocess.run([str(bin_ / "syqure-wf"), "--version"], capture_output=True, text=True, timeout=60, env=env)
    assert version() in said.stdout
    doctor = subprocess.run([str(bin_ / "syqure-wf"), "doctor", "--config", str(EXAMPLE / "config.yaml")],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    work = tmp_path / "run"
    run = subprocess.Popen([str(bin_ / "syqure-wf"), "run", "--config", str(EXAMPLE / "config.yaml"),
                            "--workdir", str(work), "--json"], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, start_new_session=True, env=env)
    try:
        out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err.decode()[-3000:]
    assert json.loads(out)["ok"]
    for pid in range(3):
        result = json.loads((work / "outputs" / f"party-{pid}.json").read_text())
        assert result["allele_count"] == plain_sum("allele_count")
