"""The package's layers: files (this user's private files, the one reader
of peer JSON) know nothing else; keys (the sites' keys and the handshake)
know only files; transport (pure protocol and its file and socket
adapters) knows nothing of runs, engines or the CLI; engines know nothing
of runs or the CLI; runs know nothing of sites or the CLI; sites (across
organisations) know nothing of the CLI; the CLI knows nothing of Biovault's
runner, which sits on top. No two modules import each other, even lazily.
No module is over 400 lines."""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "syqure_wf"
# layer -> the syqure_wf subpackages it may import
ALLOWED = {
    "files": {"errors", "files"},
    "keys": {"errors", "files", "keys"},
    "transport": {"errors", "files", "keys", "transport"},
    "engines": {"errors", "files", "transport", "engines"},
    "run": {"errors", "files", "transport", "engines", "run", "schemas"},
    "sites": {"errors", "files", "keys", "transport", "engines", "run", "sites"},
    "desk": {"errors", "files", "keys", "transport", "sites", "desk"},  # the steward's page, on top of sites
    "cli": {"errors", "files", "keys", "transport", "engines", "run", "sites", "desk", "cli", "__version__"},
    "biovault": {"errors", "files", "transport", "engines", "run", "biovault"},
}


def files(layer: str) -> list[Path]:
    """A layer's modules: a folder's, or one file's."""
    folder = PACKAGE / layer
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{layer}.py"]


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
        for path in files(layer):
            for target in imported(path) - allowed:
                wrong.append(f"{path.relative_to(REPO)} imports syqure_wf.{target}")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_a_wrong_arrow(tmp_path):
    fake = tmp_path / "syqure_wf" / "transport" / "x.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("import os\nfrom .framing import HEADER\n"
                    "def f():\n    from ..run.config import RunConfig\n    from .. import cli\n")
    assert imported(fake, tmp_path) == {"transport", "run", "cli"}


def module_imports(root: Path = REPO) -> dict[tuple, set[tuple]]:
    """Each module of the package (its dotted parts) -> the modules of the
    package it imports, lazy imports included."""
    def name(path: Path) -> tuple:
        parts = path.relative_to(root).with_suffix("").parts
        return parts[:-1] if parts[-1] == "__init__" else parts

    modules = {name(p): p for p in (root / "syqure_wf").rglob("*.py")}

    def known(parts: list[str]) -> tuple | None:
        found = tuple(parts)
        while found and found not in modules:
            found = found[:-1]
        return found or None

    graph = {}
    for module, path in modules.items():
        here = path.relative_to(root).with_suffix("").parts
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = list(here[: len(here) - node.level]) if node.level else []
                parts = base + (node.module.split(".") if node.module else [])
                targets |= {known(parts + [a.name]) if tuple(parts + [a.name]) in modules else known(parts)
                            for a in node.names}
            elif isinstance(node, ast.Import):
                targets |= {known(a.name.split(".")) for a in node.names}
        graph[module] = {t for t in targets if t and t != module}
    return graph


def circles(graph: dict) -> list[list]:
    """The modules that import each other in a loop (Tarjan's strongly
    connected components of more than one module)."""
    index, low, stack, found = {}, {}, [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(".".join(m) for m in component))
    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_no_modules_import_each_other():
    assert circles(module_imports()) == []


def test_the_circle_check_sees_a_circle(tmp_path):
    for name, text in {"__init__.py": "", "a.py": "from .b import f\n", "b.py": "def f():\n    from . import a\n",
                       "c.py": "from syqure_wf import a\n"}.items():
        (tmp_path / "syqure_wf").mkdir(exist_ok=True)
        (tmp_path / "syqure_wf" / name).write_text(text)
    assert circles(module_imports(tmp_path)) == [["syqure_wf.a", "syqure_wf.b"]]


MAX_LINES = 400  # a module a reader takes in at once (issue 27)


def long_modules(root: Path = REPO) -> list[str]:
    """The package's modules over MAX_LINES lines."""
    return [f"{p.relative_to(root)}: {n} lines" for p in sorted((root / "syqure_wf").rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_LINES]


def test_no_module_is_over_400_lines():
    assert long_modules() == []


def test_the_size_check_sees_a_long_module(tmp_path):
    (tmp_path / "syqure_wf" / "sites").mkdir(parents=True)
    (tmp_path / "syqure_wf" / "transport").mkdir()
    (tmp_path / "syqure_wf" / "sites" / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "syqure_wf" / "sites" / "short.py").write_text("x = 1\n" * MAX_LINES)
    (tmp_path / "syqure_wf" / "transport" / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    assert long_modules(tmp_path) == [f"syqure_wf/sites/long.py: {MAX_LINES + 1} lines",
                                      f"syqure_wf/transport/long.py: {MAX_LINES + 1} lines"]


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


PURE = ("files/peer_json.py", "keys/handshake.py")  # pure outside protocol/ (protocol/ reads peer JSON with the first)


def test_protocol_core_does_no_io():
    core = sorted((PACKAGE / "transport" / "protocol").glob("*.py")) + [PACKAGE / p for p in PURE]
    assert len(core) >= 10
    wrong = [f"{p.relative_to(REPO)} imports {', '.join(sorted(io_imports(p)))}" for p in core if io_imports(p)]
    assert not wrong, "\n".join(wrong)


def test_the_io_check_sees_an_io_import(tmp_path):
    fake = tmp_path / "x.py"
    fake.write_text("import json\nfrom os import path\ndef f():\n    import asyncio.events\n    from . import time\n")
    assert io_imports(fake) == {"os", "asyncio"}
