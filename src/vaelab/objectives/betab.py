"""β-VAE-B / AnnealedVAE (Burgess et al. 2018, Eq. 8): a KL pulled towards a growing capacity."""

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
class BetaBParams:
    gamma: float = spec(1000.0, minimum=0.0, help="weight γ of |KL − C|")
    c_init: float = spec(0.0, minimum=0.0, help="capacity C at step 0 (nats)")
    c_max: float = spec(25.0, minimum=0.0, help="final capacity C (nats)")
    c_steps: int = spec(100_000, minimum=0, help="C moves linearly c_init -> c_max over these")


class BetaVAEB(Objective):
    """L = rec + γ·|KL − C(step)|, C(step) = anneal(c_init, c_max, step, c_steps).

    Burgess et al. 2018, Eq. 8 (``specs/disentangling.md`` §3.3). Defaults are the paper's and
    disentanglement_lib's AnnealedVAE: γ = 1000, C from 0 to 25 nats over 100,000 steps (dlib
    sweeps C_max ∈ {5, 10, 25, 50, 75, 100}). disentangling-vae uses γ = 100 (its presets set
    it). KL is the batch mean of the per-image KL, so |KL − C| is taken after averaging.

    Logs ``capacity`` = C(step).
    """

    def __init__(
        self,
        gamma: float = 1000.0,
        c_init: float = 0.0,
        c_max: float = 25.0,
        c_steps: int = 100_000,
    ):
        super().__init__()
        self.gamma, self.c_init, self.c_max, self.c_steps = gamma, c_init, c_max, c_steps

    def forward(self, out: VAEOutput, step: int) -> LossOutput:
        terms = elbo_terms(out)
        capacity = anneal(self.c_init, self.c_max, step, self.c_steps)
        loss = terms["recon"] + self.gamma * (terms["kl"] - capacity).abs()
        return loss_output(loss, {**terms, "capacity": capacity})

    def extra_repr(self) -> str:
        return (
            f"gamma={self.gamma}, c_init={self.c_init}, c_max={self.c_max}, c_steps={self.c_steps}"
        )


@OBJECTIVES.register(
    "betab",
    "β-VAE-B / AnnealedVAE (Burgess et al. 2018): rec + γ·|KL − C(step)|",
    params=BetaBParams,
)
def build(dataset_size: int, **params: Any) -> BetaVAEB:
    """The β-VAE-B objective; ``dataset_size`` is not used."""
    return BetaVAEB(**validated_params(BetaBParams, params, "objective"))
