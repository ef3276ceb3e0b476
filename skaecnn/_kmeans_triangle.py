"""K-means "triangle" features (Coates, Lee & Ng, 2011) as a scikit-learn transformer."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.cluster import MiniBatchKMeans
from sklearn.utils.validation import check_is_fitted, validate_data

from ._dask import lazy_on_dask
from ._validation import Interval
from ._folding import Fold


def triangle_activation(X, centers):
    """``max(0, mean_j(z_j) - z_k)`` with ``z_k = ||x - c_k||``, row by row.

    The distances are computed with one matrix product as
    ``sqrt(max(0, ||x||^2 - 2 x.c_k + ||c_k||^2))`` in ``X``'s dtype.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Floating point samples.
    centers : ndarray of shape (n_clusters, n_features)
        Cluster centres, converted to ``X``'s dtype.

    Returns
    -------
    F : ndarray of shape (n_samples, n_clusters)
        Non-negative activations, in ``X``'s dtype.
    """
    centers = np.asarray(centers, dtype=X.dtype)
    F = X @ centers.T
    F *= -2
    F += np.einsum("ij,ij->i", X, X)[:, None]
    F += np.einsum("ij,ij->i", centers, centers)
    np.maximum(F, 0, out=F)  # round-off can make tiny squared distances negative
    np.sqrt(F, out=F)
    # F now holds z; turn it into mean(z) - z in place, then clip at 0.
    mean = F.mean(axis=1, keepdims=True)
    np.subtract(mean, F, out=F)
    np.maximum(F, 0, out=F)
    return F


class KMeansTriangleFeatures(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """K-means features with the "triangle" encoding (Coates et al. 2011).

    :meth:`fit` learns ``n_components`` centroids ``c_k`` with
    :class:`~sklearn.cluster.MiniBatchKMeans`. :meth:`transform` encodes a
    sample ``x`` by its distances ``z_k = ||x - c_k||`` to the centroids as::

        f_k(x) = max(0, mean_j(z_j) - z_k)

    so a feature is active only for centroids closer than average, and about
    half the features are zero: a soft, sparse alternative to the one-hot
    k-means assignment that Coates, Lee & Ng found to work better than sparse
    autoencoders and RBMs as a single-layer image feature.

    The input is meant to be normalized and whitened patch vectors, as in the
    paper: ``make_pipeline(PatchNormalizer(), ZCAWhitening(),
    KMeansTriangleFeatures())``, convolved over images by
    :class:`ConvPoolTransformer`.

    Parameters
    ----------
    n_components : int, default=100
        Number ``k`` of centroids, i.e. of features.
    batch_size : int, default=1024
        Size of the mini-batches of :class:`~sklearn.cluster.MiniBatchKMeans`.
    max_iter : int, default=100
        Maximum number of passes over the data (epochs) of the mini-batch
        k-means, which also stops early when its smoothed inertia has not
        improved for 10 consecutive mini-batches.
    n_init : int, default=1
        Number of k-means++ initializations tried; the one with the lowest
        inertia on a subsample is run.
    tol : float, default=0.0
        Early stopping on the (normalized) change of the centroids, >= 0, as
        ``MiniBatchKMeans(tol=...)``; 0 disables it.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialization and the mini-batch sampling.
    verbose : int, default=0
        Verbosity passed on to :class:`~sklearn.cluster.MiniBatchKMeans`.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_components, `n_features_in_`)
        The centroids ``c_k``, float32 for float32 input, else float64.
    inertia_ : float
        Sum of squared distances of the training samples to their closest
        centroid.
    n_iter_ : int
        Passes over the data run by the mini-batch k-means.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :meth:`fit`, when ``X`` has string
        column names.

    See Also
    --------
    sklearn.cluster.MiniBatchKMeans : The clustering used by :meth:`fit`.
    SparseAutoencoderFeatures : The other single-layer feature learner here.
    ZCAWhitening : Whitening to apply to patches before clustering.
    PatchNormalizer : Per-patch brightness and contrast normalization.
    ConvPoolTransformer : Convolves the encoder over whole images.

    Notes
    -----
    The distances are computed with one matrix product per call as
    ``sqrt(max(0, ||x||^2 - 2 x.c_k + ||c_k||^2))``, in float32 for float32
    input (other input is converted to float64). On whitened data the
    centroids' squared norms are of the order of the dimension, so float32
    distances carry a relative error of about ``1e-6`` times ``||x||^2 /
    z_k^2``. :class:`ConvPoolTransformer` uses the same expansion: the cross
    term becomes a convolution, with the preceding whitening folded into it.

    Coates et al. run full-batch k-means on patches normalized with
    ``epsilon = 10`` (8-bit pixels) and ZCA-whitened with ``epsilon = 0.1``,
    with ``k = 1600`` centroids of 6x6 colour patches and sum pooling over the
    four quadrants of the feature maps for CIFAR-10 (77.9% test accuracy).

    References
    ----------
    .. [1] A. Coates, H. Lee and A. Y. Ng, "An Analysis of Single-Layer Networks
       in Unsupervised Feature Learning", AISTATS 2011.
    .. [2] D. Sculley, "Web-scale k-means clustering", WWW 2010 (mini-batch
       k-means).

    Examples
    --------
    >>> import numpy as np
    >>> from skaecnn import KMeansTriangleFeatures
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(500, 16))
    >>> km = KMeansTriangleFeatures(n_components=10, random_state=0)
    >>> F = km.fit_transform(X)
    >>> F.shape, km.cluster_centers_.shape
    ((500, 10), (10, 16))
    >>> bool(F.min() >= 0), bool((F == 0).any(axis=1).all())
    (True, True)
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=100,
        batch_size=1024,
        max_iter=100,
        n_init=1,
        tol=0.0,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.n_init = n_init
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the centroids of ``X`` with mini-batch k-means.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples (e.g. whitened patch vectors); at least
            ``n_components`` of them.
        y : None
            Ignored.

        Returns
        -------
        self : KMeansTriangleFeatures
            The fitted estimator.
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C")
        if X.shape[0] < self.n_components:
            raise ValueError(
                f"n_samples={X.shape[0]} should be >= n_components={self.n_components}: "
                "k-means needs at least one sample per centroid."
            )
        kmeans = MiniBatchKMeans(
            n_clusters=self.n_components,
            batch_size=self.batch_size,
            max_iter=self.max_iter,
            n_init=self.n_init,
            tol=self.tol,
            random_state=self.random_state,
            verbose=self.verbose,
        ).fit(X)
        self.cluster_centers_ = kmeans.cluster_centers_.astype(X.dtype, copy=False)
        self.inertia_ = float(kmeans.inertia_)
        self.n_iter_ = int(kmeans.n_iter_)
        return self

    @lazy_on_dask
    def transform(self, X):
        """Triangle activations ``max(0, mean_j(z_j) - z_k)``, ``z_k = ||x - c_k||``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to encode.

        Returns
        -------
        F : ndarray of shape (n_samples, n_components)
            Non-negative activations, float32 for float32 input, else float64.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return triangle_activation(X, self.cluster_centers_)

    def __skaecnn_fold__(self):
        """The triangle activation of ``||c_k||^2 - 2 x.c_k`` (see ``_folding``)."""
        check_is_fitted(self)
        C = self.cluster_centers_.astype(np.float64)
        return Fold(-2.0 * C.T, np.einsum("ij,ij->i", C, C), "triangle")

    @property
    def _n_features_out(self):
        return self.cluster_centers_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
