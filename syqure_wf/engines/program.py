"""A program and every file it imports from its own folder: what a build
caches on, and what a site approves (``syqure-wf digest``).

Codon compiles ``.codon`` and ``.py`` files alike and MPyC programs are
Python, so an import ``x.y`` found in the text names ``x/y.codon``,
``x/y.py`` or a package's ``__init__`` beside the program; imports from
elsewhere (the Sequre stdlib, MPyC, Python's own) are the machine's, not
the program's.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

SUFFIXES = (".codon", ".py")
_IMPORT = re.compile(r"^\s*(?:from\s+(\.*[\w.]*)\s+import|import\s+([\w.]+(?:\s*,\s*[\w.]+)*))", re.M)


def imports(program: Path, suffixes: tuple[str, ...] = SUFFIXES) -> list[Path]:
    """The program and every file it imports from its own folder, recursively,
    the program first."""
    root = program.parent
    seen: dict[Path, None] = {}
    todo = [program]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = None
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for name in imported_names(text):
            rel = name.lstrip(".").replace(".", os.sep)
            base = path.parent if name.startswith(".") else root
            for suffix in suffixes:
                for cand in (base / f"{rel}{suffix}", base / rel / f"__init__{suffix}"):
                    if rel and cand.is_file() and cand.resolve().is_relative_to(root.resolve()):
                        todo.append(cand)
    return sorted(seen, key=lambda p: (p != program, str(p)))


def imported_names(text: str) -> list[str]:
    """Module names a program's text imports (``.x`` for a relative import)."""
    names = []
    for m in _IMPORT.finditer(text):
        names += [m.group(1)] if m.group(1) is not None else [n.strip() for n in m.group(2).split(",")]
    return names


def digest(entry: str, files: dict[str, bytes | str]) -> str:
    """``sha256:<hex>`` over the entry's name and every file's name and
    SHA-256 (``files``: name to bytes, or to the hex SHA-256 already taken)."""
    h = hashlib.sha256(b"syqure-wf program 1\nentry " + entry.encode() + b"\n")
    for name in sorted(files):
        data = files[name]
        sha = data if isinstance(data, str) else hashlib.sha256(data).hexdigest()
        h.update(name.encode() + b"\0" + sha.encode() + b"\n")
    return "sha256:" + h.hexdigest()


def program_files(program: Path) -> dict[str, bytes]:
    """The program's files by their names relative to its folder."""
    return {str(p.relative_to(program.parent)): p.read_bytes() for p in imports(program)}
