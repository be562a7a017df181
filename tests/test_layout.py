"""The package's layers: transport (pure protocol and its file and socket
adapters) knows nothing of runs, engines or the CLI; engines know nothing of
runs or the CLI; runs know nothing of sites or the CLI; sites (across
organisations) know nothing of the CLI."""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "syqure_wf"
# layer -> the syqure_wf subpackages it may import
ALLOWED = {
    "transport": {"errors", "transport"},
    "engines": {"errors", "transport", "engines"},
    "run": {"errors", "transport", "engines", "run", "schemas"},
    "sites": {"errors", "transport", "engines", "run", "sites"},
}


def imported(path: Path, root: Path = REPO) -> set[str]:
    """The first part under syqure_wf of every module the file imports,
    lazy imports inside functions included."""
    here = path.relative_to(root).with_suffix("").parts  # ('syqure_wf', 'run', 'party')
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(here[: len(here) - node.level])
                parts = base + (node.module.split(".") if node.module else [])
                names = [parts + [a.name] for a in node.names] if not node.module else [parts]
            else:
                names = [(node.module or "").split(".")]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names]
        else:
            continue
        for parts in names:
            if parts[0] == "syqure_wf" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_imports_point_one_way():
    wrong = []
    for layer, allowed in ALLOWED.items():
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            for target in imported(path) - allowed:
                wrong.append(f"{path.relative_to(REPO)} imports syqure_wf.{target}")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_a_wrong_arrow(tmp_path):
    fake = tmp_path / "syqure_wf" / "transport" / "x.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("import os\nfrom .framing import HEADER\n"
                    "def f():\n    from ..run.config import RunConfig\n    from .. import cli\n")
    assert imported(fake, tmp_path) == {"transport", "run", "cli"}


NO_IO = {"os", "asyncio", "socket", "time", "threading", "subprocess", "selectors", "shutil"}


def io_imports(path: Path) -> set[str]:
    """The IO modules (NO_IO) a file imports, lazy imports included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found & NO_IO


def test_protocol_core_does_no_io():
    core = sorted((PACKAGE / "transport" / "protocol").glob("*.py"))
    assert len(core) >= 8
    wrong = [f"{p.relative_to(REPO)} imports {', '.join(sorted(io_imports(p)))}" for p in core if io_imports(p)]
    assert not wrong, "\n".join(wrong)


def test_the_io_check_sees_an_io_import(tmp_path):
    fake = tmp_path / "x.py"
    fake.write_text("import json\nfrom os import path\ndef f():\n    import asyncio.events\n    from . import time\n")
    assert io_imports(fake) == {"os", "asyncio"}
