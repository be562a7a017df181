"""The project's image (issue 36), built by container/build.sh: the example's
three parties run in it with no network and give the plain sums, the same
as `syqure-wf run` on the host; its Codon builds the Sequre example with the
Sequre plugin, and `doctor` finds Codon, the stdlib and the plugin."""
from __future__ import annotations

import json
import shutil

import pytest

from container_image import image, run
from test_run import EXAMPLE, plain_sum

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tag():
    return image()


def test_the_example_runs_in_the_image_without_a_network(tag, tmp_path):
    proc = run(tag, "syqure-wf", "run", "--config", "/example/config.yaml", "--workdir", "/out/run", "--json",
               mounts=[(EXAMPLE, "/example", "ro"), (tmp_path, "/out", "rw")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["ok"]
    for pid in range(3):
        result = json.loads((tmp_path / "run" / "outputs" / f"party-{pid}.json").read_text())
        assert result["allele_count"] == plain_sum("allele_count")
        assert result["allele_number"] == plain_sum("allele_number")


def test_the_images_codon_builds_sequre_and_doctor_finds_it(tag, tmp_path):
    shutil.copytree(EXAMPLE, tmp_path / "example")
    proc = run(tag, "sh", "-c", "syqure-wf build --config /w/config-sequre.yaml && "
               "syqure-wf doctor --config /w/config-sequre.yaml", mounts=[(tmp_path / "example", "/w", "rw")],
               timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for what in ("codon", "sequre stdlib"):
        assert any(line.split()[:2] == ["ok", what] or f" {what}" in line for line in proc.stdout.splitlines()), \
            proc.stdout
    assert "0.18" in proc.stdout
