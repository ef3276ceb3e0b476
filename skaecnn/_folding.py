"""Folding a fitted patch encoder into convolution filters.

Most encoders used on patches are a chain of affine maps ending in an
elementwise activation: ``PCA``/``StandardScaler``/``ZCAWhitening`` followed by
a sparse autoencoder or an RBM (sigmoid) or by PCA (identity). Such a chain
collapses to one affine map, ``z = x @ W.T + b``, and the convolution then only
needs ``W`` as filters (UFLDL: ``W' = W ZCA``, ``b' = b - W' mean``). A leading
:class:`PatchNormalizer` is not affine; it is kept as a flag and computed per
window by the kernel.

The folding protocol: a step says what it computes as a :class:`Fold`,
``activation(normalize(x) @ matrix + offset)``, through its method
``__skaecnn_fold__()`` (this package's estimators; a user's own estimator can
implement it too), or through :func:`fold_step`, one
:func:`functools.singledispatch` registry, for scikit-learn's classes. A step
whose fold is None (e.g. :class:`~sklearn.preprocessing.Normalizer`, which is
not affine, or ``MinMaxScaler(clip=True)``) keeps the whole encoder from being
folded. :func:`fold_encoder` composes the steps' folds.

K-means triangle features end the chain differently: they need the distances
``||x' - c_k||`` of the whitened patch ``x' = x @ M + v`` to the centroids.
``||x' - c||^2 = ||x'||^2 - 2 x'.c + ||c||^2``, whose cross term folds into
filters like any affine encoder, and whose ``||x'||^2`` is the squared norm of
``x'`` itself: an activation that ``needs_input`` (see
:data:`skaecnn._kernels.ACTIVATIONS`) gets extra filters ``M.T`` (bias ``v``)
computing ``x'`` in the same matrix product, or, with no affine step before
it, reads the window itself.

Encodings (:data:`ENCODINGS`, Coates & Ng 2011) replace the last step's
activation: they threshold its responses ``z`` (the activation's input, or
for k-means the responses of the unit-length centroids) as ``max(0, L(z) -
alpha)`` for a linear ``L``. ``L`` and ``- alpha`` fold into the filters and
bias like one more affine step, and the kernel applies a ReLU.
"""

from dataclasses import dataclass
from functools import singledispatch

import numpy as np
from sklearn.decomposition import PCA, FastICA, IncrementalPCA, TruncatedSVD
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

from ._kernels import ACTIVATIONS


def _split(z):
    return np.concatenate([z, -z], axis=-1)


#: Encodings of an encoder's ``k`` responses ``z``: ``max(0, L(z) - alpha)``,
#: where ``L`` (the entry, a linear map of the last axis) gives the outputs.
#: ``"soft"``: the soft threshold ``max(0, z - alpha)``; ``"split"``: the
#: polarity split ``[max(0, z - alpha), max(0, -z - alpha)]``, ``2k``
#: outputs. Adding one is one entry here.
ENCODINGS = {
    "soft": lambda z: z,
    "split": _split,
}


@dataclass(frozen=True)
class Fold:
    """What one fitted step computes: ``activation(normalize(x) @ matrix + offset)``.

    Returned by a step's ``__skaecnn_fold__()`` (see :func:`fold_step`).

    Attributes
    ----------
    matrix : ndarray of shape (d_in, d_out) or None
        None: the identity.
    offset : ndarray of shape (d_out,) or None
        None: zero.
    activation : str, default="identity"
        A key of :data:`skaecnn._kernels.ACTIVATIONS` (``"identity"``,
        ``"sigmoid"``, ``"triangle"``, ``"relu"``); only the last step of an encoder may
        have another activation than ``"identity"``.
    normalize_epsilon : float or None, default=None
        The step first normalizes each row ``x`` to ``(x - mean(x)) /
        sqrt(var(x) + normalize_epsilon)``, as :class:`PatchNormalizer`; only
        the first step of an encoder may.
    """

    matrix: np.ndarray | None = None
    offset: np.ndarray | None = None
    activation: str = "identity"
    normalize_epsilon: float | None = None


