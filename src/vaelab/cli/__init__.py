"""The ``vaelab`` command line: thin parsing around library functions.

Nothing heavy is imported at module import time, so ``vaelab --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from vaelab import __version__
from vaelab.cli.common import UsageError
from vaelab.cli.data import (
    cmd_data_info,
    cmd_data_list,
    cmd_data_prepare,
    cmd_data_samples,
    cmd_data_verify,
)
from vaelab.cli.runs import (
    PLOT_KINDS,
    cmd_encode,
    cmd_evaluate,
    cmd_plot,
    cmd_reconstruct,
    cmd_report,
    cmd_sample,
)

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
