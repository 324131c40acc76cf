"""One analysis of a run, end to end: load its networks and test set, evaluate, and, when
asked, t-SNE and maps; every result written to ``eval/`` as it is ready. The command line
and the app's analysis screen both call :func:`analyse` (the app in a worker thread, with
``progress`` and ``cancelled``).

Usage::

    result = analyse(run_dir, Options(tsne=True, maps=True), progress=lambda text, f: ...)
    result.report["top1"], result.embeddings[0].v_tsne, result.maps.models["student"].cam
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from kdtui.analysis.evaluate import agreement, classification_report
from kdtui.analysis.features import DEFAULT_POINTS, Embedding, embed, stratified_indices
from kdtui.analysis.loading import (Cancelled, LoadedRun, Progress, checkpoint_stamp,
                                    collect_outputs, load_run, never, test_images)
from kdtui.analysis.maps import MapSet, compute_map_set
from kdtui.analysis.results import (EVAL_JSON, LOGITS_PT, eval_dir, write_json, write_maps,
                                    write_tensors, write_tsne)
from kdtui.store import RunDir

__all__ = ["Analysis", "Cancelled", "Options", "analyse"]


@dataclass
class Options:
    checkpoint: str = "best"
    device: str = "auto"
    tsne: bool = False
    points: int = DEFAULT_POINTS
    maps: bool = False
    images: int = 8
    seed: int = 0
    save_logits: bool = False
    png: bool = True             # --maps: also one PNG per image in eval/maps/


@dataclass
class Analysis:
    report: dict[str, Any]
    embeddings: list[Embedding] | None = None
    tsne_meta: dict[str, Any] | None = None
    maps: MapSet | None = None
    timings: dict[str, float] = field(default_factory=dict)   # eval_s, tsne_s, maps_s, png_s
    notes: list[str] = field(default_factory=list)


def _source(loaded: LoadedRun) -> dict[str, Any]:
    return {"run": loaded.run.id, "checkpoint": loaded.checkpoint,
            "checkpoint_stamp": checkpoint_stamp(loaded.checkpoint_path),
            "checkpoint_epoch": loaded.epoch, "dataset": loaded.data.name,
            "device": str(loaded.device)}


def analyse(run: RunDir, options: Options, progress: Progress | None = None,
            cancelled: Callable[[], bool] = never) -> Analysis:
    """Raises :class:`Cancelled` between steps when ``cancelled()`` turns true; what was
    finished by then is already in ``eval/``."""
    say = progress or (lambda text, fraction: None)
    say("loading the networks and the test set", 0.0)
    loaded = load_run(run, options.checkpoint, options.device)
    result = Analysis({})
    if loaded.teacher_note:
        result.notes.append(loaded.teacher_note)

    start = time.perf_counter()
    outputs = {}
    for network in loaded.networks():
        outputs[network.role] = collect_outputs(
            network.model, loaded.data, loaded.device, embeddings=options.tsne,
            batch_size=loaded.cfg.train.eval_batch_size, progress=say, cancelled=cancelled,
            label=f"evaluating the {network.role}:")
    student = outputs["student"]
    report = {**_source(loaded), "student_arch": loaded.student.arch,
              "classes": list(loaded.data.class_names),
              **classification_report(student.logits, student.labels, loaded.data.class_names)}
    if loaded.teacher is not None:
        teacher = outputs["teacher"]
        report["teacher"] = {"run": loaded.teacher.source, "arch": loaded.teacher.arch,
                             **classification_report(teacher.logits, teacher.labels,
                                                     loaded.data.class_names)}
        report["teacher_agreement"] = agreement(student.logits.argmax(1), teacher.logits.argmax(1))
    result.timings["eval_s"] = report["time_s"] = time.perf_counter() - start
    write_json(run, EVAL_JSON, report)
    if options.save_logits:
        write_tensors(eval_dir(run, LOGITS_PT), {"logits": student.logits.contiguous(),
                                                 "labels": student.labels.contiguous()})
    result.report = report

    if options.tsne:
        result.embeddings, result.tsne_meta = _tsne(run, loaded, outputs, options, say, cancelled)
        result.timings["tsne_s"] = sum(e.time_s for e in result.embeddings)
    if options.maps:
        result.maps, result.timings["maps_s"], png_s = _maps(run, loaded, student.labels, options, say,
                                                             cancelled)
        if options.png:
            result.timings["png_s"] = png_s
    say("done", 1.0)
    return result


def _tsne(run: RunDir, loaded: LoadedRun, outputs: dict, options: Options, say: Progress,
          cancelled: Callable[[], bool]) -> tuple[list[Embedding], dict[str, Any]]:
    labels = outputs["student"].labels.numpy()
    keep = stratified_indices(labels, options.points, options.seed)
    embeddings = []
    for step, network in enumerate(loaded.networks()):
        if cancelled():
            raise Cancelled
        say(f"t-SNE of the {network.role}'s features ({len(keep)} points)",
            step / len(loaded.networks()))
        out = outputs[network.role]
        embeddings.append(embed(network.role, out.embeddings[keep].numpy(), labels[keep],
                                out.logits.argmax(1)[keep].numpy(), np.asarray(keep, dtype=np.int64),
                                loaded.data.num_classes, options.seed))
    meta = {**_source(loaded), "n": len(keep), "seed": options.seed, "perplexity_max": 30.0,
            "student_arch": loaded.student.arch,
            "teacher_arch": loaded.teacher.arch if loaded.teacher is not None else None,
            "classes": list(loaded.data.class_names), "method": "sklearn.manifold.TSNE (Barnes-Hut, "
            "PCA init); V-measure of k-means (k = classes, n_init 10)"}
    write_tsne(run, embeddings, meta)
    return embeddings, meta


def _maps(run: RunDir, loaded: LoadedRun, labels: Any, options: Options, say: Progress,
          cancelled: Callable[[], bool]) -> tuple[MapSet, float, float]:
    if cancelled():
        raise Cancelled
    say(f"attention maps and Grad-CAM of {options.images} test images", 0.0)
    start = time.perf_counter()
    # One image per class first (seeded), so a few images show different classes.
    indices = stratified_indices(labels.numpy(), options.images, options.seed)
    images, image_labels = test_images(loaded.data, indices, loaded.device)
    maps = compute_map_set(loaded.student, loaded.teacher, images, image_labels, indices,
                           loaded.data.class_names)
    folder = write_maps(run, maps, _source(loaded)).parent
    maps_s = time.perf_counter() - start
    png_s = 0.0
    if options.png:
        from kdtui.analysis.figures import save_map_pngs

        start = time.perf_counter()
        save_map_pngs(maps, folder, cancelled)
        png_s = time.perf_counter() - start
    return maps, maps_s, png_s
