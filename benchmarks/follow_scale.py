"""Opening a long run: a metrics.jsonl of N step lines, read by the follower and the dashboard.

Writes one finished run whose metrics.jsonl holds N step lines (every term of a CE + KD +
AMD run, system samples, as the trainer writes them) and an epoch line every 500 steps,
then times

- the follower's first poll (read and parse every line) and adding the records to the
  run's history (wall and CPU time), as the dashboard does when it opens the run, and
- the dashboard (``kdtui watch RUN``, Textual's headless driver, 120×40) from the app's
  start until its history holds every step and the loss panel has drawn them.

Usage::

    python benchmarks/follow_scale.py --lines 100000 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

STEPS_PER_EPOCH = 500


def write_run(root: Path, lines: int):
    from kdtui.store import RunDir

    run = RunDir(root / "20261130-120000-long")
    (run.path / "checkpoints").mkdir(parents=True)
    epochs = -(-lines // STEPS_PER_EPOCH)
    config = {"preset": "long", "data": {"dataset": "shapes"}, "student": {"arch": "wrn_16_1"},
              "loss": {"ce": {"weight": 0.1}, "kd": {"weight": 0.9}, "amd": {"weight": 5000}},
              "train": {"epochs": epochs}}
    run.write_config(config)
    out = []
    for i in range(lines):
        epoch, step = divmod(i, STEPS_PER_EPOCH)
        out.append(json.dumps({
            "event": "step", "epoch": epoch + 1, "step": step + 1, "steps_per_epoch": STEPS_PER_EPOCH,
            "global_step": i + 1, "lr": 0.1, "img_per_s": 1000.0, "time": 1.7e9 + i,
            "loss": {"CE": 1.0 / (1 + i), "KD": 0.5, "A": 1e-4, "P": 1e-4, "N": 1e-5, "total": 2.0},
            "system": {"cpu_percent": 50.0, "ram_used_gb": 3.0}}))
        if step + 1 == STEPS_PER_EPOCH:
            out.append(json.dumps({"event": "epoch", "epoch": epoch + 1, "epochs": epochs,
                                   "test_acc": 50.0, "loss": {"total": 2.0}}))
    run.metrics_path.write_text("\n".join(out) + "\n")
    run.write_summary({"status": "finished", "run_id": run.id, "epochs": epochs,
                       "epochs_done": lines // STEPS_PER_EPOCH, "wall_time_s": 60.0})
    return run


def time_follow(run) -> tuple[float, float]:
    from kdtui.store.follow import RunFollower, RunHistory

    start, cpu = time.perf_counter(), time.process_time()
    RunHistory().add(RunFollower(run).poll().records)
    return time.perf_counter() - start, time.process_time() - cpu


def time_dashboard(run, lines: int) -> float:
    from kdtui.tui.app import KdtuiApp

    app = KdtuiApp(run.path.parent, start="watch", run_ref=run.id)
    result: list[float] = []

    async def main() -> None:
        start = time.perf_counter()
        async with app.run_test(size=(120, 40)) as pilot:
            screen = app.screen
            while len(screen.history.step_x) < lines or not screen.last_step_redraw:
                await pilot.pause(0.01)
            result.append(time.perf_counter() - start)

    asyncio.run(main())
    return result[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kdtui-follow-scale-"))
    try:
        run = write_run(root, args.lines)
        size = run.metrics_path.stat().st_size / 1e6
        follow, follow_cpu, dashboard = [], [], []
        for repeat in range(1, args.repeats + 1):
            wall, cpu = time_follow(run)
            follow.append(wall)
            follow_cpu.append(cpu)
            dashboard.append(time_dashboard(run, args.lines))
            print(f"repeat {repeat}: read + history {wall:.2f} s (CPU {cpu:.2f} s)  "
                  f"dashboard drawn {dashboard[-1]:.2f} s", flush=True)
        print(f"median, {args.lines} step lines ({size:.0f} MB): read + history "
              f"{statistics.median(follow):.2f} s (CPU {statistics.median(follow_cpu):.2f} s), "
              f"dashboard drawn {statistics.median(dashboard):.2f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
