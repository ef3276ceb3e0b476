"""Numba kernels of the convolution: patch extraction, activation and pooling.

A 'valid' stride-1 convolution of ``k`` filters is a matrix product of the
images' patch matrix (one row per window position) with the filters.
:func:`convolve_pool` does it all in one pass per image, in parallel over
images: each thread extracts a block of patch rows into its own buffer,
multiplies it by the filters (single-threaded BLAS through ``np.dot``), adds
the bias, applies the activation and pools. Blocks are sized to stay in the
core's L2 cache, and the threads never wait for each other or for a BLAS
thread pool, which matters on a loaded machine.

K-means triangle features (:func:`_triangle`) turn the responses, which hold
``||c_k||^2 - 2 x'.c_k`` and the whitened patch ``x'`` (see ``_folding``),
into distances and then activations before pooling.

For encoders that cannot be folded into filters, :func:`extract_patches`
writes the patch matrix of a chunk of images for the encoder, and
:func:`pool` pools what it returns.

Only the window positions that pooling uses are extracted: the remainder
beyond the last whole pooling region is dropped before it is computed. Each
patch row may be brightness/contrast normalized from its own window's mean and
variance (PatchNormalizer, computed in place rather than folded).

``error_model="numpy"`` lets divisions go without Python's zero check, which
would otherwise keep every loop that divides from vectorizing.
"""

import numpy as np
from numba import get_thread_id, njit, prange, types
from numba.extending import overload
from numpy.polynomial import Chebyshev, Polynomial

#: Activation codes understood by the kernels.
IDENTITY, SIGMOID, TRIANGLE = 0, 1, 2
#: Pooling codes understood by the kernels.
MEAN, MAX, SUM = 0, 1, 2

# Bytes of one thread's block of patch rows plus their filter responses: about
# a core's L2 cache, so that the activation reads the responses from there,
# with rows enough (at least _MIN_BLOCK_ROWS) for BLAS to run at full speed.
_BLOCK_BYTES = 2**20
_MIN_BLOCK_ROWS = 64

_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
# exp(r) on |r| <= ln(2)/2 as a degree-5 polynomial, highest degree first:
# interpolation at Chebyshev points, within 1.02e-7 relative of exp. That is
# about float32's rounding (6e-8): the sigmoid's error stays about 1e-7, as
# with a degree-7 Taylor polynomial, at two multiply-adds fewer per element.
_EXP_COEFFS = tuple(
    float(c) for c in Chebyshev.interpolate(np.exp, 5, domain=[-_LN2 / 2, _LN2 / 2])
    .convert(kind=Polynomial).coef[::-1]
)


def sigmoid(z):
    """``1 / (1 + exp(-z))``; compiled through the overload below."""
    raise NotImplementedError("sigmoid is only callable from numba kernels")


@overload(sigmoid, jit_options={"fastmath": True, "error_model": "numpy"})
def _sigmoid(z):
    """Float64 calls libm's ``exp``; float32 takes a vectorizable route.

    A libm ``exp`` call per element does not vectorize, and in float32 it
    costs more than the matrix product it follows. There
    ``exp(t) = 2**n * exp(r)`` with ``n = round(t / ln 2)``: ``exp(r)`` on
    ``|r| <= ln(2)/2`` is the polynomial ``_EXP_COEFFS``, and ``2**n`` is
    assembled from its exponent bits. Absolute error is at most about 1e-7.
    """
    if z != types.float32:
        return lambda z: 1.0 / (1.0 + np.exp(-z))

    def fast(z):
        f = np.float32
        x = min(max(-z, f(-87.0)), f(88.0))
        n = np.floor(x * f(_LOG2E) + f(0.5))
        # One multiply-add: ln 2's float32 rounding error, times |n| <= 127,
        # stays below 3e-7 in r.
        r = x - n * f(_LN2)
        p = f(0.0)
        for coeff in _EXP_COEFFS:
            p = p * r + f(coeff)
        scale = np.int32((np.int32(n) + np.int32(127)) << np.int32(23)).view(np.float32)
        return f(1.0) / (f(1.0) + p * scale)

    return fast


