"""Held-out accuracy over a whole user-style grid search on digits.

A new user tunes ``ConvPoolTransformer -> StandardScaler ->
LogisticRegression`` with :class:`~sklearn.model_selection.GridSearchCV`
(3-fold, on the training half of ``accuracy.py``'s digits split) over the
number of filters ``k``, the patch size ``m`` and the pooling size, with the
encoder ``ConvPoolTransformer`` uses by default (``default_encoder``: patch
normalization, ZCA whitening, UFLDL's sparse autoencoder), optionally with
its sparsity target and iterations changed. Every grid point is then refitted
on the whole training half and scored on the test half, which no choice
sees: the spread of those scores (minimum, median, maximum) says whether the
defaults work across the grid, and the selected point's score is what the
user would get. Prints one row per grid point, best cross-validated first.

Run (one thread: about 10 minutes for the default grid of 24 points)::

    python benchmarks/grid_spread.py --n-jobs 1
    python benchmarks/grid_spread.py --n-jobs 1 --sparsity-target 0.1 --max-iter 100
"""

import argparse
import time
import warnings
from types import SimpleNamespace

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from accuracy import load, log

from skaecnn import ConvPoolTransformer
from skaecnn._convpool import default_encoder

K = "features__encoder__sparseautoencoderfeatures__n_components"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", nargs="+", type=int, default=[25, 50, 100, 200])
    parser.add_argument("--m", nargs="+", type=int, default=[3, 4, 5],
                        help="patch sizes (default 3 4 5)")
    parser.add_argument("--pool", nargs="+", type=int, default=[2, 3],
                        help="pooling sizes, regions that tile the maps (default 2 3)")
    parser.add_argument("--sparsity-target", type=float,
                        help="the autoencoder's sparsity target (default: the encoder's)")
    parser.add_argument("--max-iter", type=int,
                        help="the autoencoder's iterations (default: the encoder's)")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=None)
    args = parser.parse_args(argv)

    data_args = SimpleNamespace(random_state=args.random_state, max_train=None, max_test=None)
    X_train, y_train, X_test, y_test, shape = load("digits", data_args)
    encoder = default_encoder(1.0, random_state=args.random_state)
    changed = {name: value for name, value in (
        ("sparsity_target", args.sparsity_target), ("max_iter", args.max_iter),
    ) if value is not None}
    encoder.set_params(**{f"sparseautoencoderfeatures__{name}": value
                          for name, value in changed.items()})
    model = Pipeline([
        ("features", ConvPoolTransformer(encoder, image_shape=shape, n_jobs=args.n_jobs,
                                         random_state=args.random_state)),
        ("scale", StandardScaler()),
        ("classifier", LogisticRegression(max_iter=1000)),
    ])
    grid = {K: args.k, "features__patch_size": args.m, "features__pool_size": args.pool}
    log(f"[digits] grid of {len(args.k) * len(args.m) * len(args.pool)} points, "
        f"3-fold CV on {len(X_train)} training images; encoder changes: {changed or 'none'}")
    start = time.perf_counter()
    with warnings.catch_warnings():
        # A user's grid runs the autoencoder as configured, converged or not.
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(model, grid, cv=3).fit(X_train, y_train)
        held_out = []
        for params in search.cv_results_["params"]:
            fitted = clone(model).set_params(**params).fit(X_train, y_train)
            held_out.append(fitted.score(X_test, y_test))
    log(f"  ({time.perf_counter() - start:.0f} s)")

    results = search.cv_results_
    held_out = 100 * np.array(held_out)
    print(f"digits, random_state={args.random_state}, encoder changes: {changed or 'none'}")
    print("     k  m  pool  CV mean +- std  held out")
    for i in np.argsort(-results["mean_test_score"], kind="stable"):
        params = results["params"][i]
        print(f"  {params[K]:4d}  {params['features__patch_size']}  "
              f"{params['features__pool_size']:4d}  "
              f"{100 * results['mean_test_score'][i]:6.2f}% +- "
              f"{100 * results['std_test_score'][i]:4.2f}   {held_out[i]:6.2f}%")
    print(f"held out over the grid: min {held_out.min():.2f}%, median "
          f"{np.median(held_out):.2f}%, max {held_out.max():.2f}%; selected "
          f"{search.best_params_}: {held_out[search.best_index_]:.2f}%")


if __name__ == "__main__":
    main()
