"""Study files: a YAML description of many runs (a grid or a list of points, times seeds).

A study file is read with ``yaml.safe_load`` and checked here for its shape; every point's
config is validated later, by :func:`kdtui.study.expand.expand_study`. Mistakes raise
:class:`~kdtui.errors.ConfigError` naming the key, what was expected and how to fix it.

Usage::

    spec = load_study(find_study("gamma"))       # a name in presets/studies/ or a path
    spec.name, spec.grid, spec.points, spec.seeds

Format::

    name: gamma                  # the study's id; run names derive from it
    description: ...
    base: cifar10_amd            # a preset name, or a path relative to this file
    set: {train.epochs: 200}     # fixed overrides
    grid:                        # cartesian product (``preset`` may be a grid key too)
      loss.amd.weight: [1000, 3000]
    points:                      # or: explicit points (not with grid)
      - {loss.amd.terms: [A], reported: 85.9}
      - {preset: cifar10_kd, reported: {value: 85.3, source: "Fig. 5"}}
    seeds: [0, 1, 2]             # sets train.seed
    source: "AMD paper, Fig. 8a" # default source of the reported values
    reported:                    # paper numbers (grid studies), by the values of one key…
      loss.amd.weight: {1000: 85.3, 3000: 86.0}
    # …or a list of {where: {key: value, ...}, value: N, source: TEXT, teacher: N}
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdtui.errors import ConfigError
from kdtui.presets import PresetInfo, find_yaml, presets_dir

STUDY_KEYS = ("name", "description", "base", "set", "grid", "points", "seeds", "source", "reported")
POINT_KEYS = ("preset", "reported")          # keys of a point that are not config overrides
CONFIG_SECTIONS = ("data", "student", "teacher", "loss", "train", "description")
MAX_NAME = 60                                # run names add "-p12-s3" and must stay ≤ 80


@dataclass
class Reported:
    """A number the paper reports for a point, and where."""

    value: float
    source: str = ""
    teacher: float | None = None             # the teacher's reported accuracy, when given

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "source": self.source}
        if self.teacher is not None:
            out["teacher"] = self.teacher
        return out

    @classmethod
    def from_record(cls, data: Any) -> "Reported | None":
        """Back from a run's recorded study mapping (tolerant: None when unusable)."""
        if not isinstance(data, dict):
            return None
        value, source, teacher = data.get("value"), data.get("source"), data.get("teacher")
        if not _is_number(value):
            return None
        return cls(float(value), source if isinstance(source, str) else "",
                   float(teacher) if _is_number(teacher) else None)


@dataclass
class PointSpec:
    overrides: dict[str, Any]                # config key → value, in file order
    preset: str | None = None                # this point's own base preset
    reported: Reported | None = None


@dataclass
class ReportedRule:
    where: dict[str, Any]                    # the point values it applies to
    reported: Reported


@dataclass
class StudySpec:
    name: str
    path: Path
    description: str = ""
    base: str | None = None
    set: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    points: list[PointSpec] = field(default_factory=list)
    seeds: list[int] | None = None
    source: str = ""
    reported: list[ReportedRule] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return self.path.parent


def studies_dir() -> Path:
    return presets_dir() / "studies"


def find_study(ref: str) -> Path:
    """A study file by path, or by name in the presets' ``studies/`` folder."""
    return find_yaml(ref, studies_dir(), lambda: [info.name for info in list_studies()], "study",
                     "studies")


def is_study_file(path: Path) -> bool:
    """Whether ``path`` is a study file rather than a preset: it lies in the studies folder,
    or it is a mapping with a ``base`` and a ``grid`` or ``points`` (no preset has those)."""
    import yaml

    try:
        if path.resolve().parent == studies_dir().resolve():
            return True
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and "base" in data and ("grid" in data or "points" in data)


def list_studies() -> list[PresetInfo]:
    """The study files that come with kdtui (group "studies", beside the presets')."""
    import yaml

    found = []
    for path in sorted(studies_dir().glob("*.yaml")) if studies_dir().is_dir() else []:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            description = str(data.get("description", "")) if isinstance(data, dict) else ""
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            description = "(unreadable study file)"
        found.append(PresetInfo(path.stem, path, description, "studies"))
    return found


def study_groups() -> list[tuple[str, list[PresetInfo]]]:
    """``[("studies", [...])]`` as :func:`kdtui.presets.grouped_presets` pairs; [] if none."""
    studies = list_studies()
    return [("studies", studies)] if studies else []


