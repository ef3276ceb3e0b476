"""Peak memory of ConvPoolTransformer.transform at n and 4n images.

Each measurement runs in a fresh subprocess: it fits a transformer cheaply
(as ``bench_convpool.py`` does), transforms two images to compile the kernels
(or load them from numba's cache), then resets the process's peak resident
size (``/proc/self/clear_refs``), makes ``n`` random images and transforms
them. It reports two peaks, both above the memory in use before the images
were made, so both include the input and the output:

* ``rss``: the peak resident size (``VmHWM``): everything, including numba's
  and BLAS's buffers;
* ``traced``: the peak of tracemalloc, which sees numpy's allocations only.

The growth from n to 4n of each peak is compared with the growth of input +
output: what ``transform`` needs beyond them must not grow with ``n``.
**Target: peak growth <= 1.5 x (input + output) growth.**

Run::

    python benchmarks/bench_memory.py                      # stl, n=200
    python benchmarks/bench_memory.py --shape mnist --n-images 2500
    python benchmarks/bench_memory.py --dtype uint8        # converted chunk by chunk
"""

import argparse
import json
import os
import subprocess
import sys
import tracemalloc
import warnings

import numpy as np

# name: (height, width, channels, filters k, patch m, pool p), as in bench_convpool.py
SHAPES = {
    "mnist": (28, 28, 1, 64, 5, 2),
    "cifar": (32, 32, 3, 400, 6, 13),
    "stl": (64, 64, 3, 400, 8, 19),
}


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _images(n, shape, dtype, rng):
    """Random images made in place: no float64 temporary to inflate the peak."""
    h, w, c = shape[:3]
    if np.dtype(dtype) == np.uint8:
        return rng.integers(0, 256, size=(n, h, w, c), dtype=np.uint8)
    return rng.random((n, h, w, c), dtype=np.dtype(dtype))


def child(shape_name, n, dtype, threads):
    """One measurement; prints a JSON line."""
    from skaecnn import ConvPoolTransformer, SparseAutoencoderFeatures

    shape = SHAPES[shape_name]
    h, w, c, k, m, p = shape
    rng = np.random.default_rng(0)
    small = _images(100, shape, dtype, rng)
    conv = ConvPoolTransformer(
        SparseAutoencoderFeatures(n_components=k, max_iter=1, random_state=0),
        patch_size=m, n_patches=max(2 * k, 500), pool_size=p, n_jobs=threads, random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of max_iter=1
        conv.fit(small)
    conv.transform(small[:2])  # compile or load the kernels
    del small

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current VmRSS (Linux >= 4.0)
        reset = True
    except OSError:
        reset = False
    base_rss = _status_kib("VmRSS")
    tracemalloc.start()
    X = _images(n, shape, dtype, rng)
    F = conv.transform(X)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak_rss = _status_kib("VmHWM")
    print(json.dumps(dict(
        n=n, input=X.nbytes, output=F.nbytes, rss=(peak_rss - base_rss) * 1024,
        traced=traced, reset=reset,
        unpooled=n * (h - m + 1) * (w - m + 1) * k * F.itemsize,
    )))


def measure(shape_name, n, dtype, threads):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--shape", shape_name,
           "--n-images", str(n), "--dtype", dtype, "--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=list(SHAPES), default="stl")
    parser.add_argument("--n-images", type=int, default=200, help="n; the second run has 4n")
    parser.add_argument("--dtype", choices=["float32", "float64", "uint8"], default="float32")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.shape, args.n_images, args.dtype, args.threads)
        return

    mib = 2.0**20
    rows = [measure(args.shape, n, args.dtype, args.threads)
            for n in (args.n_images, 4 * args.n_images)]
    print(f"shape {args.shape} {SHAPES[args.shape]} (h, w, c, k, m, p), {args.dtype} images, "
          f"threads={args.threads}; MiB above the memory in use before the images were made")
    if not all(r["reset"] for r in rows):
        print("  (could not reset VmHWM: rss includes the warm-up's peak)")
    print(f"{'n':>6s} {'input':>9s} {'output':>9s} {'in+out':>9s} {'rss peak':>9s} "
          f"{'traced peak':>12s} {'(unpooled maps)':>16s}")
    for r in rows:
        print(f"{r['n']:6d} {r['input'] / mib:9.1f} {r['output'] / mib:9.1f} "
              f"{(r['input'] + r['output']) / mib:9.1f} {r['rss'] / mib:9.1f} "
              f"{r['traced'] / mib:12.1f} {r['unpooled'] / mib:16.1f}")
    small, large = rows
    io_growth = (large["input"] + large["output"]) - (small["input"] + small["output"])
    ok = True
    for key in ("rss", "traced"):
        growth = large[key] - small[key]
        ratio = growth / io_growth
        ok &= ratio <= 1.5
        print(f"{key:6s} peak growth {growth / mib:8.1f} MiB = {ratio:.2f} x the growth of "
              f"input + output ({io_growth / mib:.1f} MiB)")
    print("target (peak growth <= 1.5 x input + output growth):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
