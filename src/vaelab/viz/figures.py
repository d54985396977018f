"""Figures of a model and its data, as labelled Pillow images.

Every function is pure: (model, images, generator, options) in, an RGB ``PIL.Image.Image`` (or
a list of frames) out; nothing is written to disk (:func:`vaelab.viz.grid.save_png`,
:func:`vaelab.viz.gif.save_gif` do that). Layouts follow disentangling-vae's ``main_viz.py``
(``specs/visualization.md`` §1) with vaelab's corrections (§7):

- tiles are separated by ``PADDING`` = 2 px of white when the images' background is dark and
  of black otherwise (:func:`~vaelab.viz.grid.contrasting_pad_value`); pixels are shown as
  they are (no min–max renormalisation), grey images as grey RGB, enlarged by an integer
  nearest-neighbour ``upsample`` factor;
- around the grid, on white: row labels on the left, column headers on top (turned upright
  when wider than a tile) and a caption underneath saying what is shown;
- ``image.info["vaelab"]`` holds JSON metadata (figure kind, seed, values, latents), which
  ``save_png`` stores in the PNG, and ``image.info["grid"]`` the tile geometry
  (``left``, ``top``, ``tile`` = [height, width], ``padding``, ``rows``, ``cols``).

The model is used as it is: put it in eval mode first (BatchNorm networks).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from vaelab.viz.grid import contrasting_pad_value, image_grid
from vaelab.viz.traversal import (
    is_quantile_mode,
    latent_order,
    parameter_placement,
    pingpong,
    traversal_at,
    traversal_values,
    traverse,
)

PADDING = 2  # px between tiles (torchvision make_grid's default, as in disentangling-vae)
GAP = 4  # px between text and the grid or the border
SPACING = 2  # px between lines of text
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)

FactorLabels = Mapping[int, str] | Sequence[str | None]
KL = Sequence[float] | np.ndarray


# -- text and layout ------------------------------------------------------------------------
@functools.cache
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


_MEASURE = ImageDraw.Draw(Image.new("RGB", (1, 1)))


def _text_size(text: str) -> tuple[int, int]:
    """Width and height of the inked box of (multi-line) ``text``."""
    left, top, right, bottom = _MEASURE.multiline_textbbox(
        (0, 0), text, font=_font(), spacing=SPACING
    )
    return right - left, bottom - top


def _draw_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str) -> None:
    """Draw ``text`` with the top-left corner of its inked box at ``xy``."""
    left, top, _, _ = _MEASURE.multiline_textbbox((0, 0), text, font=_font(), spacing=SPACING)
    draw.multiline_text((xy[0] - left, xy[1] - top), text, fill=INK, font=_font(), spacing=SPACING)


def _fit_lines(parts: Sequence[str], height: int) -> str:
    """``parts`` one per line when they fit in ``height`` px, else the surplus parts joined on
    the last line that fits (labels of small tiles stay one line)."""
    lines = max(1, len(parts))
    while lines > 1 and _text_size("\n".join(["Ag"] * lines))[1] > height:
        lines -= 1
    return "\n".join([*parts[: lines - 1], "  ".join(parts[lines - 1 :])])


def _wrap(text: str, width: int) -> str:
    """Greedy word wrap of ``text`` to lines at most ``width`` px wide (when words allow)."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and _text_size(candidate)[0] > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return "\n".join(lines)


def _rgb(grid: np.ndarray) -> np.ndarray:
    if grid.shape[2] == 1:
        return grid.repeat(3, axis=2)
    if grid.shape[2] != 3:
        raise ValueError(f"figures show 1- or 3-channel images, got {grid.shape[2]} channels")
    return grid


