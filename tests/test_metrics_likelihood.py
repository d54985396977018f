"""Likelihood metrics: the IWAE bound against a closed-form log p(x), GaussianVAE.log_weights
against a hand computation and the ELBO, bits per dimension by hand, SSIM against a brute-force
NumPy loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaelab.distributions import DiagonalGaussian
from vaelab.metrics.likelihood import (
    dequantization_correction,
    dequantized_bits_per_dim,
    iwae_bound,
    mean_reconstruction_error,
    nats_to_bits_per_dim,
)
from vaelab.metrics.ssim import ssim, ssim_map
from vaelab.registry import MODELS, OBJECTIVES

F64 = torch.float64
LOG_2PI = math.log(2 * math.pi)


# -- a linear-Gaussian model, where log p(x) and the true posterior are known --------------------
class LinearGaussianModel:
    """z ~ N(0, I_D), x|z ~ N(Wz + b, s²I_P), so p(x) = N(b, WWᵀ + s²I) and p(z|x) is Gaussian.

    q(z|x) is a deliberately imperfect diagonal Gaussian: the true posterior mean plus ``shift``,
    with ``var_factor`` times the true marginal variances (wider than the posterior, so the
    importance weights have finite variance). Everything is float64.
    """

    def __init__(self, latent=2, pixels=4, noise_std=0.5, shift=0.1, var_factor=1.5, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(pixels, latent, generator=g, dtype=F64)  # W [P, D]
        self.bias = 0.5 * torch.randn(pixels, generator=g, dtype=F64)  # b [P]
        self.noise_var = noise_std**2
        precision = torch.eye(latent, dtype=F64) + self.weight.T @ self.weight / self.noise_var
        self.post_cov = torch.linalg.inv(precision)  # [D, D]
        self.gain = self.post_cov @ self.weight.T / self.noise_var  # [D, P]
        self.shift = shift
        self.q_var = var_factor * self.post_cov.diagonal()  # [D]

    def sample_x(self, n: int, seed: int = 1) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.weight.shape[1], generator=g, dtype=F64)
        noise = math.sqrt(self.noise_var) * torch.randn(n, len(self.bias), generator=g, dtype=F64)
        return z @ self.weight.T + self.bias + noise  # [n, P]

    def post_mean(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.bias) @ self.gain.T  # [B, D]

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        mean = self.post_mean(x) + self.shift
        return DiagonalGaussian(mean, self.q_var.log().expand_as(mean))

    def log_weights(self, x, n_samples, generator=None):
        q = self.encode(x)
        z = torch.stack([q.rsample(generator) for _ in range(n_samples)])  # [n, B, D]
        x_mean = z @ self.weight.T + self.bias  # [n, B, P]
        log_lik = -0.5 * (LOG_2PI + math.log(self.noise_var) + (x - x_mean) ** 2 / self.noise_var)
        log_prior = -0.5 * (LOG_2PI + z**2)
        log_q = torch.distributions.Normal(q.mean, self.q_var.sqrt()).log_prob(z)
        return log_lik.sum(-1) + log_prior.sum(-1) - log_q.sum(-1)  # [n, B]

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        cov = self.weight @ self.weight.T + self.noise_var * torch.eye(len(self.bias), dtype=F64)
        return torch.distributions.MultivariateNormal(self.bias, cov).log_prob(x)  # [B]

    def kl_to_posterior(self, x: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) ‖ p(z|x)), the gap log p(x) − ELBO, in closed form: [B]."""
        q = torch.distributions.MultivariateNormal(
            self.post_mean(x) + self.shift, torch.diag(self.q_var)
        )
        p = torch.distributions.MultivariateNormal(self.post_mean(x), self.post_cov)
        return torch.distributions.kl_divergence(q, p)


def replicated_bounds(model, x, k: int, replicas: int, seed: int = 0) -> torch.Tensor:
    """Independent L_k estimates: [replicas, B]."""
    repeated = x.repeat(replicas, 1)  # replica r of image i at row r·B + i
    generator = torch.Generator().manual_seed(seed)
    return iwae_bound(model, repeated, k, chunk=32, generator=generator).view(replicas, -1)


