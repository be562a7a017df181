"""The package's layers: transport (pure protocol and its file and socket
adapters) knows nothing of runs, engines or the CLI; engines know nothing of
runs or the CLI; runs know nothing of sites or the CLI; sites (across
organisations) know nothing of the CLI; the CLI knows nothing of Biovault's
runner, which sits on top. No two modules import each other, even lazily."""
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
    "cli": {"errors", "transport", "engines", "run", "sites", "cli", "__version__"},
    "biovault": {"errors", "transport", "engines", "run", "biovault"},
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
