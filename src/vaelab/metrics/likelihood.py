"""Likelihood metrics: the importance-weighted bound, bits per dimension, reconstruction error.

* :func:`iwae_bound` — L_k = log (1/k) Σ_i p(x, z_i)/q(z_i|x), z_i ~ q(z|x) (Burda et al. 2016,
  §3): L_1 is the ELBO; L_k ≤ log p(x) is non-decreasing in k and tends to log p(x) (their
  Theorem 1).
  Standard k: 5,000 (IWAE paper, MNIST), 1,000 (NVAE).
* :func:`nats_to_bits_per_dim` and :func:`dequantized_bits_per_dim` — units; the latter adds the
  dequantisation correction for a continuous density fitted to dequantised b-bit data
  (Theis, van den Oord & Bethge 2016, "A note on the evaluation of generative models";
  ``specs/metrics.md`` §12).
* :func:`mean_reconstruction_error` — squared or absolute pixel error of reconstructions.

Everything is a pure function of its arguments; randomness comes from an explicit generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from vaelab.config import spec
from vaelab.data.transforms import data_scale
from vaelab.metrics.core import MetricContext, MetricError
from vaelab.nn.common import is_positive_int
from vaelab.registry import METRICS

LN2 = math.log(2.0)

DATA_SCALES: dict[str, float] = {"unit": 1.0, "symmetric": 2.0}
"""Width of the interval continuous data live in, by name: "unit" [0, 1], "symmetric" [−1, 1]."""

# diff = x − x̂ flattened to [B, P] -> one number; see mean_reconstruction_error
RECONSTRUCTION_ERRORS = {
    "sse": lambda diff: diff.square().sum(1).mean(),
    "mse": lambda diff: diff.square().mean(),
    "mae": lambda diff: diff.abs().mean(),
}


class ImportanceWeighted(Protocol):
    """A model that gives log importance weights, as :meth:`GaussianVAE.log_weights` does."""

    def log_weights(
        self, x: torch.Tensor, n_samples: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """log p(x, z_i) − log q(z_i|x) for z_i ~ q(z|x): [n_samples, B]."""
        ...


def _check_positive_int(value: object, name: str) -> None:
    if not is_positive_int(value):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@torch.no_grad()
def iwae_bound(
    model: ImportanceWeighted,
    x: torch.Tensor,
    k: int,
    chunk: int = 64,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The importance-weighted bound L_k per image, in nats: float64 [B].

    L_k = logsumexp_i(log w_i) − log k with log w_i = log p(x|z_i) + log p(z_i) − log q(z_i|x)
    (Burda et al. 2016, §3). The weights come from ``model.log_weights`` ``chunk`` samples at
    a time and are folded into a running logsumexp in float64, so memory does not grow with k
    (k = 5,000 is fine); ``chunk`` bounds the images decoded at once to B·chunk. A model that
    draws sample i the same way however the k samples are split (``GaussianVAE.log_weights``
    does) gives a result that does not depend on ``chunk``. L_1 is a one-sample ELBO estimate;
    −L_k is the "NLL" VAE papers report.

    The train/eval mode is the caller's: call ``model.eval()`` first for BatchNorm networks.
    """
    _check_positive_int(k, "k (the number of importance samples)")
    _check_positive_int(chunk, "chunk")
    total = None  # running logsumexp over the samples drawn so far, [B]
    for start in range(0, k, chunk):
        log_w = model.log_weights(x, min(chunk, k - start), generator=generator)  # [n, B]
        part = torch.logsumexp(log_w.double(), dim=0)  # [B]
        total = part if total is None else torch.logaddexp(total, part)
    return total - math.log(k)


def nats_to_bits_per_dim(nats: float | torch.Tensor, dims: int) -> float | torch.Tensor:
    """nats / (dims · ln 2): a per-image NLL in nats as bits per dimension (P = C·H·W dims)."""
    _check_positive_int(dims, "dims (the number of dimensions P = C·H·W)")
    return nats / (dims * LN2)


