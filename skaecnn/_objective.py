"""The sparse autoencoder objective and its analytic gradient.

This is UFLDL's ``sparseAutoencoderCost``: for ``n`` samples ``X`` (n, d), ``k``
hidden units, hidden activations ``A = sigmoid(X W1^T + b1)`` and output
``Y = f(A W2^T + b2)`` with ``f`` the sigmoid or the identity,

    J = 1/(2n) sum ||Y - X||^2
        + alpha/2 (||W1||_F^2 + ||W2||_F^2)
        + beta sum_j KL(rho || rho_hat_j),

where ``rho_hat_j`` is the mean activation of hidden unit ``j`` and
``KL(p||q) = p log(p/q) + (1-p) log((1-p)/(1-q))``. Biases are not decayed.

Everything is whole-matrix arithmetic: five GEMMs and a handful of in-place
elementwise passes, in the dtype of ``X``.
"""

import numpy as np


def sigmoid(x, out=None):
    """Logistic function computed in place when ``out`` is ``x``.

    ``1 / (1 + exp(-x))`` with numpy's vectorized ``exp`` is about three times
    faster than :func:`scipy.special.expit`; an overflow of ``exp`` for very
    negative ``x`` correctly gives 0, so its warning is silenced.
    """
    out = np.negative(x, out=out)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


def kl_divergence(rho, rho_hat):
    """Sum over hidden units of ``KL(rho || rho_hat_j)`` (Bernoulli)."""
    return np.sum(
        rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))
    )


def unpack(theta, n_features, n_hidden):
    """Views ``(W1, W2, b1, b2)`` into the flat parameter vector ``theta``.

    The layout is UFLDL's: ``W1`` (k, d), ``W2`` (d, k), ``b1`` (k,), ``b2`` (d,).
    """
    d, k = n_features, n_hidden
    W1 = theta[: k * d].reshape(k, d)
    W2 = theta[k * d : 2 * k * d].reshape(d, k)
    b1 = theta[2 * k * d : 2 * k * d + k]
    b2 = theta[2 * k * d + k :]
    return W1, W2, b1, b2


def initialize(n_features, n_hidden, random_state, dtype):
    """UFLDL's initialization: weights uniform in ``±sqrt(6 / (d + k + 1))``, biases 0."""
    d, k = n_features, n_hidden
    r = np.sqrt(6.0 / (d + k + 1))
    theta = np.zeros(2 * k * d + k + d, dtype=dtype)
    theta[: 2 * k * d] = random_state.uniform(-r, r, size=2 * k * d)
    return theta


def loss_and_gradient(
    theta, X, n_hidden, alpha, sparsity_target, sparsity_weight, decoder, grad=None
):
    """Objective ``J`` and its gradient with respect to the flat ``theta``.

    Parameters
    ----------
    theta : ndarray of shape (2 * k * d + k + d,)
        Parameters packed as in :func:`unpack`, same dtype as ``X``.
    X : ndarray of shape (n, d)
        Training samples, C-contiguous.
    n_hidden : int
        Number ``k`` of hidden units.
    alpha : float
        Weight decay.
    sparsity_target : float
        Target mean activation ``rho`` in (0, 1).
    sparsity_weight : float
        Weight ``beta`` of the sparsity penalty; 0 disables it.
    decoder : {"sigmoid", "linear"}
        Output nonlinearity ``f``.
    grad : ndarray like ``theta``, optional
        Buffer the gradient is written to (avoids an allocation per call).

    Returns
    -------
    loss : float
    grad : ndarray like ``theta``
    """
    n, d = X.shape
    k = n_hidden
    W1, W2, b1, b2 = unpack(theta, d, k)
    if grad is None:
        grad = np.empty_like(theta)
    gW1, gW2, gb1, gb2 = unpack(grad, d, k)

    A = np.matmul(X, W1.T)
    A += b1
    sigmoid(A, out=A)
    Y = np.matmul(A, W2.T)
    Y += b2
    if decoder == "sigmoid":
        sigmoid(Y, out=Y)

    # Y becomes the output error, then the output delta (scaled by 1/n).
    Y -= X
    loss = 0.5 / n * float(np.vdot(Y, Y))
    loss += 0.5 * alpha * (float(np.vdot(W1, W1)) + float(np.vdot(W2, W2)))
    if decoder == "sigmoid":
        # f'(z) = y (1 - y), with y = error + x.
        out = Y + X
        Y *= out
        out -= 1
        Y *= out
        np.negative(Y, out=Y)
        del out
    Y *= 1.0 / n
    delta3 = Y

    np.matmul(delta3.T, A, out=gW2)
    gW2 += alpha * W2
    np.sum(delta3, axis=0, out=gb2)

    delta2 = np.matmul(delta3, W2)
    del Y, delta3
    if sparsity_weight:
        rho = sparsity_target
        # Clipping only matters where a unit is dead or saturated on every
        # sample (rho_hat rounds to 0 or 1), where the formula would give inf.
        eps = np.finfo(A.dtype).eps
        rho_hat = np.clip(A.mean(axis=0), eps, 1 - eps)
        loss += sparsity_weight * float(kl_divergence(rho, rho_hat))
        delta2 += (sparsity_weight / n) * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))
    # sigmoid'(z) = a (1 - a)
    delta2 *= A
    A -= 1
    delta2 *= A
    np.negative(delta2, out=delta2)

    np.matmul(delta2.T, X, out=gW1)
    gW1 += alpha * W1
    np.sum(delta2, axis=0, out=gb1)
    return loss, grad
