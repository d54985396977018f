"""The convolutional encoder/decoder of Burgess et al. 2018, "Understanding disentangling in
β-VAE" (Appendix A.1), as used by default in YannDubs/disentangling-vae
(``disvae/models/{encoders,decoders}.py``); ``specs/disentangling.md`` §1.1.

Every convolution is 4×4, stride 2, padding 1, with 32 channels; the MLP has 256 units.
Inputs are 32×32 or 64×64 with any channel count; for 64×64 one extra convolution
(``conv_64`` / ``convT_64``) halves/doubles the resolution. Submodule names follow the
reference so that its checkpoints map onto these modules by name.

Init (disentangling-vae ``disvae/utils/initialization.py``): every weight, output layers
included, is Kaiming-uniform with the ReLU gain; biases keep PyTorch's default init.

Parameter counts for D = 10: 64×64, C = 1: 502,005 (encoder 252,052 + decoder 249,953);
64×64, C = 3: 504,055; 32×32, C = 1: 469,173; 32×32, C = 3: 471,223.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from vaelab.nn.common import check_image_shape, check_latent_dim

SIZES = ((32, 32), (64, 64))
"""The image sizes (H, W) the Burgess networks accept."""

_CHANNELS = 32
_HIDDEN = 256
_BOTTOM = (_CHANNELS, 4, 4)  # the smallest feature map, 32×4×4 = 512 values


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1)


def _conv_t(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1)


def _kaiming_relu_(module: nn.Module) -> None:
    """Kaiming-uniform (ReLU gain, fan-in mode) on every conv and linear weight of ``module``;
    biases are left at PyTorch's default."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")


class BurgessEncoder(nn.Module):
    """x [B, C, H, W] -> (mean [B, D], log_var [B, D]).

    The reference's last layer ``mu_logvar_gen`` (256 -> 2D) is read here as
    [mean (first D units) | log_var (last D units)]. disentangling-vae instead reshapes the 2D
    outputs to (D, 2), so its mean is the **even** units and its log_var the **odd** units:
    when importing its checkpoints, permute the rows of ``mu_logvar_gen.weight`` and ``.bias``
    by ``[0, 2, ..., 2D-2, 1, 3, ..., 2D-1]``. The second half is log σ² (the reference code
    notes that the paper writes log σ).
    """

    def __init__(self, image_shape: Sequence[int], latent_dim: int = 10):
        super().__init__()
        channels, height, _ = check_image_shape(image_shape, "Burgess", SIZES)
        self.latent_dim = check_latent_dim(latent_dim, "Burgess")
        self.conv1 = _conv(channels, _CHANNELS)
        self.conv2 = _conv(_CHANNELS, _CHANNELS)
        self.conv3 = _conv(_CHANNELS, _CHANNELS)
        self.conv_64 = _conv(_CHANNELS, _CHANNELS) if height == 64 else None
        self.lin1 = nn.Linear(_CHANNELS * 4 * 4, _HIDDEN)
        self.lin2 = nn.Linear(_HIDDEN, _HIDDEN)
        self.mu_logvar_gen = nn.Linear(_HIDDEN, 2 * latent_dim)
        _kaiming_relu_(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.conv1(x))  # [B, 32, H/2, W/2]
        h = F.relu(self.conv2(h))
        h = F.relu(self.conv3(h))  # [B, 32, 4, 4] for 32×32, [B, 32, 8, 8] for 64×64
        if self.conv_64 is not None:
            h = F.relu(self.conv_64(h))  # [B, 32, 4, 4]
        h = F.relu(self.lin1(h.flatten(1)))  # [B, 256]
        h = F.relu(self.lin2(h))
        mean, log_var = self.mu_logvar_gen(h).chunk(2, dim=1)  # [B, D] each
        return mean, log_var


class BurgessDecoder(nn.Module):
    """z [B, D] -> Bernoulli logits / likelihood params [B, C, H, W].

    The reference ends with a sigmoid and computes its loss on probabilities; here the
    decoder returns the pre-sigmoid values and :mod:`vaelab.distributions` applies the
    sigmoid (or a logits-based cross-entropy) itself.
    """

    def __init__(self, image_shape: Sequence[int], latent_dim: int = 10):
        super().__init__()
        channels, height, _ = check_image_shape(image_shape, "Burgess", SIZES)
        self.latent_dim = check_latent_dim(latent_dim, "Burgess")
        self.lin1 = nn.Linear(latent_dim, _HIDDEN)
        self.lin2 = nn.Linear(_HIDDEN, _HIDDEN)
        self.lin3 = nn.Linear(_HIDDEN, _CHANNELS * 4 * 4)
        self.convT_64 = _conv_t(_CHANNELS, _CHANNELS) if height == 64 else None
        self.convT1 = _conv_t(_CHANNELS, _CHANNELS)
        self.convT2 = _conv_t(_CHANNELS, _CHANNELS)
        self.convT3 = _conv_t(_CHANNELS, channels)
        _kaiming_relu_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.lin1(z))  # [B, 256]
        h = F.relu(self.lin2(h))
        h = F.relu(self.lin3(h)).view(-1, *_BOTTOM)  # [B, 32, 4, 4]
        if self.convT_64 is not None:
            h = F.relu(self.convT_64(h))  # [B, 32, 8, 8]
        h = F.relu(self.convT1(h))
        h = F.relu(self.convT2(h))
        return self.convT3(h)  # [B, C, H, W]
