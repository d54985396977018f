"""Fully connected encoder/decoder for any image shape: tiny tests and MNIST-like data.

The shape of Kingma & Welling 2014's MNIST networks (flatten, ReLU hidden layers, linear
Gaussian heads); dlib's ``fc_encoder`` is the case ``hidden=(1200, 1200)``. PyTorch default init.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from vaelab.nn.common import check_image_shape, check_latent_dim, is_positive_int


def _check_hidden(hidden: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(hidden)
    if not all(is_positive_int(h) for h in sizes):
        raise ValueError(f"MLP: hidden must be a sequence of positive integers, got {hidden!r}")
    return sizes


def _relu_stack(sizes: Sequence[int]) -> nn.Sequential:
    """Linear + ReLU for each consecutive pair in ``sizes`` (empty for a single size)."""
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(sizes):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """x [B, C, H, W] -> (mean [B, D], log_var [B, D]) through ReLU layers of sizes ``hidden``."""

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int = 10,
        hidden: Sequence[int] = (256, 256),
    ):
        super().__init__()
        channels, height, width = check_image_shape(image_shape, "MLP")
        self.latent_dim = check_latent_dim(latent_dim, "MLP")
        sizes = (channels * height * width, *_check_hidden(hidden))
        self.body = _relu_stack(sizes)
        self.mean = nn.Linear(sizes[-1], latent_dim)
        self.log_var = nn.Linear(sizes[-1], latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x.flatten(1))  # [B, hidden[-1]]
        return self.mean(h), self.log_var(h)


class MLPDecoder(nn.Module):
    """z [B, D] -> likelihood params (pre-sigmoid) [B, C, H, W] through ReLU layers ``hidden``."""

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int = 10,
        hidden: Sequence[int] = (256, 256),
    ):
        super().__init__()
        self.image_shape = check_image_shape(image_shape, "MLP")
        self.latent_dim = check_latent_dim(latent_dim, "MLP")
        sizes = (latent_dim, *_check_hidden(hidden))
        self.body = _relu_stack(sizes)
        self.out = nn.Linear(sizes[-1], math.prod(self.image_shape))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.body(z)  # [B, hidden[-1]]
        return self.out(h).view(-1, *self.image_shape)  # [B, C, H, W]
