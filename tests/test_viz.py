"""Figures, traversals, GIFs and training curves (vaelab.viz): values, layouts, pixels."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from vaelab.registry import MODELS, OBJECTIVES
from vaelab.viz import figures
from vaelab.viz.curves import kl_curves_figure, loss_curves_figure
from vaelab.viz.gif import read_gif_frames, save_gif
from vaelab.viz.grid import as_uint8, contrasting_pad_value, image_grid, save_png
from vaelab.viz.traversal import latent_order, pingpong, traversal_values, traverse

SHAPE = (1, 6, 5)  # non-square, so rows and columns cannot be confused
D = 4
DEAD = 2  # the latent the decoder ignores


def phi(v: float) -> float:
    """Standard normal CDF via math.erf (independent of the scipy code under test)."""
    return 0.5 * (1.0 + math.erf(v / math.sqrt(2.0)))


@pytest.fixture(scope="module")
def model():
    """A small MLP VAE whose decoder ignores latent ``DEAD`` (its input weights are 0)."""
    torch.manual_seed(0)
    objective = OBJECTIVES.build("vae", dataset_size=100)
    vae = MODELS.build("mlp", image_shape=SHAPE, objective=objective, latent_dim=D, hidden=(16,))
    with torch.no_grad():
        vae.decoder.body[0].weight[:, DEAD] = 0.0
        vae.decoder.out.weight.mul_(8.0)  # strong dependence on the live latents
    return vae.eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(12, *SHAPE, generator=torch.Generator().manual_seed(1))


KL = [0.5, 2.3, 0.0, 1.1]  # latent order by KL: 1, 3, 0, 2


def tile(figure: Image.Image, row: int, col: int) -> np.ndarray:
    """The pixels [h, w, 3] of tile (row, col), located from the figure's grid geometry."""
    g = figure.info["grid"]
    (h, w), pad = g["tile"], g["padding"]
    top, left = g["top"] + pad + row * (h + pad), g["left"] + pad + col * (w + pad)
    return np.asarray(figure)[top : top + h, left : left + w]


def expected_tile(image: torch.Tensor, upsample: int = 1) -> np.ndarray:
    """How one [C, H, W] image in [0, 1] must appear: uint8, enlarged, grey as RGB."""
    pixels = as_uint8(image.numpy()).repeat(upsample, 1).repeat(upsample, 2).transpose(1, 2, 0)
    return pixels.repeat(3, axis=2) if pixels.shape[2] == 1 else pixels


def grid_size(rows: int, cols: int, upsample: int, pad: int = 2) -> tuple[int, int]:
    """(width, height) of the tile grid alone."""
    h, w = SHAPE[1] * upsample, SHAPE[2] * upsample
    return cols * (w + pad) + pad, rows * (h + pad) + pad


# -- traversal values, order, phases --------------------------------------------------------
def test_absolute_values_centre_on_the_base():
    np.testing.assert_allclose(traversal_values(5, 2.0), [-2, -1, 0, 1, 2])
    per_latent = traversal_values(3, 1.5, mean=np.array([0.0, 1.0]), std=np.array([9.0, 9.0]))
    np.testing.assert_allclose(per_latent, [[-1.5, 0, 1.5], [-0.5, 1.0, 2.5]])  # std unused
    assert traversal_values(1, 2.0, mean=0.3).tolist() == [0.3]


@pytest.mark.parametrize("m", [0.475, 0.25, 0.01])
def test_quantile_values_ascend_and_cover_2m(m):
    prior = traversal_values(7, m)
    assert np.all(np.diff(prior) > 0)
    assert phi(prior[-1]) - phi(prior[0]) == pytest.approx(2 * m, abs=1e-9)
    assert phi(prior[0]) == pytest.approx(0.5 - m, abs=1e-9)
    mean, std = np.array([1.0, -3.0]), np.array([0.5, 2.0])
    post = traversal_values(7, m, mean, std)
    assert post.shape == (2, 7)
    for j in range(2):  # quantiles of N(mean_j, std_j²): ascending, centred on the mean
        assert np.all(np.diff(post[j]) > 0)
        z = (post[j] - mean[j]) / std[j]
        assert phi(z[-1]) - phi(z[0]) == pytest.approx(2 * m, abs=1e-9)
        assert post[j, 3] == pytest.approx(mean[j])


def test_prior_quantiles_at_0475_are_196():
    values = traversal_values(10, 0.475)
    assert values[0] == pytest.approx(-1.959964, abs=1e-6)
    assert values[-1] == pytest.approx(1.959964, abs=1e-6)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, True])
