"""kdtui's speed against a plain PyTorch script, on the same machine and data, in one command.

Measures, one function each:

* the image cache: decoding the folders once (a fresh cache folder), then a second start
  (a new process: interpreter, imports, folder scan, cache load and check);
* end-to-end distillation, WRN16-3 → WRN16-1 with CE, KD, AMD(g) and AMD(g+l): (a) a plain
  script written the usual way (torchvision ImageFolder + DataLoader workers with per-image
  transforms, the loop of ``plain_pytorch_reference.py``) and (b) kdtui's engine
  (``start_run``, the folder served from the image cache), on the same subset, batch size
  and epochs; training img/s as kdtui counts it (training images / training time,
  evaluation excluded), and each run's wall time;
* the data pipeline alone: kdtui's in-memory batches against the torchvision transforms
  in DataLoader workers;
* the loss alone: KD, AMD(g) and AMD(g+l) forward + backward on fixed feature maps.

Results are printed, with the ratios against the plain baseline; nothing is asserted. Both
sides use the same untrained WRN16-3 teacher (speed does not depend on its weights) and the
same loss code (kdtui's loss methods), so the difference is the data path and the loop.

Usage::

    python benchmarks/speed.py                      # built-in synthetic shapes, written as PNG folders
    python benchmarks/speed.py --data DATA          # DATA/train/<class>/*, DATA/test/<class>/*
    python benchmarks/speed.py --quick              # a smaller budget, for a smoke test
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_pytorch_reference import CIFAR10_MEAN, CIFAR10_STD, cosine_lr, stratified_subset  # noqa: E402

TEACHER, STUDENT = "wrn_16_3", "wrn_16_1"
KD = {"ce": {"weight": 0.1}, "kd": {"weight": 0.9, "temperature": 4}}
AMD = {"weight": 5000, "margin": 1.35, "scale": 64, "terms": ["A", "P", "N"]}
METHODS = {  # the paper's recipes (presets/cifar10_kd.yaml, cifar10_amd.yaml, cifar10_amd_gl.yaml)
    "CE": {"ce": {"weight": 1.0}},
    "KD": KD,
    "AMD(g)": {**KD, "amd": {**AMD, "local": False}},
    "AMD(g+l)": {**KD, "amd": {**AMD, "local": True}},
}

LOSSES_ALONE = {"KD": {"kd": KD["kd"]}, "AMD(g)": {"amd": {**AMD, "local": False}},
                "AMD(g+l)": {"amd": {**AMD, "local": True}}}


@dataclass
class Budget:
    train_per_class: int
    test_per_class: int
    epochs: int
    batch_size: int
    workers: int
    pipeline_per_class: int   # images per class streamed in the data-pipeline measurement
    loss_repeats: int


FULL = Budget(train_per_class=100, test_per_class=50, epochs=1, batch_size=128, workers=2,
              pipeline_per_class=1000, loss_repeats=20)
QUICK = Budget(train_per_class=8, test_per_class=2, epochs=1, batch_size=16, workers=1,
               pipeline_per_class=8, loss_repeats=2)


@dataclass
class Setup:
    data: Path
    classes: int
    budget: Budget
    teacher: Path             # the teacher's weights (a plain state dict)
    runs: Path
    device: torch.device


# -- data ----------------------------------------------------------------------------------

def write_shapes_folders(root: Path, per_class: int, test_per_class: int) -> Path:
    """kdtui's built-in shapes (generated) as PNG class folders, so both sides read files."""
    from PIL import Image

    from kdtui.data.shapes import CLASS_NAMES, generate_shapes

    for split, per in (("train", per_class), ("test", test_per_class)):
        images, labels = generate_shapes(per * len(CLASS_NAMES), seed=0, split=split)
        for i, (image, label) in enumerate(zip(images, labels.tolist())):
            folder = root / split / CLASS_NAMES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:05d}.png")
    return root


