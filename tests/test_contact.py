"""What a new user meets first (issue 14): defaults that fit the common image
sizes, pandas output with stacked layers, input far from the fitted range, a
single image for a batch, nonsense hyperparameters, compile pauses."""

import io
import sys
import time
import warnings

import numpy as np
import pytest
import sklearn
from numba import njit
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from skaecnn import (
    ConvNetClassifier,
    ConvPoolTransformer,
    DataRangeWarning,
    KMeansTriangleFeatures,
    PatchNormalizer,
    SparseAutoencoderFeatures,
    ZCAWhitening,
)
from skaecnn import _compiling
from skaecnn._cli import _Progress

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return data.images[:300] / 16.0, data.target[:300]


def sae(k=8):
    return SparseAutoencoderFeatures(n_components=k, max_iter=20, random_state=0)


# -- defaults that fit the images ------------------------------------------------


@pytest.mark.parametrize(
    "shape, patch_size, pool_size, grid",
    [
        ((8, 8), 3, (2, 2), (3, 3)),  # digits: 6 x 6 maps
        ((16, 16), 3, (4, 4), (3, 3)),  # USPS: 14 x 14
        ((28, 28), 5, (8, 8), (3, 3)),  # MNIST: 24 x 24
        ((32, 32, 3), 6, (9, 9), (3, 3)),  # CIFAR-10: 27 x 27
        ((96, 96, 3), 8, (29, 29), (3, 3)),  # STL-10: 89 x 89
        ((12, 40), 3, (3, 12), (3, 3)),  # the shorter side sets m
        ((1, 30), 1, (1, 10), (1, 3)),  # 1-D signals
    ],
)
def test_auto_geometry_fits_the_images(shape, patch_size, pool_size, grid):
    X = np.random.RandomState(0).uniform(size=(4,) + shape)
    conv = ConvPoolTransformer(PCA(1), n_patches=50, random_state=0).fit(X)
    assert (conv.patch_size_, conv.pool_size_) == (patch_size, pool_size)
    assert conv.output_shape_ == grid + (1,)
    assert conv.transform(X).shape == (4, grid[0] * grid[1])


def test_default_transformer_works_on_digits(digits):
    X, _ = digits
    conv = ConvPoolTransformer(n_patches=1000, random_state=0)
    assert conv.fit_transform(X).shape == (len(X), 3 * 3 * 100)


def test_explicit_geometry_is_kept_and_a_misfit_names_auto(digits):
    X, _ = digits
    conv = ConvPoolTransformer(PCA(2), patch_size=4, pool_size=(1, 5), n_patches=50).fit(X)
    assert (conv.patch_size_, conv.pool_size_, conv.output_shape_) == (4, (1, 5), (5, 1, 2))
    with pytest.raises(ValueError, match=r"larger than the 1 x 1 .* at most \(1, 1\), or 'auto'"):
        ConvPoolTransformer(PCA(2), patch_size=8, pool_size=2, n_patches=50).fit(X)


# -- pandas output -----------------------------------------------------------------


def _two_layers():
    return make_pipeline(
        ConvPoolTransformer(sae(), patch_size=3, pool_size=2, n_patches=500,
                            flatten=False, random_state=0),
        ConvPoolTransformer(sae(6), patch_size=2, pool_size=1, n_patches=500, random_state=0),
        StandardScaler(),
        LogisticRegression(max_iter=200),
    )


def test_feature_names_say_filter_and_position(digits):
    X, _ = digits
    conv = ConvPoolTransformer(PCA(2), patch_size=3, pool_size=(2, 3), n_patches=50).fit(X)
    names = conv.get_feature_names_out()
    assert conv.output_shape_ == (3, 2, 2)
    assert list(names[:5]) == ["f0_r0_c0", "f1_r0_c0", "f0_r0_c1", "f1_r0_c1", "f0_r1_c0"]
    # The name of the value at maps[:, i, j, f] in the flattened rows.
    assert names.reshape(conv.output_shape_)[2, 1, 0] == "f0_r2_c1"


@pytest.mark.parametrize("how", ["set_output", "set_config"])
def test_stacked_layers_under_pandas_output(digits, how):
    X, y = digits
    expected = _two_layers().fit(X, y)
    expected_features, expected_labels = expected[:2].transform(X), expected.predict(X)
    model = _two_layers()
    if how == "set_output":
        model.set_output(transform="pandas")
        context = sklearn.config_context()
    else:
        context = sklearn.config_context(transform_output="pandas")
    with context:
        model.fit(X, y)
        features = model[:2].transform(X)
        maps = model[0].transform(X)
        labels = model.predict(X)
    # The maps stay an array (a DataFrame holds 2-D data only); the rows are
    # a DataFrame named by filter and position.
    assert isinstance(maps, np.ndarray) and maps.shape == (len(X), 3, 3, 8)
    assert list(features.columns) == list(model[1].get_feature_names_out())
    assert features.columns[7] == "f1_r0_c1"
    np.testing.assert_array_equal(features.to_numpy(), expected_features)
    np.testing.assert_array_equal(labels, expected_labels)


