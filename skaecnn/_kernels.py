"""Numba kernels of the convolution: patch extraction, activation and pooling.

A 'valid' stride-1 convolution of ``k`` filters is a matrix product of the
images' patch matrix (one row per window position) with the filters.
:func:`convolve_pool` does it all in one pass per image, in parallel over
images: each thread extracts a block of patch rows into its own buffer,
multiplies it by the filters (single-threaded BLAS through ``np.dot``), adds
the bias, applies the activation and pools. Blocks are sized to stay in the
core's L2 cache, and the threads never wait for each other or for a BLAS
thread pool, which matters on a loaded machine.

Activations and poolings are data: entries of :data:`ACTIVATIONS` and
:data:`POOLINGS`, whose numba functions the kernels compose (activation, then
pooling) in one loop per block of rows. The kernels take a stage as a
:class:`Stage`, which numba types by its name: each call compiles (or loads
from numba's cache) only the specialization of the stages it uses, with no
branch on them at run time. Adding an activation or a pooling is one entry.
K-means triangle features (:func:`_triangle`) are an activation that is not
elementwise: its ``rows`` stage turns the responses, which hold
``||c_k||^2 - 2 x'.c_k`` and the whitened patch ``x'`` (see ``_folding``),
into distances and then activations before pooling.

For encoders that cannot be folded into filters, :func:`extract_patches`
writes the patch matrix of a chunk of images for the encoder, and
:func:`pool` pools what it returns.

Pooling regions of ``pool_h x pool_w`` positions start every ``stride_h``
rows and ``stride_w`` columns of a map (``stride = pool``: the regions tile
the map; smaller: they overlap, and a position adds to every region it lies
in). Only the window positions that pooling uses are extracted: the remainder
beyond the last whole pooling region is dropped before it is computed. Each
patch row may be brightness/contrast normalized from its own window's mean and
variance (PatchNormalizer, computed in place rather than folded).

``error_model="numpy"`` lets divisions go without Python's zero check, which
would otherwise keep every loop that divides from vectorizing.
"""

import math
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import get_num_threads, get_thread_id, njit, prange, set_num_threads, typeof, types
from numba._dispatcher import compute_fingerprint
from numba.core.imputils import lower_constant
from numba.np.numpy_support import as_dtype
from numba.extending import (
    NativeValue,
    models,
    overload,
    register_model,
    unbox,
)
from numba.types import FunctionType
from numpy.polynomial import Chebyshev, Polynomial

from ._threads import blas_limit

# Bytes of one thread's block of patch rows plus their filter responses: about
# a core's L2 cache, so that the activation reads the responses from there,
# with rows enough (at least _MIN_BLOCK_ROWS) for BLAS to run at full speed.
_BLOCK_BYTES = 2**20
_MIN_BLOCK_ROWS = 64
# Floating-point operations of one image's matrix products from which the
# convolution splits images among threads that would have none (see _bands):
# about 0.1 ms on one core, twice what a parallel launch costs.
_BAND_FLOPS = 4e6
# Window positions of small images one matrix product takes at most, several
# images to a product (_images_per_task; the backward pass's groups in
# skaecnn._backprop). On digits, 256, 512 and 1024 were level (205k against
# 178k images/s for one image per product, on one thread).
_GROUP_ROWS = 512
# Bytes of a cache line (x86-64, most ARM cores): see thread_buffers.
_CACHE_LINE = 64

_LOG2E = 1.4426950408889634


@dataclass(frozen=True)
class _ExpRoute:
    """How one float type computes ``exp(t) = 2**n * exp(r)`` without libm.

    ``n = round(t / ln 2)`` and ``r = t - n ln 2``, with ``ln 2`` given as
    the parts ``ln2``, subtracted in turn. float64 splits it as ``hi + lo``
    (Cody and Waite): ``hi`` has so few significant bits that ``n * hi`` is
    exact for every ``|n|`` the clipping allows, so ``r`` keeps full
    precision. float32 needs no split: one rounded ``ln 2`` moves ``r`` by
    at most ``127 * 2e-9``, far below the ``2e-7`` its sigmoid is held to,
    and the subtraction it saves is a sixth of the sigmoid's time (a 576 x
    64 block: 26 -> 22 us). ``exp(r)`` on ``|r| <= ln(2)/2`` is a
    polynomial interpolating ``exp`` at Chebyshev points (``coeffs``, highest
    degree first), and ``2**n`` is assembled from its exponent bits.
    """

    float_type: type
    int_type: type
    mantissa_bits: int
    bias: int
    # t is clipped to this range, where 2**n stays a normal number.
    low: float
    high: float
    ln2: tuple
    degree: int

    @property
    def coeffs(self):
        ln2 = 0.6931471805599453
        poly = Chebyshev.interpolate(np.exp, self.degree, domain=[-ln2 / 2, ln2 / 2])
        return tuple(float(c) for c in poly.convert(kind=Polynomial).coef[::-1])


