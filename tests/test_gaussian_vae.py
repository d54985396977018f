"""GaussianVAE and the model registry: a contract suite over every model × objective."""

from __future__ import annotations

import io
import math

import pytest
import torch

from vaelab.config import ConfigError, ModelConfig
from vaelab.distributions import Bernoulli, Gaussian
from vaelab.models.gaussian import GaussianVAE
from vaelab.registry import MODELS, OBJECTIVES

MLP_SHAPE = (1, 6, 6)
MLP_PARAMS = {"latent_dim": 3, "hidden": (16,)}
OBJECTIVE_PARAMS = {"factor": {"disc_hidden_layers": 2}}  # the 1000-unit D, kept shallow
# each conv model once at its native size, with a different objective each
CONV_CASES = [
    ("burgess", (1, 64, 64), "btcvae"),
    ("dlib", (1, 64, 64), "factor"),
    ("convvae", (3, 64, 64), "dip"),
]
CASES = [
    pytest.param(model, shape, objective, id=f"{model}-{objective}")
    for model, shape, objective in [("mlp", MLP_SHAPE, n) for n in OBJECTIVES.names()] + CONV_CASES
]
BATCH = 4


def build(model: str, shape, objective: str, seed: int = 0) -> GaussianVAE:
    torch.manual_seed(seed)
    params = OBJECTIVE_PARAMS.get(objective, {})
    obj = OBJECTIVES.build(objective, dataset_size=1000, **params)
    model_params = MLP_PARAMS if model == "mlp" else {"latent_dim": 4}
    return MODELS.build(model, image_shape=shape, objective=obj, **model_params)


def batch(shape, n: int = BATCH, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def seeded_loss(model: GaussianVAE, x: torch.Tensor, step: int = 3, seed: int = 5):
    torch.manual_seed(seed)
    return model.loss(x, step)


@pytest.mark.parametrize(("model_name", "shape", "objective"), CASES)
def test_contract(model_name, shape, objective):
    model = build(model_name, shape, objective)
    x = batch(shape)
    d = model.latent_dim

    out = model.forward_pass(x)  # shapes
    assert out.z.shape == out.posterior.mean.shape == out.posterior.log_var.shape == (BATCH, d)
    assert out.params.shape == x.shape and out.recon.shape == (BATCH,)
    assert model.representation(x).shape == (BATCH, d)

    result = seeded_loss(model, x)  # finite loss and terms, all detached
    assert result.loss.dim() == 0 and torch.isfinite(result.loss)
    for name in ("loss", "recon", "kl", "kl_per_dim", "elbo"):
        assert torch.isfinite(result.terms[name]).all(), name
    assert result.terms["kl_per_dim"].shape == (d,)
    assert not any(t.requires_grad for t in result.terms.values())

    groups = model.optimizer_groups()  # every parameter in exactly one group
    assert set(groups) == {"model", *result.group_losses}
    grouped = [id(p) for params in groups.values() for p in params]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())

    # gradients reach every trainable parameter, each from its own group's loss only
    for group, loss in [("model", result.loss), *result.group_losses.items()]:
        model.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        for other, params in groups.items():
            for p in params:
                if other != group:
                    assert p.grad is None, (group, other)
                else:
                    assert p.grad is not None and torch.isfinite(p.grad).all(), group
                    assert p.grad.abs().sum() > 0, group

    again = build(model_name, shape, objective)  # seeded determinism
    torch.testing.assert_close(seeded_loss(again, x).loss, result.loss, rtol=0, atol=0)

    buffer = io.BytesIO()  # state_dict save -> load -> identical outputs
    torch.save(model.state_dict(), buffer)
    other = build(model_name, shape, objective, seed=123)
    buffer.seek(0)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    for net in (model, other):
        net.eval()
    torch.testing.assert_close(other.reconstruct(x), model.reconstruct(x), rtol=0, atol=0)
    torch.testing.assert_close(seeded_loss(other, x).loss, seeded_loss(model, x).loss)


def test_reconstruct_decodes_the_posterior_mean_in_train_and_eval_mode():
    model = build("mlp", MLP_SHAPE, "vae")
    x = batch(MLP_SHAPE)
    for train in (True, False):
        model.train(train)
        first, second = model.reconstruct(x), model.reconstruct(x)
        torch.testing.assert_close(first, second, rtol=0, atol=0)
        expected = torch.sigmoid(model.decode(model.encode(x).mean))
        torch.testing.assert_close(first, expected)
        assert not first.requires_grad
    torch.testing.assert_close(model.representation(x), model.encoder(x)[0])


def test_sample_is_seeded_in_range_and_collapses_at_zero_temperature():
    model = build("mlp", MLP_SHAPE, "vae")
    images = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert images.shape == (5, *MLP_SHAPE)
    assert images.min() >= 0 and images.max() <= 1
    again = model.sample(5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(images, again, rtol=0, atol=0)
    cold = model.sample(3, temperature=0.0)
    expected = torch.sigmoid(model.decode(torch.zeros(1, model.latent_dim)))
    torch.testing.assert_close(cold, expected.expand(3, *MLP_SHAPE))


def test_forward_is_the_loss_and_optimizer_settings_delegate():
    model = build("mlp", MLP_SHAPE, "factor")
    x = batch(MLP_SHAPE)
    torch.manual_seed(0)
    via_forward = model(x, 0)
    torch.testing.assert_close(via_forward.loss, seeded_loss(model, x, step=0, seed=0).loss)
    assert model.optimizer_settings("model") == {}
    assert model.optimizer_settings("discriminator") == {"lr": 1e-4, "betas": (0.5, 0.9)}
    assert model.objective.disc[0].in_features == MLP_PARAMS["latent_dim"]


def test_model_params_defaults_and_likelihoods():
    assert MODELS.names() == ["burgess", "convvae", "dlib", "mlp"]
    section = ModelConfig.from_dict({"name": "convvae"})
    assert section.params.latent_dim == 64 and section.params.likelihood == "gaussian"
    assert section.params.max_filters == 128
    assert ModelConfig.from_dict({"name": "mlp", "hidden": [8, 4]}).params.hidden == (8, 4)
    with pytest.raises(ConfigError, match="allowed values: bernoulli, gaussian, laplace"):
        ModelConfig.from_dict({"name": "burgess", "likelihood": "poisson"})
    vae = OBJECTIVES.build("vae", dataset_size=1)
    convvae = MODELS.build("convvae", image_shape=(1, 32, 32), objective=vae, max_filters=8)
    assert convvae.latent_dim == 64 and isinstance(convvae.likelihood, Gaussian)
    assert convvae.likelihood.scale == pytest.approx(math.sqrt(0.5))  # torch-vae's MSE
    bernoulli = MODELS.build(
        "convvae", image_shape=(1, 32, 32), objective=vae, max_filters=8, likelihood="bernoulli"
    )
    assert isinstance(bernoulli.likelihood, Bernoulli)
    mlp = MODELS.build("mlp", image_shape=MLP_SHAPE, objective=vae, likelihood="laplace")
    assert mlp.likelihood.name == "laplace" and mlp.latent_dim == 10
    assert mlp.image_shape == MLP_SHAPE
    with pytest.raises(ConfigError, match="model.latent_dims"):
        MODELS.build("dlib", image_shape=(1, 64, 64), objective=vae, latent_dims=3)
