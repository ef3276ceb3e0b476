import copy
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.cluster import MiniBatchKMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skaecnn import (
    ConvNetClassifier,
    ConvPoolTransformer,
    KMeansTriangleFeatures,
    PatchNormalizer,
    SparseAutoencoderFeatures,
    ZCAWhitening,
)
from skaecnn._backprop import ACTIVATION_CODES, POOLING_CODES
from skaecnn._backprop import ConvStage, Network
from skaecnn._convnet import _shift, default_layers

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

POOLINGS, ACTIVATIONS = POOLING_CODES, ACTIVATION_CODES


def digits(n=300, dtype=np.float64):
    X, y = load_digits(return_X_y=True)
    return (X[:n] / 16.0).reshape(-1, 8, 8).astype(dtype), y[:n]


def layer(k=4, m=3, pool=2, encoder=None, **kw):
    if encoder is None:
        encoder = SparseAutoencoderFeatures(n_components=k, max_iter=10, random_state=0)
    return ConvPoolTransformer(
        encoder, patch_size=m, n_patches=500, pool_size=pool, random_state=0, **kw,
    )


def relative_error(net, X, Y, dropout=0.0, n_entries=5):
    """Relative error of the analytic gradient against central differences."""

    def loss_grads():
        # A fresh generator per call: every evaluation draws the same dropout mask.
        return net.loss_and_gradients(X, Y, dropout, np.random.RandomState(1))

    _, grads = loss_grads()
    analytic, numeric = [], []
    for param, grad in zip(net.parameters(), grads):
        assert grad.shape == param.shape
        flat = param.reshape(-1)
        for idx in np.linspace(0, flat.size - 1, n_entries).astype(int):
            old = flat[idx]
            flat[idx] = old + 1e-6
            plus, _ = loss_grads()
            flat[idx] = old - 1e-6
            minus, _ = loss_grads()
            flat[idx] = old
            numeric.append((plus - minus) / 2e-6)
            analytic.append(grad.reshape(-1)[idx])
    numeric, analytic = np.array(numeric), np.array(analytic)
    return np.linalg.norm(numeric - analytic) / np.linalg.norm(numeric + analytic)


# Regions ((rows, columns), stride) of the first and second layers.
TILING = [((2, 2), None), ((1, 2), None)]
# Regions overlapping along one axis and leaving gaps along the other, and the
# reverse: a position's error sums over its regions, or is zero in a gap.
OVERLAP_GAPS = [((3, 1), (2, 2)), ((2, 2), (3, 1))]


