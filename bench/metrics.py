"""Seconds per metric at the default (disentanglement_lib) protocol, and encoding cost.

The representation is 10-dimensional, a fixed noisy linear mix of dSprites-sized factors
(3 x 6 x 40 x 32 x 32 = 737,280 grid points): realistic enough that the classifiers and
boosted trees do real work, cheap enough that the timing is the metric's own. The
"images" carry their factor classes, so no network runs in the metric timings.

Encoding is measured separately: the Burgess encoder's images per second at batch 256 on
64x64 binary images, times the number of distinct images the suite asked for (codes are
memoised per image, see ``vaelab.metrics.core.Representation``).

    .venv/bin/python bench/metrics.py [--metrics mig,dci,...] [--device cpu]

Prints a table and writes ``bench/results/metrics.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from vaelab import metrics
from vaelab.data.base import GroundTruthDataset
from vaelab.metrics.core import Representation

HERE = Path(__file__).resolve().parent
SIZES = (3, 6, 40, 32, 32)
NAMES = ("shape", "scale", "orientation", "posX", "posY")
TARGET_SECONDS = 30.0


def factor_dataset() -> GroundTruthDataset:
    grid = np.array(list(itertools.product(*[range(s) for s in SIZES])), dtype=np.int64)
    images = np.zeros((len(grid), 1, 1, 8), np.uint8)
    images[:, 0, 0, :5] = grid
    images[:, 0, 0, 5] = 255  # makes the data scale 0..255, so x * 255 recovers the classes
    return GroundTruthDataset(
        name="dsprites-sized", images=images, factors=grid, factor_names=NAMES, factor_sizes=SIZES
    )


def mixed_representation(seed: int = 0):
    """codes = W · (factors / sizes) + 0.05·noise: each of 10 codes mostly one factor."""
    rng = np.random.default_rng(seed)
    weights = np.zeros((5, 10))
    weights[np.arange(5), np.arange(5)] = 1.0
    weights += 0.3 * rng.normal(size=(5, 10))
    w = torch.tensor(weights, dtype=torch.float32)
    scale = torch.tensor([s - 1.0 for s in SIZES])
    gen = torch.Generator().manual_seed(seed)

    def encode(x: torch.Tensor) -> torch.Tensor:
        factors = torch.round(x[:, 0, 0, :5] * 255) / scale
        return factors @ w + 0.05 * torch.randn(len(x), 10, generator=gen)

    return encode


def burgess_rate(device: torch.device, batch: int = 256, repeats: int = 5) -> float:
    """Images per second through the Burgess encoder (64x64x1), eval mode, no grad."""
    from vaelab.nn.burgess import BurgessEncoder

    encoder = BurgessEncoder((1, 64, 64), 10).to(device).eval()
    x = torch.randint(0, 2, (batch, 1, 64, 64), device=device).float()
    with torch.no_grad():
        encoder(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            encoder(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return batch / float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", help="comma-separated (default: the default suite)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(HERE / "results" / "metrics.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    data = factor_dataset()
    names = args.metrics.split(",") if args.metrics else metrics.default_metrics(data, False)
    rep = Representation(mixed_representation(), data, batch_size=8192, device=device)
    start = time.perf_counter()
    rep.posterior(np.arange(len(data)))  # fill the memo: the timings below are the metrics'
    rep.reset_counts()  # count only what the metrics ask for
    print(f"(toy representation of all {len(data):,} points: {time.perf_counter() - start:.1f} s)")
    rows = []
    for name in names:
        result = metrics.compute(name, rep, data, device=device)
        main_value = next(v for v in result.values.values() if isinstance(v, float))
        rows.append({"metric": name, "seconds": result.seconds, "value": main_value})
        print(f"{name:<14} {result.seconds:7.2f} s   {main_value:.4f}", flush=True)
    total = sum(r["seconds"] for r in rows)
    distinct = rep.distinct_images
    rate = burgess_rate(device)
    encode_seconds = distinct / rate
    print(f"{'total':<14} {total:7.2f} s   (target < {TARGET_SECONDS:.0f} s)")
    print(
        f"distinct images encoded: {distinct:,}; Burgess encoder {rate:,.0f} images/s "
        f"-> {encode_seconds:.1f} s of encoding for a real model"
    )
    report = {
        "device": str(device),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "torch_threads": torch.get_num_threads(),
        "metrics": rows,
        "total_seconds": total,
        "target_seconds": TARGET_SECONDS,
        "distinct_images_encoded": distinct,
        "burgess_images_per_second": rate,
        "burgess_encode_seconds": encode_seconds,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
