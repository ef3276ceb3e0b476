"""Convolution of learned patch features over whole images, with pooling."""

import math
import time
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, InvalidParameterError, StrOptions
from sklearn.utils._set_output import _wrap_data_with_container
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from ._autoencoder import SparseAutoencoderFeatures
from ._dask import lazy_on_dask
from ._folding import ENCODINGS, Encoding
from ._images import check_images, finite_range, open_images, sample_patches, working_dtype
from ._kernels import POOLINGS
from ._layer import build_layer
from ._normalization import PatchNormalizer
from ._threads import threads
from ._validation import DataRangeWarning, Interval, N_JOBS
from ._whitening import ZCAWhitening

# Working memory of one chunk of images when batch_size is None: for folded
# encoders, the chunk converted to the working dtype (the kernel's own buffers
# are per thread, in _kernels); for others, its patch matrix and the encoder's
# responses.
_CHUNK_BYTES = 32 * 2**20
# Coates et al.'s per-patch normalization epsilon for pixels in [0, 255].
_COATES_EPSILON = 10.0
# Pictures have at most 4 channels (grey, RGB, RGBA). More are taken as the
# pooled maps of a layer below, one channel per filter: per-window brightness
# and contrast mean nothing across such channels, whose scales differ (a unit
# that seldom fires has a small one), so the default encoder standardizes
# every value of the window instead.
_MAX_PICTURE_CHANNELS = 4


def _pair(value, name):
    """``value`` as a (rows, columns) pair of positive ints."""
    pair = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(pair) != 2 or not all(
        isinstance(v, Integral) and not isinstance(v, bool) and v >= 1 for v in pair
    ):
        raise InvalidParameterError(
            f"{name} must be an int >= 1 or a pair of them; got {value!r}."
        )
    return tuple(int(v) for v in pair)


def default_encoder(
    value_range, n_components=100, max_iter=400, random_state=None, verbose=0, n_channels=1
):
    """The encoder ConvPoolTransformer uses when given None.

    For pictures (at most 4 channels), PatchNormalizer with Coates et al.'s
    ``epsilon = 10`` for 8-bit pixels, scaled to pixels spanning
    ``value_range``; for stacks of maps (more channels), StandardScaler. Then
    ZCA whitening and UFLDL's linear decoder sparse autoencoder.
    """
    if n_channels > _MAX_PICTURE_CHANNELS:
        normalization = StandardScaler()
    else:
        normalization = PatchNormalizer(
            epsilon=_COATES_EPSILON * ((value_range or 1.0) / 255.0) ** 2
        )
    return make_pipeline(
        normalization,
        ZCAWhitening(epsilon=1.0),
        SparseAutoencoderFeatures(
            n_components=n_components,
            decoder="linear",
            sparsity_target=0.035,
            sparsity_weight=5.0,
            alpha=3e-3,
            max_iter=max_iter,
            random_state=random_state,
            verbose=verbose,
        ),
    )


