"""Batches for training: uint8 images in, float tensors on the training device out.

Two batchers give the same :class:`Batch` from the same index stream:

- :class:`DeviceBatcher` moves the ``uint8`` images to the device once and gathers every
  batch there by index (no workers, no per-item Python). Procedural datasets
  (:class:`~vaelab.data.base.LazyImages`) render each batch on the device instead.
- :class:`LoaderBatcher` reads ``uint8`` batches through a ``torch.utils.data.DataLoader``
  with workers, for images that do not fit in memory (memory-mapped, HDF5-backed).

:func:`make_batcher` picks one. Both convert to float (and binarise, dequantise, reduce the
bit depth) on the device, after the gather, so the host only ever moves ``uint8``.

**The index stream.** Batches are cut from an endless stream that is the concatenation of
one permutation of the dataset rows per epoch (:mod:`vaelab.data.stream`). The permutation
of epoch ``e`` comes from NumPy's PCG64 seeded with a hash of ``(seed, e)``, so it is the same
on every device and every rank, and no generator state has to be saved: the position in the stream
(``batches_drawn`` global batches of ``batch_size * world_size`` rows) is the whole state.

*Epoch boundaries.* A batch that would cross the end of an epoch takes the rest of that
epoch and continues with the start of the next epoch's permutation. Every row is therefore
seen exactly once per epoch and no row is ever dropped; the price is that such a boundary
batch may hold the same row twice (once from each epoch).

*Data parallelism.* With ``world_size`` W, each global step cuts a global batch of
``W * batch_size`` rows from the stream, identical on every rank, and rank ``r`` keeps the
contiguous slice ``[r * batch_size, (r + 1) * batch_size)``. The W ranks together see
exactly the rows one process with batch size ``W * batch_size`` sees.

*Random transforms.* Dynamic binarisation and dequantisation noise is drawn from a
generator seeded with a hash of ``(seed, global batch number, rank)``: a resumed stream
draws the same noise as an uninterrupted one, and ranks draw independent noise.
"""

from __future__ import annotations

import abc
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vaelab.data.stream import IndexStream
from vaelab.data.transforms import TRANSFORMS, Transform, check_choice, data_scale

__all__ = [
    "TRANSFORMS",
    "Batch",
    "DeviceBatcher",
    "IndexStream",
    "LoaderBatcher",
    "make_batcher",
]

STATE_VERSION = 1


@dataclass
class Batch:
    """One training batch on the device.

    ``x``: float32 ``[B, C, H, W]``; ``index``: int64 ``[B]`` dataset rows (to look up
    factors or to log which images were seen); ``labels``: int64 rows of the dataset's
    factors ``[B, K]`` or class labels ``[B]`` when the batcher was asked for them.
    """

    x: torch.Tensor
    index: torch.Tensor
    labels: torch.Tensor | None = None


def _dataset_labels(dataset: Any) -> np.ndarray:
    factors = getattr(dataset, "factors", None)
    if factors is not None and np.ndim(factors) == 2 and np.shape(factors)[1] > 0:
        return np.asarray(factors, dtype=np.int64)
    labels = getattr(dataset, "labels", None)
    if labels is not None:
        return np.asarray(labels, dtype=np.int64)
    raise ValueError(
        f"labels=True, but dataset {getattr(dataset, 'name', '?')!r} has neither factors nor labels"
    )


