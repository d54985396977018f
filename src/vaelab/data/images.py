"""Image-file datasets: decode once into a cached ``uint8`` ``.npy``, then memory-map it.

CelebA (202,599 JPEGs) and 3D Chairs (86,366 PNGs) are too many files to decode at every
start. :func:`cached_images` decodes, crops and resizes every image of a source once, with
Pillow, into ``uint8 [N, C, S, S]``; the array is written to a temporary file and renamed
into place only when complete (an interrupted build leaves no cache behind), then opened
memory-mapped. A split is a contiguous run of rows (a memory map of just those rows) or, if
it is scattered, a copy of its rows in memory.

Resizing uses Pillow's filters, which widen their support when they shrink an image (so
"bilinear" is antialiased, as in torchvision's ``Resize`` on PIL images). The filter changes
pixel statistics, so it is part of the cache name and must be reported with results.

:func:`cached_array` is the same once-only, atomic build for arrays that come from elsewhere
(the HDF5 of 3D Shapes, the npz of MPI3D, the matrices of SmallNORB and Cars3D).

For sources that change or have no checksum (your own folders, FFHQ, ImageNet),
:func:`stamped_cache` ties a cache to a :func:`fingerprint` of its source files and builds it
again when they change. :class:`FileTree` lists the images of a folder tree or a zip,
:class:`TarSource` reads files out of a tar, :func:`extract_tar` extracts an archive's
folder once, and :func:`seeded_holdout` with
:func:`holdout_rows` makes a seeded validation split whose cache holds the training images
first, so that both splits are memory maps of contiguous rows.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import gzip
import hashlib
import io
import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path, PurePosixPath

import numpy as np

from vaelab.data.base import DataError
from vaelab.rundir import atomic_write_text, atomic_write_with

logger = logging.getLogger(__name__)

RESAMPLE = ("bilinear", "bicubic", "lanczos")
"""Pillow filters a dataset can be resized with (``lanczos`` is the old ``Image.ANTIALIAS``)."""

Box = tuple[int, int, int, int]
"""A crop box ``(left, top, right, bottom)`` in pixels, right and bottom exclusive (Pillow)."""

CHUNK = 512  # images decoded per batch of thread-pool work


class ImageSource(abc.ABC):
    """Image files in a folder or in one archive: ``names`` (sorted) and ``open()``, a
    context giving a reader ``name -> bytes``. Subclasses list the files and implement
    :meth:`_open_archive`."""

    location: Path
    names: list[str]

    @contextlib.contextmanager
    def open(self) -> Iterator[Callable[[str], bytes]]:
        if self.location.is_dir():
            yield self._read_file
            return
        with self._open_archive() as read:
            yield read

    @abc.abstractmethod
    def _open_archive(self) -> AbstractContextManager[Callable[[str], bytes]]:
        """A context giving a reader for the archive at ``location``."""

    def _read_file(self, name: str) -> bytes:
        try:
            return (self.location / name).read_bytes()
        except OSError as err:
            raise DataError(f"cannot read {self.location / name}: {err}") from None


def check_choice(dataset: str, option: str, value: object, allowed: Sequence[object]) -> None:
    """Raise :class:`DataError` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        listed = ", ".join(repr(a) for a in allowed)
        raise DataError(
            f"dataset {dataset!r}: option {option} must be one of {listed}, got {value!r}"
        )


