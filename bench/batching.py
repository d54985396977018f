"""Batches per second: DeviceBatcher and LoaderBatcher against the usual DataLoader.

The baseline is what most VAE code does: ``DataLoader(TensorDataset(float32 images),
batch_size=64, shuffle=True)`` with ``num_workers=0``, each batch moved to the device
(every method's batches are materialised there; on CUDA the clock stops after a sync).
The data are 64x64 single-channel images: the real dSprites subset from ``../shared/data``
when it is there, else random {0, 1} images of the same size.

The methods run interleaved, ``--repeats`` times, and the table reports the median rate:
on a shared machine a busy neighbour then slows every method alike instead of whichever
happened to run while it was busy.

    .venv/bin/python bench/batching.py [--device cpu] [--batches 2000] [--repeats 5]

Prints a table and writes ``bench/results/batching.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from vaelab.data.base import ImageDataset
from vaelab.data.batching import DeviceBatcher, LoaderBatcher

HERE = Path(__file__).resolve().parent
DSPRITES = HERE.parent.parent / "shared" / "data" / "dsprites" / "dsprites_downsampled.npz"


TARGET_RATIO = 5.0  # what DeviceBatcher should reach against the baseline


def load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def load_images(n_random: int = 46080) -> tuple[np.ndarray, str]:
    """uint8 [N, 1, 64, 64] images and where they came from."""
    if DSPRITES.is_file():
        with np.load(DSPRITES) as data:
            imgs = data["imgs"]
        return imgs[:, None].astype(np.uint8), f"dSprites subset ({DSPRITES.name})"
    rng = np.random.default_rng(0)
    return rng.integers(0, 2, size=(n_random, 1, 64, 64), dtype=np.uint8), "random {0,1}"


def endless_dataloader(dataset: TensorDataset, batch_size: int, device: torch.device) -> Iterator:
    """The baseline, restarted at the end of each epoch as a training loop would."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0)
    while True:
        for (x,) in loader:
            yield x.to(device, non_blocking=True)


def endless_worker_dataloader(
    dataset: TensorDataset, batch_size: int, device: torch.device, workers: int
) -> Iterator:
    """The same with worker processes, for comparison with LoaderBatcher."""
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers, persistent_workers=True
    )
    while True:
        for (x,) in loader:
            yield x.to(device, non_blocking=True)


def batcher_stream(batcher) -> Iterator:
    try:
        while True:
            yield batcher.next().x
    finally:  # runs on stream.close(): stop LoaderBatcher workers before the next method
        if hasattr(batcher, "close"):
            batcher.close()


def measure(make: Callable[[], Iterator], batches: int, warmup: int, device: torch.device) -> float:
    """Batches per second after ``warmup`` batches; every batch is materialised on the device."""
    stream = make()
    shape = None
    for _ in range(warmup):
        x = next(stream)
        shape = tuple(x.shape)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(batches):
        x = next(stream)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    assert tuple(x.shape) == shape and x.dtype == torch.float32
    stream.close()
    return batches / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument(
        "--batches", type=int, default=2000, help="timed batches per method and repeat"
    )
    parser.add_argument("--repeats", type=int, default=5, help="interleaved runs; median kept")
    parser.add_argument("--warmup", type=int, default=100, help="untimed batches first")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=2, help="LoaderBatcher workers")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "batching.json")
    args = parser.parse_args()

    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    images, source = load_images()
    ds = ImageDataset("bench", images)
    float_dataset = TensorDataset(torch.from_numpy(images).float())  # what the baseline holds
    bs = args.batch_size

    methods: list[tuple[str, Callable[[], Iterator]]] = [
        (
            "DataLoader(TensorDataset(float32), shuffle=True, num_workers=0)",
            lambda: endless_dataloader(float_dataset, bs, device),
        ),
        (
            f"DataLoader(TensorDataset(float32), shuffle=True, num_workers={args.num_workers})",
            lambda: endless_worker_dataloader(float_dataset, bs, device, args.num_workers),
        ),
        ("DeviceBatcher(transform='float')", lambda: batcher_stream(DeviceBatcher(ds, bs, device))),
        (
            f"LoaderBatcher(transform='float', num_workers={args.num_workers})",
            lambda: batcher_stream(LoaderBatcher(ds, bs, device, num_workers=args.num_workers)),
        ),
        (
            "LoaderBatcher(transform='float', num_workers=0)",
            lambda: batcher_stream(LoaderBatcher(ds, bs, device, num_workers=0)),
        ),
    ]
    # Interleave the methods and repeat: on a shared machine a noisy neighbour then slows
    # every method alike, and the median of the repeats is what the table reports.
    rates: dict[str, list[float]] = {name: [] for name, _ in methods}
    for _ in range(args.repeats):
        for name, make in methods:
            rates[name].append(measure(make, args.batches, args.warmup, device))
    rows = [
        {
            "method": name,
            "batches_per_s": float(np.median(rates[name])),
            "repeats_batches_per_s": [round(r, 1) for r in rates[name]],
        }
        for name, _ in methods
    ]
    base = rows[0]["batches_per_s"]
    for row in rows:
        row["ratio_vs_dataloader"] = row["batches_per_s"] / base

    device_ratio = next(r for r in rows if r["method"].startswith("DeviceBatcher"))[
        "ratio_vs_dataloader"
    ]
    width = max(len(r["method"]) for r in rows)
    print(f"{len(images)} images {tuple(images.shape[1:])} uint8 from {source}; batch {bs}")
    print(
        f"median of {args.repeats} interleaved runs of {args.batches} timed batches after "
        f"{args.warmup} warm-up; device {device}; "
        f"{torch.get_num_threads()} torch threads; load average {load_average():.1f}"
    )
    print(f"{'method':<{width}}  {'batches/s':>10}  {'ratio':>7}  (min..max of the repeats)")
    for r in rows:
        rate, ratio = r["batches_per_s"], r["ratio_vs_dataloader"]
        lo, hi = min(rates[r["method"]]), max(rates[r["method"]])
        print(f"{r['method']:<{width}}  {rate:>10.0f}  {ratio:>6.1f}x  ({lo:.0f}..{hi:.0f})")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "batching",
        "device": str(device),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min_at_end": load_average(),
        "platform": platform.platform(),
        "data": {"source": source, "images": len(images), "shape": list(images.shape[1:])},
        "batch_size": bs,
        "timed_batches": args.batches,
        "repeats": args.repeats,
        "warmup_batches": args.warmup,
        "results": rows,
        "device_batcher_ratio": device_ratio,
        "target_ratio": TARGET_RATIO,
        "meets_target": device_ratio >= TARGET_RATIO,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    verdict = "meets" if device_ratio >= TARGET_RATIO else "misses"
    print(
        f"DeviceBatcher: {device_ratio:.1f}x the DataLoader ({verdict} the {TARGET_RATIO:g}x goal)"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
