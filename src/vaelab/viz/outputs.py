"""Image files for downstream use: ``vaelab sample`` and ``vaelab reconstruct``.

Each writes one PNG per image (for FID tools and papers' figures) and a grid of all of them,
into a new folder; nothing existing is overwritten.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vaelab.config import ConfigError
from vaelab.viz.grid import as_uint8, image_grid, save_png


def _new_folder(path: Path) -> Path:
    if path.exists() and any(path.iterdir()):
        raise ConfigError(f"{path} already holds files; choose another --out or remove it")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _png(image: torch.Tensor) -> np.ndarray:
    """[C, H, W] float in [0, 1] -> uint8 [H, W, C]."""
    return as_uint8(image.detach().float().cpu().numpy()).transpose(1, 2, 0)


@torch.no_grad()
def write_samples(
    model: torch.nn.Module,
    out: Path,
    n: int,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> list[Path]:
    """``n`` prior samples at ``temperature`` as ``sample_00000.png`` ... and ``grid.png``."""
    if n < 1:
        raise ConfigError(f"--n: expected a positive number of samples, got {n}")
    if temperature <= 0:
        raise ConfigError(f"--temperature: expected a positive number, got {temperature}")
    out = _new_folder(Path(out))
    generator = torch.Generator(device=device).manual_seed(seed)
    images = torch.cat(
        [
            model.sample(min(batch_size, n - start), temperature, generator).cpu()
            for start in range(0, n, batch_size)
        ]
    )
    paths = []
    for i, image in enumerate(images):
        paths.append(out / f"sample_{i:05d}.png")
        save_png(paths[-1], _png(image))
    save_png(out / "grid.png", image_grid(images.numpy(), padding=2, pad_value=255))
    return [*paths, out / "grid.png"]


@torch.no_grad()
def write_reconstructions(
    model: torch.nn.Module,
    images: torch.Tensor,
    rows: np.ndarray,
    out: Path,
) -> list[Path]:
    """For dataset rows ``rows`` and their float images: ``recon_<row>.png`` (original |
    reconstruction side by side) and ``grid.png`` (pairs in columns of two)."""
    out = _new_folder(Path(out))
    recon = torch.cat([model.reconstruct(batch).clamp(0, 1) for batch in images.split(256)])
    paths = []
    for row, original, rebuilt in zip(rows, images, recon, strict=True):
        pair = torch.cat([original.float().cpu(), rebuilt.float().cpu()], dim=2)
        paths.append(out / f"recon_{int(row):08d}.png")
        save_png(paths[-1], _png(pair))
    both = torch.stack([images.float().cpu(), recon.float().cpu()], dim=1).flatten(0, 1)
    columns = 2 * max(1, int(np.ceil(np.sqrt(len(images)))))
    save_png(out / "grid.png", image_grid(both.numpy(), ncols=columns, padding=2, pad_value=255))
    return [*paths, out / "grid.png"]
