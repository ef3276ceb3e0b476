"""Test accuracy of skaecnn's learned features against scikit-learn baselines.

For every data set given, fits each method on a training split, computes the
features of the test split and prints ONE table::

    dataset  method  n features  fit s  transform s  accuracy

Methods (``--methods``):

``pixels-logreg``
    Raw pixels in [0, 1] + ``LogisticRegression(C=1)``.
``pixels-svc``
    Raw pixels + ``SVC(kernel="rbf", C=10, gamma="scale")``.
``rbm-logreg``
    scikit-learn's example "Restricted Boltzmann Machine features for digit
    classification": ``MinMaxScaler -> BernoulliRBM(learning_rate=0.06,
    n_iter=10) -> LogisticRegression(C=6000)`` (without the example's
    nudged-image data augmentation).
``default-conv``
    ``ConvPoolTransformer(patch_size=m, pool_size=p)`` with its default encoder
    (see its docstring), then ``StandardScaler -> LogisticRegression(C=1)``;
    on MNIST ``m = 5, p = 4``.
``sae-conv``
    UFLDL recipe: ``ConvPoolTransformer(PatchNormalizer -> ZCAWhitening(0.1)
    -> SparseAutoencoderFeatures(decoder="linear", sparsity_target=0.035,
    sparsity_weight=5, alpha=3e-3))`` with mean pooling, then
    ``StandardScaler -> LogisticRegression(C=1)``.
``kmeans-conv``
    Coates et al. recipe: ``ConvPoolTransformer(PatchNormalizer ->
    ZCAWhitening(0.1) -> KMeansTriangleFeatures)`` with sum pooling, then
    ``StandardScaler -> LogisticRegression(C=1)``.
``recipe``
    The documented best recipe: the k-means dictionary of ``kmeans-conv``
    encoded by Coates & Ng's polarity split (``activation="split"``) and mean
    pooled over overlapping regions (``pool_stride``), optionally raised to a
    power (the square root on MNIST), then ``StandardScaler ->
    LogisticRegression(C=1)``; ``k``, ``alpha``, the ZCA epsilon, the pooling
    and the power per data set are ``Config.recipe``, chosen by
    ``benchmarks/recipe_cv.py`` on the training half only.
``convnet-recipe``
    The ``recipe`` method's layer as a network: ``ConvNetClassifier([layer],
    power=recipe.power, max_shift=recipe.max_shift, **FINETUNE)``, the
    softmax started on its fixed features, then everything fine-tuned with
    dropout (and shifts on MNIST). ``FINETUNE`` was chosen on the MNIST
    training half (first 4000 images to fit, next 1000 to validate, shifts
    of 2, one random state): learning rate 1e-3 lowered the validation
    accuracy below the start (97.3% against 98.7%); at 1e-4 it peaked near
    99.0% after 2 epochs, then drifted down to 98.4% by epoch 12 without
    dropout, and stayed at 98.6-99.0% with dropout 0.5. Then 3-fold
    cross-validation of the whole training half: power 0.5 98.14% at the
    start, 98.24% fine-tuned; power 1 97.86% and 97.98%. On digits shifts
    of 1 pixel, chosen by ``recipe_cv.py --finetune`` (3-fold CV of the
    training halves of random states 0, 1 and 2): 98.92% against 98.55%
    unshifted and 98.37% with shifts of 2.
``convnet``
    The default ``ConvNetClassifier()``: its default layers pretrained
    without labels, then the whole network fine-tuned on the labels.
``convnet-shift2``
    ``ConvNetClassifier(max_shift=2)``: the same, every training image of
    every minibatch shifted by up to 2 pixels. On MNIST, chosen by
    validation on the training half (first 4000 / next 1000 images, layers
    pretrained on the 5000): 98.4% after 9 epochs against 97.8% unshifted;
    on digits one pixel of shift lowered the 3-fold cross-validated accuracy
    of the training half (97.7% against 98.0%).
``convnet-pretrained``
    The same default layers pretrained and kept fixed, then
    ``StandardScaler -> LogisticRegression(C=1)``: what fine-tuning starts
    from (fit time: the pretraining alone plus the classifier).
``scattering-logreg``, ``scattering-svc``
    kymatio 0.3's ``Scattering2D(J=3, L=8)`` (fixed Morlet wavelets, two
    orders, nothing learned) + ``StandardScaler`` and
    ``LogisticRegression(C=1)`` or ``SVC(C=10)``: the peer learned features
    must beat. kymatio needs scipy < 1.15, so it runs in its own Python
    (``--kymatio-python``, see ``_scattering.py``), one process per core;
    skipped without it. Gray images only.
``torch-cnn``
    A PyTorch CNN trained from scratch, the best supervised peer measured on
    this MNIST split: two 5x5 convolutions (32, 64 filters; zero-padded by 2
    on images under 16 pixels) with ReLU and 2x2 max pooling, a 128-unit ReLU layer, dropout 0.3, softmax; Adam (lr 1e-3,
    batch 64, 30 epochs), each minibatch shifted by up to 2 pixels.
    Needs torch (skipped with a message otherwise).

Both convolutional methods use the same patch size, pooling grid, number of
features ``k`` and number of training patches on a data set (see
``DATASETS``). All pixels are scaled to [0, 1], so PatchNormalizer's epsilon
is Coates et al.'s 10 for 8-bit pixels rescaled: ``10 / 255**2``.

Data sets (``--datasets``; default: digits plus every one whose path is given):

``digits``
    scikit-learn's bundled 8x8 digits (``skaecnn.datasets.load_digits_images``),
    split half/half, stratified, with ``--random-state``.
``mnist``
    The MNIST *test* set (``load_mnist(DIR, subset="test")``, 10,000 images):
    first 5,000 for training, last 5,000 for testing.
``cifar10``
    CIFAR-10 train (50,000) / test (10,000) subsets.
``stl10``
    STL-10 labelled train (5,000) / test (8,000) subsets (the unlabelled
    images are not used).

``--max-train`` / ``--max-test`` cap every training / test split with a
stratified random subsample; use them on CIFAR-10 and STL-10 unless you have
hours to spare (``pixels-svc`` is quadratic in the training size).

Times are wall-clock seconds: "fit" is the whole pipeline's ``fit`` on the
training split (feature learning, feature extraction of the training images
and the classifier); "transform" is the feature extraction of the test split
(every step before the classifier; "-" for raw pixels). Hyperparameters are
fixed (none is tuned on the test split): the classifier's ``C = 1`` after the
convolutional features was chosen on a validation split of the MNIST training
half. An accuracy marked ``*`` means a ConvergenceWarning was raised
(max_iter reached somewhere in the pipeline).

Run::

    python benchmarks/accuracy.py                                      # digits
    python benchmarks/accuracy.py --mnist /work/shared/data/mnist --n-jobs 2
    python benchmarks/accuracy.py --datasets cifar10 --cifar10 ~/data/cifar-10-batches-py \\
        --max-train 10000 --n-components 400
    python benchmarks/accuracy.py --datasets stl10 --stl10 ~/data/stl10_binary \\
        --methods sae-conv kmeans-conv

On a machine other jobs are loading, ``--n-jobs 1`` can be much faster than
letting BLAS threads compete for the cores. Progress goes to stderr; the table and the published reference numbers go to
stdout.
"""

