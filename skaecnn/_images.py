"""Image input checks and random patch sampling.

Images are handled channels last, as (n, h, w, c) views of what the user
passed; they are converted to floating point chunk by chunk, so a large uint8
data set is never copied whole. Collections that are not in memory (numpy
memory maps, chunked arrays such as dask, zarr or h5py) are sampled by reading
only the images the sampled patches come from.
"""

import math

import numpy as np
import scipy.sparse as sp
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.utils import assert_all_finite

# Bytes of stored images read at a time when sampling patches from them.
_READ_BYTES = 32 * 2**20


def working_dtype(dtype):
    """float32 stays float32 (and float16 computes in float32); the rest is float64."""
    return np.dtype(np.float32) if dtype in (np.float16, np.float32) else np.dtype(np.float64)


def _check_shape_param(image_shape, n_features=None):
    """``image_shape`` as (h, w, c); one entry may be -1, inferred from ``n_features``."""
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list)) else None
    if (
        shape is None
        or len(shape) not in (2, 3)
        or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape)
        or not all(s > 0 or s == -1 for s in shape)
        or shape.count(-1) > 1
    ):
        raise ValueError(
            "image_shape must be None, (height, width) or (height, width, channels) "
            f"with positive ints (one may be -1, inferred); got {image_shape!r}."
        )
    if -1 in shape and n_features is not None:
        known = -math.prod(shape)
        if n_features % known:
            raise ValueError(
                f"image_shape={image_shape!r} cannot hold rows of {n_features} features."
            )
        shape = tuple(n_features // known if s == -1 else s for s in shape)
    return shape if len(shape) == 3 else shape + (1,)


# Rows looked at to tell RGBA rows from grey ones: enough to see the alpha
# channel vary in any real grey data, few enough to cost nothing.
_RGBA_CHECK_ROWS = 64


def _looks_like_rgba(X):
    """Whether rows of ``4 h^2`` values look like ``h x h`` RGBA images.

    ``(2h)^2 = 4 h^2``: an ``h x h`` RGBA image has as many values as a
    ``2h x 2h`` grey one (an RGB square, ``3 h^2``, is never a square number).
    RGBA rows have a constant alpha channel, every fourth value from the
    fourth; in grey images those values are pixels of every row and column
    pair, which vary wherever the rest does.
    """
    rows = X[:_RGBA_CHECK_ROWS]
    alpha = rows[:, 3::4]
    return bool(np.all(alpha == alpha.flat[0]) and not np.all(rows == rows.flat[0]))


def check_images(X, image_shape=None, finite=True):
    """Validate ``X`` and return it as an (n, h, w, c) array (a view when possible).

    Parameters
    ----------
    X : array-like
        Images (n, h, w) or (n, h, w, c), or rows (n, h*w*c) with ``image_shape``.
    image_shape : tuple or None
        (h, w) or (h, w, c) for 2-D ``X``, one entry possibly -1 (inferred from
        the width, as in :func:`numpy.reshape`); None infers a square
        single-channel shape. For 3-D and 4-D ``X`` it must agree with ``X``
        when given.
    finite : bool
        Refuse NaN and infinity here; False leaves that to the caller (see
        :func:`finite_range`).

    Returns
    -------
    images : ndarray of shape (n, h, w, c)
        Same dtype as ``X``; converted to floating point later, per chunk.
    """
    if sp.issparse(X):
        raise TypeError(
            "Sparse data was passed for X, but dense data is required: X must be an "
            "array of images."
        )
    if not hasattr(X, "__array__") and not isinstance(X, (list, tuple)):
        raise TypeError(f"X must be an array of images; got {type(X).__name__}.")
    X = np.asarray(X)
    if X.dtype.kind == "O":
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"X must hold real numbers; got objects that are not: {exc}") from None
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported: X must hold real numbers.")
    if X.dtype.kind not in "biuf":
        raise ValueError(
            f"X must hold real numbers (images of any int or float dtype); got dtype {X.dtype}."
        )
    if X.ndim not in (2, 3, 4):
        raise ValueError(
            "X must be images of shape (n, height, width) or (n, height, width, channels), "
            f"or rows (n, height*width*channels) with image_shape; got {X.ndim}-D input "
            f"of shape {X.shape}. Reshape your data."
        )
    if X.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    if 0 in X.shape[1:]:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    if X.ndim == 2:
        width = X.shape[1]
        if image_shape is None:
            side = math.isqrt(width)
            if side * side != width:
                raise ValueError(
                    f"Cannot infer image_shape from {width} features (not a square "
                    "single-channel image); pass image_shape=(height, width) or "
                    "(height, width, channels)."
                )
            if side % 2 == 0 and _looks_like_rgba(X):
                raise ValueError(
                    f"Cannot infer image_shape from {width} features: every fourth value "
                    "is the same in every row, as in the alpha channel of RGBA images, "
                    f"so these may be {side // 2} x {side // 2} RGBA images rather than "
                    f"{side} x {side} grey ones; pass image_shape=({side // 2}, "
                    f"{side // 2}, 4) or ({side}, {side})."
                )
            shape = (side, side, 1)
        else:
            shape = _check_shape_param(image_shape, width)
        if math.prod(shape) != width:
            raise ValueError(
                f"image_shape={image_shape!r} holds {math.prod(shape)} values, but X "
                f"has {width} features per row."
            )
        images = X.reshape((X.shape[0],) + shape)
    else:
        images = X if X.ndim == 4 else X[..., np.newaxis]
        if image_shape is not None:
            shape = _check_shape_param(image_shape, math.prod(images.shape[1:]))
            if images.shape[1:] != shape:
                raise ValueError(
                    f"image_shape={image_shape!r} does not match images of shape "
                    f"{X.shape[1:]}."
                )
    if finite and images.dtype.kind == "f":
        assert_all_finite(images, input_name="X")
    return images


