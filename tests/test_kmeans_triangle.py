import pickle

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.cluster import MiniBatchKMeans
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from skaecnn import ConvPoolTransformer, KMeansTriangleFeatures, PatchNormalizer, ZCAWhitening


def _blobs(n=300, d=9, k=4, seed=0):
    rng = np.random.RandomState(seed)
    centers = rng.normal(scale=5.0, size=(k, d))
    return centers[rng.randint(k, size=n)] + rng.normal(size=(n, d))


def _triangle(X, C):
    """The definition, written directly: max(0, mean_j(z_j) - z_k), z = ||x - c||."""
    Z = np.sqrt(((X[:, None, :] - C[None, :, :]) ** 2).sum(axis=2))
    return np.maximum(0.0, Z.mean(axis=1, keepdims=True) - Z)


@parametrize_with_checks(
    [
        # Few epochs: the checks fit many times on tiny data.
        KMeansTriangleFeatures(n_components=3, max_iter=5, random_state=0),
        KMeansTriangleFeatures(n_components=2, batch_size=7, max_iter=3, n_init=3, tol=1e-3,
                               random_state=0),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 2e-4)])
def test_transform_is_the_triangle_formula(dtype, rtol):
    X = _blobs().astype(dtype)
    km = KMeansTriangleFeatures(n_components=6, random_state=0).fit(X)
    F = km.transform(X)
    assert F.dtype == dtype and km.cluster_centers_.dtype == dtype
    expected = _triangle(X.astype(np.float64), km.cluster_centers_.astype(np.float64))
    scale = expected.max()
    np.testing.assert_allclose(F, expected, rtol=rtol, atol=rtol * scale)
    assert np.all(F >= 0)
    # Each row has at least one zero (the farthest centroid is at or beyond the mean).
    assert np.all((F == 0).any(axis=1))


def test_fit_finds_the_clusters_and_matches_minibatch_kmeans():
    X = _blobs(k=4)
    params = dict(batch_size=64, max_iter=20, n_init=2, tol=0.0, random_state=0)
    km = KMeansTriangleFeatures(n_components=4, **params).fit(X)
    ref = MiniBatchKMeans(n_clusters=4, **params).fit(X)
    np.testing.assert_array_equal(km.cluster_centers_, ref.cluster_centers_)
    assert km.inertia_ == pytest.approx(ref.inertia_)
    assert km.n_iter_ == ref.n_iter_
    # A sample is most active on its own cluster's centroid.
    np.testing.assert_array_equal(km.transform(X).argmax(axis=1), ref.predict(X))


def test_identical_points_give_zero_distance_not_nan():
    # ||x||^2 - 2 x.c + ||c||^2 can round below zero; the sqrt must not see it.
    X = np.tile(np.array([[1e4, -3e3, 7e3]]), (10, 1)) + np.arange(10)[:, None] * 1e-3
    km = KMeansTriangleFeatures(n_components=2, random_state=0).fit(X)
    F = km.transform(X)
    assert np.all(np.isfinite(F)) and np.all(F >= 0)


def test_random_state_reproducible_and_pickle():
    X = _blobs(n=200)
    a = KMeansTriangleFeatures(n_components=5, batch_size=32, random_state=3).fit(X)
    b = KMeansTriangleFeatures(n_components=5, batch_size=32, random_state=3).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(a.transform(X), c.transform(X))


