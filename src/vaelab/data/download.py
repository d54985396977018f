"""Download dataset files with resume, check them against known checksums, explain failures.

A dataset declares its files as :class:`RemoteFile` entries. :func:`ensure_file` returns the
local path of a verified file, downloading it first when it is missing (``urllib`` only, with
HTTP Range resume of an interrupted ``<name>.part``). When a file cannot be had, the error
says where to put a copy downloaded by hand.

Verified checksums are remembered in ``<folder>/.vaelab-verified.json`` together with the
file's size and modification time, so that large files are hashed once, not at every load.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaelab.data.base import DataError

logger = logging.getLogger(__name__)

STAMP_NAME = ".vaelab-verified.json"
CHUNK = 1 << 20
DEFAULT_TIMEOUT = 30.0


class MissingFileError(DataError):
    """A dataset file is not on disk and could not be downloaded."""


class ChecksumError(DataError):
    """A dataset file is on disk (or was just downloaded) but its size or checksum is wrong."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name in the dataset folder, origin and expected checksum."""

    name: str
    url: str | None
    md5: str | None = None
    size: int | None = None
    git_blob: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        parts = Path(self.name).parts
        if not parts or Path(self.name).is_absolute() or ".." in parts:
            raise ValueError(f"RemoteFile name must be a relative path, got {self.name!r}")

    def expected_text(self) -> str:
        """What the file should look like, e.g. ``md5: f68b..., 9912422 bytes``."""
        items = []
        if self.md5:
            items.append(f"md5: {self.md5}")
        elif self.git_blob:
            items.append(f"git blob sha1: {self.git_blob}")
        if self.size is not None:
            items.append(f"{self.size} bytes")
        return ", ".join(items) if items else "no checksum recorded"


@dataclass
class FileStatus:
    """Result of :func:`verify_file`.

    ``status`` is one of ``ok``, ``missing``, ``size-mismatch``, ``checksum-mismatch`` or
    ``unchecked`` (present, but no checksum to compare with). ``expected`` and ``actual`` hold
    the compared digests (or ``"<n> bytes"`` for a size mismatch).
    """

    path: Path
    status: str
    expected: str | None = None
    actual: str | None = None

    @property
    def ok(self) -> bool:
        """True for a file that is present and not known to be wrong."""
        return self.status in ("ok", "unchecked")