# Degree 5 is within 1.02e-7 relative of exp, about float32's rounding (6e-8);
# degree 11 within float64's. float64's hi: 32 significant bits (n has at
# most 11).
_EXP_ROUTES = {
    types.float32: _ExpRoute(
        np.float32, np.int32, 23, 127, -87.0, 88.0, (0.6931471805599453,), 5),
    types.float64: _ExpRoute(
        np.float64, np.int64, 52, 1023, -708.0, 709.0,
        (6.93147180369123816490e-01, 1.90821492927058770002e-10), 11),
}


def sigmoid(z):
    """``1 / (1 + exp(-z))``; compiled through the overload below."""
    raise NotImplementedError("sigmoid is only callable from numba kernels")


# Not "fast": reassociation could fold the two-part ln 2 back into one.
@overload(sigmoid, jit_options={
    "fastmath": {"nsz", "arcp", "contract", "afn"}, "error_model": "numpy"})
def _sigmoid(z):
    """A vectorizable ``exp`` (see :class:`_ExpRoute`) instead of libm's.

    A libm ``exp`` call per element does not vectorize, and it costs more
    than the matrix product it follows (float64: 10 ns per element, 8x the
    polynomial). Relative error is a few units of the float type's rounding.
    """
    route = _EXP_ROUTES[z]
    f, i = route.float_type, route.int_type
    low, high, log2e = f(route.low), f(route.high), f(_LOG2E)
    ln2, coeffs = tuple(f(part) for part in route.ln2), route.coeffs
    bias, shift = i(route.bias), i(route.mantissa_bits)

    def fast(z):
        t = min(max(-z, low), high)
        n = np.floor(t * log2e + f(0.5))
        r = t
        for part in ln2:
            r = r - n * part
        # From the leading coefficient: 0 * r + c would not fold away (r may be
        # NaN), one multiply-add more per element.
        p = f(coeffs[0])
        for coeff in coeffs[1:]:
            p = p * r + f(coeff)
        scale = i((i(n) + bias) << shift).view(f)
        return f(1.0) / (f(1.0) + p * scale)

    return fast


def _extract_rows(image, m, n_cols, start, normalize, epsilon, out):
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
    real = out.dtype.type
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
            # A loop, not patch.sum(): the same sum, without compiling numba's
            # sum and its axis checks on a first run.
            total = real(0.0)
            for t in range(d):
                total += patch[t]
            mean = total / d
            var = 0.0
            for t in range(d):
                var += (patch[t] - mean) ** 2
            scale = 1.0 / np.sqrt(var / d + epsilon)
            for t in range(d):
                patch[t] = (patch[t] - mean) * scale


_extract = njit(cache=True, fastmath=True)(_extract_rows)
# For the convolution's per-image function, which has the same flags: inlined,
# it compiles once there instead of once alone and again where it is linked
# in, which took 0.8 s of a first transform.
_extract_inline = njit(inline="always")(_extract_rows)


