"""Choose the ``recipe`` of ``benchmarks/accuracy.py`` by cross-validation on the training half.

Every combination of the options given (dictionary, k, activation, alpha,
pooling, ZCA epsilon, patch size, the power of the pooled features, the
classifier's ``C``) is scored by stratified k-fold cross-validation of
``ConvPoolTransformer -> signed_power -> StandardScaler ->
LogisticRegression(C)`` on a stratified subsample of the data set's
*training* split as ``accuracy.py`` loads it (the test split is never read).
The pooled features of each fold are computed once and shared by every power
and ``C``. The dictionary's encoder is ``PatchNormalizer ->
ZCAWhitening(zca) -> KMeansTriangleFeatures`` (``kmeans``) or the UFLDL
sparse autoencoder (``sae``, as ``sae-conv``); ``--activation none`` keeps the
encoder's own activation (triangle or sigmoid), for which ``alpha`` is
unused. Prints one row per combination, best mean first: mean, standard
deviation and worst fold.

Run (one thread: about 20 s per MNIST combination of k = 100 on 2,000
images, all powers and ``C`` included)::

    python benchmarks/recipe_cv.py --mnist /work/shared/data/mnist --n-jobs 1 \\
        --k 100 200 --alpha 1 1.5 2 --pool 9:3 12:6 --power 1 0.5 --C 1 0.3

The digits recipe's ZCA epsilon of 0.3 beat 0.1 at every random state
(98.66 / 99.00 / 98.55% against 98.55 / 98.78 / 98.33%; about 15 s per
combination on the 898 training images)::

    for s in 0 1 2; do python benchmarks/recipe_cv.py --dataset digits \\
        --n-jobs 1 --alpha 1 --pool 3:1 --zca 0.1 0.3 --random-state $s; done
"""

import argparse
import itertools
import time
import warnings
from types import SimpleNamespace

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from accuracy import DATASETS, EPSILON, _cap, load, log, signed_power
from skaecnn import (
    ConvPoolTransformer,
    KMeansTriangleFeatures,
    PatchNormalizer,
    SparseAutoencoderFeatures,
    ZCAWhitening,
)


def make_conv(cfg, shape, dictionary, k, activation, alpha, pool, zca, m, n_patches, n_jobs,
              random_state):
    if dictionary == "kmeans":
        last = KMeansTriangleFeatures(n_components=k, random_state=random_state)
    else:
        last = SparseAutoencoderFeatures(
            n_components=k, decoder="linear", sparsity_target=0.035, sparsity_weight=5.0,
            alpha=3e-3, max_iter=cfg.sae_max_iter, random_state=random_state,
        )
    conv = ConvPoolTransformer(
        make_pipeline(PatchNormalizer(epsilon=EPSILON), ZCAWhitening(epsilon=zca), last),
        patch_size=m, n_patches=n_patches, pool_size=pool[0],
        pool_stride=pool[1], activation=activation, alpha=alpha, image_shape=shape,
        n_jobs=n_jobs, random_state=random_state,
    )
    return conv


