"""MPyC (the default engine): any MPyC program. By default it speaks the
file transport in its own process (``mpyc_inproc.py``: nothing listens, no
TCP). With ``transport: proxy`` it gets the ``-P``/``-I`` port plan that
reaches its local proxy: MPyC's higher party would listen for all lower
peers on one port; started here it listens on nothing and dials its proxy
on every channel (``unpickle.local_hop``, the ``dial`` convention), so
that its proxy can prove each connection is the party's. Its wire format is
its own, so the framing is ``stream``. Every party starts through
``unpickle.py``: it unpickles plain data and MPyC's own types, nothing else."""
from __future__ import annotations

import sys
from pathlib import Path

from ..transport.protocol.ports import mpyc_party_args
from . import mpyc_inproc, unpickle
from .engine import Engine, Launch, common_env, fill, placeholders, program_problem, python_install
from .program import imports

GUARD = Path(unpickle.__file__).resolve()
BUILDERS = GUARD.with_name("safepickle.py")  # the guard's own import (its folder listed: Python's finder)


TLS_MEANS_NOTHING = ("engine.tls: true means nothing for MPyC here (its parties speak TCP to their own "
                     "proxy only; what crosses sites is sealed by the transport): leave it out or set false")


def tls_problem(spec: dict) -> str | None:
    """MPyC's own TLS (--ssl) is never switched on: a ``tls: true`` would only say it was."""
    return TLS_MEANS_NOTHING if spec.get("tls") not in (None, False) else None


class MPyC(Engine):
    name = "mpyc"
    in_process = True  # transport files: mpyc_inproc.py, no proxy
    environment = ("MPYC_*", "PYTHONPATH", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")

    def framing_problem(self, spec, framing):
        if framing != "stream":
            return "MPyC does not speak Sequre frames: use framing: stream"
        return None

    def convention(self, spec):
        return "dial"

    def config_problem(self, cfg):
        return tls_problem(cfg.engine) or program_problem(cfg, (".py",))

    def launch(self, cfg, pid):
        values = placeholders(cfg, pid)
        args = [fill(a, values, "engine.args") for a in cfg.engine.get("args", [])]
        p, env = cfg.party(pid), common_env(cfg, pid)
        if cfg.transport == "tcp":  # direct, for comparison: each party's own port
            plan = [a for k in range(cfg.n) for a in
                    ("-P", (":" if k == pid else f"{cfg.host}:") + str(cfg.party(k).party_base_port))]
            plan += ["-I", str(pid)]
        elif cfg.in_process:
            plan = mpyc_inproc.party_args(pid, cfg.n)
        else:
            plan = mpyc_party_args(pid, cfg.n, p.base_port, p.party_base_port, cfg.host, cfg.convention)
            if cfg.convention == "dial":
                env[unpickle.DIAL] = "1"
        launch = Launch([sys.executable, str(GUARD), values["program"], *args, *plan], env)
        if cfg.in_process:
            mpyc_inproc.transport_view(cfg, pid, launch)
        return launch

    def reads(self, cfg, launch):
        # the program and the files it imports from its folder (listed, for Python's imports);
        # Python, MPyC, NumPy; the guard
        program = cfg.resolve(cfg.engine["program"])
        return [*imports(program), (program.parent,), *python_install(), GUARD, BUILDERS, (GUARD.parent,),
                *launch.reads]

    def exit_reason(self, code, log_tail):
        if code != unpickle.REFUSED:
            return None
        said = [ln for ln in log_tail if ln.startswith(unpickle.PREFIX)]
        return said[-1].removeprefix("syqure-wf: ") if said else None