import argparse
import sys
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import BernoulliRBM
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from _scattering import ScatteringFeatures

from skaecnn import (
    ConvNetClassifier,
    ConvPoolTransformer,
    KMeansTriangleFeatures,
    PatchNormalizer,
    SparseAutoencoderFeatures,
    ZCAWhitening,
)
from skaecnn._backprop import signed_power
from skaecnn._convnet import default_layers
from skaecnn._threads import effective_threads
from skaecnn.datasets import load_cifar10, load_digits_images, load_mnist, load_stl10

METHODS = (
    "pixels-logreg", "pixels-svc", "rbm-logreg", "default-conv", "sae-conv", "kmeans-conv",
    "recipe", "convnet-recipe", "convnet", "convnet-shift2", "convnet-pretrained", "scattering-logreg",
    "scattering-svc", "torch-cnn",
)
# Coates et al.'s per-patch normalization epsilon for pixels in [0, 255],
# rescaled to the [0, 1] pixels used here.
EPSILON = 10.0 / 255**2


@dataclass(frozen=True)
class Recipe:
    """Settings of the ``recipe`` method (see ``benchmarks/recipe_cv.py``)."""

    n_components: int  # k-means dictionary size k (2k features per region)
    alpha: float  # threshold of the polarity split
    pool_size: int
    pool_stride: int
    zca: float = 0.1  # epsilon of the ZCA whitening
    power: float = 1.0  # exponent of the pooled features (signed_power)
    max_shift: int = 0  # shifts of the fine-tuned network (convnet-recipe)