@njit(cache=True, fastmath=True)
def _extract(image, m, n_cols, start, normalize, epsilon, out):
    """Patch rows of window positions ``start, start+1, ...`` of one image into ``out``.

    Position ``q`` is the window with top-left corner ``divmod(q, n_cols)``,
    raveled in C order (row, column, channel); with ``normalize`` it becomes
    ``(x - mean(x)) / sqrt(var(x) + epsilon)``.
    """
    _, w, c = image.shape
    width = m * c
    d = m * width
    # A window row is ``width`` contiguous pixels of the C-ordered image. The
    # offsets are unsigned so that numba does not wrap negative indices, which
    # keeps the copy from vectorizing (a 4-6x slower extraction). Both arrays
    # are typed C-contiguous at every call, so ravel gives views.
    pixels = image.ravel()
    patches = out.ravel()
    for r in range(out.shape[0]):
        i, j = divmod(start + r, n_cols)
        src = np.uint64((i * w + j) * c)
        dst = np.uint64(r * d)
        for _ in range(m):
            for t in range(np.uint64(width)):
                patches[dst + t] = pixels[src + t]
            src += np.uint64(w * c)
            dst += np.uint64(width)
        if normalize:
            patch = out[r]
            mean = patch.sum() / d
            var = 0.0
            for t in range(d):
                var += (patch[t] - mean) ** 2
            scale = 1.0 / np.sqrt(var / d + epsilon)
            for t in range(d):
                patch[t] = (patch[t] - mean) * scale