@njit(cache=True, fastmath=True, error_model="numpy")
def _triangle(patches, responses, bias, k):
    """Triangle activations ``max(0, mean_j(z_j) - z_k)`` into ``responses[:, :k]``.

    The ``rows`` stage of the ``"triangle"`` activation (see :class:`Activation`).

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
    # The bias is in the activations now.
    return np.zeros(k, dtype=responses.dtype)

@njit
def _identity(z):
    return z


def relu(z):
    """``max(z, 0)``; compiled through the overload below."""
    raise NotImplementedError("relu is only callable from numba kernels")


@overload(relu)
def _relu(z):
    # A zero of z's own type: a float64 literal would make float32 maps float64.
    zero = as_dtype(z).type(0)
    return lambda z: max(z, zero)


@njit(inline="always")
def _bias_unused(patches, responses, bias, k):
    # Elementwise activations add the bias themselves.
    return bias


@njit
def _add(total, value):
    return total + value


@njit
def _max(largest, value):
    return max(largest, value)


def _sums_tolerance(eps, d):
    # The fold computes the same sums in another order.
    return np.sqrt(eps)


@dataclass(frozen=True)
class Activation:
    """An activation stage of the kernels.

    Attributes
    ----------
    elementwise : numba function
        ``f(z)`` applied to every response ``z`` (plus its bias).
    rows : numba function or None
        ``rows(patches, responses, bias, k)`` for activations that are not
        elementwise: it turns a block's ``responses`` (plus ``bias``) into
        ``responses[:, :k]`` on which ``elementwise`` runs, and returns the
        bias left to add (zeros once it added it).
    needs_input : bool
        The stage needs its input ``x'`` besides the ``k`` responses: the fold
        appends filters computing ``x'`` after the ``k`` filters (none when
        ``x'`` is the window itself, which ``rows`` then reads from the patch).
    filter_scale : float
        The responses are ``filter_scale * filters_ . x + intercept_``: how
        filters are shown (triangle: ``-2``, so that filters are centroids).
    responses : callable or None
        ``responses(matrix, offset)``: the affine map, from a step's fold,
        whose outputs an encoding of ``_folding.ENCODINGS`` thresholds in
        place of this activation; None: the activation's own input.
    tolerance : callable
        ``tolerance(eps, d)``: how far, relative to the largest feature, the
        fold of a ``d``-value window may round away from the encoder's own
        transform in a dtype of precision ``eps``.
    """

    elementwise: object
    rows: object = None
    needs_input: bool = False
    filter_scale: float = 1.0
    responses: object = None
    tolerance: object = _sums_tolerance


def _distance_tolerance(eps, d):
    # A window on a centroid: its squared distance cancels to zero from the
    # d-term sums ||x'||^2 - 2 x'.c + ||c||^2, and the square root keeps about
    # sqrt(d * eps) of the distances, which bound the features.
    return np.sqrt(d * eps)


def _centroid_directions(matrix, offset):
    """``x.c_k / ||c_k||`` from the triangle's fold ``-2 x.c_k + ||c_k||^2``.

    Coates & Ng's dictionary: the centroids as unit-length filters.
    """
    norms = np.linalg.norm(matrix, axis=0)
    # A centroid at the origin responds with zeros.
    return -matrix / np.where(norms > 0, norms, 1.0), None


@dataclass(frozen=True)
class Pooling:
    """A pooling stage: ``combine(total, value)`` from ``initial``, divided by
    the region's area when ``average``."""

    combine: object
    initial: float
    average: bool = False


#: The activations the kernels compose with every pooling. Adding one is one
#: entry here (with its numba function in this module, so that numba's cache
#: sees changes to it).
ACTIVATIONS = {
    "identity": Activation(_identity),
    "sigmoid": Activation(sigmoid),
    "triangle": Activation(
        _identity, rows=_triangle, needs_input=True, filter_scale=-2.0,
        responses=_centroid_directions, tolerance=_distance_tolerance,
    ),
    # The stage of the encodings of ``_folding.ENCODINGS``.
    "relu": Activation(relu),
}

#: The poolings the kernels compose with every activation.
POOLINGS = {
    "mean": Pooling(_add, 0.0, average=True),
    "max": Pooling(_max, -np.inf),
    "sum": Pooling(_add, 0.0),
}


class Stage:
    """The name of an activation or pooling as the kernels take it.

    Numba types it as a type of its own per name, so a kernel compiles, and
    caches, one specialization per stage it is actually called with, and each
    specialization has the stage's code inlined, with no branch on it.
    """

    __slots__ = ("name", "_numba_type_")

    def __init__(self, name):
        self.name = name
        # What numba's typeof reads first: a kernel's dispatch then takes
        # 0.7 us per stage argument, against 2.3 us through a typeof_impl.
        self._numba_type_ = _stage_type(name)

    def __repr__(self):
        return f"Stage({self.name!r})"


class _StageType(types.Type):
    def __init__(self, name):
        self.stage = name
        super().__init__(name=f"Stage({name})")