def _draw_headers(
    image: Image.Image,
    texts: Sequence[str],
    first_centre: float,
    pitch: int,
    foot: int,
    upright: bool,
) -> None:
    """Column headers centred on x = first_centre + k·pitch, their foot GAP px above ``foot``;
    ``upright``: turned a quarter (reading bottom to top) for headers wider than a tile."""
    draw = ImageDraw.Draw(image)
    for k, text in enumerate(texts):
        centre = first_centre + k * pitch
        text_w, text_h = _text_size(text)
        if upright:
            label = Image.new("RGB", (text_w, text_h), BACKGROUND)
            _draw_text(ImageDraw.Draw(label), (0, 0), text)
            image.paste(
                label.rotate(90, expand=True), (round(centre - text_h / 2), foot - GAP - text_w)
            )
        else:
            _draw_text(draw, (round(centre - text_w / 2), foot - GAP - text_h), text)


def _compose(
    tiles: np.ndarray,
    row_labels: Sequence[Sequence[str]] | None = None,
    col_labels: Sequence[str] | None = None,
    caption: str | None = None,
    upsample: int = 1,
    meta: dict[str, Any] | None = None,
) -> Image.Image:
    """A labelled figure of ``tiles`` ``[R, K, C, H, W]`` (floats in [0, 1]).

    ``row_labels[r]`` is a list of phrases, stacked on lines as far as the row height allows.
    """
    n_rows, n_cols, channels, height, width = tiles.shape
    flat = tiles.reshape(n_rows * n_cols, channels, height, width)
    pad_value = contrasting_pad_value(flat)
    grid = image_grid(flat, n_cols, PADDING, pad_value, upsample=upsample)
    grid = _rgb(grid)
    tile_h, tile_w = height * upsample, width * upsample

    rows_text = [_fit_lines(parts, tile_h + PADDING) for parts in row_labels or []]
    left = max((_text_size(t)[0] for t in rows_text), default=-2 * GAP) + 2 * GAP
    head_sizes = [_text_size(t) for t in col_labels or []]
    upright = any(w > tile_w + PADDING - 1 for w, _ in head_sizes)
    head_extent = max((w if upright else h for w, h in head_sizes), default=-2 * GAP)
    top = head_extent + 2 * GAP
    figure_w = left + grid.shape[1]
    caption_text = _wrap(caption, figure_w - 2 * GAP) if caption else ""
    bottom = _text_size(caption_text)[1] + 2 * GAP if caption_text else 0
    figure_h = top + grid.shape[0] + bottom

    image = Image.new("RGB", (figure_w, figure_h), BACKGROUND)
    image.paste(Image.fromarray(grid), (left, top))
    draw = ImageDraw.Draw(image)
    for r, text in enumerate(rows_text):
        centre = top + PADDING + r * (tile_h + PADDING) + tile_h / 2
        _draw_text(draw, (GAP, round(centre - _text_size(text)[1] / 2)), text)
    if col_labels:
        _draw_headers(
            image, col_labels, left + PADDING + tile_w / 2, tile_w + PADDING, top, upright
        )
    if caption_text:
        _draw_text(draw, (GAP, top + grid.shape[0] + GAP), caption_text)

    image.info["grid"] = {
        "left": left,
        "top": top,
        "tile": [tile_h, tile_w],
        "padding": PADDING,
        "rows": n_rows,
        "cols": n_cols,
    }
    image.info["vaelab"] = meta or {}
    return image


# -- helpers --------------------------------------------------------------------------------
def _check_positive(**counts: int) -> None:
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _images(x: torch.Tensor | np.ndarray, needed: int, name: str = "x") -> torch.Tensor:
    """The first ``needed`` images of a float batch ``[N, C, H, W]`` in [0, 1]."""
    x = torch.as_tensor(x)
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(
            f"{name} must be float images [N, C, H, W] in [0, 1], got {x.dtype} {list(x.shape)}"
        )
    if len(x) < needed:
        raise ValueError(f"{name}: the figure needs {needed} images, got {len(x)}")
    return x[:needed]


def _numpy(images: torch.Tensor) -> np.ndarray:
    return images.detach().float().cpu().numpy()


def _seed(generator: torch.Generator | None) -> int | None:
    return None if generator is None else int(generator.initial_seed())


