"""Optimizers and learning-rate schedules, by the names configs use.

Adam, AdamW and SGD use PyTorch's fused kernels where the device supports them (one kernel
for all parameters, and an on-device ``found_inf`` flag, which is how the trainer skips an
update without a host-device synchronisation); Adamax uses the foreach implementation;
LAMB, DiffGrad and MADGRAD come from pytorch-optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

OPTIMIZERS = ("adam", "adamw", "sgd", "adamax", "lamb", "diffgrad", "madgrad")
SCHEDULES = ("constant", "warmup", "cosine")


def build_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter],
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
) -> torch.optim.Optimizer:
    """An optimizer by name (``OPTIMIZERS``) over ``params``."""
    params = list(params)
    if name in ("adam", "adamw", "sgd"):
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[name]
        kwargs = (
            {"momentum": momentum, "weight_decay": weight_decay}
            if name == "sgd"
            else {"betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        )
        try:
            return cls(params, lr=lr, fused=True, **kwargs)
        except (RuntimeError, ValueError):  # a device or dtype without fused kernels
            return cls(params, lr=lr, foreach=True, **kwargs)
    if name == "adamax":
        return torch.optim.Adamax(
            params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, foreach=True
        )
    if name in ("lamb", "diffgrad", "madgrad"):
        import pytorch_optimizer as po

        if name == "madgrad":
            return po.MADGRAD(
                params, lr=lr, momentum=momentum or 0.9, weight_decay=weight_decay, eps=eps
            )
        cls = po.Lamb if name == "lamb" else po.DiffGrad
        return cls(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, eps=eps)
    raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}")


def supports_found_inf(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.step()`` honours an on-device ``found_inf`` flag (fused kernels)."""
    groups = optimizer.param_groups
    return bool(getattr(optimizer, "_step_supports_amp_scaling", False)) and all(
        g.get("fused") for g in groups
    )


def lr_factor(
    schedule: str, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> Callable[[int], float]:
    """The multiplier of the base learning rate after ``step`` updates (a pure function).

    ``constant``: 1 (after an optional linear warm-up); ``warmup``: linear from 1/warmup to 1
    over ``warmup_steps``, then 1; ``cosine``: the warm-up, then a half cosine from 1 down to
    ``min_ratio`` at ``total_steps``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}")

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule != "cosine":
            return 1.0
        span = max(total_steps - warmup_steps, 1)
        progress = min(max(step - warmup_steps, 0) / span, 1.0)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
