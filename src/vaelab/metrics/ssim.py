"""Structural similarity (SSIM, Wang et al. 2004) as TensorFlow's ``tf.image.ssim`` computes it.

Local means, variances and covariance come from an isotropic Gaussian window (11×11, σ = 1.5,
weights normalised to sum 1; biased moments, TensorFlow's ``compensation=1``):

    SSIM map = (2μ_xμ_y + C1)(2σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2)),

C1 = (K1·L)², C2 = (K2·L)² with L the data range (Wang et al. 2004, Eqs. 13–14). The map is
averaged over pixels per channel, then over channels: one value per image. TensorFlow filters
with VALID padding (the map loses ``window − 1`` pixels per axis); Efficient-VDVAE pads with
zeros to keep the size, which lowers the border values (``padding="zero"``;
``specs/metrics.md`` §12 and pitfall 11).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vaelab.nn.common import is_positive_int

PADDINGS = ("valid", "zero")
"""Padding conventions accepted by :func:`ssim`: TensorFlow's VALID, Efficient-VDVAE's zeros."""


def gaussian_window(window: int, sigma: float) -> torch.Tensor:
    """The 1-D window exp(−t²/2σ²), t = i − (window − 1)/2, normalised to sum 1: float64
    [window]. Its outer product with itself is TensorFlow's 2-D window."""
    t = torch.arange(window, dtype=torch.float64) - (window - 1) / 2
    weights = torch.exp(-0.5 * (t / sigma).square())
    return weights / weights.sum()


def _check_args(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float,
    padding: str,
    window: int,
    sigma: float,
    k1: float,
    k2: float,
) -> None:
    if x.shape != y.shape:
        raise ValueError(
            f"SSIM needs two batches of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.dim() != 4:
        raise ValueError(f"SSIM needs images [B, C, H, W], got shape {tuple(x.shape)}")
    if padding not in PADDINGS:
        allowed = ", ".join(repr(p) for p in PADDINGS)
        raise ValueError(f"unknown SSIM padding {padding!r}; allowed: {allowed}")
    if not is_positive_int(window):
        raise ValueError(f"SSIM window must be a positive integer, got {window!r}")
    if padding == "zero" and window % 2 == 0:
        raise ValueError(f"zero padding needs an odd SSIM window, got {window}")
    if padding == "valid" and min(x.shape[-2:]) < window:
        raise ValueError(
            f"images of {x.shape[-2]}×{x.shape[-1]} pixels are smaller than the {window}×{window} "
            "SSIM window; use a smaller window or padding='zero'"
        )
    for name, value in (("data_range", data_range), ("sigma", sigma), ("k1", k1), ("k2", k2)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"SSIM {name} must be positive and finite, got {value!r}")


def ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 255.0,
    padding: str = "valid",
    window: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """The local SSIM of images ``x`` and ``y`` ([B, C, H, W] in [0, data_range]), float64.

    Shape [B, C, H − window + 1, W − window + 1] for ``padding="valid"``, [B, C, H, W] for
    ``"zero"``. Arguments as in :func:`ssim`.
    """
    _check_args(x, y, data_range, padding, window, sigma, k1, k2)
    batch, channels, height, width = x.shape
    weights = gaussian_window(window, sigma).to(x.device)
    column = weights.view(1, 1, window, 1)  # the separable 2-D window: column then row
    row = weights.view(1, 1, 1, window)
    pad = window // 2 if padding == "zero" else 0

    def local_mean(image: torch.Tensor) -> torch.Tensor:  # [B·C, 1, H, W] -> filtered
        image = F.conv2d(image, column, padding=(pad, 0))
        return F.conv2d(image, row, padding=(0, pad))

    # every channel filtered alone; float64 because σ² = E[x²] − μ² cancels badly at L = 255
    x = x.reshape(batch * channels, 1, height, width).double()
    y = y.reshape(batch * channels, 1, height, width).double()
    mean_x, mean_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mean_x.square()
    var_y = local_mean(y * y) - mean_y.square()
    cov = local_mean(x * y) - mean_x * mean_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    luminance = (2 * mean_x * mean_y + c1) / (mean_x.square() + mean_y.square() + c1)
    contrast_structure = (2 * cov + c2) / (var_x + var_y + c2)
    return (luminance * contrast_structure).view(batch, channels, *mean_x.shape[-2:])


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 255.0,
    padding: str = "valid",
    window: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """SSIM per image, as ``tf.image.ssim``: float64 [B]; average it over images for a score.

    ``x``, ``y``: [B, C, H, W] with values in [0, ``data_range``] (255 for 8-bit images, 1 for
    images in [0, 1]). ``padding``: "valid" (TensorFlow; needs H, W ≥ ``window``) or "zero"
    (Efficient-VDVAE: same-size map, lower values near the border). ``window``, ``sigma``: the
    Gaussian window's size and width; ``k1``, ``k2``: the stabilising constants of Wang et al.
    2004. Identical images score exactly 1.
    """
    return ssim_map(x, y, data_range, padding, window, sigma, k1, k2).mean((2, 3)).mean(1)
