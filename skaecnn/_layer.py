"""One convolution layer: windows, encoding, activation, pooling.

:class:`ConvPoolLayer` is what a fitted :class:`ConvPoolTransformer` computes
(its ``layer_``): every ``m x m`` window of an image is encoded, and each map
is pooled over regions of ``pool_size`` every ``pool_stride`` (non-overlapping
when they are equal). The encoding is either folded
(:class:`~skaecnn._folding.FoldedEncoder`: filters, bias, the window
normalization and an activation stage, which the fused kernel computes) or the
fitted encoder itself, applied to the windows' patch matrix (the generic
path). Either way the pooling stage is the same kernel code.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
from sklearn.pipeline import make_pipeline

from . import _kernels
from ._folding import EncodedResponses, FoldedEncoder, encoder_steps, fold_encoder

# Rows of the fitted patches a fold is verified on.
_N_VERIFY = 48


@dataclass(frozen=True)
class ConvPoolLayer:
    """A convolution, activation and pooling layer.

    Attributes
    ----------
    patch_size : int
        Side ``m`` of the windows.
    channels : int
        Channels ``c`` of the images.
    encoder : FoldedEncoder or estimator
        The folded encoding (:attr:`folded` is True), or the fitted encoder
        applied to patch rows ``(m, m, c)`` raveled in C order.
    n_outputs : int
        ``k``, the features per window.
    pooling : str
        A key of :data:`skaecnn._kernels.POOLINGS`.
    pool_size : (int, int)
        Height and width of the pooling regions.
    pool_stride : (int, int) or None
        Rows and columns between the starts of neighbouring regions; None:
        ``pool_size``, regions that tile the map.
    """

    patch_size: int
    channels: int
    encoder: object
    n_outputs: int
    pooling: str = "mean"
    pool_size: tuple = (1, 1)
    pool_stride: tuple | None = None

    @property
    def stride(self):
        """``(rows, columns)`` between the starts of neighbouring pooling regions."""
        return self.pool_size if self.pool_stride is None else self.pool_stride

    @property
    def folded(self):
        """Whether the fused kernel computes the encoding."""
        return isinstance(self.encoder, FoldedEncoder)

    @property
    def filters(self):
        """Folded filters ``(k, m, m, c)`` in image space, or None."""
        if not self.folded:
            return None
        return self.encoder.filters.reshape(-1, self.patch_size, self.patch_size, self.channels)

    @property
    def intercept(self):
        """Folded bias ``(k,)``, or None."""
        return self.encoder.intercept if self.folded else None

    def with_pooling(self, pooling=None, pool_size=None):
        """The same layer with another pooling stage (``pool_size=(1, 1)``: none).

        A new ``pool_size`` comes with regions that tile the map.
        """
        if pool_size is None:
            return dataclasses.replace(self, pooling=pooling or self.pooling)
        return dataclasses.replace(
            self, pooling=pooling or self.pooling, pool_size=tuple(pool_size), pool_stride=None
        )

    def output_shape(self, height, width):
        """``(ph, pw, k)``: the pooled maps of an image of ``height x width``."""
        m = self.patch_size
        return tuple(
            (side - m + 1 - size) // stride + 1
            for side, size, stride in zip((height, width), self.pool_size, self.stride)
        ) + (self.n_outputs,)

    def forward(self, images, out):
        """Pooled maps of ``images`` (B, h, w, c) into ``out`` (B, ph, pw, k).

        ``images`` is C-contiguous in ``out``'s dtype. Runs on numba's thread
        count of the calling thread, with BLAS as limited by the caller (to
        one thread for the folded path, whose every thread runs its own
        matrix products).
        """
        m, size, stride = self.patch_size, self.pool_size, self.stride
        n, n_ph, n_pw, _ = out.shape
        pooling = _kernels.Stage(self.pooling)
        if self.folded:
            enc = self.encoder
            normalize = enc.normalize_epsilon is not None
            _kernels.convolve_pool(
                images, np.ascontiguousarray(enc.weights.T, dtype=out.dtype),
                enc.bias.astype(out.dtype), m, normalize,
                enc.normalize_epsilon if normalize else 0.0,
                _kernels.Stage(enc.activation), pooling, size, stride, out,
            )
            return out
        n_rows, n_cols = self.map_extent(n_ph, n_pw)
        patches = np.empty((n * n_rows * n_cols, m * m * self.channels), dtype=out.dtype)
        _kernels.extract_patches(images, m, n_rows, n_cols, patches)
        responses = np.ascontiguousarray(self.encoder.transform(patches), dtype=out.dtype)
        if responses.shape != (patches.shape[0], self.n_outputs):
            raise ValueError(
                f"encoder_.transform returned shape {responses.shape} for {patches.shape[0]} "
                f"patches; expected ({patches.shape[0]}, {self.n_outputs}) as at fit."
            )
        _kernels.pool(responses, pooling, size, stride, out)
        return out

    def map_extent(self, n_ph, n_pw):
        """Rows and columns of the maps that ``n_ph x n_pw`` pooling regions span."""
        return tuple(
            int(_kernels.map_extent(n, size, stride))
            for n, size, stride in zip((n_ph, n_pw), self.pool_size, self.stride)
        )

    def encode_patches(self, patches):
        """The layer's encoding of patch rows ``(n, m*m*c)``: one window per row."""
        m = self.patch_size
        images = np.ascontiguousarray(patches).reshape(-1, m, m, self.channels)
        out = np.empty((len(patches), 1, 1, self.n_outputs), dtype=patches.dtype)
        # Any pooling of 1 x 1 regions is the identity: the layer's own keeps
        # to the kernel specialization its transform compiles.
        return self.with_pooling(pool_size=(1, 1)).forward(images, out).reshape(len(patches), -1)


