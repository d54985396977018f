"""FFHQ and CelebA-HQ: high-quality faces at 256x256 (or any ``size``), the 5-bit and 8-bit
likelihood benchmarks of NVAE, VDVAE and Efficient-VDVAE.

**FFHQ** (Karras, Laine & Aila 2019): 70,000 PNGs of 1024x1024, ``00000.png`` ...
``69999.png``. Read from, in this order of preference:

- ``ffhq-256.npy``, VDVAE's copy at 256 px (``uint8 [70000, 256, 256, 3]``, downsampled
  with torchvision's default bilinear ``Resize``, NVAE's function). It is used, and
  downloaded by default, when ``size`` is 256 and ``resample`` is ``bilinear``; its row
  ``i`` is taken to be ``i.png`` (unverified);
- ``images1024x1024/`` or ``images1024x1024.zip`` (the archive.org copy Efficient-VDVAE
  downloads, 89 GB, flat ``images1024x1024/NNNNN.png``; the official folders of
  ``NNNNN/NNNNN.png`` work too), or any folder of these PNGs.

Splits ``train``, ``valid`` and ``all``, by ``protocol``:

- ``vdvae256`` (default), VDVAE's FFHQ-256 split: the validation images are the last
  ``valid_size`` (7,000) of ``np.random.RandomState(seed).permutation(N)`` with ``seed`` 5,
  which is what VDVAE's ``np.random.seed(5); np.random.permutation(N)`` draws. With
  ``ffhq-256.npy`` this is VDVAE's split, bit for bit; from the PNGs the rows are in file
  number order, and that this is the row order of ``ffhq-256.npy`` is unverified. VDVAE has
  no test split (it reports on these 7,000).
- ``vdvae1024``, VDVAE's FFHQ-1024 split: files 00000-64999 train, 65000-69999 valid.

Efficient-VDVAE also holds out 7,000 images, but drew them unseeded (sklearn's ``shuffle``
without a ``random_state``), so its split cannot be reproduced.

**CelebA-HQ** (Karras, Aila, Laine & Lehtinen 2018): 30,000 images of 1024x1024, from
``data1024x1024.zip`` (the index-named build of suvojit-0x55aa/celebA-HQ-dataset-download
that Efficient-VDVAE fetches from Google Drive: a manual download), a ``data1024x1024/``
folder, or any folder of its images (PNG or JPEG, in sorted name order; the names in the
zip are unverified). Splits ``train``, ``valid``, ``all``: the last ``valid_size`` (3,000)
of a permutation seeded with ``seed`` (0) are held out, as for FFHQ. Efficient-VDVAE's
3,000 were drawn unseeded.

Images are resized with Pillow's ``resample`` filter, ``bilinear`` by default (what
torchvision's ``Resize`` does to PIL images, antialiased when it shrinks; the filter of
``ffhq-256.npy``). The filter changes pixel statistics: report it with results.

**5-bit and 8-bit variants are one dataset.** The images are stored with 8 bits; the bit
depth is reduced on the training device: ``--set data.bits=5`` keeps the top 5 bits of
every value (``v >> 3``, 32 levels), the quantisation of NVAE and VDVAE's 5-bit benchmarks
(``floor(x / 8)``, ``specs/vdvae.md`` §1); the default ``data.bits=8`` is the 8-bit one.

Every image is decoded once into
``<name>-<size>px-<resample>-<split rule>.npy`` beside the source (FFHQ at 256 px:
13.8 GB; CelebA-HQ: 5.9 GB), which later starts memory-map. Its rows are the training
images, then the validation images (each in file order), so each split is a memory map of
contiguous rows, never a copy in memory. A ``.source`` stamp ties the cache to the names,
sizes and modification times of its sources (:func:`vaelab.data.images.stamped_cache`).
Decoding 70,000 PNGs of 1024x1024 takes about an hour per core (the decoder uses a thread
per core).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path, PurePosixPath

import numpy as np

from vaelab.data.arrays import copy_channels_first
from vaelab.data.base import DataError, ImageDataset, check_shape
from vaelab.data.download import RemoteFile, dataset_folder, ensure_file
from vaelab.data.images import (
    RESAMPLE,
    FileTree,
    cached_array,
    cached_images,
    check_choice,
    check_size,
    decode_image,
    file_entries,
    fingerprint,
    holdout_rows,
    open_npy,
    seeded_holdout,
    select_rows,
    stamped_cache,
)
from vaelab.registry import DATASETS

FFHQ_ZIP = RemoteFile(
    "images1024x1024.zip",
    "https://archive.org/download/ffhq-dataset/images1024x1024.zip",
    note="the 70,000 PNGs of 1024x1024 (89 GB) that Efficient-VDVAE downloads; no checksum "
    "is published; an images1024x1024/ folder of the PNGs works too",
)
FFHQ_NPY = RemoteFile(
    "ffhq-256.npy",
    "https://openaipublic.blob.core.windows.net/very-deep-vaes-assets/vdvae-assets/ffhq-256.npy",
    note="VDVAE's FFHQ at 256 px (13.8 GB), used for size 256 with resample bilinear; no "
    f"checksum is published; for other sizes place {FFHQ_ZIP.name} ({FFHQ_ZIP.url}) or an "
    "images1024x1024/ folder of its PNGs here",
)
CELEBAHQ_ZIP = RemoteFile(
    "data1024x1024.zip",
    None,
    note="Google Drive id 1-LFFkFKNuyBO1sjkM4t_AArIXr3JAOyl (the build of "
    "github.com/suvojit-0x55aa/celebA-HQ-dataset-download that Efficient-VDVAE uses); "
    "a data1024x1024/ folder of the images works too",
)
PROTOCOLS = ("vdvae256", "vdvae1024")
SPLITS = ("train", "valid", "all")
FFHQ_1024_FIRST_VALID = 65_000  # VDVAE's FFHQ-1024: 00000-64999 train, 65000-69999 valid
_FFHQ_NAME = re.compile(r"\d{5}\.png")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _source(base: Path, candidates: tuple[str, ...]) -> Path | None:
    """The first of ``candidates`` (names in ``base``) that exists."""
    return next((base / c for c in candidates if (base / c).exists()), None)


def _check_options(
    name: str, split: str, size: object, resample: str, valid_size: object, seed: object
) -> int:
    """``size`` after checking the options the two datasets share."""
    if split not in SPLITS:
        raise DataError(f"{name} has no split {split!r}; splits: {', '.join(SPLITS)}")
    check_choice(name, "resample", resample, RESAMPLE)
    for option, value in (("valid_size", valid_size), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
            raise DataError(
                f"dataset {name!r}: option {option} must be an integer >= 0, got {value!r}"
            )
    return check_size(name, size)


def _from_files(
    name: str,
    location: Path,
    tree: FileTree,
    order: np.ndarray,
    size: int,
    resample: str,
    rule: str,
) -> np.memmap:
    """The images ``tree.names[order]``, decoded and resized once into their cache."""
    cache = location.parent / f"{name}-{size}px-{resample}-{rule}.npy"
    entries = tree.entries or file_entries([location])
    names = [tree.names[i] for i in order]
    decode = functools.partial(decode_image, box=None, size=size, resample=resample, mode="RGB")
    return stamped_cache(
        cache,
        fingerprint(entries),
        lambda: cached_images(cache, names, tree.open, decode, (3, size, size), location),
    )


def _from_npy(location: Path, array: np.ndarray, order: np.ndarray, rule: str) -> np.memmap:
    """The rows ``order`` of VDVAE's channel-last ``ffhq-256.npy``, copied channel-first."""
    cache = location.parent / f"ffhq-256px-vdvae-npy-{rule}.npy"

    def read_rows(start: int, stop: int) -> np.ndarray:
        return np.asarray(array[order[start:stop]])

    def build() -> np.memmap:
        return cached_array(
            cache,
            (len(order), 3, 256, 256),
            lambda out: copy_channels_first(out, read_rows, f"converting {location.name}", 256),
            location,
        )

    return stamped_cache(cache, fingerprint(file_entries([location])), build)