# -- input far outside the fitted range ------------------------------------------


def test_uint8_into_a_model_fitted_on_unit_range_warns(digits):
    X, _ = digits
    conv = ConvPoolTransformer(PCA(2), patch_size=3, n_patches=200, random_state=0).fit(X)
    assert conv.value_range_ == (0.0, 1.0)
    with pytest.warns(DataRangeWarning, match=r"\[0, 255\], far outside .* \[0, 1\]"):
        conv.transform((X * 255).astype(np.uint8))
    assert issubclass(DataRangeWarning, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Other images of the same kind, even a little brighter, are fine.
        conv.transform(load_digits().images[300:400] / 16.0)
        conv.transform(np.clip(X * 1.5, 0, 1.5))


# -- one image where a batch is expected -----------------------------------------


def test_a_single_image_points_at_a_batch(digits):
    X, _ = digits
    conv = ConvPoolTransformer(PCA(2), patch_size=3, n_patches=50, random_state=0).fit(X)
    with pytest.raises(ValueError, match=r"one image of shape \(8, 8\).*X\[None\]"):
        conv.transform(X[0])
    assert conv.transform(X[0][None]).shape == (1, conv.get_feature_names_out().size)
    rgb = np.random.RandomState(0).uniform(size=(3, 6, 6, 3))
    conv.fit(rgb)
    with pytest.raises(ValueError, match=r"one image of shape \(6, 6, 3\).*X\[None\]"):
        conv.transform(rgb[0])
    # A batch of one 1-D signal has the shape of its fitted images: not an error.
    signals = ConvPoolTransformer(PCA(1), patch_size=1, pool_size=1, n_patches=20,
                                  image_shape=(1, -1)).fit(np.arange(7.0)[None])
    assert signals.transform(np.arange(7.0)[None]).shape == (1, 7)


# -- nonsense hyperparameters ----------------------------------------------------


def _layer():
    return ConvPoolTransformer(PCA(2), patch_size=1, pool_size=1, n_patches=20,
                               image_shape=(1, -1), random_state=0)


ESTIMATORS = [
    SparseAutoencoderFeatures(n_components=2, max_iter=2),
    ZCAWhitening(),
    PatchNormalizer(),
    KMeansTriangleFeatures(n_components=2, max_iter=2),
    _layer(),
    ConvNetClassifier([_layer()], max_iter=1, solver="adam"),
]


def _bad_values(estimator):
    """``(parameter, value)`` pairs that mean nothing for any estimator."""
    for name, value in estimator.get_params(deep=False).items():
        if isinstance(value, float):
            yield from ((name, v) for v in (np.nan, np.inf, -np.inf))
        if name == "verbose":
            yield from ((name, v) for v in (-1, "yes", 0.5))
        if name == "n_jobs":
            yield from ((name, v) for v in (0, True, 1.5))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_nonfinite_and_nonsense_hyperparameters_are_refused(estimator):
    X = np.random.RandomState(0).uniform(size=(20, 5))
    y = np.arange(20) % 2
    bad = list(_bad_values(estimator))
    assert bad
    for name, value in bad:
        with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
            sklearn.clone(estimator).set_params(**{name: value}).fit(X, y)


# -- compile notice ----------------------------------------------------------------


def _kernel(name):
    # A function of this package that numba has never compiled (no cache).
    def kernel(x):
        return x + 1

    kernel.__module__, kernel.__qualname__ = "skaecnn._test_kernels", name
    return njit(kernel)


def test_compiling_prints_one_line_to_stderr(capfd, monkeypatch):
    # As if no kernel had been compiled yet in this process.
    monkeypatch.setattr(_compiling._notice, "shown", False)
    first, second = _kernel("first"), _kernel("second")
    first(1.0)
    second(1.0)  # compiled right after: the same notice
    first(2.0)  # compiled already
    out, err = capfd.readouterr()
    assert err.splitlines() == [_compiling.NOTICE] and out == ""
    njit(lambda x: x - 1)(1.0)  # not skaecnn's
    assert capfd.readouterr().err == ""


def test_compiling_notice_once_per_process(capfd, monkeypatch):
    # A first run compiles the autoencoder's kernels, trains for seconds,
    # then compiles the convolution's: one notice, not one per pause.
    monkeypatch.setattr(_compiling._notice, "shown", False)
    _kernel("training")(1.0)
    time.sleep(2.5)
    _kernel("convolution")(1.0)
    assert capfd.readouterr().err.splitlines() == [_compiling.NOTICE]


def test_compiling_notice_ends_the_cli_stage_line(monkeypatch):
    # On a terminal stdout and stderr write to the same screen.
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(sys, "stderr", screen)
    monkeypatch.setattr(_compiling._notice, "shown", False)
    with _Progress(quiet=False).stage("learning"):
        _kernel("stage")(1.0)
    lines = screen.getvalue().split("\n")
    assert lines[:2] == ["learning ...", _compiling.NOTICE]
    assert lines[2].startswith("\rlearning ... ") and lines[3:] == [""]
    assert _compiling._notice.before is None
