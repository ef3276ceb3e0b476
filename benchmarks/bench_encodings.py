"""Speed of the fused kernel with the encodings and overlapping pooling.

Times ``ConvPoolTransformer.transform`` (float32, folded filters) of random
MNIST-sized images for each variant against the existing path -- sigmoid
activation, mean pooling over regions that tile the map -- with the same
number ``k`` of output maps, in alternating repeats (``_harness.alternate``),
and prints medians and the ratio to the existing path (> 1: slower).

Variants (``k`` output maps each; ``m = 5``, pooling 4 unless named):

* ``sigmoid``: the existing path (``activation=None`` on a sparse autoencoder);
* ``soft``: ``activation="soft"`` on the same ``k`` filters;
* ``split``: ``activation="split"`` on ``k / 2`` filters (``k`` maps);
* ``sigmoid 6:3`` / ``split 6:3``: pooling 6 x 6 regions every 3 positions.

Run::

    python benchmarks/bench_encodings.py --k 64 --n-images 4000 --repeats 7

The machine's other load shifts all variants alike only because they
alternate; on a shared machine, compare ratios, not images/s across runs.
"""

import argparse
import os
import statistics
import warnings

import numpy as np
from _harness import alternate

from skaecnn import ConvPoolTransformer, SparseAutoencoderFeatures

VARIANTS = {
    # name: (activation, filters as a fraction of k, pool size, pool stride)
    "sigmoid": (None, 1, 4, None),
    "soft": ("soft", 1, 4, None),
    "split": ("split", 2, 4, None),
    "sigmoid 6:3": (None, 1, 6, 3),
    "split 6:3": ("split", 2, 6, 3),
}


def fitted(X, k, activation, divisor, pool, stride, threads):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of max_iter=1
        return ConvPoolTransformer(
            SparseAutoencoderFeatures(n_components=k // divisor, max_iter=1, random_state=0),
            patch_size=5, n_patches=1000, pool_size=pool, pool_stride=stride,
            activation=activation, n_jobs=threads, random_state=0,
        ).fit(X[:100])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=64, help="output maps (default 64)")
    parser.add_argument("--n-images", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    X = np.random.RandomState(0).uniform(size=(args.n_images, 28, 28)).astype(np.float32)
    runners = []
    for name, (activation, divisor, pool, stride) in VARIANTS.items():
        conv = fitted(X, args.k, activation, divisor, pool, stride, args.threads)
        conv.transform(X[:2])  # numba compile or cache load
        runners.append((name, lambda conv=conv: conv.transform(X)))
    print(f"k={args.k} maps, {args.n_images} images 28x28 float32, threads={args.threads}, "
          f"repeats={args.repeats}; load average at start %.2f" % os.getloadavg()[0])
    times = alternate(runners, args.repeats)
    base = statistics.median(times["sigmoid"])
    for name, t in times.items():
        median = statistics.median(t)
        print(f"  {name:12s} {args.n_images / median:8.0f} images/s  [{min(t):.3f}-{max(t):.3f} s]"
              f"  time / sigmoid {median / base:5.2f}")
    print("load average at end %.2f (the machine may be shared)" % os.getloadavg()[0])


if __name__ == "__main__":
    main()
