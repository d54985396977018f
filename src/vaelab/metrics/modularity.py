"""Modularity and explicitness (Ridgeway & Zemel 2018, NeurIPS, §3).

Array-level math of ``specs/metrics.md`` §9, following disentanglement_lib (dlib)
``modularity_explicitness.py``. Codes are float arrays ``[N, D]``, factors integer class
arrays ``[N, K]`` (one row per point).
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
    mutual_information_matrix,
    sample_points,
)
from vaelab.metrics.dci import check_points
from vaelab.registry import METRICS


def modularity(mutual_info: np.ndarray) -> float:
    """Mean over codes of 1 − δ_i, δ_i = (Σ_k m_ik² − θ_i) / (θ_i (K − 1)), θ_i = max_k m_ik².

    ``mutual_info`` is the ``[D, K]`` matrix of MI between (discretised) codes and factors
    (paper Eq. 2 with the "ideal" template t_i = the code's largest MI). As in dlib, a code with
    no information about any factor (θ_i = 0) scores 0. With a single factor (K = 1) every
    informative code scores 1 (dlib divides 0 by 0 and returns NaN).
    """
    mutual_info = np.asarray(mutual_info, dtype=np.float64)
    if mutual_info.ndim != 2 or mutual_info.size == 0:
        raise ValueError(f"mutual_info must be a non-empty [D, K] matrix, got {mutual_info.shape}")
    if not np.all(np.isfinite(mutual_info)) or np.any(mutual_info < 0):
        raise ValueError("mutual_info must be finite and non-negative")
    squared = mutual_info**2
    theta = squared.max(axis=1)  # [D]
    num_factors = squared.shape[1]
    per_code = np.zeros(squared.shape[0])
    informative = theta > 0
    if num_factors == 1:
        per_code[informative] = 1.0
    else:
        rest = squared.sum(axis=1) - theta
        per_code[informative] = 1.0 - rest[informative] / (theta[informative] * (num_factors - 1))
    return float(np.mean(per_code))


def _standardise(codes_train: np.ndarray, codes_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets scaled with the training mean and (ddof 0) std, as dlib ``normalize_data``.

    A constant training code has std 0; dlib then divides by zero and the classifier fails on
    NaN. Here its std is taken as 1, so it stays an (uninformative) centred feature.
    """
    mean = codes_train.mean(axis=0)
    std = codes_train.std(axis=0)
    std[std == 0] = 1.0
    return (codes_train - mean) / std, (codes_test - mean) / std


def _macro_auc(labels: np.ndarray, probabilities: np.ndarray, classes: np.ndarray) -> float:
    """Mean over classes of the ROC-AUC of "label == class" vs that class's probability.

    dlib calls ``roc_auc_score`` on one-hot labels built from the evaluated set alone, which
    fails when that set lacks a class the classifier knows (or has one it does not). Rule
    here: a class with no positive or no negative point in the set has no AUC and is left out
    of the mean; points of a class unseen in training count as negatives for every class.
    Whenever dlib's call succeeds this is exactly its macro average.
    """
    from sklearn.metrics import roc_auc_score

    aucs = []
    for column, cls in enumerate(classes):
        positive = labels == cls
        if 0 < positive.sum() < labels.size:
            aucs.append(roc_auc_score(positive, probabilities[:, column]))
    if not aucs:
        raise ValueError("no class has both positive and negative points; ROC-AUC is undefined")
    return float(np.mean(aucs))


def explicitness(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    seed: int = 0,
) -> tuple[float, float]:
    """Explicitness on the training and the test points (paper §3, "explicitness").

    Codes are standardised with the training mean and std; for each factor a one-vs-rest
    logistic regression on all codes gives class probabilities, scored by ROC-AUC macro-averaged
    over classes (see :func:`_macro_auc` for classes missing from a set); the result is the
    mean over factors. Perfectly explicit codes score 1, uninformative ones about 0.5.

    The classifier is pinned to what dlib's ``LogisticRegression()`` was when it ran
    (scikit-learn ≤ 0.21: liblinear, one-vs-rest, C = 1, L2 with penalised intercept, tol 1e-4,
    100 iterations, probabilities = sigmoids normalised to sum 1); scikit-learn's defaults have
    since moved to multinomial lbfgs. ``seed`` is liblinear's ``random_state``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    codes_train, factors_train, codes_test, factors_test = check_points(
        codes_train, factors_train, codes_test, factors_test
    )
    codes_train, codes_test = _standardise(codes_train, codes_test)
    train_scores, test_scores = [], []
    for k in range(factors_train.shape[1]):
        classifier = OneVsRestClassifier(
            LogisticRegression(
                solver="liblinear",
                C=1.0,
                l1_ratio=0.0,
                fit_intercept=True,
                intercept_scaling=1.0,
                tol=1e-4,
                max_iter=100,
                random_state=seed,
            )
        ).fit(codes_train, factors_train[:, k])
        for codes, labels, scores in (
            (codes_train, factors_train[:, k], train_scores),
            (codes_test, factors_test[:, k], test_scores),
        ):
            probabilities = classifier.predict_proba(codes)
            scores.append(_macro_auc(labels, probabilities, classifier.classes_))
    return float(np.mean(train_scores)), float(np.mean(test_scores))


# -- registered metric -------------------------------------------------------------------------
@dataclass
class ModularityParams(Protocol):
    num_train: int = spec(10_000, minimum=2, help="points for modularity and to fit")
    num_test: int = spec(5_000, minimum=1, help="points to score explicitness")
    bins: int = spec(20, minimum=2, help="equal-width bins per code dimension")


@METRICS.register(
    "modularity",
    "modularity and explicitness (Ridgeway & Zemel 2018; dlib: 10k/5k points)",
    params=ModularityParams,
    kind="disentanglement",
    default=True,
)
def modularity_explicitness(ctx: MetricContext, p: ModularityParams) -> dict[str, float]:
    data, rng = ctx.ground_truth(), ctx.rng()
    columns = factor_subset(data, p.factors)
    codes_train, factors_train = sample_points(ctx.codes(), data, p.num_train, rng)
    codes_test, factors_test = sample_points(ctx.codes(), data, p.num_test, rng)
    factors_train, factors_test = factors_train[:, columns], factors_test[:, columns]
    mi = mutual_information_matrix(histogram_discretize(codes_train, p.bins), factors_train)
    train, test = explicitness(codes_train, factors_train, codes_test, factors_test, ctx.seed)
    return {
        "modularity": modularity(mi),
        "explicitness_train": train,
        "explicitness_test": test,
    }
