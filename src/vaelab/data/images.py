"""Image-file datasets: decode once into a cached ``uint8`` ``.npy``, then memory-map it.

CelebA (202,599 JPEGs) and 3D Chairs (86,366 PNGs) are too many files to decode at every
start. :func:`cached_images` decodes, crops and resizes every image of a source once, with
Pillow, into ``uint8 [N, C, S, S]``; the array is written to a temporary file and renamed
into place only when complete (an interrupted build leaves no cache behind), then opened
memory-mapped. A split is a contiguous run of rows (a memory map of just those rows) or, if
it is scattered, a copy of its rows in memory.

Resizing uses Pillow's filters, which widen their support when they shrink an image (so
"bilinear" is antialiased, as in torchvision's ``Resize`` on PIL images). The filter changes
pixel statistics, so it is part of the cache name and must be reported with results.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np

from vaelab.data.base import DataError
from vaelab.rundir import atomic_write_with

logger = logging.getLogger(__name__)

RESAMPLE = ("bilinear", "bicubic", "lanczos")
"""Pillow filters a dataset can be resized with (``lanczos`` is the old ``Image.ANTIALIAS``)."""

Box = tuple[int, int, int, int]
"""A crop box ``(left, top, right, bottom)`` in pixels, right and bottom exclusive (Pillow)."""

CHUNK = 512  # images decoded per batch of thread-pool work


class ImageSource:
    """Image files in a folder or in one archive: ``names`` (sorted) and ``open()``, a
    context giving a reader ``name -> bytes``. Subclasses list the files and implement
    :meth:`_open_archive`."""

    location: Path
    names: list[str]

    @contextlib.contextmanager
    def open(self) -> Iterator[Callable[[str], bytes]]:
        if self.location.is_dir():
            yield self._read_file
            return
        with self._open_archive() as read:
            yield read

    def _open_archive(self) -> AbstractContextManager[Callable[[str], bytes]]:
        raise NotImplementedError

    def _read_file(self, name: str) -> bytes:
        try:
            return (self.location / name).read_bytes()
        except OSError as err:
            raise DataError(f"cannot read {self.location / name}: {err}") from None


def check_choice(dataset: str, option: str, value: object, allowed: Sequence[object]) -> None:
    """Raise :class:`DataError` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        listed = ", ".join(repr(a) for a in allowed)
        raise DataError(
            f"dataset {dataset!r}: option {option} must be one of {listed}, got {value!r}"
        )


def check_size(dataset: str, size: object) -> int:
    """``size`` as a positive int, or :class:`DataError`."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DataError(
            f"dataset {dataset!r}: option size must be a positive integer, got {size!r}"
        )
    return size


def decode_image(data: bytes, box: Box | None, size: int, resample: str, mode: str) -> np.ndarray:
    """Encoded image bytes -> ``uint8 [C, size, size]``: crop to ``box``, resize, convert.

    ``mode`` is a Pillow mode, ``"RGB"`` (C = 3) or ``"L"`` (C = 1, ITU-R 601-2 luma:
    L = 0.299 R + 0.587 G + 0.114 B). Conversion comes last, as in the references, which
    resize colour images and convert them to grey when they are loaded.
    """
    from PIL import Image

    with Image.open(io.BytesIO(data)) as encoded:
        image = encoded.convert("RGB")  # decodes; palette and grey files become RGB
    if box is not None:
        width, height = image.size
        if box[2] > width or box[3] > height:
            raise ValueError(f"image is {width}x{height}, smaller than the crop box {box}")
        image = image.crop(box)
    if image.size != (size, size):
        filter_ = getattr(Image.Resampling, resample.upper())
        image = image.resize((size, size), resample=filter_)
    pixels = np.asarray(image.convert(mode), dtype=np.uint8)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


Reader = Callable[[str], bytes]
"""Encoded bytes of one image, by its name in the source."""


def cached_images(
    cache: Path,
    names: Sequence[str],
    open_source: Callable[[], AbstractContextManager[Reader]],
    decode: Callable[[bytes], np.ndarray],
    image_shape: tuple[int, int, int],
    source: Path,
) -> np.memmap:
    """The images ``names`` as a read-only memory map of ``cache``, building it if needed.

    ``open_source()`` is a context manager giving a :data:`Reader` (an open archive or
    folder); ``decode`` turns encoded bytes into ``uint8 image_shape``. An existing cache is
    used when its shape is ``[len(names), *image_shape]``; otherwise it is built again.
    ``source`` names the file or folder the images come from, for messages.
    """
    shape = (len(names), *image_shape)
    images = _open_npy(cache)
    if images is not None and images.shape == shape and images.dtype == np.uint8:
        return images
    if images is not None:
        logger.warning("%s holds %s, expected %s: building it again", cache, images.shape, shape)
        del images

    def fill(tmp: Path) -> None:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        with open_source() as read:
            _decode_all(out, names, read, decode, source)
        out.flush()

    logger.info("decoding %d images from %s into %s", len(names), source, cache)
    try:
        atomic_write_with(cache, fill)
    except OSError as err:
        raise DataError(
            f"cannot write the image cache {cache} ({err}); the folder must be writable "
            f"(or copy {source} to a writable data folder)"
        ) from None
    images = _open_npy(cache)
    if images is None:
        raise DataError(f"{cache}: the image cache just written cannot be read back")
    return images


def _decode_all(
    out: np.ndarray,
    names: Sequence[str],
    read: Reader,
    decode: Callable[[bytes], np.ndarray],
    source: Path,
) -> None:
    from tqdm import tqdm

    # Reading stays in this thread (tar and folder reads are sequential); Pillow releases
    # the GIL while it decodes and resizes, so decoding in threads uses every core.
    workers = max(1, min(8, os.cpu_count() or 1))
    with (
        ThreadPoolExecutor(workers) as pool,
        tqdm(total=len(names), desc=f"decoding {source.name}", unit="img", disable=None) as bar,
    ):
        for start in range(0, len(names), CHUNK):
            chunk = names[start : start + CHUNK]
            encoded = [read(name) for name in chunk]
            decoded = pool.map(lambda n, d: _decode_one(decode, n, d, source), chunk, encoded)
            for offset, pixels in enumerate(decoded):
                out[start + offset] = pixels
            bar.update(len(chunk))


def _decode_one(
    decode: Callable[[bytes], np.ndarray], name: str, data: bytes, source: Path
) -> np.ndarray:
    try:
        return decode(data)
    except Exception as err:  # Pillow raises many types for damaged files
        raise DataError(
            f"{source}: cannot decode {name} ({type(err).__name__}: {err}); the file is "
            "truncated or corrupt"
        ) from None


def _open_npy(path: Path) -> np.memmap | None:
    """``path`` memory-mapped read-only, or None when it is absent or not a whole ``.npy``."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None


def select_rows(images: np.memmap, rows: np.ndarray) -> np.ndarray:
    """``images[rows]``: a memory map of just those rows when they are contiguous and in
    order (what DataLoader workers can reopen by file name), else a copy in memory."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == len(images) and (rows == np.arange(len(images))).all():
        return images
    if len(rows) and (np.diff(rows) == 1).all():
        row_bytes = int(np.prod(images.shape[1:]))
        return np.memmap(
            images.filename,
            dtype=np.uint8,
            mode="r",
            offset=images.offset + int(rows[0]) * row_bytes,
            shape=(len(rows), *images.shape[1:]),
        )
    return np.asarray(images[rows])
