"""Shared fixtures: a tiny preset pair on the built-in shapes data, an isolated runs folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

TINY_DATA = {"dataset": "shapes", "train_size": 192, "test_size": 96}
TINY_TRAIN = {"epochs": 2, "batch_size": 32, "eval_batch_size": 96, "optimizer": "sgd", "lr": 0.05,
              "schedule": "cosine", "log_every": 2, "device": "cpu"}


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own runs, data, settings and image-cache folders; nothing touches
    the user's."""
    monkeypatch.setenv("KDTUI_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("KDTUI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("KDTUI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KDTUI_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def tiny_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A presets folder holding a tiny teacher preset and a KD + AMD student preset."""
    folder = tmp_path / "presets"
    folder.mkdir()
    teacher = {"description": "tiny teacher", "data": TINY_DATA, "student": {"arch": "wrn_10_1"},
               "loss": {"ce": {"weight": 1.0}}, "train": TINY_TRAIN}
    student = {"description": "tiny student", "data": TINY_DATA, "student": {"arch": "wrn_10_1"},
               "teacher": {"checkpoint": "auto", "preset": "tiny_teacher"},
               "loss": {"ce": {"weight": 0.1}, "kd": {"weight": 0.9, "temperature": 4},
                        "amd": {"weight": 5000, "local": True}},
               "train": {**TINY_TRAIN, "epochs": 3}}
    (folder / "tiny_teacher.yaml").write_text(yaml.safe_dump(teacher))
    (folder / "tiny_student.yaml").write_text(yaml.safe_dump(student))
    monkeypatch.setenv("KDTUI_PRESETS_DIR", str(folder))
    return folder
