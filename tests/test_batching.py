"""Batchers: the index stream, exact resume, transforms, sharding, loader mode, lazy images."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from vaelab.data.base import GroundTruthDataset, ImageDataset, LazyImages
from vaelab.data.batching import (
    TRANSFORMS,
    Batch,
    DeviceBatcher,
    IndexStream,
    LoaderBatcher,
    make_batcher,
)


def image_dataset(n: int = 50, shape=(1, 4, 4), seed: int = 0, high: int = 256) -> ImageDataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, high, size=(n, *shape), dtype=np.uint8)
    return ImageDataset(name=f"random{n}", images=images)


def draw(batcher, k: int) -> list[Batch]:
    return [next(batcher) for _ in range(k)]


def same_batches(a: list[Batch], b: list[Batch]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(p.index, q.index) and torch.equal(p.x, q.x) for p, q in zip(a, b, strict=True)
    )


# -- the index stream ------------------------------------------------------------------------
def test_same_seed_same_batches_and_different_seed_differs():
    ds = image_dataset()
    a = draw(DeviceBatcher(ds, 8, seed=3), 20)
    b = draw(DeviceBatcher(ds, 8, seed=3), 20)
    c = draw(DeviceBatcher(ds, 8, seed=4), 20)
    assert same_batches(a, b)
    assert not torch.equal(torch.cat([x.index for x in a]), torch.cat([x.index for x in c]))
    # Batches index the data they return.
    for batch in a:
        assert batch.x.dtype == torch.float32 and batch.x.shape == (8, 1, 4, 4)
        expected = torch.from_numpy(ds.images[batch.index.numpy()]).float() / 255
        assert torch.equal(batch.x, expected)


def test_each_epoch_visits_every_row_once_and_boundary_batches_continue():
    n, bs = 50, 8  # 8 does not divide 50: batches 6, 12, 18 cross epoch boundaries
    ds = image_dataset(n)
    batcher = DeviceBatcher(ds, bs, seed=1)
    stream = torch.cat([b.index for b in draw(batcher, 25)])  # 200 rows = 4 epochs
    epochs = stream.reshape(4, n)
    for e in range(4):
        assert torch.equal(epochs[e].sort().values, torch.arange(n))
    # Epochs are shuffled differently.
    assert not torch.equal(epochs[0], epochs[1])
    # The boundary batch is the tail of epoch 0 then the head of epoch 1.
    ref = IndexStream(n, seed=1)
    boundary = stream[48:56]
    assert torch.equal(boundary, torch.cat([ref.permutation(0)[48:], ref.permutation(1)[:6]]))
    assert (batcher.epoch, batcher.offset, batcher.batches_drawn) == (4, 0, 25)


def test_permutations_are_fixed_by_seed_and_epoch_and_leave_threads_alone():
    threads = torch.get_num_threads()
    a, b = IndexStream(1000, seed=7), IndexStream(1000, seed=7, device="cpu")
    for e in range(3):
        b.permutation(e)
    assert torch.equal(a.permutation(3), b.permutation(3))  # no generator state carried over
    assert not torch.equal(a.permutation(3), IndexStream(1000, seed=8).permutation(3))
    assert not torch.equal(a.permutation(4), a.permutation(3))
    assert torch.get_num_threads() == threads


def test_global_batch_larger_than_dataset_spans_several_epochs():
    ds = image_dataset(5)
    batcher = DeviceBatcher(ds, 4, world_size=3)  # 12 rows per global step over 5 rows
    rows = torch.cat([DeviceBatcher(ds, 4, world_size=3, rank=r).next().index for r in range(3)])
    assert rows.shape == (12,)
    assert torch.equal(rows[:10].reshape(2, 5).sort(1).values, torch.arange(5).repeat(2, 1))
    batcher.next()
    assert (batcher.epoch, batcher.offset) == (2, 2)


# -- exact resume ----------------------------------------------------------------------------
@pytest.mark.parametrize("transform", ["float", "binarize", "dequantize"])
def test_resume_is_bit_identical(transform):
    ds = image_dataset(37, shape=(1, 6, 6))
    a = DeviceBatcher(ds, 8, seed=11, transform=transform)
    draw(a, 7)
    state = a.state_dict()
    assert all(type(v) is int for v in state.values())
    rest = draw(a, 5)
    b = DeviceBatcher(ds, 8, seed=11, transform=transform)
    b.load_state_dict(state)
    assert same_batches(draw(b, 5), rest)
    # A fresh batcher that is not resumed gives other batches (the test can tell).
    assert not same_batches(draw(DeviceBatcher(ds, 8, seed=11, transform=transform), 5), rest)


def test_random_transforms_draw_fresh_noise_each_batch():
    ds = ImageDataset("grey", np.full((4, 1, 8, 8), 128, np.uint8))
    batcher = DeviceBatcher(ds, 4, transform="binarize")
    a, b = batcher.next(), batcher.next()
    assert torch.equal(a.index.sort().values, b.index.sort().values)
    assert not torch.equal(a.x[a.index.argsort()], b.x[b.index.argsort()])


def test_state_validation():
    ds = image_dataset(40)
    batcher = DeviceBatcher(ds, 8, seed=2)
    draw(batcher, 3)
    state = batcher.state_dict()
    with pytest.raises(ValueError, match=r"dataset_length=40.*dataset_length=41"):
        DeviceBatcher(image_dataset(41), 8, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match=r"batch_size=8.*batch_size=4"):
        DeviceBatcher(ds, 4, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match=r"world_size=1.*world_size=2"):
        DeviceBatcher(ds, 8, seed=2, world_size=2).load_state_dict(state)
    with pytest.raises(ValueError, match=r"seed=2.*seed=3"):
        DeviceBatcher(ds, 8, seed=3).load_state_dict(state)
    with pytest.raises(ValueError, match=r"missing.*batches_drawn"):
        batcher.load_state_dict({k: v for k, v in state.items() if k != "batches_drawn"})
    with pytest.raises(ValueError, match="inconsistent"):
        batcher.load_state_dict({**state, "offset": state["offset"] + 1})
    with pytest.raises(ValueError, match="must be ints"):
        batcher.load_state_dict({**state, "epoch": 0.0})
    with pytest.raises(ValueError, match="version"):
        batcher.load_state_dict({**state, "version": 99})
    # A failed load leaves the position alone; another rank's state loads fine.
    assert batcher.batches_drawn == 3
    DeviceBatcher(ds, 4, seed=2, world_size=2, rank=1).load_state_dict(
        DeviceBatcher(ds, 4, seed=2, world_size=2, rank=0).state_dict()
    )


# -- transforms ------------------------------------------------------------------------------
def every_value_dataset() -> ImageDataset:
    """Four images that together hold every uint8 value once."""
    return ImageDataset("ramp", np.arange(256, dtype=np.uint8).reshape(4, 1, 8, 8))


def batch_with_source(batcher, ds) -> tuple[torch.Tensor, np.ndarray]:
    batch = batcher.next()
    return batch.x, ds.images[batch.index.numpy()].astype(np.int64)


def test_float_of_uint8_data():
    ds = every_value_dataset()
    x, src = batch_with_source(DeviceBatcher(ds, 4), ds)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    scaled = x.double() * 255
    assert torch.allclose(scaled, scaled.round(), atol=1e-4)
    assert np.array_equal(scaled.round().long().numpy(), src)


def test_binary_data_stays_binary():
    ds = image_dataset(20, shape=(1, 8, 8), high=2)
    batcher = DeviceBatcher(ds, 20)
    assert batcher.scale == 1
    x, src = batch_with_source(batcher, ds)
    assert np.array_equal(x.numpy(), src.astype(np.float32))  # {0, 1}, not {0, 1/255}
    assert set(x.unique().tolist()) == {0.0, 1.0}
    # Bernoulli draws of 0 and 1 are certain, and 1 > 0.5: all three give the data itself.
    for transform in ("binarize", "threshold"):
        assert torch.equal(DeviceBatcher(ds, 20, transform=transform).next().x, x)


def test_binarize_is_bernoulli_of_the_pixel():
    values = np.array([0, 51, 204, 255], np.uint8)  # p = 0, 0.2, 0.8, 1
    ds = ImageDataset("levels", np.repeat(values, 64).reshape(4, 1, 8, 8))
    batcher = DeviceBatcher(ds, 4, transform="binarize")
    sums = torch.zeros(4)
    for _ in range(100):
        batch = batcher.next()
        assert set(batch.x.unique().tolist()) <= {0.0, 1.0}
        sums.index_add_(0, batch.index, batch.x.mean(dim=(1, 2, 3)))
    means = sums / 100
    assert means[0] == 0.0 and means[3] == 1.0
    assert abs(float(means[1]) - 0.2) < 0.02 and abs(float(means[2]) - 0.8) < 0.02


def test_threshold():
    ds = every_value_dataset()
    x, src = batch_with_source(DeviceBatcher(ds, 4, transform="threshold"), ds)
    assert np.array_equal(x.numpy(), (src >= 128).astype(np.float32))


def test_dequantize_stays_in_the_bin():
    ds = every_value_dataset()
    batcher = DeviceBatcher(ds, 4, transform="dequantize")
    for _ in range(20):
        x, src = batch_with_source(batcher, ds)
        assert np.array_equal(np.floor(x.double().numpy() * 256).astype(np.int64), src)
    frac = x.double().numpy() * 256 - src
    assert 0.4 < frac.mean() < 0.6 and frac.std() > 0.2  # uniform noise, not a constant offset


def test_dequantize_never_rounds_into_the_next_bin():
    # In float32, 255 + u rounds to 256 for u > 1 - 2**-17 (about 8 of these 2**20 pixels).
    ds = ImageDataset("white", np.full((16, 1, 256, 256), 255, np.uint8))
    x = DeviceBatcher(ds, 16, transform="dequantize").next().x
    assert float(x.max()) < 1.0 and float(x.min()) >= 255 / 256


def test_bits_reduction():
    ds = every_value_dataset()
    x, src = batch_with_source(DeviceBatcher(ds, 4, bits=5), ds)
    assert x.unique().numel() == 32 and float(x.max()) == 1.0
    assert np.array_equal(np.round(x.double().numpy() * 31).astype(np.int64), src >> 3)
    x, src = batch_with_source(DeviceBatcher(ds, 4, bits=5, transform="dequantize"), ds)
    assert np.array_equal(np.floor(x.double().numpy() * 32).astype(np.int64), src >> 3)
    x, src = batch_with_source(DeviceBatcher(ds, 4, bits=1), ds)
    assert np.array_equal(x.numpy(), (src >= 128).astype(np.float32))


def test_bad_transform_and_bits_raise():
    ds = image_dataset(10)
    with pytest.raises(ValueError, match="'sigmoid'") as err:
        DeviceBatcher(ds, 2, transform="sigmoid")
    for name in TRANSFORMS:
        assert repr(name) in str(err.value)
    for bits in (0, 9, 2.5):
        with pytest.raises(ValueError, match=r"1\.\.8"):
            DeviceBatcher(ds, 2, bits=bits)
    with pytest.raises(ValueError, match=r"0\.\.255"):
        DeviceBatcher(image_dataset(10, high=2), 2, bits=4)
    with pytest.raises(ValueError, match="'sigmoid'"):
        make_batcher(ds, 2, transform="sigmoid", mode="loader")
    with pytest.raises(ValueError, match="mode 'gpu'"):
        make_batcher(ds, 2, mode="gpu")


def test_channels_last_keeps_values():
    ds = image_dataset(10, shape=(3, 5, 5))
    plain = DeviceBatcher(ds, 4, transform="dequantize").next()
    cl = DeviceBatcher(ds, 4, transform="dequantize", channels_last=True).next()
    assert cl.x.is_contiguous(memory_format=torch.channels_last)
    assert not plain.x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(plain.index, cl.index)
    assert torch.equal(plain.x, cl.x)  # noise is drawn per logical pixel, whatever the layout


# -- data parallel sharding ------------------------------------------------------------------
def test_ranks_together_equal_one_process():
    ds = image_dataset(50)
    world, bs = 3, 4
    single = DeviceBatcher(ds, world * bs, seed=5)
    ranks = [DeviceBatcher(ds, bs, seed=5, rank=r, world_size=world) for r in range(world)]
    for _ in range(12):  # crosses several epoch boundaries (50 is not a multiple of 12)
        whole = single.next()
        parts = [r.next() for r in ranks]
        assert torch.equal(torch.cat([p.index for p in parts]), whole.index)
        assert torch.equal(torch.cat([p.x for p in parts]), whole.x)
    with pytest.raises(ValueError, match="rank"):
        DeviceBatcher(ds, bs, rank=3, world_size=3)


# -- loader mode -----------------------------------------------------------------------------
def test_loader_matches_device_and_resumes_with_workers(tmp_path):
    images = image_dataset(45, shape=(1, 6, 6)).images
    path = tmp_path / "images.u8"
    mm = np.memmap(path, dtype=np.uint8, mode="w+", shape=images.shape)
    mm[:] = images
    mm.flush()
    ds = ImageDataset("mm", np.memmap(path, dtype=np.uint8, mode="r", shape=images.shape))
    kw = dict(seed=9, transform="binarize", rank=1, world_size=2)
    loader = LoaderBatcher(ds, 4, num_workers=2, **kw)
    device = DeviceBatcher(ds, 4, **kw)
    first = draw(loader, 9)  # 2 * 4 rows per step: crosses the 45-row epoch boundary
    assert same_batches(first, draw(device, 9))
    state = loader.state_dict()
    later = draw(loader, 6)
    # Jump back on the running loader: its workers restart from the saved position.
    loader.load_state_dict(state)
    assert same_batches(draw(loader, 6), later)
    loader.close()
    # And a fresh device batcher can take over a loader's state.
    other = DeviceBatcher(ds, 4, **kw)
    other.load_state_dict(state)
    assert same_batches(draw(other, 6), later)


def test_memory_mapped_images_reach_workers_as_a_file_not_a_copy(tmp_path):
    from vaelab.data.batching import _RowsDataset

    path = tmp_path / "x.npy"
    np.save(path, image_dataset(300).images)  # 4800 bytes of pixels
    rows = _RowsDataset(np.load(path, mmap_mode="r"))
    blob = pickle.dumps(rows)
    assert len(blob) < 1000
    again = pickle.loads(blob)
    assert isinstance(again.images, np.memmap)
    assert np.array_equal(again.__getitems__([5, 2, 5]), rows.images[[5, 2, 5]])
    in_memory = _RowsDataset(rows.images[:10].copy())  # plain arrays travel as they are
    assert np.array_equal(pickle.loads(pickle.dumps(in_memory)).images, rows.images[:10])


def test_loader_without_workers_handles_repeated_rows():
    ds = image_dataset(6)
    loader = LoaderBatcher(ds, 4, num_workers=0, transform="dequantize", seed=1)
    device = DeviceBatcher(ds, 4, transform="dequantize", seed=1)
    a, b = draw(loader, 6), draw(device, 6)
    assert same_batches(a, b)
    # Some boundary batch holds a row twice; the loader still returns it in batch order.
    assert any(batch.index.unique().numel() < 4 for batch in a)


# -- lazy images -----------------------------------------------------------------------------
class Stripes(LazyImages):
    """Image ``i`` is ``i % 7`` everywhere except a bright first row; counts device renders."""

    max_value = 255

    def __init__(self, n: int):
        super().__init__((n, 1, 4, 4))
        self.renders = 0

    def _render_numpy(self, index: np.ndarray) -> np.ndarray:
        out = np.broadcast_to(
            (index % 7).astype(np.uint8)[:, None, None, None], (len(index), 1, 4, 4)
        )
        out = out.copy()
        out[:, :, 0, :] = 200
        return out

    def render(self, index: torch.Tensor) -> torch.Tensor:
        self.renders += 1
        out = (index % 7).to(torch.uint8)[:, None, None, None].expand(-1, 1, 4, 4).clone()
        out[:, :, 0, :] = 200
        return out


def test_lazy_images_render_on_the_device():
    lazy = Stripes(30)
    ds = ImageDataset("stripes", lazy)  # type: ignore[arg-type]
    batcher = make_batcher(ds, 5, mode="auto", memory_limit_bytes=0)
    assert isinstance(batcher, DeviceBatcher) and batcher.images is None
    assert batcher.scale == 255  # from max_value, without rendering everything
    batch = batcher.next()
    assert lazy.renders == 1
    expected = torch.from_numpy(lazy[batch.index.numpy()]).float() / 255
    assert torch.equal(batch.x, expected)
    assert float(batch.x[:, :, 0].min()) == pytest.approx(200 / 255)
    # The loader path renders through _render_numpy and agrees.
    loader = LoaderBatcher(ds, 5, num_workers=0)
    assert same_batches([loader.next()], [batch])


# -- choosing a batcher, labels, no synchronisation ------------------------------------------
def test_make_batcher_chooses_by_memory(tmp_path):
    ds = image_dataset(20)
    assert isinstance(make_batcher(ds, 4), DeviceBatcher)
    assert isinstance(make_batcher(ds, 4, memory_limit_bytes=ds.nbytes), LoaderBatcher)
    assert isinstance(make_batcher(ds, 4, mode="loader", num_workers=0), LoaderBatcher)
    path = tmp_path / "x.npy"
    np.save(path, ds.images)
    mapped = ImageDataset("mapped", np.load(path, mmap_mode="r"))
    assert isinstance(make_batcher(mapped, 4), LoaderBatcher)
    forced = make_batcher(mapped, 4, mode="device", seed=2)
    assert isinstance(forced, DeviceBatcher)
    assert same_batches(draw(forced, 3), draw(make_batcher(ds, 4, seed=2), 3))


def test_labels_follow_the_rows():
    factors = np.stack(np.meshgrid(np.arange(3), np.arange(4), indexing="ij"), -1).reshape(12, 2)
    ds = GroundTruthDataset(
        "grid",
        image_dataset(12).images,
        factors=factors,
        factor_names=("a", "b"),
        factor_sizes=(3, 4),
    )
    for cls in (DeviceBatcher, LoaderBatcher):
        kwargs = {"num_workers": 0} if cls is LoaderBatcher else {}
        batch = cls(ds, 5, labels=True, **kwargs).next()
        assert torch.equal(batch.labels, torch.from_numpy(factors)[batch.index])
    assert DeviceBatcher(ds, 5).next().labels is None
    with pytest.raises(ValueError, match="neither factors nor labels"):
        DeviceBatcher(image_dataset(12), 5, labels=True)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bits", [8, 5, 1])
@pytest.mark.parametrize("transform", TRANSFORMS)
def test_every_transform_gives_float32_in_the_asked_layout(transform, bits, channels_last):
    for ds in (every_value_dataset(), image_dataset(8, shape=(3, 4, 4), high=2)):
        if ds.name != "ramp" and bits != 8:
            continue
        kw = dict(transform=transform, bits=bits, channels_last=channels_last, seed=4)
        fast = draw(DeviceBatcher(ds, 4, **kw), 3)
        assert same_batches(fast, draw(DeviceBatcher(ds, 4, **kw), 3))
        for batch in fast:
            assert batch.x.dtype == torch.float32
            assert batch.x.is_contiguous(
                memory_format=torch.channels_last if channels_last else torch.contiguous_format
            )


def test_next_does_not_synchronise(monkeypatch):
    ds = image_dataset(30)
    batcher = DeviceBatcher(ds, 8, transform="binarize", labels=False)

    def forbidden(*args, **kwargs):
        raise AssertionError("host-device synchronisation in next()")

    for name in ("item", "cpu", "tolist", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    for _ in range(10):  # crosses epoch boundaries: only the permutation upload happens
        batcher.next()