def _ffhq_location(
    root: str | Path | None, path: str | Path | None, download: bool, native: bool
) -> Path:
    """``ffhq-256.npy`` (only at its ``native`` size and filter), the zip, or a PNG folder."""
    candidates = ((FFHQ_NPY.name,) if native else ()) + ("images1024x1024", FFHQ_ZIP.name)
    if path is None:
        base = dataset_folder("ffhq", root)
        found = _source(base, candidates)
        return found or ensure_file(FFHQ_NPY if native else FFHQ_ZIP, base, download=download)
    path = Path(path)
    if path.is_file():
        if path.suffix == ".npy" and not native:
            raise DataError(
                f"{path} holds 256 px images made with the bilinear filter; options size and "
                f"resample other than 256 and bilinear need the 1024 px PNGs ({FFHQ_ZIP.name})"
            )
        return path
    if path.is_dir():
        return _source(path, candidates) or path
    raise DataError(f"{path}: no such file or folder")


@DATASETS.register(
    "ffhq",
    "FFHQ faces (Karras et al. 2019), 70,000 images resized to 256x256, VDVAE's splits; "
    "5-bit: data.bits=5",
    splits=SPLITS,
    files=lambda split: [FFHQ_NPY],
    folder="ffhq",
    image_shape=(3, 256, 256),
)
def load_ffhq(
    root: str | Path | None = None,
    split: str = "train",
    path: str | Path | None = None,
    download: bool = True,
    size: int = 256,
    resample: str = "bilinear",
    protocol: str = "vdvae256",
    valid_size: int = 7000,
    seed: int = 5,
) -> ImageDataset:
    """FFHQ from ``path`` or ``<root>/ffhq/`` at ``size`` px; ``protocol`` ``vdvae256``
    (``valid_size`` images held out with ``seed``) or ``vdvae1024`` (files from 65000 on)."""
    size = _check_options("ffhq", split, size, resample, valid_size, seed)
    check_choice("ffhq", "protocol", protocol, PROTOCOLS)
    native = size == 256 and resample == "bilinear"
    location = _ffhq_location(root, path, download, native)
    if location.is_file() and location.suffix == ".npy":
        array = open_npy(location)
        if array is None:
            raise DataError(f"{location}: not a readable .npy file; delete it to download it again")
        check_shape(array, (None, 256, 256, 3), "the FFHQ-256 array", location)
        tree, numbers = None, np.arange(len(array))
    else:
        tree = FileTree(
            location,
            lambda n: bool(_FFHQ_NAME.fullmatch(PurePosixPath(n).name)),
            "FFHQ PNGs (00000.png, ...)",
        )
        numbers = np.array([int(PurePosixPath(n).name[:5]) for n in tree.names])
        if len(np.unique(numbers)) != len(numbers):
            raise DataError(f"{location}: some FFHQ image numbers appear twice")
    by_number = np.argsort(numbers, kind="stable")
    if protocol == "vdvae256":
        train, valid = seeded_holdout(len(numbers), valid_size, seed, "ffhq")
        rule = f"vdvae256-seed{seed}-valid{valid_size}"
    else:
        first_valid = int(np.searchsorted(numbers[by_number], FFHQ_1024_FIRST_VALID))
        train, valid = np.arange(first_valid), np.arange(first_valid, len(numbers))
        rule = "vdvae1024"
    order = by_number[np.concatenate([train, valid])]
    if tree is None:
        images = _from_npy(location, array, order, rule)
    else:
        images = _from_files("ffhq", location, tree, order, size, resample, rule)
    rows = holdout_rows("ffhq", split, len(train), len(order))
    return ImageDataset(
        name="ffhq", images=select_rows(images, rows), split=split, files=[location]
    )


