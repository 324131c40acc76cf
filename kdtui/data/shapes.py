"""``shapes``: a built-in, procedurally generated 10-class 32x32 RGB image set.

Each image holds one object (a disk, ring, square, ...) at a random position, size,
rotation and colour on a cluttered background: a smooth colour gradient with blotches,
distractor strokes (some in the object's own colour, some drawn over it) and pixel noise.
It needs no download and no files, is generated in memory in about a second for 10,000
images, and has a clear foreground, so attention-based distillation has something to
attend to.

Usage::

    from kdtui.data.shapes import CLASS_NAMES, generate_shapes
    images, labels = generate_shapes(10_000, seed=0, split="train")  # uint8 Nx3x32x32, int64 N

The output depends only on ``(n, seed, split)``. Pixel values come from the PCG64
stream plus elementwise arithmetic and ``sqrt`` (both exactly rounded in IEEE
float32/float64). No trigonometric or transcendental functions are used, because their
last bit can differ between CPUs and libm builds, so other machines give the same bytes.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Ten shapes that stay distinct under any rotation: no class is another class rotated
# (no square/diamond pair), so the labels can be learned from shape alone.
CLASS_NAMES: list[str] = [
    "disk", "ring", "square", "square_frame", "triangle",
    "plus", "star", "hexagon", "crescent", "ellipse",
]

SIZE = 32
_SS = 2                      # supersampling factor for anti-aliased object edges
_CHUNK = 1000                # images rendered at once: bounds memory (~100 MB peak)
_SPLITS = {"train": 0, "test": 1, "val": 2}

# --- difficulty knobs (tuned so wrn_16_1 reaches ~60-75 % after 3 short epochs, >=80 % after 6)
_RADIUS = (5.0, 10.0)        # object radius in pixels
_CONTRAST = (0.22, 0.65)     # object-to-background colour distance (RGB, 0..1 scale)
_UNDER_STROKES = (1, 4)      # distractor strokes drawn before the object (inclusive range)
_OVER_STROKE_P = 0.4         # chance of one thin stroke drawn across the object
_SAME_COLOUR_P = 0.35        # chance a distractor stroke has the object's colour
_GRADIENT = 1.0              # how far the gradient's far colour may be from its near one
_BLOTCH = 0.25               # amplitude of low-frequency background blotches
_NOISE = (0.02, 0.08)        # per-image pixel-noise standard deviation

# Normals of the regular polygons' edges, built from square roots only (exactly rounded).
_S3 = math.sqrt(3.0) / 2.0
_C72, _S72 = (math.sqrt(5.0) - 1.0) / 4.0, math.sqrt(10.0 + 2.0 * math.sqrt(5.0)) / 4.0
_C144, _S144 = -(math.sqrt(5.0) + 1.0) / 4.0, math.sqrt(10.0 - 2.0 * math.sqrt(5.0)) / 4.0
_TRI = [(0.0, 1.0), (-_S3, -0.5), (_S3, -0.5)]
_HEX = [(1.0, 0.0), (0.5, _S3), (-0.5, _S3), (-1.0, 0.0), (-0.5, -_S3), (0.5, -_S3)]
_PENTA = [(0.0, 1.0), (_S72, _C72), (_S144, _C144), (-_S144, _C144), (-_S72, _C72)]


def _shape_mask(cls: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside test of class ``cls`` in object coordinates (the object fits the unit disk)."""
    if cls == 0:   # disk
        return u * u + v * v <= 0.85 ** 2
    if cls == 1:   # ring
        r2 = u * u + v * v
        return (r2 <= 0.95 ** 2) & (r2 >= 0.55 ** 2)
    if cls == 2:   # square
        return np.maximum(np.abs(u), np.abs(v)) <= 0.72
    if cls == 3:   # square frame
        m = np.maximum(np.abs(u), np.abs(v))
        return (m <= 0.74) & (m >= 0.42)
    if cls == 4:   # equilateral triangle, circumradius 1 (apothem 0.5), centred on its centroid
        out = np.ones(u.shape, bool)
        for nx, ny in _TRI:
            out &= nx * u + ny * v <= 0.5
        return out
    if cls == 5:   # plus
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.3) & (av <= 0.92)) | ((av <= 0.3) & (au <= 0.92))
    if cls == 6:   # five-pointed star: inside at least 4 of the pentagram's 5 half-planes
        count = np.zeros(u.shape, np.int8)
        for nx, ny in _PENTA:
            count += (nx * u + ny * v) <= _C72     # each line lies cos(72°) from the centre
        return count >= 4
    if cls == 7:   # hexagon, circumradius 0.9
        out = np.ones(u.shape, bool)
        for nx, ny in _HEX:
            out &= nx * u + ny * v <= 0.9 * _S3
        return out
    if cls == 8:   # crescent: a disk minus an offset disk, shifted so its bulk is centred
        us = u - 0.25
        return (us * us + v * v <= 0.95 ** 2) & ((us - 0.5) ** 2 + v * v >= 0.78 ** 2)
    if cls == 9:   # ellipse, aspect 2:1
        return u * u + 4.0 * v * v <= 0.95 ** 2
    raise ValueError(cls)