@dataclass(frozen=True)
class Config:
    """Per-data-set settings of the feature learners."""

    patch_size: int  # side m of the patches / filters
    pool_size: int  # pooling regions of the (h-m+1) x (w-m+1) maps
    n_components: int  # features k of the autoencoder and of k-means
    n_patches: int  # random patches the patch encoder is fitted on
    sae_max_iter: int  # L-BFGS iterations of the sparse autoencoder
    rbm_components: int  # hidden units of the BernoulliRBM baseline
    default_pool_size: int  # pooling of the default-conv method
    recipe: Recipe | None = None  # settings of the recipe method (None: not chosen)


DATASETS = {
    # 8x8 images: 3x3 patches, 6x6 maps pooled over quadrants.
    "digits": Config(3, 3, 100, 10000, 400, 100, 3,
                     Recipe(100, 1.0, 3, 1, zca=0.3, max_shift=1)),
    # 28x28: 5x5 patches, 24x24 maps pooled into a 4x4 grid (k = 200: 3200
    # features; k = 400 from 20000 patches took 3x longer for no gain).
    # default-conv pools 4x4 regions (6x6 grid), as in the library's target.
    "mnist": Config(5, 6, 200, 10000, 400, 256, 4, Recipe(100, 1.5, 9, 3, power=0.5, max_shift=2)),
    # 32x32x3: Coates et al.'s 6x6 patches, k = 1600, quadrant pooling of the
    # 27x27 maps (13x13 regions; the last row and column are dropped).
    "cifar10": Config(6, 13, 1600, 100000, 400, 400, 13),
    # 96x96x3: UFLDL's 8x8 patches and k = 400, 89x89 maps pooled into a 3x3
    # grid (UFLDL pools its 57x57 maps of 64x64 images the same way).
    "stl10": Config(8, 29, 400, 100000, 400, 400, 29),
}


# Fine-tuning of the ``convnet-recipe`` method (see the module doc).
FINETUNE = dict(learning_rate_init=1e-4, dropout=0.5, max_iter=10)


def recipe_layer(cfg, image_shape, n_jobs=None, random_state=None):
    """The ``recipe`` method's layer, before the power (see the module doc)."""
    recipe = cfg.recipe
    encoder = make_pipeline(
        PatchNormalizer(epsilon=EPSILON), ZCAWhitening(epsilon=recipe.zca),
        KMeansTriangleFeatures(n_components=recipe.n_components, random_state=random_state),
    )
    return ConvPoolTransformer(
        encoder, patch_size=cfg.patch_size, n_patches=cfg.n_patches,
        pool_size=recipe.pool_size, pool_stride=recipe.pool_stride, activation="split",
        alpha=recipe.alpha, image_shape=image_shape, n_jobs=n_jobs, random_state=random_state,
    )


def recipe_conv(cfg, image_shape, n_jobs=None, random_state=None):
    """The ``recipe`` method's feature extractor (see the module doc)."""
    recipe = cfg.recipe
    conv = recipe_layer(cfg, image_shape, n_jobs, random_state)
    if recipe.power == 1:
        return conv
    return make_pipeline(
        conv, FunctionTransformer(signed_power, kw_args={"power": recipe.power}))


ANCHORS = """\
Published reference numbers (different protocols; for orientation only):
  UFLDL "Self-Taught Learning" exercise, MNIST (sparse autoencoder, 196
    features learned on digits 0-4, softmax on 5-9) ............ ~98%
  UFLDL "Convolution and Pooling" exercise, STL-10 (4-class subset at
    64x64, 400 linear-decoder features of 8x8 patches, mean pooling) ~80%
  Coates, Lee & Ng, AISTATS 2011, CIFAR-10 (50,000 training images, 6x6
    patches, 1600 features, quadrant sum pooling, L2-SVM):
      sparse autoencoder ........................................ 73.4%
      k-means triangle .......................................... 77.9%"""


def log(message):
    print(message, file=sys.stderr, flush=True)


