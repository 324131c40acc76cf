"""What the data package knows about a dataset without loading it, and where data lives.

Torch-free and importing nothing of kdtui's, so the registry in :mod:`kdtui.data`, the
builders, the config validation and the app can all use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The ``data`` section of the config (:class:`kdtui.config.DataConfig`), typed loosely so
# the data package does not depend on the config module (which depends on it).
DataOptions = Any


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset's metadata: the standard release's numbers, known before loading."""

    name: str
    num_classes: int | None   # None: whatever classes its folders hold (imagefolder)
    image_size: int | None    # side in pixels the network sees; None: the first training image's
    group: str                # the group its presets are listed under
    crop_padding: int | None  # default padding (pixels a side) of the random crop; None: no
    #                           padded crop (a random-resized crop instead), so none to set
    description: str          # one line


def default_data_root() -> Path:
    """$KDTUI_DATA_DIR, else ~/.cache/kdtui/data — never the current directory."""
    env = os.environ.get("KDTUI_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kdtui" / "data"


def data_root(cfg: DataOptions) -> Path:
    return Path(cfg.root).expanduser() if cfg.root else default_data_root()


def crop_padding(cfg: DataOptions, info: DatasetInfo) -> int | None:
    """The random crop's padding: ``data.crop_padding`` when set, else the dataset's."""
    return cfg.crop_padding if cfg.crop_padding is not None else info.crop_padding
