"""The launcher's form schema: which config values the form edits, read from the config
dataclasses and the registries, and the plain functions the form compares and maps values
with. No Textual here, so all of it is testable without an app.

Usage::

    schema = load_base_schema()              # no PyTorch: the form can be shown at once
    losses, architectures = load_loss_specs()  # seconds (imports PyTorch): call it from a thread
    schema = load_form_schema()              # both
    [spec.key for spec in schema.train]      # ['train.optimizer', 'train.lr', ...]
    error_key("train.lr: got 0.0, ...", [], keys)   # 'train.lr'
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from typing import Any, Iterable

import yaml

from kdtui.config import DataConfig, StudentConfig, TeacherConfig, TrainConfig, read_yaml_mapping
from kdtui.errors import KdtuiError
from kdtui.overrides import parse_value, render_value
from kdtui.presets import PresetInfo, find_preset, grouped_presets
from kdtui.store import RunRow

# The fields shown up front; the sections' other fields go under "more … options".
DATA_MAIN = ("dataset", "root")
TRAIN_MAIN = ("optimizer", "lr", "schedule", "milestones", "weight_decay", "epochs", "batch_size",
              "seed", "device")
DEVICE_SUGGESTIONS = ("auto", "cpu", "cuda", "cuda:0", "cuda:1", "mps")
# Classes of the classifier head the parameter counts assume when the dataset's own count is
# only known from its files (imagefolder: whatever class folders it holds).
ASSUMED_CLASSES = 10


def head_classes(dataset: str) -> tuple[int, bool]:
    """(classes of the head to count parameters with, whether that number is the dataset's
    own): from the dataset registry, without loading any data."""
    from kdtui.data import DATASETS, dataset_info

    if dataset not in DATASETS:
        return ASSUMED_CLASSES, False
    classes = dataset_info(dataset).num_classes
    return (classes, True) if classes is not None else (ASSUMED_CLASSES, False)


# --- values as written after `--set KEY=` (the grammar lives in kdtui.overrides) -----------

UNPARSABLE = object()  # a typed value YAML cannot read: differs from everything


def yaml_text(value: Any) -> str:
    """A value as the launcher writes it after ``--set KEY=``: whole floats as integers."""
    return render_value(value, compact=True)


@functools.lru_cache(maxsize=4096)  # PyYAML is slow and every validation compares every field
def parse_text(text: str) -> Any:
    """What ``--set KEY=text`` sets (as :func:`kdtui.overrides.parse_override` reads it); do not mutate."""
    try:
        return parse_value(text)
    except yaml.YAMLError:
        return UNPARSABLE


# --- comparing and mapping values ---------------------------------------------------------


def same_value(typed: Any, baseline: Any, unordered: bool = False) -> bool:
    """Whether a typed value is the preset's, as the validator would see them."""
    if typed is UNPARSABLE:
        return False
    if isinstance(baseline, float) and isinstance(typed, str):
        try:  # the validator reads "1e-4" (a YAML string) as a number too
            typed = float(typed)
        except ValueError:
            return False
    if unordered and isinstance(typed, list) and isinstance(baseline, list):
        return sorted(map(str, typed)) == sorted(map(str, baseline))
    if isinstance(typed, bool) or isinstance(baseline, bool):
        return typed is baseline  # 1 == True in Python, not in the schema
    return typed == baseline


def lookup(mapping: Any, key: str) -> Any:
    """The value at a dotted key of nested mappings (``"train.lr"``); None where there is none."""
    for part in key.split("."):
        mapping = mapping.get(part) if isinstance(mapping, dict) else None
    return mapping


def is_optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def is_text(hint: Any) -> bool:
    """A string field (``str`` or ``str | None``): what is typed is the value, quoted as needed."""
    return hint is str or (is_optional(hint) and str in typing.get_args(hint))


def error_key(message: str, overrides: list[str], keys: Iterable[str]) -> str | None:
    """The dotted key a validator message is about: the longest key it starts with."""
    for text in overrides:
        if message.startswith(f"--set {text!r}"):
            return text.partition("=")[0]
    body = message.removeprefix("Unknown key ").removeprefix("Missing key ")
    matches = [key for key in keys if body.startswith(key) and body[len(key):len(key) + 1] in ("", ":", "[", " ", ".")]
    return max(matches, key=len, default=None)


