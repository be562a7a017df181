"""A confined party reaches only its run (issue 33, section 3; issue 31's
network namespace per party).

Listeners on this host (a pathname Unix socket such as ssh-agent's or the
user's systemd, an abstract one, a UDP port, a TCP port) receive nothing
from a confined program, while its run completes: the seccomp filter refuses
every socket but TCP, and a party in a namespace of its own sees only its
own loopback. ``confine: required`` on a host without Landlock (a real
seccomp filter makes ``landlock_create_ruleset`` fail with ENOSYS, as on a
kernel without it: tests/nosys.py) refuses the run before any party starts.
The namespace needs no root: tried as user nobody.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import HERE, PROGRAMS, PY, free_base, output, wait_until

from syqure_wf.run import confine, isolation, sockets

NOSYS = HERE / "nosys.py"
EXAMPLE = HERE.parent / "examples" / "allele-counts"
NO_LANDLOCK = [PY, str(NOSYS), "landlock_create_ruleset=ENOSYS", "--"]
NO_NAMESPACES = [PY, str(NOSYS), "unshare=EPERM", "--"]

walls_here = pytest.mark.skipif(confine.landlock_abi()[1] is not None or sockets.seccomp_problem() is not None,
                                reason="needs Landlock and seccomp here")
netns_here = pytest.mark.skipif(isolation.netns_problem() is not None, reason=f"{isolation.netns_problem()}")


def cli(*args):
    return [PY, "-m", "syqure_wf", *map(str, args)]


class Listeners:
    """What a program could try to reach on this host, each noting what arrives."""

    def __init__(self, folder: Path):
        self.path = str(folder / "agent.sock")  # like ssh-agent's, gpg-agent's, systemd's
        self.abstract = f"syqure-wf-test-{os.getpid()}-{time.monotonic_ns()}"
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(self.path)
        self.named = socket.socket(socket.AF_UNIX)
        self.named.bind("\0" + self.abstract)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", free_base(span=1)))
        for s in (self.unix, self.named, self.tcp):
            s.listen()
        for s in (self.unix, self.named, self.udp, self.tcp):
            s.setblocking(False)

    def args(self) -> list[str]:
        return ["--unix", self.path, "--unix", "@" + self.abstract, "--udp", str(self.udp.getsockname()[1]),
                "--port", str(self.tcp.getsockname()[1])]

    def received(self) -> dict:
        got = {}
        for name, s in (("unix", self.unix), ("abstract", self.named), ("tcp", self.tcp)):
            with contextlib.suppress(BlockingIOError):
                conn, _ = s.accept()
                got[name] = "a connection"
                conn.close()
        with contextlib.suppress(BlockingIOError):
            got["udp"] = self.udp.recv(100)
        return got

    def close(self) -> None:
        for s in (self.unix, self.named, self.udp, self.tcp):
            s.close()


@pytest.fixture
def listeners(tmp_path):
    ls = Listeners(tmp_path)
    yield ls
    ls.close()


def run_config(tmp_path: Path, args, **extra) -> Path:
    cfg = {"engine": {"name": "mpyc", "program": str(PROGRAMS / "mpyc_peek.py"), "args": list(map(str, args))},
           "parties": 3, "workdir": str(tmp_path / "run"), "ports": {"base": free_base(span=300), "stride": 100},
           **extra}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def results(tmp_path: Path) -> list[dict]:
    return [json.loads((tmp_path / "run" / "outputs" / f"party-{pid}.json").read_text()) for pid in range(3)]


def status(tmp_path: Path, pid: int) -> dict:
    return json.loads((tmp_path / "run" / "messages" / "status" / f"party-{pid}.json").read_text())


@walls_here
def test_a_confined_party_reaches_no_unix_socket_and_no_udp_port_of_the_host(procs, tmp_path, listeners):
    """What a submitted party gets (files and sockets auto), without a
    namespace: the seccomp filter alone refuses Unix and UDP sockets."""
    config = run_config(tmp_path, listeners.args(), confine={"env": "clean", "files": "auto", "sockets": "auto"},
                        isolation="none")
    proc = procs.start(cli("run", "--config", config, "--quiet"), log=tmp_path / "run.log")
    assert procs.wait(proc, 90) == 0, output(proc)
    for pid, seen in enumerate(results(tmp_path)):
        assert seen["sum"] == 6
        assert set(seen["unix"].values()) == {"refused: PermissionError"}, seen["unix"]
        assert seen["udp"] == "refused: PermissionError" and seen["connect"] == "refused: PermissionError"
        assert "seccomp: TCP sockets only" in status(tmp_path, pid)["confinement"]
    assert listeners.received() == {}


@netns_here
def test_a_party_in_its_own_network_namespace_reaches_no_port_of_the_host(procs, tmp_path, listeners):
    """The namespace alone (no Landlock, no filter): the host's loopback is
    out of reach, UDP and TCP alike, and the run completes. (A pathname Unix
    socket is a file: a namespace does not hide it; the filter does.)"""
    config = run_config(tmp_path, listeners.args(), confine={"files": "none", "sockets": "none"},
                        isolation="netns")
    proc = procs.start(cli("run", "--config", config, "--quiet"), log=tmp_path / "run.log")
    assert procs.wait(proc, 90) == 0, output(proc)
    for pid, seen in enumerate(results(tmp_path)):
        assert seen["sum"] == 6 and seen["connect"] == "refused: ConnectionRefusedError", seen
        assert seen["unix"]["@" + listeners.abstract] == "refused: ConnectionRefusedError"  # per namespace
        assert "network: a namespace of its own" in status(tmp_path, pid)["confinement"]
    got = listeners.received()
    assert "udp" not in got and "tcp" not in got and "abstract" not in got, got


def unprivileged():
    """In the child, before exec: user nobody, as a site's agent would not be root."""
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)


