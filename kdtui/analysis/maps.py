"""What the networks look at: at each feature stage the positive and negative attention
maps exactly as the AMD loss computes them, and a Grad-CAM map of the predicted class.

Positive map Qp = q / (‖q‖ + eps), q = Σ_c F_c² (the loss's own ``_positive_map``), and
negative map Qn = 1 − Qp, of each student/teacher stage pair pooled to the smaller size as
the loss pools it. Grad-CAM comes from the ``grad-cam`` package (``pytorch_grad_cam``,
imported inside :func:`grad_cam`) on the last module that produces a map of the last
stage's size (for WRN the final batch norm), resized to the input.

Usage::

    maps = attention_maps(student_out.features, teacher_out.features)   # per stage
    maps[0].student_positive                                             # [B, h, w]
    cams = grad_cam(model, images)                                      # [B, H, W] in [0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from kdtui.losses.amd import _positive_map
from kdtui.losses.base import pool_to_smaller


def positive_negative(feature: Tensor) -> tuple[Tensor, Tensor]:
    """(Qp, Qn) of B×C×H×W features, each B×H×W, in float32 as the loss computes them."""
    qp = _positive_map(feature.float())
    return qp[:, 0], 1.0 - qp[:, 0]


@dataclass
class StageMaps:
    stage: int
    size: tuple[int, int]
    student_positive: Tensor
    student_negative: Tensor
    teacher_positive: Tensor | None = None
    teacher_negative: Tensor | None = None


@torch.no_grad()
def attention_maps(student_features: Sequence[Tensor],
                   teacher_features: Sequence[Tensor] | None = None) -> list[StageMaps]:
    """Per stage, the maps the AMD loss compares; with a teacher, each pair is first pooled
    to the smaller spatial size (the loss's ``pool_to_smaller``). A teacher with another
    number of stages is paired from the deepest stage back."""
    student = list(student_features)
    teacher = list(teacher_features) if teacher_features is not None else None
    if teacher is not None and len(teacher) != len(student):
        depth = min(len(student), len(teacher))
        student, teacher = student[-depth:], teacher[-depth:]
    stages = []
    for index, fs in enumerate(student):
        ft = teacher[index] if teacher is not None else None
        if ft is not None:
            fs, ft = pool_to_smaller(fs.float(), ft.float())
        sp, sn = positive_negative(fs)
        tp, tn = positive_negative(ft) if ft is not None else (None, None)
        stages.append(StageMaps(index + 1, (fs.shape[-2], fs.shape[-1]), sp.cpu(), sn.cpu(),
                                None if tp is None else tp.cpu(), None if tn is None else tn.cpu()))
    return stages


class LogitsOnly(nn.Module):
    """A kdtui network seen as ``images -> logits`` (what Grad-CAM expects)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images).logits


def cam_layer(model: nn.Module, images: Tensor) -> nn.Module:
    """The last module, in the order a forward pass calls them, whose output is a 4-D map
    of the last stage's size: the layer Grad-CAM reads activations and gradients from."""
    calls: list[tuple[nn.Module, tuple[int, ...]]] = []

    def record(module: nn.Module, inputs: object, output: object) -> None:
        if isinstance(output, Tensor):
            calls.append((module, tuple(output.shape)))

    handles = [m.register_forward_hook(record) for m in model.modules() if m is not model]
    try:
        with torch.no_grad():
            out = model(images[:1])
    finally:
        for handle in handles:
            handle.remove()
    target = tuple(out.features[-1].shape[-2:])
    for module, shape in reversed(calls):
        if len(shape) == 4 and shape[-2:] == target:
            return module
    raise ValueError(f"{type(model).__name__}: no module outputs a map of the last stage's size {target}.")


