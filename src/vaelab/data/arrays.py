"""Helpers shared by the ground-truth readers that build their images from arrays.

3D Shapes and MPI3D store channel-last images ``[N, H, W, C]`` (5.9 and 12.7 GB as uint8);
:func:`copy_channels_first` copies them, a block of rows at a time, into the channel-first
cache that :func:`vaelab.data.images.cached_array` builds. SmallNORB and Cars3D store larger
images than the 64x64 the references train on; :func:`resize_pixels` shrinks one with Pillow.
:func:`read_exactly` reads the next rows of an array from any binary stream (a file, a zip
member, a gzip stream), so that no reader needs a whole file in memory; :func:`npy_header`
reads the header of a ``.npy`` stream first, and :func:`npz_array` opens one array of an
npz (or of an npz inside a zip) as such a stream.
"""

from __future__ import annotations

import contextlib
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from vaelab.data.base import DataError

BLOCK = 4096  # rows per block: 48 MiB of 64x64x3 images


def grid_factors(sizes: tuple[int, ...]) -> np.ndarray:
    """The factor classes ``[N, K]`` of a complete grid stored in order, the last factor
    varying fastest (``specs/datasets.md`` §1)."""
    count = int(np.prod(sizes))
    return np.stack(np.unravel_index(np.arange(count), sizes), axis=1).astype(np.int64)


def copy_channels_first(
    out: np.ndarray,
    read_rows: Callable[[int, int], np.ndarray],
    desc: str,
    block: int | None = None,
) -> None:
    """Fill ``out`` ``[N, C, H, W]`` with ``read_rows(start, stop)`` ``[stop - start, H, W, C]``,
    in order, ``block`` rows (default :data:`BLOCK`) at a time, with a progress bar; only one
    block is in memory at a time."""
    from tqdm import tqdm

    block = block or BLOCK
    total = len(out)
    with tqdm(total=total, desc=desc, unit="img", unit_scale=True, disable=None) as bar:
        for start in range(0, total, block):
            stop = min(start + block, total)
            out[start:stop] = read_rows(start, stop).transpose(0, 3, 1, 2)
            bar.update(stop - start)


def resize_pixels(pixels: np.ndarray, size: int, resample: str) -> np.ndarray:
    """``uint8 [H, W]`` or ``[H, W, C]`` -> ``uint8 [C, size, size]``, with the Pillow
    ``resample`` filter (``lanczos`` is ``Image.ANTIALIAS``, which the references use)."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(pixels))
    if image.size != (size, size):
        image = image.resize((size, size), getattr(Image.Resampling, resample.upper()))
    out = np.asarray(image, dtype=np.uint8)
    return out[None] if out.ndim == 2 else out.transpose(2, 0, 1)


def read_exactly(
    stream: IO[bytes], count: int, row_shape: tuple[int, ...], dtype: np.dtype, where: Path
) -> np.ndarray:
    """The next ``count`` rows ``[count, *row_shape]`` of ``dtype`` from a binary stream
    (a file, a zip member, a gzip stream); :class:`DataError` naming ``where`` if it ends first."""
    want = count * int(np.prod(row_shape)) * np.dtype(dtype).itemsize
    data = bytearray()
    while len(data) < want:
        chunk = stream.read(want - len(data))
        if not chunk:
            raise DataError(
                f"{where}: the data ends {want - len(data)} bytes too early; the file is "
                "truncated, delete it and download it again"
            )
        data += chunk
    return np.frombuffer(data, dtype).reshape(count, *row_shape)


def npy_header(stream: IO[bytes], where: str | Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` from the header of a ``.npy`` stream, which is left
    at the first data byte; :class:`DataError` naming ``where`` if there is no valid header."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(stream)
        return np.lib.format.read_array_header_2_0(stream)
    except ValueError as err:
        raise DataError(f"{where}: no valid .npy header ({err})") from None


@contextlib.contextmanager
def npz_array(
    file: Path, key: str, holds: str, where: Path | None = None, member: str | None = None
) -> Iterator[IO[bytes]]:
    """A stream of the ``<key>.npy`` bytes of the npz ``file``, or of the npz that is its zip
    ``member`` (streamed, never extracted). ``holds`` says what the npz should hold and
    ``where`` (default ``file``) names it, for messages."""
    where = where or file
    try:
        with contextlib.ExitStack() as stack:
            handle: IO[bytes] | Path = file
            if member is not None:
                handle = stack.enter_context(
                    stack.enter_context(zipfile.ZipFile(file)).open(member)
                )
            npz = stack.enter_context(zipfile.ZipFile(handle))
            if f"{key}.npy" not in npz.namelist():
                found = [n.removesuffix(".npy") for n in npz.namelist()]
                raise DataError(f"{where}: no {key!r} array; {holds}, found {found}")
            yield stack.enter_context(npz.open(f"{key}.npy"))
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"{where}: not a readable npz file ({type(err).__name__}: {err}); it is truncated "
            "or corrupt, delete it and download it again"
        ) from None
