"""Parameter validation: scikit-learn's constraints, errors and skip switch."""

import warnings

import numpy as np
import pytest
from sklearn import config_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import check_param_validation

from skaecnn import (
    ConvPoolTransformer,
    KMeansTriangleFeatures,
    PatchNormalizer,
    SparseAutoencoderFeatures,
    ZCAWhitening,
)


def _conv(**params):
    # Rows of any width are one-pixel-high images, as in the estimator checks.
    return ConvPoolTransformer(
        **{
            "encoder": SparseAutoencoderFeatures(n_components=2, max_iter=2, random_state=0),
            "patch_size": 1,
            "n_patches": 20,
            "pool_size": 1,
            "image_shape": (1, -1),
            "random_state": 0,
            **params,
        }
    )


ESTIMATORS = [
    SparseAutoencoderFeatures(n_components=2, max_iter=2, random_state=0),
    SparseAutoencoderFeatures(n_components=2, max_iter=2, solver="adam", random_state=0),
    ZCAWhitening(),
    PatchNormalizer(),
    KMeansTriangleFeatures(n_components=2, max_iter=2, random_state=0),
    _conv(),
]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_every_parameter_is_constrained(estimator):
    # One constraint per parameter; a bad type or value of any parameter is an
    # InvalidParameterError naming it, from fit, partial_fit and fit_transform.
    check_param_validation(type(estimator).__name__, estimator)


INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize(
    "estimator, name",
    [
        (SparseAutoencoderFeatures(sparsity_target=NAN), "sparsity_target"),
        (SparseAutoencoderFeatures(alpha=INF), "alpha"),
        (SparseAutoencoderFeatures(alpha=NAN), "alpha"),
        (SparseAutoencoderFeatures(sparsity_weight=INF), "sparsity_weight"),
        (SparseAutoencoderFeatures(sparsity_weight=NAN), "sparsity_weight"),
        (SparseAutoencoderFeatures(tol=NAN), "tol"),
        (SparseAutoencoderFeatures(solver="adam", learning_rate_init=INF), "learning_rate_init"),
        (SparseAutoencoderFeatures(n_components=True), "n_components"),
        (SparseAutoencoderFeatures(verbose=-1), "verbose"),
        (SparseAutoencoderFeatures(verbose="yes"), "verbose"),
        (ZCAWhitening(epsilon=NAN), "epsilon"),
        (ZCAWhitening(epsilon=INF), "epsilon"),
        (PatchNormalizer(epsilon=INF), "epsilon"),
        (PatchNormalizer(epsilon=NAN), "epsilon"),
        (KMeansTriangleFeatures(tol=INF), "tol"),
        (KMeansTriangleFeatures(verbose=-1), "verbose"),
        (KMeansTriangleFeatures(verbose="yes"), "verbose"),
        (_conv(verbose=-1), "verbose"),
        (_conv(verbose="yes"), "verbose"),
        (_conv(n_jobs=0), "n_jobs"),
        (_conv(flatten="yes"), "flatten"),
        (_conv(pool_size=(1, 0)), "pool_size"),
        (_conv(pool_size=(1, 1, 1)), "pool_size"),
        (_conv(pool_size=(1, True)), "pool_size"),
    ],
    ids=lambda p: p if isinstance(p, str) else type(p).__name__,
)
def test_nonsense_values_are_refused(estimator, name):
    with pytest.raises(InvalidParameterError, match=name):
        estimator.fit(np.random.RandomState(0).uniform(size=(20, 5)))


def test_patch_normalizer_checks_epsilon_without_fit():
    # Stateless: transform works unfitted, so it validates epsilon too.
    with pytest.raises(InvalidParameterError, match="epsilon"):
        PatchNormalizer(epsilon=INF).transform(np.ones((2, 4)))


def test_skip_parameter_validation_is_honoured():
    X = np.random.RandomState(0).uniform(size=(20, 5))
    with config_context(skip_parameter_validation=True):
        # Out-of-range values the math still takes: validation is scikit-learn's.
        zca = ZCAWhitening(epsilon=INF).fit(X)
        np.testing.assert_array_equal(zca.transform(X), 0.0)
        assert not PatchNormalizer(epsilon=INF).fit_transform(X).any()
        KMeansTriangleFeatures(n_components=2, verbose=False, tol=INF, random_state=0).fit(X)
    with pytest.raises(InvalidParameterError):
        ZCAWhitening(epsilon=INF).fit(X)


def test_lbfgs_stops_on_a_loss_plateau_without_warning():
    # The gradient criterion alone needs ~176 iterations here; the plateau rule
    # (no improvement by tol for 10 iterations, as scikit-learn's MLP) ends it
    # earlier, as converged.
    X = np.random.RandomState(0).uniform(size=(300, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sae = SparseAutoencoderFeatures(
            n_components=8, max_iter=150, tol=1e-4, random_state=0
        ).fit(X)
    assert sae.n_iter_ < 150
    gains = -np.diff(np.minimum.accumulate(sae.loss_curve_))
    assert np.all(gains[-10:] < 1e-4) and gains[-11] >= 1e-4
