"""The docs are for users who have only this repository: they name no path
outside it, cite no file they do not have, and every file or folder of the
repository they name exists."""
from __future__ import annotations

import re
import subprocess

from conftest import REPO

TOP = ("bench", "config", "container", "docs", "examples", "nextflow", "profiles", "syqure_wf", "tests", "workflow")
ROOT_FILES = ("README.md", "PROTOCOL.md", "SECURITY.md", "pyproject.toml")


def named_paths(text: str) -> set[str]:
    """Repository paths the text names: `a/b/c`, the root documents."""
    found = set()
    for token in re.findall(r"[\w.*{}<>,-]+(?:/[\w.*{}<>,-]*)+|\b[A-Z]+\.md\b|pyproject\.toml", text):
        first = token.split("/")[0]
        if first in TOP or token in ROOT_FILES:
            found.add(token.rstrip("/.,"))
    return found


def exists(path: str) -> bool:
    if any(c in path for c in "{}<>"):
        path = re.split(r"[{<]", path)[0].rsplit("/", 1)[0]  # the fixed part: its folder must exist
    return any(REPO.glob(path)) if "*" in path else (REPO / path).exists()


def test_readme_names_nothing_outside_the_repository():
    text = (REPO / "README.md").read_text()
    assert "../" not in text, [line for line in text.splitlines() if "../" in line]


def docs() -> list[str]:
    return ["README.md", "PROTOCOL.md", "SECURITY.md", "tests/README.md",
            *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]


def test_every_file_the_docs_name_exists():
    for doc in docs():
        text = (REPO / doc).read_text()
        missing = sorted(p for p in named_paths(text) if not exists(p))
        assert not missing, f"{doc} names files that do not exist: {missing}"
        assert named_paths(text) or doc != "README.md"


def test_the_check_finds_a_missing_file():
    assert named_paths("see `syqure_wf/proxy.py` and tests/README.md") == {"syqure_wf/proxy.py", "tests/README.md"}
    assert not exists("syqure_wf/proxy.py") and exists("syqure_wf/transport/proxy.py")
    assert exists("nextflow/modules/*/main.nf") and exists("results/{run}/x") is False


def test_every_test_file_tests_readme_names_exists():
    text = (REPO / "tests/README.md").read_text()
    names = set(re.findall(r"\b(test_\w+\.py|\w+_cluster\.py)\b", text))
    assert names and not sorted(n for n in names if not any((REPO / "tests").glob(f"**/{n}")))


def test_no_tracked_file_cites_the_developers_findings():
    """The developers' findings file is their notes, outside the repository: a doc or
    a comment states the fact itself."""
    proc = subprocess.run(["git", "grep", "-n", "FINDINGS" + ".md"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode in (0, 1), proc.stderr
    assert not proc.stdout.strip(), proc.stdout