def _as_rows(images):
    """uint8 or float images (n, h, w[, c]) as float32 rows in [0, 1] and (h, w, c)."""
    images = np.asarray(images)
    shape = images.shape[1:] if images.ndim == 4 else images.shape[1:] + (1,)
    rows = images.reshape(len(images), -1).astype(np.float32)
    if images.dtype == np.uint8:
        rows /= 255.0
    return rows, shape


def _cap(n, target, max_n, random_state):
    """Sorted indices of a stratified random subsample of size ``max_n`` (all if None)."""
    if max_n is None or max_n >= n:
        return np.arange(n)
    idx, _ = train_test_split(
        np.arange(n), train_size=max_n, stratify=target, random_state=random_state
    )
    return np.sort(idx)


def load(name, args):
    """``(X_train, y_train, X_test, y_test, image_shape)`` with X as float32 rows in [0, 1]."""
    rs = args.random_state
    if name == "digits":
        images, target = load_digits_images(return_X_y=True)
        X, shape = _as_rows(images)
        X_train, X_test, y_train, y_test = train_test_split(
            X, target, test_size=0.5, stratify=target, random_state=rs
        )
    elif name == "mnist":
        images, target = load_mnist(args.mnist, subset="test", return_X_y=True)
        X, shape = _as_rows(images)
        X_train, y_train, X_test, y_test = X[:5000], target[:5000], X[5000:], target[5000:]
    else:
        loader, path = (load_cifar10, args.cifar10) if name == "cifar10" else (load_stl10, args.stl10)
        splits = []
        for subset, max_n in (("train", args.max_train), ("test", args.max_test)):
            images, target = loader(path, subset=subset, return_X_y=True)
            # Index before converting: STL-10 images are a memory-mapped view.
            idx = _cap(len(target), target, max_n, rs)
            X, shape = _as_rows(images[idx])
            splits += [X, target[idx]]
        return (*splits, shape)
    tr = _cap(len(y_train), y_train, args.max_train, rs)
    te = _cap(len(y_test), y_test, args.max_test, rs)
    return X_train[tr], y_train[tr], X_test[te], y_test[te], shape


