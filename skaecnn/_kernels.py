"""Numba kernels of the convolution: patch extraction, activation and pooling.

A 'valid' stride-1 convolution of ``k`` filters is a matrix product of the
images' patch matrix (one row per window position) with the filters; BLAS does
that product, these kernels do what surrounds it, in parallel over images:

* :func:`extract_patches` writes the patch matrix of a chunk of images, each
  row optionally brightness/contrast normalized from its own window's mean and
  variance (PatchNormalizer, computed in place rather than folded);
* :func:`activate_pool` adds the bias, applies the activation and pools, so the
  activated, un-pooled maps are never stored.

Only the window positions that pooling uses are extracted: the remainder
beyond the last whole pooling region is dropped before it is computed.
"""

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

#: Activation codes understood by :func:`activate_pool`.
IDENTITY, SIGMOID = 0, 1
#: Pooling codes understood by :func:`activate_pool`.
MEAN, MAX, SUM = 0, 1, 2

_LOG2E = 1.4426950408889634
# ln 2 split so that n * _LN2_HI is exact for the n that occur (Cody & Waite).
_LN2_HI = 0.693359375
_LN2_LO = -2.12194440e-4


@njit(cache=True, parallel=True)
def extract_patches(images, m, n_rows, n_cols, normalize, epsilon, out):
    """Patch matrix of ``images`` (B, h, w, c) into ``out`` (B*n_rows*n_cols, m*m*c).

    Row ``(b * n_rows + i) * n_cols + j`` is the m x m x c window with top-left
    corner (i, j) of image b, raveled in C order (row, column, channel). With
    ``normalize``, each row becomes ``(x - mean(x)) / sqrt(var(x) + epsilon)``.
    """
    n_images, _, _, c = images.shape
    width = m * c
    d = m * width
    for b in prange(n_images):
        for i in range(n_rows):
            for j in range(n_cols):
                row = (b * n_rows + i) * n_cols + j
                patch = out[row]
                for di in range(m):
                    for dj in range(m):
                        for ch in range(c):
                            patch[di * width + dj * c + ch] = images[b, i + di, j + dj, ch]
                if normalize:
                    mean = patch.sum() / d
                    var = 0.0
                    for t in range(d):
                        var += (patch[t] - mean) ** 2
                    scale = 1.0 / np.sqrt(var / d + epsilon)
                    for t in range(d):
                        patch[t] = (patch[t] - mean) * scale


def sigmoid_row(z, bits, out):
    """``out = 1 / (1 + exp(-z))`` for one row; compiled through the overload below."""
    raise NotImplementedError("sigmoid_row is only callable from numba kernels")


@overload(sigmoid_row, jit_options={"fastmath": True})
def _sigmoid_row(z, bits, out):
    """Float64 calls libm's ``exp``; float32 takes a vectorizable route.

    A libm ``exp`` call per element does not vectorize, and in float32 it
    costs more than the matrix product it follows. There
    ``exp(t) = 2**n * exp(r)`` with ``n = round(t / ln 2)``: ``exp(r)`` on
    ``|r| <= ln(2)/2`` is its Taylor polynomial to degree 7 (truncation below
    1e-8 relative), and ``2**n`` is assembled from its exponent bits in an
    int32 buffer viewed as float32. Absolute error stays below 1e-7.
    """
    if z.dtype != types.float32:

        def exact(z, bits, out):
            for t in range(z.shape[0]):
                out[t] = 1.0 / (1.0 + np.exp(-z[t]))

        return exact

    def fast(z, bits, out):
        f = np.float32
        for t in range(z.shape[0]):
            x = min(max(-z[t], f(-87.0)), f(88.0))
            n = np.floor(x * f(_LOG2E) + f(0.5))
            r = x - n * f(_LN2_HI) - n * f(_LN2_LO)
            p = f(1.0 / 5040.0)
            p = p * r + f(1.0 / 720.0)
            p = p * r + f(1.0 / 120.0)
            p = p * r + f(1.0 / 24.0)
            p = p * r + f(1.0 / 6.0)
            p = p * r + f(0.5)
            p = p * r + f(1.0)
            p = p * r + f(1.0)
            out[t] = p
            bits[t] = (np.int32(n) + np.int32(127)) << np.int32(23)
        scale = bits.view(np.float32)
        for t in range(z.shape[0]):
            out[t] = f(1.0) / (f(1.0) + out[t] * scale[t])

    return fast


@njit(cache=True, parallel=True, fastmath=True)
def activate_pool(responses, bias, activation, n_rows, n_cols, pool_h, pool_w, pooling, out):
    """Bias, activation and pooling of one chunk's filter responses.

    ``responses`` is (B*n_rows*n_cols, k) in the row order of
    :func:`extract_patches`, with ``n_rows = out.shape[1] * pool_h`` and
    ``n_cols = out.shape[2] * pool_w``; ``out`` (B, n_rows/pool_h,
    n_cols/pool_w, k) receives the pooled maps.
    """
    n_images = out.shape[0]
    k = out.shape[3]
    inv_area = 1.0 / (pool_h * pool_w)
    for b in prange(n_images):
        z = np.empty(k, dtype=responses.dtype)
        a = np.empty(k, dtype=responses.dtype)
        bits = np.empty(k, dtype=np.int32)
        pooled = out[b]
        if pooling == MAX:
            pooled[:] = -np.inf
        else:
            pooled[:] = 0.0
        for i in range(n_rows):
            for j in range(n_cols):
                row = (b * n_rows + i) * n_cols + j
                for t in range(k):
                    z[t] = responses[row, t] + bias[t]
                if activation == SIGMOID:
                    sigmoid_row(z, bits, a)
                else:
                    a[:] = z
                cell = pooled[i // pool_h, j // pool_w]
                if pooling == MAX:
                    for t in range(k):
                        cell[t] = max(cell[t], a[t])
                else:
                    for t in range(k):
                        cell[t] += a[t]
        if pooling == MEAN:
            for pi in range(pooled.shape[0]):
                for pj in range(pooled.shape[1]):
                    for t in range(k):
                        pooled[pi, pj, t] *= inv_area
