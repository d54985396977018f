"""DIP-VAE-I and -II (Kumar et al. 2018, Eq. 6–7): the ELBO plus a penalty pushing the
covariance of the aggregate posterior towards the identity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from vaelab.config import spec
from vaelab.distributions import DiagonalGaussian
from vaelab.models.base import LossOutput
from vaelab.objectives.base import Objective, VAEOutput, elbo_terms, loss_output, validated_params
from vaelab.registry import OBJECTIVES


@dataclass
class DIPParams:
    variant: str = spec("i", choices=("i", "ii"), help="DIP-VAE-I (covariance of μ) or -II")
    lambda_od: float = spec(10.0, minimum=0.0, help="weight of the off-diagonal penalty")
    lambda_d: float | None = spec(
        None, minimum=0.0, help="weight of the diagonal penalty; default 10·λ_od (I), λ_od (II)"
    )


def dip_covariance(posterior: DiagonalGaussian, variant: str) -> torch.Tensor:
    """The covariance [D, D] that DIP-VAE pushes towards I, estimated on the batch.

    I (Eq. 6): Cov_batch[μ(x)] = mean(μμᵀ) − mean(μ)mean(μ)ᵀ (population covariance).
    II (Eq. 7): Cov_q(z) = mean_batch[diag(σ²(x))] + Cov_batch[μ(x)].
    """
    mean = posterior.mean  # [B, D]
    centred = mean - mean.mean(0, keepdim=True)
    cov = centred.T @ centred / mean.shape[0]  # [D, D]
    if variant == "ii":
        cov = cov + torch.diag(posterior.var.mean(0))
    return cov


class DIPVAE(Objective):
    """L = rec + KL + λ_od·Σ_{i≠j} Cov_ij² + λ_d·Σ_i (Cov_ii − 1)² (Kumar et al. 2018, Eq. 6–7).

    ``variant`` "i" or "ii" picks the covariance (:func:`dip_covariance`). ``lambda_d`` defaults
    to 10·λ_od for DIP-VAE-I and λ_od for DIP-VAE-II, as in disentanglement_lib's study (which
    sweeps λ_od ∈ {1, 2, 5, 10, 20, 50}). The penalty sums over matrix entries, so its scale grows
    with D (kept as in dlib, ``specs/disentangling.md`` §3.6).

    Logs ``dip_offdiag`` = Σ_{i≠j} Cov_ij² and ``dip_diag`` = Σ_i (Cov_ii − 1)².
    """

    def __init__(self, variant: str = "i", lambda_od: float = 10.0, lambda_d: float | None = None):
        super().__init__()
        if variant not in ("i", "ii"):
            raise ValueError(f"DIP-VAE variant must be 'i' or 'ii', got {variant!r}")
        if lambda_d is None:
            lambda_d = 10.0 * lambda_od if variant == "i" else lambda_od
        self.variant, self.lambda_od, self.lambda_d = variant, lambda_od, lambda_d

    def forward(self, out: VAEOutput, step: int) -> LossOutput:
        terms = elbo_terms(out)
        cov = dip_covariance(out.posterior, self.variant)
        diag = torch.diagonal(cov)
        off_diag = (cov - torch.diag(diag)).square().sum()
        on_diag = (diag - 1.0).square().sum()
        loss = terms["recon"] + terms["kl"] + self.lambda_od * off_diag + self.lambda_d * on_diag
        return loss_output(loss, {**terms, "dip_offdiag": off_diag, "dip_diag": on_diag})

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}, lambda_od={self.lambda_od}, lambda_d={self.lambda_d}"


@OBJECTIVES.register(
    "dip",
    "DIP-VAE-I/II (Kumar et al. 2018): rec + KL + covariance-matching penalty",
    params=DIPParams,
)
def build(dataset_size: int, **params: Any) -> DIPVAE:
    """The DIP-VAE objective; ``dataset_size`` is not used."""
    return DIPVAE(**validated_params(DIPParams, params, "objective"))
