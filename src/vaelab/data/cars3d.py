"""Cars3D (Reed, Zhang, Zhang & Lee 2015, "Deep Visual Analogy-Making"): renders of car models.

``nips2015-analogy-data.tar.gz`` holds ``data/cars/*.mat``, one MATLAB file per car model
(183), whose ``im`` is uint8 ``[128, 128, 3, 24, 4]``: height, width, RGB, 24 azimuths,
4 elevations (the axis order disentanglement_lib's reordering implies; the reader checks the
shape and says what it found). MATLAB v7.3 files (HDF5, which h5py sees with the axes
reversed) are read too.

Factors (disentanglement_lib's order, the last fastest): elevation 4, azimuth 24,
object_type 183, the complete grid of 17,568 images. Object ids follow the sorted file names
(disentanglement_lib numbers them in directory-listing order, which is not stable). Each
render is resized to 64x64 with Pillow's ``lanczos`` filter (disentanglement_lib's
``thumbnail(..., ANTIALIAS)`` of a square image is this resize).

The images are resized once into ``cars3d-<size>px-<resample>.npy`` beside the data
(atomically; 216 MB at 64x64) and memory-mapped later. The archive is read as it is (an
extracted ``data/cars/`` folder, or any folder of the ``.mat`` files, works too).
"""

from __future__ import annotations

import io
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np

from vaelab.data.arrays import grid_factors, resize_pixels
from vaelab.data.base import DataError, GroundTruthDataset
from vaelab.data.download import RemoteFile, dataset_folder, ensure_file
from vaelab.data.images import RESAMPLE, cached_array, check_choice, check_size, open_npy
from vaelab.registry import DATASETS

ARCHIVE = RemoteFile(
    "nips2015-analogy-data.tar.gz",
    "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz",
    md5="4e866a7919c1beedf53964e6f7a23686",
)
SPLITS = ("train", "all")
FACTOR_NAMES = ("elevation", "azimuth", "object_type")
VIEWS = (4, 24)  # elevations, azimuths
_HDF5 = b"\x89HDF\r\n\x1a\n"


def read_car(data: bytes, where: str) -> np.ndarray:
    """One car's ``.mat`` bytes -> renders ``uint8 [4, 24, H, W, 3]`` (elevation, azimuth)."""
    if _HDF5 in (data[:8], data[512:520]):  # MATLAB v7.3 (HDF5, maybe after a 512-byte header)
        im = _read_v73(data, where)
    else:
        import scipy.io

        try:
            im = scipy.io.loadmat(io.BytesIO(data), variable_names=["im"]).get("im")
        except Exception as err:  # scipy raises many types for damaged files
            raise DataError(
                f"{where}: not a readable MATLAB file ({type(err).__name__}: {err}); it is "
                "truncated or corrupt"
            ) from None
        if im is None:
            raise DataError(f"{where}: no variable 'im' (a Cars3D .mat holds 'im')")
    elevations, azimuths = VIEWS
    if im.dtype != np.uint8 or im.ndim != 5 or im.shape[2:] != (3, azimuths, elevations):
        raise DataError(
            f"{where}: 'im' must be uint8 [H, W, 3, {azimuths} azimuths, {elevations} "
            f"elevations], got {im.dtype} {list(im.shape)}"
        )
    if im.shape[0] != im.shape[1]:
        raise DataError(f"{where}: renders must be square, got {im.shape[0]}x{im.shape[1]}")
    return im.transpose(4, 3, 0, 1, 2)


def _read_v73(data: bytes, where: str) -> np.ndarray:
    import h5py

    try:
        with h5py.File(io.BytesIO(data), "r") as handle:
            found = sorted(handle.keys())
            im = np.asarray(handle["im"]) if "im" in handle else None
    except (OSError, ValueError) as err:
        raise DataError(f"{where}: not a readable MATLAB v7.3 file ({err})") from None
    if im is None:
        raise DataError(f"{where}: no variable 'im' (a Cars3D .mat holds 'im'); found {found}")
    return im.transpose()  # MATLAB stores arrays column-major: h5py sees the axes reversed