def load_study(path: str | Path) -> StudySpec:
    from kdtui.config import read_yaml_mapping
    from kdtui.store import RUN_NAME

    path = Path(path)
    raw = read_yaml_mapping(path, what="study")
    where = f"The study file {path}"
    for key in raw:
        if key not in STUDY_KEYS:
            close = difflib.get_close_matches(str(key), STUDY_KEYS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}.{hint} A study has the keys "
                              f"{', '.join(STUDY_KEYS)}.")
    name = raw.get("name")
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name) or ".." in name or len(name) > MAX_NAME:
        raise ConfigError(f"{where}: name: got {name!r}, expected the study's id: letters, digits, "
                          f"'.', '_', '+', '-' (up to {MAX_NAME} characters, starting with a letter "
                          "or digit), e.g. name: gamma. Run names derive from it.")
    spec = StudySpec(name=name, path=path.absolute(),
                     description=_text(raw, "description", where),
                     source=_text(raw, "source", where))
    if raw.get("base") is not None:
        spec.base = _text(raw, "base", where)
    spec.set = _overrides(raw.get("set"), f"{where}: set", allow_preset=False)
    if "grid" in raw and "points" in raw:
        raise ConfigError(f"{where}: give either grid (a cartesian product) or points (an explicit "
                          "list), not both; write a grid's points out under points to mix them.")
    if "grid" in raw:
        spec.grid = _grid(raw["grid"], where)
    elif "points" in raw:
        spec.points = _points(raw["points"], where, spec.source)
    else:
        spec.points = [PointSpec({})]          # the base alone (with its seeds)
    spec.seeds = _seeds(raw.get("seeds"), where)
    if raw.get("reported") is not None:
        if not spec.grid:
            raise ConfigError(f"{where}: reported: at the top level it goes with a grid; in a "
                              "points study give each point its own reported: value.")
        spec.reported = _reported_rules(raw["reported"], spec, where)
    if spec.base is None and not ("preset" in spec.grid or (spec.points and all(p.preset for p in spec.points))):
        raise ConfigError(f"{where}: base: missing. Name the preset every point starts from, e.g. "
                          "base: cifar10_amd (or give every point its own preset:).")
    return spec


def _text(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key}: got {value!r}, expected a text (quote it if needed).")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_value(value: Any, where: str) -> None:
    try:  # recorded in summary.json: plain YAML scalars, lists and mappings only
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: the value {value!r} is not a number, text, list or mapping "
                          "(dates and special floats cannot be recorded); quote it.") from None


def _check_key(key: Any, where: str, allow_preset: bool) -> str:
    if allow_preset and key == "preset":
        return key
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{where}: key {key!r} is not a config key; write dotted keys such as "
                          "loss.amd.weight or train.epochs.")
    section = key.split(".")[0]
    if section not in CONFIG_SECTIONS:
        close = difflib.get_close_matches(section, CONFIG_SECTIONS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        extra = " (preset: selects a point's base preset; it is not an override)" if key == "preset" else ""
        raise ConfigError(f"{where}: key {key!r}: unknown section {section!r}{extra}.{hint} Keys start "
                          f"with one of {', '.join(CONFIG_SECTIONS)}, e.g. loss.amd.weight.")
    return key


def _overrides(raw: Any, where: str, allow_preset: bool) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: got {raw!r}, expected a mapping of config keys to values, "
                          "e.g. {train.epochs: 200}.")
    out = {}
    for key, value in raw.items():
        _check_key(key, where, allow_preset)
        _check_value(value, f"{where}: {key}")
        out[key] = value
    return out


def _grid(raw: Any, where: str) -> dict[str, list[Any]]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: grid: expected a mapping of config keys to lists of values, "
                          "e.g. grid: {loss.amd.weight: [1000, 3000, 5000]}.")
    grid = {}
    for key, values in raw.items():
        _check_key(key, f"{where}: grid", allow_preset=True)
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: grid: {key}: got {values!r}, expected a non-empty list of "
                              f"values, e.g. {key}: [1000, 3000].")
        for value in values:
            _check_value(value, f"{where}: grid: {key}")
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise ConfigError(f"{where}: grid: {key}: {values!r} lists a value twice.")
        if key == "preset" and not all(isinstance(v, str) for v in values):
            raise ConfigError(f"{where}: grid: preset: expected preset names or paths, got {values!r}.")
        grid[key] = values
    return grid


