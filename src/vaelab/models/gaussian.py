"""Flat Gaussian-latent VAEs: one encoder/decoder pair, a pixel likelihood and an objective.

q(z|x) = N(μ(x), diag σ²(x)), p(z) = N(0, I), p(x|z) a :mod:`vaelab.distributions` likelihood
(Kingma & Welling 2014). Every objective of :mod:`vaelab.objectives` (VAE, β-VAE-H/B,
FactorVAE, β-TCVAE, DIP-VAE) trains this one model; the networks are in :mod:`vaelab.nn`.
The model builders registered here ("burgess", "dlib", "convvae", "mlp") are the targets of
the config's ``model`` section.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vaelab.config import spec
from vaelab.distributions import (
    LIKELIHOODS,
    DiagonalGaussian,
    Likelihood,
    make_likelihood,
    standard_normal_log_prob,
)
from vaelab.models.base import LossOutput
from vaelab.nn.burgess import BurgessDecoder, BurgessEncoder
from vaelab.nn.common import is_positive_int
from vaelab.nn.convvae import ConvVAEDecoder, ConvVAEEncoder
from vaelab.nn.dlib import DlibDecoder, DlibEncoder
from vaelab.nn.mlp import MLPDecoder, MLPEncoder
from vaelab.objectives.base import Objective, VAEOutput, validated_params
from vaelab.registry import MODELS


class GaussianVAE(nn.Module):
    """encoder: x [B, C, H, W] -> (mean, log_var) [B, D]; decoder: z [B, D] -> likelihood
    params [B, C, H, W]; ``objective`` turns a forward pass into the loss.

    The objective is a submodule, so trainable parts it owns (FactorVAE's discriminator) are
    saved in ``state_dict`` and trained as their own optimizer groups.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: Likelihood,
        objective: Objective,
        latent_dim: int,
        image_shape: tuple[int, int, int],
    ):
        super().__init__()
        self.encoder, self.decoder, self.objective = encoder, decoder, objective
        self.likelihood = likelihood
        self.latent_dim, self.image_shape = latent_dim, tuple(image_shape)
        objective.bind(latent_dim)

    # -- training -----------------------------------------------------------------------------
    def forward_pass(self, x: torch.Tensor) -> VAEOutput:
        """Encode, draw z ~ q(z|x) (reparameterised, torch's global generator), decode, and
        take the exact per-image NLL."""
        posterior = self.encode(x)
        z = posterior.rsample()  # [B, D]
        params = self.decode(z)  # [B, C, H, W]
        return VAEOutput(x, posterior, z, params, self.likelihood.nll(params, x))

    def loss(self, x: torch.Tensor, step: int) -> LossOutput:
        """The objective's loss on batch ``x`` at optimizer step ``step``."""
        return self.objective.loss(self, x, step)

    def forward(self, x: torch.Tensor, step: int) -> LossOutput:
        """Same as :meth:`loss`, so wrappers that call the module (DDP, compile) work."""
        return self.loss(x, step)

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """``"model"``: encoder and decoder; plus the objective's own groups."""
        model = [*self.encoder.parameters(), *self.decoder.parameters()]
        return {"model": model, **self.objective.optimizer_groups()}

    def optimizer_settings(self, group: str) -> dict[str, Any]:
        """Optimizer overrides for ``group``: none for ``"model"`` (the train config's)."""
        return {} if group == "model" else self.objective.optimizer_settings(group)

    # -- inference ----------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """The posterior q(z|x) for images ``x`` [B, C, H, W]."""
        mean, log_var = self.encoder(x)
        return DiagonalGaussian(mean, log_var)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Likelihood parameters [B, C, H, W] for latents ``z`` [B, D]."""
        return self.decoder(z)

    @torch.no_grad()
    def sample(
        self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` images in [0, 1]: the likelihood mean of decoded z ~ N(0, T²I).

        The mode (train/eval) is the caller's: call ``eval()`` first for BatchNorm networks.
        """
        weight = next(self.parameters())
        z = torch.randn(
            n, self.latent_dim, generator=generator, device=weight.device, dtype=weight.dtype
        )
        return self.likelihood.mean(self.decode(temperature * z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The likelihood mean of the decoded posterior **mean** (deterministic; torch-vae
        decodes a random sample instead, ``specs/disentangling.md`` pitfall 9)."""
        return self.likelihood.mean(self.decode(self.encode(x).mean))

    @torch.no_grad()
    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean μ(x) [B, D], the code that disentanglement metrics score."""
        return self.encode(x).mean

    def log_weights(
        self,
        x: torch.Tensor,
        n_samples: int,
        generator: torch.Generator | None = None,
        chunk: int = 64,
    ) -> torch.Tensor:
        """Log importance weights log p(x|z_i) + log p(z_i) − log q(z_i|x), z_i ~ q(z|x):
        float64 [n_samples, B] (Burda et al. 2016, §3).

        The mean over i estimates the ELBO; :func:`vaelab.metrics.likelihood.iwae_bound` takes
        their log-mean-exp. Sample i is the i-th :meth:`DiagonalGaussian.rsample` draw from
        ``generator``, so splitting ``n_samples`` over several calls gives the same weights.
        At most ``chunk`` samples (B·chunk images) are decoded at once. Gradients are kept;
        callers that only evaluate wrap the call in ``torch.no_grad()``.
        """
        for name, value in (("n_samples", n_samples), ("chunk", chunk)):
            if not is_positive_int(value):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        posterior = self.encode(x)  # [B, D]
        # log p(z) − log q(z|x) in float64, like the sum the IWAE bound takes of these weights
        posterior64 = DiagonalGaussian(posterior.mean.double(), posterior.log_var.double())
        pieces = []
        for start in range(0, n_samples, chunk):
            n = min(chunk, n_samples - start)
            z = torch.stack([posterior.rsample(generator) for _ in range(n)])  # [n, B, D]
            params = self.decode(z.flatten(0, 1))  # [n·B, C, H, W]
            images = x.expand(n, *x.shape).flatten(0, 1)  # [n·B, C, H, W]
            log_lik = -self.likelihood.nll(params, images).view(n, -1).double()  # [n, B]
            z64 = z.double()
            log_prior = standard_normal_log_prob(z64).sum(-1)  # [n, B]
            log_q = posterior64.log_prob(z64).sum(-1)  # [n, B]
            pieces.append(log_lik + log_prior - log_q)
        return torch.cat(pieces)


# -- registered builders: build(image_shape, objective, **params) -> GaussianVAE ------------------
@dataclass
class GaussianVAEParams:
    """The parameters every Gaussian-VAE builder takes (latent size and pixel likelihood)."""

    latent_dim: int = spec(10, minimum=1, help="latent dimensions D")
    likelihood: str = spec("bernoulli", choices=tuple(LIKELIHOODS), help="pixel likelihood")
    likelihood_scale: float | None = spec(
        None, minimum=0.0, help="Gaussian s / Laplace b; null: the likelihood's default"
    )


@dataclass
class BurgessParams(GaussianVAEParams):
    """Burgess et al. 2018 networks: no architecture options."""


@dataclass
class DlibParams(GaussianVAEParams):
    """disentanglement_lib networks: no architecture options."""


@dataclass
class ConvVAEParams(GaussianVAEParams):
    """torch-vae networks: D = 64 and Gaussian pixels with s² = ½ by default."""

    latent_dim: int = spec(64, minimum=1, help="latent dimensions D")
    likelihood: str = spec("gaussian", choices=tuple(LIKELIHOODS), help="pixel likelihood")
    likelihood_scale: float | None = spec(
        None, minimum=0.0, help="Gaussian s / Laplace b; null: √½ for gaussian (torch-vae's MSE)"
    )
    max_filters: int = spec(128, minimum=4, help="widest conv layer F (widths F/4, F/2, F)")


@dataclass
class MLPParams(GaussianVAEParams):
    """MLP networks: the hidden layer sizes."""

    hidden: tuple[int, ...] = spec((256, 256), minimum=1, help="hidden layer sizes")


def _build(
    encoder_cls: type[nn.Module],
    decoder_cls: type[nn.Module],
    image_shape: tuple[int, int, int],
    objective: Objective,
    params: dict[str, Any],
) -> GaussianVAE:
    latent_dim = params.pop("latent_dim")
    likelihood = make_likelihood(params.pop("likelihood"), params.pop("likelihood_scale"))
    encoder = encoder_cls(image_shape, latent_dim, **params)
    decoder = decoder_cls(image_shape, latent_dim, **params)
    return GaussianVAE(encoder, decoder, likelihood, objective, latent_dim, tuple(image_shape))


@MODELS.register(
    "burgess", "Burgess et al. 2018 conv VAE (disentangling-vae; 32/64 px)", params=BurgessParams
)
def build_burgess(
    image_shape: tuple[int, int, int], objective: Objective, **params: Any
) -> GaussianVAE:
    """Burgess et al. 2018 encoder/decoder (:mod:`vaelab.nn.burgess`)."""
    params = validated_params(BurgessParams, params, "model")
    return _build(BurgessEncoder, BurgessDecoder, image_shape, objective, params)


@MODELS.register(
    "dlib", "disentanglement_lib conv VAE (Locatello et al. 2019; 64 px)", params=DlibParams
)
def build_dlib(
    image_shape: tuple[int, int, int], objective: Objective, **params: Any
) -> GaussianVAE:
    """disentanglement_lib conv encoder / deconv decoder (:mod:`vaelab.nn.dlib`)."""
    params = validated_params(DlibParams, params, "model")
    return _build(DlibEncoder, DlibDecoder, image_shape, objective, params)


@MODELS.register(
    "convvae", "torch-vae conv VAE with BatchNorm (menzHSE; 32/64 px)", params=ConvVAEParams
)
def build_convvae(
    image_shape: tuple[int, int, int], objective: Objective, **params: Any
) -> GaussianVAE:
    """menzHSE/torch-vae networks (:mod:`vaelab.nn.convvae`); Gaussian pixels with s² = ½ by
    default, the likelihood whose NLL is torch-vae's Σ(x − x̂)² up to a constant."""
    params = validated_params(ConvVAEParams, params, "model")
    if params["likelihood"] == "gaussian" and params["likelihood_scale"] is None:
        params["likelihood_scale"] = math.sqrt(0.5)
    return _build(ConvVAEEncoder, ConvVAEDecoder, image_shape, objective, params)


@MODELS.register("mlp", "fully connected VAE (any image size)", params=MLPParams)
def build_mlp(
    image_shape: tuple[int, int, int], objective: Objective, **params: Any
) -> GaussianVAE:
    """MLP encoder/decoder (:mod:`vaelab.nn.mlp`), for tiny tests and MNIST-like data."""
    params = validated_params(MLPParams, params, "model")
    return _build(MLPEncoder, MLPDecoder, image_shape, objective, params)