def test_one_sample_bound_is_the_elbo_log_p_minus_kl_to_the_posterior():
    model = LinearGaussianModel()
    x = model.sample_x(3)
    l1 = replicated_bounds(model, x, k=1, replicas=4000)  # [R, B]
    gap = model.kl_to_posterior(x)  # [B]
    assert (gap > 0.3).all()  # the encoder really is imperfect (KL = 0.34)
    se = l1.std(0) / math.sqrt(len(l1))
    elbo = model.log_marginal(x) - gap
    assert ((l1.mean(0) - elbo).abs() < 4 * se).all()


def test_bound_rises_with_k_and_stays_below_log_p():
    model = LinearGaussianModel()
    x = model.sample_x(3)
    log_p = model.log_marginal(x)
    gaps, errors = [], []
    for k in (1, 3, 9, 27):
        shortfall = log_p - replicated_bounds(model, x, k, replicas=3000, seed=k)  # [R, B]
        gaps.append(shortfall.mean().item())
        errors.append(shortfall.mean(1).std().item() / math.sqrt(len(shortfall)))
    # each step up in k closes the gap by more than 3 standard errors of the difference
    for i in range(3):
        assert gaps[i] - gaps[i + 1] > 3 * math.hypot(errors[i], errors[i + 1]), gaps
    assert gaps[-1] > -3 * errors[-1]  # L_k ≤ log p(x) on average


def test_bound_reaches_log_p_for_large_k():
    model = LinearGaussianModel()
    x = model.sample_x(4)
    k = 5000
    bound = iwae_bound(model, x, k, chunk=1000, generator=torch.Generator().manual_seed(0))
    log_p = model.log_marginal(x)
    # delta method: with v = Var[w]/E[w]² the bias of L_k is about −v/(2k) and its standard
    # deviation about √(v/k); v is estimated from fresh weights, normalised by the exact p(x)
    log_w = model.log_weights(x.repeat(2000, 1), 10, torch.Generator().manual_seed(1))
    v = torch.exp(log_w.view(-1, 4) - log_p).var(0)  # from 20,000 weights per image, [B]
    tolerance = v / (2 * k) + 4 * (v / k).sqrt()
    assert (tolerance < 0.05).all()  # the check below is tight
    assert ((bound - log_p).abs() < tolerance).all()
    assert bound.dtype == F64 and bound.shape == (4,)


def test_bound_does_not_depend_on_the_chunk_size():
    model = LinearGaussianModel()
    x = model.sample_x(5)
    bounds = [
        iwae_bound(model, x, 300, chunk=c, generator=torch.Generator().manual_seed(7))
        for c in (1, 7, 64, 300, 1000)
    ]
    for other in bounds[1:]:
        assert (other - bounds[0]).abs().max() < 1e-10
    # L_1 is the one-sample log weight itself
    l1 = iwae_bound(model, x, 1, generator=torch.Generator().manual_seed(3))
    log_w = model.log_weights(x, 1, torch.Generator().manual_seed(3))[0]
    assert torch.equal(l1, log_w)


def test_bound_rejects_bad_k_and_chunk():
    model = LinearGaussianModel()
    x = model.sample_x(2)
    for k, chunk in [(0, 8), (2.0, 8), (True, 8), (5, 0)]:
        with pytest.raises(ValueError, match="positive integer"):
            iwae_bound(model, x, k, chunk=chunk)


# -- GaussianVAE.log_weights on a real (MLP) model -----------------------------------------------
SHAPE = (1, 6, 6)


def mlp_vae(seed: int = 0):
    torch.manual_seed(seed)
    objective = OBJECTIVES.build("vae", dataset_size=100)
    return MODELS.build("mlp", image_shape=SHAPE, objective=objective, latent_dim=3, hidden=(16,))


def images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


