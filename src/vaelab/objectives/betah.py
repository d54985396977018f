"""β-VAE-H (Higgins et al. 2017, Eq. 4): the ELBO with the KL term weighted by β > 1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vaelab.config import spec
from vaelab.objectives.base import validated_params
from vaelab.objectives.vae import VAE
from vaelab.registry import OBJECTIVES


@dataclass
class BetaHParams:
    beta: float = spec(4.0, minimum=0.0, help="weight of the KL term")
    anneal_steps: int = spec(
        0, minimum=0, help="KL weight rises linearly 0 -> β over this many steps"
    )


class BetaVAEH(VAE):
    """L = rec + anneal(0, 1, step, T)·β·KL (``specs/disentangling.md`` §3.2).

    β = 4 is disentangling-vae's default and dSprites/chairs preset (β = 10 for CelebA); the
    disentanglement_lib study sweeps β ∈ {1, 2, 4, 6, 8, 16} without warm-up. disentangling-vae
    anneals the whole KL weight over ``reg_anneal`` = 10,000 steps; here T defaults to 0 (none)
    and presets set it.
    """

    def __init__(self, beta: float = 4.0, anneal_steps: int = 0):
        super().__init__(anneal_steps=anneal_steps, beta=beta)


@OBJECTIVES.register("betah", "β-VAE-H (Higgins et al. 2017): rec + β·KL", params=BetaHParams)
def build(dataset_size: int, **params: Any) -> BetaVAEH:
    """The β-VAE-H objective; ``dataset_size`` is not used."""
    return BetaVAEH(**validated_params(BetaHParams, params, "objective"))
