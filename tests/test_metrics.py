"""Disentanglement metrics: closed forms, known good/bad/degenerate representations,
independent brute-force computations, protocol handling and errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from vaelab import metrics
from vaelab.data.base import GroundTruthDataset, ImageDataset
from vaelab.metrics.chen import aam_from_mi, estimate_entropies, mig_from_mi, mig_sup_from_mi
from vaelab.metrics.core import (
    MetricError,
    entropy,
    histogram_discretize,
    mutual_information,
)
from vaelab.metrics.mig import discrete_mig, gaps
from vaelab.metrics.unsupervised import (
    gaussian_total_correlation,
    gaussian_wasserstein_correlation,
    unsupervised_scores,
)

SIZES = (3, 4, 6, 5)


def grid_dataset(sizes=SIZES, keep=None) -> GroundTruthDataset:
    """A complete factor grid whose "images" carry their factor classes in pixels."""
    grid = np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=np.int64)
    if keep is not None:
        grid = grid[keep(grid)]
    images = np.zeros((len(grid), 1, 1, len(sizes)), np.uint8)
    images[:, 0, 0, :] = grid
    names = tuple(f"f{i}" for i in range(len(sizes)))
    return GroundTruthDataset(
        name="toy", images=images, factors=grid, factor_names=names, factor_sizes=sizes
    )


def factors_of(x: torch.Tensor) -> torch.Tensor:
    # images were scaled to [0, 1] by 255 (the data max is above 1): undo it
    return torch.round(x[:, 0, 0, :] * 255)


def identity(x):
    return factors_of(x)


def duplicated(x):
    return torch.cat([identity(x), identity(x)], dim=1)


def constant(x):
    return torch.zeros(len(x), 4)


def mixed(x):  # factors 0 and 1 rotated into two codes; 2 and 3 clean
    f = identity(x)
    return torch.stack([f[:, 0] + f[:, 1], f[:, 0] - f[:, 1], f[:, 2], f[:, 3]], dim=1)


def score(name, fn, data=None, **params):
    return metrics.compute(name, fn, data or grid_dataset(), seed=0, **params).values


# -- building blocks ------------------------------------------------------------------------------
def test_histogram_discretize_follows_dlib_bins():
    codes = np.array([[0.0], [0.49], [0.5], [1.0]])
    assert histogram_discretize(codes, 2)[:, 0].tolist() == [1, 1, 2, 2]  # max in the last bin
    out = histogram_discretize(np.random.default_rng(0).normal(size=(500, 3)), 20)
    assert out.min() == 1 and out.max() == 20


def test_mutual_information_matches_sklearn_and_closed_forms():
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 7, 3000), rng.integers(0, 5, 3000)
    b = np.where(rng.random(3000) < 0.5, a % 5, b)  # dependent
    assert mutual_information(a, b) == pytest.approx(mutual_info_score(a, b), abs=1e-12)
    assert entropy(np.repeat(np.arange(4), 10)) == pytest.approx(math.log(4), abs=1e-12)
    assert mutual_information(a, a) == pytest.approx(entropy(a), abs=1e-12)
    assert mutual_information(a, np.zeros_like(a)) == 0.0


def test_mig_gap_arithmetic_from_spec():
    m = np.array([[2.0], [0.5], [0.1]])
    assert gaps(m, np.array([math.log(10)]))[0] == pytest.approx(0.65144, abs=1e-5)


def brute_force_mig(codes: np.ndarray, factors: np.ndarray, bins: int) -> float:
    """MIG written from the definitions with Python dictionaries (independent of vaelab)."""
    n = len(codes)
    discrete = []
    for column in codes.T:
        lo, hi = column.min(), column.max()
        width = (hi - lo) / bins
        discrete.append([min(int((v - lo) / width), bins - 1) if width > 0 else 0 for v in column])

    def mi(x, y):
        joint, px, py = {}, {}, {}
        for u, v in zip(x, y, strict=True):
            joint[(u, v)] = joint.get((u, v), 0) + 1
            px[u] = px.get(u, 0) + 1
            py[v] = py.get(v, 0) + 1
        return sum(c / n * math.log(c * n / (px[u] * py[v])) for (u, v), c in joint.items())

    total = 0.0
    for y in factors.T:
        values = sorted((mi(d, list(y)) for d in discrete), reverse=True)
        total += (values[0] - values[1]) / mi(list(y), list(y))
    return total / factors.shape[1]


def test_mig_equals_a_brute_force_computation():
    rng = np.random.default_rng(1)
    factors = rng.integers(0, 6, size=(800, 3))
    codes = np.column_stack(
        [factors[:, 0] + rng.normal(0, 0.3, 800), factors[:, 1] * factors[:, 2], rng.random(800)]
    )
    ours = discrete_mig(codes, factors, bins=20)["mig"]
    assert ours == pytest.approx(brute_force_mig(codes, factors, 20), abs=1e-10)


def test_unsupervised_closed_forms():
    assert gaussian_total_correlation(np.eye(5)) == pytest.approx(0.0, abs=1e-12)
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    assert gaussian_total_correlation(cov) == pytest.approx(0.83037, abs=1e-5)
    assert gaussian_wasserstein_correlation(np.eye(5)) == pytest.approx(0.0, abs=1e-10)
    assert gaussian_wasserstein_correlation(cov) == pytest.approx(0.61073, abs=1e-5)
    rng = np.random.default_rng(0)
    independent = unsupervised_scores(rng.normal(size=(20000, 3)))
    assert independent["gaussian_total_correlation"] < 1e-3
    assert independent["mutual_info_score"] < 0.02  # plug-in bias of 20x20 bins only
    z = rng.normal(size=20000)
    dependent = unsupervised_scores(np.column_stack([z, z + 0.1 * rng.normal(size=20000)]))
    assert dependent["mutual_info_score"] > 1.0
    with_constant = unsupervised_scores(np.column_stack([z, np.zeros_like(z)]))
    assert with_constant["constant_dims"] == 1 and with_constant["gaussian_total_correlation"] == 0


# -- the dlib metrics on known representations -------------------------------------------------
def test_identity_representation_scores_near_one():
    assert 0.9 <= score("mig", identity)["mig"] <= 1.0
    fv = score("factor_vae", identity)
    assert fv["eval_accuracy"] >= 0.9 and fv["num_active_dims"] == 4
    assert score("beta_vae", identity, num_train=600, num_eval=300)["eval_accuracy"] >= 0.9
    assert score("irs", identity)["irs"] >= 0.9


def test_constant_representation_scores_zero():
    assert score("mig", constant)["mig"] == 0.0
    fv = score("factor_vae", constant)
    assert fv == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    assert score("irs", constant)["irs"] == 0.0
    chance = score("beta_vae", constant, num_train=600, num_eval=300)["eval_accuracy"]
    assert chance < 0.4  # 4 factors: chance is 0.25


def test_duplicated_and_mixed_representations_score_in_between():
    assert score("mig", duplicated)["mig"] < 0.1  # every factor has two equally good codes
    mixed_mig = score("mig", mixed)["mig"]
    assert 0.2 < mixed_mig < 0.8
    mixed_fv = score("factor_vae", mixed)["eval_accuracy"]
    assert 0.4 < mixed_fv < 0.9  # the two rotated factors share their codes


def test_factor_subset_changes_what_is_scored():
    # factor 0 and 1 are mixed; scoring only 2 and 3 gives a perfect MIG
    assert score("mig", mixed, factors=["f2", "f3"])["mig"] > 0.95
    result = metrics.compute("mig", mixed, grid_dataset(), factors=["f2", "f3"])
    assert result.protocol["factors"] == ["f2", "f3"] and result.protocol["num_points"] == 10_000
    with pytest.raises(MetricError, match="no factor 'shape'"):
        score("mig", mixed, factors=["shape"])


def test_seeds_reproduce_and_differ():
    data = grid_dataset()
    a = metrics.compute("mig", mixed, data, seed=3).values
    b = metrics.compute("mig", mixed, data, seed=3).values
    c = metrics.compute("mig", mixed, data, seed=4).values
    assert a == b and a != c


def test_sampled_representation_uses_the_posterior_variance():
    def posterior(x):
        mean = identity(x)
        return mean, torch.full_like(mean, math.log(0.7**2))  # σ = 0.7: blurs the codes

    data = grid_dataset()
    mean = metrics.compute("mig", posterior, data, representation="mean").values["mig"]
    sampled = metrics.compute("mig", posterior, data, representation="sampled").values["mig"]
    again = metrics.compute("mig", posterior, data, representation="sampled").values["mig"]
    assert sampled == again and sampled < mean - 0.2
    with pytest.raises(MetricError, match="sampled"):
        metrics.compute("mig", identity, data, representation="sampled")


def test_images_are_encoded_once_per_metric_suite():
    data = grid_dataset()
    calls = []

    def counting(x):
        calls.append(len(x))
        return identity(x)

    results = metrics.compute_many(["mig", "factor_vae", "irs"], counting, data)
    assert sum(calls) <= len(data) == 360
    assert results[0].images_encoded > 0 and results[2].images_encoded == 0


def test_metrics_that_need_the_full_grid_refuse_partial_datasets():
    partial = grid_dataset(keep=lambda g: np.random.default_rng(0).random(len(g)) < 0.7)
    for name in ("factor_vae", "beta_vae", "mig_chen"):
        with pytest.raises(MetricError, match="complete factor grid"):
            metrics.compute(name, identity, partial)
    assert 0.85 <= score("mig", identity, data=partial)["mig"] <= 1.0  # MIG samples rows


def test_errors_name_the_problem():
    plain = ImageDataset(name="plain", images=np.zeros((10, 1, 2, 2), np.uint8))
    with pytest.raises(MetricError, match="no ground-truth factors"):
        metrics.compute("mig", identity, plain)
    with pytest.raises(MetricError, match="num_pionts"):
        metrics.compute("mig", identity, grid_dataset(), num_pionts=10)
    with pytest.raises(MetricError, match="num_points"):
        metrics.compute("mig", identity, grid_dataset(), num_points=1)
    with pytest.raises(MetricError, match=r"codes \[B, D\]"):
        metrics.compute("mig", lambda x: torch.zeros(3), grid_dataset())
    with pytest.raises(MetricError, match="NaN"):
        metrics.compute("mig", lambda x: torch.full((len(x), 2), math.nan), grid_dataset())
    with pytest.raises(KeyError, match="Did you mean 'mig'"):
        metrics.compute("mgi", identity, grid_dataset())


def test_unsupervised_runs_on_datasets_without_factors():
    rng = np.random.default_rng(0)
    plain = ImageDataset(name="plain", images=rng.integers(0, 255, (300, 1, 2, 2), dtype=np.uint8))
    values = metrics.compute("unsupervised", lambda x: x.flatten(1), plain).values
    assert values["gaussian_total_correlation"] < 0.05  # independent random pixels


# -- Chen et al.'s estimator, MIG-sup, AAM -------------------------------------------------------
def test_entropy_estimator_matches_a_direct_computation_and_ignores_blocking():
    from scipy.special import logsumexp

    rng = np.random.default_rng(0)
    mean, log_var = rng.normal(size=(70, 3)), rng.normal(size=(70, 3)) - 1
    samples = rng.normal(size=(40, 3))
    logp = -0.5 * (
        math.log(2 * math.pi)
        + log_var[None]
        + (samples[:, None] - mean[None]) ** 2 / np.exp(log_var)[None]
    )  # [S, N, D]
    expected = -(logsumexp(logp, axis=1) - math.log(70)).mean(axis=0)
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    for budget in (2**22, 50, 7):
        got = estimate_entropies(t(samples), t(mean), t(log_var), budget=budget).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_chen_scores_from_mutual_information_matrices():
    normalised = np.array([[0.9, 0.0], [0.1, 0.8], [0.0, 0.7]])  # [D=3, K=2]
    np.testing.assert_allclose(mig_from_mi(normalised), [0.8, 0.1])
    score_, per_latent = mig_sup_from_mi(normalised, np.array([True, True, False]))
    np.testing.assert_allclose(per_latent, [0.9, 0.7, 0.7])
    assert score_ == pytest.approx(0.8)
    np.testing.assert_allclose(aam_from_mi(normalised), [(0.9 - 0.1) / 0.9, (0.8 - 0.7) / 0.8])
    assert aam_from_mi(np.zeros((3, 2))).tolist() == [0.0, 0.0]


def chen(fn, sizes=(3, 4, 5)):
    names = ["mig_chen", "mig_sup", "aam"]
    params = {n: {"num_samples": 500} for n in names}
    results = metrics.compute_many(names, fn, grid_dataset(sizes), params=params)
    return {r.metric: r.values for r in results}


def near_deterministic(fn):
    def encode(x):
        mean = fn(x)
        return mean, torch.full_like(mean, -14.0)

    return encode


def test_chen_mig_is_one_for_a_factorised_code_and_zero_when_duplicated_or_constant():
    good = chen(near_deterministic(identity))
    assert 0.95 <= good["mig_chen"]["mig"] <= 1.02
    assert good["mig_sup"]["mig_sup"] >= 0.95 and good["mig_sup"]["num_active"] == 3
    assert good["aam"]["aam"] >= 0.95
    dup = chen(near_deterministic(duplicated))
    assert dup["mig_chen"]["mig"] < 0.05  # two latents carry each factor equally
    assert dup["aam"]["aam"] < 0.05
    flat = chen(lambda x: (torch.zeros(len(x), 3), torch.zeros(len(x), 3)))
    assert flat["mig_chen"]["mig"] < 0.02 and flat["mig_sup"]["num_active"] == 0


def test_chen_needs_log_variances():
    with pytest.raises(MetricError, match="log-variances"):
        metrics.compute("mig_chen", identity, grid_dataset(), num_samples=10)


def test_registered_dci_sap_modularity_on_known_representations():
    small = {"num_train": 1000, "num_test": 500}
    good = score("dci_fast", identity, **small)
    assert good["disentanglement"] >= 0.9 and good["completeness"] >= 0.9
    assert good["informativeness_test"] >= 0.95
    rotated = score("dci_fast", mixed, **small)  # factors 0 and 1 share two codes
    assert rotated["disentanglement"] < good["disentanglement"] - 0.1
    assert score("sap", identity, continuous=True, **small)["sap"] >= 0.9
    assert score("sap", duplicated, continuous=True, **small)["sap"] <= 0.2
    assert score("sap", constant, continuous=True, **small)["sap"] == 0.0
    mod = score("modularity", identity, **small)
    assert mod["modularity"] >= 0.9 and mod["explicitness_test"] >= 0.95
    assert score("modularity", mixed, **small)["modularity"] < mod["modularity"]
    result = metrics.compute("dci", identity, grid_dataset(), num_train=300, num_test=200)
    assert result.protocol["booster"] == "gbt" and result.values["disentanglement"] >= 0.9