def test_log_weights_match_a_hand_computation():
    model, x = mlp_vae(), images(4)
    n = 10
    with torch.no_grad():
        log_w = model.log_weights(x, n, torch.Generator().manual_seed(3), chunk=4)  # 4 + 4 + 2
        posterior = model.encode(x)
        g = torch.Generator().manual_seed(3)
        expected = []
        for _ in range(n):  # sample i is the i-th N(0, I) draw of the generator
            eps = torch.randn(posterior.mean.shape, generator=g)
            z = posterior.mean + posterior.std * eps  # [B, D]
            logits = model.decode(z).flatten(1).double()  # [B, P]
            xs = x.flatten(1).double()
            # Bernoulli log-likelihood x·log σ(l) + (1 − x)·log(1 − σ(l)), written out
            log_lik = (xs * torch.nn.functional.logsigmoid(logits)).sum(1) + (
                (1 - xs) * torch.nn.functional.logsigmoid(-logits)
            ).sum(1)
            z64, mu, log_var = z.double(), posterior.mean.double(), posterior.log_var.double()
            log_prior = (-0.5 * (LOG_2PI + z64**2)).sum(1)
            log_q = (-0.5 * (LOG_2PI + log_var + (z64 - mu) ** 2 / log_var.exp())).sum(1)
            expected.append(log_lik + log_prior - log_q)
    assert log_w.dtype == F64 and log_w.shape == (n, 4)
    assert torch.allclose(log_w, torch.stack(expected), rtol=0, atol=1e-4)


def test_mean_log_weight_is_the_vae_objectives_elbo():
    model, x = mlp_vae(), images(4)
    many = x.repeat(100, 1, 1, 1)  # 400 images: each loss call averages 400 one-sample ELBOs
    n = 20
    with torch.no_grad():
        log_w = model.log_weights(many, n, torch.Generator().manual_seed(0))  # [n, 400]
        elbos = []
        for seed in range(n):  # the objective's ELBO (batch mean), drawn with the global RNG
            torch.manual_seed(seed)
            elbos.append(model.loss(many, step=0).terms["elbo"].item())
    per_draw = log_w.mean(1)  # the same batch means, [n]
    elbos = torch.tensor(elbos, dtype=F64)
    se = math.hypot(per_draw.std(), elbos.std()) / math.sqrt(n)
    assert se < 0.05  # Monte-Carlo error of the comparison, in nats
    assert abs(per_draw.mean() - elbos.mean()) < 4 * se


def test_iwae_on_a_real_model_rises_with_k_and_ignores_chunking():
    model, x = mlp_vae(), images(4)
    repeated = x.repeat(100, 1, 1, 1)  # 400 independent estimates
    l1 = iwae_bound(model, repeated, 1, generator=torch.Generator().manual_seed(0))
    l20 = iwae_bound(model, repeated, 20, generator=torch.Generator().manual_seed(1))
    gain = l20 - l1
    assert gain.mean() > 4 * gain.std() / math.sqrt(len(gain))
    # float32 decoding of different batch sizes may differ in the last bits, nothing more
    a = iwae_bound(model, x, 30, chunk=4, generator=torch.Generator().manual_seed(2))
    b = iwae_bound(model, x, 30, chunk=30, generator=torch.Generator().manual_seed(2))
    assert (a - b).abs().max() < 1e-4


def test_log_weights_rejects_bad_sample_counts():
    model, x = mlp_vae(), images(2)
    with pytest.raises(ValueError, match="n_samples"):
        model.log_weights(x, 0)
    with pytest.raises(ValueError, match="chunk"):
        model.log_weights(x, 3, chunk=0)


# -- bits per dimension --------------------------------------------------------------------------
def test_nats_to_bits_per_dim():
    assert nats_to_bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0, abs=1e-12)
    assert nats_to_bits_per_dim(0.0, 3) == 0.0
    out = nats_to_bits_per_dim(torch.tensor([543.4273895589971, 0.0], dtype=F64), 784)
    assert torch.allclose(out, torch.tensor([1.0, 0.0], dtype=F64))  # 784·ln2 = 543.4274


def test_dequantization_correction_by_hand():
    # P·b·ln 2 for [0, 1] data; P·(b − 1)·ln 2 for [−1, 1] data (ln 2 = 0.6931471805599453)
    assert dequantization_correction(784, 8) == pytest.approx(4347.419116471977, abs=1e-9)
    assert dequantization_correction(784, 5) == pytest.approx(2717.1369477949856, abs=1e-9)
    assert dequantization_correction(784, 5, "symmetric") == pytest.approx(
        2173.7095582359884, abs=1e-9
    )
    assert dequantization_correction(784, 8, "symmetric") == pytest.approx(
        3803.9917269129796, abs=1e-9
    )


