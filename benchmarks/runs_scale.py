"""How the runs list scales: ``kdtui runs ls`` and the runs viewer's table over N runs.

Writes N finished run folders into a scratch runs folder (config.yaml, summary.json with
the run's description, metrics.jsonl with 6 epochs of 20 step lines each, as a run with
``train.log_every`` writes them), then times

- ``kdtui runs ls --runs-dir RUNS > /dev/null`` as a subprocess (interpreter start included), and
- the runs viewer (``kdtui runs``) from the app's start until its table holds every run,
  in Textual's headless test driver (no terminal), and one sort key press after that.

Usage::

    python benchmarks/runs_scale.py --runs 1000 --repeats 3

The goal: both within 1 s for 1,000 runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_runs(root: Path, count: int) -> None:
    from kdtui.store import RunDir, describe_config

    for i in range(count):
        run = RunDir(root / f"202611{10 + i // 1000 % 20:02d}-{i % 1000:06d}-run{i:05d}")
        (run.path / "checkpoints").mkdir(parents=True)
        config = {"preset": f"run{i:05d}", "data": {"dataset": "shapes"}, "student": {"arch": "wrn_16_1"},
                  "teacher": {"arch": "wrn_16_3", "checkpoint": "auto", "preset": "t"},
                  "loss": {"ce": {"weight": 0.1}, "kd": {"weight": 0.9}, "amd": {"weight": 5000}},
                  "train": {"epochs": 6}}
        run.write_config(config)
        lines = []
        for epoch in range(1, 7):
            for step in range(1, 21):
                lines.append({"event": "step", "epoch": epoch, "step": step, "steps_per_epoch": 20,
                              "global_step": (epoch - 1) * 20 + step, "lr": 0.1,
                              "loss": {"CE": 1.0, "KD": 0.5, "A": 1e-4, "P": 1e-4, "N": 1e-5, "total": 2.0}})
            lines.append({"event": "epoch", "epoch": epoch, "epochs": 6, "test_acc": 50.0 + epoch,
                          "loss": {"total": 2.0 / epoch}})
        run.metrics_path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        run.write_summary({"status": "finished", "run_id": run.id, "epochs": 6, "epochs_done": 6,
                           "best_test_acc": 56.0, "final_test_acc": 56.0, "wall_time_s": 60.0,
                           "describe": describe_config(config).to_dict()})


def time_ls(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "kdtui", "runs", "ls", "--runs-dir", str(root)],
                   stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def time_viewer(root: Path, count: int) -> tuple[float, float]:
    from kdtui.tui.app import KdtuiApp

    app = KdtuiApp(root, start="runs")
    result: list[float] = []

    async def main() -> None:
        start = time.perf_counter()
        async with app.run_test(size=(120, 40)) as pilot:
            while app.screen.table.reading or app.screen.table.row_count < count:
                await pilot.pause(0.01)
            result.append(time.perf_counter() - start)
            start = time.perf_counter()
            await pilot.press("o")
            await pilot.pause()
            result.append(time.perf_counter() - start)

    asyncio.run(main())
    return result[0], result[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kdtui-runs-scale-"))
    try:
        write_runs(root, args.runs)
        ls, viewer, sort = [], [], []
        for repeat in range(1, args.repeats + 1):
            ls.append(time_ls(root))
            shown, sorted_s = time_viewer(root, args.runs)
            viewer.append(shown)
            sort.append(sorted_s)
            print(f"repeat {repeat}: runs ls {ls[-1]:.2f} s  viewer table {viewer[-1]:.2f} s  "
                  f"sort key {sort[-1]:.2f} s", flush=True)
        print(f"median over {args.runs} runs: runs ls {statistics.median(ls):.2f} s, viewer table "
              f"{statistics.median(viewer):.2f} s, sort key {statistics.median(sort):.2f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
