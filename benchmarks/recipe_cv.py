"""Choose the ``recipe`` of ``benchmarks/accuracy.py`` by cross-validation on the training half.

Every combination of the options given (dictionary, k, activation, alpha,
pooling, ZCA and PatchNormalizer epsilons, the sparse autoencoder's
sparsity target, sparsity weight and weight decay, patch size, the power of
the pooled features, the classifier's ``C``) is scored by stratified k-fold
cross-validation of ``ConvPoolTransformer -> signed_power -> StandardScaler ->
LogisticRegression(C)`` on a stratified subsample of the data set's
*training* split as ``accuracy.py`` loads it (the test split is never read).
The pooled features of each fold are computed once and shared by every power
and ``C``. The dictionary's encoder is ``PatchNormalizer ->
ZCAWhitening(zca) -> KMeansTriangleFeatures`` (``kmeans``) or
ConvPoolTransformer's default encoder with ``k`` units, ``--sae-iter``
L-BFGS iterations and whitening epsilon ``zca`` (``sae``: the UFLDL sparse
autoencoder of ``sae-conv``); ``--activation none`` keeps the
encoder's own activation (triangle or sigmoid), for which ``alpha`` is
unused. Prints one row per combination, best mean first: mean, standard
deviation and worst fold. Several ``--random-state`` values each draw their
own split, subsample and folds (on digits the folds of one state spread by
0.3-1 point: one state's mean is noisy); the row pools all their folds and
ends with each state's mean.

``--finetune`` scores the network of ``convnet-recipe`` instead: each fold's
fitted layer fine-tuned by ``ConvNetClassifier`` for every combination of
``--power``, ``--max-shift``, ``--dropout``, ``--learning-rate``,
``--max-iter`` and ``--weight-decay`` (its ``alpha``; defaults: ``FINETUNE``
and the data set's recipe). The epoch counts of ``--max-iter`` are read off
one run of ``partial_fit`` epoch by epoch, the same epochs as ``fit`` (which
would stop earlier only if the training loss stalled for
``n_iter_no_change`` epochs).

Run (one thread: about 20 s per MNIST combination of k = 100 on 2,000
images, all powers and ``C`` included)::

    python benchmarks/recipe_cv.py --mnist /work/shared/data/mnist --n-jobs 1 \\
        --k 100 200 --alpha 1 1.5 2 --pool 9:3 12:6 --power 1 0.5 --C 1 0.3

The digits recipe's ZCA epsilon of 0.3 beat 0.1 at every random state
(98.66 / 99.00 / 98.55% against 98.55 / 98.78 / 98.33%; about 15 s per
combination on the 898 training images)::

    for s in 0 1 2; do python benchmarks/recipe_cv.py --dataset digits \\
        --n-jobs 1 --alpha 1 --pool 3:1 --zca 0.1 0.3 --random-state $s; done

Pooled over those three states, nothing beat it (98.74%; 72 settings in
about 10 min)::

    python benchmarks/recipe_cv.py --dataset digits --n-jobs 1 --k 50 100 150 \\
        --alpha 0.5 0.75 1 1.5 --pool 3:1 --zca 0.2 0.3 0.5 --C 0.3 1 \\
        --random-state 0 1 2

The digits network's shifts of 1 pixel beat none (98.92% against 98.55% at
10 epochs; about 80 s per state for 24 networks of 5, 10 and 20 epochs; a
second run with ``--max-shift 1 2 --dropout 0.25 0.5 --learning-rate 1e-4
--max-iter 5 10 15 20 30`` gave shifts of 2 98.37%)::

    python benchmarks/recipe_cv.py --dataset digits --n-jobs 1 --alpha 1 \\
        --pool 3:1 --zca 0.3 --finetune --max-shift 0 1 --learning-rate 1e-4 3e-4 \\
        --weight-decay 1e-4 1e-3 --max-iter 5 10 20 --random-state 0 1 2

The default ``ConvPoolTransformer(patch_size=5, pool_size=4)`` on all 5,000
MNIST training images (``sae`` with ``--activation none --pool 4:4 --zca
1`` is its default encoder; 1-2 min per combination): k = 50, 75 and 100
level (96.76 / 96.65 / 96.67% over states 0, 1, 2; folds spread by 0.2-0.6
point), 150 and 200 worse at every state (96.19 / 95.93%); at k = 100,
``--sae-iter 1000`` (96.64%), ``--power 0.5`` (96.51%) and ``--n-patches
30000`` (state 0: 96.50% against 96.60%) did not help either::

    python benchmarks/recipe_cv.py --mnist DIR --n-jobs 1 --n-train 5000 \\
        --dictionary sae --activation none --pool 4:4 --zca 1 \\
        --k 50 75 100 150 200 --power 1 0.5 --random-state 0 1 2

Its encoder's other settings, one at a time (the default now: 96.57%, 96.52
/ 96.42 / 96.78%): weight decay ``--sae-alpha`` 1e-3
96.80% (3e-4 96.79%, 1e-2 96.04%), ``--zca`` 0.1 96.84% (0.03 96.88%, 0.3
96.81%, 3 95.85%), ``--sparsity-target`` 0.01 / 0.02 / 0.05 / 0.1 96.56 /
96.63 / 96.48 / 96.11%, ``--sparsity-weight`` 1 / 2 / 10 96.47 / 96.55 /
96.56%, ``--norm-epsilon`` 1 / 100 96.63 / 96.49%. ZCA 0.1 with weight
decay 1e-3 cross-validated best (96.91%: 96.98 / 96.82 / 96.92%; at states
3, 4, 5 too, 96.90% against 96.71%), yet scored 97.18% on the test half
(97.20 / 97.08 / 97.26%, ``accuracy.py --methods default-conv``) against
97.61% for the default in the same run (97.64 / 97.58 / 97.60%): here the
training half does not predict the test half (MNIST's first 5,000 test
images are the cleaner, easier ones), and the default stays::

    python benchmarks/recipe_cv.py --mnist DIR --n-jobs 1 --n-train 5000 \\
        --dictionary sae --activation none --pool 4:4 --zca 1 \\
        --sae-alpha 3e-4 1e-3 3e-3 1e-2 --random-state 0 1 2
    # the same with --sparsity-target 0.01 0.02 0.05 0.1, --sparsity-weight
    # 1 2 10 or --norm-epsilon 1 100 instead of --sae-alpha, and with
    # --zca 0.03 0.1 0.3 --sae-alpha 1e-3 3e-3

Max pooling, the same way: 97.21% against 96.58% for the mean (states 1, 2
and 3; 97.08 against 96.48% at state 0; k = 50 and 200 level with 100), but
97.36% against 97.64% on the test half (states 0, 1 and 2): the mean stays.
On digits (``--dataset digits --pool 3:3 3:3:max --activation none
--dictionary sae --zca 1``, the default layer there) they were level::

    python benchmarks/recipe_cv.py --mnist DIR --n-jobs 1 --n-train 5000 \\
        --dictionary sae --activation none --pool 4:4 4:4:max --zca 1 \\
        --random-state 0 1 2 3
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
from threadpoolctl import threadpool_limits

from accuracy import DATASETS, EPSILON, FINETUNE, _cap, load, log, signed_power
from skaecnn import (
    ConvNetClassifier,
    ConvPoolTransformer,
    KMeansTriangleFeatures,
    PatchNormalizer,
    ZCAWhitening,
)
from skaecnn._convpool import default_encoder


# The default encoder's sparse autoencoder: its sparsity target (rho),
# sparsity weight (beta) and weight decay (lambda) are the defaults of
# --sparsity-target, --sparsity-weight and --sae-alpha.
SAE = default_encoder(1.0)[-1]
SAE_NAMES = {"sparsity_target": "rho", "sparsity_weight": "beta", "alpha": "lambda"}


def make_conv(shape, dictionary, k, activation, alpha, pool, zca, m, n_patches, max_iter,
              n_jobs, random_state, norm=EPSILON, sae=None):
    """The layer scored; ``norm`` is PatchNormalizer's epsilon and ``sae`` the
    SparseAutoencoderFeatures parameters that differ from the default encoder's."""
    if dictionary == "kmeans":
        encoder = make_pipeline(
            PatchNormalizer(epsilon=norm), ZCAWhitening(epsilon=zca),
            KMeansTriangleFeatures(n_components=k, random_state=random_state),
        )
    else:
        # ConvPoolTransformer's own default for pixels in [0, 1], whose
        # PatchNormalizer epsilon is EPSILON (norm by default).
        encoder = default_encoder(1.0, n_components=k, max_iter=max_iter,
                                  random_state=random_state)
        encoder.set_params(
            patchnormalizer__epsilon=norm, zcawhitening__epsilon=zca,
            **{f"sparseautoencoderfeatures__{name}": v for name, v in (sae or {}).items()},
        )
    conv = ConvPoolTransformer(
        encoder,
        patch_size=m, n_patches=n_patches, pool_size=pool[0], pool_stride=pool[1],
        pooling=pool[2], activation=activation, alpha=alpha, image_shape=shape,
        n_jobs=n_jobs, random_state=random_state,
    )
    return conv


