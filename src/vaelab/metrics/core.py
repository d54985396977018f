"""What every metric shares: the representation being scored, the evaluation context, the
dlib 20-bin discretiser and plug-in entropies / mutual information.

Conventions (``specs/metrics.md`` §0): codes are float arrays ``[N, D]`` and factors integer
class arrays ``[N, K]``, one row per point (disentanglement_lib stores the transposes).
Entropies and mutual information are in nats.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vaelab.config import ConfigError, spec
from vaelab.data.base import DataError, GroundTruthDataset, ImageDataset
from vaelab.data.transforms import Transform, data_scale
from vaelab.train.evaluation import images_at


class MetricError(ConfigError):
    """A metric cannot run on what it was given (wrong dataset kind, partial grid, unknown
    protocol parameter, ...)."""


# -- the representation -------------------------------------------------------------------------
REPRESENTATIONS = ("mean", "sampled")


class Representation:
    """Dataset rows -> codes ``[M, D]`` (float64), encoding each image at most once.

    ``encode`` maps a float batch ``[B, C, H, W]`` (on ``device``, in [0, 1] after the run's
    transform) to the codes ``[B, D]`` (array or tensor), or to a pair ``(mean, log_var)``.
    A vaelab model is wrapped through its ``encode`` (posterior mean and log-variance).

    ``kind`` is the representation scored (dlib's two postprocessings): ``"mean"`` (the
    posterior mean) or ``"sampled"`` (μ + σ·ε, ε drawn from the metric's own generator, so
    scores stay reproducible). Because every metric draws points with replacement from the
    same dataset, codes are memoised per image (``cache=True``): the dlib defaults encode
    about 2.9 million images for the whole suite, but dSprites has 737,280 and its grid subset
    46,080. Pass ``cache=False`` for a stochastic ``encode`` that must be called per draw.
    ``progress`` shows a bar for long encodings.
    """

    def __init__(
        self,
        encode: Callable[[torch.Tensor], Any],
        dataset: ImageDataset,
        *,
        kind: str = "mean",
        batch_size: int = 256,
        device: str | torch.device = "cpu",
        transform: str = "float",
        bits: int = 8,
        cache: bool = True,
        progress: bool = False,
    ):
        if kind not in REPRESENTATIONS:
            raise MetricError(f"representation must be one of {REPRESENTATIONS}, got {kind!r}")
        self.encode, self.dataset, self.kind = encode, dataset, kind
        self.batch_size, self.device, self.cache = int(batch_size), torch.device(device), cache
        self.progress = progress
        self.transform = Transform(
            transform, bits, data_scale(dataset), 0, 0, self.device, channels_last=False
        )
        self.images_encoded = 0
        self.seconds_encoding = 0.0
        self.results: dict[Any, Any] = {}  # shared intermediate results (e.g. Chen's MI matrix)
        self._mean: np.ndarray | None = None  # [N, D] float32 memo
        self._log_var: np.ndarray | None = None
        self._done = np.zeros(len(dataset), dtype=bool)
        self._asked = np.zeros(len(dataset), dtype=bool)

    @classmethod
    def of(cls, source: Any, dataset: ImageDataset, **kwargs: Any) -> Representation:
        """A :class:`Representation` from a vaelab model (anything with ``encode``
        returning a posterior) or a plain function."""
        if isinstance(source, Representation):
            return source
        if hasattr(source, "encode") and isinstance(source, torch.nn.Module):
            model = source

            def encode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                posterior = model.encode(x)
                return posterior.mean, posterior.log_var

            return cls(encode, dataset, **kwargs)
        if not callable(source):
            raise MetricError(
                f"a representation must be a vaelab model or a function of images, "
                f"got {type(source).__name__}"
            )
        return cls(source, dataset, **kwargs)

    @property
    def distinct_images(self) -> int:
        """How many different images metrics have asked codes for so far."""
        return int(self._asked.sum())

    def reset_counts(self) -> None:
        """Zero the counters (not the memo), e.g. after pre-encoding a whole dataset."""
        self._asked[:] = False
        self.images_encoded, self.seconds_encoding = 0, 0.0

    @property
    def has_posterior(self) -> bool:
        """Whether ``encode`` gives log-variances too (needed by "sampled" and Chen's MIG)."""
        self._ensure_encoded(np.zeros(1, dtype=np.int64))
        return self._log_var is not None

    def __call__(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Codes ``[M, D]`` (float64) of dataset rows ``rows`` (any shape of indices is
        flattened)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        mean, log_var = self.posterior(rows)
        if self.kind == "mean":
            return mean
        if log_var is None:
            raise MetricError(
                'representation "sampled" needs an encoder that returns (mean, log_var)'
            )
        return mean + np.exp(0.5 * log_var) * rng.standard_normal(mean.shape)

    def posterior(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Posterior means and log-variances ``[M, D]`` (float64; ``None`` when ``encode``
        returns plain codes)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        self._asked[rows] = True
        if not self.cache:
            return self._encode_rows(rows)
        self._ensure_encoded(rows)
        assert self._mean is not None
        log_var = None if self._log_var is None else self._log_var[rows].astype(np.float64)
        return self._mean[rows].astype(np.float64), log_var

    def _ensure_encoded(self, rows: np.ndarray) -> None:
        todo = np.unique(rows[~self._done[rows]])
        if len(todo) == 0:
            return
        mean, log_var = self._encode_rows(todo)
        if self._mean is None:
            self._mean = np.zeros((len(self.dataset), mean.shape[1]), np.float32)
            if log_var is not None:
                self._log_var = np.zeros_like(self._mean)
        self._mean[todo] = mean
        if self._log_var is not None and log_var is not None:
            self._log_var[todo] = log_var
        self._done[todo] = True

    @torch.no_grad()
    def _encode_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        import time

        start = time.perf_counter()
        means, log_vars = [], []
        firsts = range(0, len(rows), self.batch_size)
        if self.progress and len(rows) >= 20 * self.batch_size:
            from tqdm.auto import tqdm

            firsts = tqdm(firsts, desc=f"encoding {len(rows):,} images", unit="batch", leave=False)
        for number, first in enumerate(firsts):
            chunk = rows[first : first + self.batch_size]
            x = self.transform(images_at(self.dataset, chunk, self.device), number)
            out = self.encode(x)
            if isinstance(out, tuple | list):
                means.append(_as_codes(out[0], len(chunk)))
                log_vars.append(_as_codes(out[1], len(chunk)))
            else:
                means.append(_as_codes(out, len(chunk)))
        self.images_encoded += len(rows)
        self.seconds_encoding += time.perf_counter() - start
        mean = np.concatenate(means)
        return mean, (np.concatenate(log_vars) if log_vars else None)


def _as_codes(value: Any, rows: int) -> np.ndarray:
    array = value.detach().float().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
    if array.ndim != 2 or array.shape[0] != rows:
        raise MetricError(
            f"the representation function must return codes [B, D] for a batch of {rows} "
            f"images, got shape {list(array.shape)}"
        )
    if not np.isfinite(array).all():
        raise MetricError("the representation function returned NaN or infinite codes")
    return array.astype(np.float64)


# -- what a metric is given ---------------------------------------------------------------------
@dataclass
class Protocol:
    """Parameters every disentanglement metric takes; each metric's dataclass extends it."""

    factors: list[str] | None = spec(  # noqa: RUF009 (spec returns a field)
        None, help="factor names to score (null: all); e.g. Chen et al. drop dSprites' shape"
    )


@dataclass
class MetricContext:
    """What a metric function receives besides its protocol parameters."""

    dataset: ImageDataset
    seed: int = 0
    representation: Representation | None = None
    model: torch.nn.Module | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    transform: str = "float"
    bits: int = 8
    batch_size: int = 256
    notes: dict[str, Any] = field(default_factory=dict)  # protocol facts a metric adds

    def rng(self) -> np.random.Generator:
        """A fresh generator seeded with the evaluation seed (one per metric, as dlib)."""
        return np.random.default_rng(self.seed)

    def ground_truth(self, complete: bool = False) -> GroundTruthDataset:
        """The dataset, which must have ground-truth factors (and, if ``complete``, all of
        its factor grid)."""
        data = self.dataset
        if not isinstance(data, GroundTruthDataset):
            raise MetricError(
                f"dataset {data.name!r} has no ground-truth factors; disentanglement metrics "
                "need one (dsprites, dsprites-procedural, shapes3d, mpi3d, ...)"
            )
        if complete and not data.is_complete:
            raise MetricError(
                f"dataset {data.name!r} ({data.split}) covers {len(data)} of {data.grid_size} "
                "factor combinations; this metric needs the complete factor grid (use the full "
                "dataset, e.g. dsprites-procedural or the full dsprites file)"
            )
        return data

    def codes(self) -> Representation:
        if self.representation is None:
            raise MetricError("this metric needs a representation (a model or a function)")
        return self.representation

    def need_model(self, metric: str) -> torch.nn.Module:
        if self.model is None:
            raise MetricError(
                f"metric {metric!r} needs a vaelab model (it scores likelihoods), not a function"
            )
        return self.model


def factor_subset(dataset: GroundTruthDataset, names: Sequence[str] | None) -> list[int]:
    """Column indices of the factors ``names`` (all when ``None``), in dataset order."""
    if names is None:
        return list(range(dataset.num_factors))
    if not names:
        raise MetricError("factors: the list of factors to score is empty")
    try:
        return sorted({dataset.factor_index(n) for n in names})
    except DataError as err:
        raise MetricError(f"factors: {err}") from None


def sample_points(
    rep: Representation, dataset: GroundTruthDataset, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points drawn as dlib draws them: codes ``[n, D]`` and factors ``[n, K]``."""
    factors = dataset.sample_factors(n, rng)
    return rep(dataset.index_of(factors), rng), factors


def params_dict(params: Any) -> dict[str, Any]:
    return dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(params)


# -- discretisation and plug-in information -----------------------------------------------------
def histogram_discretize(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """dlib's ``_histogram_discretize``: per column, ``bins`` equal-width bins between the
    column's min and max; values 1..bins (the maximum lands in the last bin). ``[N, D]`` int."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        edges = np.histogram(codes[:, i], bins)[1]
        out[:, i] = np.digitize(codes[:, i], edges[:-1])
    return out


def _relabel(column: np.ndarray) -> tuple[np.ndarray, int]:
    values, labels = np.unique(column, return_inverse=True)
    return labels.reshape(-1), len(values)


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in MI (nats) of two discrete columns from their contingency table (equal to
    scikit-learn's ``mutual_info_score``)."""
    la, na = _relabel(a)
    lb, nb = _relabel(b)
    n = len(la)
    joint = np.bincount(la * nb + lb, minlength=na * nb).reshape(na, nb).astype(np.float64)
    rows, cols = joint.sum(1), joint.sum(0)
    i, j = np.nonzero(joint)
    nij = joint[i, j]
    value = np.sum(nij / n * (np.log(nij) + np.log(n) - np.log(rows[i]) - np.log(cols[j])))
    return max(float(value), 0.0)


def entropy(column: np.ndarray) -> float:
    """Plug-in entropy (nats) of a discrete column."""
    counts = np.bincount(_relabel(column)[0]).astype(np.float64)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def mutual_information_matrix(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``m[i, k]`` = MI between discrete code column i and factor column k, ``[D, K]``."""
    return np.array(
        [[mutual_information(c, f) for f in factors.T] for c in np.asarray(codes).T]
    ).reshape(codes.shape[1], factors.shape[1])
