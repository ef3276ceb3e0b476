"""Numba kernels for training a convolutional layer: forward keeping what backward needs, backward.

A layer is the fused computation of :func:`skaecnn._kernels.convolve_pool`:
the patch rows ``P`` of every window a pooling region uses (optionally each
brightness/contrast normalized), responses ``Z = P @ W.T + b``, activations
``A = act(Z)``, pooled over regions of ``pool`` every ``stride`` positions
(overlapping when the stride is smaller). Training needs, per
image, the activations of every position (the sigmoid's derivative is
``A (1 - A)``, the ReLU's is 1 where ``A > 0``) and, for max pooling, which position won each region: the
forward kernel keeps both for one minibatch (memory grows with the batch,
not with the data set). The patch rows are cheap to extract again, so the
backward kernel recomputes them block by block instead of storing them.

Backward, for each image in parallel and each block of positions:

* the error of the pooled maps goes back through the pooling (mean: spread
  evenly over the region; sum: copied; max: to the arg-max only) and the
  activation, giving ``E = dL/dZ`` for the block;
* the filter gradient is ``P.T @ E`` (one GEMM per block, single-threaded
  BLAS) added to the calling thread's own accumulator, the bias gradient the
  column sums of ``E``;
* for a layer below, the error of the input is ``E @ W`` scattered back onto
  the input maps (col2im), each image's map written by one thread only.

With window normalization ``y = (x - mean(x)) / s``, ``s = sqrt(var(x) +
epsilon)``, the error of a window's raw values is
``(dy - mean(dy) - y mean(dy y)) / s`` (:func:`_normalize_backward`), so a
layer above the first may normalize the maps of the layer below.
"""

import numpy as np
from numba import get_thread_id, njit, prange

import numba

from ._kernels import (
    _BLOCK_BYTES, _GROUP_ROWS, _MIN_BLOCK_ROWS, _extract, _regions, map_extent, sigmoid,
)

#: The stages the backward pass differentiates, as the integer codes its
#: kernels branch on; names are those of ``_kernels.ACTIVATIONS`` and
#: ``_kernels.POOLINGS``.
IDENTITY, SIGMOID, RELU = 0, 1, 2
MEAN, MAX, SUM = 0, 1, 2
ACTIVATION_CODES = {"identity": IDENTITY, "sigmoid": SIGMOID, "relu": RELU}
POOLING_CODES = {"mean": MEAN, "max": MAX, "sum": SUM}


# The most bytes of patch rows and errors of the images one backward GEMM
# takes at once (at most _GROUP_ROWS rows).
_GROUP_BYTES = 2**21


