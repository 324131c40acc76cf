"""Finding the preset files that come with kdtui.

Presets live in ``presets/`` at the top of the project (found relative to this package,
never to the current directory) or in ``$KDTUI_PRESETS_DIR``. A preset is named by its
file stem (``quickstart``) or given as a path.

Each preset also has a ``group`` derived from its name's dataset prefix (``cifar10_amd`` →
``cifar10``; ``quickstart*`` and ``shapes*`` → ``quickstart``; anything else → ``other``);
``kdtui presets`` lists them group by group in :data:`GROUPS` order.

Usage::

    for preset in list_presets(): print(preset.group, preset.name, preset.description)
    path = find_preset("cifar10_teacher_wrn16_3")
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from kdtui.errors import ConfigError


def presets_dir() -> Path:
    env = os.environ.get("KDTUI_PRESETS_DIR")
    return Path(env).expanduser() if env else Path(__file__).resolve().parent.parent / "presets"


# Display order of the groups; the dataset ones are also the name prefixes that select them.
GROUPS = ("quickstart", "cifar10", "cifar100", "cinic10", "tiny_imagenet", "imagenet", "other")
QUICKSTART_PREFIXES = ("quickstart", "shapes")


def group_of(name: str) -> str:
    """The group of a preset name: its dataset prefix, followed by ``_`` or ending the name."""

    def has_prefix(prefix: str) -> bool:
        return name == prefix or name.startswith(prefix + "_")

    if any(has_prefix(prefix) for prefix in QUICKSTART_PREFIXES):
        return "quickstart"
    # Longest first, so a future "imagenet…" never captures "tiny_imagenet…" or similar.
    for group in sorted(GROUPS[1:-1], key=len, reverse=True):
        if has_prefix(group):
            return group
    return "other"


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
    path = Path(ref).expanduser()
    if path.suffix in (".yaml", ".yml") or os.sep in ref or path.exists():
        return path
    candidate = presets_dir() / f"{ref}.yaml"
    if candidate.exists():
        return candidate
    import difflib

    names = [p.name for p in list_presets()]
    close = difflib.get_close_matches(ref, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"No preset named {ref!r} in {presets_dir()}.{hint} `kdtui presets` lists "
                      "them; a preset can also be given as a path to a .yaml file.")
