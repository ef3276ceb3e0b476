"""Dask arrays: lazy block-wise transforms; fit reads only the sampled images."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.decomposition import PCA

from skaecnn import (
    ConvPoolTransformer,
    KMeansTriangleFeatures,
    PatchNormalizer,
    SparseAutoencoderFeatures,
    ZCAWhitening,
)

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")


@pytest.fixture(scope="module")
def images():
    return np.random.RandomState(0).rand(40, 10, 10)


@pytest.fixture(scope="module")
def conv(images):
    return ConvPoolTransformer(
        PCA(n_components=3), patch_size=3, n_patches=300, pool_size=2, random_state=0
    ).fit(images)


class _CountTasks(dask.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.count = 0

    def _pretask(self, key, dsk, state):
        self.count += 1


@pytest.mark.parametrize("method", ["transform", "convolve"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_lazy_transform_metadata_and_values(conv, images, method, dtype):
    X = (images * 255).astype(dtype)
    D = da.from_array(X, chunks=(15, 10, 10))
    with _CountTasks() as counter:
        lazy = getattr(conv, method)(D)
        assert counter.count == 0
        out = lazy.compute()
    assert counter.count > 0
    assert isinstance(lazy, da.Array)
    assert lazy.chunks[0] == D.chunks[0]
    assert lazy.numblocks[1:] == (1,) * (lazy.ndim - 1)
    assert (lazy.shape, lazy.dtype) == (out.shape, out.dtype)
    expected = getattr(conv, method)(X)
    assert out.dtype == expected.dtype
    assert_allclose(out, expected, rtol=1e-6)


def test_estimator_is_in_the_graph_once(conv, images):
    lazy = conv.transform(da.from_array(images, chunks=5))
    signature = conv.encoder_.mean_.tobytes()
    cloudpickle = pytest.importorskip("cloudpickle")
    graph = dict(lazy.__dask_graph__())
    assert sum(signature in cloudpickle.dumps(v) for v in graph.values()) == 1
    assert lazy.numblocks[0] == 8


def test_pixel_chunks_are_rechunked_and_rows_input(conv, images):
    lazy = conv.transform(da.from_array(images.reshape(40, 100), chunks=(7, 30)))
    assert lazy.chunks[0] == (7,) * 5 + (5,)
    assert_allclose(lazy.compute(), conv.transform(images))


def test_unknown_length_is_refused(conv, images):
    D = da.from_array(images, chunks=10)
    masked = D[D[:, 0, 0] > 0.5]
    with pytest.raises(ValueError, match="unknown size"):
        conv.transform(masked)
    with pytest.raises(ValueError, match="unknown size"):
        ConvPoolTransformer(PCA(n_components=2), patch_size=3).fit(masked)


def test_wrong_image_shape_is_refused_before_computing(conv):
    with pytest.raises(ValueError, match="features"):
        conv.transform(da.zeros((4, 9, 9), chunks=2))


@pytest.mark.parametrize(
    "estimator",
    [
        SparseAutoencoderFeatures(n_components=4, max_iter=5, random_state=0),
        ZCAWhitening(),
        PatchNormalizer(),
        KMeansTriangleFeatures(4, random_state=0),
    ],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_per_row_transformers_are_lazy(estimator):
    X = np.random.RandomState(1).rand(50, 9).astype(np.float32)
    estimator.fit(X)
    lazy = estimator.transform(da.from_array(X, chunks=(20, 4)))
    out = lazy.compute()
    assert (lazy.shape, lazy.dtype, lazy.chunks[0]) == (out.shape, out.dtype, (20, 20, 10))
    assert_allclose(out, estimator.transform(X), rtol=1e-6)


class _Recorded:
    """An array that is not in memory and records the images read from it."""

    def __init__(self, data):
        self.data, self.read = data, []
        self.shape, self.dtype, self.ndim, self.chunks = data.shape, data.dtype, data.ndim, (1,)

    def __getitem__(self, key):
        self.read.extend(np.arange(len(self.data))[key[0] if isinstance(key, tuple) else key])
        return self.data[key]


def _fit(X, n_patches=200):
    return ConvPoolTransformer(
        PCA(n_components=3), patch_size=3, n_patches=n_patches, random_state=0
    ).fit(X)


def test_fit_reads_only_the_sampled_images():
    images = np.random.RandomState(2).rand(3000, 8, 8).astype(np.float32)
    expected = _fit(images).encoder_.components_
    recorded = _Recorded(images)
    assert_array_equal(_fit(recorded).encoder_.components_, expected)
    read = np.array(recorded.read)
    assert len(read) == len(np.unique(read)) <= 200
    recorded = _Recorded(images)
    D = da.from_array(recorded, chunks=(1, 8, 8), asarray=False)
    assert_array_equal(_fit(D).encoder_.components_, expected)
    assert len(np.unique(recorded.read)) <= 200


def test_fit_on_memmap_and_zarr(tmp_path):
    images = np.random.RandomState(3).rand(500, 8, 8)
    expected = _fit(images, 20).encoder_.components_
    mapped = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.float64, images.shape)
    mapped[:] = images
    # A non-finite image never sampled is never read, hence never refused.
    used = np.unique(np.random.RandomState(0).randint(500, size=20))
    mapped[np.setdiff1d(np.arange(500), used)[0]] = np.nan
    assert_array_equal(_fit(mapped, 20).encoder_.components_, expected)
    zarr = pytest.importorskip("zarr")
    z = zarr.create_array(store=str(tmp_path / "x.zarr"), shape=images.shape, chunks=(50, 8, 8), dtype="f8")
    z[:] = images
    assert_array_equal(_fit(z, 20).encoder_.components_, expected)
