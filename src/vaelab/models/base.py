"""The small interface every vaelab model offers to trainers, metrics and plots.

A model is an ``nn.Module`` with:

- ``loss(x, step) -> LossOutput``: the total loss to minimise, named scalar terms for the
  logs, and, for parts trained by their own optimizer (FactorVAE's discriminator), their
  losses by group name;
- ``optimizer_groups()``: parameters by group name (``"model"`` for the usual single group);
- ``encode(x)`` (posterior), ``decode(z)`` (likelihood), ``sample(n, temperature,
  generator)``, ``reconstruct(x)`` and ``representation(x)`` (what metrics score).

Schedules are pure functions of ``step`` (the number of optimizer updates so far), passed in;
no loss keeps a hidden counter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class LossOutput:
    """What one training step's loss computation returns.

    ``loss``: scalar tensor minimised by the ``"model"`` optimizer group.
    ``terms``: named tensors for the logs (scalars, or 1-D like ``kl_per_dim``); detached.
    ``group_losses``: scalar losses of the other optimizer groups, by group name; each is
    minimised only with respect to that group's parameters.
    """

    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    group_losses: dict[str, torch.Tensor] = field(default_factory=dict)
