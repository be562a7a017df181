"""The sync probe's relay into a party's network namespace
(transport/sync_relay.py): what its file may say, hostile files taken as no
evidence, a real relay probing a real (closed or open) client, read from
inside a real user and network namespace, and gone with its party."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest

from conftest import PY, wait_until
from syqure_wf.transport.sync_relay import MAX_REASON, STALE, RelayedProbe, relay_path, take, verdict


def test_a_fresh_verdict_is_taken_and_anything_else_is_no_evidence():
    now = 1000.0
    assert take(verdict("SyftBox server http://s unreachable", now - 1), now) == "SyftBox server http://s unreachable"
    assert take(verdict(None, now), now) is None  # up
    assert take(verdict("down", now - STALE - 1), now) is None  # its relay stopped writing
    assert take(verdict("down", now + 5), now) is None  # from no clock of ours
    for hostile in (b"", b"[1]", b'"down"', b'{"problem": "x", "at": true}', b'{"problem": "x"}',
                    b'{"problem": "x", "at": NaN}', b'{"problem": 7, "at": 1000}', b"[" * 100000,
                    b'{"problem": "x", "at": 1000', b"\xff\xfe"):
        assert take(hostile, now) is None, hostile
    said = take(json.dumps({"problem": "a\x1b[2Jb" + "z" * 5000, "at": now}).encode(), now)
    assert said.startswith("a?[2Jb") and len(said) == MAX_REASON


def test_a_link_a_huge_or_a_missing_file_is_no_evidence(tmp_path):
    path = relay_path(tmp_path, 1)
    probe = RelayedProbe(path)
    assert probe() is None  # not written yet
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(verdict("down", time.monotonic()))
    path.symlink_to(elsewhere)
    assert probe() is None
    path.unlink()
    path.write_bytes(b'{"problem": "down", "at": %f, "pad": "%s"}' % (time.monotonic(), b"x" * (1 << 20)))
    assert probe() is None
    path.write_bytes(verdict("down", time.monotonic()))
    assert probe() == "down"


class _Up(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _client(tmp_path: Path, client_port: int, monkeypatch) -> Path:
    folder = tmp_path / "SyftBox"
    folder.mkdir(exist_ok=True)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"data_dir": str(folder), "email": "a@x.org",
                                  "client_url": f"http://127.0.0.1:{client_port}"}))
    monkeypatch.setenv("SYFTBOX_CLIENT_CONFIG_PATH", str(config))
    return folder


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG, namespaces: Linux")
def test_a_real_relay_says_what_the_client_answers_into_a_namespace_and_dies_with_its_party(tmp_path, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Up)
    Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    folder = _client(tmp_path, port, monkeypatch)
    logs = tmp_path / "logs"
    path = relay_path(logs, 0)
    # the party: starts its relay, then waits (as it would in its namespace)
    party = subprocess.Popen([PY, "-c", "import sys, time; from pathlib import Path; "
                              "from syqure_wf.run.isolation import start_sync_relay; "
                              "print(start_sync_relay(Path(sys.argv[2]), 0, Path(sys.argv[1])).pid, flush=True); "
                              "time.sleep(120)", str(folder), str(logs)], stdout=subprocess.PIPE, text=True)
    try:
        relay = int(party.stdout.readline())
        probe = RelayedProbe(path)
        wait_until(lambda: path.exists(), 20, "the relay's first verdict")
        assert path.stat().st_mode & 0o777 == 0o600 and logs.stat().st_mode & 0o777 == 0o700
        assert probe() is None  # the client answers
        from syqure_wf.run.isolation import UNSHARE, netns_problem

        if netns_problem() is None:  # read inside a namespace, as the party's proxy does
            inside = subprocess.run([*UNSHARE, PY, "-c", "import sys; from pathlib import Path; "
                                     "from syqure_wf.transport.sync_relay import RelayedProbe; "
                                     "print(RelayedProbe(Path(sys.argv[1]))())", str(path)],
                                    capture_output=True, text=True, timeout=60)
            assert inside.stdout.strip() == "None", inside.stderr
        server.shutdown()
        server.server_close()
        wait_until(lambda: probe() is not None, 20, "the relay to say the client is down")
        assert probe() == f"SyftBox client at http://127.0.0.1:{port} not answering"
        if netns_problem() is None:
            inside = subprocess.run([*UNSHARE, PY, "-c", "import sys; from pathlib import Path; "
                                     "from syqure_wf.transport.sync_relay import RelayedProbe; "
                                     "print(RelayedProbe(Path(sys.argv[1]))())", str(path)],
                                    capture_output=True, text=True, timeout=60)
            assert "not answering" in inside.stdout, inside.stderr
        os.kill(party.pid, signal.SIGKILL)
        wait_until(lambda: _gone(relay), 10, f"relay {relay} to end with its party")
    finally:
        party.kill()
        party.wait(10)
        party.stdout.close()
