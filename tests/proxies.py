"""Standalone proxies as tests start them, and the test standing in for a
party or a peer's writer: a proxy's command line, a message file put by
hand, a frame, party 0 listening (Sequre's rule)."""
from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path

from conftest import PY


def proxy_cmd(pid, n, data, base, party_base, *extra):
    return [PY, "-m", "syqure_wf", "proxy", "--pid", pid, "--parties", n, "--data-dir", data,
            "--base-port", base, "--sequre-base-port", party_base, *extra]


def put(folder: Path, seq: int, payload: bytes, *, length=None, ready=True, extra=b"", cut=None):
    folder.mkdir(parents=True, exist_ok=True)
    content = struct.pack("<q", len(payload) if length is None else length) + payload + extra
    tmp = folder / f".{seq:08d}.msg.tmp"
    tmp.write_bytes(content[:cut])
    tmp.rename(folder / f"{seq:08d}.msg")
    if ready:
        (folder / f"{seq:08d}.ready").touch()


def frame(payload: bytes) -> bytes:
    return struct.pack("<q", len(payload)) + payload


def sealed_proxy(pid, data, base, secret, run_id="sealed"):
    return [PY, "-m", "syqure_wf", "proxy", "--pid", pid, "--parties", 2, "--data-dir", data,
            "--base-port", base, "--sequre-base-port", base, "--run-id", run_id, "--secret-file", secret,
            "--start-timeout", "0"]


def party0_listener(port: int, got: list) -> threading.Thread:
    """Party 0 listens (Sequre's rule) and records what reaches it."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    srv.settimeout(20)

    def run():
        try:
            conn, _ = srv.accept()
            conn.settimeout(10)
            while chunk := conn.recv(65536):
                got.append(chunk)
        except OSError:
            pass
        finally:
            srv.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def connect(port):
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=1)
    except OSError:
        return None
