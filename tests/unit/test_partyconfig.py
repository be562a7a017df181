"""The agent's choice of local ports for a party (``sites/partyconfig.py``)."""
from __future__ import annotations

import socket

from syqure_wf.sites.partyconfig import ephemeral_start, free_base


def test_the_ephemeral_range_is_read_from_the_kernels_file_or_linuxs_default(tmp_path):
    f = tmp_path / "ip_local_port_range"
    f.write_text("30000\t60999\n")
    assert ephemeral_start(f) == 30000
    f.write_text("garbage\n")
    assert ephemeral_start(f) == 32768
    assert ephemeral_start(tmp_path / "absent") == 32768


def test_a_party_gets_a_free_block_below_hand_started_runs_and_the_ephemeral_range():
    """Outgoing connections take ports from the ephemeral range at any time,
    and a run started by hand takes its engine's default ports (20000 and up):
    a block there could be taken between the check and the bind."""
    for ephemeral in (32768, 15000, 1500 + 40):
        for _ in range(20):
            base = free_base(40, ephemeral)
            assert base + 40 <= max(min(ephemeral, 20000), 1024 + 40 + 1), (ephemeral, base)
            assert base >= (10000 if ephemeral > 11040 else 1024), (ephemeral, base)
            with socket.socket() as s:  # free when handed out
                s.bind(("127.0.0.1", base + 39))