def kdtui_data(setup: Setup, train_per_class: int, test_per_class: int) -> dict:
    """The ``data`` section that makes kdtui read the same images as the plain script."""
    return {"dataset": "imagefolder", "root": str(setup.data), "seed": 0,
            "train_subset": train_per_class * setup.classes, "test_subset": test_per_class * setup.classes,
            "mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD), "num_workers": setup.budget.workers}


def plain_loaders(setup: Setup, train_per_class: int, test_per_class: int):
    """The usual loaders: ImageFolder + per-image transforms in DataLoader workers."""
    normalize = transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), normalize])
    test_tf = transforms.Compose([transforms.ToTensor(), normalize])
    train = stratified_subset(torchvision.datasets.ImageFolder(f"{setup.data}/train", transform=train_tf),
                              train_per_class, 0)
    test = stratified_subset(torchvision.datasets.ImageFolder(f"{setup.data}/test", transform=test_tf),
                             test_per_class, 1)
    workers = setup.budget.workers
    return (torch.utils.data.DataLoader(train, batch_size=setup.budget.batch_size, shuffle=True,
                                        num_workers=workers, generator=torch.Generator().manual_seed(0)),
            torch.utils.data.DataLoader(test, batch_size=512, shuffle=False, num_workers=workers))


# -- measurements --------------------------------------------------------------------------

def measure_cache(setup: Setup) -> dict[str, float]:
    """Seconds to decode the folders into a fresh cache, and a second start in a new process."""
    from kdtui.config import DataConfig
    from kdtui.data import build_data

    started = time.perf_counter()
    build_data(DataConfig(**kdtui_data(setup, 1, 1)), seed=0).prepare()
    build_s = time.perf_counter() - started
    code = ("from kdtui.config import DataConfig\nfrom kdtui.data import build_data\n"
            f"build_data(DataConfig(**{kdtui_data(setup, 1, 1)!r}), seed=0).prepare()\n")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return {"build_s": build_s, "second_start_s": time.perf_counter() - started}


def plain_run(setup: Setup, method: str) -> dict[str, float]:
    """(a): the plain training loop with the method's losses; mean training img/s over epochs."""
    from kdtui.engine.objective import Objective
    from kdtui.losses.base import LossInputs
    from kdtui.models import build_model

    started = time.perf_counter()
    train_loader, test_loader = plain_loaders(setup, setup.budget.train_per_class, setup.budget.test_per_class)
    torch.manual_seed(0)
    student = build_model(STUDENT, setup.classes).to(setup.device)
    teacher = None
    if method != "CE":
        teacher = build_model(TEACHER, setup.classes).to(setup.device).eval()
        teacher.load_state_dict(torch.load(setup.teacher, weights_only=True))
    objective = Objective(options_of(METHODS[method])).to(setup.device)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    rates = []
    for epoch in range(1, setup.budget.epochs + 1):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(0.1, epoch, setup.budget.epochs)
        student.train()
        epoch_start, seen = time.perf_counter(), 0
        for images, labels in train_loader:
            images, labels = images.to(setup.device), labels.to(setup.device)
            outputs = student(images)
            with torch.no_grad():
                teacher_out = teacher(images) if teacher is not None else None
            loss, _ = objective(LossInputs.from_outputs(outputs, teacher_out, labels, epoch=epoch))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(labels)
        if setup.device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(seen / (time.perf_counter() - epoch_start))
        evaluate(student, test_loader, setup.device)
    return {"img_per_s": statistics.mean(rates), "wall_s": time.perf_counter() - started}


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device) -> None:
    model.eval()
    for images, _ in loader:
        model(images.to(device))
    model.train()


def options_of(losses: dict) -> dict:
    """The loss sections as kdtui's typed options (what Objective takes)."""
    from kdtui.config import load_config

    teacher = {"checkpoint": "teacher.pt", "arch": TEACHER}  # only checked for being there
    return load_config(data={"student": {"arch": STUDENT}, "teacher": teacher, "loss": losses}).active_losses