def random_network(pooling, activation, normalize, hidden, n_layers, seed=0, regions=TILING,
                   power=1.0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(size=(3, 11, 10, 2))
    shape = X.shape[1:]
    stages = []
    for (m, k), (pool, stride) in zip([(3, 4), (2, 5)][:n_layers], regions):
        stage = ConvStage(
            rng.normal(size=(k, m * m * shape[2])) * 0.5, rng.normal(size=k) * 0.1, m, pool,
            POOLINGS[pooling], ACTIVATIONS[activation],
            0.1 if normalize else None, shape, stride,
        )
        stages.append(stage)
        shape = stage.output_shape
    sizes = [int(np.prod(shape)), *hidden, 3]
    dense = [[rng.normal(size=(a, b)) * 0.5, rng.normal(size=b) * 0.1]
             for a, b in zip(sizes[:-1], sizes[1:])]
    net = Network(stages, rng.normal(size=sizes[0]) * 0.1, rng.uniform(0.5, 2, sizes[0]), dense,
                  power)
    return net, X, np.eye(3)[[0, 2, 1]]


@pytest.mark.parametrize("n_layers", [1, 2])
@pytest.mark.parametrize("hidden", [(), (6,)])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("pooling", list(POOLINGS))
def test_gradient_equals_finite_differences(pooling, activation, normalize, hidden, n_layers):
    net, X, Y = random_network(pooling, activation, normalize, hidden, n_layers)
    assert relative_error(net, X, Y) < 1e-6


@pytest.mark.parametrize("n_layers", [1, 2])
@pytest.mark.parametrize("pooling", list(POOLINGS))
def test_gradient_through_overlapping_and_gapped_pools(pooling, n_layers):
    net, X, Y = random_network(pooling, "relu", True, (), n_layers, regions=OVERLAP_GAPS)
    assert net.stages[0].output_shape[:2] == (4, 4)
    assert relative_error(net, X, Y) < 1e-6


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_gradient_through_the_power_of_the_features(activation):
    # Identity maps have negative values: the power is signed.
    net, X, Y = random_network("mean", activation, False, (), 2, power=0.5)
    assert relative_error(net, X, Y) < 1e-6


def test_gradient_with_dropout_equals_finite_differences():
    net, X, Y = random_network("mean", "sigmoid", True, (6,), 2)
    assert relative_error(net, X, Y, dropout=0.3) < 1e-6


def test_objective_of_the_classifier_with_weight_decay():
    """The estimator's objective: pretrained folded layers, standardization, decay."""
    X, y = digits(60)
    encoder = make_pipeline(PatchNormalizer(0.01), ZCAWhitening(0.1),
                            SparseAutoencoderFeatures(4, decoder="linear", max_iter=10, random_state=0))
    clf = ConvNetClassifier(
        [ConvPoolTransformer(encoder, patch_size=3, n_patches=300, pool_size=2, random_state=0),
         ConvPoolTransformer(PCA(3), patch_size=2, pool_size=1, random_state=0)],
        hidden_layer_sizes=(5,), alpha=0.3, max_iter=1, random_state=0,
    ).fit(X, y)
    net = clf._network
    X4, Y = X[:10, ..., None], clf._one_hot(y[:10], np.float64)
    loss, grads = clf._objective(X4, Y, None, 0.0)
    data_loss, data_grads = net.loss_and_gradients(X4, Y)
    weights = net.parameters()[::2]
    assert loss == pytest.approx(data_loss + 0.15 * sum(np.sum(w * w) for w in weights))
    for w, g, g0 in zip(weights, grads[::2], data_grads[::2]):
        np.testing.assert_allclose(g, g0 + 0.3 * w)
    # Biases are not decayed.
    for g, g0 in zip(grads[1::2], data_grads[1::2]):
        np.testing.assert_allclose(g, g0)


def test_fine_tuning_beats_the_pretrained_start_and_moves_the_filters():
    X, y = digits(400)
    alpha = 1e-2
    pretrained = layer(k=4).fit(X)
    before = pretrained.filters_.copy()
    # The best the pretrained layer allows: the softmax alone trained on its
    # fixed features, under the same objective (C = 1 / (n alpha)).
    features = pretrained.transform(X)
    top = make_pipeline(StandardScaler(), LogisticRegression(C=1 / (400 * alpha), tol=1e-10,
                                                             max_iter=5000)).fit(features, y)
    decay = np.sum(top[-1].coef_**2) + np.sum(pretrained.layer_.encoder.weights**2)
    start = log_loss(y, top.predict_proba(features)) + alpha / 2 * decay
    clf = ConvNetClassifier([pretrained], alpha=alpha, pretrain="keep", max_iter=30,
                            learning_rate_init=1e-2, random_state=0).fit(X, y)
    X4, Y = X[..., None], clf._one_hot(y, np.float64)
    tuned, _ = clf._objective(X4, Y, None, 0.0)
    assert tuned < 0.8 * start
    # Not by shrinking the filters alone: the cross-entropy is lower too.
    assert clf._network.loss_and_gradients(X4, Y)[0] < log_loss(y, top.predict_proba(features))
    assert np.max(np.abs(clf.layers_[0].filters_ - before)) > 1e-2
    # The layer given is left as it was.
    np.testing.assert_array_equal(pretrained.filters_, before)


def test_layers_carry_the_fine_tuned_filters():
    """transform of layers_, the power, then the top equals decision_function."""
    X, y = digits(200)
    # The second layer normalizes its windows of first-layer maps.
    second = layer(m=2, encoder=make_pipeline(
        PatchNormalizer(0.01), SparseAutoencoderFeatures(3, max_iter=5, random_state=0)))
    clf = ConvNetClassifier([layer(k=4, pool=1), second], hidden_layer_sizes=(7,), power=0.5,
                            max_iter=3, random_state=0).fit(X, y)
    assert [type(lay) for lay in clf.layers_] == [ConvPoolTransformer] * 2
    maps = clf.layers_[0].transform(X)
    assert maps.shape == (200, 6, 6, 4)
    f = np.sqrt(clf.layers_[1].transform(maps).reshape(200, -1))
    h = np.maximum((f - clf.feature_mean_) * clf.feature_scale_ @ clf.coefs_[0] + clf.intercepts_[0], 0)
    scores = h @ clf.coef_.T + clf.intercept_
    np.testing.assert_allclose(clf.decision_function(X), scores, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[scores.argmax(axis=1)])


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_solvers_lower_the_loss(solver):
    X, y = digits(200)
    lr = 0.05 if solver == "sgd" else 1e-2
    # A hidden layer: the top starts from random weights, not at the softmax's optimum.
    clf = ConvNetClassifier([layer()], hidden_layer_sizes=(8,), solver=solver, max_iter=10,
                            learning_rate_init=lr, random_state=0).fit(X, y)
    assert clf.n_iter_ == 10 == len(clf.loss_curve_)
    assert clf.loss_curve_[-1] < 0.5 * clf.loss_curve_[0]
    assert clf.score(X, y) > 0.7


@pytest.mark.parametrize("n_classes", [2, 10])
def test_softmax_starts_from_logistic_regression_on_the_fixed_features(n_classes):
    X, y = digits(300)
    keep = y < n_classes
    X, y = X[keep], y[keep]
    pretrained = layer().fit(X)
    alpha = 1e-2
    clf = ConvNetClassifier([pretrained], pretrain="keep", alpha=alpha, max_iter=1,
                            learning_rate_init=1e-12, random_state=0).fit(X, y)
    top = make_pipeline(StandardScaler(), LogisticRegression(C=1 / (len(X) * alpha), max_iter=1000))
    top.fit(pretrained.transform(X), y)
    np.testing.assert_allclose(clf.predict_proba(X), top.predict_proba(pretrained.transform(X)),
                               atol=1e-3)


def test_float32_stays_float32():
    X, y = digits(100, np.float32)
    clf = ConvNetClassifier([layer()], hidden_layer_sizes=(5,), max_iter=2, random_state=0).fit(X, y)
    assert clf.coef_.dtype == clf.coefs_[0].dtype == np.float32
    assert clf.predict_proba(X).dtype == np.float32
    assert clf._network.stages[0].weights.dtype == np.float32


def test_same_random_state_same_model():
    X, y = digits(150)
    params = dict(hidden_layer_sizes=(5,), dropout=0.2, max_shift=1, max_iter=3, random_state=0)
    a = ConvNetClassifier([layer()], n_jobs=1, **params).fit(X, y)
    b = ConvNetClassifier([layer()], n_jobs=1, **params).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.layers_[0].filters_, b.layers_[0].filters_)
    # Threads sum their gradients in another order: equal up to rounding.
    c = ConvNetClassifier([layer()], n_jobs=2, **params).fit(X, y)
    np.testing.assert_allclose(c.coef_, a.coef_, rtol=1e-6, atol=1e-8)
    d = ConvNetClassifier([layer()], n_jobs=1, **{**params, "random_state": 1}).fit(X, y)
    assert not np.allclose(d.coef_, a.coef_)