def test_dequantized_bits_per_dim_by_hand():
    # a continuous density that integrates to 1 over each bin has E[−log p(y)] = 0: b bits/dim
    assert dequantized_bits_per_dim(0.0, 3072, 8) == pytest.approx(8.0)
    assert dequantized_bits_per_dim(0.0, 12288, 5) == pytest.approx(5.0)
    assert dequantized_bits_per_dim(0.0, 12288, 5, scale="symmetric") == pytest.approx(4.0)
    # 8 − 5000/(3072·ln 2) = 8 − 2.348136459780214
    assert dequantized_bits_per_dim(-5000.0, 3072, 8) == pytest.approx(5.651863540219786)
    # [−1, 1]: 7 + (−3·P·ln 2)/(P·ln 2) = 4
    nll = torch.tensor(-3 * 3072 * math.log(2), dtype=F64)
    assert dequantized_bits_per_dim(nll, 3072, 8, scale="symmetric").item() == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("dims", "bits", "scale", "message"),
    [
        (0, 8, "unit", "dims"),
        (-784, 8, "unit", "dims"),
        (784.0, 8, "unit", "dims"),
        (784, 0, "unit", "bits"),
        (784, 17, "unit", "bits"),
        (784, 8.0, "unit", "bits"),
        (784, True, "unit", "bits"),
        (784, 8, "[0,1]", "unknown data scale"),
    ],
)
def test_bits_per_dim_rejects_bad_inputs(dims, bits, scale, message):
    with pytest.raises(ValueError, match=message):
        dequantized_bits_per_dim(100.0, dims, bits, scale)
    if message == "dims":
        with pytest.raises(ValueError, match=message):
            nats_to_bits_per_dim(100.0, dims)


# -- reconstruction error ------------------------------------------------------------------------
def test_reconstruction_errors_by_hand():
    x = torch.zeros(2, 1, 2, 2)
    x_hat = torch.zeros(2, 1, 2, 2)
    x_hat[0] = 0.5  # squared errors 4 × 0.25 = 1, absolute errors 4 × 0.5 = 2
    x_hat[1, 0, 0, 0] = -1.0  # squared error 1, absolute error 1
    assert mean_reconstruction_error(x, x_hat).item() == pytest.approx(1.0)  # (1 + 1)/2
    assert mean_reconstruction_error(x, x_hat, "mse").item() == pytest.approx(0.25)  # 2/8
    assert mean_reconstruction_error(x, x_hat, "mae").item() == pytest.approx(0.375)  # 3/8
    assert mean_reconstruction_error(x, x).item() == 0.0
    with pytest.raises(ValueError, match="same shape"):
        mean_reconstruction_error(x, x_hat[:1])
    with pytest.raises(ValueError, match="unknown reconstruction error"):
        mean_reconstruction_error(x, x_hat, "bce")


