"""`vaelab plot | sample | reconstruct | encode | report` on a run trained for a few steps."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from train_support import mlp_run_config
from vaelab.cli import PLOT_KINDS, main
from vaelab.config import config_from_dict
from vaelab.registry import PLOTS
from vaelab.train.loop import train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = mlp_run_config(train={"log_every": 1, "checkpoint_every": 2})
    return train(config_from_dict(cfg), out=tmp_path_factory.mktemp("runs") / "run").run_dir


def test_training_writes_a_traversal_frame_per_checkpoint(run):
    frames = sorted(p.name for p in (run / "plots" / "training_frames").glob("*.png"))
    assert frames == ["step_00000002.png", "step_00000004.png"]


def test_plot_all_draws_every_figure(run, capsys):
    assert main(["plot", str(run), "all", "--rows", "4", "--cols", "3", "--frames", "6"]) == 0
    names = {p.name for p in (run / "plots").iterdir() if p.is_file()}
    expected = {
        "samples.png", "data_samples.png", "reconstruct.png", "prior_traversals.png",
        "reconstruct_traverse.png", "posterior_traversals.gif", "temperatures.png",
        "loss_curves.png", "kl_curves.png", "training.gif", "plots.json",
    }  # fmt: skip
    assert expected <= names
    with Image.open(run / "plots" / "training.gif") as gif:
        assert gif.n_frames == 2  # one per checkpoint
    with Image.open(run / "plots" / "posterior_traversals.gif") as gif:
        assert gif.n_frames >= 6
    out = capsys.readouterr().out
    assert "prior_traversals.png" in out


def test_the_plot_help_names_every_registered_plot():
    for entry in PLOTS:
        assert entry.name in PLOT_KINDS


def test_posterior_traversals_get_their_own_file(run):
    assert main(["plot", str(run), "traversals", "--posterior", "--max-traversal", "0.45"]) == 0
    assert (run / "plots" / "posterior_traversals.png").is_file()


def test_sample_writes_pngs_and_a_grid_and_refuses_to_overwrite(run, tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sample", str(run), "--n", "5", "--temperature", "0.7", "--out", str(out)]) == 0
    pngs = sorted(p.name for p in out.glob("sample_*.png"))
    assert pngs == [f"sample_{i:05d}.png" for i in range(5)]
    assert np.asarray(Image.open(out / "sample_00000.png")).shape[:2] == (64, 64)
    assert (out / "grid.png").is_file()
    assert main(["sample", str(run), "--n", "5", "--out", str(out)]) == 2
    assert "already holds files" in capsys.readouterr().err


def test_reconstruct_writes_pairs(run, tmp_path):
    out = tmp_path / "r"
    assert main(["reconstruct", str(run), "--n", "3", "--out", str(out)]) == 0
    pairs = sorted(out.glob("recon_*.png"))
    assert len(pairs) == 3
    assert np.asarray(Image.open(pairs[0])).shape[:2] == (64, 128)  # original | reconstruction


def test_encode_writes_latents(run, tmp_path, capsys):
    out = tmp_path / "z.npz"
    assert main(["encode", str(run), "--out", str(out), "--limit", "40"]) == 0
    with np.load(out, allow_pickle=False) as data:
        assert data["mean"].shape == (40, 4) and data["log_var"].shape == (40, 4)
        assert data["factors"].shape == (40, 5)
    assert main(["encode", str(run), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_report_is_written(run, capsys):
    assert main(["report", str(run), "--no-plots"]) == 0
    html = (run / "report.html").read_text()
    assert "<img" in html and "data:image/png;base64," in html


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plot", "RUN", "travesals"], "Did you mean 'traversals'"),
        (["plot", "RUN", "all", "--rows", "0"], "--rows"),
        (["sample", "RUN", "--n", "0"], "--n"),
        (["encode", "RUN", "--out", "x.npz", "--split", "test"], "no split 'test'"),
    ],
)
def test_errors_are_clear(run, capsys, argv, message):
    argv = [str(run) if a == "RUN" else a for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
