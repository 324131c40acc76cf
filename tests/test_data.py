import torch

from kdtui.config import DataConfig
from kdtui.data import build_data
from kdtui.data.memory import InMemoryLoader, random_crop_flip


def test_random_crop_flip_takes_shifted_or_mirrored_windows():
    images = torch.arange(4 * 3 * 6 * 6, dtype=torch.float32).view(4, 3, 6, 6) + 1
    generator = torch.Generator().manual_seed(0)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for _ in range(20):
        out = random_crop_flip(images, generator, padding=2)
        assert out.shape == images.shape
        for i in range(4):
            windows = [padded[i, :, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
            assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)


def loader(n=50, augment=True):
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8)
    return InMemoryLoader(images, torch.arange(n), torch.zeros(3), torch.ones(3), augment, seed=1)


def test_train_batches_are_a_seeded_permutation_without_the_last_partial_batch():
    data = loader()
    cpu = torch.device("cpu")
    epoch1 = [labels for _, labels in data.train_batches(16, 1, cpu)]
    assert [len(b) for b in epoch1] == [16, 16, 16]
    assert len(set(torch.cat(epoch1).tolist())) == 48
    again = [labels for _, labels in data.train_batches(16, 1, cpu)]
    assert all(torch.equal(a, b) for a, b in zip(epoch1, again))        # same epoch → same order
    epoch2 = torch.cat([labels for _, labels in data.train_batches(16, 2, cpu)])
    assert not torch.equal(torch.cat(epoch1), epoch2)                   # new epoch → new order
    tiny = list(loader(n=5).train_batches(16, 1, cpu))
    assert len(tiny) == 1 and len(tiny[0][1]) == 5                      # smaller than a batch


def test_test_batches_cover_everything_in_order_and_normalise():
    data = loader(n=10, augment=False)
    batches = list(data.test_batches(4, torch.device("cpu")))
    assert torch.equal(torch.cat([labels for _, labels in batches]), torch.arange(10))
    images = torch.cat([x for x, _ in batches])
    assert torch.allclose(images, data.images.float() / 255)


def test_shapes_bundle():
    bundle = build_data(DataConfig(dataset="shapes", train_size=100, test_size=40), seed=0)
    assert (bundle.num_classes, bundle.image_size, bundle.train_size, bundle.test_size) == (10, 32, 100, 40)
    assert len(bundle.class_names) == 10
    images, labels = next(iter(bundle.train_batches(32, 1, torch.device("cpu"))))
    assert images.shape == (32, 3, 32, 32) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and labels.max() < 10


# --- crop padding: black borders, as torchvision's RandomCrop(size, padding) + flip -------------

def position_image(size: int) -> torch.Tensor:
    """A uint8 image whose pixels name their row (red) and column (green), never black."""
    rows = torch.arange(1, size + 1).view(size, 1).expand(size, size)
    cols = torch.arange(1, size + 1).view(1, size).expand(size, size)
    return torch.stack([rows, cols, torch.full((size, size), 200)]).to(torch.uint8)


def denormalise(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    pixels = (images * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)) * 255
    return pixels.round().clamp(0, 255).to(torch.uint8)


