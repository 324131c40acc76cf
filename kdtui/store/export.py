"""Comparing and exporting runs: config diffs and a CSV of epoch records.

Usage::

    rows = config_diff([run.read_config() for run in runs])
    export_epochs_csv(runs, export_path(runs_root()))
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

from kdtui.store.folders import RunDir, atomic_write_text

def flatten(mapping: Any, prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 0.1}} → {'train.lr': 0.1}; lists stay values."""
    flat: dict[str, Any] = {}
    if isinstance(mapping, dict):
        for key, value in mapping.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) and value:
                flat.update(flatten(value, name))
            else:
                flat[name] = value
    return flat


MISSING = "—"


def config_diff(configs: Sequence[dict[str, Any] | None], only_differing: bool = True
                ) -> list[tuple[str, list[str]]]:
    """Rows (key, [value per run]) over the union of keys; a key a run lacks shows "—"."""
    flats = [flatten(config or {}) for config in configs]
    keys: list[str] = []
    for flat in flats:
        keys.extend(k for k in flat if k not in keys)
    rows = []
    for key in keys:
        values = [json.dumps(flat[key]) if key in flat and not isinstance(flat[key], str)
                  else (flat[key] if key in flat else MISSING) for flat in flats]
        if only_differing and len(set(values)) <= 1:
            continue
        rows.append((key, values))
    return rows


CSV_COLUMNS = ["run", "epoch", "epochs", "lr", "train_acc", "test_acc", "best_test_acc",
               "img_per_s", "time_s"]


def export_epochs_csv(runs: Sequence[RunDir], path: Path) -> int:
    """Write every epoch record of ``runs`` to one CSV (a column per loss term); returns
    the number of rows. Written to a temporary file and renamed, so it is never torn."""
    records = [(run.id, record) for run in runs for record in run.epochs()]
    terms: list[str] = []
    for _, record in records:
        terms.extend(t for t in record.loss if t not in terms)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS[:4] + [f"loss_{t}" for t in terms] + CSV_COLUMNS[4:])
    for run_id, record in records:
        writer.writerow([run_id, record.epoch, record.epochs, record.lr]
                        + [record.loss.get(t, "") for t in terms]
                        + [getattr(record, k) for k in CSV_COLUMNS[4:]])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buffer.getvalue())
    return len(records)


def export_path(root: Path) -> Path:
    """A fresh CSV path in ``<runs>/exports/`` (not a run folder, so listings ignore it)."""
    return root / "exports" / f"epochs-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.csv"