class _Batcher(abc.ABC):
    """What both batchers share: the stream position, transforms, labels, state, iteration.

    Subclasses only say how to get the uint8 images of a batch (``_gather``).
    """

    kind = "batcher"

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        device: torch.device | str,
        seed: int,
        transform: str,
        bits: int,
        rank: int,
        world_size: int,
        channels_last: bool,
        labels: bool,
    ):
        check_choice(transform, bits)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.world_size = int(world_size)
        self.rank = int(rank)
        self.global_batch_size = self.batch_size * self.world_size
        self.device = torch.device(device)
        self.seed = int(seed)
        self.transform = transform
        self.bits = int(bits)
        self.channels_last = bool(channels_last)
        self.length = len(dataset.images)
        self.scale = data_scale(dataset)
        self._stream = IndexStream(self.length, self.seed, self.device)
        self._transform = Transform(
            transform, self.bits, self.scale, self.seed, self.rank, self.device, channels_last
        )
        self._labels = (
            torch.from_numpy(_dataset_labels(dataset)).to(self.device) if labels else None
        )
        self._step = 0  # global batches drawn so far

    # -- position --------------------------------------------------------------------------
    @property
    def batches_drawn(self) -> int:
        """Global batches drawn so far (the same on every rank)."""
        return self._step

    @property
    def epoch(self) -> int:
        """The epoch the next batch starts in (0-based)."""
        return self._step * self.global_batch_size // self.length

    @property
    def offset(self) -> int:
        """How many rows of the current epoch's permutation are already used."""
        return self._step * self.global_batch_size % self.length

    @property
    def epochs_seen(self) -> float:
        """Fractional number of passes over the data so far (for logs and schedules)."""
        return self._step * self.global_batch_size / self.length

    # -- drawing ---------------------------------------------------------------------------
    def next(self) -> Batch:
        """The next batch of this rank."""
        step = self._step
        index = self._stream.take(
            step * self.global_batch_size + self.rank * self.batch_size, self.batch_size
        )
        x = self._transform(self._gather(index, step), step)
        labels = None if self._labels is None else self._labels.index_select(0, index)
        self._step = step + 1
        return Batch(x, index, labels)

    __next__ = next

    def __iter__(self) -> Iterator[Batch]:
        return self

    @abc.abstractmethod
    def _gather(self, index: torch.Tensor, step: int) -> torch.Tensor | np.ndarray:
        """uint8 ``[B, C, H, W]`` images of rows ``index`` (of global batch ``step``)."""

    # -- exact resume ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        """Plain ints: enough, with the same dataset and settings, to continue bit-identically."""
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "epoch": self.epoch,
            "offset": self.offset,
            "batches_drawn": self._step,
            "dataset_length": self.length,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from ``state``; raises ValueError naming what does not match.

        Seed, dataset length, batch size and world size must match: with any of them changed
        the saved position would point into a different stream. The rank may differ (every
        rank saves the same position) and so may the transform.
        """
        required = ("version", "seed", "epoch", "offset", "batches_drawn")
        required += ("dataset_length", "batch_size", "world_size")
        missing = [k for k in required if k not in state]
        if missing:
            raise ValueError(f"batcher state is missing {missing}; got keys {sorted(state)}")
        bad = [k for k in required if isinstance(state[k], bool) or not isinstance(state[k], int)]
        if bad:
            raise ValueError(f"batcher state entries {bad} must be ints")
        if state["version"] != STATE_VERSION:
            raise ValueError(
                f"batcher state version {state['version']} is not supported "
                f"(this code reads version {STATE_VERSION})"
            )
        for key, mine in (
            ("dataset_length", self.length),
            ("batch_size", self.batch_size),
            ("world_size", self.world_size),
            ("seed", self.seed),
        ):
            if state[key] != mine:
                raise ValueError(
                    f"batcher state was saved with {key}={state[key]}, but this batcher has "
                    f"{key}={mine}; resuming would not continue the same stream"
                )
        step = state["batches_drawn"]
        if step < 0:
            raise ValueError(f"batcher state has negative batches_drawn={step}")
        epoch, offset = divmod(step * self.global_batch_size, self.length)
        if (state["epoch"], state["offset"]) != (epoch, offset):
            raise ValueError(
                f"batcher state is inconsistent: batches_drawn={step} of "
                f"{self.global_batch_size} rows over {self.length} rows means epoch {epoch} "
                f"offset {offset}, but it says epoch {state['epoch']} offset {state['offset']}"
            )
        self._step = step
        self._restart()

    def _restart(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Hook: the position jumped (loader mode must restart its workers)."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(rows={self.length}, batch_size={self.batch_size}, "
            f"rank={self.rank}/{self.world_size}, device={self.device}, "
            f"transform={self.transform!r}, bits={self.bits}, epoch={self.epoch}, "
            f"offset={self.offset})"
        )


class DeviceBatcher(_Batcher):
    """Holds the dataset on the device as ``uint8`` and gathers batches there by index.

    The uint8 copy is a quarter of a float32 one, and a batch costs one gather and one
    conversion: no workers, no per-item Python, no host-device synchronisation (the
    per-epoch permutation upload is the only transfer). On the CPU the images stay where they
    are (no copy when the array is already contiguous and writable) and the gather is a NumPy
    ``take`` on the calling thread, which measures as fast as a bare ``take`` + ``astype``.
    ``LazyImages`` are not materialised: their ``render`` draws each batch from its indices
    on the device.
    """

    kind = "device"

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
        transform: str = "float",
        bits: int = 8,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
        labels: bool = False,
    ):
        super().__init__(
            dataset,
            batch_size,
            device,
            seed,
            transform,
            bits,
            rank,
            world_size,
            channels_last,
            labels,
        )
        images = dataset.images
        if hasattr(images, "render"):
            self._lazy = images
            self.images: torch.Tensor | None = None
        else:
            self._lazy = None
            array = np.ascontiguousarray(images)
            if not array.flags.writeable:  # e.g. a read-only memmap; torch wants writable
                array = array.copy()
            self.images = torch.from_numpy(array).to(self.device)

    def _gather(self, index: torch.Tensor, step: int) -> torch.Tensor | np.ndarray:
        if self._lazy is not None:
            out = self._lazy.render(index)
            if out.dtype != torch.uint8:
                raise TypeError(
                    f"{type(self._lazy).__name__}.render returned {out.dtype}, not uint8"
                )
            return out
        return self.images.index_select(0, index)


class _RowsDataset(Dataset):
    """Worker side of :class:`LoaderBatcher`: one call gathers a whole batch as uint8.

    Rows are read in increasing order (what HDF5 requires and what keeps memory-mapped reads
    sequential) and then put back in batch order. A memory-mapped array travels to workers
    started by spawn or forkserver as its file name, not as its contents (NumPy would pickle
    the whole file into every worker).
    """

    def __init__(self, images: Any):
        self.images = images

    def __getstate__(self) -> dict[str, Any]:
        images = self.images
        if isinstance(images, np.memmap) and isinstance(images.base, mmap.mmap):
            layout = (images.filename, images.dtype.str, images.offset, images.shape)
            return {"memmap": layout}
        return {"images": images}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "memmap" in state:
            filename, dtype, offset, shape = state["memmap"]
            self.images = np.memmap(filename, dtype=dtype, mode="r", offset=offset, shape=shape)
        else:
            self.images = state["images"]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, row: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.images[row]))

    def __getitems__(self, rows: list[int]) -> torch.Tensor:
        unique, inverse = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
        block = np.asarray(self.images[unique])
        if len(unique) != len(rows) or (inverse != np.arange(len(rows))).any():
            block = block[inverse]
        return torch.from_numpy(np.ascontiguousarray(block, dtype=np.uint8))


def _as_is(batch: torch.Tensor) -> torch.Tensor:
    """Collate function: the worker already built the batch tensor."""
    return batch


class _StreamBatchSampler(Sampler[list[int]]):
    """Yields this rank's row lists from the shared :class:`IndexStream`, from ``start_step``."""

    def __init__(
        self, length: int, seed: int, batch_size: int, world_size: int, rank: int, start_step: int
    ):
        self.stream = IndexStream(length, seed, "cpu")
        self.batch_size = batch_size
        self.global_batch_size = batch_size * world_size
        self.rank = rank
        self.start_step = start_step

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            start = step * self.global_batch_size + self.rank * self.batch_size
            yield self.stream.take(start, self.batch_size).tolist()
            step += 1


