"""DCI, SAP, modularity and explicitness on arrays: the exact values of ``specs/metrics.md``
§13, equality with independent computations (scipy, numpy, scikit-learn called as dlib calls
it), and good / bad / degenerate representations of synthetic "identity" data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import entropy
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.svm import LinearSVC

from vaelab.metrics import dci as dci_module
from vaelab.metrics.dci import check_points, completeness, dci, disentanglement, importance_matrix
from vaelab.metrics.modularity import _macro_auc, explicitness, modularity
from vaelab.metrics.sap import sap_from_matrix, sap_matrix

LOG2_OVER_LOG10 = 1 - math.log(2) / math.log(10)  # 0.69897: one factor spread over 2 of 10 codes


def identity_points(n: int, k: int, rng: np.random.Generator, noise: float = 1e-3):
    """dlib's IdentityObservationsData: K factors uniform on 10 values, codes = factors
    (plus tiny noise so that no two codes tie exactly)."""
    factors = rng.integers(0, 10, size=(n, k))
    return factors + noise * rng.standard_normal((n, k)), factors


def split(n: int, k: int, seed: int = 0, noise: float = 1e-3):
    rng = np.random.default_rng(seed)
    return (*identity_points(n, k, rng, noise), *identity_points(n, k, rng, noise))


EYE5 = 5.0 * np.eye(5)


# -- DCI from an importance matrix --------------------------------------------------------------
@pytest.mark.parametrize(
    ("importance", "expected_d", "expected_c"),
    [
        (EYE5, 1.0, 1.0),
        (np.zeros((5, 5)), 0.0, 0.0),
        (np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 1.0, 1.0),  # an empty code
        (np.vstack([EYE5, EYE5]), 1.0, LOG2_OVER_LOG10),  # redundant codes
        (np.hstack([EYE5, EYE5]), LOG2_OVER_LOG10, 1.0),  # one code, two factors
        (EYE5[:2], 1.0, 1.0),  # missed factors
    ],
)
def test_dci_exact_values(importance, expected_d, expected_c):
    # The 1e-11 dlib adds to R moves these by < 1e-9.
    assert disentanglement(importance) == pytest.approx(expected_d, abs=1e-8)
    assert completeness(importance) == pytest.approx(expected_c, abs=1e-8)


def test_dci_equals_dlib_formula_with_scipy_entropy():
    rng = np.random.default_rng(0)
    importance = rng.random((7, 4)) * (rng.random((7, 4)) > 0.3)
    per_code = 1 - entropy(importance.T + 1e-11, base=4)
    per_factor = 1 - entropy(importance + 1e-11, base=7)
    total = importance.sum()
    assert disentanglement(importance) == pytest.approx(
        np.sum(per_code * importance.sum(1) / total), abs=1e-12
    )
    assert completeness(importance) == pytest.approx(
        np.sum(per_factor * importance.sum(0) / total), abs=1e-12
    )


def test_dci_single_factor_or_code_is_one_not_nan():
    column = np.array([[0.3], [0.7]])
    assert disentanglement(column) == 1.0
    assert completeness(column.T) == 1.0


def test_dci_rejects_bad_importance():
    with pytest.raises(ValueError, match="non-negative"):
        disentanglement(np.array([[1.0, -0.1]]))
    with pytest.raises(ValueError, match=r"\[D, K\]"):
        completeness(np.ones(3))


# -- DCI end to end -----------------------------------------------------------------------------
def test_dci_identity_codes_hist():
    scores = dci(*split(500, 3), booster="hist", seed=0)
    assert 0.9 <= scores["disentanglement"] <= 1.0
    assert 0.9 <= scores["completeness"] <= 1.0
    assert scores["informativeness_train"] == 1.0
    # Tiny-noise test points can fall just outside their value's training range, into a
    # histogram bin shared with the next value: about 2 % errors where exact splits make none.
    assert scores["informativeness_test"] >= 0.95


def test_dci_random_codes_hist_low_disentanglement():
    rng = np.random.default_rng(1)
    _, factors_train, _, factors_test = split(500, 3, seed=1)
    scores = dci(
        rng.standard_normal((500, 3)),
        factors_train,
        rng.standard_normal((500, 3)),
        factors_test,
        booster="hist",
    )
    assert scores["disentanglement"] < 0.1
    assert scores["completeness"] < 0.1
    assert scores["informativeness_test"] < 0.2  # chance is 0.1


def test_dci_duplicated_codes_gbt_reference():
    # dlib's duplicated-latent check: each factor's importance splits evenly between its two
    # copies (GBT breaks exact ties between features at random), so C = 1 - ln 2 / ln 10.
    codes_train, factors_train, codes_test, factors_test = split(200, 5, seed=2)
    rng = np.random.default_rng(3)
    twin_train = factors_train + 1e-3 * rng.standard_normal(codes_train.shape)
    scores = dci(
        np.hstack([codes_train, twin_train]),
        factors_train,
        np.hstack([codes_test, codes_test]),
        factors_test,
        booster="gbt",
    )
    assert scores["disentanglement"] >= 0.9
    assert scores["completeness"] == pytest.approx(LOG2_OVER_LOG10, abs=0.03)
    assert scores["informativeness_test"] == 1.0


def test_dci_noisy_duplicated_codes_hist():
    # Two noisy copies of each of 3 factors: credit splits about evenly, C near 1 - ln 2/ln 6
    # (the reference gives 0.624 here). With (near-)exact copies "hist" breaks ties towards
    # the first code and C rises towards 1: see _fit_hist.
    rng = np.random.default_rng(4)
    codes_train, factors_train, codes_test, factors_test = split(2000, 3, seed=4, noise=0.3)
    twin_train = factors_train + 0.3 * rng.standard_normal(codes_train.shape)
    twin_test = factors_test + 0.3 * rng.standard_normal(codes_test.shape)
    scores = dci(
        np.hstack([codes_train, twin_train]),
        factors_train,
        np.hstack([codes_test, twin_test]),
        factors_test,
        booster="hist",
    )
    assert scores["disentanglement"] >= 0.9
    assert scores["completeness"] == pytest.approx(1 - math.log(2) / math.log(6), abs=0.05)


def test_importance_matrix_shapes_and_normalisation():
    points = split(300, 2, seed=5)
    importance, train_acc, test_acc = importance_matrix(*points, booster="hist")
    assert importance.shape == (2, 2) and train_acc.shape == test_acc.shape == (2,)
    np.testing.assert_allclose(importance.sum(axis=0), 1.0)
    assert np.all(np.argmax(importance, axis=0) == [0, 1])


def test_dci_seeded_determinism():
    # GBT's seed decides exact ties between duplicated codes; the same seed gives the same R.
    rng = np.random.default_rng(6)
    factors = rng.integers(0, 3, size=(120, 1))
    codes = np.hstack([factors, factors]).astype(float)
    first = importance_matrix(codes, factors, codes, factors, booster="gbt", seed=0)[0]
    again = importance_matrix(codes, factors, codes, factors, booster="gbt", seed=0)[0]
    other = importance_matrix(codes, factors, codes, factors, booster="gbt", seed=1)[0]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    points = split(200, 2, seed=7)
    assert dci(*points, booster="hist", seed=3) == dci(*points, booster="hist", seed=3)


def test_hist_importance_fails_loudly_without_private_trees():
    class NoTrees:
        pass

    with pytest.raises(RuntimeError, match="private scikit-learn layout"):
        dci_module._split_gain_importance(NoTrees(), 3)


def test_unknown_booster_and_bad_points():
    points = split(50, 2)
    with pytest.raises(ValueError, match="booster must be one of"):
        importance_matrix(*points, booster="xgb")
    codes, factors, codes_test, factors_test = points
    with pytest.raises(ValueError, match="constant in the training set"):
        check_points(codes, np.zeros_like(factors), codes_test, factors_test)
    with pytest.raises(ValueError, match="integer class indices"):
        check_points(codes, factors.astype(float), codes_test, factors_test)
    with pytest.raises(ValueError, match="rows are points"):
        check_points(codes[:-1], factors, codes_test, factors_test)
    with pytest.raises(ValueError, match="train and test disagree"):
        check_points(codes, factors, codes_test[:, :1], factors_test)


@pytest.mark.slow
def test_importance_matrix_same_in_worker_processes():
    # Slow only because each worker process imports vaelab (and torch) afresh.
    points = split(200, 3, seed=20)
    alone = importance_matrix(*points, booster="gbt", seed=0)
    in_workers = importance_matrix(*points, booster="gbt", seed=0, n_jobs=2)
    for one, other in zip(alone, in_workers, strict=True):
        np.testing.assert_array_equal(one, other)


@pytest.mark.slow
def test_dci_identity_gbt_dlib_protocol():
    # dlib's dci_test: 10 identity factors, 1,000 / 1,000 points, default GradientBoosting.
    scores = dci(*split(1000, 10, seed=8), booster="gbt")
    assert 0.9 <= scores["disentanglement"] <= 1.0
    assert 0.9 <= scores["completeness"] <= 1.0
    assert scores["informativeness_test"] == pytest.approx(1.0, abs=0.01)


@pytest.mark.slow
def test_dci_hist_agrees_with_gbt_on_a_mixed_representation():
    # A noisy mixing of 4 factors into 6 codes: the fast booster's scores stay close.
    rng = np.random.default_rng(9)
    sizes = np.array([3, 6, 10, 10])
    mixing = np.hstack([np.eye(4) + 0.3 * rng.standard_normal((4, 4)), 0.1 * rng.random((4, 2))])

    def points(n):
        factors = np.stack([rng.integers(0, s, n) for s in sizes], axis=1)
        codes = factors / (sizes - 1) @ mixing + 0.1 * rng.standard_normal((n, 6))
        return codes, factors

    data = (*points(2000), *points(1000))
    reference, fast = dci(*data, booster="gbt"), dci(*data, booster="hist")
    # Measured gaps: D 0.018, C 0.005, test accuracy 0.004; training accuracy 0.04, as
    # 255-bin thresholds cannot overfit the training points as far as exact ones.
    tolerance = {
        "disentanglement": 0.05,
        "completeness": 0.05,
        "informativeness_train": 0.1,
        "informativeness_test": 0.02,
    }
    for key, abs_tol in tolerance.items():
        assert fast[key] == pytest.approx(reference[key], abs=abs_tol), key


# -- SAP ----------------------------------------------------------------------------------------
def test_sap_continuous_equals_dlib_covariance_loop():
    rng = np.random.default_rng(10)
    factors = rng.integers(0, 7, size=(300, 3))
    codes = np.hstack([factors @ rng.standard_normal((3, 4)), np.full((300, 1), 2.5)])
    codes[:, :4] += rng.standard_normal((300, 4))
    scores = sap_matrix(codes, factors, codes, factors, continuous=True)
    expected = np.zeros((5, 3))
    for i in range(5):
        for k in range(3):
            cov = np.cov(codes[:, i], factors[:, k], ddof=1)
            if cov[0, 0] > 1e-12:
                expected[i, k] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1])
    np.testing.assert_allclose(scores, expected, rtol=1e-10, atol=1e-15)
    assert np.all(scores[4] == 0.0)  # the constant code


def test_sap_continuous_identity_constant_duplicated():
    codes, factors, codes_test, factors_test = split(3000, 10, seed=11)
    identity = sap_from_matrix(sap_matrix(codes, factors, codes_test, factors_test, True))
    zeros = np.zeros_like(codes)
    constant = sap_from_matrix(sap_matrix(zeros, factors, zeros, factors_test, True))
    twins = np.hstack([codes, codes])
    duplicated = sap_from_matrix(
        sap_matrix(twins, factors, np.hstack([codes_test, codes_test]), factors_test, True)
    )
    assert 0.9 <= identity <= 1.0
    assert constant == 0.0
    assert 0.0 <= duplicated <= 0.2


def test_sap_discrete_identity_beats_random():
    codes, factors, codes_test, factors_test = split(500, 3, seed=12)
    scores = sap_matrix(codes, factors, codes_test, factors_test, seed=0)
    # A 1-D linear one-vs-rest SVM separates only the extreme values of a 10-valued factor
    # well, so the matching code reaches 0.3-0.7 accuracy against 0.1 for the others.
    assert np.all(np.argmax(scores, axis=0) == np.arange(3))
    assert np.all(np.diag(scores) >= 0.3)
    assert 0.25 <= sap_from_matrix(scores) <= 0.7
    rng = np.random.default_rng(13)
    noise = sap_matrix(
        rng.standard_normal((500, 3)), factors, rng.standard_normal((500, 3)), factors_test
    )
    assert sap_from_matrix(noise) < 0.05


def test_sap_discrete_primal_solver_matches_dlib_dual_solver():
    codes, factors, codes_test, factors_test = split(300, 2, seed=14, noise=0.5)
    scores = sap_matrix(codes, factors, codes_test, factors_test)
    dual = np.array(
        [
            [
                np.mean(
                    LinearSVC(C=0.01, class_weight="balanced", dual=True, random_state=0)
                    .fit(codes[:, [i]], factors[:, k])
                    .predict(codes_test[:, [i]])
                    == factors_test[:, k]
                )
                for k in range(2)
            ]
            for i in range(2)
        ]
    )
    np.testing.assert_allclose(scores, dual, atol=0.01)


def test_sap_from_matrix_values():
    scores = np.array([[0.9, 0.2], [0.4, 0.3], [0.1, 0.8]])
    assert sap_from_matrix(scores) == pytest.approx(((0.9 - 0.4) + (0.8 - 0.3)) / 2)
    assert sap_from_matrix(np.array([[0.6, 0.2]])) == pytest.approx(0.4)  # one code
    with pytest.raises(ValueError, match="finite"):
        sap_from_matrix(np.array([[np.nan], [1.0]]))


# -- modularity and explicitness ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("mutual_info", "expected"),
    [
        (EYE5, 1.0),
        (np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 2 / 3),
        (np.vstack([EYE5, EYE5]), 1.0),
        (np.hstack([EYE5, EYE5]), 1 - 1 / 9),
        (np.zeros((5, 5)), 0.0),
        (EYE5[:2], 1.0),
        (np.array([[0.5], [0.0]]), 0.5),  # one factor: informative code 1, empty code 0
    ],
)
def test_modularity_exact_values(mutual_info, expected):
    assert modularity(mutual_info) == pytest.approx(expected, abs=1e-12)


def test_modularity_equals_per_code_loop():
    rng = np.random.default_rng(15)
    mutual_info = rng.random((6, 4))
    mutual_info[2] = 0.0
    per_code = []
    for row in mutual_info:
        theta = max(row**2)
        per_code.append(0.0 if theta == 0 else 1 - (sum(row**2) - theta) / (theta * 3))
    assert modularity(mutual_info) == pytest.approx(np.mean(per_code), abs=1e-12)


def test_macro_auc_equals_dlib_roc_auc_and_skips_missing_classes():
    rng = np.random.default_rng(16)
    labels = rng.integers(0, 4, 200)
    probabilities = rng.dirichlet(np.ones(4), size=200)
    one_hot = MultiLabelBinarizer().fit_transform(labels[:, None])
    classes = np.arange(4)
    assert _macro_auc(labels, probabilities, classes) == pytest.approx(
        roc_auc_score(one_hot, probabilities), abs=1e-12
    )
    # Class 3 absent and an unseen class 7 present: average over classes 0-2 only, with the
    # class-7 points counted as negatives.
    labels[labels == 3] = 7
    expected = np.mean([roc_auc_score(labels == c, probabilities[:, c]) for c in range(3)])
    assert _macro_auc(labels, probabilities, classes) == pytest.approx(expected, abs=1e-12)


def test_explicitness_identity_and_random():
    codes, factors, codes_test, factors_test = split(500, 3, seed=17)
    train, test = explicitness(codes, factors, codes_test, factors_test, seed=0)
    # One-vs-rest probabilities renormalised over 10 ordered values give every value a peak,
    # but not a perfect one: about 0.92.
    assert train >= 0.88 and test >= 0.88
    rng = np.random.default_rng(18)
    train, test = explicitness(
        rng.standard_normal((500, 3)), factors, rng.standard_normal((500, 3)), factors_test
    )
    assert test == pytest.approx(0.5, abs=0.05)
    assert train == pytest.approx(0.5, abs=0.1)  # mildly overfitted


def test_explicitness_constant_code_and_determinism():
    codes, factors, codes_test, factors_test = split(300, 2, seed=19)
    with_constant = np.hstack([codes, np.ones((300, 1))])
    first = explicitness(
        with_constant, factors, np.hstack([codes_test, np.ones((300, 1))]), factors_test, seed=4
    )
    again = explicitness(
        with_constant, factors, np.hstack([codes_test, np.ones((300, 1))]), factors_test, seed=4
    )
    assert first == again
    assert all(np.isfinite(first)) and min(first) >= 0.88
