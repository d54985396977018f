"""Exponential moving average of model weights (Polyak averaging)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class EMA:
    """``shadow <- decay * shadow + (1 - decay) * weights`` after every update.

    Floating-point parameters and buffers are averaged (BatchNorm statistics included);
    integer buffers (``num_batches_tracked``) are copied. One ``foreach`` call per update,
    no host synchronisation.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self._names = [k for k, v in model.state_dict().items() if v.is_floating_point()]
        state = model.state_dict()
        self.shadow = {k: v.detach().clone() for k, v in state.items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        state = model.state_dict()
        floats = [self.shadow[k] for k in self._names]
        torch._foreach_lerp_(floats, [state[k].detach() for k in self._names], 1.0 - self.decay)
        for key, value in state.items():
            if not value.is_floating_point():
                self.shadow[key].copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise ValueError(f"EMA state does not match the model: keys {sorted(missing)[:5]}")
        for key, value in state.items():
            self.shadow[key].copy_(value)

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily load the averaged weights into ``model`` (for evaluation)."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(backup)
