"""Soak test (not part of CI): kill a real run with SIGKILL at random moments, resume it
each time, and check it ends exactly like an uninterrupted run with the same seed.

Usage::

    python tools/soak_kill_resume.py --kills 20 [--seed 0] [--runs-dir DIR]

It trains a small shapes run (wrn_10_1, CE, CPU) once straight through, then again under
fire: each cycle starts the run (or `--resume`s it), waits until it trains, then a random time up to 1.5 epochs — landing in
steps, evaluation and checkpoint/summary writes alike — and kills -9 the process. After
the last kill it resumes to the end and compares the epoch list, per-epoch test accuracy
and loss, and the final accuracy. Exit code 0 when everything matches.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import tempfile
import sys
import time
from pathlib import Path

EPOCHS = 16
SETTINGS = ["--set", "data.train_size=1024", "--set", "data.test_size=512", "--set", f"train.epochs={EPOCHS}",
            "--set", "train.batch_size=64", "--set", "train.device=cpu", "--set", "train.log_every=2",
            "--set", "student.arch=wrn_10_1"]


def kdtui(*args: str, runs_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kdtui", *args, "--runs-dir", str(runs_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def epochs_of(run: Path) -> list[dict]:
    records = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("event") == "epoch":
            records.append(record)
    return records


def training(runs_dir: Path, pid: int) -> bool:
    """Whether process ``pid`` has started training the soak run (its pid is in the summary)."""
    for summary in runs_dir.glob("*-soak/summary.json"):
        try:
            return json.loads(summary.read_text()).get("pid") == pid
        except (OSError, json.JSONDecodeError):
            return False
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs-dir", type=Path, default=Path(tempfile.gettempdir()) / "kdtui-soak")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    shutil.rmtree(args.runs_dir, ignore_errors=True)
    preset = Path(__file__).resolve().parent.parent / "presets" / "quickstart_teacher.yaml"

    started = time.time()
    proc = kdtui("run", str(preset), "--headless", "--name", "straight", *SETTINGS, runs_dir=args.runs_dir)
    if proc.wait() != 0:
        print(proc.stderr.read())
        return 1
    straight_s = time.time() - started
    (straight,) = args.runs_dir.glob("*-straight")
    epoch_s = straight_s / EPOCHS
    print(f"uninterrupted run: {straight_s:.1f}s", flush=True)

    proc = kdtui("run", str(preset), "--headless", "--name", "soak", *SETTINGS, runs_dir=args.runs_dir)
    kills = 0
    landed = []
    while kills < args.kills:
        # Wait until the process is training (its summary exists), then kill at a random
        # moment: inside a step, an evaluation or a checkpoint/summary write.
        while proc.poll() is None and not training(args.runs_dir, proc.pid):
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5 * epoch_s))
        if proc.poll() is not None:
            break  # it finished before this kill
        proc.kill()
        proc.wait()
        kills += 1
        soak = next(args.runs_dir.glob("*-soak"))
        done = epochs_of(soak)
        summary = json.loads((soak / "summary.json").read_text())
        landed.append(len(done))
        print(f"kill {kills:2d}: {len(done)} epoch line(s) written, summary status {summary['status']}",
              flush=True)
        proc = kdtui("run", "--resume", soak.name, runs_dir=args.runs_dir)
    proc.wait()
    if proc.returncode != 0:
        print("final resume failed:", proc.stderr.read())
        return 1

    (soak,) = args.runs_dir.glob("*-soak")
    a, b = epochs_of(soak), epochs_of(straight)
    same_epochs = [r["epoch"] for r in a] == [r["epoch"] for r in b]
    same_acc = all(abs(x["test_acc"] - y["test_acc"]) < 1e-6 for x, y in zip(a, b))
    same_loss = all(abs(x["loss"]["total"] - y["loss"]["total"]) <= 1e-4 * abs(y["loss"]["total"])
                    for x, y in zip(a, b))
    summary = json.loads((soak / "summary.json").read_text())
    print(f"kills: {kills}; epochs {[r['epoch'] for r in a]}")
    print(f"final test accuracy: killed+resumed {summary['final_test_acc']:.2f}%, "
          f"uninterrupted {b[-1]['test_acc']:.2f}%")
    ok = same_epochs and same_acc and same_loss and summary["status"] == "finished"
    print("MATCH" if ok else f"MISMATCH (epochs {same_epochs}, accuracy {same_acc}, loss {same_loss})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