def dequantization_correction(dims: int, bits: int = 8, scale: str = "unit") -> float:
    """Nats to add to a continuous NLL on dequantised ``bits``-bit data: P·ln(2^b / w).

    Data y = (q + u)/2^b, u ~ U[0, 1)^P, spread over an interval of width w ("unit": [0, 1],
    w = 1; "symmetric": [−1, 1], w = 2) put each level in a bin of volume (w/2^b)^P, so
    −log P(q) ≤ E_u[−log p(y)] + P·ln(2^b/w) by Jensen's inequality (Theis et al. 2016;
    ``specs/metrics.md`` §12): P·b·ln 2 for [0, 1] and P·(b − 1)·ln 2 for [−1, 1].
    """
    _check_positive_int(dims, "dims (the number of dimensions P = C·H·W)")
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"bits must be an integer in 1..16, got {bits!r}")
    if scale not in DATA_SCALES:
        allowed = ", ".join(f"{name!r}" for name in DATA_SCALES)
        raise ValueError(f"unknown data scale {scale!r}; allowed: {allowed}")
    return dims * (bits * LN2 - math.log(DATA_SCALES[scale]))


def dequantized_bits_per_dim(
    nll_nats: float | torch.Tensor, dims: int, bits: int = 8, scale: str = "unit"
) -> float | torch.Tensor:
    """Bits per dimension of the discrete b-bit data, from a continuous density's NLL.

    ``nll_nats`` is E[−log p(y)] in nats per image for dequantised data y in [0, 1]
    (``scale="unit"``) or [−1, 1] (``"symmetric"``). Returns
    (nll_nats + :func:`dequantization_correction`)/(P ln 2), which is b + nll_nats/(P ln 2) for
    [0, 1] and b − 1 + nll_nats/(P ln 2) for [−1, 1]. 5-bit and 8-bit results are different
    tasks and are never compared.
    """
    correction = dequantization_correction(dims, bits, scale)
    return nats_to_bits_per_dim(nll_nats + correction, dims)


def mean_reconstruction_error(
    x: torch.Tensor, x_hat: torch.Tensor, kind: str = "sse"
) -> torch.Tensor:
    """Pixel error of reconstructions ``x_hat`` of images ``x`` (both [B, ...]), a 0-d tensor.

    ``kind``:
      * "sse" — per-image sum of squared errors Σ_pixels (x − x̂)², averaged over images
        (the "reconstruction loss" of most VAE papers and of torch-vae);
      * "mse" — squared error averaged over pixels and images (sse / P; what PSNR uses);
      * "mae" — absolute error averaged over pixels and images.

    A cross-entropy "error" of Bernoulli pixels is the likelihood's NLL, the model's ``recon``.
    """
    if x.shape != x_hat.shape:
        raise ValueError(
            f"images and reconstructions must have the same shape, got {tuple(x.shape)} and "
            f"{tuple(x_hat.shape)}"
        )
    if x.dim() < 2:
        raise ValueError(f"expected a batch [B, ...], got shape {tuple(x.shape)}")
    if kind not in RECONSTRUCTION_ERRORS:
        allowed = ", ".join(repr(name) for name in RECONSTRUCTION_ERRORS)
        raise ValueError(f"unknown reconstruction error {kind!r}; allowed: {allowed}")
    return RECONSTRUCTION_ERRORS[kind]((x - x_hat).flatten(1))


# -- registered metrics: a trained model on an image dataset ------------------------------------
@dataclass
class LikelihoodParams:
    num_images: int | None = spec(
        None, minimum=1, help="score N images drawn with the seed (null: the whole split)"
    )


@dataclass
class IWAEParams(LikelihoodParams):
    k: int = spec(5_000, minimum=1, help="importance samples (IWAE, MNIST: 5,000; NVAE: 1,000)")
    chunk: int = spec(64, minimum=1, help="samples decoded at once per image")


def _bits_per_dim(nll: float, ctx: MetricContext, model: torch.nn.Module) -> float | None:
    """bits/dim where the NLL is one of a discrete distribution: a Bernoulli likelihood on
    binary data, or a continuous one on dequantised data (with the correction); else None."""
    dims = int(np.prod(ctx.dataset.image_shape))
    likelihood = getattr(getattr(model, "likelihood", None), "name", None)
    binary = data_scale(ctx.dataset) == 1 or ctx.transform in ("binarize", "threshold")
    if likelihood == "bernoulli" and binary:
        ctx.notes["bits_per_dim"] = "Bernoulli NLL of binary data / (P ln 2)"
        return float(nats_to_bits_per_dim(nll, dims))
    if likelihood in ("gaussian", "laplace") and ctx.transform == "dequantize":
        ctx.notes["bits_per_dim"] = f"dequantised {ctx.bits}-bit data: b + NLL / (P ln 2)"
        return float(dequantized_bits_per_dim(nll, dims, ctx.bits, "unit"))
    ctx.notes["bits_per_dim"] = (
        f"not reported: a {likelihood} likelihood on {ctx.transform!r} data is not a "
        "discrete likelihood (train on binary data, or dequantised data with a continuous one)"
    )
    return None


