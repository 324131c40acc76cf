"""Image-folder datasets: CINIC-10, Tiny-ImageNet, ImageNet and any ImageFolder tree.

Small images that fit ``data.memory_budget_gb`` are decoded once into the image cache and
batched from memory on the training device (:mod:`kdtui.data.folder_memory`); the others
are decoded with PIL in DataLoader worker processes and augmented per image with
torchvision transforms. Either way shuffling and augmentation derive from (seed, epoch),
so a resumed run sees the same batches. Every layout problem is a :class:`DataError` naming
the folder and what was expected there.

Usage::

    bundle = build_folder_dataset(cfg, seed, LAYOUTS["cinic10"], dataset_info("cinic10"))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

from kdtui.data.base import DataBundle
from kdtui.data.info import DataOptions, DatasetInfo, crop_padding, data_root
from kdtui.data.folder_memory import FolderBatches, FolderSplit
from kdtui.data.image_cache import ignore_stop_signals
from kdtui.data.memory import channel_stats, stats_step, stratified_indices
from kdtui.data.shard import Shard, ShardedBatches
from kdtui.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}


@dataclass(frozen=True)
class Layout:
    """How a dataset is laid out on disk (its image size and augmentation follow its
    :class:`DatasetInfo`)."""

    name: str
    train: tuple[str, ...]          # candidate names of the training folder
    test: tuple[str, ...]           # candidate names of the evaluation folder, first found wins
    mean: tuple[float, ...] | None  # None: computed from a sample of training images
    std: tuple[float, ...] | None
    hint: str = ""                  # where to get it


LAYOUTS = {
    "cinic10": Layout("cinic10", ("train",), ("test", "valid"),
                      (0.47889522, 0.47227842, 0.43047404), (0.24205776, 0.23828046, 0.25874835),
                      hint="download CINIC-10 (https://datashare.ed.ac.uk/handle/10283/3192) and "
                           "extract it so that ROOT/train/airplane/*.png exists"),
    "tiny_imagenet": Layout("tiny_imagenet", ("train",), ("val",),
                            (0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821),
                            hint="download http://cs231n.stanford.edu/tiny-imagenet-200.zip and "
                                 "extract it so that ROOT/train/n01443537/images/*.JPEG exists"),
    "imagenet": Layout("imagenet", ("train",), ("val",),
                       (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                       hint="prepare ILSVRC-2012 as class folders: ROOT/train/<wnid>/*.JPEG and "
                            "ROOT/val/<wnid>/*.JPEG"),
    "imagefolder": Layout("imagefolder", ("train",), ("test", "val", "valid"), None, None,
                          hint="arrange the images as ROOT/train/<class>/* and ROOT/test/<class>/*"),
}


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def scan_class_folders(folder: Path, layout: Layout, classes: list[str] | None = None
                       ) -> tuple[list[tuple[Path, int]], list[str]]:
    """(image, label) pairs of ``folder/<class>/`` (or ``<class>/images/`` for Tiny-ImageNet)."""
    if not folder.is_dir():
        raise DataError(f"{layout.name}: expected a folder {folder}, but it does not exist. To "
                        f"get the data: {layout.hint}, and point data.root at ROOT.")
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not found:
        raise DataError(f"{layout.name}: {folder} holds no class folders; {layout.hint}.")
    classes = classes or found
    samples: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        class_dir = folder / name
        if (class_dir / "images").is_dir():  # Tiny-ImageNet's train/<wnid>/images/
            class_dir = class_dir / "images"
        images = sorted(p for p in class_dir.iterdir() if _is_image(p)) if class_dir.is_dir() else []
        if not images:
            raise DataError(f"{layout.name}: the class folder {class_dir} holds no images "
                            f"({', '.join(sorted(IMAGE_SUFFIXES))}); remove it or fill it.")
        samples.extend((path, label) for path in images)
    return samples, classes


def scan_tiny_imagenet_val(folder: Path, classes: list[str], layout: Layout) -> list[tuple[Path, int]]:
    """Tiny-ImageNet's val/images/*.JPEG, labelled by val/val_annotations.txt."""
    annotations = folder / "val_annotations.txt"
    if not annotations.exists():
        raise DataError(f"tiny_imagenet: expected {annotations} (file name, wnid, box per line); "
                        f"{layout.hint}.")
    index = {name: i for i, name in enumerate(classes)}
    samples = []
    for number, line in enumerate(annotations.read_text().splitlines(), start=1):
        parts = line.split("\t")
        if not line.strip():
            continue
        if len(parts) < 2 or parts[1] not in index:
            raise DataError(f"tiny_imagenet: {annotations} line {number} is {line!r}; expected "
                            "'<file>\\t<wnid>\\t...' with a wnid that has a train/ folder.")
        path = folder / "images" / parts[0]
        if not path.exists():
            raise DataError(f"tiny_imagenet: {annotations} line {number} names {path}, which does not exist.")
        samples.append((path, index[parts[1]]))
    if not samples:
        raise DataError(f"tiny_imagenet: {annotations} lists no images.")
    return samples


