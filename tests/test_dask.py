"""Dask arrays: lazy block-wise transforms; fit reads only the sampled images;
on a real LocalCluster: thread budgets, out-of-core runs, grid search."""

import sys

import numba
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from threadpoolctl import threadpool_info

from skaecnn import (
    ConvPoolTransformer,
    KMeansTriangleFeatures,
    PatchNormalizer,
    SparseAutoencoderFeatures,
    ZCAWhitening,
)
from skaecnn._threads import effective_threads

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


@pytest.mark.parametrize("method", ["transform", "convolve"])
def test_one_task_per_block_reads_transforms_and_stores(conv, images, method, tmp_path):
    # Fused, a block's input and output live only while its task runs.
    pytest.importorskip("zarr")
    da.from_array(images, chunks=(5, -1, -1)).to_zarr(str(tmp_path / "images.zarr"))
    stored = getattr(conv, method)(da.from_zarr(str(tmp_path / "images.zarr"))).to_zarr(
        str(tmp_path / "features.zarr"), compute=False)
    (optimized,) = dask.optimize(stored)
    assert sum(isinstance(key, tuple) for key in dict(optimized.__dask_graph__())) == 8


def test_pixel_chunks_are_rechunked_and_rows_input(conv, images):
    lazy = conv.transform(da.from_array(images.reshape(40, 100), chunks=(7, 30)))
    assert lazy.chunks[0] == (7,) * 5 + (5,)
    assert_allclose(lazy.compute(), conv.transform(images))


def test_merged_pixel_chunks_stay_within_the_chunk_size(conv, images):
    # 800 bytes per image: whole images of the one row chunk would be 32 KB.
    with dask.config.set({"array.chunk-size": "8KB"}):
        lazy = conv.transform(da.from_array(images, chunks=(40, 5, 5)))
        assert lazy.chunks[0] == (10,) * 4
        assert conv.transform(da.from_array(images, chunks=(8, 5, 5))).chunks[0] == (8,) * 5
    assert_allclose(lazy.compute(), conv.transform(images))


def test_unknown_length_is_refused(conv, images):
    D = da.from_array(images, chunks=10)
    masked = D[D[:, 0, 0] > 0.5]
    with pytest.raises(ValueError, match="unknown size"):
        conv.transform(masked)
    with pytest.raises(ValueError, match="unknown size"):
        conv.transform(D[:, D[0, :, 0] > 0.5])  # unknown along a pixel axis
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


# On a LocalCluster of 2 worker processes x 1 thread (module-scoped: it takes a
# few seconds to start). A worker's memory_limit is about twice its resident
# size at rest (python, numpy, numba, scikit-learn and the compiled kernels).
_MEMORY_LIMIT = 600 * 2**20


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    # A dask nanny starts workers with OPENBLAS_NUM_THREADS=1 (and OMP, MKL),
    # which alone would keep every task on one thread; without it, workers
    # keep to their threads by skaecnn's rule only, which is under test here.
    environ = {"MALLOC_TRIM_THRESHOLD_": 65536}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True,
            memory_limit=_MEMORY_LIMIT, dashboard_address=None,
        )
    with cluster, distributed.Client(cluster) as client:
        yield client


def _threads_seen(X):
    """As an encoder: every response is the threads the calling task may keep
    busy now, numba's count or BLAS's limit, the larger."""
    blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    return np.full((len(X), 1), max([numba.get_num_threads()] + blas), dtype=float)


def _numba_threads(X):
    """As an encoder: every response is numba's thread count of the calling
    task (OpenBLAS ignores limits set outside the main thread, whose BLAS
    setting every thread of the local scheduler shares)."""
    return np.full((len(X), 1), numba.get_num_threads(), dtype=float)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 cores")
