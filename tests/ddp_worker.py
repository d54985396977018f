"""Run by test_train.py: train a deterministic model for a few steps, alone or under torchrun.

usage: python ddp_worker.py OUT_DIR STEPS   (rank 0 writes OUT_DIR/model.safetensors)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import train_support
from vaelab.config import config_from_dict
from vaelab.train.loop import train

if __name__ == "__main__":
    train_support.register()
    out, steps = sys.argv[1], int(sys.argv[2])
    cfg = config_from_dict(
        {
            "device": "cpu",
            "seed": 3,
            "data": {"name": "test-random", "options": {"shape": [1, 8, 8], "n": 256}},
            "model": {"name": "test-det", "latent_dim": 5},
            "train": {
                "steps": steps,
                "batch_size": 64,
                "lr": 1e-2,
                "log_every": 1,
                "checkpoint_every": 100,
                "progress": False,
            },
        }
    )
    train(cfg, out=out, overwrite=True)