def _bilinear_weights(grid: int) -> np.ndarray:
    """(SIZE, grid) weights that upsample a grid x grid field to SIZE x SIZE bilinearly."""
    pos = (np.arange(SIZE, dtype=np.float64) + 0.5) / SIZE * (grid - 1)
    return np.maximum(0.0, 1.0 - np.abs(pos[:, None] - np.arange(grid)[None, :])).astype(np.float32)


_W4 = _bilinear_weights(4)
# Pixel-centre coordinates, in output-pixel units, at 1x and at the supersampled resolution.
_C1 = (np.arange(SIZE, dtype=np.float32) + 0.5)
_CSS = ((np.arange(SIZE * _SS, dtype=np.float32) + 0.5) / _SS)


def _unit_rotation(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin of a near-uniform random angle, using only arithmetic (no libm trig).

    A rational rotation ((1-t^2), 2t)/(1+t^2) with |t| <= tan(22.5°) covers +-45°
    (density varies by <17 %); a random quarter turn then covers the full circle.
    """
    t = rng.uniform(-(math.sqrt(2.0) - 1.0), math.sqrt(2.0) - 1.0, n)
    c, s = (1.0 - t * t) / (1.0 + t * t), 2.0 * t / (1.0 + t * t)
    q = rng.integers(0, 4, n)
    for k in range(q.max(initial=0)):        # apply q quarter turns: (c, s) -> (-s, c)
        m = q > k
        c, s = np.where(m, -s, c), np.where(m, c, s)
    return c, s


def _random_direction(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random RGB unit vectors (from the cube, normalised: arithmetic only)."""
    d = rng.uniform(-1.0, 1.0, (n, 3))
    return d / np.maximum(np.sqrt((d * d).sum(1, keepdims=True)), 1e-6)


def _triangular(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-mean, unit-variance triangular noise (sum of two uniforms): no libm calls."""
    a = rng.random(shape, dtype=np.float32)
    b = rng.random(shape, dtype=np.float32)
    return (a + b - 1.0) * np.float32(math.sqrt(6.0))


def _strokes(rng: np.random.Generator, n: int, k: int, centre: np.ndarray, radius: np.ndarray,
             obj_col: np.ndarray, width: tuple[float, float]) -> dict[str, np.ndarray]:
    """Parameters of k straight strokes per image; those with active=False are not drawn."""
    # Strokes start near the object (clutter where it matters) or anywhere in the image.
    near = rng.random((n, k)) < 0.5
    anywhere = rng.uniform(0.0, SIZE, (n, k, 2))
    around = centre[:, None, :] + rng.uniform(-1.3, 1.3, (n, k, 2)) * radius[:, None, None]
    a = np.where(near[..., None], around, anywhere)
    length = rng.uniform(6.0, 18.0, (n, k))
    dc, ds = _unit_rotation(rng, n * k)
    b = a + np.stack([dc, ds], -1).reshape(n, k, 2) * length[..., None]
    col = rng.random((n, k, 3))
    same = rng.random((n, k)) < _SAME_COLOUR_P
    col = np.where(same[..., None], obj_col[:, None, :], col)
    return {"a": a, "b": b, "w": rng.uniform(*width, (n, k)), "col": col}


def _draw_strokes(img: np.ndarray, s: dict[str, np.ndarray], active: np.ndarray) -> None:
    """Composite strokes onto img (B,3,H,W) in place, with analytic anti-aliasing."""
    y = _C1[None, :, None]
    x = _C1[None, None, :]
    for j in range(active.shape[1]):
        ax, ay = s["a"][:, j, 0, None, None], s["a"][:, j, 1, None, None]
        dx, dy = s["b"][:, j, 0] - s["a"][:, j, 0], s["b"][:, j, 1] - s["a"][:, j, 1]
        inv = 1.0 / np.maximum(dx * dx + dy * dy, 1e-6)
        dx, dy, inv = dx[:, None, None], dy[:, None, None], inv[:, None, None]
        px, py = x - ax, y - ay
        t = np.clip((px * dx + py * dy) * inv, 0.0, 1.0)
        ex, ey = px - t * dx, py - t * dy
        dist = np.sqrt(ex * ex + ey * ey)
        # Coverage of a pixel by a line of width w: ramps over one pixel around the edge.
        half = (s["w"][:, j] * 0.5)[:, None, None]
        alpha = np.clip(half - dist + 0.5, 0.0, 1.0) * active[:, j, None, None]
        alpha = alpha[:, None].astype(np.float32)
        img *= 1.0 - alpha
        img += alpha * s["col"][:, j, :, None, None].astype(np.float32)


def generate_shapes(n: int, seed: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Generate ``n`` images: uint8 ``(n, 3, 32, 32)`` and int64 labels ``(n,)`` in 0..9.

    The classes are balanced (counts differ by at most one) and shuffled. The same
    ``(n, seed, split)`` always gives the same bytes. Different splits draw from
    independent streams, so train and test images differ.
    """
    if split not in _SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {sorted(_SPLITS)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), _SPLITS[split]])))
    labels = rng.permutation(np.arange(n) % len(CLASS_NAMES))

    # Per-image parameters, all drawn up front so they do not depend on chunking.
    radius = rng.uniform(*_RADIUS, n)
    # Centre: the object's disk stays inside except for at most 20 % of its radius.
    lo = radius * 0.8
    centre = np.stack([rng.uniform(lo, SIZE - lo), rng.uniform(lo, SIZE - lo)], -1)
    rot_c, rot_s = _unit_rotation(rng, n)
    stretch = rng.uniform(-0.08, 0.08, n)               # slight anisotropy: no exact templates
    # Background: a linear gradient between two colours plus low-frequency blotches.
    bg0 = rng.random((n, 3))
    bg1 = bg0 + _GRADIENT * (rng.random((n, 3)) - bg0)
    gdir_c, gdir_s = _unit_rotation(rng, n)
    blotch = rng.uniform(-_BLOTCH, _BLOTCH, (n, 3, 4, 4))
    # Object colour: a random direction away from the mean background colour at a random
    # contrast, reflected back into the cube so that clipping does not shrink the contrast.
    bg_mean = 0.5 * (bg0 + bg1)
    obj = bg_mean + _random_direction(rng, n) * rng.uniform(*_CONTRAST, n)[:, None]
    obj = np.abs(obj)
    obj = 1.0 - np.abs(1.0 - obj)
    shade = rng.uniform(-0.12, 0.12, (n, 2))             # gentle shading across the object
    under = _strokes(rng, n, _UNDER_STROKES[1], centre, radius, obj, (1.0, 2.6))
    n_under = rng.integers(_UNDER_STROKES[0], _UNDER_STROKES[1] + 1, n)
    under_active = np.arange(_UNDER_STROKES[1])[None, :] < n_under[:, None]
    over = _strokes(rng, n, 1, centre, radius, obj, (0.8, 1.6))
    over_active = rng.random((n, 1)) < _OVER_STROKE_P
    noise_sd = rng.uniform(*_NOISE, n).astype(np.float32)

    images = np.empty((n, 3, SIZE, SIZE), np.uint8)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        b = sl.stop - sl.start

        # Background at 1x (it is smooth, so no supersampling needed).
        yy, xx = _C1[:, None] / SIZE - 0.5, _C1[None, :] / SIZE - 0.5
        proj = (xx * gdir_c[sl, None, None] + yy * gdir_s[sl, None, None]).astype(np.float32) + 0.5
        img = (bg0[sl, :, None, None] + (bg1 - bg0)[sl, :, None, None] * proj[:, None]).astype(np.float32)
        # Separable bilinear upsampling of the 4x4 blotch grid (explicit sums, no BLAS).
        bl = blotch[sl].astype(np.float32)
        rows = sum(bl[:, :, i, None, :] * _W4[None, None, :, i, None] for i in range(4))  # (b,3,32,4)
        img += sum(rows[..., j, None] * _W4[None, None, None, :, j] for j in range(4))
        np.clip(img, 0.0, 1.0, out=img)

        _draw_strokes(img, {k: v[sl] for k, v in under.items()}, under_active[sl])

        # Object: inside test on a 2x supersampled grid, averaged to coverage in [0, 1].
        cov = np.zeros((b, SIZE, SIZE), np.float32)
        lab = labels[sl]
        for cls in range(len(CLASS_NAMES)):
            idx = np.nonzero(lab == cls)[0]
            if idx.size == 0:
                continue
            g = idx + sl.start
            inv_r = (1.0 / radius[g]).astype(np.float32)[:, None, None]
            c = rot_c[g].astype(np.float32)[:, None, None]
            s = rot_s[g].astype(np.float32)[:, None, None]
            dx = (_CSS[None, None, :] - centre[g, 0].astype(np.float32)[:, None, None]) * inv_r
            dy = (_CSS[None, :, None] - centre[g, 1].astype(np.float32)[:, None, None]) * inv_r
            st = stretch[g].astype(np.float32)[:, None, None]
            u = (dx * c + dy * s) * (1.0 + st)
            v = (dy * c - dx * s) * (1.0 - st)
            m = _shape_mask(cls, u, v).astype(np.float32)
            m = m.reshape(idx.size, SIZE, _SS, SIZE, _SS)
            cov[idx] = (m[:, :, 0, :, 0] + m[:, :, 0, :, 1] + m[:, :, 1, :, 0] + m[:, :, 1, :, 1]) * 0.25
        # Object colour with a gentle linear shading so it is not one flat colour.
        sx = (_C1[None, None, :] - centre[sl, 0, None, None]) / radius[sl, None, None]
        sy = (_C1[None, :, None] - centre[sl, 1, None, None]) / radius[sl, None, None]
        light = (shade[sl, 0, None, None] * sx + shade[sl, 1, None, None] * sy).astype(np.float32)
        col = obj[sl, :, None, None].astype(np.float32) + light[:, None]
        alpha = cov[:, None]
        img *= 1.0 - alpha
        img += alpha * col

        _draw_strokes(img, {k: v[sl] for k, v in over.items()}, over_active[sl])

        img += _triangular(rng, img.shape) * noise_sd[sl, None, None, None]
        images[sl] = np.clip(img * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)

    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
