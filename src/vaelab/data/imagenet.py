"""ImageNet downsampled to 32x32 and 64x64: two different datasets under similar names.

- ``imagenet32``, ``imagenet64``: van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel
  Recurrent Neural Networks". ``train_32x32.tar`` and ``valid_32x32.tar`` (``_64x64`` for
  64 px) from ``image-net.org/small/``, each a folder of PNGs (``train_32x32/*.png``), no
  labels. Splits ``train`` and ``valid`` (the official validation set, on which VDVAE, NVAE
  and Glow report). VDVAE also holds 5,000 training images out (seed 42) for validation
  during training, in the order ``glob`` listed its files (not reproducible); vaelab's
  ``train`` is every training image.
- ``imagenet32-chrabaszcz``, ``imagenet64-chrabaszcz``: Chrabaszcz, Loshchilov & Hutter
  2017, "A Downsampled Variant of ImageNet as an Alternative to the CIFAR datasets".
  ``Imagenet32_train_npz.zip`` (64 px: ``Imagenet64_train_part1_npz.zip`` and
  ``..._part2_npz.zip``) and ``Imagenet32_val_npz.zip`` hold npz batches
  (``train_data_batch_1.npz`` ..., ``val_data.npz``) with ``data``, uint8 ``[N, 3*S*S]``,
  one image per row flattened channel-first (S*S red values row by row, then green, then
  blue), and ``labels``, the classes 1..1000. **vaelab stores labels 0-based** (label =
  class - 1). Splits ``train`` and ``val``. Used by Efficient-VDVAE.

The two versions were downsampled by different pipelines, so **bits/dim on one are not
comparable with bits/dim on the other** (``specs/datasets.md`` §2.6): say which you used.

Unverified: the image counts (1,281,167 train / 50,000 val are expected for Chrabaszcz) and
the URLs (image-net.org has asked users to log in for these files; no checksums are
published). The readers take the files they find and report how many images they hold; a
file that cannot be downloaded is placed by hand where the error message says.

1.28 M images are never held as float, nor whole in memory: they are written once, a block
of rows at a time, into ``<name>-<split>.npy`` (``uint8 [N, 3, S, S]``: 3.9 GB for 32 px
train, 15.7 GB for 64 px) beside the source files, which later starts memory-map; the
Chrabaszcz labels go to ``<name>-<split>-labels.npy``. The van den Oord tar is read member by
member at its offsets (listing its 1.28 M headers takes a minute and, while it lasts, about
0.5 GB for Python's member list); the Chrabaszcz batches are streamed about 50 MB of rows at a
time, also from inside the zips. A cache is tied to the names and sizes of its source
archives, their sizes and modification times (of an extracted folder, its modification
time) by a ``.source`` stamp (:func:`vaelab.data.images.stamped_cache`), so replacing or
touching a source rebuilds it.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

import numpy as np

from vaelab.data.arrays import BLOCK, npy_header, npz_array, read_exactly
from vaelab.data.base import DataError, ImageDataset
from vaelab.data.download import RemoteFile, dataset_folder, ensure_file
from vaelab.data.images import (
    FileTree,
    ImageSource,
    Reader,
    cached_array,
    cached_images,
    decode_exact,
    file_entries,
    fingerprint,
    stamped_cache,
)
from vaelab.registry import DATASETS
from vaelab.rundir import atomic_write_with

_UNVERIFIED = (
    "URL and availability unverified (image-net.org asks users to log in for the "
    "downsampled files) and no checksum is published: if the download fails, download it by "
    "hand from https://image-net.org/download-images and place it here"
)
OORD = {
    (size, split): RemoteFile(
        f"{split}_{size}x{size}.tar",
        f"http://image-net.org/small/{split}_{size}x{size}.tar",
        note=f"{_UNVERIFIED}; an extracted {split}_{size}x{size}/ folder of PNGs works too",
    )
    for size in (32, 64)
    for split in ("train", "valid")
}


def _npz_zip(name: str) -> RemoteFile:
    url = f"https://image-net.org/data/downsample/{name}"
    folder = name.removesuffix(".zip")
    return RemoteFile(name, url, note=f"{_UNVERIFIED}; an extracted {folder}/ folder works too")


CHRABASZCZ = {
    (32, "train"): (_npz_zip("Imagenet32_train_npz.zip"),),
    (32, "val"): (_npz_zip("Imagenet32_val_npz.zip"),),
    (64, "train"): (
        _npz_zip("Imagenet64_train_part1_npz.zip"),
        _npz_zip("Imagenet64_train_part2_npz.zip"),
    ),
    (64, "val"): (_npz_zip("Imagenet64_val_npz.zip"),),
}
NUM_CLASSES = 1000
_BATCH = "a batch holds 'data' and 'labels'"  # for messages


# -- van den Oord: PNGs in a tar ------------------------------------------------------------
class _PngTar(ImageSource):
    """The PNGs of an uncompressed tar, read at their offsets in the file."""

    def __init__(self, location: Path):
        self.location = location
        found = []
        try:
            with tarfile.open(location, "r:") as tar:
                for member in tar:
                    if member.isreg() and not member.issparse() and member.name.endswith(".png"):
                        found.append((member.name, member.offset_data, member.size))
        except (tarfile.TarError, EOFError, OSError) as err:
            raise DataError(
                f"{location}: cannot read the tar ({type(err).__name__}: {err}); an "
                "uncompressed tar is expected, and it may be truncated or corrupt"
            ) from None
        if not found:
            raise DataError(f"{location}: no PNG images in the tar")
        found.sort()
        self.names = [name for name, _, _ in found]
        self._spans = np.array([span for _, *span in found], dtype=np.int64)  # [N, 2]

    @contextlib.contextmanager
    def _open_archive(self) -> Iterator[Reader]:
        with open(self.location, "rb") as handle:

            def read(name: str) -> bytes:
                offset, size = self._spans[bisect.bisect_left(self.names, name)]
                handle.seek(int(offset))
                data = handle.read(int(size))
                if len(data) != size:
                    raise DataError(f"{self.location}: {name} is cut short; truncated tar?")
                return data

            yield read


def _oord_source(
    root: str | Path | None, path: str | Path | None, download: bool, size: int, split: str
) -> Path:
    """The tar or the extracted folder of PNGs of one split."""
    remote = OORD[size, split]
    folder_name = remote.name.removesuffix(".tar")
    other = OORD[size, "valid" if split == "train" else "train"].name
    if path is not None and Path(path).name in (other, other.removesuffix(".tar")):
        raise DataError(
            f"{path} holds the other split of imagenet{size}; for split {split!r} point "
            f"path at {remote.name} or at the folder that holds both"
        )
    if path is None:
        base = dataset_folder(f"imagenet{size}", root)
        if (base / folder_name).is_dir():
            return base / folder_name
        return ensure_file(remote, base, download=download)
    path = Path(path)
    if (path / remote.name).is_file():
        return path / remote.name
    if (path / folder_name).is_dir():
        return path / folder_name
    if path.is_file() or (path.is_dir() and _holds_png(path)):
        return path
    raise DataError(
        f"{path}: no {split} images of imagenet{size}; expected {remote.name}, an extracted "
        f"{folder_name}/ folder of PNGs, or a folder holding either"
    )


def _holds_png(folder: Path) -> bool:
    """Whether a folder holds a PNG (stops at the first: the folder may hold 1.28 M files)."""
    with os.scandir(folder) as entries:
        return any(entry.name.endswith(".png") for entry in entries)


def load_oord(
    size: int, root: str | Path | None, split: str, path: str | Path | None, download: bool
) -> ImageDataset:
    """``split`` of the van den Oord ImageNet at ``size`` px, through its cache."""
    name = f"imagenet{size}"
    location = _oord_source(root, path, download, size, split)
    if location.is_dir():  # an extracted folder: recognised by its modification time
        stamp = fingerprint([(location.name, 0, location.stat().st_mtime_ns)])
    else:
        stamp = fingerprint(file_entries([location]))
    cache = location.parent / f"{name}-{split}.npy"

    def build() -> np.memmap:
        if location.is_dir():
            source = FileTree(location, lambda n: n.endswith(".png"), "PNG images")
        else:
            source = _PngTar(location)
        decode = functools.partial(decode_exact, size=size)
        return cached_images(cache, source.names, source.open, decode, (3, size, size), location)

    images = stamped_cache(cache, stamp, build)
    return ImageDataset(name=name, images=images, split=split, files=[location])


# -- Chrabaszcz et al.: npz batches -----------------------------------------------------------
def _chrabaszcz_sources(
    root: str | Path | None, path: str | Path | None, download: bool, size: int, split: str
) -> list[Path]:
    """The zips (or extracted folders, or npz files) that hold the batches of ``split``."""
    remotes = CHRABASZCZ[size, split]
    if path is None:
        base = dataset_folder(f"imagenet{size}-chrabaszcz", root)
        found = []
        for remote in remotes:
            folder = base / remote.name.removesuffix(".zip")
            found.append(
                folder if folder.is_dir() else ensure_file(remote, base, download=download)
            )
        return found
    path = Path(path)
    if path.is_dir():
        listed = []
        for remote in remotes:
            for candidate in (path / remote.name, path / remote.name.removesuffix(".zip")):
                if candidate.exists():
                    listed.append(candidate)
                    break
        if len(listed) == len(remotes):
            return listed
    if path.exists():
        return [path]
    raise DataError(f"{path}: no such file or folder")


def _natural(name: str) -> list:
    """Sort key that puts ``batch_10`` after ``batch_9``."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", PurePosixPath(name).name)]


