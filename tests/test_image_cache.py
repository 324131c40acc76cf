"""Image folders decoded once into the image cache and batched from memory (kdtui.data.image_cache,
kdtui.data.folder_memory), against the per-image DataLoader path they replace."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

from kdtui.config import DataConfig
from kdtui.data import build_data
from kdtui.data.image_cache import MAGIC, ImageCache, cache_root
from test_data import chi_square, crop_parameters, denormalise, position_image

CPU = torch.device("cpu")


def write_numbered(folder: Path, first: int, count: int, size: int = 8) -> None:
    """PNG images whose red value is their number: each image is told apart after decoding."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(first, first + count):
        Image.new("RGB", (size, size), (number, 7, 90)).save(folder / f"{number:03d}.png")


def make_folder(root: Path, per_class: int = 6, test_per_class: int = 3) -> Path:
    for c, name in enumerate(("a", "b", "c")):
        write_numbered(root / "train" / name, 100 * c, per_class)
        write_numbered(root / "test" / name, 100 * c + 50, test_per_class)
    return root


def config(root: Path, **extra) -> DataConfig:
    extra.setdefault("mean", [0.0, 0.0, 0.0])
    extra.setdefault("std", [1.0, 1.0, 1.0])
    extra.setdefault("num_workers", 0)
    return DataConfig(dataset="imagefolder", root=str(root), **extra)


def prepared(cfg: DataConfig, stop: threading.Event | None = None):
    """The bundle and what its preparation logged."""
    bundle, lines = build_data(cfg, seed=0), []
    assert bundle.prepare(lines.append, stop) is (stop is None or not stop.is_set())
    return bundle, "\n".join(lines)


def numbers(images: torch.Tensor) -> list[int]:
    """The image numbers (red value) of a batch normalised with mean 0, std 1."""
    return (images[:, 0, 4, 4] * 255).round().long().tolist()


def cache_files() -> list[Path]:
    return sorted(cache_root().glob("*.u8"))


def test_cache_is_built_once_then_loaded_without_decoding(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "data")
    bundle, log = prepared(config(root))
    assert "decoding 18 imagefolder training images" in log and "in memory" in log
    assert len(cache_files()) == 2  # train and test
    first = numbers(torch.cat([x for x, _ in bundle.test_batches(4, CPU)]))
    assert first == [50, 51, 52, 150, 151, 152, 250, 251, 252]

    monkeypatch.setattr(ImageCache, "build", lambda *a, **k: pytest.fail("decoded again"))
    again, log = prepared(config(root))
    assert "decoding" not in log
    assert numbers(torch.cat([x for x, _ in again.test_batches(4, CPU)])) == first


def test_a_changed_file_rebuilds_the_cache_and_drops_the_old_one(tmp_path):
    root = make_folder(tmp_path / "data")
    prepared(config(root))
    before = cache_files()
    Image.new("RGB", (8, 8), (77, 7, 90)).save(root / "test" / "b" / "150.png")
    os.utime(root / "test" / "b" / "150.png", ns=(1, 10**18))  # a new mtime even on coarse clocks
    bundle, log = prepared(config(root))
    assert "decoding 9 imagefolder test images" in log and "training images" not in log
    assert numbers(torch.cat([x for x, _ in bundle.test_batches(9, CPU)]))[3] == 77
    after = cache_files()
    assert len(after) == 2 and len(set(after) - set(before)) == 1


