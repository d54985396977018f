"""The training engine: exact resume, kill during a checkpoint, data parallelism, guard rails,
presets, logging, and a learning test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import train_support
from vaelab.cli import main
from vaelab.config import config_from_dict, merge
from vaelab.models.build import build_model, load_run_model
from vaelab.presets import load_preset, preset_names
from vaelab.registry import DATASETS
from vaelab.train import checkpoint as ckpt
from vaelab.train.errors import TrainingDiverged
from vaelab.train.logging import read_log
from vaelab.train.loop import train

TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def test_entries():
    """The test-only dataset, model and objective, registered for each test of this file."""
    train_support.register()
    yield
    train_support.unregister()


def tiny(**sections) -> dict:
    """A small, fast config: an MLP VAE on 8x8 random images."""
    values = {
        "device": "cpu",
        "seed": 1,
        "data": {"name": "test-random", "options": {"shape": [1, 8, 8], "n": 96}},
        "model": {"name": "mlp", "latent_dim": 3, "hidden": [16]},
        "objective": {"name": "betah", "beta": 2.0},
        "train": {
            "steps": 20,
            "batch_size": 16,
            "lr": 1e-3,
            "log_every": 5,
            "checkpoint_every": 10,
            "progress": False,
        },
    }
    return merge(values, sections)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return ckpt.load_weights(run / "model.safetensors")


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


# -- exact resume ---------------------------------------------------------------------------
RESUME_CASE = dict(
    data={"transform": "binarize"},  # random per-batch noise must resume exactly too
    objective={"name": "factor", "gamma": 2.0, "disc_hidden_layers": 2},  # two optimizers
    train={
        "steps": 200,
        "checkpoint_every": 100,
        "log_every": 25,
        "ema_decay": 0.9,
        "schedule": "cosine",
        "warmup_steps": 10,
    },
)


def test_resume_gives_the_same_weights_as_one_run(tmp_path):
    straight = train(config_from_dict(tiny(**RESUME_CASE)), out=tmp_path / "a")
    half = config_from_dict(tiny(**RESUME_CASE))
    first = train(half, out=tmp_path / "b", stop_at=100)
    assert first.steps == 100 and not (tmp_path / "b" / "model.safetensors").exists()
    second = train(resume=tmp_path / "b")
    assert straight.steps == second.steps == 200
    assert_same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))
    log_a = [r["loss"] for r in read_log(tmp_path / "a" / "train_log.jsonl")]
    log_b = [r["loss"] for r in read_log(tmp_path / "b" / "train_log.jsonl")]
    assert log_a == log_b  # the resumed log continues the same numbers, no duplicates


KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import train_support
train_support.register()
import torch
from vaelab.config import config_from_dict, merge
from vaelab.train.loop import train

real_save, calls = torch.save, []
def dying_save(obj, path):
    calls.append(path)
    if len(calls) == 2:  # the second checkpoint: write half of it, then die
        import io
        buffer = io.BytesIO()
        real_save(obj, buffer)
        with open(path, "wb") as handle:
            handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    real_save(obj, path)
torch.save = dying_save
train(config_from_dict({values!r}), out={out!r})
"""


def test_sigkill_during_a_checkpoint_write_resumes_from_the_last_complete_one(tmp_path):
    values = tiny(train={"steps": 30, "checkpoint_every": 10})
    run = tmp_path / "killed"
    script = KILL_SCRIPT.format(tests=str(TESTS), values=values, out=str(run))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    complete = ckpt.list_checkpoints(run / "checkpoints")
    assert [step for step, _ in complete] == [10]  # the half-written one never got its name
    assert any(p.name.startswith(".step_00000020") for p in (run / "checkpoints").iterdir())
    assert not (run / "model.safetensors").exists()
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    resumed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, train_support; train_support.register(); "
            "from vaelab.cli import main; sys.exit(main(sys.argv[1:]))",
            "train",
            "--resume",
            str(run),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr
    straight = train(config_from_dict(values), out=tmp_path / "straight")
    assert straight.steps == 30
    assert_same_weights(weights(run), weights(tmp_path / "straight"))


def test_an_unreadable_newest_checkpoint_is_skipped(tmp_path):
    train(config_from_dict(tiny()), out=tmp_path / "r")
    folder = tmp_path / "r" / "checkpoints"
    newest = ckpt.list_checkpoints(folder)[-1][1]
    newest.write_bytes(newest.read_bytes()[:100])
    path, state = ckpt.load_latest(folder)
    assert state["step"] == 10 and path.name == "step_00000010.ckpt"
    with pytest.raises(Exception, match="cannot be read"):
        ckpt.load_checkpoint(newest)


