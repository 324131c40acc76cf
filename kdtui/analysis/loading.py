"""A finished (or stopped) run's networks and test data, ready to analyse: the student from
its checkpoint, the teacher it was distilled from, the run's own test set; and one pass
over that test set collecting float32 logits (and, when asked, penultimate embeddings).

Usage::

    loaded = load_run(run_dir, checkpoint="best", device="cpu")
    outputs = collect_outputs(loaded.student, loaded.data, loaded.device, embeddings=True)
    outputs.logits, outputs.labels, outputs.embeddings
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from kdtui.errors import KdtuiError
from kdtui.store import RunDir

CHECKPOINTS = ("best", "last")
Progress = Callable[[str, float], None]


class Cancelled(Exception):
    """The caller asked to stop (the app's cancel button)."""


def never() -> bool:
    return False


@dataclass
class Network:
    role: str                 # "student" or "teacher"
    arch: str
    model: nn.Module          # eval mode
    source: str               # the run id or file its weights came from


@dataclass
class LoadedRun:
    run: RunDir
    cfg: Any                  # kdtui.config.RunConfig
    data: Any                 # kdtui.data.base.DataBundle
    student: Network
    teacher: Network | None
    teacher_note: str | None  # why there is no teacher, when the run had one
    checkpoint: str           # "best" or "last"
    checkpoint_path: Path
    epoch: int | None
    device: torch.device

    def networks(self) -> list[Network]:
        return [self.student] + ([self.teacher] if self.teacher is not None else [])


def checkpoint_path(run: RunDir, checkpoint: str) -> Path:
    if checkpoint not in CHECKPOINTS:
        raise KdtuiError(f"--checkpoint: got {checkpoint!r}, expected best or last.")
    return run.checkpoints / f"{checkpoint}.pt"


def checkpoint_stamp(path: Path) -> str | None:
    """Size and modification time of a checkpoint: a cached result made from another
    version of the file (the run was resumed since) is stale."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def load_run(run: RunDir, checkpoint: str = "best", device: str = "auto") -> LoadedRun:
    from kdtui.config import load_config
    from kdtui.data import build_data
    from kdtui.engine.checkpoint import extract_state_dict, load_checkpoint, load_weights
    from kdtui.engine.trainer import resolve_device
    from kdtui.models import build_model

    raw = run.read_config()
    if raw is None:
        raise KdtuiError(f"Run {run.id} has no readable config.yaml, so its data and networks "
                         "are unknown.")
    cfg = load_config(data=raw)
    path = checkpoint_path(run, checkpoint)
    if not path.exists():
        other = "last" if checkpoint == "best" else "best"
        raise KdtuiError(f"Run {run.id} has no {checkpoint} checkpoint ({path.name}) yet"
                         + (f"; try --checkpoint {other}." if (run.checkpoints / f"{other}.pt").exists()
                            else "; it has not finished an epoch."))
    torch_device = resolve_device(device)
    data = build_data(cfg.data, seed=cfg.train.seed)
    model = build_model(cfg.student.arch, data.num_classes)
    state = load_checkpoint(path)
    load_weights(model, extract_state_dict(state, path), path, cfg.student.arch)
    epoch = state.get("epoch") if isinstance(state.get("epoch"), int) else None
    student = Network("student", cfg.student.arch, model.to(torch_device).eval(), run.id)
    teacher, note = load_teacher_of(cfg, run, data.num_classes)
    if teacher is not None:
        teacher.model.to(torch_device)
    return LoadedRun(run, cfg, data, student, teacher, note, checkpoint, path, epoch, torch_device)


def load_teacher_of(cfg: Any, run: RunDir, num_classes: int) -> tuple[Network | None, str | None]:
    """The teacher named by the run's resolved config (a run id or a file); none when the run
    trained without one. A teacher that cannot be loaded any more is a note, not an error:
    the student's numbers do not need it."""
    from kdtui.engine.teacher import find_teacher, load_teacher

    if cfg.teacher is None or cfg.teacher.checkpoint == "auto":
        return None, None
    try:
        source = find_teacher(cfg.teacher, run.path.parent)
        assert source is not None
        model = load_teacher(source, num_classes).eval().requires_grad_(False)
    except KdtuiError as exc:
        return None, f"teacher {cfg.teacher.checkpoint} not loaded: {exc}"
    return Network("teacher", source.arch, model, source.run_id or str(source.checkpoint)), None


@dataclass
class Outputs:
    logits: Tensor                 # [N, C] float32, CPU
    labels: Tensor                 # [N] int64, CPU
    embeddings: Tensor | None      # [N, D] float32, CPU (penultimate vectors) when asked


@torch.no_grad()
def collect_outputs(model: nn.Module, data: Any, device: torch.device, *, embeddings: bool = False,
                    batch_size: int = 256, progress: Progress | None = None,
                    cancelled: Callable[[], bool] = never, label: str = "") -> Outputs:
    """One pass over the test set in float32 (autocast off), in the data's fixed order."""
    logits, labels, feats = [], [], []
    done, total = 0, max(data.test_size, 1)
    for images, targets in data.test_batches(batch_size, device):
        if cancelled():
            raise Cancelled
        with torch.autocast(device.type, enabled=False):
            out = model(images.float())
        logits.append(out.logits.float().cpu())
        labels.append(targets.long().cpu())
        if embeddings:
            if out.embedding is None:
                raise KdtuiError(f"{type(model).__name__} gives no penultimate embedding for t-SNE.")
            feats.append(out.embedding.float().flatten(1).cpu())
        done += len(targets)
        if progress is not None:
            progress(f"{label} {done}/{data.test_size} test images".strip(), min(done / total, 1.0))
    if not labels:
        raise KdtuiError("The run's test set is empty: nothing to evaluate.")
    return Outputs(torch.cat(logits), torch.cat(labels), torch.cat(feats) if embeddings else None)


def test_images(data: Any, indices: list[int], device: torch.device,
                batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """The (normalised) test images and labels at ``indices``, in that order."""
    wanted = {index: position for position, index in enumerate(indices)}
    images: list[Tensor | None] = [None] * len(indices)
    labels = torch.zeros(len(indices), dtype=torch.long)
    start = 0
    for batch, targets in data.test_batches(batch_size, device):
        for offset in range(len(targets)):
            position = wanted.get(start + offset)
            if position is not None:
                images[position] = batch[offset].float()
                labels[position] = int(targets[offset])
        start += len(targets)
        if all(image is not None for image in images):
            break
    if any(image is None for image in images):
        raise KdtuiError("Some requested test images are beyond the test set.")
    return torch.stack(images), labels  # type: ignore[arg-type]