# --- the schema the form is generated from ------------------------------------------------


@dataclass
class FieldSpec:
    """One config value the form edits: its dotted key, type, help and editor hints."""

    key: str
    hint: Any
    help: str
    choices: tuple[str, ...] | None = None       # a Select over these
    item_choices: tuple[str, ...] | None = None  # a list of these: one checkbox each
    suggestions: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.key.rsplit(".", 1)[-1]


def field_specs(cls: type, section: str, names: Iterable[str] | None = None, *, exclude: Iterable[str] = (),
                choices: dict[str, tuple[str, ...]] | None = None,
                suggestions: dict[str, tuple[str, ...]] | None = None) -> list[FieldSpec]:
    """Specs of a dataclass's fields, in ``names`` order (default: declaration order)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    order = list(names) if names is not None else list(fields)
    specs = []
    for name in order:
        if name in exclude:
            continue
        meta, hint, key = fields[name].metadata, hints[name], f"{section}.{name}"
        spec = FieldSpec(key, hint, meta.get("help", ""), suggestions=(suggestions or {}).get(key, ()))
        listed = meta.get("choices")
        if listed is not None and typing.get_origin(hint) is list:
            spec.item_choices = tuple(map(str, listed))
        elif listed is not None:
            spec.choices = tuple(map(str, listed))
        elif choices and key in choices:
            spec.choices = choices[key]
        specs.append(spec)
    return specs


@dataclass
class LossSpec:
    name: str
    needs_teacher: bool
    defaults: dict[str, Any]  # its Options() as a mapping: what a preset without it would use
    fields: list[FieldSpec]   # weight first


# The presets as (group, presets) pairs, as kdtui.presets.grouped_presets() gives them.
PresetGroups = list[tuple[str, list[PresetInfo]]]


@dataclass
class FormSchema:
    presets: PresetGroups  # read with the registries: parsing every preset file takes a while
    data: list[FieldSpec]
    data_more: list[FieldSpec]
    teacher: dict[str, FieldSpec]
    student: FieldSpec
    losses: list[LossSpec]
    train: list[FieldSpec]
    train_more: list[FieldSpec]


def load_base_schema() -> FormSchema:
    """Everything but the losses (and the architecture names): the config dataclasses, the
    dataset registry and the presets, none of which imports PyTorch, so the form is shown
    in well under a second; :func:`load_loss_specs` adds the rest."""
    from kdtui.data import DATASETS
    from kdtui.engine.optim import OPTIMIZERS, SCHEDULES

    presets = grouped_presets()
    choices = {"data.dataset": tuple(DATASETS.names()), "train.optimizer": tuple(OPTIMIZERS.names()),
               "train.schedule": tuple(SCHEDULES.names())}
    suggestions = {"teacher.preset": tuple(p.name for _, group in presets for p in group),
                   "train.device": DEVICE_SUGGESTIONS}
    return FormSchema(
        presets=presets,
        data=field_specs(DataConfig, "data", DATA_MAIN, choices=choices),
        data_more=field_specs(DataConfig, "data", exclude=DATA_MAIN, choices=choices),
        teacher={spec.name: spec for spec in field_specs(TeacherConfig, "teacher", suggestions=suggestions)},
        student=field_specs(StudentConfig, "student", suggestions=suggestions)[0],
        losses=[],
        train=field_specs(TrainConfig, "train", TRAIN_MAIN, choices=choices, suggestions=suggestions),
        train_more=field_specs(TrainConfig, "train", exclude=TRAIN_MAIN, choices=choices),
    )


def load_loss_specs() -> tuple[list[LossSpec], tuple[str, ...]]:
    """The registered losses' specs (cross-entropy and the other losses that work alone first)
    and the architecture names: this imports PyTorch (seconds), so call it from a thread."""
    from kdtui.losses import LOSSES
    from kdtui.models import MODELS

    architectures = tuple(MODELS.names())
    suggestions = {"student.arch": architectures, "teacher.arch": architectures}
    losses = []
    for name in LOSSES.names():
        method = LOSSES.get(name)
        fields = field_specs(method.Options, f"loss.{name}", suggestions=suggestions)
        fields.sort(key=lambda spec: spec.name != "weight")
        losses.append(LossSpec(name, method.needs_teacher, dataclasses.asdict(method.Options()), fields))
    losses.sort(key=lambda spec: spec.needs_teacher)
    return losses, architectures


def load_form_schema() -> FormSchema:
    """The whole schema (this imports PyTorch: seconds, so call it from a thread)."""
    schema = load_base_schema()
    schema.losses, architectures = load_loss_specs()
    schema.student.suggestions = architectures
    schema.teacher["arch"].suggestions = architectures
    return schema


def resolve_sections(raw: dict[str, Any]) -> dict[str, Any]:
    """A preset's values with the defaults filled in, as :func:`kdtui.config.load_config`
    resolves them, for every section but ``loss`` (left empty): without the loss registry,
    so without PyTorch. Raises what the config's own builder raises for a bad section."""
    import copy
    from pathlib import Path

    from kdtui.config import RunConfig, expand_loss_shorthand
    from kdtui.schema import build

    raw = copy.deepcopy(raw)
    expand_loss_shorthand(raw)
    body = {key: value for key, value in raw.items() if key not in ("loss", "teacher")}
    cfg = build(RunConfig, body, where="")
    if raw.get("teacher") is not None:
        cfg.teacher = build(TeacherConfig, raw["teacher"], where="teacher")
    if cfg.data.root is not None:
        cfg.data.root = str(Path(cfg.data.root).expanduser().absolute())
    return {**cfg.to_dict(), "loss": {}}


