"""The message folder: writable, and what the proxies will do on its file
system (wait for change events, or poll), and whether events cross mounts."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .check import Check, fail, ok


def folder_check(name: str, folder: Path, poll_ms) -> Check:
    """Writable, and what the proxies will do on its file system: wait for
    change events, or poll (a network or FUSE file system, or poll_ms)."""
    from ...transport import POLL, mount_of, remote_fs

    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return fail(name, f"{existing} is not a folder", f"set data_dir to a folder ({folder})")
    try:
        fd, probe = tempfile.mkstemp(prefix=".syqure-wf-doctor-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return fail(name, f"{existing} cannot be written: {exc.strerror}",
                    "choose a writable folder (data_dir, workdir or syftbox.folder) or fix its permissions")
    mount = mount_of(existing)
    if mount is None:
        return ok(name, f"{folder}: writable; its file system is unknown here: the run waits for change "
                        f"events and polls every {POLL * 1000:g} ms if a peer's message comes without one")
    where = f"{mount.fstype} ({mount.point})"
    if poll_ms:
        plan = f"the run polls every {poll_ms:g} ms (poll_ms)"
    elif remote_fs(mount.fstype):
        plan = f"other clients' writes raise no change events there, so the run polls every {POLL * 1000:g} ms"
    else:
        plan = (f"the run waits for change events, and polls every {POLL * 1000:g} ms if a peer's message "
                "comes without one")
    events = events_across(existing, mount) if remote_fs(mount.fstype) or other_openings(existing, mount) else ""
    return ok(name, f"{folder}: writable, on {where}: {plan}" + (f"; {events}" if events else ""))


def other_openings(path: Path, mount) -> list[Path]:
    """``path`` as seen through other mounts of the same export (same type
    and source, a root that holds it), as on another node of a cluster."""
    from ...transport import mounts

    inside = os.path.join(mount.root, os.path.relpath(os.path.realpath(path), mount.point))
    found = []
    for m in mounts():
        if m.point == mount.point or (m.fstype, m.source) != (mount.fstype, mount.source):
            continue
        rel = os.path.relpath(inside, m.root)
        if not rel.startswith(".."):
            other = Path(os.path.normpath(os.path.join(m.point, rel)))
            if other.is_dir():
                found.append(other)
    return found


def events_across(folder: Path, mount) -> str:
    """Write a file in ``folder`` and say whether a change event for it comes
    through this opening and through another mount of the same export."""
    import asyncio

    others = other_openings(folder, mount)
    try:
        seen = asyncio.run(_events_seen(folder, [folder, *others[:1]]))
    except (ImportError, OSError) as exc:
        return f"could not tell whether change events cross mounts (no inotify here: {exc})"
    if not seen[0]:
        return "a write here raised no change event even through this mount: the run will find that out and poll"
    if not others:
        return (f"could not tell whether change events cross hosts or mounts of {mount.source} "
                "(no second mount of it here to compare)")
    if seen[1]:
        return (f"a write here raised a change event through {others[0]} (another mount of {mount.source}; "
                "other hosts may still see none)")
    return f"a write here raised no change event through {others[0]} (another mount of {mount.source})"


async def _events_seen(folder: Path, through: list[Path], wait: float = 0.5) -> list[bool]:
    import asyncio

    from ...transport import WRITES, InotifyWatcher

    probe = Path(tempfile.mkdtemp(prefix=".syqure-wf-doctor-", dir=folder))
    watchers, seen = [], [False] * len(through)
    try:
        for i, where in enumerate(through):  # a watcher each: one inode seen twice is one watch in one watcher
            watcher = InotifyWatcher()
            watchers.append(watcher)
            watcher.subscribe(where / probe.name, lambda i=i: seen.__setitem__(i, True), WRITES)
            await watcher.start()
        (probe / "00000000.ready").touch()
        deadline = asyncio.get_running_loop().time() + wait
        while not all(seen) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        for watcher in watchers:
            watcher.flush()
        return seen
    finally:
        for watcher in watchers:
            watcher.close()
        shutil.rmtree(probe, ignore_errors=True)