@pytest.mark.parametrize("damage", ["flip a pixel byte", "truncate", "garbage header", "header not an object"])
def test_a_damaged_cache_is_rebuilt_not_trusted(tmp_path, damage):
    root = make_folder(tmp_path / "data")
    prepared(config(root))
    test_cache = next(f for f in cache_files() if f.name.startswith("test_"))
    data = bytearray(test_cache.read_bytes())
    if damage == "flip a pixel byte":
        data[-5] ^= 0xFF
    elif damage == "truncate":
        data = data[:len(data) // 2]
    elif damage == "header not an object":
        data = bytearray(MAGIC + (3).to_bytes(8, "little") + b"[1]")
    else:
        data[:16] = b"\0" * 16
    test_cache.write_bytes(bytes(data))
    bundle, log = prepared(config(root))
    assert "decoding 9 imagefolder test images" in log
    assert numbers(torch.cat([x for x, _ in bundle.test_batches(9, CPU)])) == [50, 51, 52, 150, 151, 152,
                                                                               250, 251, 252]


@pytest.mark.parametrize("budget_gb", [4.0, 3 * 64 * 14 / 1e9])  # whole folders / only the subsets fit
def test_subsets_are_the_same_images_as_on_the_dataloader_path(tmp_path, budget_gb):
    root = make_folder(tmp_path / "data", per_class=8, test_per_class=5)
    subsets = dict(train_subset=7, test_subset=4, seed=3, augment=False)
    memory, log = prepared(config(root, memory_budget_gb=budget_gb, **subsets))
    files, file_log = prepared(config(root, memory_budget_gb=0, **subsets))
    assert "in memory" in log and "data.memory_budget_gb is 0" in file_log
    assert ("all" in cache_files()[0].name) == (budget_gb == 4.0)
    for bundle in (memory, files):
        assert (bundle.train_size, bundle.test_size) == (7, 4)
    assert torch.equal(memory.train_labels, files.train_labels)
    memory_test = torch.cat([x for x, _ in memory.test_batches(3, CPU)])
    files_test = torch.cat([x for x, _ in files.test_batches(3, CPU)])
    assert torch.allclose(memory_test, files_test, atol=1e-6)
    # Training images: the same set, and each index points at the same image on both paths.
    image_at_index = []
    for bundle in (memory, files):
        images, labels, indices = next(iter(bundle.train_batches(7, 1, CPU, with_indices=True)))
        assert torch.equal(labels, bundle.train_labels[indices])
        image_at_index.append(dict(zip(indices.tolist(), numbers(images))))
    assert image_at_index[0] == image_at_index[1] and len(image_at_index[0]) == 7


def test_in_memory_folder_augmentation_has_the_distribution_of_torchvisions_transforms(tmp_path):
    """Both paths crop position images (black 2-pixel padding) at offsets uniform over 0..4
    in each axis and flip half of them, pixel for pixel as torchvision's RandomCrop + flip."""
    from torchvision.transforms.v2 import functional as F

    size, padding, copies = 12, 2, 40
    image, root = position_image(size), tmp_path / "data"
    for split, count in (("train", copies), ("test", 1)):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(image.permute(1, 2, 0).numpy()).save(root / split / label / f"{i}.png")
    mean, std = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.25, 0.3])
    for budget in (4.0, 0):
        cfg = config(root, memory_budget_gb=budget, crop_padding=padding, mean=mean.tolist(), std=std.tolist())
        bundle, log = prepared(cfg)
        assert ("in memory" in log) == bool(budget)
        out = denormalise(torch.cat([x for epoch in range(1, 26) for x, _ in bundle.train_batches(80, epoch, CPU)]),
                          mean, std)
        dy, dx, flipped = crop_parameters(out, padding)
        for y, x, flip in set(zip(dy.tolist(), dx.tolist(), flipped.tolist())):
            expected = F.crop(F.pad(image, [padding], fill=0), y, x, size, size)
            expected = F.horizontal_flip(expected) if flip else expected
            chosen = (dy == y) & (dx == x) & (flipped == flip)
            assert torch.equal(out[chosen], expected.expand(int(chosen.sum()), -1, -1, -1)), (budget, y, x)
        # 2,000 crops: offsets uniform over 0..4 (chi-square, 4 degrees of freedom, p = 0.001),
        # flips at a rate of 1/2 (within four standard deviations).
        for offsets in (dy, dx):
            assert chi_square(torch.bincount(offsets, minlength=2 * padding + 1).float()) < 18.5, budget
        assert abs(flipped.float().mean().item() - 0.5) < 4 * (0.25 / len(out)) ** 0.5, budget


