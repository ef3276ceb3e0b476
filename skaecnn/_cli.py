"""``python -m skaecnn``: learn filters, compare accuracies, save the pictures."""

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from . import __version__
from ._convpool import ConvPoolTransformer, default_encoder
from .datasets import load_digits_images, load_image_folder, load_mnist


def _parser():
    parser = argparse.ArgumentParser(
        prog="skaecnn",
        description=(
            "Learn convolutional filters with a sparse autoencoder on random image "
            "patches (after per-patch normalization and ZCA whitening), convolve "
            "them over the images, pool, and compare a logistic regression on "
            "these features with one on raw pixels. Without a data option it uses "
            "scikit-learn's bundled 8x8 digits (no download). Writes filters.png, "
            "feature_maps.png and reconstructions.png."
        ),
    )
    data = parser.add_mutually_exclusive_group()
    data.add_argument(
        "--images", metavar="FOLDER",
        help="learn from your own PNG/JPEG images; one subfolder per class gives "
        "labels (and an accuracy table), a flat folder only learns filters",
    )
    data.add_argument(
        "--mnist", metavar="DIR",
        help="folder of MNIST IDX files (gzipped or not): trains on the train set, "
        "or on half of the test set when only that is there",
    )
    parser.add_argument("-k", "--n-components", type=int, default=100,
                        help="number of filters k (default: %(default)s)")
    parser.add_argument("-m", "--patch-size", type=int, default=None,
                        help="filter side m (default: 3 for digits, 5 otherwise)")
    parser.add_argument("-p", "--pool-size", type=int, default=None,
                        help="pooling region side (default: 3 for digits, 4 otherwise)")
    parser.add_argument("--pooling", choices=["mean", "max", "sum"], default="mean",
                        help="pooling function (default: %(default)s)")
    parser.add_argument("--n-patches", type=int, default=10000,
                        help="random patches to learn from (default: %(default)s)")
    parser.add_argument("--max-iter", type=int, default=400,
                        help="L-BFGS iterations of the autoencoder (default: %(default)s)")
    parser.add_argument("--max-images", type=int, default=10000,
                        help="use at most this many images (default: %(default)s)")
    parser.add_argument("--gray", action="store_true",
                        help="with --images: convert colour images to gray levels")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed (default: %(default)s)")
    parser.add_argument("--out", metavar="DIR", default=".",
                        help="folder for the pictures (default: current directory)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print only the results")
    parser.add_argument("--version", action="version", version=f"skaecnn {__version__}")
    return parser


def _load(args):
    """``(name, X_train, y_train, X_test, y_test)``; the y are None without labels."""
    if args.mnist:
        try:
            X_train, y_train = load_mnist(args.mnist, "train", return_X_y=True)
            X_test, y_test = load_mnist(args.mnist, "test", return_X_y=True)
        except FileNotFoundError:
            X, y = load_mnist(args.mnist, "test", return_X_y=True)
            half = len(X) // 2
            X_train, y_train, X_test, y_test = X[:half], y[:half], X[half:], y[half:]
        n = args.max_images
        return "MNIST", X_train[:n], y_train[:n], X_test[:n], y_test[:n]
    if args.images:
        images, target = load_image_folder(args.images, as_gray=args.gray, return_X_y=True)
        images = images[: args.max_images]
        if target is None:
            return args.images, images, None, None, None
        return (args.images,) + _split(images, target[: len(images)], args.seed)
    return ("digits",) + _split(*load_digits_images(return_X_y=True), args.seed)


def _split(X, y, seed):
    """Stratified half/half split as ``(X_train, y_train, X_test, y_test)``."""
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=seed
    )
    return X_train, y_train, X_test, y_test


