"""Stage CLI flags generated from the config schema: one source of truth for names, types, defaults and help.

``add_section_flags(parser, "crop")`` adds ``--min-face``, ``--scale-factor``, ... (nested keys as
``--upscale-backend``; a key whose flag the command already has for itself gets ``--<section>-<key>``, e.g.
``train --train-threads``), plus ``--params JSON`` (what the workflow rule passes), ``--config YAML`` (a whole config
file; its section is used) and the hidden ``--runtime JSON`` (the rule's runtime keys, see
``animefaces.config.RUNTIME_KEYS``). ``section_from_args`` merges them in that order (config file, params, runtime,
flags) and validates; a bad value exits 2 with one line naming the key, like every config error.
"""

from __future__ import annotations

import argparse
import copy
import json
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError, deep_update, merge_runtime, read_config_file, section_schema, validate_config
from .shards import check_count

DEST_PREFIX = "cfg__"
EXIT_CONFIG = 2  # a config or usage error (argparse uses 2 too)
EXIT_DATA = 1  # the data or an input file is wrong


def iter_keys(node: dict, prefix: str = "") -> Iterator[tuple[str, dict]]:
    """(dotted key, schema) of every leaf key of a section; objects with ``properties`` are descended into."""
    for key, sub in node.get("properties", {}).items():
        dotted = f"{prefix}{key}"
        if sub.get("type") == "object" and "properties" in sub:
            yield from iter_keys(sub, dotted + ".")
        else:
            yield dotted, sub


def flag_name(dotted: str) -> str:
    return "--" + dotted.replace(".", "-").replace("_", "-")


def _value_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    return "string" if isinstance(v, str) else "integer" if isinstance(v, int) else "number"


def _types(sub: dict) -> set[str]:
    t = sub.get("type")
    types = {t} if isinstance(t, str) else set(t or ())
    types |= {_value_type(v) for v in sub.get("enum", [])}
    if "const" in sub:
        types.add(_value_type(sub["const"]))
    for branch in sub.get("oneOf", []) + sub.get("anyOf", []):
        types |= _types(branch)
    return types


def _scalar(text: str, types: set[str]) -> Any:
    if "null" in types and text.strip().lower() in ("null", "none", "~"):
        return None
    if types <= {"string", "null"}:
        return text
    low = text.strip().lower()
    if "boolean" in types and low in ("true", "false", "yes", "no", "on", "off"):
        return low in ("true", "yes", "on")
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text  # the schema check names the key and what is allowed


def converter(sub: dict) -> Callable[[str], Any]:
    """Text of a flag -> the config value (lists as comma-separated items or YAML, mappings as YAML/JSON)."""
    types = _types(sub)

    def convert(text: str) -> Any:
        if "array" in types:
            if text.strip().startswith("["):
                return yaml.safe_load(text)
            items = _types(sub.get("items", {})) or {"string", "number"}
            return [_scalar(x.strip(), items) for x in text.split(",") if x.strip()]
        if "object" in types:
            try:
                return yaml.safe_load(text)
            except yaml.YAMLError:
                return text
        return _scalar(text, types)

    return convert


def _metavar(sub: dict) -> str:
    if "enum" in sub:
        return "{" + ",".join("null" if v is None else str(v) for v in sub["enum"]) + "}"
    types = _types(sub) - {"null"}
    if "array" in types:
        return "A,B,..."
    return {"integer": "INT", "number": "NUM", "string": "TEXT", "object": "YAML"}.get(next(iter(types), ""), "VALUE")


def _help(sub: dict) -> str:
    default = json.dumps(sub.get("default"))
    text = " ".join(str(sub.get("description", "")).split())
    return f"{text} [default: {default}]".replace("%", "%%")


