"""CelebA (Liu et al. 2015, "Deep Learning Face Attributes in the Wild"): aligned faces.

``img_align_celeba.zip`` holds 202,599 JPEGs of 178x218 pixels (width x height), named
``000001.jpg`` ... ``202599.jpg``; ``list_eval_partition.txt`` assigns each to a partition,
one ``<file> <partition>`` line per image: 0 train (162,770), 1 valid (19,867), 2 test
(19,962). Splits are ``train``, ``valid``, ``test`` and ``all`` (every image, as
disentangling-vae trains). The images are read from the zip or from an extracted
``img_align_celeba/`` folder (also Kaggle's nested ``img_align_celeba/img_align_celeba/``
with ``list_eval_partition.csv``). Google Drive, the official host, blocks automated
downloads; the error for a missing file names the mirrors.

Each image is cropped, resized to ``size x size`` and stored as ``uint8 [3, size, size]``.
Crops (boxes are ``(left, top, right, bottom)``, right and bottom exclusive):

- ``vdvae`` (default): (15, 40, 163, 188), 148x148, Efficient-VDVAE's CelebA-64;
- ``provlae``: (15, 45, 163, 193), 148x148, the official pro-VLAE code;
- ``center148``: (15, 35, 163, 183), the centre 148x148 (torchvision ``CenterCrop(148)``);
- ``center178``: (0, 20, 178, 198), the centre 178x178 (pytorch-proVLAE's CelebA-128);
- ``none``: the whole 178x218 image, squeezed to a square (disentangling-vae, torch-vae);
- a list of four ints: any other box.

Crops differ between papers, and numbers are not comparable across them.

Resizing uses Pillow's ``bilinear`` filter by default: Efficient-VDVAE resizes its crops with
torchvision's bilinear ``Resize`` of PIL images, which is this filter (antialiased when it
shrinks). ``resample: lanczos`` is the ``Image.ANTIALIAS`` filter of disentangling-vae and
pro-VLAE.

Decoding 202,599 JPEGs takes minutes, so it is done once, into
``celeba-<crop>-<size>px-<resample>.npy`` beside the data (written atomically), which later
starts memory-map.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vaelab.data.base import DataError, ImageDataset
from vaelab.data.download import RemoteFile, dataset_folder, ensure_file
from vaelab.data.images import (
    RESAMPLE,
    Box,
    FileTree,
    cached_images,
    check_choice,
    check_size,
    decode_image,
    select_rows,
)
from vaelab.registry import DATASETS

_MIRRORS = (
    "official copy on Google Drive (CelebA page https://mmlab.ie.cuhk.edu.hk/projects/"
    "CelebA.html, folder 'Align&Cropped Images'); mirror https://graal.ift.ulaval.ca/public/"
    "celeba/; Kaggle 'jessicali9530/celeba-dataset'"
)
IMAGES = RemoteFile(
    "img_align_celeba.zip",
    "https://s3-us-west-1.amazonaws.com/udacity-dlnfd/datasets/celeba.zip",
    md5="00d2c5bc6d35e252742224ab0c1e8fcb",
    note=f"the URL is the Udacity mirror disentangling-vae uses (same md5); {_MIRRORS}; "
    "an extracted img_align_celeba/ folder beside it works too",
)
PARTITION = RemoteFile(
    "list_eval_partition.txt",
    None,
    md5="d32c9cbf5e040fd4025c592c306e6668",
    note=f"Google Drive id 0B7EVK8r0v71pY0NSMzRuSXJEVkk; {_MIRRORS}; needed for the "
    "train/valid/test splits (split 'all' needs only the images)",
)
PARTITIONS = {"train": 0, "valid": 1, "test": 2}
SPLITS = (*PARTITIONS, "all")
CROPS: dict[str, Box | None] = {
    "vdvae": (15, 40, 163, 188),
    "provlae": (15, 45, 163, 193),
    "center148": (15, 35, 163, 183),
    "center178": (0, 20, 178, 198),
    "none": None,
}
_IMAGE_NAME = re.compile(r"\d+\.jpg")


def read_partition(path: Path) -> list[tuple[str, int]]:
    """``(file name, partition)`` pairs of ``list_eval_partition.txt`` (or Kaggle's ``.csv``)."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the partition file ({err})") from None
    pairs = []
    for number, line in enumerate(lines, start=1):
        fields = line.replace(",", " ").split()
        if not fields or fields == ["image_id", "partition"]:  # blank line, csv header
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DataError(
                f"{path}, line {number}: expected '<image>.jpg <0|1|2>', got {line[:60]!r}"
            )
        pairs.append((fields[0], int(fields[1])))
    if not pairs:
        raise DataError(f"{path}: the partition file is empty")
    return pairs


# -- where the images are ----------------------------------------------------------------------
def _image_folder(base: Path) -> Path | None:
    """``img_align_celeba/`` in ``base`` (or Kaggle's nested copy), if it holds JPEGs."""
    for folder in (base / "img_align_celeba", base / "img_align_celeba" / "img_align_celeba"):
        if folder.is_dir() and next(folder.glob("*.jpg"), None) is not None:
            return folder
    return None


class _Source(FileTree):
    """The images of CelebA in a zip or a folder: their sorted names and a reader.

    In a folder, the JPEGs directly inside it; in a zip, the JPEGs in any of its folders,
    named by their file name alone."""

    def __init__(self, location: Path):
        def keep(name: str) -> bool:
            file = name if location.is_dir() else name.rsplit("/", 1)[-1]
            return _IMAGE_NAME.fullmatch(file) is not None

        super().__init__(location, keep, "CelebA JPEGs (000001.jpg, ...)")
        if self.members:
            self.members = {n.rsplit("/", 1)[-1]: m for n, m in self.members.items()}
            self.names = sorted(self.members)


def _locate(root: str | Path | None, path: str | Path | None, download: bool) -> tuple[Path, Path]:
    """(the zip or image folder, the folder that holds it with the partition file and cache)."""
    if path is None:
        base = dataset_folder("celeba", root)
        folder = _image_folder(base)
        if folder is not None:
            return folder, base
        return ensure_file(IMAGES, base, download=download), base
    path = Path(path)
    if path.is_file():
        return path, path.parent
    if path.is_dir():
        if next(path.glob("*.jpg"), None) is not None:
            return path, path.parent
        folder = _image_folder(path)
        if folder is not None:
            return folder, path
        if (path / IMAGES.name).is_file():
            return path / IMAGES.name, path
    raise DataError(
        f"{path}: no CelebA images; expected {IMAGES.name}, an img_align_celeba/ folder of "
        "JPEGs, or a folder of JPEGs itself"
    )


def _partition_file(base: Path, verify: bool) -> Path:
    csv = base / "list_eval_partition.csv"  # Kaggle's copy
    if not (base / PARTITION.name).exists() and csv.is_file():
        return csv
    return ensure_file(PARTITION, base, download=False, verify=verify)


def _split_rows(names: list[str], partition: Path, split: str) -> np.ndarray:
    """Rows (in the sorted ``names``) of the images the partition file puts in ``split``."""
    wanted = np.asarray(sorted(n for n, p in read_partition(partition) if p == PARTITIONS[split]))
    if not len(wanted):
        raise DataError(f"{partition}: no image is in partition {PARTITIONS[split]} ({split})")
    known = np.asarray(names)
    rows = np.minimum(np.searchsorted(known, wanted), len(known) - 1)
    found = known[rows] == wanted
    if not found.all():
        missing = wanted[int(np.argmin(found))]
        raise DataError(
            f"{partition} puts {missing} in the {split} split, but the images have no "
            f"{missing} ({len(names)} images found); are the images complete?"
        )
    return rows


def crop_box(crop: str | Sequence[int]) -> tuple[str, Box | None]:
    """(label for the cache name, box) of a ``crop`` option: a name in :data:`CROPS` or a box."""
    if isinstance(crop, str):
        check_choice("celeba", "crop", crop, tuple(CROPS))
        return crop, CROPS[crop]
    box = tuple(crop)
    if len(box) != 4 or not all(isinstance(v, int) and v >= 0 for v in box):
        raise DataError(
            f"dataset 'celeba': option crop must be one of {', '.join(CROPS)} or a box "
            f"[left, top, right, bottom] of 4 non-negative ints, got {crop!r}"
        )
    left, top, right, bottom = box
    if right <= left or bottom <= top:
        raise DataError(f"dataset 'celeba': crop box {list(box)} is empty")
    return "box" + "-".join(map(str, box)), (left, top, right, bottom)


@DATASETS.register(
    "celeba",
    "CelebA aligned faces, 202,599 colour images cropped and resized (default 148x148 -> 64x64)",
    splits=SPLITS,
    files=lambda split: [IMAGES] if split == "all" else [IMAGES, PARTITION],
    folder="celeba",
    image_shape=(3, 64, 64),
)
def load_celeba(
    root: str | Path | None = None,
    split: str = "train",
    path: str | Path | None = None,
    download: bool = True,
    crop: str | Sequence[int] = "vdvae",
    size: int = 64,
    resample: str = "bilinear",
) -> ImageDataset:
    """CelebA from ``path`` or ``<root>/celeba/``: ``crop`` (a name or a box), ``size`` and
    Pillow ``resample`` filter; decoded once into a memory-mapped cache (module docstring)."""
    if split not in SPLITS:
        raise DataError(f"celeba has no split {split!r}; splits: {', '.join(SPLITS)}")
    label, box = crop_box(crop)
    size = check_size("celeba", size)
    check_choice("celeba", "resample", resample, RESAMPLE)
    location, base = _locate(root, path, download)
    partition = None if split == "all" else _partition_file(base, verify=path is None)
    source = _Source(location)
    rows = np.arange(len(source.names))
    if partition is not None:
        rows = _split_rows(source.names, partition, split)
    images = cached_images(
        base / f"celeba-{label}-{size}px-{resample}.npy",
        source.names,
        source.open,
        functools.partial(decode_image, box=box, size=size, resample=resample, mode="RGB"),
        (3, size, size),
        location,
    )
    files = [location] if partition is None else [location, partition]
    return ImageDataset(name="celeba", images=select_rows(images, rows), split=split, files=files)
