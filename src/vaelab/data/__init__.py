"""Datasets (uint8 images, optional ground-truth factors), downloads and on-device batching.

Use :func:`load_dataset` with a name from ``vaelab data list`` (or a :class:`DataConfig`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vaelab.data.base import DataError, GroundTruthDataset, ImageDataset, LazyImages
from vaelab.registry import DATASETS

__all__ = [
    "DATASETS",
    "DataError",
    "GroundTruthDataset",
    "ImageDataset",
    "LazyImages",
    "dataset_splits",
    "load_dataset",
]


def load_dataset(
    name: str,
    split: str = "train",
    root: str | Path | None = None,
    path: str | Path | None = None,
    download: bool = True,
    **options: Any,
) -> ImageDataset:
    """Load a registered dataset by name.

    ``root`` is the data folder (default ``$VAELAB_DATA`` or ``~/.cache/vaelab/data``), each
    dataset using ``<root>/<name>/``; ``path`` points at a specific file or folder instead;
    ``options`` are the dataset's own keyword arguments (``vaelab data info NAME``).
    """
    from vaelab.config import check_options

    entry = DATASETS.get(name)
    check_options(
        DATASETS,
        name,
        options,
        f"dataset {name!r} options",
        reserved=("root", "split", "path", "download"),
    )
    splits = entry.meta.get("splits", ("train",))
    if split not in splits:
        raise DataError(f"dataset {name!r} has no split {split!r}; splits: {', '.join(splits)}")
    kwargs: dict[str, Any] = {"root": root, "split": split, **options}
    if path is not None:
        if "path" not in _parameters(entry.target):
            raise DataError(f"dataset {name!r} reads no files, so it takes no path (got {path})")
        kwargs["path"] = path
    if "download" in _parameters(entry.target):
        kwargs["download"] = download
    return entry.target(**kwargs)


def dataset_splits(name: str) -> tuple[str, ...]:
    return tuple(DATASETS.get(name).meta.get("splits", ("train",)))


def _parameters(func: Any) -> set[str]:
    import inspect

    return set(inspect.signature(func).parameters)
