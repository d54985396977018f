"""Scores that need no factors (disentanglement_lib ``unsupervised_metrics.py``;
``specs/metrics.md`` §11): Gaussian total correlation and Wasserstein correlation of the
codes' covariance, and the mean pairwise mutual information of discretised codes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vaelab.config import spec
from vaelab.data.base import GroundTruthDataset
from vaelab.metrics.core import (
    MetricContext,
    histogram_discretize,
    mutual_information_matrix,
    sample_points,
)
from vaelab.registry import METRICS


def gaussian_total_correlation(cov: np.ndarray) -> float:
    """KL(N(0, Σ) ‖ N(0, diag Σ)) = ½(Σ_i log Σ_ii − log det Σ)."""
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1]))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    """Squared 2-Wasserstein distance between N(0, Σ) and N(0, diag Σ):
    2 tr Σ − 2 tr((diag Σ · Σ)^½)."""
    from scipy.linalg import sqrtm

    root = sqrtm(np.diag(cov)[:, None] * cov)
    return float(2 * np.trace(cov) - 2 * np.real(np.trace(root)))


def unsupervised_scores(codes: np.ndarray, bins: int = 20) -> dict[str, float]:
    """The three dlib scores of codes ``[N, D]``.

    Dims that are exactly constant make Σ singular (dlib returns NaN); they are left out of
    the Gaussian scores and counted in ``constant_dims``.
    """
    varying = codes.var(axis=0) > 0
    out: dict[str, float] = {"constant_dims": int((~varying).sum())}
    if varying.sum() >= 1:
        cov = np.atleast_2d(np.cov(codes[:, varying], rowvar=False))
        out["gaussian_total_correlation"] = gaussian_total_correlation(cov)
        wasserstein = gaussian_wasserstein_correlation(cov)
        out["gaussian_wasserstein_correlation"] = wasserstein
        out["gaussian_wasserstein_correlation_norm"] = wasserstein / float(np.trace(cov))
    d = codes.shape[1]
    if d >= 2:
        discrete = histogram_discretize(codes, bins)
        mi = mutual_information_matrix(discrete, discrete)
        np.fill_diagonal(mi, 0.0)
        out["mutual_info_score"] = float(mi.sum() / (d * d - d))
    return out


@dataclass
class UnsupervisedParams:
    num_points: int = spec(10_000, minimum=2, help="points sampled (dlib: 10,000)")
    bins: int = spec(20, minimum=2, help="equal-width bins per code dimension")


@METRICS.register(
    "unsupervised",
    "Gaussian total/Wasserstein correlation, pairwise code MI (dlib)",
    params=UnsupervisedParams,
    kind="disentanglement",
    default=True,
)
def unsupervised(ctx: MetricContext, p: UnsupervisedParams) -> dict[str, float]:
    rng = ctx.rng()
    if isinstance(ctx.dataset, GroundTruthDataset):
        codes, _ = sample_points(ctx.codes(), ctx.dataset, p.num_points, rng)
    else:  # any image dataset: rows drawn uniformly
        codes = ctx.codes()(rng.integers(len(ctx.dataset), size=p.num_points), rng)
    return unsupervised_scores(codes, p.bins)
