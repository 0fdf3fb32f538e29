"""Config loading, resolution and validation (the Snakefile, the stage CLIs, tests and notebooks share it).

- :func:`resolve_config` is what a run uses: the user's config files (``--configfile``) merged in order, or the
  embedded demo (``config/demo.yaml``) when none is given, then ``--config`` overrides; schema defaults filled;
  every problem reported at once (:class:`ConfigError`, one line per problem, naming the key). With the cross-key
  checks: ``animefaces.configcheck.resolve_checked`` (and ``validate_or_exit``, the Snakefile's check).
- The schema is ``workflow/schemas/config.schema.yaml`` (one block per section); cross-key checks that JSON
  Schema cannot express live in :mod:`animefaces.configcheck`.
- :func:`section_json` / :func:`runtime_json` split a section into the keys that change a stage's outputs (rule
  ``params``; a change reruns the stage) and the keys that only say where or how it runs (``RUNTIME_KEYS``: paths
  of inputs, devices, threads, job resources; passed without triggering reruns).
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
SCHEMA_FILE = SCHEMA_DIR / "config.schema.yaml"
REPO_DIR = SCHEMA_DIR.parent.parent
DEMO_CONFIG = REPO_DIR / "config" / "demo.yaml"
TEMPLATE_CONFIG = REPO_DIR / "config" / "config.yaml"

# Keys (dotted, inside their section) that never change a stage's results: where an input lives (the input itself
# is declared to Snakemake, so its content still reruns the stage), which device or how many threads compute it,
# what the scheduler should reserve. Rules pass them through animefaces.wiring.runtime_params() (not a rerun
# trigger).
RUNTIME_KEYS: dict[str, tuple[str, ...]] = {
    "crop": ("cascade_path",),
    "clean": ("blocklist",),
    "normalise": ("upscale.device", "upscale.weights"),
    "select": ("exclude_file",),
    "train": ("device", "gpus", "threads", "mem_mb", "runtime", "data_memory_gb", "tensorboard"),
    "sample": ("device",),
}


class ConfigError(ValueError):
    """A config that does not match the schema or is inconsistent; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str] | str, source: str = "") -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        head = f"invalid config{f' ({source})' if source else ''}"
        if len(self.errors) == 1:
            text = f"{head}: {self.errors[0]}"
        else:
            text = f"{head}, {len(self.errors)} problems:\n" + "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(text)


# libyaml's parser when PyYAML has it (the same safe constructor): the schema (~2,700 lines) is read on every
# `snakemake` start-up: the pure-Python parser takes ~0.18 s of CPU for it, libyaml ~0.03 s.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader


_SCHEMA: dict | None = None