def _feature_learner(args, X_train):
    digits = X_train.shape[1] <= 16
    m = args.patch_size or (3 if digits else 5)
    pool = args.pool_size or (3 if digits else 4)
    encoder = default_encoder(
        float(np.ptp(X_train)), n_components=args.n_components, max_iter=args.max_iter,
        random_state=args.seed, verbose=0 if args.quiet else 1,
    )
    return ConvPoolTransformer(
        encoder, patch_size=m, pool_size=pool, pooling=args.pooling,
        n_patches=args.n_patches, random_state=args.seed, verbose=0 if args.quiet else 1,
    )


def _classify(features_train, y_train, features_test, y_test):
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    start = time.perf_counter()
    clf.fit(features_train, y_train)
    return clf.score(features_test, y_test), time.perf_counter() - start


def _save_pictures(conv, X_train, X_test, out):
    # Imported here so that the rest of the job runs without a display backend.
    from .plotting import plot_feature_maps, plot_filters, plot_reconstructions

    out.mkdir(parents=True, exist_ok=True)
    # The pictures transform single images: their progress lines are noise.
    conv.set_params(verbose=0)
    written = []
    fig = plot_filters(conv, title=f"{conv.output_shape_[2]} learned filters "
                       "(whitening folded in)")
    written.append(out / "filters.png")
    fig.savefig(written[-1], dpi=120)
    fig = plot_feature_maps(conv, (X_test if X_test is not None else X_train)[0])
    written.append(out / "feature_maps.png")
    fig.savefig(written[-1], dpi=120)
    # Normalized patches against what ZCA + autoencoder give back from their codes.
    normalizer, rest = conv.encoder_[0], conv.encoder_[1:]
    m, c = conv.patch_size, conv.image_shape_[2]
    rng = np.random.RandomState(0)
    sample = X_train[rng.randint(len(X_train), size=10)]
    if sample.ndim == 3:
        sample = sample[..., None]
    rows, cols = rng.randint(sample.shape[1] - m + 1), rng.randint(sample.shape[2] - m + 1)
    windows = sample[:, rows:rows + m, cols:cols + m].reshape(len(sample), -1)
    fig = plot_reconstructions(rest, normalizer.transform(windows),
                               (m, m) if c == 1 else (m, m, c))
    written.append(out / "reconstructions.png")
    fig.savefig(written[-1], dpi=120)
    return written


def main(argv=None):
    """Run the main job; returns the process exit code."""
    args = _parser().parse_args(argv)
    name, X_train, y_train, X_test, y_test = _load(args)
    conv = _feature_learner(args, X_train)
    if not args.quiet:
        print(f"{name}: {len(X_train)} training images of shape {X_train.shape[1:]}")

    start = time.perf_counter()
    features_train = conv.fit_transform(X_train)
    fit_time = time.perf_counter() - start
    rows = []
    if y_train is not None:
        start = time.perf_counter()
        features_test = conv.transform(X_test)
        transform_time = time.perf_counter() - start
        raw_acc, raw_time = _classify(
            X_train.reshape(len(X_train), -1), y_train, X_test.reshape(len(X_test), -1), y_test
        )
        acc, clf_time = _classify(features_train, y_train, features_test, y_test)
        rows = [
            ("raw pixels + logistic regression", X_train[0].size, raw_time, raw_acc),
            (f"ConvPool (k={conv.output_shape_[2]}, m={conv.patch_size}, "
             f"pool={conv.pool_size}) + logistic regression",
             features_train.shape[1], fit_time + transform_time + clf_time, acc),
        ]
    written = _save_pictures(conv, X_train, X_test, Path(args.out))

    if rows:
        print(f"\nHeld-out accuracy on {name} ({len(X_test)} test images)")
        print(f"{'method':<60} {'features':>8} {'time (s)':>9} {'accuracy':>9}")
        for method, n_features, seconds, accuracy in rows:
            print(f"{method:<60} {n_features:>8} {seconds:>9.1f} {accuracy:>9.3f}")
    else:
        print(f"\nLearned {conv.output_shape_[2]} filters in {fit_time:.1f} s (no labels: "
              "no accuracy table).")
    print("Wrote " + ", ".join(str(p) for p in written))
    return 0
