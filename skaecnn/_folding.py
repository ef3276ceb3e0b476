"""Folding a fitted patch encoder into convolution filters.

Most encoders used on patches are a chain of affine maps ending in an
elementwise activation: ``PCA``/``StandardScaler``/``ZCAWhitening`` followed by
a sparse autoencoder or an RBM (sigmoid) or by PCA (identity). Such a chain
collapses to one affine map, ``z = x @ W.T + b``, and the convolution then only
needs ``W`` as filters (UFLDL: ``W' = W ZCA``, ``b' = b - W' mean``). A leading
:class:`PatchNormalizer` is not affine; it is kept as a flag and computed per
window by the kernel.
"""

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ._autoencoder import SparseAutoencoderFeatures
from ._normalization import PatchNormalizer
from ._whitening import ZCAWhitening


@dataclass(frozen=True)
class FoldedEncoder:
    """An encoder as ``activation(normalize(x) @ weights.T + bias)``.

    Attributes
    ----------
    weights : ndarray of shape (k, d)
        Filters acting on raw (or, with ``normalize_epsilon``, normalized) patches.
    bias : ndarray of shape (k,)
    activation : {"identity", "sigmoid"}
    normalize_epsilon : float or None
        The epsilon of a leading PatchNormalizer, None without one.
    """

    weights: np.ndarray
    bias: np.ndarray
    activation: str
    normalize_epsilon: float | None


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
    final = _final_step(steps[-1])
    if final is None:
        return None
    W, b, activation = final
    W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
    # Compose right to left: act((x @ M + v) @ W.T + b) = act(x @ (W M^T)^T + (W v + b)).
    for step in reversed(steps[:-1]):
        affine = _affine_step(step)
        if affine is None:
            return None
        M, v = (np.asarray(a, dtype=np.float64) for a in affine)
        b = W @ v + b
        W = W @ M.T
    return FoldedEncoder(W, b, activation, normalize_epsilon)
