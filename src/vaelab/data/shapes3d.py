"""3D Shapes (Burgess & Kim 2018, deepmind/3d-shapes): the official ``3dshapes.h5``.

The file holds ``images`` uint8 ``[480000, 64, 64, 3]`` (RGB, channel-last, chunked and
compressed: about 255 MB on disk, 5.9 GB as uint8) and ``labels`` float64 ``[480000, 6]``,
the factor *values*: floor_hue 10, wall_hue 10, object_hue 10, scale 8, shape 4,
orientation 15, stored on the complete grid with orientation varying fastest.

Factor classes are the positions of each label in its column's sorted unique values, and
they must agree with the grid the storage order implies (a file that disagrees is rejected,
as it would silently break every metric). A smaller file in the same format, a sub-grid or a
subset, is read as well (a complete or partial ground-truth dataset in its own units); the
official file must have the official grid.

Decompressing 5.9 GB at every start takes minutes, so the images are converted once, block by
block, into ``<name>-nchw.npy`` (channel-first) beside the h5, written atomically, and later
starts memory-map it. Only the labels (23 MB) are read from the h5 each time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vaelab.data.arrays import BLOCK, copy_channels_first, grid_factors
from vaelab.data.base import DataError, GroundTruthDataset
from vaelab.data.download import RemoteFile, dataset_folder, ensure_file
from vaelab.data.images import cached_array
from vaelab.registry import DATASETS

OFFICIAL = RemoteFile(
    "3dshapes.h5",
    "https://storage.googleapis.com/3d-shapes/3dshapes.h5",
    md5="099a2078d58cec4daad0702c55d06868",
)
FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
SPLITS = ("train", "all")


def _open_h5(path: Path):
    import h5py

    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError) as err:
        raise DataError(
            f"{path}: not a readable HDF5 file ({err}); it is truncated or corrupt, delete it "
            "and download it again"
        ) from None
    missing = [k for k in ("images", "labels") if k not in handle]
    if missing:
        found = sorted(handle.keys())
        handle.close()
        raise DataError(
            f"{path}: missing key(s) {missing}; a 3D Shapes h5 holds 'images' "
            f"[N, 64, 64, 3] uint8 and 'labels' [N, 6] float64; found {found}"
        )
    return handle


def label_classes(labels: np.ndarray, path: Path) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Factor classes ``[N, 6]`` and the value of each class, from the label values.

    Classes are positions in each column's sorted unique values. On a complete grid
    (``N`` is the product of the sizes) they must be the classes the storage order implies.
    """
    columns = [np.unique(labels[:, k], return_inverse=True) for k in range(labels.shape[1])]
    classes = np.stack([inverse.reshape(-1) for _, inverse in columns], axis=1).astype(np.int64)
    values = tuple(unique for unique, _ in columns)
    sizes = tuple(len(v) for v in values)
    if len(labels) == int(np.prod(FACTOR_SIZES)) and sizes != FACTOR_SIZES:
        raise DataError(
            f"{path}: 'labels' take {dict(zip(FACTOR_NAMES, sizes, strict=True))} distinct "
            f"values; the official file has {dict(zip(FACTOR_NAMES, FACTOR_SIZES, strict=True))}"
        )
    if len(labels) == int(np.prod(sizes)):
        expected = grid_factors(sizes)
        wrong = np.flatnonzero((classes != expected).any(axis=1))
        if len(wrong):
            row = int(wrong[0])
            raise DataError(
                f"{path}: the labels do not follow the storage order of a complete grid: "
                f"image {row} has factor classes {classes[row].tolist()}, its position implies "
                f"{expected[row].tolist()} (last factor fastest); is 'labels' shuffled?"
            )
    return classes, values


def read_shapes3d(path: str | Path, name: str = "shapes3d") -> GroundTruthDataset:
    """Read a 3D Shapes h5 (official or smaller) through its memory-mapped NCHW cache."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"3D Shapes file not found: {path}")
    with _open_h5(path) as handle:
        images, labels = handle["images"], handle["labels"]
        if len(images.shape) != 4 or images.shape[1:] != (64, 64, 3) or images.dtype != np.uint8:
            raise DataError(
                f"{path}: 'images' must be uint8 [N, 64, 64, 3], got {images.dtype} "
                f"{list(images.shape)}"
            )
        count = images.shape[0]
        if labels.shape != (count, 6):
            raise DataError(
                f"{path}: 'labels' has shape {list(labels.shape)}, expected [{count}, 6]"
            )
        try:
            label_values = np.asarray(labels[()], dtype=np.float64)
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: cannot read 'labels' ({err}); truncated file?") from None
        classes, values = label_classes(label_values, path)
        # whole HDF5 chunks per block, so that no chunk is decompressed twice
        rows = images.chunks[0] if images.chunks else 1
        step = rows * max(1, BLOCK // rows)

        def read_rows(start: int, stop: int) -> np.ndarray:
            try:
                return images[start:stop]
            except (OSError, ValueError) as err:
                raise DataError(
                    f"{path}: cannot read images {start}..{stop - 1} ({err}); the file is "
                    "truncated or corrupt, delete it and download it again"
                ) from None

        cache = cached_array(
            path.with_name(f"{path.stem}-nchw.npy"),
            (count, 3, 64, 64),
            lambda out: copy_channels_first(out, read_rows, f"converting {path.name}", step),
            path,
        )
    return GroundTruthDataset(
        name=name,
        images=cache,
        factors=classes,
        factor_names=FACTOR_NAMES,
        factor_sizes=tuple(len(v) for v in values),
        factor_values=values,
        files=[path],
    )


@DATASETS.register(
    "shapes3d",
    "3D Shapes: 480,000 colour 64x64 scenes, 6 factors on a complete grid (official h5)",
    splits=SPLITS,
    files=lambda split: [OFFICIAL],
    folder="shapes3d",
    image_shape=(3, 64, 64),
)
def load_shapes3d(
    root: str | Path | None = None,
    split: str = "train",
    path: str | Path | None = None,
    download: bool = True,
) -> GroundTruthDataset:
    """3D Shapes from ``path`` or the official ``<root>/shapes3d/3dshapes.h5``; converted once
    into a memory-mapped NCHW cache beside it. No official split: ``train`` and ``all`` are
    every image."""
    if split not in SPLITS:
        raise DataError(
            f"shapes3d has no split {split!r}; splits: {', '.join(SPLITS)} (both are every image)"
        )
    if path is None:
        path = ensure_file(OFFICIAL, dataset_folder("shapes3d", root), download=download)
    dataset = read_shapes3d(path)
    dataset.split = split
    return dataset
