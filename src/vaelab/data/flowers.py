"""Oxford Flowers 102 (Nilsback & Zisserman 2008, "Automated Flower Classification over a
Large Number of Classes").

Three official files: ``102flowers.tgz`` holds 8,189 JPEGs ``jpg/image_00001.jpg`` ...
``jpg/image_08189.jpg`` of varying size; ``imagelabels.mat`` has ``labels`` ``[1, 8189]``,
the class (1..102) of image ``i`` at position ``i - 1``; ``setid.mat`` has ``trnid``,
``valid`` and ``tstid``, the 1-based image numbers of the official splits (1,020 / 1,020 /
6,149: the test split is the largest). Splits are ``train``, ``val``, ``test`` and ``all``.
``labels`` are stored 0-based (class 1 is label 0), as torchvision does.

The files are checked against their md5 (torchvision's) and the archive is extracted once
into ``jpg/`` beside it (:func:`vaelab.data.images.extract_tar`); torchvision's
``flowers-102/`` folder is read as it is. ``path`` may name the archive (the ``.mat`` files
beside it) or a folder holding ``jpg/`` or the archive, and the ``.mat`` files.

Preprocessing follows pytorch-proVLAE, as for DTD (:mod:`vaelab.data.dtd`): the shorter
side scaled to 146 (Pillow bilinear, antialiased), then the centre 128x128; ``size``
changes the crop, with the shorter side ``round(size * 146 / 128)``. Every image is decoded
once into ``flowers102-<size>px-<resample>.npy`` beside the data, which later starts
memory-map; a split is a copy of its rows in memory (at most 300 MB at 128 px).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from vaelab.data.base import DataError, ImageDataset
from vaelab.data.download import RemoteFile, dataset_folder, ensure_file
from vaelab.data.dtd import centre_crops
from vaelab.data.images import (
    RESAMPLE,
    FileTree,
    check_choice,
    check_size,
    extract_tar,
    rows_of,
    select_rows,
)
from vaelab.registry import DATASETS

_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
IMAGES = RemoteFile(
    "102flowers.tgz",
    _URL + "102flowers.tgz",
    md5="52808999861908f626f3c1f4e79d11fa",
    note="an extracted jpg/ folder beside it works too",
)
LABELS = RemoteFile(
    "imagelabels.mat", _URL + "imagelabels.mat", md5="e0620be6f572b9609742df49c70aed4d"
)
SETID = RemoteFile("setid.mat", _URL + "setid.mat", md5="a5357ecc9cb78c4bef273ce3793fc85c")
SPLIT_KEYS = {"train": "trnid", "val": "valid", "test": "tstid"}
SPLITS = (*SPLIT_KEYS, "all")
_TOP = "jpg"
_IMAGE_NAME = re.compile(r"image_\d{5}\.jpg")


def read_mat_vector(path: Path, key: str) -> np.ndarray:
    """The integer vector ``key`` of a MATLAB file (any ``[1, n]`` or ``[n, 1]`` shape)."""
    import scipy.io

    try:
        content = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises many types for files that are not .mat
        raise DataError(
            f"{path}: cannot read the MATLAB file ({type(err).__name__}: {err}); it is "
            "truncated or corrupt, delete it and download it again"
        ) from None
    if key not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise DataError(f"{path}: no {key!r} in the file; found {found}")
    values = np.asarray(content[key])
    if (
        values.ndim != 2
        or 1 not in values.shape
        or not values.size
        or not np.issubdtype(values.dtype, np.number)
    ):
        raise DataError(
            f"{path}: {key!r} must be a non-empty vector of integers, got {values.dtype} "
            f"{list(values.shape)}"
        )
    return values.ravel().astype(np.int64)


def _locate(
    root: str | Path | None, path: str | Path | None, download: bool, split: str
) -> tuple[Path, Path, Path | None]:
    """(the ``jpg/`` folder, imagelabels.mat, setid.mat or None for split ``all``)."""
    if path is None:
        base = dataset_folder("flowers102", root)
        if not (base / _TOP).is_dir():
            extract_tar(ensure_file(IMAGES, base, download=download), _TOP)
        labels = ensure_file(LABELS, base, download=download)
        setid = None if split == "all" else ensure_file(SETID, base, download=download)
        return base / _TOP, labels, setid
    path = Path(path)
    base = path.parent if path.is_file() else path
    if path.is_file():
        folder = extract_tar(path, _TOP)
    elif (path / _TOP).is_dir():
        folder = path / _TOP
    elif (path / IMAGES.name).is_file():
        folder = extract_tar(path / IMAGES.name, _TOP)
    else:
        raise DataError(
            f"{path}: no Flowers102 images; expected {IMAGES.name}, an extracted {_TOP}/ "
            f"folder, or a folder holding either (with {LABELS.name} and {SETID.name})"
        )
    labels = ensure_file(LABELS, base, download=False, verify=False)
    setid = None if split == "all" else ensure_file(SETID, base, download=False, verify=False)
    return folder, labels, setid


@DATASETS.register(
    "flowers102",
    "Oxford Flowers 102, 8,189 images of 102 classes, official splits, resized 146 -> "
    "centre 128x128",
    splits=SPLITS,
    files=lambda split: [IMAGES, LABELS] if split == "all" else [IMAGES, LABELS, SETID],
    folder="flowers102",
    image_shape=(3, 128, 128),
)
def load_flowers102(
    root: str | Path | None = None,
    split: str = "train",
    path: str | Path | None = None,
    download: bool = True,
    size: int = 128,
    resample: str = "bilinear",
) -> ImageDataset:
    """Flowers102 from ``path`` or ``<root>/flowers102/``: the official ``split``, centre
    ``size`` crop after scaling the shorter side to ``round(size * 146 / 128)``."""
    if split not in SPLITS:
        raise DataError(f"flowers102 has no split {split!r}; splits: {', '.join(SPLITS)}")
    size = check_size("flowers102", size)
    check_choice("flowers102", "resample", resample, RESAMPLE)
    folder, labels_file, setid_file = _locate(root, path, download, split)
    source = FileTree(
        folder, lambda n: bool(_IMAGE_NAME.fullmatch(n)), "Flowers102 images (image_00001.jpg, ...)"
    )
    numbers = np.array([int(name[6:11]) for name in source.names])
    classes = read_mat_vector(labels_file, "labels")
    if numbers.min() < 1 or numbers.max() > len(classes) or classes.min() < 1:
        raise DataError(
            f"{labels_file}: {len(classes)} labels (values {classes.min()}..{classes.max()}) "
            f"do not cover the images up to image_{numbers.max():05d}.jpg in {folder}"
        )
    labels = classes[numbers - 1] - 1
    images = centre_crops(
        source, folder.parent / f"flowers102-{size}px-{resample}.npy", size, resample, folder
    )
    rows, files = np.arange(len(source.names)), [folder, labels_file]
    if setid_file is not None:
        wanted = read_mat_vector(setid_file, SPLIT_KEYS[split])
        rows = rows_of(source.names, [f"image_{n:05d}.jpg" for n in wanted], setid_file, folder)
        files.append(setid_file)
    return ImageDataset(
        name="flowers102",
        images=select_rows(images, rows),
        split=split,
        labels=labels[rows],
        files=files,
    )
