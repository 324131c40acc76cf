"""Typed, validated configuration sections built from plain dicts.

Each config section is a dataclass whose fields are declared with :func:`option`, which
records the help text and the allowed range. :func:`build` turns a mapping (from YAML)
into that dataclass, and every mistake becomes a :class:`~kdtui.errors.ConfigError` that
names the key, the value, what is allowed and the closest valid key.

Usage::

    @dataclass
    class KDOptions:
        weight: float = option(1.0, help="loss weight λ2", ge=0)
        temperature: float = option(4.0, help="softmax temperature τ", gt=0)

    opts = build(KDOptions, {"temperature": 2}, where="loss.kd")
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Mapping

from kdtui.errors import ConfigError

_MISSING = dataclasses.MISSING


def option(
    default: Any = _MISSING,
    *,
    help: str,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    choices: tuple[Any, ...] | None = None,
    increasing: bool = False,
    nonempty: bool = False,
    affects_model: bool = True,
) -> Any:
    """A dataclass field with help text and bounds (checked on numbers and list items).

    ``affects_model=False`` marks a setting that does not change the trained network (where
    the data lives, where and how fast the run goes, how often it logs): two runs that differ
    only in such settings train the same network."""
    metadata = {
        "help": help,
        "affects_model": affects_model,
        "gt": gt,
        "ge": ge,
        "lt": lt,
        "le": le,
        "choices": choices,
        "increasing": increasing,
        "nonempty": nonempty,
    }
    if isinstance(default, (list, dict)):
        frozen = default
        return dataclasses.field(default_factory=lambda: type(frozen)(frozen), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def describe_type(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp)
        return f"a list of {describe_type(item)}s"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "integer", float: "number", bool: "true/false", str: "string"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against type ``tp``; return it converted (int → float, nested dataclasses)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{where}: got {value!r}, expected {describe_type(tp)}.")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(
                f"{where}: got {value!r}, expected {describe_type(tp)}, written like [40, 80]."
            )
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where=where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: got {value!r}, expected true or false.")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: got {value!r}, expected a whole number.")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            # YAML 1.1 reads `1e-4` (no dot) as a string; accept what is plainly a number.
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(f"{where}: got {value!r}, expected a number.") from None
        else:
            raise ConfigError(f"{where}: got {value!r}, expected a number.")
        if not math.isfinite(number):
            raise ConfigError(f"{where}: got {value!r}, expected a finite number.")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: got {value!r}, expected a string.")
    if tp is Any:
        return value
    raise TypeError(f"unsupported schema type {tp!r} at {where}")


def _check_bounds(value: Any, meta: Mapping[str, Any], where: str) -> None:
    if isinstance(value, list):
        if meta.get("nonempty") and not value:
            raise ConfigError(f"{where}: must not be empty.")
        for i, item in enumerate(value):
            _check_bounds(item, {**meta, "increasing": False, "nonempty": False}, f"{where}[{i}]")
        if meta.get("increasing") and any(b <= a for a, b in zip(value, value[1:])):
            raise ConfigError(f"{where}: got {value!r}, expected strictly increasing values.")
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{where}: got {value!r}, expected one of {', '.join(map(str, choices))}.{hint}"
        )
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    bounds = [
        ("gt", lambda v, b: v > b, "greater than"),
        ("ge", lambda v, b: v >= b, "at least"),
        ("lt", lambda v, b: v < b, "less than"),
        ("le", lambda v, b: v <= b, "at most"),
    ]
    for key, ok, words in bounds:
        bound = meta.get(key)
        if bound is not None and not ok(value, bound):
            allowed = _range_text(meta)
            raise ConfigError(f"{where}: got {value!r}, expected a value {words} {bound} ({allowed}).")


def _range_text(meta: Mapping[str, Any]) -> str:
    low = f"> {meta['gt']}" if meta.get("gt") is not None else (
        f">= {meta['ge']}" if meta.get("ge") is not None else "")
    high = f"< {meta['lt']}" if meta.get("lt") is not None else (
        f"<= {meta['le']}" if meta.get("le") is not None else "")
    return "allowed: " + " and ".join(p for p in (low, high) if p)


def build(cls: type, data: Any, *, where: str) -> Any:
    """Validate ``data`` (a mapping) into an instance of dataclass ``cls``."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'The preset'}: got {data!r}, expected a mapping of keys to values.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{where}." if where else ""
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" Did you mean {prefix}{close[0]}?" if close else ""
            raise ConfigError(
                f"Unknown key {prefix}{key}.{hint} Valid keys of {where or 'the preset'}: "
                f"{', '.join(fields)}."
            )
    values = {}
    for name, f in fields.items():
        key_where = f"{prefix}{name}"
        if name in data:
            value = _coerce(data[name], hints[name], key_where)
            _check_bounds(value, f.metadata, key_where)
            values[name] = value
        elif f.default is _MISSING and f.default_factory is _MISSING:
            raise ConfigError(f"Missing key {key_where}: {f.metadata.get('help', '')}.")
    return cls(**values)


def model_independent_fields(cls: type, prefix: str = "") -> list[str]:
    """Dotted names of the fields of dataclass ``cls`` (and of its nested dataclass
    sections) declared with ``affects_model=False``."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        if not f.metadata.get("affects_model", True):
            found.append(f"{prefix}{f.name}")
        tp = hints[f.name]
        sections = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)] or (
            [tp] if dataclasses.is_dataclass(tp) else [])
        for section in sections:
            found.extend(model_independent_fields(section, f"{prefix}{f.name}."))
    return found


def to_dict(obj: Any) -> Any:
    """A dataclass tree as plain dicts/lists (what goes into config.yaml)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj
