"""Dataset readers on the real files (when present) and on small files in the official format."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest

from vaelab.data import DataError, GroundTruthDataset, load_dataset
from vaelab.data.dsprites import read_dsprites_npz
from vaelab.data.mnist import read_amat, read_idx

DSPRITES_BASES = np.array([245760, 40960, 1024, 32, 1])


# -- writers of the official formats --------------------------------------------------------
def write_idx(path, array: np.ndarray, compress: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def write_mnist_folder(folder, n_train=60_000, n_test=10_000, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
        out[split] = (images, labels)
    return out


def amat_bytes(pixels: np.ndarray) -> bytes:
    """The .amat text of ``[N, 784]`` 0/1 pixels: values separated by spaces, one row a line."""
    chars = np.full((len(pixels), 2 * pixels.shape[1]), ord(" "), np.uint8)
    chars[:, ::2] = pixels + ord("0")
    chars[:, -1] = ord("\n")
    return chars.tobytes()


def write_amat(path, pixels: np.ndarray, compress=False) -> None:
    data = amat_bytes(pixels)
    path.write_bytes(gzip.compress(data, compresslevel=1) if compress else data)


def write_dsprites_npz(path, classes, images, with_metadata=True, sizes=(1, 3, 6, 40, 32, 32)):
    """An npz laid out like the official file (6 stored factors, pickled metadata dict)."""
    values = classes.astype(np.float64) / 10.0
    arrays = {"imgs": images, "latents_classes": classes, "latents_values": values}
    if with_metadata:
        meta = {
            "latents_sizes": np.array(sizes),
            "latents_names": ("color", "shape", "scale", "orientation", "posX", "posY"),
            "description": "test copy",
        }
        arrays["metadata"] = np.array(meta, dtype=object)
    np.savez(path, **arrays)


# -- MNIST / Fashion-MNIST ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "mean_train_pixel"), [("mnist", 0.13066), ("fashion-mnist", 0.28604)]
)
def test_real_idx_datasets(shared_data, name, mean_train_pixel):
    train = load_dataset(name, "train", root=shared_data, download=False)
    test = load_dataset(name, "test", root=shared_data, download=False)
    assert train.images.shape == (60_000, 1, 28, 28) and train.images.dtype == np.uint8
    assert test.images.shape == (10_000, 1, 28, 28)
    assert train.images.mean() / 255 == pytest.approx(mean_train_pixel, abs=5e-5)
    assert np.bincount(train.labels, minlength=10).sum() == 60_000
    if name == "fashion-mnist":  # 6000 per class in train, 1000 in test (SOURCES.md)
        assert (np.bincount(train.labels) == 6000).all()
        assert (np.bincount(test.labels) == 1000).all()
    else:  # official MNIST label counts of the first class
        assert np.bincount(train.labels)[0] == 5923 and np.bincount(test.labels)[0] == 980


def test_idx_reader_on_written_files(tmp_path):
    written = write_mnist_folder(tmp_path / "mnist", seed=1)
    ds = load_dataset("mnist", "test", path=tmp_path / "mnist", download=False)
    images, labels = written["test"]
    np.testing.assert_array_equal(ds.images[:, 0], images)
    np.testing.assert_array_equal(ds.labels, labels)
    raw = tmp_path / "raw.idx"
    write_idx(raw, np.arange(24, dtype=np.uint8).reshape(2, 3, 4), compress=False)
    np.testing.assert_array_equal(read_idx(raw), np.arange(24).reshape(2, 3, 4))


def test_idx_errors_name_the_file(tmp_path):
    path = tmp_path / "truncated.gz"
    write_idx(path, np.zeros((10, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-9])  # cut the gzip stream
    with pytest.raises(DataError, match=r"truncated.gz: cannot decompress"):
        read_idx(path)
    short = tmp_path / "short.idx"
    data = bytes([0, 0, 8, 3]) + struct.pack(">3i", 10, 28, 28) + bytes(100)
    short.write_bytes(data)
    with pytest.raises(DataError, match=r"short.idx: IDX header says shape \[10, 28, 28\]"):
        read_idx(short)
    junk = tmp_path / "junk.idx"
    junk.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(DataError, match="junk.idx: not an IDX file"):
        read_idx(junk)


def test_mnist_wrong_count_and_missing_files(tmp_path):
    write_mnist_folder(tmp_path / "mnist", n_train=100, n_test=10)
    with pytest.raises(DataError, match="mnist test should have 10000 images, found 10"):
        load_dataset("mnist", "test", path=tmp_path / "mnist", download=False)
    # in the data folder the official checksums are enforced
    with pytest.raises(DataError, match="wrong size: .*mnist/t10k-images-idx3-ubyte.gz"):
        load_dataset("mnist", "test", root=tmp_path, download=False)
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist", "train", root=tmp_path, download=False)
    text = str(err.value)
    assert "fashion-mnist/train-images-idx3-ubyte.gz" in text
    assert "8d4fb7e6c68d591d4c3dfef9ec88bf0d" in text  # the expected md5
    with pytest.raises(DataError, match="no split 'valid'; splits: train, test"):
        load_dataset("mnist", "valid", root=tmp_path, download=False)


# -- binarized MNIST ------------------------------------------------------------------------
def test_real_binarized_mnist(shared_data):
    sizes = {"train": 50_000, "valid": 10_000, "test": 10_000}
    for split, n in sizes.items():
        ds = load_dataset("binarized-mnist", split, root=shared_data, download=False)
        assert ds.images.shape == (n, 1, 28, 28)
        assert set(np.unique(ds.images)) == {0, 1}
    # the parsed pixels are exactly the original .amat text (its md5 is the published one)
    test = load_dataset("binarized-mnist", "test", root=shared_data, download=False)
    text = amat_bytes(test.images.reshape(-1, 784))
    assert hashlib.md5(text).hexdigest() == "14e41ae11040adba6ab8cb291eda0dd8"


def test_amat_reader_on_written_files(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 2, size=(10_000, 784), dtype=np.uint8)
    folder = tmp_path / "binarized-mnist"
    folder.mkdir()
    write_amat(folder / "binarized_mnist_valid.amat", pixels)
    write_amat(folder / "binarized_mnist_test.amat.gz", pixels[::-1], compress=True)
    valid = load_dataset("binarized-mnist", "valid", path=folder, download=False)
    test = load_dataset("binarized-mnist", "test", path=folder, download=False)
    np.testing.assert_array_equal(valid.images.reshape(-1, 784), pixels)
    np.testing.assert_array_equal(test.images.reshape(-1, 784), pixels[::-1])
    with pytest.raises(DataError, match="decompressed md5 .* expected 14e41ae1"):
        load_dataset("binarized-mnist", "test", root=tmp_path, download=False)


def test_amat_errors(tmp_path):
    bad = tmp_path / "bad.amat"
    bad.write_text("0 1 2\n")
    with pytest.raises(DataError, match=r"bad.amat: unexpected byte b'2' at offset 4"):
        read_amat(bad)
    short = tmp_path / "short.amat"
    write_amat(short, np.zeros((3, 784), np.uint8))
    short.write_bytes(short.read_bytes()[:-100])
    with pytest.raises(DataError, match="short.amat: expected 784 values per line"):
        read_amat(short)


# -- dSprites -------------------------------------------------------------------------------
def test_real_dsprites_grid_is_a_complete_ground_truth_dataset(shared_data):
    path = shared_data / "dsprites" / "dsprites_downsampled.npz"
    ds = load_dataset("dsprites", path=path)
    assert isinstance(ds, GroundTruthDataset)
    assert ds.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert ds.factor_sizes == (3, 6, 10, 16, 16)
    assert ds.is_complete and len(ds) == 46_080
    assert ds.images.shape == (46_080, 1, 64, 64)
    assert set(np.unique(ds.images)) == {0, 1}
    # factor <-> index: the stored order is the grid order, posY fastest
    factors = ds.unflatten(np.arange(len(ds)))
    np.testing.assert_array_equal(ds.index_of(factors), np.arange(len(ds)))
    np.testing.assert_array_equal(factors, ds.factors)
    # factor values from latents_values: scale linspace(0.5, 1, 6), posX every 2nd of 32
    np.testing.assert_allclose(ds.factor_values[1], np.linspace(0.5, 1.0, 6))
    np.testing.assert_allclose(ds.factor_values[3], np.linspace(0, 1, 32)[::2])
    # sampling images for given factors returns exactly those images
    rng = np.random.default_rng(0)
    sampled, images = ds.sample(50, rng)
    np.testing.assert_array_equal(images, ds.images[ds.index_of(sampled)])
    raw = np.load(path)
    original = raw["latents_classes"] * np.array([1, 1, 4, 2, 2]) @ DSPRITES_BASES
    np.testing.assert_array_equal(original, raw["original_dataset_indices"])


def test_real_dsprites_random_subset_is_partial(shared_data):
    ds = load_dataset("dsprites", path=shared_data / "dsprites" / "dsprites_subset.npz")
    assert ds.factor_sizes == (3, 6, 40, 32, 32)
    assert not ds.is_complete and len(ds) == 20_000
    raw = np.load(shared_data / "dsprites" / "dsprites_subset.npz")
    np.testing.assert_array_equal(ds.flatten(ds.factors), raw["original_dataset_indices"])
    missing = np.setdiff1d(np.arange(737_280), raw["original_dataset_indices"])[:1]
    with pytest.raises(DataError, match="has no image with factor classes"):
        ds.index_of(ds.unflatten(missing))
    # on a partial grid, sampled factors are rows that exist
    factors = ds.sample_factors(100, np.random.default_rng(1))
    assert len(ds.index_of(factors)) == 100


def test_dsprites_official_layout_drops_the_constant_colour(tmp_path):
    rng = np.random.default_rng(0)
    flat = np.sort(rng.choice(737_280, size=64, replace=False))
    five = (flat[:, None] // DSPRITES_BASES) % np.array([3, 6, 40, 32, 32])
    classes = np.concatenate([np.zeros((64, 1), np.int64), five], axis=1)
    images = rng.integers(0, 2, size=(64, 64, 64), dtype=np.uint8)
    write_dsprites_npz(tmp_path / "official.npz", classes, images)
    ds = read_dsprites_npz(tmp_path / "official.npz")
    assert ds.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert ds.factor_sizes == (3, 6, 40, 32, 32)  # from the metadata, not from max + 1
    np.testing.assert_array_equal(ds.flatten(ds.factors), flat)
    np.testing.assert_array_equal(ds.images[:, 0], images)
    # the same file found through the data folder and the official name
    folder = tmp_path / "dsprites"
    folder.mkdir()
    (folder / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz").write_bytes(
        (tmp_path / "official.npz").read_bytes()
    )
    with pytest.raises(DataError, match="checksum"):  # not the official bytes
        load_dataset("dsprites", root=tmp_path, download=False)


class Boom:
    def __reduce__(self):
        return (print, ("code ran",))


def test_dsprites_metadata_pickle_cannot_run_code(tmp_path, capsys):
    classes = np.zeros((1, 6), np.int64)
    arrays = {
        "imgs": np.zeros((1, 64, 64), np.uint8),
        "latents_classes": classes,
        "metadata": np.array({"x": Boom()}, dtype=object),
    }
    np.savez(tmp_path / "evil.npz", **arrays)
    assert b"code ran" not in pickle.dumps(1)
    ds = read_dsprites_npz(tmp_path / "evil.npz")
    assert "code ran" not in capsys.readouterr().out
    assert len(ds) == 1


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"images": np.zeros((2, 64, 64), np.uint8)},
            r"missing key\(s\) \['imgs', 'latents_classes'\]",
        ),
        (
            {"imgs": np.zeros((2, 64, 64), np.float32), "latents_classes": np.zeros((2, 5), int)},
            "'imgs' must be uint8",
        ),
        (
            {"imgs": np.zeros((2, 64, 64), np.uint8), "latents_classes": np.zeros((3, 5), int)},
            r"'latents_classes' must be \[N=2, 5 or 6\]",
        ),
        (
            {"imgs": np.zeros((2, 64, 64), np.uint8), "latents_classes": np.zeros((2, 5), int)},
            "two images share the factor classes",
        ),
    ],
)
def test_dsprites_bad_files(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        read_dsprites_npz(tmp_path / "bad.npz")


def test_dsprites_truncated_file(tmp_path, shared_data):
    data = (shared_data / "dsprites" / "dsprites_subset.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.npz: .*truncated"):
        read_dsprites_npz(tmp_path / "cut.npz")


# -- the ground-truth interface on a tiny grid ----------------------------------------------
def test_ground_truth_maps_and_errors():
    sizes = (2, 3, 4)
    flat = np.arange(24)[::-1]  # stored in reverse order on purpose
    factors = (flat[:, None] // np.array([12, 4, 1])) % np.array(sizes)
    ds = GroundTruthDataset(
        name="tiny",
        images=np.zeros((24, 1, 2, 2), np.uint8),
        factors=factors,
        factor_names=("a", "b", "c"),
        factor_sizes=sizes,
    )
    assert ds.is_complete and ds.grid_size == 24
    np.testing.assert_array_equal(ds.flatten(np.array([[1, 2, 3], [0, 0, 1]])), [23, 1])
    np.testing.assert_array_equal(ds.index_of(np.array([[1, 2, 3], [0, 0, 0]])), [0, 23])
    np.testing.assert_array_equal(ds.unflatten(np.array([23, 5])), [[1, 2, 3], [0, 1, 1]])
    assert ds.factor_index("c") == 2
    with pytest.raises(DataError, match="factor 'b' class 3 is outside 0..2"):
        ds.index_of(np.array([[0, 3, 0]]))
    with pytest.raises(DataError, match=r"factor arrays must be \[M, 3\]"):
        ds.index_of(np.array([0, 1, 2]))
    with pytest.raises(DataError, match="has no factor 'd'"):
        ds.factor_index("d")
    rng = np.random.default_rng(0)
    draws = ds.sample_factors(6000, rng)
    for k, size in enumerate(sizes):  # each factor uniform and independent on a full grid
        counts = np.bincount(draws[:, k], minlength=size)
        assert np.abs(counts / 6000 - 1 / size).max() < 0.03
