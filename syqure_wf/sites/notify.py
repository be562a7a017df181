"""The policy's ``notify``: tell a site's people when a run waits for
them, failed or is done, so nobody watches a terminal. A command hook
gets the run's record as JSON on stdin; Apprise URLs (email, chat) go
through the ``apprise`` library (the ``notify`` extra). Each run's state
is told once per agent; a hook runs on a thread of its own, bounded, and
its output goes to ``notify.log`` in the agent's own folder: a slow or
failing hook never holds the agent."""
from __future__ import annotations

import json
import shlex
import subprocess
import threading
from pathlib import Path
from typing import Callable

from .lifecycle import DONE, FAILED, PENDING

EVENTS = (PENDING, FAILED, DONE)
HOOK_SECONDS = 60.0  # default bound on one hook
SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "when": {"type": "array", "items": {"enum": list(EVENTS)},
               "description": "The states told (default: pending_approval, failed, done)."},
        "command": {"oneOf": [{"type": "string", "minLength": 1},
                              {"type": "array", "minItems": 1, "items": {"type": "string"}}],
                    "description": "A command (argv, no shell; run in the policy's folder) given the "
                                   "run's record as JSON on stdin."},
        "apprise": {"type": "array", "items": {"type": "string", "minLength": 1},
                    "description": "Apprise URLs (mailto://, slack://...): needs syqure-wf[notify]."},
        "timeout": {"type": "number", "exclusiveMinimum": 0,
                    "description": "Seconds one command may take (default 60)."},
    },
    "description": "Whom to tell when a run waits for approval, failed or is done.",
}


def argv_of(command, base: Path) -> list[str]:
    """The hook's argv; a relative program path is the policy folder's (its working directory too)."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if "/" in argv[0] and not argv[0].startswith(("/", "~")):
        argv[0] = str(base / argv[0])
    return argv


def message(record: dict, me: str) -> tuple[str, str]:
    """Title and body for a person (Apprise)."""
    state, rid, sub = record.get("state"), record.get("run_id"), record.get("submitter")
    title = f"syqure-wf: run {rid} from {sub} {'waits for approval' if state == PENDING else state} at {me}"
    body = "\n".join(f"{k}: {record[k]}" for k in ("state", "code", "reason", "program", "expires")
                     if record.get(k) not in (None, ""))
    return title, body + "\nsyqure-wf desk (or show / approve) at this site decides."


class Notifier:
    def __init__(self, log: Path, me: str, config: Callable[[], tuple[dict, Path]],
                 say: Callable[[str], None], audit: Callable[..., None]) -> None:
        self.log, self.me, self.config, self.say, self.audit = log, me, config, say, audit
        self.told: dict[tuple, str] = {}

    def published(self, key: tuple, record: dict) -> None:
        """A run's record was published: tell, once per state, if the policy asks."""
        notify, base = self.config()
        state = record.get("state")
        if not notify or state not in notify.get("when", EVENTS) or self.told.get(key) == state:
            return
        self.told[key] = state
        threading.Thread(target=self._tell, args=(dict(record), notify, base), daemon=True).start()

    def _tell(self, record: dict, notify: dict, base: Path) -> None:
        rid, state = record.get("run_id"), record.get("state")
        if notify.get("command"):
            argv = argv_of(notify["command"], base)
            try:
                with open(self.log, "ab") as out:
                    done = subprocess.run(argv, input=json.dumps(record).encode(), stdout=out,
                                          stderr=subprocess.STDOUT, timeout=notify.get("timeout", HOOK_SECONDS),
                                          start_new_session=True, cwd=base)
                failed = f"exit {done.returncode}" if done.returncode else ""
            except (OSError, subprocess.TimeoutExpired) as exc:
                failed = f"{type(exc).__name__}: {exc}"
            self._said("command", rid, state, failed)
        if notify.get("apprise"):
            self._said("apprise", rid, state, self._apprise(record, notify["apprise"]))

    def _apprise(self, record: dict, urls: list[str]) -> str:
        try:
            import apprise
        except ImportError:
            return "the apprise package is not installed (pip install 'syqure-wf[notify]')"
        sender = apprise.Apprise()
        for url in urls:
            sender.add(url)
        title, body = message(record, self.me)
        return "" if sender.notify(body=body, title=title) else "apprise could not deliver to every URL"

    def _said(self, how: str, rid, state, failed: str) -> None:
        self.audit("notified", rid, None, state=state, how=how, **({"failed": failed} if failed else {}))
        if failed:
            self.say(f"notify ({how}) of {rid} {state} failed: {failed} (see {self.log})")
