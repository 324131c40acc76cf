"""Folder datasets on tiny fake trees built here (CINIC-10, Tiny-ImageNet, ImageFolder),
and a real-data check on the CIFAR-10 JPEG folders when they are available."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from kdtui.config import DataConfig
from kdtui.data import build_data
from kdtui.errors import DataError

CPU = torch.device("cpu")


def write_images(folder: Path, count: int, size: int = 8, suffix: str = ".png", colour: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (size, size), (colour, (i * 40) % 256, 90)).save(folder / f"{i:03d}{suffix}")


def make_cinic(root: Path, classes=("airplane", "cat", "ship")) -> Path:
    for split in ("train", "valid", "test"):
        for c, name in enumerate(classes):
            write_images(root / split / name, 4, size=32, colour=c * 80)
    return root


def data(dataset: str, root: Path, **extra) -> DataConfig:
    return DataConfig(dataset=dataset, root=str(root), num_workers=0, **extra)


def test_cinic10_layout(tmp_path):
    bundle = build_data(data("cinic10", make_cinic(tmp_path / "cinic")), seed=0)
    assert (bundle.num_classes, bundle.train_size, bundle.test_size, bundle.image_size) == (3, 12, 12, 32)
    images, labels = next(iter(bundle.train_batches(4, 1, CPU)))
    assert images.shape == (4, 3, 32, 32) and labels.dtype == torch.int64
    assert sum(len(y) for _, y in bundle.test_batches(5, CPU)) == 12


def test_tiny_imagenet_official_layout(tmp_path):
    root = tmp_path / "tiny-imagenet-200"
    wnids = ["n01443537", "n01629819"]
    for wnid in wnids:
        write_images(root / "train" / wnid / "images", 3, size=64, suffix=".JPEG")
    write_images(root / "val" / "images", 4, size=64, suffix=".JPEG")
    (root / "val" / "val_annotations.txt").write_text(
        "".join(f"{i:03d}.JPEG\t{wnids[i % 2]}\t0\t0\t10\t10\n" for i in range(4)))
    bundle = build_data(data("tiny_imagenet", root), seed=0)
    assert (bundle.num_classes, bundle.train_size, bundle.test_size, bundle.image_size) == (2, 6, 4, 64)
    labels = torch.cat([y for _, y in bundle.test_batches(4, CPU)])
    assert labels.tolist() == [0, 1, 0, 1]
    images, _ = next(iter(bundle.train_batches(2, 1, CPU)))
    assert images.shape == (2, 3, 64, 64)

    (root / "val" / "val_annotations.txt").write_text("000.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match="line 1"):
        build_data(data("tiny_imagenet", root), seed=0)


def test_imagefolder_falls_back_to_val_and_computes_stats(tmp_path):
    root = tmp_path / "mine"
    for name in ("a", "b"):
        write_images(root / "train" / name, 5, size=16)
        write_images(root / "val" / name, 2, size=16)
    bundle = build_data(data("imagefolder", root), seed=0)
    assert (bundle.num_classes, bundle.image_size, bundle.test_size) == (2, 16, 4)
    assert bundle.class_names == ["a", "b"]


def test_subsets_are_stratified_and_seeded(tmp_path):
    root = tmp_path / "mine"
    for name in ("a", "b", "c"):
        write_images(root / "train" / name, 6, size=8)
        write_images(root / "test" / name, 3, size=8)
    bundle = build_data(data("imagefolder", root, train_subset=6, test_subset=3), seed=0)
    labels = torch.cat([y for _, y in bundle.train_batches(6, 1, CPU)])
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 2, 2]
    assert bundle.test_size == 3


@pytest.mark.parametrize("break_it,pattern", [
    (lambda root: None, "does not exist"),
    (lambda root: ((root / "train" / "a").mkdir(parents=True), write_images(root / "test" / "a", 1)),
     "holds no images"),
    (lambda root: (write_images(root / "train" / "a", 2), write_images(root / "test" / "z", 2)),
     "different class folders"),
    (lambda root: write_images(root / "train" / "a", 2), "no test/ or val/ or valid/ folder"),
    (lambda root: ((root / "train").mkdir(parents=True), (root / "test").mkdir()), "holds no class folders"),
])
def test_malformed_folders_are_clear_errors(tmp_path, break_it, pattern):
    root = tmp_path / "broken"
    if pattern != "does not exist":
        root.mkdir()
    break_it(root)
    with pytest.raises(DataError, match=pattern):
        build_data(data("imagefolder", root), seed=0)


def cifar10_jpeg_archive() -> Path | None:
    candidates = [os.environ.get("KDTUI_CIFAR10_JPEG", ""),
                  str(Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz")]
    return next((Path(c) for c in candidates if c and Path(c).exists()), None)


@pytest.mark.skipif(cifar10_jpeg_archive() is None, reason="real CIFAR-10 JPEG archive not available")
def test_real_cifar10_jpeg_one_epoch_on_a_subset(tmp_path):
    """Trains one epoch on 50 images per class of real CIFAR-10 through `imagefolder`."""
    from kdtui.config import load_config
    from kdtui.engine.launch import start_run
    from kdtui import events as ev
    from kdtui.store import RunStoreWriter

    per_class = {"train": 50, "test": 20}
    taken: dict[tuple[str, str], int] = {}
    with tarfile.open(cifar10_jpeg_archive()) as archive:
        members = []
        for member in archive:
            parts = Path(member.name).parts
            if member.isfile() and len(parts) == 4 and parts[1] in per_class:
                key = (parts[1], parts[2])
                if taken.get(key, 0) < per_class[parts[1]]:
                    taken[key] = taken.get(key, 0) + 1
                    members.append(member)
        archive.extractall(tmp_path, members=members, filter="data")
    root = tmp_path / "cifar10-jpeg"
    cfg = load_config(data={"student": {"arch": "wrn_10_1"}, "data": {"dataset": "imagefolder", "root": str(root), "num_workers": 0},
                            "train": {"epochs": 1, "batch_size": 50, "device": "cpu"}})
    run, ended = start_run(cfg, tmp_path / "runs", sinks_for=lambda r, role: [RunStoreWriter(r)], notify=lambda _: None)
    assert isinstance(ended, ev.RunFinished)
    record = run.epochs()[0]
    assert record.test_acc >= 0 and run.read_summary()["status"] == "finished"
    assert build_data(cfg.data).num_classes == 10


def black_border_widths(images: torch.Tensor) -> torch.Tensor:
    """Per image, the black rows at its top or bottom (white images: all the rest is white)."""
    black_rows = (images < images.amax()).all(dim=1).all(dim=-1)  # n × h: the row is not white
    return black_rows.sum(dim=-1)


@pytest.mark.parametrize("overrides,padding", [({}, 2), ({"crop_padding": 5}, 5), ({"crop_padding": 0}, 0)])
def test_tiny_imagenet_pads_2_pixels_a_side_by_default(tmp_path, overrides, padding):
    """The AMD paper pads Tiny-ImageNet's 64×64 images to 68×68; data.crop_padding overrides it."""
    root = tmp_path / "tiny"
    for wnid in ("n01443537", "n01629819"):
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(8):
            Image.new("RGB", (64, 64), (255, 255, 255)).save(folder / f"{i}.JPEG")
        write_images(root / "val" / wnid, 1, size=64, suffix=".JPEG")
    bundle = build_data(data("tiny_imagenet", root, **overrides), seed=0)
    images = torch.cat([x for epoch in range(1, 6) for x, _ in bundle.train_batches(16, epoch, CPU)])
    widths = black_border_widths(images)
    assert widths.max() == padding and (widths == padding).sum() > 1