def _is_car(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return parts[-3:-1] == ("data", "cars") and parts[-1].endswith(".mat")


def _cars(location: Path) -> Iterator[tuple[str, bytes]]:
    """``(file name, bytes)`` of every car's ``.mat`` in the archive or folder, in one pass."""
    if location.is_dir():
        for file in sorted(location.glob("*.mat")):
            yield file.name, file.read_bytes()
        return
    try:
        with tarfile.open(location, "r:*") as tar:
            for member in tar:
                if member.isfile() and _is_car(member.name):
                    handle = tar.extractfile(member)
                    yield PurePosixPath(member.name).name, handle.read() if handle else b""
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise DataError(
            f"{location}: cannot read the archive ({type(err).__name__}: {err}); it is "
            "truncated or corrupt, delete it and download it again"
        ) from None


def resize_cars(location: Path, size: int, resample: str) -> dict[str, np.ndarray]:
    """Every car's renders resized: file name -> ``uint8 [4, 24, 3, size, size]``."""
    from tqdm import tqdm

    renders = {}
    for name, data in tqdm(_cars(location), desc=f"resizing {location.name}", unit="car"):
        views = read_car(data, f"{location}: {name}")
        renders[name] = np.stack(
            [[resize_pixels(view, size, resample) for view in row] for row in views]
        )
    if not renders:
        raise DataError(f"{location}: no car renders (data/cars/*.mat)")
    return renders


def _fill(out: np.ndarray, renders: dict[str, np.ndarray]) -> None:
    names = sorted(renders)
    grid = out.reshape(*VIEWS, len(names), *out.shape[1:])  # elevation, azimuth, object
    for number, name in enumerate(names):
        grid[:, :, number] = renders[name]


def _well_formed(images: np.ndarray | None, size: int) -> bool:
    per_car = VIEWS[0] * VIEWS[1]
    return (
        images is not None
        and images.shape[1:] == (3, size, size)
        and len(images) > 0
        and len(images) % per_car == 0
    )


def _locate(root: str | Path | None, path: str | Path | None, download: bool) -> tuple[Path, Path]:
    """(the archive or folder of ``.mat`` files, the folder for the cache)."""
    if path is None:
        base = dataset_folder("cars3d", root)
        return ensure_file(ARCHIVE, base, download=download), base
    path = Path(path)
    if path.is_file():
        return path, path.parent
    if next(path.glob("*.mat"), None) is not None:
        return path, path.parent
    for folder in (path / "cars", path / "data" / "cars"):
        if next(folder.glob("*.mat"), None) is not None:
            return folder, path
    if (path / ARCHIVE.name).is_file():
        return path / ARCHIVE.name, path
    raise DataError(
        f"{path}: no Cars3D renders; expected {ARCHIVE.name}, a folder of the cars' .mat "
        "files (data/cars/), or a folder holding either"
    )


@DATASETS.register(
    "cars3d",
    "Cars3D renders, 17,568 colour 64x64 images, 3 factors on a complete grid",
    splits=SPLITS,
    files=lambda split: [ARCHIVE],
    folder="cars3d",
    image_shape=(3, 64, 64),
)
def load_cars3d(
    root: str | Path | None = None,
    split: str = "train",
    path: str | Path | None = None,
    download: bool = True,
    size: int = 64,
    resample: str = "lanczos",
) -> GroundTruthDataset:
    """Cars3D from ``path`` or ``<root>/cars3d/``: renders resized to ``size`` with the Pillow
    ``resample`` filter, once, into a memory-mapped cache (module docstring). No official
    split: ``train`` and ``all`` are every image."""
    if split not in SPLITS:
        raise DataError(
            f"cars3d has no split {split!r}; splits: {', '.join(SPLITS)} (both are every image)"
        )
    size = check_size("cars3d", size)
    check_choice("cars3d", "resample", resample, RESAMPLE)
    location, base = _locate(root, path, download)
    cache = base / f"cars3d-{size}px-{resample}.npy"
    images = open_npy(cache)
    if not _well_formed(images, size):
        # the archive is compressed: listing it costs a full read, so it is read once, here
        renders = resize_cars(location, size, resample)
        shape = (len(renders) * VIEWS[0] * VIEWS[1], 3, size, size)
        images = cached_array(cache, shape, lambda out: _fill(out, renders), location)
    objects = len(images) // (VIEWS[0] * VIEWS[1])
    return GroundTruthDataset(
        name="cars3d",
        images=images,
        split=split,
        factors=grid_factors((*VIEWS, objects)),
        factor_names=FACTOR_NAMES,
        factor_sizes=(*VIEWS, objects),
        files=[location],
    )
