"""Latent traversals: which values a latent takes, in which order latents are shown, the
decoding, and the phases of a looping animation.

A traversal holds a base code z fixed and sweeps one coordinate z_j over a range, decoding
each point (Higgins et al. 2017, Fig. 1). The value rule follows disentangling-vae's
``_get_traversal_range`` with its two pitfalls fixed (``specs/visualization.md`` §1):

- absolute mode, m ≥ 0.5: n evenly spaced values base − m … base + m, where ``base`` is the
  value the latent has in the base code (0 for prior traversals, the posterior mean μ_j for
  posterior ones: vaelab centres on the posterior, disentangling-vae does not);
- quantile mode, 0 < m < 0.5: the quantiles Q(½ − m) … Q(½ + m) of N(0, 1) (prior) or of
  N(μ_j, σ_j²) (posterior), ascending and covering probability mass 2m (m = 0.475 gives
  ±1.96 for the prior).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy.special import ndtri
from torch import nn

LATENT_ORDERS = ("kl", "index")


def _check_max_traversal(max_traversal: float) -> float:
    if isinstance(max_traversal, bool) or not isinstance(max_traversal, int | float):
        raise ValueError(f"max_traversal must be a positive number, got {max_traversal!r}")
    if not (math.isfinite(max_traversal) and max_traversal > 0):
        raise ValueError(f"max_traversal must be positive and finite, got {max_traversal!r}")
    return float(max_traversal)


def is_quantile_mode(max_traversal: float) -> bool:
    """Whether ``max_traversal`` m is a probability half-width (m < 0.5) rather than ±m."""
    return _check_max_traversal(max_traversal) < 0.5


def traversal_at(
    phases: np.ndarray,
    max_traversal: float,
    mean: float | np.ndarray | None = None,
    std: float | np.ndarray | None = None,
) -> np.ndarray:
    """Traversal values at ``phases`` p ∈ [0, 1] (0: start of the range, 1: its end).

    Absolute mode (m ≥ 0.5): mean + m(2p − 1); ``std`` is not used.
    Quantile mode (m < 0.5): mean + std·Φ⁻¹(½ + m(2p − 1)), the quantile of N(mean, std²)
    at probability ½ + m(2p − 1). ``mean`` defaults to 0 and ``std`` to 1 (the prior).

    Returns ``[P]`` for scalar ``mean``/``std``, ``[D, P]`` when either is an array ``[D]``.
    """
    m = _check_max_traversal(max_traversal)
    phases = np.asarray(phases, dtype=np.float64)
    if phases.ndim != 1 or not np.all((phases >= 0) & (phases <= 1)):
        raise ValueError("phases must be a 1-D array of numbers in [0, 1]")
    mean = np.asarray(0.0 if mean is None else mean, dtype=np.float64)
    std = np.asarray(1.0 if std is None else std, dtype=np.float64)
    mean, std = np.broadcast_arrays(mean, std)
    if mean.ndim > 1:
        raise ValueError(f"mean and std must be scalars or [D] arrays, got shape {mean.shape}")
    offsets = 2.0 * phases - 1.0  # [P] in [-1, 1]
    if m >= 0.5:
        return mean[..., None] + m * offsets
    if not np.all(std > 0):
        raise ValueError("quantile traversal needs positive standard deviations")
    return mean[..., None] + std[..., None] * ndtri(0.5 + m * offsets)


def traversal_values(
    n: int,
    max_traversal: float,
    mean: float | np.ndarray | None = None,
    std: float | np.ndarray | None = None,
) -> np.ndarray:
    """``n`` ascending traversal values ``[n]`` (or ``[D, n]`` for per-latent ``mean``/``std``
    arrays ``[D]``), evenly spaced in value (absolute mode) or in probability (quantile mode);
    see :func:`traversal_at`. ``n = 1`` gives the centre of the range."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    phases = np.linspace(0.0, 1.0, n) if n > 1 else np.array([0.5])
    return traversal_at(phases, max_traversal, mean, std)