class ImageFiles(torch.utils.data.Dataset):
    def __init__(self, samples: list[tuple[Path, int]], transform) -> None:
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int, int]:
        path, label = self.samples[index]
        return self.transform(open_rgb(path)), label, index


def open_rgb(path: Path):
    """The image at ``path`` as RGB; an unreadable file is a DataError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"Cannot read the image {path} ({exc}); remove or replace it.") from None


def _transforms(size: int, mean, std, augment: bool, padding: int | None):
    """(training, evaluation) transforms. ``padding``: black pixels added on each side before
    the random crop (torchvision's ``RandomCrop(size, padding)``); None: a random-resized
    crop (ImageNet's recipe) instead."""
    from torchvision.transforms import v2

    to_tensor = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    if padding is None:
        train = [v2.RandomResizedCrop(size), v2.RandomHorizontalFlip()]
        test = [v2.Resize(int(size * 256 / 224)), v2.CenterCrop(size)]
    else:
        crop = [v2.RandomCrop(size, padding=padding, fill=0)] if padding else []
        train = [v2.Resize((size, size)), *crop, v2.RandomHorizontalFlip()]
        test = [v2.Resize((size, size))]
    return v2.Compose((train if augment else test) + to_tensor), v2.Compose(test + to_tensor)


def _image_size(path: Path) -> int:
    return max(open_rgb(path).size)


def _channel_stats(samples: list[tuple[Path, int]], size: int) -> tuple[list[float], list[float]]:
    """Mean/std per channel over up to 2,000 training images (evenly spaced), as the
    in-memory path computes them from its cache."""
    from torchvision.transforms import v2

    prepare = v2.Compose([v2.Resize((size, size)), v2.ToImage()])
    chosen = samples[::stats_step(len(samples))]
    return channel_stats(torch.stack([prepare(open_rgb(path)) for path, _ in chosen]))


def build_folder_dataset(cfg: DataOptions, seed: int, layout: Layout, info: DatasetInfo) -> DataBundle:
    root = data_root(cfg)
    if not root.is_dir():
        raise DataError(f"{layout.name}: the data folder {root} does not exist. {layout.hint[0].upper()}"
                        f"{layout.hint[1:]}, with ROOT = data.root (--set data.root=/path/to/{layout.name}).")
    train_dir = root / (cfg.train_folder or _first_existing(root, layout.train, layout))
    test_dir = root / (cfg.test_folder or _first_existing(root, layout.test, layout))
    train_all, classes = scan_class_folders(train_dir, layout)
    if layout.name == "tiny_imagenet" and (test_dir / "val_annotations.txt").exists():
        test_all = scan_tiny_imagenet_val(test_dir, classes, layout)
        test_dir = test_dir / "images"
    else:
        test_all, test_classes = scan_class_folders(test_dir, layout)
        if test_classes != classes:
            missing = sorted(set(classes) ^ set(test_classes))[:5]
            raise DataError(f"{layout.name}: {train_dir} and {test_dir} hold different class folders "
                            f"(e.g. {', '.join(missing)}); both must have the same classes.")
    train_split = FolderSplit(train_dir, train_all, _stratified_positions(train_all, cfg.train_subset, cfg.seed))
    test_split = FolderSplit(test_dir, test_all, _stratified_positions(test_all, cfg.test_subset, cfg.seed + 1))
    train, test = train_split.kept, test_split.kept
    size = cfg.image_size or info.image_size or _image_size(train[0][0])
    stats = (layout.mean, layout.std) if layout.mean else None
    if cfg.mean is not None and cfg.std is not None:
        stats = (cfg.mean, cfg.std)
    padding = crop_padding(cfg, info)

    def dataloader_path(stats: tuple | None) -> tuple:
        mean, std = stats or _channel_stats(train, size)
        return dataloader_batches(cfg, seed, train, test, size, mean, std, padding)

    batches = FolderBatches(layout.name, train_split, test_split, size, stats, cfg, seed, padding,
                            dataloader_path)
    return DataBundle(name=layout.name, num_classes=len(classes), image_size=size,
                      train_size=len(train), test_size=len(test), train_batches=batches.train_batches,
                      test_batches=batches.test_batches, class_names=classes,
                      train_labels=torch.tensor([label for _, label in train]), prepare=batches.prepare)


def _stratified_positions(samples: list[tuple[Path, int]], count: int | None, seed: int) -> Tensor:
    return stratified_indices(torch.tensor([label for _, label in samples]), count, seed)


def dataloader_batches(cfg: DataOptions, seed: int, train: list[tuple[Path, int]], test: list[tuple[Path, int]],
                       size: int, mean, std, padding: int | None) -> tuple:
    """(train_batches, test_batches) decoding and augmenting each image in DataLoader workers."""
    train_tf, test_tf = _transforms(size, mean, std, cfg.augment, padding)
    train_set, test_set = ImageFiles(train, train_tf), ImageFiles(test, test_tf)

    def loader(dataset, device: torch.device, generator_seed: int, **batching):
        return torch.utils.data.DataLoader(
            dataset, **batching, num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(generator_seed), persistent_workers=False,
            worker_init_fn=_worker_init if cfg.num_workers else None)

    def train_batches(batch_size: int, epoch: int, device: torch.device,
                      with_indices: bool = False, shard: Shard = Shard()) -> Iterator[tuple[Tensor, ...]]:
        epoch_seed = seed * 100_003 + epoch
        if shard.world > 1:  # this rank's share of each global batch (kdtui.data.shard)
            batches = loader(train_set, device, epoch_seed * 1_009 + shard.rank,
                             batch_sampler=ShardedBatches(len(train_set), batch_size, epoch_seed, shard))
        else:
            batches = loader(train_set, device, epoch_seed, batch_size=batch_size, shuffle=True,
                             drop_last=len(train_set) > batch_size)
        for images, labels, indices in batches:
            batch = (images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last),
                     labels.to(device, non_blocking=True))
            yield (*batch, indices.to(device, non_blocking=True)) if with_indices else batch

    def test_batches(batch_size: int, device: torch.device,
                     shard: Shard = Shard()) -> Iterator[tuple[Tensor, Tensor]]:
        shown = test_set if shard.world == 1 else torch.utils.data.Subset(
            test_set, shard.test_indices(len(test_set)))
        for images, labels, _ in loader(shown, device, seed * 100_003, batch_size=batch_size, shuffle=False):
            yield (images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last),
                   labels.to(device, non_blocking=True))

    return train_batches, test_batches


def _worker_init(worker_id: int) -> None:
    ignore_stop_signals()


def _first_existing(root: Path, names: tuple[str, ...], layout: Layout) -> str:
    for name in names:
        if (root / name).is_dir():
            return name
    raise DataError(f"{layout.name}: {root} has no {' or '.join(f'{n}/' for n in names)} folder. "
                    f"Expected layout: {layout.hint}.")
