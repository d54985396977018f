"""DTD, the Describable Textures Dataset (Cimpoi, Maji, Kokkinos, Mohamed & Vedaldi 2014,
"Describing Textures in the Wild").

``dtd-r1.0.1.tar.gz`` holds 5,640 JPEGs of 47 texture classes (120 each, 300x300 to
640x640 pixels) as ``dtd/images/<class>/<class>_<n>.jpg``, and ten official partitions as
``dtd/labels/{train,val,test}<p>.txt``, one ``<class>/<file>.jpg`` line per image (1,880
images per split in partition 1). Splits are ``train``, ``val`` and ``test`` of partition
``partition`` (1 by default, as torchvision) and ``all`` (every image). ``labels`` is the
class's index in the sorted class names.

The archive is checked against its md5 (torchvision's) and extracted once, as torchvision
does, into ``dtd/`` beside it (:func:`vaelab.data.images.extract_tar`); an extracted folder
(torchvision's ``<root>/dtd/dtd/``) is read as it is. ``path`` may name the archive, the
extracted ``dtd/`` folder, or a folder holding either.

Preprocessing follows pytorch-proVLAE: torchvision's ``Resize(146)`` then
``CenterCrop(128)``: the shorter side is scaled to 146 with Pillow's bilinear filter
(antialiased when shrinking), then the centre 128x128 is kept. ``size`` changes the crop,
with the shorter side scaled to ``round(size * 146 / 128)``. Every image is decoded once
into ``dtd-<size>px-<resample>.npy`` beside the data (rows in sorted file order), which later
starts memory-map; a split is a copy of its rows in memory (92 MB at 128 px).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from vaelab.data.base import DataError, ImageDataset
from vaelab.data.download import RemoteFile, dataset_folder, ensure_file
from vaelab.data.images import (
    RESAMPLE,
    FileTree,
    cached_images,
    check_choice,
    check_size,
    decode_resize_crop,
    extract_tar,
    rows_of,
    select_rows,
)
from vaelab.registry import DATASETS

ARCHIVE = RemoteFile(
    "dtd-r1.0.1.tar.gz",
    "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz",
    md5="fff73e5086ae6bdbea199a49dfb8a4c1",
    note="an extracted dtd/ folder (images/ and labels/) beside it works too",
)
SPLITS = ("train", "val", "test", "all")
PARTITIONS = tuple(range(1, 11))
_TOP = "dtd"


def centre_crops(source: FileTree, cache: Path, size: int, resample: str, where: Path) -> np.memmap:
    """The images of ``source`` as pytorch-proVLAE prepares them, decoded once into
    ``cache``: the shorter side scaled to ``round(size * 146 / 128)`` (146 for 128), then
    the centre ``size x size``. ``where`` names the images for messages."""
    resize = round(size * 146 / 128)
    decode = functools.partial(
        decode_resize_crop, resize=resize, size=size, resample=resample, mode="RGB"
    )
    return cached_images(cache, source.names, source.open, decode, (3, size, size), where)


def _locate(root: str | Path | None, path: str | Path | None, download: bool) -> Path:
    """The extracted ``dtd/`` folder (holding ``images/`` and ``labels/``)."""
    if path is None:
        base = dataset_folder("dtd", root)
        if (base / _TOP / "images").is_dir():
            return base / _TOP
        return extract_tar(ensure_file(ARCHIVE, base, download=download), _TOP)
    path = Path(path)
    if path.is_file():
        return extract_tar(path, _TOP)
    for folder in (path, path / _TOP, path / _TOP / _TOP):
        if (folder / "images").is_dir():
            return folder
    if (path / ARCHIVE.name).is_file():
        return extract_tar(path / ARCHIVE.name, _TOP)
    raise DataError(
        f"{path}: no DTD images; expected {ARCHIVE.name}, an extracted {_TOP}/ folder with "
        "images/ and labels/, or a folder holding either"
    )


def _is_image(name: str) -> bool:
    return name.count("/") == 1 and name.lower().endswith(".jpg")


def _split_names(folder: Path, split: str, partition: int) -> tuple[list[str], Path]:
    listing = folder / "labels" / f"{split}{partition}.txt"
    try:
        lines = listing.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(
            f"{listing}: cannot read the {split} list of partition {partition} ({err}); the "
            f"official archive has labels/{{train,val,test}}{{1..10}}.txt"
        ) from None
    if not lines:
        raise DataError(f"{listing}: the list is empty")
    return lines, listing


@DATASETS.register(
    "dtd",
    "Describable Textures, 5,640 images of 47 classes, 10 partitions, resized 146 -> "
    "centre 128x128",
    splits=SPLITS,
    files=lambda split: [ARCHIVE],
    folder="dtd",
    image_shape=(3, 128, 128),
)
def load_dtd(
    root: str | Path | None = None,
    split: str = "train",
    path: str | Path | None = None,
    download: bool = True,
    partition: int = 1,
    size: int = 128,
    resample: str = "bilinear",
) -> ImageDataset:
    """DTD from ``path`` or ``<root>/dtd/``: ``split`` of official ``partition`` (1..10),
    centre ``size`` crop after scaling the shorter side to ``round(size * 146 / 128)``."""
    if split not in SPLITS:
        raise DataError(f"dtd has no split {split!r}; splits: {', '.join(SPLITS)}")
    if isinstance(partition, bool) or not isinstance(partition, int) or partition not in PARTITIONS:
        raise DataError(f"dataset 'dtd': option partition must be 1..10, got {partition!r}")
    size = check_size("dtd", size)
    check_choice("dtd", "resample", resample, RESAMPLE)
    folder = _locate(root, path, download)
    images_folder = folder / "images"
    source = FileTree(images_folder, _is_image, "DTD images (images/<class>/*.jpg)")
    classes = [name.split("/")[0] for name in source.names]
    labels = np.unique(classes, return_inverse=True)[1].astype(np.int64)
    images = centre_crops(
        source, folder.parent / f"dtd-{size}px-{resample}.npy", size, resample, images_folder
    )
    rows, files = np.arange(len(source.names)), [folder]
    if split != "all":
        wanted, listing = _split_names(folder, split, partition)
        rows = rows_of(source.names, wanted, listing, images_folder)
        files.append(listing)
    return ImageDataset(
        name="dtd", images=select_rows(images, rows), split=split, labels=labels[rows], files=files
    )
