"""IRS, the interventional robustness score (Suter et al. 2019), disentanglement_lib protocol
(``specs/metrics.md`` §10).

For each code dim and factor: how far the code moves (the 99th percentile of |z − E[z|y_k]|)
when every other factor changes while y_k is held, relative to the code's largest deviation
from its mean. A dim scores its best factor; the score is the max-deviation-weighted average.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vaelab.config import spec
from vaelab.metrics.core import (
    MetricContext,
    Protocol,
    factor_subset,
    histogram_discretize,
    sample_points,
)
from vaelab.registry import METRICS


def irs_score(codes: np.ndarray, factors: np.ndarray, quantile: float = 0.99) -> dict[str, float]:
    """IRS of codes ``[N, D]`` given discrete factors ``[N, K]`` (dlib
    ``scalable_disentanglement_score`` after dropping zero-variance dims)."""
    codes = codes[:, codes.var(axis=0) > 0]
    if codes.shape[1] == 0:
        return {"irs": 0.0, "num_active_dims": 0}
    max_dev = np.abs(codes - codes.mean(axis=0)).max(axis=0)  # [D]
    dev = np.zeros((codes.shape[1], factors.shape[1]))
    for k in range(factors.shape[1]):
        values = np.unique(factors[:, k])
        for v in values:
            group = codes[factors[:, k] == v]
            dev[:, k] += np.percentile(np.abs(group - group.mean(axis=0)), 100 * quantile, axis=0)
        dev[:, k] /= len(values)
    per_dim = (1.0 - dev / max_dev[:, None]).max(axis=1)
    score = np.average(per_dim, weights=max_dev) if max_dev.sum() > 0 else per_dim.mean()
    return {"irs": float(score), "num_active_dims": int(codes.shape[1])}


@dataclass
class IRSParams(Protocol):
    num_points: int = spec(10_000, minimum=2, help="points sampled (dlib: 10,000)")
    quantile: float = spec(0.99, minimum=0.0, maximum=1.0, help="quantile of |z − E[z|y]|")
    bins: int = spec(20, minimum=2, help="histogram bins applied to the factors, as dlib")


@METRICS.register(
    "irs",
    "interventional robustness score (dlib: 10,000 points, 99th percentile)",
    params=IRSParams,
    kind="disentanglement",
    default=True,
)
def irs(ctx: MetricContext, p: IRSParams) -> dict[str, float]:
    data = ctx.ground_truth()
    columns = factor_subset(data, p.factors)
    codes, ys = sample_points(ctx.codes(), data, p.num_points, ctx.rng())
    return irs_score(codes, histogram_discretize(ys[:, columns], p.bins), p.quantile)
