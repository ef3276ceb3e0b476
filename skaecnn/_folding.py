"""Folding a fitted patch encoder into convolution filters.

Most encoders used on patches are a chain of affine maps ending in an
elementwise activation: ``PCA``/``StandardScaler``/``ZCAWhitening`` followed by
a sparse autoencoder or an RBM (sigmoid) or by PCA (identity). Such a chain
collapses to one affine map, ``z = x @ W.T + b``, and the convolution then only
needs ``W`` as filters (UFLDL: ``W' = W ZCA``, ``b' = b - W' mean``). A leading
:class:`PatchNormalizer` is not affine; it is kept as a flag and computed per
window by the kernel.

K-means triangle features end the chain differently: they need the distances
``||x' - c_k||`` of the whitened patch ``x' = x @ M + v`` to the centroids.
``||x' - c||^2 = ||x'||^2 - 2 x'.c + ||c||^2``, whose cross term folds into
filters like any affine encoder, and whose ``||x'||^2`` is the squared norm of
``x'`` itself: extra filters ``M.T`` (bias ``v``) compute ``x'`` in the same
matrix product, or, with no affine step at all, the window's own squared norm
is a local sum.
"""

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ._autoencoder import SparseAutoencoderFeatures
from ._kmeans_triangle import KMeansTriangleFeatures
from ._normalization import PatchNormalizer
from ._whitening import ZCAWhitening


@dataclass(frozen=True)
class FoldedEncoder:
    """An encoder as ``activation(normalize(x) @ weights.T + bias)``.

    With ``activation="triangle"``, ``r = normalize(x) @ weights.T + bias`` has
    ``k + e`` columns: ``r[:k]`` is ``||c_k||^2 - 2 x'.c_k`` (``filters`` holds
    ``weights[:k] / -2``), ``r[k:]`` is the whitened patch ``x'`` itself
    (``e = 0``: ``x'`` is the normalized patch), and the outputs are
    ``max(0, mean_j(z_j) - z_k)`` with ``z_k = sqrt(||x'||^2 + r[k])``.

    Attributes
    ----------
    weights : ndarray of shape (k + e, d)
        Filters acting on raw (or, with ``normalize_epsilon``, normalized)
        patches; ``e = 0`` except for the triangle activation.
    bias : ndarray of shape (k + e,)
    activation : {"identity", "sigmoid", "triangle"}
    normalize_epsilon : float or None
        The epsilon of a leading PatchNormalizer, None without one.
    n_outputs : int
        ``k``, the number of features.
    """

    weights: np.ndarray
    bias: np.ndarray
    activation: str
    normalize_epsilon: float | None
    n_outputs: int

    @property
    def filters(self):
        """The ``k`` filters in patch space, as a picture of what each output detects.

        For the triangle activation, the centroids as seen from the patch:
        ``M @ c_k``, the filter whose response is ``x'.c_k`` up to a constant.
        """
        k = self.n_outputs
        return self.weights[:k] / -2.0 if self.activation == "triangle" else self.weights[:k]

    @property
    def intercept(self):
        """The bias of the ``k`` outputs (triangle: ``||c_k||^2 - 2 v.c_k``)."""
        return self.bias[: self.n_outputs]


def _affine_step(step):
    """``(M, v)`` with ``step.transform(x) == x @ M + v``, or None."""
    if isinstance(step, ZCAWhitening):
        return step.whitening_, -step.mean_ @ step.whitening_
    if isinstance(step, StandardScaler):
        d = step.n_features_in_
        scale = np.ones(d) if step.scale_ is None else step.scale_
        mean = np.zeros(d) if step.mean_ is None else step.mean_
        return np.diag(1.0 / scale), -mean / scale
    if isinstance(step, PCA):
        M = step.components_.T
        if step.whiten:
            M = M / np.sqrt(step.explained_variance_)
        return M, -step.mean_ @ M
    return None


def _final_step(step):
    """``(W, b, activation)`` of an encoder computing ``act(x @ W.T + b)``, or None."""
    if isinstance(step, SparseAutoencoderFeatures):
        return step.components_, step.intercept_hidden_, "sigmoid"
    if isinstance(step, BernoulliRBM):
        return step.components_, step.intercept_hidden_, "sigmoid"
    affine = _affine_step(step)
    if affine is not None:
        M, v = affine
        return M.T, v, "identity"
    return None


def _fold_triangle(centers, prefix):
    """``(weights, bias)`` of triangle features after the affine ``prefix`` (or None)."""
    C = np.asarray(centers, dtype=np.float64)
    squared_norms = np.einsum("ij,ij->i", C, C)
    if prefix is None:
        return -2.0 * C, squared_norms
    M, v = prefix
    # Extra rows M.T compute x' = x @ M + v, whose squared norm the kernel sums.
    weights = np.vstack([-2.0 * C @ M.T, M.T])
    bias = np.concatenate([squared_norms - 2.0 * C @ v, v])
    return weights, bias


def fold_encoder(encoder):
    """Collapse a fitted encoder to a :class:`FoldedEncoder`, or None if it cannot be.

    Parameters
    ----------
    encoder : estimator
        A fitted transformer or Pipeline of transformers.

    Returns
    -------
    folded : FoldedEncoder or None
        None when some step is neither affine, nor a known final activation,
        nor a leading PatchNormalizer; the caller then applies
        ``encoder.transform`` to the patches themselves.
    """
    if isinstance(encoder, Pipeline):
        steps = [s for _, s in encoder.steps if s is not None and s != "passthrough"]
    else:
        steps = [encoder]
    if not steps:
        return None
    normalize_epsilon = None
    if isinstance(steps[0], PatchNormalizer):
        normalize_epsilon = float(steps[0].epsilon)
        steps = steps[1:]
    if not steps:
        return None
    # The affine steps before the last, composed: x' = x @ M + v.
    prefix = None
    for step in steps[:-1]:
        affine = _affine_step(step)
        if affine is None:
            return None
        M, v = (np.asarray(a, dtype=np.float64) for a in affine)
        prefix = (M, v) if prefix is None else (prefix[0] @ M, prefix[1] @ M + v)
    last = steps[-1]
    if isinstance(last, KMeansTriangleFeatures):
        W, b = _fold_triangle(last.cluster_centers_, prefix)
        return FoldedEncoder(W, b, "triangle", normalize_epsilon, len(last.cluster_centers_))
    final = _final_step(last)
    if final is None:
        return None
    W, b, activation = final
    W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if prefix is not None:
        # act((x @ M + v) @ W.T + b) = act(x @ (W M^T)^T + (W v + b)).
        M, v = prefix
        W, b = W @ M.T, W @ v + b
    return FoldedEncoder(W, b, activation, normalize_epsilon, len(W))
