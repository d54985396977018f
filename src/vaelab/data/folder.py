"""Your own images: any folder (searched recursively) of PNG, JPEG, BMP, WebP or GIF files.

``path`` (``data.path`` or ``--path``) names the folder; hidden files and folders (``.*``)
are skipped, and of an animated GIF or WebP the first frame is used. Each image becomes
``uint8 [C, size, size]``:

- ``crop: center`` (default): the shorter side is scaled to ``size`` and the centre square
  kept, as torchvision's ``Resize(size)`` + ``CenterCrop(size)``;
- ``crop: none``: the whole image is squeezed to a square (the aspect ratio changes);

with Pillow's ``resample`` filter (``bilinear`` by default, antialiased when shrinking), in
colour or, with ``grayscale: true``, converted to grey (ITU-R 601-2 luma) after resizing.

Splits: ``train`` and ``valid``, a seeded random split that holds out
``round(valid_fraction * N)`` images (the last of ``RandomState(seed).permutation(N)``, the
rule of :func:`vaelab.data.images.seeded_holdout`), and ``all``. With ``labels: folders``
each image is labelled by its top-level sub-folder (``<path>/<class>/.../image.png``, classes
numbered in sorted order, as torchvision's ``ImageFolder``); ``labels: none`` gives none.

The images are decoded once into ``<root>/folder/folder-<name>-<size>px-<key>.npy``, where
``<key>`` is a digest of the folder's absolute path and the options that change the pixels or
the row order (size, crop, resample, grayscale, valid_fraction, seed). Its rows are the
training images, then the validation images, so each split is a memory map of contiguous
rows. A ``.source`` stamp records the names, sizes and modification times of the files: when
files are added, removed or changed, the cache is built again. A file that cannot be decoded
stops the build with a :class:`DataError` naming it.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

from vaelab.data.base import DataError, ImageDataset
from vaelab.data.download import dataset_folder
from vaelab.data.images import (
    RESAMPLE,
    FileTree,
    cached_images,
    check_choice,
    check_size,
    decode_image,
    decode_resize_crop,
    fingerprint,
    holdout_rows,
    seeded_holdout,
    select_rows,
    stamped_cache,
)
from vaelab.registry import DATASETS

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")
SPLITS = ("train", "valid", "all")
CROPS = ("center", "none")
LABELS = ("none", "folders")


def _check(
    path: str | Path | None, crop: str, grayscale: bool, valid_fraction: object, seed: object
) -> Path:
    """The image folder, after checking the options that :func:`check_choice` cannot."""
    if path is None:
        raise DataError(
            "dataset 'folder' reads your own images: set data.path (or --path) to a folder "
            f"of {', '.join(e[1:] for e in EXTENSIONS)} files"
        )
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"dataset 'folder': {folder} is not a folder")
    check_choice("folder", "crop", crop, CROPS)
    check_choice("folder", "grayscale", grayscale, (True, False))
    if (
        isinstance(valid_fraction, bool)
        or not isinstance(valid_fraction, int | float)
        or not 0 <= valid_fraction < 1
    ):
        raise DataError(
            f"dataset 'folder': option valid_fraction must be a number in [0, 1), "
            f"got {valid_fraction!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise DataError(f"dataset 'folder': option seed must be an integer >= 0, got {seed!r}")
    return folder


def _folder_labels(names: list[str], folder: Path) -> np.ndarray:
    """The index of each image's top-level sub-folder among the sorted sub-folder names."""
    loose = next((n for n in names if "/" not in n), None)
    if loose is not None:
        raise DataError(
            f"dataset 'folder' with labels: folders: {folder / loose} is not in a sub-folder; "
            "put every image in <path>/<class>/ (or use labels: none)"
        )
    classes = [n.split("/", 1)[0] for n in names]
    return np.unique(classes, return_inverse=True)[1].astype(np.int64)


@DATASETS.register(
    "folder",
    "your own folder of images (png, jpg, bmp, webp, gif), resized to a square; needs data.path",
    splits=SPLITS,
    folder="folder",
    image_shape=(3, 64, 64),
)
def load_folder(
    root: str | Path | None = None,
    split: str = "train",
    path: str | Path | None = None,
    size: int = 64,
    crop: str = "center",
    grayscale: bool = False,
    resample: str = "bilinear",
    valid_fraction: float = 0.1,
    seed: int = 0,
    labels: str = "none",
) -> ImageDataset:
    """The images below the folder ``path``, resized to ``size`` (module docstring); the
    cache lives in ``<root>/folder/``."""
    if split not in SPLITS:
        raise DataError(f"folder has no split {split!r}; splits: {', '.join(SPLITS)}")
    folder = _check(path, crop, grayscale, valid_fraction, seed)
    size = check_size("folder", size)
    check_choice("folder", "resample", resample, RESAMPLE)
    check_choice("folder", "labels", labels, LABELS)
    tree = FileTree(
        folder,
        lambda n: n.lower().endswith(EXTENSIONS),
        f"images ({', '.join(e[1:] for e in EXTENSIONS)})",
    )
    n = len(tree.names)
    train, valid = seeded_holdout(n, round(valid_fraction * n), seed, "folder")
    names = [tree.names[i] for i in np.concatenate([train, valid])]
    label_array = _folder_labels(names, folder) if labels == "folders" else None
    mode, channels = ("L", 1) if grayscale else ("RGB", 3)
    options = [folder.resolve(), size, crop, resample, grayscale, valid_fraction, seed]
    key = hashlib.sha1("\0".join(map(str, options)).encode(), usedforsecurity=False).hexdigest()
    cache = dataset_folder("folder", root) / f"folder-{folder.name}-{size}px-{key[:12]}.npy"
    if crop == "center":
        decode = functools.partial(
            decode_resize_crop, resize=size, size=size, resample=resample, mode=mode
        )
    else:
        decode = functools.partial(decode_image, box=None, size=size, resample=resample, mode=mode)
    images = stamped_cache(
        cache,
        fingerprint(tree.entries),
        lambda: cached_images(cache, names, tree.open, decode, (channels, size, size), folder),
    )
    rows = holdout_rows("folder", split, len(train), n)
    return ImageDataset(
        name="folder",
        images=select_rows(images, rows),
        split=split,
        labels=None if label_array is None else label_array[rows],
        files=[folder],
    )
