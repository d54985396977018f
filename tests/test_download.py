"""Tests of vaelab.data.download against a small HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from vaelab.data import download as dl
from vaelab.data.base import DataError
from vaelab.data.download import (
    ChecksumError,
    MissingFileError,
    RemoteFile,
    dataset_folder,
    default_data_root,
    ensure_file,
    git_blob_sha1,
    md5sum,
    verify_all,
    verify_file,
)

CONTENT = bytes(range(256)) * 1200  # 307200 bytes
CONTENT_MD5 = hashlib.md5(CONTENT).hexdigest()
NAME = "train-images.gz"


@pytest.fixture
def server(http_server):
    """The 127.0.0.1 server of ``conftest.py`` serving CONTENT at ``server.url``."""
    http_server.content = CONTENT
    http_server.url = http_server.base_url + NAME
    return http_server


def _remote(url: str | None, md5: str | None = CONTENT_MD5, size: int | None = len(CONTENT)):
    return RemoteFile(NAME, url, md5=md5, size=size)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- downloads --------------------------------------------------------------------------------
def test_download_verifies_and_leaves_no_part(server, tmp_path):
    folder = tmp_path / "mnist"
    path = ensure_file(_remote(server.url), folder)
    assert path == folder / NAME
    assert path.read_bytes() == CONTENT
    assert not (folder / f"{NAME}.part").exists()
    assert server.requests == [None]
    assert verify_file(_remote(server.url), folder).status == "ok"


def test_progress_bar_goes_to_stderr(server, tmp_path, capsys):
    ensure_file(_remote(server.url), tmp_path, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "train-images.gz" in captured.err


def test_interrupted_download_resumes_with_range(server, tmp_path):
    server.mode = "truncate"
    with pytest.raises(MissingFileError) as info:
        ensure_file(_remote(server.url), tmp_path)
    message = str(info.value)
    assert "connection closed after 100000 of 307200 bytes" in message
    assert server.url in message
    part = tmp_path / f"{NAME}.part"
    assert part.stat().st_size == 100_000
    assert not (tmp_path / NAME).exists()

    server.mode = "normal"
    path = ensure_file(_remote(server.url), tmp_path)
    assert server.requests == [None, "bytes=100000-"]
    assert md5sum(path) == CONTENT_MD5
    assert not part.exists()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    (tmp_path / f"{NAME}.part").write_bytes(b"junk" * 1000)
    server.mode = "ignore-range"
    path = ensure_file(_remote(server.url), tmp_path)
    assert server.requests == ["bytes=4000-"]
    assert path.read_bytes() == CONTENT


def test_unexpected_content_range_restarts(server, tmp_path):
    (tmp_path / f"{NAME}.part").write_bytes(CONTENT[:5000])
    server.mode = "bad-range"
    path = ensure_file(_remote(server.url), tmp_path)
    assert server.requests == ["bytes=5000-", None]
    assert path.read_bytes() == CONTENT


def test_416_means_part_is_complete(server, tmp_path):
    (tmp_path / f"{NAME}.part").write_bytes(CONTENT)
    path = ensure_file(_remote(server.url, size=None), tmp_path)
    assert server.requests == [f"bytes={len(CONTENT)}-"]
    assert path.read_bytes() == CONTENT


def test_checksum_mismatch_after_download(server, tmp_path):
    server.mode = "wrong"
    wrong_md5 = hashlib.md5(bytes(b ^ 0xFF for b in CONTENT)).hexdigest()
    with pytest.raises(ChecksumError) as info:
        ensure_file(_remote(server.url), tmp_path)
    message = str(info.value)
    target = tmp_path / NAME
    assert f"expected md5: {CONTENT_MD5}, {len(CONTENT)} bytes" in message
    assert f"actual md5: {wrong_md5}" in message
    assert server.url in message
    assert f"place it at {target}" in message
    assert isinstance(info.value, DataError)
    assert not target.exists()
    assert not (tmp_path / f"{NAME}.part").exists()
    assert md5sum(tmp_path / f"{NAME}.corrupt") == wrong_md5


def test_offline_raises_missing_file_error(tmp_path):
    url = f"http://127.0.0.1:{_free_port()}/{NAME}"
    folder = tmp_path / "mnist"
    with pytest.raises(MissingFileError) as info:
        ensure_file(_remote(url), folder, timeout=5)
    message = str(info.value)
    target = folder / NAME
    assert message.startswith(f"dataset file missing: {target}\n")
    assert "download failed: URLError:" in message
    assert f"url: {url}" in message
    assert f"expected md5: {CONTENT_MD5}, {len(CONTENT)} bytes" in message
    assert f"fix: download it by hand and place it at {target}" in message
    assert f"a folder that has {Path('mnist') / NAME}" in message
    assert info.value.__cause__ is not None


def test_timeout_raises_missing_file_error(server, tmp_path):
    server.mode = "stall"
    with pytest.raises(MissingFileError) as info:
        ensure_file(_remote(server.url), tmp_path, timeout=0.3)
    assert "timed out" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)


def test_download_false_does_not_touch_the_network(server, tmp_path):
    with pytest.raises(MissingFileError) as info:
        ensure_file(_remote(server.url), tmp_path, download=False)
    assert server.requests == []
    message = str(info.value)
    assert "download failed" not in message
    assert "download: not attempted (download disabled)" in message
    assert f"place it at {tmp_path / NAME}" in message


def test_manual_only_file_names_the_note(tmp_path):
    file = RemoteFile(NAME, None, md5=CONTENT_MD5, note="Google Drive quotas block downloads")
    with pytest.raises(MissingFileError) as info:
        ensure_file(file, tmp_path)
    message = str(info.value)
    assert "url: none (manual download only)" in message
    assert "note: Google Drive quotas block downloads" in message


def test_existing_correct_file_is_not_downloaded(server, tmp_path):
    (tmp_path / NAME).write_bytes(CONTENT)
    assert ensure_file(_remote(server.url), tmp_path) == tmp_path / NAME
    assert server.requests == []


def test_existing_wrong_file_raises_and_is_kept(server, tmp_path):
    (tmp_path / NAME).write_bytes(b"x" * len(CONTENT))
    with pytest.raises(ChecksumError) as info:
        ensure_file(_remote(server.url), tmp_path)
    assert f"actual md5: {hashlib.md5(b'x' * len(CONTENT)).hexdigest()}" in str(info.value)
    assert (tmp_path / NAME).read_bytes() == b"x" * len(CONTENT)
    assert server.requests == []


# -- verification -----------------------------------------------------------------------------
def test_verify_file_statuses(tmp_path):
    file = _remote("http://127.0.0.1:9/x")
    assert verify_file(file, tmp_path).status == "missing"
    (tmp_path / NAME).write_bytes(CONTENT[:-1])
    status = verify_file(file, tmp_path)
    assert (status.status, status.expected, status.actual) == (
        "size-mismatch",
        f"{len(CONTENT)} bytes",
        f"{len(CONTENT) - 1} bytes",
    )
    (tmp_path / NAME).write_bytes(CONTENT[:-1] + b"!")
    status = verify_file(file, tmp_path)
    assert status.status == "checksum-mismatch"
    assert status.expected == CONTENT_MD5
    assert status.actual == hashlib.md5(CONTENT[:-1] + b"!").hexdigest()
    (tmp_path / NAME).write_bytes(CONTENT)
    status = verify_file(file, tmp_path)
    assert (status.status, status.actual, status.path) == ("ok", CONTENT_MD5, tmp_path / NAME)
    unchecked = RemoteFile(NAME, None)
    assert verify_file(unchecked, tmp_path).status == "unchecked"
    other = RemoteFile("other.bin", None)
    assert [s.status for s in verify_all([file, other, unchecked], tmp_path)] == [
        "ok",
        "missing",
        "unchecked",
    ]


def test_git_blob_checksum(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    path = tmp_path / "dsprites.npz"
    path.write_bytes(CONTENT)
    expected = subprocess.run(
        ["git", "hash-object", str(path)], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert git_blob_sha1(path) == expected
    assert verify_file(RemoteFile("dsprites.npz", None, git_blob=expected), tmp_path).ok
    bad = RemoteFile("dsprites.npz", None, git_blob="0" * 40)
    assert verify_file(bad, tmp_path).status == "checksum-mismatch"


def test_md5sum_matches_hashlib(tmp_path):
    for data in (b"", b"abc", CONTENT):
        (tmp_path / "f").write_bytes(data)
        assert md5sum(tmp_path / "f") == hashlib.md5(data).hexdigest()


def test_stamp_avoids_rehashing_until_the_file_changes(tmp_path, monkeypatch):
    calls = []
    real = dl.md5sum

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(dl, "md5sum", counting)
    file = _remote(None, size=None)
    path = tmp_path / NAME
    path.write_bytes(CONTENT)
    assert verify_file(file, tmp_path).status == "ok"
    assert verify_file(file, tmp_path).status == "ok"
    assert len(calls) == 1
    assert (tmp_path / dl.STAMP_NAME).exists()

    mtime_ns = path.stat().st_mtime_ns
    path.write_bytes(CONTENT[:-1] + b"!")  # same size, new content
    os.utime(path, ns=(mtime_ns + 10**9, mtime_ns + 10**9))
    assert verify_file(file, tmp_path).status == "checksum-mismatch"
    assert len(calls) == 2
    path.write_bytes(CONTENT + b"more")  # new size
    assert verify_file(file, tmp_path).status == "checksum-mismatch"
    assert len(calls) == 3


def test_download_writes_the_stamp(server, tmp_path, monkeypatch):
    ensure_file(_remote(server.url), tmp_path)
    monkeypatch.setattr(dl, "md5sum", lambda path: pytest.fail("re-hashed a stamped file"))
    assert verify_file(_remote(server.url), tmp_path).status == "ok"


# -- locations --------------------------------------------------------------------------------
def test_data_root_and_dataset_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("VAELAB_DATA", str(tmp_path))
    assert default_data_root() == tmp_path
    assert dataset_folder("mnist") == tmp_path / "mnist"
    assert dataset_folder("mnist", tmp_path / "other") == tmp_path / "other" / "mnist"
    monkeypatch.delenv("VAELAB_DATA")
    assert default_data_root() == Path.home() / ".cache" / "vaelab" / "data"


def test_remote_file_rejects_paths_outside_the_folder():
    with pytest.raises(ValueError, match="relative path"):
        RemoteFile("../escape.bin", None)
    with pytest.raises(ValueError, match="relative path"):
        RemoteFile("/abs.bin", None)
