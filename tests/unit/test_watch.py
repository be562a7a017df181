"""Wake-ups (watch.py): the pure judge of whether events announce peers'
writes, the file system types that poll from the start, the mount table,
and the inotify watcher's flush and queue overflow (real inotify)."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from syqure_wf.transport.watch import (ARRIVALS, FS_TYPE_ENV, WRITES, LOOK, POLL, InotifyWatcher, Wakeups,
                                       _unescape, fs_type, mount_of, remote_fs)

LOCAL = ["ext4", "xfs", "btrfs", "tmpfs", "zfs", "overlay", "ext2/ext3", "?"]
REMOTE = ["nfs", "nfs4", "lustre", "gpfs", "beegfs", "cifs", "smb3", "ceph", "9p", "fuse", "fuseblk",
          "fuse.sshfs", "fuse.bindfs", "glusterfs", "virtiofs"]


@pytest.mark.parametrize("fstype", REMOTE)
def test_network_and_fuse_types_poll_from_the_start(fstype):
    w = Wakeups("/run/messages", fstype)
    assert remote_fs(fstype) and w.polling and w.interval == POLL
    assert w.note == (f"/run/messages is on {fstype}, whose other clients' writes raise no change events here: "
                      f"polling every {POLL * 1000:g} ms")
    assert w.arrived(False) is None and w.arrived(True) is None  # nothing more to say


@pytest.mark.parametrize("fstype", LOCAL)
def test_local_types_wait_for_events_and_never_switch_while_announced(fstype):
    w = Wakeups("/run/messages", fstype)
    assert not remote_fs(fstype) and not w.polling and w.interval == LOOK
    for _ in range(1000):
        assert w.arrived(True) is None
    assert not w.polling and w.note == f"change events on /run/messages ({fstype})"


def test_one_unannounced_message_switches_once_when_the_watcher_is_exact():
    w = Wakeups("/scratch/run/messages", "ext4")
    note = w.arrived(False)
    assert note == "no change events for peers' writes on /scratch/run/messages (ext4): polling every 10 ms"
    assert w.polling and w.interval == POLL and w.note == note
    assert w.arrived(False) is None and w.arrived(True) is None and w.polling  # said once, for good


def test_an_inexact_watcher_needs_misses_in_a_row():
    w = Wakeups("/m", "apfs", misses=2)
    assert w.arrived(False) is None and not w.polling  # an event may be on its way
    assert w.arrived(True) is None  # it came: events work
    assert w.arrived(False) is None and not w.polling
    assert w.arrived(False).startswith("no change events") and w.polling


def test_poll_ms_forces_polling_at_its_pace():
    for fstype in ("ext4", "nfs4"):
        w = Wakeups("/m", fstype, poll_ms=200)
        assert w.polling and w.interval == 0.2 and w.note == "polling every 200 ms (poll_ms)"
        assert w.arrived(False) is None and w.interval == 0.2


def test_the_mount_table_and_the_type_override(tmp_path, monkeypatch):
    assert mount_of("/proc/self").fstype == "proc"
    assert mount_of("/").point == "/"
    assert _unescape(r"/mnt/my\040disk\011x") == "/mnt/my disk\tx"
    monkeypatch.delenv(FS_TYPE_ENV, raising=False)
    assert fs_type(tmp_path / "not" / "yet") == mount_of(tmp_path).fstype  # the nearest existing folder
    monkeypatch.setenv(FS_TYPE_ENV, "lustre")
    assert fs_type(tmp_path) == "lustre"


def test_flush_reads_queued_events_and_an_overflow_wakes_everybody(tmp_path):
    """``flush`` dispatches what the kernel queued before the loop read it;
    a queue overflow (events lost) wakes every subscriber."""
    quiet, busy = tmp_path / "quiet", tmp_path / "busy"
    quiet.mkdir(), busy.mkdir()

    async def main():
        watcher, woken = InotifyWatcher(), {"quiet": 0, "busy": 0}
        watcher.subscribe(quiet, lambda: woken.__setitem__("quiet", woken["quiet"] + 1), ARRIVALS)
        watcher.subscribe(busy, lambda: woken.__setitem__("busy", woken["busy"] + 1), WRITES)
        (busy / "00000000.ready").touch()
        watcher.flush()  # never started: nothing but flush reads the descriptor
        assert woken["quiet"] == 0 and woken["busy"] >= 1
        limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
        if limit > 50_000:
            watcher.close()
            return None
        # writes to two files in turn: events the kernel cannot merge
        fds = [os.open(busy / f"0000000{i}.msg", os.O_CREAT | os.O_WRONLY, 0o600) for i in (1, 2)]
        for i in range(limit + 2):
            os.write(fds[i % 2], b"x")
        for fd in fds:
            os.close(fd)
        woken["quiet"] = 0
        watcher.flush()
        watcher.close()
        return woken

    woken = asyncio.run(main())
    if woken is None:
        pytest.skip("the inotify queue is too long here to overflow cheaply")
    assert woken["quiet"] >= 1  # lost events: everybody looks
