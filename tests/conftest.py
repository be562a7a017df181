"""Shared helpers: free port blocks, bounded subprocesses that are always
cleaned up, and the paths of the test programs."""
from __future__ import annotations

import os
import random
import tempfile
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
from filelock import FileLock, Timeout
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

HERE = Path(__file__).parent
PROGRAMS = HERE / "programs"
REPO = HERE.parent
PY = sys.executable

# Tests never write into the checkout: no example database, and Hypothesis's
# own caches (it keeps constants it found in the code) in a temporary folder
settings.register_profile("no-database", database=None)
settings.load_profile("no-database")
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="syqure-wf-hypothesis-"))


def checkout_state() -> list[str] | None:
    """What `git status` shows of the checkout, ignored files included (but
    Python's own bytecode caches); None where this is not a git checkout."""
    try:
        proc = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return sorted(line for line in proc.stdout.splitlines() if "__pycache__/" not in line)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(config, items):
    """The level is the folder: every test under tests/system is marked
    `system` (`-m system` selects them, `-m 'not system'` leaves them out).
    The longest modules come first, each whole and in its order: under
    `-n 2 --dist loadfile --no-loadscope-reorder` (CI) pytest-xdist's
    workers take modules in this order, so neither starts a long one last."""
    system = HERE / "system"
    for item in items:
        if system in Path(item.fspath).parents:
            item.add_marker(pytest.mark.system)
    items.sort(key=lambda item: -minutes(item))


def minutes(item) -> float:
    """About how long the test's module takes in CI (its `minutes` mark)."""
    mark = item.get_closest_marker("minutes")
    return float(mark.args[0]) if mark else 0.0


def pytest_sessionstart(session):
    session.config.stash_checkout = checkout_state()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)


def _stop_on_sigterm(signum, frame) -> None:
    """pytest killed (a CI's timeout, a kill): what its tests started in
    sessions of their own (servers, clients, agents) goes with it, since no
    fixture's teardown runs then."""
    for procs in list(LIVE):
        procs.cleanup()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def pytest_sessionfinish(session, exitstatus):
    before, after = session.config.stash_checkout, checkout_state()
    if before is None or after is None or before == after:
        return
    changed = sorted(set(before) ^ set(after))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.write_line("FAILED: the tests changed the checkout (git status before and after differ):", red=True)
        for line in changed[:20]:
            reporter.write_line(f"  {line}")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


LIVE: weakref.WeakSet[Procs] = weakref.WeakSet()


def port_free(port: int, strict: bool = False) -> bool:
    """Whether a listener could bind ``port`` on loopback now, as asyncio and
    MPyC bind (SO_REUSEADDR: an earlier test's connections may linger in
    TIME_WAIT). ``strict``: on every address and without SO_REUSEADDR, as
    SyftBox's client checks its port, so a lingering connection counts."""
    with socket.socket() as s:
        if not strict:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("" if strict else "127.0.0.1", port))
            return True
        except OSError:
            return False


def one_at_a_time(name: str, timeout: float = 2400) -> FileLock:
    """A lock for what one test process at a time may do on this machine
    (install, build): pytest-xdist's workers and other checkouts wait."""
    return FileLock(Path(tempfile.gettempdir()) / f"syqure-wf-{name}.lock", timeout=timeout, mode=0o666)


def debian_packages(packages, have: bool, what: str) -> None:
    """Debian's ``packages``, installed on first use (``have``: they are
    already); where this user cannot install them, the test skips saying why."""
    if have:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"{what} is not installed and this user cannot install it (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        with one_at_a_time("apt"):  # (apt's own lock would fail the second install at once)
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
            done = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
                                  env=env, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        pytest.skip(f"installing {' and '.join(packages)} from Debian timed out")
    if done.returncode != 0:
        pytest.skip(f"cannot install {' '.join(packages)}: {done.stderr.strip().splitlines()[-1:]}")


# Blocks of 100 ports below the ephemeral range (32768 and up on Linux, where
# outgoing connections take theirs), each held by one test process through a
# lock file: parallel runs (pytest-xdist's workers, two checkouts) never hand
# out one block twice, and a process that dies lets its blocks go with it.
PORT_LOCKS = Path(tempfile.gettempdir()) / "syqure-wf-test-ports"
_HELD: list[tuple[int, FileLock]] = []  # (block, its lock) this process holds, oldest first
# The example's own ports (ports.base 20000, stride 1000, up to 4 parties):
# tests run it unchanged while a SyftBox net or proxies hold their blocks.
EXAMPLE_PORTS = (20000, 24000)


