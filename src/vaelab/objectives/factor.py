"""FactorVAE (Kim & Mnih 2018, Eq. 2 and Algorithm 2): a discriminator estimates the total
correlation of q(z), and the VAE is penalised by γ times that estimate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from vaelab.config import spec
from vaelab.models.base import LossOutput
from vaelab.objectives.base import (
    Objective,
    VAEOutput,
    anneal,
    elbo_terms,
    loss_output,
    validated_params,
)
from vaelab.registry import OBJECTIVES

if TYPE_CHECKING:
    from vaelab.models.gaussian import GaussianVAE


@dataclass
class FactorParams:
    gamma: float = spec(6.4, minimum=0.0, help="weight γ of the TC estimate")
    disc_hidden_layers: int = spec(6, minimum=1, help="6: dlib; 5: disentangling-vae, 1Konny")
    disc_lr: float = spec(1e-4, minimum=0.0, help="discriminator Adam learning rate")
    disc_betas: tuple[float, float] = spec((0.5, 0.9), help="discriminator Adam betas")
    anneal_steps: int = spec(0, minimum=0, help="γ·TC weight rises 0 -> 1 over these steps")
    single_batch: bool = spec(False, help="dlib: permute the same batch's z (no second half)")


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shuffle each latent column of ``z`` [B, D] by its own random permutation of the batch.

    z'_{b,d} = z_{π_d(b),d}: a sample of the product of the marginals q(z_1)···q(z_D)
    (Kim & Mnih 2018, Algorithm 1). The D permutations are the argsorts of uniform noise drawn
    from ``generator`` (torch's global generator when ``None``), so seeding torch fixes them.
    """
    noise = torch.rand(z.shape, generator=generator, device=z.device)  # [B, D]
    return torch.gather(z, 0, noise.argsort(dim=0))


def discriminator(latent_dim: int, hidden_layers: int = 6, units: int = 1000) -> nn.Sequential:
    """MLP z [B, D] -> two logits [B, 2] (class 0: from q(z); class 1: permuted).

    ``hidden_layers`` Linear + LeakyReLU(0.2) layers of ``units``, then Linear(units -> 2).
    Glorot-uniform weights and zero biases (TensorFlow defaults, as disentanglement_lib).
    """
    layers: list[nn.Module] = []
    width = latent_dim
    for _ in range(hidden_layers):
        layers += [nn.Linear(width, units), nn.LeakyReLU(0.2)]
        width = units
    layers.append(nn.Linear(width, 2))
    net = nn.Sequential(*layers)
    for module in net:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return net


