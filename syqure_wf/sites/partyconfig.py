"""This site's party of a submitted run: its own copy of the approved
program, and its run configuration (the submitter's settings, this site's
folder, input, engine settings, bounds and free local ports). The agent
writes both before it says ready; the submitter, to check a run here first."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import SyqureError
from ..files.private import make_private_dir, write_private
from .board import channel_id
from .manifest import Manifest


def write_program(m: Manifest, folder: Path) -> Path:
    """The manifest's program files, as they were approved, in a fresh private ``folder``."""
    shutil.rmtree(folder, ignore_errors=True)
    make_private_dir(folder)
    for name, data in m.files.items():
        make_private_dir((folder / name).parent)
        write_private(folder / name, data)
    return folder


def party_config(m: Manifest, pid: int, folder: Path, program: Path, local_input: Path | None,
                 workdir: Path, policy) -> dict:
    """This site's run configuration for its party of ``m``: the submitter's
    settings, this site's folder, input, engine settings and bounds."""
    timeouts = dict(m.config.get("timeouts") or {})
    timeouts["run"] = min(timeouts.get("run") or policy.max_seconds, policy.max_seconds)
    engine = {**m.config["engine"], **policy.engine, "program": str(program / m.entry)}
    raw = {"run_id": channel_id(*m.key), "layout": "syftbox", "syftbox": {"folder": str(folder)},
           # other sites' parties run elsewhere: only this site's ports are this machine's
           "parties": [{"pid": i, "email": e, "host": "localhost" if i == pid else f"site-{i}"}
                       for i, e in enumerate(m.parties)],
           "engine": engine, "workdir": str(workdir), "timeouts": timeouts, "isolation": isolation(policy),
           # the program: a clean environment, Landlock's view and the socket filter (run/confine.py):
           # where this machine has them, or no run (policy confine: required)
           "confine": {"env": "clean", **({"files": "landlock", "sockets": "seccomp"}
                                          if policy.confine == "required" else {"files": "auto", "sockets": "auto"})},
           "max_message": min(m.config.get("max_message", policy.max_message), policy.max_message),
           **{k: m.config[k] for k in ("framing",) if k in m.config}}
    if policy.memory is not None:
        raw["memory"] = policy.memory
    if local_input is not None:
        raw["inputs"] = {str(pid): str(local_input)}
    pinned = {e: policy.fingerprint(e) for i, e in enumerate(m.parties) if i != pid and policy.fingerprint(e)}
    if pinned:  # sealed by the sites' keys as every syftbox run; the policy's pins decide whose
        raw["encryption"] = {"pinned": pinned}
    if m.engine == "mpyc":  # ports of its own, free now, so that runs at once never meet
        from ..transport.protocol.ports import max_offset

        span = 2 * max_offset(len(m.parties)) + 2
        base = free_base(2 * span)
        raw["parties"][pid].update(base_port=base, party_base_port=base + span)
    return raw


def isolation(policy) -> str:
    """A network namespace of its own for the party wherever this machine can
    make one (run/isolation.py); the policy's netns demands it, none refuses it."""
    from ..run.isolation import check_netns, netns_problem

    if policy.isolation == "netns":  # refused before this site says ready
        check_netns("this site's policy asks for it")
    if policy.isolation != "auto":
        return policy.isolation
    return "netns" if netns_problem() is None else "none"


EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_start(where: Path = EPHEMERAL) -> int:
    """The first port the kernel hands to outgoing connections (Linux's
    default where the file cannot be read)."""
    try:
        return int(where.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_base(span: int, ephemeral: int | None = None) -> int:
    """A free block of ``span`` local ports below the ports of hand-started
    runs (their default bases: Sequre's 9000, others' 20000 and up) and below
    the ephemeral range, where any process's outgoing connection may take a
    port at any moment."""
    import random
    import socket

    from ..engines.engine import Engine

    top = min(ephemeral or ephemeral_start(), Engine.default_port_base) - span
    low = 10000 if top > 11000 else 1024
    for _ in range(200):
        base = random.randrange(low, max(top, low + 1))
        try:
            for port in range(base, base + span):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise SyqureError(f"no free block of {span} local ports below {top + span} for the party")
