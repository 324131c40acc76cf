"""The built-in ``shapes`` dataset: format, determinism, balance and a visible foreground."""

from __future__ import annotations

import pytest
import torch

from kdtui.data import shapes
from kdtui.data.shapes import CLASS_NAMES, generate_shapes


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return generate_shapes(500, seed=0)


def test_class_names() -> None:
    assert len(CLASS_NAMES) == 10
    assert len(set(CLASS_NAMES)) == 10


def test_shapes_and_dtypes(batch) -> None:
    x, y = batch
    assert x.shape == (500, 3, 32, 32) and x.dtype == torch.uint8
    assert y.shape == (500,) and y.dtype == torch.int64
    assert x.is_contiguous()


def test_labels_in_range_balanced_and_shuffled(batch) -> None:
    _, y = batch
    assert int(y.min()) >= 0 and int(y.max()) < len(CLASS_NAMES)
    assert torch.bincount(y, minlength=10).tolist() == [50] * 10
    assert not torch.equal(y, torch.sort(y).values)          # not grouped by class
    # n not divisible by the class count: counts differ by at most one.
    counts = torch.bincount(generate_shapes(23, seed=3)[1], minlength=10)
    assert int(counts.max() - counts.min()) <= 1 and int(counts.sum()) == 23


def test_same_seed_same_bytes(batch) -> None:
    x, y = batch
    x2, y2 = generate_shapes(500, seed=0)
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_seed_and_split_change_the_data(batch) -> None:
    x, _ = batch
    assert not torch.equal(x, generate_shapes(500, seed=1)[0])
    # Train and test are different images, not a shuffle of the same ones.
    test = generate_shapes(500, seed=0, split="test")[0]
    assert not torch.equal(x, test)
    assert not {img.numpy().tobytes() for img in x} & {img.numpy().tobytes() for img in test}


def test_values_use_the_range(batch) -> None:
    x, _ = batch
    assert int(x.min()) <= 10 and int(x.max()) >= 245
    per_image_std = x.float().flatten(1).std(1)
    assert float(per_image_std.min()) > 5.0                     # no blank images
    assert len(torch.unique(x[0])) > 50                         # not a flat palette


def test_every_image_has_a_foreground_object(monkeypatch) -> None:
    # Switch the clutter off: a flat background makes the object the only other pixels.
    monkeypatch.setattr(shapes, "_GRADIENT", 0.0)
    monkeypatch.setattr(shapes, "_BLOTCH", 0.0)
    monkeypatch.setattr(shapes, "_NOISE", (0.0, 0.0))
    monkeypatch.setattr(shapes, "_UNDER_STROKES", (0, 0))
    monkeypatch.setattr(shapes, "_OVER_STROKE_P", 0.0)
    x, y = generate_shapes(200, seed=5)
    x = x.float()
    bg = x.flatten(2).median(2).values[:, :, None, None]        # the flat background colour
    diff = (x - bg).abs().mean(1)                               # N x 32 x 32
    fg = diff > 0.1 * 255
    frac = fg.flatten(1).float().mean(1)
    assert float(frac.min()) > 0.02 and float(frac.max()) < 0.6
    # The object differs from the background by a clear margin, not by a faint tint.
    strength = torch.stack([d[f].mean() for d, f in zip(diff, fg)])
    assert float(strength.min()) > 0.15 * 255
    # Hollow classes cover less area than their filled counterparts, on average.
    area = {c: float(frac[y == CLASS_NAMES.index(c)].mean()) for c in ("disk", "ring")}
    assert area["ring"] < area["disk"]


def test_empty_and_bad_split() -> None:
    x, y = generate_shapes(0, seed=0)
    assert x.shape == (0, 3, 32, 32) and y.shape == (0,)
    with pytest.raises(ValueError, match="split"):
        generate_shapes(10, seed=0, split="validation")