def check_size(dataset: str, size: object) -> int:
    """``size`` as a positive int, or :class:`DataError`."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DataError(
            f"dataset {dataset!r}: option size must be a positive integer, got {size!r}"
        )
    return size


def decode_image(data: bytes, box: Box | None, size: int, resample: str, mode: str) -> np.ndarray:
    """Encoded image bytes -> ``uint8 [C, size, size]``: crop to ``box``, resize, convert.

    ``mode`` is a Pillow mode, ``"RGB"`` (C = 3) or ``"L"`` (C = 1, ITU-R 601-2 luma:
    L = 0.299 R + 0.587 G + 0.114 B). Conversion comes last, as in the references, which
    resize colour images and convert them to grey when they are loaded.
    """
    from PIL import Image

    image = _open_rgb(data)
    if box is not None:
        width, height = image.size
        if box[2] > width or box[3] > height:
            raise ValueError(f"image is {width}x{height}, smaller than the crop box {box}")
        image = image.crop(box)
    if image.size != (size, size):
        filter_ = getattr(Image.Resampling, resample.upper())
        image = image.resize((size, size), resample=filter_)
    return _channels_first(image, mode)


def decode_resize_crop(data: bytes, resize: int, size: int, resample: str, mode: str) -> np.ndarray:
    """Encoded image bytes -> ``uint8 [C, size, size]`` as torchvision's ``Resize(resize)``
    then ``CenterCrop(size)`` do on PIL images.

    The shorter side is scaled to ``resize`` and the longer one to
    ``int(resize * long / short)`` (the aspect ratio is kept); then the centre
    ``size x size`` is cut out, at offsets ``round((side - size) / 2)``. ``resize`` must be at
    least ``size``. pytorch-proVLAE prepares DTD and Flowers102 this way (146, then 128).
    """
    from PIL import Image

    image = _open_rgb(data)
    width, height = image.size
    if width <= height:
        scaled = (resize, int(resize * height / width))
    else:
        scaled = (int(resize * width / height), resize)
    if scaled != image.size:
        image = image.resize(scaled, resample=getattr(Image.Resampling, resample.upper()))
    left = round((scaled[0] - size) / 2)  # halves to even, as torchvision's CenterCrop
    top = round((scaled[1] - size) / 2)
    return _channels_first(image.crop((left, top, left + size, top + size)), mode)


def decode_exact(data: bytes, size: int) -> np.ndarray:
    """Encoded bytes of a ``size x size`` image -> ``uint8 [3, size, size]``, never resized
    (a ``ValueError`` for any other size: such a file does not belong to the dataset)."""
    image = _open_rgb(data)
    if image.size != (size, size):
        raise ValueError(f"image is {image.size[0]}x{image.size[1]}, expected {size}x{size}")
    return _channels_first(image, "RGB")


def _open_rgb(data: bytes):
    """Decode encoded bytes into an RGB Pillow image (palette, grey and RGBA files become RGB;
    of an animated GIF or WebP, the first frame)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as encoded:
        return encoded.convert("RGB")


def _channels_first(image, mode: str) -> np.ndarray:
    """A Pillow image converted to ``mode`` -> ``uint8 [C, H, W]``."""
    pixels = np.asarray(image.convert(mode), dtype=np.uint8)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


Reader = Callable[[str], bytes]
"""Encoded bytes of one image, by its name in the source."""


def cached_images(
    cache: Path,
    names: Sequence[str],
    open_source: Callable[[], AbstractContextManager[Reader]],
    decode: Callable[[bytes], np.ndarray],
    image_shape: tuple[int, int, int],
    source: Path,
) -> np.memmap:
    """The images ``names`` as a read-only memory map of ``cache``, building it if needed.

    ``open_source()`` is a context manager giving a :data:`Reader` (an open archive or
    folder); ``decode`` turns encoded bytes into ``uint8 image_shape``. The cache is built
    and reused as :func:`cached_array` says. ``source`` names the file or folder the images
    come from, for messages.
    """

    def fill(out: np.ndarray) -> None:
        with open_source() as read:
            _decode_all(out, names, read, decode, source)

    return cached_array(cache, (len(names), *image_shape), fill, source)


def cached_array(
    cache: Path, shape: tuple[int, ...], fill: Callable[[np.ndarray], None], source: Path
) -> np.memmap:
    """``cache``, a ``uint8`` ``.npy`` of ``shape``, as a read-only memory map.

    An existing cache is used when its shape is ``shape``; otherwise ``fill(out)`` writes
    every element of a new ``uint8`` memory map ``out`` of that shape, which is written to a
    temporary file and renamed into place only when complete (an interrupted build leaves no
    cache behind). ``source`` names what the array is built from, for messages.
    """
    array = open_npy(cache)
    if array is not None and array.shape == shape and array.dtype == np.uint8:
        return array
    if array is not None:
        logger.warning("%s holds %s, expected %s: building it again", cache, array.shape, shape)
        del array

    def write(tmp: Path) -> None:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        fill(out)
        out.flush()
        del out

    logger.info("building %s from %s", cache, source)
    try:
        atomic_write_with(cache, write)
    except OSError as err:
        raise DataError(
            f"cannot write the cache {cache} ({err}); the folder must be writable "
            f"(or copy {source} to a writable data folder)"
        ) from None
    array = open_npy(cache)
    if array is None:
        raise DataError(f"{cache}: the cache just written cannot be read back")
    return array


