"""SmallNORB (LeCun, Huang & Bottou 2004): toys photographed by a stereo camera pair.

Each official split is three files, ``smallnorb-<layout>-<training|testing>-<kind>.mat.gz``
(read gzipped or plain ``.mat``), in the NORB binary matrix format: little-endian int32 magic
(0x1E3D4C55 unsigned byte, 0x1E3D4C54 int32, 0x1E3D4C56 int16, 0x1E3D4C51 float32,
0x1E3D4C53 float64), int32 ``ndim``, ``max(3, ndim)`` int32 sizes (the first ``ndim`` used),
then the data, last index fastest. ``dat`` is ``[24300, 2, 96, 96]`` unsigned bytes (the
two cameras; disentanglement_lib reads them as int8, which is wrong), ``cat`` ``[24300]``
the category, ``info`` ``[24300, 4]`` instance, elevation, azimuth (0, 2, ..., 34) and
lighting.

Factors (5, last fastest): category 5, instance 10, elevation 9, azimuth 18 (the stored value
halved), lighting 6. The training split holds instances 4, 6, 7, 8, 9 of every category and
the test split 0, 1, 2, 3, 5 (24,300 images each, partial grids); ``all`` is both, training
first (48,600 images, the complete grid), as disentanglement_lib uses it. disentanglement_lib
scores only category, elevation, azimuth and lighting and treats the instance as a nuisance
drawn at random: give metrics ``factors: [category, elevation, azimuth, lighting]`` on split
``all`` for its protocol (the instance is then sampled uniformly, as there).

Images: camera 0 (option ``camera``), resized from 96x96 to 64x64 with Pillow's ``lanczos``
filter (``Image.ANTIALIAS``, as disentanglement_lib), grey ``[1, 64, 64]``. Each split's
images are resized once into ``smallnorb-<training|testing>-cam<c>-<size>px-<resample>.npy``
beside the data (atomically) and memory-mapped later; ``all`` joins the two in memory
(199 MB at 64x64).
"""

from __future__ import annotations

import contextlib
import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from vaelab.data.arrays import read_exactly, resize_pixels
from vaelab.data.base import DataError, GroundTruthDataset
from vaelab.data.download import RemoteFile, dataset_folder, ensure_file
from vaelab.data.images import RESAMPLE, cached_array, check_choice, check_size
from vaelab.registry import DATASETS

_URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
PARTS = {
    "train": ("smallnorb-5x46789x9x18x6x2x96x96-training", "training"),
    "test": ("smallnorb-5x01235x9x18x6x2x96x96-testing", "testing"),
}
_MD5 = {  # of the .mat.gz files (disent)
    ("train", "dat"): "66054832f9accfe74a0f4c36a75bc0a2",
    ("train", "cat"): "23c8b86101fbf0904a000b43d3ed2fd9",
    ("train", "info"): "51dee1210a742582ff607dfd94e332e3",
    ("test", "dat"): "e4ad715691ed5a3a5f138751a4ceb071",
    ("test", "cat"): "5aa791cd7e6016cf957ce9bdb93b8603",
    ("test", "info"): "a9454f3864d7fd4bb3ea7fc3eb84924e",
}
KINDS = ("dat", "cat", "info")
FILES = {
    (part, kind): RemoteFile(
        f"{PARTS[part][0]}-{kind}.mat.gz", f"{_URL}{PARTS[part][0]}-{kind}.mat.gz", md5=md5
    )
    for (part, kind), md5 in _MD5.items()
}
SPLITS = ("train", "test", "all")
FACTOR_NAMES = ("category", "instance", "elevation", "azimuth", "lighting")
FACTOR_SIZES = (5, 10, 9, 18, 6)
MAGIC = {
    0x1E3D4C55: np.dtype(np.uint8),
    0x1E3D4C54: np.dtype("<i4"),
    0x1E3D4C56: np.dtype("<i2"),
    0x1E3D4C51: np.dtype("<f4"),
    0x1E3D4C53: np.dtype("<f8"),
}
BLOCK = 1024  # stereo pairs read at a time (18 MiB)


