"""``vaelab plot``: the registered figures of a trained run, written into ``RUN_DIR/plots/``.

Every plot is a function ``(ctx: PlotContext) -> list[Path]`` registered in
:data:`vaelab.registry.PLOTS` with ``applies(ctx) -> bool`` (a temperature grid needs a model
that samples at a temperature, curves need a training log, ...). One call draws all requested
plots from the same dataset images and the same seed, and writes the seed into every file
name's folder metadata (``plots/plots.json``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaelab.config import Config, ConfigError
from vaelab.registry import PLOTS
from vaelab.rundir import RunDir, atomic_write_json, open_run_dir


@dataclass
class PlotOptions:
    """What ``vaelab plot`` takes (defaults from disentangling-vae's ``main_viz.py``)."""

    rows: int = 6
    cols: int = 7
    max_traversal: float = 2.0
    posterior: bool = False
    upsample: int = 1
    seed: int = 0
    split: str | None = None
    frames: int = 15
    fps: int = 12
    temperatures: tuple[float, ...] = (0.5, 0.7, 0.85, 1.0)

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "upsample", "frames", "fps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{name}: expected a positive integer, got {value!r}")
        if not self.max_traversal > 0:
            raise ConfigError(
                f"--max-traversal: expected a positive number, got {self.max_traversal}"
            )
        if any(t <= 0 for t in self.temperatures):
            raise ConfigError(f"--temperatures: expected positive numbers, got {self.temperatures}")


@dataclass
class PlotContext:
    """A loaded run and the inputs shared by every plot of one ``vaelab plot`` call."""

    run: RunDir
    model: torch.nn.Module
    cfg: Config
    options: PlotOptions
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def generator(self) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.options.seed)

    @cached_property
    def dataset(self):
        from vaelab.metrics.evaluate import load_split

        return load_split(self.cfg, self.options.split or self.cfg.data.split)

    @cached_property
    def images(self) -> torch.Tensor:
        """``rows · cols`` dataset images drawn with the seed, as float [N, C, H, W]."""
        n = self.options.rows * self.options.cols
        return random_images(self.cfg, self.dataset, n, self.options.seed, self.device)[1]

    @cached_property
    def kl_per_dim(self) -> list[float]:
        """KL(q(z_j|x) ‖ p(z_j)) per latent, averaged over up to 512 dataset images: the KL
        of the weights being plotted (the training log's may lag or be pre-EMA)."""
        from vaelab.train.evaluation import iterate_images

        dc = self.cfg.data
        total, count = None, 0
        with torch.no_grad():
            for x in iterate_images(
                self.dataset, 128, self.device, dc.transform, dc.bits, self.options.seed, 512
            ):
                kl = self.model.encode(x).kl_standard_normal().sum(0).double()
                total = kl if total is None else total + kl
                count += len(x)
        return (total / max(count, 1)).cpu().tolist()

    def path(self, name: str) -> Path:
        self.run.plots.mkdir(parents=True, exist_ok=True)
        return self.run.plots / name


Plot = Callable[[PlotContext], list[Path]]


def random_images(
    cfg: Config, dataset, n: int, seed: int, device: torch.device
) -> tuple[np.ndarray, torch.Tensor]:
    """``n`` distinct dataset rows drawn with ``seed`` (sorted) and their images as the model
    sees them (the run's transform), float ``[n, C, H, W]`` on ``device``."""
    from vaelab.data.transforms import Transform, data_scale
    from vaelab.train.evaluation import images_at

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(dataset), size=min(n, len(dataset)), replace=False))
    dc = cfg.data
    convert = Transform(
        dc.transform, dc.bits, data_scale(dataset), seed, 0, torch.device(device), False
    )
    return rows, convert(images_at(dataset, rows, device), 0)


def _has(attr: str) -> Callable[[PlotContext], bool]:
    return lambda ctx: hasattr(ctx.model, attr)


