"""Encryption at rest with a run secret (issue 6; the shared layout): sealed
message files, refused when replayed, reordered, swapped, altered or sealed
for another run. The sites' keys (layout syftbox): the keys command, and
parties that seal differently; the pure handshake: tests/unit/test_handshake.py."""
from __future__ import annotations

import os
import subprocess

import pytest
import yaml
from cryptography.exceptions import InvalidTag

from conftest import PROGRAMS, PY, free_base, one_line_error, output, wait_until
from proxies import connect as _connect, frame, party0_listener, sealed_proxy as proxy
from syftbox_net import EMAILS

from syqure_wf.keys import sitekey
from syqure_wf.keys.known_sites import KnownSites
from syqure_wf.transport.seal import Seal, secret_key


def test_seal_binds_run_direction_and_sequence():
    secret = os.urandom(32)

    def seal(run, src, dst, key_secret=secret):
        return Seal(secret_key(key_secret, run, src, dst), run, src, dst)

    sealed = seal("run-a", 0, 1).seal(5, b"share bytes")
    assert b"share bytes" not in sealed
    assert seal("run-a", 0, 1).open(5, sealed) == b"share bytes"
    with pytest.raises(InvalidTag):
        seal("run-a", 0, 1).open(6, sealed)  # reordered or replayed under another seq
    with pytest.raises(InvalidTag):
        seal("run-a", 1, 0).open(5, sealed)  # the other direction
    with pytest.raises(InvalidTag):
        seal("run-b", 0, 1).open(5, sealed)  # another run
    with pytest.raises(InvalidTag):
        seal("run-a", 0, 1, os.urandom(32)).open(5, sealed)  # another secret
    with pytest.raises(InvalidTag):  # the right key, presented as another run's message
        Seal(secret_key(secret, "run-a", 0, 1), "run-b", 0, 1).open(5, sealed)
    altered = bytearray(sealed)
    altered[20] ^= 1
    with pytest.raises(InvalidTag):
        seal("run-a", 0, 1).open(5, altered)
    assert seal("run-a", 0, 1).seal(5, b"x") != seal("run-a", 0, 1).seal(5, b"x")  # a fresh nonce each time


@pytest.mark.parametrize("tamper", ["none", "swap", "other-secret"])
def test_sealed_files_on_disk_and_tampering_refused(procs, tmp_path, tamper):
    data, secret = tmp_path / "msgs", tmp_path / "run.secret"
    secret.write_text(os.urandom(32).hex())
    b0, b1 = free_base(), free_base()
    procs.start(proxy(1, data, b1, secret))
    sock = wait_until(lambda: _connect(b1 + 1), 10, "proxy 1 to listen")
    secrets_sent = [b"GENOME-SHARE-ONE" * 4, b"GENOME-SHARE-TWO" * 4]
    for payload in secrets_sent:
        sock.sendall(frame(payload))
    outbox = data / "1_to_0"
    wait_until(lambda: (outbox / "00000001.ready").exists(), 10, "two sealed messages")
    for name in ("00000000.msg", "00000001.msg"):
        assert b"GENOME-SHARE" not in (outbox / name).read_bytes()  # nothing readable at rest
    if tamper == "swap":
        a, b = (outbox / "00000000.msg").read_bytes(), (outbox / "00000001.msg").read_bytes()
        (outbox / "00000000.msg").write_bytes(b)
        (outbox / "00000001.msg").write_bytes(a)
    got: list[bytes] = []
    listener = party0_listener(b0 + 1, got)
    if tamper == "other-secret":
        secret0 = tmp_path / "other.secret"
        secret0.write_text(os.urandom(32).hex())
    else:
        secret0 = secret
    reader = procs.start(proxy(0, data, b0, secret0))
    if tamper == "none":
        wait_until(lambda: b"".join(got) == b"".join(frame(p) for p in secrets_sent), 10, "both frames")
    else:
        assert procs.wait(reader, 15) == 1
        line = one_line_error(output(reader))
        assert "message 0 from party 1 failed authentication" in line
        listener.join(timeout=5)
        assert b"".join(got) == b""  # nothing delivered
    sock.close()


def test_example_job_with_encryption(procs, tmp_path):
    import json

    import yaml

    from conftest import REPO

    example = REPO / "examples/allele-counts"
    secret = tmp_path / "run.secret"
    secret.write_text(os.urandom(32).hex())
    cfg = {"engine": {"name": "mpyc", "program": str(example / "allele_counts.py")},
           "inputs": {"1": str(example / "data/site1.json"), "2": str(example / "data/site2.json")},
           "workdir": str(tmp_path / "run"), "encryption": {"secret_file": str(secret)},
           "ports": {"base": free_base(span=300), "stride": 100}}
    path = tmp_path / "enc.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = procs.start([PY, "-m", "syqure_wf", "run", "--config", path, "--quiet"])
    assert procs.wait(proc, 120) == 0, output(proc)
    sites = [json.loads((example / "data" / f"site{i}.json").read_text()) for i in (1, 2)]
    result = json.loads((tmp_path / "run/outputs/party-0.json").read_text())
    assert result["allele_count"] == [a + b for a, b in zip(sites[0]["allele_count"], sites[1]["allele_count"])]
    assert secret.read_text() not in (tmp_path / "run/config.yaml").read_text()


