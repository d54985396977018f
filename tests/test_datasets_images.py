"""CIFAR, CelebA and 3D Chairs readers on tiny files written in each official format."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import mmap
import pickle
import struct
import tarfile
import warnings
import zipfile
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from vaelab.data import DataError, load_dataset
from vaelab.data import celeba as celeba_module
from vaelab.data import cifar as cifar_module
from vaelab.data.download import MissingFileError, RemoteFile
from vaelab.data.safe_pickle import safe_loads
from vaelab.presets import load_preset


# -- writers of the official formats --------------------------------------------------------
class Py2Pickler(pickle._Pickler):
    """Writes strings as Python 2 did (byte strings, protocol 2), like the CIFAR batches."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def save_py2_string(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_string
    dispatch[str] = save_py2_string


def py2_pickle(obj) -> bytes:
    out = io.BytesIO()
    Py2Pickler(out, protocol=2).dump(obj)
    # the real files were written by NumPy 1, which lived in numpy.core
    return out.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def cifar_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def cifar_batch(rows: np.ndarray, labels: dict[str, list[int]]) -> bytes:
    batch = {"batch_label": "testing batch", "data": rows, **labels}
    batch["filenames"] = [f"img_{i}.png" for i in range(len(rows))]
    return py2_pickle(batch)


