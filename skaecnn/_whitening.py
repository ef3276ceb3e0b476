"""ZCA whitening of patch vectors."""

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted, validate_data

from ._dask import lazy_on_dask
from ._validation import Interval
from ._folding import Fold


class ZCAWhitening(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """ZCA whitening: decorrelate features while staying close to the input.

    With the covariance ``C = U diag(s) U^T`` of the centred training data,
    :meth:`transform` computes ``(X - mean_) @ whitening_`` where
    ``whitening_ = U diag(1 / sqrt(s + epsilon)) U^T`` is symmetric. Unlike PCA
    whitening the result stays in the input space, so whitened image patches
    still look like patches (with edges enhanced), and the map is affine, which
    lets :class:`ConvPoolTransformer` fold it into its filters.

    Parameters
    ----------
    epsilon : float, default=0.1
        Regularization added to the eigenvalues, > 0. It bounds the gain on
        low-variance directions (mostly noise); it is on the scale of the
        data's variance: 0.1 suits per-patch normalized data (unit variance
        per patch) as in Coates et al. and UFLDL; use about 1e-5 times the
        squared pixel range for raw pixels.

    Attributes
    ----------
    mean_ : ndarray of shape (`n_features_in_`,)
        Per-feature mean of the training data.
    eigenvalues_ : ndarray of shape (`n_features_in_`,)
        Eigenvalues ``s`` of the training covariance (population, 1/n), ascending.
    eigenvectors_ : ndarray of shape (`n_features_in_`, `n_features_in_`)
        Matching eigenvectors ``U``, one per column.
    whitening_ : ndarray of shape (`n_features_in_`, `n_features_in_`)
        The symmetric whitening matrix ``U diag(1/sqrt(s + epsilon)) U^T``.
    epsilon_ : float
        The ``epsilon`` the whitening was fitted with, which
        :meth:`inverse_transform` undoes (setting ``epsilon`` after fit
        changes neither).
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :meth:`fit`, when ``X`` has string
        column names.

    See Also
    --------
    sklearn.decomposition.PCA : With ``whiten=True``, whitening in the rotated basis.
    PatchNormalizer : Per-patch normalization usually applied before whitening.

    References
    ----------
    .. [1] A. Coates, H. Lee and A. Y. Ng, "An Analysis of Single-Layer Networks
       in Unsupervised Feature Learning", AISTATS 2011.
    .. [2] UFLDL Tutorial, "Whitening" and "Implementing PCA/Whitening".

    Examples
    --------
    >>> import numpy as np
    >>> from skaecnn import ZCAWhitening
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(500, 3)) @ [[2.0, 1.0, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 0.3]]
    >>> Xw = ZCAWhitening(epsilon=1e-8).fit_transform(X)
    >>> np.allclose(np.cov(Xw, rowvar=False, bias=True), np.eye(3), atol=1e-6)
    True
    """

    _parameter_constraints: dict = {
        "epsilon": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, epsilon=0.1):
        self.epsilon = epsilon

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the mean and whitening matrix of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples.
        y : None
            Ignored.

        Returns
        -------
        self : ZCAWhitening
            The fitted transformer.
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        self.mean_ = X.mean(axis=0)
        Xc = X - self.mean_
        # Accumulate the covariance in float64 so float32 input is whitened as
        # accurately as its precision allows.
        cov = Xc.T.astype(np.float64) @ Xc.astype(np.float64) / X.shape[0]
        s, U = np.linalg.eigh(cov)
        s = np.maximum(s, 0.0)  # round-off can make tiny eigenvalues negative
        self.eigenvalues_ = s.astype(X.dtype)
        self.eigenvectors_ = U.astype(X.dtype)
        self.whitening_ = ((U / np.sqrt(s + self.epsilon)) @ U.T).astype(X.dtype)
        self.epsilon_ = float(self.epsilon)
        return self

    @lazy_on_dask
    def transform(self, X):
        """Whiten ``X``: ``(X - mean_) @ whitening_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to whiten.

        Returns
        -------
        X_white : ndarray of shape (n_samples, n_features)
            Whitened samples, in the dtype of ``X`` (float32 or float64).
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return (X - self.mean_.astype(X.dtype)) @ self.whitening_.astype(X.dtype)

    def inverse_transform(self, X):
        """Undo the whitening: ``X @ U diag(sqrt(s + epsilon_)) U^T + mean_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Whitened samples.

        Returns
        -------
        X_orig : ndarray of shape (n_samples, n_features)
            Samples in the input space.
        """
        check_is_fitted(self)
        X = check_array(X, dtype=[np.float64, np.float32])
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is "
                f"expecting {self.n_features_in_} features as input."
            )
        U = self.eigenvectors_.astype(np.float64)
        coloring = (U * np.sqrt(self.eigenvalues_ + self.epsilon_)) @ U.T
        return (X @ coloring.astype(X.dtype)) + self.mean_.astype(X.dtype)

    def __skaecnn_fold__(self):
        """``transform`` as an affine map, for :class:`ConvPoolTransformer` (see ``_folding``)."""
        check_is_fitted(self)
        return Fold(self.whitening_, -self.mean_ @ self.whitening_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
