"""The sparse autoencoder objective and its analytic gradient.

This is UFLDL's ``sparseAutoencoderCost``: for ``n`` samples ``X`` (n, d), ``k``
hidden units, hidden activations ``A = sigmoid(X W1^T + b1)`` and output
``Y = f(A W2^T + b2)`` with ``f`` the sigmoid or the identity,

    J = 1/(2n) sum ||Y - X||^2
        + alpha/2 (||W1||_F^2 + ||W2||_F^2)
        + beta sum_j KL(rho || rho_hat_j),

where ``rho_hat_j`` is the mean activation of hidden unit ``j`` and
``KL(p||q) = p log(p/q) + (1-p) log((1-p)/(1-q))``. Biases are not decayed.

Everything is block-matrix arithmetic in the dtype of ``X``: five GEMMs (six
with the sparsity term when no buffer holds the activations between two
passes, see :func:`loss_and_gradient`) and, between them, three fused numba
passes over the elementwise work, on blocks of rows (see
:func:`loss_and_gradient` for how the blocks are spread over threads). With
small patches (``d`` of 9-25) the GEMMs are cheap and the elementwise work on
the ``n x k`` activations dominates: done as separate numpy passes (bias,
four for the sigmoid, a sum, four for its derivative) it took about three
quarters of the time.
"""

import threading

import numpy as np
from numba import get_thread_id, njit, prange

from ._kernels import _over_images
from ._kernels import sigmoid as _sigmoid
from ._threads import blas_limit

# A block's rows of X, outputs, activations and deltas take about this many
# bytes, within these bounds on the rows. The two GEMMs that reduce over a
# block's rows run faster on longer ones: with 10,000 samples, d = 9 or 25
# and k = 100, 1024 rows beat 262-601 (the bound of half a core's L2 before)
# by 5-10% on two threads; more than 1024 rows, the block leaves the L2 cache
# between the GEMM that makes it and the elementwise passes that follow.
_BLOCK_BYTES = 2**21
_BLOCK_ROWS = (256, 1024)
# Blocks are summed in this many consecutive groups (fewer if there are fewer
# blocks): each group's partial gradient is summed in block order, then the
# groups' in group order, so the result does not depend on the threads.
_MAX_GROUPS = 16
# Fewer rows than this per thread and the work is done on the calling thread.
_MIN_ROWS_PER_THREAD = 256
_workspaces = threading.local()
# Up to this many bytes of hidden activations (n x k) are kept between the
# two passes of loss_and_gradient (see activations_buffer).
_KEEP_BYTES = 2**29


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


_jit = njit(cache=True, fastmath=True, error_model="numpy")
# The three elementwise passes of a block, each one loop over its rows so that
# the block stays in cache, are inlined into their one caller: a first run
# compiles one function instead of five.
_inline = njit(inline="always", fastmath=True, error_model="numpy")


@_inline
def _hidden_activations(A, b1, first, a_sum):
    """``A = sigmoid(A + b1)`` in place; adds its column sums to ``a_sum``
    (sets them when ``first``)."""
    if first:
        a_sum[:] = 0.0
    for r in range(A.shape[0]):
        a = A[r]
        for t in range(a.shape[0]):
            a[t] = _sigmoid(a[t] + b1[t])
        # A loop of its own: with the float64 sums in the sigmoid's loop, a
        # float32 sigmoid is vectorized at the float64 width, half its own
        # (72 against 49 us for 601 x 100).
        for t in range(a.shape[0]):
            a_sum[t] += a[t]


@_inline
def _output_deltas(Y, X, b2, sigmoid_decoder, inv_n, first, gb2):
    """Output layer ``Y`` (pre-bias) becomes the output deltas over ``n``;
    adds them to ``gb2`` (sets it when ``first``) and returns the sum of
    squared errors (accumulated in float64)."""
    if first:
        gb2[:] = 0.0
    sq_error = 0.0
    one = Y.dtype.type(1)  # in Y's dtype, as in _hidden_deltas
    for r in range(Y.shape[0]):
        y, x = Y[r], X[r]
        for j in range(y.shape[0]):
            out = y[j] + b2[j]
            if sigmoid_decoder:
                out = _sigmoid(out)
            error = out - x[j]
            sq_error += error * error
            if sigmoid_decoder:
                # f'(z) = y (1 - y)
                error *= out * (one - out)
            y[j] = error * inv_n
            gb2[j] += y[j]
    return sq_error