def parameter_count(arch: str, classes: int) -> int | None:
    """Parameters of ``arch`` built on the meta device (shapes only, nothing allocated)."""
    import torch

    from kdtui.models import MODELS, build_model, count_parameters

    if arch not in MODELS:
        return None
    try:
        with torch.device("meta"):
            return count_parameters(build_model(arch, classes))
    except (KdtuiError, ValueError, TypeError):
        return None


def teacher_arch_of(source: str, preset: str, run_id: str, arch: str, finished: list[RunRow]) -> str | None:
    """The teacher's architecture: given, else the teacher preset's or the teacher run's student."""
    if arch or source in ("none", "path"):
        return arch or None
    if source == "run":
        return next((row.student for row in finished if row.id == run_id), None)
    try:
        raw = read_yaml_mapping(find_preset(preset))
    except KdtuiError:
        return None
    found = lookup(raw, "student.arch")
    return str(found) if found else None



def teacher_dataset_of(source: str, preset: str, run_id: str, finished: list[RunRow]) -> str | None:
    """The dataset the teacher was (or, for 'auto', will be) trained on; None when only its
    checkpoint file knows (a path) or there is no teacher."""
    if source == "run":
        return next((row.dataset for row in finished if row.id == run_id), None)
    if source != "auto":
        return None
    try:
        raw = read_yaml_mapping(find_preset(preset))
    except KdtuiError:
        return None
    found = lookup(raw, "data.dataset")
    return str(found) if found else DataConfig().dataset


def teacher_mismatch(dataset: str, teacher_dataset: str | None, source: str, preset: str,
                     run_id: str) -> str | None:
    """Why a teacher cannot serve ``dataset`` (its classifier has another number of classes),
    in the validator's style (the key first); None when it can, or when that is not known."""
    if teacher_dataset is None or teacher_dataset == dataset:
        return None
    classes, known = head_classes(dataset)
    teacher_classes, teacher_known = head_classes(teacher_dataset)
    if not (known and teacher_known) or classes == teacher_classes:
        return None
    where = f"preset {preset!r}" if source == "auto" else f"run {run_id}"
    return (f"data.dataset: {dataset} has {classes} classes, but the teacher ({where}) is trained on "
            f"{teacher_dataset}, {teacher_classes} classes; choose a teacher trained on {dataset} "
            f"(teacher.preset, or a finished run), or keep data.dataset={teacher_dataset}.")
