"""3DIdent (Zimmermann et al. 2021, "Contrastive Learning Inverts the Data Generating Process").

Renders of a teapot, 224x224 RGB PNGs, 250,000 in ``3dident_train.tar`` and 25,000 in
``3dident_test.tar``. Each split folder holds ``images/<index>.png`` (the index zero-padded)
and the 10 continuous latents that made each render, one row per index, in
``raw_latents.npy`` (values in [-1, 1], what the authors' loaders read) or ``latents.npy``
(the same rescaled to Blender's units); ``raw_latents.npy`` is preferred when both are there.
The latents, in order: object position x, y, z; object rotation alpha, beta, gamma; spotlight
angle; object hue, spotlight hue, background hue (the order of the first two positions is
unverified).

Metrics need discrete factors, so each latent is cut into ``bins`` classes of equal frequency
(the split's own quantiles; a constant latent is dropped). Any affine rescaling of a latent
gives the same classes, so both latent files agree. ``factor_values`` holds each class's
mean value and ``latents`` the raw values ``[N, 10]``. The binned grid is partial (metrics
that need a complete grid, BetaVAE, FactorVAE and Chen's MIG, do not apply); two images
sharing all their classes would make factor lookups ambiguous and are refused, with a hint
to change ``bins`` (with 20 bins and 250,000 images a collision has a chance of about 0.3%).

Images are resized to ``size`` (64 by default, for the 64x64 networks; pytorch-proVLAE uses
128) with Pillow's ``bilinear`` filter (antialiased, torchvision's ``Resize``), once, into
``3dident-<split>-<size>px-<resample>.npy`` beside the data (written atomically), with a copy
of the latents in ``3dident-<split>-latents.npy``, so later starts read neither the tar nor
the PNGs. The tars are read as they are; an extracted ``<split>/`` folder works too.
"""

from __future__ import annotations

import functools
import io
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from vaelab.data.base import DataError, GroundTruthDataset
from vaelab.data.download import RemoteFile, dataset_folder, ensure_file
from vaelab.data.images import (
    RESAMPLE,
    TarSource,
    cached_images,
    check_choice,
    check_size,
    decode_image,
    open_npy,
)
from vaelab.registry import DATASETS
from vaelab.rundir import atomic_write_with

SPLITS = ("train", "test")
ARCHIVES = {
    split: RemoteFile(
        f"3dident_{split}.tar",
        f"https://zenodo.org/records/4502485/files/3dident_{split}.tar",
        note="no checksum is recorded; the images and latents are checked as they are read",
    )
    for split in SPLITS
}
LATENT_FILES = ("raw_latents.npy", "latents.npy")  # in order of preference
LATENT_NAMES = (
    "position_x",
    "position_y",
    "position_z",
    "rotation_alpha",
    "rotation_beta",
    "rotation_gamma",
    "spotlight_angle",
    "object_hue",
    "spotlight_hue",
    "background_hue",
)
_IMAGE = re.compile(r"images/(\d+)\.png")


@dataclass
class BinnedGroundTruthDataset(GroundTruthDataset):
    """A ground-truth dataset whose factor classes bin continuous latents.

    ``latents`` holds the continuous values ``[N, K]`` (one column per factor) that
    ``factors`` bins; ``factor_values[k][c]`` is the mean latent of class ``c``.
    """

    latents: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.latents.shape != self.factors.shape:
            raise DataError(
                f"dataset {self.name!r}: latents must be [N, K] = {list(self.factors.shape)}, "
                f"got {list(self.latents.shape)}"
            )


def bin_latents(
    latents: np.ndarray, bins: int, where: Path
) -> tuple[np.ndarray, list[int], tuple[np.ndarray, ...]]:
    """Equal-frequency classes of each latent: (classes ``[N, K']``, the kept columns, the
    mean latent of each class). Ties share a class; constant latents are dropped."""
    classes, kept, means = [], [], []
    for k in range(latents.shape[1]):
        column = latents[:, k]
        edges = np.quantile(column, np.arange(1, bins) / bins)
        _, inverse = np.unique(np.searchsorted(edges, column, side="right"), return_inverse=True)
        size = int(inverse.max()) + 1
        if size > 1:
            classes.append(inverse.reshape(-1))
            kept.append(k)
            means.append(np.bincount(inverse, column, size) / np.bincount(inverse, None, size))
    if not kept:
        raise DataError(f"{where}: every latent is constant; nothing to use as a factor")
    return np.stack(classes, axis=1).astype(np.int64), kept, tuple(means)


