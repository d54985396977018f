"""dSprites (Matthey, Higgins, Hassabis & Lerchner 2017): the official npz, or any npz like it.

The official file holds 737,280 binary 64x64 images on the full grid of 6 stored factors
(colour 1, shape 3, scale 6, orientation 40, posX 32, posY 32; posY fastest). Constant factors
(colour) are dropped, leaving 5. Any npz with the keys ``imgs`` and ``latents_classes`` is
accepted too, covering the full grid or part of it: a sub-grid whose classes are contiguous
(e.g. every 4th orientation and every 2nd position, 3x6x10x16x16 = 46,080 images) is a complete
ground-truth dataset in its own units; a random subset is a partial one.

Security: the npz's ``metadata`` entry is a pickle. It is read with an unpickler that only
rebuilds plain containers and NumPy arrays, so a crafted file cannot execute code.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from vaelab.data.arrays import npy_header
from vaelab.data.base import DataError, GroundTruthDataset
from vaelab.data.download import RemoteFile, dataset_folder, ensure_file
from vaelab.data.safe_pickle import safe_load
from vaelab.registry import DATASETS

OFFICIAL = RemoteFile(
    name="dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
    url="https://github.com/deepmind/dsprites-dataset/raw/master/"
    "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
    git_blob="d98996d3f8ee1550e06b9d4ed78d0beb478910d5",
)
FACTOR_NAMES_5 = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_NAMES_6 = ("color", *FACTOR_NAMES_5)
SPLITS = ("train", "all")


def _read_metadata(path: Path) -> dict[str, Any]:
    """The ``metadata`` dict of a dSprites npz, read without executing code; {} if absent."""
    try:
        with zipfile.ZipFile(path) as archive:
            if "metadata.npy" not in archive.namelist():
                return {}
            raw = archive.read("metadata.npy")
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable npz file ({err}); is it truncated?") from None
    stream = io.BytesIO(raw)
    try:
        npy_header(stream, path)
        value = safe_load(stream, encoding="latin1")
    except Exception:  # metadata is optional: fall back to facts read from the arrays
        return {}
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype == object:
        value = value[()]
    return value if isinstance(value, dict) else {}


def read_dsprites_npz(path: str | Path, name: str = "dsprites") -> GroundTruthDataset:
    """Read a dSprites-style npz (keys ``imgs`` [N,H,W] uint8 and ``latents_classes`` [N,K])."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dSprites file not found: {path}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a readable npz file ({err}); is it truncated?") from None
    with archive:
        missing = [k for k in ("imgs", "latents_classes") if k not in archive.files]
        if missing:
            raise DataError(
                f"{path}: missing key(s) {missing}; a dSprites npz needs 'imgs' "
                f"[N, 64, 64] uint8 and 'latents_classes' [N, 5 or 6]; found "
                f"{archive.files}"
            )
        try:
            imgs = archive["imgs"]
            classes = archive["latents_classes"]
            values = archive["latents_values"] if "latents_values" in archive.files else None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            raise DataError(
                f"{path}: an array in the npz cannot be read ({err}); the file is "
                "probably truncated or corrupt"
            ) from None
    if imgs.ndim != 3 or imgs.dtype != np.uint8:
        raise DataError(
            f"{path}: 'imgs' must be uint8 [N, H, W], got {imgs.dtype} {list(imgs.shape)}"
        )
    if classes.ndim != 2 or classes.shape[0] != imgs.shape[0] or classes.shape[1] not in (5, 6):
        raise DataError(
            f"{path}: 'latents_classes' must be [N={imgs.shape[0]}, 5 or 6], got "
            f"{list(classes.shape)}"
        )
    if not np.issubdtype(classes.dtype, np.integer):
        raise DataError(f"{path}: 'latents_classes' must be integers, got {classes.dtype}")
    meta = _read_metadata(path)
    k = classes.shape[1]
    names = tuple(meta.get("latents_names") or (FACTOR_NAMES_6 if k == 6 else FACTOR_NAMES_5))
    sizes = np.asarray(meta.get("latents_sizes", classes.max(0) + 1), dtype=np.int64)
    if len(names) != k or sizes.shape != (k,) or (classes.max(0) >= sizes).any():
        names = FACTOR_NAMES_6 if k == 6 else FACTOR_NAMES_5
        sizes = classes.max(0) + 1
    keep = np.flatnonzero(sizes > 1)  # drop constant factors (colour)
    factor_values = None
    if values is not None and values.shape == classes.shape:
        factor_values = tuple(
            _values_per_class(classes[:, j], values[:, j], int(sizes[j])) for j in keep
        )
    return GroundTruthDataset(
        name=name,
        images=imgs[:, None],
        factors=classes[:, keep],
        factor_names=tuple(str(names[j]) for j in keep),
        factor_sizes=tuple(int(sizes[j]) for j in keep),
        factor_values=factor_values,
        files=[path],
    )


def _values_per_class(classes: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """The real value of each class (NaN for classes absent from a partial file)."""
    out = np.full(size, np.nan)
    out[classes] = values
    return out


@DATASETS.register(
    "dsprites",
    "dSprites: 737,280 binary 64x64 sprites, 5 factors (official npz, or any npz like it)",
    splits=SPLITS,
    files=lambda split: [OFFICIAL],
    folder="dsprites",
    image_shape=(1, 64, 64),
)
def load_dsprites(
    root: str | Path | None = None,
    split: str = "train",
    path: str | Path | None = None,
    download: bool = True,
) -> GroundTruthDataset:
    """dSprites from ``path`` or the official file in ``<root>/dsprites/``.

    There is no official split: ``train`` and ``all`` both mean every image.
    """
    if split not in SPLITS:
        raise DataError(
            f"dsprites has no split {split!r}; splits: {', '.join(SPLITS)} "
            "(both are the whole dataset)"
        )
    if path is None:
        path = ensure_file(OFFICIAL, dataset_folder("dsprites", root), download=download)
    dataset = read_dsprites_npz(path)
    dataset.split = split
    return dataset