@_inline
def _hidden_deltas(D, A, s, first, gb1, with_h, h_b):
    """``D`` (back-propagated deltas) becomes ``(D + s) * a (1 - a)``, with
    ``s`` the sparsity term's per-unit delta (zeros when it is not yet
    known); adds its column sums to ``gb1``. With ``with_h``, ``A`` becomes
    ``a (1 - a)`` and its column sums are added to ``h_b``. Sums are set, not
    added to, when ``first``."""
    if first:
        gb1[:] = 0.0
        if with_h:
            h_b[:] = 0.0
    # In A's dtype: numba's integer 1 minus a float32 is a float64, which
    # would widen the loop to float64 arithmetic (27.5 against 15.7 us for
    # 601 x 100 in float32).
    one = A.dtype.type(1)
    for r in range(D.shape[0]):
        delta, a = D[r], A[r]
        for t in range(delta.shape[0]):
            derivative = a[t] * (one - a[t])
            delta[t] = (delta[t] + s[t]) * derivative
            gb1[t] += delta[t]
            if with_h:
                a[t] = derivative
                h_b[t] += derivative


def _workspace(n_threads, n_groups, rows, d, k, dtype):
    """This calling thread's buffers: per kernel thread, a block's activations,
    hidden deltas, output deltas and two products; per group, its partial
    sums (see :func:`_group_sums`), its hidden units' activation sums and its
    squared error. They are kept between calls (a few MiB at most): fresh
    ones would cost a page fault per 4 KiB on every call, as much as the
    arithmetic on small patches."""
    key = (n_threads, n_groups, rows, d, k, np.dtype(dtype))
    buffers = getattr(_workspaces, "buffers", None)
    if buffers is None or buffers[0] != key:
        per_thread = [(rows, k), (rows, k), (rows, d), (d, k), (k, d)]
        per_group = [(d, k), (d,), (k, d), (k,), (k, d), (k,)]
        buffers = (
            key,
            *(np.empty((n_threads, *shape), dtype=dtype) for shape in per_thread),
            *(np.empty((n_groups, *shape), dtype=dtype) for shape in per_group),
            # Summed in float64: rho_hat is the mean over all n rows.
            np.empty((n_groups, k)),
            np.empty(n_groups),
        )
        _workspaces.buffers = buffers
    return buffers[1:]


def activations_buffer(n_samples, n_hidden, dtype):
    """A buffer for :func:`loss_and_gradient`'s ``activations`` on ``n_samples``
    rows, or None when it would take more than 512 MiB (then one pass, with
    a sixth GEMM, keeps the memory bounded)."""
    if n_samples * n_hidden * np.dtype(dtype).itemsize > _KEEP_BYTES:
        return None
    return np.empty((n_samples, n_hidden), dtype=dtype)


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


def _sparsity_delta(a_sums, n, rho, beta, dtype):
    """Mean activations ``rho_hat`` from the groups' column sums (rows of
    ``a_sums``, added in group order) and the sparsity term's per-unit delta ``s``."""
    a_sum = a_sums.sum(axis=0)
    # Clipping only matters where a unit is dead or saturated on every
    # sample (rho_hat rounds to 0 or 1), where the formula would give inf.
    eps = np.finfo(dtype).eps
    rho_hat = np.clip(a_sum / n, eps, 1 - eps)
    s = ((beta / n) * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))).astype(dtype)
    return rho_hat, s


