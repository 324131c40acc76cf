"""The ``--set KEY=VALUE`` grammar, read and written in one place.

A key is a dotted path into the preset (``train.lr``, ``loss.kd.temperature``); the value
is YAML, so ``[40, 80]`` is a list, ``true`` a boolean and ``'10'`` the string 10.
:func:`render_override` writes the text that :func:`parse_override` reads back to the same
key and value, so a program can build ``--set`` arguments from typed values.

Usage::

    key, value = parse_override("train.milestones=[40, 80]")   # ("train.milestones", [40, 80])
    render_override("train.device", "cuda:1")                   # "train.device=cuda:1"
    apply_override(raw, key, value)                              # raw["train"]["milestones"] = [40, 80]
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import yaml

from kdtui.errors import ConfigError


def parse_value(text: str) -> Any:
    """The value of ``--set KEY=text``: YAML, and nothing (None) when blank."""
    return yaml.safe_load(text) if text.strip() else None


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b=value`` → ("a.b", value parsed as YAML, so [40, 80] is a list)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.epochs=10.")
    try:
        value = parse_value(raw)
    except yaml.YAMLError:
        raise ConfigError(f"--set {text!r}: cannot parse the value {raw!r}; write lists as "
                          "[40,80] and strings plainly.") from None
    return key, value


def render_value(value: Any, compact: bool = False) -> str:
    """``value`` as YAML flow text that :func:`parse_value` reads back to an equal value of
    the same type: 0.05, 3.0, [40, 80], null, 'yes', '10', cuda:1.

    ``compact`` writes whole floats as integers (1000, not 1000.0) for command lines people
    read: equal in value, and the config reads an integer where it expects a float."""
    if compact and isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, str):
        return _string_text(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render_value(item, compact) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{render_value(k, compact)}: {render_value(v, compact)}"
                               for k, v in value.items()) + "}"
    raise TypeError(f"cannot write a {type(value).__name__} as a --set value: {value!r}")


def render_override(key: str, value: Any, compact: bool = False) -> str:
    """The ``KEY=VALUE`` text (what follows ``--set``) that sets ``key`` to ``value``."""
    return f"{key}={render_value(value, compact)}"


def apply_override(data: dict[str, Any], key: str | Sequence[str], value: Any) -> None:
    """Set the dotted ``key`` (or its parts) in the nested mapping ``data``, making sections."""
    keys = key.split(".") if isinstance(key, str) else list(key)
    node = data
    for depth, part in enumerate(keys[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {'.'.join(keys)}: {'.'.join(keys[:depth + 1])} is a value, "
                              "not a section.")
        node = child
    node[keys[-1]] = value


def _float_text(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    # YAML 1.1 reads a float only with a dot, and an exponent only with a sign: 1e-05 → 1.0e-05.
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    if e and exponent[0] not in "+-":
        exponent = "+" + exponent
    return mantissa + e + exponent


def _string_text(value: str) -> str:
    """Plain when YAML reads it back as this string, alone and as a list item; else quoted."""
    if value and _reads_back(value, value) and _reads_back(f"[{value}]", [value]):
        return value
    if value.isprintable():
        return "'" + value.replace("'", "''") + "'"
    # Line breaks and other control characters: a double-quoted scalar with escapes.
    return yaml.safe_dump(value, default_style='"', width=math.inf, allow_unicode=False).strip()


def _reads_back(text: str, expected: Any) -> bool:
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return parsed == expected and type(parsed) is type(expected) and (
        not isinstance(parsed, list) or type(parsed[0]) is type(expected[0]))