def _number(value: float, signed: bool = False) -> str:
    """Short readable text for a traversal value: 2 decimals, trailing zeros dropped."""
    text = f"{value:+.2f}" if signed else f"{value:.2f}"
    text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "+0") else text


def _factor_name(factor_labels: FactorLabels | None, latent: int) -> str | None:
    if factor_labels is None:
        return None
    if isinstance(factor_labels, Mapping):
        return factor_labels.get(latent)
    return factor_labels[latent] if latent < len(factor_labels) else None


def _latent_label(
    latent: int, kl_per_dim: np.ndarray | None, factor_labels: FactorLabels | None
) -> list[str]:
    first = f"z{latent}" if kl_per_dim is None else f"z{latent}  KL {kl_per_dim[latent]:.2f}"
    factor = _factor_name(factor_labels, latent)
    return [first, factor] if factor else [first]


def _kl_array(kl_per_dim: KL | None, latent_dim: int) -> np.ndarray | None:
    if kl_per_dim is None:
        return None
    kl = np.asarray(kl_per_dim, dtype=np.float64).reshape(-1)
    if len(kl) != latent_dim:
        raise ValueError(f"kl_per_dim has {len(kl)} values, the model has {latent_dim} latents")
    return kl


def _ordered_latents(
    kl: np.ndarray | None, order: str | Sequence[int], latent_dim: int, rows: int
) -> list[int]:
    if isinstance(order, str):
        if order == "kl" and kl is None:
            raise ValueError('order="kl" needs kl_per_dim')
        latents = latent_order(np.zeros(latent_dim) if kl is None else kl, order)
    else:
        latents = [int(j) for j in order]
        if not all(0 <= j < latent_dim for j in latents):
            raise ValueError(f"order: latent indices must lie in [0, {latent_dim}), got {latents}")
    return latents[:rows]


def _range_text(m: float) -> str:
    if is_quantile_mode(m):
        return f"quantiles {100 * (0.5 - m):.3g}%..{100 * (0.5 + m):.3g}%"
    return f"+/-{m:g}"


