"""One self-contained HTML page that explains a run: ``RUN_DIR/report.html``.

The page opens offline and can be mailed or archived on its own: the stylesheet and the one
small script are inline and every figure is embedded as a base64 ``data:`` URI (PNG or GIF).
It shows what was trained (model, objective, data, steps), the last logged losses, the
scores of ``metrics.json``, the figures of ``plots/`` (training curves first), the config
and the files of the run. Every piece of text from the run is escaped, so a config value or
a file name can hold anything.
"""

from __future__ import annotations

import base64
import html
import re
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vaelab import __version__
from vaelab.config import ConfigError, read_yaml
from vaelab.rundir import RunDir, atomic_write_text, open_run_dir

REPORT_FILE = "report.html"
FIGURE_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"GIF87a": "image/gif", b"GIF89a": "image/gif"}
CURVE_PREFIXES = ("loss", "kl")

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f;
       max-width: 1150px; margin: 1.5em auto; padding: 0 1em; }
h1 { margin-bottom: .1em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.sub { color: #555; margin-top: 0; } nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.facts th { width: 9em; } .k { color: #666; } .note { color: #666; font-size: 90%; }
pre { background: #f6f6f8; padding: .8em; overflow: auto; border: 1px solid #e3e3e6; }
code { background: #f3f3f5; padding: 0 .2em; }
figure { display: inline-block; margin: .5em 1em 1em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #e3e3e6; }
figcaption { color: #444; font-size: 90%; }
.none { color: #8a5a00; }
"""

# Lets a headless browser (or a curious reader's console) check that every embedded image
# decoded: after load, <body> carries data-images-ok and data-images-total.
_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.filter(function (img) { return img.complete && img.naturalWidth > 0; });
  document.body.dataset.imagesTotal = String(images.length);
  document.body.dataset.imagesOk = String(ok.length);
});
"""


def write_report(
    run_dir: str | Path,
    figures: Sequence[str | Path] | None = None,
    out: str | Path | None = None,
) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``RUN_DIR/report.html``)
    atomically and return its path.

    ``figures`` are the PNG/GIF files to embed; by default every ``.png`` and ``.gif`` in
    ``RUN_DIR/plots/`` and the ``grid.png`` of each of its folders. Figures whose names start
    with ``loss`` or ``kl`` are shown as training curves, the others under the headings of
    :data:`FIGURE_GROUPS`.
    """
    run = open_run_dir(run_dir)
    path = Path(out) if out is not None else run.path / REPORT_FILE
    atomic_write_text(path, render_report(run, figures, exclude=path))
    return path


def render_report(
    run: RunDir, figures: Sequence[str | Path] | None = None, exclude: Path | None = None
) -> str:
    """The report page as a string (``exclude``: a file left out of the file list, the
    report itself)."""
    cfg = _read_config(run)
    records = _train_records(run)
    name = run.path.resolve().name
    sections = [
        _overview(run, cfg, records),
        _metrics_section(run),
        *_figure_sections(run, _figure_paths(run, figures)),
        _section("config", "Config", f"<pre>{_e(_read_text(run.config))}</pre>"),
        _files_section(run, exclude),
    ]
    nav = " ".join(f'<a href="#{key}">{title}</a>' for key, title in _NAV)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(name)} — vaelab report</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f'<h1>{_e(name)}</h1>\n<p class="sub">{_e(_headline(cfg, records))}</p>\n'
        f"<nav>{nav}</nav>\n" + "\n".join(sections) + "\n"
        f'<p class="note">Written by vaelab {_e(__version__)} on '
        f"{time.strftime('%Y-%m-%d %H:%M:%S')} from {_e(str(run.path))}.</p>\n"
        f"<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )


_NAV = (
    ("overview", "Overview"),
    ("metrics", "Metrics"),
    ("curves", "Training curves"),
    ("figures", "Figures"),
    ("config", "Config"),
    ("files", "Files"),
)


# -- text helpers -------------------------------------------------------------------------------
def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def format_value(value: Any, max_items: int = 6) -> str:
    """A number or list as a short string: floats to 4 significant digits, lists cut after
    ``max_items`` entries with the count, dicts as ``key value`` pairs."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        shown = ", ".join(format_value(v, max_items) for v in value[:max_items])
        more = f", … ({len(value)} values)" if len(value) > max_items else ""
        return f"[{shown}{more}]"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {format_value(v, max_items)}" for k, v in value.items())
    return str(value)


def _pairs(values: Mapping[str, Any], skip: Sequence[str] = ()) -> str:
    """``key value`` pairs (escaped HTML), one per line."""
    return "<br>".join(
        f'<span class="k">{_e(k)}</span> {_e(format_value(v))}'
        for k, v in values.items()
        if k not in skip
    )


def _size(n: int) -> str:
    """Bytes in decimal units: ``512 B``, ``71.3 kB``, ``2.1 GB``."""
    if n < 1000:
        return f"{n} B"
    value, unit = n / 1000, "kB"
    for bigger in ("MB", "GB"):
        if round(value, 1) < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{value:.1f} {unit}"


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{key}">\n<h2>{_e(title)}</h2>\n{body}\n</section>'


def _none_yet(what: str, command: str) -> str:
    return f'<p class="none">{_e(what)} none yet: make them with <code>{_e(command)}</code>.</p>'


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as err:
        return f"(cannot read {path.name}: {err})"


def _read_config(run: RunDir) -> dict[str, Any]:
    """The config as plain data ({} if it does not parse: the page still shows its text)."""
    try:
        return read_yaml(run.config)
    except ConfigError:
        return {}


def _named(section: Any) -> tuple[str, dict[str, Any]]:
    """A config section ``{name: ..., **params}`` as (name, params without nulls)."""
    if not isinstance(section, Mapping):
        return "?", {}
    params = {k: v for k, v in section.items() if k != "name" and v is not None}
    return str(section.get("name", "?")), params


# -- overview -----------------------------------------------------------------------------------
def _train_records(run: RunDir) -> list[dict[str, Any]]:
    from vaelab.train.logging import read_log

    return read_log(run.train_log) if run.train_log.is_file() else []


def _steps_done(records: Sequence[Mapping[str, Any]]) -> int:
    return max((int(r.get("step", 0)) for r in records if r.get("split") == "train"), default=0)


def _headline(cfg: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> str:
    model, _ = _named(cfg.get("model"))
    objective, _ = _named(cfg.get("objective"))
    dataset, _ = _named(cfg.get("data"))
    target = (cfg.get("train") or {}).get("steps", "?")
    done = _steps_done(records)
    return (
        f"model {model} · objective {objective} · data {dataset} · "
        f"{format_value(done)} of {format_value(target)} steps"
    )


def _overview(run: RunDir, cfg: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> str:
    from vaelab.models.build import read_run_info

    try:
        info = read_run_info(run)
    except ConfigError:
        info = {}
    model, model_params = _named(cfg.get("model"))
    objective, objective_params = _named(cfg.get("objective"))
    data = cfg.get("data") or {}
    train = cfg.get("train") or {}
    data_text = f"{data.get('name', '?')}, split {data.get('split', '?')}"
    if info:
        shape = "×".join(str(s) for s in info.get("image_shape", []))
        data_text += f" ({format_value(info.get('dataset_size', '?'))} images of {shape})"
    rows = [
        ("Description", cfg.get("description") or "—"),
        ("Model", f"{model} — {format_value(model_params)}"),
        ("Objective", f"{objective} — {format_value(objective_params)}"),
        ("Data", data_text),
        (
            "Training",
            f"{format_value(_steps_done(records))} of {format_value(train.get('steps', '?'))} "
            f"steps, batch {train.get('batch_size', '?')}, {train.get('optimizer', '?')} "
            f"lr {format_value(train.get('lr', '?'))}, seed {cfg.get('seed', '?')}",
        ),
        (
            "Weights",
            f"model.safetensors, {_size(run.weights.stat().st_size)}"
            if run.weights.is_file()
            else "not written yet: training has not finished",
        ),
    ]
    if info:
        rows.append(
            (
                "Software",
                f"vaelab {info.get('vaelab_version', '?')}, torch {info.get('torch_version', '?')}"
                f", device {info.get('device', '?')}, {info.get('world_size', 1)} process(es)",
            )
        )
    facts = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    body = f'<table class="facts">{facts}</table>\n<h3>Last logged values</h3>\n'
    body += _last_logged(records)
    return _section("overview", "Overview", body)


def _last_logged(records: Sequence[Mapping[str, Any]]) -> str:
    """The newest train and held-out records of ``train_log.jsonl`` (metrics have their own
    table)."""
    last: dict[str, Mapping[str, Any]] = {}
    for record in records:
        split = str(record.get("split", ""))
        if not split.startswith("metric_"):
            last[split] = record
    if not last:
        return '<p class="none">Nothing logged yet (train_log.jsonl is empty or missing).</p>'
    rows = "".join(
        f'<tr><td>{_e(split)}</td><td class="num">{_e(format_value(r.get("step")))}</td>'
        f"<td>{_pairs(r, skip=('step', 'split', 'time'))}</td></tr>"
        for split, r in last.items()
    )
    return f"<table><tr><th>split</th><th>step</th><th>values</th></tr>{rows}</table>"


# -- metrics ------------------------------------------------------------------------------------
def _metrics_section(run: RunDir) -> str:
    from vaelab.metrics import MetricError
    from vaelab.metrics.evaluate import read_metrics

    command = f"vaelab evaluate {shlex.quote(str(run.path))}"
    try:
        data = read_metrics(run.metrics)
    except MetricError as err:  # a corrupt metrics.json: say so, show the rest of the run
        return _section("metrics", "Metrics", f'<p class="none">{_e(err)}</p>')
    results = data["results"]
    if not results:
        return _section("metrics", "Metrics", _none_yet("Metrics:", command))
    head = "".join(
        f"<th>{h}</th>"
        for h in ("metric", "split", "representation", "values", "protocol", "step", "seconds")
    )
    rows = "".join(_metric_row(entry) for entry in results)
    body = f"<table>\n<tr>{head}</tr>\n{rows}</table>\n"
    updated = _e(data.get("updated", "?"))
    body += f'<p class="note">Updated {updated}; recompute with <code>{_e(command)}</code>.</p>'
    return _section("metrics", "Metrics", body)


def _metric_row(entry: Mapping[str, Any]) -> str:
    protocol = entry.get("protocol") or {}
    values = _pairs(entry.get("values") or {})
    notes = entry.get("notes") or {}
    if notes:
        values += f'<div class="note">{_pairs(notes)}</div>'
    cells = [
        f"<td><b>{_e(entry.get('metric', '?'))}</b></td>",
        f"<td>{_e(protocol.get('split', '—'))}</td>",
        f"<td>{_e(protocol.get('representation', '—'))}</td>",
        f"<td>{values}</td>",
        f"<td>{_pairs(protocol, skip=('split', 'representation'))}</td>",
        f'<td class="num">{_e(format_value(entry.get("step")))}</td>',
        f'<td class="num">{_e(format_value(entry.get("seconds")))}</td>',
    ]
    return "<tr>" + "".join(cells) + "</tr>\n"


# -- figures ------------------------------------------------------------------------------------
def _figure_paths(run: RunDir, figures: Sequence[str | Path] | None) -> list[Path]:
    """The figures given, or the PNG/GIF files directly in ``plots/`` and the ``grid.png`` of
    each of its folders (which hold one file per image: samples, reconstructions, the
    training GIF's frames; the grid stands for them)."""
    if figures is not None:
        return [Path(f) for f in figures]
    if not run.plots.is_dir():
        return []
    found = [
        p
        for p in [*run.plots.iterdir(), *run.plots.glob("*/grid.png")]
        if p.suffix.lower() in (".png", ".gif") and not p.name.startswith(".") and p.is_file()
    ]  # names starting with "." are unfinished atomic writes
    return sorted(found)


FIGURE_GROUPS = (
    ("Data", ("data",)),
    ("Latent traversals", ("travers",)),
    ("Reconstructions", ("recon",)),
    ("Samples", ("sample", "temperature")),
    ("Across training", ("training",)),
)
"""Headings of the figures section and the words that put a figure under them (the first
match in this order wins; a figure that matches none is under "Other figures")."""


def _figure_group(path: Path) -> str:
    """``loss*`` / ``kl*`` are training curves; others go by :data:`FIGURE_GROUPS`, matched
    on the file name or, for a folder's ``grid.png``, the folder's name."""
    name = (path.parent.name if path.name == "grid.png" else path.name).lower()
    if name.startswith(CURVE_PREFIXES):
        return "Training curves"
    for heading, words in FIGURE_GROUPS:
        if any(word in name for word in words):
            return heading
    return "Other figures"


def _figure_sections(run: RunDir, paths: Sequence[Path]) -> list[str]:
    command = f"vaelab plot {shlex.quote(str(run.path))} all"
    groups: dict[str, list[Path]] = {}
    for path in paths:
        groups.setdefault(_figure_group(path), []).append(path)
    curves = groups.pop("Training curves", [])
    curves.sort(key=lambda p: (not p.name.lower().startswith("loss"), p))  # losses, then KL
    curves_body = "\n".join(_figure(run, p) for p in curves) or _none_yet("Curves:", command)
    order = [heading for heading, _ in FIGURE_GROUPS] + ["Other figures"]
    others = "\n".join(
        f"<h3>{_e(heading)}</h3>\n" + "\n".join(_figure(run, p) for p in groups[heading])
        for heading in order
        if heading in groups
    )
    return [
        _section("curves", "Training curves", curves_body),
        _section("figures", "Figures", others or _none_yet("Figures:", command)),
    ]


def _figure(run: RunDir, path: Path) -> str:
    data = path.read_bytes()
    mime = next((m for magic, m in FIGURE_TYPES.items() if data.startswith(magic)), None)
    if mime is None:
        raise ValueError(f"{path}: not a PNG or GIF file; the report embeds only those")
    try:
        shown = path.resolve().relative_to(run.path.resolve())
    except ValueError:
        shown = Path(path.name)
    named = f"{path.parent.name}/grid" if path.name == "grid.png" else path.stem
    caption = re.sub(r"[_\-]+", " ", named)
    source = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return (
        f'<figure><img src="{source}" alt="{_e(caption)}">'
        f"<figcaption>{_e(caption)} <code>{_e(shown)}</code></figcaption></figure>"
    )


# -- files --------------------------------------------------------------------------------------
def _files_section(run: RunDir, exclude: Path | None) -> str:
    skip = exclude.resolve() if exclude is not None else None
    files = sorted(
        p
        for p in run.path.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.resolve() != skip
    )
    rows = "".join(
        f"<tr><td><code>{_e(p.relative_to(run.path))}</code></td>"
        f'<td class="num">{_e(_size(p.stat().st_size))}</td>'
        f"<td>{_e(time.strftime('%Y-%m-%d %H:%M', time.localtime(p.stat().st_mtime)))}</td></tr>"
        for p in files
    )
    body = f"<table><tr><th>file</th><th>size</th><th>modified</th></tr>{rows}</table>"
    return _section("files", f"Files ({len(files)})", body)
