"""The runs filter, one grammar for ``kdtui runs ls --filter`` and the runs viewer's box.

A query is words separated by spaces, every one of which a run must satisfy:

- ``KEY OP VALUE`` (no spaces; OP one of ``= != > >= < <=``): a config value, e.g.
  ``loss.amd.weight>1000`` or ``lr=0.05``. KEY is a dotted config key or a unique ending of
  one (``lr`` for ``train.lr``, ``amd.weight``); an ambiguous or unknown key is an error
  listing the candidates. Numbers compare as numbers; ``=``/``!=`` compare other values as
  text (``dataset=cifar100``, ``amp=true``). A run without the key matches only ``!=``.
- ``tag:NAME``: runs tagged NAME (kdtui.store.labels).
- any other word: found in the run's id, name, status, dataset, networks, method or tags.

Usage::

    query = parse_query("cifar100 amd.weight>=1000 tag:baseline")
    rows = query.filter(list_run_rows(root))      # KdtuiError for an unknown or ambiguous key
    key = resolve_key("lr", known_keys(rows))      # 'train.lr' (also for --columns)
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from kdtui.errors import KdtuiError
from kdtui.store.catalogue import RunRow

CONDITION = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]*?)(!=|>=|<=|=|>|<)(.*)")
ORDERING: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
KEY_HELP = ("Keys are dotted config keys such as train.lr or loss.amd.weight; "
            "a unique ending works too (lr, amd.weight).")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _as_text(value: Any) -> str:
    """How a config value reads in a query: true/false, null, 1000 for 1000.0."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Condition:
    key: str          # as written; resolved against the runs' config keys when filtering
    op: str
    value: str

    def holds(self, config: dict[str, Any], key: str) -> bool:
        if key not in config:
            return self.op == "!="
        value = config[key]
        wanted, have = _number(self.value), _number(value)
        if self.op in ORDERING:
            return have is not None and ORDERING[self.op](have, wanted)  # type: ignore[arg-type]
        if wanted is not None and have is not None:
            same = math.isclose(have, wanted, rel_tol=1e-9, abs_tol=0.0)
        else:
            same = _as_text(value).lower() == self.value.lower()
        return same if self.op == "=" else not same


@dataclass
class RunQuery:
    words: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    conditions: list[Condition] = field(default_factory=list)

    @property
    def needs_config(self) -> bool:
        """Whether filtering reads the runs' config.yaml (do it in a worker for many runs)."""
        return bool(self.conditions)

    def __bool__(self) -> bool:
        return bool(self.words or self.tags or self.conditions)

    def filter(self, rows: list[RunRow]) -> list[RunRow]:
        keys = known_keys(rows) if self.conditions else set()
        resolved = [(condition, resolve_key(condition.key, keys)) for condition in self.conditions]
        return [row for row in rows if self.matches(row, resolved)]

    def matches(self, row: RunRow, resolved: list[tuple[Condition, str]]) -> bool:
        text = row.search_text()
        if not all(word in text for word in self.words):
            return False
        tags = {tag.lower() for tag in row.tags}
        if not all(tag in tags for tag in self.tags):
            return False
        return all(condition.holds(row.config(), key) for condition, key in resolved)


def parse_query(text: str | Iterable[str]) -> RunQuery:
    """The query of a filter text (or of several, as ``--filter`` repeated: all must hold)."""
    texts = [text] if isinstance(text, str) else list(text)
    query = RunQuery()
    for word in " ".join(texts).split():
        if word.lower().startswith("tag:"):
            if not word[4:]:
                raise KdtuiError("Filter 'tag:' names no tag: write tag:NAME, e.g. tag:baseline.")
            query.tags.append(word[4:].lower())
            continue
        match = CONDITION.fullmatch(word)
        if match is None:
            query.words.append(word.lower())
            continue
        key, op, value = match.groups()
        if not value:
            raise KdtuiError(f"Filter {word!r} has no value after {op!r}: write e.g. {key}{op}0.05.")
        if op in ORDERING and _number(value) is None:
            raise KdtuiError(f"Filter {word!r}: {op} compares numbers, and {value!r} is not one; "
                             f"use = or != for text, e.g. {key}={value}.")
        query.conditions.append(Condition(key, op, value))
    return query


def known_keys(rows: Iterable[RunRow]) -> set[str]:
    """Every flattened config key of these runs (reads their config.yaml: see RunRow.config)."""
    return {key for row in rows for key in row.config()}


def resolve_key(key: str, keys: set[str]) -> str:
    """``key`` itself if a run has it, else the one key that ends with ``.key``."""
    if key in keys:
        return key
    candidates = sorted(k for k in keys if k.endswith("." + key))
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        listed = ", ".join(candidates[:8]) + (", …" if len(candidates) > 8 else "")
        raise KdtuiError(f"Config key {key!r} is ambiguous: it ends {listed}. Give more of it, "
                         f"e.g. {candidates[0]}.")
    if not keys:
        raise KdtuiError(f"No run here has a readable config.yaml, so no config key {key!r} to "
                         "filter or show.")
    close = difflib.get_close_matches(key, sorted(keys), n=3, cutoff=0.5)
    close += [k for k in sorted(keys) if key in k and k not in close][: 3 - len(close)]
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise KdtuiError(f"No run has a config key {key!r}.{hint} {KEY_HELP}")