class _Source(TarSource):
    """A split's ``images/*.png`` and latents, in its tar or an extracted folder."""

    def __init__(self, location: Path, split: str):
        self.location = location
        self.members: dict[str, tarfile.TarInfo] = {}
        self.latent_file: str | None = None
        if location.is_dir():
            found = [f"images/{p.name}" for p in (location / "images").glob("*.png")]
            self.latent_file = next((n for n in LATENT_FILES if (location / n).is_file()), None)
        else:
            found = self._list(split)
        indexed = sorted((int(m.group(1)), n) for n in found if (m := _IMAGE.fullmatch(n)))
        self.names = [n for _, n in indexed]
        if self.latent_file is None:
            raise DataError(
                f"{location}: no latents; looked for {' or '.join(LATENT_FILES)} beside the "
                "images/ folder"
            )
        numbers = np.array([i for i, _ in indexed], dtype=np.int64)
        if not len(numbers) or (numbers != np.arange(len(numbers))).any():
            gap = int(np.argmax(numbers != np.arange(len(numbers)))) if len(numbers) else 0
            raise DataError(
                f"{location}: expected images/0.png, images/1.png, ... (zero-padded) without "
                f"gaps; found {len(numbers)} images, the first missing is number {gap}"
            )

    def _list(self, split: str) -> list[str]:
        """The image names below the split folder in the tar (found by its images/ folder)."""
        images: dict[str, list[tuple[str, tarfile.TarInfo]]] = {}
        latents: dict[str, dict[str, tarfile.TarInfo]] = {}
        with self.tar() as tar:
            for member in tar:
                if not member.isfile():
                    continue
                path = PurePosixPath(member.name)
                if path.parent.name == "images" and path.suffix == ".png":
                    prefix = str(path.parent.parent)
                    images.setdefault(prefix, []).append((f"images/{path.name}", member))
                elif path.name in LATENT_FILES:
                    latents.setdefault(str(path.parent), {})[path.name] = member
        prefixes = [p for p in images if p in latents]
        if len(prefixes) > 1:
            prefixes = [p for p in prefixes if PurePosixPath(p).name == split] or prefixes
        if len(prefixes) != 1:
            raise DataError(
                f"{self.location}: expected one folder holding images/*.png and "
                f"{' or '.join(LATENT_FILES)}; found {sorted(prefixes) or 'none'}"
            )
        prefix = prefixes[0]
        self.members = dict(images[prefix])
        name = next(n for n in LATENT_FILES if n in latents[prefix])
        self.members[name] = latents[prefix][name]
        self.latent_file = name
        return list(dict(images[prefix]))

    def latents(self) -> np.ndarray:
        """The latents ``[N, K]`` (float64), one row per image."""
        assert self.latent_file is not None
        where = self.location / self.latent_file
        with self.open() as read:
            data = read(self.latent_file)
        try:
            latents = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise DataError(f"{where}: not a readable .npy file ({err})") from None
        if latents.ndim != 2 or not np.issubdtype(latents.dtype, np.number):
            raise DataError(
                f"{where}: expected numbers [N, K], got {latents.dtype} {list(latents.shape)}"
            )
        if len(latents) != len(self.names):
            raise DataError(f"{where}: {len(latents)} rows of latents for {len(self.names)} images")
        if not np.isfinite(latents).all():
            raise DataError(f"{where}: the latents hold NaN or infinite values")
        return latents.astype(np.float64)


