"""How soon the launcher can be used after ``kdtui``: time to the form, and to a validated form.

Starts ``kdtui`` (the home screen) in a real terminal (a detached tmux session, 120×40 by
default) with an empty runs folder, and polls ``tmux capture-pane`` in a tight loop from
the moment the command is started until the screen shows

- the home screen (its title line: ``runs:``),
- the launcher form: the Data section with its ``dataset`` field (the fields can be
  edited from then on; PyTorch is still loading in a worker), and
- the form validated (``✓ Valid``): the loss editors are there and Start can be pressed
  (PyTorch loaded),

and prints each time, per repeat and as the median. The goal is the form usable within 1.5 s.

Usage::

    python benchmarks/app_startup.py --repeats 5

Needs tmux. The first repeat may pay for cold file caches; run it on an otherwise idle
machine, or say what else ran.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARKS = (("home screen", "runs:"), ("form usable", "dataset "), ("validated", "✓ Valid"))


def capture(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def one_start(width: int, height: int, timeout: float) -> dict[str, float]:
    session = f"kdtui-startup-{os.getpid()}"
    runs = Path(tempfile.mkdtemp(prefix="kdtui-startup-runs-"))
    env = f"KDTUI_RUNS_DIR={runs} PYTHONPATH={os.environ.get('PYTHONPATH', '')}"
    command = f"cd {Path.cwd()} && {env} {sys.executable} -m kdtui; sleep 30"
    found: dict[str, float] = {}
    start = time.perf_counter()
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", str(width), "-y", str(height), command],
                   check=True)
    try:
        while len(found) < len(MARKS) and time.perf_counter() - start < timeout:
            screen = capture(session)
            now = time.perf_counter() - start
            for name, text in MARKS:
                if name not in found and text in screen:
                    found[name] = now
            time.sleep(0.01)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        shutil.rmtree(runs, ignore_errors=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", type=int, default=120)
    parser.add_argument("--height", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("tmux is needed")
    results = []
    for repeat in range(1, args.repeats + 1):
        found = one_start(args.width, args.height, args.timeout)
        results.append(found)
        print(f"repeat {repeat}: " + "  ".join(f"{name} {found.get(name, float('nan')):.2f} s"
                                                for name, _ in MARKS), flush=True)
        time.sleep(1.0)
    for name, _ in MARKS:
        values = [found[name] for found in results if name in found]
        if values:
            print(f"median {name}: {statistics.median(values):.2f} s (min {min(values):.2f}, "
                  f"max {max(values):.2f}, {len(values)} of {len(results)})")


if __name__ == "__main__":
    main()
