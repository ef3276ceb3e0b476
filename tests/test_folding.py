"""The fold of every foldable step equals its definition, or falls back and says so."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA, FastICA, TruncatedSVD
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    RobustScaler,
    StandardScaler,
)

from skaecnn import (
    ConvPoolTransformer,
    KMeansTriangleFeatures,
    PatchNormalizer,
    SparseAutoencoderFeatures,
    ZCAWhitening,
)
from skaecnn._folding import Fold
from skaecnn._kernels import POOLINGS

from test_convpool import images, reference

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
M = 3  # patch side


def _affine_steps(draw, d):
    """One affine step on ``d`` features with random parameters, and its output width."""
    kinds = ["standard", "robust", "minmax", "maxabs", "pca", "ica", "zca"]
    kind = draw(st.sampled_from(kinds + ["svd"] * (d > 1)))
    if kind == "standard":
        return StandardScaler(with_mean=draw(st.booleans()), with_std=draw(st.booleans())), d
    if kind == "robust":
        return RobustScaler(
            with_centering=draw(st.booleans()), with_scaling=draw(st.booleans())
        ), d
    if kind == "minmax":
        return MinMaxScaler(feature_range=(-1, draw(st.sampled_from([1, 3])))), d
    if kind == "maxabs":
        return MaxAbsScaler(), d
    if kind == "zca":
        return ZCAWhitening(epsilon=draw(st.sampled_from([1e-2, 1.0]))), d
    n = draw(st.integers(1, d))
    if kind == "pca":
        return PCA(n, whiten=draw(st.booleans()), random_state=0), n
    if kind == "svd":
        return TruncatedSVD(min(n, d - 1), random_state=0), min(n, d - 1)
    return FastICA(n, whiten="unit-variance", max_iter=20, random_state=0), n


@st.composite
def foldable_encoders(draw):
    c = draw(st.sampled_from([1, 3]))
    d = M * M * c
    steps = []
    if draw(st.booleans()):
        steps.append(PatchNormalizer(0.01))
    for _ in range(draw(st.integers(0, 2))):
        step, d = _affine_steps(draw, d)
        steps.append(step)
    last = draw(st.sampled_from(["affine", "sae", "rbm", "triangle"]))
    k = draw(st.integers(1, 5))
    if last == "sae":
        steps.append(SparseAutoencoderFeatures(n_components=k, max_iter=5, random_state=0))
    elif last == "rbm":
        steps.append(BernoulliRBM(k, n_iter=1, random_state=0))
    elif last == "triangle":
        steps.append(KMeansTriangleFeatures(k + 1, max_iter=2, random_state=0))
    elif not steps:
        steps.append(_affine_steps(draw, d)[0])
    return c, make_pipeline(*steps)


def _whitens_a_null_direction(encoder, d):
    """Whether a step whitens every direction of patches that PatchNormalizer
    made rank-deficient (its rows have zero mean: one direction of variance
    0), which makes the encoder as ill-conditioned as rank-deficient images."""
    deficient = False
    for step in encoder:
        if isinstance(step, PatchNormalizer):
            deficient = True
        elif isinstance(step, (PCA, FastICA)):
            whitens = getattr(step, "whiten", False) is not False
            if deficient and whitens and step.n_components >= d:
                return True
            # Fewer components drop the direction of least variance.
            deficient = deficient and step.n_components >= d
            d = step.n_components
        elif isinstance(step, TruncatedSVD):
            d = step.n_components
    return False


def _fit(encoder, c, dtype, pooling, rank_deficient, seed=0):
    X = images(n=6, h=7, w=8, c=c, seed=seed)
    if rank_deficient:
        # Constant along the width: the patches span m*c of m*m*c dimensions.
        X = np.repeat(X[:, :, :1], X.shape[2], axis=2)
    X = X.astype(dtype)
    conv = ConvPoolTransformer(
        encoder, patch_size=M, n_patches=150, pool_size=2, pooling=pooling, random_state=seed
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        conv.fit(X)
    fallbacks = [w for w in caught if "generic path" in str(w.message)]
    return X, conv, fallbacks


def _assert_equals_definition(conv, X):
    F = conv.transform(X)
    # The generic path is encoder_.transform itself, in X's dtype: an
    # ill-conditioned encoder (whitening rank-deficient patches) differs
    # between float32 and float64 by far more than rounding.
    dtype = X.dtype if conv.path_ == "generic" else np.float64
    ref = reference(conv, X, dtype=dtype).reshape(len(X), -1)
    # Such an encoder's transform is not even a function of the patch to
    # within rounding: BLAS blocks a batch of one image's patches otherwise
    # than a batch of all, and scaling a near-zero variance to 1 turns that
    # into differences of order 1. The definition is known only to its spread.
    per_image = np.concatenate([reference(conv, x[None], dtype=dtype) for x in X])
    undetermined = np.abs(per_image.reshape(len(X), -1) - ref).max()
    scale = max(np.abs(ref).max(), np.finfo(F.dtype).tiny)
    # The fold computes the same sums in another order.
    tol = 10 * np.sqrt(np.finfo(F.dtype).eps)
    assert np.abs(F - ref).max() <= tol * scale + 2 * undetermined


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    foldable_encoders(),
    st.sampled_from([np.float32, np.float64]),
    st.sampled_from(sorted(POOLINGS)),
    st.booleans(),
)
def test_foldable_encoders_equal_their_definition(drawn, dtype, pooling, rank_deficient):
    c, encoder = drawn
    ill_conditioned = rank_deficient or _whitens_a_null_direction(encoder, M * M * c)
    X, conv, fallbacks = _fit(encoder, c, dtype, pooling, rank_deficient)
    # Folded, or a warning names the step whose fold did not match; which
    # only rank-deficient patches (whitening near-zero variances) may cause.
    assert (conv.path_ == "folded") == (not fallbacks)
    assert conv.path_ == "folded" or ill_conditioned
    if fallbacks:
        assert "the fold of step" in str(fallbacks[0].message)
    _assert_equals_definition(conv, X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "encoder",
    [
        make_pipeline(StandardScaler(with_mean=False), SparseAutoencoderFeatures(4, max_iter=5)),
        make_pipeline(StandardScaler(with_std=False), PCA(4, whiten=True)),
        make_pipeline(PCA(6, whiten=True), KMeansTriangleFeatures(4, max_iter=2)),
        make_pipeline(PatchNormalizer(0.01), FastICA(5, whiten="unit-variance", max_iter=50)),
        make_pipeline(RobustScaler(with_centering=False), MinMaxScaler(), BernoulliRBM(3)),
    ],
    ids=["scaler-without-mean+sae", "scaler-without-std+pca-whiten", "pca-whiten+triangle",
         "normalize+ica", "robust+minmax+rbm"],
)
def test_well_conditioned_folds_are_taken(encoder, dtype):
    # Parameters that are not the defaults: folds that get them wrong differ
    # from the definition by far more than the tolerance.
    X, conv, fallbacks = _fit(encoder, 1, dtype, "mean", rank_deficient=False)
    assert conv.path_ == "folded" and not fallbacks
    _assert_equals_definition(conv, X)


@pytest.mark.parametrize(
    "step",
    [Normalizer(), MinMaxScaler(clip=True), make_pipeline(PCA(4), Normalizer())],
    ids=["normalizer", "minmax-clip", "pca+normalizer"],
)
@pytest.mark.parametrize("pooling", sorted(POOLINGS))
def test_unfoldable_steps_take_the_generic_path(step, pooling):
    encoder = make_pipeline(step, SparseAutoencoderFeatures(3, max_iter=5, random_state=0))
    X, conv, fallbacks = _fit(encoder, 3, np.float64, pooling, rank_deficient=False)
    assert conv.path_ == "generic" and conv.filters_ is None and not fallbacks
    np.testing.assert_allclose(conv.transform(X), reference(conv, X).reshape(len(X), -1),
                               rtol=1e-12, atol=1e-12)


class _Shift(TransformerMixin, BaseEstimator):
    """Adds 1 to every feature, but claims in its fold to add 2."""

    def fit(self, X, y=None):
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        return X + 1.0

    def __skaecnn_fold__(self):
        return Fold(None, np.full(self.n_features_in_, 2.0))


def test_a_wrong_fold_falls_back_with_a_warning_naming_the_step():
    encoder = make_pipeline(
        StandardScaler(), _Shift(), SparseAutoencoderFeatures(3, max_iter=5, random_state=0)
    )
    X = images(n=6, h=7, w=8)
    conv = ConvPoolTransformer(encoder, patch_size=M, n_patches=100, random_state=0)
    with pytest.warns(UserWarning, match=r"fold of step '_shift' \(_Shift\) differs"):
        conv.fit(X)
    assert conv.path_ == "generic" and conv.filters_ is None
    np.testing.assert_allclose(conv.transform(X), reference(conv, X).reshape(len(X), -1),
                               rtol=1e-12, atol=1e-12)


def test_a_users_step_folds_through_the_protocol():
    class Shift(_Shift):
        def __skaecnn_fold__(self):
            return Fold(None, np.full(self.n_features_in_, 1.0))

    encoder = make_pipeline(Shift(), SparseAutoencoderFeatures(3, max_iter=5, random_state=0))
    X, conv, fallbacks = _fit(encoder, 1, np.float64, "max", rank_deficient=False)
    assert conv.path_ == "folded" and not fallbacks
    _assert_equals_definition(conv, X)


def test_verbose_says_which_path(capsys):
    X = images(n=6, h=7, w=8)
    params = dict(patch_size=M, n_patches=100, random_state=0, verbose=1)
    ConvPoolTransformer(PCA(3), **params).fit(X)
    assert "folded into filters" in capsys.readouterr().out
    ConvPoolTransformer(make_pipeline(Normalizer(), PCA(3)), **params).fit(X)
    assert "generic path, as step 'normalizer' (Normalizer) cannot be folded" in (
        capsys.readouterr().out
    )