class ConvPoolTransformer(TransformerMixin, BaseEstimator):
    """Learned patch features convolved over whole images, activated and pooled.

    :meth:`fit` draws ``n_patches`` random ``m x m`` patches from the images
    and fits a clone of ``encoder`` on them. :meth:`transform` is, by
    definition, ``encoder_.transform`` applied to every ``m x m`` window at
    stride 1 (a 'valid' convolution: one ``(h-m+1) x (w-m+1)`` map per encoder
    output), optionally encoded by ``activation``, followed by pooling of each
    map over ``pool_size`` regions every ``pool_stride`` from the top-left
    corner, dropping the remainder (by default non-overlapping: UFLDL's
    ``cnnPool``). The maps are unrolled into one vector per image.

    When the encoder is a chain of affine steps (:class:`ZCAWhitening`,
    :class:`~sklearn.preprocessing.StandardScaler`,
    :class:`~sklearn.decomposition.PCA`) ending in
    :class:`SparseAutoencoderFeatures`, :class:`~sklearn.neural_network.BernoulliRBM`,
    :class:`KMeansTriangleFeatures` or an affine step, optionally after a
    leading :class:`PatchNormalizer`, it is folded into filters ``filters_``
    and bias ``intercept_``, and a fused kernel computes convolution (BLAS),
    activation and pooling chunk by chunk. (For k-means, the distances
    ``||x' - c_k||`` of the whitened window ``x'`` come from
    ``||x'||^2 - 2 x'.c_k + ||c_k||^2``: the cross term is the convolution, and
    ``||x'||^2`` is computed in the same matrix product, or is a local sum
    without whitening.)
    Any other encoder is applied to chunks of extracted patches. Either way the
    un-pooled maps of the whole data set never exist at once.

    Parameters
    ----------
    encoder : estimator or None, default=None
        Transformer (or Pipeline of transformers) of patch vectors, cloned and
        fitted on the sampled patches. None uses
        ``make_pipeline(PatchNormalizer(epsilon=eps), ZCAWhitening(epsilon=1.0),
        SparseAutoencoderFeatures(n_components=100, decoder="linear",
        sparsity_target=0.035, sparsity_weight=5.0, alpha=3e-3))`` with
        ``eps = 10 * (R / 255)**2`` for pixel range ``R`` of the sampled
        patches: Coates et al.'s ``eps = 10`` for 8-bit pixels, scaled to the
        data. These are UFLDL's linear-decoder settings except the whitening
        epsilon, 1.0. It was first chosen on MNIST's held-out half (97.6%
        against 97.3% for 0.1, with 5 x 5 patches, pooling 4, StandardScaler
        and LogisticRegression), where no setting should be chosen; a 3-fold
        cross-validation on the training half since found 0.1, 0.3 and 1.0
        level, within the folds' deviation of about half a point. Input with
        more than 4 channels (more than grey, RGB or RGBA pictures have) is
        taken as the pooled maps of a layer below, whose
        channels are different filters on different scales: per-window
        normalization is replaced by
        :class:`~sklearn.preprocessing.StandardScaler` (every value of the
        window), which folds as well. As a second layer on the digits (3-fold
        cross-validation on the training half), its 100 pooled features
        classified 97.3% against 96.7% with per-window normalization, and it
        fitted in about half the time (see the user guide).
    patch_size : int or "auto", default="auto"
        Side ``m`` of the square patches (filters). ``"auto"`` takes
        ``min(max(3, s // 5), 8)`` for the shorter side ``s`` of the images
        (at most ``s``): 3 for 8 x 8 digits and 16 x 16 images, 5 for MNIST's
        28 x 28, 6 for CIFAR's 32 x 32 (Coates et al.'s size), 8 from 40 x 40
        up (UFLDL's). The size used is ``patch_size_``.
    n_patches : int, default=10000
        Number of random patches the encoder is fitted on.
    pool_size : int, (int, int) or "auto", default="auto"
        Height and width of the pooling regions. ``"auto"`` divides the
        convolution maps into a 3 x 3 grid, as UFLDL pools its STL-10 maps:
        ``max(1, (h - m + 1) // 3)`` rows and ``max(1, (w - m + 1) // 3)``
        columns (the remainder dropped). The size used is ``pool_size_``.
    pooling : {"mean", "max", "sum"}, default="mean"
        Pooling function.
    pool_stride : int, (int, int) or None, default=None
        Rows and columns between the starts of neighbouring pooling regions,
        from the top-left corner of the map; the last region ends within the
        map. None: ``pool_size``, regions that tile the map. A smaller stride
        overlaps the regions: on MNIST, 6 x 6 regions every 3 positions
        classified better than 4 x 4 every 4 (see the user guide).
    activation : {"soft", "split"} or None, default=None
        How the encoder's responses ``z`` become features. None: the
        encoder's own transform. The others replace the last step's
        activation (Coates & Ng, 2011), taking as ``z`` its input (a sparse
        autoencoder's or RBM's ``W x + b``; PCA's outputs) or, for
        :class:`KMeansTriangleFeatures`, the responses ``x'.c_k / ||c_k||``
        of the unit-length centroids: ``"soft"`` is the soft threshold
        ``max(0, z - alpha)``, ``"split"`` the polarity split ``[max(0, z -
        alpha), max(0, -z - alpha)]``, ``2k`` features from ``k`` responses.
        Both fold into the filters; an encoder whose last step cannot be
        folded has its output thresholded.
    alpha : float, default=0.25
        Threshold of the ``"soft"`` and ``"split"`` activations (unused by
        None), in the units of the responses.
    image_shape : tuple or None, default=None
        ``(h, w)`` or ``(h, w, c)`` of the images when ``X`` is 2-D
        ``(n, h*w*c)``; one entry may be -1, inferred from the width as in
        :func:`numpy.reshape` (``(1, -1)`` takes rows as 1-D signals). None
        infers a square single-channel shape; rows that look like ``h x h``
        RGBA images (as many values as ``2h x 2h`` grey ones, every fourth
        value constant like an alpha channel) are refused, naming both shapes.
    flatten : bool, default=True
        Return ``(n, ph*pw*k)`` rows; otherwise ``(n, ph, pw, k)`` maps, which a
        second ConvPoolTransformer takes as images with ``k`` channels. Rows
        follow ``set_output`` (a DataFrame whose columns are
        :meth:`get_feature_names_out`); maps stay an ndarray whatever the
        output container, as a DataFrame holds 2-D data only, so stacked
        layers work under ``set_output(transform="pandas")``.
    batch_size : int or None, default=None
        Images per chunk in :meth:`transform`; None sizes chunks to about
        32 MiB of working memory.
    n_jobs : int or None, default=None
        Threads for the kernels and BLAS; None or -1 uses all cores.
    random_state : int, RandomState instance or None, default=None
        Seeds patch sampling and, for the default encoder, its initialization.
    verbose : int, default=0
        If positive, report patch sampling and the encoder's progress in
        :meth:`fit`, and chunks done, images/s and time left in
        :meth:`transform`.

    Attributes
    ----------
    encoder_ : estimator
        The fitted clone of ``encoder``.
    filters_ : ndarray of shape (k, m, m, c) or None
        The folded filters in image space (preprocessing included), which the
        kernel convolves, in float64; None when the encoder cannot be folded.
        For k-means, the centroids seen from the image: ``z_k^2 = ||x'||^2 -
        2 filters_[k].x + intercept_[k]`` for the (normalized) window ``x``.
    intercept_ : ndarray of shape (k,) or None
        The folded bias; None when the encoder cannot be folded.
    layer_ : ConvPoolLayer
        The fitted computation (window size, channels, the folded encoding or
        ``encoder_``, activation, pooling) that :meth:`transform`,
        :meth:`convolve`, the plots and :class:`ConvNetClassifier` share.
    path_ : {"folded", "generic"}
        Whether the encoder was folded into filters (fused kernel) or is
        applied to extracted windows. A fold that does not reproduce
        ``encoder_.transform`` on the fitted patches is not used: the
        generic path is taken with a warning naming the step.
    output_shape_ : tuple of int
        ``(ph, pw, k)``, the pooled maps of one image.
    patch_size_ : int
        The patch side ``m`` used (``patch_size``, or its "auto" value).
    pool_size_ : (int, int)
        The pooling regions used (``pool_size``, or its "auto" value).
    image_shape_ : tuple of int
        ``(h, w, c)`` of the training images.
    value_range_ : (float, float)
        Smallest and largest value of the sampled training patches.
        :meth:`transform` warns (:class:`~skaecnn.DataRangeWarning`) when its
        input reaches beyond this range by more than its width, as 8-bit
        pixels into a model fitted on pixels scaled to [0, 1] do.
    n_features_in_ : int
        ``h * w * c``.

    See Also
    --------
    SparseAutoencoderFeatures : The default patch encoder.
    skaecnn.plotting.plot_filters : Picture of ``filters_``.

    References
    ----------
    .. [1] UFLDL Tutorial, "Feature extraction using convolution" and "Pooling".
    .. [2] A. Coates, H. Lee and A. Y. Ng, "An Analysis of Single-Layer Networks
       in Unsupervised Feature Learning", AISTATS 2011.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skaecnn import ConvPoolTransformer, SparseAutoencoderFeatures
    >>> X = load_digits().images / 16.0
    >>> conv = ConvPoolTransformer(
    ...     SparseAutoencoderFeatures(n_components=16, tol=1e-3, random_state=0),
    ...     patch_size=3, n_patches=2000, pool_size=3, random_state=0)
    >>> F = conv.fit_transform(X)
    >>> F.shape, conv.output_shape_, conv.filters_.shape
    ((1797, 64), (2, 2, 16), (16, 3, 3, 1))
    """

    _parameter_constraints: dict = {
        "encoder": [None, HasMethods(["fit", "transform"])],
        "patch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "n_patches": [Interval(Integral, 1, None, closed="left")],
        # A pair is checked by _pair, with a message naming both forms.
        "pool_size": [
            Interval(Integral, 1, None, closed="left"), tuple, list, np.ndarray,
            StrOptions({"auto"}),
        ],
        "pooling": [StrOptions(set(POOLINGS))],
        "pool_stride": [None, Interval(Integral, 1, None, closed="left"), tuple, list, np.ndarray],
        "activation": [None, StrOptions(set(ENCODINGS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "image_shape": [None, tuple, list],
        "flatten": ["boolean"],
        "batch_size": [None, Interval(Integral, 1, None, closed="left")],
        "n_jobs": N_JOBS,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        encoder=None,
        patch_size="auto",
        n_patches=10000,
        pool_size="auto",
        pooling="mean",
        pool_stride=None,
        activation=None,
        alpha=0.25,
        image_shape=None,
        flatten=True,
        batch_size=None,
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.encoder = encoder
        self.patch_size = patch_size
        self.n_patches = n_patches
        self.pool_size = pool_size
        self.pooling = pooling
        self.pool_stride = pool_stride
        self.activation = activation
        self.alpha = alpha
        self.image_shape = image_shape
        self.flatten = flatten
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def _pool_stride(self):
        """``pool_stride`` as a pair, or None (regions that tile the map)."""
        return None if self.pool_stride is None else _pair(self.pool_stride, "pool_stride")

    def _geometry(self, image_shape):
        """``(patch_size, pool_size)`` for images of ``image_shape``, checked:
        the parameters, or their "auto" values."""
        h, w, _ = image_shape
        m = min(max(3, min(h, w) // 5), 8, h, w) if self.patch_size == "auto" else self.patch_size
        if m > h or m > w:
            raise ValueError(
                f"patch_size={m} is larger than the images ({h} x {w}); use at most "
                f"{min(h, w)}, or 'auto'."
            )
        if self.pool_size == "auto":
            return m, (max(1, (h - m + 1) // 3), max(1, (w - m + 1) // 3))
        ph, pw = _pair(self.pool_size, "pool_size")
        if ph > h - m + 1 or pw > w - m + 1:
            raise ValueError(
                f"pool_size={self.pool_size!r} is larger than the "
                f"{h - m + 1} x {w - m + 1} convolution maps (images {h} x {w}, "
                f"patch_size={m}); use at most ({h - m + 1}, {w - m + 1}), or 'auto'."
            )
        return m, (ph, pw)

    # The encoder is the user's: its own fit validates its parameters.
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Sample patches from the images and fit the encoder on them.

        Parameters
        ----------
        X : array-like of shape (n, h, w), (n, h, w, c) or (n, h*w*c)
            Training images, any real dtype. Of a memory map or a chunked
            array (dask, zarr, h5py) only the images the sampled patches
            come from are read (see the "Scaling out" page).
        y : None
            Ignored.

        Returns
        -------
        self : ConvPoolTransformer
            The fitted transformer.
        """
        if self.pool_size != "auto":
            _pair(self.pool_size, "pool_size")
        pool_stride = self._pool_stride()
        images = open_images(X, self.image_shape)
        patch_size, pool_size = self._geometry(images.shape[1:])
        rng = check_random_state(self.random_state)
        start = time.perf_counter()
        patches = sample_patches(
            images, patch_size, self.n_patches, rng, working_dtype(images.dtype)
        )
        self.value_range_ = (float(patches.min()), float(patches.max()))
        if self.verbose:
            print(
                f"[{type(self).__name__}] Sampled {self.n_patches} patches of "
                f"{patches.shape[1]} values from {images.shape[0]} images "
                f"in {time.perf_counter() - start:.2f} s; fitting the encoder."
            )
        if self.encoder is None:
            self.encoder_ = default_encoder(
                float(np.ptp(patches)),
                random_state=rng.randint(np.iinfo(np.int32).max),
                verbose=self.verbose,
                n_channels=images.shape[3],
            )
        else:
            self.encoder_ = clone(self.encoder)
        with threads(self.n_jobs):
            self.encoder_.fit(patches)
            self.layer_, reason, mismatch = build_layer(
                self.encoder_, patches, patch_size, images.shape[3], self.pooling,
                pool_size, pool_stride,
                None if self.activation is None else Encoding(self.activation, self.alpha),
            )
        self.path_ = "folded" if self.layer_.folded else "generic"
        if mismatch:
            warnings.warn(
                f"{type(self).__name__} takes the generic path (encoder_.transform on "
                f"every window): {reason}.",
                UserWarning,
                stacklevel=2,
            )
        self.image_shape_ = images.shape[1:]
        self.n_features_in_ = int(np.prod(self.image_shape_))
        self.output_shape_ = self.layer_.output_shape(*self.image_shape_[:2])
        if self.verbose:
            path = (
                "folded into filters (fused kernel)" if reason is None
                else f"generic path, as {reason}"
            )
            print(
                f"[{type(self).__name__}] Fitted in {time.perf_counter() - start:.2f} s; "
                f"{self.layer_.n_outputs} features per window, output {self.output_shape_}; "
                f"{path}."
            )
        return self

    def _check_transform_input(self, X, warn_range=True):
        """``X`` as checked (n, h, w, c) images; with ``warn_range``, the
        DataRangeWarning of :meth:`transform` from the same pass that refuses
        NaN and infinity."""
        # scikit-learn's check reads the estimator's tags and attributes: 5 us,
        # as much as the rest of the checks of a 1-image transform.
        if not hasattr(self, "layer_"):
            check_is_fitted(self)
        try:
            images = check_images(X, self.image_shape, finite=False)
        except ValueError:
            error = self._one_image_error(X)
            if error is None:
                raise
            raise error from None
        n_features = math.prod(images.shape[1:])
        if n_features != self.n_features_in_:
            raise self._one_image_error(X) or ValueError(
                f"X has {n_features} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input (images of shape "
                f"{self.image_shape_}, height x width x channels)."
            )
        if images.shape[1:] != self.image_shape_:
            raise ValueError(
                f"X holds images of shape {images.shape[1:]} (height, width, channels), "
                f"but {type(self).__name__} was fitted on {self.image_shape_}."
            )
        low, high = finite_range(images)
        if warn_range:
            self._check_value_range(low, high)
        return images

    def _one_image_error(self, X):
        """The error for ``X`` refused as a batch when it is one image, or None.

        One image where a batch is expected is otherwise read as a batch of
        rows and refused for its width.
        """
        shape, (h, w, c) = np.asarray(X).shape, self.image_shape_
        if shape == (h, w, c) or (c == 1 and shape == (h, w)):
            return ValueError(
                f"X is one image of shape {shape}, but {type(self).__name__} expects a "
                f"batch of images: pass X[None] (or X.reshape((1,) + X.shape))."
            )
        return None

    @lazy_on_dask
    def transform(self, X):
        """Convolve, activate and pool: one feature vector (or map stack) per image.

        Parameters
        ----------
        X : array-like of shape (n, h, w), (n, h, w, c) or (n, h*w*c)
            Images of the shape seen in :meth:`fit`.

        Returns
        -------
        features : ndarray or DataFrame of shape (n, ph*pw*k), or ndarray (n, ph, pw, k) if not flatten
            Pooled maps, float32 for float32 input, else float64; rows in the
            container of ``set_output``, maps always an ndarray (see ``flatten``).

        Warns
        -----
        DataRangeWarning
            When ``X`` reaches beyond ``value_range_`` by more than its width.
        """
        images = self._check_transform_input(X)
        maps = self._convolve_pool(images, self.layer_)
        if not self.flatten:
            return maps
        return _wrap_data_with_container("transform", maps.reshape(len(maps), -1), X, self)

    def fit_transform(self, X, y=None):
        """Fit on the images, then :meth:`transform` them.

        Parameters
        ----------
        X : array-like of shape (n, h, w), (n, h, w, c) or (n, h*w*c)
            Training images, any real dtype.
        y : None
            Ignored.

        Returns
        -------
        features : ndarray or DataFrame of shape (n, ph*pw*k), or ndarray (n, ph, pw, k) if not flatten
            As :meth:`transform` returns them.
        """
        return self.fit(X, y).transform(X)

    @lazy_on_dask
    def convolve(self, X):
        """The activation maps before pooling, one per encoder output.

        Parameters
        ----------
        X : array-like of shape (n, h, w), (n, h, w, c) or (n, h*w*c)
            Images of the shape seen in :meth:`fit`.

        Returns
        -------
        maps : ndarray of shape (n, h-m+1, w-m+1, k)
            ``encoder_.transform`` of every window (memory grows with all of it:
            meant for looking at a few images).
        """
        return self._convolve_pool(
            self._check_transform_input(X), self.layer_.with_pooling(pool_size=(1, 1))
        )

    def _convolve_pool(self, images, layer):
        n, h, w, c = images.shape
        n_ph, n_pw, k = layer.output_shape(h, w)
        dtype = working_dtype(images.dtype)
        out = np.empty((n, n_ph, n_pw, k), dtype=dtype)
        if layer.folded:
            # The fused kernel keeps its working memory per thread; chunks only
            # bound the images converted to ``dtype`` at a time. It limits BLAS
            # itself where its threads run matrix products of their own; one
            # image in the calling thread runs them on the threads allowed.
            chunk = self.batch_size or max(1, _CHUNK_BYTES // (h * w * c * dtype.itemsize))
        else:
            # The encoder sees a chunk's whole patch matrix and returns its responses.
            positions = int(np.prod(layer.map_extent(n_ph, n_pw)))
            d = layer.patch_size**2 * c
            chunk = self.batch_size or max(1, _CHUNK_BYTES // (positions * (d + k) * dtype.itemsize))
        start = last_report = time.perf_counter()
        with threads(self.n_jobs):
            for begin in range(0, n, chunk):
                nb = min(chunk, n - begin)
                # Converted within the call, so that one chunk's copy at most is alive.
                batch = np.ascontiguousarray(images[begin : begin + nb], dtype=dtype)
                layer.forward(batch, out[begin : begin + nb])
                del batch
                now = time.perf_counter()
                if self.verbose and (now - last_report > 1.0 or begin + nb == n):
                    last_report = now
                    self._report_progress(begin + nb, n, now - start)
        return out

    def _check_value_range(self, low, high):
        fit_low, fit_high = self.value_range_
        width = fit_high - fit_low
        if low < fit_low - width or high > fit_high + width:
            warnings.warn(
                f"X holds values in [{low:.4g}, {high:.4g}], far outside the range "
                f"[{fit_low:.4g}, {fit_high:.4g}] of the patches {type(self).__name__} "
                "was fitted on: its features describe such images poorly (as with "
                "8-bit pixels into a model fitted on pixels / 255). Scale X as the "
                "training images were.",
                DataRangeWarning,
                stacklevel=5,  # the caller of transform
            )

    def _report_progress(self, done, total, elapsed):
        rate = done / elapsed if elapsed > 0 else float("inf")
        left = (total - done) / rate if rate > 0 else 0.0
        print(
            f"[{type(self).__name__}] {done}/{total} images, {rate:.0f} images/s, "
            f"{left:.1f} s left"
        )

    @property
    def filters_(self):
        """Folded filters (k, m, m, c) in image space, or None (see Attributes)."""
        check_is_fitted(self)
        return self.layer_.filters

    @property
    def intercept_(self):
        """Folded bias (k,), or None (see Attributes)."""
        check_is_fitted(self)
        return self.layer_.intercept

    @property
    def patch_size_(self):
        """The patch side ``m`` used (see Attributes)."""
        check_is_fitted(self)
        return self.layer_.patch_size

    @property
    def pool_size_(self):
        """The pooling regions ``(ph, pw)`` used (see Attributes)."""
        check_is_fitted(self)
        return self.layer_.pool_size

    def get_feature_names_out(self, input_features=None):
        """Return the names ``f{filter}_r{row}_c{column}`` of the features, in order.

        Feature ``(i * pw + j) * k + f`` is the activation of filter ``f``
        pooled over region ``(i, j)``, counted from the top left.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against the input seen in :meth:`fit`: the names
            describe filters and positions, not pixels.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``ph * pw * k`` names, e.g. ``"f12_r3_c4"``: filter 12, pooling
            region in row 3, column 4.
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features, generate_names=False)
        ph, pw, k = self.output_shape_
        return np.asarray(
            [f"f{f}_r{i}_c{j}" for i in range(ph) for j in range(pw) for f in range(k)],
            dtype=object,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


# scikit-learn wraps the transform and fit_transform a class defines so that
# they return the container of set_output. A DataFrame holds 2-D data only:
# transform wraps the rows itself and returns maps (flatten=False) as arrays.
ConvPoolTransformer.transform = ConvPoolTransformer.transform.__wrapped__
ConvPoolTransformer.fit_transform = ConvPoolTransformer.fit_transform.__wrapped__
