"""On-device conversion of uint8 batches to float: scale, binarise, threshold, dequantise,
and reduce the bit depth."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vaelab.data.stream import TAG_NOISE, mix_seed

TRANSFORMS = ("float", "binarize", "threshold", "dequantize")
"""Names accepted by ``transform``."""

# Dequantisation noise is scaled by this so that (q + u) never rounds up to q + 1 in float32
# (q <= 255 has float32 spacing 2**-16 near 256); the bias it adds is below 1e-5 of a level.
_U_MAX = 1.0 - 2.0**-16


def check_choice(transform: str, bits: int) -> None:
    if transform not in TRANSFORMS:
        raise ValueError(
            f"unknown transform {transform!r}; allowed: {', '.join(repr(t) for t in TRANSFORMS)}"
        )
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not 1 <= bits <= 8:
        raise ValueError(f"bits must be an integer in 1..8, got {bits!r}")


def data_scale(dataset: Any) -> int:
    """255 for 0..255 images, 1 for images stored as {0, 1} (dSprites-like).

    Decided once, from the data maximum: dividing {0, 1} data by 255 would silently give a
    nearly black dataset. A ``max_value`` attribute on the images or the dataset is
    trusted without reading the data; LazyImages without one are taken to be {0, 1}.
    In-memory arrays are scanned fully; other array-likes (memory-mapped, HDF5) are scanned
    on at most 1024 evenly spaced images, so that building a batcher never reads a whole
    large file.
    """
    images = dataset.images
    for owner in (images, dataset):
        value = getattr(owner, "max_value", None)
        if value is not None:
            return 1 if value <= 1 else 255
    if hasattr(images, "render"):
        return 1
    n = len(images)
    if n == 0:
        return 255
    if isinstance(images, np.ndarray) and not isinstance(images, np.memmap):
        peak = int(images.max())
    else:
        rows = np.unique(np.linspace(0, n - 1, num=min(n, 1024)).astype(np.int64))
        peak = int(np.asarray(images[rows]).max())
    return 1 if peak <= 1 else 255


class Transform:
    """uint8 batch -> float32 batch on the device, as one short chain of array ops.

    Levels: 0..255 data reduced to ``bits`` has ``L = 2**bits`` levels ``q = v >> (8 - bits)``;
    {0, 1} data has ``L = 2``. "float" is ``q / (L - 1)`` (so {0, 1} stays {0, 1});
    "threshold" is ``float > 0.5``; "binarize" is a Bernoulli draw of ``float``;
    "dequantize" is ``(q + U[0, 1)) / L``, uniform within the level's bin.

    With two levels (dSprites-like data, or ``bits=1``) "float", "threshold" and "binarize"
    are all the same plain cast (a Bernoulli draw of 0 or 1 is certain), so no noise is drawn.

    The same torch ops run on every device (on a quiet 2-core CPU, gather + conversion of a
    batch of 64 dSprites images takes about 32 us, half of what NumPy's ``take`` + ``astype``
    takes; when another process holds the cores, torch's thread pool can stall, as it does
    for the model's own convolutions).
    """

    def __init__(
        self,
        name: str,
        bits: int,
        scale: int,
        seed: int,
        rank: int,
        device: torch.device,
        channels_last: bool,
    ):
        check_choice(name, bits)
        if scale == 1 and bits != 8:
            raise ValueError(
                f"bits={bits} needs 0..255 images, but this dataset stores {{0, 1}} values; "
                "use bits=8"
            )
        self.name = name
        self.shift = 8 - int(bits)
        self.levels = 2 if scale == 1 else 2 ** int(bits)
        self.denominator = self.levels - 1
        self.seed = int(seed)
        self.rank = int(rank)
        self.channels_last = channels_last
        if self.denominator == 1 and name != "dequantize":
            self.op = "cast"
        else:
            self.op = "scale" if name == "float" else name
        self._gen = (
            torch.Generator(device=device) if self.op in ("binarize", "dequantize") else None
        )

    def __call__(self, u8: torch.Tensor | np.ndarray, batch_number: int) -> torch.Tensor:
        """``u8``: the uint8 batch ``[B, C, H, W]`` on the device (or a NumPy array on the CPU)."""
        if isinstance(u8, np.ndarray):
            u8 = torch.from_numpy(u8)
        return self._torch(u8, batch_number)

    def _torch(self, u8: torch.Tensor, batch_number: int) -> torch.Tensor:
        if self.channels_last:
            # Reorder the (4x smaller) uint8 batch; the elementwise ops below keep the format.
            u8 = u8.contiguous(memory_format=torch.channels_last)
        q = torch.bitwise_right_shift(u8, self.shift) if self.shift else u8
        op = self.op
        if op == "cast":
            x = q.to(torch.float32)
        elif op == "scale":
            x = q.to(torch.float32).div_(self.denominator)
        elif op == "threshold":
            x = torch.gt(q, 0.5 * self.denominator).to(torch.float32)
        elif op == "binarize":
            p = q.to(torch.float32).div_(self.denominator)
            x = torch.lt(self._noise(q.shape, batch_number), p).to(torch.float32)
        else:  # dequantize
            x = self._noise(q.shape, batch_number).mul_(_U_MAX).add_(q).div_(self.levels)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _noise(self, shape: tuple[int, ...], batch_number: int) -> torch.Tensor:
        """Uniform [0, 1) noise (contiguous, per logical pixel), seeded by the batch number."""
        assert self._gen is not None
        self._gen.manual_seed(mix_seed(TAG_NOISE, self.seed, batch_number, self.rank))
        return torch.rand(shape, generator=self._gen, device=self._gen.device)
