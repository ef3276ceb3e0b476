"""A convolutional network classifier: layers pretrained without labels, then trained end to end."""

import copy
import dataclasses
import time
import warnings
from numbers import Integral, Real

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.utils import assert_all_finite, check_random_state, gen_batches
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ._autoencoder import SparseAutoencoderFeatures
from ._backprop import (
    ACTIVATION_CODES, POOLING_CODES, ConvStage, Network, _log_softmax, adam_update,
    signed_power,
)
from ._convpool import ConvPoolTransformer, default_encoder
from ._folding import FoldedEncoder
from ._images import check_images, working_dtype
from ._threads import threads
from ._validation import Interval, N_JOBS
from ._whitening import ZCAWhitening

# Adam's moment decay rates and denominator guard (Kingma & Ba, 2015), and
# the momentum of the "sgd" solver (UFLDL's minFuncSGD).
_BETA1, _BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8
_MOMENTUM = 0.9
_ACTIVATIONS, _POOLINGS = ACTIVATION_CODES, POOLING_CODES


def default_layers(image_shape):
    """The layers ConvNetClassifier pretrains when given ``layers=None``.

    Images of at least 20 pixels a side get two layers: 5 x 5 filters, k=64,
    mean pooling 2; then 3 x 3 filters on those maps, k=128, mean pooling 2.
    Smaller images get one layer of 3 x 3 filters, k=100, mean pooling 3.
    (Chosen by cross-validation on the training halves of the MNIST and
    digits splits of ``benchmarks/accuracy.py``.)
    Each layer's encoder is ZCA whitening and UFLDL's linear-decoder sparse
    autoencoder; the first also normalizes every window
    (:func:`skaecnn._convpool.default_encoder`).
    """
    h, w, _ = image_shape
    if min(h, w) >= 20:
        return [_DefaultLayer(5, 64, 2, first=True), _DefaultLayer(3, 128, 2, first=False)]
    return [_DefaultLayer(3, 100, 3, first=True)]


class _DefaultLayer:
    """The recipe of one default layer; the encoder's scale depends on the data."""

    def __init__(self, patch_size, n_components, pool_size, first):
        self.patch_size, self.n_components = patch_size, n_components
        self.pool_size, self.first = pool_size, first

    def build(self, value_range, random_state):
        if self.first:
            encoder = default_encoder(value_range, n_components=self.n_components,
                                      random_state=random_state)
        else:
            # The maps are not normalized per window: the default was measured
            # with whitening only.
            encoder = make_pipeline(
                ZCAWhitening(epsilon=0.1),
                SparseAutoencoderFeatures(
                    n_components=self.n_components, decoder="linear", sparsity_target=0.035,
                    sparsity_weight=5.0, alpha=3e-3, max_iter=400, random_state=random_state,
                ),
            )
        return ConvPoolTransformer(encoder, patch_size=self.patch_size,
                                   pool_size=self.pool_size, random_state=random_state)


def _stage_of(layer, index, input_shape, dtype):
    """The :class:`ConvStage` of a fitted ConvPoolTransformer, or a ValueError saying why not."""
    folded = layer.layer_.encoder
    if not layer.layer_.folded:
        raise ValueError(
            f"layers[{index}] cannot be fine-tuned: its encoder "
            f"{layer.encoder_!r} does not fold into filters (the generic path "
            "applies encoder_.transform to patches, which has no gradient here)."
        )
    if folded.activation not in _ACTIVATIONS:
        raise ValueError(
            f"layers[{index}] cannot be fine-tuned: its activation is "
            f"{folded.activation!r} (k-means triangle features are not "
            f"differentiated); fine-tuning supports {sorted(_ACTIVATIONS)}."
        )
    if tuple(input_shape) != tuple(layer.image_shape_):
        raise ValueError(
            f"layers[{index}] was fitted on inputs of shape {layer.image_shape_}, "
            f"but receives {tuple(input_shape)} here."
        )
    return ConvStage(
        np.array(folded.weights, dtype=dtype), np.array(folded.bias, dtype=dtype),
        layer.patch_size_, layer.layer_.pool_size, _POOLINGS[layer.pooling],
        _ACTIVATIONS[folded.activation], folded.normalize_epsilon, tuple(input_shape),
        layer.layer_.stride,
    )


