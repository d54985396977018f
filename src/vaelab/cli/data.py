"""``vaelab data list | info | verify | prepare | samples``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vaelab.cli.common import _human_bytes


# -- data -----------------------------------------------------------------------------------
def cmd_data_list(args: argparse.Namespace) -> int:
    from vaelab.registry import DATASETS

    width = max(len(n) for n in DATASETS.names())
    for entry in DATASETS:
        splits = ", ".join(entry.meta.get("splits", ("train",)))
        print(f"{entry.name:<{width}}  {entry.summary}  [splits: {splits}]")
    return 0


def _dataset_folder(name: str, root: str | None) -> Path | None:
    from vaelab.data.download import dataset_folder
    from vaelab.registry import DATASETS

    folder = DATASETS.get(name).meta.get("folder")
    return dataset_folder(folder, root) if folder else None


def cmd_data_info(args: argparse.Namespace) -> int:
    from vaelab.data import DataError, GroundTruthDataset, dataset_splits, load_dataset
    from vaelab.registry import DATASETS

    entry = DATASETS.get(args.name)
    splits = [args.split] if args.split else list(dataset_splits(args.name))
    report: dict = {"name": args.name, "summary": entry.summary, "splits": {}}
    folder = _dataset_folder(args.name, args.root)
    if folder is not None:
        report["folder"] = str(folder)
    seen = set()
    for split in splits:
        try:
            ds = load_dataset(
                args.name, split=split, root=args.root, path=args.path, download=False
            )
        except DataError as err:
            report["splits"][split] = {"error": str(err)}
            continue
        info = ds.summary()
        key = tuple(info["files"]) or (split,)
        report["splits"][split] = info
        if isinstance(ds, GroundTruthDataset) and "factors" not in report:
            report["factors"] = info["factors"]
            report["complete_grid"] = info["complete_grid"]
        seen.add(key)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.name}: {entry.summary}")
    if folder is not None:
        print(f"  folder: {folder}")
    if "factors" in report:
        factors = ", ".join(f"{k} {v}" for k, v in report["factors"].items())
        grid = "complete grid" if report["complete_grid"] else "partial grid"
        print(f"  factors: {factors} ({grid})")
    for split, info in report["splits"].items():
        if "error" in info:
            print(f"  {split}: not available\n    " + info["error"].replace("\n", "\n    "))
            continue
        c, h, w = info["image_shape"]
        size = _human_bytes(info["uint8_bytes"])
        where = {
            "memory": f"{size} in memory; training copies it to the device as uint8",
            "memory-mapped": f"{size}, memory-mapped; training streams it with a DataLoader",
            "on demand": f"rendered on demand on the device ({size} if cached)",
        }[info["storage"]]
        line = f"  {split}: {info['images']:,} images, {c}x{h}x{w} uint8, {where}"
        if "classes" in info:
            line += f", {info['classes']} classes"
        print(line)
        for file in info["files"]:
            print(f"    file: {file}")
    return 0


def cmd_data_verify(args: argparse.Namespace) -> int:
    from vaelab.data.download import verify_all
    from vaelab.registry import DATASETS

    entry = DATASETS.get(args.name)
    files_of = entry.meta.get("files")
    if files_of is None:
        print(f"{args.name}: nothing to verify (the dataset is generated, not downloaded)")
        return 0
    folder = _dataset_folder(args.name, args.root)
    if args.path:
        folder = Path(args.path)
    bad = 0
    for split in entry.meta.get("splits", ("train",)):
        for status in verify_all(files_of(split), folder):
            mark = "ok" if status.status in ("ok", "unchecked") else "FAILED"
            bad += mark != "ok"
            detail = ""
            if status.status not in ("ok",):
                detail = f"  ({status.status}; expected {status.expected}, found {status.actual})"
            print(f"{mark:6} {split:6} {status.path}{detail}")
    if bad:
        print(
            f"{bad} file(s) missing or wrong; `vaelab data info {args.name}` says where to "
            "put them",
            file=sys.stderr,
        )
    return 1 if bad else 0


def cmd_data_prepare(args: argparse.Namespace) -> int:
    from vaelab.data import dataset_splits, load_dataset
    from vaelab.data.download import ChecksumError, MissingFileError, ensure_file
    from vaelab.registry import DATASETS

    entry = DATASETS.get(args.name)
    splits = [args.split] if args.split else list(dataset_splits(args.name))
    files_of = entry.meta.get("files")
    problems = []
    if files_of is None:
        print(f"{args.name}: nothing to download (vaelab generates it)")
    else:
        folder = _dataset_folder(args.name, args.root)
        files = {f.name: f for split in splits for f in files_of(split)}
        for file in files.values():
            try:
                path = ensure_file(file, folder, download=not args.no_download)
                print(f"ok      {path}")
            except (MissingFileError, ChecksumError) as err:
                print(f"MISSING {folder / file.name}")
                problems.append(str(err))
    if problems:
        print(
            f"\n{len(problems)} file(s) to fetch by hand (or run again when online):\n\n"
            + "\n\n".join(problems),
            file=sys.stderr,
        )
        return 1
    for split in splits:  # extracts archives and builds caches once, with progress bars
        ds = load_dataset(args.name, split=split, root=args.root, path=args.path, download=False)
        info = ds.summary()
        shape = "x".join(str(d) for d in info["image_shape"])
        print(f"ready   {split}: {info['images']:,} images of {shape}, {info['storage']}")
    return 0


def cmd_data_samples(args: argparse.Namespace) -> int:
    import numpy as np

    from vaelab.data import load_dataset
    from vaelab.viz.grid import image_grid, save_png

    ds = load_dataset(
        args.name, split=args.split, root=args.root, path=args.path, download=args.download
    )
    rng = np.random.default_rng(args.seed)
    n = min(args.n, len(ds))
    index = np.sort(rng.choice(len(ds), size=n, replace=False))
    images = np.asarray(ds.images[index])
    save_png(args.out, image_grid(images))
    print(f"wrote {n} {args.name} {args.split} images to {args.out}")
    return 0
