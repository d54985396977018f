"""Argument checks shared by the networks in :mod:`vaelab.nn`."""

from __future__ import annotations

from collections.abc import Sequence


def is_positive_int(value: object) -> bool:
    """True for an int > 0 (bools excluded)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_image_shape(
    image_shape: Sequence[int], arch: str, sizes: Sequence[tuple[int, int]] | None = None
) -> tuple[int, int, int]:
    """``image_shape`` as a (C, H, W) tuple of positive ints, with (H, W) one of ``sizes``.

    ``sizes=None`` accepts any height and width. Raises ValueError naming ``arch`` and the
    allowed sizes.
    """
    shape = tuple(image_shape)
    if len(shape) != 3 or not all(is_positive_int(s) for s in shape):
        raise ValueError(
            f"{arch}: image_shape must be (channels, height, width) with positive integers, "
            f"got {image_shape!r}"
        )
    channels, height, width = shape
    if sizes is not None and (height, width) not in sizes:
        allowed = " or ".join(f"{h}×{w}" for h, w in sizes)
        raise ValueError(
            f"{arch} networks accept {allowed} images (any channel count), got {height}×{width}"
        )
    return channels, height, width


def check_latent_dim(latent_dim: int, arch: str) -> int:
    """``latent_dim`` if it is a positive int; ValueError naming ``arch`` otherwise."""
    if not is_positive_int(latent_dim):
        raise ValueError(f"{arch}: latent_dim must be a positive integer, got {latent_dim!r}")
    return latent_dim
