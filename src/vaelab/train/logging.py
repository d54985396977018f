"""What a run reports: ``train_log.jsonl``, TensorBoard event files and a progress bar.

Scalars are accumulated on the device every step and gathered to the host only every
``log_every`` steps (one synchronisation per log, not per step).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch


class TermAccumulator:
    """Running sums of named loss terms on the device; ``mean()`` syncs once and resets."""

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        for name, value in terms.items():
            value = value.detach().float()
            if name in self._sums:
                self._sums[name].add_(value)
            else:
                self._sums[name] = value.clone()
        self._count += 1

    def mean(self) -> dict[str, float | list[float]]:
        if not self._count:
            return {}
        names = list(self._sums)
        flat = torch.cat([self._sums[n].reshape(-1) for n in names]).div_(self._count).tolist()
        out: dict[str, float | list[float]] = {}
        i = 0
        for name in names:
            size = self._sums[name].numel()
            values = flat[i : i + size]
            out[name] = values[0] if self._sums[name].dim() == 0 else values
            i += size
        self._sums.clear()
        self._count = 0
        return out


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as strings so the log stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


class RunLogger:
    """Writes one JSON object per logged step and TensorBoard scalars (rank 0 only)."""

    def __init__(self, run_path: Path, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self._jsonl = None
        self._tb = None
        if not enabled:
            return
        self._jsonl = open(Path(run_path) / "train_log.jsonl", "a", buffering=1)  # noqa: SIM115
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(Path(run_path) / "tensorboard"))

    def log(self, step: int, values: dict[str, Any], prefix: str = "train") -> None:
        if not self.enabled:
            return
        record = {"step": step, "split": prefix, "time": round(time.time(), 3)}
        record.update({k: _clean(v) for k, v in values.items()})
        self._jsonl.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for name, value in values.items():
                if isinstance(value, list):
                    for i, v in enumerate(value):
                        self._tb.add_scalar(f"{prefix}/{name}/{i}", v, step)
                elif isinstance(value, int | float):
                    self._tb.add_scalar(f"{prefix}/{name}", value, step)

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a ``train_log.jsonl`` (a torn last line from a kill is ignored)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def make_progress(total: int, initial: int, enabled: bool):
    """A tqdm bar on stderr when enabled and stderr is a terminal; otherwise None."""
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, dynamic_ncols=True, unit="step", leave=True)
