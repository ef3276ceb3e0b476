import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from skaecnn import ConvPoolStack, ConvPoolTransformer, SparseAutoencoderFeatures

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    return load_digits().images[:60] / 16.0


def layer(k, patch_size, pool_size, **params):
    return ConvPoolTransformer(
        SparseAutoencoderFeatures(n_components=k, max_iter=10, random_state=0),
        patch_size=patch_size, pool_size=pool_size, n_patches=300, **params,
    )


def two_layers(**params):
    return [layer(5, 3, 2, **params), layer(4, 2, 1, **params)]


def test_equals_the_layers_fitted_by_hand(digits):
    bottom, top = two_layers(random_state=0)
    stack = ConvPoolStack([bottom, top]).fit(digits)
    F = stack.transform(digits)
    # By hand: the top layer fitted on the bottom layer's pooled maps.
    maps = clone(bottom).set_params(flatten=False).fit_transform(digits)
    top_features = clone(top).fit_transform(maps)
    assert maps.shape[1:] == (3, 3, 5) and top_features.shape[1] == 2 * 2 * 4
    np.testing.assert_array_equal(F, np.hstack([maps.reshape(len(maps), -1), top_features]))
    np.testing.assert_array_equal(clone(stack).fit_transform(digits), F)
    pipeline = make_pipeline(clone(bottom).set_params(flatten=False), clone(top))
    top_only = stack.set_params(concatenate=False).fit(digits).transform(digits)
    np.testing.assert_array_equal(top_only, pipeline.fit_transform(digits))


def test_feature_names_name_layer_filter_and_region(digits):
    stack = ConvPoolStack(two_layers(), random_state=0).fit(digits)
    F, names = stack.transform(digits), stack.get_feature_names_out()
    assert len(names) == F.shape[1] == 3 * 3 * 5 + 2 * 2 * 4
    maps = [stack.layers_[0].transform(digits)]
    maps.append(stack.layers_[1].transform(maps[0]))
    for column in [0, 7, 44, 45, 53, 60]:
        i, f, r, c = (int(part[1:]) for part in names[column].replace("layer", "l").split("_"))
        np.testing.assert_array_equal(F[:, column], maps[i][:, r, c, f])
    top = stack.set_params(concatenate=False).get_feature_names_out()
    np.testing.assert_array_equal(top, names[45:])
    frame = stack.set_output(transform="pandas").transform(digits)
    assert list(frame.columns) == list(top)


def test_random_state_seeds_the_unseeded_layers_and_n_jobs_goes_to_all(digits):
    seeded, unseeded = layer(5, 3, 2, random_state=7), layer(4, 2, 1)
    stack = ConvPoolStack([seeded, unseeded], n_jobs=1, random_state=0).fit(digits)
    assert stack.layers_[0].random_state == 7 and stack.layers[1].random_state is None
    assert isinstance(stack.layers_[1].random_state, int)
    assert [fitted.n_jobs for fitted in stack.layers_] == [1, 1]
    F = stack.transform(digits)
    np.testing.assert_array_equal(clone(stack).fit_transform(digits), F)
    other = clone(stack).set_params(random_state=1).fit_transform(digits)
    np.testing.assert_array_equal(other[:, :45], F[:, :45])  # the seeded layer
    assert not np.allclose(other[:, 45:], F[:, 45:])


def test_flatten_and_image_shape_of_the_layers_do_not_matter():
    X = load_digits().data[:40] / 16.0  # rows of 64 pixels
    flat_first = layer(5, 3, 2, image_shape=(8, 8), random_state=0)
    top = layer(4, 2, 1, image_shape=(8, 8), flatten=True, random_state=0)
    F = ConvPoolStack([flat_first, top]).fit_transform(X)
    reference = ConvPoolStack(two_layers(random_state=0)).fit_transform(X.reshape(-1, 8, 8))
    np.testing.assert_array_equal(F, reference)


def test_pickle_round_trip(digits):
    stack = ConvPoolStack(two_layers(), random_state=0).fit(digits)
    loaded = pickle.loads(pickle.dumps(stack))
    np.testing.assert_array_equal(loaded.transform(digits), stack.transform(digits))


@pytest.mark.parametrize(
    "layers, error, match",
    [
        ([], ValueError, r"layers must hold at least one ConvPoolTransformer"),
        ([layer(5, 3, 2), StandardScaler()], TypeError,
         r"layers\[1\] must be a ConvPoolTransformer; got StandardScaler"),
        ((layer(5, 3, 2),), InvalidParameterError, r"'layers' parameter"),
        # 3 x 3 maps under 4 x 4 patches.
        ([layer(5, 3, 2), layer(4, 4, 1)], ValueError,
         r"layers\[1\] cannot be fitted on the pooled maps of layers\[0\], of shape "
         r"\(3, 3, 5\).*patch_size=4 is larger than the images \(3 x 3\)"),
    ],
    ids=["empty", "not-a-layer", "tuple", "maps-too-small"],
)
def test_bad_layers_are_named(digits, layers, error, match):
    with pytest.raises(error, match=match):
        ConvPoolStack(layers).fit(digits)


def test_transform_checks_the_images_as_the_first_layer(digits):
    stack = ConvPoolStack(two_layers(), random_state=0).fit(digits)
    with pytest.raises(ValueError, match=r"X has 192 features, but \w+ is expecting 64"):
        stack.transform(np.zeros((2, 8, 8, 3)))


# The checks feed rows of arbitrary width: image_shape=(1, -1) takes each row as
# a one-pixel-high image, and 1 x 1 patches and pools fit any width.
@parametrize_with_checks([
    ConvPoolStack([layer(3, 1, 1, image_shape=(1, -1)), layer(2, 1, 1)], random_state=0),
    ConvPoolStack([layer(3, 1, 1, image_shape=(1, -1)), layer(2, 1, 1)], concatenate=False,
                  random_state=0),
])
def test_sklearn_compatible(estimator, check):
    check(estimator)