def loss_and_gradient(
    theta, X, n_hidden, alpha, sparsity_target, sparsity_weight, decoder, grad=None,
    n_threads=1, activations=None,
):
    """Objective ``J`` and its gradient with respect to the flat ``theta``.

    The samples are processed in blocks of rows: per block, the activations,
    the output deltas, the decoder's gradient, the back-propagated deltas and
    the encoder's gradient. The sparsity term adds ``s_j a_j (1 - a_j)`` to
    hidden unit ``j``'s delta, with ``s`` known only once the mean activation
    over all samples is. Given an ``activations`` buffer, a first pass
    computes and keeps every block's activations, and the second adds ``s``
    to the deltas before the encoder's gradient: five GEMMs (on one thread,
    10,000 samples and ``k = 100``, ``d`` of 9 or 25: 1.2x faster than one
    pass in float32, 1.04-1.1x in float64; 100,000 x 192 with ``k = 400``:
    1.2x). Without it, everything is one pass and no ``n x k`` matrix
    is kept: since ``s`` is the same for every sample, its part of the
    encoder's gradient is ``s_j`` times ``sum_i a_ij (1 - a_ij) x_i``, a
    sixth GEMM per block, scaled at the end. Consecutive blocks form up to
    16 groups, each summing its partial gradients in block order; the groups'
    sums are added in group order, so the result is the same whatever the
    number of threads. The groups are split among ``n_threads`` of numba's
    threads (at most its count in the calling thread) by a parallel kernel
    (:func:`_over_groups`), with BLAS set to one thread for the duration of
    the call (see :func:`skaecnn._threads.blas_limit`). A kernel launch costs
    microseconds where Python threads took tens to wake, twice per call (on
    two threads, 10,000 x 25 with ``k = 100``: 3.3 against 3.45 ms in float32,
    2.3 against 2.4 ms for 3 x 3 patches). This replaces five big
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
    n_threads : int, default=1
        Threads the blocks are spread over (fewer when there are few rows, or
        numba's thread count is lower); the caller's
        :func:`skaecnn._threads.effective_threads`.
    activations : ndarray of shape (n, k), optional
        C-contiguous buffer of ``X``'s dtype for the hidden activations
        between two passes (used with the sparsity term only). Kept by the
        caller across calls: a fresh one would cost a page fault per 4 KiB
        on every call.

    Returns
    -------
    loss : float
    grad : ndarray like ``theta``
    """
    n, d = X.shape
    k = n_hidden
    dtype = X.dtype
    if activations is not None and not (
        activations.shape == (n, k) and activations.dtype == dtype
        and activations.flags.c_contiguous
    ):
        raise ValueError(
            f"activations must be a C-contiguous {dtype} array of shape {(n, k)}; got "
            f"{activations.dtype} of shape {activations.shape}."
        )
    W1, W2, b1, b2 = unpack(theta, d, k)
    if grad is None:
        grad = np.empty_like(theta)
    gW1, gW2, gb1, gb2 = unpack(grad, d, k)

    row_bytes = 2 * (d + k) * dtype.itemsize
    rows = min(max(_BLOCK_BYTES // row_bytes, _BLOCK_ROWS[0]), _BLOCK_ROWS[1])
    n_blocks = max(1, -(-n // rows))
    bounds = np.array([n * i // n_blocks for i in range(n_blocks + 1)], dtype=np.intp)
    n_groups = min(n_blocks, _MAX_GROUPS)
    # Group g is blocks groups[g] to groups[g + 1] - 1.
    groups = np.array([n_blocks * g // n_groups for g in range(n_groups + 1)], dtype=np.intp)
    block_rows = int(np.diff(bounds).max())
    inv_n = dtype.type(1.0 / n)
    sigmoid_decoder = decoder == "sigmoid"
    sparsity = bool(sparsity_weight)
    two_pass = sparsity and activations is not None
    # One pass sums the sparsity term's part of the encoder's gradient apart,
    # before scaling by s.
    with_h = sparsity and not two_pass
    s = np.zeros(k, dtype=dtype)  # set before the second pass
    n_threads = max(1, min(n_threads, n // _MIN_ROWS_PER_THREAD, n_groups))
    *work, gW2s, gb2s, gW1s, gb1s, Hs, h_bs, a_sums, sq_errors = _workspace(
        n_threads, n_groups, block_rows, d, k, dtype)
    A_work = work[0]
    A_store = activations if two_pass else A_work[0]
    sums = (gW2s, gb2s, gW1s, gb1s, Hs, h_bs, a_sums, sq_errors)

    def over_groups(forward, backward):
        shared = (X, W1, W2, b1, b2)
        flags = (sigmoid_decoder, inv_n, A_store, two_pass, forward, backward, s, with_h)
        _over_images(
            n_groups, _over_groups, _group_sums,
            (*shared, bounds[groups[0] : groups[1] + 1], *flags,
             *(w[0] for w in work[1:]), *(a[0] for a in sums[:-1]), sq_errors[:1]),
            (*shared, bounds, groups, *flags, *work, *sums),
            max_threads=n_threads,
        )

    with blas_limit(1):
        if two_pass:
            over_groups(True, False)
            rho_hat, s[:] = _sparsity_delta(a_sums, n, sparsity_target, sparsity_weight, dtype)
            over_groups(False, True)
        else:
            over_groups(True, True)
    # Added in group order: the result does not depend on the threads.
    for total, parts in zip((gW2, gb2, gW1, gb1), sums):
        np.sum(parts, axis=0, out=total)
    loss = 0.5 / n * float(sq_errors.sum())
    loss += 0.5 * alpha * (float(np.vdot(W1, W1)) + float(np.vdot(W2, W2)))
    gW2 += alpha * W2
    gW1 += alpha * W1
    if sparsity:
        if with_h:
            rho_hat, s = _sparsity_delta(a_sums, n, sparsity_target, sparsity_weight, dtype)
            gW1 += s[:, None] * Hs.sum(axis=0)
            gb1 += s * h_bs.sum(axis=0)
        loss += sparsity_weight * float(kl_divergence(sparsity_target, rho_hat))
    return loss, grad


@_inline
def _add_product(a, b, first, total, buffer):
    """``total = a @ b`` when ``first``, else ``total += a @ b`` (through ``buffer``)."""
    if first:
        np.dot(a, b, total)
    else:
        np.dot(a, b, buffer)
        total += buffer


@njit(cache=True, parallel=True)
def _over_groups(per_group, X, W1, W2, b1, b2, bounds, groups, sigmoid_decoder, inv_n, A_store,
                 stored, forward, backward, s, with_h, A_work, D_work, Y_work, prod_dk, prod_kd,
                 gW2, gb2, gW1, gb1, H, h_b, a_sum, sq_error):
    """``per_group`` (:func:`_group_sums`, by address) on every group, each
    with its kernel thread's workspace and its own partial sums."""
    for g in prange(groups.size - 1):
        t = get_thread_id()
        per_group(
            X, W1, W2, b1, b2, bounds[groups[g] : groups[g + 1] + 1], sigmoid_decoder, inv_n,
            A_store if stored else A_work[t], stored, forward, backward, s, with_h, D_work[t],
            Y_work[t], prod_dk[t], prod_kd[t], gW2[g], gb2[g], gW1[g], gb1[g], H[g], h_b[g],
            a_sum[g], sq_error[g : g + 1],
        )


@_jit
def _group_sums(X, W1, W2, b1, b2, bounds, sigmoid_decoder, inv_n, A_buf, stored,
                forward, backward, s, with_h, D_buf, Y_buf, prod_dk, prod_kd,
                gW2, gb2, gW1, gb1, H, h_b, a_sum, sq_out):
    """The partial sums of the blocks ``X[bounds[i]:bounds[i + 1]]``, in order.

    ``forward`` computes each block's activations into ``A_buf`` (the rows of
    ``X`` when ``stored``, else a block's workspace) and adds their column
    sums to ``a_sum``; ``backward`` computes the gradient's sums from them,
    with the sparsity term's per-unit delta ``s`` and, ``with_h``, that
    term's part summed apart into ``H`` and ``h_b``. One call per group, on
    a thread of :func:`_over_groups` (the matrix products call BLAS
    directly); the sum of squared errors goes to ``sq_out[0]``.
    """
    sq_error = 0.0
    for i in range(bounds.size - 1):
        first = i == 0
        rows = bounds[i + 1] - bounds[i]
        Xb = X[bounds[i] : bounds[i + 1]]
        offset = bounds[i] if stored else 0
        A = A_buf[offset : offset + rows]
        if forward:
            np.dot(Xb, W1.T, A)
            _hidden_activations(A, b1, first, a_sum)
        if not backward:
            continue
        D, Y = D_buf[:rows], Y_buf[:rows]
        np.dot(A, W2.T, Y)
        sq_error += _output_deltas(Y, Xb, b2, sigmoid_decoder, inv_n, first, gb2)
        _add_product(Y.T, A, first, gW2, prod_dk)
        np.dot(Y, W2, D)
        _hidden_deltas(D, A, s, first, gb1, with_h, h_b)
        _add_product(D.T, Xb, first, gW1, prod_kd)
        if with_h:
            _add_product(A.T, Xb, first, H, prod_kd)
    sq_out[0] = sq_error
