"""Preset files for the launcher: where a new preset is saved, what it holds (a preset file
with the form's overrides applied), and how a preset file is named on the command line.
No Textual here.

Usage::

    target = preset_save_path("mine")                      # <presets folder>/mine.yaml
    write_preset(source, ["train.lr=0.05"], target, "mine: lr 0.05")   # the source preset, overridden
    preset_reference(target)                               # 'mine' (a path when outside the presets folder)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import yaml

from kdtui.config import read_yaml_mapping
from kdtui.overrides import apply_override, parse_override
from kdtui.presets import presets_dir


def display_path(path: Path) -> str:
    """``path`` relative to the current directory when inside it, else absolute."""
    absolute = Path(path).absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def preset_reference(path: Path) -> str:
    """What ``kdtui run`` is given: the name of a preset in the presets folder, else its path."""
    if path.parent.resolve() == presets_dir().resolve():
        return path.stem
    return display_path(path)


def preset_save_path(name: str) -> Path:
    """``<presets folder>/<name>.yaml``, or ``./<name>.yaml`` when that folder is not writable."""
    folder = presets_dir()
    if folder.is_dir() and os.access(folder, os.W_OK):
        return folder / f"{name}.yaml"
    return Path.cwd() / f"{name}.yaml"


def default_description(source: Path, overrides: list[str], description: str) -> str:
    """What a preset saved from ``source`` with ``overrides`` is described as, until the user
    writes otherwise: the source and the changes (not the source's own description)."""
    if not overrides:
        return description
    return f"{source.stem} with {', '.join(overrides)}"


def preset_mapping(source: Path, overrides: Iterable[str], name: str,
                   description: str | None = None) -> dict[str, Any]:
    """The preset file's mapping with the overrides applied, named ``name`` (and described
    by ``description`` when given)."""
    from kdtui.config import expand_loss_shorthand

    raw = read_yaml_mapping(source)
    expand_loss_shorthand(raw)  # so loss.kd.temperature=2 applies to `kd: 0.9` too, as with --set
    for text in overrides:
        apply_override(raw, *parse_override(text))
    if description is not None:
        raw["description"] = description
    return {"preset": name, **{key: value for key, value in raw.items() if key != "preset"}}


def write_preset(source: Path, overrides: Iterable[str], target: Path, description: str | None = None) -> None:
    """Write :func:`preset_mapping` of ``source`` to ``target``, named after the target file."""
    mapping = preset_mapping(source, overrides, target.stem, description)
    target.write_text(yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True), encoding="utf-8")

