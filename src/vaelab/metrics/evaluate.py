"""Score a trained run: ``vaelab evaluate RUN_DIR`` and the end-of-training evaluation.

Results go to ``RUN_DIR/metrics.json``::

    {"run": "...", "results": [{"metric": "mig", "values": {...}, "protocol": {...},
                                "seconds": 1.2, "images_encoded": 10000, ...}, ...]}

A new result replaces an older one with the same metric, split and representation; other
entries are kept, so several ``vaelab evaluate`` calls build up one file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from vaelab.config import Config
from vaelab.data.base import ImageDataset
from vaelab.metrics import METRICS, MetricError, MetricResult, compute_many, default_metrics
from vaelab.rundir import RunDir, atomic_write_json, open_run_dir

TRAINING_SPLIT_IMAGES = 10_000
"""Likelihood metrics scored on the training split (a dataset without a held-out split, such as
dSprites, or ``--split train``) use this many images drawn with the seed unless
``num_images`` is given: the whole 737,280-image dSprites would take an hour on a CPU. A
held-out split is scored whole."""


def metric_split(cfg: Config, name: str, splits: Sequence[str]) -> str:
    """The split a metric scores by default: disentanglement metrics use the training data
    (the factor grid, as disentanglement_lib), likelihood metrics the held-out split."""
    if METRICS.get(name).meta.get("kind") != "likelihood":
        return cfg.data.split
    for split in (cfg.data.eval_split, "test"):
        if split and split in splits:
            return split
    return cfg.data.split


def load_split(cfg: Config, split: str, root: str | None = None) -> ImageDataset:
    """The run's dataset (same options and image size as in training) for ``split``."""
    from vaelab.data import load_dataset
    from vaelab.data.preprocess import resize_dataset

    dc = cfg.data
    dataset = load_dataset(
        dc.name,
        split=split,
        root=root if root is not None else dc.root,
        path=dc.path,
        download=dc.download,
        **dc.options,
    )
    return resize_dataset(dataset, dc.image_size)


def evaluate_model(
    model: torch.nn.Module,
    cfg: Config,
    metrics: Sequence[str] | None = None,
    *,
    split: str | None = None,
    seed: int | None = None,
    representation: str | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    device: str | torch.device = "cpu",
    root: str | None = None,
    loaded: Mapping[str, ImageDataset] | None = None,
    progress: bool = False,
) -> list[MetricResult]:
    """Metrics of ``model`` on the dataset of ``cfg`` (grouped by split so each split is
    loaded, and each image encoded, once). ``loaded`` maps splits to datasets already in
    memory (the trainer's), which are used instead of loading them again."""
    from vaelab.data import dataset_splits

    loaded = dict(loaded or {})

    def get(name: str) -> ImageDataset:
        if name not in loaded:
            loaded[name] = load_split(cfg, name, root)
        return loaded[name]

    splits = tuple(dataset_splits(cfg.data.name))
    if split is not None and split not in splits:
        raise MetricError(
            f"dataset {cfg.data.name!r} has no split {split!r}; splits: {', '.join(splits)}"
        )
    params = dict(cfg.eval.params if params is None else params)
    if metrics is None or len(metrics) == 0:
        names = list(cfg.eval.metrics)
        if not names:
            names = default_metrics(get(split or cfg.data.split))
    else:
        names = list(metrics)
    for name in names:
        METRICS.get(name)  # unknown names fail before any work
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(split or metric_split(cfg, name, splits), []).append(name)
    results = []
    was_training = model.training
    model.eval()
    try:
        for group_split, group in groups.items():
            dataset = get(group_split)
            group_params = {n: dict(params[n]) for n in group if n in params}
            if group_split == cfg.data.split:
                for name in group:
                    if METRICS.get(name).meta.get("kind") == "likelihood":
                        group_params.setdefault(name, {}).setdefault(
                            "num_images", TRAINING_SPLIT_IMAGES
                        )
            results += compute_many(
                group,
                model,
                dataset,
                params=group_params,
                seed=cfg.eval.seed if seed is None else seed,
                representation=representation or cfg.eval.representation,
                device=device,
                batch_size=cfg.eval.batch_size,
                transform=cfg.data.transform,
                bits=cfg.data.bits,
                progress=progress,
            )
    finally:
        model.train(was_training)
    return results


def read_metrics(path: Path) -> dict[str, Any]:
    """The contents of a ``metrics.json`` (empty when it does not exist)."""
    if not path.exists():
        return {"results": []}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise MetricError(f"{path} is not valid JSON ({err}); move it away and re-run") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise MetricError(f"{path}: expected an object with a 'results' list")
    return data


def _key(entry: Mapping[str, Any]) -> tuple:
    protocol = entry.get("protocol", {})
    return entry.get("metric"), protocol.get("split"), protocol.get("representation")


def write_metrics(run: RunDir, results: Sequence[MetricResult], step: int | None = None) -> Path:
    """Merge ``results`` into ``run.metrics`` atomically (same metric/split/representation
    replaced)."""
    data = read_metrics(run.metrics)
    new = [{**r.to_dict(), "step": step} for r in results]
    keys = {_key(e) for e in new}
    data["results"] = [e for e in data["results"] if _key(e) not in keys] + new
    data["run"] = str(run.path)
    data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    atomic_write_json(run.metrics, data)
    return run.metrics


def evaluate_run(
    run_dir: str | Path,
    metrics: Sequence[str] | None = None,
    *,
    split: str | None = None,
    seed: int | None = None,
    representation: str | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    device: str = "cpu",
    root: str | None = None,
    progress: bool = False,
) -> tuple[list[MetricResult], Path]:
    """Load the run's final model, score it, and merge the results into ``metrics.json``."""
    from vaelab.models.build import load_run_model

    run = open_run_dir(run_dir)
    model, cfg = load_run_model(run.path, device)
    results = evaluate_model(
        model,
        cfg,
        metrics,
        split=split,
        seed=seed,
        representation=representation,
        params=params,
        device=device,
        root=root,
        progress=progress,
    )
    return results, write_metrics(run, results, _weights_step(run.weights))


def _weights_step(path: Path) -> int | None:
    """The training step recorded in a ``model.safetensors`` (None if absent)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        step = (handle.metadata() or {}).get("step")
    return int(step) if step is not None and step.isdigit() else None


def format_table(results: Sequence[MetricResult | Mapping[str, Any]]) -> str:
    """A plain-text table: metric, split, each value, seconds."""
    from vaelab.viz.report import format_value

    rows = []
    for r in results:
        entry = r.to_dict() if isinstance(r, MetricResult) else dict(r)
        values = ", ".join(f"{k} {format_value(v)}" for k, v in entry["values"].items())
        split = entry["protocol"].get("split", "")
        rows.append((entry["metric"], split, values, f"{entry['seconds']:.1f} s"))
    if not rows:
        return "(no metrics)"
    head = ("metric", "split", "values", "time")
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(3)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in [head, *rows]
    ]
    return "\n".join(lines)