def cv_scores(conv, X, y, cv, Cs, powers):
    """Accuracy of every ``(power, C)`` (rows, C fastest) on every fold (columns)."""
    folds = list(cv.split(X, y))
    scores = np.empty((len(powers) * len(Cs), len(folds)))
    for j, (train, test) in enumerate(folds):
        fitted = clone(conv).fit(X[train])
        pooled_train, pooled_test = fitted.transform(X[train]), fitted.transform(X[test])
        for p, power in enumerate(powers):
            scaler = StandardScaler()
            F_train = scaler.fit_transform(signed_power(pooled_train, power))
            F_test = scaler.transform(signed_power(pooled_test, power))
            for i, C in enumerate(Cs):
                clf = LogisticRegression(C=C, max_iter=1000).fit(F_train, y[train])
                scores[p * len(Cs) + i, j] = clf.score(F_test, y[test])
    return scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["digits", "mnist"], default="mnist")
    parser.add_argument("--mnist", metavar="DIR", help="folder of the MNIST IDX files")
    parser.add_argument("--n-train", type=int, default=2000,
                        help="stratified subsample of the training split (default 2000)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--dictionary", nargs="+", choices=["kmeans", "sae"], default=["kmeans"])
    parser.add_argument("--k", nargs="+", type=int, default=[100])
    parser.add_argument("--activation", nargs="+", choices=["split", "soft", "none"],
                        default=["split"])
    parser.add_argument("--alpha", nargs="+", type=float, default=[0.25])
    parser.add_argument("--pool", nargs="+", default=["6:3"],
                        help="pooling regions as SIZE:STRIDE (default 6:3)")
    parser.add_argument("--C", nargs="+", type=float, default=[1.0],
                        help="inverse regularization of the logistic regression (default 1)")
    parser.add_argument("--power", nargs="+", type=float, default=[1.0],
                        help="exponent of the pooled features before the scaler "
                             "(signed power normalization; default 1)")
    parser.add_argument("--zca", nargs="+", type=float, default=[0.1],
                        help="epsilon of the ZCA whitening (default 0.1)")
    parser.add_argument("--patch-size", nargs="+", type=int,
                        help="patch side m (default: the data set's, as accuracy.py)")
    parser.add_argument("--n-patches", nargs="+", type=int,
                        help="patches the dictionary is fitted on (default: the data "
                             "set's, as accuracy.py)")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=None)
    args = parser.parse_args(argv)
    if args.dataset == "mnist" and not args.mnist:
        parser.error("--dataset mnist needs --mnist DIR")
    pools = [tuple(int(v) for v in p.split(":")) for p in args.pool]

    data_args = SimpleNamespace(mnist=args.mnist, random_state=args.random_state,
                                max_train=None, max_test=None)
    X, y, _, _, shape = load(args.dataset, data_args)
    idx = _cap(len(y), y, args.n_train, args.random_state)
    X, y = X[idx], y[idx]
    log(f"[{args.dataset}] cross-validating on {len(X)} training images, {args.folds} folds")
    cfg = DATASETS[args.dataset]
    cv = StratifiedKFold(args.folds, shuffle=True, random_state=args.random_state)
    rows = []
    for dictionary, k, activation, pool, zca, m, n_patches in itertools.product(
        args.dictionary, args.k, args.activation, pools, args.zca,
        args.patch_size or [cfg.patch_size], args.n_patches or [cfg.n_patches],
    ):
        for alpha in args.alpha if activation != "none" else [None]:
            conv = make_conv(cfg, shape, dictionary, k, None if activation == "none" else activation,
                             alpha or 0.0, pool, zca, m, n_patches, args.n_jobs,
                             args.random_state)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                scores = cv_scores(conv, X, y, cv, args.C, args.power)
            for (power, C), row in zip(itertools.product(args.power, args.C), scores):
                name = (f"{dictionary} k={k} {activation}"
                        + ("" if alpha is None else f" alpha={alpha:g}")
                        + f" pool {pool[0]}:{pool[1]}" + ("" if C == 1 else f" C={C:g}")
                        + ("" if zca == 0.1 else f" zca={zca:g}")
                        + ("" if m == cfg.patch_size else f" m={m}")
                        + ("" if n_patches == cfg.n_patches else f" patches={n_patches}")
                        + ("" if power == 1 else f" power={power:g}"))
                rows.append((row.mean(), row.std(), row.min(), name))
                log(f"  {name}: {100 * row.mean():.2f}% +- {100 * row.std():.2f}")
            log(f"  ({time.perf_counter() - start:.0f} s)")
    print(f"{args.dataset}, {len(X)} training images, {args.folds}-fold CV "
          f"(random_state={args.random_state}):")
    for mean, std, worst, name in sorted(rows, reverse=True):
        print(f"  {100 * mean:6.2f}% +- {100 * std:4.2f}  worst {100 * worst:6.2f}%  {name}")


if __name__ == "__main__":
    main()
