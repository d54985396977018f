"""Preprocessing done once, at load time, on uint8 images (as the reference pipelines do)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from vaelab.data.base import DataError, ImageDataset


def resize_images(images: np.ndarray, size: int, chunk: int = 4096) -> np.ndarray:
    """Bilinear resize of uint8 ``[N, C, H, W]`` to ``size x size``, rounded back to uint8.

    Downsampling uses antialiasing (like PIL's bilinear filter in torchvision's ``Resize``);
    {0, 1} images are treated as 0/255 so the result keeps intermediate grey levels.
    """
    images = np.asarray(images)
    peak = 1.0 if images.size and images.max() <= 1 else 255.0
    n, c, h, w = images.shape
    out = np.empty((n, c, size, size), np.uint8)
    for start in range(0, n, chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + chunk])).float()
        x = x * (255.0 / peak)
        y = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < max(h, w)
        )
        out[start : start + chunk] = y.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


def resize_dataset(dataset: ImageDataset, size: int | None) -> ImageDataset:
    """``dataset`` with images resized to ``size x size`` (unchanged when already that size)."""
    if size is None or dataset.image_shape[1:] == (size, size):
        return dataset
    if not isinstance(dataset.images, np.ndarray):
        raise DataError(
            f"dataset {dataset.name!r} is generated on demand and cannot be resized "
            "at load time; remove data.image_size"
        )
    return dataclasses.replace(dataset, images=resize_images(dataset.images, size))