def _points(raw: Any, where: str, source: str) -> list[PointSpec]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: points: expected a non-empty list of mappings of config keys "
                          "to values, e.g. points: [{loss.amd.terms: [A]}, {preset: cifar10_kd}].")
    points, seen = [], set()
    for number, item in enumerate(raw, 1):
        at = f"{where}: points[{number}]"
        if item is None:
            item = {}
        if not isinstance(item, dict):
            raise ConfigError(f"{at}: got {item!r}, expected a mapping such as {{loss.amd.terms: [A]}}.")
        preset = item.get("preset")
        if preset is not None and not isinstance(preset, str):
            raise ConfigError(f"{at}: preset: got {preset!r}, expected a preset name or path.")
        reported = _reported(item["reported"], f"{at}: reported", source) if item.get("reported") is not None else None
        overrides = _overrides({k: v for k, v in item.items() if k not in POINT_KEYS}, at, allow_preset=False)
        identity = json.dumps([preset, overrides], sort_keys=True)
        if identity in seen:
            raise ConfigError(f"{at}: the same point is listed twice; each point must differ.")
        seen.add(identity)
        points.append(PointSpec(overrides, preset, reported))
    return points


def _seeds(raw: Any, where: str) -> list[int] | None:
    if raw is None:
        return None
    if (not isinstance(raw, list) or not raw
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in raw)
            or len(set(raw)) != len(raw)):
        raise ConfigError(f"{where}: seeds: got {raw!r}, expected a list of distinct whole numbers "
                          "≥ 0, e.g. seeds: [0, 1, 2] (each sets train.seed).")
    return list(raw)


def _reported(raw: Any, where: str, source: str) -> Reported:
    if _is_number(raw):
        return Reported(float(raw), source)
    if isinstance(raw, dict) and _is_number(raw.get("value")) and set(raw) <= {"value", "source", "teacher"}:
        teacher = raw.get("teacher")
        if teacher is not None and not _is_number(teacher):
            raise ConfigError(f"{where}: teacher: got {teacher!r}, expected the teacher's reported accuracy (%).")
        text = raw.get("source", source)
        if not isinstance(text, str):
            raise ConfigError(f"{where}: source: got {text!r}, expected a text such as \"AMD paper, Fig. 8a\".")
        return Reported(float(raw["value"]), text, float(teacher) if teacher is not None else None)
    raise ConfigError(f"{where}: got {raw!r}, expected an accuracy in % (86.3) or "
                      "{value: 86.3, source: \"AMD paper, Fig. 8a\", teacher: 89.5}.")


def _reported_rules(raw: Any, spec: StudySpec, where: str) -> list[ReportedRule]:
    at = f"{where}: reported"
    rules = []
    if isinstance(raw, dict):       # {grid key: {grid value: entry}}
        if len(raw) != 1:
            raise ConfigError(f"{at}: by values, give one grid key, e.g. reported: "
                              "{loss.amd.weight: {5000: 86.3}}; for combinations of keys use a list "
                              "of {where: {...}, value: N}.")
        (key, by_value), = raw.items()
        if key not in spec.grid or not isinstance(by_value, dict):
            raise ConfigError(f"{at}: {key!r} must be a grid key ({', '.join(spec.grid)}) mapping "
                              "its values to accuracies.")
        raw = [{"where": {key: value}, **(entry if isinstance(entry, dict) else {"value": entry})}
               for value, entry in by_value.items()]
    if not isinstance(raw, list):
        raise ConfigError(f"{at}: expected {{grid key: {{value: accuracy}}}} or a list of "
                          "{where: {key: value}, value: N, source: TEXT}.")
    for number, entry in enumerate(raw, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("where"), dict):
            raise ConfigError(f"{at}[{number}]: expected {{where: {{key: value}}, value: N}}.")
        for key, value in entry["where"].items():
            if key not in spec.grid or not any(_same(value, v) for v in spec.grid[key]):
                raise ConfigError(f"{at}[{number}]: where {key}: {value!r} matches no grid point; "
                                  f"the grid's keys and values are {spec.grid}.")
        body = {k: v for k, v in entry.items() if k != "where"}
        rules.append(ReportedRule(dict(entry["where"]), _reported(body, f"{at}[{number}]", spec.source)))
    return rules


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) or (
        _is_number(a) and _is_number(b) and float(a) == float(b))
