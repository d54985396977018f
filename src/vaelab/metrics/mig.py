"""MIG, the mutual information gap, disentanglement_lib protocol (Chen et al. 2018, as
estimated by Locatello et al. 2019; ``specs/metrics.md`` §1).

For each factor k, the gap between the two largest plug-in MIs of a 20-bin discretised code
with y_k, divided by the sample entropy H(y_k); MIG is the mean gap over factors. Chen et al.'s
full-dataset estimator is a different number: see :mod:`vaelab.metrics.chen`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vaelab.config import spec
from vaelab.metrics.core import (
    MetricContext,
    Protocol,
    entropy,
    factor_subset,
    histogram_discretize,
    mutual_information_matrix,
    sample_points,
)
from vaelab.registry import METRICS


def gaps(mi: np.ndarray, normaliser: np.ndarray) -> np.ndarray:
    """Per column k: (largest − second largest of ``mi[:, k]``) / ``normaliser[k]``.

    ``mi`` is ``[D, K]``; with a single code the second largest is taken as 0.
    """
    ordered = -np.sort(-mi, axis=0)
    second = ordered[1] if len(ordered) > 1 else np.zeros(mi.shape[1])
    return (ordered[0] - second) / normaliser


def discrete_mig(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> dict[str, float]:
    """MIG of codes ``[N, D]`` and factor classes ``[N, K]`` (dlib ``_compute_mig``).

    Factors that are constant in the sample (entropy 0) carry no information to gap over and
    are left out; ``factors_scored`` says how many counted.
    """
    mi = mutual_information_matrix(histogram_discretize(codes, bins), factors)
    h = np.array([entropy(f) for f in factors.T])
    keep = h > 0
    if not keep.any():
        return {"mig": 0.0, "factors_scored": 0}
    per_factor = gaps(mi[:, keep], h[keep])
    return {"mig": float(per_factor.mean()), "factors_scored": int(keep.sum())}


@dataclass
class MIGParams(Protocol):
    num_points: int = spec(10_000, minimum=2, help="points sampled (dlib: 10,000)")
    bins: int = spec(20, minimum=2, help="equal-width bins per code dimension")


@METRICS.register(
    "mig",
    "mutual information gap (dlib: 20 bins, 10,000 points)",
    params=MIGParams,
    kind="disentanglement",
    default=True,
)
def mig(ctx: MetricContext, p: MIGParams) -> dict[str, float]:
    data = ctx.ground_truth()
    columns = factor_subset(data, p.factors)
    codes, ys = sample_points(ctx.codes(), data, p.num_points, ctx.rng())
    return discrete_mig(codes, ys[:, columns], p.bins)
