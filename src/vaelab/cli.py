"""The ``vaelab`` command line: thin parsing around library functions.

Nothing heavy is imported at module import time, so ``vaelab --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from vaelab import __version__

EXAMPLES = """\
examples:
  vaelab data list
  vaelab data info mnist --root ../shared/data
  vaelab data samples dsprites-procedural --out samples.png
  vaelab presets list
  vaelab presets show demo --set train.lr=1e-4
  vaelab train --preset demo --out runs/demo
  vaelab evaluate runs/demo
  vaelab plot runs/demo all
  vaelab report runs/demo
"""


class UsageError(Exception):
    """A command-line mistake: printed without a traceback, exit status 2."""


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


# -- data -----------------------------------------------------------------------------------
def cmd_data_list(args: argparse.Namespace) -> int:
    from vaelab.registry import DATASETS

    width = max(len(n) for n in DATASETS.names())
    for entry in DATASETS:
        splits = ", ".join(entry.meta.get("splits", ("train",)))
        print(f"{entry.name:<{width}}  {entry.summary}  [splits: {splits}]")
    return 0


def _dataset_folder(name: str, root: str | None) -> Path | None:
    from vaelab.data.download import dataset_folder
    from vaelab.registry import DATASETS

    folder = DATASETS.get(name).meta.get("folder")
    return dataset_folder(folder, root) if folder else None


def cmd_data_info(args: argparse.Namespace) -> int:
    from vaelab.data import DataError, GroundTruthDataset, dataset_splits, load_dataset
    from vaelab.registry import DATASETS

    entry = DATASETS.get(args.name)
    splits = [args.split] if args.split else list(dataset_splits(args.name))
    report: dict = {"name": args.name, "summary": entry.summary, "splits": {}}
    folder = _dataset_folder(args.name, args.root)
    if folder is not None:
        report["folder"] = str(folder)
    seen = set()
    for split in splits:
        try:
            ds = load_dataset(
                args.name, split=split, root=args.root, path=args.path, download=False
            )
        except DataError as err:
            report["splits"][split] = {"error": str(err)}
            continue
        info = ds.summary()
        key = tuple(info["files"]) or (split,)
        report["splits"][split] = info
        if isinstance(ds, GroundTruthDataset) and "factors" not in report:
            report["factors"] = info["factors"]
            report["complete_grid"] = info["complete_grid"]
        seen.add(key)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.name}: {entry.summary}")
    if folder is not None:
        print(f"  folder: {folder}")
    if "factors" in report:
        factors = ", ".join(f"{k} {v}" for k, v in report["factors"].items())
        grid = "complete grid" if report["complete_grid"] else "partial grid"
        print(f"  factors: {factors} ({grid})")
    for split, info in report["splits"].items():
        if "error" in info:
            print(f"  {split}: not available\n    " + info["error"].replace("\n", "\n    "))
            continue
        c, h, w = info["image_shape"]
        size = _human_bytes(info["uint8_bytes"])
        where = {
            "memory": f"{size} in memory; training copies it to the device as uint8",
            "memory-mapped": f"{size}, memory-mapped; training streams it with a DataLoader",
            "on demand": f"rendered on demand on the device ({size} if cached)",
        }[info["storage"]]
        line = f"  {split}: {info['images']:,} images, {c}x{h}x{w} uint8, {where}"
        if "classes" in info:
            line += f", {info['classes']} classes"
        print(line)
        for file in info["files"]:
            print(f"    file: {file}")
    return 0


def cmd_data_verify(args: argparse.Namespace) -> int:
    from vaelab.data.download import verify_all
    from vaelab.registry import DATASETS

    entry = DATASETS.get(args.name)
    files_of = entry.meta.get("files")
    if files_of is None:
        print(f"{args.name}: nothing to verify (the dataset is generated, not downloaded)")
        return 0
    folder = _dataset_folder(args.name, args.root)
    if args.path:
        folder = Path(args.path)
    bad = 0
    for split in entry.meta.get("splits", ("train",)):
        for status in verify_all(files_of(split), folder):
            mark = "ok" if status.status in ("ok", "unchecked") else "FAILED"
            bad += mark != "ok"
            detail = ""
            if status.status not in ("ok",):
                detail = f"  ({status.status}; expected {status.expected}, found {status.actual})"
            print(f"{mark:6} {split:6} {status.path}{detail}")
    if bad:
        print(
            f"{bad} file(s) missing or wrong; `vaelab data info {args.name}` says where to "
            "put them",
            file=sys.stderr,
        )
    return 1 if bad else 0


def cmd_data_prepare(args: argparse.Namespace) -> int:
    from vaelab.data import dataset_splits, load_dataset
    from vaelab.data.download import ChecksumError, MissingFileError, ensure_file
    from vaelab.registry import DATASETS

    entry = DATASETS.get(args.name)
    splits = [args.split] if args.split else list(dataset_splits(args.name))
    files_of = entry.meta.get("files")
    problems = []
    if files_of is None:
        print(f"{args.name}: nothing to download (vaelab generates it)")
    else:
        folder = _dataset_folder(args.name, args.root)
        files = {f.name: f for split in splits for f in files_of(split)}
        for file in files.values():
            try:
                path = ensure_file(file, folder, download=not args.no_download)
                print(f"ok      {path}")
            except (MissingFileError, ChecksumError) as err:
                print(f"MISSING {folder / file.name}")
                problems.append(str(err))
    if problems:
        print(
            f"\n{len(problems)} file(s) to fetch by hand (or run again when online):\n\n"
            + "\n\n".join(problems),
            file=sys.stderr,
        )
        return 1
    for split in splits:  # extracts archives and builds caches once, with progress bars
        ds = load_dataset(args.name, split=split, root=args.root, path=args.path, download=False)
        info = ds.summary()
        shape = "x".join(str(d) for d in info["image_shape"])
        print(f"ready   {split}: {info['images']:,} images of {shape}, {info['storage']}")
    return 0


def cmd_data_samples(args: argparse.Namespace) -> int:
    import numpy as np

    from vaelab.data import load_dataset
    from vaelab.viz.grid import image_grid, save_png

    ds = load_dataset(
        args.name, split=args.split, root=args.root, path=args.path, download=args.download
    )
    rng = np.random.default_rng(args.seed)
    n = min(args.n, len(ds))
    index = np.sort(rng.choice(len(ds), size=n, replace=False))
    images = np.asarray(ds.images[index])
    save_png(args.out, image_grid(images))
    print(f"wrote {n} {args.name} {args.split} images to {args.out}")
    return 0


# -- models and objectives ------------------------------------------------------------------
def _list_registry(kind: str) -> int:
    import dataclasses

    from vaelab.registry import METRICS, MODELS, OBJECTIVES

    registry = {"models": MODELS, "objectives": OBJECTIVES, "metrics": METRICS}[kind]
    for entry in registry:
        default = " [default]" if entry.meta.get("default") else ""
        print(f"{entry.name}: {entry.summary}{default}")
        if entry.params is not None:
            fields = [f"{f.name}={_default(f)}" for f in dataclasses.fields(entry.params)]
            print("    " + ", ".join(fields))
    return 0


def _default(field) -> str:
    import dataclasses

    if field.default is not dataclasses.MISSING:
        return repr(field.default)
    if field.default_factory is not dataclasses.MISSING:
        return repr(field.default_factory())
    return "(required)"


def cmd_models_list(args: argparse.Namespace) -> int:
    return _list_registry("models")


def cmd_objectives_list(args: argparse.Namespace) -> int:
    return _list_registry("objectives")


def cmd_metrics_list(args: argparse.Namespace) -> int:
    return _list_registry("metrics")


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


# -- presets --------------------------------------------------------------------------------
def cmd_presets_list(args: argparse.Namespace) -> int:
    from vaelab.presets import preset_description, preset_names

    names = preset_names()
    width = max((len(n) for n in names), default=0)
    for name in names:
        print(f"{name:<{width}}  {preset_description(name)}")
    return 0


def cmd_presets_show(args: argparse.Namespace) -> int:
    from vaelab.presets import load_preset

    print(load_preset(args.name, args.set).to_yaml(), end="")
    return 0


# -- train ----------------------------------------------------------------------------------
TRAIN_FLAGS = {  # explicit flags -> config keys
    "model": "model.name",
    "objective": "objective.name",
    "data": "data.name",
    "data_root": "data.root",
    "steps": "train.steps",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "latent_dim": "model.latent_dim",
    "device": "device",
    "seed": "seed",
}


def cmd_train(args: argparse.Namespace) -> int:
    from vaelab.config import Config, apply_overrides, config_from_dict, read_yaml
    from vaelab.presets import preset_values
    from vaelab.train.loop import config_summary, train

    overrides = [
        f"{key}={getattr(args, flag)}"
        for flag, key in TRAIN_FLAGS.items()
        if getattr(args, flag) is not None
    ]
    if args.no_progress:
        overrides.append("train.progress=false")
    overrides += args.set
    if args.resume:
        if args.preset or args.config or args.out:
            raise UsageError(
                "--resume continues a run with its own config: drop --preset, "
                "--config and --out (use --set to change a value)"
            )
        result = train(resume=args.resume, overrides=overrides, stop_at=args.stop_at)
    else:
        if args.preset and args.config:
            raise UsageError("give --preset or --config, not both")
        if args.preset:
            values, name = preset_values(args.preset), args.preset
        elif args.config:
            values, name = read_yaml(args.config), Path(args.config).stem
        else:
            values, name = Config().to_dict(), "run"
        source = f"preset {args.preset!r}" if args.preset else (args.config or "")
        cfg = config_from_dict(apply_overrides(values, overrides), source=source)
        if cfg.model.name is None:
            raise UsageError(
                "nothing to train: give --preset NAME (vaelab presets list), "
                "--config FILE, or --model NAME (vaelab models list)"
            )
        print(f"training {config_summary(cfg)}", flush=True)
        result = train(cfg, out=args.out, overwrite=args.overwrite, name=name, stop_at=args.stop_at)
    print(f"run directory: {result.run_dir}")
    if result.steps < result.target_steps:
        print(
            f"stopped at step {result.steps} of {result.target_steps}; continue with: "
            f"vaelab train --resume {result.run_dir}"
        )
    for key in ("loss", "recon", "kl"):
        if isinstance(result.last_log.get(key), float):
            print(f"  final {key}: {result.last_log[key]:.4f}")
    print(f"  weights: {result.run_dir / 'model.safetensors'}")
    print(
        f"  log: {result.run_dir / 'train_log.jsonl'} (TensorBoard: "
        f"{result.run_dir / 'tensorboard'})"
    )
    if result.skipped:
        print(f"  skipped updates: {result.skipped}")
    return 0


# -- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vaelab",
        description="Variational autoencoders for disentanglement and likelihood research.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vaelab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    data = commands.add_parser("data", help="list, describe, verify and look at datasets")
    data_cmds = data.add_subparsers(dest="data_command", metavar="ACTION")
    data_cmds.add_parser("list", help="every dataset vaelab can read").set_defaults(
        func=cmd_data_list
    )

    def dataset_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("name", help="dataset name (vaelab data list)")
        p.add_argument(
            "--root",
            "--data-root",
            dest="root",
            help="data folder (default $VAELAB_DATA or ~/.cache/vaelab/data)",
        )
        p.add_argument("--path", help="a specific file or folder to read instead")

    info = data_cmds.add_parser("info", help="sizes, factors, splits and where the files are")
    dataset_args(info)
    info.add_argument("--split", help="only this split")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=cmd_data_info)

    verify = data_cmds.add_parser("verify", help="check the dataset's files against checksums")
    dataset_args(verify)
    verify.set_defaults(func=cmd_data_verify)

    prepare = data_cmds.add_parser(
        "prepare",
        help="download and verify a dataset's files (or say which to fetch by hand), then "
        "extract archives and build caches once",
    )
    prepare.add_argument("name", help="dataset name (vaelab data list)")
    prepare.add_argument(
        "--root", help="data folder (default $VAELAB_DATA or ~/.cache/vaelab/data)"
    )
    prepare.add_argument("--split", help="only this split")
    prepare.add_argument("--path", help="a specific file or folder to read (e.g. for folder)")
    prepare.add_argument(
        "--no-download", action="store_true", help="only check; list what is missing"
    )
    prepare.set_defaults(func=cmd_data_prepare)

    samples = data_cmds.add_parser("samples", help="save a grid of random images as a PNG")
    dataset_args(samples)
    samples.add_argument("--out", required=True, help="PNG file to write")
    samples.add_argument("--split", default="train")
    samples.add_argument("--n", type=int, default=64, help="number of images (default 64)")
    samples.add_argument("--seed", type=int, default=0)
    samples.add_argument("--download", action="store_true", help="download missing files")
    samples.set_defaults(func=cmd_data_samples)

    tr = commands.add_parser(
        "train",
        help="train a model (a preset, a config file, or explicit flags)",
        description="Train a model into a run directory. Start from a preset (--preset), a "
        "YAML config (--config) or the defaults, change any field with --set KEY=VALUE, or "
        "continue an interrupted run with --resume RUN_DIR.",
        epilog="examples:\n  vaelab train --preset btcvae_dsprites --steps 2000\n"
        "  vaelab train --model burgess --objective betah --data mnist --set objective.beta=4\n"
        "  vaelab train --resume runs/btcvae_dsprites-20261121-120000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = tr.add_argument_group("what to train")
    source.add_argument("--preset", help="a preset name (vaelab presets list)")
    source.add_argument("--config", help="a YAML config file")
    source.add_argument(
        "--resume", metavar="RUN_DIR", help="continue this run from its newest checkpoint"
    )
    source.add_argument("--model", help="model name, e.g. burgess, dlib, convvae, mlp")
    source.add_argument(
        "--objective", help="objective name, e.g. vae, betah, betab, factor, btcvae, dip"
    )
    source.add_argument("--data", help="dataset name (vaelab data list)")
    source.add_argument("--data-root", help="data folder")
    source.add_argument("--latent-dim", type=int)
    source.add_argument("--steps", type=int, help="number of optimizer updates")
    source.add_argument("--batch-size", type=int, help="global batch size (split over processes)")
    source.add_argument("--lr", type=float)
    source.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field, e.g. --set train.amp=bf16 (repeatable)",
    )
    where = tr.add_argument_group("where and how")
    where.add_argument("--out", help="run directory (default runs/<preset>-<time>)")
    where.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    where.add_argument("--device", help="auto, cpu, cuda, cuda:N, mps")
    where.add_argument("--seed", type=int)
    where.add_argument("--no-progress", action="store_true", help="no progress bar")
    where.add_argument(
        "--stop-at",
        type=int,
        metavar="STEP",
        help="stop after this step with a checkpoint, to resume later (jobs with a time limit)",
    )
    tr.set_defaults(func=cmd_train)

    for kind, func in (("models", cmd_models_list), ("objectives", cmd_objectives_list)):
        sub = commands.add_parser(kind, help=f"the {kind} vaelab can train, with their parameters")
        sub.add_subparsers(dest=f"{kind}_command", metavar="ACTION").add_parser(
            "list", help=f"every {kind[:-1]} and its parameters (config keys)"
        ).set_defaults(func=func)

    metrics = commands.add_parser("metrics", help="the metrics vaelab computes")
    metrics.add_subparsers(dest="metrics_command", metavar="ACTION").add_parser(
        "list", help="every metric and its protocol parameters ([default]: run when none named)"
    ).set_defaults(func=cmd_metrics_list)

    ev = commands.add_parser(
        "evaluate",
        help="score a trained run (disentanglement and likelihood metrics)",
        description="Compute metrics of a run's final model and merge them into "
        "RUN_DIR/metrics.json (values, protocol, seed, time). Without --metrics: the run's "
        "eval.metrics, or the default suite for its dataset.",
        epilog="examples:\n  vaelab evaluate runs/demo\n"
        "  vaelab evaluate runs/demo --metrics mig,dci --seed 1\n"
        "  vaelab evaluate runs/demo --metrics mig_chen --set mig_chen.factors=[scale,"
        "orientation,posX,posY]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument("--metrics", help="comma-separated names (vaelab metrics list), or 'all'")
    ev.add_argument(
        "--split",
        help="dataset split to score (default: training data for disentanglement metrics, "
        "the held-out split for likelihood metrics)",
    )
    ev.add_argument("--seed", type=int, help="metric seed (default: the run's eval.seed)")
    ev.add_argument(
        "--representation", choices=("mean", "sampled"), help="score μ or a sample μ + σε"
    )
    ev.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="METRIC.PARAM=VALUE",
        help="a protocol parameter, e.g. --set mig.num_points=5000 (repeatable)",
    )
    ev.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    ev.add_argument("--data-root", help="data folder (default: the run's)")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.set_defaults(func=cmd_evaluate)

    pl = commands.add_parser(
        "plot",
        help="figures of a trained run into RUN_DIR/plots/",
        description="Draw figures of a run's final model. Every plot of one call uses the "
        "same dataset images, drawn with --seed.",
        epilog=f"KIND: {PLOT_KINDS}\n\nexamples:\n  vaelab plot runs/demo all\n"
        "  vaelab plot runs/demo traversals --posterior --max-traversal 0.45 --upsample 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pl.add_argument("run_dir", metavar="RUN_DIR")
    pl.add_argument("kinds", metavar="KIND", nargs="+", help="what to draw (see below)")
    pl.add_argument("--rows", type=int, default=6, help="rows (latents for traversals); 6")
    pl.add_argument("--cols", type=int, default=7, help="columns (traversal values); 7")
    pl.add_argument(
        "--max-traversal",
        type=float,
        default=2.0,
        help="traversal range: ±M if M >= 0.5, else the central 2M of the prior/posterior; 2",
    )
    pl.add_argument("--posterior", action="store_true", help="traverse around an image's code")
    pl.add_argument("--upsample", type=int, default=1, help="integer zoom of every tile")
    pl.add_argument("--seed", type=int, default=0, help="which images and samples; 0")
    pl.add_argument("--split", help="dataset split for the images (default: training split)")
    pl.add_argument("--frames", type=int, default=15, help="GIF frames per cycle; 15")
    pl.add_argument("--fps", type=int, default=12, help="GIF frames per second; 12")
    pl.add_argument(
        "--temperatures", type=float, nargs="+", default=[0.5, 0.7, 0.85, 1.0],
        help="rows of the temperature grid",
    )  # fmt: skip
    pl.add_argument("--device", default="cpu")
    pl.set_defaults(func=cmd_plot)

    sa = commands.add_parser("sample", help="prior samples as PNG files and a grid")
    sa.add_argument("run_dir", metavar="RUN_DIR")
    sa.add_argument("--n", type=int, default=64, help="number of samples; 64")
    sa.add_argument("--temperature", type=float, default=1.0, help="z ~ N(0, T²I); 1")
    sa.add_argument("--seed", type=int, default=0)
    sa.add_argument("--out", help="folder (default RUN_DIR/plots/samples_T<T>_seed<S>)")
    sa.add_argument("--device", default="cpu")
    sa.set_defaults(func=cmd_sample)

    re_ = commands.add_parser("reconstruct", help="dataset images beside their reconstructions")
    re_.add_argument("run_dir", metavar="RUN_DIR")
    re_.add_argument("--split", help="default: the held-out split (test) if there is one")
    re_.add_argument("--n", type=int, default=64, help="number of images; 64")
    re_.add_argument("--seed", type=int, default=0, help="which images")
    re_.add_argument("--out", help="folder (default RUN_DIR/plots/reconstructions_<split>_seed<S>)")
    re_.add_argument("--device", default="cpu")
    re_.set_defaults(func=cmd_reconstruct)

    en = commands.add_parser("encode", help="posterior means and log-variances of a split (.npz)")
    en.add_argument("run_dir", metavar="RUN_DIR")
    en.add_argument("--out", required=True, help="the .npz file to write")
    en.add_argument("--split", help="default: the training split")
    en.add_argument("--limit", type=int, help="only N images, drawn with --seed (default: all)")
    en.add_argument("--seed", type=int, default=0, help="which images with --limit; 0")
    en.add_argument("--batch-size", type=int, default=256)
    en.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    en.add_argument("--device", default="cpu")
    en.set_defaults(func=cmd_encode)

    rp = commands.add_parser(
        "report", help="RUN_DIR/report.html: config, curves, metrics and every figure"
    )
    rp.add_argument("run_dir", metavar="RUN_DIR")
    rp.add_argument("--no-plots", action="store_true", help="use the figures already in plots/")
    rp.add_argument("--seed", type=int, default=0, help="seed of the figures it draws")
    rp.add_argument("--device", default="cpu")
    rp.set_defaults(func=cmd_report)

    presets = commands.add_parser("presets", help="named experiment configs")
    preset_cmds = presets.add_subparsers(dest="presets_command", metavar="ACTION")
    preset_cmds.add_parser("list", help="every shipped preset").set_defaults(func=cmd_presets_list)
    show = preset_cmds.add_parser("show", help="print a preset's fully resolved config")
    show.add_argument("name")
    show.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field, e.g. --set train.lr=1e-4 (repeatable)",
    )
    show.set_defaults(func=cmd_presets_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        groups = ("data", "presets", "models", "objectives", "metrics")
        sub = args.command if args.command in groups else ""
        if sub:
            parser.parse_args([sub, "--help"])
        parser.print_help()
        return 2
    from vaelab.config import ConfigError
    from vaelab.data.base import DataError
    from vaelab.registry import UnknownNameError
    from vaelab.rundir import RunDirError
    from vaelab.train.errors import CheckpointError, TrainingDiverged

    try:
        return int(args.func(args) or 0)
    except (ConfigError, DataError, UnknownNameError, RunDirError, UsageError) as err:
        print(f"vaelab: error: {err}", file=sys.stderr)
        return 2
    except (TrainingDiverged, CheckpointError) as err:
        print(f"vaelab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vaelab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
