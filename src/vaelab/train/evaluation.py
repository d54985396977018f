"""Loss terms on a held-out split, in a fixed order, without touching the training RNG."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vaelab.data.base import ImageDataset
from vaelab.data.transforms import Transform, data_scale

EVAL_STEP = 2**62
"""The step passed to ``model.loss`` in evaluation: every schedule is at its final value
(warm-ups done, capacity at C_max), as in the reference evaluations."""


def iterate_images(
    dataset: ImageDataset,
    batch_size: int,
    device: torch.device,
    transform: str = "float",
    bits: int = 8,
    seed: int = 0,
    limit: int | None = None,
):
    """Float batches of the whole dataset in stored order, or of ``limit`` images drawn
    without replacement with ``seed`` (sorted; a prefix would be biased on datasets stored in
    factor order, such as dSprites); the last batch may be smaller.

    Random transforms (dynamic binarisation, dequantisation) are seeded by ``seed`` and the
    batch number, so two evaluations see identical inputs.
    """
    convert = Transform(transform, bits, data_scale(dataset), seed, 0, torch.device(device), False)
    order = evaluation_rows(len(dataset), limit, seed)
    for number, start in enumerate(range(0, len(order), batch_size)):
        yield convert(images_at(dataset, order[start : start + batch_size], device), number)


def evaluation_rows(size: int, limit: int | None, seed: int) -> np.ndarray:
    """The rows :func:`iterate_images` visits: all ``size``, or ``limit`` of them drawn
    without replacement with ``seed``, sorted."""
    if limit is None or limit >= size:
        return np.arange(size)
    return np.sort(np.random.default_rng(seed).choice(size, int(limit), replace=False))


def images_at(dataset: ImageDataset, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """The uint8 images ``[M, C, H, W]`` at ``rows`` (any order, repeats allowed), on
    ``device``; rendered there for on-demand datasets."""
    images = dataset.images
    if hasattr(images, "render"):
        return images.render(torch.as_tensor(rows, dtype=torch.int64, device=device))
    rows = np.asarray(rows, dtype=np.int64)
    if isinstance(images, np.ndarray) and not isinstance(images, np.memmap):
        return torch.from_numpy(images[rows]).to(device)
    # memory-mapped / HDF5: read in increasing order (fast, and what h5py requires)
    unique, inverse = np.unique(rows, return_inverse=True)
    return torch.from_numpy(np.ascontiguousarray(images[unique])[inverse]).to(device)


@torch.no_grad()
def evaluate_loss(
    model: nn.Module,
    dataset: ImageDataset,
    batch_size: int,
    device: torch.device,
    transform: str = "float",
    bits: int = 8,
    seed: int = 0,
    limit: int | None = None,
) -> dict[str, float | list[float]]:
    """Image-weighted means of ``model.loss``'s terms over ``dataset`` (eval mode).

    Runs inside ``torch.random.fork_rng`` seeded with ``seed``: the posterior samples drawn
    here are reproducible and the training stream of random numbers is left untouched.
    """
    was_training = model.training
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    count = 0
    devices = [device] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for x in iterate_images(dataset, batch_size, device, transform, bits, seed, limit):
            out = model.loss(x, EVAL_STEP)
            terms = {"loss": out.loss, **out.terms}
            for name, value in terms.items():
                value = value.detach().double() * len(x)
                sums[name] = sums[name] + value if name in sums else value
            count += len(x)
    model.train(was_training)
    result: dict[str, float | list[float]] = {}
    for name, total in sums.items():
        mean = (total / max(count, 1)).cpu()
        result[name] = mean.item() if mean.dim() == 0 else mean.tolist()
    result["images"] = count
    return result
