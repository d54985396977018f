"""BetaVAE score (Higgins et al. 2017, §3), disentanglement_lib protocol
(``specs/metrics.md`` §6).

A point is the mean absolute code difference over L pairs of observations that share one
factor; a linear classifier must tell which factor was shared. The classifier is pinned
(multinomial logistic regression, L2, C = 1, lbfgs) so scores do not drift with
scikit-learn's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vaelab.config import spec
from vaelab.data.base import GroundTruthDataset
from vaelab.metrics.core import MetricContext, Protocol, Representation, factor_subset
from vaelab.registry import METRICS


@dataclass
class BetaVAEParams(Protocol):
    batch_size: int = spec(64, minimum=1, help="pairs averaged per point, L")
    num_train: int = spec(10_000, minimum=2, help="points to fit the classifier")
    num_eval: int = spec(5_000, minimum=1, help="points to score it")
    max_iter: int = spec(1_000, minimum=1, help="lbfgs iterations of the classifier")


def pair_features(
    rep: Representation,
    data: GroundTruthDataset,
    columns: list[int],
    n: int,
    batch: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points: features ``[n, D]`` and the shared factor's position in ``columns``."""
    chosen = rng.integers(len(columns), size=n)
    first = data.sample_factors(n * batch, rng).reshape(n, batch, -1)
    second = data.sample_factors(n * batch, rng).reshape(n, batch, -1)
    fixed = np.asarray(columns)[chosen]
    second[np.arange(n), :, fixed] = first[np.arange(n), :, fixed]
    z1 = rep(data.index_of(first.reshape(n * batch, -1)), rng)
    z2 = rep(data.index_of(second.reshape(n * batch, -1)), rng)
    return np.abs(z1 - z2).reshape(n, batch, -1).mean(axis=1), chosen


def logistic_accuracy(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    seed: int,
    max_iter: int = 1_000,
) -> tuple[float, float]:
    """Train and test accuracy of multinomial logistic regression (L2, C = 1, lbfgs)."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y_train)) < 2:  # one class: the constant prediction is the classifier
        only = y_train[0]
        return 1.0, float(np.mean(y_test == only))
    model = LogisticRegression(C=1.0, solver="lbfgs", max_iter=max_iter, random_state=seed)
    model.fit(x_train, y_train)
    return float(model.score(x_train, y_train)), float(model.score(x_test, y_test))


@METRICS.register(
    "beta_vae",
    "BetaVAE score (logistic regression; dlib: 10k/5k points of 64 pairs)",
    params=BetaVAEParams,
    kind="disentanglement",
    default=True,
    complete_grid=True,
)
def beta_vae(ctx: MetricContext, p: BetaVAEParams) -> dict[str, float]:
    data, rng = ctx.ground_truth(complete=True), ctx.rng()
    columns = factor_subset(data, p.factors)
    x_train, y_train = pair_features(ctx.codes(), data, columns, p.num_train, p.batch_size, rng)
    x_eval, y_eval = pair_features(ctx.codes(), data, columns, p.num_eval, p.batch_size, rng)
    train, test = logistic_accuracy(x_train, y_train, x_eval, y_eval, ctx.seed, p.max_iter)
    return {"train_accuracy": train, "eval_accuracy": test}
