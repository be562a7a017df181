"""Sequre: a ``.codon`` program run with Codon and the Sequre plugin.

Sequre's rule is the seed's: lower pid listens, one port per channel at
``SEQURE_PORT_BASE`` + offset, on the addresses of ``SEQURE_CP_IPS``. With TLS
on (upstream Sequre's default) or its raw seed exchange, only ``stream``
framing can carry the bytes.
"""
from __future__ import annotations

import shlex

from . import Engine, Launch, common_env, fill, placeholders, program_problem, which

DEFAULT_COMMAND = ("codon run --disable-opt=core-pythonic-list-addition-opt -plugin sequre "
                   "-release {program} {pid}")


class Sequre(Engine):
    name = "sequre"
    default_port_base = 8000
    same_port_base = True

    def default_framing(self, spec):
        return "stream" if spec.get("tls") else "sequre"

    def framing_problem(self, spec, framing):
        if spec.get("tls") and framing == "sequre":
            return ("Sequre with TLS sends encrypted bytes, not Sequre frames: "
                    "use framing: stream (or engine.tls: false)")
        return None

    def config_problem(self, cfg):
        command = cfg.engine.get("command", DEFAULT_COMMAND)
        problem = program_problem(cfg, (".codon", ".py")) if "{program}" in command else None
        if problem:
            return problem
        argv = shlex.split(command)
        if not argv or (argv[0] != "{python}" and which(argv[0]) is None):
            return (f"engine.command: {argv[0] if argv else '(empty)'} was not found: install Codon "
                    "with the Sequre plugin (codon run -plugin sequre), or set engine.command "
                    "to your sequre.sh")
        if cfg.engine.get("port_base_compiled_in") and cfg.isolation != "netns" and cfg.transport == "files":
            hosts = [p.host for p in cfg.parties]
            if len(set(hosts)) < len(hosts):
                return ("engine.port_base_compiled_in: this Sequre build ignores SEQURE_PORT_BASE, so "
                        "two parties on one host would need the same ports: run one party per "
                        "machine (syqure-wf party), or isolation: netns on Linux")
        return None

    def launch(self, cfg, pid):
        values = placeholders(cfg, pid)
        argv = [fill(a, values, "engine.command")
                for a in shlex.split(cfg.engine.get("command", DEFAULT_COMMAND))]
        argv += [fill(a, values, "engine.args") for a in cfg.engine.get("args", [])]
        base = cfg.party(0).base_port if cfg.transport == "tcp" else cfg.party(pid).base_port
        env = common_env(cfg, pid)
        env.update(SEQURE_CP_IPS=",".join([cfg.host] * cfg.n), SEQURE_CP_COUNT=str(cfg.n),
                   SEQURE_PORT_BASE=str(base), SEQURE_USE_TLS="1" if cfg.engine.get("tls") else "0")
        return Launch(argv, env)
