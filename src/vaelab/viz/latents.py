"""Posterior codes of a whole split, saved as one ``.npz`` for analysis outside vaelab.

The file holds plain arrays only, so ``np.load(path, allow_pickle=False)`` reads it:

* ``mean`` and ``log_var`` — float32 ``[N, D]``, the parameters of q(z|x) for each image;
* ``factors`` (int64 ``[N, K]``), ``factor_names`` (unicode ``[K]``) and ``factor_sizes``
  (int64 ``[K]``) for ground-truth datasets; ``labels`` ``[N]`` for labelled ones;
* ``meta`` — a 0-d unicode array holding a JSON object (run, split, how the images were
  transformed, vaelab version).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaelab import __version__
from vaelab.data.base import GroundTruthDataset, ImageDataset
from vaelab.rundir import atomic_open

META_KEY = "meta"


@torch.no_grad()
def encode_split(
    model: torch.nn.Module,
    dataset: ImageDataset,
    batch_size: int,
    device: str | torch.device,
    transform: str = "float",
    bits: int = 8,
    limit: int | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Posterior means and log-variances of the whole split in stored order, or of
    ``limit`` images drawn with ``seed`` (``rows`` says which), with the dataset's factors or
    labels for the same rows.

    ``transform`` and ``bits`` must be the run's (``cfg.data``); ``seed`` seeds random
    transforms (dynamic binarisation, dequantisation) so two exports agree. The model is put
    in eval mode for the encoding and restored afterwards.
    """
    from vaelab.train.evaluation import evaluation_rows, iterate_images

    means, log_vars = [], []
    was_training = model.training
    model.eval()
    try:
        for x in iterate_images(dataset, batch_size, device, transform, bits, seed, limit):
            posterior = model.encode(x)
            means.append(posterior.mean.float().cpu().numpy())  # [B, D]
            log_vars.append(posterior.log_var.float().cpu().numpy())
    finally:
        model.train(was_training)
    n = sum(len(m) for m in means)
    if n == 0:
        raise ValueError(f"dataset {dataset.name!r} ({dataset.split}) has no images to encode")
    rows = evaluation_rows(len(dataset), limit, seed)
    arrays = {"mean": np.concatenate(means), "log_var": np.concatenate(log_vars), "rows": rows}
    if isinstance(dataset, GroundTruthDataset):
        arrays["factors"] = np.asarray(dataset.factors[rows], dtype=np.int64)
        arrays["factor_names"] = np.array(dataset.factor_names, dtype=str)
        arrays["factor_sizes"] = np.array(dataset.factor_sizes, dtype=np.int64)
    if dataset.labels is not None:
        arrays["labels"] = np.asarray(dataset.labels[rows])
    return arrays


def write_latents(
    path: str | Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> Path:
    """Save ``arrays`` and ``meta`` (stored as JSON in the entry ``meta``, with
    ``vaelab_version`` added) to the ``.npz`` file ``path`` atomically; ``path`` is used as
    given (numpy would otherwise append ``.npz`` to a name without it)."""
    if META_KEY in arrays:
        raise ValueError(f"write_latents: {META_KEY!r} is reserved for the metadata")
    plain = {}
    for key, value in arrays.items():
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise ValueError(
                f"write_latents: array {key!r} has dtype object, which np.load cannot read "
                "without pickle; use numbers or fixed-width strings"
            )
        plain[key] = array
    text = json.dumps({**meta, "vaelab_version": __version__}, default=str)
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **plain, **{META_KEY: np.array(text)})
    return path


def read_latents(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the metadata of a file written by :func:`write_latents`."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files if key != META_KEY}
        meta = json.loads(str(data[META_KEY])) if META_KEY in data.files else {}
    return arrays, meta
