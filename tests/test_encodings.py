"""Encodings (soft threshold, polarity split) and overlapping pooling equal their definitions.

The references are built here in numpy from each encoder's fitted attributes,
not from the library's folds: every window's responses, then the encoding,
then pooling of the maps' regions of ``pool_size`` every ``pool_stride``.
"""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, Normalizer, StandardScaler

from skaecnn import (
    ConvNetClassifier,
    ConvPoolTransformer,
    KMeansTriangleFeatures,
    PatchNormalizer,
    SparseAutoencoderFeatures,
    ZCAWhitening,
)

from test_convpool import images, sae

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def windows(conv, X):
    """Every window of ``X`` as a patch row, and the maps' ``(n, oh, ow)``."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 3:
        X = X[..., None]
    m = conv.patch_size
    w = sliding_window_view(X, (m, m), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
    return w.reshape(-1, m * m * X.shape[3]), w.shape[:3]


def pool(maps, pooling, size, stride):
    """``pooling`` of ``maps`` (n, oh, ow, k) over regions of ``size`` every ``stride``."""
    (ph, pw), (sh, sw) = size, stride
    regions = sliding_window_view(maps, (ph, pw), axis=(1, 2))[:, ::sh, ::sw]
    return {"mean": np.mean, "max": np.max, "sum": np.sum}[pooling](regions, axis=(-2, -1))


def responses(encoder, patches):
    """The responses ``z`` an encoding thresholds, from the fitted attributes."""
    steps = encoder.steps if hasattr(encoder, "steps") else [("last", encoder)]
    x = patches
    for _, step in steps[:-1]:
        x = step.transform(x)
    last = steps[-1][1]
    if isinstance(last, (SparseAutoencoderFeatures, BernoulliRBM)):
        return x @ last.components_.T + last.intercept_hidden_
    if isinstance(last, KMeansTriangleFeatures):
        C = last.cluster_centers_
        return x @ (C / np.linalg.norm(C, axis=1, keepdims=True)).T
    return last.transform(x)  # PCA and steps without a fold: their outputs


def encode(z, activation, alpha):
    if activation == "soft":
        return np.maximum(z - alpha, 0.0)
    return np.concatenate([np.maximum(z - alpha, 0.0), np.maximum(-z - alpha, 0.0)], axis=1)


ENCODERS = {
    "sae": (sae(), True),
    "normalize+zca+sae": (
        make_pipeline(PatchNormalizer(0.01), ZCAWhitening(), sae(decoder="linear")), True
    ),
    "pca": (PCA(4, random_state=0), True),
    "scaler+pca+rbm": (
        make_pipeline(StandardScaler(), PCA(5, whiten=True, random_state=0), MinMaxScaler(),
                      BernoulliRBM(4, n_iter=2, random_state=0)), True,
    ),
    "triangle": (KMeansTriangleFeatures(5, random_state=0), True),
    "normalize+zca+triangle": (
        make_pipeline(PatchNormalizer(0.01), ZCAWhitening(0.1),
                      KMeansTriangleFeatures(5, random_state=0)), True,
    ),
    # Generic paths: a step that does not fold before a last step that does,
    # and a last step without a fold (its outputs are thresholded).
    "normalizer+sae": (make_pipeline(Normalizer(), sae()), False),
    "function": (FunctionTransformer(np.sin), False),
}


@pytest.mark.parametrize("name", list(ENCODERS))
@pytest.mark.parametrize("activation", ["soft", "split"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_encodings_equal_their_definition(name, activation, dtype):
    encoder, folded = ENCODERS[name]
    X = images(c=2, seed=1).astype(dtype)
    conv = ConvPoolTransformer(
        encoder, patch_size=3, n_patches=300, pool_size=(3, 2), pool_stride=(2, 1),
        activation=activation, flatten=False, random_state=0,
    )
    patches, (n, oh, ow) = windows(conv, X)
    z = responses(clone(conv).fit(X).encoder_, patches)
    # A threshold inside the responses' range, so that it matters: the same
    # random_state refits the same encoder.
    alpha = np.quantile(np.abs(z), 0.3)
    conv.set_params(alpha=alpha).fit(X)
    assert conv.path_ == ("folded" if folded else "generic")
    maps = encode(z, activation, alpha).reshape(n, oh, ow, -1)
    if z.max() > alpha:
        assert 0 < np.mean(maps == 0) < 1
    expected = pool(maps, "mean", (3, 2), (2, 1))
    k = z.shape[1] * (2 if activation == "split" else 1)
    assert conv.output_shape_ == (4, 7, k) == expected.shape[1:]
    F = conv.transform(X)
    assert F.dtype == dtype
    tol = 2e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(F, expected, rtol=tol, atol=tol * np.abs(expected).max())


def test_split_of_the_default_encoder_has_twice_its_features_and_shares_its_filters():
    X = images(n=6, h=9, w=9)
    params = dict(patch_size=3, n_patches=200, pool_size=3, random_state=0)
    plain = ConvPoolTransformer(**params).fit(X)
    split = ConvPoolTransformer(activation="split", alpha=0.0, **params).fit(X)
    k = plain.output_shape_[-1]
    assert split.output_shape_ == plain.output_shape_[:2] + (2 * k,)
    # alpha = 0: the two halves are the positive and negative parts of the
    # encoder's pre-activation, W x + b, whose sigmoid is the plain output.
    maps = split.convolve(X)
    z = maps[..., :k] - maps[..., k:]
    np.testing.assert_allclose(1 / (1 + np.exp(-z)), plain.convolve(X), atol=1e-10)
    np.testing.assert_array_equal(split.filters_[:k], -split.filters_[k:])


@pytest.mark.parametrize("pooling", ["mean", "max", "sum"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
# Regions of whole tiles (6 x 4 every 3 x 2) are pooled from the tiles' pooling.
@pytest.mark.parametrize(
    "size, stride", [((3, 3), (1, 2)), ((4, 2), (2, 3)), ((2, 2), (2, 2)), ((6, 4), (3, 2))]
)
@pytest.mark.parametrize("folded", [True, False])
def test_pool_stride_equals_its_definition(pooling, dtype, size, stride, folded):
    X = images(h=12, w=11, seed=2).astype(dtype)
    encoder = sae() if folded else make_pipeline(Normalizer(), sae())
    conv = ConvPoolTransformer(
        encoder, patch_size=3, n_patches=200, pool_size=size, pool_stride=stride,
        pooling=pooling, flatten=False, random_state=0,
    ).fit(X)
    assert conv.path_ == ("folded" if folded else "generic")
    patches, (n, oh, ow) = windows(conv, X)
    maps = conv.encoder_.transform(patches).reshape(n, oh, ow, -1)
    expected = pool(maps, pooling, size, stride)
    assert conv.output_shape_ == expected.shape[1:]
    tol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(conv.transform(X), expected, rtol=tol, atol=tol * np.prod(size))


def test_pool_stride_none_is_pool_size():
    X = images(h=13, w=13, seed=3)
    params = dict(encoder=sae(), patch_size=3, n_patches=200, pool_size=(3, 2), random_state=0)
    F = ConvPoolTransformer(**params).fit_transform(X)
    G = ConvPoolTransformer(pool_stride=(3, 2), **params).fit_transform(X)
    np.testing.assert_array_equal(F, G)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"activation": "relu"}, "activation"),
        ({"alpha": -0.1}, "alpha"),
        ({"pool_stride": 0}, "pool_stride"),
        ({"pool_stride": (1, 2, 3)}, "pool_stride"),
    ],
)
def test_bad_encoding_or_stride_names_the_parameter(params, match):
    conv = ConvPoolTransformer(sae(), patch_size=3, n_patches=50, **params)
    with pytest.raises((ValueError, TypeError), match=match):
        conv.fit(images())


def test_convnet_fine_tunes_split_layers_with_overlapping_pools():
    X, y = images(n=20, h=10, w=10), np.arange(20) % 2
    split = ConvPoolTransformer(sae(), patch_size=3, n_patches=100, pool_size=3, pool_stride=2,
                                activation="split", random_state=0)
    net = ConvNetClassifier(layers=[split], max_iter=2, random_state=0).fit(X, y)
    layer = net.layers_[0]
    # The fine-tuned filters are carried back, no longer a filter and its negative.
    k = layer.output_shape_[-1] // 2
    assert not np.allclose(layer.filters_[:k], -layer.filters_[k:])
    # The network pools the regions the fused kernel pools (3 x 3 every 2: a
    # 3 x 3 grid on the 8 x 8 maps).
    maps = layer.transform(X)
    assert maps.shape == (20, 3, 3, 2 * k)
    features = (maps.reshape(20, -1) - net.feature_mean_) * net.feature_scale_
    scores = features @ net.coef_.T + net.intercept_
    np.testing.assert_allclose(net.decision_function(X), scores[:, 1] - scores[:, 0],
                               rtol=1e-9, atol=1e-9)