def kdtui_run(setup: Setup, method: str) -> dict[str, float]:
    """(b): kdtui's engine, headless, in this process; mean training img/s over epochs."""
    from kdtui import events as ev
    from kdtui.config import load_config
    from kdtui.engine.launch import start_run

    config = {
        "description": f"speed benchmark {method}", "student": {"arch": STUDENT}, "loss": METHODS[method],
        "data": kdtui_data(setup, setup.budget.train_per_class, setup.budget.test_per_class),
        "train": {"epochs": setup.budget.epochs, "batch_size": setup.budget.batch_size, "lr": 0.1,
                  "schedule": "cosine", "weight_decay": 5e-4, "seed": 0, "device": setup.device.type},
    }
    if method != "CE":
        config["teacher"] = {"checkpoint": str(setup.teacher), "arch": TEACHER}
    epochs: list[ev.EpochEnd] = []
    started = time.perf_counter()
    name = "speed_" + re.sub(r"[^a-z0-9]+", "_", method.lower()).strip("_")
    _, ended = start_run(load_config(data=config), setup.runs, name=name,
                         sinks_for=lambda run, role: [lambda e: epochs.append(e) if isinstance(e, ev.EpochEnd) else None],
                         notify=lambda text: None)
    if not isinstance(ended, ev.RunFinished):
        raise SystemExit(f"the kdtui {method} run ended {ended.status}")
    return {"img_per_s": statistics.mean(e.img_per_s for e in epochs), "wall_s": time.perf_counter() - started}


def pipeline_torchvision(setup: Setup) -> float:
    """Training batches per second × batch size from the usual DataLoader, no model."""
    per_class = setup.budget.pipeline_per_class
    loader, _ = plain_loaders(setup, per_class, 1)
    started, seen = time.perf_counter(), 0
    for images, labels in loader:
        seen += len(labels)
    return seen / (time.perf_counter() - started)


def pipeline_kdtui(setup: Setup) -> float:
    """The same from kdtui's folder bundle (the image cache in memory), no model."""
    from kdtui.config import DataConfig
    from kdtui.data import build_data

    bundle = build_data(DataConfig(**kdtui_data(setup, setup.budget.pipeline_per_class, 1)), seed=0)
    bundle.prepare()  # the cache is already built: loading it is start-up, not throughput
    started, seen = time.perf_counter(), 0
    for images, labels in bundle.train_batches(setup.budget.batch_size, 1, setup.device):
        seen += len(labels)
    if setup.device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - started)


def loss_alone(setup: Setup, losses: dict) -> float:
    """Milliseconds for one distillation loss, forward + backward, on fixed features of one
    batch (the student's maps and logits are leaves that take the gradient)."""
    from kdtui.engine.objective import Objective
    from kdtui.losses.base import LossInputs
    from kdtui.models import build_model

    torch.manual_seed(0)
    images = torch.randn(setup.budget.batch_size, 3, 32, 32, device=setup.device)
    labels = torch.randint(0, setup.classes, (len(images),), device=setup.device)
    with torch.no_grad():
        student = build_model(STUDENT, setup.classes).to(setup.device)(images)
        teacher = build_model(TEACHER, setup.classes).to(setup.device)(images)
    objective = Objective(options_of(losses)).to(setup.device)
    leaves = [f.clone().requires_grad_() for f in student.features]
    logits = student.logits.clone().requires_grad_()
    inputs = LossInputs(student_logits=logits, student_features=leaves, labels=labels,
                        teacher_logits=teacher.logits, teacher_features=teacher.features)
    times = []
    for _ in range(setup.budget.loss_repeats + 1):  # the first is a warm-up
        started = time.perf_counter()
        total, _ = objective(inputs)
        total.backward()
        if setup.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times[1:])


# -- the command ---------------------------------------------------------------------------

