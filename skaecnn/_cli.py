"""``python -m skaecnn`` (the ``skaecnn`` command): learn filters, compare accuracies, save pictures.

Every problem with the options or the data is reported as one line on stderr
with exit code 2, as argparse does for its own errors, before any training.
"""

import argparse
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from . import __version__, _compiling
from ._convpool import ConvPoolTransformer, default_encoder
from .datasets import load_digits_images, load_image_folder, load_mnist

# Images up to this side (digits, USPS) get 3x3 filters and 3x3 pooling.
_SMALL_SIDE = 16
# The autoencoder stops once its loss has improved by less than this for 10
# iterations: on digits the accuracy no longer changes (less than its spread
# over seeds), while fitting takes a third of the iterations of the default.
_TOL = 3e-4
# Patches of the photographs: with fewer, the edge detectors come out noisy.
# Their autoencoder stops at a coarser tolerance: the edges are there after
# about 180 iterations, and the next hundred barely change them.
_PHOTO_PATCHES = 5000
_PHOTO_TOL = 1e-3


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (the usage is in ``--help``)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_range(low, high=None):
    """``(type, text)``: an argparse type accepting ints in [low, high], and the range in words."""
    text = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"

    def parse(value):
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < low or (high is not None and number > high):
            # argparse puts the option's name in front of this message.
            raise argparse.ArgumentTypeError(f"must be {text}; got {value!r}")
        return number

    return parse, text


def _add_int(parser, *flags, low, high=None, default, help, default_text=None):
    """Add an int option whose help ends with its range and default."""
    parse, text = _int_range(low, high)
    default_text = default if default_text is None else default_text
    parser.add_argument(*flags, type=parse, default=default, metavar="N",
                        help=f"{help} ({text}; default: {default_text})")


