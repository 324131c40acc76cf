"""The run folder's ``eval/``: what the analysis computed, written atomically and read back.

Layout::

    eval/eval.json      numbers of the student (and teacher): top1, top5 (%), nll, ece, the
                        reliability bins, per_class_acc (%), confusion, n, teacher_agreement
    eval/logits.pt      --save-logits: {"logits": [N, C] float32, "labels": [N]} (weights_only)
    eval/tsne.csv       x, y, label, pred, model, index — one row per point and model
    eval/tsne.json      the subset's size and seed, V-measures and times per model
    eval/maps/maps.pt   images, stage maps and Grad-CAM of K test images (plain tensors)
    eval/maps/*.png     one figure per image

Each JSON records the checkpoint it came from (``checkpoint``, ``checkpoint_stamp``: size
and mtime of the file), so a reader can tell a result made before a resume (:func:`fresh`).

Usage::

    report = read_json(run, EVAL_JSON)        # None when absent or unreadable
    write_json(run, EVAL_JSON, report)
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from kdtui.analysis.features import Embedding
from kdtui.analysis.loading import checkpoint_path, checkpoint_stamp
from kdtui.analysis.maps import MapSet
from kdtui.store import RunDir, atomic_write_bytes, atomic_write_text

EVAL_JSON = "eval.json"
TSNE_JSON = "tsne.json"
TSNE_CSV = "tsne.csv"
LOGITS_PT = "logits.pt"
MAPS_DIR = "maps"
MAPS_PT = "maps.pt"
TSNE_COLUMNS = ("x", "y", "label", "pred", "model", "index")


def eval_dir(run: RunDir, *parts: str) -> Path:
    folder = run.eval_dir.joinpath(*parts[:-1]) if parts else run.eval_dir
    folder.mkdir(parents=True, exist_ok=True)
    return folder / parts[-1] if parts else folder


def write_json(run: RunDir, name: str, data: dict[str, Any]) -> Path:
    path = eval_dir(run, name)
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    return path


def read_json(run: RunDir, name: str) -> dict[str, Any] | None:
    try:
        data = json.loads((run.eval_dir / name).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def fresh(result: dict[str, Any] | None, run: RunDir, checkpoint: str = "best") -> bool:
    """Whether a cached result was computed from the run's current ``checkpoint`` file."""
    if result is None or result.get("checkpoint") != checkpoint:
        return False
    stamp = checkpoint_stamp(checkpoint_path(run, checkpoint))
    return stamp is not None and result.get("checkpoint_stamp") == stamp


def write_tensors(path: Path, state: dict[str, Any]) -> None:
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def read_tensors(path: Path) -> dict[str, Any] | None:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # missing, torn or foreign: recomputed by whoever needs it
        return None
    return state if isinstance(state, dict) else None


def write_tsne(run: RunDir, embeddings: list[Embedding], meta: dict[str, Any]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TSNE_COLUMNS)
    for emb in embeddings:
        for (x, y), label, pred, index in zip(emb.xy.tolist(), emb.labels.tolist(),
                                              emb.predicted.tolist(), emb.indices.tolist()):
            writer.writerow([f"{x:.4f}", f"{y:.4f}", label, pred, emb.model, index])
    atomic_write_text(eval_dir(run, TSNE_CSV), buffer.getvalue())
    models = {e.model: {"v_tsne": e.v_tsne, "v_raw": e.v_raw, "time_s": e.time_s} for e in embeddings}
    write_json(run, TSNE_JSON, {**meta, "models": models})


def read_tsne(run: RunDir) -> tuple[list[Embedding], dict[str, Any]] | None:
    """The embeddings of tsne.csv with their V-scores from tsne.json; None if either is missing."""
    meta = read_json(run, TSNE_JSON)
    try:
        text = (run.eval_dir / TSNE_CSV).read_text(encoding="utf-8")
    except OSError:
        return None
    if meta is None or not isinstance(meta.get("models"), dict):
        return None
    rows: dict[str, list[list[str]]] = {}
    reader = csv.reader(io.StringIO(text))
    if tuple(next(reader, ())) != TSNE_COLUMNS:
        return None
    for row in reader:
        if len(row) == len(TSNE_COLUMNS):
            rows.setdefault(row[4], []).append(row)
    embeddings = []
    for model, scores in meta["models"].items():
        table = rows.get(model)
        if not table or not isinstance(scores, dict):
            continue
        columns = list(zip(*table))
        embeddings.append(Embedding(
            model, np.array([columns[0], columns[1]], dtype=np.float32).T,
            np.array(columns[2], dtype=np.int64), np.array(columns[3], dtype=np.int64),
            np.array(columns[5], dtype=np.int64), float(scores.get("v_tsne", np.nan)),
            float(scores.get("v_raw", np.nan)), float(scores.get("time_s", np.nan))))
    return embeddings, meta


def write_maps(run: RunDir, maps: MapSet, source: dict[str, Any]) -> Path:
    path = eval_dir(run, MAPS_DIR, MAPS_PT)
    write_tensors(path, {"source": source, **maps.to_state()})
    return path


def read_maps(run: RunDir) -> tuple[MapSet, dict[str, Any]] | None:
    """The cached maps and the source they came from (the keys of an eval.json's source)."""
    state = read_tensors(run.eval_dir / MAPS_DIR / MAPS_PT)
    maps = MapSet.from_state(state) if state is not None else None
    if maps is None or not isinstance(state.get("source"), dict):  # type: ignore[union-attr]
        return None
    return maps, state["source"]  # type: ignore[index]
