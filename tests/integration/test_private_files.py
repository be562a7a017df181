"""This user's private files (syqure_wf/files/private.py) on a real folder:
0600 however they were before, and never reached through a symbolic link."""
from __future__ import annotations

import os
import stat

import pytest

from syqure_wf.files.private import append_private, open_private, read_small, write_private


def test_a_log_is_appended_owner_only_whatever_its_mode_was(tmp_path):
    log = tmp_path / "party-0.log"
    log.write_bytes(b"earlier\n")
    log.chmod(0o644)
    with append_private(log) as out:
        out.write(b"now\n")
    assert log.read_bytes() == b"earlier\nnow\n"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_no_private_file_is_written_or_read_through_a_link(tmp_path):
    theirs = tmp_path / "theirs.txt"
    theirs.write_bytes(b"not yours\n")
    link = tmp_path / "audit.jsonl"
    link.symlink_to(theirs)
    with pytest.raises(OSError):
        append_private(link)
    with pytest.raises(OSError):
        os.close(open_private(link, os.O_WRONLY | os.O_APPEND | os.O_CREAT))
    assert theirs.read_bytes() == b"not yours\n"


def test_a_new_private_file_is_created_owner_only(tmp_path):
    os.close(open_private(tmp_path / "progress", os.O_RDWR | os.O_CREAT))
    write_private(tmp_path / "record.json", b"{}")
    for name in ("progress", "record.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert read_small(tmp_path / "record.json") == b"{}"
