"""The conv encoder / deconv decoder of google-research/disentanglement_lib
(``methods/shared/architectures.py``: ``conv_encoder``, ``deconv_decoder``), the architecture of
the 12,600-model study of Locatello et al. 2019 (ICML) and of the β-VAE chairs model (Higgins et
al. 2017, Table 1); ``specs/disentangling.md`` §1.2.

Inputs are 64×64 with any channel count. TensorFlow "same" padding on these even sizes equals
PyTorch padding 1 for the 4×4 stride-2 layers and padding 0 for the 2×2 stride-2 layers.
Init follows the TensorFlow defaults the reference relies on: Glorot-uniform weights, zero biases.
PyTorch's Glorot bound uses fan_in + fan_out, which is the same for TF's (kh, kw, out, in)
transposed-convolution kernels as for PyTorch's (in, out, kh, kw) ones.

Porting TF weights: dense kernels are (in, out) (transpose them), conv kernels are
(kh, kw, in, out) (permute to (out, in, kh, kw)), transposed-conv kernels are (kh, kw, out, in)
(permute to (in, out, kh, kw)), and the decoder's reshape to 4×4×64 is NHWC, so the output
units of ``d2`` must be reordered from (h, w, c) to (c, h, w); likewise the encoder's flatten
feeding ``e5`` is (h, w, c) in TF.

Parameter counts for D = 10: C = 1: 690,517 (encoder 309,204 + decoder 381,313); C = 3: 692,567.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from vaelab.nn.common import check_image_shape, check_latent_dim

SIZES = ((64, 64),)
"""The image sizes (H, W) the disentanglement_lib networks accept."""

_HIDDEN = 256
_BOTTOM = (64, 4, 4)  # the decoder's first feature map, 64×4×4 = 1024 values


def _glorot_zero_(module: nn.Module) -> None:
    """TF defaults on every conv and linear layer of ``module``: Glorot-uniform, zero bias."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)


class DlibEncoder(nn.Module):
    """x [B, C, 64, 64] -> (mean [B, D], log_var [B, D]), from two separate linear heads."""

    def __init__(self, image_shape: Sequence[int], latent_dim: int = 10):
        super().__init__()
        channels, _, _ = check_image_shape(image_shape, "disentanglement_lib", SIZES)
        self.latent_dim = check_latent_dim(latent_dim, "disentanglement_lib")
        self.e1 = nn.Conv2d(channels, 32, kernel_size=4, stride=2, padding=1)
        self.e2 = nn.Conv2d(32, 32, kernel_size=4, stride=2, padding=1)
        self.e3 = nn.Conv2d(32, 64, kernel_size=2, stride=2)
        self.e4 = nn.Conv2d(64, 64, kernel_size=2, stride=2)
        self.e5 = nn.Linear(64 * 4 * 4, _HIDDEN)
        self.means = nn.Linear(_HIDDEN, latent_dim)
        self.log_var = nn.Linear(_HIDDEN, latent_dim)
        _glorot_zero_(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.e1(x))  # [B, 32, 32, 32]
        h = F.relu(self.e2(h))  # [B, 32, 16, 16]
        h = F.relu(self.e3(h))  # [B, 64, 8, 8]
        h = F.relu(self.e4(h))  # [B, 64, 4, 4]
        h = F.relu(self.e5(h.flatten(1)))  # [B, 256]
        return self.means(h), self.log_var(h)


class DlibDecoder(nn.Module):
    """z [B, D] -> Bernoulli logits / likelihood params [B, C, 64, 64] (no output activation)."""

    def __init__(self, image_shape: Sequence[int], latent_dim: int = 10):
        super().__init__()
        channels, _, _ = check_image_shape(image_shape, "disentanglement_lib", SIZES)
        self.latent_dim = check_latent_dim(latent_dim, "disentanglement_lib")
        self.d1 = nn.Linear(latent_dim, _HIDDEN)
        self.d2 = nn.Linear(_HIDDEN, 64 * 4 * 4)
        self.d3 = nn.ConvTranspose2d(64, 64, kernel_size=4, stride=2, padding=1)
        self.d4 = nn.ConvTranspose2d(64, 32, kernel_size=4, stride=2, padding=1)
        self.d5 = nn.ConvTranspose2d(32, 32, kernel_size=4, stride=2, padding=1)
        self.d6 = nn.ConvTranspose2d(32, channels, kernel_size=4, stride=2, padding=1)
        _glorot_zero_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.d1(z))  # [B, 256]
        h = F.relu(self.d2(h)).view(-1, *_BOTTOM)  # [B, 64, 4, 4]
        h = F.relu(self.d3(h))  # [B, 64, 8, 8]
        h = F.relu(self.d4(h))  # [B, 32, 16, 16]
        h = F.relu(self.d5(h))  # [B, 32, 32, 32]
        return self.d6(h)  # [B, C, 64, 64]
