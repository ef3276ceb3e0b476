import numpy as np
import pytest

from skaecnn._objective import (
    activations_buffer, initialize, kl_divergence, loss_and_gradient, unpack,
)

# With a buffer for the activations the sparsity term takes two passes (five
# GEMMs), without it one (six); both must compute the same function.
keep_activations = pytest.mark.parametrize("keep", [False, True], ids=["one-pass", "two-pass"])


def _buffer(keep, X, k):
    return activations_buffer(len(X), k, X.dtype) if keep else None


def _problem(decoder, n=20, d=7, k=5, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(0.05, 0.95, size=(n, d))
    if decoder == "linear":
        X = rng.normal(size=(n, d))
    theta = initialize(d, k, rng, np.float64)
    # Non-zero biases exercise their gradients too.
    theta[2 * k * d :] = rng.normal(scale=0.1, size=k + d)
    return X, theta, k


@pytest.mark.parametrize("decoder", ["sigmoid", "linear"])
@pytest.mark.parametrize("alpha", [0.0, 1e-2])
@pytest.mark.parametrize("beta", [0.0, 3.0])
@pytest.mark.parametrize(
    "n, n_threads",
    # One block; several blocks in several groups (1024 rows a block), on
    # the calling thread and on two threads.
    [(20, 1), (3000, 1), (3000, 2)],
)
@keep_activations
def test_gradient_matches_finite_differences(decoder, alpha, beta, n, n_threads, keep):
    X, theta, k = _problem(decoder, n=n, d=4 if n > 1024 else 7, k=3 if n > 1024 else 5)
    buffer = _buffer(keep, X, k)

    def f(t):
        return loss_and_gradient(t, X, k, alpha, 0.05, beta, decoder, n_threads=n_threads,
                                 activations=buffer)[0]

    _, grad = loss_and_gradient(theta, X, k, alpha, 0.05, beta, decoder, n_threads=n_threads,
                                activations=buffer)
    # Central differences: error O(h^2) ~ 1e-12 relative.
    h = 1e-6
    numeric = np.array(
        [(f(theta + h * e) - f(theta - h * e)) / (2 * h) for e in np.eye(theta.size)]
    )
    rel = np.linalg.norm(grad - numeric) / np.linalg.norm(grad + numeric)
    assert rel < 1e-6


@pytest.mark.parametrize("decoder", ["sigmoid", "linear"])
def test_loss_is_the_formula(decoder):
    X, theta, k = _problem(decoder)
    n, d = X.shape
    alpha, rho, beta = 1e-3, 0.1, 2.0
    W1, W2, b1, b2 = unpack(theta, d, k)
    A = 1 / (1 + np.exp(-(X @ W1.T + b1)))
    Y = A @ W2.T + b2
    if decoder == "sigmoid":
        Y = 1 / (1 + np.exp(-Y))
    rho_hat = A.mean(axis=0)
    kl = rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))
    expected = (
        0.5 / n * np.sum((Y - X) ** 2)
        + alpha / 2 * (np.sum(W1**2) + np.sum(W2**2))
        + beta * kl.sum()
    )
    loss, _ = loss_and_gradient(theta, X, k, alpha, rho, beta, decoder)
    assert loss == pytest.approx(expected, rel=1e-12)
    assert kl_divergence(rho, rho_hat) == pytest.approx(kl.sum(), rel=1e-12)


def test_float32_stays_float32_and_agrees_with_float64():
    X, theta, k = _problem("sigmoid")
    l64, g64 = loss_and_gradient(theta, X, k, 1e-4, 0.05, 3.0, "sigmoid")
    l32, g32 = loss_and_gradient(
        theta.astype(np.float32), X.astype(np.float32), k, 1e-4, 0.05, 3.0, "sigmoid"
    )
    assert g32.dtype == np.float32
    assert l32 == pytest.approx(l64, rel=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-6)


def test_initialization_range_and_zero_biases():
    d, k = 10, 4
    theta = initialize(d, k, np.random.RandomState(0), np.float32)
    W1, W2, b1, b2 = unpack(theta, d, k)
    r = np.sqrt(6 / (d + k + 1))
    assert theta.dtype == np.float32
    assert np.abs(W1).max() <= r and np.abs(W2).max() <= r
    assert np.abs(W1).max() > 0.5 * r
    assert not b1.any() and not b2.any()


@pytest.mark.parametrize("decoder", ["sigmoid", "linear"])
@keep_activations
def test_blocked_threads_give_the_same_result(decoder, keep):
    # Enough rows for several blocks and groups, computed on threads.
    X, theta, k = _problem(decoder, n=5000, d=12, k=7)
    buffer = _buffer(keep, X, k)
    l1, g1 = loss_and_gradient(theta, X, k, 1e-3, 0.05, 3.0, decoder, n_threads=1,
                               activations=buffer)
    l2, g2 = loss_and_gradient(theta, X, k, 1e-3, 0.05, 3.0, decoder, n_threads=2,
                               activations=buffer)
    assert l1 == l2
    np.testing.assert_array_equal(g1, g2)
    # And both equal the whole-matrix formula.
    W1, W2, b1, b2 = unpack(theta, X.shape[1], k)
    A = 1 / (1 + np.exp(-(X @ W1.T + b1)))
    Y = A @ W2.T + b2
    if decoder == "sigmoid":
        Y = 1 / (1 + np.exp(-Y))
    rho_hat = A.mean(axis=0)
    kl = 0.05 * np.log(0.05 / rho_hat) + 0.95 * np.log(0.95 / (1 - rho_hat))
    expected = 0.5 / len(X) * np.sum((Y - X) ** 2) + 5e-4 * (
        np.sum(W1**2) + np.sum(W2**2)
    ) + 3.0 * kl.sum()
    assert l1 == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("decoder", ["sigmoid", "linear"])