# -- traversal rows shared by several figures -----------------------------------------------
def _traversal_rows(
    model: nn.Module,
    latents: list[int],
    cols: int,
    max_traversal: float,
    base: np.ndarray,
    mean: np.ndarray | None,
    std: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Tiles ``[R, cols, C, H, W]`` and values ``[R, cols]`` of traversals around ``base``
    ``[D]``: quantiles of the prior (``mean`` None) or of N(mean, std²), or base ± m."""
    if is_quantile_mode(max_traversal):
        centre = None if mean is None else mean[latents]
        spread = None if std is None else std[latents]
        values = traversal_values(cols, max_traversal, centre, spread)
    else:
        values = traversal_values(cols, max_traversal, base[latents])
    values = np.broadcast_to(values, (len(latents), cols))
    tiles = traverse(model, base, latents, values)
    return _numpy(tiles), values


def _posterior(model: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and standard deviation ``[D]`` of the single image ``x`` ``[1, C, H, W]``."""
    with torch.no_grad():
        posterior = model.encode(x.to(parameter_placement(model)[0]))
    return (
        posterior.mean[0].double().cpu().numpy(),
        posterior.std[0].double().cpu().numpy(),
    )


# -- figures --------------------------------------------------------------------------------
def data_figure(
    images: torch.Tensor | np.ndarray, rows: int, cols: int, upsample: int = 1
) -> Image.Image:
    """``rows`` × ``cols`` dataset images (the first rows·cols of ``images`` ``[N, C, H, W]``,
    floats in [0, 1] or uint8); a plain grid without labels."""
    _check_positive(rows=rows, cols=cols, upsample=upsample)
    images = np.asarray(images.detach().cpu() if isinstance(images, torch.Tensor) else images)
    if images.ndim != 4 or len(images) < rows * cols:
        raise ValueError(
            f"images must be [N, C, H, W] with N >= rows*cols = {rows * cols}, got shape "
            f"{list(images.shape)}"
        )
    tiles = images[: rows * cols].reshape(rows, cols, *images.shape[1:])
    return _compose(tiles, upsample=upsample, meta={"figure": "data"})


def samples_figure(
    model: nn.Module,
    rows: int,
    cols: int,
    generator: torch.Generator,
    temperature: float = 1.0,
    upsample: int = 1,
) -> Image.Image:
    """``rows`` × ``cols`` samples ``model.sample(n, temperature, generator)`` (for a
    Gaussian VAE the likelihood mean of z ~ N(0, T²I)), captioned with T and the seed."""
    _check_positive(rows=rows, cols=cols, upsample=upsample)
    images = _numpy(model.sample(rows * cols, temperature, generator))
    tiles = images.reshape(rows, cols, *images.shape[1:])
    seed = _seed(generator)
    caption = f"prior samples at temperature {temperature:g} (likelihood mean), seed {seed}"
    meta = {"figure": "samples", "temperature": temperature, "seed": seed}
    return _compose(tiles, caption=caption, upsample=upsample, meta=meta)


def reconstruction_figure(
    model: nn.Module, x: torch.Tensor, rows: int, cols: int, upsample: int = 1
) -> Image.Image:
    """The first rows/2 rows hold originals ``x[:rows·cols/2]``, the next rows/2 rows their
    reconstructions (same order): ``model.reconstruct``, the likelihood mean of the decoded
    posterior mean. ``rows`` must be even."""
    _check_positive(rows=rows, cols=cols, upsample=upsample)
    if rows % 2:
        raise ValueError(
            f"reconstruction_figure: rows must be even (half originals, half reconstructions), "
            f"got {rows}"
        )
    half = rows // 2
    x = _images(x, half * cols)
    with torch.no_grad():
        recon = model.reconstruct(x.to(parameter_placement(model)[0]))
    tiles = np.concatenate([_numpy(x), _numpy(recon)]).reshape(rows, cols, *x.shape[1:])
    labels = [["original"]] * half + [["reconstruction"]] * half
    caption = "reconstruction: likelihood mean of the decoded posterior mean"
    return _compose(
        tiles, labels, caption=caption, upsample=upsample, meta={"figure": "reconstruct"}
    )


def traversal_figure(
    model: nn.Module,
    kl_per_dim: KL | None,
    rows: int,
    cols: int,
    max_traversal: float = 2.0,
    x: torch.Tensor | None = None,
    order: str | Sequence[int] = "kl",
    factor_labels: FactorLabels | None = None,
    upsample: int = 1,
    generator: torch.Generator | None = None,
    base: str = "mean",
) -> Image.Image:
    """Latent traversals: one row per latent, ``cols`` values per row.

    Rows: the first ``rows`` latents of ``order`` (``"kl"``: descending ``kl_per_dim``,
    ``"index"``, or a list of latent indices), labelled "z3  KL 2.31" and the factor name
    from ``factor_labels`` (a list indexed by latent, or a dict) when given.

    Prior traversal (``x`` None): the other latents are 0; values ±m or quantiles of N(0, 1),
    shown above the columns. Posterior traversal: the other latents are the posterior mean of
    ``x[0]`` (``base="sample"``: a draw from q(z|x[0]) with ``generator``); latent j runs over
    μ_j ± m (headers: the offset) or over quantiles of N(μ_j, σ_j²) (headers: the
    probability); each row label ends with its value range.
    """
    _check_positive(rows=rows, cols=cols, upsample=upsample)
    if base not in ("mean", "sample"):
        raise ValueError(f'base must be "mean" or "sample", got {base!r}')
    d = model.latent_dim
    kl = _kl_array(kl_per_dim, d)
    latents = _ordered_latents(kl, order, d, rows)
    quantile = is_quantile_mode(max_traversal)
    if x is None:
        mean = std = None
        base_z = np.zeros(d)
    else:
        mean, std = _posterior(model, _images(x, 1))
        base_z = mean
        if base == "sample":
            where = "cpu" if generator is None else generator.device
            noise = torch.randn(d, generator=generator, dtype=torch.float64, device=where)
            base_z = mean + std * noise.cpu().numpy()
    tiles, values = _traversal_rows(model, latents, cols, max_traversal, base_z, mean, std)

    labels = [_latent_label(j, kl, factor_labels) for j in latents]
    if x is None:
        headers = [_number(v) for v in values[0]]
        what = f"prior traversal, other latents 0; values {_range_text(max_traversal)}"
    else:
        for parts, row in zip(labels, values, strict=True):
            parts.append(f"[{_number(row[0])}, {_number(row[-1])}]")
        if quantile:
            probs = 0.5 + max_traversal * (2 * np.linspace(0, 1, cols) - 1) if cols > 1 else [0.5]
            headers = [f"{100 * p:.3g}%" for p in probs]
            values_text = "column: quantile of N(mu_j, sigma_j^2)"
        else:
            headers = [_number(v, signed=True) for v in values[0] - base_z[latents[0]]]
            values_text = "column: offset from the base value"
        other = "posterior mean" if base == "mean" else "posterior sample"
        what = f"posterior traversal of image 0, other latents at its {other}; {values_text}"
    seed = _seed(generator) if (x is not None and base == "sample") else None
    meta = {
        "figure": "traversal",
        "posterior": x is not None,
        "max_traversal": max_traversal,
        "latents": latents,
        "values": values.tolist(),
        "seed": seed,
    }
    return _compose(tiles, labels, headers, what, upsample, meta)


def reconstruct_traverse_figure(
    model: nn.Module,
    x: torch.Tensor,
    kl_per_dim: KL | None,
    rows: int,
    cols: int,
    max_traversal: float = 2.0,
    posterior: bool = False,
    upsample: int = 1,
) -> Image.Image:
    """Row 1: the first ``cols`` images of ``x``; row 2: their reconstructions; then the
    ``rows`` latents of largest KL, each traversed over ``cols`` values (prior traversal, or
    around the posterior mean of ``x[0]`` with ``posterior``). The values are in the caption.
    """
    _check_positive(rows=rows, cols=cols, upsample=upsample)
    x = _images(x, cols)
    d = model.latent_dim
    kl = _kl_array(kl_per_dim, d)
    latents = _ordered_latents(kl, "kl" if kl is not None else "index", d, rows)
    with torch.no_grad():
        recon = model.reconstruct(x.to(parameter_placement(model)[0]))
    if posterior:
        mean, std = _posterior(model, x[:1])
        base_z = mean
    else:
        mean = std = None
        base_z = np.zeros(d)
    tiles, values = _traversal_rows(model, latents, cols, max_traversal, base_z, mean, std)
    tiles = np.concatenate([_numpy(x)[None], _numpy(recon)[None], tiles])

    labels = [["original"], ["reconstruction"]]
    labels += [_latent_label(j, kl, None) for j in latents]
    if posterior:
        for parts, row in zip(labels[2:], values, strict=True):
            parts.append(f"[{_number(row[0])}, {_number(row[-1])}]")
        what = (
            f"traversals around the posterior mean of the first image, {_range_text(max_traversal)}"
        )
    else:
        shown = ", ".join(_number(v) for v in values[0])
        what = f"prior traversals (other latents 0), values {shown}"
    caption = f"reconstruction: likelihood mean of the posterior mean. {what}"
    meta = {
        "figure": "reconstruct_traverse",
        "posterior": posterior,
        "max_traversal": max_traversal,
        "latents": latents,
        "values": values.tolist(),
    }
    return _compose(tiles, labels, None, caption, upsample, meta)


def traversal_gif_frames(
    model: nn.Module,
    x: torch.Tensor,
    kl_per_dim: KL | None,
    rows: int,
    cols: int,
    n_frames: int = 15,
    max_traversal: float = 2.0,
    upsample: int = 1,
) -> list[Image.Image]:
    """Frames of an animated grid: row r is the latent of r-th largest KL, column i the image
    ``x[i]``; each cell traverses that latent around that image's posterior mean (±m, or the
    quantiles of q(z_j|x_i)) along a ping-pong cycle that starts at (or, for some frame
    counts, half a step above) the posterior mean, so the first frame shows the
    reconstructions, and loops without a jump (:func:`pingpong`)."""
    _check_positive(rows=rows, cols=cols, n_frames=n_frames, upsample=upsample)
    x = _images(x, cols)
    d = model.latent_dim
    kl = _kl_array(kl_per_dim, d)
    latents = _ordered_latents(kl, "kl" if kl is not None else "index", d, rows)
    with torch.no_grad():
        posterior = model.encode(x.to(parameter_placement(model)[0]))
    mean = posterior.mean.double().cpu().numpy()  # [cols, D]
    std = posterior.std.double().cpu().numpy()
    phases = pingpong(n_frames, start=0.5)
    per_image = []
    for i in range(cols):  # image i: its latents × frames traversal [R, F, C, H, W]
        values = traversal_at(phases, max_traversal, mean[i, latents], std[i, latents])
        per_image.append(_numpy(traverse(model, mean[i], latents, values)))
    frame_tiles = np.stack(per_image, axis=2)  # [R, F, cols, C, H, W]
    labels = [_latent_label(j, kl, None) for j in latents]
    caption = (
        f"posterior traversal of each image (column), {_range_text(max_traversal)} around its "
        f"posterior mean"
    )
    meta = {"figure": "traversal_gif", "max_traversal": max_traversal, "latents": latents}
    return [
        _compose(frame_tiles[:, t], labels, None, caption, upsample, {**meta, "frame": t})
        for t in range(n_frames)
    ]


def temperature_figure(
    model: nn.Module,
    temperatures: Sequence[float],
    cols: int,
    generator: torch.Generator,
    upsample: int = 1,
) -> Image.Image:
    """One row of ``cols`` samples per temperature, labelled "T = 0.8". Every row starts from
    the same generator state, so a column shows the same noise at each temperature (for any
    model whose ``sample(n, temperature, generator)`` draws its noise first)."""
    _check_positive(cols=cols, upsample=upsample)
    if not temperatures:
        raise ValueError("temperature_figure: no temperatures given")
    state = generator.get_state()
    rows = []
    for t in temperatures:
        generator.set_state(state)
        rows.append(_numpy(model.sample(cols, t, generator)))
    tiles = np.stack(rows)
    seed = _seed(generator)
    labels = [[f"T = {t:g}"] for t in temperatures]
    caption = f"prior samples per temperature, the same noise in each column; seed {seed}"
    meta = {"figure": "temperatures", "temperatures": list(temperatures), "seed": seed}
    return _compose(tiles, labels, None, caption, upsample, meta)


def training_frame(
    model: nn.Module,
    cols: int = 10,
    max_traversal: float = 0.475,
    kl_per_dim: KL | None = None,
    step: int | None = None,
    upsample: int = 1,
) -> Image.Image:
    """One frame of the across-training GIF: prior traversal of every latent in index order
    (rows "z0", "z1", …; with their KL when ``kl_per_dim`` is given), ``cols`` values
    (default: quantiles 2.5%..97.5% of N(0, 1), i.e. ±1.96), captioned with ``step``.

    Without ``kl_per_dim`` every frame of a run has the same size."""
    _check_positive(cols=cols, upsample=upsample)
    d = model.latent_dim
    kl = _kl_array(kl_per_dim, d)
    latents = list(range(d))
    tiles, values = _traversal_rows(model, latents, cols, max_traversal, np.zeros(d), None, None)
    labels = [_latent_label(j, kl, None) for j in latents]
    headers = [_number(v) for v in values[0]]
    caption = "prior traversal" + ("" if step is None else f", step {step}")
    meta = {"figure": "training_frame", "max_traversal": max_traversal, "step": step}
    return _compose(tiles, labels, headers, caption, upsample, meta)
