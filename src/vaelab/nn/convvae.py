"""The convolutional VAE networks of menzHSE/torch-vae (``model.py``);
``specs/disentangling.md`` §1.3.

Three 3×3 stride-2 convolutions with BatchNorm and LeakyReLU (slope 0.01) of widths F/4, F/2, F
(``max_filters`` F = 128 by default), then two linear heads for the mean and log-variance; the
decoder mirrors it with transposed convolutions (``output_padding=1`` so each exactly doubles
the resolution). The reference takes 64×64 inputs only; 32×32 is also accepted here (the
flattened size is then F·4·4 instead of F·8·8).

Differences from the reference, on purpose:

- the four 1×1 "shortcut" (transposed) convolutions the reference builds but never calls are
  left out (they add 20,768 parameters for F = 128 to its state_dicts; drop them on import);
- the decoder returns pre-sigmoid values; the likelihood applies the sigmoid;
- the encoder returns (mean, log_var) and does not sample or store the KL as module state.

Init is PyTorch's default, as in the reference. Parameter counts (F = 128, D = 64, 64×64):
C = 3: 1,768,195; C = 1: 1,767,041.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vaelab.nn.common import check_image_shape, check_latent_dim, is_positive_int

SIZES = ((32, 32), (64, 64))
"""The image sizes (H, W) the torch-vae networks accept (64×64 is the reference's)."""


def _check_max_filters(max_filters: int) -> int:
    if not is_positive_int(max_filters) or max_filters % 4:
        raise ValueError(
            f"torch-vae: max_filters must be a positive multiple of 4 (widths are F/4, F/2, F), "
            f"got {max_filters!r}"
        )
    return max_filters


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    """Conv 3×3, stride 2, padding 1: halves H and W."""
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1)


def _conv_t(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    """Transposed conv 3×3, stride 2, padding 1, output_padding 1: doubles H and W exactly."""
    return nn.ConvTranspose2d(c_in, c_out, kernel_size=3, stride=2, padding=1, output_padding=1)


def _block(conv: nn.Module, c_out: int) -> nn.Sequential:
    """conv -> BatchNorm -> LeakyReLU(0.01), the reference's unit."""
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.LeakyReLU(0.01))


class ConvVAEEncoder(nn.Module):
    """x [B, C, H, W] -> (mean [B, D], log_var [B, D]); H = W ∈ {32, 64}."""

    def __init__(self, image_shape: Sequence[int], latent_dim: int = 64, max_filters: int = 128):
        super().__init__()
        channels, height, width = check_image_shape(image_shape, "torch-vae", SIZES)
        self.latent_dim = check_latent_dim(latent_dim, "torch-vae")
        f = _check_max_filters(max_filters)
        self.features = nn.Sequential(
            _block(_conv(channels, f // 4), f // 4),  # [B, F/4, H/2, W/2]
            _block(_conv(f // 4, f // 2), f // 2),  # [B, F/2, H/4, W/4]
            _block(_conv(f // 2, f), f),  # [B, F, H/8, W/8]
            nn.Flatten(),
        )
        flat = f * (height // 8) * (width // 8)
        self.proj_mu = nn.Linear(flat, latent_dim)
        self.proj_log_var = nn.Linear(flat, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)  # [B, F·H/8·W/8]
        return self.proj_mu(h), self.proj_log_var(h)


class ConvVAEDecoder(nn.Module):
    """z [B, D] -> likelihood params (pre-sigmoid) [B, C, H, W]; H = W ∈ {32, 64}."""

    def __init__(self, image_shape: Sequence[int], latent_dim: int = 64, max_filters: int = 128):
        super().__init__()
        channels, height, width = check_image_shape(image_shape, "torch-vae", SIZES)
        self.latent_dim = check_latent_dim(latent_dim, "torch-vae")
        f = _check_max_filters(max_filters)
        self._bottom = (f, height // 8, width // 8)
        # no activation after lin1, as in the reference
        self.lin1 = nn.Linear(latent_dim, f * (height // 8) * (width // 8))
        self.layers = nn.Sequential(
            _block(_conv_t(f, f // 2), f // 2),  # [B, F/2, H/4, W/4]
            _block(_conv_t(f // 2, f // 4), f // 4),  # [B, F/4, H/2, W/2]
            _conv_t(f // 4, channels),  # [B, C, H, W], no BatchNorm or activation
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.lin1(z).view(-1, *self._bottom)  # [B, F, H/8, W/8]
        return self.layers(h)