def tar_gz(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def cifar10_files(per_batch: int = 2) -> tuple[dict[str, bytes], dict[str, tuple]]:
    """The batch files of a small CIFAR-10 and the (rows, labels) of each split."""
    files, truth = {}, {"train": ([], []), "test": ([], [])}
    names = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    for seed, name in enumerate(names):
        rows, labels = cifar_rows(per_batch, seed), [(seed + i) % 10 for i in range(per_batch)]
        files[name] = cifar_batch(rows, {"labels": labels})
        split = "test" if name == "test_batch" else "train"
        truth[split][0].append(rows)
        truth[split][1].extend(labels)
    files["batches.meta"] = py2_pickle({"label_names": [f"class{i}" for i in range(10)]})
    rows_labels = {s: (np.concatenate(r), np.array(lab)) for s, (r, lab) in truth.items()}
    return files, rows_labels


def in_folder(folder: str, files: dict[str, bytes]) -> dict[str, bytes]:
    return {f"{folder}/{name}": data for name, data in files.items()}


def use_archive(monkeypatch, layout_name: str, data: bytes, url: str | None = None):
    """Make the layout's official archive the test archive (its md5, its URL)."""
    layout = getattr(cifar_module, layout_name)
    archive = RemoteFile(layout.archive.name, url, md5=hashlib.md5(data).hexdigest())
    monkeypatch.setattr(cifar_module, layout_name, dataclasses.replace(layout, archive=archive))


# -- CIFAR -----------------------------------------------------------------------------------
def test_cifar10_archive_pixels_round_trip_exactly(tmp_path):
    files, truth = cifar10_files()
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(tar_gz(in_folder("cifar-10-batches-py", files)))
    for split, n in (("train", 10), ("test", 2)):
        ds = load_dataset("cifar10", split=split, path=archive)
        rows, labels = truth[split]
        assert ds.images.shape == (n, 3, 32, 32) and ds.images.dtype == np.uint8
        np.testing.assert_array_equal(ds.images.reshape(n, -1), rows)
        np.testing.assert_array_equal(ds.labels, labels)
        assert ds.files == [archive]
    # the row layout: 1024 red values, 1024 green, 1024 blue, each plane row-major
    ds = load_dataset("cifar10", path=archive)
    assert ds.images[3, 1, 5, 7] == truth["train"][0][3, 1024 + 5 * 32 + 7]
    assert ds.images[3, 2, 31, 0] == truth["train"][0][3, 2048 + 31 * 32]
    assert not list(tmp_path.glob("cifar-10-batches-py*"))  # a path is read, never extracted


def test_cifar10_data_folder_extracts_once(tmp_path, monkeypatch):
    files, truth = cifar10_files()
    data = tar_gz(in_folder("cifar-10-batches-py", files))
    folder = tmp_path / "cifar10"
    folder.mkdir()
    (folder / "cifar-10-python.tar.gz").write_bytes(data)
    use_archive(monkeypatch, "CIFAR10", data)
    ds = load_dataset("cifar10", split="test", root=tmp_path, download=False)
    np.testing.assert_array_equal(ds.images.reshape(2, -1), truth["test"][0])
    extracted = folder / "cifar-10-batches-py"
    assert sorted(p.name for p in extracted.iterdir()) == sorted(files)
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".cifar")) == []
    assert ds.files == [extracted / "test_batch"]
    # the extracted folder is enough from now on (as torchvision leaves it)
    (folder / "cifar-10-python.tar.gz").unlink()
    ds = load_dataset("cifar10", root=tmp_path, download=False)
    np.testing.assert_array_equal(ds.labels, truth["train"][1])
    # a missing batch is named
    (extracted / "data_batch_3").unlink()
    with pytest.raises(DataError, match="missing CIFAR batch file: .*data_batch_3"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_cifar10_download_from_a_local_server(tmp_path, monkeypatch, http_server):
    files, truth = cifar10_files(per_batch=1)
    http_server.content = tar_gz(in_folder("cifar-10-batches-py", files))
    url = http_server.base_url + "cifar-10-python.tar.gz"
    use_archive(monkeypatch, "CIFAR10", http_server.content, url)
    ds = load_dataset("cifar10", split="test", root=tmp_path)
    assert http_server.requests == [None]
    np.testing.assert_array_equal(ds.images.reshape(1, -1), truth["test"][0])
    assert (tmp_path / "cifar10" / "cifar-10-python.tar.gz").read_bytes() == http_server.content
    assert (tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_5").is_file()


def test_cifar100_fine_and_coarse_labels(tmp_path):
    rows = {"train": cifar_rows(4, 1), "test": cifar_rows(3, 2)}
    fine = {"train": [0, 99, 42, 7], "test": [5, 6, 98]}
    coarse = {"train": [0, 19, 10, 3], "test": [1, 2, 18]}
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for split in rows:
        labels = {"fine_labels": fine[split], "coarse_labels": coarse[split]}
        (folder / split).write_bytes(cifar_batch(rows[split], labels))
    for path in (tmp_path, folder):  # the folder holding the extracted one, or that folder
        ds = load_dataset("cifar100", split="test", path=path)
        np.testing.assert_array_equal(ds.images.reshape(3, -1), rows["test"])
        np.testing.assert_array_equal(ds.labels, fine["test"])
    ds = load_dataset("cifar100", path=folder, labels="coarse")
    np.testing.assert_array_equal(ds.labels, coarse["train"])
    assert ds.summary()["classes"] == 4
    with pytest.raises(DataError, match="option labels must be one of 'fine', 'coarse'"):
        load_dataset("cifar100", path=folder, labels="super")
    other = tmp_path / "other"
    other.mkdir()
    (other / "test_batch").write_bytes((folder / "test").read_bytes())
    with pytest.raises(DataError, match=r"test_batch: missing key\(s\) \['labels'\].*other"):
        load_dataset("cifar10", split="test", path=other)


class Boom:
    def __reduce__(self):
        return (print, ("code ran",))


def test_cifar_pickles_cannot_run_code(tmp_path, capsys):
    batch = {"data": cifar_rows(1, 0), "labels": [1], "x": Boom()}
    path = tmp_path / "test_batch"
    path.write_bytes(py2_pickle(batch))
    with pytest.raises(
        DataError, match=r"test_batch: cannot unpickle.*refusing to load _*builtins?_*\.print"
    ):
        load_dataset("cifar10", split="test", path=tmp_path)
    assert "code ran" not in capsys.readouterr().out


def test_safe_unpickler_reads_numpy1_and_numpy2_names_without_warnings():
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    old = py2_pickle({"a": array, "n": np.float64(2.5)})
    assert b"numpy.core.multiarray" in old
    new = pickle.dumps({"a": array}, protocol=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = safe_loads(old, encoding="bytes")
        np.testing.assert_array_equal(loaded[b"a"], array)
        assert loaded[b"n"] == 2.5
        np.testing.assert_array_equal(safe_loads(new)["a"], array)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins.print"):
        safe_loads(pickle.dumps(Boom()))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("cut", "pickle data was truncated"),
        ({"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}, "'data' must be a uint8"),
        ({"data": np.zeros((2, 1024), np.uint8), "labels": [0, 1]}, "rows of 1024 values"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "must be 2 integer labels"),
        ({"data": np.zeros((1, 3072), np.uint8), "labels": [10]}, r"outside 0\.\.9"),
        ([1, 2], "expected a pickled dict, found list"),
    ],
)
def test_cifar_bad_batches_name_the_file(tmp_path, content, message):
    path = tmp_path / "test_batch"
    if content == "cut":
        data = cifar_batch(cifar_rows(2, 0), {"labels": [0, 1]})
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(py2_pickle(content))
    with pytest.raises(DataError, match=f"{path}: .*{message}"):
        load_dataset("cifar10", split="test", path=tmp_path)


def test_cifar_truncated_or_foreign_archive(tmp_path, monkeypatch):
    files, _ = cifar10_files()
    data = tar_gz(in_folder("cifar-10-batches-py", files))
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=f"{cut}: cannot read the archive.*truncated"):
        load_dataset("cifar10", path=cut)
    other = tmp_path / "other.tar.gz"
    other.write_bytes(tar_gz(in_folder("somewhere-else", files)))
    with pytest.raises(DataError, match=f"{other}: no cifar-10-batches-py/test_batch"):
        load_dataset("cifar10", split="test", path=other)
    # in the data folder, a damaged download is caught by its checksum before extraction
    folder = tmp_path / "cifar10"
    folder.mkdir()
    (folder / "cifar-10-python.tar.gz").write_bytes(data[:1000])
    use_archive(monkeypatch, "CIFAR10", data)
    with pytest.raises(DataError, match="wrong checksum"):
        load_dataset("cifar10", root=tmp_path, download=False)
    assert not (folder / "cifar-10-batches-py").exists()


# -- CelebA ----------------------------------------------------------------------------------
def celeba_jpeg(image_id: int) -> bytes:
    """178x218 with red = x, green = y and blue = 40·id: every pixel says where it was."""
    x = np.arange(178)[None, :].repeat(218, 0)
    y = np.arange(218)[:, None].repeat(178, 1)
    pixels = np.stack([x, y, np.full_like(x, 40 * image_id)], axis=-1).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=100, subsampling=0)
    return out.getvalue()


def write_celeba(folder, partitions=(0, 0, 0, 1, 1, 2), as_zip=False, csv=False):
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{i:06d}.jpg" for i in range(1, len(partitions) + 1)]
    images = {f"img_align_celeba/{n}": celeba_jpeg(i) for i, n in enumerate(names, start=1)}
    if as_zip:
        with zipfile.ZipFile(folder / "img_align_celeba.zip", "w") as archive:
            for name, data in images.items():
                archive.writestr(name, data)
    else:
        for name, data in images.items():
            (folder / name).parent.mkdir(exist_ok=True)
            (folder / name).write_bytes(data)
    if csv:
        lines = [
            "image_id,partition",
            *(f"{n},{p}" for n, p in zip(names, partitions, strict=True)),
        ]
        (folder / "list_eval_partition.csv").write_text("\n".join(lines) + "\n")
    else:
        lines = [f"{n} {p}" for n, p in zip(names, partitions, strict=True)]
        (folder / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return names


def image_ids(images: np.ndarray) -> list[int]:
    return [round(float(b) / 40) for b in images[:, 2].mean(axis=(1, 2))]


@pytest.mark.parametrize(
    ("crop", "size", "box"),
    [
        ("vdvae", 148, (15, 40, 163, 188)),
        ("provlae", 148, (15, 45, 163, 193)),
        ("center148", 148, (15, 35, 163, 183)),
        ("center178", 178, (0, 20, 178, 198)),
        ([10, 20, 60, 70], 50, (10, 20, 60, 70)),
    ],
)
def test_celeba_crop_boxes(tmp_path, crop, size, box):
    write_celeba(tmp_path, partitions=(0, 0))
    ds = load_dataset("celeba", split="all", path=tmp_path, crop=crop, size=size)
    assert ds.images.shape == (2, 3, size, size)
    left, top, right, bottom = box
    red, green = ds.images[0, 0].astype(int), ds.images[0, 1].astype(int)
    # no resize at these sizes: pixel (i, j) is pixel (top + i, left + j) of the original
    np.testing.assert_allclose(red[size // 2], np.arange(left, right), atol=2)
    np.testing.assert_allclose(green[:, size // 2], np.arange(top, bottom), atol=2)
    assert image_ids(ds.images) == [1, 2]


def test_celeba_resize_maps_pixel_centres(tmp_path):
    write_celeba(tmp_path, partitions=(0,))
    j = np.arange(8, 56)  # interior: a linear ramp stays linear under the bilinear filter
    for crop, (left, top, width, height) in (
        ("vdvae", (15, 40, 148, 148)),
        ("none", (0, 0, 178, 218)),
    ):
        ds = load_dataset("celeba", split="all", path=tmp_path, crop=crop)
        assert ds.images.shape == (1, 3, 64, 64)
        expected_x = left + (j + 0.5) * width / 64 - 0.5
        expected_y = top + (j + 0.5) * height / 64 - 0.5
        np.testing.assert_allclose(ds.images[0, 0, 32, j], expected_x, atol=1.5)
        np.testing.assert_allclose(ds.images[0, 1, j, 32], expected_y, atol=1.5)


def no_decoding(*args, **kwargs):
    raise AssertionError("decoded an image although the cache exists")


def test_celeba_partitions_cache_and_zip(tmp_path, monkeypatch):
    folder = tmp_path / "celeba"
    write_celeba(folder, as_zip=True)
    zip_path = folder / "img_align_celeba.zip"
    splits = {"train": [1, 2, 3], "valid": [4, 5], "test": [6], "all": [1, 2, 3, 4, 5, 6]}
    for split, ids in splits.items():
        ds = load_dataset("celeba", split=split, path=zip_path)
        assert image_ids(ds.images) == ids and ds.split == split
    cache = folder / "celeba-vdvae-64px-bilinear.npy"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [cache.name, zip_path.name, "list_eval_partition.txt"]
    )
    # later loads memory-map the cache and decode nothing
    monkeypatch.setattr(celeba_module, "decode_image", no_decoding)
    ds = load_dataset("celeba", split="valid", path=zip_path)
    assert ds.storage == "memory-mapped" and isinstance(ds.images.base, mmap.mmap)
    assert str(ds.images.filename) == str(cache) and image_ids(ds.images) == [4, 5]
    assert ds.files == [zip_path, folder / "list_eval_partition.txt"]


def test_celeba_folder_kaggle_csv_and_scattered_partitions(tmp_path):
    write_celeba(tmp_path / "a", as_zip=True)
    write_celeba(tmp_path / "b", partitions=(0, 2, 0, 1, 0, 0), csv=True)
    from_zip = load_dataset("celeba", split="all", path=tmp_path / "a")
    from_folder = load_dataset("celeba", split="all", path=tmp_path / "b" / "img_align_celeba")
    np.testing.assert_array_equal(from_zip.images, from_folder.images)
    assert (tmp_path / "b" / "celeba-vdvae-64px-bilinear.npy").is_file()
    train = load_dataset("celeba", split="train", path=tmp_path / "b")
    assert image_ids(train.images) == [1, 3, 5, 6] and train.storage == "memory"


def test_celeba_data_folder_needs_the_official_files(tmp_path):
    with pytest.raises(MissingFileError, match="img_align_celeba.zip(.|\n)*00d2c5bc6d35e"):
        load_dataset("celeba", split="all", root=tmp_path, download=False)
    write_celeba(tmp_path / "celeba")  # an extracted folder is read as it is
    (tmp_path / "celeba" / "list_eval_partition.txt").unlink()
    assert len(load_dataset("celeba", split="all", root=tmp_path, download=False)) == 6
    with pytest.raises(MissingFileError, match="list_eval_partition.txt(.|\n)*0B7EVK8r0v71pY0NS"):
        load_dataset("celeba", split="train", root=tmp_path, download=False)


def test_celeba_bad_files_name_the_file(tmp_path):
    write_celeba(tmp_path / "folder")
    images = tmp_path / "folder" / "img_align_celeba"
    (images / "000002.jpg").write_bytes(celeba_jpeg(2)[:400])
    with pytest.raises(DataError, match=f"{images}: cannot decode 000002.jpg.*truncated"):
        load_dataset("celeba", split="all", path=images)
    assert not list(tmp_path.glob("folder/*.npy"))  # no cache, not even a partial one
    folder = tmp_path / "celeba"
    write_celeba(folder, as_zip=True)
    zip_path = folder / "img_align_celeba.zip"
    data = zip_path.read_bytes()
    good = celeba_jpeg(2)
    zip_path.write_bytes(data.replace(good, good[:300] + bytes(len(good) - 300)))
    with pytest.raises(DataError, match=f"{zip_path}: cannot read img_align_celeba/000002.jpg"):
        load_dataset("celeba", split="all", path=zip_path)
    assert sorted(p.name for p in folder.iterdir()) == [zip_path.name, "list_eval_partition.txt"]
    zip_path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match=f"{zip_path}: not a readable zip file"):
        load_dataset("celeba", split="all", path=zip_path)
    zip_path.write_bytes(data)
    partition = folder / "list_eval_partition.txt"
    partition.write_text("000001.jpg 0\n000009.jpg 0\n")
    with pytest.raises(DataError, match=f"{partition} puts 000009.jpg in the train split"):
        load_dataset("celeba", path=zip_path)
    partition.write_text("000001.jpg 0\n000002.jpg three\n")
    with pytest.raises(DataError, match=f"{partition}, line 2: expected"):
        load_dataset("celeba", path=zip_path)
    with pytest.raises(DataError, match="option crop must be one of 'vdvae'"):
        load_dataset("celeba", path=zip_path, crop="middle")
    with pytest.raises(DataError, match="smaller than the crop box"):
        load_dataset("celeba", split="all", path=zip_path, crop=[0, 0, 300, 300])


# -- 3D Chairs -------------------------------------------------------------------------------
CHAIR_COLOURS = {
    "chair_a": [(200, 30, 30), (30, 200, 30)],
    "chair_b": [(30, 30, 200), (90, 90, 90)],
}


def chair_png(colour) -> bytes:
    """A 600x600 render: white, with ``colour`` filling exactly the centre 400x400."""
    pixels = np.full((600, 600, 3), 255, np.uint8)
    pixels[100:500, 100:500] = colour
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def chair_files() -> dict[str, bytes]:
    files = {"rendered_chairs/all_chair_names.mat": b"MATLAB 5.0"}
    for model, colours in CHAIR_COLOURS.items():
        for view, colour in enumerate(colours):
            name = f"rendered_chairs/{model}/renders/image_{view:03d}_p020_t000_r096.png"
            files[name] = chair_png(colour)
    return files


def write_tar(path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in reversed(files.items()):  # archive order is not image order
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def luma(colour) -> int:
    red, green, blue = colour
    return (red * 299 + green * 587 + blue * 114 + 500) // 1000


def test_chairs_tar_and_folder(tmp_path):
    folder = tmp_path / "chairs"
    folder.mkdir()
    write_tar(folder / "rendered_chairs.tar", chair_files())
    ds = load_dataset("chairs", root=tmp_path, download=False)
    colours = [c for cs in CHAIR_COLOURS.values() for c in cs]
    assert ds.images.shape == (4, 1, 64, 64) and ds.storage == "memory-mapped"
    for image, colour in zip(
        ds.images, colours, strict=True
    ):  # the crop holds the chair colour only
        assert abs(image.astype(int) - luma(colour)).max() <= 1
    np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1])
    assert (folder / "chairs-center400-64px-lanczos-grey.npy").is_file()
    # colour, without the crop: white borders come back
    rgb = load_dataset("chairs", root=tmp_path, download=False, crop="none", grayscale=False)
    assert rgb.images.shape == (4, 3, 64, 64)
    np.testing.assert_array_equal(rgb.images[:, :, 0, 0], 255)
    np.testing.assert_array_equal(rgb.images[:, :, 32, 32], colours)
    # an extracted folder gives the same images
    with tarfile.open(folder / "rendered_chairs.tar") as tar:
        tar.extractall(tmp_path / "copy", filter="data")
    same = load_dataset("chairs", split="all", path=tmp_path / "copy" / "rendered_chairs")
    np.testing.assert_array_equal(same.images, ds.images)


def test_chairs_bad_files_name_the_file(tmp_path):
    files = chair_files()
    broken = dict(files)
    name = "rendered_chairs/chair_b/renders/image_000_p020_t000_r096.png"
    broken[name] = files[name][:200]
    write_tar(tmp_path / "rendered_chairs.tar", broken)
    with pytest.raises(DataError, match="cannot decode chair_b/renders/image_000"):
        load_dataset("chairs", path=tmp_path)
    assert not list(tmp_path.glob("*.npy"))
    write_tar(tmp_path / "full.tar", files)
    data = (tmp_path / "full.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.tar"):
        load_dataset("chairs", path=tmp_path / "cut.tar")
    with pytest.raises(DataError, match="option crop must be one of 'center400', 'none'"):
        load_dataset("chairs", path=tmp_path / "full.tar", crop="vdvae")


# -- presets ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vae_celeba", {"data.name": "celeba", "data.split": "all", "train.steps": 633_122}),
        ("betah_celeba", {"objective.beta": 10, "train.lr": 5e-4}),
        ("betab_celeba", {"objective.gamma": 100, "objective.c_max": 50, "train.lr": 1e-3}),
        ("factor_celeba", {"objective.gamma": 6.4, "objective.disc_lr": 1e-5, "train.lr": 1e-4}),
        ("btcvae_celeba", {"objective.beta": 6.4, "objective.alpha": 1}),
        (
            "best_celeba",
            {"objective.alpha": -10, "objective.beta": 20, "model.likelihood": "laplace"},
        ),
        ("vae_chairs", {"data.name": "chairs", "train.steps": 404_841, "model.name": "burgess"}),
        ("betah_chairs", {"objective.beta": 4}),
        ("betab_chairs", {"objective.c_max": 25, "objective.c_steps": 100_000}),
        ("factor_chairs", {"objective.gamma": 3.2, "train.batch_size": 128}),
        ("btcvae_chairs", {"objective.beta": 3.2, "objective.gamma": 1}),
        (
            "convvae_cifar10",
            {"data.name": "cifar10", "data.image_size": 64, "train.steps": 156_250},
        ),
        ("convvae_celeba", {"data.split": "train", "model.latent_dim": 64, "train.batch_size": 32}),
    ],
)
def test_image_dataset_presets_follow_the_references(name, expected):
    values = load_preset(name).to_dict()
    for dotted, value in expected.items():
        section, key = dotted.split(".")
        assert values[section][key] == pytest.approx(value), dotted