def latent_order(kl_per_dim: Sequence[float] | np.ndarray, by: str = "kl") -> list[int]:
    """Latent indices in display order: ``"kl"`` by descending KL, ties (and NaN, last) by
    index; ``"index"``: 0, 1, …, D − 1."""
    kl = np.asarray(kl_per_dim, dtype=np.float64).reshape(-1)
    if by == "index":
        return list(range(len(kl)))
    if by != "kl":
        raise ValueError(f"latent order must be one of {LATENT_ORDERS}, got {by!r}")
    key = np.where(np.isnan(kl), -np.inf, kl)
    return sorted(range(len(kl)), key=lambda j: (-key[j], j))


def parameter_placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of the model's first parameter (CPU float32 for none): where codes
    and images must go to be decoded or encoded."""
    weight = next(iter(model.parameters()), None)
    if weight is None:
        return torch.device("cpu"), torch.float32
    return weight.device, weight.dtype


def _cpu64(values: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", torch.float64)
    return torch.from_numpy(np.array(values, dtype=np.float64))


@torch.no_grad()
def traverse(
    model: nn.Module,
    base_z: torch.Tensor | np.ndarray,
    latents: Sequence[int],
    values: torch.Tensor | np.ndarray,
    batch_size: int = 256,
) -> torch.Tensor:
    """Decoded traversals: images ``[L, n, C, H, W]`` in [0, 1] on the CPU.

    Row i sets latent ``latents[i]`` of ``base_z`` ``[D]`` to ``values[i, k]`` (``values`` is
    ``[L, n]``, or ``[n]`` shared by every row) and shows the likelihood mean of the decoding.
    At most ``batch_size`` codes are decoded at once. The model's train/eval mode is the
    caller's choice (eval for BatchNorm networks).
    """
    device, dtype = parameter_placement(model)
    base = _cpu64(base_z).reshape(-1)
    index = torch.as_tensor(list(latents), dtype=torch.int64).reshape(-1)
    if len(index) and not (int(index.min()) >= 0 and int(index.max()) < len(base)):
        raise ValueError(f"latents must lie in [0, {len(base)}), got {list(latents)}")
    vals = _cpu64(values)
    if vals.dim() == 1:
        vals = vals.expand(len(index), -1)
    if vals.dim() != 2 or vals.shape[0] != len(index):
        raise ValueError(
            f"values must be [n] or [len(latents), n] = [{len(index)}, n], got {list(vals.shape)}"
        )
    n_rows, n = vals.shape
    z = base.repeat(n_rows * n, 1)  # [L·n, D]
    z[torch.arange(n_rows * n), index.repeat_interleave(n)] = vals.reshape(-1)
    z = z.to(device=device, dtype=dtype)
    decoded = [
        model.likelihood.mean(model.decode(chunk)).float().cpu() for chunk in z.split(batch_size)
    ]
    images = torch.cat(decoded)  # [L·n, C, H, W]
    return images.view(n_rows, n, *images.shape[1:])


def pingpong(n_frames: int, start: float = 0.0) -> np.ndarray:
    """Phases ``[n_frames]`` in [0, 1] of one period of a triangle wave 0 → 1 → 0, sampled
    every 2/n along the wave, so an animation that loops (frame n − 1, then frame 0) has no
    jump (disentanglement_lib's cycles, ``specs/visualization.md`` §2).

    The first frame is at phase ``start`` on the rising side, moved by at most half a step
    so that no turning point falls midway between two frames: two consecutive frames never
    show the same phase (GIF writers merge such frames, losing frames). For even n the
    turning points are frames (``start`` = 0: p_k = p_{n−k}, steps exactly 2/n); for odd n
    they lie a quarter step from a frame. ``start`` = ½ with n = 15: the posterior
    traversal GIF begins at the centre, the reconstruction.
    """
    if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}")
    if not 0.0 <= start <= 1.0:
        raise ValueError(f"start must be a phase in [0, 1], got {start!r}")
    ideal = start * n_frames / 2  # frames from the trough to the start, going up
    # even n: turning points on frames; odd n: a quarter of a frame from them
    shift = round(ideal) if n_frames % 2 == 0 else (round(2 * ideal - 0.5) + 0.5) / 2
    t = ((np.arange(n_frames) + shift) / n_frames) % 1.0
    return 1.0 - np.abs(1.0 - 2.0 * t)
