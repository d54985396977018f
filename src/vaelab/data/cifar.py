"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from the official "python version" archives.

``cifar-10-python.tar.gz`` holds ``cifar-10-batches-py/data_batch_1`` ... ``data_batch_5``
(train) and ``test_batch``; ``cifar-100-python.tar.gz`` holds ``cifar-100-python/train`` and
``test``. Each is a Python 2 pickle of a dict whose ``data`` is ``uint8 [N, 3072]``, one row
per image: 1024 red, then 1024 green, then 1024 blue values, each plane row-major, so a row
reshapes directly to ``[3, 32, 32]``. Labels are ``labels`` (CIFAR-10, 10 classes) or
``fine_labels`` (100 classes) and ``coarse_labels`` (20 superclasses). 50,000 train /
10,000 test images.

The archive in the data folder is checked against its md5 and extracted once, as torchvision
does, into ``cifar-10-batches-py/`` (or ``cifar-100-python/``) beside it: into a temporary
folder first, renamed into place only when complete
(:func:`vaelab.data.images.extract_tar`). An existing extracted folder (yours, or
torchvision's) is read as it is. ``path`` may name the ``.tar.gz`` (read without
extracting), the extracted folder, or a folder holding either.

Security: the batches are pickles. They are read with :func:`vaelab.data.safe_pickle.safe_load`,
which rebuilds only containers, strings, numbers and NumPy arrays, never other objects.
"""

from __future__ import annotations

import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from vaelab.data.base import DataError, ImageDataset
from vaelab.data.download import RemoteFile, dataset_folder, ensure_file
from vaelab.data.images import check_choice, extract_tar
from vaelab.data.safe_pickle import safe_loads
from vaelab.registry import DATASETS

SPLITS = ("train", "test")


@dataclass(frozen=True)
class CifarLayout:
    """What one CIFAR archive holds: its folder, the batch files of each split, label keys."""

    name: str
    archive: RemoteFile
    folder: str
    batches: dict[str, tuple[str, ...]]
    label_keys: dict[str, str]  # label kind ("fine", "coarse") -> key in the batch dict
    classes: dict[str, int]


CIFAR10 = CifarLayout(
    name="cifar10",
    archive=RemoteFile(
        "cifar-10-python.tar.gz",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        size=170_498_071,
    ),
    folder="cifar-10-batches-py",
    batches={
        "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test": ("test_batch",),
    },
    label_keys={"fine": "labels"},
    classes={"fine": 10},
)
CIFAR100 = CifarLayout(
    name="cifar100",
    archive=RemoteFile(
        "cifar-100-python.tar.gz",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
    ),
    folder="cifar-100-python",
    batches={"train": ("train",), "test": ("test",)},
    label_keys={"fine": "fine_labels", "coarse": "coarse_labels"},
    classes={"fine": 100, "coarse": 20},
)


def read_cifar_batch(
    data: bytes, where: str | Path, label_key: str = "labels", classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR batch -> images ``uint8 [N, 3, 32, 32]`` and labels ``int64 [N]``.

    ``where`` names the file in error messages.
    """
    try:
        batch = safe_loads(data, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as err:
        raise DataError(
            f"{where}: cannot unpickle the batch ({type(err).__name__}: {err}); the file is "
            "truncated, corrupt or not a CIFAR batch"
        ) from None
    if not isinstance(batch, dict):
        raise DataError(f"{where}: expected a pickled dict, found {type(batch).__name__}")
    # Python 2 wrote the keys as byte strings; encoding="bytes" keeps them so
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    missing = [k for k in ("data", label_key) if k not in batch]
    if missing:
        raise DataError(
            f"{where}: missing key(s) {missing}; found {sorted(map(str, batch))} (is it a "
            f"batch of the other CIFAR?)"
        )
    pixels = batch["data"]
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2:
        raise DataError(f"{where}: 'data' must be a uint8 array [N, 3072], got {_describe(pixels)}")
    if pixels.shape[1] != 3 * 32 * 32:
        raise DataError(f"{where}: 'data' has rows of {pixels.shape[1]} values, expected 3072")
    labels = np.asarray(batch[label_key])
    if (
        labels.ndim != 1
        or len(labels) != len(pixels)
        or not np.issubdtype(labels.dtype, np.integer)
    ):
        raise DataError(
            f"{where}: {label_key!r} must be {len(pixels)} integer labels, got {_describe(labels)}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise DataError(f"{where}: {label_key!r} has values outside 0..{classes - 1}")
    return pixels.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {list(value.shape)}"
    return type(value).__name__


# -- where the batches come from --------------------------------------------------------------
def _member_name(member: tarfile.TarInfo, layout: CifarLayout) -> str | None:
    """The file name inside ``layout.folder`` of a regular archive member, else None."""
    parts = PurePosixPath(member.name).parts
    parts = parts[1:] if parts[:1] == (".",) else parts
    if member.isfile() and len(parts) == 2 and parts[0] == layout.folder and parts[1] != "..":
        return parts[1]
    return None


def _read_archive(archive: Path, layout: CifarLayout, wanted: set[str] | None) -> dict[str, bytes]:
    """The files of ``layout.folder`` in a ``.tar.gz`` (those in ``wanted``, or all)."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = _member_name(member, layout)
                if name is None or (wanted is not None and name not in wanted):
                    continue
                handle = tar.extractfile(member)
                if handle is not None:
                    found[name] = handle.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise DataError(
            f"{archive}: cannot read the archive ({type(err).__name__}: {err}); it is not "
            f"{layout.archive.name}, or it is truncated or corrupt (delete it and download "
            "it again)"
        ) from None
    missing = sorted((wanted or set()) - set(found))
    if missing:
        raise DataError(
            f"{archive}: no {layout.folder}/{missing[0]} in the archive; is it the "
            f"official {layout.archive.name}?"
        )
    return found


def _read_folder(folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    out = {}
    for name in names:
        try:
            out[name] = (folder / name).read_bytes()
        except FileNotFoundError:
            raise DataError(
                f"missing CIFAR batch file: {folder / name}; delete the folder {folder} to "
                "extract the archive again, or point data.path at a complete copy"
            ) from None
    return out


def _batches(
    layout: CifarLayout,
    split: str,
    root: str | Path | None,
    path: str | Path | None,
    download: bool,
) -> tuple[dict[str, bytes], Path]:
    """The bytes of ``split``'s batch files, by name, and the folder or archive they are in."""
    names = layout.batches[split]
    if path is None:
        folder = dataset_folder(layout.name, root)
        extracted = folder / layout.folder
        if not extracted.is_dir():
            archive = ensure_file(layout.archive, folder, download=download)
            extracted = extract_tar(archive, layout.folder)
        return _read_folder(extracted, names), extracted
    path = Path(path)
    if path.is_file():
        return _read_archive(path, layout, set(names)), path
    for candidate in (path / layout.folder, path):
        if (candidate / names[0]).is_file():
            return _read_folder(candidate, names), candidate
    if (path / layout.archive.name).is_file():
        archive = path / layout.archive.name
        return _read_archive(archive, layout, set(names)), archive
    raise DataError(
        f"{path}: no {layout.name} files; expected {layout.folder}/{names[0]} (the extracted "
        f"archive), the batch files themselves, or {layout.archive.name}"
    )


def load_cifar(
    layout: CifarLayout,
    root: str | Path | None,
    split: str,
    path: str | Path | None,
    download: bool,
    labels: str = "fine",
) -> ImageDataset:
    """``split`` of a CIFAR dataset as ``uint8 [N, 3, 32, 32]`` with ``labels`` as labels."""
    if split not in layout.batches:
        raise DataError(f"{layout.name} has no split {split!r}; splits: {', '.join(SPLITS)}")
    check_choice(layout.name, "labels", labels, tuple(layout.label_keys))
    files, source = _batches(layout, split, root, path, download)
    key, classes = layout.label_keys[labels], layout.classes[labels]
    parts = [read_cifar_batch(files[n], source / n, key, classes) for n in layout.batches[split]]
    return ImageDataset(
        name=layout.name,
        images=np.concatenate([images for images, _ in parts]),
        split=split,
        labels=np.concatenate([lab for _, lab in parts]),
        files=[source / n for n in layout.batches[split]] if source.is_dir() else [source],
    )


@DATASETS.register(
    "cifar10",
    "CIFAR-10 natural images, 32x32 colour, 10 classes, 50,000 train / 10,000 test",
    splits=SPLITS,
    files=lambda split: [CIFAR10.archive],
    folder="cifar10",
    image_shape=(3, 32, 32),
)
def load_cifar10(
    root: str | Path | None = None,
    split: str = "train",
    path: str | Path | None = None,
    download: bool = True,
) -> ImageDataset:
    """CIFAR-10 from ``path`` or ``<root>/cifar10/`` (downloaded and extracted once)."""
    return load_cifar(CIFAR10, root, split, path, download)


@DATASETS.register(
    "cifar100",
    "CIFAR-100 natural images, 32x32 colour, 100 classes (20 coarse), 50,000 train / 10,000 test",
    splits=SPLITS,
    files=lambda split: [CIFAR100.archive],
    folder="cifar100",
    image_shape=(3, 32, 32),
)
def load_cifar100(
    root: str | Path | None = None,
    split: str = "train",
    path: str | Path | None = None,
    download: bool = True,
    labels: str = "fine",
) -> ImageDataset:
    """CIFAR-100 from ``path`` or ``<root>/cifar100/``; ``labels``: ``fine`` (100 classes) or
    ``coarse`` (the 20 superclasses)."""
    return load_cifar(CIFAR100, root, split, path, download, labels)