# -- SSIM ----------------------------------------------------------------------------------------
def brute_force_ssim(x, y, data_range, padding, window, sigma, k1=0.01, k2=0.03):
    """SSIM per image by an explicit loop over every window position (NumPy, float64)."""
    half = (window - 1) / 2
    grid = np.arange(window) - half
    weights = np.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / (2 * sigma**2))
    weights /= weights.sum()  # the 2-D window, normalised directly
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    if padding == "zero":
        pad = ((0, 0), (0, 0), (window // 2, window // 2), (window // 2, window // 2))
        x, y = np.pad(x, pad), np.pad(y, pad)
    batch, channels, height, width = x.shape
    scores = np.zeros(batch)
    for b in range(batch):
        per_channel = []
        for c in range(channels):
            values = []
            for i in range(height - window + 1):
                for j in range(width - window + 1):
                    px = x[b, c, i : i + window, j : j + window]
                    py = y[b, c, i : i + window, j : j + window]
                    mx, my = (weights * px).sum(), (weights * py).sum()
                    vx = (weights * (px - mx) ** 2).sum()
                    vy = (weights * (py - my) ** 2).sum()
                    cxy = (weights * (px - mx) * (py - my)).sum()
                    values.append(
                        (2 * mx * my + c1)
                        * (2 * cxy + c2)
                        / ((mx**2 + my**2 + c1) * (vx + vy + c2))
                    )
            per_channel.append(np.mean(values))
        scores[b] = np.mean(per_channel)
    return scores


def noisy_pair(shape, data_range=255.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = data_range * torch.rand(shape, generator=g, dtype=F64)
    noise = 0.3 * data_range * torch.randn(shape, generator=g, dtype=F64)
    return x, (x + noise).clamp(0, data_range)


@pytest.mark.parametrize("padding", ["valid", "zero"])
@pytest.mark.parametrize(
    ("shape", "window", "sigma", "data_range"),
    [((2, 3, 14, 13), 11, 1.5, 255.0), ((2, 1, 9, 12), 5, 1.0, 1.0)],
)
def test_ssim_matches_brute_force(padding, shape, window, sigma, data_range):
    x, y = noisy_pair(shape, data_range)
    got = ssim(x, y, data_range=data_range, padding=padding, window=window, sigma=sigma)
    expected = brute_force_ssim(x.numpy(), y.numpy(), data_range, padding, window, sigma)
    assert got.shape == (shape[0],)
    assert expected.min() > 0.05 and expected.max() < 0.95  # neither trivial nor degenerate
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-6)
    # float32 input gives the same numbers (computed in float64 inside)
    got32 = ssim(x.float(), y.float(), data_range=data_range, padding=padding, window=window)
    assert got32.dtype == F64
    if window == 11:
        np.testing.assert_allclose(got32.numpy(), got.numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("padding", ["valid", "zero"])
def test_ssim_of_identical_images_is_exactly_one(padding):
    x, _ = noisy_pair((3, 3, 16, 16))
    assert torch.equal(ssim(x, x, padding=padding), torch.ones(3, dtype=F64))
    assert torch.equal(ssim(x.float(), x.float(), padding=padding), torch.ones(3, dtype=F64))


def test_ssim_of_a_constant_image_and_its_shifted_copy():
    a, shift = 100.0, 20.0
    x = torch.full((1, 1, 16, 16), a)
    # equal variances and a perfect covariance: only the luminance term (2ab + C1)/(a² + b² + C1)
    c1 = (0.01 * 255) ** 2
    expected = (2 * a * (a + shift) + c1) / (a**2 + (a + shift) ** 2 + c1)  # 0.983611...
    assert ssim(x, x + shift).item() == pytest.approx(expected, abs=1e-12)
    # zero padding: same values wherever the window fits, lower ones at the border
    valid = ssim_map(x, x + shift)  # [1, 1, 6, 6]
    zero = ssim_map(x, x + shift, padding="zero")  # [1, 1, 16, 16]
    assert valid.shape == (1, 1, 6, 6) and zero.shape == (1, 1, 16, 16)
    torch.testing.assert_close(zero[..., 5:-5, 5:-5], valid, rtol=0, atol=1e-12)
    assert (zero[..., 0, :] < expected - 1e-3).all() and (zero[..., :, -1] < expected - 1e-3).all()
    assert ssim(x, x + shift, padding="zero").item() < expected - 1e-3


def test_ssim_is_symmetric_and_scale_free():
    x, y = noisy_pair((2, 3, 12, 12))
    assert torch.allclose(ssim(x, y), ssim(y, x), rtol=0, atol=1e-14)
    # C1, C2 scale with L², like every moment, so rescaling images and L changes nothing
    rescaled = ssim(x / 255, y / 255, data_range=1.0)
    assert torch.allclose(rescaled, ssim(x, y), rtol=0, atol=1e-12)


def test_ssim_rejects_bad_inputs():
    x = torch.rand(2, 1, 16, 16)
    with pytest.raises(ValueError, match="same shape"):
        ssim(x, x[:1])
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        ssim(x[0], x[0])
    with pytest.raises(ValueError, match="smaller than the 11×11"):
        ssim(x[..., :10, :], x[..., :10, :])
    assert ssim(x[..., :10, :], x[..., :10, :], padding="zero").shape == (2,)  # zero pads fine
    with pytest.raises(ValueError, match="unknown SSIM padding"):
        ssim(x, x, padding="same")
    with pytest.raises(ValueError, match="odd"):
        ssim(x, x, padding="zero", window=4)
    with pytest.raises(ValueError, match="data_range"):
        ssim(x, x, data_range=0.0)
