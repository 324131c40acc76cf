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
