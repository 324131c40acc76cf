"""What AMD costs a training step, against the KD-only step, in one process.

For WRN16-3 → WRN16-1 on random 32×32 batches (CIFAR-10's shape, 10 classes), each step
is what the trainer does: the teacher's forward pass (no autograd), the student's forward
and backward pass, the objective, and an SGD update. Three objectives, as in the presets:

- KD only:   CE 0.1 + KD 0.9 (τ 4)
- AMD(g):    the same + AMD (γ 5000, m 1.35, s 64), global
- AMD(g+l):  the same + AMD global + local quadrants (8:2)

The three are timed in turns (one step of each, repeated), so a machine whose load
changes affects them alike; the medians and their ratios to KD only are printed, and the
loss alone (objective forward + its backward into the features, networks excluded).
Each is timed twice: wall time, and the process's CPU time (all its threads), which other
work on a shared machine disturbs far less; on an idle machine with one thread they agree.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/loss_cost.py --steps 20 --batch-size 128
    OMP_NUM_THREADS=1 python benchmarks/loss_cost.py --steps 20 --compile   # train.compile
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from kdtui.engine.objective import Objective
from kdtui.losses import LOSSES
from kdtui.losses.base import LossInputs
from kdtui.models import build_model

OBJECTIVES = {
    "KD only": {"ce": {"weight": 0.1}, "kd": {"weight": 0.9, "temperature": 4.0}},
    "AMD(g)": {"ce": {"weight": 0.1}, "kd": {"weight": 0.9, "temperature": 4.0},
               "amd": {"weight": 5000.0, "local": False}},
    "AMD(g+l)": {"ce": {"weight": 0.1}, "kd": {"weight": 0.9, "temperature": 4.0},
                 "amd": {"weight": 5000.0, "local": True}},
}


def build_objective(spec: dict[str, dict]) -> Objective:
    return Objective({name: LOSSES.get(name).Options(**opts) for name, opts in spec.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per objective")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per objective first")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--student", default="wrn_16_1")
    parser.add_argument("--teacher", default="wrn_16_3")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the networks and loss methods, as train.compile does "
                             "(compilation happens in the warm-up steps)")
    args = parser.parse_args()

    torch.manual_seed(0)
    student = build_model(args.student, 10).to(memory_format=torch.channels_last).train()
    teacher = build_model(args.teacher, 10).to(memory_format=torch.channels_last).eval()
    teacher.requires_grad_(False)
    optimizer = torch.optim.SGD(student.parameters(), lr=1e-3, momentum=0.9)
    images = torch.randn(args.batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (args.batch_size,))
    objectives = {name: build_objective(spec) for name, spec in OBJECTIVES.items()}
    if args.compile:
        for module in [student, teacher, *(m for o in objectives.values() for m in o.methods.values())]:
            module.compile()

    def step(objective: Objective) -> tuple[float, float]:
        start, cpu_start = time.perf_counter(), time.process_time()
        with torch.no_grad():
            teacher_out = teacher(images)
        student_out = student(images)
        total, _ = objective(LossInputs.from_outputs(student_out, teacher_out, labels))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        return time.perf_counter() - start, time.process_time() - cpu_start

    with torch.no_grad():
        teacher_out = teacher(images)
        features = [f.detach() for f in student(images).features]
        logits = student(images).logits.detach()

    def loss_only(objective: Objective) -> tuple[float, float]:
        feats = [f.clone().requires_grad_(True) for f in features]
        out_logits = logits.clone().requires_grad_(True)
        inputs = LossInputs(student_logits=out_logits, student_features=feats, labels=labels,
                            teacher_logits=teacher_out.logits, teacher_features=teacher_out.features)
        start, cpu_start = time.perf_counter(), time.process_time()
        total, _ = objective(inputs)
        total.backward()
        return time.perf_counter() - start, time.process_time() - cpu_start

    for _ in range(args.warmup):
        for objective in objectives.values():
            step(objective)
            loss_only(objective)
    step_times = {name: [] for name in objectives}
    loss_times = {name: [] for name in objectives}
    for _ in range(args.steps):
        for name, objective in objectives.items():
            step_times[name].append(step(objective))
            loss_times[name].append(loss_only(objective))

    print(f"{args.teacher} → {args.student}, batch {args.batch_size}, 32×32, "
          f"{torch.get_num_threads()} thread(s), medians of {args.steps} steps"
          + (", compiled" if args.compile else ""))
    for clock, which in (("wall", 0), ("CPU", 1)):
        base_step = statistics.median(t[which] for t in step_times["KD only"])
        base_loss = statistics.median(t[which] for t in loss_times["KD only"])
        print(f"\n{clock} time   {'step ms':>9} {'× KD step':>10} {'loss ms':>9} {'loss − KD loss (ms)':>20}")
        for name in objectives:
            step_ms = statistics.median(t[which] for t in step_times[name])
            loss_ms = statistics.median(t[which] for t in loss_times[name])
            print(f"{name:<10} {1e3 * step_ms:>9.1f} {step_ms / base_step:>10.3f} {1e3 * loss_ms:>9.2f} "
                  f"{1e3 * (loss_ms - base_loss):>20.2f}")

if __name__ == "__main__":
    main()
