"""Training curves from ``train_log.jsonl`` records, drawn with matplotlib into Pillow images.

Records are the dicts of :func:`vaelab.train.logging.read_log`: ``step``, ``split``
(``"train"``, ``"eval"`` or ``"metric_<name>"``) and the logged values. Non-finite numbers
are logged as strings (``"nan"``, ``"inf"``) and read back as floats. A resumed run logs some
steps again; the later record of a (split, step) replaces the earlier one.

matplotlib is imported inside the functions and used through its object API with the Agg
canvas, so importing this module neither loads matplotlib nor changes its global backend.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from PIL import Image

# logged values that are not loss terms in nats
NOT_NATS = frozenset(
    {
        "step",
        "split",
        "time",
        "lr",
        "grad_norm",
        "images_per_s",
        "skipped",
        "skipped_total",
        "disc_acc",
        "images",  # how many images an evaluation averaged over
        "elbo",  # −(recon + kl): a mirror of the terms shown, on another scale
    }
)
ELBO_PANEL = ("loss", "recon")  # the large terms, drawn apart from the regularisers
SPLITS = ("train", "eval")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _by_split(records: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """``train``/``eval`` records by increasing step, one per step (the last logged)."""
    latest: dict[str, dict[int, Mapping[str, Any]]] = {split: {} for split in SPLITS}
    for record in records:
        split = record.get("split", "train")
        step = record.get("step")
        if split in latest and isinstance(step, int):
            latest[split][step] = record
    return {split: [steps[s] for s in sorted(steps)] for split, steps in latest.items()}


def _scalar_series(records: Sequence[Mapping[str, Any]], name: str) -> tuple[list, list]:
    steps, values = [], []
    for record in records:
        value = _number(record.get(name))
        if value is not None:
            steps.append(record["step"])
            values.append(value)
    return steps, values


def _is_loss_term(name: str, value: Any) -> bool:
    return (
        name not in NOT_NATS
        and not name.endswith(("_weight", "_loss"))
        and _number(value) is not None
    )


def _to_image(figure: Any) -> Image.Image:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def loss_curves_figure(records: Sequence[Mapping[str, Any]]) -> Image.Image:
    """Loss terms (nats per image) against the optimizer step: ``loss`` and ``recon`` on the
    left, every other term (``kl``, ``tc``, ``mi``, ``dwkl``, ``disc``, ``capacity``, …) on
    the right; training solid, evaluation dashed in the same colour.

    Not drawn: ``elbo`` (= −(recon + kl)), schedule weights, the learning rate, gradient
    norms, throughput and skip counts.
    """
    series = _by_split(records)
    names: list[str] = []
    for record in series["train"] + series["eval"]:
        for name, value in record.items():
            if name not in names and _is_loss_term(name, value):
                names.append(name)
    if not names:
        raise ValueError(
            "loss_curves_figure: the log has no train or eval loss terms (is train_log.jsonl "
            "empty?)"
        )
    panels = [
        ("ELBO terms", [n for n in names if n in ELBO_PANEL]),
        ("regularisers", [n for n in names if n not in ELBO_PANEL]),
    ]
    panels = [(title, group) for title, group in panels if group]
    figure = _new_figure(5.0 * len(panels), 3.6)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, group) in zip(axes, panels, strict=True):
        for i, name in enumerate(group):
            colour = f"C{i % 10}"
            for split, style in zip(SPLITS, ("-", "--"), strict=True):
                steps, values = _scalar_series(series[split], name)
                if steps:
                    ax.plot(steps, values, style, color=colour, label=f"{name} ({split})")
        ax.set(title=title, xlabel="step", ylabel="nats per image")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _to_image(figure)


def kl_curves_figure(records: Sequence[Mapping[str, Any]]) -> Image.Image:
    """KL(q(z_j|x) ‖ N(0, 1)) of every latent j against the step, one line "z<j>" each,
    the legend ordered by final training KL (largest first); evaluation values dashed."""
    series = _by_split(records)
    per_split = {split: _kl_rows(series[split]) for split in SPLITS}
    steps, rows = per_split["train"] if per_split["train"][0] else per_split["eval"]
    if not steps:
        raise ValueError(
            "kl_curves_figure: the log has no kl_per_dim values (is train_log.jsonl empty?)"
        )
    latent_dim = len(rows[-1])
    final = [rows[-1][j] if math.isfinite(rows[-1][j]) else -math.inf for j in range(latent_dim)]
    order = sorted(range(latent_dim), key=lambda j: (-final[j], j))
    figure = _new_figure(6.4, 4.0)
    ax = figure.subplots()
    for j in order:
        colour = f"C{j % 10}" if latent_dim <= 10 else None
        line = ax.plot(steps, [row[j] for row in rows], "-", color=colour, label=f"z{j}")[0]
        eval_steps, eval_rows = per_split["eval"]
        if eval_steps and per_split["train"][0]:
            ax.plot(eval_steps, [row[j] for row in eval_rows], "--", color=line.get_color())
    dashed = " (dashed: eval)" if per_split["eval"][0] and per_split["train"][0] else ""
    ax.set(title=f"KL per latent{dashed}", xlabel="step", ylabel="KL (nats)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncols=1 + latent_dim // 12, title="by final KL")
    return _to_image(figure)


def _kl_rows(records: Sequence[Mapping[str, Any]]) -> tuple[list[int], list[list[float]]]:
    """Steps and ``kl_per_dim`` rows [D] of the records that log one."""
    steps, rows = [], []
    for record in records:
        kl = record.get("kl_per_dim")
        if isinstance(kl, list) and kl:
            values = [_number(v) for v in kl]
            steps.append(record["step"])
            rows.append([math.nan if v is None else v for v in values])
    if rows and len({len(r) for r in rows}) > 1:
        raise ValueError("kl_curves_figure: kl_per_dim changes length within the log")
    return steps, rows