def test_feature_names_out():
    km = KMeansTriangleFeatures(n_components=3, random_state=0).fit(_blobs(n=30))
    assert list(km.get_feature_names_out()) == [
        "kmeanstrianglefeatures0", "kmeanstrianglefeatures1", "kmeanstrianglefeatures2",
    ]


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_components": 0}, "n_components"),
        ({"n_components": 2.5}, "n_components"),
        ({"n_components": True}, "n_components"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_iter": 0}, "max_iter"),
        ({"n_init": 0}, "n_init"),
        ({"n_init": "auto"}, "n_init"),
        ({"tol": -1.0}, "tol"),
        ({"tol": "x"}, "tol"),
        ({"verbose": -1}, "verbose"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        KMeansTriangleFeatures(**params).fit(_blobs(n=20))


def test_bad_input():
    X = _blobs(n=20)
    km = KMeansTriangleFeatures(n_components=3, random_state=0)
    with pytest.raises(ValueError, match="n_components=30"):
        KMeansTriangleFeatures(n_components=30).fit(X)
    with pytest.raises(ValueError, match="NaN"):
        km.fit(np.where(np.eye(20, 9) > 0, np.nan, X))
    km.fit(X)
    with pytest.raises(ValueError, match="9 features"):
        km.transform(X[:, :4])


def _coates_conv(X, k=8, **params):
    encoder = make_pipeline(
        PatchNormalizer(epsilon=10 / 255**2),
        ZCAWhitening(epsilon=0.1),
        KMeansTriangleFeatures(n_components=k, random_state=0),
    )
    return ConvPoolTransformer(encoder, patch_size=4, n_patches=500, random_state=0, **params).fit(X)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_convpool_coates_pipeline_equals_definition(dtype):
    rng = np.random.RandomState(0)
    X = rng.uniform(0, 1, size=(10, 12, 11)).astype(dtype)
    conv = _coates_conv(X, pool_size=(4, 4), pooling="sum")
    F = conv.transform(X)
    assert F.dtype == dtype and conv.output_shape_ == (2, 2, 8)
    # Definition: encoder_.transform on every 4x4 window, sum over 4x4 blocks.
    windows = sliding_window_view(X.astype(np.float64), (4, 4), axis=(1, 2))  # (n, 9, 8, 4, 4)
    n, oh, ow = windows.shape[:3]
    maps = conv.encoder_.transform(windows.reshape(n * oh * ow, 16)).reshape(n, oh, ow, 8)
    ref = maps[:, :8, :8].reshape(n, 2, 4, 2, 4, 8).sum(axis=(2, 4))
    tol = 1e-10 if dtype == np.float64 else 1e-3
    np.testing.assert_allclose(F, ref.reshape(n, -1), rtol=tol, atol=tol * np.abs(ref).max())


def test_convpool_folds_centroids_into_filters():
    rng = np.random.RandomState(1)
    X = rng.uniform(0, 1, size=(6, 9, 9))
    conv = _coates_conv(X)
    normalizer, zca, km = conv.encoder_[0], conv.encoder_[1], conv.encoder_[2]
    filters = conv.filters_.reshape(8, 16)
    # The centroids seen from the normalized window: x'.c = x.(M c) + v.c.
    np.testing.assert_allclose(filters, km.cluster_centers_ @ zca.whitening_.T, rtol=1e-12)
    windows = normalizer.transform(sliding_window_view(X, (4, 4), axis=(1, 2)).reshape(-1, 16))
    white = zca.transform(windows)
    squared_distances = ((white[:, None, :] - km.cluster_centers_[None]) ** 2).sum(axis=2)
    np.testing.assert_allclose(
        (white**2).sum(axis=1)[:, None] - 2 * windows @ filters.T + conv.intercept_,
        squared_distances,
        rtol=1e-9,
        atol=1e-9 * squared_distances.max(),
    )
    np.testing.assert_allclose(
        conv.convolve(X[:2]).reshape(-1, 8),
        _triangle(white, km.cluster_centers_).reshape(6, 36, 8)[:2].reshape(-1, 8),
        atol=1e-10,
    )


def test_convpool_fused_triangle_float32_and_flat_images():
    rng = np.random.RandomState(2)
    X = rng.uniform(0, 255, size=(20, 16, 16, 3))
    X[:3] = 128.0  # flat: every normalized window is exactly 0
    conv64 = _coates_conv(X, k=32, pool_size=6, pooling="sum")
    F64 = conv64.transform(X)
    F32 = conv64.transform(X.astype(np.float32))
    assert np.all(np.isfinite(F32)) and F32.dtype == np.float32
    flat = conv64.encoder_.transform(np.full((1, 48), 128.0))
    np.testing.assert_allclose(F64[:3], np.tile(36 * flat, (3, 4)), rtol=1e-10)
    # float32 distances lose ~1e-7 * ||x'||^2 / z^2 of their value to cancellation,
    # here up to 2e-5 of the largest feature (1.8e-5 through the generic path).
    np.testing.assert_allclose(F32, F64, rtol=0, atol=1e-4 * np.abs(F64).max())


def test_convpool_folds_triangle_with_a_centroid_on_each_fitted_patch_in_float32():
    # As many centroids as patches: every fitted patch is a centroid, whose
    # distance cancels to zero from float32 squared norms. The fold's square
    # root keeps about sqrt(eps) of the distances there, which is rounding of
    # a right fold, not a wrong one: the fast path must stay.
    rng = np.random.RandomState(0)
    X = rng.uniform(0, 1, size=(40, 12, 12, 3)).astype(np.float32)
    k = 64
    encoder = make_pipeline(
        PatchNormalizer(epsilon=10 / 255**2), ZCAWhitening(epsilon=0.1),
        KMeansTriangleFeatures(n_components=k, max_iter=1, random_state=0),
    )
    conv = ConvPoolTransformer(
        encoder, patch_size=6, n_patches=k, pool_size=7, flatten=False, random_state=0
    ).fit(X)
    assert conv.path_ == "folded"
    windows = sliding_window_view(X[:4].astype(np.float64), (6, 6), axis=(1, 2))
    maps = conv.encoder_.transform(windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 108))
    ref = maps.reshape(4, 7, 7, k).mean(axis=(1, 2))[:, None, None, :]
    # Windows on centroids within that bound; the pooled map averages them.
    bound = np.sqrt(108 * np.finfo(np.float32).eps) * ref.max()
    np.testing.assert_allclose(conv.transform(X[:4]), ref, rtol=0, atol=bound)
