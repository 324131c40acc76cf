"""Folder images decoded once, in parallel, into a uint8 file in the cache; loaded in seconds after.

One cache file holds the images of one list of files (a split, or a subset of one) as an
N×3×S×S uint8 array. Its name carries a key hashed from every file's path, size and
modification time and the image side, so a changed folder gets a new file (and the old
one is removed). The file is written under a temporary name and renamed when complete,
and its header holds a CRC-32 of the pixels that is checked on every load: a partial or
damaged file is rebuilt, never trusted.

File layout: ``MAGIC`` (8 bytes) | header length (8 bytes, little-endian) | JSON header
``{"key", "shape", "crc32"}`` | the pixels, N×3×S×S, row-major.

Only square images of exactly the expected side are cached (nothing is resized); a folder
with any other image raises :class:`MixedSizes`, remembered in a small marker file so the
next run does not decode again to find out.

Torch-free (numpy and PIL only), so the decoding processes start light.

Usage::

    cache = ImageCache.for_files(paths, side=32, folder=root / "train", whole=True)
    images = cache.load()                     # None when absent, partial or damaged
    if images is None:
        images = cache.build(log=print, stop=stop_event, what="training images")
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import signal
import time
import zlib
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from kdtui.errors import DataError

MAGIC = b"KDTUIU8\x01"
CHUNK = 256               # images per task of a decoding process
PROGRESS_EVERY_S = 5.0    # at most one progress line this often


def cache_root() -> Path:
    """$KDTUI_CACHE_DIR, else $XDG_CACHE_HOME/kdtui/images, else ~/.cache/kdtui/images."""
    if os.environ.get("KDTUI_CACHE_DIR"):
        return Path(os.environ["KDTUI_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "kdtui" / "images"


class MixedSizes(Exception):
    """An image that is not ``side``×``side``: the folder cannot be cached without resizing."""

    def __init__(self, path: str, size: tuple[int, int], side: int) -> None:
        super().__init__(f"{path} is {size[0]}×{size[1]}, not {side}×{side}")
        self.path, self.size, self.side = path, tuple(size), side


def ignore_stop_signals() -> None:
    """For helper processes (decoding, DataLoader workers): a SIGTERM or Ctrl-C sent to the
    whole process group is for the trainer, which then stops them itself; a helper killed
    by it would turn a clean stop into a crash ("DataLoader worker killed")."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _decode_chunk(paths: list[str], side: int) -> np.ndarray | tuple[str, tuple[int, int]]:
    """The images as len(paths)×3×side×side uint8, or (path, size) of the first of another size."""
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(paths), 3, side, side), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                if image.size != (side, side):
                    return path, image.size
                out[i] = np.asarray(image.convert("RGB")).transpose(2, 0, 1)
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"Cannot read the image {path} ({exc}); remove or replace it.") from None
    return out