def cv_scores(conv, X, y, cv, settings, finetune=False, random_state=None):
    """Accuracy of every setting (rows) on every fold (columns).

    A setting is ``(power, C)`` of the logistic regression or, with
    ``finetune``, ``(power, max_shift, dropout, learning_rate, max_iter,
    weight_decay)`` of ``ConvNetClassifier`` fine-tuning the fold's layer.
    """
    folds = list(cv.split(X, y))
    scores = np.empty((len(settings), len(folds)))
    for j, (train, test) in enumerate(folds):
        fitted = clone(conv).fit(X[train])
        if finetune:
            # One network per setting but the epochs, scored after each epoch
            # count asked for: partial_fit runs the epochs of fit one by one.
            marks = {}
            for i, (power, shift, dropout, rate, epochs, decay) in enumerate(settings):
                marks.setdefault((power, shift, dropout, rate, decay), {})[epochs] = i
            for (power, shift, dropout, rate, decay), rows in marks.items():
                # The fold's fitted layer is copied, not refitted, by each network.
                net = ConvNetClassifier(
                    [fitted], pretrain="keep", power=power, max_shift=shift, dropout=dropout,
                    learning_rate_init=rate, alpha=decay, random_state=random_state,
                    n_jobs=fitted.n_jobs,
                )
                for epoch in range(1, max(rows) + 1):
                    net.partial_fit(X[train], y[train], classes=np.unique(y))
                    if epoch in rows:
                        scores[rows[epoch], j] = net.score(X[test], y[test])
            continue
        pooled_train, pooled_test = fitted.transform(X[train]), fitted.transform(X[test])
        for i, (power, C) in enumerate(settings):
            if i == 0 or power != settings[i - 1][0]:
                scaler = StandardScaler()
                F_train = scaler.fit_transform(signed_power(pooled_train, power))
                F_test = scaler.transform(signed_power(pooled_test, power))
            clf = LogisticRegression(C=C, max_iter=1000).fit(F_train, y[train])
            scores[i, j] = clf.score(F_test, y[test])
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
                        help="pooling regions as SIZE:STRIDE, optionally :FUNCTION (mean, "
                             "max or sum; default mean), e.g. 4:4:max (default 6:3)")
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
    parser.add_argument("--sae-iter", nargs="+", type=int,
                        help="L-BFGS iterations of the sparse autoencoder (default: the "
                             "data set's, as accuracy.py)")
    parser.add_argument("--norm-epsilon", nargs="+", type=float, default=[10.0],
                        help="PatchNormalizer's epsilon for 8-bit pixels, rescaled to the "
                             "[0, 1] pixels as EPSILON (default 10: Coates et al.'s)")
    parser.add_argument("--sparsity-target", nargs="+", type=float,
                        default=[SAE.sparsity_target],
                        help="sparse autoencoder's rho (default: the default encoder's)")
    parser.add_argument("--sparsity-weight", nargs="+", type=float,
                        default=[SAE.sparsity_weight],
                        help="sparse autoencoder's beta (default: the default encoder's)")
    parser.add_argument("--sae-alpha", nargs="+", type=float, default=[SAE.alpha],
                        help="sparse autoencoder's weight decay lambda (default: the "
                             "default encoder's)")
    parser.add_argument("--finetune", action="store_true",
                        help="score ConvNetClassifier fine-tuning each fold's layer (as "
                             "convnet-recipe) instead of the logistic regression (--C unused)")
    parser.add_argument("--max-shift", nargs="+", type=int, help="with --finetune (default: "
                        "the data set's recipe.max_shift)")
    parser.add_argument("--dropout", nargs="+", type=float, default=[FINETUNE["dropout"]],
                        help="with --finetune (default: accuracy.py's FINETUNE)")
    parser.add_argument("--learning-rate", nargs="+", type=float,
                        default=[FINETUNE["learning_rate_init"]], help="with --finetune")
    parser.add_argument("--max-iter", nargs="+", type=int, default=[FINETUNE["max_iter"]],
                        help="epochs, with --finetune")
    parser.add_argument("--weight-decay", nargs="+", type=float,
                        default=[FINETUNE.get("alpha", ConvNetClassifier().alpha)],
                        help="the network's alpha, with --finetune")
    parser.add_argument("--random-state", nargs="+", type=int, default=[0],
                        help="one or more: each draws its own train/test split (as "
                             "accuracy.py's --random-state), subsample and folds; the "
                             "table pools the folds of all")
    parser.add_argument("--n-jobs", type=int, default=None)
    args = parser.parse_args(argv)
    if args.dataset == "mnist" and not args.mnist:
        parser.error("--dataset mnist needs --mnist DIR")
    if args.n_jobs and args.n_jobs > 0:
        # As in accuracy.py: BLAS threads beyond --n-jobs compete with the
        # kernels (and other jobs) for the cores.
        threadpool_limits(args.n_jobs, user_api="blas")
    pools = []
    for spec in args.pool:
        parts = spec.split(":")
        if (len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[:2])
                or parts[2:] not in ([], ["mean"], ["max"], ["sum"])):
            parser.error(f"--pool takes SIZE:STRIDE[:mean|max|sum]; got {spec!r}")
        pools.append((int(parts[0]), int(parts[1]), parts[2] if parts[2:] else "mean"))
    cfg = DATASETS[args.dataset]
    if args.finetune:
        shifts = args.max_shift or [cfg.recipe.max_shift if cfg.recipe else 0]
        settings = list(itertools.product(args.power, shifts, args.dropout, args.learning_rate,
                                          args.max_iter, args.weight_decay))
    else:
        settings = list(itertools.product(args.power, args.C))

    def describe(setting):
        if not args.finetune:
            power, C = setting
            return ("" if C == 1 else f" C={C:g}") + ("" if power == 1 else f" power={power:g}")
        power, shift, dropout, rate, epochs, decay = setting
        return (("" if power == 1 else f" power={power:g}")
                + f" shift={shift} dropout={dropout:g} lr={rate:g} epochs={epochs}"
                + f" decay={decay:g}")

    # The sparse autoencoder's parameters that differ from the default encoder's.
    sae_settings = [
        {name: v for name, v in zip(SAE_NAMES, values) if v != getattr(SAE, name)}
        for values in itertools.product(args.sparsity_target, args.sparsity_weight,
                                        args.sae_alpha)
    ]
    folds, per_state = {}, {}
    for state in args.random_state:
        data_args = SimpleNamespace(mnist=args.mnist, random_state=state,
                                    max_train=None, max_test=None)
        X, y, _, _, shape = load(args.dataset, data_args)
        idx = _cap(len(y), y, args.n_train, state)
        X, y = X[idx], y[idx]
        log(f"[{args.dataset}] random_state={state}: cross-validating on {len(X)} training "
            f"images, {args.folds} folds")
        cv = StratifiedKFold(args.folds, shuffle=True, random_state=state)
        for dictionary, k, activation, pool, zca, norm, m, n_patches in itertools.product(
            args.dictionary, args.k, args.activation, pools, args.zca, args.norm_epsilon,
            args.patch_size or [cfg.patch_size], args.n_patches or [cfg.n_patches],
        ):
            for alpha, max_iter, sae in itertools.product(
                args.alpha if activation != "none" else [None],
                (args.sae_iter or [cfg.sae_max_iter]) if dictionary == "sae" else [None],
                sae_settings if dictionary == "sae" else [{}],
            ):
                conv = make_conv(shape, dictionary, k,
                                 None if activation == "none" else activation, alpha or 0.0,
                                 pool, zca, m, n_patches, max_iter, args.n_jobs, state,
                                 norm * EPSILON / 10, sae)
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    scores = cv_scores(conv, X, y, cv, settings, args.finetune, state)
                for setting, row in zip(settings, scores):
                    name = (f"{dictionary} k={k} {activation}"
                            + ("" if alpha is None else f" alpha={alpha:g}")
                            + f" pool {pool[0]}:{pool[1]}"
                            + ("" if pool[2] == "mean" else f":{pool[2]}")
                            + ("" if zca == 0.1 else f" zca={zca:g}")
                            + ("" if m == cfg.patch_size else f" m={m}")
                            + ("" if n_patches == cfg.n_patches else f" patches={n_patches}")
                            + ("" if max_iter in (None, cfg.sae_max_iter)
                               else f" iter={max_iter}")
                            + ("" if norm == 10 else f" norm={norm:g}")
                            + "".join(f" {SAE_NAMES[p]}={v:g}" for p, v in sae.items())
                            + describe(setting))
                    folds.setdefault(name, []).extend(row)
                    per_state.setdefault(name, []).append(row.mean())
                    log(f"  {name}: {100 * row.mean():.2f}% +- {100 * row.std():.2f}")
                log(f"  ({time.perf_counter() - start:.0f} s)")
    states = " ".join(str(s) for s in args.random_state)
    print(f"{args.dataset}, {len(X)} training images, {args.folds}-fold CV "
          f"(random_state={states}"
          + ("; mean, std and worst over all their folds, then each state's mean" if
             len(args.random_state) > 1 else "") + "):")
    rows = sorted(((np.mean(f), np.std(f), np.min(f), name) for name, f in folds.items()),
                  reverse=True)
    for mean, std, worst, name in rows:
        each = (" (" + " / ".join(f"{100 * m:.2f}" for m in per_state[name]) + ")"
                if len(args.random_state) > 1 else "")
        print(f"  {100 * mean:6.2f}% +- {100 * std:4.2f}  worst {100 * worst:6.2f}%  "
              f"{name}{each}")


if __name__ == "__main__":
    main()
