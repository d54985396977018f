"""The HTML run report and the latent export, on a tiny real run."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vaelab
from train_support import mlp_run_config
from vaelab.cli import main
from vaelab.config import config_from_dict
from vaelab.data import load_dataset
from vaelab.models.build import load_run_model
from vaelab.train.loop import train
from vaelab.viz.latents import encode_split, read_latents, write_latents
from vaelab.viz.report import format_value, write_report

NASTY = '<script>alert("x")</script> & <b>'
VOID = {"meta", "br", "img", "hr", "input", "link", "col", "area", "base", "wbr", "source"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A 4-step run with two metrics in metrics.json and, in plots/, four figures and a
    folder of per-image files with their grid.png."""
    cfg = mlp_run_config(description=NASTY)
    path = train(config_from_dict(cfg), out=tmp_path_factory.mktemp("runs") / "run").run_dir
    argv = ["evaluate", str(path), "--metrics", "mig,elbo",
            "--set", "mig.num_points=200", "--set", "elbo.num_images=32"]  # fmt: skip
    assert main(argv) == 0
    plots = path / "plots"
    Image.new("L", (40, 30), 200).save(plots / "loss_curve.png")
    Image.new("L", (30, 30), 100).save(plots / "kl_curve.png")
    Image.new("RGB", (20, 20), (10, 120, 200)).save(plots / "samples_prior.png")
    frames = [Image.new("L", (16, 16), v) for v in (0, 128, 255)]
    frames[0].save(plots / "traversal_z0.gif", save_all=True, append_images=frames[1:], loop=0)
    (plots / "samples_t1.0").mkdir()
    for name in ("sample_00000.png", "sample_00001.png", "grid.png"):
        Image.new("L", (8, 8), 50).save(plots / "samples_t1.0" / name)
    return path


class Page(HTMLParser):
    """Tags checked for balance, <img> sources, table rows as lists of cell texts, and all
    attribute values."""

    def __init__(self):
        super().__init__()
        self.open: list[str] = []
        self.images: list[str] = []
        self.rows: list[list[str]] = []
        self.attrs: list[str] = []
        self.unbalanced: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.attrs += [v or "" for _, v in attrs]
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = []
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if not self.open or self.open.pop() != tag:
            self.unbalanced.append(tag)
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text())
    page.close()
    assert not page.unbalanced and page.open == [], (page.unbalanced, page.open)
    return page


def decode_image(src: str) -> tuple[bytes, Image.Image]:
    match = re.fullmatch(r"data:image/(png|gif);base64,([A-Za-z0-9+/=]+)", src)
    assert match, src[:60]
    data = base64.b64decode(match.group(2), validate=True)
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == match.group(1).upper()
    return data, image


def test_report_embeds_every_figure_and_shows_the_run(run):
    path = write_report(run)
    assert path == run / "report.html"
    text = path.read_text()
    page = parse(path)
    decoded = [decode_image(src) for src in page.images]
    # curves first, then the figure groups in their fixed order; of a folder, only its grid
    order = ["loss_curve.png", "kl_curve.png", "traversal_z0.gif", "samples_prior.png",
             "samples_t1.0/grid.png"]  # fmt: skip
    assert [d for d, _ in decoded] == [(run / "plots" / n).read_bytes() for n in order]
    assert decoded[2][1].n_frames == 3
    headings = ["Training curves</h2>", "loss curve", "Latent traversals</h3>", "Samples</h3>"]
    assert [text.index(h) for h in headings] == sorted(text.index(h) for h in headings)
    assert "samples t1.0/grid" in text
    assert "http://" not in text and "https://" not in text and "<link" not in text
    assert all(not a.startswith(("http", "//")) for a in page.attrs)


def test_report_metrics_table_holds_the_formatted_values(run):
    page = parse(write_report(run))
    results = json.loads((run / "metrics.json").read_text())["results"]
    rows = {row[0]: row for row in page.rows if row and row[0] in ("mig", "elbo")}
    assert set(rows) == {"mig", "elbo"}
    for entry in results:
        _, split, representation, values, _, step, seconds = rows[entry["metric"]]
        assert (split, representation, step) == ("train", "mean", "4")
        assert seconds == format_value(entry["seconds"])
        for name, value in entry["values"].items():
            assert f"{name} {format_value(value)}" in values
    assert "num_points 200" in rows["mig"][4] and "seed 0" in rows["mig"][4]
    assert "kl_per_dim [" in rows["elbo"][3]  # a list value, shown shortened


def test_report_config_and_text_are_escaped(run):
    text = write_report(run).read_text()
    assert NASTY not in text and "<script>alert" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;" in text
    config = (run / "config.yaml").read_text()
    assert "latent_dim: 4" in config and "latent_dim: 4" in text
    assert "model mlp · objective betah · data dsprites-procedural · 4 of 4 steps" in text
    files = [row[0] for row in parse(run / "report.html").rows]
    for name in ("config.yaml", "model.safetensors", "metrics.json", "plots/loss_curve.png"):
        assert name in files
    assert "report.html" not in files


