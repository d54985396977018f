"""DTD, Flowers102, both ImageNet 32/64 versions, FFHQ, CelebA-HQ and image folders, read
through the real readers from tiny files written in each official format."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from vaelab.data import DataError, load_dataset
from vaelab.data import dtd as dtd_module
from vaelab.data import folder as folder_module
from vaelab.data import imagenet as imagenet_module
from vaelab.data.download import ChecksumError, MissingFileError, RemoteFile
from vaelab.data.images import decode_resize_crop
from vaelab.data.transforms import Transform


# -- writers --------------------------------------------------------------------------------
def encode(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    options = {"quality": 100, "subsampling": 0} if fmt == "JPEG" else {}
    Image.fromarray(pixels.astype(np.uint8)).save(out, format=fmt, **options)
    return out.getvalue()


def flat(colour, width: int = 12, height: int = 10) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.uint8), (height, width, 3)).copy()


def write_tar(path, files: dict[str, bytes], mode: str = "w") -> bytes:
    with tarfile.open(path, mode) as tar:
        for name, data in reversed(files.items()):  # archive order is not image order
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path.read_bytes()


def write_zip(path, files: dict[str, bytes], method=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, data in reversed(files.items()):
            archive.writestr(name, data)


def colours(images: np.ndarray) -> list[tuple[int, ...]]:
    """The mean colour of each image, rounded (flat test images keep their colour)."""
    return [tuple(round(float(v)) for v in image.mean(axis=(1, 2))) for image in images]


def no_decoding(*args, **kwargs):
    raise AssertionError("decoded an image although the cache is up to date")


# -- the shared resize + centre crop ----------------------------------------------------------
def test_resize_crop_matches_torchvision_resize_then_center_crop():
    """A 60x40 ramp (red = x, green = y): scale the shorter side to 18, keep the centre 16."""
    x = np.arange(60)[None, :].repeat(40, 0)
    y = np.arange(40)[:, None].repeat(60, 1)
    ramp = np.stack([x * 4, y * 6, np.zeros_like(x)], axis=-1)
    out = decode_resize_crop(encode(ramp), resize=18, size=16, resample="bilinear", mode="RGB")
    assert out.shape == (3, 16, 16)
    # scaled to int(18 * 60 / 40) = 27 x 18; offsets round(11 / 2) = 6 (half to even), 1
    j = np.arange(2, 14)  # interior: a linear ramp stays linear under the bilinear filter
    np.testing.assert_allclose(out[0, 8, j] / 4, (6 + j + 0.5) * 60 / 27 - 0.5, atol=0.6)
    np.testing.assert_allclose(out[1, j, 8] / 6, (1 + j + 0.5) * 40 / 18 - 0.5, atol=0.6)
    grey = decode_resize_crop(encode(ramp), resize=16, size=16, resample="bilinear", mode="L")
    assert grey.shape == (1, 16, 16)


# -- DTD ---------------------------------------------------------------------------------------
DTD_IMAGES = {  # class -> image colours (red encodes the image, green the class)
    "banded": [(10, 0, 0), (40, 0, 0), (70, 0, 0)],
    "zigzag": [(100, 200, 0), (130, 200, 0), (160, 200, 0)],
}
DTD_LISTS = {
    "train1": ["banded/banded_0001.jpg", "zigzag/zigzag_0002.jpg"],
    "val1": ["banded/banded_0002.jpg", "zigzag/zigzag_0003.jpg"],
    "test1": ["banded/banded_0003.jpg", "zigzag/zigzag_0001.jpg"],
    "train2": ["zigzag/zigzag_0003.jpg"],
}


def dtd_files() -> dict[str, bytes]:
    files = {}
    for cls, cols in DTD_IMAGES.items():
        for i, colour in enumerate(cols, start=1):
            shape = (30, 24) if i % 2 else (20, 26)  # portrait and landscape
            files[f"dtd/images/{cls}/{cls}_{i:04d}.jpg"] = encode(flat(colour, *shape), "JPEG")
    for name, lines in DTD_LISTS.items():
        files[f"dtd/labels/{name}.txt"] = ("\n".join(lines) + "\n").encode()
    files["dtd/imdb/imdb.mat"] = b"MATLAB"
    return files


def dtd_colour(name: str) -> tuple[int, ...]:
    cls, file = name.split("/")
    return DTD_IMAGES[cls][int(file[-8:-4]) - 1]


def test_dtd_partitions_labels_and_cache(tmp_path, monkeypatch):
    archive = tmp_path / "dtd-r1.0.1.tar.gz"
    write_tar(archive, dtd_files(), "w:gz")
    seen = set()
    for split in ("train", "val", "test"):
        ds = load_dataset("dtd", split=split, path=archive, size=16)
        names = DTD_LISTS[f"{split}1"]
        assert ds.images.shape == (2, 3, 16, 16) and ds.split == split
        assert np.abs(np.subtract(colours(ds.images), [dtd_colour(n) for n in names])).max() <= 2
        np.testing.assert_array_equal(ds.labels, [n.startswith("zigzag") for n in names])
        assert ds.files == [tmp_path / "dtd", tmp_path / "dtd" / "labels" / f"{split}1.txt"]
        seen |= set(names)
    assert len(seen) == 6  # the three splits are disjoint and cover every image
    assert (tmp_path / "dtd" / "images" / "banded" / "banded_0001.jpg").is_file()
    assert (tmp_path / "dtd-16px-bilinear.npy").is_file()
    # later loads read the extracted folder and the cache: nothing is decoded
    monkeypatch.setattr(dtd_module, "decode_resize_crop", no_decoding)
    other = load_dataset("dtd", path=tmp_path, size=16, partition=2)
    assert colours(other.images) == colours(
        load_dataset("dtd", split="val", path=tmp_path, size=16).images[1:]
    )
    whole = load_dataset("dtd", split="all", path=tmp_path / "dtd", size=16)
    assert len(whole) == 6 and whole.storage == "memory-mapped"
    np.testing.assert_array_equal(whole.labels, [0, 0, 0, 1, 1, 1])
    with pytest.raises(DataError, match="option partition must be 1..10, got 11"):
        load_dataset("dtd", path=tmp_path, partition=11)
    with pytest.raises(DataError, match=r"labels/test2\.txt: cannot read the test list"):
        load_dataset("dtd", split="test", path=tmp_path, size=16, partition=2)
    (tmp_path / "dtd" / "labels" / "val2.txt").write_text("banded/banded_0009.jpg\n")
    with pytest.raises(DataError, match=r"val2\.txt lists banded/banded_0009\.jpg, which is not"):
        load_dataset("dtd", split="val", path=tmp_path, size=16, partition=2)


def test_dtd_download_resumes_then_a_wrong_file_is_refused(tmp_path, monkeypatch, http_server):
    data = write_tar(tmp_path / "source.tar.gz", dtd_files(), "w:gz")
    http_server.content = data
    url = http_server.base_url + "dtd-r1.0.1.tar.gz"
    archive = RemoteFile("dtd-r1.0.1.tar.gz", url, md5=hashlib.md5(data).hexdigest())
    monkeypatch.setattr(dtd_module, "ARCHIVE", archive)
    folder = tmp_path / "root" / "dtd"
    folder.mkdir(parents=True)
    half = len(data) // 2
    (folder / "dtd-r1.0.1.tar.gz.part").write_bytes(data[:half])  # an interrupted download
    ds = load_dataset("dtd", split="test", root=tmp_path / "root", size=16)
    assert http_server.requests == [f"bytes={half}-"]
    assert (folder / "dtd-r1.0.1.tar.gz").read_bytes() == data and len(ds) == 2
    assert sorted(p.name for p in folder.iterdir()) == [
        ".vaelab-verified.json",
        "dtd",
        "dtd-16px-bilinear.npy",
        "dtd-r1.0.1.tar.gz",
    ]
    http_server.mode = "wrong"
    with pytest.raises(ChecksumError, match="wrong checksum(.|\n)*moved aside"):
        load_dataset("dtd", root=tmp_path / "other", size=16)
    assert sorted(p.name for p in (tmp_path / "other" / "dtd").iterdir()) == [
        "dtd-r1.0.1.tar.gz.corrupt"
    ]
    cut = tmp_path / "cut" / "dtd-r1.0.1.tar.gz"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=f"{cut}: cannot read the archive"):
        load_dataset("dtd", path=cut)
    assert sorted(p.name for p in cut.parent.iterdir()) == [cut.name]  # nothing half-extracted


def test_extracting_writes_only_regular_files_below_the_top_folder(tmp_path):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in dtd_files().items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in ("dtd/../escaped.txt", f"{tmp_path}/absolute.txt", "elsewhere.txt"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        link = tarfile.TarInfo("dtd/images/banded/link.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    (tmp_path / "a").mkdir()
    archive = tmp_path / "a" / "dtd-r1.0.1.tar.gz"
    archive.write_bytes(out.getvalue())
    assert len(load_dataset("dtd", split="all", path=archive, size=8)) == 6
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(
        ["a/dtd-r1.0.1.tar.gz", "a/dtd-8px-bilinear.npy"] + [f"a/{name}" for name in dtd_files()]
    )


# -- Flowers102 ----------------------------------------------------------------------------------
def test_flowers102_official_splits_and_zero_based_labels(tmp_path):
    cols = [(20 * i, 255 - 20 * i, 90) for i in range(1, 7)]
    files = {
        f"jpg/image_{i:05d}.jpg": encode(flat(c, 14, 11), "JPEG") for i, c in enumerate(cols, 1)
    }
    write_tar(tmp_path / "102flowers.tgz", files, "w:gz")
    scipy.io.savemat(tmp_path / "imagelabels.mat", {"labels": np.array([[1, 1, 2, 3, 102, 5]])})
    split_ids = {"trnid": [[4, 1]], "valid": [[3, 2]], "tstid": [[5, 6]]}
    scipy.io.savemat(tmp_path / "setid.mat", {k: np.array(v) for k, v in split_ids.items()})
    expected = {"train": ([4, 1], [2, 0]), "val": ([3, 2], [1, 0]), "test": ([5, 6], [101, 4])}
    for split, (ids, labels) in expected.items():
        ds = load_dataset("flowers102", split=split, path=tmp_path / "102flowers.tgz", size=8)
        assert ds.images.shape == (2, 3, 8, 8)
        assert np.abs(np.subtract(colours(ds.images), [cols[i - 1] for i in ids])).max() <= 2
        np.testing.assert_array_equal(ds.labels, labels)
    whole = load_dataset("flowers102", split="all", path=tmp_path, size=8)
    np.testing.assert_array_equal(whole.labels, [0, 0, 1, 2, 101, 4])
    assert (tmp_path / "flowers102-8px-bilinear.npy").is_file() and (tmp_path / "jpg").is_dir()
    scipy.io.savemat(tmp_path / "setid.mat", {"trnid": np.array([[1]])})
    with pytest.raises(DataError, match=r"setid\.mat: no 'tstid' in the file; found \['trnid'\]"):
        load_dataset("flowers102", split="test", path=tmp_path, size=8)
    with pytest.raises(MissingFileError, match="102flowers.tgz(.|\n)*52808999861908f626f3"):
        load_dataset("flowers102", root=tmp_path / "nothing", download=False)
    (tmp_path / "imagelabels.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError, match=r"imagelabels\.mat: cannot read the MATLAB file"):
        load_dataset("flowers102", split="all", path=tmp_path, size=8)


# -- ImageNet, van den Oord et al. ---------------------------------------------------------------
def oord_tar(path, pixels: np.ndarray, folder: str = "valid_32x32") -> None:
    write_tar(path, {f"{folder}/{i:07d}.png": encode(p) for i, p in enumerate(pixels, 1)})


def test_imagenet32_oord_pngs_exact_and_cache_tied_to_the_tar(tmp_path, monkeypatch):
    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    tar = tmp_path / "valid_32x32.tar"
    oord_tar(tar, pixels)
    ds = load_dataset("imagenet32", split="valid", path=tar)
    np.testing.assert_array_equal(ds.images, pixels.transpose(0, 3, 1, 2))  # lossless, in order
    assert ds.storage == "memory-mapped" and ds.labels is None and ds.files == [tar]
    assert (tmp_path / "imagenet32-valid.npy.source").is_file()
    # the cache is used without listing the tar again
    monkeypatch.setattr(imagenet_module, "_PngTar", no_decoding)
    assert len(load_dataset("imagenet32", split="valid", path=tmp_path)) == 3
    monkeypatch.undo()
    # a different tar builds the cache again
    oord_tar(tar, np.concatenate([pixels, pixels[:1]]))
    os.utime(tar, ns=(1, 1))  # tars are padded to 10 kB records: the size may not change
    assert len(load_dataset("imagenet32", split="valid", path=tmp_path)) == 4
    with pytest.raises(DataError, match="holds the other split of imagenet32"):
        load_dataset("imagenet32", split="train", path=tar)
    oord_tar(tmp_path / "train_32x32.tar", pixels[:, :31, :31], "train_32x32")
    with pytest.raises(DataError, match=r"cannot decode train_32x32/0000001\.png.*31x31, expected"):
        load_dataset("imagenet32", split="train", path=tmp_path)
    assert not (tmp_path / "imagenet32-train.npy").exists()
    extracted = tmp_path / "x" / "valid_64x64"
    extracted.mkdir(parents=True)
    big = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    for i, p in enumerate(big):
        (extracted / f"{i:07d}.png").write_bytes(encode(p))
    ds = load_dataset("imagenet64", split="valid", path=extracted.parent)
    np.testing.assert_array_equal(ds.images, big.transpose(0, 3, 1, 2))


# -- ImageNet, Chrabaszcz et al. -------------------------------------------------------------------
def npz_bytes(data: np.ndarray, labels, compressed: bool = False) -> bytes:
    out = io.BytesIO()
    save = np.savez_compressed if compressed else np.savez
    save(out, data=data, labels=np.asarray(labels), mean=data.mean(0))
    return out.getvalue()


def test_imagenet32_chrabaszcz_batches_flattened_channel_first(tmp_path):
    rng = np.random.default_rng(2)
    batches = {n: rng.integers(0, 256, (2, 3072), dtype=np.uint8) for n in (1, 2, 10)}
    labels = {1: [1, 1000], 2: [5, 7], 10: [2, 3]}
    top = "Imagenet32_train_npz"
    files = {
        f"{top}/train_data_batch_{n}.npz": npz_bytes(batches[n], labels[n], compressed=n == 2)
        for n in (10, 2, 1)
    }
    write_zip(tmp_path / f"{top}.zip", files, zipfile.ZIP_DEFLATED)  # npz inside a deflated zip
    ds = load_dataset("imagenet32-chrabaszcz", path=tmp_path)
    data = np.concatenate([batches[1], batches[2], batches[10]])  # batch 10 after batch 9
    assert ds.images.shape == (6, 3, 32, 32) and ds.storage == "memory-mapped"
    # pixel (c, y, x) of image i is value c * 1024 + y * 32 + x of row i
    assert ds.images[2, 1, 5, 7] == data[2, 1024 + 5 * 32 + 7]
    assert ds.images[5, 2, 31, 0] == data[5, 2048 + 31 * 32]
    np.testing.assert_array_equal(ds.images.reshape(6, -1), data)
    np.testing.assert_array_equal(ds.labels, [0, 999, 4, 6, 1, 2])  # stored 0-based
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{top}.zip",
        "imagenet32-chrabaszcz-train-labels.npy",
        "imagenet32-chrabaszcz-train.npy",
        "imagenet32-chrabaszcz-train.npy.source",
    ]
    val = tmp_path / "val"
    val.mkdir()
    (val / "val_data.npz").write_bytes(npz_bytes(batches[1], [0, 3]))
    with pytest.raises(DataError, match=r"val_data\.npz: 'labels' has values outside 1\.\.1000"):
        load_dataset("imagenet32-chrabaszcz", split="val", path=val)
    (val / "val_data.npz").write_bytes(npz_bytes(np.zeros((1, 12288), np.uint8), [1]))
    with pytest.raises(
        DataError, match=r"'data' must be uint8 \[N, 3072\].*got uint8 \[1, 12288\]"
    ):
        load_dataset("imagenet32-chrabaszcz", split="val", path=val)
    assert not list(tmp_path.glob("imagenet32-chrabaszcz-val*"))  # no half-built cache


def test_imagenet64_chrabaszcz_two_part_zips(tmp_path):
    rng = np.random.default_rng(3)
    parts = [rng.integers(0, 256, (2, 12288), dtype=np.uint8) for _ in range(2)]
    for part, (number, data) in enumerate(zip((1, 6), parts, strict=True), start=1):
        top = f"Imagenet64_train_part{part}_npz"
        write_zip(
            tmp_path / f"{top}.zip",
            {f"{top}/train_data_batch_{number}.npz": npz_bytes(data, [3, 4])},
        )
    ds = load_dataset("imagenet64-chrabaszcz", root=tmp_path.parent, path=tmp_path)
    np.testing.assert_array_equal(
        ds.images.reshape(4, 3, 64, 64), np.concatenate(parts).reshape(4, 3, 64, 64)
    )
    assert ds.files == [
        tmp_path / "Imagenet64_train_part1_npz.zip",
        tmp_path / "Imagenet64_train_part2_npz.zip",
    ]
    with pytest.raises(MissingFileError, match="Imagenet64_val_npz.zip(.|\n)*download it by hand"):
        load_dataset("imagenet64-chrabaszcz", split="val", root=tmp_path, download=False)


# -- FFHQ and CelebA-HQ ----------------------------------------------------------------------------
FFHQ_NUMBERS = [3, 64998, 64999, 65000, 65001]


def ffhq_colour(number: int) -> tuple[int, int, int]:
    return (number % 251, number // 251 % 251, 77)


def test_ffhq_zip_protocols_and_seeded_validation(tmp_path):
    files = {
        f"images1024x1024/{n:05d}.png": encode(flat(ffhq_colour(n), 20, 20)) for n in FFHQ_NUMBERS
    }
    files["images1024x1024/LICENSE.txt"] = b"license"
    write_zip(tmp_path / "images1024x1024.zip", files)
    split = {
        s: load_dataset("ffhq", split=s, path=tmp_path, size=8, protocol="vdvae1024")
        for s in ("train", "valid", "all")
    }
    assert colours(split["train"].images) == [ffhq_colour(n) for n in FFHQ_NUMBERS[:3]]
    assert colours(split["valid"].images) == [ffhq_colour(n) for n in (65000, 65001)]
    for ds in split.values():  # the cache holds train then valid: every split is a memory map
        assert ds.storage == "memory-mapped" and ds.images.shape[1:] == (3, 8, 8)
    # VDVAE's rule: np.random.seed(5); np.random.permutation(N)[-valid:] are held out
    state = np.random.get_state()
    np.random.seed(5)
    held = np.random.permutation(5)[-2:]
    np.random.set_state(state)
    valid = load_dataset("ffhq", split="valid", path=tmp_path, size=8, valid_size=2)
    train = load_dataset("ffhq", path=tmp_path, size=8, valid_size=2)
    assert colours(valid.images) == [ffhq_colour(FFHQ_NUMBERS[i]) for i in sorted(held)]
    assert len(train) == 3 and not set(colours(train.images)) & set(colours(valid.images))
    other = load_dataset("ffhq", split="valid", path=tmp_path, size=8, valid_size=2, seed=0)
    assert colours(other.images) != colours(valid.images)
    assert sorted(p.name for p in tmp_path.glob("ffhq-*.npy")) == [
        "ffhq-8px-bilinear-vdvae1024.npy",
        "ffhq-8px-bilinear-vdvae256-seed0-valid2.npy",
        "ffhq-8px-bilinear-vdvae256-seed5-valid2.npy",
    ]
    with pytest.raises(DataError, match="cannot hold out 7000 validation images of 5"):
        load_dataset("ffhq", path=tmp_path, size=8)
    # the 5-bit variant is data.bits=5 on the device: 32 levels, floor(v / 8) / 31
    batch = torch.from_numpy(np.array(train.images))
    five = Transform("float", 5, 255, 0, 0, torch.device("cpu"), False)(batch, 0)
    np.testing.assert_allclose(five.numpy(), (np.asarray(train.images) // 8) / 31, atol=1e-6)


def test_ffhq_256_npy_is_vdvaes_split_channel_first(tmp_path):
    pixels = np.random.default_rng(4).integers(0, 256, (5, 256, 256, 3), dtype=np.uint8)
    np.save(tmp_path / "ffhq-256.npy", pixels)
    valid = load_dataset("ffhq", split="valid", path=tmp_path, valid_size=2)
    train = load_dataset("ffhq", split="train", path=tmp_path / "ffhq-256.npy", valid_size=2)
    perm = np.random.RandomState(5).permutation(5)
    np.testing.assert_array_equal(valid.images, pixels[np.sort(perm[-2:])].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(train.images, pixels[np.sort(perm[:-2])].transpose(0, 3, 1, 2))
    assert (tmp_path / "ffhq-256px-vdvae-npy-vdvae256-seed5-valid2.npy").is_file()
    with pytest.raises(DataError, match="options size and resample other than 256 and bilinear"):
        load_dataset("ffhq", path=tmp_path / "ffhq-256.npy", size=128)


def test_celebahq_folder_seeded_holdout_and_missing_zip(tmp_path):
    folder = tmp_path / "celebahq" / "data1024x1024"
    folder.mkdir(parents=True)
    cols = [(30 * i, 60, 200 - 30 * i) for i in range(6)]
    for i, colour in enumerate(cols):
        (folder / f"{i:05d}.jpg").write_bytes(encode(flat(colour, 16, 16), "JPEG"))
    ds = {
        s: load_dataset("celebahq", split=s, root=tmp_path, size=8, valid_size=2)
        for s in ("train", "valid")
    }
    held = np.sort(np.random.RandomState(0).permutation(6)[-2:])
    assert np.abs(np.subtract(colours(ds["valid"].images), [cols[i] for i in held])).max() <= 2
    assert len(ds["train"]) == 4 and ds["train"].storage == "memory-mapped"
    assert (tmp_path / "celebahq" / "celebahq-8px-bilinear-seed0-valid2.npy").is_file()
    with pytest.raises(MissingFileError, match="data1024x1024.zip(.|\n)*1-LFFkFKNuyBO1sjkM4t_"):
        load_dataset("celebahq", root=tmp_path / "empty", download=False)


# -- your own folder -----------------------------------------------------------------------------
def write_tree(base) -> dict[str, tuple[int, int, int]]:
    """Five images in two class folders, in five formats, plus files that must be skipped."""
    images = {
        "cats/a.png": ((200, 10, 10), "PNG"),
        "cats/sub/b.jpg": ((10, 200, 10), "JPEG"),
        "dogs/c.bmp": ((10, 10, 200), "BMP"),
        "dogs/d.gif": ((120, 120, 0), "GIF"),
        "dogs/e.webp": ((0, 120, 120), "WEBP"),
    }
    for name, (colour, fmt) in images.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_bytes(encode(flat(colour, 18, 12), fmt))
    frames = [Image.fromarray(flat(c, 18, 12)) for c in ((120, 120, 0), (0, 0, 0))]
    frames[0].save(base / "dogs/d.gif", save_all=True, append_images=frames[1:])
    (base / ".hidden").mkdir()
    (base / ".hidden" / "x.png").write_bytes(b"skipped")
    (base / "cats" / "._a.png").write_bytes(b"macOS metadata, skipped")
    (base / "notes.txt").write_text("not an image")
    return {name: colour for name, (colour, _) in images.items()}


def test_folder_labels_seeded_split_and_cache(tmp_path, monkeypatch):
    base = tmp_path / "pictures"
    truth = write_tree(base)
    root = tmp_path / "root"
    options = {"root": root, "path": base, "size": 8, "labels": "folders", "valid_fraction": 0.4}
    train = load_dataset("folder", **options)
    valid = load_dataset("folder", split="valid", **options)
    whole = load_dataset("folder", split="all", **options)
    assert (len(train), len(valid), len(whole)) == (3, 2, 5)
    names = sorted(truth)
    perm = np.random.RandomState(0).permutation(5)
    order = [names[i] for i in [*np.sort(perm[:3]), *np.sort(perm[3:])]]
    assert np.abs(np.subtract(colours(whole.images), [truth[n] for n in order])).max() <= 3
    np.testing.assert_array_equal(whole.labels, [n.startswith("dogs") for n in order])
    assert not set(colours(train.images)) & set(colours(valid.images))
    assert train.storage == valid.storage == "memory-mapped"
    (cache,) = root.glob("folder/folder-pictures-8px-*.npy")
    # reused while the files are unchanged; rebuilt when one changes
    monkeypatch.setattr(folder_module, "decode_resize_crop", no_decoding)
    np.testing.assert_array_equal(load_dataset("folder", **options).images, train.images)
    monkeypatch.undo()
    (base / "cats" / "a.png").write_bytes(encode(flat((1, 2, 250), 18, 12)))
    rebuilt = load_dataset("folder", split="all", **options)
    assert (1, 2, 250) in colours(rebuilt.images) and list(root.glob("folder/*.npy")) == [cache]
    # other options, other caches; a different seed gives another split
    grey = load_dataset("folder", **{**options, "grayscale": True, "crop": "none", "seed": 3})
    assert grey.images.shape == (3, 1, 8, 8) and len(list(root.glob("folder/*.npy"))) == 2
    # a corrupt file is named, and no cache is left half-built
    (base / "dogs" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match=f"{base}: cannot decode dogs/bad.png"):
        load_dataset("folder", **options)
    assert cache not in list(root.glob("folder/*.npy"))


def test_folder_option_errors(tmp_path):
    with pytest.raises(DataError, match="set data.path"):
        load_dataset("folder", root=tmp_path)
    (tmp_path / "loose.png").write_bytes(encode(flat((1, 2, 3))))
    with pytest.raises(DataError, match=f"{tmp_path / 'loose.png'} is not in a sub-folder"):
        load_dataset("folder", path=tmp_path, root=tmp_path, labels="folders")
    with pytest.raises(DataError, match=r"valid_fraction must be a number in \[0, 1\)"):
        load_dataset("folder", path=tmp_path, root=tmp_path, valid_fraction=1.5)
    with pytest.raises(DataError, match="the valid split is empty"):
        load_dataset("folder", split="valid", path=tmp_path, root=tmp_path, valid_fraction=0)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=f"{empty}: no images"):
        load_dataset("folder", path=empty, root=tmp_path)
