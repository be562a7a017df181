"""The run configuration's file: its schema (``syqure_wf/schemas/run.schema.yaml``),
its reader (every problem a ConfigError naming the file and key), and where
its relative paths lead."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import yaml

from ..errors import ConfigError


def schema() -> dict:
    return yaml.safe_load(resources.files("syqure_wf").joinpath("schemas/run.schema.yaml").read_text())


def _key(error) -> str:
    return ".".join(str(x) for x in error.absolute_path) or "(top level)"


def check_schema(raw, where: str, spec: dict | None = None) -> None:
    """``raw`` against the run schema (or ``spec``): ConfigError naming file and key."""
    import jsonschema

    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(raw).__name__}")
    spec = spec or schema()
    validator = jsonschema.validators.validator_for(spec)(spec)
    error = jsonschema.exceptions.best_match(validator.iter_errors(raw))
    if error is not None:
        message = error.message
        if error.validator == "additionalProperties":
            message = message.replace("Additional properties are not allowed", "unknown setting")
        raise ConfigError(f"{where}: {_key(error)}: {message}")


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (it
    would keep the last silently: a policy's second ``peers:`` drops the first)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if key == "<<":
                    continue
                try:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"the key {key!r} is given twice (first on line {seen[key] + 1})",
                            key_node.start_mark)
                    seen[key] = key_node.start_mark.line
                except TypeError:
                    continue  # an unhashable key: PyYAML says so itself
        return super().construct_mapping(node, deep)


def load_yaml(text: str):
    """YAML a person wrote: safe, and every key of a mapping once."""
    return yaml.load(text, Loader=UniqueKeyLoader)


def read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration {path}: {exc.strerror}") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    return data if data is not None else {}


def absolute(path: str, base_dir: Path) -> Path:
    """A path of the configuration: ``~`` expanded, a relative one taken from its folder (``base_dir``)."""
    return Path(os.path.normpath(os.path.join(base_dir, os.path.expanduser(path))))
