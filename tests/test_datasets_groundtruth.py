"""3D Shapes, MPI3D, SmallNORB, Cars3D and 3DIdent readers on tiny files in each official
format: factor maps, splits, pixel orientation, caches, and errors that name the file."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import tarfile

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from vaelab import metrics
from vaelab.cli import main
from vaelab.data import DataError, GroundTruthDataset, load_dataset
from vaelab.data import cars3d as cars3d_module
from vaelab.data import mpi3d as mpi3d_module
from vaelab.data import shapes3d as shapes3d_module
from vaelab.data import smallnorb as smallnorb_module
from vaelab.data import threedident as threedident_module
from vaelab.data.download import ChecksumError, MissingFileError, RemoteFile


def tar_of(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def grid(sizes) -> np.ndarray:
    """Classes of a complete grid in storage order (last fastest), computed by hand."""
    rows = [[]]
    for size in sizes:
        rows = [[*row, c] for row in rows for c in range(size)]
    return np.array(rows)


# -- 3D Shapes ---------------------------------------------------------------------------------
SHAPES_SIZES = (2, 2, 1, 2, 3, 2)  # a small grid of the 6 factors


def shapes3d_arrays(seed: int = 0):
    """(images NHWC, labels, values per factor) on the small grid, values as in the README."""
    values = [
        np.linspace(0, 1, SHAPES_SIZES[0], endpoint=False),  # hues
        np.linspace(0, 1, SHAPES_SIZES[1], endpoint=False),
        np.linspace(0, 1, SHAPES_SIZES[2], endpoint=False),
        np.linspace(0.75, 1.25, SHAPES_SIZES[3]),  # scale
        np.arange(SHAPES_SIZES[4], dtype=float),  # shape
        np.linspace(-30, 30, SHAPES_SIZES[5]),  # orientation
    ]
    classes = grid(SHAPES_SIZES)
    labels = np.stack([values[k][classes[:, k]] for k in range(6)], axis=1)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(len(labels), 64, 64, 3), dtype=np.uint8)
    images[:, 1, 2] = [200, 10, 30]  # one RGB pixel at row 1, column 2
    return images, labels, values


def write_shapes3d(path, images, labels, **extra) -> None:
    with h5py.File(path, "w") as handle:
        chunks = (5, *images.shape[1:])
        handle.create_dataset("images", data=images, chunks=chunks, compression="gzip")
        handle.create_dataset("labels", data=labels)
        for key, value in extra.items():
            handle.create_dataset(key, data=value)


def test_shapes3d_reads_the_grid_channels_first_through_a_reused_cache(tmp_path, monkeypatch):
    images, labels, values = shapes3d_arrays()
    path = tmp_path / "3dshapes.h5"
    write_shapes3d(path, images, labels)
    ds = load_dataset("shapes3d", path=path)
    assert isinstance(ds, GroundTruthDataset) and ds.storage == "memory-mapped"
    assert ds.images.shape == (48, 3, 64, 64) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images, images.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(ds.images[:, :, 1, 2], np.tile([200, 10, 30], (48, 1)))
    names = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    assert ds.factor_names == names
    assert ds.factor_sizes == SHAPES_SIZES and ds.is_complete
    np.testing.assert_array_equal(ds.factors, grid(SHAPES_SIZES))
    np.testing.assert_array_equal(ds.index_of(ds.factors), np.arange(48))
    for got, want in zip(ds.factor_values, values, strict=True):
        np.testing.assert_allclose(got, want)
    summary = ds.summary()
    assert summary["uint8_bytes"] == 48 * 3 * 64 * 64 and summary["complete_grid"]
    cache = tmp_path / "3dshapes-nchw.npy"
    assert cache.is_file() and not list(tmp_path.glob(".*tmp*"))
    # the cache is used as it is: the images in the h5 are not read again
    monkeypatch.setattr(shapes3d_module, "copy_channels_first", pytest.fail)
    again = load_dataset("shapes3d", split="all", path=path)
    np.testing.assert_array_equal(again.images, ds.images)
    assert again.split == "all"


def test_shapes3d_subset_is_partial_and_shuffled_labels_are_refused(tmp_path):
    images, labels, _ = shapes3d_arrays()
    keep = np.delete(np.arange(48), [5, 17, 40])  # every value still appears
    write_shapes3d(tmp_path / "subset.h5", images[keep], labels[keep])
    ds = load_dataset("shapes3d", path=tmp_path / "subset.h5")
    assert len(ds) == 45 and not ds.is_complete and ds.factor_sizes == SHAPES_SIZES
    np.testing.assert_array_equal(ds.factors, grid(SHAPES_SIZES)[keep])
    np.testing.assert_array_equal(ds.images, images[keep].transpose(0, 3, 1, 2))
    order = np.random.default_rng(1).permutation(48)
    write_shapes3d(tmp_path / "shuffled.h5", images, labels[order])
    with pytest.raises(DataError, match=r"shuffled.h5: the labels do not follow the storage"):
        load_dataset("shapes3d", path=tmp_path / "shuffled.h5")


def test_shapes3d_bad_files_name_the_file(tmp_path):
    images, labels, _ = shapes3d_arrays()
    with h5py.File(tmp_path / "nolabels.h5", "w") as handle:
        handle.create_dataset("images", data=images)
        handle.create_dataset("factors", data=labels)
    with pytest.raises(DataError, match=r"nolabels.h5: missing key\(s\) \['labels'\].*'factors'"):
        load_dataset("shapes3d", path=tmp_path / "nolabels.h5")
    write_shapes3d(tmp_path / "grey.h5", images[..., 0], labels)
    with pytest.raises(DataError, match=r"grey.h5: 'images' must be uint8 \[N, 64, 64, 3\]"):
        load_dataset("shapes3d", path=tmp_path / "grey.h5")
    write_shapes3d(tmp_path / "full.h5", images, labels)
    data = (tmp_path / "full.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.h5: not a readable HDF5 file"):
        load_dataset("shapes3d", path=tmp_path / "cut.h5")
    with pytest.raises(DataError, match="3D Shapes file not found: .*absent.h5"):
        load_dataset("shapes3d", path=tmp_path / "absent.h5")
    with pytest.raises(DataError, match="shapes3d' has no split 'test'"):
        load_dataset("shapes3d", split="test", path=tmp_path / "full.h5")
    # damaged compressed images: found while converting, and no cache is left behind
    damaged = bytearray(data)
    start = len(data) // 3
    damaged[start : start + 5000] = bytes(5000)
    (tmp_path / "damaged.h5").write_bytes(bytes(damaged))
    with pytest.raises(DataError, match=r"damaged.h5: cannot read images \d+..\d+"):
        load_dataset("shapes3d", path=tmp_path / "damaged.h5")
    assert not list(tmp_path.glob("damaged*.npy")) and not list(tmp_path.glob(".*"))


def test_shapes3d_download_resumes_and_checksum_mismatch_is_kept_aside(
    tmp_path, monkeypatch, http_server
):
    images, labels, _ = shapes3d_arrays()
    write_shapes3d(tmp_path / "served.h5", images, labels)
    http_server.content = (tmp_path / "served.h5").read_bytes()
    url = http_server.base_url + "3dshapes.h5"
    md5 = hashlib.md5(http_server.content).hexdigest()
    monkeypatch.setattr(shapes3d_module, "OFFICIAL", RemoteFile("3dshapes.h5", url, md5=md5))
    http_server.mode, http_server.cut = "truncate", 20_000
    with pytest.raises(MissingFileError, match="run again to resume"):
        load_dataset("shapes3d", root=tmp_path)
    http_server.mode = "normal"
    ds = load_dataset("shapes3d", root=tmp_path)
    assert http_server.requests == [None, "bytes=20000-"]
    np.testing.assert_array_equal(ds.images, images.transpose(0, 3, 1, 2))
    assert ds.files == [tmp_path / "shapes3d" / "3dshapes.h5"]
    http_server.mode = "wrong"
    with pytest.raises(ChecksumError, match="moved aside"):
        load_dataset("shapes3d", root=tmp_path / "other")
    assert (tmp_path / "other" / "shapes3d" / "3dshapes.h5.corrupt").is_file()
    assert not (tmp_path / "other" / "shapes3d" / "3dshapes.h5").exists()


def test_data_info_reports_the_memory_mapped_cache(tmp_path, capsys):
    images, labels, _ = shapes3d_arrays()
    write_shapes3d(tmp_path / "3dshapes.h5", images, labels)
    path = str(tmp_path / "3dshapes.h5")
    assert main(["data", "info", "shapes3d", "--path", path, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    info = report["splits"]["train"]
    assert info["storage"] == "memory-mapped" and info["uint8_bytes"] == 48 * 3 * 64 * 64
    assert report["factors"]["shape"] == 3 and report["complete_grid"] is True


# -- MPI3D -------------------------------------------------------------------------------------
MPI_SIZES = [2, 1, 2, 1, 1, 2, 3]


def test_mpi3d_streams_the_npz_into_a_channels_first_cache(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(24, 64, 64, 3), dtype=np.uint8)
    images[:, 0, 63] = [1, 2, 3]  # top-right pixel
    np.savez_compressed(tmp_path / "mpi3d_toy.npz", images=images)
    monkeypatch.setattr("vaelab.data.arrays.BLOCK", 5)  # several blocks, the last one short
    ds = load_dataset("mpi3d", path=tmp_path / "mpi3d_toy.npz", factor_sizes=MPI_SIZES)
    assert ds.storage == "memory-mapped" and ds.images.shape == (24, 3, 64, 64)
    np.testing.assert_array_equal(ds.images, images.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(ds.images[:, :, 0, 63], np.tile([1, 2, 3], (24, 1)))
    assert ds.factor_names[0] == "object_color" and ds.factor_names[-1] == "vertical_axis"
    assert ds.factor_sizes == tuple(MPI_SIZES) and ds.is_complete
    np.testing.assert_array_equal(ds.factors, grid(MPI_SIZES))
    assert ds.index_of(np.array([[1, 0, 1, 0, 0, 1, 2]]))[0] == 23
    assert (tmp_path / "mpi3d_toy-nchw.npy").is_file()
    # an uncompressed npz, and a plain npy, read the same way
    np.savez(tmp_path / "stored.npz", images=images)
    np.save(tmp_path / "plain.npy", images)
    for name in ("stored.npz", "plain.npy"):
        same = load_dataset("mpi3d", path=tmp_path / name, factor_sizes=MPI_SIZES)
        np.testing.assert_array_equal(same.images, ds.images)


def test_mpi3d_sizes_come_from_the_number_of_images():
    path = "mpi3d_real.npz"
    assert mpi3d_module.layout_sizes(1_036_800, None, path) == (6, 6, 2, 3, 3, 40, 40)
    assert mpi3d_module.layout_sizes(460_800, None, path) == (4, 4, 2, 3, 3, 40, 40)
    with pytest.raises(DataError, match="24 images match no MPI3D layout.*factor_sizes"):
        mpi3d_module.layout_sizes(24, None, path)
    with pytest.raises(DataError, match="make 12 combinations, but mpi3d_real.npz holds 24"):
        mpi3d_module.layout_sizes(24, [2, 1, 1, 1, 1, 2, 3], path)
    with pytest.raises(DataError, match="factor_sizes must be 7 positive ints"):
        mpi3d_module.layout_sizes(24, [4, 6], path)


def test_mpi3d_bad_files_name_the_file(tmp_path):
    images = np.zeros((24, 64, 64, 3), np.uint8)
    np.savez(tmp_path / "full.npz", images=images)
    data = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.npz: not a readable npz"):
        load_dataset("mpi3d", path=tmp_path / "cut.npz", factor_sizes=MPI_SIZES)
    np.save(tmp_path / "short.npy", images)
    data = (tmp_path / "short.npy").read_bytes()
    (tmp_path / "short.npy").write_bytes(data[:-100])
    with pytest.raises(DataError, match="short.npy: the data ends 100 bytes too early"):
        load_dataset("mpi3d", path=tmp_path / "short.npy", factor_sizes=MPI_SIZES)
    assert not list(tmp_path.glob("*nchw*")) and not list(tmp_path.glob(".*"))
    np.savez(tmp_path / "other.npz", imgs=images)
    with pytest.raises(DataError, match=r"other.npz: no 'images' array.*\['imgs'\]"):
        load_dataset("mpi3d", path=tmp_path / "other.npz", factor_sizes=MPI_SIZES)
    np.savez(tmp_path / "float.npz", images=images.astype(np.float32))
    with pytest.raises(DataError, match=r"float.npz: 'images' must be uint8 \[N, 64, 64, 3\]"):
        load_dataset("mpi3d", path=tmp_path / "float.npz", factor_sizes=MPI_SIZES)
    with pytest.raises(DataError, match="option variant must be one of 'toy'"):
        load_dataset("mpi3d", path=tmp_path / "full.npz", variant="complex")


def test_mpi3d_download_from_a_local_server(tmp_path, monkeypatch, http_server):
    images = np.arange(24 * 64 * 64 * 3, dtype=np.uint64).astype(np.uint8).reshape(24, 64, 64, 3)
    np.savez(tmp_path / "served.npz", images=images)
    http_server.content = (tmp_path / "served.npz").read_bytes()
    remote = RemoteFile("mpi3d_real.npz", http_server.base_url + "mpi3d_real.npz")
    monkeypatch.setitem(mpi3d_module.FILES, "real", remote)
    ds = load_dataset("mpi3d", root=tmp_path, variant="real", factor_sizes=MPI_SIZES)
    np.testing.assert_array_equal(ds.images, images.transpose(0, 3, 1, 2))
    assert (tmp_path / "mpi3d" / "mpi3d_real-nchw.npy").is_file()


# -- SmallNORB ---------------------------------------------------------------------------------
NORB_MAGIC = {np.uint8: 0x1E3D4C55, np.int32: 0x1E3D4C54}


def norb_matrix(array: np.ndarray) -> bytes:
    """The NORB binary matrix format: magic, ndim, max(3, ndim) sizes, data (little endian)."""
    dims = [*array.shape, *[1] * (3 - array.ndim)]
    header = struct.pack(f"<ii{len(dims)}i", NORB_MAGIC[array.dtype.type], array.ndim, *dims)
    return header + array.astype(array.dtype.newbyteorder("<")).tobytes()


def norb_split(part: str):
    """(dat, cat, info) of a few images of ``part``; camera 0 shows 150 + row (above 127, so
    int8 would turn it negative), camera 1 shows 7; row 0 is white above, black below."""
    instances = (4, 6) if part == "train" else (0, 5)
    rows = [
        (cat, inst, elev, azim, light)
        for cat in (0, 3)
        for inst in instances
        for elev in (0, 8)
        for azim in (0, 34)
        for light in (1, 5)
    ]
    cat = np.array([r[0] for r in rows], np.int32)
    info = np.array([r[1:] for r in rows], np.int32)
    dat = np.empty((len(rows), 2, 96, 96), np.uint8)
    dat[:, 0] = (150 + np.arange(len(rows)))[:, None, None]
    dat[:, 1] = 7
    dat[0, 0, :48], dat[0, 0, 48:] = 255, 0
    return dat, cat, info


def write_norb(folder, compress=True) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for part, (prefix, _) in smallnorb_module.PARTS.items():
        truth[part] = norb_split(part)
        for kind, array in zip(smallnorb_module.KINDS, truth[part], strict=True):
            data = norb_matrix(array)
            name = f"{prefix}-{kind}.mat"
            if compress:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=1))
            else:
                (folder / name).write_bytes(data)
    return truth


def lanczos(pixels: np.ndarray, size: int = 64) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.LANCZOS))


def test_smallnorb_splits_factors_and_unsigned_pixels(tmp_path, monkeypatch):
    truth = write_norb(tmp_path)
    train = load_dataset("smallnorb", path=tmp_path)
    dat, cat, info = truth["train"]
    assert train.images.shape == (32, 1, 64, 64) and train.storage == "memory-mapped"
    assert train.factor_names == ("category", "instance", "elevation", "azimuth", "lighting")
    assert train.factor_sizes == (5, 10, 9, 18, 6) and not train.is_complete
    np.testing.assert_array_equal(
        train.factors, np.column_stack([cat, info[:, 0], info[:, 1], info[:, 2] // 2, info[:, 3]])
    )
    assert set(train.factors[:, 3]) == {0, 17}  # azimuths 0 and 34 halved
    # unsigned bytes: 150.. stay above 127; camera 0 by default; resized with Pillow's lanczos
    np.testing.assert_array_equal(train.images[1:, 0, 10, 10], 150 + np.arange(1, 32))
    np.testing.assert_array_equal(train.images[0, 0], lanczos(dat[0, 0]))
    assert train.images[0, 0, 5].min() == 255 and train.images[0, 0, 58].max() == 0  # upright
    np.testing.assert_array_equal(train.index_of(train.factors), np.arange(32))
    test = load_dataset("smallnorb", split="test", path=tmp_path)
    assert set(test.factors[:, 1]) == {0, 5}
    both = load_dataset("smallnorb", split="all", path=tmp_path)
    assert len(both) == 64 and both.storage == "memory"
    np.testing.assert_array_equal(both.images, np.concatenate([train.images, test.images]))
    np.testing.assert_array_equal(both.factors, np.concatenate([train.factors, test.factors]))
    assert both.summary()["uint8_bytes"] == 64 * 64 * 64
    assert len(both.files) == 6
    # the caches are reused; another camera or size is another cache
    assert (tmp_path / "smallnorb-training-cam0-64px-lanczos.npy").is_file()
    monkeypatch.setattr(smallnorb_module, "_fill_images", pytest.fail)
    load_dataset("smallnorb", split="all", path=tmp_path)
    monkeypatch.undo()
    other = load_dataset("smallnorb", path=tmp_path, camera=1, size=32)
    assert other.images.shape == (32, 1, 32, 32) and (other.images == 7).all()


def test_smallnorb_plain_files_and_dlib_protocol_through_a_metric(tmp_path):
    write_norb(tmp_path, compress=False)
    both = load_dataset("smallnorb", split="all", path=tmp_path)
    assert len(both) == 64
    # dlib scores four factors; the instance is a nuisance drawn with the rows
    result = metrics.compute(
        "mig",
        lambda x: x.mean(dim=(2, 3)).repeat(1, 2) + torch.arange(2.0),
        both,
        factors=["category", "elevation", "azimuth", "lighting"],
        num_points=64,
    )
    assert result.values["factors_scored"] == 4


def test_smallnorb_bad_files_name_the_file(tmp_path):
    truth = write_norb(tmp_path)
    prefix = smallnorb_module.PARTS["train"][0]
    dat_file = tmp_path / f"{prefix}-dat.mat.gz"
    data = dat_file.read_bytes()
    dat_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="training-dat.mat.gz: cannot read the matrix"):
        load_dataset("smallnorb", path=tmp_path)
    assert not list(tmp_path.glob("*.npy"))
    dat, cat, info = truth["train"]
    dat_file.write_bytes(gzip.compress(norb_matrix(dat.astype(np.int32))))
    with pytest.raises(DataError, match=r"training-dat.mat.gz: expected unsigned bytes"):
        load_dataset("smallnorb", path=tmp_path)
    dat_file.write_bytes(gzip.compress(b"\x00" * 40))
    with pytest.raises(DataError, match="training-dat.mat.gz: not a NORB binary matrix"):
        load_dataset("smallnorb", path=tmp_path)
    dat_file.write_bytes(gzip.compress(norb_matrix(dat)))
    odd = info.copy()
    odd[3, 2] = 5
    (tmp_path / f"{prefix}-info.mat.gz").write_bytes(gzip.compress(norb_matrix(odd)))
    with pytest.raises(DataError, match="training-info.mat.gz: azimuths must be even"):
        load_dataset("smallnorb", path=tmp_path)
    (tmp_path / f"{prefix}-cat.mat.gz").write_bytes(gzip.compress(norb_matrix(cat[:-1])))
    with pytest.raises(DataError, match=r"training-cat.mat.gz: expected 32 integer categories"):
        load_dataset("smallnorb", path=tmp_path)
    (tmp_path / f"{prefix}-cat.mat.gz").unlink()
    with pytest.raises(DataError, match="no smallnorb-5x46789x9x18x6x2x96x96-training-cat"):
        load_dataset("smallnorb", path=tmp_path)


# -- Cars3D ------------------------------------------------------------------------------------
def car_renders(number: int, side: int = 32) -> np.ndarray:
    """``im`` of one car as stored, [H, W, 3, 24 azimuths, 4 elevations]: the top half of each
    view is (10 * azimuth, 60 * elevation, 100 * car), the bottom half black."""
    im = np.zeros((side, side, 3, 24, 4), np.uint8)
    azimuth, elevation = np.meshgrid(np.arange(24), np.arange(4), indexing="ij")
    im[: side // 2, :, 0] = 10 * azimuth
    im[: side // 2, :, 1] = 60 * elevation
    im[: side // 2, :, 2] = 100 * number
    return im


def mat_bytes(im: np.ndarray) -> bytes:
    out = io.BytesIO()
    scipy.io.savemat(out, {"im": im}, do_compression=True)
    return out.getvalue()


def v73_bytes(im: np.ndarray, tmp_path) -> bytes:
    """A MATLAB v7.3 file: HDF5 after a 512-byte header, arrays stored column-major."""
    path = tmp_path / "v73.mat"
    with h5py.File(path, "w", userblock_size=512) as handle:
        handle.create_dataset("im", data=im.transpose())
    data = bytearray(path.read_bytes())
    data[:20] = b"MATLAB 7.3 MAT-file,"
    path.unlink()
    return bytes(data)


def test_cars3d_archive_grid_sorted_objects_and_orientation(tmp_path, monkeypatch):
    files = {"data/cars/z_car.mat": mat_bytes(car_renders(1)), "data/list.txt": b"z a"}
    files["data/cars/a_car.mat"] = mat_bytes(car_renders(0))  # after z in the archive
    files["data/sprites/other.mat"] = b"not a car"
    folder = tmp_path / "cars3d"
    folder.mkdir()
    (folder / "nips2015-analogy-data.tar.gz").write_bytes(tar_of(files))
    ds = load_dataset("cars3d", path=folder, size=16)
    assert ds.images.shape == (192, 3, 16, 16) and ds.storage == "memory-mapped"
    assert ds.factor_names == ("elevation", "azimuth", "object_type")
    assert ds.factor_sizes == (4, 24, 2) and ds.is_complete
    np.testing.assert_array_equal(ds.factors, grid((4, 24, 2)))
    for elevation, azimuth, car in [(0, 0, 0), (3, 5, 1), (2, 23, 0), (1, 11, 1)]:
        row = ds.index_of(np.array([[elevation, azimuth, car]]))[0]
        assert row == elevation * 48 + azimuth * 2 + car
        np.testing.assert_array_equal(
            ds.images[row, :, 2, 8], [10 * azimuth, 60 * elevation, 100 * car]
        )
        assert ds.images[row, :, 13].max() == 0  # the bottom stays black: not transposed
    assert (folder / "cars3d-16px-lanczos.npy").is_file()
    # one view resized by Pillow's lanczos, independently
    view = car_renders(1)[:, :, :, 5, 3]
    np.testing.assert_array_equal(
        ds.images[3 * 48 + 5 * 2 + 1], lanczos(view, 16).transpose(2, 0, 1)
    )
    monkeypatch.setattr(cars3d_module, "resize_cars", pytest.fail)  # the cache is reused
    load_dataset("cars3d", path=folder, size=16)
    # every metric can use it: the grid is complete
    codes = metrics.compute(
        "factor_vae", lambda x: x[:, :, 2, 8], ds, batch_size=4, num_train=20, num_eval=10,
        num_variance_estimate=50,
    )  # fmt: skip
    assert codes.values["eval_accuracy"] > 0.5


def test_cars3d_folder_and_matlab_v73_files(tmp_path):
    folder = tmp_path / "cars"
    folder.mkdir()
    (folder / "a.mat").write_bytes(mat_bytes(car_renders(0, side=8)))
    (folder / "b.mat").write_bytes(v73_bytes(car_renders(1, side=8), tmp_path))
    ds = load_dataset("cars3d", path=folder, size=8)
    row = ds.index_of(np.array([[2, 7, 1]]))[0]
    np.testing.assert_array_equal(ds.images[row, :, 1, 4], [70, 120, 100])
    assert (tmp_path / "cars3d-8px-lanczos.npy").is_file()


def test_cars3d_bad_files_name_the_file(tmp_path):
    folder = tmp_path / "cars"
    folder.mkdir()
    (folder / "a.mat").write_bytes(mat_bytes(car_renders(0, side=8)[:, :, :, :12]))
    with pytest.raises(DataError, match=r"a.mat: 'im' must be uint8 \[H, W, 3, 24 azimuths"):
        load_dataset("cars3d", path=folder, size=8)
    (folder / "a.mat").write_bytes(mat_bytes(car_renders(0, side=8))[:300])
    with pytest.raises(DataError, match="a.mat: not a readable MATLAB file"):
        load_dataset("cars3d", path=folder, size=8)
    out = io.BytesIO()
    scipy.io.savemat(out, {"images": car_renders(0, side=8)})
    (folder / "a.mat").write_bytes(out.getvalue())
    with pytest.raises(DataError, match="a.mat: no variable 'im'"):
        load_dataset("cars3d", path=folder, size=8)
    data = tar_of({"data/cars/a.mat": mat_bytes(car_renders(0))})
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.tar.gz: cannot read the archive"):
        load_dataset("cars3d", path=tmp_path / "cut.tar.gz", size=8)
    (tmp_path / "empty.tar.gz").write_bytes(tar_of({"data/list.txt": b""}))
    with pytest.raises(DataError, match=r"empty.tar.gz: no car renders \(data/cars/\*.mat\)"):
        load_dataset("cars3d", path=tmp_path / "empty.tar.gz", size=8)
    assert not list(tmp_path.glob("*.npy"))


def test_cars3d_download_from_a_local_server(tmp_path, monkeypatch, http_server):
    http_server.content = tar_of({"data/cars/a.mat": mat_bytes(car_renders(0, side=8))})
    md5 = hashlib.md5(http_server.content).hexdigest()
    archive = RemoteFile("nips2015-analogy-data.tar.gz", http_server.base_url + "x", md5=md5)
    monkeypatch.setattr(cars3d_module, "ARCHIVE", archive)
    ds = load_dataset("cars3d", root=tmp_path, size=8)
    assert ds.factor_sizes == (4, 24, 1)
    assert (tmp_path / "cars3d" / "cars3d-8px-lanczos.npy").is_file()


# -- 3DIdent -----------------------------------------------------------------------------------
def png(colour, side: int = 32) -> bytes:
    pixels = np.zeros((side, side, 3), np.uint8)
    pixels[: side // 2] = colour  # the top half coloured, the bottom black
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def ident_split(count: int = 12, seed: int = 0) -> tuple[dict[str, bytes], np.ndarray]:
    """Files of a 3DIdent split folder: zero-padded PNGs and raw latents in [-1, 1]."""
    latents = np.random.default_rng(seed).uniform(-1, 1, size=(count, 10))
    width = int(np.ceil(np.log10(count)))
    files = {f"images/{i:0{width}d}.png": png((20 * i, 255 - 20 * i, 7)) for i in range(count)}
    out = io.BytesIO()
    np.save(out, latents)
    files["raw_latents.npy"] = out.getvalue()
    return files, latents


def write_folder(folder, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def test_threedident_folder_binned_factors_raw_latents_and_caches(tmp_path, monkeypatch):
    files, latents = ident_split()
    write_folder(tmp_path / "3dident" / "train", files)
    ds = load_dataset("3dident", root=tmp_path, download=False, size=16, bins=2)
    assert ds.images.shape == (12, 3, 16, 16) and ds.storage == "memory-mapped"
    assert ds.factor_names[0] == "position_x" and ds.factor_names[-1] == "background_hue"
    assert ds.factor_sizes == (2,) * 10 and not ds.is_complete
    np.testing.assert_array_equal(ds.latents, latents)
    for k in range(10):  # equal frequency: the 6 smallest values of each latent are class 0
        np.testing.assert_array_equal(ds.factors[:, k], latents[:, k] > np.median(latents[:, k]))
        low = latents[ds.factors[:, k] == 0, k].mean()
        np.testing.assert_allclose(
            ds.factor_values[k], [low, latents[ds.factors[:, k] == 1, k].mean()]
        )
    np.testing.assert_array_equal(ds.index_of(ds.factors), np.arange(12))
    np.testing.assert_array_equal(
        ds.images[:, :, 2, 5], [(20 * i, 255 - 20 * i, 7) for i in range(12)]
    )
    assert ds.images[:, :, 13].max() == 0
    for name in ("3dident-train-16px-bilinear.npy", "3dident-train-latents.npy"):
        assert (tmp_path / "3dident" / name).is_file()
    # later loads use the caches only (and any bins)
    monkeypatch.setattr(threedident_module, "_Source", pytest.fail)
    again = load_dataset("3dident", root=tmp_path, download=False, size=16, bins=3)
    assert again.factor_sizes == (3,) * 10
    np.testing.assert_array_equal(again.images, ds.images)


def test_threedident_tar_prefers_raw_latents_and_duplicates_ask_for_bins(tmp_path):
    files, latents = ident_split(count=10, seed=3)
    out = io.BytesIO()
    np.save(out, latents * 3)  # Blender's units: the same classes
    files["latents.npy"] = out.getvalue()
    files = {f"3dident/test/{name}": data for name, data in files.items()}
    (tmp_path / "3dident_test.tar").write_bytes(tar_of(files, mode="w"))
    ds = load_dataset("3dident", split="test", path=tmp_path, size=8, bins=2)
    np.testing.assert_array_equal(ds.latents, latents)  # raw_latents.npy, not latents.npy
    assert ds.files == [tmp_path / "3dident_test.tar"]
    assert (tmp_path / "3dident-test-8px-bilinear.npy").is_file()
    # a constant latent is dropped; identical latents cannot be told apart
    files, latents = ident_split(count=4)
    latents[:, 6] = 0.5
    latents[3] = latents[0]
    out = io.BytesIO()
    np.save(out, latents)
    files["raw_latents.npy"] = out.getvalue()
    write_folder(tmp_path / "dup" / "train", files)
    with pytest.raises(DataError, match="with bins=20, two images fall into the same classes"):
        load_dataset("3dident", path=tmp_path / "dup", size=8)
    latents[3, 0] += 0.01
    out = io.BytesIO()
    np.save(out, latents)
    (tmp_path / "dup" / "train" / "raw_latents.npy").write_bytes(out.getvalue())
    (tmp_path / "dup" / "3dident-train-latents.npy").unlink()
    ds = load_dataset("3dident", path=tmp_path / "dup", size=8)
    assert "spotlight_angle" not in ds.factor_names and ds.num_factors == 9


def test_threedident_bad_files_name_what_was_looked_for(tmp_path):
    files, _ = ident_split(count=5)
    del files["raw_latents.npy"]
    write_folder(tmp_path / "a" / "train", files)
    with pytest.raises(DataError, match="no latents; looked for raw_latents.npy or latents.npy"):
        load_dataset("3dident", path=tmp_path / "a", size=8)
    files, _ = ident_split(count=5)
    del files["images/3.png"]
    write_folder(tmp_path / "b" / "train", files)
    with pytest.raises(DataError, match="found 4 images, the first missing is number 3"):
        load_dataset("3dident", path=tmp_path / "b", size=8)
    files, latents = ident_split(count=5)
    out = io.BytesIO()
    np.save(out, latents[:4])
    files["raw_latents.npy"] = out.getvalue()
    write_folder(tmp_path / "c" / "train", files)
    with pytest.raises(DataError, match="raw_latents.npy: 4 rows of latents for 5 images"):
        load_dataset("3dident", path=tmp_path / "c", size=8)
    files, _ = ident_split(count=5)
    files["images/2.png"] = files["images/2.png"][:40]
    write_folder(tmp_path / "d" / "train", files)
    with pytest.raises(DataError, match="cannot decode images/2.png"):
        load_dataset("3dident", path=tmp_path / "d", size=8)
    with pytest.raises(DataError, match="no 3DIdent test split; expected 3dident_test.tar"):
        load_dataset("3dident", split="test", path=tmp_path / "d", size=8)
    with pytest.raises(DataError, match="option bins must be an integer >= 2"):
        load_dataset("3dident", path=tmp_path / "d", bins=1)