@dataclass(frozen=True)
class FoldedEncoder:
    """An encoder as ``activation(normalize(x) @ weights.T + bias)``.

    For an activation that needs its input (``"triangle"``), ``r =
    normalize(x) @ weights.T + bias`` has ``k + e`` columns: ``r[:k]`` is the
    last step's fold (``||c_k||^2 - 2 x'.c_k``), ``r[k:]`` is its input ``x'``
    (``e = 0``: ``x'`` is the normalized patch itself).

    Attributes
    ----------
    weights : ndarray of shape (k + e, d)
        Filters acting on raw (or, with ``normalize_epsilon``, normalized)
        patches; ``e = 0`` except for activations that need their input.
    bias : ndarray of shape (k + e,)
    activation : str
        A key of :data:`skaecnn._kernels.ACTIVATIONS`.
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
        return self.weights[: self.n_outputs] / ACTIVATIONS[self.activation].filter_scale

    @property
    def intercept(self):
        """The bias of the ``k`` outputs (triangle: ``||c_k||^2 - 2 v.c_k``)."""
        return self.bias[: self.n_outputs]


@dataclass(frozen=True)
class Encoding:
    """The encoding ``max(0, L(z) - alpha)`` of :data:`ENCODINGS` ``[name]``."""

    name: str
    alpha: float

    def apply(self, z):
        """The encoded responses ``z`` (n, k)."""
        return np.maximum(ENCODINGS[self.name](z) - self.alpha, 0.0)

    def fold(self, k):
        """The encoding of ``k`` responses as a :class:`Fold` (relu activation)."""
        L = ENCODINGS[self.name]
        return Fold(L(np.eye(k)), L(np.zeros(k)) - self.alpha, "relu")


@singledispatch
def fold_step(step):
    """The :class:`Fold` of one fitted step, or None if it cannot be folded.

    Steps fold themselves through a method ``__skaecnn_fold__()`` returning a
    :class:`Fold` (or None for parameter values that are not foldable);
    scikit-learn's classes are registered here.
    """
    method = getattr(step, "__skaecnn_fold__", None)
    return None if method is None else method()


def _diagonal(scale, offset=None):
    return Fold(np.diag(np.asarray(scale, dtype=np.float64)), offset)


@fold_step.register
def _(step: StandardScaler):
    # Fitted mean_ and scale_ exist whatever the flags; transform only uses
    # those the flags ask for.
    d = step.n_features_in_
    mean = step.mean_ if step.with_mean else np.zeros(d)
    scale = step.scale_ if step.with_std else np.ones(d)
    return _diagonal(1.0 / scale, -mean / scale)


@fold_step.register
def _(step: RobustScaler):
    d = step.n_features_in_
    center = step.center_ if step.with_centering else np.zeros(d)
    scale = step.scale_ if step.with_scaling else np.ones(d)
    return _diagonal(1.0 / scale, -center / scale)


@fold_step.register
def _(step: MinMaxScaler):
    # clip=True clips to feature_range: not affine.
    return None if step.clip else _diagonal(step.scale_, step.min_)


@fold_step.register
def _(step: MaxAbsScaler):
    return _diagonal(1.0 / step.scale_)


@fold_step.register(PCA)
@fold_step.register(IncrementalPCA)
def _(step):
    M = step.components_.T.astype(np.float64)
    v = -step.mean_ @ M
    if step.whiten:
        # As scikit-learn's transform: variances clipped at the dtype's eps,
        # which keeps rank-deficient whitening finite.
        scale = np.sqrt(step.explained_variance_)
        scale[scale < np.finfo(scale.dtype).eps] = np.finfo(scale.dtype).eps
        M, v = M / scale, v / scale
    return Fold(M, v)


@fold_step.register
def _(step: TruncatedSVD):
    return Fold(step.components_.T)


@fold_step.register
def _(step: FastICA):
    M = step.components_.T.astype(np.float64)
    # Only a whitening FastICA centres (and has a mean_).
    return Fold(M, -step.mean_ @ M if step.whiten else None)


@fold_step.register
def _(step: BernoulliRBM):
    return Fold(step.components_.T, step.intercept_hidden_, "sigmoid")


def _responses(fold):
    """The affine part of ``fold`` whose outputs an :class:`Encoding` thresholds."""
    responses = ACTIVATIONS[fold.activation].responses
    matrix, offset = (fold.matrix, fold.offset) if responses is None else responses(
        fold.matrix, fold.offset
    )
    return Fold(matrix, offset, "identity", fold.normalize_epsilon)


@dataclass(frozen=True)
class EncodedResponses:
    """A fitted encoder whose last step's activation is replaced by ``encoding``.

    Its :meth:`transform` is the definition that the fold reproduces and that
    the generic path applies: the steps before the last as they transform,
    then the last step's responses (its activation's input, see
    :data:`skaecnn._kernels.ACTIVATIONS`; the outputs of a last step without
    a fold), then the encoding.
    """

    encoder: object
    encoding: Encoding

    def transform(self, X):
        *prefix, (_, last) = encoder_steps(self.encoder)
        for _, step in prefix:
            X = step.transform(X)
        fold = fold_step(last)
        if fold is None or fold.normalize_epsilon is not None:
            z = last.transform(X)
        else:
            X = np.asarray(X)
            M, v = _compose(None, _responses(fold), X.shape[1])
            z = X @ M + v
        return self.encoding.apply(np.asarray(z))


def encoder_steps(encoder):
    """``(name, step)`` of a (possibly nested) Pipeline, passthrough steps dropped."""
    if not isinstance(encoder, Pipeline):
        return [(type(encoder).__name__, encoder)]
    steps = []
    for name, step in encoder.steps:
        if step is None or (isinstance(step, str) and step == "passthrough"):
            continue
        if isinstance(step, Pipeline):
            steps += [(f"{name}__{inner}", s) for inner, s in encoder_steps(step)]
        else:
            steps.append((name, step))
    return steps


def _compose(prefix, fold, d):
    """``(M, v)`` of ``x -> fold(prefix(x))`` for affine ``prefix`` and ``fold``."""
    M = np.eye(d) if fold.matrix is None else np.asarray(fold.matrix, dtype=np.float64)
    v = np.zeros(M.shape[1]) if fold.offset is None else np.asarray(fold.offset, dtype=np.float64)
    if prefix is None:
        return M, v
    return prefix[0] @ M, prefix[1] @ M + v


def fold_encoder(encoder, n_features, encoding=None):
    """Collapse a fitted encoder to a :class:`FoldedEncoder`.

    Parameters
    ----------
    encoder : estimator
        A fitted transformer or Pipeline of transformers.
    n_features : int
        Width ``d`` of its input.
    encoding : Encoding or None, default=None
        Replaces the last step's activation (:class:`EncodedResponses`).

    Returns
    -------
    folded : FoldedEncoder or None
        None when some step cannot be folded; the caller then applies
        ``encoder.transform`` to the patches themselves.
    reason : str or None
        Why not, naming the step; None when folded.
    """
    steps = encoder_steps(encoder)
    if not steps:
        return None, "the encoder has no steps"
    normalize_epsilon = None
    prefix = None  # (M, v): the affine steps so far, x' = x @ M + v
    for i, (name, step) in enumerate(steps):
        fold = fold_step(step)
        if fold is None:
            return None, f"step {name!r} ({type(step).__name__}) cannot be folded"
        if fold.normalize_epsilon is not None:
            if i > 0:
                return None, (
                    f"step {name!r} ({type(step).__name__}) normalizes rows after other "
                    "steps, which the kernel cannot fold"
                )
            normalize_epsilon = float(fold.normalize_epsilon)
        last = i == len(steps) - 1
        if fold.activation not in ACTIVATIONS:
            return None, f"step {name!r} has an unknown activation {fold.activation!r}"
        if encoding is not None and last:
            fold = _responses(fold)
        if fold.activation != "identity" and not last:
            return None, (
                f"step {name!r} ({type(step).__name__}) has a {fold.activation} activation "
                "but is not the last step"
            )
        if fold.matrix is None and fold.offset is None and fold.activation == "identity":
            continue
        d = n_features if prefix is None else prefix[0].shape[1]
        if last and ACTIVATIONS[fold.activation].needs_input and prefix is not None:
            # The activation reads its input x' = x @ M + v from the extra rows.
            W, b = _compose(prefix, fold, d)
            M, v = prefix
            return FoldedEncoder(
                np.vstack([W.T, M.T]), np.concatenate([b, v]), fold.activation,
                normalize_epsilon, W.shape[1],
            ), None
        prefix = _compose(prefix, fold, d)
        activation = fold.activation
    if prefix is None:
        # Only a normalization (or identities): the identity map of the window.
        prefix = (np.eye(n_features), np.zeros(n_features))
        activation = "identity"
    if encoding is not None:
        k = prefix[0].shape[1]
        prefix = _compose(prefix, encoding.fold(k), k)
        activation = "relu"
    M, v = prefix
    return FoldedEncoder(M.T.copy(), v, activation, normalize_epsilon, M.shape[1]), None