def test_traversal_values_reject_bad_ranges(bad):
    with pytest.raises(ValueError, match="max_traversal"):
        traversal_values(5, bad)


def test_quantile_mode_needs_positive_std():
    with pytest.raises(ValueError, match="standard deviation"):
        traversal_values(5, 0.4, mean=np.zeros(2), std=np.array([1.0, 0.0]))


def test_latent_order_by_kl_breaks_ties_by_index():
    assert latent_order([1.0, 3.0, 3.0, 0.0, math.nan, 1.0]) == [1, 2, 0, 5, 3, 4]
    assert latent_order([0.0, 0.0, 0.0]) == [0, 1, 2]
    assert latent_order([5.0, 1.0], by="index") == [0, 1]
    with pytest.raises(ValueError, match="latent order"):
        latent_order([1.0], by="factor")


@pytest.mark.parametrize("n", [4, 15, 16])
def test_pingpong_is_a_symmetric_loop_from_the_trough(n):
    phases = pingpong(n)
    assert np.all((phases >= 0) & (phases <= 1))
    steps = np.abs(np.diff(np.append(phases, phases[0])))  # the last frame, then the first
    assert np.all(steps <= 2 / n + 1e-12) and np.all(steps > 0)  # no jump, no repeat
    if n % 2 == 0:  # turning points are frames: symmetric, constant speed
        assert phases[0] == 0.0 and phases[n // 2] == 1.0
        np.testing.assert_allclose(phases[1:], phases[1:][::-1])  # p_k = p_(n-k)
        np.testing.assert_allclose(steps, 2 / n)
    else:  # a quarter step from the turning points
        assert phases.min() == pytest.approx(1 / (2 * n))
        assert phases.max() == pytest.approx(1 - 1 / (2 * n))
    np.testing.assert_allclose(pingpong(4), [0, 0.5, 1, 0.5])


@pytest.mark.parametrize("n", range(1, 19))
def test_pingpong_from_the_centre_never_repeats_a_frame(n):
    phases = pingpong(n, start=0.5)
    steps = np.abs(np.diff(np.append(phases, phases[0])))
    assert n == 1 or (np.all(steps > 1e-9) and phases[1] > phases[0])  # rising, no repeat
    assert abs(phases[0] - 0.5) <= 1 / n + 1e-12  # at most half a step (1/n) from the centre
    if n % 4 != 2:
        assert phases[0] == pytest.approx(0.5)


def test_traverse_sets_one_latent_per_row(model):
    base = torch.tensor([0.1, -0.2, 0.3, 0.4])
    values = np.array([[-1.0, 0.0, 2.0], [0.5, 0.6, 0.7]])
    out = traverse(model, base, [0, 3], values, batch_size=2)  # batches of 2 codes
    assert out.shape == (2, 3, *SHAPE)
    z = base.repeat(3, 1)
    z[:, 3] = torch.tensor([0.5, 0.6, 0.7])
    with torch.no_grad():
        expected = model.likelihood.mean(model.decode(z))
    torch.testing.assert_close(out[1], expected)


# -- grids ----------------------------------------------------------------------------------
def test_pad_value_contrasts_with_the_background():
    dark = np.zeros((2, 1, 6, 6), np.float32)
    dark[:, :, 2:4, 2:4] = 1.0  # a white sprite on black
    assert contrasting_pad_value(dark) == 255
    assert contrasting_pad_value(1.0 - dark) == 0
    assert contrasting_pad_value(np.ones((1, 1, 4, 4), np.uint8)) == 0  # binary 0/1 data


def test_image_grid_upsamples_by_pixel_repetition():
    image = np.arange(6, dtype=np.uint8).reshape(1, 1, 2, 3) * 40
    grid = image_grid(image, ncols=1, padding=1, pad_value=7, upsample=2)
    assert grid.shape == (2 * 2 + 2, 3 * 2 + 2, 1)
    np.testing.assert_array_equal(grid[1:5, 1:7, 0], image[0, 0].repeat(2, 0).repeat(2, 1))
    assert grid[0, 0, 0] == 7
    with pytest.raises(ValueError, match="upsample"):
        image_grid(image, upsample=0)


def test_save_png_stores_figure_metadata(tmp_path, model):
    figure = figures.samples_figure(model, 1, 2, torch.Generator().manual_seed(42))
    save_png(tmp_path / "s.png", figure)
    with Image.open(tmp_path / "s.png") as saved:
        assert json.loads(saved.info["vaelab"])["seed"] == 42
        assert saved.size == figure.size


# -- figures ------------------------------------------------------------------------------
def test_data_figure_geometry_and_pixels(images):
    figure = figures.data_figure(images, rows=2, cols=3, upsample=3)
    assert figure.mode == "RGB"
    assert figure.size == grid_size(2, 3, 3)  # no labels: the grid alone
    assert tile(figure, 1, 2).tolist() == expected_tile(images[5], 3).tolist()
    pad = contrasting_pad_value(images[:6].numpy())
    assert np.asarray(figure)[0, 0].tolist() == [pad] * 3


def test_samples_figure_layout(model):
    figure = figures.samples_figure(model, 2, 3, torch.Generator().manual_seed(0), upsample=2)
    width, height = grid_size(2, 3, 2)
    assert figure.width == width
    assert figure.height > height  # a caption underneath
    assert figure.info["vaelab"]["seed"] == 0
    again = figures.samples_figure(model, 2, 3, torch.Generator().manual_seed(0), upsample=2)
    assert np.array_equal(np.asarray(figure), np.asarray(again))


def test_reconstruction_figure(model, images):
    with pytest.raises(ValueError, match="even"):
        figures.reconstruction_figure(model, images, rows=3, cols=2)
    figure = figures.reconstruction_figure(model, images, rows=4, cols=3)
    g = figure.info["grid"]
    assert (g["rows"], g["cols"]) == (4, 3)
    width, _ = grid_size(4, 3, 1)
    assert figure.width == g["left"] + width and g["left"] > 0  # row labels on the left
    recon = model.reconstruct(images[:6])
    assert tile(figure, 1, 0).tolist() == expected_tile(images[3]).tolist()
    assert tile(figure, 3, 2).tolist() == expected_tile(recon[5]).tolist()
    labels = np.asarray(figure)[:, : g["left"]]
    assert (labels < 128).any()  # text was drawn in the margin


def _row_is_constant(figure: Image.Image, row: int, cols: int) -> bool:
    first = tile(figure, row, 0)
    return all(np.array_equal(first, tile(figure, row, k)) for k in range(1, cols))


def test_prior_traversal_rows_of_dead_and_live_latents(model):
    cols = 5
    figure = figures.traversal_figure(model, KL, rows=D, cols=cols, max_traversal=2.0, upsample=2)
    g = figure.info["grid"]
    assert figure.info["vaelab"]["latents"] == [1, 3, 0, 2]  # by KL
    width, height = grid_size(D, cols, 2)
    assert figure.width == g["left"] + width
    assert figure.height > g["top"] + height and g["top"] > 0  # headers and a caption
    assert _row_is_constant(figure, 3, cols)  # latent 2: ignored by the decoder
    for row in range(3):
        assert not _row_is_constant(figure, row, cols)
    # tile (0, 4): latent 1 at +2, the others at 0
    expected = traverse(model, torch.zeros(D), [1], np.array([[2.0]]))[0, 0]
    assert tile(figure, 0, 4).tolist() == expected_tile(expected, 2).tolist()


def test_posterior_traversal_centres_on_the_posterior_mean(model, images):
    figure = figures.traversal_figure(
        model, KL, rows=2, cols=3, max_traversal=0.45, x=images, order=[2, 0]
    )
    with torch.no_grad():
        posterior = model.encode(images[:1])
    mean, std = posterior.mean[0].double(), posterior.std[0].double()
    values = np.asarray(figure.info["vaelab"]["values"])
    np.testing.assert_allclose(values[:, 1], mean[[2, 0]].numpy(), atol=1e-6)
    z = (values - mean[[2, 0]].numpy()[:, None]) / std[[2, 0]].numpy()[:, None]
    assert phi(z[0, -1]) - phi(z[0, 0]) == pytest.approx(0.9, abs=1e-6)
    assert _row_is_constant(figure, 0, 3) and not _row_is_constant(figure, 1, 3)
    # the middle column of every row is the reconstruction of image 0
    assert tile(figure, 1, 1).tolist() == expected_tile(model.reconstruct(images[:1])[0]).tolist()


def test_traversal_figure_with_factor_labels_and_index_order(model):
    figure = figures.traversal_figure(
        model, KL, rows=2, cols=3, order="index", factor_labels=["shape", None, "x", "y"]
    )
    assert figure.info["vaelab"]["latents"] == [0, 1]
    sampled = figures.traversal_figure(
        model, KL, 2, 3, x=torch.rand(1, *SHAPE), generator=torch.Generator().manual_seed(5),
        base="sample",
    )  # fmt: skip
    assert sampled.info["vaelab"]["seed"] == 5
    with pytest.raises(ValueError, match="kl_per_dim"):
        figures.traversal_figure(model, [1.0, 2.0], rows=2, cols=3)


def test_reconstruct_traverse_figure(model, images):
    cols = 4
    figure = figures.reconstruct_traverse_figure(model, images, KL, rows=3, cols=cols)
    g = figure.info["grid"]
    assert (g["rows"], g["cols"]) == (5, cols)
    assert tile(figure, 0, 3).tolist() == expected_tile(images[3]).tolist()
    recon = model.reconstruct(images[:cols])
    assert tile(figure, 1, 0).tolist() == expected_tile(recon[0]).tolist()
    assert figure.info["vaelab"]["latents"] == [1, 3, 0]
    posterior = figures.reconstruct_traverse_figure(
        model, images, KL, rows=4, cols=cols, posterior=True
    )
    assert _row_is_constant(posterior, 2 + 3, cols)  # latent 2 is the fourth by KL


def test_temperature_figure_rows(model):
    temperatures = [1.0, 0.0, 1.0]
    figure = figures.temperature_figure(model, temperatures, 4, torch.Generator().manual_seed(0))
    g = figure.info["grid"]
    assert (g["rows"], g["cols"]) == (3, 4)
    assert _row_is_constant(figure, 1, 4)  # T = 0: every column decodes z = 0
    assert not _row_is_constant(figure, 0, 4)
    for k in range(4):  # every row draws the same noise
        assert np.array_equal(tile(figure, 0, k), tile(figure, 2, k))


def test_training_frame_shows_every_latent_in_index_order(model):
    figure = figures.training_frame(model, cols=10, step=500)
    g = figure.info["grid"]
    assert (g["rows"], g["cols"]) == (D, 10)
    assert _row_is_constant(figure, DEAD, 10)
    assert figures.training_frame(model, step=1500).size == figure.size  # GIF-ready
    values = traversal_values(10, 0.475)
    expected = traverse(model, torch.zeros(D), [0], values[None, :1])[0, 0]
    assert tile(figure, 0, 0).tolist() == expected_tile(expected).tolist()


def test_traversal_gif_frames_and_gif_round_trip(model, images, tmp_path):
    frames = figures.traversal_gif_frames(model, images, KL, rows=3, cols=2, n_frames=5)
    assert len(frames) == 5 and len({f.size for f in frames}) == 1
    assert frames[0].info["grid"]["rows"] == 3 and frames[0].info["grid"]["cols"] == 2
    recon = model.reconstruct(images[:2])  # phase ½ first: the reconstructions
    assert tile(frames[0], 0, 1).tolist() == expected_tile(recon[1]).tolist()
    assert not np.array_equal(tile(frames[0], 0, 1), tile(frames[1], 0, 1))
    path = tmp_path / "t.gif"
    save_gif(frames, path, fps=12)
    read = read_gif_frames(path)
    assert len(read) == 5 and read[0].size == frames[0].size
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write left no temporary file


def test_save_gif_pads_frames_to_one_size(tmp_path):
    frames = [Image.new("RGB", (8 + i, 6), (40 * i, 0, 0)) for i in range(3)]
    save_gif(frames, tmp_path / "a.gif", fps=10, loop=0)
    read = read_gif_frames(tmp_path / "a.gif")
    assert [f.size for f in read] == [(10, 6)] * 3
    with pytest.raises(ValueError, match="no frames"):
        save_gif([], tmp_path / "b.gif")


# -- curves ---------------------------------------------------------------------------------
def _log(with_regularisers: bool = True) -> list[dict]:
    records = []
    for step in range(0, 300, 50):
        record = {"step": step, "split": "train", "loss": 100 - step / 10, "recon": 90.0}
        if with_regularisers:
            record |= {"kl": 5.0, "tc": "nan" if step == 0 else 0.2}
            record["kl_per_dim"] = [step / 100, 0.01, 1.0]
        records.append(record)
    records.append({"step": 250, "split": "eval", "loss": 80.0, "recon": 75.0})
    records.append({"step": 250, "split": "metric_mig", "mig": 0.3})
    return records


def test_curves_from_a_small_log():
    both = loss_curves_figure(_log())
    assert both.mode == "RGB" and both.size == (1000, 360)  # two panels
    assert loss_curves_figure(_log(with_regularisers=False)).size == (500, 360)  # one panel
    kl = kl_curves_figure(_log())
    assert kl.mode == "RGB" and kl.size == (640, 400)


def test_curves_reject_empty_logs():
    for draw in (loss_curves_figure, kl_curves_figure):
        with pytest.raises(ValueError, match="empty"):
            draw([])
    with pytest.raises(ValueError, match="kl_per_dim"):
        kl_curves_figure(_log(with_regularisers=False))
