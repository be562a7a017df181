"""MPyC (the default engine): any MPyC program, given the ``-P``/``-I`` port
plan that reaches its local proxy. MPyC's higher party listens for all lower
peers on one port, so the proxies use the ``mpyc`` convention; its wire
format is its own, so the framing is ``stream``."""
from __future__ import annotations

import sys

from ..transport.ports import mpyc_party_args
from . import Engine, Launch, common_env, fill, placeholders, program_problem


class MPyC(Engine):
    name = "mpyc"

    def framing_problem(self, spec, framing):
        if framing != "stream":
            return "MPyC does not speak Sequre frames: use framing: stream"
        return None

    def convention(self, spec):
        return "mpyc"

    def config_problem(self, cfg):
        return program_problem(cfg, (".py",))

    def launch(self, cfg, pid):
        values = placeholders(cfg, pid)
        args = [fill(a, values, "engine.args") for a in cfg.engine.get("args", [])]
        p = cfg.party(pid)
        if cfg.transport == "tcp":  # direct, for comparison: each party's own port
            plan = [a for k in range(cfg.n) for a in
                    ("-P", (":" if k == pid else f"{cfg.host}:") + str(cfg.party(k).party_base_port))]
            plan += ["-I", str(pid)]
        else:
            plan = mpyc_party_args(pid, cfg.n, p.base_port, p.party_base_port, cfg.host)
        return Launch([sys.executable, values["program"], *args, *plan], common_env(cfg, pid))
