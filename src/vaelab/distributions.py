"""Latent posteriors and pixel likelihoods of vaelab's flat-latent VAEs.

:class:`DiagonalGaussian` is the posterior q(z|x) = N(μ, diag(σ²)) of Kingma & Welling 2014,
parameterised by ``mean`` and ``log_var`` = log σ², with the closed-form KL to the standard
normal prior used by every Gaussian-latent objective
(KL = ½ Σ_d (μ_d² + σ_d² − log σ_d² − 1); ``specs/disentangling.md`` §2).

The likelihoods (:class:`Bernoulli`, :class:`Gaussian`, :class:`Laplace`) turn a decoder's raw
output ``params`` (shape [B, C, H, W]) into the **exact** negative log-likelihood of an image,
normalising constants included. Reference code drops the constants (disentangling-vae,
disentanglement_lib, menzHSE/torch-vae); the constant-free losses differ from ``nll`` by
P·const, so their gradients agree. For the Gaussian and Laplace likelihoods the decoder's output
passes through a sigmoid to give the mean image, as in those references.

Every sampler takes an explicit ``torch.Generator`` (``STYLE.md`` §9).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(z; 0, 1) = −½[log 2π + z²]; same shape as ``z``."""
    return -0.5 * (LOG_2PI + z.square())


