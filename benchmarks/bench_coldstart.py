"""Benchmark the first run: how long numba's compiles make a new user wait.

The kernels compile on first use and are cached on disk, so a fresh install
pays the compile once. This script measures it in child processes, each with
an empty numba cache (``NUMBA_CACHE_DIR`` in a temporary folder, "cold") or
with the cache a cold run just filled ("warm"), on the bundled digits:

* ``transform``: load a fitted default ``ConvPoolTransformer`` (pickled by a
  setup process) and transform the 1797 images -- a model shared with a user;
* ``fit``: fit the default ``ConvPoolTransformer`` and transform -- the
  README's first steps (the fit compiles the autoencoder's objective, and the
  check of the folded filters compiles the convolution kernel).

For each it prints the medians over ``--repeats`` of the import, of the step
(wall and CPU seconds), cold and warm, and the compile's cost: cold minus
warm. The CPU seconds of one process are the steadier figure on a shared
machine (compiling runs on one thread).

**Target (issue "First contact"): the first transform of a fresh install
within 5 s on 2 cores.**

Run from the repository (the child processes import skaecnn as this one
does; set ``PYTHONPATH`` to compare two trees)::

    python benchmarks/bench_coldstart.py --repeats 3
"""

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile

import numpy as np

_CHILD = r"""
import json, pickle, sys, time
t0 = time.perf_counter()
import skaecnn
from sklearn.datasets import load_digits
X = load_digits().data
t1, c1 = time.perf_counter(), time.process_time()
if sys.argv[1] == "transform":
    with open(sys.argv[2], "rb") as f:
        pickle.load(f).transform(X)
else:
    skaecnn.ConvPoolTransformer(random_state=0).fit(X).transform(X)
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"import": t1 - t0, "wall": t2 - t1, "cpu": c2 - c1}))
"""


def run_child(step, model, cache):
    import skaecnn

    # The child imports the skaecnn this process imported: from the cache
    # folder, where ``python -c`` puts nothing of its own on sys.path (from
    # a repository it would import the repository's, whatever PYTHONPATH says).
    tree = os.path.dirname(os.path.dirname(skaecnn.__file__))
    path = os.pathsep.join(filter(None, [tree, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=path)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, step, model], env=env, check=True,
        capture_output=True, text=True, cwd=cache,
    )
    return json.loads(out.stdout.splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="cold/warm pairs per step")
    parser.add_argument("--steps", default="transform,fit", help="comma-separated: transform, fit")
    args = parser.parse_args()
    steps = args.steps.split(",")
    if not set(steps) <= {"transform", "fit"} or args.repeats < 1:
        parser.error("--steps: transform and/or fit; --repeats: at least 1")

    from sklearn.datasets import load_digits

    from skaecnn import ConvPoolTransformer

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"load average at start {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model.pkl")
        with open(model, "wb") as f:
            pickle.dump(ConvPoolTransformer(random_state=0).fit(load_digits().data), f)
        results = {(s, kind): [] for s in steps for kind in ("cold", "warm")}
        for r in range(args.repeats):
            for step in steps:
                cache = tempfile.mkdtemp(dir=tmp)
                results[step, "cold"].append(run_child(step, model, cache))
                results[step, "warm"].append(run_child(step, model, cache))
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    print(f"medians of {args.repeats} (slowest-fastest), seconds:")
    print(f"{'step':10} {'cache':5} {'import':>18} {'wall':>18} {'cpu':>18}")
    for step in steps:
        medians = {}
        for kind in ("cold", "warm"):
            rows = results[step, kind]
            cells = []
            for key in ("import", "wall", "cpu"):
                values = [row[key] for row in rows]
                medians[kind, key] = np.median(values)
                cells.append(f"{np.median(values):6.2f} [{min(values):.2f}-{max(values):.2f}]")
            print(f"{step:10} {kind:5} " + " ".join(f"{cell:>18}" for cell in cells))
        print(f"{step:10} compile: {medians['cold', 'wall'] - medians['warm', 'wall']:.2f} s wall, "
              f"{medians['cold', 'cpu'] - medians['warm', 'cpu']:.2f} s CPU")
    if "transform" in steps:
        first = np.median([row["wall"] for row in results["transform", "cold"]])
        print(f"target: first transform of a fresh install <= 5 s: "
              f"{'met' if first <= 5 else 'NOT met'} ({first:.2f} s)")


if __name__ == "__main__":
    main()
