"""Views of one folder through FUSE, as cluster nodes see one NFS export:
each view is a `bindfs` (Debian) mount of the same source folder, and a
write through one view raises no change event on another
(`test_cluster_fs.py` checks it). bindfs is installed from Debian on first use (as root); where FUSE or
bindfs cannot be had, the tests skip with the reason. Every mount is undone
when the test ends, each step bounded."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import one_at_a_time


def fuse_problem() -> str | None:
    """Why FUSE views cannot be made here, or None once bindfs is installed."""
    if not Path("/dev/fuse").exists():
        return "no /dev/fuse here"
    if shutil.which("bindfs"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "bindfs is not installed and this user cannot install it (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        with one_at_a_time("apt"):  # (apt's own lock would fail a second install at once)
            done = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "bindfs"],
                                  env=env, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
                done = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "bindfs"],
                                      env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return "installing bindfs from Debian timed out"
    if done.returncode != 0 or not shutil.which("bindfs"):
        return f"cannot install bindfs: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
    return None


def mount(source: Path, point: Path) -> None:
    point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["bindfs", str(source), str(point)], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"bindfs cannot mount here: {done.stderr.strip() or done.returncode}")


def unmount(point: Path) -> None:
    for cmd in (["fusermount", "-u", str(point)], ["umount", "-l", str(point)]):
        try:
            if subprocess.run(cmd, capture_output=True, timeout=15).returncode == 0:
                return
        except (OSError, subprocess.TimeoutExpired):
            continue


class Views:
    """``count`` views of ``source``: ``points[i]`` shows the same files."""

    def __init__(self, root: Path):
        self.root = root
        self.source = root / "export"
        self.source.mkdir(parents=True, exist_ok=True)
        self.points: list[Path] = []

    def make(self, count: int) -> list[Path]:
        for _ in range(count):
            point = self.root / f"view{len(self.points)}"
            mount(self.source, point)
            self.points.append(point)
        return self.points[-count:]

    def close(self) -> None:
        for point in reversed(self.points):
            unmount(point)


@pytest.fixture
def views(tmp_path):
    problem = fuse_problem()
    if problem:
        pytest.skip(problem)
    v = Views(tmp_path / "fuse")
    try:
        yield v
    finally:
        v.close()
