"""Text that crosses between sites, both ways. What a peer wrote (a
state's reason, a manifest's args, a program's source) is shown with its
control characters escaped, so that no peer writes to an operator's
terminal; what this site tells its peers is one line, bounded, without
its own paths (logs stay at the site)."""
from __future__ import annotations

import re

# C0 and C1 controls, DEL, line and paragraph separators, bidirectional overrides
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_PATH = re.compile(r"(?<![\w.~:/@-])(?:~|/)[^\s'\",;)\]}]*")
REASON_MAX = 300  # characters of one reason line a site publishes


def shown(text, keep_lines: bool = False) -> str:
    """``text`` (a peer's) with every control character as ``\\xNN`` or
    ``\\uNNNN``; newlines and tabs kept when ``keep_lines`` (a source file)."""
    text = text if isinstance(text, str) else str(text)

    def escape(m: re.Match) -> str:
        c = m.group()
        if keep_lines and c in "\n\t":
            return c
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
    return _CONTROL.sub(escape, text)


def outgoing(text) -> str:
    """One line for the peers: whitespace folded, controls escaped, every
    absolute path of this site replaced by ``<path>``, at most REASON_MAX characters."""
    line = _PATH.sub("<path>", " ".join(str(text).split()))
    line = shown(line)
    return line if len(line) <= REASON_MAX else line[: REASON_MAX - 1] + "…"
