"""Checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is ``RUN_DIR/checkpoints/step_XXXXXXXX.ckpt``, a ``torch.save`` of plain
containers and tensors (model, optimizers, schedulers, EMA, gradient scaler, RNG states, the
batcher's stream position, counters). It is written to a temporary file and renamed, so a
process killed mid-write leaves the previous checkpoints intact; it is read with
``torch.load(weights_only=True)``, which never executes code. The last ``keep`` are kept.

Final weights go to ``RUN_DIR/model.safetensors`` (safetensors: loadable without executing
code, and by other tools).
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any

import torch

from vaelab.rundir import atomic_write_with
from vaelab.train.errors import CheckpointError

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^step_(\d{8,})\.ckpt$")
FORMAT_VERSION = 1


def checkpoint_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"step_{step:08d}.ckpt"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every complete checkpoint, oldest first (temporaries ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def save_checkpoint(folder: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write ``state`` as the checkpoint of ``step`` and delete all but the newest ``keep``."""
    path = checkpoint_path(folder, step)
    payload = {"format_version": FORMAT_VERSION, "step": step, **state}
    atomic_write_with(path, lambda tmp: torch.save(payload, tmp))
    for _, old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read one checkpoint safely; :class:`CheckpointError` naming the file if unreadable."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, wrong format, unsafe content
        raise CheckpointError(f"checkpoint {path} cannot be read: {err}") from err
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} is not a vaelab checkpoint (format version "
            f"{FORMAT_VERSION} expected)"
        )
    return state


def load_latest(
    folder: Path, map_location: str | torch.device = "cpu"
) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable checkpoint (skipping unreadable ones, with a warning), or None."""
    for _, path in reversed(list_checkpoints(folder)):
        try:
            return path, load_checkpoint(path, map_location)
        except CheckpointError as err:
            logger.warning("%s; trying an older one", err)
    return None


# -- random number generators ---------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _as_tuple(value: Any) -> Any:
    """``random.setstate`` wants tuples; a round trip through some loaders yields lists."""
    if isinstance(value, list | tuple):
        return tuple(_as_tuple(v) for v in value)
    return value


# -- final weights --------------------------------------------------------------------------
def save_weights(path: Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write weights as safetensors, atomically (tensors made contiguous, shared ones copied)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    atomic_write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_weights(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=str(device))
    except Exception as err:
        raise CheckpointError(f"weights file {path} cannot be read: {err}") from err