@lru_cache(maxsize=None)
def _stage_type(name):
    # Building a numba type interns it, which takes tens of microseconds: as
    # much as the kernel itself on one small image.
    return _StageType(name)


register_model(_StageType)(models.OpaqueModel)


@unbox(_StageType)
def _unbox_stage(typ, obj, c):
    # Nothing to carry at run time: the name is in the type.
    return NativeValue(c.context.get_dummy_value())


@lower_constant(_StageType)
def _constant_stage(context, builder, ty, pyval):
    return context.get_dummy_value()


_IDENTITY = Stage("identity")
_FAST = {"fastmath": True, "error_model": "numpy"}


def _activate_pool(activation, pooling, patches, responses, bias, n_cols, start, pool, stride,
                   pooled):
    """Activate the rows of positions ``start, ...`` and pool them into ``pooled``.

    ``pool`` and ``stride`` are ``(rows, columns)`` pairs, ``stride`` None for
    regions that tile the map. Only the first
    ``k = pooled.shape[-1]`` columns of ``responses`` are pooled.
    """
    raise NotImplementedError("only callable from numba kernels")


@njit(inline="always")
def _regions(i, size, stride, n):
    """First and last of the ``n`` regions ``[a * stride, a * stride + size)`` holding ``i``."""
    # -(-x // s) is ceil(x / s), also for negative x.
    return max(0, -(-(i - size + 1) // stride)), min(n - 1, i // stride)


@overload(_activate_pool, jit_options=_FAST)
def _compose(activation, pooling, patches, responses, bias, n_cols, start, pool, stride,
             pooled):
    act, pool_ = ACTIVATIONS[activation.stage], POOLINGS[pooling.stage]
    f, combine, rows = act.elementwise, pool_.combine, act.rows or _bias_unused

    # stride None: regions that tile the map, every position in one region.
    # Activating and pooling in one pass, without the bounds of overlapping
    # regions, is measurably faster per row; and a kernel that never pools
    # overlapping regions does not compile that code.
    if isinstance(stride, types.NoneType):
        def compose(activation, pooling, patches, responses, bias, n_cols, start, pool, stride,
                    pooled):
            k = pooled.shape[-1]
            b = rows(patches, responses, bias, k)
            for r in range(responses.shape[0]):
                i, j = divmod(start + r, n_cols)
                z = responses[r]
                cell = pooled[i // pool[0], j // pool[1]]
                for t in range(k):
                    cell[t] = combine(cell[t], f(z[t] + b[t]))
        return compose

    def compose(activation, pooling, patches, responses, bias, n_cols, start, pool, stride,
                pooled):
        k = pooled.shape[-1]
        b = rows(patches, responses, bias, k)
        for r in range(responses.shape[0]):
            i, j = divmod(start + r, n_cols)
            z = responses[r]
            a0, a1 = _regions(i, pool[0], stride[0], pooled.shape[0])
            c0, c1 = _regions(j, pool[1], stride[1], pooled.shape[1])
            for t in range(k):
                z[t] = f(z[t] + b[t])
            for a in range(a0, a1 + 1):
                for c in range(c0, c1 + 1):
                    cell = pooled[a, c]
                    for t in range(k):
                        cell[t] = combine(cell[t], z[t])

    return compose


def _start_pool(pooling, pooled):
    raise NotImplementedError("only callable from numba kernels")


@overload(_start_pool)
def _start_pool_impl(pooling, pooled):
    initial = POOLINGS[pooling.stage].initial

    def start(pooling, pooled):
        pooled[:] = initial

    return start


def _finish_pool(pooling, pooled, pool_h, pool_w):
    raise NotImplementedError("only callable from numba kernels")


@overload(_finish_pool)
def _finish_pool_impl(pooling, pooled, pool_h, pool_w):
    if POOLINGS[pooling.stage].average:
        def finish(pooling, pooled, pool_h, pool_w):
            pooled *= 1.0 / (pool_h * pool_w)
    else:
        def finish(pooling, pooled, pool_h, pool_w):
            pass
    return finish


# Compiled: the fine-tuning kernels (``_backprop``) call it too.
@njit(cache=True)
def map_extent(n_pooled, size, stride):
    """Positions of a map side that ``n_pooled`` regions of ``size`` every ``stride`` span."""
    return (n_pooled - 1) * stride + size


@dataclass(frozen=True)
class _Plan:
    """How maps of ``(ph, pw)`` regions of ``pool`` every ``stride`` are pooled.

    Overlapping regions made of whole ``stride`` tiles are pooled from the
    pooled tiles, which adds every position once instead of once per region
    holding it (4 times for 6 x 6 regions every 3); other regions are pooled
    directly (one tile per region). ``tile_stride`` is None where tiles do not
    overlap, and ``per_region`` (tiles per region) None where there is one
    tile per region: numba types None apart, so that each call compiles only
    the code its pooling runs.
    """

    n_cols: int
    positions: int
    tile: tuple
    tile_stride: object
    per_region: object
    grid: tuple

    @classmethod
    @lru_cache(maxsize=256)  # microseconds of a 1-image call otherwise
    def of(cls, pool, stride, n_ph, n_pw):
        n_cols = map_extent(n_pw, pool[1], stride[1])
        positions = map_extent(n_ph, pool[0], stride[0]) * n_cols
        if pool == stride:
            return cls(n_cols, positions, pool, None, None, (n_ph, n_pw))
        if pool[0] % stride[0] == 0 and pool[1] % stride[1] == 0:
            per_region = (pool[0] // stride[0], pool[1] // stride[1])
            grid = (n_ph - 1 + per_region[0], n_pw - 1 + per_region[1])
            return cls(n_cols, positions, stride, None, per_region, grid)
        return cls(n_cols, positions, pool, stride, None, (n_ph, n_pw))

    def tiles(self, n, k, dtype):
        """Buffers for ``n`` images' tiles, or None where regions are pooled directly."""
        if self.per_region is None:
            return None
        return np.empty((n,) + self.grid + (k,), dtype=dtype)


@njit(inline="always")
def _finish_image(pooling, cells, tile, per_region, out):
    """Finish pooling ``cells``; pool them (tiles) into ``out`` where ``per_region`` is set."""
    _finish_pool(pooling, cells, tile[0], tile[1])
    if per_region is not None:
        _start_pool(pooling, out)
        rows = cells.reshape(cells.shape[0] * cells.shape[1], cells.shape[2])
        no_bias = np.zeros(cells.shape[2], dtype=cells.dtype)
        _activate_pool(_IDENTITY, pooling, rows, rows, no_bias, cells.shape[1], 0, per_region,
                       (1, 1), out)
        _finish_pool(pooling, out, per_region[0], per_region[1])


def convolve_pool(images, filters_t, bias, m, normalize, epsilon, activation, pooling, pool,
                  stride, out):
    """Convolve, activate and pool ``images`` (B, h, w, c) into ``out`` (B, ph, pw, k).

    ``filters_t`` (m*m*c, r) holds one filter per column, raveled as the patch
    rows of :func:`extract_patches`: the ``k`` filters, then (for activations
    that need their input) those computing it. ``activation`` and ``pooling``
    are :class:`Stage` s; ``pool`` and ``stride`` are ``(rows, columns)`` of
    the regions, which span the top-left ``map_extent(ph, ...) x
    map_extent(pw, ...)`` of the maps. Runs on numba's thread count of the
    calling thread, at most one per image, or per band of pooled rows when
    images are split (:func:`_bands`). Several threads run their matrix
    products on one BLAS thread each; one image (or band) alone runs them on
    the BLAS threads the caller allows (on two cores, MNIST's 576 x 25 x 64
    product of one image then takes 18 instead of 28 us).
    """
    n_images, n_ph, n_pw, k = out.shape
    d, n_responses = filters_t.shape
    plan = _Plan.of(tuple(pool), tuple(stride), n_ph, n_pw)
    block = max(_MIN_BLOCK_ROWS, _BLOCK_BYTES // ((d + n_responses) * filters_t.itemsize))
    if n_images == 0:
        return
    # Read once: each read costs microseconds, much of a 1-image call.
    available = get_num_threads()
    n_bands = _bands(n_images, plan, n_ph, 2 * plan.positions * d * n_responses, available)
    band_rows = -(-n_ph // n_bands)
    n_bands = -(-n_ph // band_rows)
    group = 1 if n_bands > 1 else _images_per_task(n_images, plan.positions, block, available)
    n_tasks = -(-n_images // group) * n_bands
    n_threads = _image_threads(n_tasks, available)
    block = min(block, plan.positions * group)
    patches, responses = thread_buffers(n_threads, block, (d, n_responses), filters_t.dtype)
    tiles = plan.tiles(n_threads, k, out.dtype)
    shared = (filters_t, bias, m, normalize, epsilon, activation, pooling, plan.n_cols,
              plan.positions, plan.tile, plan.tile_stride, plan.per_region)
    # The first task's arguments: its images one above the other.
    first, dest = (images[0], out[0]) if group == 1 else (
        images[:group].reshape((-1,) + images.shape[2:]), out[:group].reshape((-1,) + out.shape[2:]))
    with blas_limit(1) if n_threads > 1 else nullcontext():
        _over_images(
            n_tasks, _convolve_pool, _convolve_pool_image,
            (first, *shared, group, patches[0], responses[0],
             dest if tiles is None else tiles[0], dest),
            (images, *shared, group, patches, responses, tiles, n_bands, band_rows, out),
        )


def thread_buffers(n_threads, rows, widths, dtype):
    """One ``(n_threads, rows', width)`` buffer per width: each thread's
    ``[t]`` starts on a cache line of its own, with ``rows' >= rows``.

    Threads writing next to each other in one cache line wait for each other
    at every write (false sharing): with digits' 36 x 9 patches in one
    ``np.empty``, two threads transformed 190k-330k images/s, against 350k
    for two processes of one thread; the rows are rounded up so that each
    thread's part is a whole number of lines, on an aligned base. One thread
    shares with nobody: it gets ``np.empty`` (the alignment costs 6 us, 5% of
    a 1-image transform).
    """
    if n_threads == 1:
        return [np.empty((1, rows, width), dtype=dtype) for width in widths]
    itemsize = np.dtype(dtype).itemsize
    step = 1
    for width in widths:
        step = math.lcm(step, _CACHE_LINE // math.gcd(width * itemsize, _CACHE_LINE))
    rows = -(-rows // step) * step
    buffers = []
    for width in widths:
        nbytes = n_threads * rows * width * itemsize
        raw = np.empty(nbytes + _CACHE_LINE, dtype=np.uint8)
        start = -raw.__array_interface__["data"][0] % _CACHE_LINE
        buffers.append(raw[start : start + nbytes].view(dtype).reshape(n_threads, rows, width))
    return buffers


def _bands(n_images, plan, n_ph, flops, n_threads):
    """Bands of pooled rows each image is split into, for threads that would have no image.

    Regions that tile the map and do not overlap pool disjoint window rows, so
    that a band of pooled rows is computed like an image of its own; one
    image of CIFAR's shape then runs on two cores instead of one. Images
    worth less than ``_BAND_FLOPS`` are not split: the launch would cost more.
    """
    if (n_images >= n_threads or flops < _BAND_FLOPS or plan.tile_stride is not None
            or plan.per_region is not None):
        return 1
    return min(-(-n_threads // n_images), n_ph)


def _images_per_task(n_images, positions, block, n_threads):
    """Images a task of the convolution takes, one above the other.

    An image of fewer than ``_GROUP_ROWS`` window positions goes with others
    to one matrix product (within a block, and no fewer tasks than threads):
    a product per image of digits' 36 positions made as many BLAS calls, each
    costing as much as its arithmetic, and the calls of two threads slow each
    other down (OpenBLAS's buffers).
    """
    if positions >= _GROUP_ROWS:
        return 1
    return max(1, min(_GROUP_ROWS // positions, block // positions, -(-n_images // n_threads)))


def _image_threads(n_images, available=None):
    """Threads of a parallel loop over ``n_images`` (or bands): numba's count
    (or ``available``, read from it), at most one each.

    A parallel loop over fewer images than threads would wake threads that
    have no image: every launch waits for all of them, which costs
    milliseconds on a loaded machine (16 ms against 0.14 ms for one image).
    """
    return min(get_num_threads() if available is None else available, n_images)


def _over_images(n_images, kernel, function, first, batch, max_threads=None):
    """Run ``function`` on each of ``n_images`` images (or bands of images).

    One runs in the calling thread, ``function(*first)``, with nothing to
    launch. More run in the parallel ``kernel``, which takes ``function`` by
    address (see :class:`_ByAddress`) and ``batch`` and calls ``function`` on
    each, on ``_image_threads(n_images)`` of numba's threads (at most
    ``max_threads``) for the duration; ``first`` is the first image's
    arguments, whose types ``function`` is compiled for.
    """
    if n_images == 1:
        function(*first)
        return
    previous = get_num_threads()
    n_threads = _image_threads(n_images, min(previous, max_threads or previous))
    # Setting the count costs microseconds even when it does not change it
    # (as in _threads.threads).
    if n_threads != previous:
        set_num_threads(n_threads)
    try:
        kernel(_by_address(function, *first), *batch)
    finally:
        if n_threads != previous:
            set_num_threads(previous)


class _ByAddress:
    """A per-image function compiled for ``argtypes``, which a parallel kernel calls by address.

    Numba links the code of every function a function calls into its library
    and optimizes and compiles it again there. A per-image function called by
    name from a parallel loop is compiled three times (alone, in the loop's
    gufunc and in the kernel around it), which made a first transform take
    seconds longer. Called through its address, it is compiled once (and
    cached on disk like the kernel), and the kernel's loop holds only a call.
    """

    def __init__(self, function, argtypes):
        result = function.get_compile_result(types.none(*argtypes))
        # Numba's typeof reads _numba_type_ (building the type at every call
        # would cost as much as the kernel on a small image), and its
        # unboxing calls __wrapper_address__ (numba's "wrapper address
        # protocol"; WrapperAddressProtocol itself is typed anew at each call).
        self._numba_type_ = FunctionType(result.signature)
        self._address = result.library.get_pointer_to_function(
            result.fndesc.llvm_cfunc_wrapper_name
        )

    def __wrapper_address__(self):
        return self._address


_BY_ADDRESS = {}


def _by_address(function, *args):
    """``function`` compiled for the types of ``args`` (one image's), for a parallel kernel."""
    # Numba's own type fingerprints key the lookup: typeof takes ~15 us per
    # array, as long as the kernel runs on a small image.
    key = (function,) + tuple(
        arg._numba_type_ if isinstance(arg, Stage) else compute_fingerprint(arg)
        for arg in args
    )
    compiled = _BY_ADDRESS.get(key)
    if compiled is None:
        compiled = _BY_ADDRESS[key] = _ByAddress(function, tuple(typeof(arg) for arg in args))
    return compiled


# The parallel kernels hold nothing but their loop over images, calling a
# per-image function by address (see _ByAddress): numba's parallel passes,
# which take seconds for each loop body they compile, see one call.
@njit(cache=True, parallel=True)
def _convolve_pool(per_task, images, filters_t, bias, m, normalize, epsilon, activation,
                   pooling, n_cols, positions, tile, tile_stride, per_region, group, patches,
                   responses, tiles, n_bands, band_rows, out):
    n_images, n_ph, n_pw, k = out.shape
    _, h, w, c = images.shape
    for task in prange(-(-n_images // group) * n_bands):
        # (prange's index is unsigned: numba would mix it with n_bands in floats)
        g, band = divmod(np.int64(task), n_bands)
        thread = get_thread_id()
        b0 = g * group
        b1 = min(b0 + group, n_images)
        # Pooled rows r0:r1, from window rows first:last (with bands, the
        # regions tile the map: each pooled row holds tile[0] window rows).
        r0 = band * band_rows
        r1 = min(r0 + band_rows, n_ph)
        first = r0 * tile[0]
        last = positions // n_cols if r1 == n_ph else r1 * tile[0]
        if group == 1:  # an image, or a band of one
            image = images[b0, first : last + m - 1]
            dest = out[b0, r0:r1]
        else:  # whole images, one above the other
            image = images[b0:b1].reshape(((b1 - b0) * h, w, c))
            dest = out[b0:b1].reshape(((b1 - b0) * n_ph, n_pw, k))
        per_task(
            image, filters_t, bias, m, normalize, epsilon, activation, pooling, n_cols,
            (last - first) * n_cols, tile, tile_stride, per_region, b1 - b0, patches[thread],
            responses[thread], dest if tiles is None else tiles[thread], dest,
        )


# fastmath for the inlined extraction; the rest of it is integer arithmetic
# and calls.
@njit(cache=True, fastmath=True)
def _convolve_pool_image(images, filters_t, bias, m, normalize, epsilon, activation, pooling,
                         n_cols, positions, tile, tile_stride, per_region, n_stacked, patches,
                         responses, cells, out):
    """``n_stacked`` images, one above the other in ``images`` (their outputs
    likewise in ``out``), or a band of one image."""
    block = patches.shape[0]
    h = images.shape[0] // n_stacked
    n_ph = out.shape[0] // n_stacked
    # Whole images per matrix product: several when their windows fit in a
    # block (see _images_per_task), else one, a block of its windows at a time.
    per_product = max(1, block // positions)
    for i0 in range(0, n_stacked, per_product):
        i1 = min(i0 + per_product, n_stacked)
        for start in range(0, positions, block):
            rows = min(block, positions - start)
            for i in range(i0, i1):
                at = (i - i0) * rows
                _extract_inline(images[i * h : (i + 1) * h], m, n_cols, start, normalize,
                                epsilon, patches[at : at + rows])
            n_rows = (i1 - i0) * rows
            np.dot(patches[:n_rows], filters_t, responses[:n_rows])
            for i in range(i0, i1):
                at = (i - i0) * rows
                dest = out[i * n_ph : (i + 1) * n_ph]
                pooled = dest if per_region is None else cells
                if start == 0:
                    _start_pool(pooling, pooled)
                _activate_pool(activation, pooling, patches[at : at + rows],
                               responses[at : at + rows], bias, n_cols, start, tile, tile_stride,
                               pooled)
                if start + rows == positions:
                    _finish_image(pooling, pooled, tile, per_region, dest)


def extract_patches(images, m, n_rows, n_cols, out):
    """Patch matrix of ``images`` (B, h, w, c) into ``out`` (B*n_rows*n_cols, m*m*c).

    Row ``(b * n_rows + i) * n_cols + j`` is the window with top-left corner
    (i, j) of image b, raveled as in :func:`_extract`.
    """
    if len(images) == 0:
        return
    _over_images(len(images), _extract_patches, _extract,
                 (images[0], m, n_cols, 0, False, 0.0, out), (images, m, n_rows, n_cols, out))


@njit(cache=True, parallel=True)
def _extract_patches(per_image, images, m, n_rows, n_cols, out):
    positions = n_rows * n_cols
    for b in prange(images.shape[0]):
        per_image(images[b], m, n_cols, 0, False, 0.0, out[b * positions : (b + 1) * positions])


def pool(responses, pooling, size, stride, out):
    """Pool ``responses`` (B*n_rows*n_cols, k), rows as :func:`extract_patches` wrote them.

    ``out`` (B, ph, pw, k) receives the maps pooled by the :class:`Stage`
    ``pooling`` over regions of ``size`` every ``stride`` (``(rows,
    columns)`` pairs), with ``n_rows = map_extent(ph, size[0], stride[0])``
    and ``n_cols`` likewise.
    """
    n_images, n_ph, n_pw, k = out.shape
    if n_images == 0:
        return
    plan = _Plan.of(tuple(size), tuple(stride), n_ph, n_pw)
    tiles = plan.tiles(n_images, k, out.dtype)
    regions = (plan.tile, plan.tile_stride, plan.per_region)
    _over_images(
        n_images, _pool, _pool_image,
        (responses[: plan.positions], pooling, plan.n_cols, *regions,
         out[0] if tiles is None else tiles[0], out[0]),
        (responses, pooling, plan.n_cols, plan.positions, *regions, tiles, out),
    )


@njit(cache=True, parallel=True)
def _pool(per_image, responses, pooling, n_cols, positions, tile, tile_stride, per_region, tiles,
          out):
    for b in prange(out.shape[0]):
        per_image(responses[b * positions : (b + 1) * positions], pooling, n_cols, tile,
                  tile_stride, per_region, out[b] if tiles is None else tiles[b], out[b])


@njit(cache=True)
def _pool_image(responses, pooling, n_cols, tile, tile_stride, per_region, cells, out):
    _start_pool(pooling, cells)
    no_bias = np.zeros(cells.shape[2], dtype=cells.dtype)
    _activate_pool(_IDENTITY, pooling, responses, responses, no_bias, n_cols, 0, tile,
                   tile_stride, cells)
    _finish_image(pooling, cells, tile, per_region, out)