class SectionHelpFormatter(argparse.HelpFormatter):
    """argparse's help layout, but never breaking a word or at a hyphen: a default such as a URL or a path stays
    whole (copyable) in ``--help``."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        text = " ".join(text.split())
        return textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)


def add_section_flags(
    ap: argparse.ArgumentParser,
    section: str,
    skip: tuple[str, ...] = (),
    aliases: dict[str, list[str]] | None = None,
    common: bool = True,
) -> argparse.ArgumentParser:
    """Add one flag per key of config section ``section`` (``skip`` keys excepted). ``common``: also --params,
    --config and --runtime (a command with several sections has its own)."""
    if ap.formatter_class is argparse.HelpFormatter:
        ap.formatter_class = SectionHelpFormatter
    group = ap.add_argument_group(
        f"config section '{section}'",
        "Settings of the config section (defaults from workflow/schemas/config.schema.yaml). "
        + ("Precedence: --config file < --params < flags." if common else "Flags override --config and the JSON."),
    )
    if common:
        group.add_argument("--params", default="", metavar="JSON", help=f"the '{section}' section as JSON")
        group.add_argument(
            "--config", dest="config_file", metavar="YAML", help=f"a config file; its '{section}' is used"
        )
        group.add_argument("--runtime", default="", help=argparse.SUPPRESS)
    aliases = aliases or {}
    for dotted, sub in iter_keys(section_schema(section)):
        primary = flag_name(dotted)
        if primary in ap._option_string_actions:  # the command has its own option of that name (train --threads)
            primary = flag_name(f"{section}.{dotted}")
        names = [n for n in [primary, *aliases.get(dotted, [])] if n not in ap._option_string_actions]
        if dotted in skip or not names:
            continue
        kwargs: dict[str, Any] = dict(
            dest=f"{DEST_PREFIX}{section}:{dotted}", default=argparse.SUPPRESS, help=_help(sub)
        )
        if _types(sub) == {"boolean"}:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs.update(type=converter(sub), metavar=_metavar(sub))
        group.add_argument(*names, **kwargs)
    return ap


def flag_values(args: argparse.Namespace, section: str) -> dict:
    """The keys of ``section`` given as flags, as a nested dict."""
    out: dict = {}
    prefix = f"{DEST_PREFIX}{section}:"
    for dest, value in vars(args).items():
        if dest.startswith(prefix):
            *parents, leaf = dest[len(prefix) :].split(".")
            node = out
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
    return out


def section_from_args(
    args: argparse.Namespace,
    section: str,
    extra: dict | None = None,
    base: dict | None = None,
    json_attr: str = "params",
) -> dict:
    """The validated, defaulted section: ``base`` or the --config file's section, then the JSON in ``json_attr``
    (--params), --runtime, ``extra``, then the flags. Raises ConfigError (see :func:`section_or_exit`)."""
    values: dict = copy.deepcopy(base) if base else {}
    if getattr(args, "config_file", None):
        found = read_config_file(args.config_file).get(section) or {}
        if not isinstance(found, dict):
            raise ConfigError(f"{section} = {found!r} in {args.config_file}: must be a mapping")
        deep_update(values, found)
    text = getattr(args, json_attr, "")
    if text:
        flag = "--" + json_attr.strip("_").replace("_", "-")
        try:
            deep_update(values, json.loads(text))
        except (json.JSONDecodeError, AttributeError) as exc:
            raise ConfigError(f"{flag} is not a JSON object: {exc}") from None
    merge_runtime(values, getattr(args, "runtime", ""))
    deep_update(values, extra or {})
    deep_update(values, flag_values(args, section))
    return validate_config({section: values})[section]


def add_shard_set_flags(ap: argparse.ArgumentParser) -> None:
    """``--results RES --shards N``: a global step's per-shard manifests named by the run instead of listed (the
    workflow passes these; :func:`animefaces.manifest.shard_manifests`)."""
    group = ap.add_argument_group("the run's shards (what the workflow passes instead of file lists)")
    group.add_argument("--results", metavar="RES", help="results folder of the run, e.g. results/demo")
    group.add_argument("--shards", type=int, metavar="N", help="its shards.count: shards 000 .. N-1")


def shard_set_or_exit(ap: argparse.ArgumentParser, args: argparse.Namespace, listed: list[str] | None) -> bool:
    """Whether ``args`` name the run's shards (``--results`` and ``--shards``) rather than the ``listed`` files;
    a usage error (exit 2) for both, neither, or one of the pair."""
    named = args.results is not None or args.shards is not None
    if named and (args.results is None or args.shards is None):
        ap.error("--results and --shards go together")
    if named and listed:
        ap.error("give either the files or --results/--shards, not both")
    if not named and not listed:
        ap.error("give the manifest files, or --results RES --shards N")
    if named:
        try:
            check_count(args.shards)
        except ValueError as exc:
            ap.error(str(exc))
    return named


def shard_runs_or_exit(
    ap: argparse.ArgumentParser, shards: list[str] | None, **paths: list[str]
) -> list[tuple[str, dict[str, str]]]:
    """``(shard, {flag: path})`` for each shard a command is given (a per-shard stage's job runs ``shards.per_job``
    of them; dedup takes every shard): the i-th value of every path flag belongs to the i-th shard, and a shard's
    name is the stem of its first path (the workflow's per-shard files are ``<shard>.parquet`` and ``<shard>/``)
    unless ``--shard`` names them. With several shards every path must carry its shard's name, so files given in
    different orders are caught. Different counts, a shard named twice or a misplaced file: exit 2."""
    counts = {flag: len(values) for flag, values in paths.items()}
    if shards is not None:
        counts["shard"] = len(shards)
    if len(set(counts.values())) != 1:
        given = ", ".join(f"--{flag.replace('_', '-')}: {n}" for flag, n in counts.items())
        ap.error(f"each of these flags needs one value per shard, in the same order; got {given}")
    first = next(iter(paths.values()))
    names = shards if shards is not None else [Path(path).stem for path in first]
    if len(set(names)) != len(names):
        ap.error(f"a shard is named twice: {' '.join(names)}")
    runs = [(name, {flag: values[i] for flag, values in paths.items()}) for i, name in enumerate(names)]
    if len(runs) > 1:
        for name, files in runs:
            for flag, path in files.items():
                if Path(path).stem != name:
                    ap.error(
                        f"--{flag.replace('_', '-')} {path} is not shard {name}'s file (with several shards, each "
                        "file is named after its shard and every flag lists them in the same order)"
                    )
    return runs


def section_or_exit(ap: argparse.ArgumentParser, args: argparse.Namespace, section: str, **kw: Any) -> dict:
    """:func:`section_from_args`, or one line naming the key on stderr and exit status 2."""
    try:
        return section_from_args(args, section, **kw)
    except ConfigError as exc:
        ap.exit(EXIT_CONFIG, f"{ap.prog}: {exc}\n")