def _decode_all(
    out: np.ndarray,
    names: Sequence[str],
    read: Reader,
    decode: Callable[[bytes], np.ndarray],
    source: Path,
) -> None:
    from tqdm import tqdm

    # Reading stays in this thread (tar and folder reads are sequential); Pillow releases
    # the GIL while it decodes and resizes, so decoding in threads uses every core.
    workers = max(1, min(8, os.cpu_count() or 1))
    with (
        ThreadPoolExecutor(workers) as pool,
        tqdm(total=len(names), desc=f"decoding {source.name}", unit="img", disable=None) as bar,
    ):
        for start in range(0, len(names), CHUNK):
            chunk = names[start : start + CHUNK]
            encoded = [read(name) for name in chunk]
            decoded = pool.map(lambda n, d: _decode_one(decode, n, d, source), chunk, encoded)
            for offset, pixels in enumerate(decoded):
                out[start + offset] = pixels
            bar.update(len(chunk))


def _decode_one(
    decode: Callable[[bytes], np.ndarray], name: str, data: bytes, source: Path
) -> np.ndarray:
    try:
        return decode(data)
    except Exception as err:  # Pillow raises many types for damaged files
        raise DataError(
            f"{source}: cannot decode {name} ({type(err).__name__}: {err}); the file is "
            "truncated or corrupt"
        ) from None


def open_npy(path: Path) -> np.memmap | None:
    """``path`` memory-mapped read-only, or None when it is absent or not a whole ``.npy``."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None


def rows_of(
    names: Sequence[str], wanted: Iterable[str], listed_in: Path, source: Path
) -> np.ndarray:
    """Rows in ``names`` of the ``wanted`` names, which the file ``listed_in`` lists;
    :class:`DataError` naming both files when one of them is not among the images."""
    index = {name: row for row, name in enumerate(names)}
    rows = []
    for name in wanted:
        if name not in index:
            raise DataError(
                f"{listed_in} lists {name}, which is not among the {len(names)} images of "
                f"{source}; are the images complete?"
            )
        rows.append(index[name])
    return np.asarray(rows, dtype=np.int64)


def select_rows(images: np.memmap, rows: np.ndarray) -> np.ndarray:
    """``images[rows]``: a memory map of just those rows when they are contiguous and in
    order (what DataLoader workers can reopen by file name), else a copy in memory."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == len(images) and (rows == np.arange(len(images))).all():
        return images
    if len(rows) and (np.diff(rows) == 1).all():
        row_bytes = int(np.prod(images.shape[1:]))
        return np.memmap(
            images.filename,
            dtype=np.uint8,
            mode="r",
            offset=images.offset + int(rows[0]) * row_bytes,
            shape=(len(rows), *images.shape[1:]),
        )
    return np.asarray(images[rows])


# -- files in a folder tree or a zip, archives extracted once, caches tied to their sources ---
def _visible_parts(name: str) -> tuple[str, ...] | None:
    """The parts of a relative POSIX path, or None for a hidden file or folder (``.*``,
    macOS ``__MACOSX/._*`` copies) and for anything absolute or with ``..``."""
    parts = PurePosixPath(name).parts
    if parts[:1] == (".",):
        parts = parts[1:]
    if not parts or name.startswith("/") or any(p == ".." or p.startswith(".") for p in parts):
        return None
    if parts[0] == "__MACOSX":
        return None
    return parts