def _hold(blocks: range) -> list[tuple[int, FileLock]] | None:
    """Locks on every block of ``blocks``, or None (and none held) if another
    process, or this one, holds one of them."""
    PORT_LOCKS.mkdir(mode=0o777, exist_ok=True)
    got = []
    for block in blocks:
        lock = FileLock(PORT_LOCKS / f"{block}.lock", mode=0o666)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            for _, held in got:
                held.release()
            return None
        got.append((block, lock))
    return got


def free_base(span: int = 20, rng=random.Random()) -> int:  # noqa: B008 (one generator for all calls)
    """A port base whose next ``span`` ports are free (strictly: no earlier
    connection lingers on them either) and whose blocks of 100
    no other test process holds (nor this one lately: two bases of one test
    may not meet). A long session needs more blocks than there are, so this
    process lets its oldest half go (their tests are over)."""
    for _ in range(2):
        bases = [b for b in range(10000, 32000 - span, 100)
                 if not (b + span > EXAMPLE_PORTS[0] and b < EXAMPLE_PORTS[1])]
        rng.shuffle(bases)
        for base in bases[:400]:
            held = _hold(range(base // 100, (base + span) // 100 + 1))
            if held is None:
                continue
            if all(port_free(base + i, strict=True) for i in range(span)):
                _HELD.extend(held)
                return base
            for _, lock in held:
                lock.release()
        for _, lock in _HELD[:len(_HELD) // 2]:
            lock.release()
        del _HELD[:len(_HELD) // 2]
    raise RuntimeError(f"no {span} free ports in a row below 32000")


def free_port() -> int:
    """One port the OS chose (bind to 0), for a listener the test starts at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Procs:
    """Starts subprocesses in their own process group; kills what is left
    (and, on SIGTERM to pytest, what every live one started)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        LIVE.add(self)

    def start(self, args, log: Path | None = None, **kw) -> subprocess.Popen:
        out = open(log, "wb") if log else subprocess.PIPE
        proc = subprocess.Popen([str(a) for a in args], stdout=out, stderr=subprocess.STDOUT if log else subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        proc.log = log
        self.procs.append(proc)
        return proc

    def wait(self, proc: subprocess.Popen, timeout: float) -> int:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            raise AssertionError(f"{proc.args[:3]} did not finish within {timeout} s") from None

    def kill(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)

    def cleanup(self) -> None:
        for proc in self.procs:
            self.kill(proc)
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.cleanup()


def output(proc) -> str:
    if proc.log:
        return Path(proc.log).read_text(errors="replace")
    out, err = proc.communicate(timeout=10)
    return (out or b"").decode(errors="replace") + (err or b"").decode(errors="replace")


def one_line_error(text: str) -> str:
    """The error line of a failed command; the test fails on a traceback."""
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    return lines[0]


def wait_until(predicate, timeout: float, what: str, step: float = 0.02, seen=None):
    """``seen``: what there was instead, said when the wait times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}" + (f" (seen: {seen()})" if seen else ""))


def message_files(folder: Path) -> list[Path]:
    return [p for p in Path(folder).rglob("*") if p.suffix in (".msg", ".ready", ".end")]


def command_lines():
    """(OS pid, argv as bytes) of every live process that can be read."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                args = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            yield int(entry.name), args[:-1] if args and args[-1] == b"" else args


def engine_of(runner: int) -> int:
    """The MPC program a party runner started: its child that is not its sentinel."""
    for child in Path(f"/proc/{runner}/task/{runner}/children").read_text().split():
        try:
            args = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"syqure_wf.run.sentinel" not in args:
            return int(child)
    raise AssertionError(f"runner {runner} has no program running")


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line or environment contains ``text``."""
    needle, found = text.encode(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            data = Path(entry.path, "cmdline").read_bytes() + Path(entry.path, "environ").read_bytes()
            state = Path(entry.path, "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if needle in data and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="session")
def nextflow(tmp_path_factory):
    """A real Nextflow (nextflow_install.py), one NXF_HOME for the session;
    the test is skipped, with the reason, where Java 17 or Maven Central is missing."""
    from nextflow_install import nextflow_or_skip

    return nextflow_or_skip(tmp_path_factory.mktemp("nxf-home"))
