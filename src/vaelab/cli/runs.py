"""Commands on a trained run directory: ``vaelab evaluate | plot | sample | reconstruct |
encode | report``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from vaelab.cli.common import UsageError


# -- evaluate -------------------------------------------------------------------------------
def _metric_params(items: Sequence[str]) -> dict[str, dict]:
    from vaelab.config import parse_override

    params: dict[str, dict] = {}
    for item in items:
        keys, value = parse_override(item)
        if len(keys) != 2:
            raise UsageError(
                f"--set {item!r}: expected METRIC.PARAM=VALUE, e.g. mig.num_points=5000"
            )
        params.setdefault(keys[0], {})[keys[1]] = value
    return params


def cmd_evaluate(args: argparse.Namespace) -> int:
    from vaelab.metrics import METRICS
    from vaelab.metrics.evaluate import evaluate_run, format_table

    names = None
    if args.metrics:
        if args.metrics == "all":
            names = [e.name for e in METRICS]
        else:
            names = [n.strip() for n in args.metrics.split(",") if n.strip()]
    params = _metric_params(args.set)
    for key in params:
        if names is not None and key not in names:
            raise UsageError(f"--set {key}.…: metric {key!r} is not in --metrics")
    results, path = evaluate_run(
        args.run_dir,
        names,
        split=args.split,
        seed=args.seed,
        representation=args.representation,
        params=params or None,
        device=args.device,
        root=args.data_root,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    print(format_table(results))
    print(f"written to {path}")
    return 0


# -- looking at models -----------------------------------------------------------------------
PLOT_KINDS = (
    "samples, data-samples, reconstruct, traversals, reconstruct-traverse, gif-traversals, "
    "temperatures, loss-curves, kl-curves, training-gif, or all"
)


def cmd_plot(args: argparse.Namespace) -> int:
    from vaelab.viz.plots import PlotOptions, plot_run

    options = PlotOptions(
        rows=args.rows,
        cols=args.cols,
        max_traversal=args.max_traversal,
        posterior=args.posterior,
        upsample=args.upsample,
        seed=args.seed,
        split=args.split,
        frames=args.frames,
        fps=args.fps,
        temperatures=tuple(args.temperatures),
    )
    for path in plot_run(args.run_dir, args.kinds, options, device=args.device):
        print(path)
    return 0


def _run_model(run_dir: str, device: str):
    from vaelab.models.build import load_run_model

    return load_run_model(run_dir, device)


def cmd_sample(args: argparse.Namespace) -> int:
    from vaelab.rundir import open_run_dir
    from vaelab.viz.outputs import write_samples

    model, _ = _run_model(args.run_dir, args.device)
    if not hasattr(model, "sample"):
        raise UsageError(f"the model of {args.run_dir} cannot sample")
    default = open_run_dir(args.run_dir).plots / f"samples_T{args.temperature:g}_seed{args.seed}"
    out = Path(args.out) if args.out else default
    paths = write_samples(model, out, args.n, args.temperature, args.seed, device=args.device)
    print(f"{len(paths) - 1} samples and a grid in {out}")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from vaelab.data import dataset_splits
    from vaelab.metrics.evaluate import load_split, metric_split
    from vaelab.rundir import open_run_dir
    from vaelab.viz.outputs import write_reconstructions
    from vaelab.viz.plots import random_images

    if args.n < 1:
        raise UsageError(f"--n: expected a positive number of images, got {args.n}")
    model, cfg = _run_model(args.run_dir, args.device)
    split = args.split or metric_split(cfg, "elbo", dataset_splits(cfg.data.name))
    dataset = load_split(cfg, split)
    rows, images = random_images(cfg, dataset, args.n, args.seed, args.device)
    default = open_run_dir(args.run_dir).plots / f"reconstructions_{split}_seed{args.seed}"
    out = Path(args.out) if args.out else default
    paths = write_reconstructions(model, images, rows, out)
    print(f"{len(paths) - 1} reconstructions of {split} images and a grid in {out}")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    import vaelab
    from vaelab.data import dataset_splits
    from vaelab.metrics.evaluate import load_split
    from vaelab.viz.latents import encode_split, write_latents

    model, cfg = _run_model(args.run_dir, args.device)
    split = args.split or cfg.data.split
    if split not in dataset_splits(cfg.data.name):
        splits = ", ".join(dataset_splits(cfg.data.name))
        raise UsageError(
            f"--split: dataset {cfg.data.name!r} has no split {split!r}; splits: {splits}"
        )
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it")
    dataset = load_split(cfg, split)
    arrays = encode_split(
        model, dataset, args.batch_size, args.device, cfg.data.transform, cfg.data.bits,
        args.limit, args.seed,
    )  # fmt: skip
    meta = {"run": str(Path(args.run_dir).resolve()), "split": split,
            "dataset": cfg.data.name, "vaelab_version": vaelab.__version__}  # fmt: skip
    write_latents(out, arrays, meta)
    shape = arrays["mean"].shape
    print(f"means and log-variances of {shape[0]} {split} images ({shape[1]} latents): {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from vaelab.viz.plots import PlotOptions, plot_run
    from vaelab.viz.report import write_report

    if not args.no_plots:
        plot_run(args.run_dir, ["all"], PlotOptions(seed=args.seed), device=args.device)
    path = write_report(args.run_dir)
    print(f"report: {path}")
    return 0
