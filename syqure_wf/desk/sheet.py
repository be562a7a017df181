"""The review sheet as the page draws it, from ``show``'s own lines (so a
field ``show`` gains shows up here too): a title, ``label  value`` fields,
each with the indented lines under it (a table where they have a header
row of capitals, as the co-parties do), and the program's files with their
source highlighted. Pure: lines and bytes in, plain data out; escaping is
the templates' (and Pygments')."""
from __future__ import annotations

import re

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer, TextLexer

from ..sites.peertext import shown

_FIELD = re.compile(r"^(\S+) {2,}(.*)$")
_HEADER = re.compile(r"^[A-Z][A-Z ]*$")
FORMATTER = HtmlFormatter(cssclass="hl", linenos="table", wrapcode=True)


def fields(lines: list[str]) -> dict:
    """``show``'s lines as {"title", "fields": [{"label", "value", "rows"|"table"}]}."""
    title, out = (lines[0] if lines else ""), []
    for line in lines[1:]:
        m = _FIELD.match(line)
        if m and not line.startswith(" "):
            out.append({"label": m.group(1), "value": m.group(2), "rows": []})
        elif out:
            out[-1]["rows"].append(line[2:] if line.startswith("  ") else line)
        else:
            out.append({"label": "", "value": line, "rows": []})
    for field in out:
        field["table"] = table(field["rows"])
    return {"title": title, "fields": out}


def table(rows: list[str]) -> dict | None:
    """Aligned rows under a header of capitals, cut at the header's columns."""
    if len(rows) < 2 or not _HEADER.match(rows[0]):
        return None
    starts = [m.start() for m in re.finditer(r"\S+", rows[0])]
    ends = starts[1:] + [None]
    cut = [[row[a:b].strip() for a, b in zip(starts, ends)] for row in rows]
    return {"head": cut[0], "body": cut[1:]}


def source(name: str, body: bytes) -> Markup:
    """One program file as highlighted, escaped HTML: Pygments escapes markup,
    ``shown`` every control character (bidirectional overrides too)."""
    text = shown(body.decode("utf-8", errors="replace"), keep_lines=True)
    lexer = PythonLexer() if name.endswith((".py", ".codon")) else TextLexer()
    return Markup(highlight(text, lexer, FORMATTER))


def highlight_css() -> str:
    return FORMATTER.get_style_defs(".hl")
