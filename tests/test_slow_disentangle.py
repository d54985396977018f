"""Long check (``pytest -m slow``): β-TCVAE on the real dSprites grid learns a disentangled code.

Trains the Burgess model with β-TCVAE (β = 6, MSS) on the 46,080-image dSprites grid for
``VAELAB_SLOW_STEPS`` steps (default 6,000; about 25 minutes on 2 CPU cores) and checks what a
disentangled representation looks like: a few active latents (the rest collapsed to the
prior), and posX, posY and scale each captured by one latent (|Spearman ρ| high) that no
other active latent shares.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from vaelab.config import config_from_dict
from vaelab.data import load_dataset
from vaelab.models.build import load_run_model
from vaelab.train.evaluation import iterate_images
from vaelab.train.loop import train

pytestmark = pytest.mark.slow


def test_btcvae_disentangles_the_dsprites_grid(tmp_path, shared_data):
    path = shared_data / "dsprites" / "dsprites_downsampled.npz"
    steps = int(os.environ.get("VAELAB_SLOW_STEPS", "6000"))
    cfg = config_from_dict(
        {
            "seed": 1,
            "data": {"name": "dsprites", "path": str(path)},
            "model": {"name": "burgess", "latent_dim": 10},
            "objective": {"name": "btcvae", "beta": 6.0, "estimator": "mss", "anneal_steps": 1000},
            "train": {
                "steps": steps,
                "batch_size": 64,
                "lr": 1e-3,
                "log_every": 200,
                "checkpoint_every": 2000,
                "progress": False,
            },
        }
    )
    run = train(cfg, out=tmp_path / "btcvae").run_dir
    model, _ = load_run_model(run)
    data = load_dataset("dsprites", path=path)
    with torch.no_grad():
        codes, kls = [], []
        for x in iterate_images(data, 512, torch.device("cpu")):
            posterior = model.encode(x)
            codes.append(posterior.mean)
            kls.append(posterior.kl_standard_normal())
    codes = torch.cat(codes).numpy()
    kl_per_dim = torch.cat(kls).mean(0).numpy()
    active = np.flatnonzero(kl_per_dim > 0.5)
    print("KL per latent (nats):", np.round(kl_per_dim, 2).tolist())
    assert 3 <= len(active) <= 7, kl_per_dim
    used = []
    for name in ("posX", "posY", "scale"):
        k = data.factor_index(name)
        rho = [abs(spearmanr(codes[:, d], data.factors[:, k])[0]) for d in active]
        best = active[int(np.argmax(rho))]
        print(f"{name}: latent {best}, |rho| = {max(rho):.3f}")
        assert max(rho) > 0.8, (name, rho)
        used.append(best)
    assert len(set(used)) == 3  # three different latents for the three factors
