"""Character classes (the ``classes`` config block): the seed's D1K recipe.

A kept post's ``character`` is its single character tag (category 4) after the alias merge (``saber_alter ->
saber``), or ``''`` when it has none or several distinct ones. A post is *eligible* when it has a character and,
with ``require_solo``, the general tag ``solo``. The ``top_k`` characters with the most eligible kept posts (at
least ``min_count``; ties broken by name) become classes 1..K, most frequent first; every other kept post gets
label 0 (unlabelled). The table is written as ``classes.tsv`` with columns ``class_id``, ``name``, ``count``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..classtable import write_classes  # noqa: F401  (ingest.core writes the table through this module)
from ..config import fill_defaults

CLASS_COLUMNS = ["class_id", "name", "count"]


class ClassesConfigError(ValueError):
    """A ``classes`` block that cannot be used (e.g. an alias cycle); names the key."""


def resolve_aliases(aliases: dict[str, str]) -> dict[str, str]:
    """Follow alias chains (a -> b -> c gives a -> c); a cycle is an error naming ``classes.aliases``."""
    resolved: dict[str, str] = {}
    for start in aliases:
        seen = [start]
        name = start
        while name in aliases:
            name = aliases[name]
            if name in seen:
                raise ClassesConfigError(f"classes.aliases has a cycle: {' -> '.join(seen + [name])}")
            seen.append(name)
        resolved[start] = name
    return resolved


@dataclass
class ClassesConfig:
    top_k: int = 1000
    aliases: dict[str, str] = field(default_factory=dict)
    require_solo: bool = True
    min_count: int = 1

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> ClassesConfig:
        section = fill_defaults(section, "classes")
        aliases = section["aliases"] or {}
        for key, value in aliases.items():
            if not isinstance(value, str) or not value or any(ch.isspace() for ch in key + value):
                raise ClassesConfigError(f"classes.aliases: {key!r}: {value!r} must map a tag name to a tag name")
        return cls(
            top_k=int(section["top_k"]),
            aliases=resolve_aliases(dict(aliases)),
            require_solo=bool(section["require_solo"]),
            min_count=int(section["min_count"]),
        )


class CharacterNamer:
    """Maps a post's space-separated character tags to its single character ('' if none or several), with a
    cache: the same character strings recur across millions of posts."""

    def __init__(self, aliases: dict[str, str]) -> None:
        self.aliases = aliases
        self._cache: dict[str, str] = {}

    def __call__(self, character_tags: str | None) -> str:
        if not character_tags:
            return ""
        name = self._cache.get(character_tags)
        if name is None:
            names = {self.aliases.get(t, t) for t in character_tags.split()}
            name = names.pop() if len(names) == 1 else ""
            if len(self._cache) < 1_000_000:
                self._cache[character_tags] = name
        return name


def top_classes(counts: Counter[str], cfg: ClassesConfig) -> pd.DataFrame:
    """The class table: the top-K characters by count (ties by name), ids from 1."""
    ranked = sorted(
        ((name, n) for name, n in counts.items() if name and n >= cfg.min_count), key=lambda x: (-x[1], x[0])
    )
    ranked = ranked[: cfg.top_k]
    return pd.DataFrame(
        {
            "class_id": pd.Series(range(1, len(ranked) + 1), dtype="int64"),
            "name": pd.Series([name for name, _ in ranked], dtype="string"),
            "count": pd.Series([n for _, n in ranked], dtype="int64"),
        },
        columns=CLASS_COLUMNS,
    )
