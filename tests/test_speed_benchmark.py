"""benchmarks/speed.py --quick runs every measurement on the synthetic data and prints each figure."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

SPEED = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"


def test_speed_benchmark_quick_prints_every_measurement(capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("speed_benchmark", SPEED)
    speed = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "speed_benchmark", speed)  # dataclasses look their module up
    spec.loader.exec_module(speed)
    speed.main(["--quick", "--device", "cpu"])
    out = capsys.readouterr().out
    number = r"\d+(\.\d+)?"
    assert re.search(rf"image cache: built in {number} s; a second start .* {number} s", out)
    for method in ("CE", "KD", "AMD(g)", "AMD(g+l)"):
        row = rf"^{re.escape(method)} +{number} +{number} +{number}× +{number} +{number} +{number}×$"
        assert re.search(row, out, re.MULTILINE), method
    assert re.search(rf"AMD\(g\+l\) step time / KD step time: {number}", out)
    assert re.search(rf"workers {number} img/s, kdtui in memory {number} img/s, ratio {number}×", out)
    for loss in ("KD", "AMD(g)", "AMD(g+l)"):
        assert re.search(rf"^  {re.escape(loss)} +{number} ms +{number} img/s +{number}× KD$", out, re.MULTILINE)
