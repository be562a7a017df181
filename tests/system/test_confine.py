"""What a party may do at its site (issue 24, sections 3 and 5).

No code from a peer: every MPyC party syqure-wf starts unpickles only plain
data and MPyC's own types. A co-party whose mpc.transfer carries code is
refused by real MPyC parties through real proxies, naming it; what MPyC
really pickles (built here from MPyC's own objects) passes.

A party sees only what it needs (confine:): a clean environment, and
Landlock's view where the kernel has it: a program that reads beyond its
input, writes beyond its output folder or dials another port is refused
while its run completes. The submitted-run case is in test_sites.py.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import PROGRAMS, PY, REPO, free_base, one_line_error, output

from syqure_wf.engines import unpickle
from syqure_wf.run import confine

EXAMPLE = REPO / "examples" / "allele-counts"


def cli(*args):
    return [PY, "-m", "syqure_wf", *map(str, args)]


def run_config(tmp_path: Path, program: Path, args=(), **extra) -> Path:
    cfg = {"engine": {"name": "mpyc", "program": str(program), "args": list(map(str, args))},
           "parties": 3, "workdir": str(tmp_path / "run"), "ports": {"base": free_base(span=300), "stride": 100},
           **extra}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def status(work: Path, pid: int) -> dict:
    return json.loads((work / "messages" / "status" / f"party-{pid}.json").read_text())


# -- no code from a peer

def globals_of(data: bytes) -> set[tuple[str, str]]:
    """The (module, name) pairs unpickling ``data`` looks up (it is ours: loaded)."""
    import io

    found = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            found.add((module, name))
            return super().find_class(module, name)

    Recorder(io.BytesIO(data)).load()
    return found


def test_everything_mpyc_sends_is_allowed_and_code_is_not():
    """MPyC's own objects, pickled as MPyC pickles them (pickle.dumps), name
    only globals the allow-list has; the classic payloads name others."""
    import numpy as np
    from mpyc.runtime import mpc

    prime, binary = mpc.SecFld(2**61 - 1).field, mpc.SecFld(2**8).field
    group = mpc.SecEllipticCurve("Ed25519", "projective").group
    sent = [
        3, -2**200, 1.5, "text", b"bytes", None, True, [1, (2, 3)], {"a": {1, 2}}, frozenset({1}), 1 + 2j,
        bytearray(b"x"), range(3), prime(5), binary(7), prime.array(np.array([1, 2, 3])),
        binary.array(np.array([1, 2])), np.array([1, 2**70], dtype=object), np.arange(4), np.int64(3),
        group.identity, group.generator, mpc.SecInt(32).field(9),
    ]
    for obj in sent:
        for protocol in (4, 5):
            names = globals_of(pickle.dumps(obj, protocol=protocol))
            assert all(unpickle.allowed(*n) for n in names), (obj, names)
    refused = [("builtins", "exec"), ("builtins", "eval"), ("builtins", "getattr"), ("builtins", "open"),
               ("builtins", "__import__"), ("os", "system"), ("posix", "system"), ("subprocess", "Popen"),
               ("copyreg", "_reconstructor"), ("numpy", "load"), ("numpy.testing", "rundocs"),
               ("mpyc.runtime", "mpc"), ("mpyc.finfields", "GF"), ("mpyc.finfields", "os"),
               ("mpyc.finfields", "PrimeFieldElement.__init__.__globals__"), ("mpyc.fingroups", "__builtins__"),
               ("mpyc.sectypes", "SecInt"), ("mpyc.gfpx", "GFpX"), ("no.such", "module")]
    for module, name in refused:
        assert not unpickle.allowed(module, name), (module, name)
    # an MPyC class is judged by what it is, in a module already imported
    assert not unpickle.allowed("mpyc.finfields", "ArrayGF(5)", {})


@pytest.mark.parametrize("how", ["pickle.loads(data)", "pickle.Unpickler(io.BytesIO(data)).load()",
                                 "pickle._loads(data)"])
def test_every_unpickler_of_the_party_is_judged(tmp_path, how):
    """The hook sits under every unpickler of the process (the C one, the
    Python one, one made by hand), the program's own use of it included."""
    marker = tmp_path / "marker"
    program = tmp_path / "own.py"
    program.write_text(f"import io, pickle\nimport mpyc.runtime\n"
                       f"data = {pickle.dumps(Payload(marker))!r}\n{how}\nprint('loaded')\n")
    done = subprocess.run([PY, str(Path(unpickle.__file__)), str(program)], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert done.returncode == unpickle.REFUSED, done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == unpickle.refusal("builtins", "exec", None, 0)
    assert "loaded" not in done.stdout and not marker.exists()
    assert unpickle.refusal("posix", "system", 2, 0) == ("syqure-wf: refused a message from party 2: its pickle "
                                                         "names posix.system, which is neither plain data nor an "
                                                         "MPyC type")


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_a_co_party_that_sends_code_is_refused_naming_it(procs, tmp_path):
    """Real MPyC parties through real proxies: party 2's mpc.transfer carries
    a pickle that would write a marker; parties 0 and 1 refuse it at once,
    naming party 2, and the run fails; the marker never appears."""
    marker = tmp_path / "marker"
    config = run_config(tmp_path, PROGRAMS / "mpyc_hostile.py", ["--marker", marker])
    proc = procs.start(cli("run", "--config", config, "--quiet"), log=tmp_path / "run.log")
    assert procs.wait(proc, 60) == 1
    work = tmp_path / "run"
    said = "refused a message from party 2: its pickle names builtins.exec"
    for pid in (0, 1):  # each refused it; the record says so, or that the other one did first
        assert said in status(work, pid)["reason"], status(work, pid)
        assert f"{unpickle.PREFIX} a message from party 2" in (work / "logs" / f"party-{pid}.log").read_text()
    assert status(work, 2)["state"] == "failed"
    assert "refused a message from party 2" in output(proc).strip().splitlines()[-1]
    assert not marker.exists()


def test_the_guard_is_the_launcher_of_every_mpyc_party(tmp_path):
    from syqure_wf.run import config as config_mod
    from syqure_wf.engines import get_engine

    cfg = config_mod.load(run_config(tmp_path, PROGRAMS / "mpyc_sum.py"))
    argv = get_engine("mpyc").launch(cfg, 1).argv
    assert argv[1] == str(Path(unpickle.__file__).resolve()) and argv[2] == str(PROGRAMS / "mpyc_sum.py")


# -- what a party sees

def test_a_clean_environment_keeps_the_base_the_engine_and_the_run():
    environ = {"PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "MPYC_NOGMPY": "1", "AWS_SECRET_ACCESS_KEY": "k",
               "SYFTBOX_TOKEN": "t", "PYTHONSTARTUP": "/x", "SEQURE_TRANSPORT": "file", "SYQURE_PID": "9"}
    env = confine.clean_env(environ, ("MPYC_*", "PYTHONPATH"), {"SYQURE_PID": "1", "SYQURE_INPUT": "/in"})
    assert env == {"PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "MPYC_NOGMPY": "1", "SYQURE_PID": "1",
                   "SYQURE_INPUT": "/in"}


def test_the_view_reads_program_input_engine_and_writes_its_output_folder():
    v = confine.view([Path("/p/prog.py"), (Path("/p"),), Path("/py")], [Path("/data/in.json")],
                     [Path("/run/outputs")], {20001, 20000})
    assert {Path("/p/prog.py"), Path("/py"), Path("/data/in.json"), Path("/usr")} <= set(v.read)
    assert Path("/data") not in v.read and Path("/p") not in v.read and v.listed == (Path("/p"),)
    assert v.write == (Path("/dev/null"), Path("/run/outputs")) and v.ports == (20000, 20001)


landlock_here = pytest.mark.skipif(confine.landlock_abi()[1] is not None,
                                   reason=f"no Landlock here: {confine.landlock_abi()[1]}")


@landlock_here
def test_a_confined_program_reads_and_writes_only_its_own_and_the_run_completes(procs, tmp_path):
    secret = tmp_path / "site" / "secret.txt"  # another file of the site, and its folder
    secret.parent.mkdir()
    secret.write_text("not for the program")
    escaped = tmp_path / "escaped"
    beside = tmp_path / "run" / "outputs-elsewhere"  # in the run's folder, but not its output folder
    other_port = free_base(span=1)
    inputs = {"1": str(EXAMPLE / "data" / "site1.json"), "2": str(EXAMPLE / "data" / "site2.json")}
    config = run_config(tmp_path, PROGRAMS / "mpyc_peek.py",
                        ["--read", secret, "--read", secret.parent, "--read", tmp_path / "run.yaml",
                         "--write", escaped, "--write", beside, "--port", other_port],
                        inputs=inputs, confine={"env": "clean", "files": "landlock"})
    import socket

    with socket.socket() as listener:  # a port that answers, outside the run's
        listener.bind(("127.0.0.1", other_port))
        listener.listen()
        proc = procs.start(cli("run", "--config", config, "--quiet"), log=tmp_path / "run.log",
                           env={**os.environ, "SYQURE_WF_TEST_SECRET": "agent's own"})
        assert procs.wait(proc, 60) == 0, output(proc)
    work = tmp_path / "run"
    for pid in range(3):
        seen = json.loads((work / "outputs" / f"party-{pid}.json").read_text())
        assert seen["sum"] == 6
        assert set(seen["read"].values()) == {"refused: PermissionError"}, seen["read"]
        assert set(seen["write"].values()) == {"refused: PermissionError"}, seen["write"]
        assert seen["connect"] == "refused: PermissionError"
        assert seen["input"] == ("done" if pid else "none")
        assert "SYQURE_WF_TEST_SECRET" not in seen["environment"] and "PATH" in seen["environment"]
        assert status(work, pid)["confinement"].startswith("Landlock ABI")
        log = (work / "logs" / f"party-{pid}.log").read_text().splitlines()[0]
        assert f"party {pid} confinement: Landlock" in log and str(work / "outputs") in log
    assert not escaped.exists() and not beside.exists()


def test_confine_landlock_without_landlock_refuses_to_start(procs, tmp_path):
    """Where Landlock cannot be had (here: py-landlock hidden), files: landlock
    is one line naming why, and auto runs unconfined, saying so."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "py_landlock.py").write_text("raise ImportError('hidden by the test')\n")
    env = {**os.environ, "PYTHONPATH": f"{hide}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    config = run_config(tmp_path, PROGRAMS / "mpyc_sum.py", confine={"files": "landlock"})
    proc = procs.start(cli("run", "--config", config, "--quiet"), env=env)
    assert procs.wait(proc, 60) == 2
    assert "confine.files: landlock, but py-landlock is not installed" in one_line_error(output(proc))
    assert not (tmp_path / "run").exists()  # nothing started
    config = run_config(tmp_path, PROGRAMS / "mpyc_sum.py", confine={"files": "auto"})
    proc = procs.start(cli("run", "--config", config, "--quiet"), env=env)
    assert procs.wait(proc, 60) == 0, output(proc)
    assert status(tmp_path / "run", 0)["confinement"].startswith("files not confined (py-landlock is not installed")


def test_doctor_says_which_confinement_a_party_gets(tmp_path):
    done = subprocess.run(cli("doctor"), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          cwd=tmp_path)
    line = next(ln for ln in done.stdout.splitlines() if ln[6:22].strip() == "confinement")
    if confine.landlock_abi()[1] is None:
        assert line.startswith("ok") and "Landlock ABI" in line, line
    else:
        assert line.startswith("--") and "none here" in line, line


# -- peer pickles that build on a class or bomb the memory (issue 33; the pure refusals:
# tests/unit/test_unpickle_bounds.py), through real parties

def test_a_co_partys_class_pickle_is_refused_naming_it_and_plants_nothing(procs, tmp_path):
    """Real MPyC parties through real proxies: party 2's mpc.transfer BUILDs
    on ArrayGF(101). Before, parties 0 and 1 received the class, kept the
    attribute on it, and all three exited 0; now each refuses the message,
    naming party 2, before anything is set, and the run fails."""
    import json

    config = run_config(tmp_path, PROGRAMS / "mpyc_classpickle.py")
    proc = procs.start([PY, "-m", "syqure_wf", "run", "--config", config, "--quiet"], log=tmp_path / "run.log")
    assert procs.wait(proc, 90) == 1, output(proc)
    work = tmp_path / "run"
    for pid in (0, 1):
        log = (work / "logs" / f"party-{pid}.log").read_text()
        assert f"{unpickle.PREFIX} a message from party 2: its pickle asks for a BUILD on the class ArrayGF(101)" \
            in log, log
        assert "planted on its class" not in log
        status = json.loads((work / "messages" / "status" / f"party-{pid}.json").read_text())
        assert "refused a message from party 2" in status["reason"], status
    assert "refused a message from party 2" in output(proc).strip().splitlines()[-1]


def test_a_bomb_no_check_foresees_kills_one_party_named(procs, tmp_path):
    """Seven bytes that ask for a memo of 2**28 entries (4 GiB; the C
    unpickler allocates it before any check): under each party's memory
    limit (memory: 1G) the receivers refuse the message, naming party 2 and
    the memory, and the run fails with one line. Without the limit they
    took 4 GiB each from the host."""
    config = run_config(tmp_path, PROGRAMS / "mpyc_classpickle.py", ["--memo"], memory="1G")
    proc = procs.start([PY, "-m", "syqure_wf", "run", "--config", config, "--quiet"], log=tmp_path / "run.log")
    assert procs.wait(proc, 90) == 1, output(proc)
    for pid in (0, 1):
        log = (tmp_path / "run" / "logs" / f"party-{pid}.log").read_text()
        assert "a message from party 2: its pickle asks for more memory than this party may take" in log, log
    assert "refused a message from party 2" in output(proc).strip().splitlines()[-1]


def test_a_peers_malformed_pickle_ends_the_party_with_one_line_naming_it(tmp_path):
    """What MPyC's tagged receive hands pickle.loads: a refusal names the
    sender; a malformed pickle too (no traceback deep in MPyC); the
    program's own bad data stays its own exception."""
    import subprocess
    from pathlib import Path

    program = tmp_path / "own.py"
    program.write_text(
        "import pickle, sys\nimport mpyc.runtime\n"
        "class Received(bytes):\n    def __new__(cls, data, sender):\n"
        "        obj = super().__new__(cls, data)\n        obj.sender = sender\n        return obj\n"
        "try:\n    pickle.loads(b'garbage')\nexcept pickle.UnpicklingError:\n    print('own error handled')\n"
        "pickle.loads(Received(b'\\x80\\x04K', 2))\nprint('loaded')\n")
    done = subprocess.run([PY, str(Path(unpickle.__file__)), str(program)], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert done.returncode == unpickle.REFUSED, done.stdout + done.stderr
    assert "own error handled" in done.stdout and "loaded" not in done.stdout
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"{unpickle.PREFIX} a message from party 2: its pickle is malformed (UnpicklingError")
