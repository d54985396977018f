"""Run directories and atomic file writes.

Everything about one run lives in one folder::

    RUN_DIR/
      config.yaml          the fully resolved config (enough to rebuild the model)
      checkpoints/         step_00001000.ckpt ... (atomic writes, last K kept)
      model.safetensors    final weights, loadable without executing code
      train_log.jsonl      one JSON object per logged step
      tensorboard/         TensorBoard event files
      metrics.json         scores written by ``vaelab evaluate``
      plots/               figures written by ``vaelab plot``

Every file is written atomically (temporary file in the same folder, fsync, rename), so an
interrupted write leaves either the old file or the new one, never a corrupt one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

CONFIG_FILE = "config.yaml"


class RunDirError(Exception):
    """A run directory cannot be created or used as asked."""


# -- atomic writes --------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` atomically.

    On an exception (or a kill before the rename) ``path`` keeps its previous content and the
    temporary file is removed (or left as ``.<name>.tmp-*``, which readers ignore).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Atomically produce ``path`` with a library function that writes to a file name
    (``safetensors.torch.save_file``, ``PIL.Image.save``, ...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent, suffix=path.suffix)
    os.close(fd)
    try:
        writer(Path(tmp))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


# -- run directories ------------------------------------------------------------------------
@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def weights(self) -> Path:
        return self.path / "model.safetensors"

    @property
    def train_log(self) -> Path:
        return self.path / "train_log.jsonl"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    def exists(self) -> bool:
        return self.config.is_file()


def default_run_path(name: str, root: str | Path = "runs") -> Path:
    """``runs/<name>-YYYYmmdd-HHMMSS`` (a suffix is added if that folder exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{name}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = Path(root) / f"{name}-{stamp}-{n}"
    return path


def create_run_dir(path: str | Path, overwrite: bool = False) -> RunDir:
    """Create a new run directory, refusing to reuse an existing one unless ``overwrite``.

    ``overwrite=True`` replaces an earlier *run* (a folder holding ``config.yaml``) or an empty
    folder; it never deletes a folder that does not look like a vaelab run.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run directory {path} exists and is a file")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise RunDirError(
                f"run directory {path} already exists and is not empty; pass --resume {path} to "
                "continue that run, --overwrite to replace it, or choose another --out"
            )
        if not (path / CONFIG_FILE).is_file():
            raise RunDirError(
                f"refusing to overwrite {path}: it is not empty and holds no {CONFIG_FILE}, so it "
                "does not look like a vaelab run directory"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    run = RunDir(path)
    run.checkpoints.mkdir(exist_ok=True)
    run.plots.mkdir(exist_ok=True)
    return run


def open_run_dir(path: str | Path) -> RunDir:
    """An existing run directory; a clear error if ``path`` is not one."""
    run = RunDir(Path(path))
    if not run.path.is_dir():
        raise RunDirError(f"run directory {run.path} does not exist")
    if not run.exists():
        raise RunDirError(f"{run.path} is not a vaelab run directory: it has no {CONFIG_FILE}")
    return run