def _carry_filters(layer, stage):
    """``layer`` with the stage's trained filters and bias folded in (float64)."""
    folded = layer.layer_.encoder
    layer.layer_ = dataclasses.replace(layer.layer_, encoder=FoldedEncoder(
        stage.weights.astype(np.float64), stage.bias.astype(np.float64), folded.activation,
        folded.normalize_epsilon, folded.n_outputs,
    ))
    return layer


def _shift(images, max_shift, rng):
    """Each image translated by up to ``max_shift`` pixels each way, zero-padded."""
    n, h, w, _ = images.shape
    out = np.zeros_like(images)
    dy = rng.randint(-max_shift, max_shift + 1, size=n)
    dx = rng.randint(-max_shift, max_shift + 1, size=n)
    for i in range(n):
        ys, yd = (slice(0, h - dy[i]), slice(dy[i], h)) if dy[i] >= 0 else (slice(-dy[i], h), slice(0, h + dy[i]))
        xs, xd = (slice(0, w - dx[i]), slice(dx[i], w)) if dx[i] >= 0 else (slice(-dx[i], w), slice(0, w + dx[i]))
        out[i, yd, xd] = images[i, ys, xs]
    return out


class ConvNetClassifier(ClassifierMixin, BaseEstimator):
    """Convolutional network whose layers are pretrained without labels, then fine-tuned.

    UFLDL's last step: every convolutional layer (a
    :class:`ConvPoolTransformer`) is first fitted greedily without labels --
    the first on the training images, each next one on the pooled maps of the
    one below -- then the stack, with optional fully connected ReLU layers and
    a softmax regression on top, is trained end to end by backpropagation on
    the labels. Fine-tuning moves the filters from reconstructing patches to
    separating classes. Without hidden layers the softmax starts from a
    logistic regression fitted on the fixed pretrained features (UFLDL's
    order), so fine-tuning starts from the best the pretrained layers give.

    The objective is the mean cross-entropy plus ``alpha / 2`` times the
    squared norm of all weights (filters and fully connected weights; biases
    are not decayed). Each layer is trained as the folded computation its
    :class:`ConvPoolTransformer` runs: filters and bias in image space
    (``filters_``, ``intercept_``), its activation (sigmoid, identity, or the
    ReLU of the ``"soft"`` and ``"split"`` encodings), its pooling. A leading :class:`PatchNormalizer` normalizes every window in
    the kernel; on a layer above the first the normalization is
    differentiated like the rest.

    Parameters
    ----------
    layers : list of ConvPoolTransformer or None, default=None
        The convolutional layers, bottom first; their ``flatten`` is ignored
        (each passes maps to the next). None uses two layers for images at
        least 20 pixels a side (5 x 5 filters, k=64, mean pooling 2; then
        3 x 3, k=128, mean pooling 2), otherwise one (3 x 3, k=100, mean
        pooling 3); see :func:`skaecnn._convnet.default_layers`. The encoders
        must fold into filters with a sigmoid or identity activation, or
        ``activation="soft"`` or ``"split"`` (k-means triangle layers cannot
        be fine-tuned), optionally after a leading :class:`PatchNormalizer`;
        any ``pool_stride`` (overlapping regions pass each position's error
        to every region holding it).
    hidden_layer_sizes : tuple of int, default=()
        Fully connected ReLU layers between the last pooled maps and the
        softmax, as in :class:`~sklearn.neural_network.MLPClassifier`.
    alpha : float, default=1e-4
        Weight decay: ``alpha / 2`` times the squared norm of all weights.
    dropout : float, default=0.0
        Fraction of the flattened maps and of the hidden units zeroed at
        random in each training minibatch (the rest scaled by
        ``1 / (1 - dropout)``), in [0, 1). Minibatch solvers only.
    max_shift : int, default=0
        Each training image of each minibatch is translated by a random
        number of pixels in ``[-max_shift, max_shift]`` along each axis,
        zero-padded. Minibatch solvers only.
    power : float, default=1.0
        The flattened maps of the last layer are raised to this power,
        ``sign(f) * |f|**power``, before they are standardized: 0.5, the
        square root of pooled features, compresses the large values of
        frequent filters (see "Encoding and pooling" in the user guide).
    solver : {"adam", "sgd", "lbfgs"}, default="adam"
        ``"adam"`` or ``"sgd"`` (momentum 0.9, UFLDL's ``minFuncSGD``) on
        minibatches; ``"lbfgs"``: full-batch L-BFGS-B through
        :func:`scipy.optimize.minimize` (no dropout or shifts).
    batch_size : int, default=64
        Images per minibatch (and per chunk of :meth:`predict`).
    learning_rate_init : float, default=1e-3
        Step size of ``"adam"`` and ``"sgd"``, > 0.
    max_iter : int, default=30
        Epochs (minibatch solvers) or iterations (``"lbfgs"``).
    early_stopping : bool, default=False
        Set aside ``validation_fraction`` of the training images
        (stratified) and stop when their accuracy has not improved by
        ``tol`` for ``n_iter_no_change`` epochs, keeping the best model.
        Minibatch solvers only.
    validation_fraction : float, default=0.1
        Fraction of the training data set aside with ``early_stopping``.
    n_iter_no_change : int, default=5
        Epochs without an improvement of ``tol`` (of the training loss, or
        of the validation score with ``early_stopping``) before stopping.
    tol : float, default=1e-4
        Tolerance of the stopping rules (and of L-BFGS's gradient).
    pretrain : True or "keep", default=True
        True fits a clone of every layer without labels; ``"keep"`` takes
        already fitted layers as they are (e.g. pretrained on a large
        unlabelled set) and fits only the unfitted ones above them.
    random_state : int, RandomState instance or None, default=None
        Seeds the pretraining, the initialization of the fully connected
        layers, the minibatch order, dropout, shifts and the validation split.
    verbose : int, default=0
        If positive, print per epoch the loss, validation score, images/s and
        elapsed time.
    n_jobs : int or None, default=None
        Threads of the kernels; None or -1 uses all cores.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    layers_ : list of ConvPoolTransformer
        Fitted copies of the layers carrying the fine-tuned filters:
        ``filters_``, ``intercept_``, :meth:`~ConvPoolTransformer.transform`
        and :func:`~skaecnn.plotting.plot_filters` use them (their
        ``encoder_`` is the pretrained encoder the filters started from).
    feature_mean_, feature_scale_ : ndarray of shape (n_inputs,)
        The flattened maps of the last layer (raised to ``power``) enter the
        fully connected layers as ``(f - feature_mean_) * feature_scale_``:
        standardized with the mean and standard deviation of the pretrained
        features of the training images (fixed during training; ``n_inputs =
        ph*pw*k``).
    coefs_ : list of ndarray
        Weights ``(inputs, outputs)`` of the fully connected layers, the
        softmax last.
    intercepts_ : list of ndarray
        Their biases.
    coef_ : ndarray of shape (n_classes, n_inputs)
        The softmax regression's weights (``coefs_[-1].T``).
    intercept_ : ndarray of shape (n_classes,)
        Its bias.
    loss_ : float
        The last epoch's mean minibatch objective (or L-BFGS's final one).
    loss_curve_ : list of float
        The objective of each epoch (or L-BFGS iteration).
    validation_scores_ : list of float or None
        Accuracy on the validation split after each epoch, with
        ``early_stopping``; None otherwise.
    best_validation_score_ : float or None
        The best of them (the model kept).
    n_iter_ : int
        Epochs or iterations run.
    n_features_in_ : int
        ``h * w * c`` of the training images.
    image_shape_ : tuple of int
        ``(h, w, c)`` of the training images.

    See Also
    --------
    ConvPoolTransformer : One layer, for fixed features and any classifier.
    sklearn.neural_network.MLPClassifier : The fully connected counterpart.

    Notes
    -----
    Float32 images train in float32; other input in float64.

    References
    ----------
    .. [1] UFLDL Tutorial, "Fine-tuning Stacked AEs" and "Convolutional
       Neural Network".

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skaecnn import ConvNetClassifier, ConvPoolTransformer, SparseAutoencoderFeatures
    >>> X, y = load_digits(return_X_y=True)
    >>> layer = ConvPoolTransformer(
    ...     SparseAutoencoderFeatures(n_components=8, tol=1e-3, random_state=0),
    ...     patch_size=3, n_patches=1000, pool_size=3, random_state=0)
    >>> clf = ConvNetClassifier(
    ...     [layer], max_iter=10, tol=5e-3, n_iter_no_change=2, random_state=0
    ... ).fit(X[:500] / 16, y[:500])
    >>> clf.layers_[0].filters_.shape, clf.coef_.shape
    ((8, 3, 3, 1), (10, 32))
    >>> round(clf.score(X[500:] / 16, y[500:]), 2) > 0.5
    True
    """

    _parameter_constraints = {
        "layers": [list, None],
        "hidden_layer_sizes": [tuple, list],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "max_shift": [Interval(Integral, 0, None, closed="left")],
        "power": [Interval(Real, 0, None, closed="neither")],
        "solver": [StrOptions({"adam", "sgd", "lbfgs"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "pretrain": [StrOptions({"keep"}), "boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "n_jobs": N_JOBS,
    }

    def __init__(
        self,
        layers=None,
        hidden_layer_sizes=(),
        alpha=1e-4,
        dropout=0.0,
        max_shift=0,
        power=1.0,
        solver="adam",
        batch_size=64,
        learning_rate_init=1e-3,
        max_iter=30,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        tol=1e-4,
        pretrain=True,
        random_state=None,
        verbose=0,
        n_jobs=None,
    ):
        self.layers = layers
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.dropout = dropout
        self.max_shift = max_shift
        self.power = power
        self.solver = solver
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.pretrain = pretrain
        self.random_state = random_state
        self.verbose = verbose
        self.n_jobs = n_jobs

    # -- checks ------------------------------------------------------------

    def _check_params(self):
        if self.pretrain is False:
            raise ValueError(
                "pretrain must be True (fit every layer without labels) or 'keep' "
                "(keep already fitted layers); got False."
            )
        for i, layer in enumerate(self.layers or []):
            if not isinstance(layer, ConvPoolTransformer):
                raise TypeError(
                    f"layers[{i}] must be a ConvPoolTransformer; got {type(layer).__name__}."
                )
        for size in self.hidden_layer_sizes:
            if isinstance(size, bool) or not isinstance(size, Integral) or size < 1:
                raise ValueError(
                    f"hidden_layer_sizes must hold positive ints; got {self.hidden_layer_sizes!r}."
                )
        if self.solver == "lbfgs" and (self.dropout > 0 or self.max_shift > 0 or self.early_stopping):
            raise ValueError(
                "dropout, max_shift and early_stopping apply to the minibatch solvers "
                f"('adam', 'sgd'); with solver='lbfgs' they must be 0/False; got "
                f"dropout={self.dropout!r}, max_shift={self.max_shift!r}, "
                f"early_stopping={self.early_stopping!r}."
            )

    def _check_images(self, X, reset):
        if not reset:
            # The first layer was fitted on these images: its checks are the same
            # (not its warning about their range, which is transform's).
            check_is_fitted(self)
            return self.layers_[0]._check_transform_input(X, warn_range=False)
        first = (self.layers or [None])[0]
        images = check_images(X, None if first is None else first.image_shape)
        self.image_shape_ = images.shape[1:]
        self.n_features_in_ = int(np.prod(self.image_shape_))
        return images

    def _check_targets(self, images, y):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y = column_or_1d(y, warn=True)
        if len(y) != len(images):
            raise ValueError(
                f"y has {len(y)} labels but X has {len(images)} images; they must match."
            )
        if y.dtype.kind == "f":
            # Before the label checks, which would cast NaN to int first.
            assert_all_finite(y, input_name="y")
        check_classification_targets(y)
        return y

    # -- fitting -----------------------------------------------------------

    def _pretrain(self, images, rng):
        """Fitted ConvPoolTransformers (unlabelled, greedy), their stages, the top maps."""
        dtype = working_dtype(images.dtype)
        if self.layers is None:
            value_range = float(np.ptp(images))
            layers = [
                spec.build(value_range, rng.randint(np.iinfo(np.int32).max))
                for spec in default_layers(images.shape[1:])
            ]
        else:
            layers = [
                copy.deepcopy(layer) if self.pretrain == "keep" and _is_fitted(layer)
                else clone(layer)
                for layer in self.layers
            ]
        inputs = images
        stages = []
        for i, layer in enumerate(layers):
            layer.set_params(flatten=False, n_jobs=self.n_jobs)
            if not _is_fitted(layer):
                if i > 0:
                    layer.set_params(image_shape=None)
                if layer.random_state is None and self.random_state is not None:
                    layer.set_params(random_state=rng.randint(np.iinfo(np.int32).max))
                if self.verbose:
                    print(f"[{type(self).__name__}] Pretraining layer {i} on inputs "
                          f"of shape {inputs.shape[1:]}.")
                layer.fit(inputs)
            stage = _stage_of(layer, i, inputs.shape[1:], dtype)
            stages.append(stage)
            inputs = layer.transform(inputs)
        return layers, stages, inputs.reshape(len(inputs), -1)

    def _initialize(self, images, y, classes, rng):
        dtype = working_dtype(images.dtype)
        self.classes_ = classes
        if len(classes) < 2:
            raise ValueError(
                f"y has {len(classes)} class ({classes[0]!r}); "
                f"{type(self).__name__} needs at least 2 classes."
            )
        self.layers_, stages, features = self._pretrain(images, rng)
        features = signed_power(features, self.power)
        mean = features.mean(axis=0, dtype=np.float64)
        std = features.std(axis=0, dtype=np.float64)
        # Constant features (e.g. a unit that never fires) are left unscaled.
        scale = 1.0 / np.where(std > 1e-8 * max(np.abs(mean).max(), 1.0), std, 1.0)
        sizes = [int(np.prod(stages[-1].output_shape)), *self.hidden_layer_sizes, len(classes)]
        dense = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            # Glorot uniform, as MLPClassifier.
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            dense.append([rng.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype),
                          np.zeros(fan_out, dtype=dtype)])
        if not self.hidden_layer_sizes and np.array_equal(np.unique(y), classes):
            # UFLDL's order: the softmax is first trained on the fixed
            # pretrained features (the same objective restricted to it), so
            # that fine-tuning starts from the best the pretrained layers give.
            dense[0] = self._fit_softmax((features - mean) * scale, y, rng, dtype)
        self._network = Network(stages, mean.astype(dtype), scale.astype(dtype), dense,
                                self.power)
        self._optimizer_state = None
        self.loss_curve_ = []
        self.n_iter_ = 0
        self.validation_scores_ = [] if self.early_stopping else None
        self.best_validation_score_ = None

    def _fit_softmax(self, F, y, rng, dtype):
        n = len(F)
        # LogisticRegression minimizes C * sum of cross-entropies + ||W||^2 / 2.
        C = 1.0 / (n * self.alpha) if self.alpha > 0 else np.inf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            top = LogisticRegression(C=C, max_iter=200, tol=self.tol,
                                     random_state=rng.randint(np.iinfo(np.int32).max))
            top.fit(F, y)
        coef, intercept = top.coef_, top.intercept_
        if len(self.classes_) == 2:
            # Binary: one weight vector w for class 1; the softmax gets -w/2, w/2.
            coef = np.vstack([-coef / 2, coef / 2])
            intercept = np.concatenate([-intercept / 2, intercept / 2])
        return [np.ascontiguousarray(coef.T, dtype=dtype), intercept.astype(dtype)]

    def _one_hot(self, y, dtype):
        return np.eye(len(self.classes_), dtype=dtype)[np.searchsorted(self.classes_, y)]

    def _objective(self, X, Y, rng, dropout):
        """Objective and gradients of one batch, weight decay included."""
        net = self._network
        loss, grads = net.loss_and_gradients(X, Y, dropout, rng)
        if self.alpha:
            params = net.parameters()
            # Weights and biases alternate; only weights are decayed.
            for p, g in zip(params[::2], grads[::2]):
                loss += 0.5 * self.alpha * float(np.sum(p * p, dtype=np.float64))
                g += p.dtype.type(self.alpha) * p
        return loss, grads

    def _step(self, grads):
        params = self._network.parameters()
        lr = self.learning_rate_init
        if self._optimizer_state is None:
            self._optimizer_state = ([np.zeros_like(p) for p in params],
                                     [np.zeros_like(p) for p in params], 0)
        first, second, t = self._optimizer_state
        t += 1
        if self.solver == "sgd":
            for p, g, v in zip(params, grads, first):
                v *= _MOMENTUM
                v -= lr * g
                p += v
        else:
            step = lr * np.sqrt(1 - _BETA2**t) / (1 - _BETA1**t)
            for p, g, m, v in zip(params, grads, first, second):
                real = p.dtype.type
                adam_update(p, np.ascontiguousarray(g), m, v, float(step), real(_BETA1),
                            real(1 - _BETA1), real(_BETA2), real(1 - _BETA2), real(_ADAM_EPS))
        self._optimizer_state = (first, second, t)

    def _epoch(self, images, y, rng):
        """One pass of shuffled minibatches; returns the mean minibatch objective."""
        n = len(images)
        dtype = working_dtype(images.dtype)
        order = rng.permutation(n)
        total = 0.0
        for batch in gen_batches(n, self.batch_size):
            idx = np.sort(order[batch])
            X = np.ascontiguousarray(images[idx], dtype=dtype)
            if self.max_shift:
                X = _shift(X, self.max_shift, rng)
            loss, grads = self._objective(X, self._one_hot(y[idx], dtype), rng, self.dropout)
            self._step(grads)
            total += loss * len(idx)
        return total / n

    def _split(self, images, y, rng):
        """``(images, y, validation)``: the early-stopping split, or all and None."""
        if not self.early_stopping:
            return images, y, None
        stratify = y if np.min(np.unique(y, return_counts=True)[1]) >= 2 else None
        train, val = train_test_split(
            np.arange(len(y)), test_size=self.validation_fraction, stratify=stratify,
            random_state=rng.randint(np.iinfo(np.int32).max),
        )
        return images[train], y[train], (images[val], y[val])

    def _fit_minibatch(self, images, y, rng, epochs, validation=None):
        best_loss, best_score, no_change, best_params = np.inf, -np.inf, 0, None
        start = time.perf_counter()
        converged = False
        for _ in range(epochs):
            epoch_start = time.perf_counter()
            loss = self._epoch(images, y, rng)
            self.n_iter_ += 1
            self.loss_curve_.append(loss)
            self.loss_ = loss
            rate = len(images) / (time.perf_counter() - epoch_start)
            message = f"Epoch {self.n_iter_}: loss {loss:.5f}"
            if self.early_stopping:
                score = float(np.mean(self._predict_images(validation[0]) == validation[1]))
                self.validation_scores_.append(score)
                message += f", validation score {score:.4f}"
                improved = score > best_score + self.tol
                if score > best_score:
                    best_score = score
                    best_params = [p.copy() for p in self._network.parameters()]
            else:
                improved = loss < best_loss - self.tol
                best_loss = min(best_loss, loss)
            no_change = 0 if improved else no_change + 1
            if self.verbose:
                print(f"[{type(self).__name__}] {message}, {rate:.0f} images/s, "
                      f"{time.perf_counter() - start:.1f} s")
            if no_change >= self.n_iter_no_change:
                converged = True
                break
        if self.early_stopping and best_params is not None:
            for p, best in zip(self._network.parameters(), best_params):
                p[...] = best
            self.best_validation_score_ = best_score
        return converged

    def _fit_lbfgs(self, images, y):
        dtype = working_dtype(images.dtype)
        params = self._network.parameters()
        shapes = [p.shape for p in params]
        sizes = [p.size for p in params]
        n = len(images)

        def fun(theta):
            offset = 0
            for p, size, shape in zip(params, sizes, shapes):
                p[...] = theta[offset : offset + size].reshape(shape)
                offset += size
            total, grads = 0.0, [np.zeros(s) for s in shapes]
            for batch in gen_batches(n, max(self.batch_size, 256)):
                X = np.ascontiguousarray(images[batch], dtype=dtype)
                loss, g = self._network.loss_and_gradients(X, self._one_hot(y[batch], dtype))
                weight = (batch.stop - batch.start) / n
                total += loss * weight
                for acc, part in zip(grads, g):
                    acc += weight * part
            for p, g in zip(params[::2], grads[::2]):
                total += 0.5 * self.alpha * float(np.sum(p * p, dtype=np.float64))
                g += self.alpha * p
            return total, np.concatenate([g.ravel() for g in grads])

        def callback(intermediate_result):
            self.loss_curve_.append(float(intermediate_result.fun))
            if self.verbose:
                print(f"[{type(self).__name__}] Iteration {len(self.loss_curve_)}: "
                      f"loss {intermediate_result.fun:.5f}")

        theta = np.concatenate([p.ravel() for p in params]).astype(np.float64)
        result = minimize(fun, theta, jac=True, method="L-BFGS-B", callback=callback,
                          options={"maxiter": self.max_iter, "gtol": self.tol})
        fun(result.x)
        self.n_iter_ = result.nit
        self.loss_ = float(result.fun)
        return result.status == 0

    def _store(self):
        net = self._network
        for layer, stage in zip(self.layers_, net.stages):
            _carry_filters(layer, stage)
        self.feature_mean_, self.feature_scale_ = net.mean, net.scale
        self.coefs_ = [W for W, _ in net.dense]
        self.intercepts_ = [b for _, b in net.dense]
        self.coef_ = self.coefs_[-1].T
        self.intercept_ = self.intercepts_[-1]

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Pretrain the layers without labels, then train the whole network.

        Parameters
        ----------
        X : array-like of shape (n, h, w), (n, h, w, c) or (n, h*w*c)
            Training images; 2-D rows need the first layer's ``image_shape``
            unless they are square single-channel images.
        y : array-like of shape (n,)
            Class labels.

        Returns
        -------
        self : ConvNetClassifier
            The fitted classifier.
        """
        self._check_params()
        images = self._check_images(X, reset=True)
        y = self._check_targets(images, y)
        rng = check_random_state(self.random_state)
        classes = unique_labels(y)
        with threads(self.n_jobs, 1):
            # Split first: the validation images must not train the softmax's start.
            images, y, validation = self._split(images, y, rng)
            self._initialize(images, y, classes, rng)
            if self.solver == "lbfgs":
                converged = self._fit_lbfgs(images, y)
            else:
                converged = self._fit_minibatch(images, y, rng, self.max_iter, validation)
        self._rng = rng
        self._store()
        if not converged:
            warnings.warn(
                f"{type(self).__name__}: stopped after max_iter={self.max_iter} "
                f"{'iterations' if self.solver == 'lbfgs' else 'epochs'} without converging.",
                ConvergenceWarning,
            )
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """One pass of minibatches over ``(X, y)``; the first call also pretrains on ``X``.

        Parameters
        ----------
        X : array-like of shape (n, h, w), (n, h, w, c) or (n, h*w*c)
            Training images.
        y : array-like of shape (n,)
            Class labels.
        classes : array-like of shape (n_classes,), default=None
            All the classes; required on the first call.

        Returns
        -------
        self : ConvNetClassifier
            The classifier.
        """
        first = not hasattr(self, "_network")
        if first:
            self._check_params()
            if self.solver == "lbfgs" or self.early_stopping:
                raise ValueError(
                    "partial_fit needs a minibatch solver without early_stopping; got "
                    f"solver={self.solver!r}, early_stopping={self.early_stopping!r}."
                )
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
        images = self._check_images(X, reset=first)
        y = self._check_targets(images, y)
        if first:
            self._rng = check_random_state(self.random_state)
        else:
            classes = self.classes_ if classes is None else classes
            if not np.array_equal(unique_labels(classes), self.classes_):
                raise ValueError(
                    f"classes={classes!r} is not the same as on the first call to "
                    f"partial_fit: {self.classes_!r}."
                )
        unknown = np.setdiff1d(np.unique(y), np.asarray(unique_labels(classes)))
        if len(unknown):
            raise ValueError(f"y holds labels {unknown!r} that are not in classes.")
        with threads(self.n_jobs, 1):
            if first:
                self._initialize(images, y, unique_labels(classes), self._rng)
            self._fit_minibatch(images, y, self._rng, 1)
        self._store()
        return self

    # -- prediction --------------------------------------------------------

    def _decision(self, images):
        dtype = working_dtype(images.dtype)
        chunk = max(self.batch_size, 256)
        parts = [
            self._network.decision_function(np.ascontiguousarray(images[batch], dtype=dtype))
            for batch in gen_batches(len(images), chunk)
        ]
        return np.concatenate(parts)

    def _scores(self, X):
        images = self._check_images(X, reset=False)
        with threads(self.n_jobs, 1):
            return self._decision(images)

    def _predict_images(self, images):
        return self.classes_[np.argmax(self._decision(images), axis=1)]

    def decision_function(self, X):
        """Softmax inputs of each class (for two classes, class 1's minus class 0's).

        Parameters
        ----------
        X : array-like of shape (n, h, w), (n, h, w, c) or (n, h*w*c)
            Images of the shape seen in :meth:`fit`.

        Returns
        -------
        scores : ndarray of shape (n, n_classes), or (n,) for two classes
            The inputs of the softmax; the predicted class has the largest.
        """
        Z = self._scores(X)
        return Z[:, 1] - Z[:, 0] if Z.shape[1] == 2 else Z

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n, h, w), (n, h, w, c) or (n, h*w*c)
            Images of the shape seen in :meth:`fit`.

        Returns
        -------
        log_proba : ndarray of shape (n, n_classes)
            Log-probabilities, columns in the order of ``classes_``.
        """
        return _log_softmax(self._scores(X))

    def predict_proba(self, X):
        """Class probabilities (softmax), columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n, h, w), (n, h, w, c) or (n, h*w*c)
            Images of the shape seen in :meth:`fit`.

        Returns
        -------
        proba : ndarray of shape (n, n_classes)
            Probabilities, each row summing to 1.
        """
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        """The most probable class of each image.

        Parameters
        ----------
        X : array-like of shape (n, h, w), (n, h, w, c) or (n, h*w*c)
            Images of the shape seen in :meth:`fit`.

        Returns
        -------
        labels : ndarray of shape (n,)
            Labels from ``classes_``.
        """
        scores = self._scores(X)
        return self.classes_[np.argmax(scores, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        return tags


def _is_fitted(layer):
    return hasattr(layer, "image_shape_")