def test_local_threaded_scheduler_tasks_share_the_cores():
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    cores = effective_threads(None)  # out of a task: all of them
    assert cores >= 2
    X = np.random.RandomState(0).rand(40, 6, 6)
    conv = ConvPoolTransformer(FunctionTransformer(_numba_threads), patch_size=3, n_patches=50,
                               pool_size=4).fit(X)
    D = da.from_array(X, chunks=5)

    def seen(**config):
        return conv.transform(D).max().compute(scheduler="threads", **config)

    # Two scheduler threads run a task each: half the cores each.
    assert seen(num_workers=2) == cores // 2
    assert seen(num_workers=cores + 1) == 1
    assert seen(num_workers=1) == cores  # a lone thread keeps them all
    assert seen() == max(1, cores // dask.system.CPU_COUNT)  # dask's default pool
    with ThreadPoolExecutor(2) as pool, dask.config.set(pool=pool):
        assert seen() == cores // 2
    conv.set_params(n_jobs=2)
    assert seen(num_workers=2) == 2  # asked explicitly
    with threadpool_limits(1):
        assert seen(num_workers=1) == 1


@pytest.mark.cluster
def test_workers_run_no_more_threads_than_they_were_given(client):
    X = np.random.RandomState(0).rand(40, 6, 6)
    conv = ConvPoolTransformer(FunctionTransformer(_threads_seen), patch_size=3, n_patches=50,
                               pool_size=4).fit(X)
    assert conv.transform(X).max() == effective_threads(None)  # all cores, out of a worker
    # One task at a time per worker, each on one thread: 2 busy threads in all.
    assert conv.transform(da.from_array(X, chunks=5)).compute().max() == 1


def _peak_and_spills(dask_worker):
    # VmHWM, not getrusage's maxrss: that one keeps the peak of the large
    # test process the worker was forked from before it exec'd.
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return peak * 1024, dask_worker.data.cumulative_metrics.get(("disk-write", "count"), 0)


@pytest.mark.cluster
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_out_of_core_transform_to_zarr(client, tmp_path):
    zarr = pytest.importorskip("zarr")
    side = 64
    # 3 worker memory limits in all, in blocks of 16 MiB made on the workers
    # (cheaply: image i is a ramp times i). One window per image keeps the
    # transform about as cheap as making the images.
    n = 3 * _MEMORY_LIMIT // (8 * side * side)
    ramp = np.linspace(0, 1, side * side).reshape(side, side)
    images = da.arange(n, chunks=512, dtype=float)[:, None, None] * ramp
    assert images.nbytes >= 3 * _MEMORY_LIMIT
    conv = ConvPoolTransformer(PCA(n_components=2), patch_size=side, n_patches=100, pool_size=1,
                               random_state=0).fit(np.random.RandomState(0).rand(100, side, side))
    features = conv.transform(images)
    features.to_zarr(str(tmp_path / "features.zarr"))
    stored = zarr.open_array(str(tmp_path / "features.zarr"), mode="r")
    assert stored.shape == features.shape == (len(images), 2)
    assert_allclose(stored[-5:], conv.transform(images[-5:].compute()))
    for peak, spills in client.run(_peak_and_spills).values():
        assert peak < _MEMORY_LIMIT and spills == 0


@pytest.mark.cluster
def test_pixel_chunks_on_the_cluster(client, conv, images):
    with dask.config.set({"array.chunk-size": "8KB"}):
        lazy = conv.transform(da.from_array(images, chunks=(40, 5, 5)))
    assert_allclose(lazy.compute(), conv.transform(images))


@pytest.mark.cluster
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_grid_search_on_the_cluster_matches_loky(client):
    joblib = pytest.importorskip("joblib")
    digits = load_digits()
    X, y = digits.images[:150] / 16.0, digits.target[:150]
    model = make_pipeline(
        ConvPoolTransformer(SparseAutoencoderFeatures(max_iter=15, random_state=0),
                            n_patches=500, random_state=0),
        LogisticRegression(max_iter=300),
    )
    grid = {
        "convpooltransformer__patch_size": [3, 4],
        "convpooltransformer__pool_size": [2, 3],
        "convpooltransformer__encoder__n_components": [4, 8],
    }
    searches = {}
    for backend in ["loky", "dask"]:
        searches[backend] = GridSearchCV(model, grid, cv=2, n_jobs=2)
        with joblib.parallel_config(backend=backend):
            searches[backend].fit(X, y)
    loky, on_dask = searches["loky"], searches["dask"]
    assert on_dask.best_params_ == loky.best_params_
    for split in range(2):
        key = f"split{split}_test_score"
        assert_allclose(on_dask.cv_results_[key], loky.cv_results_[key], rtol=1e-7)
    # Not all alike, so that the same best is not a tie.
    assert np.ptp(loky.cv_results_["mean_test_score"]) > 0
