"""Biovault modules as runs: a folder with a ``module.yaml`` (``kind:
Module``, ``spec.runner.runtime: syqure``) and its Sequre entrypoint. Its
named inputs and outputs reach the program as Biovault passes them:
``SEQURE_INPUT_<NAME>`` and ``BV_INPUT_<NAME>`` (a File input's absolute
path, a String input's value; ``array_length`` also as
``SEQURE_ARRAY_LENGTH``), ``SEQURE_OUTPUT_<NAME>`` and ``BV_OUTPUT_<NAME>``
(the output's path under the party's results folder, ``BV_RESULTS_DIR``)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import ConfigError
from .schema import absolute


@dataclass
class Module:
    folder: Path
    entrypoint: Path
    skip_mhe_setup: bool = False
    transport: str = "file"
    inputs: dict[str, str] = field(default_factory=dict)  # name -> File | String
    outputs: dict[str, str] = field(default_factory=dict)  # name -> path under the results folder


def read_spec(path: Path) -> dict:
    """``spec`` of a module.yaml, which must be a Module with the syqure runtime."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not readable YAML: {getattr(exc, 'problem', None) or exc}") from None
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind != "Module":
        raise ConfigError(f"{path}: not a Biovault module (kind: Module), got kind {kind!r}")
    spec = data.get("spec") or {}
    runtime = (spec.get("runner") or {}).get("runtime")
    if runtime != "syqure":
        raise ConfigError(f"{path}: spec.runner.runtime is {runtime!r}, not syqure")
    return spec


def load(folder: Path, entrypoint: Path | None = None) -> Module:
    """The module in ``folder`` (or the one beside ``entrypoint``)."""
    folder = Path(folder)
    spec_path = folder / "module.yaml"
    if not spec_path.is_file():
        if entrypoint is not None:
            return Module(folder, entrypoint)  # a bare program: nothing more to know
        raise ConfigError(f"{folder}: no module.yaml")
    spec = read_spec(spec_path)
    runner = spec.get("runner") or {}
    entry = entrypoint or folder / str(runner.get("entrypoint") or "")
    if not entry.is_file():
        raise ConfigError(f"{spec_path}: spec.runner.entrypoint {entry.name!r} does not exist")
    syqure = runner.get("syqure") or {}
    inputs = {str(i["name"]): str(i.get("type", "File")) for i in spec.get("inputs") or [] if i.get("name")}
    outputs = {str(o["name"]): str(o["path"]) for o in spec.get("outputs") or [] if o.get("name") and o.get("path")}
    for name, path in outputs.items():
        if Path(path).is_absolute() or ".." in Path(path).parts:
            raise ConfigError(f"{spec_path}: output {name}: path {path!r} must stay in the results folder")
    return Module(folder, entry, bool(syqure.get("skip_mhe_setup")), str(syqure.get("transport") or "file"),
                  inputs, outputs)


def of_config(raw: dict, base_dir: Path) -> Module | None:
    """The module a run configuration names (``module.path``), if any."""
    return load(absolute(raw["module"]["path"], base_dir)) if raw.get("module") else None


def engine_of(module: Module, engine: dict) -> dict:
    """The module's program on Sequre; the other engine settings (build flags...) kept."""
    given = {k: v for k, v in engine.items() if k not in ("name", "program", "args", "command")}
    return {**given, "name": "sequre", "program": str(module.entrypoint),
            "args": ["--skip-mhe-setup"] if module.skip_mhe_setup else []}


def party_of_config(module: Module, raw: dict, pid: int, workdir: Path, base_dir: Path, where: str) -> dict:
    """``party_fields`` of party ``pid``, with the inputs ``module.inputs`` of the run configuration gives it."""
    given = {str(k): v for k, v in ((raw["module"].get("inputs") or {}).get(pid)
                                    or (raw["module"].get("inputs") or {}).get(str(pid)) or {}).items()}
    values = {name: str(absolute(str(v), base_dir)) if module.inputs.get(name) == "File" else str(v)
              for name, v in given.items()}
    return party_fields(module, values, workdir / "outputs" / f"party-{pid}", where)


def env_key(name: str) -> str:
    """Biovault's variable suffix of an input or output name."""
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def party_fields(module: Module, given: dict, results: Path, where: str) -> dict:
    """One party of a module run, as the run configuration holds any party:
    its program's environment (Biovault's variables), the files it reads by
    name, its results folder and named outputs. ``given`` maps input names
    to values (paths for File inputs, absolute already)."""
    env = party_env(module, given, results, where)
    return {"env": env, "reads": tuple(Path(v) for k, v in given.items() if module.inputs.get(k) == "File"),
            "results": results,
            "named_outputs": {env_key(name).lower(): results / path for name, path in module.outputs.items()}}


def party_env(module: Module, given: dict, results: Path, where: str) -> dict[str, str]:
    """The environment one party's program gets."""
    env = {"BV_RESULTS_DIR": str(results)}
    for name, value in given.items():
        kind = module.inputs.get(name)
        if kind is None:
            raise ConfigError(f"{where}: module.inputs: {module.folder.name} has no input {name!r} "
                              f"(it has {', '.join(sorted(module.inputs)) or 'none'})")
        if kind == "File" and not Path(value).is_file():
            raise ConfigError(f"{where}: module.inputs: {name}: no such file {value}")
        env[f"SEQURE_INPUT_{env_key(name)}"] = env[f"BV_INPUT_{env_key(name)}"] = str(value)
        if name == "array_length":
            env["SEQURE_ARRAY_LENGTH"] = Path(value).read_text().strip() if kind == "File" else str(value)
    for name, path in module.outputs.items():
        env[f"SEQURE_OUTPUT_{env_key(name)}"] = env[f"BV_OUTPUT_{env_key(name)}"] = str(results / path)
    return env