def _has_log(ctx: PlotContext) -> bool:
    return ctx.run.train_log.exists() and ctx.run.train_log.stat().st_size > 0


def _save(ctx: PlotContext, name: str, image) -> list[Path]:
    from vaelab.viz.grid import save_png

    path = ctx.path(name)
    save_png(path, image)  # keeps the figure's metadata (kind, seed, values) in the PNG
    return [path]


# -- the registered plots -------------------------------------------------------------------------
@PLOTS.register("samples", "decoded samples from the prior", applies=_has("sample"))
def plot_samples(ctx: PlotContext) -> list[Path]:
    from vaelab.viz.figures import samples_figure

    o = ctx.options
    return _save(
        ctx,
        "samples.png",
        samples_figure(ctx.model, o.rows, o.cols, ctx.generator(), 1.0, o.upsample),
    )


@PLOTS.register("data-samples", "dataset images (the ones every plot of this call uses)")
def plot_data(ctx: PlotContext) -> list[Path]:
    from vaelab.viz.figures import data_figure

    o = ctx.options
    return _save(ctx, "data_samples.png", data_figure(ctx.images.cpu(), o.rows, o.cols, o.upsample))


@PLOTS.register("reconstruct", "originals over their reconstructions", applies=_has("reconstruct"))
def plot_reconstruct(ctx: PlotContext) -> list[Path]:
    from vaelab.viz.figures import reconstruction_figure

    o = ctx.options
    rows = o.rows if o.rows % 2 == 0 else o.rows + 1
    figure = reconstruction_figure(ctx.model, ctx.images, rows, o.cols, o.upsample)
    return _save(ctx, "reconstruct.png", figure)


@PLOTS.register(
    "traversals",
    "latent traversals, rows ordered by KL (prior, or --posterior)",
    applies=_has("encode"),
)
def plot_traversals(ctx: PlotContext) -> list[Path]:
    from vaelab.viz.figures import traversal_figure

    o = ctx.options
    x = ctx.images if o.posterior else None
    figure = traversal_figure(
        ctx.model, ctx.kl_per_dim, o.rows, o.cols, o.max_traversal, x=x, upsample=o.upsample,
        generator=ctx.generator(),
    )  # fmt: skip
    name = "posterior_traversals.png" if o.posterior else "prior_traversals.png"
    return _save(ctx, name, figure)


@PLOTS.register(
    "reconstruct-traverse", "originals, reconstructions, then traversals", applies=_has("encode")
)
def plot_reconstruct_traverse(ctx: PlotContext) -> list[Path]:
    from vaelab.viz.figures import reconstruct_traverse_figure

    o = ctx.options
    figure = reconstruct_traverse_figure(
        ctx.model, ctx.images, ctx.kl_per_dim, o.rows, o.cols, o.max_traversal,
        posterior=o.posterior, upsample=o.upsample,
    )  # fmt: skip
    return _save(ctx, "reconstruct_traverse.png", figure)


@PLOTS.register(
    "gif-traversals", "animated posterior traversals: latents × images", applies=_has("encode")
)
def plot_gif_traversals(ctx: PlotContext) -> list[Path]:
    from vaelab.viz.figures import traversal_gif_frames
    from vaelab.viz.gif import save_gif

    o = ctx.options
    frames = traversal_gif_frames(
        ctx.model, ctx.images, ctx.kl_per_dim, o.rows, o.cols, n_frames=o.frames,
        max_traversal=o.max_traversal, upsample=o.upsample,
    )  # fmt: skip
    path = ctx.path("posterior_traversals.gif")
    save_gif(frames, path, fps=o.fps)
    return [path]


@PLOTS.register(
    "temperatures", "prior samples at several temperatures, one row each", applies=_has("sample")
)
def plot_temperatures(ctx: PlotContext) -> list[Path]:
    from vaelab.viz.figures import temperature_figure

    o = ctx.options
    figure = temperature_figure(ctx.model, o.temperatures, o.cols, ctx.generator(), o.upsample)
    return _save(ctx, "temperatures.png", figure)