@DATASETS.register(
    "celebahq",
    "CelebA-HQ faces (Karras et al. 2018), 30,000 images resized to 256x256, 3,000 held out; "
    "5-bit: data.bits=5",
    splits=SPLITS,
    files=lambda split: [CELEBAHQ_ZIP],
    folder="celebahq",
    image_shape=(3, 256, 256),
)
def load_celebahq(
    root: str | Path | None = None,
    split: str = "train",
    path: str | Path | None = None,
    download: bool = True,
    size: int = 256,
    resample: str = "bilinear",
    valid_size: int = 3000,
    seed: int = 0,
) -> ImageDataset:
    """CelebA-HQ from ``path`` or ``<root>/celebahq/`` at ``size`` px, ``valid_size`` images
    held out with ``seed``."""
    size = _check_options("celebahq", split, size, resample, valid_size, seed)
    candidates = ("data1024x1024", CELEBAHQ_ZIP.name)
    if path is None:
        base = dataset_folder("celebahq", root)
        location = _source(base, candidates) or ensure_file(CELEBAHQ_ZIP, base, download=download)
    else:
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: no such file or folder")
        location = path if path.is_file() else _source(path, candidates) or path
    tree = FileTree(
        location, lambda n: n.lower().endswith(_IMAGE_SUFFIXES), "CelebA-HQ images (png, jpg)"
    )
    train, valid = seeded_holdout(len(tree.names), valid_size, seed, "celebahq")
    order = np.concatenate([train, valid])
    rule = f"seed{seed}-valid{valid_size}"
    images = _from_files("celebahq", location, tree, order, size, resample, rule)
    rows = holdout_rows("celebahq", split, len(train), len(order))
    return ImageDataset(
        name="celebahq", images=select_rows(images, rows), split=split, files=[location]
    )