class LoaderBatcher(_Batcher):
    """Reads uint8 batches through a DataLoader with workers; otherwise like DeviceBatcher.

    For images that do not fit on the device (memory-mapped or HDF5-backed arrays, large
    folders). The batch sampler walks the same :class:`IndexStream`, workers read
    ``images[sorted rows]`` as uint8, and the main process moves the batch to the device
    and applies the same device-side transforms, so with the same settings the batches are
    identical to :class:`DeviceBatcher`'s. The DataLoader starts on the first batch and
    restarts from the new position after :meth:`load_state_dict`.
    """

    kind = "loader"

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
        transform: str = "float",
        bits: int = 8,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 2,
        channels_last: bool = False,
        labels: bool = False,
        prefetch_factor: int = 2,
    ):
        super().__init__(
            dataset,
            batch_size,
            device,
            seed,
            transform,
            bits,
            rank,
            world_size,
            channels_last,
            labels,
        )
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.num_workers = int(num_workers)
        self.prefetch_factor = int(prefetch_factor)
        self._rows = _RowsDataset(dataset.images)
        self._iterator: Iterator[torch.Tensor] | None = None
        self._pin = self.device.type == "cuda"

    def _start(self) -> Iterator[torch.Tensor]:
        sampler = _StreamBatchSampler(
            self.length, self.seed, self.batch_size, self.world_size, self.rank, self._step
        )
        extra: dict[str, Any] = {}
        if self.num_workers > 0:
            extra["prefetch_factor"] = self.prefetch_factor
        loader = DataLoader(
            self._rows,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=_as_is,
            pin_memory=self._pin,
            **extra,
        )
        return iter(loader)

    def _gather(self, index: torch.Tensor, step: int) -> torch.Tensor:
        if self._iterator is None:
            self._iterator = self._start()
        return next(self._iterator).to(self.device, non_blocking=self._pin)

    def _restart(self) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers now (they also stop when the batcher is garbage collected)."""
        iterator, self._iterator = self._iterator, None
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()


def _default_memory_limit(device: torch.device) -> int:
    """A quarter of the device's memory: the rest is left to the model and activations."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.cuda.get_device_properties(index).total_memory // 4
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = 16 * 2**30
    return int(total) // 4