class FileTree(ImageSource):
    """The files ``keep(name)`` accepts anywhere below a folder or in a zip.

    ``names`` are POSIX paths relative to the folder (or zip member names), sorted; hidden
    files and folders are skipped; ``members`` maps each name to its zip member. For a
    folder, ``entries`` holds ``(name, size, mtime_ns)`` of every file, for
    :func:`fingerprint` (read when first asked for). ``what`` describes the files for
    messages.
    """

    def __init__(self, location: Path, keep: Callable[[str], bool], what: str):
        self.location = location
        self.members: dict[str, str] = {}
        if location.is_dir():
            self.names = _walk(location, keep)
        else:
            try:
                with zipfile.ZipFile(location) as archive:
                    listed = archive.namelist()
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise DataError(
                    f"{location}: not a readable zip file ({err}); it is truncated or "
                    "corrupt, delete it and download it again"
                ) from None
            for member in listed:
                parts = _visible_parts(member)
                if parts is not None and not member.endswith("/") and keep("/".join(parts)):
                    self.members["/".join(parts)] = member
            self.names = sorted(self.members)
        if not self.names:
            raise DataError(f"{location}: no {what} found")

    @contextlib.contextmanager
    def _open_archive(self) -> Iterator[Reader]:
        with zipfile.ZipFile(self.location) as archive:

            def read(name: str) -> bytes:
                try:
                    return archive.read(self.members[name])
                except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
                    raise DataError(
                        f"{self.location}: cannot read {self.members[name]} ({err}); the zip "
                        "is truncated or corrupt"
                    ) from None

            yield read

    @functools.cached_property
    def entries(self) -> list[tuple[str, int, int]]:
        """``(name, size, mtime_ns)`` of every file of a folder (none for a zip)."""
        if not self.location.is_dir():
            return []
        found = []
        for name in self.names:
            try:
                st = os.stat(self.location / name)
            except OSError as err:
                raise DataError(f"cannot read {self.location / name}: {err}") from None
            found.append((name, st.st_size, st.st_mtime_ns))
        return found


def _walk(folder: Path, keep: Callable[[str], bool]) -> list[str]:
    """Relative names of the visible files below ``folder`` that ``keep`` accepts, sorted
    (symbolic links to folders are not followed)."""
    found = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        base = Path(current).relative_to(folder).as_posix()
        for file in files:
            name = file if base == "." else f"{base}/{file}"
            if not file.startswith(".") and keep(name):
                found.append(name)
    return sorted(found)


class TarSource(ImageSource):
    """Files read out of a tar (any compression) by name: a subclass lists :meth:`tar` and
    fills ``members`` (name -> member); each read checks that the whole member came out."""

    members: dict[str, tarfile.TarInfo]

    @contextlib.contextmanager
    def tar(self) -> Iterator[tarfile.TarFile]:
        """The open tar; :class:`DataError` when it cannot be read."""
        try:
            with tarfile.open(self.location, "r:*") as tar:
                yield tar
        except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
            raise DataError(
                f"{self.location}: cannot read the tar ({type(err).__name__}: {err}); it is "
                "truncated or corrupt, delete it and download it again"
            ) from None

    @contextlib.contextmanager
    def _open_archive(self) -> Iterator[Reader]:
        with self.tar() as tar:

            def read(name: str) -> bytes:
                member = self.members[name]
                try:
                    handle = tar.extractfile(member)
                    data = handle.read() if handle is not None else b""
                except (tarfile.TarError, OSError, EOFError) as err:
                    raise DataError(f"{self.location}: cannot read {member.name} ({err})") from None
                if len(data) != member.size:
                    raise DataError(f"{self.location}: {member.name} is cut short; truncated tar?")
                return data

            yield read


