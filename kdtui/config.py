"""The run configuration: presets (YAML) validated into typed sections.

A preset is a YAML mapping with the sections below; everything has a default except the
student architecture. ``load_config`` reads a preset, applies ``--set key=value``
overrides, validates everything and returns a :class:`RunConfig` whose ``to_dict()`` is
the complete resolved config written to the run's ``config.yaml`` (re-running that file
reproduces the run).

Usage::

    cfg = load_config("presets/quickstart.yaml", overrides=["train.epochs=2"])
"""

from __future__ import annotations

import copy
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from kdtui.data import DATASETS, dataset_info
from kdtui.engine.optim import OPTIMIZERS, SCHEDULES
from kdtui.errors import ConfigError
from kdtui.overrides import apply_override, parse_override
from kdtui.schema import build, model_independent_fields, option, to_dict

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def _names(registry: Any) -> str:
    return ", ".join(registry.names())


def _crop_padding_help() -> str:
    infos = DATASETS.infos()
    paddings = [info.crop_padding for info in infos if info.crop_padding is not None]
    usual = max(paddings, key=paddings.count)
    others = "".join(f", {info.name} {info.crop_padding}" for info in infos
                     if info.crop_padding not in (usual, None))
    resized = " and ".join(info.name for info in infos if info.crop_padding is None)
    return (f"black pixels added on each side before the random crop; default: the dataset's "
            f"({usual}{others}; {resized} uses random-resized crops, no padding)")


@dataclass
class DataConfig:
    dataset: str = option("shapes", help=f"dataset name ({_names(DATASETS)})")
    root: str | None = option(
        None, help="folder holding the dataset files; default $KDTUI_DATA_DIR or ~/.cache/kdtui/data",
        affects_model=False)
    download: bool = option(True, help="download the dataset into root when it is missing",
                            affects_model=False)
    train_size: int = option(10000, help="number of generated training images (shapes)", gt=0)
    test_size: int = option(2000, help="number of generated test images (shapes)", gt=0)
    seed: int = option(0, help="seed of the generated dataset (shapes); fixed across runs", ge=0)
    augment: bool = option(True, help="random crop (black padding, see crop_padding) + horizontal flip "
                           "on training images")
    num_workers: int = option(2, help="data-loading worker processes (folder datasets)", ge=0,
                              affects_model=False)
    memory_budget_gb: float = option(
        4.0, help="folder datasets whose images (train + test, 3 bytes a pixel) fit this many GB and "
        "all have the network's size are decoded once into a cache ($KDTUI_CACHE_DIR, default "
        "~/.cache/kdtui/images) and batched from memory on the training device; 0 = always read "
        "the files with DataLoader workers", ge=0, affects_model=False)
    train_subset: int | None = option(
        None, help="use only this many training images, spread evenly over the classes (seeded by data.seed)", gt=0)
    test_subset: int | None = option(
        None, help="use only this many test images, spread evenly over the classes", gt=0)
    image_size: int | None = option(
        None, help="image side in pixels for folder datasets (default: the dataset's own)", gt=0)
    train_folder: str | None = option(None, help="imagefolder: name of the training folder under root")
    test_folder: str | None = option(
        None, help="imagefolder: name of the evaluation folder (default test, else val, else valid)")
    mean: list[float] | None = option(None, help="per-channel normalisation mean (default: the dataset's or computed)")
    std: list[float] | None = option(None, help="per-channel normalisation std", gt=0)
    crop_padding: int | None = option(None, help=_crop_padding_help(), ge=0)
    mixup_alpha: float = option(0.0, help="Mixup of training batches: λ ~ Beta(α, α); 0 = off "
                                "(the teacher sees the same mixed images)", ge=0)
    cutmix_alpha: float = option(0.0, help="CutMix of training batches: λ ~ Beta(α, α); 0 = off "
                                 "(with Mixup too, each batch uses one of them)", ge=0)


@dataclass
class StudentConfig:
    arch: str = option(help="architecture of the trained network, e.g. wrn_16_1")


@dataclass
class TeacherConfig:
    checkpoint: str = option(
        "auto", help="'auto', a run id, a checkpoint path (.pt), or torchvision:NAME (torchvision's "
        "pretrained weights, e.g. torchvision:resnet34) of the frozen teacher")
    preset: str | None = option(
        None, help="with checkpoint 'auto': the preset whose newest finished run is the teacher")
    arch: str | None = option(
        None, help="teacher architecture; needed with a checkpoint path, else taken from the run")