def make_batcher(
    dataset: Any,
    batch_size: int,
    device: torch.device | str = "cpu",
    seed: int = 0,
    transform: str = "float",
    bits: int = 8,
    rank: int = 0,
    world_size: int = 1,
    mode: Literal["auto", "device", "loader"] = "auto",
    num_workers: int = 2,
    memory_limit_bytes: int | None = None,
    channels_last: bool = False,
    labels: bool = False,
) -> DeviceBatcher | LoaderBatcher:
    """The right batcher for ``dataset``: on the device when its uint8 images fit.

    ``mode="auto"``: LazyImages always go on the device (they take no memory); an in-memory
    ``np.ndarray`` (not a memmap) whose ``nbytes`` is below ``memory_limit_bytes`` (default:
    a quarter of the device's memory) goes on the device; anything else (memmap, HDF5,
    too large) goes through a DataLoader.
    """
    device = torch.device(device)
    if mode not in ("auto", "device", "loader"):
        raise ValueError(f"unknown batcher mode {mode!r}; allowed: 'auto', 'device', 'loader'")
    if mode == "auto":
        images = dataset.images
        limit = _default_memory_limit(device) if memory_limit_bytes is None else memory_limit_bytes
        in_memory = isinstance(images, np.ndarray) and not isinstance(images, np.memmap)
        if hasattr(images, "render") or (in_memory and images.nbytes < limit):
            mode = "device"
        else:
            mode = "loader"
    common = dict(
        device=device,
        seed=seed,
        transform=transform,
        bits=bits,
        rank=rank,
        world_size=world_size,
        channels_last=channels_last,
        labels=labels,
    )
    if mode == "device":
        return DeviceBatcher(dataset, batch_size, **common)
    return LoaderBatcher(dataset, batch_size, num_workers=num_workers, **common)
