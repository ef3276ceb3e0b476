"""Lazy, block-wise transforms of dask arrays.

The estimators never see dask: :func:`lazy_on_dask` wraps a per-row method
(``transform``, ``convolve``) so that a dask array gets back a dask array
whose every block is that method applied to a block of rows (images), on
numpy. dask itself is imported only when a dask array comes in.
"""

import functools
import math

import numpy as np

from ._images import check_known_shape


def _is_dask_collection(X):
    return hasattr(X, "__dask_graph__")


def lazy_on_dask(method):
    """Make ``method(self, X)`` lazy on a dask array ``X``: one task per
    block of rows; numpy input goes straight to ``method``."""

    @functools.wraps(method)
    def wrapper(self, X, *args, **kwargs):
        if _is_dask_collection(X) and not args and not kwargs:
            return map_rows(self, method.__name__, X)
        return method(self, X, *args, **kwargs)

    return wrapper


def _apply(estimator, method, block):
    return getattr(estimator, method)(block)


def map_rows(estimator, method, X):
    """``getattr(estimator, method)`` on every block of rows of dask array
    ``X``, as a dask array with the output's shape, chunks and dtype.

    Blocks keep ``X``'s chunks along the first axis and are whole along the
    others: ``X`` chunked along the others is rechunked, its rows split too
    where whole rows would make blocks larger than dask's
    ``array.chunk-size``. The output's row shape and dtype are the method's
    answer for one row of zeros, computed here; nothing of ``X`` is. The
    estimator is one node of the graph that every task depends on, so a
    cluster ships it to each worker once.
    """
    import dask
    import dask.array as da

    if not isinstance(X, da.Array):
        raise TypeError(
            f"X must be a dask array (or numpy array); got {type(X).__name__}. "
            "Convert a dask DataFrame with X.to_dask_array(lengths=True)."
        )
    check_known_shape(X)
    if X.ndim == 0 or X.shape[0] == 0:
        # The method's own error for empty input.
        return getattr(estimator, method)(np.zeros(X.shape, X.dtype))
    row = getattr(estimator, method)(np.zeros((1,) + X.shape[1:], X.dtype))
    if any(n > 1 for n in X.numblocks[1:]):
        # Merging the pixel chunks of long row chunks would make blocks of
        # many times dask's array.chunk-size: those rows are split.
        chunks = {axis: -1 for axis in range(1, X.ndim)}
        row_bytes = X.dtype.itemsize * math.prod(X.shape[1:])
        rows = max(1, dask.utils.parse_bytes(dask.config.get("array.chunk-size")) // row_bytes)
        if max(X.chunks[0]) > rows:
            chunks[0] = rows
        X = X.rechunk(chunks)
    # Every axis of X is named after an axis of the output (pixel axes past
    # the output's last share its name: they are one chunk each), so that no
    # axis is contracted and dask fuses each task with the one that reads
    # its block and the one that stores its output (to_zarr): a block's
    # input and output live only while its task runs.
    out_axes = tuple(range(row.ndim))
    in_axes = (0,) + tuple(min(axis, row.ndim - 1) for axis in range(1, X.ndim))
    sizes = {axis: row.shape[axis] for axis in out_axes[1:]}
    shipped = dask.delayed(estimator, pure=True)
    return da.blockwise(
        _apply, out_axes,
        shipped, None, method, None, X, in_axes,
        new_axes={axis: size for axis, size in sizes.items() if axis not in in_axes},
        adjust_chunks={axis: size for axis, size in sizes.items() if axis in in_axes},
        align_arrays=False, dtype=row.dtype,
        meta=np.empty((0,) * row.ndim, row.dtype),
        name=f"{type(estimator).__name__.lower()}-{method}-"
        + dask.base.tokenize(shipped.key, method, X.name),
    )
