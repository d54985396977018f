"""Build a model from a config, and rebuild a trained one from its run directory.

A run directory is enough to rebuild its model: ``config.yaml`` names the model and
objective and their parameters, ``run.json`` records the image shape and training-set size
the model was built for, and ``model.safetensors`` holds the weights.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from torch import nn

from vaelab.config import Config, ConfigError, load_config
from vaelab.registry import MODELS, OBJECTIVES
from vaelab.rundir import RunDir, atomic_write_json, open_run_dir

RUN_INFO = "run.json"


def build_model(cfg: Config, image_shape: tuple[int, int, int], dataset_size: int) -> nn.Module:
    """The model ``cfg.model`` with the objective ``cfg.objective``, for images of
    ``image_shape`` (C, H, W) and a training set of ``dataset_size`` images."""
    if cfg.model.name is None:
        raise ConfigError(
            "model.name: training needs a model; known models: " + ", ".join(MODELS.names())
        )
    objective = None
    if cfg.objective.name is not None:
        params = dataclasses.asdict(cfg.objective.params)
        objective = OBJECTIVES.get(cfg.objective.name).target(dataset_size=dataset_size, **params)
    params = dataclasses.asdict(cfg.model.params)
    try:
        return MODELS.get(cfg.model.name).target(
            image_shape=tuple(image_shape), objective=objective, **params
        )
    except ValueError as err:  # e.g. an architecture that does not take this image size
        raise ConfigError(f"model {cfg.model.name!r}: {err}") from None


def write_run_info(run: RunDir, info: dict[str, Any]) -> None:
    atomic_write_json(run.path / RUN_INFO, info)


def read_run_info(run: RunDir) -> dict[str, Any]:
    path = run.path / RUN_INFO
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: the run was not started by vaelab train") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON: {err}") from None


def load_run_model(
    run_dir: str | Path, device: str = "cpu", weights: str | Path | None = None
) -> tuple[nn.Module, Config]:
    """A trained model from its run directory, in eval mode, with its config.

    ``weights`` defaults to ``RUN_DIR/model.safetensors`` (written at the end of training; the
    averaged weights when EMA was on).
    """
    from vaelab.train.checkpoint import load_weights

    run = open_run_dir(run_dir)
    cfg = load_config(run.config)
    info = read_run_info(run)
    model = build_model(cfg, tuple(info["image_shape"]), int(info["dataset_size"]))
    path = Path(weights) if weights is not None else run.weights
    if not path.is_file():
        raise ConfigError(
            f"{path} does not exist: the run has not finished; use the newest "
            f"checkpoint in {run.checkpoints} or resume the run"
        )
    state = load_weights(path, device)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(
            f"{path} does not fit the model of {run.config}: missing "
            f"{missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model.to(device).eval(), cfg