@METRICS.register(
    "elbo",
    "negative ELBO and its terms on the held-out split (nats/image; bits/dim)",
    params=LikelihoodParams,
    kind="likelihood",
    default=True,
)
def elbo(ctx: MetricContext, p: LikelihoodParams) -> dict[str, Any]:
    from vaelab.train.evaluation import evaluate_loss

    model = ctx.need_model("elbo")
    terms = evaluate_loss(
        model,
        ctx.dataset,
        ctx.batch_size,
        ctx.device,
        ctx.transform,
        ctx.bits,
        ctx.seed,
        p.num_images,
    )
    if "elbo" not in terms:
        raise MetricError("metric 'elbo': the model's objective reports no 'elbo' term")
    nelbo = -float(terms["elbo"])
    out: dict[str, Any] = {"nelbo": nelbo}
    out.update({k: v for k, v in terms.items() if k in ("recon", "kl", "kl_per_dim", "images")})
    bpd = _bits_per_dim(nelbo, ctx, model)
    if bpd is not None:
        out["bits_per_dim"] = bpd
    return out


@METRICS.register(
    "iwae",
    "importance-weighted bound on the NLL, k samples (Burda et al. 2016)",
    params=IWAEParams,
    kind="likelihood",
)
def iwae(ctx: MetricContext, p: IWAEParams) -> dict[str, Any]:
    from vaelab.train.evaluation import iterate_images

    model = ctx.need_model("iwae")
    if not hasattr(model, "log_weights"):
        raise MetricError(f"metric 'iwae': {type(model).__name__} has no log_weights method")
    generator = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    total, count = 0.0, 0
    batches = iterate_images(
        ctx.dataset, ctx.batch_size, ctx.device, ctx.transform, ctx.bits, ctx.seed, p.num_images
    )
    for x in batches:
        total += float(iwae_bound(model, x, p.k, p.chunk, generator).sum())
        count += len(x)
    nll = -total / max(count, 1)
    out: dict[str, Any] = {"nll": nll, "images": count}
    bpd = _bits_per_dim(nll, ctx, model)
    if bpd is not None:
        out["bits_per_dim"] = bpd
    return out


def _reconstructions(ctx: MetricContext, metric: str, limit: int | None):
    """(images, reconstructions) batches in [0, 1]: the likelihood mean of the decoded
    posterior mean."""
    from vaelab.train.evaluation import iterate_images

    model = ctx.need_model(metric)
    batches = iterate_images(
        ctx.dataset, ctx.batch_size, ctx.device, ctx.transform, ctx.bits, ctx.seed, limit
    )
    with torch.no_grad():
        for x in batches:
            yield x, model.reconstruct(x).clamp(0, 1)


@METRICS.register(
    "recon_error",
    "reconstruction error of the posterior mean (per-image SSE, MSE, MAE)",
    params=LikelihoodParams,
    kind="likelihood",
    default=True,
)
def recon_error(ctx: MetricContext, p: LikelihoodParams) -> dict[str, Any]:
    sums = dict.fromkeys(RECONSTRUCTION_ERRORS, 0.0)
    count = 0
    for x, x_hat in _reconstructions(ctx, "recon_error", p.num_images):
        for kind in RECONSTRUCTION_ERRORS:
            sums[kind] += float(mean_reconstruction_error(x, x_hat, kind)) * len(x)
        count += len(x)
    return {kind: total / max(count, 1) for kind, total in sums.items()} | {"images": count}


@dataclass
class SSIMParams(LikelihoodParams):
    padding: str = spec(
        "valid", choices=("valid", "zero"), help="TensorFlow's VALID, or Efficient-VDVAE's zeros"
    )


@METRICS.register(
    "ssim",
    "SSIM of reconstructions (11x11 Gaussian window, σ 1.5, as tf.image.ssim)",
    params=SSIMParams,
    kind="likelihood",
    default=True,
)
def ssim_metric(ctx: MetricContext, p: SSIMParams) -> dict[str, Any]:
    from vaelab.metrics.ssim import ssim

    total, count = 0.0, 0
    for x, x_hat in _reconstructions(ctx, "ssim", p.num_images):
        total += float(ssim(x * 255.0, x_hat * 255.0, 255.0, padding=p.padding).sum())
        count += len(x)
    return {"ssim": total / max(count, 1), "images": count}
