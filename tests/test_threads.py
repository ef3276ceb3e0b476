"""Threads are each estimator's parameter; limits set around a call are respected."""

import threading
from types import SimpleNamespace

import numba
import numpy as np
import pytest
from sklearn.preprocessing import FunctionTransformer
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_info, threadpool_limits

from skaecnn import ConvPoolTransformer, SparseAutoencoderFeatures
from skaecnn import _objective
from skaecnn._kernels import thread_buffers
from skaecnn._threads import blas_limit, effective_threads

from test_convpool import images, reference

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_effective_threads_follows_n_jobs_and_never_raises_a_limit():
    cores = numba.config.NUMBA_NUM_THREADS
    assert effective_threads(None) == effective_threads(-1) == min(cores, *_blas_threads())
    assert effective_threads(1) == 1
    assert effective_threads(-cores - 5) == 1
    with threadpool_limits(1):
        assert effective_threads(None) == effective_threads(4) == 1
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        assert effective_threads(None) == 1
    finally:
        numba.set_num_threads(previous)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 cores")
def test_in_a_dask_worker_all_is_the_workers_share(monkeypatch):
    distributed = pytest.importorskip("distributed")
    state = SimpleNamespace(nthreads=2, executing_count=1, ready=[])
    monkeypatch.setattr(distributed, "get_worker", lambda: SimpleNamespace(state=state))
    assert effective_threads(None) == 2  # the worker's only task
    state.ready = ["next"]  # starts when a thread frees up
    assert effective_threads(None) == effective_threads(-1) == effective_threads(-2) == 1
    assert effective_threads(2) == 2  # asked explicitly
    state.nthreads, state.ready = 1, []
    assert effective_threads(None) == 1
    state.nthreads, state.executing_count = 4, 3
    assert effective_threads(None) == 1  # 4 threads, 3 tasks: one each

    def not_a_worker():
        raise ValueError("No worker found")

    monkeypatch.setattr(distributed, "get_worker", not_a_worker)
    assert effective_threads(None) == min(numba.config.NUMBA_NUM_THREADS, *_blas_threads())