@njit(cache=True)
def _block_rows(d, k, itemsize, positions):
    block = max(_MIN_BLOCK_ROWS, _BLOCK_BYTES // ((d + k) * itemsize))
    return min(block, positions)


@njit(cache=True, fastmath=True, error_model="numpy")
def _activate(Z, bias, activation):
    zero = Z.dtype.type(0.0)  # in Z's dtype, as in _errors
    for r in range(Z.shape[0]):
        z = Z[r]
        if activation == SIGMOID:
            for t in range(z.shape[0]):
                z[t] = sigmoid(z[t] + bias[t])
        elif activation == RELU:
            for t in range(z.shape[0]):
                z[t] = max(z[t] + bias[t], zero)
        else:
            for t in range(z.shape[0]):
                z[t] += bias[t]


@njit(cache=True)
def _regions_of(pos, n_cols, pool, stride, n_ph, n_pw):
    """Rows ``r0..r1`` and columns ``c0..c1`` of the pooling regions holding position ``pos``."""
    i, j = divmod(pos, n_cols)
    r0, r1 = _regions(i, pool[0], stride[0], n_ph)
    c0, c1 = _regions(j, pool[1], stride[1], n_pw)
    return r0, r1, c0, c1


@njit(cache=True)
def _pool_forward(A, n_cols, pool, stride, pooling, argmax, out):
    """Pool activations ``A`` (positions, k) into ``out`` (ph, pw, k); max records its arg-max."""
    n_ph, n_pw, k = out.shape
    out[:] = -np.inf if pooling == MAX else 0.0
    for pos in range(A.shape[0]):
        a = A[pos]
        r0, r1, c0, c1 = _regions_of(pos, n_cols, pool, stride, n_ph, n_pw)
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                cell = out[r, c]
                if pooling == MAX:
                    winner = argmax[r, c]
                    for t in range(k):
                        if a[t] > cell[t]:
                            cell[t] = a[t]
                            winner[t] = pos
                else:
                    for t in range(k):
                        cell[t] += a[t]
    if pooling == MEAN:
        out *= 1.0 / (pool[0] * pool[1])


@njit(cache=True, parallel=True)
def forward(images, filters_t, bias, m, normalize, epsilon, activation, pool, stride,
            pooling, n_threads, acts, argmax, out):
    """Layer output ``out`` (B, ph, pw, k) of ``images`` (B, h, w, c), keeping ``acts`` and ``argmax``.

    ``acts`` (B, positions, k) receives the activations of every window
    position pooling uses (row-major over the part of the map that the
    regions of ``pool`` (rows, columns) every ``stride`` span), ``argmax``
    (B, ph, pw, k) the winning position of each max-pooling region (other
    poolings leave it alone: it may be (B, 0, 0, 0)). ``filters_t`` (m*m*c, k) as in
    :func:`skaecnn._kernels.convolve_pool`; call with single-threaded BLAS and
    ``n_threads = numba.get_num_threads()``.
    """
    n_images, n_ph, n_pw, k = out.shape
    d = filters_t.shape[0]
    n_cols = map_extent(n_pw, pool[1], stride[1])
    positions = map_extent(n_ph, pool[0], stride[0]) * n_cols
    block = _block_rows(d, k, filters_t.itemsize, positions)
    patches = np.empty((n_threads, block, d), dtype=filters_t.dtype)
    for b in prange(n_images):
        thread = get_thread_id()
        A = acts[b]
        for start in range(0, positions, block):
            rows = min(block, positions - start)
            P = patches[thread, :rows]
            _extract(images[b], m, n_cols, start, normalize, epsilon, P)
            Z = A[start : start + rows]
            np.dot(P, filters_t, Z)
            _activate(Z, bias, activation)
        _pool_forward(A, n_cols, pool, stride, pooling, argmax[b], out[b])


@njit(cache=True, fastmath=True, error_model="numpy")
def _errors(A, start, n_cols, pool, stride, pooling, activation, argmax, d_out, E):
    """``dL/dZ`` of positions ``start, ...`` into ``E`` from the pooled maps' error ``d_out``."""
    n_ph, n_pw, k = d_out.shape
    # Constants in E's dtype: a float64 one would widen float32 loops to
    # float64 arithmetic, vectorized at half the width.
    real = E.dtype.type
    zero, one = real(0.0), real(1.0)
    scale = real(1.0 / (pool[0] * pool[1])) if pooling == MEAN else one
    for r in range(E.shape[0]):
        pos = start + r
        e = E[r]
        e[:] = 0.0
        # A position in overlapping regions gets the error of each of them.
        r0, r1, c0, c1 = _regions_of(pos, n_cols, pool, stride, n_ph, n_pw)
        for ra in range(r0, r1 + 1):
            for ca in range(c0, c1 + 1):
                g = d_out[ra, ca]
                if pooling == MAX:
                    winner = argmax[ra, ca]
                    for t in range(k):
                        if winner[t] == pos:
                            e[t] += g[t]
                else:
                    for t in range(k):
                        e[t] += g[t] * scale
        if activation == SIGMOID:
            a = A[r]
            for t in range(k):
                e[t] *= a[t] * (one - a[t])
        elif activation == RELU:
            a = A[r]
            for t in range(k):
                if a[t] <= zero:
                    e[t] = zero


@njit(cache=True, fastmath=True, error_model="numpy")
def _normalize_backward(D, Y, raw, epsilon):
    """Turn the errors ``D`` of normalized rows ``Y`` into those of the raw rows ``raw``."""
    d = D.shape[1]
    for r in range(D.shape[0]):
        x, y, g = raw[r], Y[r], D[r]
        mean = x.sum() / d
        var = 0.0
        for t in range(d):
            var += (x[t] - mean) ** 2
        inv_s = 1.0 / np.sqrt(var / d + epsilon)
        g_mean = g.sum() / d
        gy_mean = 0.0
        for t in range(d):
            gy_mean += g[t] * y[t]
        gy_mean /= d
        for t in range(d):
            g[t] = (g[t] - g_mean - y[t] * gy_mean) * inv_s


@njit(cache=True)
def _col2im(D, m, n_cols, start, d_image):
    """Add the patch-row errors ``D`` of positions ``start, ...`` onto ``d_image`` (h, w, c)."""
    _, w, c = d_image.shape
    width = m * c
    pixels = d_image.ravel()
    errors = D.ravel()
    d = D.shape[1]
    # Unsigned offsets, as in _kernels._extract_rows: numba's wraparound of
    # negative indices would keep the addition from vectorizing (5x slower).
    for r in range(D.shape[0]):
        i, j = divmod(start + r, n_cols)
        src = np.uint64(r * d)
        dst = np.uint64((i * w + j) * c)
        for _ in range(m):
            for t in range(np.uint64(width)):
                pixels[dst + t] += errors[src + t]
            src += np.uint64(width)
            dst += np.uint64(w * c)


@njit(cache=True, parallel=True)
def backward(images, filters_t, filters, m, normalize, epsilon, activation, pool, stride,
             pooling, acts, argmax, d_out, n_threads, grad_w, grad_b, d_images):
    """Gradients of the layer from the error ``d_out`` (B, ph, pw, k) of its output.

    ``acts`` and ``argmax`` as :func:`forward` left them for the same
    ``images``. Adds each thread's share of the filter gradient (m*m*c, k) to
    ``grad_w[thread]`` and of the bias gradient to ``grad_b[thread]`` (the
    caller zeroes them and sums over threads). ``filters`` is ``filters_t.T``
    made C-contiguous; with ``d_images`` of the images' shape the error of the
    input is written there, with an empty one it is not computed.
    """
    n_images, n_ph, n_pw, k = d_out.shape
    d = filters_t.shape[0]
    n_cols = map_extent(n_pw, pool[1], stride[1])
    positions = map_extent(n_ph, pool[0], stride[0]) * n_cols
    block = _block_rows(d, k, filters_t.itemsize, positions)
    dtype = filters_t.dtype
    # Images of fewer than _GROUP_ROWS positions go several to a GEMM (that
    # many rows, within _GROUP_BYTES, and no fewer groups than threads): one
    # GEMM per product for the group, faster than one per image, and one sum
    # into grad_w. bench_finetune's second layer (100 positions): backward
    # 17.6 -> 14.2-15.7 ms. Its first layer (576) lost from grouping: its
    # rows then leave the L2 cache before the GEMM reads them.
    per_group = 1
    if block == positions and positions < _GROUP_ROWS:
        per_group = min(-(-_GROUP_ROWS // positions), -(-n_images // n_threads),
                        _GROUP_BYTES // ((d + k) * filters_t.itemsize) // positions)
        per_group = max(1, per_group)
    n_groups = -(-n_images // per_group)
    capacity = block * per_group
    patches = np.empty((n_threads, capacity, d), dtype=dtype)
    errors = np.empty((n_threads, capacity, k), dtype=dtype)
    products = np.empty((n_threads, d, k), dtype=dtype)
    need_input = d_images.shape[0] > 0
    # With normalization the input's error needs the normalized rows and the
    # raw ones besides the rows' errors.
    extra = n_threads if need_input and normalize else 0
    row_errors = np.empty((extra, capacity, d), dtype=dtype)
    raw = np.empty((extra, capacity, d), dtype=dtype)
    for group in prange(n_groups):
        thread = get_thread_id()
        first = group * per_group
        last = min(first + per_group, n_images)
        if need_input:
            d_images[first:last] = 0.0
        for start in range(0, positions, block):
            rows = min(block, positions - start)
            total = rows * (last - first)
            for b in range(first, last):
                at = (b - first) * rows
                _extract(images[b], m, n_cols, start, normalize, epsilon,
                         patches[thread, at : at + rows])
                _errors(acts[b, start : start + rows], start, n_cols, pool, stride, pooling,
                        activation, argmax[b], d_out[b], errors[thread, at : at + rows])
            P = patches[thread, :total]
            E = errors[thread, :total]
            G = products[thread]
            np.dot(P.T, E, G)
            grad_w[thread] += G
            gb = grad_b[thread]
            for r in range(total):
                for t in range(k):
                    gb[t] += E[r, t]
            if not need_input:
                continue
            if normalize:
                D = row_errors[thread, :total]
                np.dot(E, filters, D)
                for b in range(first, last):
                    at = (b - first) * rows
                    _extract(images[b], m, n_cols, start, False, 0.0,
                             raw[thread, at : at + rows])
                _normalize_backward(D, P, raw[thread, :total], epsilon)
            else:
                # The patch buffer is free again: reuse it for the rows' errors.
                D = P
                np.dot(E, filters, D)
            for b in range(first, last):
                at = (b - first) * rows
                _col2im(D[at : at + rows], m, n_cols, start, d_images[b])


@njit(cache=True)
def adam_update(param, grad, first, second, step, beta1, rate1, beta2, rate2, eps):
    """One Adam step of ``param`` in place, moments ``first`` and ``second`` updated.

    ``m = beta1 m + rate1 g``, ``v = beta2 v + rate2 g g`` and
    ``p -= step m / (sqrt(v) + eps)``, in one pass instead of ten numpy ones
    with their temporaries, and the same arithmetic, operation for operation:
    ``step`` a float64 (numpy's ``step * m`` is then float64 too), the other
    scalars rounded to the arrays' dtype as numpy rounds a Python float
    (``rate = 1 - beta`` before rounding). All arrays C-contiguous.
    """
    if not (param.flags.c_contiguous and grad.flags.c_contiguous
            and first.flags.c_contiguous and second.flags.c_contiguous):
        raise ValueError("adam_update needs C-contiguous arrays")
    p, g, m, v = param.ravel(), grad.ravel(), first.ravel(), second.ravel()
    for i in range(p.size):
        m[i] = m[i] * beta1 + rate1 * g[i]
        v[i] = v[i] * beta2 + rate2 * g[i] * g[i]
        p[i] -= step * m[i] / (np.sqrt(v[i]) + eps)


class ConvStage:
    """One convolutional layer being trained: parameters, forward and backward.

    Parameters
    ----------
    weights : ndarray of shape (k, m*m*c)
        Filters in image space, one per row, raveled as patch rows.
    bias : ndarray of shape (k,)
    patch_size : int
    pool : (int, int)
        Rows and columns of the pooling regions.
    pooling : int
        A code of :data:`POOLING_CODES`.
    activation : int
        A code of :data:`ACTIVATION_CODES`.
    normalize_epsilon : float or None
        Each window brightness/contrast normalized with this epsilon.
    input_shape : (int, int, int)
        ``(h, w, c)`` of the layer's input.
    stride : (int, int) or None, default=None
        Rows and columns between the starts of neighbouring regions; None:
        ``pool``, regions that tile the map.
    """

    def __init__(self, weights, bias, patch_size, pool, pooling, activation,
                 normalize_epsilon, input_shape, stride=None):
        self.weights, self.bias = weights, bias
        self.patch_size, self.pool, self.pooling = patch_size, tuple(pool), pooling
        self.stride = self.pool if stride is None else tuple(stride)
        self.activation, self.normalize_epsilon = activation, normalize_epsilon
        self.input_shape = input_shape
        h, w, _ = input_shape
        m = patch_size
        grid = [(side - m + 1 - size) // step + 1
                for side, size, step in zip((h, w), self.pool, self.stride)]
        self.output_shape = (*grid, len(weights))
        self.positions = int(np.prod([map_extent(n, size, step) for n, size, step
                                      in zip(grid, self.pool, self.stride)]))

    def _config(self):
        normalize = self.normalize_epsilon is not None
        return (self.patch_size, normalize, self.normalize_epsilon if normalize else 0.0,
                self.activation, self.pool, self.stride, self.pooling)

    def forward(self, X):
        """Output (B, ph, pw, k) of ``X`` (B, h, w, c) and what :meth:`backward` needs."""
        dtype = X.dtype
        n = len(X)
        k = self.output_shape[2]
        acts = np.empty((n, self.positions, k), dtype=dtype)
        # Only max pooling has winners: an empty array spares clearing MiBs per batch.
        winners = self.output_shape if self.pooling == MAX else (0, 0, 0)
        argmax = np.zeros((n,) + winners, dtype=np.int64)
        out = np.empty((n,) + self.output_shape, dtype=dtype)
        filters_t = np.ascontiguousarray(self.weights.T, dtype=dtype)
        m, normalize, eps, act, pool, stride, pooling = self._config()
        forward(X, filters_t, self.bias.astype(dtype), m, normalize, eps, act, pool, stride,
                pooling, numba.get_num_threads(), acts, argmax, out)
        return out, (X, acts, argmax)

    def backward(self, cache, d_out, need_input):
        """``(grad_weights, grad_bias, d_X or None)`` from the error ``d_out`` of the output."""
        X, acts, argmax = cache
        dtype = X.dtype
        n_threads = numba.get_num_threads()
        k, d = self.weights.shape
        grad_w = np.zeros((n_threads, d, k), dtype=dtype)
        grad_b = np.zeros((n_threads, k), dtype=dtype)
        d_X = np.empty(X.shape if need_input else (0, 1, 1, 1), dtype=dtype)
        filters = np.ascontiguousarray(self.weights, dtype=dtype)
        m, normalize, eps, act, pool, stride, pooling = self._config()
        backward(X, np.ascontiguousarray(filters.T), filters, m, normalize, eps, act, pool, stride,
                 pooling, acts, argmax, np.ascontiguousarray(d_out, dtype=dtype), n_threads,
                 grad_w, grad_b, d_X)
        return grad_w.sum(axis=0).T, grad_b.sum(axis=0), d_X if need_input else None


def signed_power(F, power):
    """``sign(F) * |F|**power``: power normalization of pooled features.

    A power below 1 compresses the large pooled values of frequent filters
    relative to the small ones of rare filters (see "Encoding and pooling" in
    the user guide).
    """
    if power == 1:
        return F
    return np.sign(F) * np.abs(F) ** F.dtype.type(power)


def _log_softmax(Z):
    Z = Z - Z.max(axis=1, keepdims=True)
    return Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))


class Network:
    """Convolutional layers, then fully connected ReLU layers, then a softmax.

    ``stages`` are :class:`ConvStage` s, bottom first, each taking the pooled
    maps of the one below as its images. Their flattened output ``f`` enters
    the fully connected layers standardized, ``(f - mean) * scale`` with
    fixed ``mean`` and ``scale`` (a StandardScaler fitted on the pretrained
    features: sparse sigmoid features are small, and would leave the top
    layer's steps far too short at its start). ``dense`` is a list of ``[W, b]``
    with ``W`` of shape (inputs, outputs): ReLU hidden layers on the flattened
    maps of the last stage, and last the softmax regression. All arrays are
    updated in place by the optimizers (:meth:`parameters`). With ``power``
    other than 1, ``f`` is first raised to it, ``sign(f) |f|**power``
    (:func:`signed_power`).
    """

    def __init__(self, stages, mean, scale, dense, power=1.0):
        self.stages, self.mean, self.scale, self.dense = stages, mean, scale, dense
        self.power = power

    def _features(self, out):
        """The standardized input of the dense layers from the last stage's output."""
        return (signed_power(out.reshape(len(out), -1), self.power) - self.mean) * self.scale

    def parameters(self):
        """The trainable arrays, weights and biases alternating."""
        params = []
        for stage in self.stages:
            params += [stage.weights, stage.bias]
        for W, b in self.dense:
            params += [W, b]
        return params

    def decision_function(self, X):
        """Softmax inputs (B, n_classes) of images ``X`` (B, h, w, c)."""
        out = X
        for stage in self.stages:
            out, _ = stage.forward(out)
        h = self._features(out)
        for i, (W, b) in enumerate(self.dense):
            h = h @ W + b
            if i < len(self.dense) - 1:
                np.maximum(h, 0.0, out=h)
        return h

    def loss_and_gradients(self, X, Y, dropout=0.0, rng=None):
        """Mean cross-entropy of ``X`` (B, h, w, c) against one-hot ``Y`` and its gradients.

        ``dropout`` (with ``rng``) zeroes that fraction of the flattened maps
        and of the hidden units, scaling the rest by ``1 / (1 - dropout)``.
        Returns ``(loss, [gradient of each of parameters()])``; weight decay
        is the caller's.
        """
        n = len(X)
        caches = []
        out = X
        for stage in self.stages:
            out, cache = stage.forward(out)
            caches.append(cache)
        h = self._features(out)
        inputs, masks = [], []
        for i, (W, b) in enumerate(self.dense):
            mask = None
            if dropout > 0.0:
                mask = (rng.random_sample(h.shape) >= dropout).astype(h.dtype)
                mask *= 1.0 / (1.0 - dropout)
                h = h * mask
            inputs.append(h)
            masks.append(mask)
            h = h @ W + b
            if i < len(self.dense) - 1:
                np.maximum(h, 0.0, out=h)
        log_p = _log_softmax(h)
        loss = -float(np.sum(Y * log_p, dtype=np.float64)) / n
        delta = (np.exp(log_p) - Y) / h.dtype.type(n)
        dense_grads = []
        for i in range(len(self.dense) - 1, -1, -1):
            W, _ = self.dense[i]
            dense_grads[:0] = [inputs[i].T @ delta, delta.sum(axis=0)]
            if i == 0 and not self.stages:
                break
            delta = delta @ W.T
            if masks[i] is not None:
                delta *= masks[i]
            if i > 0:
                # The input of dense layer i is the ReLU output of layer i - 1.
                delta *= inputs[i] > 0
        conv_grads = []
        d_out = delta * self.scale
        if self.power != 1:
            f = np.abs(out.reshape(n, -1))
            # The derivative p |f|**(p - 1), taken as 0 at f = 0 (a region
            # whose units are all off passes no error below anyway).
            d_out *= self.power * np.where(f > 0, f, 1) ** (self.power - 1) * (f > 0)
        d_out = d_out.reshape(out.shape)
        for level in range(len(self.stages) - 1, -1, -1):
            gw, gb, d_out = self.stages[level].backward(caches[level], d_out, level > 0)
            conv_grads[:0] = [gw, gb]
        return loss, conv_grads + dense_grads
