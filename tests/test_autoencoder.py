import pickle

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from skaecnn import PatchNormalizer, SparseAutoencoderFeatures, ZCAWhitening

# Most fits here are deliberately short.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _bars(n=400, m=6, seed=0):
    """Patches holding one bright horizontal or vertical bar on a dark background."""
    rng = np.random.RandomState(seed)
    X = np.full((n, m, m), 0.1)
    for i, (vertical, pos) in enumerate(zip(rng.randint(2, size=n), rng.randint(m, size=n))):
        if vertical:
            X[i, :, pos] = 0.9
        else:
            X[i, pos, :] = 0.9
    return X.reshape(n, -1) + rng.normal(scale=0.01, size=(n, m * m))


@parametrize_with_checks(
    [
        SparseAutoencoderFeatures(n_components=4, max_iter=30, random_state=0),
        SparseAutoencoderFeatures(
            n_components=4, solver="adam", max_iter=3, decoder="linear", random_state=0
        ),
        ZCAWhitening(),
        PatchNormalizer(),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_mean_activation_near_sparsity_target():
    X = _bars()
    sae = SparseAutoencoderFeatures(
        n_components=16, sparsity_target=0.05, sparsity_weight=3.0, max_iter=400,
        random_state=0,
    ).fit(X)
    rho_hat = sae.transform(X).mean(axis=0)
    assert np.abs(rho_hat.mean() - 0.05) < 0.02
    assert np.all(np.abs(rho_hat - 0.05) < 0.05)
    assert sae.loss_curve_[-1] < sae.loss_curve_[0]
    assert sae.loss_ == pytest.approx(sae._objective(sae._theta(), X)[0])


def test_linear_decoder_reconstructs_whitened_data():
    X = ZCAWhitening(epsilon=0.01).fit_transform(_bars())
    sae = SparseAutoencoderFeatures(
        n_components=40, decoder="linear", sparsity_weight=0.1, alpha=1e-5,
        max_iter=400, random_state=0,
    ).fit(X)
    X_rec = sae.inverse_transform(sae.transform(X))
    residual = np.sum((X_rec - X) ** 2) / np.sum((X - X.mean(axis=0)) ** 2)
    assert residual < 0.1


def test_adam_partial_fit_streams_and_learns():
    X = _bars(n=600)
    sae = SparseAutoencoderFeatures(
        n_components=12, solver="adam", learning_rate_init=1e-2, batch_size=64,
        random_state=0,
    )
    losses = []
    for _ in range(15):
        for chunk in np.array_split(X, 3):
            sae.partial_fit(chunk)
        losses.append(sae._objective(sae._theta(), X)[0])
    assert sae.n_iter_ == 45
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_same_random_state_same_result_and_pickle(solver):
    X = _bars(n=100)
    params = dict(n_components=5, solver=solver, max_iter=20, random_state=3)
    a = SparseAutoencoderFeatures(**params).fit(X)
    b = SparseAutoencoderFeatures(**params).fit(X)
    np.testing.assert_array_equal(a.components_, b.components_)
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(a.transform(X), c.transform(X))


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_float32_end_to_end(solver):
    X = _bars(n=100).astype(np.float32)
    sae = SparseAutoencoderFeatures(n_components=5, solver=solver, max_iter=10, random_state=0)
    H = sae.fit_transform(X)
    assert H.dtype == np.float32
    assert sae.components_.dtype == np.float32
    assert sae.inverse_transform(H).dtype == np.float32
    assert sae._objective(sae._theta(), X)[1].dtype == np.float32


def test_verbose_prints_progress(capsys):
    SparseAutoencoderFeatures(n_components=3, max_iter=20, verbose=1, random_state=0).fit(
        _bars(n=50)
    )
    out = capsys.readouterr().out
    assert "Iteration 10, loss = " in out and "elapsed" in out


def test_feature_names_out():
    sae = SparseAutoencoderFeatures(n_components=3, max_iter=5, random_state=0)
    sae.fit(_bars(n=30))
    assert list(sae.get_feature_names_out()) == [
        "sparseautoencoderfeatures0", "sparseautoencoderfeatures1",
        "sparseautoencoderfeatures2",
    ]


@pytest.mark.parametrize(
    "params, match",
    [
        ({"sparsity_target": 0.0}, "sparsity_target"),
        ({"sparsity_target": 1.0}, "sparsity_target"),
        ({"sparsity_target": "a"}, "sparsity_target"),
        ({"n_components": 0}, "n_components"),
        ({"n_components": 2.5}, "n_components"),
        ({"decoder": "tanh"}, "decoder"),
        ({"solver": "sgd"}, "solver"),
        ({"alpha": -1.0}, "alpha"),
        ({"sparsity_weight": -1.0}, "sparsity_weight"),
        ({"max_iter": 0}, "max_iter"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate_init": 0.0}, "learning_rate_init"),
        ({"tol": -1.0}, "tol"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"n_jobs": 1.5}, "n_jobs"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SparseAutoencoderFeatures(**params).fit(_bars(n=20))


def test_bad_input():
    X = _bars(n=20)
    sae = SparseAutoencoderFeatures(n_components=3, max_iter=5, random_state=0)
    for bad, match in [
        (np.where(np.eye(20, 36) > 0, np.nan, X), "NaN"),
        (np.where(np.eye(20, 36) > 0, np.inf, X), "infinity"),
        (np.empty((0, 36)), "0 sample"),
        ([["a"] * 36] * 20, "string|float"),
    ]:
        with pytest.raises(ValueError, match=match):
            sae.fit(bad)
    sae.fit(X)
    with pytest.raises(ValueError, match="36 features"):
        sae.transform(X[:, :10])
    with pytest.raises(ValueError, match="n_components=3"):
        sae.inverse_transform(np.ones((2, 4)))
    with pytest.raises(AttributeError, match="partial_fit"):
        SparseAutoencoderFeatures().partial_fit(X)


def test_zca_whitens_and_inverts():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(1000, 5)) @ rng.normal(size=(5, 5)) + 3.0
    zca = ZCAWhitening(epsilon=1e-9).fit(X)
    Xw = zca.transform(X)
    np.testing.assert_allclose(np.cov(Xw, rowvar=False, bias=True), np.eye(5), atol=1e-6)
    np.testing.assert_allclose(zca.whitening_, zca.whitening_.T)
    np.testing.assert_allclose(zca.inverse_transform(Xw), X, atol=1e-8)
    # ZCA is the whitening closest to the input: the result correlates with it.
    assert np.all(np.diag(np.corrcoef(Xw.T, X.T)[:5, 5:]) > 0)


def test_zca_inverse_transform_uses_the_fitted_epsilon():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 4))
    zca = ZCAWhitening(epsilon=0.5).fit(X)
    Xw = zca.transform(X)
    # epsilon > 0 shrinks, but the inverse of the fitted map still undoes it.
    np.testing.assert_allclose(zca.inverse_transform(Xw), X, atol=1e-10)
    zca.set_params(epsilon=1e-3)
    assert zca.epsilon_ == 0.5
    np.testing.assert_allclose(zca.inverse_transform(Xw), X, atol=1e-10)


def test_lbfgs_abnormal_termination_warns(monkeypatch):
    # A gradient pointing uphill: every line search fails (status 2), as a
    # float32 objective's rounding can make it do near a minimum.
    objective = SparseAutoencoderFeatures._objective

    def uphill(self, theta, X, grad=None, activations=None):
        loss, g = objective(self, theta, X, grad, activations)
        return loss, -g

    monkeypatch.setattr(SparseAutoencoderFeatures, "_objective", uphill)
    sae = SparseAutoencoderFeatures(n_components=3, max_iter=50, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"abnormally \(status=2\)"):
        sae.fit(_bars(n=50))


def test_patch_normalizer_rows():
    rng = np.random.RandomState(0)
    X = rng.uniform(0, 255, size=(10, 16))
    Xn = PatchNormalizer(epsilon=10.0).fit_transform(X)
    expected = (X - X.mean(1, keepdims=True)) / np.sqrt(X.var(1, keepdims=True) + 10.0)
    np.testing.assert_allclose(Xn, expected)
    np.testing.assert_array_equal(
        PatchNormalizer().transform(np.full((2, 4), 7.0)), np.zeros((2, 4))
    )


@pytest.mark.parametrize("Est", [ZCAWhitening, PatchNormalizer])
@pytest.mark.parametrize("eps", [0.0, -1.0, "x"])
def test_preprocessing_bad_epsilon(Est, eps):
    with pytest.raises((ValueError, TypeError), match="epsilon"):
        Est(epsilon=eps).fit(np.ones((3, 4)))
