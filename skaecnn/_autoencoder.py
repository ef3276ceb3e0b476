"""Sparse autoencoder as a scikit-learn transformer."""

import time
import warnings
from numbers import Integral, Real

import numpy as np
from scipy.optimize import minimize
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state, gen_batches
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from ._dask import lazy_on_dask
from ._folding import Fold
from ._objective import activations_buffer, initialize, loss_and_gradient, sigmoid, unpack
from ._threads import effective_threads
from ._validation import Interval, N_JOBS

# Adam's moment decay rates and denominator guard (Kingma & Ba, 2015).
_BETA1, _BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8
# Both solvers stop once the loss has not improved by ``tol`` for this many
# iterations (epochs), as scikit-learn's MLP does by default.
_N_ITER_NO_CHANGE = 10


class _Plateau:
    """Counts consecutive iterations that improved the best loss by less than ``tol``."""

    def __init__(self, tol):
        self.tol, self.best, self.count = tol, np.inf, 0

    def reached(self, loss):
        """Record ``loss``; True once ``_N_ITER_NO_CHANGE`` iterations in a row stalled."""
        self.count = self.count + 1 if loss > self.best - self.tol else 0
        self.best = min(self.best, loss)
        return self.count >= _N_ITER_NO_CHANGE


class SparseAutoencoderFeatures(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Sparse autoencoder features (UFLDL).

    A one-hidden-layer autoencoder with sigmoid hidden units, trained to
    reconstruct its input under a KL-divergence sparsity penalty and weight
    decay. The input weights of its ``n_components`` hidden units are the
    learned features: on image patches, ``components_`` reshaped to the patch
    shape are filters. :meth:`transform` returns the hidden activations.

    The objective over ``n`` samples is exactly UFLDL's
    ``sparseAutoencoderCost``::

        J = 1/(2n) sum_i ||y(x_i) - x_i||^2 + alpha/2 (||W1||^2 + ||W2||^2)
            + sparsity_weight * sum_j KL(sparsity_target || rho_hat_j)

    with hidden activations ``a = sigmoid(W1 x + b1)``, output
    ``y = f(W2 a + b2)``, ``rho_hat_j`` the mean activation of hidden unit
    ``j`` and biases not decayed.

    Parameters
    ----------
    n_components : int, default=25
        Number ``k`` of hidden units (features).
    sparsity_target : float, default=0.01
        Target mean activation ``rho`` of every hidden unit, in (0, 1).
    sparsity_weight : float, default=3.0
        Weight ``beta`` of the sparsity penalty; 0 gives a plain autoencoder.
    alpha : float, default=1e-4
        Weight decay ``lambda`` on both weight matrices (not the biases).
    decoder : {"sigmoid", "linear"}, default="sigmoid"
        Output nonlinearity ``f``. ``"sigmoid"`` needs inputs in [0, 1];
        ``"linear"`` is UFLDL's linear decoder, for real-valued (e.g. whitened)
        input.
    solver : {"lbfgs", "adam"}, default="lbfgs"
        ``"lbfgs"`` minimizes ``J`` over the full batch with
        :func:`scipy.optimize.minimize` (L-BFGS-B); ``"adam"`` takes minibatch
        steps, estimating the sparsity per batch, and supports
        :meth:`partial_fit`.
    max_iter : int, default=400
        Iterations of L-BFGS, or epochs of Adam.
    tol : float, default=1e-5
        Both solvers stop when the loss has not improved by at least ``tol``
        for 10 consecutive iterations (epochs for Adam), as scikit-learn's
        MLP does; L-BFGS also stops when the largest gradient component falls
        below ``tol`` (or its relative objective change stalls). Reaching
        ``max_iter`` first raises a ``ConvergenceWarning``.
    batch_size : int, default=256
        Minibatch size of the ``"adam"`` solver.
    learning_rate_init : float, default=1e-3
        Step size of the ``"adam"`` solver.
    n_jobs : int or None, default=None
        Threads computing the objective (blocks of rows, each with
        single-threaded BLAS); None or -1 uses all cores. Never more than a
        limit set around the call (``threadpoolctl.threadpool_limits``, or an
        enclosing :class:`ConvPoolTransformer`'s ``n_jobs``).
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialization and Adam's shuffling.
    verbose : int, default=0
        If positive, print the iteration, objective and elapsed time every
        10 L-BFGS iterations or every Adam epoch.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, `n_features_in_`)
        Input weights ``W1``: one filter per row.
    intercept_hidden_ : ndarray of shape (n_components,)
        Hidden biases ``b1``.
    decoder_weights_ : ndarray of shape (`n_features_in_`, n_components)
        Output weights ``W2``.
    intercept_visible_ : ndarray of shape (`n_features_in_`,)
        Output biases ``b2``.
    loss_ : float
        ``J`` of the final parameters on the data of the last call to
        :meth:`fit` (the whole training set) or :meth:`partial_fit` (its batch).
    loss_curve_ : list of float
        ``J`` after each L-BFGS iteration, or the mean minibatch ``J`` of each
        Adam epoch.
    n_iter_ : int
        Iterations (L-BFGS) or epochs (Adam) run.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :meth:`fit`, when ``X`` has string
        column names.

    See Also
    --------
    sklearn.neural_network.BernoulliRBM : Another single-layer feature learner.
    ZCAWhitening : Whitening usually applied to patches before the linear decoder.
    PatchNormalizer : Per-patch brightness and contrast normalization.
    ConvPoolTransformer : Convolves the learned filters over whole images.

    Notes
    -----
    Float32 input is trained and transformed in float32 (L-BFGS-B keeps its
    own history in float64); other input is converted to float64.

    With the sparsity penalty, :meth:`fit` keeps the hidden activations of
    all samples (``n_samples x n_components``) between two passes of each
    evaluation of ``J``, when they take at most 512 MiB: one matrix product
    fewer per evaluation (five instead of six). Beyond that, each evaluation
    is one pass over blocks of rows and holds no such matrix.

    References
    ----------
    .. [1] Andrew Ng, "Sparse autoencoder", CS294A Lecture notes, Stanford, 2011.
    .. [2] UFLDL Tutorial, http://ufldl.stanford.edu/wiki/, exercises
       "Sparse Autoencoder" and "Linear Decoders".

    Examples
    --------
    >>> import numpy as np
    >>> from skaecnn import SparseAutoencoderFeatures
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(size=(200, 16))
    >>> sae = SparseAutoencoderFeatures(n_components=8, random_state=0)
    >>> H = sae.fit_transform(X)
    >>> H.shape
    (200, 8)
    >>> sae.components_.shape
    (8, 16)
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "sparsity_target": [Interval(Real, 0, 1, closed="neither")],
        "sparsity_weight": [Interval(Real, 0, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "decoder": [StrOptions({"sigmoid", "linear"})],
        "solver": [StrOptions({"lbfgs", "adam"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "n_jobs": N_JOBS,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=25,
        sparsity_target=0.01,
        sparsity_weight=3.0,
        alpha=1e-4,
        decoder="sigmoid",
        solver="lbfgs",
        max_iter=400,
        tol=1e-5,
        batch_size=256,
        learning_rate_init=1e-3,
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.sparsity_target = sparsity_target
        self.sparsity_weight = sparsity_weight
        self.alpha = alpha
        self.decoder = decoder
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def _objective(self, theta, X, grad=None, activations=None):
        return loss_and_gradient(
            theta,
            X,
            self.n_components,
            self.alpha,
            self.sparsity_target,
            self.sparsity_weight,
            self.decoder,
            grad=grad,
            n_threads=effective_threads(self.n_jobs),
            activations=activations,
        )

    # -- fitting ---------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the autoencoder's weights from ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples (e.g. patch vectors).
        y : None
            Ignored.

        Returns
        -------
        self : SparseAutoencoderFeatures
            The fitted estimator.
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C")
        self._rng = check_random_state(self.random_state)
        theta = initialize(X.shape[1], self.n_components, self._rng, X.dtype)
        self.loss_curve_ = []
        self._adam_state = None
        start = time.perf_counter()
        if self.solver == "lbfgs":
            theta = self._fit_lbfgs(theta, X, start)
        else:
            theta = self._fit_adam(theta, X, self._rng, start)
        self._store(theta, X.shape[1])
        self.loss_ = float(self._objective(theta, X)[0])
        return self

    def _check_solver(self):
        if self.solver != "adam":
            raise AttributeError(
                f"partial_fit is only available for solver='adam'; got solver={self.solver!r}."
            )
        return True

    @available_if(_check_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """One Adam pass of minibatches over ``X``.

        The first call initializes the weights; later calls continue from them
        and from Adam's moment estimates, so data larger than memory can be
        streamed through in chunks. Only available with ``solver="adam"``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training samples.
        y : None
            Ignored.

        Returns
        -------
        self : SparseAutoencoderFeatures
            The updated estimator.
        """
        first = not hasattr(self, "components_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=first)
        if first:
            self._rng = check_random_state(self.random_state)
            theta = initialize(X.shape[1], self.n_components, self._rng, X.dtype)
            self._adam_state = None
            self.loss_curve_ = []
            self.n_iter_ = 0
        else:
            theta = self._theta().astype(X.dtype, copy=False)
        theta, epoch_loss = self._adam_epoch(theta, X, self._rng)
        self.loss_curve_.append(epoch_loss)
        self.n_iter_ += 1
        self._store(theta, X.shape[1])
        self.loss_ = float(self._objective(theta, X)[0])
        return self

    def _fit_lbfgs(self, theta, X, start):
        grad = np.empty_like(theta)
        activations = activations_buffer(X.shape[0], self.n_components, X.dtype)
        plateau = _Plateau(self.tol)

        def fun(theta64):
            # L-BFGS-B works in float64; the objective runs in X's dtype.
            loss, g = self._objective(
                theta64.astype(X.dtype, copy=False), X, grad, activations)
            return loss, g.astype(np.float64)

        def callback(intermediate_result):
            self.loss_curve_.append(float(intermediate_result.fun))
            it = len(self.loss_curve_)
            if self.verbose and it % 10 == 0:
                self._report(it, self.loss_curve_[-1], start)
            if plateau.reached(self.loss_curve_[-1]):
                raise StopIteration  # scipy ends the run, keeping this iterate

        result = minimize(
            fun,
            theta.astype(np.float64),
            method="L-BFGS-B",
            jac=True,
            callback=callback,
            options={"maxiter": self.max_iter, "gtol": self.tol},
        )
        self.n_iter_ = int(result.nit)
        # As scikit-learn's _check_optimize_result: any abnormal termination
        # (status 2, e.g. a line search failing in float32) is reported too;
        # the plateau rule's own stop (scipy's status 99) is convergence.
        stalled = plateau.count >= _N_ITER_NO_CHANGE
        if result.status == 1 and not stalled:
            warnings.warn(
                f"L-BFGS did not converge in max_iter={self.max_iter} iterations; "
                "increase max_iter.",
                ConvergenceWarning,
            )
        elif result.status != 0 and not stalled:
            warnings.warn(
                f"L-BFGS stopped abnormally (status={result.status}): {result.message} "
                "The weights are those of the last accepted step; scaling the data, "
                "float64 input or a larger tol may help.",
                ConvergenceWarning,
            )
        return result.x.astype(X.dtype)

    def _fit_adam(self, theta, X, rng, start):
        plateau = _Plateau(self.tol)
        for epoch in range(1, self.max_iter + 1):
            theta, epoch_loss = self._adam_epoch(theta, X, rng)
            self.loss_curve_.append(epoch_loss)
            if self.verbose:
                self._report(epoch, epoch_loss, start)
            if plateau.reached(epoch_loss):
                break
        else:
            warnings.warn(
                f"Adam did not converge in max_iter={self.max_iter} epochs; "
                "increase max_iter.",
                ConvergenceWarning,
            )
        self.n_iter_ = epoch
        return theta

    def _adam_epoch(self, theta, X, rng):
        """One shuffled pass of Adam steps; returns the mean minibatch loss."""
        if self._adam_state is None:
            self._adam_state = (np.zeros_like(theta), np.zeros_like(theta), 0)
        m, v, t = self._adam_state
        m, v = m.astype(theta.dtype, copy=False), v.astype(theta.dtype, copy=False)
        grad = np.empty_like(theta)
        activations = activations_buffer(
            min(self.batch_size, X.shape[0]), self.n_components, X.dtype)
        order = rng.permutation(X.shape[0])
        total = 0.0
        for batch in gen_batches(X.shape[0], self.batch_size):
            Xb = X[np.sort(order[batch])]
            loss, grad = self._objective(
                theta, Xb, grad, None if activations is None else activations[: len(Xb)])
            total += loss * Xb.shape[0]
            t += 1
            m *= _BETA1
            m += (1 - _BETA1) * grad
            v *= _BETA2
            v += (1 - _BETA2) * grad * grad
            step = self.learning_rate_init * np.sqrt(1 - _BETA2**t) / (1 - _BETA1**t)
            theta -= step * m / (np.sqrt(v) + _ADAM_EPS)
        self._adam_state = (m, v, t)
        return theta, total / X.shape[0]

    def _report(self, iteration, loss, start):
        print(
            f"[{type(self).__name__}] Iteration {iteration}, "
            f"loss = {loss:.8f}, elapsed = {time.perf_counter() - start:.2f} s"
        )

    def _store(self, theta, n_features):
        W1, W2, b1, b2 = unpack(theta, n_features, self.n_components)
        self.components_ = W1.copy()
        self.decoder_weights_ = W2.copy()
        self.intercept_hidden_ = b1.copy()
        self.intercept_visible_ = b2.copy()

    def _theta(self):
        return np.concatenate(
            [
                self.components_.ravel(),
                self.decoder_weights_.ravel(),
                self.intercept_hidden_,
                self.intercept_visible_,
            ]
        )

    # -- using the fitted model ------------------------------------------

    @lazy_on_dask
    def transform(self, X):
        """Hidden activations ``sigmoid(X @ components_.T + intercept_hidden_)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to encode.

        Returns
        -------
        H : ndarray of shape (n_samples, n_components)
            Activations in (0, 1), float32 for float32 input, else float64.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        H = X @ self.components_.T.astype(X.dtype, copy=False)
        H += self.intercept_hidden_.astype(X.dtype, copy=False)
        return sigmoid(H, out=H)

    def inverse_transform(self, H):
        """Decode hidden activations: ``f(H @ decoder_weights_.T + intercept_visible_)``.

        Parameters
        ----------
        H : array-like of shape (n_samples, n_components)
            Hidden activations, e.g. from :meth:`transform`.

        Returns
        -------
        X_rec : ndarray of shape (n_samples, `n_features_in_`)
            Reconstructions.
        """
        check_is_fitted(self)
        H = check_array(H, dtype=[np.float64, np.float32], input_name="H")
        if H.shape[1] != self.n_components:
            raise ValueError(
                f"H has {H.shape[1]} features, but {type(self).__name__} has "
                f"n_components={self.n_components}."
            )
        Y = H @ self.decoder_weights_.T.astype(H.dtype, copy=False)
        Y += self.intercept_visible_.astype(H.dtype, copy=False)
        if self.decoder == "sigmoid":
            sigmoid(Y, out=Y)
        return Y

    def __skaecnn_fold__(self):
        """``transform`` as ``sigmoid(x @ matrix + offset)`` (see ``_folding``)."""
        check_is_fitted(self)
        return Fold(self.components_.T, self.intercept_hidden_, "sigmoid")

    @property
    def _n_features_out(self):
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