def prepare(args: argparse.Namespace, scratch: Path) -> Setup:
    budget = dataclasses.replace(QUICK if args.quick else FULL)
    budget.train_per_class = args.train_per_class or budget.train_per_class
    budget.epochs = args.epochs or budget.epochs
    data = Path(args.data) if args.data else write_shapes_folders(
        scratch / "shapes", max(budget.train_per_class, budget.pipeline_per_class), budget.test_per_class)
    classes = len([p for p in (data / "train").iterdir() if p.is_dir()])
    from kdtui.models import build_model

    torch.manual_seed(0)
    teacher = scratch / "teacher.pt"
    torch.save(build_model(TEACHER, classes).state_dict(), teacher)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return Setup(data, classes, budget, teacher, scratch / "runs", device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="folder with train/<class>/ and test/<class>/ images (default: "
                        "kdtui's synthetic shapes, written as PNG folders)")
    parser.add_argument("--quick", action="store_true", help="a much smaller budget (a smoke test)")
    parser.add_argument("--train-per-class", type=int, help="training images per class of each run")
    parser.add_argument("--epochs", type=int, help="epochs of each run")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--cache-dir", help="kdtui's image cache (default: a fresh folder, so the "
                        "build is timed)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kdtui-speed-") as folder:
        scratch = Path(folder)
        os.environ["KDTUI_CACHE_DIR"] = args.cache_dir or str(scratch / "cache")
        setup = prepare(args, scratch)
        b = setup.budget
        print(f"data {setup.data} ({setup.classes} classes), device {setup.device}, "
              f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
        cache = measure_cache(setup)
        print(f"image cache: built in {cache['build_s']:.1f} s; a second start (new process, "
              f"cache loaded and checked) {cache['second_start_s']:.1f} s", flush=True)

        print(f"\nend to end, {TEACHER} → {STUDENT}: {b.train_per_class * setup.classes} training images, "
              f"{b.epochs} epoch(s), batch {b.batch_size}, plain script with {b.workers} DataLoader workers")
        print(f"{'method':10} {'plain img/s':>12} {'kdtui img/s':>12} {'ratio':>7} {'plain wall s':>13} "
              f"{'kdtui wall s':>13} {'ratio':>7}", flush=True)
        kdtui_rates = {}
        for method in METHODS:
            plain, ours = plain_run(setup, method), kdtui_run(setup, method)
            kdtui_rates[method] = ours["img_per_s"]
            print(f"{method:10} {plain['img_per_s']:12.1f} {ours['img_per_s']:12.1f} "
                  f"{ours['img_per_s'] / plain['img_per_s']:6.2f}× {plain['wall_s']:13.1f} "
                  f"{ours['wall_s']:13.1f} {plain['wall_s'] / ours['wall_s']:6.2f}×", flush=True)
        print(f"kdtui AMD(g+l) step time / KD step time: {kdtui_rates['KD'] / kdtui_rates['AMD(g+l)']:.2f}")

        torchvision_rate, kdtui_rate = pipeline_torchvision(setup), pipeline_kdtui(setup)
        print(f"\ndata pipeline alone ({b.pipeline_per_class * setup.classes} training images, batch "
              f"{b.batch_size}): torchvision transforms + {b.workers} workers {torchvision_rate:.0f} img/s, "
              f"kdtui in memory {kdtui_rate:.0f} img/s, ratio {kdtui_rate / torchvision_rate:.1f}×")

        print(f"\nloss alone, forward + backward on fixed features (batch {b.batch_size}, median of "
              f"{b.loss_repeats}):")
        kd_ms = None
        for name, losses in LOSSES_ALONE.items():
            ms = loss_alone(setup, losses)
            kd_ms = kd_ms or ms
            print(f"  {name:10} {ms:8.2f} ms  {1000 * b.batch_size / ms:10.0f} img/s  "
                  f"{ms / kd_ms:5.2f}× KD", flush=True)


if __name__ == "__main__":
    main()
