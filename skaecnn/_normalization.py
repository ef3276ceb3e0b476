"""Per-patch brightness and contrast normalization."""

from numbers import Real

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.utils.validation import validate_data

from ._dask import lazy_on_dask
from ._validation import Interval
from ._folding import Fold


def normalize_rows(X, epsilon):
    """``(x - mean(x)) / sqrt(var(x) + epsilon)`` for every row ``x`` of ``X``."""
    mean = X.mean(axis=1, keepdims=True)
    Xc = X - mean
    var = np.einsum("ij,ij->i", Xc, Xc)[:, None] / X.shape[1]
    Xc /= np.sqrt(var + epsilon)
    return Xc


class PatchNormalizer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Per-sample brightness and contrast normalization of patch vectors.

    Each row ``x`` becomes ``(x - mean(x)) / sqrt(var(x) + epsilon)`` (mean and
    population variance over the row's own features), removing each patch's
    brightness and contrast as in Coates, Lee & Ng (2011). Stateless: ``fit``
    only checks the input.

    Parameters
    ----------
    epsilon : float, default=10.0
        Added to every row's variance, > 0: it keeps nearly flat patches from
        having their noise blown up to unit contrast. It lives on the scale of
        the squared pixel values: the default 10 is Coates et al.'s choice for
        pixels in [0, 255]; for images scaled to [0, 1] the same regularization
        is ``10 / 255**2``, about 1.5e-4 (and about 0.04 for values in [0, 16],
        as in scikit-learn's digits).

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :meth:`fit`, when ``X`` has string
        column names.

    See Also
    --------
    ZCAWhitening : Whitening usually applied after this normalization.
    sklearn.preprocessing.StandardScaler : Standardizes columns, not rows.

    References
    ----------
    .. [1] A. Coates, H. Lee and A. Y. Ng, "An Analysis of Single-Layer Networks
       in Unsupervised Feature Learning", AISTATS 2011.

    Examples
    --------
    >>> import numpy as np
    >>> from skaecnn import PatchNormalizer
    >>> X = np.array([[0.0, 10.0, 20.0, 30.0], [5.0, 5.0, 5.0, 5.0]])
    >>> PatchNormalizer(epsilon=1e-12).fit_transform(X).round(3)
    array([[-1.342, -0.447,  0.447,  1.342],
           [ 0.   ,  0.   ,  0.   ,  0.   ]])
    """

    _parameter_constraints: dict = {
        "epsilon": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, epsilon=10.0):
        self.epsilon = epsilon

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check ``X`` and record its width; nothing is learned.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples.
        y : None
            Ignored.

        Returns
        -------
        self : PatchNormalizer
            The transformer.
        """
        validate_data(self, X, dtype=[np.float64, np.float32])
        return self

    @lazy_on_dask
    def transform(self, X):
        """Normalize every row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to normalize.

        Returns
        -------
        X_norm : ndarray of shape (n_samples, n_features)
            Normalized samples, in the dtype of ``X`` (float32 or float64).
        """
        # Stateless, so usable without fit: check epsilon here too.
        if not get_config()["skip_parameter_validation"]:
            self._validate_params()
        X = validate_data(
            self, X, dtype=[np.float64, np.float32], reset=not hasattr(self, "n_features_in_")
        )
        return normalize_rows(X, self.epsilon)

    def __skaecnn_fold__(self):
        """The row normalization, which :class:`ConvPoolTransformer` computes per window."""
        return Fold(normalize_epsilon=self.epsilon)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
