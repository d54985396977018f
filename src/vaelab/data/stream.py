"""The endless, seeded stream of dataset rows that every batcher cuts its batches from.

The permutation of epoch ``e`` comes from NumPy's PCG64 seeded with a hash of ``(seed, e)``:
the same on every device, rank and platform, and needing no saved generator state, so the
position in the stream is the whole state of a batcher.
"""

from __future__ import annotations

import numpy as np
import torch

_MASK64 = (1 << 64) - 1
TAG_PERMUTATION = 0x5045524D  # "PERM": keeps permutation seeds apart from noise seeds
TAG_NOISE = 0x4E4F4953  # "NOIS"


def mix_seed(*words: int) -> int:
    """A 63-bit seed from integers (splitmix64 steps): nearby inputs give unrelated seeds.

    Seeding with e.g. ``seed + epoch`` would make seed 0 epoch 1 equal seed 1 epoch 0.
    """
    h = 0x9E3779B97F4A7C15
    for w in words:
        h = (h ^ (int(w) & _MASK64)) & _MASK64
        h = (h + 0x9E3779B97F4A7C15) & _MASK64
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK64
        h ^= h >> 31
    return h >> 1


class IndexStream:
    """The endless stream of dataset rows shared by both batchers (see the module docstring).

    ``take(start, count)`` returns the rows at stream positions ``[start, start + count)``
    as an int64 tensor on ``device``. Permutations are generated on the CPU by NumPy's PCG64
    (so every device and platform gets the same ones) and moved to ``device`` once per epoch;
    slices are views of them, so taking rows never synchronises with the device.
    """

    def __init__(self, length: int, seed: int, device: torch.device | str = "cpu"):
        if length < 1:
            raise ValueError(f"cannot draw batches from an empty dataset (length {length})")
        self.length = int(length)
        self.seed = int(seed)
        self.device = torch.device(device)
        self._perms: dict[int, torch.Tensor] = {}

    def permutation(self, epoch: int) -> torch.Tensor:
        """The order of the rows in ``epoch``, on the stream's device (cached)."""
        perm = self._perms.get(epoch)
        if perm is None:
            rng = np.random.Generator(np.random.PCG64(mix_seed(TAG_PERMUTATION, self.seed, epoch)))
            perm = torch.from_numpy(rng.permutation(self.length)).to(self.device)
            # Positions only move forward: earlier epochs are never needed again.
            for old in [e for e in self._perms if e < epoch]:
                del self._perms[old]
            self._perms[epoch] = perm
        return perm

    def take(self, start: int, count: int) -> torch.Tensor:
        """Rows at stream positions ``[start, start + count)``; crosses epochs as needed."""
        epoch, offset = divmod(start, self.length)
        if offset + count <= self.length:  # the common case, kept short: it runs every batch
            perm = self._perms.get(epoch)
            if perm is None:
                perm = self.permutation(epoch)
            return perm[offset : offset + count]
        parts = []
        while count > 0:
            k = min(self.length - offset, count)
            parts.append(self.permutation(epoch)[offset : offset + k])
            count -= k
            epoch, offset = epoch + 1, 0
        return torch.cat(parts)
