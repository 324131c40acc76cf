"""The user's settings that outlive the app: what the dashboard's plots looked like last
(loss scale, smoothing, weighted view), in ``settings.json``.

The file lives in ``$KDTUI_CONFIG_DIR`` if set (tests point it at a temporary folder), else
``$XDG_CONFIG_HOME/kdtui``, else ``~/.config/kdtui``. It is a convenience: a missing file is
the defaults, a corrupt one is ignored with a warning (and replaced on the next change), and
a folder that cannot be written is never an error.

Usage::

    settings, warning = load_settings()
    settings.get("dashboard", {})
    save_settings("dashboard", {"scale": "log10", "smoothing": 0.9, "weighted": True})
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from kdtui.store import atomic_write_text

_LOCK = threading.Lock()   # saves come from worker threads: one read-modify-write at a time


def settings_path() -> Path:
    folder = os.environ.get("KDTUI_CONFIG_DIR")
    if not folder:
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        folder = os.path.join(base, "kdtui")
    return Path(folder).expanduser() / "settings.json"


def load_settings() -> tuple[dict[str, Any], str | None]:
    """(the settings, a warning to show or None); never raises."""
    path = settings_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError) as exc:
        return {}, f"Could not read the settings file {path} ({exc}); using the defaults."
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, (f"The settings file {path} is not valid JSON (line {exc.lineno}); using the "
                    "defaults. It is rewritten on the next change of a remembered setting.")
    if not isinstance(data, dict):
        return {}, f"The settings file {path} does not hold a JSON object; using the defaults."
    return data, None


def save_settings(section: str, values: dict[str, Any]) -> str | None:
    """Replace one section of the settings file (atomically); a message if it could not be
    written, else None."""
    path = settings_path()
    with _LOCK:
        settings, _ = load_settings()
        settings[section] = values
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(settings, indent=2) + "\n")
        except OSError as exc:
            return f"Could not save the settings to {path}: {exc.strerror or exc}."
    return None