@PLOTS.register("loss-curves", "loss terms over training (train and eval)", applies=_has_log)
def plot_loss_curves(ctx: PlotContext) -> list[Path]:
    from vaelab.train.logging import read_log
    from vaelab.viz.curves import loss_curves_figure

    return _save(ctx, "loss_curves.png", loss_curves_figure(read_log(ctx.run.train_log)))


@PLOTS.register("kl-curves", "KL of every latent over training", applies=_has_log)
def plot_kl_curves(ctx: PlotContext) -> list[Path]:
    from vaelab.train.logging import read_log
    from vaelab.viz.curves import kl_curves_figure

    return _save(ctx, "kl_curves.png", kl_curves_figure(read_log(ctx.run.train_log)))


def _has_frames(ctx: PlotContext) -> bool:
    return bool(training_frames(ctx.run))


@PLOTS.register(
    "training-gif",
    "prior traversal of every latent across training, a frame per checkpoint",
    applies=_has_frames,
)
def plot_training_gif(ctx: PlotContext) -> list[Path]:
    from PIL import Image

    from vaelab.viz.gif import save_gif

    frames = [Image.open(path).convert("RGB") for path in training_frames(ctx.run)]
    path = ctx.path("training.gif")
    save_gif(frames, path, fps=ctx.options.fps)
    return [path]


# -- training-time frames -------------------------------------------------------------------------
FRAMES = "training_frames"


def training_frames(run: RunDir) -> list[Path]:
    """The frames the trainer wrote (``plots/training_frames/step_XXXXXXXX.png``), by step."""
    return sorted((run.plots / FRAMES).glob("step_*.png"))


def write_training_frame(model: torch.nn.Module, run: RunDir, step: int) -> Path | None:
    """Render the across-training GIF's frame for ``step`` (eval mode, no randomness)."""
    from vaelab.viz.figures import training_frame

    if not hasattr(model, "decode"):
        return None
    folder = run.plots / FRAMES
    folder.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            image = training_frame(model, step=step)
    finally:
        model.train(was_training)
    from vaelab.viz.grid import save_png

    path = folder / f"step_{step:08d}.png"
    save_png(path, image)
    return path


# -- entry point ---------------------------------------------------------------------------------
def plot_run(
    run_dir: str | Path,
    kinds: Sequence[str],
    options: PlotOptions | None = None,
    device: str = "cpu",
) -> list[Path]:
    """Draw ``kinds`` (names from ``vaelab plot --help``, or ``all``) for a run; returns the
    files written. ``all`` draws every plot that applies to the model and the run."""
    from vaelab.models.build import load_run_model

    options = options or PlotOptions()
    run = open_run_dir(run_dir)
    model, cfg = load_run_model(run.path, device)
    ctx = PlotContext(run, model, cfg, options, torch.device(device))
    if "all" in kinds:
        entries = [e for e in PLOTS if e.meta.get("applies", lambda c: True)(ctx)]
    else:
        entries = [PLOTS.get(k) for k in kinds]
        for entry in entries:
            if not entry.meta.get("applies", lambda c: True)(ctx):
                raise ConfigError(
                    f"plot {entry.name!r} does not apply to this run ({type(model).__name__}; "
                    f"{entry.summary})"
                )
    written: list[Path] = []
    for entry in entries:
        written += entry.target(ctx)
    _record(run, options, [e.name for e in entries], written)
    return written


def _record(run: RunDir, options: PlotOptions, kinds: list[str], written: list[Path]) -> None:
    """Remember how each figure was drawn (options and seed) in ``plots/plots.json``."""
    path = run.plots / "plots.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    for file in written:
        data[file.name] = {"options": asdict(options), "kinds": kinds}
    atomic_write_json(path, data)