def _locate(
    split: str, root: str | Path | None, path: str | Path | None, download: bool
) -> tuple[Path, Path]:
    """(the split's tar or folder, the folder for the caches)."""
    if path is None:
        base = dataset_folder("3dident", root)
        for folder in (base / split, base / "3dident" / split):
            if (folder / "images").is_dir():
                return folder, base
        return ensure_file(ARCHIVES[split], base, download=download), base
    path = Path(path)
    if path.is_file():
        return path, path.parent
    for folder in (path, path / split):
        if (folder / "images").is_dir():
            return folder, folder.parent
    if (path / ARCHIVES[split].name).is_file():
        return path / ARCHIVES[split].name, path
    raise DataError(
        f"{path}: no 3DIdent {split} split; expected {ARCHIVES[split].name}, a {split}/ folder "
        "with images/ and the latents, or such a folder itself"
    )


def _cached(
    location: Path, base: Path, split: str, size: int, resample: str
) -> tuple[np.ndarray, np.ndarray]:
    """Images (memory-mapped cache) and latents of a split, from the caches when both are
    there and agree, else from the tar or folder (building both caches)."""
    image_cache = base / f"3dident-{split}-{size}px-{resample}.npy"
    latent_cache = base / f"3dident-{split}-latents.npy"
    images, latents = open_npy(image_cache), open_npy(latent_cache)
    if (
        images is not None
        and latents is not None
        and latents.ndim == 2
        and images.dtype == np.uint8
        and images.shape == (len(latents), 3, size, size)
    ):
        return images, np.asarray(latents)
    source = _Source(location, split)
    latents = source.latents()
    decode = functools.partial(decode_image, box=None, size=size, resample=resample, mode="RGB")
    images = cached_images(
        image_cache, source.names, source.open, decode, (3, size, size), location
    )
    atomic_write_with(latent_cache, lambda tmp: np.save(tmp, latents))
    return images, latents


@DATASETS.register(
    "3dident",
    "3DIdent teapot renders, 250,000 / 25,000 colour 224->64x64 images, 10 binned latents",
    splits=SPLITS,
    files=lambda split: [ARCHIVES[split]],
    folder="3dident",
    image_shape=(3, 64, 64),
)
def load_threedident(
    root: str | Path | None = None,
    split: str = "train",
    path: str | Path | None = None,
    download: bool = True,
    size: int = 64,
    resample: str = "bilinear",
    bins: int = 20,
) -> BinnedGroundTruthDataset:
    """3DIdent ``split`` from ``path`` or ``<root>/3dident/``: renders resized to ``size``
    with the Pillow ``resample`` filter, latents cut into ``bins`` equal-frequency classes
    (module docstring)."""
    if split not in SPLITS:
        raise DataError(f"3dident has no split {split!r}; splits: {', '.join(SPLITS)}")
    size = check_size("3dident", size)
    check_choice("3dident", "resample", resample, RESAMPLE)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise DataError(f"dataset '3dident': option bins must be an integer >= 2, got {bins!r}")
    location, base = _locate(split, root, path, download)
    images, latents = _cached(location, base, split, size, resample)
    classes, kept, means = bin_latents(latents, bins, location)
    sizes = tuple(len(m) for m in means)
    if np.prod(np.asarray(sizes, dtype=float)) >= 2.0**62:
        raise DataError(
            f"dataset '3dident': {bins} bins for {len(sizes)} latents make a grid too large to "
            "index; use fewer bins"
        )
    known = latents.shape[1] == len(LATENT_NAMES)
    names = tuple(LATENT_NAMES[k] if known else f"latent_{k}" for k in kept)
    flat = np.ravel_multi_index(tuple(classes.T), sizes)
    if len(np.unique(flat)) < len(flat):
        raise DataError(
            f"dataset '3dident' ({split}): with bins={bins}, two images fall into the same "
            "classes of every latent, so factor lookups would be ambiguous; choose another "
            "number of bins (e.g. more)"
        )
    return BinnedGroundTruthDataset(
        name="3dident",
        images=images,
        split=split,
        factors=classes,
        factor_names=names,
        factor_sizes=sizes,
        factor_values=means,
        files=[location],
        latents=latents[:, kept],
    )
