"""MPI3D (Gondal et al. 2019, NeurIPS): ``mpi3d_{toy,realistic,real}.npz``.

Each npz holds one array, ``images`` uint8 ``[1036800, 64, 64, 3]`` (channel-last, 12.7 GB),
and no labels: the factors are implied by the storage order, the last varying fastest:
object_color 6, object_shape 6, object_size 2, camera_height 3, background_color 3,
horizontal_axis 40, vertical_axis 40. The sizes are inferred from the number of images:
1,036,800 is the final release (6 x 6 colours x shapes for all three variants); 460,800 is
the 4 x 4 layout of ``mpi3d_real_complex`` and of the early toy release that
disentanglement_lib's sizes describe. Any other count needs ``factor_sizes`` (7 sizes whose
product is the count), e.g. for a small test file.

The array is never loaded whole (nor converted to float): the ``images.npy`` member is read
from the zip as a stream, its ``.npy`` header first, then blocks of rows, which are written
channel-first into ``<name>-nchw.npy`` beside the npz (atomically, once); later starts
memory-map that cache. A plain ``.npy`` of the same array is read the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from vaelab.data.arrays import (
    copy_channels_first,
    grid_factors,
    npy_header,
    npz_array,
    read_exactly,
)
from vaelab.data.base import DataError, GroundTruthDataset
from vaelab.data.download import RemoteFile, dataset_folder, ensure_file
from vaelab.data.images import cached_array, check_choice
from vaelab.registry import DATASETS

VARIANTS = ("toy", "realistic", "real")
# md5 of the copies on storage.googleapis.com/disentanglement_dataset/Final_Dataset/ (disent);
# that the Hugging Face copies are the same bytes is unverified, so they are not enforced.
_GOOGLE_MD5 = {
    "toy": "55889cb7c7dfc655d6e0277beee88868",
    "realistic": "59a6225b88b635365f70c91b3e52f70f",
    "real": "0f33f609918fb5c97996692f91129802",
}
FILES = {
    variant: RemoteFile(
        f"mpi3d_{variant}.npz",
        f"https://huggingface.co/datasets/waleedgondal/mpi3d/resolve/main/mpi3d_{variant}.npz",
        note="about 12.7 GB; the older copy at https://storage.googleapis.com/"
        f"disentanglement_dataset/Final_Dataset/mpi3d_{variant}.npz has md5 "
        f"{_GOOGLE_MD5[variant]}",
    )
    for variant in VARIANTS
}
FACTOR_NAMES = (
    "object_color",
    "object_shape",
    "object_size",
    "camera_height",
    "background_color",
    "horizontal_axis",
    "vertical_axis",
)
LAYOUTS = {1_036_800: (6, 6, 2, 3, 3, 40, 40), 460_800: (4, 4, 2, 3, 3, 40, 40)}
SPLITS = ("train", "all")
IMAGE_SHAPE = (64, 64, 3)


@contextlib.contextmanager
def _open_images(path: Path) -> Iterator[IO[bytes]]:
    """A binary stream of the ``images`` array's ``.npy`` bytes (the npz member, or the file)."""
    if path.suffix == ".npy":
        with open(path, "rb") as handle:
            yield handle
    else:
        with npz_array(
            path, "images", "an MPI3D npz holds 'images' [N, 64, 64, 3] uint8"
        ) as member:
            yield member


def _read_header(stream: IO[bytes], path: Path) -> int:
    """Read the ``.npy`` header and return the number of images, checking dtype and shape."""
    shape, fortran, dtype = npy_header(stream, f"{path}: the 'images' array")
    if dtype != np.uint8 or len(shape) != 4 or tuple(shape[1:]) != IMAGE_SHAPE or fortran:
        raise DataError(
            f"{path}: 'images' must be uint8 [N, 64, 64, 3] in C order, got {dtype} "
            f"{list(shape)}{' (Fortran order)' if fortran else ''}"
        )
    return int(shape[0])


def layout_sizes(count: int, factor_sizes: Sequence[int] | None, path: Path) -> tuple[int, ...]:
    """The 7 factor sizes of ``count`` images: ``factor_sizes`` if given, else the layout."""
    if factor_sizes is None:
        if count not in LAYOUTS:
            raise DataError(
                f"{path}: {count:,} images match no MPI3D layout (1,036,800 = 6x6x2x3x3x40x40 "
                "or 460,800 = 4x4x2x3x3x40x40); pass option factor_sizes (7 sizes whose "
                "product is the number of images)"
            )
        return LAYOUTS[count]
    sizes = tuple(factor_sizes)
    if len(sizes) != 7 or not all(isinstance(s, int) and s > 0 for s in sizes):
        raise DataError(
            f"dataset 'mpi3d': option factor_sizes must be 7 positive ints "
            f"({', '.join(FACTOR_NAMES)}), got {factor_sizes!r}"
        )
    if int(np.prod(sizes)) != count:
        raise DataError(
            f"dataset 'mpi3d': factor_sizes {list(sizes)} make {int(np.prod(sizes)):,} "
            f"combinations, but {path} holds {count:,} images"
        )
    return sizes


def read_mpi3d(
    path: str | Path, factor_sizes: Sequence[int] | None = None, name: str = "mpi3d"
) -> GroundTruthDataset:
    """Read an MPI3D npz (or npy) through its memory-mapped NCHW cache."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"MPI3D file not found: {path}")
    with _open_images(path) as stream:
        count = _read_header(stream, path)
        sizes = layout_sizes(count, factor_sizes, path)

        def read_rows(start: int, stop: int) -> np.ndarray:  # blocks come in order
            return read_exactly(stream, stop - start, IMAGE_SHAPE, np.uint8, path)

        images = cached_array(
            path.with_name(f"{path.stem}-nchw.npy"),
            (count, 3, 64, 64),
            lambda out: copy_channels_first(out, read_rows, f"converting {path.name}"),
            path,
        )
    return GroundTruthDataset(
        name=name,
        images=images,
        factors=grid_factors(sizes),
        factor_names=FACTOR_NAMES,
        factor_sizes=sizes,
        files=[path],
    )


@DATASETS.register(
    "mpi3d",
    "MPI3D toy/realistic/real: 1,036,800 colour 64x64 robot-arm images, 7 factors (npz)",
    splits=SPLITS,
    files=lambda split: [FILES["toy"]],
    folder="mpi3d",
    image_shape=(3, 64, 64),
)
def load_mpi3d(
    root: str | Path | None = None,
    split: str = "train",
    path: str | Path | None = None,
    download: bool = True,
    variant: str = "toy",
    factor_sizes: list[int] | None = None,
) -> GroundTruthDataset:
    """MPI3D ``variant`` (``toy``, ``realistic`` or ``real``) from ``path`` or
    ``<root>/mpi3d/mpi3d_<variant>.npz``; converted once into a memory-mapped NCHW cache.
    ``factor_sizes`` overrides the layout inferred from the number of images. No official
    split: ``train`` and ``all`` are every image."""
    if split not in SPLITS:
        raise DataError(
            f"mpi3d has no split {split!r}; splits: {', '.join(SPLITS)} (both are every image)"
        )
    check_choice("mpi3d", "variant", variant, VARIANTS)
    if path is None:
        path = ensure_file(FILES[variant], dataset_folder("mpi3d", root), download=download)
    dataset = read_mpi3d(path, factor_sizes)
    dataset.split = split
    return dataset
