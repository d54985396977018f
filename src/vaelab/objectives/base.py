"""What every Gaussian-VAE objective shares: the forward-pass record, the ELBO terms, annealing.

An objective turns one forward pass (:class:`VAEOutput`) and the optimizer step into a
:class:`~vaelab.models.base.LossOutput`: the ELBO's reconstruction term plus one regulariser
(``specs/disentangling.md`` §3). Schedules are pure functions of ``step`` (:func:`anneal`).
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from vaelab.config import build_dataclass, validate_fields
from vaelab.distributions import DiagonalGaussian
from vaelab.models.base import LossOutput

if TYPE_CHECKING:
    from vaelab.models.gaussian import GaussianVAE


def anneal(init: float, final: float, step: int, steps: int) -> float:
    """Linear schedule from ``init`` (at step 0) to ``final`` (from step ``steps`` on).

    ``step`` is the number of optimizer updates done before the current one (0 for the first
    update); ``steps == 0`` means no annealing (always ``final``). The value is clamped at
    ``final`` in the direction of travel (min for increasing schedules, max for decreasing).

    disentangling-vae's ``linear_annealing`` counts its training calls from t = 1, i.e.
    t = step + 1: its first update already uses (final − init)/steps. Pass ``step + 1`` to
    reproduce its schedule exactly (``specs/disentangling.md`` §3.0).
    """
    if steps == 0:
        return final
    value = init + (final - init) * step / steps
    return min(value, final) if final >= init else max(value, final)


@dataclass
class VAEOutput:
    """One forward pass of a Gaussian-latent VAE on a batch ``x``.

    ``posterior``: q(z|x) with mean and log-variance [B, D]; ``z``: the reparameterised sample
    [B, D]; ``params``: decoder output [B, C, H, W]; ``recon``: exact per-image negative
    log-likelihood −log p(x|z) [B].
    """

    x: torch.Tensor
    posterior: DiagonalGaussian
    z: torch.Tensor
    params: torch.Tensor
    recon: torch.Tensor

    @cached_property
    def kl_per_dim(self) -> torch.Tensor:
        """Closed-form KL(q(z_d|x) ‖ N(0, 1)) per image and latent dimension: [B, D]."""
        return self.posterior.kl_standard_normal()


def elbo_terms(out: VAEOutput) -> dict[str, torch.Tensor]:
    """The terms every objective logs, as batch means (with gradient).

    ``recon``: mean per-image NLL; ``kl``: mean Σ_d KL; ``kl_per_dim``: [D];
    ``elbo`` = −(recon + kl), the exact ELBO per image in nats (Kingma & Welling 2014, Eq. 3).
    """
    recon = out.recon.mean()
    kl_per_dim = out.kl_per_dim.mean(0)  # [D]
    kl = kl_per_dim.sum()
    return {"recon": recon, "kl": kl, "kl_per_dim": kl_per_dim, "elbo": -(recon + kl)}


def loss_output(
    loss: torch.Tensor,
    terms: dict[str, torch.Tensor | float],
    group_losses: dict[str, torch.Tensor] | None = None,
) -> LossOutput:
    """A :class:`LossOutput` whose terms (``loss`` included) are detached tensors.

    Python floats (schedule values) become 0-d tensors on ``loss``'s device by a fill, not a
    host-to-device copy, so nothing here synchronises with the device.
    """
    logged = {"loss": loss.detach()}
    for name, value in terms.items():
        if isinstance(value, torch.Tensor):
            logged[name] = value.detach()
        else:
            logged[name] = loss.new_full((), float(value)).detach()
    return LossOutput(loss, logged, dict(group_losses or {}))


class Objective(nn.Module, abc.ABC):
    """Base class: ``forward(out, step)`` maps one :class:`VAEOutput` to a :class:`LossOutput`.

    An ``nn.Module`` so that objectives with trainable parts (FactorVAE's discriminator) are
    saved in the model's ``state_dict``.
    """

    @abc.abstractmethod
    def forward(self, out: VAEOutput, step: int) -> LossOutput:
        """The loss of one forward pass at optimizer step ``step``; subclasses implement it."""

    def loss(self, model: GaussianVAE, x: torch.Tensor, step: int) -> LossOutput:
        """One training batch ``x`` -> :class:`LossOutput` (one forward pass by default)."""
        return self(model.forward_pass(x), step)

    def bind(self, latent_dim: int) -> None:
        """Called by the model with its latent size; parts sized by D are built here."""

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters trained by their own optimizer, by group name (none by default)."""
        return {}

    def optimizer_settings(self, group: str) -> dict[str, Any]:
        """Optimizer keyword arguments (``lr``, ``betas``) for one of :meth:`optimizer_groups`."""
        raise KeyError(f"{type(self).__name__} has no optimizer group {group!r}")


def validated_params(cls: type, params: dict[str, Any], where: str) -> dict[str, Any]:
    """``params`` checked against the params dataclass ``cls`` (defaults filled in) as kwargs.

    Builders call this so that direct calls get the same checks and messages as configs.
    """
    checked = build_dataclass(cls, params, where)
    validate_fields(checked, where)
    return {f.name: getattr(checked, f.name) for f in dataclasses.fields(checked)}