def test_default_layers():
    # Their pretraining takes minutes: check the recipes, not a fit.
    small = [spec.build(1.0, 0) for spec in default_layers((8, 8, 1))]
    assert [(lay.patch_size, lay.pool_size) for lay in small] == [(3, 3)]
    big = [spec.build(1.0, 0) for spec in default_layers((28, 28, 1))]
    assert [(lay.patch_size, lay.pool_size) for lay in big] == [(5, 2), (3, 2)]
    first, second = (lay.encoder for lay in big)
    assert isinstance(first.steps[0][1], PatchNormalizer)
    assert first[-1].n_components == 64 and second[-1].n_components == 128
    # The second layer takes maps: no window normalization, which is not fine-tuned.
    assert not any(isinstance(step, PatchNormalizer) for _, step in second.steps)


def test_early_stopping_and_partial_fit():
    X, y = digits(200)
    clf = ConvNetClassifier([layer()], early_stopping=True, max_iter=5, random_state=0).fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    inc = ConvNetClassifier([layer()], random_state=0)
    inc.partial_fit(X[:100], y[:100], classes=np.arange(10))
    inc.partial_fit(X[100:], y[100:])
    assert inc.n_iter_ == 2 and inc.classes_.tolist() == list(range(10))
    with pytest.raises(ValueError, match="classes must be passed"):
        ConvNetClassifier([layer()]).partial_fit(X, y)


def test_keep_pretrained_layers():
    X, y = digits(100)
    unlabelled = digits(300)[0][100:]
    pretrained = layer().fit(unlabelled)
    clf = ConvNetClassifier([pretrained, layer(m=2, pool=1)], pretrain="keep", max_iter=1,
                            learning_rate_init=1e-9, random_state=0).fit(X, y)
    # Only the unfitted layer was fitted; the fitted one started as it was.
    np.testing.assert_allclose(clf.layers_[0].filters_, pretrained.filters_, atol=1e-6)
    refit = ConvNetClassifier([pretrained], max_iter=1, learning_rate_init=1e-9,
                              random_state=0).fit(X, y)
    assert not np.allclose(refit.layers_[0].filters_, pretrained.filters_, atol=1e-3)


def test_shift_is_a_zero_padded_translation():
    rng = np.random.RandomState(0)
    images = rng.uniform(size=(50, 5, 6, 2))
    shifted = _shift(images, 2, np.random.RandomState(3))
    for original, moved in zip(images, shifted):
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                padded = np.zeros((9, 10, 2))
                padded[2 + dy : 7 + dy, 2 + dx : 8 + dx] = original
                if np.array_equal(padded[2:7, 2:8], moved):
                    matches.append((dy, dx))
        assert len(matches) == 1
    assert not np.array_equal(shifted, images)


