"""3D Chairs (Aubry, Maturana, Efros, Russell & Sivic 2014, "Seeing 3D chairs").

``rendered_chairs.tar`` holds 1,393 chair models x 62 views (31 azimuths x 2 elevations) =
86,366 renders of 600x600 pixels on a white background, as
``rendered_chairs/<model>/renders/*.png`` (plus ``all_chair_names.mat``, unused). Images are
ordered by model folder, then file name; ``labels`` is the model's index in that order. No
official split: ``train`` and ``all`` are every image.

Standard preprocessing (``specs/datasets.md`` §2.7): the centre 400x400 crop, resized to
64x64, grey. disentangling-vae means to crop but discards the crop (``crop: none``
reproduces that). The renders are resized in colour with Pillow's ``lanczos`` filter by
default, the ``Image.ANTIALIAS`` filter disentangling-vae uses, then converted to grey
(``grayscale: false`` keeps RGB) with Pillow's ITU-R 601-2 luma, as torchvision's
``Grayscale`` does.

The renders are decoded once into ``chairs-<crop>-<size>px-<resample>-<grey|rgb>.npy``
beside the data (written atomically), which later starts memory-map. The tar is read
directly; an extracted ``rendered_chairs/`` folder works too.
"""

from __future__ import annotations

import functools
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np

from vaelab.data.base import DataError, ImageDataset
from vaelab.data.download import RemoteFile, dataset_folder, ensure_file
from vaelab.data.images import (
    RESAMPLE,
    Box,
    TarSource,
    cached_images,
    check_choice,
    check_size,
    decode_image,
)
from vaelab.registry import DATASETS

RENDERS = RemoteFile(
    "rendered_chairs.tar",
    "https://www.di.ens.fr/willow/research/seeing3Dchairs/data/rendered_chairs.tar",
    note="no checksum is published; the images are checked as they are decoded",
)
SPLITS = ("train", "all")
CROPS: dict[str, Box | None] = {"center400": (100, 100, 500, 500), "none": None}
_TOP = "rendered_chairs"


def _render_name(parts: tuple[str, ...]) -> str | None:
    """``<model>/renders/<file>.png`` for the parts of a path below ``rendered_chairs/``."""
    if len(parts) == 3 and parts[1] == "renders" and parts[2].endswith(".png"):
        return "/".join(parts)
    return None


class _Source(TarSource):
    """The renders in ``rendered_chairs.tar`` or an extracted ``rendered_chairs/`` folder."""

    def __init__(self, location: Path):
        self.location = location
        self.members: dict[str, tarfile.TarInfo] = {}
        if location.is_dir():
            found = (
                _render_name(p.relative_to(location).parts) for p in location.glob("*/*/*.png")
            )
        else:
            with self.tar() as tar:
                self.members = self._list(tar)
            found = iter(self.members)
        self.names = sorted(n for n in found if n is not None)
        if not self.names:
            raise DataError(f"{location}: no renders (rendered_chairs/<model>/renders/*.png)")
        models = [n.split("/", 1)[0] for n in self.names]
        self.labels = np.unique(models, return_inverse=True)[1].astype(np.int64)

    def _list(self, tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
        members = {}
        for member in tar:
            parts = PurePosixPath(member.name).parts
            parts = parts[1:] if parts[:1] == (".",) else parts
            name = _render_name(parts[1:]) if parts[:1] == (_TOP,) else None
            if name is not None and member.isfile():
                members[name] = member
        return members


def _locate(root: str | Path | None, path: str | Path | None, download: bool) -> tuple[Path, Path]:
    """(the tar or ``rendered_chairs/`` folder, the folder for the cache)."""
    if path is None:
        base = dataset_folder("chairs", root)
        if (base / _TOP).is_dir():
            return base / _TOP, base
        return ensure_file(RENDERS, base, download=download), base
    path = Path(path)
    if path.is_file():
        return path, path.parent
    if path.is_dir():
        if path.name == _TOP or next(path.glob("*/renders"), None) is not None:
            return path, path.parent
        if (path / _TOP).is_dir():
            return path / _TOP, path
        if (path / RENDERS.name).is_file():
            return path / RENDERS.name, path
    raise DataError(
        f"{path}: no 3D Chairs renders; expected {RENDERS.name}, a {_TOP}/ folder, or a folder "
        "holding either"
    )


@DATASETS.register(
    "chairs",
    "3D Chairs renders (Aubry et al. 2014), 86,366 images, centre crop 400 -> 64x64 grey",
    splits=SPLITS,
    files=lambda split: [RENDERS],
    folder="chairs",
    image_shape=(1, 64, 64),
)
def load_chairs(
    root: str | Path | None = None,
    split: str = "train",
    path: str | Path | None = None,
    download: bool = True,
    crop: str = "center400",
    size: int = 64,
    resample: str = "lanczos",
    grayscale: bool = True,
) -> ImageDataset:
    """3D Chairs from ``path`` or ``<root>/chairs/``; ``crop`` ``center400`` or ``none``,
    ``size``, Pillow ``resample`` filter, ``grayscale``. Decoded once into a memory-mapped
    cache (module docstring)."""
    if split not in SPLITS:
        raise DataError(
            f"chairs has no split {split!r}; splits: {', '.join(SPLITS)} (both are every image)"
        )
    check_choice("chairs", "crop", crop, tuple(CROPS))
    size = check_size("chairs", size)
    check_choice("chairs", "resample", resample, RESAMPLE)
    check_choice("chairs", "grayscale", grayscale, (True, False))
    location, base = _locate(root, path, download)
    source = _Source(location)
    mode, channels = ("L", 1) if grayscale else ("RGB", 3)
    images = cached_images(
        base / f"chairs-{crop}-{size}px-{resample}-{'grey' if grayscale else 'rgb'}.npy",
        source.names,
        source.open,
        functools.partial(decode_image, box=CROPS[crop], size=size, resample=resample, mode=mode),
        (channels, size, size),
        location,
    )
    return ImageDataset(
        name="chairs", images=images, split=split, labels=source.labels, files=[location]
    )
