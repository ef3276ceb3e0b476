"""Layers of ConvPoolTransformers fitted greedily, their pooled features concatenated."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from ._convpool import ConvPoolTransformer
from ._validation import N_JOBS


class ConvPoolStack(TransformerMixin, BaseEstimator):
    """Greedy stack of convolutional layers whose pooled features are concatenated.

    :meth:`fit` fits a clone of every layer without labels, bottom first:
    the first on the images, each next one on the pooled maps ``(n, ph, pw,
    k)`` of the layer below, which it takes as images with ``k`` channels
    (UFLDL's greedy layer-wise training). :meth:`transform` returns, per
    image, the pooled features of every layer side by side, the first
    layer's first, as the scattering transform concatenates its orders: the
    lower layers keep the detail of small patterns, the higher ones describe
    how the patterns combine over larger regions.

    This is ``make_pipeline(layer_1, ..., layer_n)`` with ``flatten=False``
    below the top, with every layer's output kept. A layer with
    ``encoder=None`` above one of more than 4 filters gets
    :class:`ConvPoolTransformer`'s default for stacks of maps
    (standardization instead of per-window normalization, see its
    ``encoder`` parameter).

    Parameters
    ----------
    layers : list of ConvPoolTransformer
        The layers, bottom first, at least one. Their ``flatten`` is ignored
        (each passes maps to the next), and so is the ``image_shape`` of the
        layers above the first (they take maps). Each layer's pooled maps
        must be at least as large as the next layer's patches.
    concatenate : bool, default=True
        Return the features of every layer, concatenated; False returns the
        top layer's only.
    n_jobs : int or None, default=None
        Threads of every layer's kernels and BLAS, replacing the layers' own
        ``n_jobs``; None or -1 uses all cores.
    random_state : int, RandomState instance or None, default=None
        Seeds the layers whose own ``random_state`` is None (their patch
        sampling and default encoders), each from one draw of this state in
        turn; layers with a ``random_state`` keep it.
    verbose : int, default=0
        If positive, report each layer's fit and the shape of its input.

    Attributes
    ----------
    layers_ : list of ConvPoolTransformer
        The fitted clones of ``layers``, each returning maps (``flatten=False``).
    n_features_in_ : int
        ``h * w * c`` of the training images.
    image_shape_ : tuple of int
        ``(h, w, c)`` of the training images.

    See Also
    --------
    ConvPoolTransformer : One layer.
    ConvNetClassifier : The same greedy stack, then fine-tuned on labels.

    References
    ----------
    .. [1] UFLDL Tutorial, "Stacked Autoencoders".
    .. [2] A. Coates and A. Y. Ng, "Selecting Receptive Fields in Deep
       Networks", NIPS 2011.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skaecnn import ConvPoolStack, ConvPoolTransformer, SparseAutoencoderFeatures
    >>> X = load_digits().images / 16.0
    >>> stack = ConvPoolStack([
    ...     ConvPoolTransformer(SparseAutoencoderFeatures(16, tol=1e-3),
    ...                         patch_size=3, n_patches=2000, pool_size=2),
    ...     ConvPoolTransformer(patch_size=2, n_patches=2000, pool_size=2),
    ... ], random_state=0)
    >>> F = stack.fit_transform(X)
    >>> [layer.output_shape_ for layer in stack.layers_], F.shape
    ([(3, 3, 16), (1, 1, 100)], (1797, 244))
    >>> stack.get_feature_names_out()[[0, 144]]
    array(['layer0_f0_r0_c0', 'layer1_f0_r0_c0'], dtype=object)
    """

    _parameter_constraints: dict = {
        "layers": [list],
        "concatenate": ["boolean"],
        "n_jobs": N_JOBS,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, layers, *, concatenate=True, n_jobs=None, random_state=None, verbose=0):
        self.layers = layers
        self.concatenate = concatenate
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def _check_layers(self):
        if not self.layers:
            raise ValueError("layers must hold at least one ConvPoolTransformer; got [].")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, ConvPoolTransformer):
                raise TypeError(
                    f"layers[{i}] must be a ConvPoolTransformer; got {type(layer).__name__}."
                )

    def _fit(self, X):
        """Fit the layers greedily; the pooled maps of every layer on ``X``."""
        self._check_layers()
        rng = check_random_state(self.random_state)
        self.layers_, maps = [], []
        inputs = X
        for i, layer in enumerate(self.layers):
            layer = clone(layer).set_params(flatten=False, n_jobs=self.n_jobs)
            if i > 0:
                layer.set_params(image_shape=None)
            if layer.random_state is None and self.random_state is not None:
                layer.set_params(random_state=rng.randint(np.iinfo(np.int32).max))
            if self.verbose:
                print(f"[{type(self).__name__}] Fitting layers[{i}] on inputs of shape "
                      f"{np.shape(inputs)[1:]}.")
            try:
                inputs = layer.fit_transform(inputs)
            except ValueError as exc:
                if i == 0:
                    raise
                # Name the layer: its own message only knows the maps it was given.
                raise ValueError(
                    f"layers[{i}] cannot be fitted on the pooled maps of layers[{i - 1}], "
                    f"of shape {inputs.shape[1:]} (height, width, channels): {exc}"
                ) from exc
            self.layers_.append(layer)
            maps.append(inputs)
        first = self.layers_[0]
        self.image_shape_ = first.image_shape_
        self.n_features_in_ = first.n_features_in_
        return maps

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit every layer without labels, each on the pooled maps of the one below.

        Parameters
        ----------
        X : array-like of shape (n, h, w), (n, h, w, c) or (n, h*w*c)
            Training images, as the first layer takes them.
        y : None
            Ignored.

        Returns
        -------
        self : ConvPoolStack
            The fitted stack.
        """
        self._fit(X)
        return self

    @_fit_context(prefer_skip_nested_validation=False)
    def fit_transform(self, X, y=None):
        """Fit the layers and return the features of ``X``, computed once.

        Parameters
        ----------
        X : array-like of shape (n, h, w), (n, h, w, c) or (n, h*w*c)
            Training images.
        y : None
            Ignored.

        Returns
        -------
        features : ndarray or DataFrame of shape (n, n_features_out)
            As :meth:`transform` returns them.
        """
        return self._features(self._fit(X))

    def transform(self, X):
        """Return the pooled features of every layer (or the top one's) per image.

        Parameters
        ----------
        X : array-like of shape (n, h, w), (n, h, w, c) or (n, h*w*c)
            Images of the shape seen in :meth:`fit`.

        Returns
        -------
        features : ndarray or DataFrame of shape (n, n_features_out)
            The flattened pooled maps of ``layers_[0]``, then ``layers_[1]``,
            ... (with ``concatenate``), in the order of
            :meth:`get_feature_names_out`; float32 for float32 input, else
            float64.
        """
        check_is_fitted(self)
        maps = []
        inputs = X
        for layer in self.layers_:
            inputs = layer.transform(inputs)
            maps.append(inputs)
        return self._features(maps)

    def _features(self, maps):
        if not self.concatenate:
            maps = maps[-1:]
        return np.hstack([m.reshape(len(m), -1) for m in maps])

    def get_feature_names_out(self, input_features=None):
        """Return the names ``layer{i}_f{filter}_r{row}_c{column}`` of the features.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against the input seen in :meth:`fit`: the names
            describe layers, filters and positions, not pixels.

        Returns
        -------
        feature_names_out : ndarray of str objects
            The names of :meth:`ConvPoolTransformer.get_feature_names_out`
            of every layer returned, prefixed by ``layer{i}_``, e.g.
            ``"layer1_f12_r0_c1"``: filter 12 of ``layers_[1]``, pooling
            region in row 0, column 1.
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features, generate_names=False)
        first = 0 if self.concatenate else len(self.layers_) - 1
        names = [
            f"layer{i}_{name}"
            for i, layer in enumerate(self.layers_[first:], start=first)
            for name in layer.get_feature_names_out()
        ]
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