def grad_cam(model: nn.Module, images: Tensor, targets: Sequence[int] | None = None) -> Tensor:
    """Grad-CAM maps ``[B, H, W]`` (each scaled to [0, 1] by the library) of the predicted
    class (or of ``targets``), at the input's resolution."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    wrapped = LogitsOnly(model).eval()
    layer = cam_layer(model, images)
    chosen = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets]
    # Gradients must flow to the target layer even for a frozen teacher: switch them on for
    # the call and restore each parameter's flag after.
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for parameter, _ in flags:
            parameter.requires_grad_(True)
        with torch.enable_grad(), torch.autocast(images.device.type, enabled=False), \
                GradCAM(model=wrapped, target_layers=[layer]) as cam:
            maps = cam(input_tensor=images.detach().float().clone(), targets=chosen)
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
            parameter.grad = None
    return torch.from_numpy(maps).float()


def display_images(images: Tensor) -> Tensor:
    """Normalised images back to [0, 1] for display: each image's values stretched to the
    range (one affine map for all channels, so hues stay as the network saw them)."""
    flat = images.detach().float().flatten(1)
    low, high = flat.min(dim=1).values.view(-1, 1, 1, 1), flat.max(dim=1).values.view(-1, 1, 1, 1)
    return ((images.float() - low) / (high - low).clamp_min(1e-12)).clamp(0, 1).cpu()


@dataclass
class ModelMaps:
    arch: str
    predicted: Tensor          # [K] top-1 classes
    cam: Tensor                # [K, H, W] Grad-CAM of the predicted class, in [0, 1]
    positive: list[Tensor]     # per stage, [K, h, w]: Qp
    negative: list[Tensor]     # per stage, [K, h, w]: Qn = 1 − Qp


@dataclass
class MapSet:
    """The maps of K test images, for the terminal, the PNGs and ``eval/maps/maps.pt``."""

    images: Tensor             # [K, 3, H, W] in [0, 1] (display_images)
    labels: Tensor             # [K]
    indices: Tensor            # [K] test-set indices
    classes: list[str]
    models: dict[str, ModelMaps]   # "teacher" (when there is one), then "student"

    @property
    def stages(self) -> int:
        return min(len(m.positive) for m in self.models.values())

    def to_state(self) -> dict:
        """Plain tensors, lists and strings: loadable with ``torch.load(weights_only=True)``."""
        return {"images": self.images, "labels": self.labels, "indices": self.indices,
                "classes": list(self.classes),
                "models": {role: {"arch": m.arch, "predicted": m.predicted, "cam": m.cam,
                                  "positive": list(m.positive), "negative": list(m.negative)}
                           for role, m in self.models.items()}}

    @classmethod
    def from_state(cls, state: dict) -> "MapSet | None":
        try:
            models = {str(role): ModelMaps(str(m["arch"]), m["predicted"], m["cam"], list(m["positive"]),
                                           list(m["negative"]))
                      for role, m in state["models"].items()}
            return cls(state["images"], state["labels"], state["indices"],
                       [str(c) for c in state["classes"]], models)
        except (KeyError, TypeError, AttributeError):
            return None


def compute_map_set(student, teacher, images: Tensor, labels: Tensor, indices: Sequence[int],
                    classes: Sequence[str]) -> MapSet:
    """Stage maps and Grad-CAM of ``images`` for the student and the teacher (or None); each
    is a :class:`kdtui.analysis.loading.Network` (``.arch``, ``.model``)."""
    with torch.no_grad(), torch.autocast(images.device.type, enabled=False):
        s_out = student.model(images.float())
        t_out = teacher.model(images.float()) if teacher is not None else None
    stages = attention_maps(s_out.features, t_out.features if t_out is not None else None)
    models = {}
    if teacher is not None and t_out is not None:
        models["teacher"] = ModelMaps(
            teacher.arch, t_out.logits.argmax(dim=1).cpu(), grad_cam(teacher.model, images),
            [s.teacher_positive for s in stages], [s.teacher_negative for s in stages])  # type: ignore[misc]
    models["student"] = ModelMaps(
        student.arch, s_out.logits.argmax(dim=1).cpu(), grad_cam(student.model, images),
        [s.student_positive for s in stages], [s.student_negative for s in stages])
    return MapSet(display_images(images), labels.cpu(), torch.as_tensor(list(indices)),
                  list(classes), models)
