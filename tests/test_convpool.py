import gc
import os
import pickle
import threading
import time
import tracemalloc

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.base import clone
from sklearn.cluster import MiniBatchKMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skaecnn import (
    ConvPoolTransformer,
    KMeansTriangleFeatures,
    PatchNormalizer,
    SparseAutoencoderFeatures,
    ZCAWhitening,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def reference(conv, images, pool=None, dtype=np.float64):
    """The definition: encoder_.transform on every window, then pooling."""
    images = np.asarray(images, dtype=dtype)
    if images.ndim == 3:
        images = images[..., None]
    m = conv.patch_size_
    windows = sliding_window_view(images, (m, m), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
    n, oh, ow = windows.shape[:3]
    maps = conv.encoder_.transform(windows.reshape(n * oh * ow, -1)).reshape(n, oh, ow, -1)
    ph, pw = conv.pool_size_ if pool is None else pool
    nh, nw = oh // ph, ow // pw
    blocks = maps[:, : nh * ph, : nw * pw].reshape(n, nh, ph, nw, pw, -1)
    return {"mean": np.mean, "max": np.max, "sum": np.sum}[conv.pooling](blocks, axis=(2, 4))


def images(n=12, h=11, w=10, c=None, seed=0):
    rng = np.random.RandomState(seed)
    shape = (n, h, w) if c is None else (n, h, w, c)
    return rng.uniform(0, 1, size=shape)


def sae(k=6, **kw):
    return SparseAutoencoderFeatures(n_components=k, max_iter=15, random_state=0, **kw)


ENCODERS = {
    "sae": sae(),
    "normalize+zca+sae": make_pipeline(PatchNormalizer(0.01), ZCAWhitening(), sae(decoder="linear")),
    "scaler+pca-whiten+rbm": make_pipeline(
        StandardScaler(), PCA(5, whiten=True, random_state=0), MinMaxScaler(), BernoulliRBM(4, n_iter=2, random_state=0)
    ),
    "scaler+pca-whiten+sae": make_pipeline(StandardScaler(), PCA(5, whiten=True, random_state=0), sae()),
    "pca": PCA(4, random_state=0),
    "zca": ZCAWhitening(),
    "triangle": KMeansTriangleFeatures(5, random_state=0),
    "normalize+triangle": make_pipeline(PatchNormalizer(0.01), KMeansTriangleFeatures(5, random_state=0)),
    "normalize+zca+triangle": make_pipeline(
        PatchNormalizer(0.01), ZCAWhitening(0.1), KMeansTriangleFeatures(5, random_state=0)
    ),
    "scaler+pca-whiten+triangle": make_pipeline(
        StandardScaler(), PCA(5, whiten=True, random_state=0), KMeansTriangleFeatures(5, random_state=0)
    ),
    "kmeans": MiniBatchKMeans(5, n_init=1, random_state=0),
    "function": FunctionTransformer(np.square),
}


@pytest.mark.parametrize("name", list(ENCODERS))
@pytest.mark.parametrize("channels", [None, 3])
def test_transform_equals_definition(name, channels):
    X = images(c=channels)
    conv = ConvPoolTransformer(
        ENCODERS[name], patch_size=3, n_patches=300, pool_size=(2, 3), random_state=0
    ).fit(X)
    folded = name not in ("kmeans", "function")
    assert (conv.filters_ is not None) == folded
    assert conv.path_ == ("folded" if folded else "generic")
    F = conv.transform(X)
    ref = reference(conv, X)
    assert F.shape == (X.shape[0], ref[0].size)
    np.testing.assert_allclose(F, ref.reshape(len(X), -1), rtol=1e-10, atol=1e-10)


def test_default_encoder_is_folded_and_scaled_to_the_pixel_range():
    X = images(n=4, h=6, w=6) * 255
    conv = ConvPoolTransformer(patch_size=3, n_patches=100, pool_size=2, random_state=0)
    conv.fit(X)
    normalizer, zca, sae_ = (step for _, step in conv.encoder_.steps)
    assert isinstance(sae_, SparseAutoencoderFeatures) and sae_.decoder == "linear"
    assert sae_.n_components == 100 and conv.output_shape_ == (2, 2, 100)
    # Coates et al.'s epsilon of 10 for 8-bit pixels, scaled to the data's range.
    assert normalizer.epsilon == pytest.approx(10 * (np.ptp(X) / 255) ** 2, rel=0.05)
    assert conv.filters_.shape == (100, 3, 3, 1)
    np.testing.assert_allclose(conv.transform(X), reference(conv, X).reshape(4, -1), atol=1e-10)


@pytest.mark.parametrize("channels, steps", [
    (4, (PatchNormalizer, ZCAWhitening, SparseAutoencoderFeatures)),
    (5, (StandardScaler, ZCAWhitening, SparseAutoencoderFeatures)),
])
def test_default_encoder_standardizes_stacks_of_maps(channels, steps):
    # Pictures have at most 4 channels; more are the maps of a layer below.
    X = images(n=4, h=6, w=6, c=channels) * np.arange(1, channels + 1)
    conv = ConvPoolTransformer(patch_size=3, n_patches=100, pool_size=2, random_state=0).fit(X)
    assert tuple(type(step) for _, step in conv.encoder_.steps) == steps
    assert conv.layer_.folded and conv.filters_.shape == (100, 3, 3, channels)
    np.testing.assert_allclose(conv.transform(X), reference(conv, X).reshape(4, -1), atol=1e-10)


@pytest.mark.parametrize("pooling", ["mean", "max", "sum"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooling_and_dtype(pooling, dtype):
    X = images(c=2).astype(dtype)
    conv = ConvPoolTransformer(
        make_pipeline(PatchNormalizer(0.01), ZCAWhitening(), sae()),
        patch_size=4, n_patches=300, pool_size=3, pooling=pooling, flatten=False,
        random_state=0,
    ).fit(X)
    F = conv.transform(X)
    assert F.dtype == dtype and F.shape == (12,) + conv.output_shape_ == (12, 2, 2, 6)
    tol = 1e-5 if dtype == np.float32 else 1e-10
    scale = 9 if pooling == "sum" else 1
    np.testing.assert_allclose(F, reference(conv, X), rtol=tol, atol=tol * scale)
    assert conv.filters_.shape == (6, 4, 4, 2)


def test_flatten_is_a_reshape_and_input_forms_agree():
    X = images(c=3)
    params = dict(encoder=sae(), patch_size=3, n_patches=200, random_state=0)
    maps = ConvPoolTransformer(flatten=False, **params).fit(X).transform(X)
    flat = ConvPoolTransformer(**params).fit(X).transform(X)
    np.testing.assert_array_equal(flat, maps.reshape(len(X), -1))
    for shape in [(11, 10, 3), (11, -1, 3), (-1, 10, 3)]:
        rows = ConvPoolTransformer(image_shape=shape, **params).fit(X.reshape(12, -1))
        np.testing.assert_array_equal(rows.transform(X.reshape(12, -1)), flat)


def test_square_shape_inferred_and_uint8_taken_as_values():
    X = (images(h=9, w=9) * 255).astype(np.uint8)
    conv = ConvPoolTransformer(sae(), patch_size=3, n_patches=200, random_state=0)
    F = conv.fit(X.reshape(12, 81)).transform(X.reshape(12, 81))
    assert conv.image_shape_ == (9, 9, 1)
    np.testing.assert_allclose(F, reference(conv, X).reshape(12, -1), atol=1e-10)
    assert F.dtype == np.float64


def test_convolve_returns_unpooled_maps():
    X = images()
    conv = ConvPoolTransformer(sae(), patch_size=3, n_patches=200, random_state=0).fit(X)
    maps = conv.convolve(X[:2])
    assert maps.shape == (2, 9, 8, 6)
    np.testing.assert_allclose(maps, reference(conv, X[:2], pool=(1, 1)), atol=1e-12)


@pytest.mark.parametrize("batch_size", [1, 5, None])
def test_chunking_does_not_change_the_result(batch_size):
    X = images(n=13)
    conv = ConvPoolTransformer(sae(), patch_size=3, n_patches=200, random_state=0).fit(X)
    expected = reference(conv, X).reshape(13, -1)
    conv.set_params(batch_size=batch_size)
    np.testing.assert_allclose(conv.transform(X), expected, atol=1e-12)


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_transform_memory_is_bounded():
    X = images(n=2000, h=28, w=28).astype(np.float32)
    conv = ConvPoolTransformer(
        sae(k=32), patch_size=5, n_patches=200, pool_size=2, batch_size=16, random_state=0
    ).fit(X)
    conv.transform(X[:16])  # compile outside the measurement
    unpooled = X.shape[0] * 24 * 24 * 32 * 4
    chunk = 16 * 24 * 24 * (25 + 32) * 4
    tracemalloc.start()
    F = conv.transform(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < F.nbytes + 2 * chunk + 2**20
    assert peak < unpooled / 3
    if not os.path.exists("/proc/self/statm"):
        return
    # What numba and BLAS allocate is invisible to tracemalloc: the resident
    # size, sampled while transform runs, counts it too (kernel buffers of a
    # few MiB per thread).
    del F
    gc.collect()
    before, peak_rss, done = _rss(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak_rss[0] = max(peak_rss[0], _rss())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        F = conv.transform(X)
    finally:
        done.set()
        sampler.join()
    peak_rss[0] = max(peak_rss[0], _rss())
    assert peak_rss[0] - before < F.nbytes + 2 * chunk + 16 * 2**20
    assert peak_rss[0] - before < unpooled / 3


def test_two_layers_classify_digits():
    digits = load_digits()
    X, y = digits.images / 16.0, digits.target
    layer = dict(sparsity_target=0.1, max_iter=100, random_state=0)
    first = ConvPoolTransformer(
        SparseAutoencoderFeatures(n_components=8, **layer),
        patch_size=3, n_patches=2000, pool_size=2, flatten=False, random_state=0,
    )
    second = ConvPoolTransformer(
        SparseAutoencoderFeatures(n_components=16, **layer),
        patch_size=2, n_patches=2000, pool_size=1, random_state=0,
    )
    model = make_pipeline(first, second, StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(X[:1000], y[:1000])
    assert second.__class__ is ConvPoolTransformer
    fitted_second = model.steps[1][1]
    assert fitted_second.image_shape_ == (3, 3, 8)
    assert fitted_second.output_shape_ == (2, 2, 16)
    raw = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    raw.fit(X[:1000].reshape(1000, -1), y[:1000])
    raw_score = raw.score(X[1000:].reshape(len(X) - 1000, -1), y[1000:])
    # 64 features from two small layers against the 64 pixels on the same
    # split: 0.88 against 0.93 as measured; layers passing on wrong maps
    # (shapes, channels, pooling) fall far below.
    assert model.score(X[1000:], y[1000:]) > raw_score - 0.07


def test_grid_search_in_processes_and_pickle():
    digits = load_digits()
    X, y = digits.images[:400] / 16.0, digits.target[:400]
    pipe = Pipeline(
        [
            ("features", ConvPoolTransformer(sae(k=4), n_patches=500, random_state=0)),
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(max_iter=500)),
        ]
    )
    search = GridSearchCV(
        pipe,
        {
            "features__encoder__n_components": [4, 8],
            "features__patch_size": [3, 4],
            "features__pool_size": [2, 3],
        },
        cv=2,
        n_jobs=2,
    ).fit(X, y)
    assert search.best_score_ > 0.6
    best = search.best_estimator_
    restored = pickle.loads(pickle.dumps(best))
    np.testing.assert_array_equal(best.predict_proba(X), restored.predict_proba(X))
    conv = best.named_steps["features"]
    copy = clone(conv).fit(X)
    np.testing.assert_array_equal(copy.transform(X), conv.transform(X))


def test_verbose_reports_fit_and_transform(capsys):
    X = images(n=30)
    conv = ConvPoolTransformer(sae(), patch_size=3, n_patches=200, batch_size=4, verbose=1)
    conv.fit(X).transform(X)
    out = capsys.readouterr().out
    assert "Sampled 200 patches" in out
    assert "30/30 images" in out and "images/s" in out and "s left" in out


@pytest.mark.parametrize(
    "params, X, match",
    [
        ({"patch_size": 12}, images(), "patch_size=12 is larger than the images"),
        ({"pool_size": 10}, images(), "pool_size=10 is larger than the 9 x 8"),
        ({"pool_size": (2, 0)}, images(), "pool_size"),
        ({"pool_size": (1, 2, 3)}, images(), "pool_size"),
        ({"patch_size": 0}, images(), "patch_size"),
        ({"n_patches": 0}, images(), "n_patches"),
        ({"pooling": "median"}, images(), "pooling"),
        ({"flatten": "yes"}, images(), "flatten"),
        ({"batch_size": 0}, images(), "batch_size"),
        ({"n_jobs": 0}, images(), "n_jobs"),
        ({"encoder": "sae"}, images(), "encoder"),
        ({"image_shape": (5, 5)}, images().reshape(12, -1), "image_shape"),
        ({"image_shape": (11, 10, 2)}, images(), "image_shape"),
        ({"image_shape": (0, 3)}, images(), "image_shape"),
        ({"image_shape": (-1, -1)}, images().reshape(12, -1), "image_shape"),
        ({"image_shape": (-1, 7)}, images().reshape(12, -1), "cannot hold rows of 110"),
        ({}, images().reshape(12, -1), "Cannot infer image_shape from 110"),
        ({}, np.concatenate([images(h=4, w=4, c=3), np.ones((12, 4, 4, 1))], axis=3)
         .reshape(12, -1), r"4 x 4 RGBA images rather than 8 x 8 grey"),
        ({}, np.ones(5), "1-D"),
        ({}, np.ones((2, 3, 4, 5, 6)), "5-D"),
        ({}, np.empty((0, 5, 5)), "0 sample"),
        ({}, np.where(images() > 0.9, np.nan, images()), "NaN"),
        ({}, np.where(images() > 0.9, np.inf, images()), "infinity"),
        ({}, np.full((2, 5, 5), "a"), "real numbers"),
        ({}, images().astype(complex), "Complex data not supported"),
        ({}, "not images", "array of images|real numbers"),
    ],
)
def test_bad_input_names_the_parameter(params, X, match):
    conv = ConvPoolTransformer(**{"encoder": sae(), "patch_size": 3, "n_patches": 50, **params})
    with pytest.raises((ValueError, TypeError), match=match):
        conv.fit(X)


def test_transform_checks_images_against_fit():
    conv = ConvPoolTransformer(sae(), patch_size=3, n_patches=50, random_state=0).fit(images())
    with pytest.raises(ValueError, match=r"X has 120 features, but .* expecting 110"):
        conv.transform(images(h=12))
    with pytest.raises(ValueError, match=r"X has 330 features, but .* expecting 110"):
        conv.transform(images(c=3))
    with pytest.raises(ValueError, match=r"\(10, 11, 1\) .* fitted on \(11, 10, 1\)"):
        conv.transform(images(h=10, w=11))
    with pytest.raises(ValueError, match="NaN"):
        conv.transform(np.full((1, 11, 10), np.nan))


@pytest.mark.parametrize("bad, message", [(np.nan, "NaN"), (np.inf, "infinity"),
                                          (-np.inf, "infinity")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transform_refuses_one_bad_value(bad, message, dtype):
    # One value among finite ones, in the last image: the range that finds it
    # must cover every image, not the first chunk's.
    conv = ConvPoolTransformer(sae(), patch_size=3, n_patches=50, random_state=0,
                               batch_size=1).fit(images())
    X = images(n=3).astype(dtype)
    X[-1, 4, 5] = bad
    with pytest.raises(ValueError, match=message):
        conv.transform(X)


# The checks feed rows of arbitrary width: image_shape=(1, -1) takes each row as
# a one-pixel-high image, so every check applies.
@parametrize_with_checks(
    [
        ConvPoolTransformer(
            sae(k=3), patch_size=1, n_patches=20, pool_size=1, image_shape=(1, -1),
            random_state=0,
        ),
        ConvPoolTransformer(
            PCA(1), patch_size=1, n_patches=20, pool_size=1, pooling="max",
            image_shape=(1, -1), random_state=0,
        ),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("pooling, pool, stride", [
    ("mean", 3, None), ("max", 2, None), ("sum", 6, 3), ("mean", 4, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_images_share_a_matrix_product_with_the_same_result(
        monkeypatch, n_jobs, pooling, pool, stride, dtype):
    # Several small images go to one matrix product; one image per product
    # (_GROUP_ROWS = 1) is the same arithmetic on the same rows (BLAS may
    # round a row differently in a longer product).
    from skaecnn import _kernels

    X = images(n=23, h=12, w=12, seed=2).astype(dtype)  # 64 positions each
    conv = ConvPoolTransformer(
        make_pipeline(PatchNormalizer(0.1), sae()), patch_size=5, pool_size=pool,
        pool_stride=stride, pooling=pooling, activation="split", n_jobs=n_jobs,
    ).fit(X)
    assert conv.path_ == "folded"
    assert _kernels._images_per_task(len(X), 64, 4096, n_jobs) > 1
    grouped = conv.transform(X)
    monkeypatch.setattr(_kernels, "_GROUP_ROWS", 1)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(grouped, conv.transform(X), rtol=tol, atol=tol)
    np.testing.assert_allclose(grouped[5], conv.transform(X[5:6])[0], rtol=tol, atol=tol)