def crop_parameters(out: torch.Tensor, padding: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dy, dx, flipped) of augmented position images, read off the always-visible centre."""
    c = out.shape[-1] // 2
    red, green = out[:, 0, c, c].long(), out[:, 1, c, c].long()
    flipped = out[:, 1, c, c + 1].long() - green == -1
    dy = red - 1 - c + padding
    dx = torch.where(flipped, green - (out.shape[-1] - c) + padding, green - 1 - c + padding)
    return dy, dx, flipped


def chi_square(counts: torch.Tensor) -> float:
    expected = counts.sum() / len(counts)
    return float(((counts - expected) ** 2 / expected).sum())


def test_in_memory_augmentation_is_torchvisions_random_crop_and_flip():
    from torchvision.transforms.v2 import functional as F

    size, padding, n = 12, 4, 9000
    image = position_image(size)
    mean, std = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.25, 0.3])
    data = InMemoryLoader(image.expand(n, 3, size, size).contiguous(), torch.zeros(n, dtype=torch.int64),
                          mean, std, augment=True, seed=3, padding=padding)
    out = denormalise(torch.cat([x for x, _ in data.train_batches(1000, 1, torch.device("cpu"))]), mean, std)
    assert len(out) == n
    dy, dx, flipped = crop_parameters(out, padding)
    for key in set(zip(dy.tolist(), dx.tolist(), flipped.tolist())):
        y, x, flip = key
        expected = F.crop(F.pad(image, [padding], fill=0), y, x, size, size)  # black borders
        expected = F.horizontal_flip(expected) if flip else expected
        chosen = (dy == y) & (dx == x) & (flipped == flip)
        assert torch.equal(out[chosen], expected.expand(int(chosen.sum()), -1, -1, -1)), key
    # Offsets uniform over 0..2p in each axis (chi-square, 8 degrees of freedom, p = 0.001),
    # flips at a rate of 1/2 (within four standard deviations).
    for offsets in (dy, dx):
        assert chi_square(torch.bincount(offsets, minlength=2 * padding + 1).float()) < 26.1
    assert abs(flipped.float().mean().item() - 0.5) < 4 * (0.25 / n) ** 0.5


def test_crop_padding_zero_only_flips():
    image = position_image(8)
    mean, std = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.25, 0.3])
    plain = InMemoryLoader(image.expand(200, 3, 8, 8).contiguous(), torch.zeros(200, dtype=torch.int64),
                           mean, std, augment=True, seed=0, padding=0)
    out = denormalise(next(iter(plain.train_batches(200, 1, torch.device("cpu"))))[0], mean, std)
    flipped = [torch.equal(o, image.flip(-1)) for o in out]
    assert all(f or torch.equal(o, image) for o, f in zip(out, flipped)) and 0 < sum(flipped) < 200


def test_shapes_crops_pad_black_too():
    bundle = build_data(DataConfig(dataset="shapes", train_size=450, test_size=10), seed=0)
    images = next(iter(bundle.train_batches(450, 1, torch.device("cpu"))))[0]
    black = images.amin(dim=(0, 2, 3)).view(1, 3, 1)  # no pixel is darker than the padding
    top_row_black = torch.isclose(images[:, :, 0, :], black).all(dim=1).all(dim=-1)
    assert abs(top_row_black.float().mean().item() - 4 / 9) < 0.1  # shifted down: dy < 4


def test_cifar_pads_black_by_the_datasets_default_or_data_crop_padding(monkeypatch):
    import kdtui.data.cifar as cifar

    n = 600
    images = position_image(32).expand(n, 3, 32, 32).contiguous()
    labels = torch.arange(n) % 10
    fake = (images, labels, images[:20], labels[:20], [str(i) for i in range(10)])
    monkeypatch.setattr(cifar, "load_cifar_arrays", lambda spec, root, download: fake)
    for overrides, padding in (({}, 4), ({"crop_padding": 2}, 2), ({"crop_padding": 0}, 0)):
        bundle = build_data(DataConfig(dataset="cifar10", **overrides), seed=0)
        batch = torch.cat([x for x, _ in bundle.train_batches(100, 1, torch.device("cpu"))])
        out = denormalise(batch, torch.tensor(cifar.CIFAR10.mean), torch.tensor(cifar.CIFAR10.std))
        dy, dx, _ = crop_parameters(out, padding)
        assert dy.min() == dx.min() == 0 and dy.max() == dx.max() == 2 * padding, overrides
        black_rows = (out == 0).all(dim=1).all(dim=-1).sum(dim=-1)
        assert black_rows.max() == padding and torch.equal(black_rows, (dy - padding).abs())


def test_cpu_batches_are_prepared_in_one_thread_and_training_keeps_its_threads(monkeypatch):
    import kdtui.data.memory as memory

    seen = []
    original = memory.normalise
    monkeypatch.setattr(memory, "normalise", lambda *a: seen.append(torch.get_num_threads()) or original(*a))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        data = loader(n=40)
        for _ in data.train_batches(8, 1, torch.device("cpu")):
            assert torch.get_num_threads() == 2  # what the training step between batches gets
        for _ in data.test_batches(8, torch.device("cpu")):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert seen == [1] * 10