def test_a_folder_of_mixed_sizes_keeps_the_dataloader_path_and_says_so(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "data")
    Image.new("RGB", (10, 8), (3, 7, 90)).save(root / "train" / "c" / "999.png")
    bundle, log = prepared(config(root))
    assert "DataLoader workers" in log and "999.png is 10×8" in log
    images, _ = next(iter(bundle.train_batches(19, 1, CPU)))
    assert images.shape == (19, 3, 8, 8)  # resized per image, as before
    monkeypatch.setattr(ImageCache, "build", lambda *a, **k: pytest.fail("decoded again"))
    _, log = prepared(config(root))
    assert "999.png is 10×8" in log  # remembered: not decoded again to find out


def test_over_the_budget_keeps_the_dataloader_path(tmp_path):
    _, log = prepared(config(make_folder(tmp_path / "data"), memory_budget_gb=1e-7))
    assert "over data.memory_budget_gb=1e-07" in log and not cache_files()


def test_a_stop_during_decoding_writes_no_cache(tmp_path):
    stop = threading.Event()
    stop.set()
    _, log = prepared(config(make_folder(tmp_path / "data")), stop)
    assert "stopped decoding" in log and not cache_files()


def test_dataloader_workers_survive_a_sigterm_to_the_process_group(tmp_path):
    """A SIGTERM to the whole group is the trainer's to handle: its workers ignore it."""
    bundle = build_data(config(make_folder(tmp_path / "data"), memory_budget_gb=0, num_workers=1), seed=0)
    batches = bundle.train_batches(2, 1, CPU)
    next(batches)
    workers = multiprocessing.active_children()
    assert workers
    for worker in workers:
        os.kill(worker.pid, signal.SIGTERM)
    assert sum(len(labels) for _, labels in batches) == 16  # the other 8 batches of 2


def test_a_run_reports_the_decoding_through_its_sinks(tmp_path):
    from kdtui import events as ev
    from kdtui.config import load_config
    from kdtui.engine.launch import start_run

    root = make_folder(tmp_path / "data")
    cfg = load_config(data={"student": {"arch": "wrn_10_1"},
                            "data": {"dataset": "imagefolder", "root": str(root), "num_workers": 0},
                            "train": {"epochs": 1, "batch_size": 6, "device": "cpu"}})
    events: list[ev.Event] = []
    _, ended = start_run(cfg, tmp_path / "runs", sinks_for=lambda run, role: [events.append],
                         notify=lambda _: None)
    assert isinstance(ended, ev.RunFinished)
    logged = [(e.level, e.text) for e in events if isinstance(e, ev.LogMessage)]
    # Level "data": the headless console prints it (it leaves out "info" lines).
    assert any(level == "data" and "decoding 18 imagefolder training images" in text for level, text in logged)
    assert isinstance(events[0], ev.RunStarted)  # the decoding shows once the run is on screen


def test_an_unwritable_cache_folder_still_trains_from_memory(tmp_path, monkeypatch):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("KDTUI_CACHE_DIR", str(blocked))
    bundle, log = prepared(config(make_folder(tmp_path / "data")))
    assert "could not write the cache" in log and "in memory" in log
    assert sum(len(y) for _, y in bundle.test_batches(4, CPU)) == 9


def test_cached_folder_batches_are_shared_out_over_torchrun_ranks(tmp_path):
    """Under torchrun the trainer passes shard=Shard(rank, world): the ranks' shares of a step
    join up to the one-process batch, and every test image is on exactly one rank."""
    from kdtui.data.shard import Shard

    bundle, _ = prepared(config(make_folder(tmp_path / "data")))
    whole = list(bundle.train_batches(6, 1, CPU, with_indices=True))
    shares = [list(bundle.train_batches(6, 1, CPU, with_indices=True, shard=Shard(rank, 2)))
              for rank in range(2)]
    assert len(whole) == len(shares[0]) == len(shares[1]) == 3
    for step, batch in enumerate(whole):
        for part in range(3):
            assert torch.equal(torch.cat([shares[0][step][part], shares[1][step][part]]), batch[part])
    tested = [n for rank in range(2) for x, _ in bundle.test_batches(4, CPU, shard=Shard(rank, 2))
              for n in numbers(x)]
    assert sorted(tested) == [50, 51, 52, 150, 151, 152, 250, 251, 252]
