"""The app draws at a lower CPU priority than the training runs it starts (kdtui.tui.priority)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import os, sys
from pathlib import Path
from kdtui.tui.priority import lower_app_priority
from kdtui.tui.process import Launch

def nice(pid):   # field 19 of /proc/PID/stat (the thread group leader's value)
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[16])

before = nice(os.getpid())
lowered = lower_app_priority()
launch = Launch.start(["--help"], Path(sys.argv[1]))   # a child that exits by itself
child = nice(launch.process.pid)
launch.process.wait()
print(before, lowered, nice(os.getpid()), child)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_the_app_is_niced_and_the_runs_it_starts_are_not(tmp_path: Path):
    """In a process of its own (lowering the test runner's priority would outlast the test):
    after lower_app_priority the app's main thread is at nice + 10 (/proc/PID/stat), and a
    run started by Launch.start is at the nice value the app started with."""
    if os.nice(0) >= 19:
        pytest.skip("already at the lowest priority: nothing to lower")
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True,
                         text=True, check=True).stdout.split()
    before, lowered, app, child = int(out[0]), out[1] == "True", int(out[2]), int(out[3])
    assert lowered
    assert app == min(before + 10, 19) and app > before
    assert child == before


def test_spawn_runs_the_call_and_raises_its_error_where_nothing_was_lowered():
    from kdtui.tui.priority import spawn

    assert spawn(lambda: 42) == 42
    with pytest.raises(ZeroDivisionError):
        spawn(lambda: 1 / 0)