def test_a_loky_child_counts_from_the_share_joblib_gave_it():
    from joblib import Parallel, cpu_count, delayed

    seen = Parallel(n_jobs=2, backend="loky")(delayed(effective_threads)(None) for _ in range(2))
    assert max(seen) <= max(1, cpu_count() // 2)


def test_blas_limit_sections_restore_what_they_found_in_any_order():
    before = _blas_threads()
    first, second = blas_limit(1), blas_limit(2)
    first.__enter__()
    second.__enter__()
    assert _blas_threads() == [1] * len(before)
    first.__exit__(None, None, None)  # leaves before the section opened after it
    assert _blas_threads() == [min(2, n) for n in before]
    second.__exit__(None, None, None)
    assert _blas_threads() == before


def test_blas_limit_sections_keep_their_limit_after_a_lower_one_leaves():
    # A section asking fewer threads than BLAS had must take part even while a
    # lower one is open: when that one leaves, its own limit must hold.
    with threadpool_limits(4, user_api="blas"):
        before = _blas_threads()
        lower, higher, no_lower = blas_limit(1), blas_limit(2), blas_limit(max(before))
        with lower:
            higher.__enter__()
            with no_lower:
                assert _blas_threads() == [1] * len(before)
        assert _blas_threads() == [min(2, n) for n in before]
        higher.__exit__(None, None, None)
        assert _blas_threads() == before


def _record_limits(seen):
    def encode(X):
        seen.append((_blas_threads(), numba.get_num_threads()))
        return X[:, :3] * 2.0

    return FunctionTransformer(encode)


@pytest.mark.parametrize("n_jobs", [None, 1, 2])
def test_generic_path_runs_under_n_jobs_and_an_outer_limit(n_jobs):
    seen = []
    X = images(n=4, h=6, w=6)
    conv = ConvPoolTransformer(_record_limits(seen), patch_size=3, n_patches=20, n_jobs=n_jobs)
    conv.fit(X)
    with threadpool_limits(1):
        seen.clear()
        conv.transform(X)
        assert all(blas == [1] * len(blas) and n == 1 for blas, n in seen)
        assert _blas_threads() == [1] * len(_blas_threads())
    expected = effective_threads(n_jobs)
    seen.clear()
    conv.transform(X)
    assert all(max(blas) <= expected and n == expected for blas, n in seen)


def test_autoencoder_n_jobs_sets_its_objective_threads(monkeypatch):
    from skaecnn import _autoencoder

    asked = []
    objective = _autoencoder.loss_and_gradient

    def spy(*args, n_threads, **kwargs):
        asked.append(n_threads)
        return objective(*args, n_threads=n_threads, **kwargs)

    monkeypatch.setattr(_autoencoder, "loss_and_gradient", spy)
    X = np.random.RandomState(0).uniform(size=(600, 9))
    SparseAutoencoderFeatures(3, max_iter=2, n_jobs=1).fit(X)
    assert set(asked) == {1}
    asked.clear()
    with threadpool_limits(1):
        SparseAutoencoderFeatures(3, max_iter=2, n_jobs=2).fit(X)
    assert set(asked) == {1}
    asked.clear()
    SparseAutoencoderFeatures(3, max_iter=2, n_jobs=-1).fit(X)
    assert set(asked) == {effective_threads(None)}


@pytest.mark.parametrize("encoder", ["folded", "generic"])
def test_two_threads_transforming_at_once(encoder):
    X = images(n=40, h=12, w=12, c=2)
    enc = SparseAutoencoderFeatures(4, max_iter=5, random_state=0)
    if encoder == "generic":
        enc = make_pipeline(FunctionTransformer(), enc)
    conv = ConvPoolTransformer(enc, patch_size=3, n_patches=200, batch_size=3, n_jobs=2,
                               random_state=0).fit(X)
    assert conv.path_ == encoder
    expected = reference(conv, X).reshape(len(X), -1)
    results, errors = {}, []
    numba_threads = numba.get_num_threads()
    with threadpool_limits(1):
        outer = _blas_threads()

        def work(i):
            try:
                results[i] = [conv.transform(X) for _ in range(3)]
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        assert not errors
        assert _blas_threads() == outer == [1] * len(outer)
    assert numba.get_num_threads() == numba_threads
    for outputs in results.values():
        for F in outputs:
            np.testing.assert_allclose(F, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
@pytest.mark.parametrize("n_images, expected", [(1, []), (2, [2]), (3, [2])])
def test_kernel_runs_no_more_threads_than_images(monkeypatch, n_images, expected):
    # A parallel launch waits for every thread, also those without an image;
    # one image runs in the calling thread, with nothing launched.
    from skaecnn import _kernels

    X = images(n=3, h=10, w=10)
    conv = ConvPoolTransformer(SparseAutoencoderFeatures(4, max_iter=5, random_state=0),
                               patch_size=3, n_patches=200, n_jobs=2, random_state=0).fit(X)
    kernel, seen = _kernels._convolve_pool, []

    def spy(*args):
        seen.append(numba.get_num_threads())
        return kernel(*args)

    monkeypatch.setattr(_kernels, "_convolve_pool", spy)
    previous = numba.get_num_threads()
    F = conv.transform(X[:n_images])
    assert seen == expected
    assert numba.get_num_threads() == previous
    np.testing.assert_allclose(F, reference(conv, X[:n_images]).reshape(n_images, -1),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
@pytest.mark.parametrize("n_images", [1, 2])
def test_kernel_threads_run_their_matrix_products_on_one_blas_thread(monkeypatch, n_images):
    # Kernel threads each run matrix products of their own: one BLAS thread
    # each. One image alone, in the calling thread, has all n_jobs allows.
    from skaecnn import _kernels

    X = images(n=2, h=10, w=10)
    conv = ConvPoolTransformer(SparseAutoencoderFeatures(4, max_iter=5, random_state=0),
                               patch_size=3, n_patches=200, n_jobs=2, random_state=0).fit(X)
    name = "_convolve_pool_image" if n_images == 1 else "_convolve_pool"
    function, seen = getattr(_kernels, name), []

    def spy(*args):
        seen.append(_blas_threads())
        return function(*args)

    monkeypatch.setattr(_kernels, name, spy)
    with threadpool_limits(2, user_api="blas"):
        F = conv.transform(X[:n_images])
        assert seen == [[1 if n_images > 1 else 2] * len(_blas_threads())]
        assert _blas_threads() == [2] * len(_blas_threads())
    np.testing.assert_allclose(F, reference(conv, X[:n_images]).reshape(n_images, -1),
                               rtol=1e-10, atol=1e-10)


def test_parallel_kernel_reuses_its_compiled_per_image_function():
    # Looked up by the arguments' types at every call: a key that changed
    # from call to call would retype every argument (tens of microseconds).
    from skaecnn import _kernels

    X = images(n=3, h=10, w=10)
    conv = ConvPoolTransformer(SparseAutoencoderFeatures(4, max_iter=5, random_state=0),
                               patch_size=3, n_patches=200, random_state=0).fit(X)
    conv.transform(X)
    compiled = dict(_kernels._BY_ADDRESS)
    conv.transform(X)
    assert _kernels._BY_ADDRESS == compiled


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "pool_size, pooling, bands",
    # 20 x 18 maps: 6 pooled rows and 2 window rows dropped; 5 pooled rows,
    # split 3 + 2; a pooling whose regions overlap is never split.
    [(3, "max", [2]), ((4, 3), "sum", [2]), ((5, 2), "mean", [2]), ((6, 4), "mean", [])],
)
def test_one_image_split_into_bands_of_pooled_rows_equals_its_definition(
    monkeypatch, dtype, pool_size, pooling, bands
):
    from skaecnn import _kernels

    X = images(n=4, h=23, w=21, c=2)
    conv = ConvPoolTransformer(
        SparseAutoencoderFeatures(5, max_iter=5, random_state=0), patch_size=4,
        pool_size=pool_size, pool_stride=(3, 2) if pool_size == (6, 4) else None,
        pooling=pooling, n_patches=300, n_jobs=2, random_state=0,
    ).fit(X)
    monkeypatch.setattr(_kernels, "_BAND_FLOPS", 0)
    kernel, seen = _kernels._convolve_pool, []

    def spy(*args):
        seen.append(args[-3])  # n_bands
        return kernel(*args)

    monkeypatch.setattr(_kernels, "_convolve_pool", spy)
    F = conv.transform(X[:1].astype(dtype))
    assert seen == bands
    if bands:
        expected = reference(conv, X[:1]).reshape(1, -1)
    else:  # as in a batch, which runs one image per thread
        expected = conv.transform(X[:3])[:1]
    tol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(F, expected, rtol=tol, atol=tol)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two numba threads")
def test_objective_runs_its_groups_on_n_threads_within_numbas_count(monkeypatch):
    seen = []
    kernel = _objective._over_groups

    def spy(*args):
        seen.append(numba.get_num_threads())
        return kernel(*args)

    monkeypatch.setattr(_objective, "_over_groups", spy)
    rng = np.random.default_rng(0)
    X, k = rng.random((4096, 9)), 20  # four blocks of 1024 rows, one per group
    theta = _objective.initialize(9, k, np.random.RandomState(0), np.float64)
    buffer = _objective.activations_buffer(len(X), k, np.float64)
    previous = numba.get_num_threads()
    for numba_threads, n_threads, expected in [(2, 2, 2), (2, 1, 1), (1, 2, 1)]:
        seen.clear()
        numba.set_num_threads(numba_threads)
        try:
            _objective.loss_and_gradient(theta, X, k, 1e-3, 0.05, 3.0, "linear",
                                         n_threads=n_threads, activations=buffer)
            # Both passes, and numba's count as it was.
            assert seen == [expected, expected]
            assert numba.get_num_threads() == numba_threads
        finally:
            numba.set_num_threads(previous)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, widths", [(36, (9, 100)), (1, (3,)), (64, (25, 64)), (7, (75, 401))])
def test_thread_buffers_give_each_thread_its_own_cache_lines(rows, widths, dtype):
    buffers = thread_buffers(3, rows, widths, dtype)
    assert len(buffers) == len(widths)
    for buffer, width in zip(buffers, widths):
        assert buffer.dtype == dtype and buffer.flags.c_contiguous
        assert buffer.shape[0] == 3 and buffer.shape[1] >= rows and buffer.shape[2] == width
        assert buffer.shape[1] == buffers[0].shape[1]  # one block of rows for all
        for t in range(3):
            assert buffer[t].ctypes.data % 64 == 0
