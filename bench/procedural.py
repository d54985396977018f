"""dsprites-procedural: rendering speed and fidelity to the real dSprites images.

Speed: images per second for random batches of 64 drawn by flat index (what the on-device
batcher asks of ``ProceduralDSprites.render``) and for the whole 737,280-image grid rendered
in chunks. Each is timed ``--repeats`` times and the median is reported (the machine may be
shared; the load average is recorded with the results). On the CPU this is done with torch's
default thread count and with one thread: on a small, busy machine one thread can be several
times faster, as torch's threads then wait for each other on every small operation.

Fidelity: the mean per-image IoU of the 1-pixels between the rendered and the real images,
per file and per shape, over every image of the two real dSprites subsets in
``../shared/data/dsprites`` (or ``$VAELAB_TEST_DATA/dsprites``); skipped when they are absent.

    .venv/bin/python bench/procedural.py [--device cpu] [--threads N ...] [--repeats 3]

Prints a table and writes ``bench/results/procedural.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from vaelab.data.dsprites_procedural import (
    NUM_IMAGES,
    ProceduralDSprites,
    factor_grid,
    render_torch,
)

HERE = Path(__file__).resolve().parent
SHAPES = ("square", "ellipse", "heart")
# file -> multiplier from its stored classes to the original dSprites classes
REAL_FILES = {
    "dsprites_subset.npz": np.array([1, 1, 1, 1, 1]),
    "dsprites_downsampled.npz": np.array([1, 1, 4, 2, 2]),
}


def data_folder(given: Path | None) -> Path:
    if given is not None:
        return given
    env = os.environ.get("VAELAB_TEST_DATA")
    return (Path(env) if env else HERE.parent.parent / "shared" / "data") / "dsprites"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batches(device: torch.device, batches: int, batch_size: int, seed: int) -> float:
    """Seconds to render ``batches`` random batches (indices drawn up front, on the device)."""
    lazy = ProceduralDSprites()
    gen = torch.Generator().manual_seed(seed)
    index = torch.randint(0, NUM_IMAGES, (batches, batch_size), generator=gen).to(device)
    lazy.render(index[0])  # warm-up (tables to the device, allocator)
    sync(device)
    start = time.perf_counter()
    for i in range(batches):
        lazy.render(index[i])
    sync(device)
    return time.perf_counter() - start


def time_full_grid(device: torch.device, chunk: int) -> float:
    """Seconds to render all 737,280 images in chunks, each copied back to host memory."""
    grid = torch.from_numpy(factor_grid()).to(device)
    sync(device)
    start = time.perf_counter()
    for lo in range(0, NUM_IMAGES, chunk):
        render_torch(grid[lo : lo + chunk], check=False).cpu()
    sync(device)
    return time.perf_counter() - start


def iou_per_image(ours: np.ndarray, real: np.ndarray) -> np.ndarray:
    a = ours.reshape(len(ours), -1).astype(bool)
    b = real.reshape(len(real), -1).astype(bool)
    return (a & b).sum(1) / np.maximum((a | b).sum(1), 1)


def fidelity(folder: Path, device: torch.device) -> dict | None:
    """Mean IoU per file and shape, and over everything; None without the real files."""
    if not all((folder / name).is_file() for name in REAL_FILES):
        return None
    out: dict[str, dict] = {}
    scores, shapes = [], []
    for name, unit in REAL_FILES.items():
        with np.load(folder / name) as data:
            classes = data["latents_classes"] * unit
            real = data["imgs"]
        ours = np.concatenate(
            [
                render_torch(torch.from_numpy(classes[lo : lo + 4096]).to(device)).cpu().numpy()
                for lo in range(0, len(classes), 4096)
            ]
        )
        score = iou_per_image(ours, real)
        out[name] = summarise(score, classes[:, 0])
        scores.append(score)
        shapes.append(classes[:, 0])
    out["both files"] = summarise(np.concatenate(scores), np.concatenate(shapes))
    return out


def summarise(score: np.ndarray, shape: np.ndarray) -> dict:
    row = {"images": len(score), "mean_iou": float(score.mean())}
    for s, name in enumerate(SHAPES):
        row[f"{name}_iou"] = float(score[shape == s].mean())
    row["min_iou"] = float(score.min())
    row["exact_images"] = float((score == 1).mean())
    return row


def measure_speed(args: argparse.Namespace, device: torch.device) -> dict:
    batch_times = [
        time_batches(device, args.batches, args.batch_size, seed=r) for r in range(args.repeats)
    ]
    grid_times = [time_full_grid(device, args.chunk) for _ in range(args.repeats)]
    batch_s = float(np.median(batch_times))
    grid_s = float(np.median(grid_times))
    return {
        "torch_threads": torch.get_num_threads(),
        "batch": {
            "batch_size": args.batch_size,
            "ms_per_batch": 1e3 * batch_s / args.batches,
            "images_per_s": args.batches * args.batch_size / batch_s,
            "best_ms_per_batch": 1e3 * min(batch_times) / args.batches,
        },
        "full_grid": {
            "images": NUM_IMAGES,
            "chunk": args.chunk,
            "seconds": grid_s,
            "images_per_s": NUM_IMAGES / grid_s,
            "best_seconds": min(grid_times),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="*",
        default=None,
        help="torch CPU thread counts to time (default: torch's default, then 1)",
    )
    parser.add_argument("--batches", type=int, default=500, help="batches per repeat")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=1024, help="chunk for the full grid")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=None, help="folder of the real subsets")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "procedural.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    threads = args.threads or list(dict.fromkeys([torch.get_num_threads(), 1]))
    if device.type != "cpu":
        threads = threads[:1]

    speeds = []
    for n in threads:
        torch.set_num_threads(n)
        speeds.append(measure_speed(args, device))
    folder = data_folder(args.data)
    iou = fidelity(folder, device)

    print(f"dsprites-procedural on {device}")
    print(f"{'what':<36}{'threads':>8}{'ms':>10}{'images/s':>12}")
    for speed in speeds:
        b, g, n = speed["batch"], speed["full_grid"], speed["torch_threads"]
        what = f"random batches of {args.batch_size}"
        print(f"{what:<36}{n:>8}{b['ms_per_batch']:>10.3f}{b['images_per_s']:>12,.0f}")
        what = f"all {NUM_IMAGES:,}, chunks of {args.chunk}"
        print(f"{what:<36}{n:>8}{1e3 * g['seconds']:>10.0f}{g['images_per_s']:>12,.0f}")
    print()
    if iou is None:
        print(f"fidelity: real dSprites subsets not found in {folder}; skipped")
    else:
        cols = ["mean_iou", *(f"{s}_iou" for s in SHAPES), "min_iou", "exact_images"]
        heads = ["mean", *SHAPES, "min", "exact"]
        print(f"{'mean IoU vs real':<26}{'images':>8}" + "".join(f"{h:>9}" for h in heads))
        for name, row in iou.items():
            cells = "".join(f"{row[c]:>9.5f}" for c in cols)
            print(f"{name:<26}{row['images']:>8,}{cells}")
        print("(min: the worst image; exact: the share of images reproduced pixel for pixel)")
    result = {
        "benchmark": "procedural",
        "device": str(device),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "repeats": args.repeats,
        "speed": speeds,
        "iou": iou,
        "data": str(folder) if iou is not None else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