def _batches(sources: list[Path], split: str) -> list[tuple[Path, str | None, Path]]:
    """``(file, zip member or None, name for messages)`` of every npz batch, in batch order."""
    prefix = "train" if split == "train" else "val"

    def keep(name: str) -> bool:
        return name.endswith(".npz") and PurePosixPath(name).name.startswith(prefix)

    found = []
    for source in sources:
        if source.is_file() and source.suffix == ".npz":
            found.append((source, None, source))
            continue
        tree = FileTree(source, keep, f"{prefix}*.npz batches")
        for name in tree.names:
            if source.is_dir():
                found.append((source / name, None, source / name))
            else:
                found.append((source, tree.members[name], source / tree.members[name]))
    return sorted(found, key=lambda batch: _natural(str(batch[2])))


def _data_rows(stream: IO[bytes], size: int, where: Path) -> int:
    """Check the header of a batch's ``data`` and return its number of images."""
    shape, fortran, dtype = npy_header(stream, where)
    row = 3 * size * size
    if dtype != np.uint8 or len(shape) != 2 or shape[1] != row or fortran:
        raise DataError(
            f"{where}: 'data' must be uint8 [N, {row}] (3x{size}x{size} flattened, C order), "
            f"got {dtype} {list(shape)}{' in Fortran order' if fortran else ''}; is it a "
            "batch of the other image size?"
        )
    return int(shape[0])


