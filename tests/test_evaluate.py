"""`vaelab evaluate`, metrics during training, and the likelihood metrics on a real model."""

from __future__ import annotations

import json

import pytest

from train_support import mlp_run_config
from vaelab.cli import main
from vaelab.config import ConfigError, config_from_dict
from vaelab.train.logging import read_log
from vaelab.train.loop import train


def run_config(**eval_section) -> dict:
    return mlp_run_config(eval=eval_section)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A 4-step run that computed two metrics every 2 steps and at the end."""
    cfg = run_config(
        metrics=["mig", "elbo"],
        metrics_every=2,
        params={"mig": {"num_points": 300}, "elbo": {"num_images": 64}},
    )
    result = train(config_from_dict(cfg), out=tmp_path_factory.mktemp("runs") / "run")
    return result.run_dir


def test_training_logs_metrics_and_writes_metrics_json(trained_run):
    records = [r for r in read_log(trained_run / "train_log.jsonl") if r["split"] == "metric_mig"]
    assert [r["step"] for r in records] == [2, 4]
    assert all(0.0 <= r["mig"] <= 1.0 for r in records)
    data = json.loads((trained_run / "metrics.json").read_text())
    by_name = {e["metric"]: e for e in data["results"]}
    assert set(by_name) == {"mig", "elbo"} and by_name["mig"]["step"] == 4
    assert by_name["mig"]["protocol"]["num_points"] == 300
    assert by_name["mig"]["protocol"]["representation"] == "mean"
    elbo = by_name["elbo"]["values"]
    assert elbo["images"] == 64
    assert elbo["nelbo"] == pytest.approx(elbo["recon"] + elbo["kl"], rel=1e-6)
    # binary dSprites pixels, Bernoulli likelihood: a discrete NLL, so bits/dim is defined
    assert elbo["bits_per_dim"] == pytest.approx(elbo["nelbo"] / (4096 * 0.6931471805599453))


def test_evaluate_command_merges_results_and_prints_a_table(trained_run, capsys):
    argv = [
        "evaluate", str(trained_run), "--metrics", "mig,iwae,recon_error,ssim",
        "--set", "mig.num_points=200", "--set", "iwae.k=20", "--set", "iwae.num_images=32",
        "--set", "recon_error.num_images=32", "--set", "ssim.num_images=32", "--seed", "1",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "mig" in out and "iwae" in out and "metrics.json" in out
    data = json.loads((trained_run / "metrics.json").read_text())
    by_name = {e["metric"]: e for e in data["results"]}
    assert set(by_name) == {"mig", "elbo", "iwae", "recon_error", "ssim"}  # elbo kept
    assert by_name["mig"]["protocol"]["num_points"] == 200  # replaced
    assert by_name["mig"]["protocol"]["seed"] == 1
    assert by_name["iwae"]["protocol"]["k"] == 20
    assert 0.0 < by_name["ssim"]["values"]["ssim"] <= 1.0
    recon = by_name["recon_error"]["values"]
    assert recon["sse"] == pytest.approx(recon["mse"] * 4096, rel=1e-5)


def test_iwae_bound_is_tighter_than_the_elbo_on_the_same_images(trained_run, capsys):
    argv = ["evaluate", str(trained_run), "--metrics", "elbo,iwae", "--set",
            "elbo.num_images=48", "--set", "iwae.num_images=48", "--set", "iwae.k=64"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((trained_run / "metrics.json").read_text())
    by_name = {e["metric"]: e["values"] for e in data["results"]}
    assert by_name["iwae"]["nll"] <= by_name["elbo"]["nelbo"] + 0.5
    assert by_name["iwae"]["nll"] > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--metrics", "mgi"], "Did you mean 'mig'"),
        (["--metrics", "mig", "--set", "mig.num_pionts=3"], "num_points"),
        (["--metrics", "mig", "--set", "dci.booster=hist"], "not in --metrics"),
        (["--metrics", "mig", "--set", "mig=3"], "METRIC.PARAM=VALUE"),
        (["--split", "test"], "no split 'test'"),
    ],
)
def test_evaluate_errors_are_clear(trained_run, capsys, argv, message):
    assert main(["evaluate", str(trained_run), *argv]) == 2
    assert message in capsys.readouterr().err


def test_evaluate_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "vaelab: error" in capsys.readouterr().err


def test_config_validates_metric_names_and_parameters():
    with pytest.raises(ConfigError, match="Did you mean 'mig'"):
        config_from_dict(run_config(metrics=["mgi"]))
    with pytest.raises(ConfigError, match="num_points"):
        config_from_dict(run_config(metrics=["mig"], params={"mig": {"num_pionts": 3}}))
    with pytest.raises(ConfigError, match="not in eval.metrics"):
        config_from_dict(run_config(metrics=["mig"], params={"elbo": {}}))


def test_likelihood_metrics_on_a_training_split_default_to_a_seeded_subset(trained_run, capsys):
    # dsprites-procedural has no held-out split: scoring all 737,280 images would take an hour
    assert main(["evaluate", str(trained_run), "--metrics", "recon_error"]) == 0
    data = json.loads((trained_run / "metrics.json").read_text())
    entry = next(e for e in data["results"] if e["metric"] == "recon_error")
    assert entry["protocol"]["num_images"] == 10_000 and entry["values"]["images"] == 10_000
    argv = ["evaluate", str(trained_run), "--metrics", "recon_error", "--set",
            "recon_error.num_images=20"]  # fmt: skip
    assert main(argv) == 0  # an explicit value wins
    data = json.loads((trained_run / "metrics.json").read_text())
    entry = next(e for e in data["results"] if e["metric"] == "recon_error")
    assert entry["values"]["images"] == 20