def test_clone_pickle_and_grid_search():
    X, y = digits(150)
    clf = ConvNetClassifier([layer()], max_iter=2, random_state=0)
    assert clone(clf).get_params()["alpha"] == clf.alpha
    clf.fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    search = GridSearchCV(
        clf, {"alpha": [1e-4, 1e-2], "layers": [[layer(pool=2)], [layer(pool=3)]]},
        cv=2, n_jobs=2,
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.layers_[0].pool_size in (2, 3)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ConvNetClassifier([layer(encoder=MiniBatchKMeans(3, n_init=1, random_state=0))]),
         r"layers\[0\] cannot be fine-tuned: its encoder"),
        (lambda: ConvNetClassifier([layer(encoder=FunctionTransformer(np.square))]),
         r"layers\[0\] cannot be fine-tuned"),
        (lambda: ConvNetClassifier([layer(encoder=KMeansTriangleFeatures(3, random_state=0))]),
         r"layers\[0\] cannot be fine-tuned: its activation is 'triangle'"),
        (lambda: ConvNetClassifier([layer()], learning_rate_init=0.0), "learning_rate_init"),
        (lambda: ConvNetClassifier([layer()], learning_rate_init=-1.0), "learning_rate_init"),
        (lambda: ConvNetClassifier([layer()], solver="lbfgs", dropout=0.5), "dropout"),
        (lambda: ConvNetClassifier([layer()], pretrain=False), "pretrain"),
        (lambda: ConvNetClassifier([PCA(2)]), r"layers\[0\] must be a ConvPoolTransformer"),
        (lambda: ConvNetClassifier([layer()], hidden_layer_sizes=(0,)), "hidden_layer_sizes"),
        (lambda: ConvNetClassifier([layer()], power=0.0), "power"),
    ],
)
def test_bad_parameters(make, match):
    X, y = digits(60)
    with pytest.raises((ValueError, TypeError), match=match):
        make().fit(X, y)


def test_bad_input():
    X, y = digits(60)
    clf = ConvNetClassifier([layer()], max_iter=1)
    with pytest.raises(ValueError, match="needs at least 2 classes"):
        clf.fit(X, np.zeros(60))
    with pytest.raises(ValueError, match="y has 59 labels but X has 60 images"):
        clf.fit(X, y[:59])
    for bad in (np.nan, np.inf):
        Xb = X.copy()
        Xb[3, 2, 2] = bad
        with pytest.raises(ValueError, match="X"):
            clf.fit(Xb, y)
    clf.fit(X, y)
    with pytest.raises(ValueError, match=r"X holds images of shape \(4, 16, 1\)"):
        clf.predict(X.reshape(60, 4, 16))
    with pytest.raises(ValueError, match="X has 49 features"):
        clf.predict(X[:, :7, :7])


@parametrize_with_checks(
    [
        ConvNetClassifier(
            [ConvPoolTransformer(SparseAutoencoderFeatures(3, max_iter=5, random_state=0),
                                 patch_size=1, n_patches=20, pool_size=1, image_shape=(1, -1),
                                 random_state=0)],
            max_iter=20, learning_rate_init=1e-2, random_state=0,
        ),
    ],
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_update_is_numpys_arithmetic_bit_for_bit(dtype):
    from skaecnn._backprop import adam_update

    rng = np.random.RandomState(0)
    beta1, beta2, eps, lr = 0.9, 0.999, 1e-8, 1e-3
    p = rng.standard_normal((7, 5)).astype(dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    expected, m_ref, v_ref = p.copy(), m.copy(), v.copy()
    real = p.dtype.type
    for t in range(1, 4):
        g = rng.standard_normal(p.shape).astype(dtype) * real(10.0 ** -t)
        step = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
        # The definition, as numpy computes it.
        m_ref *= beta1
        m_ref += (1 - beta1) * g
        v_ref *= beta2
        v_ref += (1 - beta2) * g * g
        expected -= step * m_ref / (np.sqrt(v_ref) + eps)
        adam_update(p, g, m, v, float(step), real(beta1), real(1 - beta1), real(beta2),
                    real(1 - beta2), real(eps))
    np.testing.assert_array_equal(m, m_ref)
    np.testing.assert_array_equal(v, v_ref)
    np.testing.assert_array_equal(p, expected)
    with pytest.raises(ValueError, match="C-contiguous"):
        adam_update(p.T, g.T, m.T, v.T, float(step), real(beta1), real(1 - beta1), real(beta2),
                    real(1 - beta2), real(eps))
