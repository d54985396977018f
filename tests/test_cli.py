"""The ``vaelab`` command: data and presets subcommands, exit codes and error messages."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from vaelab.cli import main
from vaelab.presets import preset_names


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_console_script_help_runs_without_importing_torch():
    code = (
        "import sys; from vaelab.cli import build_parser; build_parser(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_data_list_names_every_dataset(capsys):
    code, out, _ = run(capsys, "data", "list")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names == sorted(
        [
            "3dident",
            "binarized-mnist",
            "cars3d",
            "celeba",
            "celebahq",
            "chairs",
            "cifar10",
            "cifar100",
            "dsprites",
            "dsprites-procedural",
            "dtd",
            "fashion-mnist",
            "ffhq",
            "flowers102",
            "folder",
            "imagenet32",
            "imagenet32-chrabaszcz",
            "imagenet64",
            "imagenet64-chrabaszcz",
            "mnist",
            "mpi3d",
            "shapes3d",
            "smallnorb",
        ]
    )
    assert "[splits: train, valid, test]" in out


def test_data_info_on_real_files(capsys, shared_data):
    code, out, _ = run(capsys, "data", "info", "mnist", "--root", str(shared_data), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["splits"]["train"]["images"] == 60_000
    assert report["splits"]["test"]["image_shape"] == [1, 28, 28]
    assert report["splits"]["test"]["classes"] == 10
    assert report["folder"] == str(shared_data / "mnist")
    path = shared_data / "dsprites" / "dsprites_downsampled.npz"
    code, out, _ = run(capsys, "data", "info", "dsprites", "--path", str(path))
    assert code == 0
    assert "factors: shape 3, scale 6, orientation 10, posX 16, posY 16 (complete grid)" in out
    assert "46,080 images, 1x64x64 uint8, 180.0 MiB in memory" in out


def test_data_info_explains_missing_files(capsys, tmp_path):
    code, out, _ = run(capsys, "data", "info", "fashion-mnist", "--root", str(tmp_path))
    assert code == 0
    assert "train: not available" in out
    assert f"place it at {tmp_path}/fashion-mnist/train-images-idx3-ubyte.gz" in out


def test_data_verify(capsys, shared_data, tmp_path):
    code, out, _ = run(capsys, "data", "verify", "mnist", "--root", str(shared_data))
    assert code == 0
    assert out.count("ok ") == 4
    code, out, err = run(capsys, "data", "verify", "mnist", "--root", str(tmp_path))
    assert code == 1
    assert out.count("FAILED") == 4 and "missing" in out and "4 file(s)" in err


def test_data_samples_writes_a_grid(capsys, tmp_path, shared_data):
    png = tmp_path / "grid.png"
    code, out, _ = run(
        capsys,
        "data",
        "samples",
        "mnist",
        "--root",
        str(shared_data),
        "--n",
        "16",
        "--out",
        str(png),
    )
    assert code == 0 and "wrote 16 mnist train images" in out
    image = np.asarray(Image.open(png))
    assert image.shape == (4 * 30 + 2, 4 * 30 + 2)  # 4 x 4 tiles of 28 px, 2 px padding


def test_presets_list_and_show(capsys):
    code, out, _ = run(capsys, "presets", "list")
    assert code == 0 and "btcvae_dsprites" in out and out.count("\n") == len(preset_names())
    code, out, _ = run(capsys, "presets", "show", "demo", "--set", "train.lr=2e-4")
    assert code == 0
    shown = yaml.safe_load(out)
    assert shown["train"]["lr"] == pytest.approx(2e-4)
    assert shown["data"]["name"] == "dsprites-procedural"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["presets", "show", "demo", "--set", "train.lr=abc"],
            "train.lr: expected a number, got 'abc'",
        ),
        (["presets", "show", "nope"], "unknown preset 'nope'"),
        (["data", "info", "mnst"], "unknown dataset 'mnst'. Did you mean 'mnist'?"),
        (
            ["data", "samples", "mnist", "--root", "/nonexistent", "--out", "x.png"],
            "dataset file missing: /nonexistent/mnist/train-images-idx3-ubyte.gz",
        ),
    ],
)
def test_errors_are_one_clear_line_and_exit_2(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("vaelab: error: ") and message in err
    assert "Traceback" not in err


def test_data_samples_does_not_download_unless_asked(capsys):
    code, _, err = run(
        capsys, "data", "samples", "mnist", "--root", "/nonexistent", "--out", "x.png"
    )
    assert code == 2 and "download: not attempted" in err and "url: https://" in err
