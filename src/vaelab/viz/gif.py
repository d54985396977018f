"""Animated GIFs of figure frames, written atomically."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageSequence

from vaelab.rundir import atomic_write_with


def _same_size(frames: Sequence[Image.Image]) -> list[Image.Image]:
    """RGB frames, each pasted on a white canvas of the largest width and height (top-left),
    so frames whose labels differ in width still make one animation without rescaling."""
    width = max(f.width for f in frames)
    height = max(f.height for f in frames)
    out = []
    for frame in frames:
        frame = frame.convert("RGB")
        if frame.size != (width, height):
            canvas = Image.new("RGB", (width, height), (255, 255, 255))
            canvas.paste(frame, (0, 0))
            frame = canvas
        out.append(frame)
    return out


def save_gif(
    frames: Sequence[Image.Image], path: str | Path, fps: float = 12, loop: int = 0
) -> None:
    """Write ``frames`` as an animated GIF at ``fps`` frames per second, atomically.

    ``loop`` is the number of repeats (0: forever). GIF stores delays in hundredths of a
    second, so 12 fps is stored as 80 ms per frame. Pillow merges consecutive identical
    frames into one longer frame, which looks the same.
    """
    if not frames:
        raise ValueError("save_gif: no frames to write")
    if (
        isinstance(fps, bool)
        or not isinstance(fps, int | float)
        or not (math.isfinite(fps) and fps > 0)
    ):
        raise ValueError(f"save_gif: fps must be a positive number, got {fps!r}")
    if isinstance(loop, bool) or not isinstance(loop, int) or loop < 0:
        raise ValueError(f"save_gif: loop must be a non-negative integer, got {loop!r}")
    first, *rest = _same_size(frames)
    duration = round(1000 / fps)

    def write(tmp: Path) -> None:
        first.save(
            tmp, format="GIF", save_all=True, append_images=rest, duration=duration, loop=loop
        )

    atomic_write_with(path, write)


def read_gif_frames(path: str | Path) -> list[Image.Image]:
    """Every frame of a GIF as an RGB image."""
    with Image.open(path) as gif:
        return [frame.convert("RGB") for frame in ImageSequence.Iterator(gif)]
