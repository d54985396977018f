"""MNIST, Fashion-MNIST (IDX files) and statically binarized MNIST (Larochelle & Murray 2011).

IDX format (LeCun et al.): a big-endian header ``0x00 0x00 <type> <ndim>``, ``ndim`` int32
sizes, then the data in C order. Images are stored as uint8 ``[N, 1, 28, 28]``; the official
train/test split is kept (60,000 / 10,000).

Binarized MNIST: text ``.amat`` files (one image per line, 784 values 0/1 separated by spaces),
50,000 / 10,000 / 10,000 for train / valid / test, read as-is or gzip-compressed
(``.amat.gz``). Stored as uint8 {0, 1}.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from vaelab.data.base import DataError, ImageDataset
from vaelab.data.download import ChecksumError, RemoteFile, dataset_folder, ensure_file
from vaelab.registry import DATASETS

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_maybe_gzip(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            head = handle.read(2)
            handle.seek(0)
            if head == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=handle) as unzipped:
                    return unzipped.read()
            return handle.read()
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"{path}: cannot decompress ({err}); the file is truncated or "
            "corrupt, delete it and download it again"
        ) from None


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a NumPy array."""
    path = Path(path)
    raw = _read_maybe_gzip(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(
            f"{path}: not an IDX file (header bytes {raw[:4].hex() or 'empty'}; "
            "expected 0000 then a type code and the number of dimensions)"
        )
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: IDX header truncated")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    body = len(raw) - 4 - 4 * ndim
    if body != expected:
        raise DataError(
            f"{path}: IDX header says shape {list(shape)} ({expected} data bytes) "
            f"but the file has {body}; it is truncated or corrupt"
        )
    return (
        np.frombuffer(raw, dtype, offset=4 + 4 * ndim)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def _idx_files(
    base_url: str, md5s: dict[str, str], sizes: dict[str, int]
) -> dict[str, list[RemoteFile]]:
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        names = [f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"]
        out[split] = [RemoteFile(n, base_url + n, md5=md5s[n], size=sizes.get(n)) for n in names]
    return out


MNIST_FILES = _idx_files(
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    {
        "train-images-idx3-ubyte.gz": 9912422,
        "train-labels-idx1-ubyte.gz": 28881,
        "t10k-images-idx3-ubyte.gz": 1648877,
        "t10k-labels-idx1-ubyte.gz": 4542,
    },
)
FASHION_FILES = _idx_files(
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    {
        "train-images-idx3-ubyte.gz": 26421880,
        "train-labels-idx1-ubyte.gz": 29515,
        "t10k-images-idx3-ubyte.gz": 4422102,
        "t10k-labels-idx1-ubyte.gz": 5148,
    },
)
IDX_SIZES = {"train": 60_000, "test": 10_000}


def read_idx_pair(images_path: Path, labels_path: Path, name: str, split: str) -> ImageDataset:
    """An image IDX file and its label IDX file as an :class:`ImageDataset`."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{images_path}: expected uint8 images [N, H, W], got {images.dtype} "
            f"{list(images.shape)}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{labels_path}: expected {len(images)} labels [N], got shape {list(labels.shape)}"
        )
    return ImageDataset(
        name=name,
        images=images[:, None],
        split=split,
        labels=labels.astype(np.int64),
        files=[images_path, labels_path],
    )


def _idx_loader(name: str, files: dict[str, list[RemoteFile]]):
    def load(
        root: str | Path | None = None,
        split: str = "train",
        path: str | Path | None = None,
        download: bool = True,
    ) -> ImageDataset:
        if split not in files:
            raise DataError(f"{name} has no split {split!r}; splits: {', '.join(files)}")
        folder = Path(path) if path is not None else dataset_folder(name, root)
        images, labels = (
            ensure_file(f, folder, download=download, verify=path is None) for f in files[split]
        )
        dataset = read_idx_pair(images, labels, name, split)
        if len(dataset) != IDX_SIZES[split]:
            raise DataError(
                f"{images}: {name} {split} should have {IDX_SIZES[split]} images, "
                f"found {len(dataset)}"
            )
        return dataset

    load.__doc__ = (
        f"{name} from ``path`` (a folder) or ``<root>/{name}/``; splits {', '.join(files)}."
    )
    return load


load_mnist = DATASETS.register(
    "mnist",
    "MNIST handwritten digits, 28x28 grey, 60,000 train / 10,000 test",
    splits=tuple(MNIST_FILES),
    files=MNIST_FILES.__getitem__,
    folder="mnist",
    image_shape=(1, 28, 28),
)(_idx_loader("mnist", MNIST_FILES))
load_fashion_mnist = DATASETS.register(
    "fashion-mnist",
    "Fashion-MNIST clothing, 28x28 grey, 60,000 train / 10,000 test",
    splits=tuple(FASHION_FILES),
    files=FASHION_FILES.__getitem__,
    folder="fashion-mnist",
    image_shape=(1, 28, 28),
)(_idx_loader("fashion-mnist", FASHION_FILES))


# -- binarized MNIST ------------------------------------------------------------------------
_AMAT_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
BINARIZED_FILES = {
    split: [
        RemoteFile(
            f"binarized_mnist_{split}.amat",
            _AMAT_URL + f"binarized_mnist_{split}.amat",
            md5=md5,
            size=size,
        )
    ]
    for split, md5, size in (
        ("train", "db28b1a6ae0fe70cbd3da91acf46e477", 78_400_000),
        ("valid", "bf37822a04e94123630de6a7dfd9c9ef", 15_680_000),
        ("test", "14e41ae11040adba6ab8cb291eda0dd8", 15_680_000),
    )
}
BINARIZED_SIZES = {"train": 50_000, "valid": 10_000, "test": 10_000}


def read_amat(path: str | Path) -> np.ndarray:
    """A binarized-MNIST ``.amat`` (or ``.amat.gz``) text file -> uint8 ``[N, 784]`` of 0/1."""
    path = Path(path)
    raw = np.frombuffer(_read_maybe_gzip(path), np.uint8)
    ones, zeros = raw == ord("1"), raw == ord("0")
    newline = raw == ord("\n")
    other = ~(ones | zeros | newline | (raw == ord(" ")) | (raw == ord("\r")))
    if other.any():
        pos = int(np.argmax(other))
        raise DataError(
            f"{path}: unexpected byte {bytes(raw[pos : pos + 1])!r} at offset {pos}; "
            "an .amat file holds only 0/1 values separated by spaces"
        )
    rows = int(newline.sum()) + (1 if len(raw) and raw[-1] != ord("\n") else 0)
    digits = raw[ones | zeros] - ord("0")
    if rows == 0 or len(digits) != rows * 784:
        raise DataError(
            f"{path}: expected 784 values per line, found {len(digits)} values on "
            f"{rows} lines; the file is truncated or not binarized MNIST"
        )
    return digits.reshape(rows, 784)


def binarized_file(split: str, folder: Path, download: bool, verify: bool = True) -> Path:
    """The split's ``.amat``, or its ``.amat.gz`` copy if only that is present.

    A ``.amat.gz`` is checked by the md5 of its decompressed content, which is the official
    ``.amat`` checksum.
    """
    remote = BINARIZED_FILES[split][0]
    gz = folder / (remote.name + ".gz")
    if not (folder / remote.name).exists() and gz.exists():
        if verify:
            digest = hashlib.md5(_read_maybe_gzip(gz)).hexdigest()
            if digest != remote.md5:
                raise ChecksumError(
                    f"{gz}: decompressed md5 {digest}, expected {remote.md5} (the official "
                    f"{remote.name}); delete it or download {remote.url}"
                )
        return gz
    return ensure_file(remote, folder, download=download, verify=verify)


@DATASETS.register(
    "binarized-mnist",
    "MNIST with the fixed binarization of Larochelle & Murray (2011), 50k / 10k / 10k",
    splits=tuple(BINARIZED_FILES),
    files=BINARIZED_FILES.__getitem__,
    folder="binarized-mnist",
    image_shape=(1, 28, 28),
)
def load_binarized_mnist(
    root: str | Path | None = None,
    split: str = "train",
    path: str | Path | None = None,
    download: bool = True,
) -> ImageDataset:
    """Binarized MNIST from ``path`` (a folder) or ``<root>/binarized-mnist/``
    (``.amat`` or ``.amat.gz``); splits train, valid, test."""
    if split not in BINARIZED_FILES:
        raise DataError(
            f"binarized-mnist has no split {split!r}; splits: {', '.join(BINARIZED_FILES)}"
        )
    folder = Path(path) if path is not None else dataset_folder("binarized-mnist", root)
    file = binarized_file(split, folder, download, verify=path is None)
    pixels = read_amat(file)
    if len(pixels) != BINARIZED_SIZES[split]:
        raise DataError(
            f"{file}: binarized-mnist {split} should have {BINARIZED_SIZES[split]} "
            f"images, found {len(pixels)}"
        )
    return ImageDataset(
        name="binarized-mnist", images=pixels.reshape(-1, 1, 28, 28), split=split, files=[file]
    )