def _read_labels(file: Path, member: str | None, where: Path, count: int) -> np.ndarray:
    """A batch's ``labels`` (classes 1..1000) as 0-based ``int64``."""
    with npz_array(file, "labels", _BATCH, where, member) as stream:
        try:
            labels = np.lib.format.read_array(stream, allow_pickle=False)
        except ValueError as err:
            raise DataError(f"{where}: cannot read 'labels' ({err})") from None
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{where}: 'labels' must be {count} integers (one per image), got "
            f"{labels.dtype} {list(labels.shape)}"
        )
    if count and (labels.min() < 1 or labels.max() > NUM_CLASSES):
        raise DataError(f"{where}: 'labels' has values outside 1..{NUM_CLASSES}")
    return labels.astype(np.int64) - 1


def _build_chrabaszcz(
    batches: list[tuple[Path, str | None, Path]], size: int, cache: Path, labels_path: Path
) -> np.memmap:
    """Write the labels, then the images, one batch and one block of rows at a time."""
    from tqdm import tqdm

    counts, labels = [], []
    for file, member, where in batches:
        with npz_array(file, "data", _BATCH, where, member) as stream:
            counts.append(_data_rows(stream, size, where))
        labels.append(_read_labels(file, member, where, counts[-1]))
    atomic_write_with(labels_path, lambda tmp: np.save(tmp, np.concatenate(labels)))

    def fill(out: np.ndarray) -> None:
        start = 0
        with tqdm(
            total=len(out), desc=cache.name, unit="img", unit_scale=True, disable=None
        ) as bar:
            for (file, member, where), count in zip(batches, counts, strict=True):
                with npz_array(file, "data", _BATCH, where, member) as stream:
                    _data_rows(stream, size, where)
                    for offset in range(0, count, BLOCK):
                        n = min(BLOCK, count - offset)
                        rows = read_exactly(stream, n, (3, size, size), np.uint8, where)
                        out[start + offset : start + offset + n] = rows
                        bar.update(n)
                start += count

    return cached_array(cache, (sum(counts), 3, size, size), fill, batches[0][0])