@keep_activations
def test_multi_block_gradient_matches_finite_differences(decoder, keep):
    # Several blocks in several groups: the sparsity term's part of the
    # encoder's gradient is summed over every block and scaled at the end
    # (one pass), or added to the deltas of the second pass (two).
    X, theta, k = _problem(decoder, n=3000, d=4, k=3)
    buffer = _buffer(keep, X, k)

    def f(t):
        return loss_and_gradient(t, X, k, 1e-3, 0.05, 3.0, decoder, activations=buffer)[0]

    _, grad = loss_and_gradient(theta, X, k, 1e-3, 0.05, 3.0, decoder, activations=buffer)
    h = 1e-6
    numeric = np.array(
        [(f(theta + h * e) - f(theta - h * e)) / (2 * h) for e in np.eye(theta.size)]
    )
    rel = np.linalg.norm(grad - numeric) / np.linalg.norm(grad + numeric)
    assert rel < 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@keep_activations
def test_fused_passes_equal_the_matrix_formula(dtype, keep):
    # The numba passes against the whole-matrix definition in float64, on
    # several blocks, with a sigmoid decoder (both sigmoids are the kernels').
    X, theta, k = _problem("sigmoid", n=2500, d=9, k=20)
    n, d = X.shape
    alpha, rho, beta = 1e-3, 0.05, 3.0
    loss, grad = loss_and_gradient(
        theta.astype(dtype), X.astype(dtype), k, alpha, rho, beta, "sigmoid",
        activations=_buffer(keep, X.astype(dtype), k),
    )
    W1, W2, b1, b2 = unpack(theta, d, k)
    A = 1 / (1 + np.exp(-(X @ W1.T + b1)))
    Y = 1 / (1 + np.exp(-(A @ W2.T + b2)))
    rho_hat = A.mean(axis=0)
    kl = rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))
    expected = 0.5 / n * np.sum((Y - X) ** 2) + alpha / 2 * (
        np.sum(W1**2) + np.sum(W2**2)) + beta * kl.sum()
    delta3 = (Y - X) * Y * (1 - Y) / n
    delta2 = (delta3 @ W2 + beta / n * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))) * A * (1 - A)
    expected_grad = np.concatenate([
        (delta2.T @ X + alpha * W1).ravel(), (delta3.T @ A + alpha * W2).ravel(),
        delta2.sum(axis=0), delta3.sum(axis=0),
    ])
    tol = 1e-12 if dtype == np.float64 else 2e-5
    assert grad.dtype == dtype
    assert loss == pytest.approx(expected, rel=tol)
    scale = np.abs(expected_grad).max()
    np.testing.assert_allclose(grad, expected_grad, rtol=0, atol=tol * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_sigmoid_is_the_logistic_function(dtype):
    from numba import njit

    from skaecnn._kernels import sigmoid as kernel_sigmoid

    @njit
    def apply(z, out):
        for i in range(z.size):
            out[i] = kernel_sigmoid(z[i])

    # Both tails (down to where exp under- or overflows), and everything between.
    z = np.concatenate([np.linspace(-800, 800, 16001), np.linspace(-30, 30, 60001)])
    out = np.empty(z.shape, dtype=dtype)
    apply(z.astype(dtype), out)
    with np.errstate(over="ignore"):
        exact = 1 / (1 + np.exp(-z.astype(dtype).astype(np.float64)))
    assert out.dtype == dtype
    if dtype == np.float64:
        # A few units of float64's rounding, relative, wherever the result is normal.
        normal = exact > 1e-300
        assert np.max(np.abs(out - exact)[normal] / exact[normal]) < 1e-14
        assert np.all(out[~normal] < 1e-300)
    else:
        assert np.max(np.abs(out - exact)) < 2e-7


def test_activations_buffer_is_checked_and_bounded(monkeypatch):
    X, theta, k = _problem("linear")
    for bad in (np.empty((len(X), k + 1)), np.empty((len(X), k), np.float32),
                np.empty((k, len(X))).T):
        with pytest.raises(ValueError, match="activations must be a C-contiguous float64"):
            loss_and_gradient(theta, X, k, 1e-3, 0.05, 3.0, "linear", activations=bad)
    assert activations_buffer(len(X), k, np.float32).shape == (len(X), k)
    monkeypatch.setattr("skaecnn._objective._KEEP_BYTES", len(X) * k * 8 - 1)
    assert activations_buffer(len(X), k, np.float64) is None