@pytest.mark.parametrize("kept", ["secret_file", "secret_env"])
def test_a_short_run_secret_is_refused_wherever_it_is_kept(tmp_path, monkeypatch, kept):
    """One owner of the minimum length (seal.secret_from): a file and an
    environment variable are held to the same 16 bytes."""
    import yaml

    from syqure_wf.errors import ConfigError
    from syqure_wf.run.config import load

    def config(value: str):
        if kept == "secret_file":
            (tmp_path / "run.secret").write_text(value)
            enc = {"secret_file": str(tmp_path / "run.secret")}
        else:
            monkeypatch.setenv("SYQURE_TEST_SECRET", value)
            enc = {"secret_env": "SYQURE_TEST_SECRET"}
        (tmp_path / "p.py").write_text("")
        path = tmp_path / "run.yaml"
        path.write_text(yaml.safe_dump({"engine": {"name": "mpyc", "program": "p.py"}, "encryption": enc}))
        return load(path)
    for short in ("abcd", "00ff" * 7, "password"):  # 2, 14 and 8 bytes
        with pytest.raises(ConfigError, match="too short"):
            config(short).secret()
    assert config("a1" * 16).secret() == bytes.fromhex("a1" * 16)
    assert config("a passphrase of 20 b").secret() == b"a passphrase of 20 b"


# -- sites' keys (the pure handshake: tests/unit/test_handshake.py)

def test_keys_command_makes_shows_and_forgets(tmp_path):
    (tmp_path / "datasites").mkdir()

    def keys(*args):
        return subprocess.run([PY, "-m", "syqure_wf", "keys", "--syftbox-folder", str(tmp_path), "--email", EMAILS[0],
                               *args], capture_output=True, text=True, timeout=60)

    first = keys()
    assert first.returncode == 0, first.stderr
    fp = first.stdout.split()[1]
    assert fp.startswith("SHA256:") and keys().stdout.split()[1] == fp
    peer = sitekey.load_or_create(tmp_path, EMAILS[1])
    shown = keys("--peer", EMAILS[1], "--peer", EMAILS[2])
    assert f"{EMAILS[1]} {peer.fingerprint} (not pinned yet)" in shown.stdout, shown.stdout
    assert f"{EMAILS[2]}: no key published yet" in shown.stdout
    KnownSites(tmp_path, EMAILS[0]).pin(EMAILS[1], fp)
    assert f"CHANGED: pinned {fp}" in keys("--peer", EMAILS[1]).stdout
    assert "forgotten" in keys("--forget", EMAILS[1]).stdout
    bad = subprocess.run([PY, "-m", "syqure_wf", "keys", "--syftbox-folder", str(tmp_path), "--email", "../x"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "not allowed" in one_line_error(bad.stderr)


def test_parties_that_seal_differently_stop_at_once_naming_the_other(procs, tmp_path):
    """One site turned encryption off by hand, the other did not: both say
    so within seconds instead of failing authentication or leaking."""
    base = free_base(span=300)
    cfg = {"layout": "syftbox", "run_id": "mixed", "syftbox": {"folder": str(tmp_path / "SyftBox")},
           "parties": [{"pid": p, "email": EMAILS[p], "party_base_port": base + 100 * p} for p in range(2)],
           "engine": {"name": "command", "convention": "sequre",
                      "command": f"{{python}} {PROGRAMS / 'sequre_wire.py'} {{pid}} {{parties}} {{party_base_port}} 5 300000"},
           "framing": "sequre", "workdir": str(tmp_path / "run"), "ports": {"base": base, "stride": 100}}
    configs = []
    for p, enc in enumerate(({}, {"encryption": "off"})):
        path = tmp_path / f"party{p}.yaml"
        path.write_text(yaml.safe_dump({**cfg, **enc}))
        configs.append(path)
    parties = [procs.start([PY, "-m", "syqure_wf", "party", "--config", configs[p], "--pid", p]) for p in range(2)]
    for proc in parties:
        assert procs.wait(proc, 60) == 1, output(proc)
    out0, out1 = output(parties[0]), output(parties[1])
    assert "warning: encryption off: every share of run mixed is readable by the SyftBox server" in out1, out1
    for out in (out0, out1):  # each names the other (or the other's own verdict about it)
        last = one_line_error(out.strip().splitlines()[-1])
        assert "seals its messages with" in last and ("with off, this party with site-keys" in last
                                                       or "with site-keys, this party with off" in last), last
    outbox = tmp_path / "SyftBox/datasites" / EMAILS[0] / "app_data/syqure/runs/mixed/0_to_1"
    assert not [f for f in outbox.iterdir() if f.name[:1].isdigit()]  # site-keys party 0 sent nothing unkeyed