class DiagonalGaussian:
    """N(mean, diag(exp(log_var))) over the last axis; ``mean`` and ``log_var`` are [..., D].

    The two tensors are broadcast to one shape on construction. Every density and divergence
    is returned elementwise ([..., D]); callers sum over D (and average over the batch) as
    their objective requires.
    """

    def __init__(self, mean: torch.Tensor, log_var: torch.Tensor):
        if not (mean.is_floating_point() and log_var.is_floating_point()):
            raise ValueError(
                f"mean and log_var must be floating-point tensors, got {mean.dtype} and "
                f"{log_var.dtype}"
            )
        self.mean, self.log_var = torch.broadcast_tensors(mean, log_var)

    def __repr__(self) -> str:
        return f"DiagonalGaussian(shape={tuple(self.mean.shape)})"

    @property
    def std(self) -> torch.Tensor:
        """σ = exp(½ log σ²)."""
        return torch.exp(0.5 * self.log_var)

    @property
    def var(self) -> torch.Tensor:
        """σ² = exp(log σ²)."""
        return torch.exp(self.log_var)

    @property
    def mode(self) -> torch.Tensor:
        """The most likely point, the mean (what metrics call the "mean representation")."""
        return self.mean

    def rsample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised draw μ + σ·ε, ε ~ N(0, I) (Kingma & Welling 2014, Eq. 10).

        Gradients flow to ``mean`` and ``log_var``. ``generator`` must live on the tensors'
        device; ``None`` uses torch's global generator.
        """
        eps = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * eps

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A draw without gradient (same numbers as :meth:`rsample` with the same generator)."""
        with torch.no_grad():
            return self.rsample(generator)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Elementwise log N(z; μ, σ²) = −½[log 2π + log σ² + (z − μ)²/σ²]; [..., D]."""
        return -0.5 * (LOG_2PI + self.log_var + (z - self.mean).square() * torch.exp(-self.log_var))

    def kl_standard_normal(self) -> torch.Tensor:
        """Elementwise KL(q ‖ N(0, 1)) = ½(μ² + σ² − log σ² − 1); [..., D]."""
        return 0.5 * (self.mean.square() + self.var - self.log_var - 1.0)

    def kl(self, other: DiagonalGaussian) -> torch.Tensor:
        """Elementwise KL(self ‖ other) for two diagonal Gaussians; broadcast shape [..., D].

        KL = ½[log σ₂² − log σ₁² + (σ₁² + (μ₁ − μ₂)²)/σ₂² − 1].
        """
        ratio = (self.var + (self.mean - other.mean).square()) * torch.exp(-other.log_var)
        return 0.5 * (other.log_var - self.log_var + ratio - 1.0)


# --------------------------------------------------------------------------------------------
# Pixel likelihoods p(x | params), params = raw decoder output [B, C, H, W]


def _check_pair(params: torch.Tensor, x: torch.Tensor) -> None:
    if params.shape != x.shape:
        raise ValueError(
            f"decoder output and images must have the same shape, got {tuple(params.shape)} "
            f"and {tuple(x.shape)}"
        )
    if params.dim() < 2:
        raise ValueError(f"expected a batch [B, ...], got shape {tuple(params.shape)}")


def _pixels(x: torch.Tensor) -> int:
    """P: the number of pixels (all axes but the batch axis) of one image."""
    return math.prod(x.shape[1:])


def _positive_scale(scale: float, field: str) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise ValueError(f"{field} must be a positive number, got {scale!r}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"{field} must be positive and finite, got {scale!r}")


class Likelihood(ABC):
    """p(x | params) for images x ∈ [0, 1]; ``params`` is the decoder's raw output."""

    name: ClassVar[str]

    @abstractmethod
    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Exact −log p(x | params) per image, summed over pixels: [B]."""

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The mean image sigmoid(params), in [0, 1]; same shape as ``params``."""
        return torch.sigmoid(params)

    @abstractmethod
    def sample(
        self, params: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A draw x ~ p(x | params) (no gradient), as an image in [0, 1]."""


@dataclass(frozen=True)
class Bernoulli(Likelihood):
    """Independent Bernoulli pixels with logits ``params`` (dlib, disentangling-vae default).

    −log p = Σ_i softplus(l_i) − x_i·l_i, computed by ``binary_cross_entropy_with_logits``;
    disentangling-vae computes the same value from probabilities, which overflows for large
    logits (``specs/disentangling.md`` §1.1). For non-binary x ∈ [0, 1] this is a cross-entropy,
    not a normalised density; its minimum over the logits is the entropy of x.
    """

    name: ClassVar[str] = "bernoulli"

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        _check_pair(params, x)
        per_pixel = F.binary_cross_entropy_with_logits(params, x, reduction="none")
        return per_pixel.flatten(1).sum(1)  # [B]

    def sample(
        self, params: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        with torch.no_grad():
            return torch.bernoulli(torch.sigmoid(params), generator=generator)


@dataclass(frozen=True)
class Gaussian(Likelihood):
    """Independent N(sigmoid(params), s²) pixels with a fixed standard deviation ``scale`` = s.

    −log p = Σ_i [(x_i − m_i)²/(2s²) + ½ log(2πs²)]. The default s² = 1/510 is the variance
    implied by disentangling-vae's loss 255·Σ(x − m)²; menzHSE/torch-vae's Σ(x − m)² (and dlib's
    ``l2_loss``) correspond to s² = ½, i.e. ``scale=math.sqrt(0.5)``.
    """

    scale: float = math.sqrt(1.0 / 510.0)
    name: ClassVar[str] = "gaussian"

    def __post_init__(self) -> None:
        _positive_scale(self.scale, "gaussian scale (standard deviation)")

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        _check_pair(params, x)
        var = self.scale**2
        squared = (x - torch.sigmoid(params)).square().flatten(1).sum(1)  # [B]
        return squared / (2.0 * var) + _pixels(x) * 0.5 * math.log(2.0 * math.pi * var)

    def sample(
        self, params: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """m + s·ε, clipped to [0, 1] (the density itself is not truncated)."""
        with torch.no_grad():
            eps = torch.randn(
                params.shape, generator=generator, device=params.device, dtype=params.dtype
            )
            return (torch.sigmoid(params) + self.scale * eps).clamp_(0.0, 1.0)


@dataclass(frozen=True)
class Laplace(Likelihood):
    """Independent Laplace(sigmoid(params), b) pixels with a fixed scale ``scale`` = b.

    −log p = Σ_i [|x_i − m_i|/b + log(2b)]. The default b = 1/3 matches disentangling-vae's
    loss 3·Σ|x − m| (factor 3 chosen there to match the Bernoulli scale).
    """

    scale: float = 1.0 / 3.0
    name: ClassVar[str] = "laplace"

    def __post_init__(self) -> None:
        _positive_scale(self.scale, "laplace scale")

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        _check_pair(params, x)
        absolute = (x - torch.sigmoid(params)).abs().flatten(1).sum(1)  # [B]
        return absolute / self.scale + _pixels(x) * math.log(2.0 * self.scale)

    def sample(
        self, params: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """m + b·(E₁ − E₂) with E₁, E₂ ~ Exp(1) (a Laplace draw), clipped to [0, 1]."""
        with torch.no_grad():
            # rand is in [0, 1), so -log1p(-u) is finite: no infinite draws
            u = torch.rand(
                (2, *params.shape), generator=generator, device=params.device, dtype=params.dtype
            )
            exponential = -torch.log1p(-u)  # [2, B, C, H, W]
            eps = exponential[0] - exponential[1]
            return (torch.sigmoid(params) + self.scale * eps).clamp_(0.0, 1.0)


LIKELIHOODS: dict[str, type[Likelihood]] = {cls.name: cls for cls in (Bernoulli, Gaussian, Laplace)}
"""Likelihood classes by the short name users type."""


def make_likelihood(name: str, scale: float | None = None) -> Likelihood:
    """The likelihood called ``name``; ``scale`` (s or b) or ``None`` for its default.

    ``scale`` must be ``None`` for "bernoulli", which has no scale.
    """
    if name not in LIKELIHOODS:
        allowed = ", ".join(repr(n) for n in LIKELIHOODS)
        raise ValueError(f"unknown likelihood {name!r}; allowed: {allowed}")
    cls = LIKELIHOODS[name]
    if scale is None:
        return cls()
    if cls is Bernoulli:
        raise ValueError(f"likelihood 'bernoulli' takes no scale, got scale={scale!r}")
    return cls(scale=scale)
