"""The posterior and the pixel likelihoods: closed forms and agreement with torch.distributions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as td

from vaelab.distributions import (
    LIKELIHOODS,
    Bernoulli,
    DiagonalGaussian,
    Gaussian,
    Laplace,
    make_likelihood,
    standard_normal_log_prob,
)


def _random_gaussian(shape: tuple[int, ...], seed: int) -> DiagonalGaussian:
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    log_var = torch.randn(shape, generator=g, dtype=torch.float64)
    return DiagonalGaussian(mean, log_var)


def _torch_normal(q: DiagonalGaussian) -> td.Normal:
    return td.Normal(q.mean, torch.exp(0.5 * q.log_var))


# ---------------------------------------------------------------- DiagonalGaussian: closed forms


def test_kl_of_unit_shifted_gaussian_over_ten_dims_is_five():
    q = DiagonalGaussian(torch.ones(10), torch.zeros(10))
    kl = q.kl_standard_normal()
    assert kl.shape == (10,)
    assert kl.sum().item() == pytest.approx(5.0, abs=1e-6)
    prior = DiagonalGaussian(torch.zeros(10), torch.zeros(10))
    assert q.kl(prior).sum().item() == pytest.approx(5.0, abs=1e-6)


def test_log_density_of_one_under_standard_normal():
    z = torch.tensor([1.0])
    assert standard_normal_log_prob(z).item() == pytest.approx(-1.4189, abs=5e-5)
    q = DiagonalGaussian(torch.zeros(1), torch.zeros(1))
    assert q.log_prob(z).item() == pytest.approx(-1.4189, abs=5e-5)
    # N(3; 1, 4): -½[log 2π + log 4 + 4/4]
    q = DiagonalGaussian(torch.ones(1), torch.tensor([math.log(4.0)]))
    expected = -0.5 * (math.log(2 * math.pi) + math.log(4.0) + 1.0)
    assert q.log_prob(torch.tensor([3.0])).item() == pytest.approx(expected, abs=1e-6)


def test_properties():
    q = DiagonalGaussian(torch.tensor([0.5, -1.0]), torch.tensor([math.log(4.0), 0.0]))
    torch.testing.assert_close(q.std, torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(q.var, torch.tensor([4.0, 1.0]))
    assert q.mode is q.mean


def test_broadcasts_a_shared_log_var():
    q = DiagonalGaussian(torch.zeros(4, 3), torch.zeros(3))
    assert q.log_var.shape == (4, 3)
    assert q.rsample(torch.Generator().manual_seed(0)).shape == (4, 3)


def test_rejects_integer_tensors():
    with pytest.raises(ValueError, match="floating-point"):
        DiagonalGaussian(torch.zeros(3, dtype=torch.long), torch.zeros(3))


# --------------------------------------------------- DiagonalGaussian: against torch.distributions


def test_log_prob_matches_torch_normal():
    q = _random_gaussian((5, 7), seed=0)
    z = torch.randn(5, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 3
    torch.testing.assert_close(q.log_prob(z), _torch_normal(q).log_prob(z))
    torch.testing.assert_close(standard_normal_log_prob(z), td.Normal(0.0, 1.0).log_prob(z))


def test_kl_matches_torch_normal():
    q, p = _random_gaussian((5, 7), seed=2), _random_gaussian((5, 7), seed=3)
    expected = td.kl_divergence(_torch_normal(q), _torch_normal(p))
    torch.testing.assert_close(q.kl(p), expected)
    standard = td.Normal(torch.zeros(5, 7, dtype=torch.float64), 1.0)
    torch.testing.assert_close(q.kl_standard_normal(), td.kl_divergence(_torch_normal(q), standard))
    torch.testing.assert_close(q.kl(q), torch.zeros(5, 7, dtype=torch.float64))


# --------------------------------------------------------------- DiagonalGaussian: sampling


def test_rsample_is_reproducible_with_a_seeded_generator():
    q = _random_gaussian((4, 3), seed=4)
    a = q.rsample(torch.Generator().manual_seed(7))
    b = q.rsample(torch.Generator().manual_seed(7))
    c = q.rsample(torch.Generator().manual_seed(8))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    torch.testing.assert_close(q.sample(torch.Generator().manual_seed(7)), a, rtol=0, atol=0)


def test_rsample_has_the_right_moments():
    mean = torch.tensor([1.0, -2.0, 0.5])
    log_var = torch.log(torch.tensor([0.25, 4.0, 1.0]))
    n = 200_000
    q = DiagonalGaussian(mean.expand(n, 3), log_var.expand(n, 3))
    z = q.rsample(torch.Generator().manual_seed(0))  # [n, 3]
    std = torch.tensor([0.5, 2.0, 1.0])
    # 5 standard errors of the sample mean and (approximately) of the sample std
    torch.testing.assert_close(z.mean(0), mean, rtol=0, atol=(5 * std / math.sqrt(n)).max().item())
    torch.testing.assert_close(z.std(0), std, rtol=5 / math.sqrt(2 * n), atol=0)


def test_gradient_flows_through_rsample():
    mean = torch.tensor([0.3, -1.0], requires_grad=True)
    log_var = torch.tensor([0.0, math.log(9.0)], requires_grad=True)
    q = DiagonalGaussian(mean, log_var)
    z = q.rsample(torch.Generator().manual_seed(3))
    z.sum().backward()
    eps = torch.randn(2, generator=torch.Generator().manual_seed(3))
    # z = μ + exp(½ log σ²)·ε: ∂z/∂μ = 1, ∂z/∂log σ² = ½σε
    torch.testing.assert_close(mean.grad, torch.ones(2))
    torch.testing.assert_close(log_var.grad, 0.5 * torch.tensor([1.0, 3.0]) * eps)


def test_sample_carries_no_gradient():
    q = DiagonalGaussian(torch.zeros(3, requires_grad=True), torch.zeros(3, requires_grad=True))
    assert not q.sample(torch.Generator().manual_seed(0)).requires_grad


# ------------------------------------------------------------------------------------ likelihoods


def _images(seed: int, binary: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    params = torch.randn(4, 3, 5, 6, generator=g, dtype=torch.float64) * 3
    x = torch.rand(4, 3, 5, 6, generator=g, dtype=torch.float64)
    return params, (x > 0.5).double() if binary else x


def test_bernoulli_matches_torch():
    params, x = _images(0, binary=True)
    expected = -td.Bernoulli(logits=params).log_prob(x).sum((1, 2, 3))
    got = Bernoulli().nll(params, x)
    assert got.shape == (4,)
    torch.testing.assert_close(got, expected)


def test_bernoulli_on_grey_images_is_the_cross_entropy():
    params, x = _images(1)
    p = torch.sigmoid(params)
    expected = -(x * torch.log(p) + (1 - x) * torch.log1p(-p)).sum((1, 2, 3))
    torch.testing.assert_close(Bernoulli().nll(params, x), expected)


@pytest.mark.parametrize("scale", [math.sqrt(1 / 510), math.sqrt(0.5), 0.2])
def test_gaussian_matches_torch(scale: float):
    params, x = _images(2)
    expected = -td.Normal(torch.sigmoid(params), scale).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(Gaussian(scale).nll(params, x), expected)


@pytest.mark.parametrize("scale", [1 / 3, 0.05, 2.0])
def test_laplace_matches_torch(scale: float):
    params, x = _images(3)
    expected = -td.Laplace(torch.sigmoid(params), scale).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(Laplace(scale).nll(params, x), expected)


def test_default_scales_are_the_disentangling_vae_ones():
    assert Gaussian().scale ** 2 == pytest.approx(1 / 510)
    assert Laplace().scale == pytest.approx(1 / 3)


def test_exact_constants_at_the_mean():
    params = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    x = torch.sigmoid(params)
    p = 64
    # Gaussian at x = m: P·½ log(2πs²); s² = 1/510 gives ½ log(2π/510) ≈ -2.1983 per pixel
    expected = p * 0.5 * math.log(2 * math.pi / 510)
    assert expected / p == pytest.approx(-2.1983, abs=1e-4)
    torch.testing.assert_close(Gaussian().nll(params, x), torch.full((2,), expected))
    torch.testing.assert_close(
        Gaussian(math.sqrt(0.5)).nll(params, x), torch.full((2,), p * 0.5 * math.log(math.pi))
    )
    # Laplace at x = m: P·log(2b); b = 1/3 gives log(2/3) per pixel
    torch.testing.assert_close(Laplace().nll(params, x), torch.full((2,), p * math.log(2 / 3)))


@pytest.mark.parametrize("name", ["bernoulli", "gaussian", "laplace"])
def test_extreme_logits_give_finite_values_and_gradients(name: str):
    likelihood = make_likelihood(name)
    params = torch.tensor([50.0, -50.0, 50.0, -50.0]).view(1, 1, 2, 2).requires_grad_()
    x = torch.tensor([0.0, 1.0, 1.0, 0.0]).view(1, 1, 2, 2)
    nll = likelihood.nll(params, x)
    nll.sum().backward()
    assert torch.isfinite(nll).all()
    assert torch.isfinite(params.grad).all()
    if name == "bernoulli":
        # two confidently wrong pixels cost softplus(50) = 50 nats each; the right ones ~0
        assert nll.item() == pytest.approx(100.0, abs=1e-4)
        torch.testing.assert_close(params.grad.flatten(), torch.tensor([1.0, -1.0, 0.0, 0.0]))


def test_mean_is_the_sigmoid():
    params, _ = _images(5)
    for likelihood in (Bernoulli(), Gaussian(), Laplace()):
        torch.testing.assert_close(likelihood.mean(params), torch.sigmoid(params))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        Gaussian().nll(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 5))


# ----------------------------------------------------------------------------- likelihood samples


def test_bernoulli_sample_is_binary_with_the_right_frequency():
    params = torch.full((4000, 1, 5, 5), math.log(0.3 / 0.7))  # p = 0.3
    x = Bernoulli().sample(params, torch.Generator().manual_seed(0))
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    n = x.numel()
    assert x.mean().item() == pytest.approx(0.3, abs=5 * math.sqrt(0.21 / n))
    again = Bernoulli().sample(params, torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, again, rtol=0, atol=0)


@pytest.mark.parametrize(("cls", "std_factor"), [(Gaussian, 1.0), (Laplace, math.sqrt(2))])
def test_continuous_samples_have_the_right_moments(cls: type, std_factor: float):
    # m = 0.5 and a small scale: clipping to [0, 1] is negligible (> 10 scales away)
    scale = 0.04
    params = torch.zeros(2000, 1, 10, 10)
    x = cls(scale).sample(params, torch.Generator().manual_seed(1))
    n = x.numel()
    std = std_factor * scale
    assert x.mean().item() == pytest.approx(0.5, abs=5 * std / math.sqrt(n))
    assert x.std().item() == pytest.approx(std, rel=0.02)
    again = cls(scale).sample(params, torch.Generator().manual_seed(1))
    torch.testing.assert_close(x, again, rtol=0, atol=0)


@pytest.mark.parametrize("cls", [Gaussian, Laplace])
def test_continuous_samples_are_clipped_to_the_unit_interval(cls: type):
    params = torch.zeros(100, 1, 8, 8)
    x = cls(5.0).sample(params, torch.Generator().manual_seed(2))
    assert x.min().item() == 0.0
    assert x.max().item() == 1.0
    assert ((x > 0) & (x < 1)).any()


# ---------------------------------------------------------------------------------------- factory


def test_factory_builds_each_likelihood():
    assert set(LIKELIHOODS) == {"bernoulli", "gaussian", "laplace"}
    assert make_likelihood("bernoulli") == Bernoulli()
    assert make_likelihood("gaussian") == Gaussian()
    assert make_likelihood("gaussian", 0.5) == Gaussian(0.5)
    assert make_likelihood("laplace", 0.1).scale == 0.1
    for name, likelihood in LIKELIHOODS.items():
        assert make_likelihood(name).name == name
        assert likelihood.name == name


def test_factory_errors_name_the_problem():
    with pytest.raises(ValueError, match="allowed: 'bernoulli', 'gaussian', 'laplace'"):
        make_likelihood("normal")
    with pytest.raises(ValueError, match="bernoulli.*no scale"):
        make_likelihood("bernoulli", 0.5)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="scale"):
            make_likelihood("gaussian", bad)
    with pytest.raises(ValueError, match="laplace scale"):
        Laplace(-0.1)