@dataclass
class TrainConfig:
    epochs: int = option(200, help="number of training epochs", gt=0)
    batch_size: int = option(128, help="training batch size: the global batch; under torchrun each "
                             "of N processes takes batch_size / N (must divide). The learning rate is "
                             "never rescaled with N: set train.lr yourself", gt=0)
    eval_batch_size: int = option(512, help="evaluation batch size", gt=0, affects_model=False)
    optimizer: str = option("sgd", help=f"optimiser ({_names(OPTIMIZERS)})")
    lr: float = option(0.1, help="initial learning rate", gt=0, le=10)
    momentum: float = option(0.9, help="SGD momentum", ge=0, lt=1)
    nesterov: bool = option(False, help="Nesterov momentum (SGD)")
    weight_decay: float = option(5e-4, help="L2 weight decay", ge=0, lt=1)
    schedule: str = option("multistep", help=f"learning-rate schedule ({_names(SCHEDULES)})")
    milestones: list[int] = option([], help="epochs after which the LR is multiplied by lr_decay (later ones are never reached)",
                                   gt=0, increasing=True)
    lr_decay: float = option(0.1, help="LR factor at each milestone (multistep)", gt=0, le=1)
    seed: int = option(0, help="seed of initialisation, shuffling and augmentation", ge=0)
    device: str = option("auto", help="auto (CUDA when available, else CPU), cpu, cuda, cuda:N",
                         affects_model=False)
    sync_bn: bool = option(False, help="under torchrun on GPUs: BatchNorm statistics over the global "
                           "batch (SyncBatchNorm) instead of each process's share; no effect in one process")
    # bf16 changes the arithmetic, not the recipe: a teacher trained with or without it is
    # the same teacher, and a student may run where the teacher could not.
    amp: bool = option(True, help="bf16 autocast on CUDA (ignored on CPU)", affects_model=False)
    log_every: int = option(20, help="emit step metrics every N steps", gt=0, affects_model=False)
    nan_policy: str = option("stop", help="on a NaN/Inf loss: stop (fail the run, keep the last "
                             "good checkpoint) or skip (drop that step's update)",
                             choices=("stop", "skip"))
    # Only decides whether a run fails: a run that finished trained the same network for any limit.
    nan_skip_limit: int = option(10, help="with nan_policy skip: fail after this many skipped steps "
                                 "in one epoch", gt=0, affects_model=False)
    deterministic: bool = option(False, help="deterministic algorithms only (same seed, same "
                                 "numbers; slower on GPU); off: cudnn.benchmark picks the fastest "
                                 "kernels", affects_model=False)
    compile: bool = option(False, help="torch.compile the student, the teacher and the loss "
                           "methods: the first steps wait for compilation (tens of seconds, more "
                           "on a CPU), later steps can be faster; pays mostly on GPU, "
                           "benchmark before turning it on", affects_model=False)


@dataclass
class RunConfig:
    student: StudentConfig
    preset: str = option("custom", help="name of the preset this run came from", affects_model=False)
    description: str = option("", help="one line saying what the preset does", affects_model=False)
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig | None = None
    loss: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @property
    def active_losses(self) -> dict[str, Any]:
        return {name: opts for name, opts in self.loss.items() if opts.weight > 0}


SECTIONS = {"preset", "description", "data", "student", "teacher", "loss", "train"}


@functools.cache
def model_independent_keys() -> frozenset[str]:
    """Dotted keys of the settings that do not change the trained network (``preset``,
    ``data.root``, ``train.device``, ...: every option declared ``affects_model=False``).

    Runs that differ only in these trained the same network, so 'auto' teacher matching
    ignores them, and a teacher trained on the way can take them from the student's
    overrides."""
    return frozenset(model_independent_fields(RunConfig))