def load_chrabaszcz(
    size: int, root: str | Path | None, split: str, path: str | Path | None, download: bool
) -> ImageDataset:
    """``split`` of Chrabaszcz et al.'s ImageNet at ``size`` px, through its cache."""
    name = f"imagenet{size}-chrabaszcz"
    sources = _chrabaszcz_sources(root, path, download, size, split)
    entries = []
    for source in sources:
        if source.is_dir():
            entries += FileTree(source, lambda n: n.endswith(".npz"), "npz batches").entries
        else:
            entries += file_entries([source])
    base = sources[0].parent
    cache, labels_path = base / f"{name}-{split}.npy", base / f"{name}-{split}-labels.npy"
    images = stamped_cache(
        cache,
        fingerprint(entries),
        lambda: _build_chrabaszcz(_batches(sources, split), size, cache, labels_path),
        extra=(labels_path,),
    )
    labels = np.load(labels_path, allow_pickle=False)
    if labels.shape != (len(images),):
        raise DataError(
            f"{labels_path} holds {labels.shape} labels for the {len(images)} images of {cache}; "
            "delete both to build them again"
        )
    return ImageDataset(name=name, images=images, split=split, labels=labels, files=sources)


# -- the four datasets --------------------------------------------------------------------
def _register(
    name: str,
    summary: str,
    splits: tuple[str, str],
    files: Callable[[str], list[RemoteFile]],
    size: int,
    read: Callable[..., ImageDataset],
) -> None:
    """Register ``name``, read by ``read(size, root, split, path, download)``."""

    @DATASETS.register(
        name, summary, splits=splits, files=files, folder=name, image_shape=(3, size, size)
    )
    def load(
        root: str | Path | None = None,
        split: str = "train",
        path: str | Path | None = None,
        download: bool = True,
    ) -> ImageDataset:
        """The dataset from ``path`` or ``<root>/<name>/`` (module docstring)."""
        if split not in splits:
            raise DataError(f"{name} has no split {split!r}; splits: {', '.join(splits)}")
        return read(size, root, split, path, download)


for _size in (32, 64):
    _register(
        f"imagenet{_size}",
        f"ImageNet {_size}x{_size} of van den Oord et al. 2016 (PixelRNN; VDVAE, NVAE, Glow), "
        "no labels; bits/dim not comparable with -chrabaszcz",
        ("train", "valid"),
        lambda split, size=_size: [OORD[size, split]],
        _size,
        load_oord,
    )
    _register(
        f"imagenet{_size}-chrabaszcz",
        f"ImageNet {_size}x{_size} of Chrabaszcz et al. 2017 (Efficient-VDVAE), 1000 classes "
        "(0-based); bits/dim not comparable with van den Oord's",
        ("train", "val"),
        lambda split, size=_size: list(CHRABASZCZ[size, split]),
        _size,
        load_chrabaszcz,
    )
