"""The VAE objective: the negative ELBO (Kingma & Welling 2014, Eq. 10), optional KL warm-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


@dataclass
class VAEParams:
    anneal_steps: int = spec(
        0, minimum=0, help="KL weight rises linearly 0 -> 1 over this many steps (0: plain ELBO)"
    )


class VAE(Objective):
    """L = rec + anneal(0, 1, step, T)·β·KL, per image (batch mean); β = 1 is the ELBO.

    With ``anneal_steps`` T = 0 (the default) this is the plain negative ELBO. disentangling-vae's
    "VAE" is this objective with a 10,000-step KL warm-up (its ``reg_anneal``; the presets set
    it), ``specs/disentangling.md`` §3.0–3.1 and pitfall 5. β ≠ 1 is β-VAE-H
    (:mod:`vaelab.objectives.betah`).

    Logs ``kl_weight``, the effective coefficient anneal·β of the KL term.
    """

    def __init__(self, anneal_steps: int = 0, beta: float = 1.0):
        super().__init__()
        self.anneal_steps = anneal_steps
        self.beta = beta

    def forward(self, out: VAEOutput, step: int) -> LossOutput:
        terms = elbo_terms(out)
        weight = anneal(0.0, 1.0, step, self.anneal_steps) * self.beta
        loss = terms["recon"] + weight * terms["kl"]
        return loss_output(loss, {**terms, "kl_weight": weight})

    def extra_repr(self) -> str:
        return f"beta={self.beta}, anneal_steps={self.anneal_steps}"


@OBJECTIVES.register(
    "vae", "VAE (Kingma & Welling 2014): negative ELBO, optional KL warm-up", params=VAEParams
)
def build(dataset_size: int, **params: Any) -> VAE:
    """The VAE objective; ``dataset_size`` is not used."""
    return VAE(**validated_params(VAEParams, params, "objective"))
