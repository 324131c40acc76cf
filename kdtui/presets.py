"""Finding the preset files that come with kdtui.

Presets live in ``presets/`` at the top of the project (found relative to this package,
never to the current directory) or in ``$KDTUI_PRESETS_DIR``. A preset is named by its
file stem (``quickstart``) or given as a path.

Each preset also has a ``group`` derived from its name's dataset prefix: the group the
dataset is registered with (``cifar10_amd`` → ``cifar10``; ``shapes*`` and ``quickstart*`` →
``quickstart``; anything else → ``other``); ``kdtui presets`` lists them group by group in
:data:`GROUPS` order (the datasets' registration order).

Usage::

    for preset in list_presets(): print(preset.group, preset.name, preset.description)
    path = find_preset("cifar10_teacher_wrn16_3")
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from kdtui.data import DATASETS, dataset_groups
from kdtui.errors import ConfigError


def presets_dir() -> Path:
    env = os.environ.get("KDTUI_PRESETS_DIR")
    return Path(env).expanduser() if env else Path(__file__).resolve().parent.parent / "presets"


QUICKSTART, OTHER = "quickstart", "other"
# Display order of the groups: the quickstart first, then the datasets' groups, then the rest.
GROUPS = (QUICKSTART, *(g for g in dataset_groups() if g not in (QUICKSTART, OTHER)), OTHER)
# Name prefix -> group: every dataset name selects its group, and "quickstart" its own.
# Longest first, so "imagenet" never captures "tiny_imagenet…" or similar.
PREFIXES = sorted({QUICKSTART: QUICKSTART, **{info.name: info.group for info in DATASETS.infos()}}.items(),
                  key=lambda item: len(item[0]), reverse=True)


def group_of(name: str) -> str:
    """The group of a preset name: its dataset prefix, followed by ``_`` or ending the name."""
    for prefix, group in PREFIXES:
        if name == prefix or name.startswith(prefix + "_"):
            return group
    return OTHER


@dataclass
class PresetInfo:
    name: str
    path: Path
    description: str
    group: str = ""

    def __post_init__(self) -> None:
        if not self.group:
            self.group = group_of(self.name)


def list_presets() -> list[PresetInfo]:
    folder = presets_dir()
    found = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            description = str(data.get("description", "")) if isinstance(data, dict) else ""
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            description = "(unreadable preset file)"
        found.append(PresetInfo(path.stem, path, description))
    return found


def grouped_presets() -> list[tuple[str, list[PresetInfo]]]:
    """The presets as (group, presets) pairs in :data:`GROUPS` order, empty groups left out."""
    presets = list_presets()
    return [(group, members) for group in GROUPS
            if (members := [p for p in presets if p.group == group])]


def find_preset(ref: str) -> Path:
    """A preset file by path, or by name in the presets folder."""
    return find_yaml(ref, presets_dir(), lambda: [p.name for p in list_presets()], "preset")


def find_yaml(ref: str, folder: Path, names: Callable[[], list[str]], what: str,
              plural: str = "") -> Path:
    """``ref`` as a path when it looks like one (a .yaml suffix, a separator, an existing
    file), else ``folder/<ref>.yaml``; an unknown name is a ConfigError suggesting the
    closest of ``names()``."""
    path = Path(ref).expanduser()
    if path.suffix in (".yaml", ".yml") or os.sep in ref or path.exists():
        return path
    candidate = folder / f"{ref}.yaml"
    if candidate.exists():
        return candidate
    import difflib

    close = difflib.get_close_matches(ref, names(), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"No {what} named {ref!r} in {folder}.{hint} `kdtui presets` lists the "
                      f"{plural or what + 's'} that come with kdtui; a {what} can also be given as a "
                      "path to a .yaml file.")