class TorchCNN(ClassifierMixin, BaseEstimator):
    """The ``torch-cnn`` peer: a LeNet-style CNN trained from scratch (see the module doc)."""

    def __init__(self, image_shape, epochs=30, batch_size=64, max_shift=2, random_state=0):
        self.image_shape = image_shape
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_shift = max_shift
        self.random_state = random_state

    def _images(self, X):
        import torch

        h, w, c = self.image_shape
        return torch.from_numpy(np.asarray(X, dtype=np.float32).reshape(-1, h, w, c).transpose(0, 3, 1, 2).copy())

    def fit(self, X, y):
        import torch

        nn = torch.nn
        torch.manual_seed(self.random_state)
        h, w, c = self.image_shape
        self.classes_, codes = np.unique(y, return_inverse=True)
        # Images too small for two unpadded 5x5 convolutions (digits) are padded.
        pad = 0 if min(h, w) >= 16 else 2
        side = [((n + 2 * pad - 4) // 2 + 2 * pad - 4) // 2 for n in (h, w)]
        self.model_ = nn.Sequential(
            nn.Conv2d(c, 32, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Dropout(0.3), nn.Linear(64 * side[0] * side[1], 128), nn.ReLU(),
            nn.Dropout(0.3), nn.Linear(128, len(self.classes_)),
        )
        images, target = self._images(X), torch.from_numpy(codes.astype(np.int64))
        optimizer = torch.optim.Adam(self.model_.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        s = self.max_shift
        self.model_.train()
        for _ in range(self.epochs):
            for idx in torch.randperm(len(images)).split(self.batch_size):
                batch = nn.functional.pad(images[idx], (s, s, s, s))
                dy, dx = np.random.randint(0, 2 * s + 1, size=2)
                batch = batch[:, :, dy : dy + h, dx : dx + w]
                optimizer.zero_grad()
                loss_fn(self.model_(batch), target[idx]).backward()
                optimizer.step()
        return self

    def predict(self, X):
        import torch

        self.model_.eval()
        with torch.no_grad():
            return self.classes_[self.model_(self._images(X)).argmax(dim=1).numpy()]


def make_method(method, cfg, image_shape, args):
    rs, n_jobs = args.random_state, args.n_jobs
    # The network classifiers take images; the methods get rows.
    to_images = FunctionTransformer(lambda X: X.reshape((len(X),) + image_shape))
    if method in ("convnet", "convnet-shift2"):
        return make_pipeline(to_images, ConvNetClassifier(
            max_shift=2 if method == "convnet-shift2" else 0, random_state=rs, n_jobs=n_jobs))
    if method == "convnet-recipe":
        if cfg.recipe is None:
            return None
        layer = recipe_layer(cfg, image_shape, n_jobs, rs)
        return make_pipeline(to_images, ConvNetClassifier(
            [layer], power=cfg.recipe.power, max_shift=cfg.recipe.max_shift, random_state=rs,
            n_jobs=n_jobs, **FINETUNE))
    if method == "convnet-pretrained":
        layers = [spec.build(1.0, rs) for spec in default_layers(image_shape)]
        for layer in layers:
            layer.set_params(flatten=False, n_jobs=n_jobs)
        return make_pipeline(
            to_images, *layers, FunctionTransformer(lambda F: F.reshape(len(F), -1)),
            StandardScaler(), LogisticRegression(C=1.0, max_iter=1000),
        )
    if method == "torch-cnn":
        try:
            import torch
        except ImportError:
            return None
        if n_jobs and n_jobs > 0:
            torch.set_num_threads(n_jobs)
        return make_pipeline(TorchCNN(image_shape, random_state=rs or 0))
    if method.startswith("scattering-"):
        if args.kymatio_python is None or image_shape[2:] not in ((), (1,)):
            return None
        scattering = ScatteringFeatures(
            args.kymatio_python, image_shape[:2], n_jobs=effective_threads(n_jobs)
        )
        classifier = (LogisticRegression(C=1.0, max_iter=1000) if method == "scattering-logreg"
                      else SVC(kernel="rbf", C=10.0, gamma="scale"))
        return make_pipeline(scattering, StandardScaler(), classifier)
    if method == "pixels-logreg":
        return make_pipeline(LogisticRegression(C=1.0, max_iter=1000))
    if method == "pixels-svc":
        return make_pipeline(SVC(kernel="rbf", C=10.0, gamma="scale"))
    if method == "rbm-logreg":
        return make_pipeline(
            MinMaxScaler(),
            BernoulliRBM(
                n_components=cfg.rbm_components, learning_rate=0.06, n_iter=10, random_state=rs
            ),
            LogisticRegression(C=6000.0, max_iter=1000),
        )
    if method == "default-conv":
        conv = ConvPoolTransformer(
            patch_size=cfg.patch_size, pool_size=cfg.default_pool_size,
            image_shape=image_shape, n_jobs=n_jobs, random_state=rs,
        )
        return make_pipeline(conv, StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    if method == "recipe":
        if cfg.recipe is None:
            return None
        conv = recipe_conv(cfg, image_shape, n_jobs, rs)
        return make_pipeline(conv, StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    if method == "sae-conv":
        encoder = SparseAutoencoderFeatures(
            n_components=cfg.n_components,
            decoder="linear",
            sparsity_target=0.035,
            sparsity_weight=5.0,
            alpha=3e-3,
            max_iter=cfg.sae_max_iter,
            random_state=rs,
        )
        pooling = "mean"
    elif method == "kmeans-conv":
        encoder = KMeansTriangleFeatures(n_components=cfg.n_components, random_state=rs)
        pooling = "sum"
    else:
        raise ValueError(f"unknown method {method!r}")
    conv = ConvPoolTransformer(
        make_pipeline(PatchNormalizer(epsilon=EPSILON), ZCAWhitening(epsilon=0.1), encoder),
        patch_size=cfg.patch_size,
        n_patches=cfg.n_patches,
        pool_size=cfg.pool_size,
        pooling=pooling,
        image_shape=image_shape,
        n_jobs=n_jobs,
        random_state=rs,
    )
    return make_pipeline(conv, StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))


def run_one(pipe, X_train, y_train, X_test, y_test):
    """``(n_features, fit_s, transform_s or None, accuracy, converged)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        pipe.fit(X_train, y_train)
        fit_s = time.perf_counter() - start
        if len(pipe) > 1:
            start = time.perf_counter()
            F = pipe[:-1].transform(X_test)
            transform_s = time.perf_counter() - start
        else:
            F, transform_s = X_test, None
        accuracy = pipe[-1].score(F, y_test)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return int(np.prod(F.shape[1:])), fit_s, transform_s, accuracy, converged


def print_table(rows):
    header = ("dataset", "method", "n features", "fit s", "transform s", "accuracy")
    cells = [
        (
            ds,
            method,
            str(n_features),
            f"{fit_s:.1f}",
            "-" if transform_s is None else f"{transform_s:.1f}",
            f"{100 * acc:.2f}%" + ("" if converged else "*"),
        )
        for ds, method, n_features, fit_s, transform_s, acc, converged in rows
    ]
    widths = [max(len(r[i]) for r in [header] + cells) for i in range(len(header))]
    left = (True, True, False, False, False, False)

    def fmt(row):
        return "  ".join(c.ljust(w) if l else c.rjust(w) for c, w, l in zip(row, widths, left))

    print(fmt(header))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(fmt(row))
    if any(not r[-1] for r in rows):
        print("* a ConvergenceWarning was raised (some max_iter reached).")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS),
                        help="data sets to run (default: digits and every one with a path)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--mnist", metavar="DIR", help="folder of the MNIST IDX files")
    parser.add_argument("--cifar10", metavar="PATH", help="CIFAR-10 folder (python or binary)")
    parser.add_argument("--stl10", metavar="PATH", help="STL-10 folder (stl10_binary)")
    parser.add_argument("--max-train", type=int, metavar="N",
                        help="cap each training split at N images (stratified subsample)")
    parser.add_argument("--max-test", type=int, metavar="N",
                        help="cap each test split at N images (stratified subsample)")
    parser.add_argument("--n-components", type=int, metavar="K",
                        help="override k of sae-conv and kmeans-conv for every data set")
    parser.add_argument("--kymatio-python", metavar="PATH",
                        help="a Python with kymatio 0.3 for the scattering methods")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="threads for BLAS and skaecnn's kernels (default: all cores)")
    args = parser.parse_args(argv)
    paths = {"digits": True, "mnist": args.mnist, "cifar10": args.cifar10, "stl10": args.stl10}
    if args.datasets is None:
        args.datasets = [name for name in DATASETS if paths[name]]
    for name in args.datasets:
        if not paths[name]:
            parser.error(f"--datasets {name} needs --{name} PATH")
    for opt in ("max_train", "max_test", "n_components"):
        value = getattr(args, opt)
        if value is not None and value < 1:
            parser.error(f"--{opt.replace('_', '-')} must be a positive int; got {value}")
    if args.n_jobs == 0:
        parser.error("--n-jobs must be a positive int, or negative as in scikit-learn; got 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    rows = []
    limits = threadpool_limits(args.n_jobs, user_api="blas") if args.n_jobs and args.n_jobs > 0 else None
    try:
        for name in args.datasets:
            start = time.perf_counter()
            X_train, y_train, X_test, y_test, shape = load(name, args)
            log(
                f"[{name}] {len(X_train)} train / {len(X_test)} test images of shape {shape}, "
                f"loaded in {time.perf_counter() - start:.1f} s"
            )
            cfg = DATASETS[name]
            if args.n_components is not None:
                cfg = replace(cfg, n_components=args.n_components)
            for method in args.methods:
                pipe = make_method(method, cfg, shape, args)
                if pipe is None:
                    if method in ("recipe", "convnet-recipe"):
                        why = "no recipe chosen for this data set"
                    elif method.startswith("scattering-"):
                        why = "needs --kymatio-python and gray images"
                    else:
                        why = "needs torch: pip install torch"
                    log(f"[{name}] {method}: skipped ({why})")
                    continue
                result = run_one(pipe, X_train, y_train, X_test, y_test)
                rows.append((name, method, *result))
                n_features, fit_s, transform_s, acc, converged = result
                log(
                    f"[{name}] {method}: {n_features} features, fit {fit_s:.1f} s, "
                    f"transform {transform_s or 0:.1f} s, accuracy {100 * acc:.2f}%"
                    + ("" if converged else " (ConvergenceWarning)")
                )
    finally:
        if limits is not None:
            limits.restore_original_limits()
    print_table(rows)
    print()
    print(ANCHORS)


if __name__ == "__main__":
    main()
