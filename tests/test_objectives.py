"""Objectives of the Gaussian-VAE family: closed forms, schedules, estimators, isolation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import norm

from vaelab.config import ConfigError, ObjectiveConfig
from vaelab.distributions import DiagonalGaussian
from vaelab.objectives.base import VAEOutput, anneal, elbo_terms, loss_output
from vaelab.objectives.betab import BetaVAEB
from vaelab.objectives.betah import BetaVAEH
from vaelab.objectives.btcvae import BTCVAE, log_q_z, mss_log_weights
from vaelab.objectives.dip import DIPVAE, dip_covariance
from vaelab.objectives.factor import FactorVAE, discriminator, permute_dims
from vaelab.objectives.vae import VAE
from vaelab.registry import MODELS, OBJECTIVES


def fake_output(
    batch: int = 8, dim: int = 4, seed: int = 0, dtype: torch.dtype = torch.float64
) -> VAEOutput:
    """A forward pass without networks: random posterior, its sample, a known recon [B]."""
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(batch, dim, generator=g, dtype=dtype)
    log_var = 0.5 * torch.randn(batch, dim, generator=g, dtype=dtype)
    posterior = DiagonalGaussian(mean, log_var)
    z = posterior.rsample(g)
    x = torch.rand(batch, 1, 2, 2, generator=g, dtype=dtype)
    recon = torch.rand(batch, generator=g, dtype=dtype) * 100
    return VAEOutput(x, posterior, z, torch.zeros_like(x), recon)


# -- schedules and shared terms -------------------------------------------------------------
def test_anneal_is_linear_clamped_and_final_without_steps():
    assert anneal(0.0, 1.0, 0, 10) == 0.0
    assert anneal(0.0, 1.0, 5, 10) == 0.5
    assert anneal(0.0, 1.0, 10, 10) == 1.0
    assert anneal(0.0, 1.0, 10_000, 10) == 1.0
    assert anneal(0.0, 25.0, 50_000, 100_000) == 12.5
    assert anneal(3.0, 1.0, 0, 0) == 1.0  # no annealing: the final value from step 0
    assert anneal(0.0, 1.0, 0, 0) == 1.0
    assert anneal(1.0, 0.0, 5, 10) == 0.5  # decreasing schedules clamp from below
    assert anneal(1.0, 0.0, 50, 10) == 0.0


def test_kl_of_unit_mean_in_ten_dimensions_is_five():
    mean, log_var = torch.ones(3, 10), torch.zeros(3, 10)
    out = VAEOutput(torch.zeros(3, 1), DiagonalGaussian(mean, log_var), mean, mean, torch.ones(3))
    terms = elbo_terms(out)
    assert out.kl_per_dim.shape == (3, 10)
    torch.testing.assert_close(terms["kl"], torch.tensor(5.0))
    torch.testing.assert_close(terms["kl_per_dim"], torch.full((10,), 0.5))
    torch.testing.assert_close(terms["recon"], torch.tensor(1.0))
    torch.testing.assert_close(terms["elbo"], torch.tensor(-6.0))


def test_loss_output_detaches_terms_and_turns_floats_into_tensors():
    w = torch.ones(2, requires_grad=True)
    loss = (w * 3).sum()
    result = loss_output(loss, {"recon": loss * 2, "weight": 0.25}, {"extra": loss})
    assert result.loss.requires_grad and result.group_losses["extra"] is loss
    for name, value in result.terms.items():
        assert isinstance(value, torch.Tensor) and not value.requires_grad, name
    assert result.terms["weight"].item() == 0.25 and result.terms["loss"].item() == 6.0


# -- VAE, β-VAE-H, β-VAE-B --------------------------------------------------------------------
def test_vae_is_the_negative_elbo_and_warms_up_the_kl():
    out = fake_output()
    recon, kl = out.recon.mean(), out.kl_per_dim.sum(1).mean()
    torch.testing.assert_close(VAE()(out, 0).loss, recon + kl)
    torch.testing.assert_close(VAE()(out, 0).terms["elbo"], -(recon + kl))
    warm = VAE(anneal_steps=100)
    torch.testing.assert_close(warm(out, 0).loss, recon)
    torch.testing.assert_close(warm(out, 25).loss, recon + 0.25 * kl)
    torch.testing.assert_close(warm(out, 500).loss, recon + kl)
    assert warm(out, 25).terms["kl_weight"].item() == 0.25


def test_beta_vae_h_weights_the_kl_by_beta():
    out = fake_output()
    recon, kl = out.recon.mean(), out.kl_per_dim.sum(1).mean()
    assert BetaVAEH().beta == 4.0
    torch.testing.assert_close(BetaVAEH()(out, 0).loss, recon + 4.0 * kl)
    torch.testing.assert_close(BetaVAEH(beta=2.0, anneal_steps=10)(out, 5).loss, recon + kl)


def test_beta_vae_b_pulls_the_kl_towards_the_capacity():
    out = fake_output()
    recon, kl = out.recon.mean(), out.kl_per_dim.sum(1).mean()
    objective = BetaVAEB()  # γ = 1000, C: 0 -> 25 over 100,000 steps
    result = objective(out, 40_000)
    assert result.terms["capacity"].item() == 10.0
    torch.testing.assert_close(result.loss, recon + 1000.0 * (kl - 10.0).abs())
    assert objective(out, 10**6).terms["capacity"].item() == 25.0
    small = BetaVAEB(gamma=2.0, c_init=1.0, c_max=1.0, c_steps=0)
    torch.testing.assert_close(small(out, 0).loss, recon + 2.0 * (kl - 1.0).abs())


# -- FactorVAE --------------------------------------------------------------------------------
@pytest.mark.parametrize(("hidden_layers", "count"), [(6, 5_018_002), (5, 4_017_002)])
def test_factor_discriminator_parameter_counts(hidden_layers, count):
    net = discriminator(10, hidden_layers)
    assert sum(p.numel() for p in net.parameters()) == count
    assert net(torch.zeros(3, 10)).shape == (3, 2)
    assert FactorVAE(disc_hidden_layers=hidden_layers, latent_dim=10).disc is not None


def test_permute_dims_shuffles_each_column_independently():
    z = torch.arange(200.0).view(100, 2) + torch.tensor([0.0, 1000.0])
    shuffled = permute_dims(z, torch.Generator().manual_seed(0))
    for d in range(2):  # each column is a permutation of itself
        torch.testing.assert_close(shuffled[:, d].sort().values, z[:, d])
    order = (shuffled - z[0]) // 2  # the source row of every entry
    assert not torch.equal(order[:, 0], order[:, 1])
    assert not torch.equal(shuffled, z)
    again = permute_dims(z, torch.Generator().manual_seed(0))
    torch.testing.assert_close(shuffled, again)


def tiny_model(objective_name: str, **objective_params):
    torch.manual_seed(0)
    objective = OBJECTIVES.build(objective_name, dataset_size=1000, **objective_params)
    return MODELS.build(
        "mlp", image_shape=(1, 6, 6), objective=objective, latent_dim=3, hidden=(16,)
    )


def grads(params) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.clone() for p in params]


@pytest.mark.parametrize("single_batch", [False, True])
def test_factor_gradient_isolation(single_batch):
    model = tiny_model("factor", single_batch=single_batch, gamma=50.0, disc_hidden_layers=2)
    groups = model.optimizer_groups()
    vae_params, disc_params = groups["model"], groups["discriminator"]
    x = torch.rand(8, 1, 6, 6, generator=torch.Generator().manual_seed(1))

    def run(which: str) -> tuple[list, list]:
        model.zero_grad(set_to_none=True)
        torch.manual_seed(7)  # the same z, z' and permutation every time
        out = model.loss(x, 0)
        parts = {"vae": out.loss, "disc": out.group_losses["discriminator"]}
        total = parts["vae"] + parts["disc"] if which == "both" else parts[which]
        total.backward()
        return grads(vae_params), grads(disc_params)

    vae_only, disc_from_vae = run("vae")
    assert all(g is None for g in disc_from_vae)  # L_VAE never reaches D's parameters
    vae_from_disc, disc_only = run("disc")
    assert all(g is None for g in vae_from_disc)  # L_D never reaches the encoder/decoder
    vae_both, disc_both = run("both")
    for a, b in zip(vae_both, vae_only, strict=True):
        torch.testing.assert_close(a, b)
    for a, b in zip(disc_both, disc_only, strict=True):
        torch.testing.assert_close(a, b)
    assert any(g.abs().sum() > 0 for g in disc_only)
    encoder_grads = dict(zip(vae_params, vae_only, strict=True))
    assert all(encoder_grads[p].abs().sum() > 0 for p in model.encoder.parameters())


def test_factor_splits_the_batch_in_two_halves_and_refuses_odd_batches():
    model = tiny_model("factor")
    x = torch.rand(6, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(3)
    result = model.loss(x, 0)
    torch.manual_seed(3)
    first_half = model.forward_pass(x[:3])  # the VAE term sees x1 only, sampled first
    torch.testing.assert_close(result.terms["recon"], first_half.recon.mean().detach())
    for name in ("tc", "disc", "disc_acc", "kl", "elbo", "tc_weight"):
        assert torch.isfinite(result.terms[name]).all(), name
    assert 0.0 <= result.terms["disc_acc"].item() <= 1.0
    with pytest.raises(ValueError, match="odd batch of 5"):
        model.loss(x[:5], 0)
    single = tiny_model("factor", single_batch=True)
    assert torch.isfinite(single.loss(x[:5], 0).loss)


def test_factor_vae_loss_and_discriminator_settings():
    model = tiny_model("factor", anneal_steps=10)
    objective = model.objective
    assert objective.optimizer_settings("discriminator") == {"lr": 1e-4, "betas": (0.5, 0.9)}
    with pytest.raises(KeyError):
        objective.optimizer_settings("nope")
    torch.manual_seed(0)
    out = model.forward_pass(torch.rand(4, 1, 6, 6))
    logits = objective.disc(out.z)
    tc = (logits[:, 0] - logits[:, 1]).mean()
    terms = elbo_terms(out)
    result = objective(out, 5)  # half-way through the γ·TC warm-up
    torch.testing.assert_close(result.terms["tc"], tc.detach())
    torch.testing.assert_close(
        result.loss, terms["recon"] + terms["kl"] + 0.5 * objective.gamma * tc
    )
    assert "objective.disc.0.weight" in model.state_dict()  # the discriminator is saved


# -- β-TCVAE ----------------------------------------------------------------------------------
def test_mss_weight_matrix_entries_and_rows():
    w = mss_log_weights(4, 10, dtype=torch.float64).exp()
    m, n = 3, 10
    s = (n - m) / (n * m)
    expected = torch.tensor(
        [
            [1 / n, s, 1 / m, 1 / m],
            [1 / m, 1 / n, s, 1 / m],
            [1 / m, 1 / m, 1 / n, s],
            [s, 1 / m, 1 / m, 1 / n],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(w, expected)
    for batch, size in [(2, 1), (2, 5), (7, 6), (64, 737_280)]:
        rows = mss_log_weights(batch, size, dtype=torch.float64).exp().sum(1)
        torch.testing.assert_close(rows, torch.ones(batch, dtype=torch.float64))
    with pytest.raises(ValueError, match="batch size"):
        mss_log_weights(1, 10)
    with pytest.raises(ValueError, match="dataset_size"):
        mss_log_weights(8, 5)


def brute_force_log_q(mean, log_var, z, n, estimator):
    """log q(z_i) and log q(z_{i,d}) by explicit loops over i, j, d (scipy densities)."""
    b, dim = z.shape
    m = b - 1
    log_qz, log_qz_dims = np.zeros(b), np.zeros((b, dim))
    for i in range(b):
        weights = []
        for j in range(b):
            if estimator == "mws":
                weights.append(1.0 / (n * b))
            elif j == i:
                weights.append(1.0 / n)
            elif j == (i + 1) % b:
                weights.append((n - m) / (n * m))
            else:
                weights.append(1.0 / m)
        joint, marginal = 0.0, np.zeros(dim)
        for j in range(b):
            density = 1.0
            for d in range(dim):
                p = norm.pdf(z[i, d], loc=mean[j, d], scale=math.exp(0.5 * log_var[j, d]))
                density *= p
                marginal[d] += weights[j] * p
            joint += weights[j] * density
        log_qz[i], log_qz_dims[i] = math.log(joint), np.log(marginal)
    return log_qz, log_qz_dims


@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_log_q_z_matches_a_brute_force_loop(estimator):
    out = fake_output(batch=6, dim=3, seed=4)
    log_qz, log_qz_dims = log_q_z(out.posterior, out.z, 50, estimator)
    args = [t.numpy() for t in (out.posterior.mean, out.posterior.log_var, out.z)]
    expected, expected_dims = brute_force_log_q(*args, 50, estimator)
    np.testing.assert_allclose(log_qz.numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(log_qz_dims.numpy(), expected_dims, rtol=1e-10)
    scipy_joint = logsumexp(  # the same with scipy's logsumexp over a [B, B] matrix
        norm.logpdf(args[2][:, None], args[0][None], np.exp(0.5 * args[1][None])).sum(-1),
        axis=1,
        b=mss_log_weights(6, 50, dtype=torch.float64).exp().numpy()
        if estimator == "mss"
        else 1.0 / (50 * 6),
    )
    np.testing.assert_allclose(log_qz.numpy(), scipy_joint, rtol=1e-10)


@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_btcvae_terms_add_up_to_the_sampled_kl(estimator):
    out = fake_output(batch=16, dim=5, seed=5)
    objective = BTCVAE(1000, alpha=1.0, beta=1.0, gamma=1.0, estimator=estimator)
    parts = objective.decompose(out)
    log_ratio = out.posterior.log_prob(out.z).sum(1) - (
        -0.5 * (math.log(2 * math.pi) + out.z**2)
    ).sum(1)
    total = parts["mi"] + parts["tc"] + parts["dwkl"]
    torch.testing.assert_close(total, log_ratio.mean(), rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(objective(out, 0).loss, out.recon.mean() + log_ratio.mean())
    weighted = BTCVAE(1000, alpha=2.0, beta=6.0, gamma=0.5, estimator=estimator)
    expected = out.recon.mean() + 2.0 * parts["mi"] + 6.0 * parts["tc"] + 0.5 * parts["dwkl"]
    torch.testing.assert_close(weighted(out, 0).loss, expected)
    annealed = BTCVAE(1000, gamma=2.0, estimator=estimator, anneal_steps=4)
    assert annealed(out, 1).terms["dwkl_weight"].item() == 0.5


def test_btcvae_mutual_information_is_at_most_log_n():
    n = 50
    for scale in (0.5, 1e-3):  # 1e-3: disjoint posteriors, where MSS reaches log N exactly
        g = torch.Generator().manual_seed(6)
        mean = torch.randn(8, 3, generator=g, dtype=torch.float64) * 3
        posterior = DiagonalGaussian(mean, torch.full_like(mean, 2 * math.log(scale)))
        z = posterior.rsample(g)
        out = VAEOutput(z, posterior, z, z, torch.zeros(8, dtype=torch.float64))
        mss = BTCVAE(n, estimator="mss").decompose(out)
        mws = BTCVAE(n, estimator="mws").decompose(out)
        assert mss["mi"].item() <= math.log(n) + 1e-9
        assert mws["mi"].item() <= math.log(n * 8) + 1e-9
    assert mss["mi"].item() == pytest.approx(math.log(n), abs=1e-6)


@pytest.mark.parametrize(("rho", "expected"), [(0.0, 0.0), (0.8, 0.2635)])
def test_btcvae_mss_total_correlation_of_a_gaussian_aggregate(rho, expected):
    """μ ~ N(0, [[1, ρ], [ρ, 1]]), σ² = ¼: q(z) = N(0, Σ + ¼I), TC = −½ log(1 − c²), c = ρ/1.25."""
    assert expected == pytest.approx(-0.5 * math.log(1 - (rho / 1.25) ** 2), abs=1e-4)
    g = torch.Generator().manual_seed(0)
    chol = torch.linalg.cholesky(torch.tensor([[1.0, rho], [rho, 1.0]]))
    mean = torch.randn(2000, 2, generator=g) @ chol.T
    posterior = DiagonalGaussian(mean, torch.full_like(mean, math.log(0.25)))
    z = posterior.rsample(g)
    out = VAEOutput(z, posterior, z, z, torch.zeros(2000))
    tc = BTCVAE(10**6).decompose(out)["tc"].item()
    assert tc == pytest.approx(expected, abs=0.04)


# -- DIP-VAE ----------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["i", "ii"])
def test_dip_covariance_and_penalty_match_numpy(variant):
    out = fake_output(batch=32, dim=4, seed=8)
    mean, var = out.posterior.mean.numpy(), out.posterior.var.numpy()
    cov = np.cov(mean.T, bias=True)  # population covariance over the batch
    if variant == "ii":
        cov = cov + np.diag(var.mean(0))
    np.testing.assert_allclose(dip_covariance(out.posterior, variant).numpy(), cov, rtol=1e-10)
    objective = DIPVAE(variant, lambda_od=3.0)
    assert objective.lambda_d == (30.0 if variant == "i" else 3.0)
    off = (cov**2).sum() - (np.diag(cov) ** 2).sum()
    on = ((np.diag(cov) - 1) ** 2).sum()
    kl = out.kl_per_dim.sum(1).mean().item()
    expected = out.recon.mean().item() + kl + 3.0 * off + objective.lambda_d * on
    result = objective(out, 0)
    assert result.loss.item() == pytest.approx(expected, rel=1e-10)
    assert result.terms["dip_offdiag"].item() == pytest.approx(off, rel=1e-10)
    assert DIPVAE("ii", lambda_od=2.0, lambda_d=7.0).lambda_d == 7.0


# -- registry and configs ---------------------------------------------------------------------
def test_objectives_are_registered_with_typed_params():
    assert OBJECTIVES.names() == ["betab", "betah", "btcvae", "dip", "factor", "vae"]
    section = ObjectiveConfig.from_dict({"name": "factor"})
    assert section.params.gamma == 6.4 and section.params.disc_hidden_layers == 6
    with pytest.raises(ConfigError, match="allowed values: mss, mws"):
        ObjectiveConfig.from_dict({"name": "btcvae", "estimator": "mwss"})
    with pytest.raises(ConfigError, match="objective.betaa"):
        OBJECTIVES.build("betah", dataset_size=10, betaa=3.0)
    assert isinstance(OBJECTIVES.build("dip", dataset_size=10, variant="ii"), DIPVAE)
    assert OBJECTIVES.build("btcvae", dataset_size=737_280).dataset_size == 737_280
