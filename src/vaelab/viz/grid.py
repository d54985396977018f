"""Image grids: many small images tiled into one picture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vaelab.rundir import atomic_write_with

if TYPE_CHECKING:
    from PIL import Image


def as_uint8(images: np.ndarray, scale: float = 255.0) -> np.ndarray:
    """uint8 pixels of images given as uint8 or as floats in [0, 1] (times ``scale``).

    uint8 images whose maximum is 1 (binary data such as dSprites) are stretched to 0/255 so
    they are visible.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        return np.clip(np.rint(images * scale), 0, 255).astype(np.uint8)
    if images.size and images.max() <= 1:
        return images * np.uint8(255)
    return images


def contrasting_pad_value(images: np.ndarray) -> int:
    """255 (white) when the images' background is dark, else 0 (black).

    The background is read from the one-pixel border of every image ``[N, C, H, W]``: dSprites
    and MNIST give white padding, chairs black, as disentangling-vae chooses per dataset.
    """
    images = as_uint8(images)
    if images.ndim != 4:
        raise ValueError(f"expected [N, C, H, W], got shape {list(images.shape)}")
    border = np.concatenate(
        [
            images[..., 0, :].ravel(),
            images[..., -1, :].ravel(),
            images[..., :, 0].ravel(),
            images[..., :, -1].ravel(),
        ]
    )
    return 255 if border.mean() < 127.5 else 0


def image_grid(
    images: np.ndarray,
    ncols: int | None = None,
    padding: int = 2,
    pad_value: int = 128,
    scale: float = 255.0,
    upsample: int = 1,
) -> np.ndarray:
    """Tile ``[N, C, H, W]`` images (uint8, or floats in [0, 1]) into one uint8 ``[H', W', C]``.

    ``ncols`` defaults to a near-square grid. uint8 images whose maximum is 1 are stretched to
    0/255 (:func:`as_uint8`). Every image is enlarged ``upsample`` times by pixel repetition
    (nearest neighbour) before tiling. Cells left over are ``pad_value``.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"image_grid: expected [N, C, H, W], got shape {list(images.shape)}")
    if isinstance(upsample, bool) or not isinstance(upsample, int | np.integer) or upsample < 1:
        raise ValueError(f"image_grid: upsample must be a positive integer, got {upsample!r}")
    images = as_uint8(images, scale)
    if upsample > 1:
        images = images.repeat(upsample, axis=2).repeat(upsample, axis=3)
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


def save_png(path: str | Path, image: np.ndarray | Image.Image) -> None:
    """Write a uint8 ``[H, W]`` or ``[H, W, 1|3]`` array, or a Pillow image, as a PNG, atomically.

    A Pillow image's ``info["vaelab"]`` (the figures' metadata: seed, values, ...) is stored
    as a JSON text chunk named ``vaelab``.
    """
    from PIL import Image, PngImagePlugin

    png_info = None
    if isinstance(image, Image.Image):
        if "vaelab" in image.info:
            png_info = PngImagePlugin.PngInfo()
            png_info.add_text("vaelab", json.dumps(image.info["vaelab"]))
    else:
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        image = Image.fromarray(image)
    atomic_write_with(path, lambda tmp: image.save(tmp, format="PNG", pnginfo=png_info))
