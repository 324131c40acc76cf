"""Checkpoints: atomic saves, safe loads (``weights_only=True``), clear mismatch errors.

A kdtui checkpoint is a plain dict of tensors and numbers, so it loads with
``torch.load(..., weights_only=True)``; anything carrying pickled objects is refused.

Usage::

    save_checkpoint(run.checkpoints / "last.pt", {"model": net.state_dict(), "epoch": 3})
    state = load_checkpoint(path)
    load_weights(net, extract_state_dict(state, path), path)
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from kdtui.errors import CheckpointError
from kdtui.store import atomic_write_bytes


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise CheckpointError(f"Checkpoint {path} does not exist. Check the path, or give a run id "
                              "(`kdtui runs ls` lists them).")
    if path.is_dir():
        raise CheckpointError(f"Checkpoint path {path} is a folder; give the .pt file inside it.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):
            culprit = next((line.split("GLOBAL", 1)[1].split()[0] for line in str(exc).splitlines()
                            if "GLOBAL" in line), "")
            raise CheckpointError(
                f"Checkpoint {path} was refused: it holds pickled Python objects, not just tensors "
                f"and numbers, and kdtui loads checkpoints with weights_only=True so that a file "
                f"cannot run code{f' (it needs {culprit})' if culprit else ''}. Re-save it as a plain state "
                "dict: torch.save(model.state_dict(), 'teacher.pt')."
            ) from None
        raise CheckpointError(f"Checkpoint {path} cannot be read; the file is corrupt or not a "
                              "PyTorch checkpoint.") from None
    except Exception as exc:  # truncated or not a torch file at all
        raise CheckpointError(f"Checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); "
                              "the file is corrupt or not a PyTorch checkpoint.") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"Checkpoint {path} holds a {type(state).__name__}, expected a dict "
                              "(a state dict, or a checkpoint dict with a 'model' or 'state_dict' entry).")
    return state


def extract_state_dict(state: Mapping[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The model weights inside a checkpoint: ours ('model'), a common 'state_dict' entry,
    or the dict itself; a DDP 'module.' prefix is removed."""
    for key in ("model", "state_dict", "net", "model_state_dict"):
        if isinstance(state.get(key), Mapping):
            state = state[key]
            break
    weights = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not weights:
        raise CheckpointError(f"Checkpoint {path} holds no model weights (no tensors found).")
    if all(k.startswith("module.") for k in weights):
        weights = {k[len("module."):]: v for k, v in weights.items()}
    return weights


def load_weights(model: nn.Module, weights: Mapping[str, torch.Tensor], path: Path, arch: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    wrong_shape = [f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}"
                   for k, v in expected.items() if k in weights and weights[k].shape != v.shape]
    if missing or unexpected or wrong_shape:
        parts = []
        if wrong_shape:
            parts.append("shape mismatches (checkpoint vs model): " + "; ".join(wrong_shape[:5]))
        if missing:
            parts.append("missing keys: " + ", ".join(missing[:5]))
        if unexpected:
            parts.append("unexpected keys: " + ", ".join(unexpected[:5]))
        raise CheckpointError(
            f"Checkpoint {path} does not fit architecture {arch}: {'. '.join(parts)}. Check that "
            "teacher.arch names the network the checkpoint was trained as, with the same number "
            "of classes as the dataset."
        )
    model.load_state_dict(weights)