def extract_tar(archive: Path, top: str) -> Path:
    """The folder ``top`` of a tar (any compression) extracted beside it, once.

    Only regular files below ``top/`` are written (no links, devices, absolute paths or
    ``..``), into a temporary folder that is renamed to ``<archive folder>/<top>`` when every
    file is on disk, so an interrupted extraction leaves nothing behind. An existing folder
    is returned as it is.
    """
    target = archive.parent / top
    if target.is_dir():
        return target
    tmp: Path | None = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{top}.tmp-", dir=archive.parent))
        if not _extract_into(archive, top, tmp):
            raise DataError(f"{archive}: the archive has no {top}/ folder; is it the right file?")
        os.rename(tmp, target)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(
            f"{archive}: cannot read the archive ({type(err).__name__}: {err}); it is "
            "truncated or corrupt, delete it and download it again"
        ) from None
    except OSError as err:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if not target.is_dir():  # else another process got there first
            raise DataError(
                f"cannot extract {archive} into {target} ({err}); the folder must be "
                "writable (or extract the archive there yourself)"
            ) from None
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _extract_into(archive: Path, top: str, tmp: Path) -> int:
    """Write the regular files below ``top/`` of ``archive`` into ``tmp``; how many."""
    written = 0
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            parts = _visible_parts(member.name)
            if not member.isreg() or parts is None or len(parts) < 2 or parts[0] != top:
                continue
            dest = tmp.joinpath(*parts[1:])
            dest.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(dest, "wb") as out:  # type: ignore[union-attr]
                shutil.copyfileobj(src, out)
                out.flush()
                os.fsync(out.fileno())
            written += 1
    return written


def fingerprint(entries: Iterable[tuple[str, int, int]]) -> str:
    """A hex digest of ``(name, size, mtime_ns)`` triples: it changes when a file is added,
    removed, resized or rewritten."""
    digest = hashlib.sha1(usedforsecurity=False)
    for name, size, mtime_ns in entries:
        digest.update(f"{name}\0{size}\0{mtime_ns}\n".encode())
    return digest.hexdigest()


def file_entries(paths: Iterable[Path]) -> list[tuple[str, int, int]]:
    """``(name, size, mtime_ns)`` of each file, for :func:`fingerprint`."""
    return [(path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in paths]


def stamped_cache(
    cache: Path, stamp: str, build: Callable[[], np.memmap], extra: Sequence[Path] = ()
) -> np.memmap:
    """``cache`` (memory-mapped) if it was built from sources whose :func:`fingerprint` is
    ``stamp``; otherwise it is removed and ``build()`` writes it (and the ``extra`` files that
    belong to it) again.

    The stamp is kept in ``<cache>.source`` and written last, so an interrupted build is
    redone and a cache never outlives a change of its sources.
    """
    marker = cache.with_name(cache.name + ".source")
    try:
        current: str | None = marker.read_text().strip()
    except OSError:
        current = None
    if current == stamp and all(path.is_file() for path in extra):
        images = open_npy(cache)
        if images is not None and images.dtype == np.uint8 and images.ndim == 4:
            return images
    if current is not None:
        logger.info("%s was built from other files: building it again", cache)
    for path in (marker, cache, *extra):
        path.unlink(missing_ok=True)
    images = build()
    atomic_write_text(marker, stamp + "\n")
    return images


def seeded_holdout(n: int, valid: int, seed: int, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, valid rows) of ``n`` images, each sorted: the last ``valid`` entries of
    ``np.random.RandomState(seed).permutation(n)`` are held out.

    This is what VDVAE's ``data.py`` does (``np.random.seed(seed)`` then
    ``np.random.permutation(n)``); NumPy keeps the legacy ``RandomState`` streams fixed, so
    the rows are the same on every NumPy version.
    """
    if not 0 <= valid < n:
        raise DataError(
            f"dataset {dataset!r}: cannot hold out {valid} validation images of {n} "
            "(keep at least one for training)"
        )
    order = np.random.RandomState(seed).permutation(n)
    return np.sort(order[: n - valid]), np.sort(order[n - valid :])


def holdout_rows(dataset: str, split: str, n_train: int, n: int) -> np.ndarray:
    """Rows of ``split`` (``train``, ``valid`` or ``all``) in a cache that holds the
    ``n_train`` training images first and the validation images after them, so that each
    split is a contiguous run of rows (:func:`select_rows` memory-maps it)."""
    start, stop = {"train": (0, n_train), "valid": (n_train, n), "all": (0, n)}[split]
    if start == stop:
        raise DataError(
            f"dataset {dataset!r}: the {split} split is empty ({n_train} training and "
            f"{n - n_train} validation images)"
        )
    return np.arange(start, stop)
