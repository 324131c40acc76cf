"""Plain-PyTorch reference: train a kdtui network with the most ordinary training loop.

A baseline to hold kdtui's accuracy and speed against. It builds the same network kdtui
would (``kdtui.models.build_model``) but everything else is textbook PyTorch:
``torchvision.datasets.ImageFolder``, RandomCrop(32, padding=4) + RandomHorizontalFlip +
ToTensor + Normalize (CIFAR-10's usual mean/std), a DataLoader, SGD (momentum 0.9, no
Nesterov, weight decay 5e-4), cross-entropy, and kdtui's ``cosine`` learning-rate rule
set at the start of each epoch: lr_e = lr * 0.5 * (1 + cos(pi * (e - 1) / E)), e = 1..E.

The subsets are N training and M test images per class, drawn with the same seeded rule
as kdtui's ``data.train_subset`` / ``data.test_subset`` (one generator seeded with SEED
for train, SEED + 1 for test, a random permutation per class in class order, first N
kept), so with ``data.seed=SEED`` both train and test on the very same images.

Usage::

    python benchmarks/plain_pytorch_reference.py --root DATA --arch wrn_16_1 --epochs 3 \
        --per-class-train 300 --per-class-test 200 --batch-size 128 --lr 0.1 --workers 2 --seed 0

DATA holds DATA/train/<class>/* and DATA/test/<class>/* (e.g. CIFAR-10 as image files).
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torchvision
from torch import nn
from torchvision import transforms

from kdtui.models import build_model

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def stratified_subset(dataset: torchvision.datasets.ImageFolder, per_class: int | None, seed: int):
    """``per_class`` images of each class, chosen at random (seeded), in dataset order."""
    if per_class is None:
        return dataset
    targets = torch.tensor(dataset.targets)
    generator = torch.Generator().manual_seed(seed)
    keep = []
    for label in range(len(dataset.classes)):
        members = (targets == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        keep.append(members[:per_class].sort().values)
    return torch.utils.data.Subset(dataset, torch.cat(keep).tolist())


def cosine_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """kdtui's ``cosine`` schedule: the LR used during 1-based ``epoch``."""
    return base_lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs))


@torch.no_grad()
def evaluate(model: nn.Module, loader: torch.utils.data.DataLoader) -> float:
    model.eval()
    correct = total = 0
    for images, labels in loader:
        logits = model(images).logits  # kdtui models return (logits, features)
        correct += (logits.argmax(1) == labels).sum().item()
        total += len(labels)
    model.train()
    return 100.0 * correct / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="folder with train/<class>/ and test/<class>/")
    parser.add_argument("--arch", default="wrn_16_1", help="a kdtui architecture name")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--per-class-train", type=int, default=None, help="training images per class (default all)")
    parser.add_argument("--per-class-test", type=int, default=None, help="test images per class (default all)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--seed", type=int, default=0, help="seeds the subsets, initialisation and shuffling")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    normalize = transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), normalize])
    test_tf = transforms.Compose([transforms.ToTensor(), normalize])
    train_full = torchvision.datasets.ImageFolder(f"{args.root}/train", transform=train_tf)
    test_full = torchvision.datasets.ImageFolder(f"{args.root}/test", transform=test_tf)
    train_set = stratified_subset(train_full, args.per_class_train, args.seed)
    test_set = stratified_subset(test_full, args.per_class_test, args.seed + 1)

    train_loader = torch.utils.data.DataLoader(
        train_set, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
        generator=torch.Generator().manual_seed(args.seed))
    # Evaluation batch size does not change the accuracy; 512 as kdtui's default.
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=512, shuffle=False, num_workers=args.workers)

    model = build_model(args.arch, num_classes=len(train_full.classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=False, weight_decay=5e-4)
    criterion = nn.CrossEntropyLoss()

    print(f"{args.arch}: {len(train_set)} train / {len(test_set)} test images, {len(train_full.classes)} classes, "
          f"batch {args.batch_size}, lr {args.lr}, workers {args.workers}, threads {torch.get_num_threads()}, "
          f"seed {args.seed}", flush=True)
    run_start = time.time()
    test_acc = float("nan")
    for epoch in range(1, args.epochs + 1):
        lr = cosine_lr(args.lr, epoch, args.epochs)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        epoch_start = time.time()
        seen = correct = 0
        loss_sum = 0.0
        for images, labels in train_loader:
            logits = model(images).logits
            loss = criterion(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
        train_time = time.time() - epoch_start
        test_acc = evaluate(model, test_loader)
        epoch_time = time.time() - epoch_start
        # img/s counts training images over training time only (evaluation excluded).
        print(f"epoch {epoch}/{args.epochs}  lr {lr:.4f}  loss {loss_sum / seen:.4f}  "
              f"train_acc {100.0 * correct / seen:.2f}%  test_acc {test_acc:.2f}%  "
              f"img/s {seen / train_time:.1f}  time {epoch_time:.1f}s", flush=True)
    print(f"final test_acc {test_acc:.2f}%  wall {time.time() - run_start:.1f}s", flush=True)


if __name__ == "__main__":
    main()
