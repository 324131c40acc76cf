"""A study's runs: its points (grid product or list) times its seeds, each validated.

Overrides apply in this order, later winning: the base preset < the study's ``set`` < the
command line's ``--set`` < the point's own values < its seed (``train.seed``). Every run's
config is validated (a full ``load_config``) by :func:`expand_study` before anything runs.

Usage::

    runs = expand_study(load_study(path), cli_overrides=["train.device=cpu"])
    for run in runs: print(run.number, run.name, run.overrides)
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kdtui.errors import ConfigError, KdtuiError
from kdtui.overrides import parse_override, render_override as shared_render_override
from kdtui.study.spec import PointSpec, Reported, StudySpec, _same

SEED_KEY = "train.seed"


def render_override(key: str, value: Any) -> str:
    """``key=value`` as ``--set`` takes it (the shared grammar of :mod:`kdtui.overrides`)."""
    try:
        return shared_render_override(key, value)
    except TypeError:
        raise ConfigError(f"{key}: the value {value!r} cannot be written as a --set value.") from None


def show_value(value: Any) -> str:
    """A value as a table cell or a listing shows it: YAML flow style, '-' for none."""
    if value is None:
        return "-"
    return yaml.safe_dump([value], default_flow_style=True, width=float("inf")).strip()[1:-1].strip()


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """{"loss": {"amd": {"weight": 1}}} → {"loss.amd.weight": 1}; lists stay values."""
    if not isinstance(config, dict):
        return {prefix[:-1]: config} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# Settings that change where or how fast a run trains, not what it learns: a finished run
# differing only in these still counts as the point's run.
RUN_ONLY_KEYS = ("description", "data.root", "data.download", "data.num_workers", "train.device",
                 "train.amp", "train.log_every", "train.eval_batch_size", "teacher.checkpoint",
                 "teacher.arch")


def comparable(config: dict[str, Any] | None) -> dict[str, Any]:
    """The flattened config without :data:`RUN_ONLY_KEYS` (teacher resolved to a run id is
    compared by its preset)."""
    return {k: v for k, v in flatten(config or {}).items() if k not in RUN_ONLY_KEYS}


@dataclass
class StudyRun:
    """One run of a study: a point with one seed."""

    number: int                     # 1-based position in the study's run order
    index: int                      # 1-based point number (seeds share it)
    seed: int
    point: dict[str, Any]           # the point's own values, "preset" included, plus train.seed
    overrides: list[str]            # --set strings, in order (set, CLI, point, seed)
    base: Path                      # the preset file the run starts from
    name: str                       # its run name
    reported: Reported | None = None
    config: Any = None              # the validated RunConfig
    expected: dict[str, Any] = field(default_factory=dict)   # comparable() of that config

    def describe(self) -> str:
        parts = [f"{k}={show_value(v)}" for k, v in self.point.items() if k != SEED_KEY]
        return ", ".join(parts) or "(base)"

    @property
    def key(self) -> str:
        """The point's identity, as recorded in its run's summary (study.point)."""
        return point_key(self.point)

    def study_record(self, study_id: str) -> dict[str, Any]:
        reported = {"reported": self.reported.to_dict()} if self.reported is not None else {}
        return {"id": study_id, "point": dict(self.point), "index": self.index, **reported}


def point_key(point: Any) -> str:
    """Canonical text of a point mapping (JSON, sorted keys; 5000 and 5000.0 alike)."""
    def norm(value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, list):
            return [norm(v) for v in value]
        if isinstance(value, dict):
            return {str(k): norm(v) for k, v in value.items()}
        return value
    return json.dumps(norm(point), sort_keys=True)


def points_of(spec: StudySpec) -> list[PointSpec]:
    if not spec.grid:
        return spec.points
    keys = list(spec.grid)
    points = []
    for values in itertools.product(*(spec.grid[k] for k in keys)):
        chosen = dict(zip(keys, values))
        preset = chosen.pop("preset", None)
        point = PointSpec(chosen, preset)
        for rule in spec.reported:
            if all(_same(dict(zip(keys, values))[k], v) for k, v in rule.where.items()):
                point.reported = rule.reported
        points.append(point)
    return points


def resolve_preset(ref: str, folder: Path) -> Path:
    """A preset name (the presets folder) or a path, relative to the study file's folder."""
    from kdtui.presets import find_preset

    looks_like_path = ref.endswith((".yaml", ".yml")) or "/" in ref
    if looks_like_path:
        path = Path(ref).expanduser()
        return path if path.is_absolute() else folder / path
    return find_preset(ref)


def expand_study(spec: StudySpec, cli_overrides: list[str] | tuple[str, ...] = ()) -> list[StudyRun]:
    """Every run of the study, each config validated; ConfigError naming the point if not."""
    from kdtui.config import load_config

    points = points_of(spec)
    width = len(str(len(points)))
    fixed = [render_override(k, v) for k, v in spec.set.items()] + list(cli_overrides)
    runs: list[StudyRun] = []
    for seed_index, seed in enumerate(spec.seeds or [None]):
        for index, point in enumerate(points, 1):
            values = ({"preset": point.preset} if point.preset else {}) | point.overrides
            label = ", ".join(f"{k}={show_value(v)}" for k, v in values.items()) or "the base preset"
            where = f"Study {spec.name!r} ({spec.path.name}), point {index} ({label}"
            where += f", seed {seed})" if seed is not None else ")"
            try:
                ref = point.preset or spec.base
                assert ref is not None  # load_study checked
                base = resolve_preset(ref, spec.folder)
                overrides = fixed + [render_override(k, v) for k, v in point.overrides.items()]
                if seed is not None:
                    overrides.append(render_override(SEED_KEY, seed))
                cfg = load_config(base, overrides)
                check_teacher(cfg, overrides)
            except KdtuiError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            values[SEED_KEY] = cfg.train.seed
            runs.append(StudyRun(
                number=len(runs) + 1, index=index, seed=cfg.train.seed, point=values,
                overrides=overrides, base=base, reported=point.reported, config=cfg,
                name=f"{spec.name}-p{index:0{width}d}-s{cfg.train.seed}",
                expected=comparable(cfg.to_dict())))
    seen: dict[str, int] = {}
    for run in runs:
        if run.key in seen:
            raise ConfigError(f"Study {spec.name!r}: points {seen[run.key]} and {run.index} are the "
                              "same run (same values and seed); make each point differ.")
        seen[run.key] = run.index
    return runs


def check_teacher(cfg: Any, overrides: list[str]) -> None:
    """A teacher 'auto' must name a preset that loads (it may be trained on the way)."""
    if cfg.teacher is not None and cfg.teacher.checkpoint == "auto" and cfg.teacher.preset:
        from kdtui.engine.launch import teacher_preset_config

        try:
            teacher_preset_config(cfg, tuple(parse_override(o) for o in overrides))
        except KdtuiError as exc:
            raise ConfigError(f"teacher.preset {cfg.teacher.preset!r}: {exc}") from None