@contextlib.contextmanager
def open_matrix(path: Path) -> Iterator[tuple[np.dtype, tuple[int, ...], IO[bytes]]]:
    """A NORB binary matrix (gzipped or not): ``(dtype, shape, stream at the data)``."""
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw) if gzipped else contextlib.nullcontext(raw) as stream:
                yield (*_read_header(stream, path), stream)
    except FileNotFoundError:
        raise DataError(f"SmallNORB file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"{path}: cannot read the matrix ({type(err).__name__}: {err}); the file is "
            "truncated or corrupt, delete it and download it again"
        ) from None


def _read_header(stream: IO[bytes], path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    head = stream.read(8)
    magic, ndim = np.frombuffer(head, "<i4") if len(head) == 8 else (None, None)
    if magic not in MAGIC or not 1 <= ndim <= 8:
        raise DataError(
            f"{path}: not a NORB binary matrix (header {head.hex() or 'empty'}; expected a "
            f"magic number among {', '.join(hex(m) for m in MAGIC)} and 1..8 dimensions)"
        )
    sizes = read_exactly(stream, 1, (max(3, int(ndim)),), np.dtype("<i4"), path)[0]
    return MAGIC[int(magic)], tuple(int(s) for s in sizes[:ndim])


def read_matrix(path: str | Path) -> np.ndarray:
    """A whole NORB binary matrix (for the small ``cat`` and ``info`` files)."""
    path = Path(path)
    with open_matrix(path) as (dtype, shape, stream):
        data = read_exactly(stream, 1, shape, dtype, path)[0]
        if stream.read(1):
            raise DataError(f"{path}: more data than the header's shape {list(shape)}")
    return data


def read_labels(cat_path: Path, info_path: Path, count: int) -> np.ndarray:
    """Factor classes ``[count, 5]`` from a split's ``cat`` and ``info`` matrices."""
    category, info = read_matrix(cat_path), read_matrix(info_path)
    if category.shape != (count,) or not np.issubdtype(category.dtype, np.integer):
        raise DataError(
            f"{cat_path}: expected {count} integer categories, got {category.dtype} "
            f"{list(category.shape)}"
        )
    if info.shape != (count, 4) or not np.issubdtype(info.dtype, np.integer):
        raise DataError(
            f"{info_path}: expected integers [{count}, 4], got {info.dtype} {list(info.shape)}"
        )
    if (info[:, 2] % 2).any():
        raise DataError(f"{info_path}: azimuths must be even (0, 2, ..., 34)")
    factors = np.column_stack([category, info[:, 0], info[:, 1], info[:, 2] // 2, info[:, 3]])
    bad = ((factors < 0) | (factors >= np.array(FACTOR_SIZES))).any(axis=0)
    if bad.any():
        k = int(np.argmax(bad))
        where = cat_path if k == 0 else info_path
        raise DataError(
            f"{where}: {FACTOR_NAMES[k]} outside 0..{FACTOR_SIZES[k] - 1}"
            + (" (after halving the azimuth)" if FACTOR_NAMES[k] == "azimuth" else "")
        )
    return factors.astype(np.int64)


def _fill_images(out: np.ndarray, dat: Path, camera: int, size: int, resample: str) -> None:
    from tqdm import tqdm

    with open_matrix(dat) as (dtype, shape, stream):
        if dtype != np.uint8 or len(shape) != 4 or shape[0] != len(out) or shape[1] != 2:
            raise DataError(
                f"{dat}: expected unsigned bytes [{len(out)}, 2, H, W] (magic 0x1e3d4c55), got "
                f"{dtype} {list(shape)}"
            )
        with tqdm(total=len(out), desc=f"resizing {dat.name}", unit="img", disable=None) as bar:
            for start in range(0, len(out), BLOCK):
                pairs = read_exactly(stream, min(BLOCK, len(out) - start), shape[1:], dtype, dat)
                for offset, pixels in enumerate(pairs[:, camera]):
                    out[start + offset] = resize_pixels(pixels, size, resample)
                bar.update(len(pairs))


def read_part(
    files: dict[str, Path], part: str, cache_folder: Path, camera: int, size: int, resample: str
) -> tuple[np.ndarray, np.ndarray]:
    """Images (memory-mapped cache) and factors of one official split."""
    with open_matrix(files["dat"]) as (_, shape, _stream):
        count = shape[0]
    factors = read_labels(files["cat"], files["info"], count)
    cache = cache_folder / f"smallnorb-{PARTS[part][1]}-cam{camera}-{size}px-{resample}.npy"
    images = cached_array(
        cache,
        (count, 1, size, size),
        lambda out: _fill_images(out, files["dat"], camera, size, resample),
        files["dat"],
    )
    return images, factors


def _locate(
    part: str, root: str | Path | None, path: str | Path | None, download: bool
) -> tuple[dict[str, Path], Path]:
    """The ``dat``, ``cat`` and ``info`` files of ``part`` (gzipped, or plain ``.mat``)."""
    folder = dataset_folder("smallnorb", root) if path is None else Path(path)
    if path is not None and not folder.is_dir():
        raise DataError(f"{folder}: expected a folder holding the SmallNORB .mat(.gz) files")
    found = {}
    for kind in KINDS:
        file = FILES[part, kind]
        plain = folder / file.name.removesuffix(".gz")
        if plain.is_file() and not (folder / file.name).is_file():
            found[kind] = plain  # disentanglement_lib's layout: gunzipped, read as is
        elif path is not None and not (folder / file.name).is_file():
            raise DataError(f"{folder}: no {file.name} (or {plain.name})")
        else:
            found[kind] = ensure_file(file, folder, download=download, verify=path is None)
    return found, folder


@DATASETS.register(
    "smallnorb",
    "SmallNORB toys, 48,600 grey 96->64x64 images, 5 factors incl. instance (dlib: split all)",
    splits=SPLITS,
    files=lambda split: [
        FILES[part, kind] for part in PARTS if split in (part, "all") for kind in KINDS
    ],
    folder="smallnorb",
    image_shape=(1, 64, 64),
)
def load_smallnorb(
    root: str | Path | None = None,
    split: str = "train",
    path: str | Path | None = None,
    download: bool = True,
    camera: int = 0,
    size: int = 64,
    resample: str = "lanczos",
) -> GroundTruthDataset:
    """SmallNORB from ``path`` (a folder of the official files) or ``<root>/smallnorb/``:
    ``train`` and ``test`` are the official halves, ``all`` both (disentanglement_lib);
    ``camera`` 0 or 1, ``size`` and Pillow ``resample`` filter (module docstring)."""
    if split not in SPLITS:
        raise DataError(f"smallnorb has no split {split!r}; splits: {', '.join(SPLITS)}")
    check_choice("smallnorb", "camera", camera, (0, 1))
    size = check_size("smallnorb", size)
    check_choice("smallnorb", "resample", resample, RESAMPLE)
    images, factors, files = [], [], []
    for part in PARTS:
        if split in (part, "all"):
            found, folder = _locate(part, root, path, download)
            part_images, part_factors = read_part(found, part, folder, camera, size, resample)
            images.append(part_images)
            factors.append(part_factors)
            files.extend(found.values())
    return GroundTruthDataset(
        name="smallnorb",
        images=images[0] if len(images) == 1 else np.concatenate(images),
        split=split,
        factors=np.concatenate(factors),
        factor_names=FACTOR_NAMES,
        factor_sizes=FACTOR_SIZES,
        files=files,
    )
