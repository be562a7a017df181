"""Any program: a command line with placeholders ({pid}, {parties},
{base_port}, {party_base_port}, {input}, {output}, {run_id}, {python}).
It speaks whatever TCP protocol it likes: the framing is ``stream`` unless
it sends Sequre frames; who listens is ``engine.convention``."""
from __future__ import annotations

import shlex

from .engine import Engine, Launch, common_env, fill, placeholders, which


class Command(Engine):
    name = "command"

    def convention(self, spec):
        return spec.get("convention", "sequre")

    def config_problem(self, cfg):
        command = cfg.engine.get("command")
        if not command:
            return "engine.command: the command engine needs a command line"
        argv = shlex.split(command)
        if which(argv[0]) is None and argv[0] != "{python}":
            return f"engine.command: {argv[0]} was not found"
        return None

    def launch(self, cfg, pid):
        values = placeholders(cfg, pid)
        argv = [fill(a, values, "engine.command") for a in shlex.split(cfg.engine["command"])]
        argv += [fill(a, values, "engine.args") for a in cfg.engine.get("args", [])]
        env = common_env(cfg, pid)
        env.update(SYQURE_BASE_PORT=values["base_port"], SYQURE_PARTY_BASE_PORT=values["party_base_port"])
        return Launch(argv, env)
