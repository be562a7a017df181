# Configuration shared by the rules: the run, the parties that run here,
# and the checks that must fail before any job starts. Every file of this
# workflow is reached through workflow.source_path(), so that a module pulled
# from git (github(), gitfile()) finds them. The steps are shell commands
# (syqure-wf ...) that run where their conda: or container: says; the checks
# here use the package where Snakemake runs, when it is installed there.
import os
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError

try:
    from syqure_wf.run import config as syqure_config
    from syqure_wf.errors import SyqureError
except ImportError:  # the steps check the configuration themselves, in their environment
    syqure_config = None

    class SyqureError(Exception):
        pass


def workflow_config(config):
    """The run configuration and the pids that run here (as syqure_wf.run.steps has it)."""
    mpc = dict(config.get("mpc") or {})
    n = mpc.get("parties", 3)
    n = len(n) if isinstance(n, list) else n
    here = config.get("parties_here", "all")
    pids = list(range(n)) if here == "all" else [here] if isinstance(here, int) else list(here)
    bad = [p for p in pids if not isinstance(p, int) or not 0 <= p < n]
    if bad:
        raise WorkflowError(f"parties_here: {bad[0]!r} is not a party of this run (0..{n - 1})")
    return mpc, pids


# Where the steps run: a conda environment (--software-deployment-method conda)
# or an image (apptainer); config `container` names another image.
ENV = "../envs/syqure-wf.yaml"
CONTAINER = config.get("container", "docker://localhost/syqure-wf:0.1.0")
RUN = config["run"]
SUBMIT = bool(config.get("submit"))  # this site submits to the sites' agents: no party runs here
MPC, PARTIES_HERE = workflow_config(config)
PARTIES_HERE = [] if SUBMIT else PARTIES_HERE
try:
    if syqure_config:
        syqure_config.check_schema({**MPC, "workdir": "."}, "config mpc")
except SyqureError as exc:
    raise WorkflowError(str(exc))
N_PARTIES = len(MPC["parties"]) if isinstance(MPC.get("parties"), list) else MPC.get("parties", 3)
HERE = workflow.current_basedir  # this file's folder (workflow/rules): a path, or a git source for a module from git


def repo_file(path):
    """A file of this repository: its own path in a checkout, else Snakemake's
    copy from the module's source (github(), gitfile())."""
    if isinstance(HERE, str):
        return os.path.normpath(os.path.join(HERE, "..", "..", path))
    # Snakemake's copy is named after the source (name@tag) in a folder of this
    # process only: the parties get a copy under its own name, at a path that
    # stays the same from one invocation to the next (by its content's hash)
    import hashlib

    data = Path(workflow.source_path(f"../../{path}")).read_bytes()
    copy = Path(".snakemake", "syqure-wf", hashlib.sha256(data).hexdigest()[:16], os.path.basename(path)).absolute()
    if not copy.exists():
        copy.parent.mkdir(parents=True, exist_ok=True)
        tmp = copy.with_name(f".{copy.name}.{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, copy)
    return str(copy)


def program_path(path):
    """A program given relative to the working folder, else to this repository
    (the default example works from any host workflow, a module from git too)."""
    if os.path.isabs(path) or os.path.exists(path):
        return os.path.abspath(path)
    return repo_file(path)


def mpc_config():
    engine = dict(MPC.get("engine") or {"name": "mpyc"})
    if engine.get("program"):
        engine["program"] = program_path(engine["program"])
    inputs = {str(k): os.path.abspath(v) for k, v in (MPC.get("inputs") or {}).items()}
    found = {**MPC, "engine": engine, "inputs": inputs}
    if MPC.get("engine") is None:
        del found["engine"]
    if MPC.get("module"):  # a Biovault module: its folder and its File inputs as absolute paths
        given = MPC["module"].get("inputs") or {}
        found["module"] = {"path": program_path(MPC["module"]["path"]),
                           "inputs": {str(pid): {name: os.path.abspath(v) if os.path.exists(str(v)) else v
                                                 for name, v in values.items()} for pid, values in given.items()}}
    return found


def submission():
    """The run as submitted: the program's path made absolute, inputs kept as
    the names each site's policy maps to its own files."""
    found = dict(MPC)
    if found.get("engine", {}).get("program"):
        found["engine"] = {**found["engine"], "program": program_path(found["engine"]["program"])}
    return found


ENGINE = dict(MPC.get("engine") or {"name": "mpyc"})
if MPC.get("module"):  # its program is the module's entrypoint, on Sequre
    if not syqure_config:
        raise WorkflowError("mpc.module: a Biovault module is read where Snakemake runs: install syqure-wf there")
    from syqure_wf.run.module import load as load_module

    try:
        ENGINE = {**ENGINE, "name": "sequre", "program": str(load_module(Path(program_path(MPC["module"]["path"]))).entrypoint)}
    except SyqureError as exc:
        raise WorkflowError(str(exc))
# A Sequre program is compiled once (rule build) and every party runs the binary.
BUILD = ENGINE.get("name") == "sequre" and not ENGINE.get("command") and not ENGINE.get("binary")
BINARY = f"runs/{RUN}/build/{Path(ENGINE.get('program') or 'program').stem}"


def parties_per_host():
    """How many parties of the run share one host: those placed on one node,
    or every party run here (a namespace each where the engine needs it)."""
    placement = config.get("placement") or {}
    if placement:
        nodes = [placement.get(p, placement.get(str(p))) for p in PARTIES_HERE]
        return max(nodes.count(n) for n in nodes)
    return len(PARTIES_HERE)


def party_input(wildcards):
    # local(): a module prefix must not rewrite the host's data files.
    path = (MPC.get("inputs") or {}).get(int(wildcards.pid)) or (MPC.get("inputs") or {}).get(wildcards.pid)
    found = {"data": local(path)} if path else {}
    if BUILD:
        found["binary"] = BINARY
    return found


# All parties of an MPC run must run at the same time: a run that cannot fit
# them is refused here, before any job starts, not left to deadlock. Inside a
# cluster job Snakemake runs this file again for that one job: no check there.
for _what, _given, _option in ((workflow._cores, "core(s)", "--cores"), (workflow.nodes, "job(s)", "--jobs")):
    if workflow.remote_exec or workflow.subprocess_exec or "--lint" in sys.argv:  # --lint runs nothing, on 1 core
        break
    if _what is not None and _what < len(PARTIES_HERE):
        raise WorkflowError(
            f"{len(PARTIES_HERE)} parties must run at once here but only {_what} {_given} may run "
            f"together: use {_option} {len(PARTIES_HERE)} or more (the local-3party profile does)")


# The submit step's flags (rules/submit.smk)
def site_flags():
    from shlex import quote

    site = config["submit"]
    return f"--syftbox-folder {quote(str(site['syftbox_folder']))} --email {quote(site['email'])}"


def to_flag():
    to = config["submit"].get("to")  # default: the emails of mpc.parties
    return f"--to {','.join(to)}" if to else ""
