"""The run launcher of the home screen, as a package.

``schema`` (the form schema, no Textual) and ``presets_io`` (preset files, no Textual) hold
the logic; ``fields`` and ``editors`` the widgets the form is built from; ``launcher`` the
form itself; ``picker`` and ``save_dialog`` its modal screens.

Usage::

    from kdtui.tui.launcher import Launcher
    yield Launcher(id="launcher")            # in a screen's compose; handle Launcher.StartRun
"""

from kdtui.tui.launcher.launcher import Launcher
from kdtui.tui.launcher.picker import PresetPicker
from kdtui.tui.launcher.presets_io import display_path, preset_save_path
from kdtui.tui.launcher.save_dialog import PresetNameScreen
from kdtui.tui.launcher.schema import yaml_text

__all__ = ["Launcher", "PresetNameScreen", "PresetPicker", "display_path", "preset_save_path", "yaml_text"]