def finite_range(images):
    """``(min, max)`` of ``images``, refusing NaN and infinity as :func:`check_images` does.

    Two reductions instead of a finiteness check and then the range: NaN and
    infinity show in the minimum or the maximum.
    """
    low, high = images.min(), images.max()
    if not (np.isfinite(low) and np.isfinite(high)):
        assert_all_finite(images, input_name="X")  # raises, with scikit-learn's message
    return float(low), float(high)


def check_known_shape(X):
    """Refuse arrays of unknown size (a dask array after boolean indexing)."""
    if not all(isinstance(s, (int, np.integer)) for s in X.shape):
        raise ValueError(
            f"X has unknown size along some axis (shape {X.shape}), as a dask array "
            "after boolean indexing has; compute its chunk sizes first, e.g. "
            "X.compute_chunk_sizes() or X.rechunk() with known chunks."
        )


class StoredImages:
    """(n, h, w, c) images of an array that is not in memory, read when sampled.

    ``shape`` and ``dtype`` come from the array's metadata, checked as
    :func:`check_images` checks an array; pixels (and their finiteness) are
    checked where they are read.
    """

    def __init__(self, X, image_shape):
        check_known_shape(X)
        n = X.shape[0]
        proxy = check_images(np.zeros((min(n, 1),) + tuple(X.shape[1:]), X.dtype), image_shape)
        self._X = X
        self._image_shape = image_shape
        self.shape = (n,) + proxy.shape[1:]
        self.dtype = proxy.dtype

    def windows(self, idx, rows, cols, m, dtype):
        """Like :func:`_windows` on the whole collection, reading each needed
        image once, in increasing order, about ``_READ_BYTES`` at a time."""
        needed, where = np.unique(idx, return_inverse=True)
        per_read = max(1, _READ_BYTES // (math.prod(self.shape[1:]) * self.dtype.itemsize))
        patches = np.empty((len(idx), m * m * self.shape[3]), dtype=dtype)
        for begin in range(0, len(needed), per_read):
            part = needed[begin : begin + per_read]
            images = check_images(np.asarray(self._X[part]), self._image_shape)
            mine = (where >= begin) & (where < begin + len(part))
            patches[mine] = _windows(images, where[mine] - begin, rows[mine], cols[mine], m, dtype)
        return patches


def open_images(X, image_shape=None):
    """:func:`check_images`, except that memory maps and chunked arrays (dask,
    zarr, h5py: anything with ``chunks``) become :class:`StoredImages`, which
    :func:`sample_patches` reads only where it samples."""
    stored = isinstance(X, np.memmap) or (
        not isinstance(X, np.ndarray)
        and all(hasattr(X, a) for a in ("chunks", "shape", "dtype", "__getitem__"))
    )
    return StoredImages(X, image_shape) if stored else check_images(X, image_shape)


def _windows(images, idx, rows, cols, m, dtype):
    """Rows ``images[idx, rows:rows+m, cols:cols+m]`` flattened in (row, column,
    channel) order."""
    windows = sliding_window_view(images, (m, m), axis=(1, 2))  # (n, oh, ow, c, m, m)
    patches = windows[idx, rows, cols].transpose(0, 2, 3, 1)
    return np.ascontiguousarray(patches.reshape(len(idx), -1), dtype=dtype)


def sample_patches(images, patch_size, n_patches, random_state, dtype):
    """``n_patches`` random m x m windows of ``images`` as rows (row, column, channel order).

    Draws image index, then top-left row and column, uniformly. ``images`` is an
    (n, h, w, c) array or :class:`StoredImages` (same draws, same patches).
    """
    n, h, w, c = images.shape
    m = patch_size
    idx = random_state.randint(n, size=n_patches)
    rows = random_state.randint(h - m + 1, size=n_patches)
    cols = random_state.randint(w - m + 1, size=n_patches)
    if isinstance(images, StoredImages):
        return images.windows(idx, rows, cols, m, dtype)
    return _windows(images, idx, rows, cols, m, dtype)
