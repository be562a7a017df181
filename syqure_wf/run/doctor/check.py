"""One line of ``syqure-wf doctor``: ``ok``, ``FAIL`` (with what to do) or
``--`` (not needed here, shown for information)."""
from __future__ import annotations

import re
from dataclasses import dataclass

OK, FAIL, INFO = "ok", "FAIL", "--"


@dataclass
class Check:
    name: str
    state: str  # OK, FAIL or INFO
    detail: str

    def line(self) -> str:
        return f"{self.state:<5} {self.name:<16} {self.detail}"


def ok(name, detail):
    return Check(name, OK, detail)


def fail(name, detail, fix):
    return Check(name, FAIL, f"{detail} -> {fix}")


def info(name, detail):
    return Check(name, INFO, detail)


def last_line(text: str, code: int) -> str:
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {code}"