def _fold_error(layer, encoder, patches):
    """Largest difference between ``layer`` and ``encoder.transform`` on
    ``patches``, relative to the largest feature, and the tolerance."""
    expected = np.asarray(encoder.transform(patches), dtype=np.float64)
    got = layer.encode_patches(patches).astype(np.float64)
    if got.shape != expected.shape:
        return np.inf, 0.0
    scale = np.abs(expected).max(initial=0.0)
    error = np.abs(got - expected).max(initial=0.0)
    relative = error / scale if scale > 0 else error
    tolerance = _kernels.ACTIVATIONS[layer.encoder.activation].tolerance(
        np.finfo(patches.dtype).eps, patches.shape[1]
    )
    return (relative if np.isfinite(relative) else np.inf), tolerance


def build_layer(encoder, patches, patch_size, channels, pooling, pool_size, pool_stride=None,
                encoding=None):
    """The layer of a fitted ``encoder``, folded when it folds exactly.

    The fold is verified against ``encoder.transform`` (with an
    :class:`~skaecnn._folding.Encoding`, against
    :class:`~skaecnn._folding.EncodedResponses`) on a few dozen of the
    ``patches`` it was fitted on, through the kernel itself; a mismatch beyond
    the dtype's tolerance keeps the generic path.

    Returns
    -------
    layer : ConvPoolLayer
    reason : str or None
        Why the layer is not folded (a mismatch names the first step whose
        fold disagrees); None when it is.
    mismatch : bool
        Whether it is not folded because a fold disagreed, which the caller
        warns about.
    """
    sample = patches[:_N_VERIFY]
    definition = encoder if encoding is None else EncodedResponses(encoder, encoding)
    n_outputs = np.asarray(definition.transform(sample[:1])).shape[1]
    generic = ConvPoolLayer(
        patch_size, channels, definition, n_outputs, pooling, tuple(pool_size),
        None if pool_stride is None else tuple(pool_stride),
    )
    folded, reason = fold_encoder(encoder, patches.shape[1], encoding)
    if folded is None:
        return generic, reason, False
    layer = dataclasses.replace(generic, encoder=folded)
    error, tolerance = _fold_error(layer, definition, sample)
    if error <= tolerance:
        return layer, None, False
    steps = encoder_steps(encoder)
    culprit = steps[-1]
    for i in range(1, len(steps)):
        partial = make_pipeline(*(step for _, step in steps[:i]))
        folded_part, _ = fold_encoder(partial, patches.shape[1])
        part_outputs = np.asarray(partial.transform(sample[:1])).shape[1]
        part_layer = dataclasses.replace(generic, encoder=folded_part, n_outputs=part_outputs)
        if _fold_error(part_layer, partial, sample)[0] > tolerance:
            culprit = steps[i - 1]
            break
    name, step = culprit
    return generic, (
        f"the fold of step {name!r} ({type(step).__name__}) differs from its transform "
        f"by {error:.2g} of the largest feature on {len(sample)} fitted patches "
        f"(tolerance {tolerance:.1g} for {patches.dtype})"
    ), True
