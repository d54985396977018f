"""Test-only registry entries for the training tests (imported by them and by subprocesses).

- dataset ``test-random``: seeded random uint8 images of any shape, splits train/test;
- model ``test-det``: a deterministic autoencoder (no sampling), so that data-parallel updates
  can be compared exactly with single-process ones;
- objective ``test-nan``: the plain ELBO, made non-finite at chosen steps (guard-rail tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from vaelab.data.base import ImageDataset
from vaelab.models.base import LossOutput
from vaelab.objectives.vae import VAE
from vaelab.registry import DATASETS, MODELS, OBJECTIVES

ENTRIES = []  # (registry, name), filled by register()


def random_images(
    root=None, split: str = "train", shape=(1, 8, 8), n: int = 256, seed: int = 0
) -> ImageDataset:
    rng = np.random.default_rng(seed + (split == "test"))
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    return ImageDataset(name="test-random", images=images, split=split)


@dataclass
class DetParams:
    latent_dim: int = 4


class DetAE(nn.Module):
    """x -> tanh(W x) -> decoder; loss = mean over the batch of per-image squared error."""

    def __init__(self, image_shape, latent_dim: int):
        super().__init__()
        size = int(np.prod(image_shape))
        self.enc = nn.Linear(size, latent_dim)
        self.dec = nn.Linear(latent_dim, size)

    def loss(self, x: torch.Tensor, step: int) -> LossOutput:
        flat = x.flatten(1)
        recon = self.dec(torch.tanh(self.enc(flat)))
        loss = ((recon - flat) ** 2).sum(1).mean()
        return LossOutput(loss, {"recon": loss.detach()})

    def optimizer_groups(self):
        return {"model": list(self.parameters())}


def build_det(image_shape, objective, latent_dim: int = 4) -> DetAE:
    return DetAE(image_shape, latent_dim)


@dataclass
class NanParams:
    nan_steps: list[int] = field(default_factory=list)


class NanVAE(VAE):
    def __init__(self, nan_steps: list[int]):
        super().__init__(anneal_steps=0)
        self.nan_steps = set(nan_steps)

    def forward(self, out: Any, step: int) -> LossOutput:
        result = super().forward(out, step)
        if step in self.nan_steps:
            result.loss = result.loss * float("nan")
        return result


def build_nan(dataset_size: int, nan_steps: list[int] | None = None) -> NanVAE:
    return NanVAE(nan_steps or [])


def register() -> None:
    """Add the test entries to the registries (idempotent)."""
    for registry, name, summary, target, kw in (
        (
            DATASETS,
            "test-random",
            "random images (tests)",
            random_images,
            {"splits": ("train", "test")},
        ),
        (MODELS, "test-det", "deterministic autoencoder (tests)", build_det, {"params": DetParams}),
        (
            OBJECTIVES,
            "test-nan",
            "ELBO with NaN at chosen steps (tests)",
            build_nan,
            {"params": NanParams},
        ),
    ):
        if name not in registry:
            registry.register(name, summary, **kw)(target)
            ENTRIES.append((registry, name))


def unregister() -> None:
    """Remove them again, so that other tests see only the real entries."""
    while ENTRIES:
        registry, name = ENTRIES.pop()
        registry._entries.pop(name, None)


def mlp_run_config(**sections) -> dict:
    """A run config small enough for the CLI tests: an MLP β-VAE on procedural dSprites, 4
    steps of 16 images; ``sections`` replace or extend config sections
    (``train={"log_every": 1}`` updates the train section)."""
    cfg = {
        "seed": 0,
        "device": "cpu",
        "data": {"name": "dsprites-procedural"},
        "model": {"name": "mlp", "latent_dim": 4, "hidden": [32]},
        "objective": {"name": "betah", "beta": 4.0},
        "train": {"steps": 4, "batch_size": 16, "log_every": 2, "progress": False},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg[key], **value} if isinstance(cfg.get(key), dict) else value
    return cfg
