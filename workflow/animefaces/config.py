"""Config loading and validation outside Snakemake (tests, notebooks, the stage CLIs).

The Snakefile validates with ``snakemake.utils.validate`` against the same schema; both fill defaults.
The schema is ``workflow/schemas/config.schema.yaml`` (one block per section).
"""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
SCHEMA_FILE = SCHEMA_DIR / "config.schema.yaml"


class ConfigError(ValueError):
    """A config that does not match the schema; the message names the key path and what is allowed."""


def _load_yaml(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _registry() -> tuple[dict, Registry]:
    schema = _load_yaml(SCHEMA_FILE)
    schema["$id"] = SCHEMA_FILE.resolve().as_uri()

    def retrieve(uri: str) -> Resource:
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        return Resource.from_contents(_load_yaml(Path(url2pathname(urlparse(uri).path))))

    registry = Registry(retrieve=retrieve).with_resource(schema["$id"], Resource.from_contents(schema))
    return schema, registry


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def describe_error(err: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    return f"config key '{key}': {err.message}"


def validate_config(cfg: dict) -> dict:
    """Validate ``cfg`` in place (filling defaults) and return it; raise ConfigError naming the key."""
    schema, registry = _registry()
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema, registry=registry)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(describe_error(e) for e in errors))
    return cfg


def load_config(path: str | os.PathLike[str] = "config/config.yaml", overrides: dict | None = None) -> dict:
    cfg = _load_yaml(Path(path)) or {}
    if overrides:
        deep_update(cfg, overrides)
    return validate_config(cfg)


def defaults() -> dict:
    """The fully defaulted config for an empty user config (what every section's defaults are)."""
    return validate_config({})


def deep_update(base: dict, update: dict) -> dict:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def parse_params(text: str | None, section: str | None = None) -> dict:
    """Parse a stage's ``--params`` JSON (a config section passed by its rule); fill that section's defaults."""
    params = json.loads(text) if text else {}
    if section is None:
        return params
    return validate_config({section: params})[section]


def _fill(schema: dict, value: Any) -> Any:
    """``value`` with the defaults of ``schema`` filled in (objects recursively); nothing is validated."""
    if isinstance(value, dict):
        for prop, sub in schema.get("properties", {}).items():
            if prop not in value and "default" in sub:
                value[prop] = copy.deepcopy(sub["default"])
            if prop in value:
                value[prop] = _fill(sub, value[prop])
    return value


def fill_defaults(params: dict, section: str) -> dict:
    """A copy of ``params`` (a config section, e.g. from a test or a caller outside Snakemake) with every key the
    schema gives a default for filled in, without validating (so a registered plug-in's name is accepted).

    The schema is the only place defaults live: stage code reads ``params[key]`` after this or ``parse_params``."""
    return _fill(_schema()["properties"][section], copy.deepcopy(params))


@functools.cache
def _schema() -> dict:
    """The schema as loaded (read-only; cached: stages fill defaults per call)."""
    return _load_yaml(SCHEMA_FILE)


def section_json(config: dict, name: str) -> str:
    """A config section as canonical JSON: a rule passes it as ``--params`` so a change reruns that stage."""
    return json.dumps(config[name], sort_keys=True, separators=(",", ":"))
