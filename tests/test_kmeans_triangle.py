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


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_convpool_coates_pipeline_equals_definition(dtype):
    rng = np.random.RandomState(0)
    X = rng.uniform(0, 1, size=(10, 12, 11)).astype(dtype)
    encoder = make_pipeline(
        PatchNormalizer(epsilon=10 / 255**2),
        ZCAWhitening(epsilon=0.1),
        KMeansTriangleFeatures(n_components=8, random_state=0),
    )
    conv = ConvPoolTransformer(
        encoder, patch_size=4, n_patches=500, pool_size=(4, 4), pooling="sum", random_state=0
    ).fit(X)
    F = conv.transform(X)
    assert F.dtype == dtype and conv.output_shape_ == (2, 2, 8)
    # Definition: encoder_.transform on every 4x4 window, sum over 4x4 blocks.
    windows = sliding_window_view(X.astype(np.float64), (4, 4), axis=(1, 2))  # (n, 9, 8, 4, 4)
    n, oh, ow = windows.shape[:3]
    maps = conv.encoder_.transform(windows.reshape(n * oh * ow, 16)).reshape(n, oh, ow, 8)
    ref = maps[:, :8, :8].reshape(n, 2, 4, 2, 4, 8).sum(axis=(2, 4))
    tol = 1e-10 if dtype == np.float64 else 1e-3
    np.testing.assert_allclose(F, ref.reshape(n, -1), rtol=tol, atol=tol * np.abs(ref).max())
