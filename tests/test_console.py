"""The headless console's live progress line on a terminal of 120 columns."""

from __future__ import annotations

import io
import re

from rich.console import Console

from kdtui import events as ev
from kdtui.console import HeadlessConsole

LOSS = {"CE": 1.2345, "KD": 0.8765, "A": 3.2e-05, "P": 1.1e-4, "N": 2.2e-05, "total": 2.3456}


def test_the_progress_line_wraps_instead_of_cutting_at_120_columns():
    out = io.StringIO()
    console = HeadlessConsole(Console(file=out, width=120, force_terminal=True, color_system=None))
    console(ev.RunStarted(run_id="20261128-101500-quickstart", run_dir="/runs/x",
                          config={"student": {"arch": "wrn_16_1"}, "teacher": {"arch": "wrn_40_2"}},
                          device="cpu", epochs=30, start_epoch=0, steps_per_epoch=390,
                          student_params=175_066, teacher_params=2_243_546, teacher_id=None))
    console(ev.EpochEnd(epoch=1, epochs=30, lr=0.05, loss=LOSS, train_acc=50.0, test_acc=55.5,
                        best_test_acc=55.5, best_epoch=1, img_per_s=1234.0, time_s=12.0))
    console(ev.StepMetrics(epoch=2, step=123, steps_per_epoch=390, global_step=513, lr=0.05, loss=LOSS,
                           img_per_s=1234.5))
    assert console.progress is not None
    console.progress.refresh()
    text = out.getvalue()
    console.progress.stop()
    lines = [line for line in re.split(r"\r|\n|\x1b\[[0-9;]*[A-Za-z]", text) if line.strip()]
    live = [line for line in lines if "123/390" in line]
    assert live and all(len(line) <= 120 for line in lines)
    shown = " ".join(lines[lines.index(live[-1]):])
    assert "━" in live[-1] and "ETA" in live[-1] and "test 55.50%" in live[-1]
    for term in ("CE 1.234", "KD 0.8765", "A 3.2e-05", "P 0.00011", "N 2.2e-05", "total 2.346"):
        assert term in shown, term
