"""The docs are for users who have only this repository: they name no path
outside it, cite no file they do not have, and every file or folder of the
repository they name exists, as does every section they cite. The README
stays short and leads to every page under docs/."""
from __future__ import annotations

import re
import subprocess

from conftest import REPO

TOP = ("bench", "config", "container", "docs", "examples", "nextflow", "profiles", "syqure_wf", "tests", "workflow")
ROOT_FILES = ("README.md", "PROTOCOL.md", "SECURITY.md", "pyproject.toml")
MAX_README_LINES = 250  # what a newcomer reads at once; the rest is under docs/ (issue 34)


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


def git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 1), proc.stderr  # 1: git grep found nothing
    return proc.stdout


def pages() -> list[str]:
    """The pages under docs/, tracked or about to be."""
    return sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))


def docs() -> list[str]:
    """Every document of the repository: the tracked Markdown files and the pages."""
    return sorted({"README.md", "PROTOCOL.md", "SECURITY.md", "tests/README.md", *git("ls-files", "*.md").split(),
                   *pages()})


def test_the_docs_name_nothing_outside_the_repository():
    for doc in ("README.md", "PROTOCOL.md", "SECURITY.md", *pages()):
        text = (REPO / doc).read_text()
        assert "../" not in text, (doc, [line for line in text.splitlines() if "../" in line])


def test_every_file_the_docs_name_exists():
    assert {"docs/operators.md", "config/README.md"} <= set(docs())
    for doc in docs():
        text = (REPO / doc).read_text()
        missing = sorted(p for p in named_paths(text) if not exists(p))
        assert not missing, f"{doc} names files that do not exist: {missing}"
        assert named_paths(text) or doc != "README.md"


# a doc may name a module from inside the package (`protocol/judge.py`, `run/confine.py`)
SUBPACKAGES = ("cli", "desk", "doctor", "engines", "protocol", "run", "schemas", "sites", "transport")


def package_paths(text: str) -> set[str]:
    """Paths the text names, in backquotes, from inside the package."""
    return {t.rstrip("/") for t in re.findall(r"`([\w.-]+(?:/[\w.*-]*)+)`", text) if t.split("/")[0] in SUBPACKAGES}


def in_package(path: str) -> bool:
    return (REPO / "syqure_wf" / path).exists() or any((REPO / "syqure_wf").glob(f"**/{path}"))


def test_every_module_the_docs_name_from_inside_the_package_exists():
    for doc in docs():
        missing = sorted(p for p in package_paths((REPO / doc).read_text()) if not in_package(p))
        assert not missing, f"{doc} names modules the package does not hold: {missing}"


def test_the_check_finds_a_missing_module():
    assert package_paths("`protocol/judge.py`, `run/module.py` and `a/b.py`") == {"protocol/judge.py", "run/module.py"}
    assert in_package("protocol/judge.py") and in_package("run/module.py") and not in_package("run/proxy.py")


def test_the_check_finds_a_missing_file():
    assert named_paths("see `syqure_wf/proxy.py` and tests/README.md") == {"syqure_wf/proxy.py", "tests/README.md"}
    assert not exists("syqure_wf/proxy.py") and exists("syqure_wf/transport/proxy.py")
    assert exists("nextflow/modules/*/main.nf") and exists("results/{run}/x") is False


def test_the_readme_is_short_and_names_every_page_under_docs():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= MAX_README_LINES, f"README.md has {len(text.splitlines())} lines"
    assert pages() and not [p for p in pages() if p not in text], "pages under docs/ the README does not name"


def cited_sections(text: str) -> list[tuple[str, str]]:
    """The sections a text cites as `README, "Title"`, `PROTOCOL.md, "Title"` or `docs/x.md "Title"`."""
    return [(doc if doc.endswith(".md") else doc + ".md", title)
            for doc, title in re.findall(r'([\w/]*(?:README|[A-Z]+\.md|\w+\.md))(?:\.md)?,? "([^"]+)"', text)]


def titles(doc: str) -> str:
    """What a section is found by: a doc's headings and its bold lead-ins."""
    text = (REPO / doc).read_text()
    return "\n".join([line for line in text.splitlines() if line.startswith("#")] + re.findall(r"\*\*(.+?)\*\*", text))


def test_every_section_a_file_cites_exists():
    assert cited_sections('see (README, "Sequre"), README.md "Set-up" and docs/operators.md, "The desk"') == [
        ("README.md", "Sequre"), ("README.md", "Set-up"), ("docs/operators.md", "The desk")]
    stale = [line for line in git("grep", "-n", "-E", '\\.md,? "|README,? "').splitlines()
             if not line.split(":", 1)[0].endswith("test_docs.py")  # this file's own examples
             and any(not (REPO / doc).exists() or title.lower() not in titles(doc).lower()
                     for doc, title in cited_sections(line.split(":", 2)[2]))]
    assert not stale, stale


def test_every_test_file_tests_readme_names_exists():
    text = (REPO / "tests/README.md").read_text()
    names = set(re.findall(r"\b(test_\w+\.py|\w+_cluster\.py)\b", text))
    assert names and not sorted(n for n in names if not any((REPO / "tests").glob(f"**/{n}")))


def test_no_tracked_file_cites_the_developers_findings():
    """The developers' findings file is their notes, outside the repository: a doc or
    a comment states the fact itself."""
    found = git("grep", "-n", "FINDINGS" + ".md")
    assert not found.strip(), found