def default_data_root() -> Path:
    """``$VAELAB_DATA`` if set, else ``~/.cache/vaelab/data``."""
    env = os.environ.get("VAELAB_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "vaelab" / "data"


def dataset_folder(dataset: str, root: str | Path | None = None) -> Path:
    """The folder of one dataset: ``root / dataset`` (``root`` defaults to the data root)."""
    base = Path(root).expanduser() if root is not None else default_data_root()
    return base / dataset


def _hash_file(path: Path, digest: Any, prefix: bytes = b"") -> str:
    digest.update(prefix)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def md5sum(path: str | Path) -> str:
    """MD5 hex digest of a file, read in chunks."""
    return _hash_file(Path(path), hashlib.md5(usedforsecurity=False))


def git_blob_sha1(path: str | Path) -> str:
    """SHA-1 of a file as ``git hash-object`` computes it (``blob <size>\\0`` + content)."""
    path = Path(path)
    header = f"blob {path.stat().st_size}\0".encode()
    return _hash_file(path, hashlib.sha1(usedforsecurity=False), header)


def _algorithm(file: RemoteFile) -> tuple[str, str, Callable[[Path], str]] | None:
    """(algorithm name, expected digest, hash function) for the file, or None."""
    if file.md5:
        return "md5", file.md5.lower(), md5sum
    if file.git_blob:
        return "git_blob", file.git_blob.lower(), git_blob_sha1
    return None


def _read_stamps(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_stamp(folder: Path, name: str, entry: dict[str, Any]) -> None:
    """Record a verified digest; failures (read-only folder) only cost a re-hash later."""
    stamps = _read_stamps(folder)
    stamps[name] = entry
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=STAMP_NAME, suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w") as fh:
            json.dump(stamps, fh, indent=1, sort_keys=True)
        os.replace(tmp, folder / STAMP_NAME)
    except OSError as exc:
        logger.debug("could not write checksum stamp in %s: %s", folder, exc)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _stamp_entry(st: os.stat_result, kind: str, digest: str) -> dict[str, Any]:
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "algo": kind, "digest": digest}


def _check(file: RemoteFile, path: Path, stamp_folder: Path | None) -> FileStatus:
    """Compare ``path`` with what ``file`` expects; use and update stamps in ``stamp_folder``."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return FileStatus(path, "missing")
    if file.size is not None and st.st_size != file.size:
        return FileStatus(path, "size-mismatch", f"{file.size} bytes", f"{st.st_size} bytes")
    algo = _algorithm(file)
    if algo is None:
        return FileStatus(path, "unchecked")
    kind, expected, hasher = algo
    entry = _stamp_entry(st, kind, expected)
    if stamp_folder is not None and _read_stamps(stamp_folder).get(file.name) == entry:
        return FileStatus(path, "ok", expected, expected)
    actual = hasher(path)
    if actual != expected:
        return FileStatus(path, "checksum-mismatch", expected, actual)
    if stamp_folder is not None:
        _write_stamp(stamp_folder, file.name, entry)
    return FileStatus(path, "ok", expected, actual)


def verify_file(file: RemoteFile, folder: Path) -> FileStatus:
    """Check ``folder / file.name`` against the expected size and checksum.

    A verified checksum is cached in ``folder/.vaelab-verified.json`` (keyed by name, with size
    and ``mtime_ns``); the cache is used only while the size and mtime are unchanged.
    """
    folder = Path(folder)
    return _check(file, folder / file.name, folder)


def verify_all(files: list[RemoteFile], folder: Path) -> list[FileStatus]:
    """:func:`verify_file` for every file, in order."""
    return [verify_file(f, folder) for f in files]


def _fix_line(file: RemoteFile, path: Path, folder: Path) -> str:
    return (
        f"  fix: download it by hand and place it at {path}, or set VAELAB_DATA / --data-root "
        f"to a folder that has {Path(folder.name) / file.name}"
    )


def _missing_message(
    file: RemoteFile, folder: Path, reason: str | None, skipped: str | None = None
) -> str:
    path = folder / file.name
    lines = [f"dataset file missing: {path}"]
    if reason:
        lines.append(f"  download failed: {reason}")
    if skipped:
        lines.append(f"  download: {skipped}")
    lines.append(f"  url: {file.url or 'none (manual download only)'}")
    if file.note:
        lines.append(f"  note: {file.note}")
    lines.append(f"  expected {file.expected_text()}")
    lines.append(_fix_line(file, path, folder))
    return "\n".join(lines)


def _checksum_message(
    file: RemoteFile, folder: Path, status: FileStatus, moved_to: Path | None
) -> str:
    path = folder / file.name
    what = "size" if status.status == "size-mismatch" else "checksum"
    lines = [f"dataset file has the wrong {what}: {path}"]
    lines.append(f"  expected {file.expected_text()}")
    if status.status == "size-mismatch":
        lines.append(f"  actual size: {status.actual}")
    else:
        label = "md5" if file.md5 else "git blob sha1"
        size = (moved_to or status.path).stat().st_size
        lines.append(f"  actual {label}: {status.actual}, {size} bytes")
    lines.append(f"  url: {file.url or 'none (manual download only)'}")
    if file.note:
        lines.append(f"  note: {file.note}")
    if moved_to is not None:
        lines.append(f"  the download was moved aside to {moved_to}; run again to retry")
    else:
        lines.append("  delete the file to download it again")
    lines.append(_fix_line(file, path, folder))
    return "\n".join(lines)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"URLError: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


class _Interrupted(OSError):
    """The server closed the connection before sending the whole body."""


def _fetch(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Download ``url`` into ``part``, resuming from its current length when possible."""
    offset = part.stat().st_size if part.exists() else 0
    while True:
        request = urllib.request.Request(url, headers={"User-Agent": "vaelab"})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and offset:
                logger.info("%s: server says %s is already complete", url, part)
                return
            raise
        status = getattr(response, "status", None)
        if offset and status == 206:
            match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if match and int(match.group(1)) == offset:
                break
            logger.warning("%s: unexpected Content-Range, restarting the download", url)
            response.close()
            offset = 0
            continue
        if offset:
            logger.info("%s: server ignored the Range request, restarting the download", url)
            offset = 0
        break
    with response:
        _copy_body(response, part, offset, progress)


def _copy_body(response: Any, part: Path, offset: int, progress: bool) -> None:
    """Write the response body to ``part`` (appending when ``offset`` > 0) with a progress bar."""
    from tqdm import tqdm

    length = response.headers.get("Content-Length")
    expected = int(length) if length and length.isdigit() else None
    received = 0
    with (
        open(part, "ab" if offset else "wb") as out,
        tqdm(
            total=None if expected is None else offset + expected,
            initial=offset,
            unit="B",
            unit_scale=True,
            desc=part.name.removesuffix(".part"),
            file=sys.stderr,
            disable=not progress,
        ) as bar,
    ):
        while chunk := response.read(CHUNK):
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    if expected is not None and received < expected:
        raise _Interrupted(
            f"connection closed after {offset + received} of {offset + expected} bytes "
            f"(the partial file {part} is kept; run again to resume)"
        )


def ensure_file(
    file: RemoteFile,
    folder: Path,
    download: bool = True,
    progress: bool | None = None,
    *,
    verify: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Return the path of a present, verified ``folder / file.name``, downloading it if missing.

    The download goes to ``<name>.part`` (resumed with an HTTP Range request when a partial
    file exists), is verified, then renamed atomically to the final name. A download with a
    wrong checksum is moved aside to ``<name>.corrupt``.

    Raises :class:`MissingFileError` when the file is missing and cannot be downloaded
    (``download=False``, no URL, or a network error; the cause is chained) and
    :class:`ChecksumError` when the file on disk or the downloaded copy is wrong.
    ``verify=False`` accepts a file already on disk as it is (for copies the user points to
    explicitly, which need not be the official bytes); a download is always verified.
    ``progress=None`` shows a bar when stderr is a terminal.
    """
    folder = Path(folder)
    path = folder / file.name
    if progress is None:
        progress = sys.stderr.isatty()
    if not verify and path.is_file():
        return path
    status = verify_file(file, folder)
    if status.ok:
        return path
    if status.status != "missing":
        raise ChecksumError(_checksum_message(file, folder, status, None))
    if not download or not file.url:
        why = "not attempted (download disabled)" if file.url else None
        raise MissingFileError(_missing_message(file, folder, None, why))

    part = path.with_name(path.name + ".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    if file.size is not None and part.exists() and part.stat().st_size > file.size:
        part.unlink()
    try:
        if file.size is None or not part.exists() or part.stat().st_size < file.size:
            logger.info("downloading %s -> %s", file.url, path)
            _fetch(file.url, part, timeout, progress)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise MissingFileError(_missing_message(file, folder, _reason(exc))) from exc

    got = _check(file, part, None)
    if not got.ok:
        corrupt = path.with_name(path.name + ".corrupt")
        os.replace(part, corrupt)
        raise ChecksumError(_checksum_message(file, folder, got, corrupt))
    os.replace(part, path)
    algo = _algorithm(file)
    if algo is not None:
        _write_stamp(folder, file.name, _stamp_entry(path.stat(), algo[0], algo[1]))
    logger.info("downloaded and verified %s", path)
    return path
