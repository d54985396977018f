"""Disentanglement and likelihood metrics, each run under an explicit protocol.

    from vaelab import metrics
    result = metrics.compute("mig", model_or_function, dataset, seed=0)
    result.values      # {"mig": 0.31, "factors_scored": 5}
    result.protocol    # every parameter the score depends on

Metrics are registered in :data:`vaelab.registry.METRICS` (``vaelab metrics list``); their
protocol defaults follow disentanglement_lib (``specs/metrics.md``). A representation is a
vaelab model or any function mapping a float image batch ``[B, C, H, W]`` to codes ``[B, D]``
(or to ``(mean, log_var)``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from vaelab.config import ConfigError
from vaelab.data.base import GroundTruthDataset, ImageDataset
from vaelab.metrics.core import MetricContext, MetricError, Representation
from vaelab.registry import METRICS

__all__ = [
    "METRICS",
    "MetricError",
    "MetricResult",
    "Representation",
    "compute",
    "compute_many",
    "default_metrics",
]


@dataclass
class MetricResult:
    """One metric's scores and everything needed to reproduce them."""

    metric: str
    values: dict[str, Any]
    protocol: dict[str, Any]
    seconds: float
    images_encoded: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def default_metrics(dataset: ImageDataset, with_model: bool = True) -> list[str]:
    """The metrics ``vaelab evaluate`` runs when none are named: the default disentanglement
    suite on ground-truth datasets, and the default likelihood metrics for models."""
    names = []
    for entry in METRICS:
        if not entry.meta.get("default"):
            continue
        kind = entry.meta.get("kind")
        if kind == "disentanglement" and not isinstance(dataset, GroundTruthDataset):
            continue
        if kind == "likelihood" and not with_model:
            continue
        names.append(entry.name)
    return names


def check_params(name: str, params: Mapping[str, Any] | None) -> Any:
    """The protocol dataclass of metric ``name`` built from ``params`` (validated; unknown
    keys and out-of-range values are errors naming the metric and field)."""
    from vaelab.objectives.base import validated_params

    entry = METRICS.get(name)
    if entry.params is None:
        if params:
            raise MetricError(f"metric {name!r} takes no parameters, got {sorted(params)}")
        return None
    try:
        values = validated_params(entry.params, dict(params or {}), name)
    except ConfigError as err:
        raise MetricError(f"metric parameters: {err}") from None
    return entry.params(**values)


def compute_many(
    names: Iterable[str],
    source: Any,
    dataset: ImageDataset,
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    seed: int = 0,
    representation: str = "mean",
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    transform: str = "float",
    bits: int = 8,
    cache: bool = True,
    progress: bool = False,
) -> list[MetricResult]:
    """Several metrics on one representation; images are encoded once for all of them.

    ``source`` is a vaelab model, a function of images, or a :class:`Representation`.
    ``params`` maps a metric name to its protocol parameters. Every metric draws its own
    random numbers from ``seed``, so a metric's score does not depend on the others run.
    """
    names = list(names)
    params = dict(params or {})
    for key in params:
        if key not in names:
            raise MetricError(f"parameters given for metric {key!r}, which is not being run")
    checked = {name: check_params(name, params.get(name)) for name in names}
    device = torch.device(device)
    model = source if isinstance(source, torch.nn.Module) else None
    rep = Representation.of(
        source,
        dataset,
        kind=representation,
        batch_size=batch_size,
        device=device,
        transform=transform,
        bits=bits,
        cache=cache,
        progress=progress,
    )
    results = []
    for name in names:
        ctx = MetricContext(dataset, seed, rep, model, device, transform, bits, batch_size)
        before, start = rep.images_encoded, time.perf_counter()
        values = METRICS.get(name).target(ctx, checked[name])
        protocol = {
            "dataset": dataset.name,
            "split": dataset.split,
            "seed": seed,
            "representation": representation,
            **(dataclasses.asdict(checked[name]) if checked[name] is not None else {}),
        }
        results.append(
            MetricResult(
                name,
                values,
                protocol,
                round(time.perf_counter() - start, 3),
                rep.images_encoded - before,
                ctx.notes,
            )
        )
    return results


def compute(
    name: str,
    source: Any,
    dataset: ImageDataset,
    *,
    seed: int = 0,
    representation: str = "mean",
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    transform: str = "float",
    bits: int = 8,
    cache: bool = True,
    **params: Any,
) -> MetricResult:
    """Metric ``name`` of ``source`` (a vaelab model or a function of images) on ``dataset``;
    ``params`` are the metric's protocol parameters (``vaelab metrics show NAME``)."""
    return compute_many(
        [name],
        source,
        dataset,
        params={name: params} if params else None,
        seed=seed,
        representation=representation,
        device=device,
        batch_size=batch_size,
        transform=transform,
        bits=bits,
        cache=cache,
    )[0]
