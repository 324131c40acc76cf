"""What watching a run in the app costs: wall time against --headless, and key latency.

Runs the same preset twice per repeat, alternating: (a) ``kdtui run PRESET --headless``
and (b) ``kdtui run PRESET`` — the Textual app — inside a real terminal (a detached tmux
session, 120×40 by default). Each gets a fresh runs folder, so a preset with teacher
``auto`` trains its teacher both times. Reported per repeat and as ratios app / headless:

- time from the command's start to the last run's ``ended_at`` (what a user waits), and
- the trainer's own ``wall_time_s`` summed over the runs (training slowed by the app?).

While the app's last run trains, it presses ``e`` (the dashboard's step/epoch switch)
``--presses`` times, one a second, and times each press until the terminal shows the
changed panel title (``tmux capture-pane`` polled in a tight loop) — the latency a user
sees, terminal rendering included — and reports its median (p50) and 95th percentile
(nearest rank). ``--latency-only`` skips the headless runs and ends the app once the keys
are pressed: the key latency while a run trains, without the wall-time comparison.

Usage::

    python benchmarks/app_overhead.py --preset presets/quickstart.yaml --repeats 2
    python benchmarks/app_overhead.py --latency-only --preset presets/quickstart_teacher.yaml \
        --runs 1 --presses 40

Needs tmux. Run it on an otherwise idle machine: the ratios are only as good as that.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def summaries(root: Path) -> list[dict]:
    found = []
    for path in sorted(root.glob("2*/summary.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            pass
    return found


def headless(preset: str, root: Path, overrides: list[str]) -> tuple[float, float]:
    start = time.time()
    subprocess.run([sys.executable, "-m", "kdtui", "run", preset, "--headless", "--runs-dir", str(root),
                    *overrides], check=True, stdout=subprocess.DEVNULL)
    done = summaries(root)
    return max(s["ended_at"] for s in done) - start, sum(s["wall_time_s"] for s in done)


# A tmux server of this benchmark's own: a session of a server someone else started would
# take that server's environment (another PYTHONPATH, another kdtui) instead of this one's.
TMUX_SOCKET = f"kdtui-bench-{os.getpid()}"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", TMUX_SOCKET, *args], check=True, capture_output=True,
                          text=True).stdout


def percentile(values: list[float], share: float) -> float:
    """Nearest rank: the smallest value with at least ``share`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def in_app(preset: str, root: Path, overrides: list[str], size: tuple[int, int], presses: int,
           expected_runs: int, latency_only: bool = False
           ) -> tuple[float, float, list[float], tuple[float, float]]:
    session = f"kdtui-bench-{time.monotonic_ns()}"
    # exec: the pane's process is the app itself, whose CPU time is read at the end.
    command = " ".join(["exec", sys.executable, "-m", "kdtui", "run", preset, "--runs-dir", str(root),
                        *overrides])
    start = time.time()
    tmux("new-session", "-d", "-s", session, "-x", str(size[0]), "-y", str(size[1]), command)
    latencies: list[float] = []
    stepping = False   # the last run logs steps: from then on, both views differ
    try:
        while True:
            done = summaries(root)
            ended = [s for s in done if s.get("status") in ("finished", "failed", "stopped")]
            if len(ended) >= expected_runs or (latency_only and len(latencies) >= presses):
                break
            running = [s for s in done if s.get("status") == "running"]
            # Press only once the last run logs steps: before that both views read "per epoch".
            stepping = stepping or (len(done) == expected_runs and bool(running)
                                    and "per step" in tmux("capture-pane", "-p", "-t", session))
            if len(latencies) < presses and stepping and running:
                latencies.append(press_and_wait(session))
                time.sleep(1.0)
            else:
                time.sleep(0.5)
        if latency_only:
            return time.time() - start, math.nan, latencies, (math.nan, math.nan)
        elapsed = max(s["ended_at"] for s in ended) - start
        time.sleep(3.0)  # the app notices its child's end and reaps it: then its CPU time counts
        return elapsed, sum(s["wall_time_s"] for s in ended), latencies, app_cpu(session)
    finally:
        subprocess.run(["tmux", "-L", TMUX_SOCKET, "kill-server"], capture_output=True)


def app_cpu(session: str) -> tuple[float, float]:
    """CPU seconds of the app process itself and of its ended, reaped children (the runs it
    started, with their data workers). Their ratio bounds what drawing can take from training
    on a machine whose cores training keeps busy, free of the minute-to-minute swings of
    wall-time ratios on a shared machine."""
    pid = tmux("display-message", "-p", "-t", session, "#{pane_pid}").strip()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")  # fields 14-17 of stat: utime stime cutime cstime
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def press_and_wait(session: str, timeout: float = 5.0) -> float:
    """Press 'e' and return the seconds until the loss panel's title shows the other view
    (the view switches back on the next press)."""
    before = "per epoch" in tmux("capture-pane", "-p", "-t", session)
    start = time.perf_counter()
    tmux("send-keys", "-t", session, "e")
    while time.perf_counter() - start < timeout:
        if ("per epoch" in tmux("capture-pane", "-p", "-t", session)) != before:
            return time.perf_counter() - start
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="presets/quickstart.yaml")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--runs", type=int, default=2, help="run folders the preset makes (teacher + student: 2)")
    parser.add_argument("--presses", type=int, default=10)
    parser.add_argument("--size", default="120x40", help="terminal size COLSxROWS")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--latency-only", action="store_true",
                        help="no headless run; end the app once the keys are pressed")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("this benchmark needs tmux")
    overrides = [a for o in args.overrides for a in ("--set", o)]
    size = tuple(int(v) for v in args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="kdtui-app-bench-") as scratch:
        if args.latency_only:
            lat: list[float] = []
            for repeat in range(1, args.repeats + 1):
                lat += in_app(args.preset, Path(scratch) / f"app{repeat}", overrides, size, args.presses,
                              args.runs, latency_only=True)[2]
            report_latency(lat)
            return
        for repeat in range(1, args.repeats + 1):
            h_total, h_train = headless(args.preset, Path(scratch) / f"headless{repeat}", overrides)
            print(f"repeat {repeat} headless: {h_total:.1f} s to the end, trainer {h_train:.1f} s", flush=True)
            a_total, a_train, lat, (own, runs) = in_app(args.preset, Path(scratch) / f"app{repeat}",
                                                        overrides, size, args.presses, args.runs)
            print(f"repeat {repeat} app:      {a_total:.1f} s to the end, trainer {a_train:.1f} s; "
                  f"app CPU {own:.1f} s, its runs' CPU {runs:.1f} s; "
                  f"key latency ms: {' '.join(f'{1000 * v:.0f}' for v in lat)}", flush=True)
            rows.append((h_total, h_train, a_total, a_train, lat, own, runs))
    h_total = sum(r[0] for r in rows)
    a_total = sum(r[2] for r in rows)
    h_train = sum(r[1] for r in rows)
    a_train = sum(r[3] for r in rows)
    lat = [v for r in rows for v in r[4] if v == v]
    print(f"app / headless: {a_total / h_total:.3f} (time to the end), {a_train / h_train:.3f} (trainer time)")
    own, runs = sum(r[5] for r in rows), sum(r[6] for r in rows)
    if runs > 0:
        print(f"app CPU / its runs' CPU: {own / runs:.3f} (app start-up included)")
    report_latency(lat)


def report_latency(latencies: list[float]) -> None:
    answered = [v for v in latencies if v == v]
    if len(answered) < len(latencies):
        print(f"{len(latencies) - len(answered)} presses got no answer within 5 s")
    if answered:
        print(f"key latency: p50 {1000 * statistics.median(answered):.0f} ms, "
              f"p95 {1000 * percentile(answered, 0.95):.0f} ms, max {1000 * max(answered):.0f} ms "
              f"over {len(answered)} presses")


if __name__ == "__main__":
    main()