def read_yaml_mapping(path: Path, what: str = "preset") -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; errors name the file, line and column."""
    if not path.exists():
        raise ConfigError(f"The {what} file {path} does not exist. Check the path; "
                          "`kdtui presets` lists the presets that come with kdtui.")
    if path.is_dir():
        raise ConfigError(f"The {what} path {path} is a folder; give a .yaml file inside it.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the {what} file {path}: {exc}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"The {what} file {path} is not valid YAML{where}: {problem}.") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"The {what} file {path} must hold a mapping of sections "
                          f"({', '.join(sorted(SECTIONS))}), not a {type(data).__name__}.")
    return data


# ``--set`` text, or an already-parsed (dotted key, value) pair.
Override = str | tuple[str, Any]


def load_config(path: str | os.PathLike[str] | None = None, overrides: Sequence[Override] = (),
                data: dict[str, Any] | None = None) -> RunConfig:
    """Load a preset file (or an already-read mapping), apply overrides, validate.

    Each override is ``--set`` text (``"train.lr=0.05"``) or an already-parsed
    ``(dotted key, value)`` pair (``("train.lr", 0.05)``)."""
    raw: dict[str, Any]
    if data is not None:
        raw = copy.deepcopy(data)
    elif path is not None:
        raw = read_yaml_mapping(Path(path))
        raw.setdefault("preset", Path(path).stem)
    else:
        raw = {}
    expand_loss_shorthand(raw)
    for override in overrides:
        key, value = parse_override(override) if isinstance(override, str) else override
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {override!r}: expected a dotted key such as train.lr "
                              "and a value.")
        if key.split(".")[0] not in SECTIONS:
            raise ConfigError(_unknown_section_message(key.split(".")[0], via_set=True))
        apply_override(raw, key, copy.deepcopy(value))
    return validate(raw)


def expand_loss_shorthand(raw: dict[str, Any]) -> None:
    """``loss: {kd: 0.9}`` means ``loss: {kd: {weight: 0.9}}``; expanded before overrides so
    ``--set loss.kd.temperature=2`` works on either form."""
    losses = raw.get("loss")
    if isinstance(losses, dict):
        for name, opts in losses.items():
            if isinstance(opts, (int, float)) and not isinstance(opts, bool):
                losses[name] = {"weight": opts}


def _unknown_section_message(key: str, via_set: bool = False) -> str:
    import difflib

    close = difflib.get_close_matches(str(key), sorted(SECTIONS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    prefix = "--set: " if via_set else ""
    return f"{prefix}Unknown key {key!r}.{hint} Valid top-level keys: {', '.join(sorted(SECTIONS))}."


def validate(raw: dict[str, Any]) -> RunConfig:
    """Validate a raw mapping into a :class:`RunConfig`, including cross-field rules."""
    from kdtui.losses import LOSSES
    from kdtui.models import MODELS

    for key in raw:
        if key not in SECTIONS:
            raise ConfigError(_unknown_section_message(key))
    body = {k: v for k, v in raw.items() if k not in ("loss", "teacher")}
    cfg = build(RunConfig, body, where="") if "student" in body else None
    if cfg is None:
        raise ConfigError("Missing section student: say which network to train, e.g. "
                          "student: {arch: wrn_16_1}.")
    if raw.get("teacher") is not None:
        cfg.teacher = build(TeacherConfig, raw["teacher"], where="teacher")
    cfg.loss = _build_losses(raw.get("loss"), LOSSES)
    if cfg.data.root is not None:
        # Recorded absolute, so config.yaml reproduces the run from any directory.
        cfg.data.root = str(Path(cfg.data.root).expanduser().absolute())

    if cfg.student.arch not in MODELS:
        raise ConfigError("student.arch: " + MODELS.unknown_message(cfg.student.arch))
    if cfg.teacher is not None and cfg.teacher.arch is not None and cfg.teacher.arch not in MODELS:
        raise ConfigError("teacher.arch: " + MODELS.unknown_message(cfg.teacher.arch))
    if cfg.data.dataset not in DATASETS:
        raise ConfigError("data.dataset: " + DATASETS.unknown_message(cfg.data.dataset))
    if cfg.data.crop_padding is not None and dataset_info(cfg.data.dataset).crop_padding is None:
        raise ConfigError(f"data.crop_padding: {cfg.data.dataset} trains on random-resized crops, "
                          "which have no padding; leave crop_padding unset (null).")
    for key in ("mean", "std"):
        value = getattr(cfg.data, key)
        if value is not None and len(value) != 3:
            raise ConfigError(f"data.{key}: got {value}, expected three numbers (R, G, B).")
    if (cfg.data.mean is None) != (cfg.data.std is None):
        raise ConfigError("data.mean and data.std: give both or neither.")
    if cfg.train.optimizer not in OPTIMIZERS:
        raise ConfigError("train.optimizer: " + OPTIMIZERS.unknown_message(cfg.train.optimizer))
    if cfg.train.schedule not in SCHEDULES:
        raise ConfigError("train.schedule: " + SCHEDULES.unknown_message(cfg.train.schedule))
    if not DEVICE_PATTERN.fullmatch(cfg.train.device):
        raise ConfigError(f"train.device: got {cfg.train.device!r}, expected auto, cpu, cuda, "
                          "cuda:N (e.g. cuda:1) or mps.")
    if not cfg.active_losses:
        raise ConfigError("loss: every loss weight is zero (or no loss is given), so nothing "
                          "would be trained. Give at least one term a positive weight, e.g. "
                          "loss: {ce: {weight: 1.0}}.")
    needing = [name for name in cfg.active_losses if LOSSES.get(name).needs_teacher]
    if needing and cfg.teacher is None:
        raise ConfigError(f"loss: {', '.join(needing)} needs a teacher, but the preset has no "
                          "teacher section. Add teacher: {checkpoint: auto, preset: NAME}, a run "
                          "id or a checkpoint path, or set those weights to 0.")
    if cfg.teacher is not None and cfg.teacher.checkpoint == "auto" and not cfg.teacher.preset:
        raise ConfigError("teacher.preset: with teacher.checkpoint 'auto', name the preset that "
                          "trains the teacher, e.g. teacher: {checkpoint: auto, preset: "
                          "cifar10_teacher_wrn16_3}.")
    return cfg


def _build_losses(raw: Any, losses: Any) -> dict[str, Any]:
    if raw is None:
        raw = {"ce": {}}
    if not isinstance(raw, dict):
        raise ConfigError(f"loss: got {raw!r}, expected a mapping of loss names to options, "
                          "e.g. loss: {ce: {weight: 0.1}, kd: {weight: 0.9, temperature: 4}}.")
    built = {}
    for name, opts in raw.items():
        if str(name) not in losses:
            raise ConfigError("loss: " + losses.unknown_message(str(name)))
        method = losses.get(str(name))
        built[str(name)] = build(method.Options, opts, where=f"loss.{name}")
    return built
