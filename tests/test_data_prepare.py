"""`vaelab data prepare`: download + verify, or say exactly what to fetch by hand; then build."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from vaelab.cli import main
from vaelab.data.base import ImageDataset
from vaelab.data.download import RemoteFile, dataset_folder, ensure_file
from vaelab.registry import DATASETS

CONTENT = bytes(range(256)) * 16  # 4096 bytes = one 1x64x64 image


@pytest.fixture
def remote_dataset(http_server):
    """A dataset ``test-remote`` whose one file is served by the local HTTP server."""
    http_server.content = CONTENT
    file = RemoteFile(
        "blob.bin", http_server.base_url + "blob.bin", md5=hashlib.md5(CONTENT).hexdigest()
    )

    def load(root=None, split="train", download=True):
        path = ensure_file(file, dataset_folder("test-remote", root), download=download)
        images = np.frombuffer(path.read_bytes(), np.uint8).reshape(1, 1, 64, 64)
        return ImageDataset(name="test-remote", images=images.copy(), split=split)

    DATASETS.register(
        "test-remote", "served by a local HTTP server (tests)", files=lambda split: [file],
        folder="test-remote",
    )(load)  # fmt: skip
    yield http_server
    DATASETS._entries.pop("test-remote", None)


def test_prepare_downloads_verifies_and_loads(remote_dataset, tmp_path, capsys):
    assert main(["data", "prepare", "test-remote", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"ok      {tmp_path / 'test-remote' / 'blob.bin'}" in out
    assert "ready   train: 1 images of 1x64x64, memory" in out
    assert (tmp_path / "test-remote" / "blob.bin").read_bytes() == CONTENT
    # a second run finds the verified file and downloads nothing
    requests = len(remote_dataset.requests)
    assert main(["data", "prepare", "test-remote", "--root", str(tmp_path), "--no-download"]) == 0
    assert len(remote_dataset.requests) == requests


def test_prepare_offline_lists_what_to_fetch_and_where(remote_dataset, tmp_path, capsys):
    assert main(["data", "prepare", "test-remote", "--root", str(tmp_path), "--no-download"]) == 1
    captured = capsys.readouterr()
    target = tmp_path / "test-remote" / "blob.bin"
    assert f"MISSING {target}" in captured.out
    assert "1 file(s) to fetch by hand" in captured.err
    assert remote_dataset.base_url + "blob.bin" in captured.err
    assert hashlib.md5(CONTENT).hexdigest() in captured.err
    assert f"place it at {target}" in captured.err


def test_prepare_reports_a_checksum_mismatch(remote_dataset, tmp_path, capsys):
    remote_dataset.content = CONTENT[::-1]
    assert main(["data", "prepare", "test-remote", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "wrong checksum" in err and "blob.bin.corrupt" in err
    assert not (tmp_path / "test-remote" / "blob.bin").exists()


def test_prepare_generated_dataset_needs_no_files(capsys):
    assert main(["data", "prepare", "dsprites-procedural"]) == 0
    out = capsys.readouterr().out
    assert "nothing to download" in out and "737,280 images" in out


def test_prepare_unknown_dataset_is_a_clear_error(capsys):
    assert main(["data", "prepare", "mnsit"]) == 2
    assert "Did you mean 'mnist'" in capsys.readouterr().err
