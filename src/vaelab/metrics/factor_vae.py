"""FactorVAE score (Kim & Mnih 2018, §4), disentanglement_lib protocol (``specs/metrics.md`` §5).

A vote fixes one factor over a batch of L points; the code dimension whose variance, relative
to its global variance, is smallest should name that factor. A majority-vote classifier is fit
on ``num_train`` votes and scored on ``num_eval`` fresh ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vaelab.config import spec
from vaelab.data.base import GroundTruthDataset
from vaelab.metrics.core import MetricContext, Protocol, Representation, factor_subset
from vaelab.registry import METRICS


@dataclass
class FactorVAEParams(Protocol):
    batch_size: int = spec(64, minimum=2, help="points per vote, L")
    num_train: int = spec(10_000, minimum=1, help="votes to fit the classifier")
    num_eval: int = spec(5_000, minimum=1, help="votes to score it")
    num_variance_estimate: int = spec(10_000, minimum=2, help="points for the global variance")
    prune_threshold: float = spec(
        0.05, minimum=0.0, help="dims with global standard deviation below this are ignored"
    )


def votes(
    rep: Representation,
    data: GroundTruthDataset,
    columns: list[int],
    n: int,
    batch: int,
    global_var: np.ndarray,
    active: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` votes: (fixed factor's position in ``columns``, argmin active dim) ``[n]`` each."""
    chosen = rng.integers(len(columns), size=n)
    ys = data.sample_factors(n * batch, rng).reshape(n, batch, -1)
    fixed = np.asarray(columns)[chosen]
    ys[np.arange(n), :, fixed] = ys[np.arange(n), 0, fixed][:, None]
    codes = rep(data.index_of(ys.reshape(n * batch, -1)), rng).reshape(n, batch, -1)
    local_var = codes[:, :, active].var(axis=1, ddof=1)
    return chosen, np.argmin(local_var / global_var[active], axis=1)


def factor_vae_score(
    rep: Representation, data: GroundTruthDataset, p: FactorVAEParams, rng: np.random.Generator
) -> dict[str, float]:
    columns = factor_subset(data, p.factors)
    factors = data.sample_factors(p.num_variance_estimate, rng)
    global_var = rep(data.index_of(factors), rng).var(axis=0, ddof=1)
    active = np.sqrt(global_var) >= p.prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    table = np.zeros((len(columns), int(active.sum())), dtype=np.int64)
    k, d = votes(rep, data, columns, p.num_train, p.batch_size, global_var, active, rng)
    np.add.at(table, (k, d), 1)
    classifier = np.argmax(table, axis=0)  # majority factor of each dim
    k_eval, d_eval = votes(rep, data, columns, p.num_eval, p.batch_size, global_var, active, rng)
    return {
        "train_accuracy": float(table.max(axis=0).sum() / p.num_train),
        "eval_accuracy": float(np.mean(classifier[d_eval] == k_eval)),
        "num_active_dims": int(active.sum()),
    }


@METRICS.register(
    "factor_vae",
    "FactorVAE score (majority vote; dlib: 10k/5k votes of 64)",
    params=FactorVAEParams,
    kind="disentanglement",
    default=True,
    complete_grid=True,
)
def factor_vae(ctx: MetricContext, p: FactorVAEParams) -> dict[str, float]:
    return factor_vae_score(ctx.codes(), ctx.ground_truth(complete=True), p, ctx.rng())
