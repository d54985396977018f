"""The dataset contract: ``uint8`` images ``[N, C, H, W]`` and, for ground-truth datasets, factors.

Datasets know nothing about models or devices. Conversion to float, binarisation and
dequantisation happen later, on the training device, in :mod:`vaelab.data.batching`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A data file is missing, corrupt or not in the expected format.

    The message always names the file (or dataset) and what was expected.
    """


@dataclass
class ImageDataset:
    """A set of images held as ``uint8 [N, C, H, W]`` (in memory or memory-mapped).

    ``labels`` are optional class labels ``[N]``; ``files`` lists the files the data came
    from (for ``vaelab data info``).
    """

    name: str
    images: np.ndarray
    split: str = "train"
    labels: np.ndarray | None = None
    files: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise DataError(
                f"dataset {self.name!r}: images must be uint8 [N, C, H, W], "
                f"got {self.images.dtype} with shape {tuple(self.images.shape)}"
            )
        if self.labels is not None and len(self.labels) != len(self.images):
            raise DataError(
                f"dataset {self.name!r}: {len(self.labels)} labels for {len(self.images)} images"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        """Memory the images take as ``uint8``."""
        return int(np.prod(self.images.shape))

    @property
    def storage(self) -> str:
        """Where the images live: ``memory``, ``memory-mapped`` or ``on demand`` (rendered)."""
        if isinstance(self.images, LazyImages):
            return "on demand"
        if isinstance(self.images, np.memmap):
            return "memory-mapped"
        return "memory"

    def summary(self) -> dict:
        """Plain facts about the dataset, for ``vaelab data info`` and reports."""
        c, h, w = self.image_shape
        out = {
            "name": self.name,
            "split": self.split,
            "images": len(self),
            "image_shape": [c, h, w],
            "uint8_bytes": self.nbytes,
            "storage": self.storage,
            "files": [str(f) for f in self.files],
        }
        if self.labels is not None:
            out["classes"] = len(np.unique(self.labels))
        return out


@dataclass
class GroundTruthDataset(ImageDataset):
    """Images with discrete ground-truth factors, as every disentanglement metric needs.

    ``factors`` holds integer class indices ``[N, K]``; ``factor_sizes[k]`` is the number of
    values factor ``k`` can take. The flat index of a factor vector is
    ``sum_k c_k * prod_{j>k} |V_j|`` (the last factor varies fastest, as in dSprites).
    The images may cover the full grid (``is_complete``) or only a part of it.
    """

    factors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    factor_values: tuple[np.ndarray, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.factors = np.asarray(self.factors, dtype=np.int64)
        self.factor_names = tuple(self.factor_names)
        self.factor_sizes = tuple(int(s) for s in self.factor_sizes)
        k = len(self.factor_sizes)
        if self.factors.shape != (len(self), k) or len(self.factor_names) != k:
            raise DataError(
                f"dataset {self.name!r}: factors must be [N={len(self)}, K={k}] with {k} names, "
                f"got shape {tuple(self.factors.shape)} and {len(self.factor_names)} names"
            )
        outside = ((self.factors < 0) | (self.factors >= np.array(self.factor_sizes))).any(1)
        if outside.any():
            bad = int(np.argmax(outside))
            raise DataError(
                f"dataset {self.name!r}: image {bad} has factor classes "
                f"{self.factors[bad].tolist()} outside the sizes {list(self.factor_sizes)}"
            )
        self._bases = np.array(
            [int(np.prod(self.factor_sizes[i + 1 :])) for i in range(k)], dtype=np.int64
        )
        flat = self.factors @ self._bases
        order = np.argsort(flat, kind="stable")
        self._sorted_flat = flat[order]
        self._sorted_rows = order
        if len(flat) and (np.diff(self._sorted_flat) == 0).any():
            dup = int(self._sorted_flat[np.flatnonzero(np.diff(self._sorted_flat) == 0)[0]])
            raise DataError(
                f"dataset {self.name!r}: two images share the factor classes "
                f"{self.unflatten(np.array([dup]))[0].tolist()}"
            )

    # -- the grid -------------------------------------------------------------------------
    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    @property
    def grid_size(self) -> int:
        """Number of factor combinations in the full grid."""
        return int(np.prod(self.factor_sizes))

    @property
    def is_complete(self) -> bool:
        """Whether every combination of factor classes has exactly one image."""
        return len(self) == self.grid_size

    def flatten(self, factors: np.ndarray) -> np.ndarray:
        """Factor classes ``[M, K]`` -> flat grid positions ``[M]``."""
        factors = self._check_factors(factors)
        return factors @ self._bases

    def unflatten(self, flat: np.ndarray) -> np.ndarray:
        """Flat grid positions ``[M]`` -> factor classes ``[M, K]``."""
        flat = np.asarray(flat, dtype=np.int64)
        return (flat[:, None] // self._bases[None, :]) % np.asarray(self.factor_sizes)[None, :]

    def index_of(self, factors: np.ndarray) -> np.ndarray:
        """Row index of the image with the given factor classes, ``[M, K]`` -> ``[M]``.

        Raises :class:`DataError` naming the first combination that has no image (possible on
        partial grids).
        """
        flat = self.flatten(factors)
        pos = np.searchsorted(self._sorted_flat, flat)
        pos = np.clip(pos, 0, max(len(self._sorted_flat) - 1, 0))
        found = self._sorted_flat[pos] == flat if len(self._sorted_flat) else flat < 0
        if not found.all():
            missing = np.asarray(factors)[np.flatnonzero(~found)[0]].tolist()
            raise DataError(
                f"dataset {self.name!r} has no image with factor classes {missing} "
                f"({dict(zip(self.factor_names, missing, strict=True))}); it covers "
                f"{len(self)} of {self.grid_size} combinations"
            )
        return self._sorted_rows[pos]

    def factor_index(self, name: str) -> int:
        """Position of a factor by name."""
        if name not in self.factor_names:
            raise DataError(
                f"dataset {self.name!r} has no factor {name!r}; factors: {list(self.factor_names)}"
            )
        return self.factor_names.index(name)

    # -- sampling (what the metrics need) -------------------------------------------------
    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` factor vectors ``[n, K]`` drawn uniformly.

        On a complete grid each factor is drawn independently and uniformly (as in
        disentanglement_lib); on a partial grid, rows of existing images are drawn uniformly.
        """
        if self.is_complete:
            return np.stack([rng.integers(0, s, size=n) for s in self.factor_sizes], axis=1)
        return self.factors[rng.integers(0, len(self), size=n)].copy()

    def sample_observations_from_factors(
        self, factors: np.ndarray, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Images ``uint8 [M, C, H, W]`` for the given factor classes ``[M, K]``.

        ``rng`` is accepted for datasets where several images share factors; here each
        combination has one image.
        """
        return np.asarray(self.images[self.index_of(factors)])

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` factor vectors and their images."""
        factors = self.sample_factors(n, rng)
        return factors, self.sample_observations_from_factors(factors, rng)

    def summary(self) -> dict:
        out = super().summary()
        out["factors"] = dict(zip(self.factor_names, self.factor_sizes, strict=True))
        out["complete_grid"] = self.is_complete
        out["grid_size"] = self.grid_size
        return out

    def _check_factors(self, factors: np.ndarray) -> np.ndarray:
        factors = np.asarray(factors, dtype=np.int64)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise DataError(
                f"dataset {self.name!r}: factor arrays must be [M, {self.num_factors}] "
                f"({', '.join(self.factor_names)}), got shape {tuple(factors.shape)}"
            )
        sizes = np.asarray(self.factor_sizes)
        bad = (factors < 0) | (factors >= sizes)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataError(
                f"dataset {self.name!r}: factor {self.factor_names[col]!r} class "
                f"{int(factors[row, col])} is outside 0..{sizes[col] - 1}"
            )
        return factors


def check_shape(
    array: np.ndarray, expected: Sequence[int | None], what: str, path: Path | str
) -> None:
    """Raise :class:`DataError` unless ``array.shape`` matches ``expected`` (None = any)."""
    shape = tuple(array.shape)
    if len(shape) != len(expected) or any(
        e is not None and e != s for e, s in zip(expected, shape, strict=False)
    ):
        want = "[" + ", ".join("*" if e is None else str(e) for e in expected) + "]"
        raise DataError(f"{path}: {what} has shape {list(shape)}, expected {want}")


class LazyImages(abc.ABC):
    """Array-like images computed on demand (procedural datasets).

    Behaves like a read-only ``uint8 [N, C, H, W]`` array for indexing (``images[idx]``
    returns a NumPy array), and can also produce batches directly on a torch device with
    :meth:`render`, which the on-device batcher uses instead of holding all images.
    Subclasses implement ``_render_numpy(index)`` and ``render(index_tensor)``.
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, shape: tuple[int, int, int, int]):
        self.shape = tuple(int(s) for s in shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        idx = np.arange(self.shape[0])[index]
        if np.ndim(idx) == 0:
            return self._render_numpy(np.array([idx]))[0]
        return self._render_numpy(np.asarray(idx, dtype=np.int64))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self._render_numpy(np.arange(self.shape[0]))
        return out if dtype is None else out.astype(dtype)

    @abc.abstractmethod
    def _render_numpy(self, index: np.ndarray) -> np.ndarray:
        """``index``: int64 ``[B]`` -> uint8 ``[B, C, H, W]``."""

    @abc.abstractmethod
    def render(self, index):
        """``index``: LongTensor ``[B]`` on a device -> uint8 tensor ``[B, C, H, W]`` there."""
