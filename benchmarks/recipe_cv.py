"""Choose the ``recipe`` of ``benchmarks/accuracy.py`` by cross-validation on the training half.

Every combination of the options given (dictionary, k, activation, alpha,
pooling, ZCA epsilon, patch size, the classifier's ``C``) is scored by stratified k-fold cross-validation of ``ConvPoolTransformer
-> StandardScaler -> LogisticRegression(C)`` on a stratified subsample of
the data set's *training* split as ``accuracy.py`` loads it (the test split is
never read). The dictionary's encoder is ``PatchNormalizer -> ZCAWhitening(zca)
-> KMeansTriangleFeatures`` (``kmeans``) or the UFLDL sparse autoencoder
(``sae``, as ``sae-conv``); ``--activation none`` keeps the encoder's own
activation (triangle or sigmoid), for which ``alpha`` is unused. Prints one
row per combination, best mean first: mean, standard deviation and worst fold.

Run (2 cores: about 10 s per MNIST combination and fold at k = 100)::

    python benchmarks/recipe_cv.py --mnist /work/shared/data/mnist --n-jobs 2 \\
        --dictionary kmeans sae --activation split soft none --alpha 0.25 --pool 6:3
"""

import argparse
import itertools
import time
import warnings
from types import SimpleNamespace

from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from accuracy import DATASETS, EPSILON, _cap, load, log
from skaecnn import (
    ConvPoolTransformer,
    KMeansTriangleFeatures,
    PatchNormalizer,
    SparseAutoencoderFeatures,
    ZCAWhitening,
)


def make_pipe(cfg, shape, dictionary, k, activation, alpha, pool, C, zca, m, n_jobs,
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
        patch_size=m, n_patches=cfg.n_patches, pool_size=pool[0],
        pool_stride=pool[1], activation=activation, alpha=alpha, image_shape=shape,
        n_jobs=n_jobs, random_state=random_state,
    )
    return make_pipeline(conv, StandardScaler(), LogisticRegression(C=C, max_iter=1000))


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
    parser.add_argument("--zca", nargs="+", type=float, default=[0.1],
                        help="epsilon of the ZCA whitening (default 0.1)")
    parser.add_argument("--patch-size", nargs="+", type=int,
                        help="patch side m (default: the data set's, as accuracy.py)")
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
    for dictionary, k, activation, pool, C, zca, m in itertools.product(
        args.dictionary, args.k, args.activation, pools, args.C, args.zca,
        args.patch_size or [cfg.patch_size],
    ):
        for alpha in args.alpha if activation != "none" else [None]:
            pipe = make_pipe(cfg, shape, dictionary, k, None if activation == "none" else activation,
                             alpha or 0.0, pool, C, zca, m, args.n_jobs, args.random_state)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                scores = cross_val_score(pipe, X, y, cv=cv)
            name = (f"{dictionary} k={k} {activation}"
                    + ("" if alpha is None else f" alpha={alpha:g}") + f" pool {pool[0]}:{pool[1]}"
                    + ("" if C == 1 else f" C={C:g}") + ("" if zca == 0.1 else f" zca={zca:g}")
                    + ("" if m == cfg.patch_size else f" m={m}"))
            rows.append((scores.mean(), scores.std(), scores.min(), name))
            log(f"  {name}: {100 * scores.mean():.2f}% +- {100 * scores.std():.2f} "
                f"({time.perf_counter() - start:.0f} s)")
    print(f"{args.dataset}, {len(X)} training images, {args.folds}-fold CV "
          f"(random_state={args.random_state}):")
    for mean, std, worst, name in sorted(rows, reverse=True):
        print(f"  {100 * mean:6.2f}% +- {100 * std:4.2f}  worst {100 * worst:6.2f}%  {name}")


if __name__ == "__main__":
    main()
