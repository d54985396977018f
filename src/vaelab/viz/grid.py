"""Image grids: many small images tiled into one picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vaelab.rundir import atomic_write_with


def image_grid(
    images: np.ndarray,
    ncols: int | None = None,
    padding: int = 2,
    pad_value: int = 128,
    scale: float = 255.0,
) -> np.ndarray:
    """Tile ``[N, C, H, W]`` images (uint8, or floats in [0, 1]) into one uint8 ``[H', W', C]``.

    ``ncols`` defaults to a near-square grid. uint8 images whose maximum is 1 (binary data such
    as dSprites) are stretched to 0/255 so they are visible. Cells left over are ``pad_value``.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"image_grid: expected [N, C, H, W], got shape {list(images.shape)}")
    if images.dtype != np.uint8:
        images = np.clip(np.rint(images * scale), 0, 255).astype(np.uint8)
    elif images.size and images.max() <= 1:
        images = images * np.uint8(255)
    n, c, h, w = images.shape
    ncols = ncols or max(1, int(np.ceil(np.sqrt(n))))
    nrows = max(1, int(np.ceil(n / ncols)))
    out = np.full(
        (nrows * (h + padding) + padding, ncols * (w + padding) + padding, c), pad_value, np.uint8
    )
    for i in range(n):
        r, col = divmod(i, ncols)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        out[top : top + h, left : left + w] = images[i].transpose(1, 2, 0)
    return out


def save_png(path: str | Path, image: np.ndarray) -> None:
    """Write a uint8 ``[H, W]`` or ``[H, W, 1|3]`` array as a PNG, atomically."""
    from PIL import Image

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    atomic_write_with(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))
