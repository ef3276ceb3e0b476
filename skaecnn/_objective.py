"""The sparse autoencoder objective and its analytic gradient.

This is UFLDL's ``sparseAutoencoderCost``: for ``n`` samples ``X`` (n, d), ``k``
hidden units, hidden activations ``A = sigmoid(X W1^T + b1)`` and output
``Y = f(A W2^T + b2)`` with ``f`` the sigmoid or the identity,

    J = 1/(2n) sum ||Y - X||^2
        + alpha/2 (||W1||_F^2 + ||W2||_F^2)
        + beta sum_j KL(rho || rho_hat_j),

where ``rho_hat_j`` is the mean activation of hidden unit ``j`` and
``KL(p||q) = p log(p/q) + (1-p) log((1-p)/(1-q))``. Biases are not decayed.

Everything is block-matrix arithmetic in the dtype of ``X``: five GEMMs and a
handful of in-place elementwise passes on blocks of rows (see
:func:`loss_and_gradient` for how the blocks are spread over threads).
"""

import numpy as np

from ._threads import blas_num_threads, parallel

# Rows per block. A block's activations (block x k) stay in the L2/L3 caches
# between the GEMM that makes them and the elementwise passes that follow.
_BLOCK_ROWS = 1024
# Blocks are summed in this many consecutive groups (fewer if there are fewer
# blocks): each group's partial gradient is summed in block order, then the
# groups' in group order, so the result does not depend on the threads.
_MAX_GROUPS = 16
# Fewer rows than this per thread and the work is done on the calling thread.
_MIN_ROWS_PER_THREAD = 256


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

    The samples are processed in blocks of rows, in two passes (the sparsity
    term needs the mean activation over all samples before the hidden deltas
    can be formed): the first makes the activations, the output deltas, the
    decoder's gradient and the back-propagated output deltas; the second the
    hidden deltas and the encoder's gradient. Consecutive blocks form up to
    16 groups, each summing its partial gradients in block order; the groups'
    sums are added in group order, so the result is the same whatever the
    number of threads. When numpy's BLAS may use ``t > 1`` threads (see
    :mod:`threadpoolctl`), ``t`` threads take the groups as they come free,
    with numpy's BLAS set to one thread for the duration of the call (which
    other threads of the process see too). This replaces five big
    multi-threaded GEMMs, two of which reduce over all ``n`` samples (which
    OpenBLAS parallelizes with a barrier per panel), and single-threaded
    elementwise passes over whole matrices: a little faster on an idle
    machine, much faster on a busy one, where the BLAS threads' barriers
    stall on descheduled threads.

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
    dtype = X.dtype
    W1, W2, b1, b2 = unpack(theta, d, k)
    if grad is None:
        grad = np.empty_like(theta)
    gW1, gW2, gb1, gb2 = unpack(grad, d, k)

    n_blocks = max(1, -(-n // _BLOCK_ROWS))
    bounds = [n * i // n_blocks for i in range(n_blocks + 1)]
    n_groups = min(n_blocks, _MAX_GROUPS)
    groups = [range(n_blocks * g // n_groups, n_blocks * (g + 1) // n_groups)
              for g in range(n_groups)]
    block_rows = max(b - a for a, b in zip(bounds[:-1], bounds[1:]))
    # A holds the hidden activations, D the hidden deltas, block by block.
    A = np.empty((n, k), dtype=dtype)
    D = np.empty((n, k), dtype=dtype)
    inv_n = 1.0 / n
    sigmoid_decoder = decoder == "sigmoid"

    def forward(g):
        """Pass 1 over the blocks of group ``g``: returns their partial sums
        (group 0 sums straight into the gradient)."""
        blocks = groups[g]
        sq_error = 0.0
        gW2_part = gW2 if g == 0 else np.empty((d, k), dtype=dtype)
        gb2_part = gb2 if g == 0 else np.empty(d, dtype=dtype)
        a_sum = np.empty(k, dtype=dtype)
        Y_buf = np.empty((block_rows, d), dtype=dtype)
        out_buf = np.empty((block_rows, d), dtype=dtype) if sigmoid_decoder else None
        prod = np.empty((d, k), dtype=dtype) if len(blocks) > 1 else None
        for i in blocks:
            first = i == blocks[0]
            start, stop = bounds[i], bounds[i + 1]
            m = stop - start
            Xb, Ab, Y = X[start:stop], A[start:stop], Y_buf[:m]
            np.matmul(Xb, W1.T, out=Ab)
            Ab += b1
            sigmoid(Ab, out=Ab)
            if first:
                np.sum(Ab, axis=0, out=a_sum)
            else:
                a_sum += Ab.sum(axis=0)
            np.matmul(Ab, W2.T, out=Y)
            Y += b2
            if sigmoid_decoder:
                sigmoid(Y, out=Y)
            # Y becomes the output error, then the output delta (scaled by 1/n).
            Y -= Xb
            sq_error += float(np.vdot(Y, Y))
            if sigmoid_decoder:
                # f'(z) = y (1 - y), with y = error + x.
                out = np.add(Y, Xb, out=out_buf[:m])
                Y *= out
                out -= 1
                Y *= out
                np.negative(Y, out=Y)
            Y *= inv_n
            if first:
                np.matmul(Y.T, Ab, out=gW2_part)
                np.sum(Y, axis=0, out=gb2_part)
            else:
                gW2_part += np.matmul(Y.T, Ab, out=prod)
                gb2_part += Y.sum(axis=0)
            np.matmul(Y, W2, out=D[start:stop])
        return sq_error, gW2_part, gb2_part, a_sum

    def backward(g, sparsity_term):
        """Pass 2 over the blocks of group ``g``: returns their partial sums
        (group 0 sums straight into the gradient)."""
        blocks = groups[g]
        gW1_part = gW1 if g == 0 else np.empty((k, d), dtype=dtype)
        gb1_part = gb1 if g == 0 else np.empty(k, dtype=dtype)
        prod = np.empty((k, d), dtype=dtype) if len(blocks) > 1 else None
        for i in blocks:
            first = i == blocks[0]
            start, stop = bounds[i], bounds[i + 1]
            Ab, delta2 = A[start:stop], D[start:stop]
            if sparsity_term is not None:
                delta2 += sparsity_term
            # sigmoid'(z) = a (1 - a)
            delta2 *= Ab
            Ab -= 1
            delta2 *= Ab
            np.negative(delta2, out=delta2)
            if first:
                np.matmul(delta2.T, X[start:stop], out=gW1_part)
                np.sum(delta2, axis=0, out=gb1_part)
            else:
                gW1_part += np.matmul(delta2.T, X[start:stop], out=prod)
                gb1_part += delta2.sum(axis=0)
        return gW1_part, gb1_part

    n_threads = min(blas_num_threads(), n // _MIN_ROWS_PER_THREAD, n_groups)
    with parallel(n_threads) as run:
        parts = run(forward, range(n_groups))
        loss = 0.5 / n * sum(p[0] for p in parts)
        loss += 0.5 * alpha * (float(np.vdot(W1, W1)) + float(np.vdot(W2, W2)))
        for p in parts[1:]:
            gW2 += p[1]
            gb2 += p[2]
        gW2 += alpha * W2

        sparsity_term = None
        if sparsity_weight:
            rho = sparsity_target
            a_sum = parts[0][3]
            for p in parts[1:]:
                a_sum += p[3]
            # Clipping only matters where a unit is dead or saturated on every
            # sample (rho_hat rounds to 0 or 1), where the formula would give inf.
            eps = np.finfo(dtype).eps
            rho_hat = np.clip(a_sum * inv_n, eps, 1 - eps)
            loss += sparsity_weight * float(kl_divergence(rho, rho_hat))
            sparsity_term = (sparsity_weight / n) * (
                -rho / rho_hat + (1 - rho) / (1 - rho_hat)
            )
        del parts

        parts = run(lambda g: backward(g, sparsity_term), range(n_groups))
        for p in parts[1:]:
            gW1 += p[0]
            gb1 += p[1]
        gW1 += alpha * W1
    return loss, grad