def test_report_of_a_bare_run_says_what_to_run(run, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run / "config.yaml", bare / "config.yaml")
    text = write_report(bare).read_text()
    assert f"vaelab evaluate {bare}" in text and f"vaelab plot {bare} all" in text
    assert "none yet" in text and "training has not finished" in text
    assert "<img" not in text


def test_report_embeds_only_the_figures_given(run, tmp_path):
    out = tmp_path / "one.html"
    path = write_report(run, figures=[run / "plots" / "traversal_z0.gif"], out=out)
    assert path == out
    page = parse(out)
    assert len(page.images) == 1 and decode_image(page.images[0])[1].format == "GIF"
    assert "Curves: none yet" in out.read_text()
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="not a PNG or GIF"):
        write_report(run, figures=[tmp_path / "notes.png"], out=out)


def test_format_value():
    assert format_value(0.024235267) == "0.02424"
    assert format_value(2844.2294921875) == "2844"
    assert format_value(1234567) == "1,234,567"
    assert format_value(list(range(8))) == "[0, 1, 2, 3, 4, 5, … (8 values)]"
    assert format_value({"a": 0.5, "b": None}) == "a 0.5, b None"


@pytest.fixture(scope="module")
def browser() -> str:
    """A Chromium on PATH (the test installs none); set up before the run, so a skip is cheap."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    pytest.skip("no Chromium on PATH (chromium, chromium-browser, google-chrome)")


def test_report_renders_in_headless_chromium(browser, run, tmp_path):
    page = write_report(run).resolve().as_uri()
    flags = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--virtual-time-budget=5000"]
    dom = subprocess.run(
        [*flags, "--dump-dom", page], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    assert 'data-images-total="5"' in body and 'data-images-ok="5"' in body, body
    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1200,1600", page],
        capture_output=True,
        timeout=120,
        check=True,
    )
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == (1200, 1600)


# -- latents ------------------------------------------------------------------------------------
def test_encode_split_matches_the_encoder_and_keeps_the_factors(run):
    model, _ = load_run_model(run)
    dataset = load_dataset("dsprites-procedural")
    arrays = encode_split(model, dataset, batch_size=16, device="cpu", limit=40)
    assert arrays["mean"].shape == arrays["log_var"].shape == (40, 4)
    assert arrays["mean"].dtype == np.float32 and arrays["log_var"].dtype == np.float32
    rows = arrays["rows"]  # 40 distinct rows drawn with the seed, sorted
    assert len(np.unique(rows)) == 40 and (np.diff(rows) > 0).all() and rows[-1] > 40
    images = torch.as_tensor(np.asarray(dataset.images[rows]), dtype=torch.float32)
    with torch.no_grad():
        posterior = model.encode(images)  # dSprites is {0, 1}: "float" keeps the values
    np.testing.assert_allclose(arrays["mean"], posterior.mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(arrays["log_var"], posterior.log_var.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(arrays["factors"], dataset.factors[rows])
    again = encode_split(model, dataset, batch_size=7, device="cpu", limit=40)
    np.testing.assert_array_equal(again["rows"], rows)  # the same draw, whatever the batching
    assert arrays["factor_names"].tolist() == list(dataset.factor_names)
    assert "labels" not in arrays


def test_latents_file_loads_without_pickle(run, tmp_path):
    model, _ = load_run_model(run)
    arrays = encode_split(model, load_dataset("dsprites-procedural"), 10, "cpu", limit=24)
    path = tmp_path / "latents"  # no .npz suffix: the name is kept as given
    assert write_latents(path, arrays, {"run": str(run), "split": "train"}) == path
    with np.load(path, allow_pickle=False) as data:
        assert set(data.files) == {"mean", "log_var", "rows", "factors", "factor_names",
                                   "factor_sizes", "meta"}  # fmt: skip
        assert data["factor_names"].dtype.kind == "U"
        assert data["factor_sizes"].tolist() == [3, 6, 40, 32, 32]
        meta = json.loads(str(data["meta"]))
        np.testing.assert_array_equal(data["mean"], arrays["mean"])
    assert meta == {"run": str(run), "split": "train", "vaelab_version": vaelab.__version__}
    read, meta_again = read_latents(path)
    assert meta_again == meta and set(read) == set(arrays)
    assert [p.name for p in tmp_path.iterdir()] == ["latents"]  # no temporary file left


def test_write_latents_refuses_what_np_load_could_not_read(tmp_path):
    with pytest.raises(ValueError, match="dtype object"):
        write_latents(tmp_path / "x.npz", {"names": np.array(["a", None])}, {})
    with pytest.raises(ValueError, match="reserved"):
        write_latents(tmp_path / "x.npz", {"meta": np.zeros(2)}, {})
    assert not list(tmp_path.iterdir())  # nothing half-written