# -- data parallel --------------------------------------------------------------------------
def test_two_process_gloo_step_equals_one_process_with_the_whole_batch(tmp_path):
    pytest.importorskip("torch.distributed.run")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS)}
    worker = str(TESTS / "ddp_worker.py")
    single = subprocess.run(
        [sys.executable, worker, str(tmp_path / "one"), "3"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            worker,
            str(tmp_path / "two"),
            "3",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = weights(tmp_path / "one"), weights(tmp_path / "two")
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6)
    log = read_log(tmp_path / "two" / "train_log.jsonl")
    assert [r["step"] for r in log] == [1, 2, 3]  # rank 0 alone writes the log


# -- guard rails ----------------------------------------------------------------------------
def test_non_finite_updates_are_skipped_counted_and_logged(tmp_path):
    values = tiny(
        objective={"name": "test-nan", "nan_steps": [3, 4, 11]}, train={"steps": 20, "log_every": 5}
    )
    result = train(config_from_dict(values), out=tmp_path / "r")
    assert result.skipped == 3
    log = read_log(tmp_path / "r" / "train_log.jsonl")
    assert [r["skipped"] for r in log] == [2, 0, 1, 0]
    assert log[-1]["skipped_total"] == 3
    assert all(torch.isfinite(v).all() for v in weights(tmp_path / "r").values())


def test_too_many_skips_in_a_row_stop_the_run_with_the_last_good_checkpoint(tmp_path):
    values = tiny(
        objective={"name": "test-nan", "nan_steps": list(range(12, 40))},
        train={"steps": 40, "log_every": 5, "checkpoint_every": 10, "max_skips_in_a_row": 5},
    )
    with pytest.raises(TrainingDiverged) as err:
        train(config_from_dict(values), out=tmp_path / "r")
    message = str(err.value)
    assert "updates in a row were skipped" in message and "step_00000010.ckpt" in message
    state = ckpt.load_checkpoint(tmp_path / "r" / "checkpoints" / "step_00000010.ckpt")
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_gradient_norm_threshold_skips_updates_without_changing_weights(tmp_path):
    values = tiny(
        train={
            "steps": 6,
            "skip_threshold": 1e-9,
            "max_skips_in_a_row": 100,
            "log_every": 3,
            "checkpoint_every": 3,
        }
    )
    train(config_from_dict(values), out=tmp_path / "r")
    log = read_log(tmp_path / "r" / "train_log.jsonl")
    assert [r["skipped"] for r in log] == [3, 3]
    start = ckpt.load_checkpoint(tmp_path / "r" / "checkpoints" / "step_00000003.ckpt")["model"]
    assert_same_weights(start, {k: v for k, v in weights(tmp_path / "r").items()})


# -- precision, EMA, logging ----------------------------------------------------------------
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_steps_are_finite(tmp_path, amp):
    result = train(
        config_from_dict(tiny(train={"steps": 4, "amp": amp, "log_every": 2})), out=tmp_path / amp
    )
    assert np.isfinite(result.last_log["loss"])


def test_final_weights_are_the_ema_when_enabled(tmp_path):
    values = tiny(train={"steps": 10, "ema_decay": 0.5, "checkpoint_every": 10})
    train(config_from_dict(values), out=tmp_path / "r")
    state = ckpt.load_checkpoint(tmp_path / "r" / "checkpoints" / "step_00000010.ckpt")
    saved = weights(tmp_path / "r")
    assert_same_weights(saved, {k: v for k, v in state["ema"].items()})
    assert any(not torch.equal(saved[k], state["model"][k]) for k in saved)


def test_logs_tensorboard_and_rebuilding_the_model_from_the_run(tmp_path):
    values = tiny(data={"eval_split": "test"}, eval={"every": 10, "batch_size": 40})
    result = train(config_from_dict(values), out=tmp_path / "r")
    run = tmp_path / "r"
    log = read_log(run / "train_log.jsonl")
    train_rows = [r for r in log if r["split"] == "train"]
    eval_rows = [r for r in log if r["split"] == "eval"]
    assert [r["step"] for r in train_rows] == [5, 10, 15, 20]
    assert [r["step"] for r in eval_rows] == [10, 20, 20]
    assert eval_rows[0]["images"] == 96
    assert {"loss", "recon", "kl", "kl_per_dim", "grad_norm", "lr"} <= set(train_rows[0])
    assert len(train_rows[0]["kl_per_dim"]) == 3
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    model, cfg = load_run_model(run)
    assert cfg.model.name == "mlp" and model.latent_dim == 3
    x = torch.rand(5, 1, 8, 8)
    assert model.representation(x).shape == (5, 3)
    assert result.last_log["eval_images"] == 96


# -- presets ---------------------------------------------------------------------------------
def preset_shape(cfg) -> tuple[int, int, int]:
    c, h, w = DATASETS.get(cfg.data.name).meta["image_shape"]
    size = cfg.data.image_size
    return (c, size, size) if size else (c, h, w)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_builds_and_takes_one_training_step(tmp_path, name):
    """One real training step on random images of the preset's shape (no dataset needed)."""
    cfg = load_preset(name)
    shape = preset_shape(cfg)
    values = cfg.to_dict()
    values["data"] = {"name": "test-random", "options": {"shape": list(shape), "n": 64}}
    batch = min(cfg.train.batch_size, 16)
    values["train"].update(
        steps=1, batch_size=batch, log_every=1, progress=False, checkpoint_every=1
    )
    values["device"] = "cpu"
    result = train(config_from_dict(values), out=tmp_path / name)
    assert result.steps == 1 and np.isfinite(result.last_log["loss"])
    model = build_model(cfg, shape, 1000)
    assert sum(p.numel() for p in model.parameters()) > 0


# -- command line ----------------------------------------------------------------------------
def test_train_command(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "train",
        "--model",
        "mlp",
        "--objective",
        "vae",
        "--data",
        "test-random",
        "--steps",
        "4",
        "--batch-size",
        "8",
        "--out",
        str(out),
        "--no-progress",
        "--set",
        "model.hidden=[8]",
        "--set",
        "train.log_every=2",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"run directory: {out}" in printed and "final loss" in printed
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--set", "train.steps=6", "--no-progress"]) == 0
    assert json.loads((out / "run.json").read_text())["dataset"] == "test-random"
    assert read_log(out / "train_log.jsonl")[-1]["step"] == 6
    assert main(["train", "--resume", str(out), "--preset", "demo"]) == 2
    assert "drop --preset" in capsys.readouterr().err
    assert (
        main(["train", "--preset", "demo", "--set", "train.lrr=1", "--out", str(tmp_path / "x")])
        == 2
    )
    assert "Did you mean train.lr?" in capsys.readouterr().err


# -- learning --------------------------------------------------------------------------------
def test_a_few_hundred_steps_learn_dsprites(tmp_path, shared_data):
    """300 steps of an MLP VAE on real dSprites images reach a loss an untrained model cannot.

    An untrained model's Bernoulli NLL is about 4096·log 2 = 2839 nats per image; predicting
    the mean image alone (no latents) costs about 800 nats on this data.
    """
    path = shared_data / "dsprites" / "dsprites_downsampled.npz"
    values = tiny(
        model={"name": "mlp", "latent_dim": 6, "hidden": [256]},
        objective={"name": "vae"},
        train={
            "steps": 300,
            "batch_size": 64,
            "lr": 2e-3,
            "log_every": 50,
            "checkpoint_every": 300,
        },
    )
    values["data"] = {"name": "dsprites", "path": str(path)}
    result = train(config_from_dict(values), out=tmp_path / "r")
    first = read_log(tmp_path / "r" / "train_log.jsonl")[0]["loss"]
    assert result.last_log["loss"] < 250, result.last_log["loss"]
    assert first > 500


@pytest.mark.slow
def test_compiled_loss_trains_like_the_eager_one(tmp_path):
    """``train.compile`` (torch.compile of the loss; slow: ~1 minute to compile on a CPU)."""
    model = {"name": "test-det", "latent_dim": 3}  # deterministic: no sampled noise to differ
    eager = train(
        config_from_dict(tiny(model=model, train={"steps": 5, "log_every": 5})), out=tmp_path / "e"
    )
    compiled = train(
        config_from_dict(tiny(model=model, train={"steps": 5, "log_every": 5, "compile": True})),
        out=tmp_path / "c",
    )
    assert compiled.last_log["loss"] == pytest.approx(eager.last_log["loss"], rel=1e-4)