def _parser():
    parser = _Parser(
        prog="skaecnn",
        description=(
            "Learn convolutional filters with a sparse autoencoder on random image "
            "patches (after per-patch normalization and ZCA whitening), convolve "
            "them over the images, pool, and compare a logistic regression on "
            "these features with one on raw pixels. Without a data option it uses "
            "scikit-learn's bundled 8x8 digits and also learns edge detectors from "
            "whitened patches of scikit-learn's two sample photographs (no "
            "download). Writes filters.png, feature_maps.png and reconstructions.png "
            "(and photo_filters.png for the digits)."
        ),
        epilog=(
            "Run it as 'python -m skaecnn' or, once skaecnn is installed with pip, "
            "as the 'skaecnn' command. Bad options or data end it with a one-line "
            "error and exit code 2, before any training."
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
    _add_int(parser, "-k", "--n-components", low=1, default=100,
             help="number of filters k")
    _add_int(parser, "-m", "--patch-size", low=1, default=None,
             help="filter side m, at most the image side",
             default_text=f"3 for images of up to {_SMALL_SIDE} pixels, 5 otherwise")
    _add_int(parser, "-p", "--pool-size", low=1, default=None,
             help="pooling region side, at most the side of the convolution maps",
             default_text=f"3 for images of up to {_SMALL_SIDE} pixels, 4 otherwise")
    parser.add_argument("--pooling", choices=["mean", "max", "sum"], default="mean",
                        help="pooling function (default: %(default)s)")
    _add_int(parser, "--n-patches", low=1, default=10000,
             help="random patches to learn the filters from")
    _add_int(parser, "--max-iter", low=1, default=400,
             help="at most this many L-BFGS iterations of the autoencoder, which "
             f"stops earlier once its loss improves by less than {_TOL:g} for 10 "
             "iterations")
    _add_int(parser, "--max-images", low=1, default=1000,
             help="use at most this many training and this many test images per "
             "class, taken after a stratified split; of a folder without classes, "
             "at most this many images")
    parser.add_argument("--gray", action="store_true",
                        help="with --images: convert colour images to gray levels")
    _add_int(parser, "--seed", low=0, high=2**32 - 1, default=0, help="random seed")
    parser.add_argument("--out", metavar="DIR", default=".",
                        help="folder for the pictures, created if needed; checked to be "
                        "writable before any training (default: current directory)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print only the results")
    parser.add_argument("--version", action="version", version=f"skaecnn {__version__}")
    return parser


# -- options and data, checked before any training -------------------------


def _writable_folder(path):
    """``path``, checked to be a folder that takes new files or one that can be made.

    The folder is not made here: it could be inside the data folder, whose
    subfolders are classes.
    """
    path = Path(path).expanduser()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{str(existing)!r} is a file, not a folder")
    # Tried rather than os.access: that misses read-only mounts and ACLs.
    with tempfile.TemporaryFile(dir=existing):
        pass
    return path


def _split(X, y, seed):
    """Stratified half/half split as ``(X_train, y_train, X_test, y_test)``."""
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=seed
    )
    return X_train, y_train, X_test, y_test


def _per_class(X, y, n):
    """The first ``n`` images of every class, in their order."""
    keep = np.sort(np.concatenate([np.flatnonzero(y == c)[:n] for c in np.unique(y)]))
    return X[keep], y[keep]


def _load_mnist(folder, seed):
    try:
        X_train, y_train = load_mnist(folder, "train", return_X_y=True)
    except FileNotFoundError as missing_train:
        if not Path(folder).expanduser().is_dir():
            raise
        try:
            X, y = load_mnist(folder, "test", return_X_y=True)
        except FileNotFoundError:
            raise missing_train from None
        return _split(X, y, seed)
    return (X_train, y_train) + tuple(load_mnist(folder, "test", return_X_y=True))


def _load(args):
    """``(name, X_train, y_train, X_test, y_test)``; the y and X_test are None without labels.

    Every class keeps at most ``args.max_images`` training and as many test
    images.
    """
    if args.mnist:
        name, (X_train, y_train, X_test, y_test) = "MNIST", _load_mnist(args.mnist, args.seed)
    elif args.images:
        name = args.images
        images, target = load_image_folder(args.images, as_gray=args.gray, return_X_y=True)
        if target is None:
            return name, images[: args.max_images], None, None, None
        if len(np.unique(target)) < 2:
            raise ValueError(
                f"{args.images!r} has a single class folder: the accuracy table needs "
                "two or more (or a flat folder of images to only learn filters)"
            )
        X_train, y_train, X_test, y_test = _split(images, target, args.seed)
    else:
        name = "digits"
        X_train, y_train, X_test, y_test = _split(
            *load_digits_images(return_X_y=True), args.seed
        )
    return (name,) + _per_class(X_train, y_train, args.max_images) + _per_class(
        X_test, y_test, args.max_images
    )


def _geometry(args, image_shape):
    """``(patch_size, pool_size)`` for images of ``image_shape``, checked to fit."""
    h, w = image_shape[:2]
    small = max(h, w) <= _SMALL_SIDE
    m = args.patch_size if args.patch_size is not None else (3 if small else 5)
    if m > min(h, w):
        raise ValueError(f"--patch-size {m} is larger than the {h} x {w} images")
    p = args.pool_size if args.pool_size is not None else (3 if small else 4)
    if p > min(h, w) - m + 1:
        raise ValueError(
            f"--pool-size {p} is larger than the {h - m + 1} x {w - m + 1} convolution "
            f"maps ({m} x {m} filters on {h} x {w} images)"
        )
    return m, p


# -- the job ---------------------------------------------------------------


class _Progress:
    """One line per stage on stdout, ending with its time.

    On a terminal the line shows while its stage runs and is completed in
    place (so it must stay shorter than the terminal: a wrapped line cannot be
    rewritten); elsewhere (a log file, a pipe) only the completed line is
    written, so that logs hold no carriage returns.
    """

    def __init__(self, quiet):
        self.quiet = quiet
        self.tty = sys.stdout.isatty()

    @contextmanager
    def stage(self, label):
        """Time the enclosed stage; what it appends to the yielded list ends its line."""
        notes = []
        if self.tty and not self.quiet:
            print(f"{label} ...", end="", flush=True)
            # The compile notice (stderr, the same terminal) ends this line
            # rather than landing in it; the completed line then follows it.
            _compiling._notice.before = print
        start = time.perf_counter()
        try:
            yield notes
        finally:
            _compiling._notice.before = None
        if not self.quiet:
            # On a terminal, back to the start of the line shown so far.
            restart = "\r" if self.tty else ""
            detail = "".join(f", {note}" for note in notes)
            print(f"{restart}{label} ... {time.perf_counter() - start:.1f} s{detail}",
                  flush=True)


def _feature_learner(args, X_train, m, pool):
    encoder = default_encoder(
        float(np.ptp(X_train)), n_components=args.n_components, max_iter=args.max_iter,
        random_state=args.seed,
    )
    encoder[-1].set_params(tol=_TOL)
    return ConvPoolTransformer(
        encoder, patch_size=m, pool_size=pool, pooling=args.pooling,
        n_patches=args.n_patches, random_state=args.seed,
    )


def _photo_encoder(seed):
    """The default encoder with 64 units, fitted on 8x8 patches of scikit-learn's photographs.

    UFLDL's first exercise: on whitened patches of natural images the units
    become localized, oriented edge detectors. The photographs are reduced to
    a third (Gaussian blur, then subsampling), where an 8x8 patch holds edges
    rather than flat areas and JPEG artefacts.
    """
    from scipy.ndimage import gaussian_filter
    from sklearn.datasets import load_sample_images
    from sklearn.feature_extraction.image import extract_patches_2d

    photos = load_sample_images().images
    patches = [
        extract_patches_2d(
            gaussian_filter(photo @ np.array([0.299, 0.587, 0.114]) / 255, 1.5)[::3, ::3],
            (8, 8), max_patches=_PHOTO_PATCHES // len(photos), random_state=seed + i,
        )
        for i, photo in enumerate(photos)
    ]
    # float32: the autoencoder then trains about twice as fast, to the same filters.
    X = np.concatenate(patches).reshape(-1, 64).astype(np.float32)
    encoder = default_encoder(1.0, n_components=64, random_state=seed)
    encoder[-1].set_params(tol=_PHOTO_TOL)
    return encoder.fit(X)


def _classify(features_train, y_train, features_test, y_test):
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    start = time.perf_counter()
    clf.fit(features_train, y_train)
    return clf.score(features_test, y_test), time.perf_counter() - start


def _save_pictures(conv, X_train, X_test, photo_encoder, out):
    """Write the pictures into ``out``; returns their paths."""
    # Imported here: only the pictures need pyplot (which .plotting imports).
    # The figures are made without it, so no GUI backend is ever loaded.
    from matplotlib.figure import Figure

    from .plotting import plot_feature_maps, plot_filters, plot_reconstructions

    pictures = {}
    pictures["filters.png"] = plot_filters(
        conv, ax=Figure().add_subplot(),
        title=f"{conv.output_shape_[2]} learned filters (whitening folded in)",
    )
    if photo_encoder is not None:
        pictures["photo_filters.png"] = plot_filters(
            photo_encoder, (8, 8), ax=Figure().add_subplot(),
            title="64 filters learned from whitened patches of photographs",
        )
    # The first 16 maps: every map is an Axes, and a hundred of them take
    # seconds to draw.
    pictures["feature_maps.png"] = plot_feature_maps(
        conv, (X_test if X_test is not None else X_train)[0], max_maps=16,
        fig=Figure(figsize=(12, 4.5)),
    )
    # Normalized patches against what ZCA + autoencoder give back from their codes.
    normalizer, rest = conv.encoder_[0], conv.encoder_[1:]
    m, c = conv.patch_size, conv.image_shape_[2]
    rng = np.random.RandomState(0)
    sample = X_train[rng.randint(len(X_train), size=10)]
    if sample.ndim == 3:
        sample = sample[..., None]
    rows, cols = rng.randint(sample.shape[1] - m + 1), rng.randint(sample.shape[2] - m + 1)
    windows = sample[:, rows:rows + m, cols:cols + m].reshape(len(sample), -1)
    pictures["reconstructions.png"] = plot_reconstructions(
        rest, normalizer.transform(windows), (m, m) if c == 1 else (m, m, c),
        fig=Figure(figsize=(14, 3)),
    )
    out.mkdir(parents=True, exist_ok=True)
    for name, fig in pictures.items():
        fig.savefig(out / name, dpi=120)
    return [out / name for name in pictures]


def main(argv=None):
    """Run the main job; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        out = _writable_folder(args.out)
    except OSError as exc:
        parser.error(f"--out: {exc}")
    option = "--mnist" if args.mnist else "--images" if args.images else "digits"
    try:
        name, X_train, y_train, X_test, y_test = _load(args)
        m, pool = _geometry(args, X_train.shape[1:])
    except (OSError, ValueError) as exc:
        parser.error(f"{option}: {exc}")

    progress = _Progress(args.quiet)
    conv = _feature_learner(args, X_train, m, pool)
    if not args.quiet:
        side = " x ".join(map(str, X_train.shape[1:3]))
        test = f" and {len(X_test)} test" if X_test is not None else ""
        print(f"{name}: {len(X_train)} training{test} images of {side} pixels")
    # The fits run on one BLAS thread (and the autoencoder on one thread):
    # their matrices (patches of 9 to 75 values, a few hundred features) are
    # too small for threads to pay, and on a busy machine BLAS's threads wait
    # on each other many times over (a logistic regression on the digits'
    # features took 5 s instead of 0.2 s). The convolutions use every core.
    def one_thread():
        return threadpool_limits(limits=1, user_api="blas")

    with progress.stage(f"learning {args.n_components} {m}x{m} filters from "
                        f"{args.n_patches} patches") as notes:
        start = time.perf_counter()
        with one_thread():
            conv.fit(X_train)
        features_train = conv.transform(X_train)
        fit_time = time.perf_counter() - start
        notes.append(f"{conv.encoder_[-1].n_iter_} iterations")
    rows = []
    if y_train is not None:
        with progress.stage(f"features of the {len(X_test)} test images"):
            start = time.perf_counter()
            features_test = conv.transform(X_test)
            transform_time = time.perf_counter() - start
        with progress.stage("logistic regressions (pixels, features)"), one_thread():
            raw_acc, raw_time = _classify(
                X_train.reshape(len(X_train), -1), y_train,
                X_test.reshape(len(X_test), -1), y_test,
            )
            acc, clf_time = _classify(features_train, y_train, features_test, y_test)
        rows = [
            ("raw pixels + logistic regression", X_train[0].size, raw_time, raw_acc),
            (f"ConvPool (k={conv.output_shape_[2]}, m={conv.patch_size}, "
             f"pool={conv.pool_size}) + logistic regression",
             features_train.shape[1], fit_time + transform_time + clf_time, acc),
        ]
    photo_encoder = None
    if name == "digits":
        with progress.stage(f"learning 64 8x8 filters from {_PHOTO_PATCHES} photo "
                            "patches") as notes, one_thread():
            photo_encoder = _photo_encoder(args.seed)
            notes.append(f"{photo_encoder[-1].n_iter_} iterations")
    with progress.stage("drawing the pictures"):
        written = _save_pictures(conv, X_train, X_test, photo_encoder, out)

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