def schema() -> dict:
    """The parsed config schema (cached; callers must not modify it)."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = _load_yaml(SCHEMA_FILE)
    return _SCHEMA


def section_schema(path: str) -> dict:
    """The schema of a section or key given as a dotted path (``"crop"``, ``"normalise.upscale"``)."""
    node = schema()
    for part in path.split("."):
        node = node["properties"][part]
    return node


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def key_path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping (key: value)",
    "null": "null",
}


def _nearest(word: str, options) -> str | None:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return close[0] if close else None


def _describe_branch(branch: dict) -> str:
    """A schema alternative in words: 'a number >= 0 or null', '"auto"'."""
    if "const" in branch:
        return json.dumps(branch["const"])
    if "enum" in branch:
        return "one of " + ", ".join(json.dumps(v) for v in branch["enum"])
    t = branch.get("type", [])
    text = " or ".join(_TYPE_WORDS.get(x, x) for x in ([t] if isinstance(t, str) else t))
    for word, op in (("minimum", ">="), ("maximum", "<="), ("exclusiveMinimum", ">"), ("exclusiveMaximum", "<")):
        if word in branch:
            text += f" ({op} {branch[word]})"
    return text or "a valid value"


def describe_error(err: jsonschema.ValidationError) -> list[str]:
    """One line per problem: the key path, the value, what is allowed (and the nearest valid key for a typo)."""
    key = key_path(err.absolute_path) or "(top level)"
    kind, rule, value = err.validator, err.validator_value, err.instance
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = list(err.schema.get("properties", {}))
        lines = []
        for extra in sorted(k for k in value if k not in allowed):
            where = f"{key}.{extra}" if err.absolute_path else str(extra)
            near = _nearest(str(extra), allowed)
            hint = f"did you mean '{near}'?" if near else "valid keys: " + ", ".join(allowed[:12])
            if not near and len(allowed) > 12:
                hint += ", ... (config/README.md lists them all)"
            lines.append(f"{where}: unknown key; {hint}")
        return lines
    if kind == "type":
        types = [rule] if isinstance(rule, str) else list(rule)
        allowed = " or ".join(_TYPE_WORDS.get(t, t) for t in types)
        return [f"{key} = {_short(value)}: must be {allowed}"]
    if kind in ("oneOf", "anyOf"):
        return [f"{key} = {_short(value)}: must be " + " or ".join(_describe_branch(b) for b in rule)]
    if kind == "enum":
        return [f"{key} = {_short(value)}: must be one of " + ", ".join(json.dumps(v) for v in rule)]
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if kind in bounds:
        return [f"{key} = {_short(value)}: must be {bounds[kind]} {rule}"]
    if kind == "pattern":
        return [f"{key} = {_short(value)}: must match the pattern {rule}"]
    if kind in ("minItems", "maxItems"):
        return [f"{key} = {_short(value)}: needs {'at least' if kind == 'minItems' else 'at most'} {rule} items"]
    if kind == "minLength":
        return [f"{key} = {_short(value)}: must not be empty"]
    if kind == "uniqueItems":
        return [f"{key} = {_short(value)}: has repeated items"]
    return [f"{key} = {_short(value)}: {err.message[:200]}"]


def schema_errors(cfg: Any) -> list[str]:
    """Validate ``cfg`` in place against the schema (filling defaults); one line per problem."""
    if not isinstance(cfg, dict):
        return [f"the config must be a mapping of sections (dataset:, crop:, ...), got {_short(cfg)}"]
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema())
    errors = sorted(validator.iter_errors(cfg), key=lambda e: [str(p) for p in e.absolute_path])
    return [line for e in errors for line in describe_error(e)]


Checker = Callable[[dict], list[str]]


def validate_config(cfg: dict, check: Checker | None = None, source: str = "") -> dict:
    """Validate ``cfg`` in place (filling defaults) and return it; raise ConfigError listing every problem.
    ``check``: cross-key checks of a whole config, run when the schema passes (``animefaces.configcheck.check_all``;
    kept out of this module so that the stage jobs never import what the checks import)."""
    errors = schema_errors(cfg)
    if not errors and check is not None:
        errors = check(cfg)
    if errors:
        raise ConfigError(errors, source)
    return cfg


def read_config_file(path: str | os.PathLike[str]) -> dict:
    """A config YAML file as a dict ({} for an empty file); ConfigError naming the file when unreadable."""
    path = Path(path)
    try:
        data = _load_yaml(path)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path}{where} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections (dataset:, crop:, ...)")
    return data


def resolve_config(
    configfiles: list[str | os.PathLike[str]] | None = None, overrides: dict | None = None, check: Checker | None = None
) -> dict:
    """The effective config of a run, as the Snakefile builds it: the config files merged in order (the embedded
    demo ``config/demo.yaml`` when none is given), then ``overrides`` (``--config``); defaults filled; validated."""
    files = [Path(f) for f in configfiles] if configfiles else [DEMO_CONFIG]
    cfg: dict = {}
    for f in files:
        deep_update(cfg, read_config_file(f))
    if overrides:
        deep_update(cfg, overrides)
    return validate_config(cfg, check, source=", ".join(str(f) for f in files))


def load_config(path: str | os.PathLike[str] = DEMO_CONFIG, overrides: dict | None = None) -> dict:
    """One config file (plus overrides), validated against the schema, defaults filled."""
    cfg = read_config_file(path)
    if overrides:
        deep_update(cfg, overrides)
    return validate_config(cfg, source=str(path))


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
    try:
        params = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--params is not valid JSON: {exc}") from None
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
    return _fill(schema()["properties"][section], copy.deepcopy(params))


def _split(section: dict, keys: tuple[str, ...]) -> tuple[dict, dict]:
    """(section without ``keys``, the ``keys`` alone), dotted keys reaching into nested objects."""
    kept, runtime = copy.deepcopy(section), {}
    for dotted in keys:
        *parents, leaf = dotted.split(".")
        src, dst = kept, runtime
        for p in parents:
            if not isinstance(src.get(p), dict):
                break
            src, dst = src[p], dst.setdefault(p, {})
        else:
            if leaf in src:
                dst[leaf] = src.pop(leaf)
    return kept, runtime


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def section_json(config: dict, name: str) -> str:
    """A config section as canonical JSON without its runtime keys: a rule passes it as ``--params``, so a
    change reruns that stage (and only a change that can alter its outputs)."""
    return _dumps(_split(config[name], RUNTIME_KEYS.get(name, ()))[0])


def runtime_json(config: dict, name: str) -> str:
    """The runtime keys of a section (``RUNTIME_KEYS``) as JSON (``--runtime``); '{}' when it has none."""
    return _dumps(_split(config[name], RUNTIME_KEYS.get(name, ()))[1])


def merge_runtime(params: dict, runtime_text: str | None) -> dict:
    """A stage's params with its ``--runtime`` JSON merged in (what the rule split off is put back)."""
    if runtime_text:
        try:
            deep_update(params, json.loads(runtime_text))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--runtime is not valid JSON: {exc}") from None
    return params


def split_snakemake_argv(argv: list[str] | None) -> tuple[list[str], list[str]]:
    """A command's own arguments and the snakemake command line after ``--`` (empty when there is none)."""
    own = list(sys.argv[1:] if argv is None else argv)
    if "--" not in own:
        return own, []
    cut = own.index("--")
    return own[:cut], own[cut + 1 :]


def snakemake_config_args(argv: list[str]) -> tuple[list[str], dict]:
    """The ``--configfile(s)`` files and ``--config KEY=VALUE`` overrides in a snakemake command line."""
    files: list[str] = []
    overrides: dict = {}
    mode = None
    for arg in argv:
        if arg.startswith("-"):
            name, eq, value = arg.partition("=")
            mode = {"--configfile": "files", "--configfiles": "files", "--config": "config", "-C": "config"}.get(name)
            if mode and eq:
                (files.append(value) if mode == "files" else parse_override(overrides, value))
            continue
        if mode == "files":
            files.append(arg)
        elif mode == "config":
            parse_override(overrides, arg)
    return files, overrides


def parse_override(overrides: dict, item: str) -> None:
    """One snakemake ``--config KEY=VALUE`` item into ``overrides`` (the value read as YAML, as snakemake does)."""
    key, _, value = item.partition("=")
    try:
        overrides[key] = yaml.safe_load(value)
    except yaml.YAMLError:
        overrides[key] = value
