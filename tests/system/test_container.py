"""The project's image (issue 36), built by container/build.sh: the example's
three parties run in it with no network and give the plain sums, the same
as `syqure-wf run` on the host; its Codon builds the Sequre example with the
Sequre plugin, and `doctor` finds Codon, the stdlib and the plugin."""
from __future__ import annotations

import json
import shutil

import pytest

from container_image import image, run
from jobs import EXAMPLE, plain_sum

pytestmark = [pytest.mark.minutes(2), pytest.mark.slow, pytest.mark.timeout(2400)]  # the image is built once, in the first test


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
    mounts = [(tmp_path / "example", "/w", "rw")]
    build = run(tag, "syqure-wf", "build", "--config", "/w/config-sequre.yaml", mounts=mounts, timeout=1800)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    # doctor's verdict on namespaces is the container's (no CAP_SYS_ADMIN here), not the image's
    doctor = run(tag, "syqure-wf", "doctor", "--config", "/w/config-sequre.yaml", mounts=mounts)
    said = {line.split()[1]: line for line in doctor.stdout.splitlines() if line.startswith(("ok ", "FAIL "))}
    for what in ("codon", "sequre", "libgmp", "mpyc"):
        assert said.get(what, "").startswith("ok"), doctor.stdout + doctor.stderr
    assert "0.18.0" in said["codon"] and "plugin" in doctor.stdout
