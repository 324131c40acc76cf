"""The frozen teacher, and where its weights come from.

:class:`FrozenTeacher` holds the network in eval mode with gradients off, and runs it
under ``torch.no_grad()``: ``.train()`` cannot switch it back and it is not a submodule
of anything the optimiser sees, so it is frozen by construction, not by convention.

``teacher.checkpoint`` is resolved by :func:`find_teacher`: a checkpoint path, a run id,
or ``auto`` — the newest finished run of ``teacher.preset`` in the runs folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdtui.config import TeacherConfig, load_config, model_independent_keys
from kdtui.errors import ConfigError, KdtuiError
from kdtui.models.base import ModelOutput
from kdtui.store import RUN_ID, RunDir, iter_runs, resolve_run


class FrozenTeacher:
    """A network that only ever runs in inference: eval mode, no autograd."""

    def __init__(self, model: nn.Module) -> None:
        self._model = model.eval().requires_grad_(False)

    def to(self, *args: Any, **kwargs: Any) -> "FrozenTeacher":
        self._model.to(*args, **kwargs)
        return self

    def parameters(self):  # for counting only; these never reach an optimiser
        return self._model.parameters()

    def compile(self) -> None:
        """torch.compile the network's forward in place (train.compile)."""
        self._model.compile()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> ModelOutput:
        return self._model(images)


@dataclass
class TeacherSource:
    arch: str
    checkpoint: Path
    run_id: str | None
    best_test_acc: float | None = None   # as its run recorded it (None for a bare file)
    reference: str | None = None         # how config.yaml names it, when not a run or a path


def comparable(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``config`` without the settings that may differ between the teacher run 'auto' finds
    and the teacher preset: those that change nothing about the trained network."""
    ignored = model_independent_keys()
    return {key: comparable(value, f"{prefix}{key}.") if isinstance(value, dict) else value
            for key, value in config.items() if f"{prefix}{key}" not in ignored}


def resolved(config: dict[str, Any]) -> dict[str, Any] | None:
    """A run's recorded config with today's defaults filled in (an option added since the
    run was made counts as its default), or None when it no longer validates."""
    try:
        return load_config(data=config).to_dict()
    except KdtuiError:
        return None


def newest_finished_run(root: Path, expected: dict[str, Any]) -> RunDir | None:
    """The newest finished run trained with the ``expected`` config (the teacher preset's),
    so a shortened smoke test of that preset is never taken for the real teacher."""
    wanted = comparable(expected)
    for run in iter_runs(root):  # newest first
        summary = run.summary()
        config = run.read_config() or {}
        if summary is not None and summary.status == "finished" \
                and config.get("preset") == expected.get("preset") \
                and (run.checkpoints / "best.pt").exists() \
                and comparable(resolved(config) or {}) == wanted:
            return run
    return None


def teacher_from_run(run: RunDir) -> TeacherSource:
    config = run.read_config() or {}
    arch = (config.get("student") or {}).get("arch")
    if not arch:
        raise KdtuiError(f"Teacher run {run.id} has no readable config.yaml naming its architecture.")
    summary = run.summary()
    status = summary.status if summary is not None else None
    checkpoint = run.checkpoints / ("best.pt" if (run.checkpoints / "best.pt").exists() else "last.pt")
    if status != "finished":
        raise KdtuiError(f"Teacher run {run.id} is {status or 'incomplete'}, not finished; resume it "
                         f"with `kdtui run --resume {run.id}` or choose another teacher.")
    return TeacherSource(arch=arch, checkpoint=checkpoint, run_id=run.id,
                         best_test_acc=summary.best_test_acc if summary is not None else None)


def find_teacher(cfg: TeacherConfig, root: Path,
                 teacher_preset: dict[str, Any] | None = None) -> TeacherSource | None:
    """Resolve the teacher; ``None`` means 'auto' found no finished run of
    ``teacher_preset`` (the resolved teacher preset config): train it first."""
    ref = cfg.checkpoint
    if ref == "auto":
        run = newest_finished_run(root, teacher_preset or {})
        return teacher_from_run(run) if run else None
    if ref.startswith(TORCHVISION):
        return torchvision_teacher(ref, cfg.arch)
    path = Path(ref).expanduser()
    if path.suffix in (".pt", ".pth", ".ckpt") or path.is_file():
        if not cfg.arch:
            raise ConfigError(f"teacher.arch: the teacher checkpoint {ref} is a file, so kdtui "
                              "needs its architecture, e.g. teacher: {arch: wrn_16_3, checkpoint: ...}.")
        return TeacherSource(arch=cfg.arch, checkpoint=path.absolute(), run_id=None)
    if RUN_ID.fullmatch(ref) or path.is_dir():
        return teacher_from_run(resolve_run(root, ref))
    raise ConfigError(f"teacher.checkpoint: {ref!r} is neither 'auto', a run id "
                      "(YYYYmmdd-HHMMSS-name), torchvision:NAME nor a checkpoint file (.pt/.pth).")


TORCHVISION = "torchvision:"


def torchvision_teacher(ref: str, arch: str | None) -> TeacherSource:
    """``torchvision:resnet34`` (the default weights) or ``torchvision:resnet34.IMAGENET1K_V1``:
    torchvision's pretrained classifier, as the AMD authors distil ImageNet from. The file is
    fetched into torch's usual cache (``$TORCH_HOME/hub/checkpoints``) once; offline, the error
    names the file and where to put it."""
    from torchvision.models import get_model_weights

    from kdtui.models.resnet_imagenet import TORCHVISION_NETWORKS

    name, _, variant = ref[len(TORCHVISION):].partition(".")
    if name not in TORCHVISION_NETWORKS:
        raise ConfigError(f"teacher.checkpoint: {ref!r}: kdtui loads torchvision's weights into its "
                          "ImageNet ResNets only: torchvision:resnet18, torchvision:resnet34 or "
                          "torchvision:resnet50.")
    if arch not in (None, name):
        raise ConfigError(f"teacher.arch: {arch} does not match the weights {ref!r}; set teacher.arch "
                          f"to {name} or leave it out.")
    weights_enum = get_model_weights(name)
    try:
        weights = weights_enum[variant] if variant else weights_enum.DEFAULT
    except KeyError:
        raise ConfigError(f"teacher.checkpoint: {ref!r}: torchvision has no weights {variant!r} for "
                          f"{name}; it has {', '.join(w.name for w in weights_enum)}.") from None
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not path.exists():
        download_weights(weights.url, path, ref)
    return TeacherSource(arch=name, checkpoint=path, run_id=None,
                         reference=f"{TORCHVISION}{name}.{weights.name}")


def download_weights(url: str, path: Path, ref: str) -> None:
    import socket

    path.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)  # an offline machine must fail, not hang
    try:
        torch.hub.download_url_to_file(url, str(path), progress=False)
    except Exception as exc:  # URLError, timeouts, HTTP errors: many types
        raise KdtuiError(f"teacher.checkpoint {ref}: the weights file {path} is not there and "
                         f"downloading {url} failed ({exc}). On a machine with internet, fetch that "
                         f"URL and copy the file to {path} (set TORCH_HOME to use another cache "
                         "folder), then start again.") from None
    finally:
        socket.setdefaulttimeout(previous)


def load_teacher(source: TeacherSource, num_classes: int) -> nn.Module:
    from kdtui.engine.checkpoint import extract_state_dict, load_checkpoint, load_weights
    from kdtui.models import build_model

    model = build_model(source.arch, num_classes)
    state = load_checkpoint(source.checkpoint)
    load_weights(model, extract_state_dict(state, source.checkpoint), source.checkpoint, source.arch)
    return model