@netns_here
@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"), reason="drops to nobody")
def test_the_namespace_and_the_filter_need_no_root(tmp_path, listeners):
    """As nobody: the same user and network namespace a party gets, and the
    socket filter loaded by nobody itself; a UDP packet to the host arrives nowhere."""
    port = listeners.udp.getsockname()[1]
    send = f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {port}))"
    inside = subprocess.run([*isolation.UNSHARE, "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                             "/usr/bin/python3", "-c", send + "; print('sent')"], preexec_fn=unprivileged,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert inside.returncode == 0 and "sent" in inside.stdout, inside.stderr  # sent, in its own namespace
    if sockets.seccomp_problem() is None:
        jail = sockets.Filter()

        def nobody_then_filter():
            unprivileged()
            jail.load()  # as nobody: libseccomp sets no_new_privs first

        filtered = subprocess.run(["/usr/bin/python3", "-c", send], preexec_fn=nobody_then_filter,
                                  capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert filtered.returncode == 1 and "PermissionError" in filtered.stderr, filtered.stderr
    time.sleep(0.2)  # a datagram on loopback is there at once; a little margin, never an assertion on time
    assert listeners.received() == {}


def test_the_filter_refuses_every_socket_but_tcp_whatever_the_high_bits():
    """The pure rules: every family but IPv4/IPv6, every type but stream and
    every protocol but TCP is listed, and anything above them too."""
    rules = sockets.denials()
    families = {args[0][2] for call, args in rules if call == "socket" and args and args[0][:2] == (0, "eq")}
    assert families == set(range(sockets.FAMILY_TOP)) - {socket.AF_INET, socket.AF_INET6}
    assert ("socket", [(0, "gt", sockets.FAMILY_TOP - 1, 0)]) in rules
    assert ("socket", [(1, "masked_eq", socket.SOCK_DGRAM, 0xF)]) in rules
    assert ("socket", [(1, "masked_eq", socket.SOCK_RAW, 0xF)]) in rules
    assert ("socket", [(2, "gt", socket.IPPROTO_TCP, 0)]) in rules
    assert ("socketpair", [(0, "ne", socket.AF_UNIX, 0)]) in rules and ("io_uring_setup", []) in rules


# -- confine: required


def policy_with(tmp_path: Path, **keys) -> Path:
    from syqure_wf.sites.policy import load

    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({"submitters": ["*"], **keys}))
    return load(path)


def test_a_policy_that_requires_confinement_demands_every_wall(tmp_path):
    from syqure_wf.sites.partyconfig import isolation as isolation_of

    required = policy_with(tmp_path, confine="required")
    assert required.confine == "required"
    assert policy_with(tmp_path).confine == "auto"
    assert isolation_of(policy_with(tmp_path)) == ("netns" if isolation.netns_problem() is None else "none")
    assert isolation_of(policy_with(tmp_path, isolation="none")) == "none"


def test_where_no_namespace_can_be_made_a_policy_that_demands_one_refuses(tmp_path):
    """Under a container-like profile (unshare refused): the default gives
    the party the host's network, said in its record; isolation: netns is
    one line naming why, before the site says ready (sites/partyconfig.py)."""
    code = ("from syqure_wf.sites.partyconfig import isolation\nfrom syqure_wf.sites.policy import Policy\n"
            "from syqure_wf.errors import ConfigError\nprint(isolation(Policy()))\n"
            "try:\n    isolation(Policy(isolation='netns'))\nexcept ConfigError as exc:\n    print(exc)\n")
    done = subprocess.run([*NO_NAMESPACES, PY, "-c", code], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    said = done.stdout.splitlines()
    assert said[0] == "none", done.stderr
    assert "this site's policy asks for it" in said[1] and "Operation not permitted" in said[1], said


@walls_here
def test_confine_required_on_a_host_without_landlock_refuses_the_run(tmp_path):
    """Site 1's agent runs where Landlock is missing (its system call fails
    with ENOSYS, as on an older kernel) and its policy says confine:
    required: the run fails at site 1 before it says ready, naming why, and
    no party starts anywhere. Today's code had no such key: a submitted run
    ran unconfined, said only in the party's log."""
    from jobs import cli as site_cli
    from sites_net import Sites

    sites = Sites(tmp_path, shared=True)
    try:
        sites.policies[1]["confine"] = "required"
        sites.policy_path(1).write_text(yaml.safe_dump(sites.policies[1]))
        sites.kill_agent(1)
        log = tmp_path / "agent-1-nolandlock.log"
        sites.agents[1] = sites.procs.start(NO_LANDLOCK + site_cli("agent", *sites.site(1), "--policy",
                                                                    sites.policy_path(1)), log=log)
        wait_until(lambda: "watching" in log.read_text(), 30, "agent 1 (no Landlock) to start")
        run_id = sites.submit(sites.config("needs-walls"))
        state = sites.wait_state(run_id, 1, "failed", seen_by=1, timeout=90)
        said = json.dumps(state)
        assert "confine.files: landlock, but Landlock" in said, said
        assert sites.started_anywhere(run_id) == []
    finally:
        sites.close()


@walls_here
def test_confine_auto_on_a_host_without_landlock_runs_saying_so(procs, tmp_path, listeners):
    """The same host with the policy's default: the party runs, its record
    says its files are not confined, and the socket filter still holds."""
    config = run_config(tmp_path, listeners.args(), confine={"env": "clean", "files": "auto"}, isolation="none")
    proc = procs.start(NO_LANDLOCK + cli("run", "--config", config, "--quiet"), log=tmp_path / "run.log")
    assert procs.wait(proc, 90) == 0, output(proc)
    for pid, seen in enumerate(results(tmp_path)):
        record = status(tmp_path, pid)["confinement"]
        assert record.startswith("files not confined (Landlock") and "seccomp: TCP sockets only" in record
        assert seen["udp"] == "refused: PermissionError"
    # TCP to the host's other ports is for Landlock or the namespace to refuse: neither is here
    assert set(listeners.received()) <= {"tcp"}


# -- doctor


def doctor_lines(prefix=()) -> dict:
    done = subprocess.run([*prefix, *cli("doctor")], capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)
    return {ln[6:22].strip(): (ln[:5].strip(), ln[23:]) for ln in done.stdout.splitlines() if len(ln) > 23}


@walls_here
def test_doctor_says_which_walls_this_machine_gives():
    state, line = doctor_lines()["confinement"]
    assert state == "ok" and "Landlock ABI" in line and "seccomp socket filter" in line
    assert ("user+network namespaces" in line) == (isolation.netns_problem() is None)
    state, line = doctor_lines([PY, str(NOSYS), "landlock_create_ruleset=ENOSYS", "unshare=EPERM", "--"])[
        "confinement"]
    assert state == "--" and "no Landlock (Landlock" in line and "no namespaces (no user and network" in line


@netns_here
def test_doctor_says_a_submitted_party_gets_a_namespace_and_where_it_cannot():
    state, line = doctor_lines()["namespaces"]
    assert state == "--" and "a submitted party gets its own user and network namespace here" in line
    state, line = doctor_lines(NO_NAMESPACES)["namespaces"]
    assert state == "--" and "not here" in line and "Operation not permitted" in line


# -- the build of a submitted program

FAKE_CODON = """#!/bin/sh
# a compiler that looks around, as a hostile program could make Codon do
if [ "$1" = --version ]; then echo "codon 0.18-test"; exit 0; fi
echo "env: $(env | cut -d= -f1 | sort | tr '\\n' ' ')"
cat "{secret}" >/dev/null 2>&1 && echo "read: done" || echo "read: refused"
exec /usr/bin/python3 -c '
import socket
for name, fn in (("unix", lambda: socket.socket(socket.AF_UNIX).connect("{unix}")),
                 ("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", {udp})))):
    try:
        fn()
        print(name + ": done")
    except OSError as exc:
        print(name + ": refused " + type(exc).__name__)
raise SystemExit(1)
'
"""


@walls_here
@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="the compiler stand-in needs /usr/bin/python3")
def test_the_build_of_a_submitted_program_is_confined_with_a_clean_environment(tmp_path, listeners, monkeypatch):
    """A submitted run's build (its confine: settings) runs Codon, and all it
    starts, as its party would run: it reads no file of the site, opens no
    Unix or UDP socket, and sees none of the agent's variables. (The compiler
    here is a script standing in for Codon; a real confined build: the slow test below.)"""
    from syqure_wf.engines.build import build
    from syqure_wf.errors import SyqureError

    def jail(compiler, reads, out):
        return confine.build_confinement({"env": "clean", "files": "auto", "sockets": "auto"}, compiler, reads, out,
                                         dict(os.environ), {})

    secret = tmp_path / "site" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("not for the build")
    codon = tmp_path / "codon-home" / "bin" / "codon"
    codon.parent.mkdir(parents=True)
    codon.write_text(FAKE_CODON.format(secret=secret, unix=listeners.path, udp=listeners.udp.getsockname()[1]))
    codon.chmod(0o755)
    program = tmp_path / "program" / "main.codon"
    program.parent.mkdir()
    program.write_text("print(1)\n")
    monkeypatch.setenv("SYQURE_WF_TEST_TOKEN", "the agent's")
    with pytest.raises(SyqureError, match="does not compile"):
        build({"codon": str(codon), "cache": str(tmp_path / "cache")}, program, confine=jail)
    said = next((tmp_path / "cache").glob("*.failed.log")).read_text()
    assert "the build runs confined: Landlock ABI" in said
    assert "read: refused" in said and "unix: refused PermissionError" in said, said
    assert "udp: refused PermissionError" in said and "SYQURE_WF_TEST_TOKEN" not in said, said
    assert listeners.received() == {}


@pytest.mark.slow
@walls_here
def test_a_confined_codon_build_compiles_and_runs(tmp_path):
    from sequre_install import sequre_env, sequre_home

    from syqure_wf.engines.build import build

    env = sequre_env(sequre_home(), "fork", tmp_path / "cache")
    program = tmp_path / "program" / "hello.py"
    program.parent.mkdir()
    program.write_text("print(40 + 2)\n")
    codon = next(Path(p) / "codon" for p in env["PATH"].split(os.pathsep) if (Path(p) / "codon").exists())
    required = {"env": "clean", "files": "landlock", "sockets": "seccomp"}
    done = build({"codon": str(codon), "cache": str(tmp_path / "cache")}, program,
                 confine=lambda compiler, reads, out: confine.build_confinement(required, compiler, reads, out,
                                                                                dict(os.environ), {}))
    assert "the build runs confined" in (done.binary.parent / "build.log").read_text()
    ran = subprocess.run([str(done.binary)], capture_output=True, text=True, timeout=60)
    assert ran.stdout.strip() == "42", ran