def decoding_processes() -> int:
    """One per usable core, at most 16 (decoding small files soon waits on the disk)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, 16))


@dataclass(frozen=True)
class ImageCache:
    paths: tuple[str, ...]
    side: int
    file: Path
    # The folder's tag, which starts the file name; set when the cache holds all of the
    # folder's images, so that its file replaces older caches of the same folder.
    replaces: str | None

    @classmethod
    def for_files(cls, paths: list[Path], side: int, folder: Path, whole: bool) -> "ImageCache":
        """The cache of ``paths`` (images of ``folder``; all of them if ``whole``) at ``side``×``side``."""
        digest = hashlib.sha256(f"{MAGIC!r} {side}\n".encode())
        for path in paths:
            stat = path.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        readable = re.sub(r"[^A-Za-z0-9_.]", "_", folder.name)[:40]
        tag = f"{readable}_{hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]}_"
        name = f"{tag}{'all' if whole else 'subset'}{len(paths)}_{digest.hexdigest()[:24]}.u8"
        return cls(tuple(str(p) for p in paths), side, cache_root() / name, tag if whole else None)

    @property
    def key(self) -> str:
        return self.file.stem

    @property
    def mixed_marker(self) -> Path:
        return self.file.with_suffix(".mixed")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), 3, self.side, self.side)

    def known_mixed(self) -> MixedSizes | None:
        """A previous build's finding that these files are not all side×side, if any."""
        try:
            found = json.loads(self.mixed_marker.read_text())
            return MixedSizes(found["path"], tuple(found["size"]), self.side)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def load(self) -> np.ndarray | None:
        """The cached images, or None when the file is missing, partial, damaged or not this key's."""
        try:
            with self.file.open("rb") as f:
                if f.read(len(MAGIC)) != MAGIC:
                    return None
                header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
                if not isinstance(header, dict) or header.get("key") != self.key or tuple(header.get("shape", ())) != self.shape:
                    return None
                pixels = np.fromfile(f, dtype=np.uint8)
        except (OSError, ValueError):
            return None
        if pixels.size != int(np.prod(self.shape)) or zlib.crc32(pixels) != header.get("crc32"):
            return None
        return pixels.reshape(self.shape)

    def build(self, log: Callable[[str], None], stop: Callable[[], bool] | None = None,
              what: str = "images") -> np.ndarray | None:
        """Decode every image in parallel, write the cache file and return the images; None if
        ``stop()`` became true first. Raises MixedSizes (and remembers it) on an image of another size."""
        images = np.empty(self.shape, dtype=np.uint8)
        total, done, started = len(self.paths), 0, time.monotonic()
        last_report = started
        log(f"decoding {total:,} {what} into the cache {self.file} (once; later runs load it in seconds)")
        with ProcessPoolExecutor(decoding_processes(), initializer=ignore_stop_signals) as pool:
            futures: list[Future] = [pool.submit(_decode_chunk, list(self.paths[i:i + CHUNK]), self.side)
                                     for i in range(0, total, CHUNK)]
            try:
                for number, future in enumerate(futures):
                    result = future.result()
                    if isinstance(result, tuple):
                        raise MixedSizes(result[0], result[1], self.side)
                    images[number * CHUNK:number * CHUNK + len(result)] = result
                    done += len(result)
                    if stop is not None and stop():
                        log(f"stopped decoding {what} at {done:,}/{total:,}; the cache was not written")
                        return None
                    now = time.monotonic()
                    if now - last_report >= PROGRESS_EVERY_S and done < total:
                        left = (now - started) / done * (total - done)
                        log(f"decoding {what}: {done:,}/{total:,} ({100 * done / total:.0f} %), "
                            f"about {left:.0f} s left")
                        last_report = now
            except MixedSizes as mixed:
                self._remember_mixed(mixed)
                raise
            finally:
                for future in futures:
                    future.cancel()
        log(f"decoded {total:,} {what} in {time.monotonic() - started:.1f} s")
        try:
            self._write(images)
        except OSError as exc:  # a full or read-only disk costs the next start, not this run
            log(f"could not write the cache {self.file} ({exc.strerror or exc}); the next run decodes "
                "again. Set KDTUI_CACHE_DIR to a writable folder with room.")
        return images

    def _write(self, images: np.ndarray) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        header = json.dumps({"key": self.key, "shape": list(images.shape),
                             "crc32": zlib.crc32(images)}).encode()
        temporary = self.file.with_name(f".{self.file.name}.{os.getpid()}.tmp")
        with temporary.open("wb") as f:
            f.write(MAGIC + len(header).to_bytes(8, "little") + header)
            f.write(memoryview(images).cast("B"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.file)  # atomic: readers see no file or a whole one
        self._remove_replaced()

    def _remember_mixed(self, mixed: MixedSizes) -> None:
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            self.mixed_marker.write_text(json.dumps({"path": mixed.path, "size": list(mixed.size)}))
            self._remove_replaced()
        except OSError:
            pass  # only a shortcut for the next run

    def _remove_replaced(self) -> None:
        """Whole-folder caches and markers of the same folder under another key (its files
        have changed since). Subset caches are kept: another subset is not a change."""
        if self.replaces is None:
            return
        for old in self.file.parent.glob(f"{glob.escape(self.replaces)}all*"):
            if old.stem != self.key and old.suffix in (".u8", ".mixed"):
                old.unlink(missing_ok=True)
