"""Everything the system tests install on first use, installed at once.
CI runs it before its two pytest-xdist workers start, so that no test waits
for the other worker's install inside its own time bound. One line a step;
a step that cannot be done here says why, and its tests skip saying so.
Usage: python3 tests/install.py"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402 (the helpers beside it import as the tests import them)

import browser  # noqa: E402
import container_image  # noqa: E402
import fuse_views  # noqa: E402
import nextflow_install  # noqa: E402
import slurm_cluster  # noqa: E402
from sequre_install import sequre_home  # noqa: E402
from syftbox_net import syftbox_venv  # noqa: E402

def bindfs() -> None:
    why = fuse_views.fuse_problem()
    if why:
        pytest.skip(why)


STEPS = {
    "Nextflow": nextflow_install.install_with_archive,
    "SyftBox": syftbox_venv,
    "Sequre": sequre_home,
    "SLURM": slurm_cluster.ensure_installed,
    "bindfs": bindfs,
    "Chromium": browser.ensure_installed,
    "podman": container_image.ensure_installed,
}


def main() -> int:
    missing = 0
    for name, step in STEPS.items():
        why = None
        try:
            step()
        except (pytest.skip.Exception, pytest.fail.Exception) as exc:
            why = exc.msg
        except Exception as exc:  # each step's own error, said in one line
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"{name}: {'ok' if why is None else 'not installed: ' + str(why)}", flush=True)
        missing += why is not None
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
