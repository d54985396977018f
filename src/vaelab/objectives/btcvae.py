"""β-TCVAE (Chen et al. 2018, Eq. 4 and Appendix C): the KL split into index-code mutual
information, total correlation and dimension-wise KL, each with its own weight."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from vaelab.config import spec
from vaelab.distributions import DiagonalGaussian, standard_normal_log_prob
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

ESTIMATORS = ("mss", "mws")


@dataclass
class BTCVAEParams:
    alpha: float = spec(1.0, help="weight α of the index-code mutual information")
    beta: float = spec(6.0, help="weight β of the total correlation")
    gamma: float = spec(1.0, help="weight γ of the dimension-wise KL")
    estimator: str = spec("mss", choices=ESTIMATORS, help="minibatch stratified / weighted")
    anneal_steps: int = spec(0, minimum=0, help="γ·dwKL weight rises 0 -> 1 over these steps")


def mss_log_weights(
    batch_size: int,
    dataset_size: int,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """log W [B, B] of minibatch stratified sampling (Chen et al. 2018, Appendix C.2).

    With M = B − 1: W_ii = 1/N (the sample's own component), one stratum weight (N − M)/(N·M)
    at W_{i,i+1} (W_{B−1,0} for the last row), 1/M elsewhere; every row sums to 1. The reference
    code (rtqichen/beta-tcvae, disentangling-vae) fills columns 0 and 1 instead of these
    entries, which makes TC strongly negative (``specs/disentangling.md`` §3.5, pitfall 2).
    """
    b, n, m = batch_size, dataset_size, batch_size - 1
    if b < 2 or n < m:
        raise ValueError(
            f"β-TCVAE MSS needs 2 <= batch size <= dataset_size + 1, got batch {b}, N = {n}"
        )
    stratum = math.log((n - m) / (n * m)) if n > m else -math.inf
    log_w = torch.full((b, b), -math.log(m), device=device, dtype=dtype)
    rows = torch.arange(b, device=device)
    log_w[rows, rows] = -math.log(n)
    log_w[rows, (rows + 1) % b] = stratum
    return log_w


def log_q_z(
    posterior: DiagonalGaussian, z: torch.Tensor, dataset_size: int, estimator: str = "mss"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minibatch estimates of log q(z_i) [B] and log q(z_{i,d}) [B, D] of the aggregate
    posterior q(z) = (1/N) Σ_n q(z|x_n), from the batch's own posteriors (Appendix C).

    L_{ijd} = log N(z_{i,d}; μ_{j,d}, σ²_{j,d}) [B, B, D] (sample i, component j). MWS:
    logsumexp_j − log(N·B); MSS: logsumexp_j with the log-weights of :func:`mss_log_weights`.
    """
    b = z.shape[0]
    batch = DiagonalGaussian(posterior.mean.unsqueeze(0), posterior.log_var.unsqueeze(0))
    log_components = batch.log_prob(z.unsqueeze(1))  # [B, B, D]
    joint = log_components.sum(-1)  # [B, B]: log q(z_i | x_j)
    if estimator == "mws":
        shift = math.log(dataset_size * b)
        return joint.logsumexp(1) - shift, log_components.logsumexp(1) - shift
    if estimator != "mss":
        raise ValueError(f"unknown estimator {estimator!r}; allowed: {', '.join(ESTIMATORS)}")
    log_w = mss_log_weights(b, dataset_size, z.device, z.dtype)  # [B, B]
    log_qz = (joint + log_w).logsumexp(1)
    log_qz_dims = (log_components + log_w.unsqueeze(-1)).logsumexp(1)
    return log_qz, log_qz_dims


class BTCVAE(Objective):
    """L = rec + α·MI + β·TC + anneal·γ·dwKL (Chen et al. 2018, Eq. 4), with z_i ~ q(z|x_i):

    MI = mean_i[log q(z_i|x_i) − log q(z_i)], TC = mean_i[log q(z_i) − Σ_d log q(z_{i,d})],
    dwKL = mean_i[Σ_d log q(z_{i,d}) − log p(z_i)]; they add up to the sampled KL exactly.
    ``dataset_size`` N is the training-set size. Defaults α = 1, β = 6, γ = 1 (Chen et al.,
    disentangling-vae). Logged values include all constants, so they are comparable across
    runs; dlib's TC omits (D − 1)·log(N·B) (``specs/disentangling.md`` §3.5, pitfall 10).

    Logs ``mi``, ``tc``, ``dwkl`` and ``dwkl_weight`` (anneal·γ).
    """

    def __init__(
        self,
        dataset_size: int,
        alpha: float = 1.0,
        beta: float = 6.0,
        gamma: float = 1.0,
        estimator: str = "mss",
        anneal_steps: int = 0,
    ):
        super().__init__()
        if isinstance(dataset_size, bool) or not isinstance(dataset_size, int) or dataset_size < 1:
            raise ValueError(
                f"β-TCVAE: dataset_size must be a positive integer, got {dataset_size!r}"
            )
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; allowed: {', '.join(ESTIMATORS)}")
        self.dataset_size, self.estimator = dataset_size, estimator
        self.alpha, self.beta, self.gamma, self.anneal_steps = alpha, beta, gamma, anneal_steps

    def decompose(self, out: VAEOutput) -> dict[str, torch.Tensor]:
        """The batch estimates ``mi``, ``tc`` and ``dwkl`` (scalars, with gradient)."""
        z = out.z
        log_qz_x = out.posterior.log_prob(z).sum(-1)  # [B]
        log_pz = standard_normal_log_prob(z).sum(-1)  # [B]
        log_qz, log_qz_dims = log_q_z(out.posterior, z, self.dataset_size, self.estimator)
        log_prod_qz = log_qz_dims.sum(-1)  # [B]
        return {
            "mi": (log_qz_x - log_qz).mean(),
            "tc": (log_qz - log_prod_qz).mean(),
            "dwkl": (log_prod_qz - log_pz).mean(),
        }

    def forward(self, out: VAEOutput, step: int) -> LossOutput:
        terms = elbo_terms(out)
        parts = self.decompose(out)
        weight = anneal(0.0, 1.0, step, self.anneal_steps) * self.gamma
        loss = (
            terms["recon"]
            + self.alpha * parts["mi"]
            + self.beta * parts["tc"]
            + weight * parts["dwkl"]
        )
        return loss_output(loss, {**terms, **parts, "dwkl_weight": weight})

    def extra_repr(self) -> str:
        return (
            f"dataset_size={self.dataset_size}, alpha={self.alpha}, beta={self.beta}, "
            f"gamma={self.gamma}, estimator={self.estimator!r}, anneal_steps={self.anneal_steps}"
        )


@OBJECTIVES.register(
    "btcvae",
    "β-TCVAE (Chen et al. 2018): rec + α·MI + β·TC + γ·dimension-wise KL",
    params=BTCVAEParams,
)
def build(dataset_size: int, **params: Any) -> BTCVAE:
    """The β-TCVAE objective for a training set of ``dataset_size`` images."""
    return BTCVAE(dataset_size, **validated_params(BTCVAEParams, params, "objective"))
