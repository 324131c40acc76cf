"""Pictures in the terminal, in truecolor half blocks: each character cell shows two pixels
stacked, the upper half block ``▀`` drawn in the top pixel's colour on the bottom pixel's
colour. Maps (viridis), images, a scatter plot coloured by class, the reliability diagram.

numpy and rich only (no matplotlib), so the app and ``kdtui eval`` draw without it.
Lines are :class:`rich.text.Text`; print them with a rich console, or show them in a
Textual ``Static``.

Usage::

    lines = map_cells(qp, size=16)               # a 16×16-pixel map in 16 columns × 8 lines
    lines = side_by_side([image_cells(img, 16), lines], titles=["input", "Qp"])
    lines = scatter_cells(xy, labels, width=60, height=20)
"""

from __future__ import annotations

import colorsys
from typing import Sequence

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Text

UPPER, LOWER = "▀", "▄"

# Paul Tol's "muted" scheme (colour-blind safe), pale grey as its tenth colour.
PALETTE = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677",
           "#882255", "#AA4499", "#DDDDDD")

# matplotlib's viridis sampled at 0, 1/8, …, 1; values in between are interpolated.
VIRIDIS = np.array([(68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
                    (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37)], dtype=np.float64)


def class_colours(count: int) -> list[tuple[int, int, int]]:
    """One colour per class: the palette for up to 10 classes, evenly spaced hues beyond
    (no palette stays colour-blind safe for 100 classes)."""
    if count <= len(PALETTE):
        return [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in PALETTE[:count]]  # type: ignore[misc]
    return [tuple(int(255 * v) for v in colorsys.hsv_to_rgb(i / count, 0.65, 0.9))  # type: ignore[misc]
            for i in range(count)]


def colormap(values: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Viridis colours (uint8, ``[..., 3]``) of ``values`` scaled from [low, high] (default:
    their own range; a constant map is drawn at the low end)."""
    values = np.asarray(values, dtype=np.float64)
    low = float(np.nanmin(values)) if low is None else low
    high = float(np.nanmax(values)) if high is None else high
    scaled = np.clip((values - low) / (high - low), 0, 1) if high > low else np.zeros_like(values)
    position = np.nan_to_num(scaled) * (len(VIRIDIS) - 1)
    left = np.minimum(position.astype(int), len(VIRIDIS) - 2)
    frac = (position - left)[..., None]
    return np.rint(VIRIDIS[left] * (1 - frac) + VIRIDIS[left + 1] * frac).astype(np.uint8)


def resize_nearest(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resampling of the first two axes (maps are blocky, not blurred)."""
    rows = (np.arange(height) * array.shape[0] // height).clip(0, array.shape[0] - 1)
    cols = (np.arange(width) * array.shape[1] // width).clip(0, array.shape[1] - 1)
    return array[rows][:, cols]


def _rgb(pixel: np.ndarray) -> Color:
    return Color.from_rgb(int(pixel[0]), int(pixel[1]), int(pixel[2]))


def half_blocks(rgb: np.ndarray) -> list[Text]:
    """``[H, W, 3]`` uint8 pixels as ceil(H/2) lines of W cells."""
    lines = []
    for top in range(0, rgb.shape[0], 2):
        line = Text()
        for col in range(rgb.shape[1]):
            bottom = rgb[top + 1, col] if top + 1 < rgb.shape[0] else None
            style = Style(color=_rgb(rgb[top, col]), bgcolor=None if bottom is None else _rgb(bottom))
            line.append(UPPER, style)
        lines.append(line)
    return lines


def map_cells(values: np.ndarray, size: int | None = None, low: float | None = None,
              high: float | None = None) -> list[Text]:
    """A 2-D map in viridis; ``size`` pixels a side (nearest-neighbour), else its own size."""
    values = np.asarray(values, dtype=np.float64)
    if size is not None:
        values = resize_nearest(values, size, size)
    return half_blocks(colormap(values, low, high))


def image_cells(image: np.ndarray, size: int | None = None) -> list[Text]:
    """An RGB image ``[3, H, W]`` (or ``[H, W, 3]``) with values in [0, 1]."""
    image = np.asarray(image, dtype=np.float64)
    if image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)
    if size is not None:
        image = resize_nearest(image, size, size)
    return half_blocks(np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8))


def side_by_side(panels: Sequence[list[Text]], gap: int = 1,
                 titles: Sequence[str] | None = None) -> list[Text]:
    """Panels next to each other, top-aligned, each padded to its widest line; titles (cut
    to the panel's width) above them."""
    widths = [max((line.cell_len for line in panel), default=0) for panel in panels]
    if titles is not None:
        panels = [[Text(title[:width], style="bold")] + list(panel)
                  for title, panel, width in zip(titles, panels, widths)]
    height = max((len(panel) for panel in panels), default=0)
    lines = []
    for row in range(height):
        line = Text()
        for index, (panel, width) in enumerate(zip(panels, widths)):
            cell = panel[row].copy() if row < len(panel) else Text()
            cell.pad_right(width - cell.cell_len)
            line.append_text(cell)
            if index < len(panels) - 1:
                line.append(" " * gap)
        lines.append(line)
    return lines


def scatter_cells(xy: np.ndarray, classes: np.ndarray, width: int = 60, height: int = 20,
                  colours: Sequence[tuple[int, int, int]] | None = None) -> list[Text]:
    """Points coloured by class on a ``width`` × ``height`` cell grid (two pixels per cell,
    one above the other); where points of several classes share a pixel, the last drawn wins."""
    xy, classes = np.asarray(xy, dtype=np.float64), np.asarray(classes)
    colours = list(colours or class_colours(int(classes.max()) + 1 if len(classes) else 1))
    grid = np.full((height * 2, width), -1, dtype=np.int64)
    if len(xy):
        low, high = xy.min(axis=0), xy.max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        cols = np.clip(((xy[:, 0] - low[0]) / span[0] * (width - 1)).round().astype(int), 0, width - 1)
        rows = np.clip(((high[1] - xy[:, 1]) / span[1] * (height * 2 - 1)).round().astype(int), 0, height * 2 - 1)
        grid[rows, cols] = classes
    lines = []
    for top in range(0, height * 2, 2):
        line = Text()
        for col in range(width):
            upper, lower = grid[top, col], grid[top + 1, col]
            if upper < 0 and lower < 0:
                line.append(" ")
            elif lower < 0:
                line.append(UPPER, Style(color=Color.from_rgb(*colours[upper % len(colours)])))
            elif upper < 0:
                line.append(LOWER, Style(color=Color.from_rgb(*colours[lower % len(colours)])))
            else:
                line.append(UPPER, Style(color=Color.from_rgb(*colours[upper % len(colours)]),
                                         bgcolor=Color.from_rgb(*colours[lower % len(colours)])))
        lines.append(line)
    return lines


def legend(names: Sequence[str], colours: Sequence[tuple[int, int, int]] | None = None) -> Text:
    colours = list(colours or class_colours(len(names)))
    text = Text()
    for index, name in enumerate(names):
        text.append("■ ", Style(color=Color.from_rgb(*colours[index % len(colours)])))
        text.append(f"{name}  ")
    return text


def reliability_cells(bins: Sequence[dict], width: int = 40) -> list[Text]:
    """The reliability diagram as one line per non-empty bin: the accuracy as a bar, the
    mean confidence as a ``│`` mark on it (a perfectly calibrated bin ends at its mark)."""
    lines = []
    for item in bins:
        if not item.get("count"):
            continue
        accuracy, confidence = float(item["accuracy"]), float(item["confidence"])
        filled = int(round(accuracy * width))
        mark = min(int(round(confidence * width)), width - 1)
        bar = Text()
        for position in range(width):
            char = "│" if position == mark else ("█" if position < filled else "·")
            style = "bold red" if position == mark else ("cyan" if position < filled else "dim")
            bar.append(char, style)
        line = Text(f"{item['lower']:.2f}–{item['upper']:.2f} n={item['count']:<6}", style="dim")
        line.append(" ")
        line.append_text(bar)
        line.append(f" acc {accuracy:.3f} conf {confidence:.3f}")
        lines.append(line)
    return lines