class FactorVAE(Objective):
    """L_VAE = rec + KL + anneal·γ·TĈ, TĈ = mean_b [D(z_b)_0 − D(z_b)_1] (Kim & Mnih 2018,
    Eq. 2); the discriminator minimises L_D = ½[CE(D(z), 0) + CE(D(permute_dims(z')), 1)].

    Two-batch scheme (Algorithm 2, the default): the training batch is split exactly in two;
    the first half gives the VAE loss and z, the second half is only encoded to draw z' for
    the "permuted" class. So a batch of 2B trains the VAE on B images (disentangling-vae hides
    this by doubling batch size and epochs, its issue #74; here the batch size is what you set).
    ``single_batch=True`` is disentanglement_lib's scheme: z' = z from the same batch.

    Gradient isolation (``specs/disentangling.md`` §3.4): the TĈ term sees D with detached
    parameters, and L_D sees detached z and z', so one backward of
    ``loss + group_losses["discriminator"]`` gives the encoder/decoder exactly ∂L_VAE and D
    exactly ∂L_D. disentangling-vae (issue #77) lets ∂L_D leak into the encoder by
    backpropagating L_D through the non-detached z; 1Konny's step order raises PyTorch's
    in-place error (#62). Cross-entropies are computed from logits (dlib clips probabilities
    to [1e-6, 1 − 1e-6] instead).

    Logs ``tc`` (TĈ), ``disc`` (L_D), ``disc_acc`` (discriminator accuracy on both classes)
    and ``tc_weight`` (anneal·γ).
    """

    def __init__(
        self,
        gamma: float = 6.4,
        disc_hidden_layers: int = 6,
        disc_lr: float = 1e-4,
        disc_betas: tuple[float, float] = (0.5, 0.9),
        anneal_steps: int = 0,
        single_batch: bool = False,
        latent_dim: int | None = None,
    ):
        super().__init__()
        self.gamma, self.disc_hidden_layers = gamma, disc_hidden_layers
        self.disc_lr, self.disc_betas = disc_lr, tuple(disc_betas)
        self.anneal_steps, self.single_batch = anneal_steps, single_batch
        self.disc: nn.Sequential | None = None
        if latent_dim is not None:
            self.bind(latent_dim)

    def bind(self, latent_dim: int) -> None:
        """Build the discriminator for ``latent_dim`` latents (once; a different D is an error)."""
        if self.disc is None:
            self.disc = discriminator(latent_dim, self.disc_hidden_layers)
        elif self.disc[0].in_features != latent_dim:
            raise ValueError(
                f"FactorVAE discriminator takes {self.disc[0].in_features} latents, "
                f"got a model with {latent_dim}"
            )

    def _discriminator(self) -> nn.Sequential:
        if self.disc is None:
            raise RuntimeError("FactorVAE: call bind(latent_dim) (models do) before using it")
        return self.disc

    def loss(self, model: GaussianVAE, x: torch.Tensor, step: int) -> LossOutput:
        """Training: the two-half scheme (or dlib's single batch). Evaluation (``eval()``
        mode) reports the terms on the whole batch, with z' = z, for any batch size."""
        if self.single_batch or not self.training:
            return self(model.forward_pass(x), step)
        if x.shape[0] % 2:
            raise ValueError(
                f"FactorVAE splits each batch into two halves (VAE and permuted batches); "
                f"got an odd batch of {x.shape[0]}: use an even batch size (and drop_last)"
            )
        x1, x2 = x.chunk(2)
        out = model.forward_pass(x1)
        with torch.no_grad():  # z' only feeds L_D through z'.detach()
            z_prime = model.encode(x2).rsample()
        return self(out, step, z_prime)

    def forward(self, out: VAEOutput, step: int, z_prime: torch.Tensor | None = None) -> LossOutput:
        """``z_prime``: latents of an independent batch (default ``out.z``, the single batch)."""
        disc = self._discriminator()
        z = out.z  # [B, D]
        frozen = {name: p.detach() for name, p in disc.named_parameters()}
        logits = functional_call(disc, frozen, (z,))  # [B, 2]; no gradient to D
        tc = (logits[:, 0] - logits[:, 1]).mean()
        terms = elbo_terms(out)
        weight = anneal(0.0, 1.0, step, self.anneal_steps) * self.gamma
        loss = terms["recon"] + terms["kl"] + weight * tc

        z_prime = z if z_prime is None else z_prime
        real = disc(z.detach())  # [B, 2]
        fake = disc(permute_dims(z_prime.detach()))
        zeros = torch.zeros(real.shape[0], dtype=torch.long, device=z.device)
        ones = torch.ones(fake.shape[0], dtype=torch.long, device=z.device)
        disc_loss = 0.5 * (F.cross_entropy(real, zeros) + F.cross_entropy(fake, ones))
        right = (real.argmax(1) == 0).sum() + (fake.argmax(1) == 1).sum()
        accuracy = right / (real.shape[0] + fake.shape[0])
        logged = {**terms, "tc": tc, "disc": disc_loss, "disc_acc": accuracy, "tc_weight": weight}
        return loss_output(loss, logged, {"discriminator": disc_loss})

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"discriminator": list(self._discriminator().parameters())}

    def optimizer_settings(self, group: str) -> dict[str, Any]:
        if group != "discriminator":
            return super().optimizer_settings(group)
        return {"lr": self.disc_lr, "betas": self.disc_betas}


@OBJECTIVES.register(
    "factor",
    "FactorVAE (Kim & Mnih 2018): rec + KL + γ·TC from a discriminator",
    params=FactorParams,
)
def build(dataset_size: int, **params: Any) -> FactorVAE:
    """The FactorVAE objective; ``dataset_size`` is not used. Models call ``bind(latent_dim)``."""
    return FactorVAE(**validated_params(FactorParams, params, "objective"))