@njit(cache=True, fastmath=True, error_model="numpy")
def _activate_pool(responses, bias, activation, n_cols, start, pool_h, pool_w, pooling, pooled):
    """Add ``bias``, activate and pool the rows of positions ``start, ...`` into ``pooled``.

    Only the first ``k = pooled.shape[-1]`` columns of ``responses`` are pooled.
    """
    k = pooled.shape[-1]
    for r in range(responses.shape[0]):
        i, j = divmod(start + r, n_cols)
        z = responses[r]
        cell = pooled[i // pool_h, j // pool_w]
        # One loop per case, so that each vectorizes.
        if activation == SIGMOID and pooling == MAX:
            for t in range(k):
                cell[t] = max(cell[t], sigmoid(z[t] + bias[t]))
        elif activation == SIGMOID:
            for t in range(k):
                cell[t] += sigmoid(z[t] + bias[t])
        elif pooling == MAX:
            for t in range(k):
                cell[t] = max(cell[t], z[t] + bias[t])
        else:
            for t in range(k):
                cell[t] += z[t] + bias[t]


@njit(cache=True, fastmath=True, error_model="numpy")
def _triangle(patches, responses, bias, k):
    """Triangle activations ``max(0, mean_j(z_j) - z_k)`` into ``responses[:, :k]``.

    ``responses[:, :k] + bias[:k]`` is ``||c_k||^2 - 2 x'.c_k``; the squared
    norm of ``x'`` is that of ``responses[:, k:] + bias[k:]`` or, when there
    are no more columns, of the patch row itself (a local sum).
    """
    e = responses.shape[1] - k
    real = responses.dtype.type
    for r in range(responses.shape[0]):
        z = responses[r]
        # Summed in float64: x' has up to m*m*c terms.
        squared_norm = 0.0
        if e == 0:
            patch = patches[r]
            for t in range(patch.shape[0]):
                squared_norm += patch[t] * patch[t]
        else:
            for t in range(k, k + e):
                u = z[t] + bias[t]
                squared_norm += u * u
        base = real(squared_norm)
        total = real(0.0)
        for t in range(k):
            # max(): round-off can make a tiny squared distance negative.
            z[t] = np.sqrt(max(base + z[t] + bias[t], real(0.0)))
            total += z[t]
        # real(k): an integer k would make mean, and the loop below, float64.
        mean = total / real(k)
        for t in range(k):
            z[t] = max(mean - z[t], real(0.0))


@njit(cache=True)
def _start_pool(pooled, pooling):
    pooled[:] = -np.inf if pooling == MAX else 0.0


@njit(cache=True)
def _finish_pool(pooled, pooling, pool_h, pool_w):
    if pooling == MEAN:
        pooled *= 1.0 / (pool_h * pool_w)


@njit(cache=True, parallel=True)
def convolve_pool(images, filters_t, bias, m, normalize, epsilon, activation, pool_h, pool_w,
                  pooling, n_threads, out):
    """Convolve, activate and pool ``images`` (B, h, w, c) into ``out`` (B, ph, pw, k).

    ``filters_t`` (m*m*c, k) holds one filter per column, raveled as the patch
    rows of :func:`extract_patches` (for ``TRIANGLE``, (m*m*c, k + e) as
    :func:`_triangle` reads them); the maps are ``(ph * pool_h) x (pw *
    pool_w)``. Call with BLAS limited to one thread, as every thread runs its
    own matrix products, and with ``n_threads = numba.get_num_threads()`` (in
    here, that call would keep the kernel from being cached).
    """
    n_images, n_ph, n_pw, k = out.shape
    d, n_responses = filters_t.shape
    n_cols = n_pw * pool_w
    positions = n_ph * pool_h * n_cols
    block = max(_MIN_BLOCK_ROWS, _BLOCK_BYTES // ((d + n_responses) * filters_t.itemsize))
    block = min(block, positions)
    patches = np.empty((n_threads, block, d), dtype=filters_t.dtype)
    responses = np.empty((n_threads, block, n_responses), dtype=filters_t.dtype)
    # The triangle activation adds its own bias; pooling then adds none.
    pool_activation, pool_bias = activation, bias
    if activation == TRIANGLE:
        pool_activation, pool_bias = IDENTITY, np.zeros_like(bias)
    for b in prange(n_images):
        thread = get_thread_id()
        _start_pool(out[b], pooling)
        for start in range(0, positions, block):
            rows = min(block, positions - start)
            P = patches[thread, :rows]
            R = responses[thread, :rows]
            _extract(images[b], m, n_cols, start, normalize, epsilon, P)
            np.dot(P, filters_t, R)
            if activation == TRIANGLE:
                _triangle(P, R, bias, k)
            _activate_pool(
                R, pool_bias, pool_activation, n_cols, start, pool_h, pool_w, pooling, out[b]
            )
        _finish_pool(out[b], pooling, pool_h, pool_w)


@njit(cache=True, parallel=True)
def extract_patches(images, m, n_rows, n_cols, out):
    """Patch matrix of ``images`` (B, h, w, c) into ``out`` (B*n_rows*n_cols, m*m*c).

    Row ``(b * n_rows + i) * n_cols + j`` is the window with top-left corner
    (i, j) of image b, raveled as in :func:`_extract`.
    """
    positions = n_rows * n_cols
    for b in prange(images.shape[0]):
        _extract(images[b], m, n_cols, 0, False, 0.0, out[b * positions : (b + 1) * positions])


@njit(cache=True, parallel=True)
def pool(responses, pool_h, pool_w, pooling, out):
    """Pool ``responses`` (B*n_rows*n_cols, k), rows as :func:`extract_patches` wrote them.

    ``out`` (B, ph, pw, k) receives the pooled maps, with ``n_rows = ph * pool_h``
    and ``n_cols = pw * pool_w``.
    """
    n_cols = out.shape[2] * pool_w
    positions = out.shape[1] * pool_h * n_cols
    no_bias = np.zeros(out.shape[3], dtype=out.dtype)
    for b in prange(out.shape[0]):
        R = responses[b * positions : (b + 1) * positions]
        _start_pool(out[b], pooling)
        _activate_pool(R, no_bias, IDENTITY, n_cols, 0, pool_h, pool_w, pooling, out[b])
        _finish_pool(out[b], pooling, pool_h, pool_w)
