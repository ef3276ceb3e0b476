"""Benchmark the fused k-means triangle path of ConvPoolTransformer.transform.

Coates et al.'s encoder, ``PatchNormalizer -> ZCAWhitening ->
KMeansTriangleFeatures``, is folded into filters: the kernel gets the
distances ``||x' - c_k||`` of every whitened window ``x'`` from
``||x'||^2 - 2 x'.c_k + ||c_k||^2`` in one matrix product per block of
windows. Its peers, timed in the same run on the same images and threads
(repeats rotate the order; medians are compared):

* ``generic``: the same fitted centroids through ConvPoolTransformer's
  generic path (patch matrix of a chunk, then ``encoder_.transform`` of it),
  which is what the transformer did before the fused path existed. It is
  obtained by inserting an identity ``FunctionTransformer`` before the
  k-means step, which keeps the encoder from being folded.
* ``torch`` (when installed): ``unfold`` -> normalize -> whiten -> ``cdist``
  -> triangle -> ``sum_pool``/``avg_pool2d`` in PyTorch under
  ``inference_mode``, in batches of 64 images.

Shapes (h, w, c, k, m, pool regions):

* ``mnist``: 28x28x1, k=100 5x5 centroids, 4x4 mean pooling (as
  ``benchmarks/accuracy.py`` on MNIST);
* ``cifar``: Coates et al.'s CIFAR-10 setting, 32x32x3, k=1600 6x6
  centroids, sum pooling over the four quadrants.

Before timing, each float32 result on the first images is compared with the
definition in float64 (the generic path on float64 images), as the largest
error relative to the largest feature. All float32 peers share the same
cancellation in ``||x'||^2 - 2 x'.c + ||c||^2``, larger here than on real
images because the random images' whitened windows are long vectors of noise
and barely-fitted centroids lie at nearly equal distances.

**Target: fused faster than generic on both shapes, with a float32 error at
most 1.5x the generic path's.**

Run::

    python benchmarks/bench_triangle.py
    python benchmarks/bench_triangle.py --shapes cifar --n-images 500 --threads 1

The script leaves ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` alone and
prints whether they are set.
"""

import argparse
import os
import statistics

import numpy as np
from _harness import alternate, parse_shapes, timed
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skaecnn import ConvPoolTransformer, KMeansTriangleFeatures, PatchNormalizer, ZCAWhitening

# name: (height, width, channels, centroids k, patch m, pool p, pooling), default images
SHAPES = {
    "mnist": ((28, 28, 1, 100, 5, 4, "mean"), 5000),
    "cifar": ((32, 32, 3, 1600, 6, 13, "sum"), 500),
}
TORCH_BATCH = 64


def make_problem(shape, n, threads, seed=0):
    """Random images and the fused and generic transformers with the same centroids."""
    h, w, c, k, m, p, pooling = shape
    rng = np.random.RandomState(seed)
    X = rng.uniform(0.0, 1.0, size=(n, h, w, c)).astype(np.float32)

    def conv(*middle):
        encoder = make_pipeline(
            PatchNormalizer(10 / 255**2), ZCAWhitening(0.1), *middle,
            KMeansTriangleFeatures(k, max_iter=2, random_state=seed),
        )
        return ConvPoolTransformer(
            encoder, patch_size=m, n_patches=4 * k, pool_size=p, pooling=pooling,
            flatten=False, n_jobs=threads, random_state=seed,
        ).fit(X[:200])

    return X, conv(), conv(FunctionTransformer())


def torch_runner(torch, X, conv):
    """The encoder and pooling of ``conv`` written in PyTorch, on NCHW float32 batches."""
    F = torch.nn.functional
    normalizer, zca, km = (step for _, step in conv.encoder_.steps)
    h, w, c = conv.image_shape_
    m, p = conv.patch_size, conv.pool_size
    X_t = torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2)))
    # unfold ravels windows channel-major; skaecnn's patches are (row, col, channel).
    order = np.arange(m * m * c).reshape(m, m, c).transpose(2, 0, 1).ravel()
    M = torch.from_numpy(zca.whitening_[np.ix_(order, order)].astype(np.float32))
    mean = torch.from_numpy(zca.mean_[order].astype(np.float32))
    C = torch.from_numpy(km.cluster_centers_[:, order].astype(np.float32))
    oh, ow = h - m + 1, w - m + 1

    def encode(x):
        cols = F.unfold(x, m).transpose(1, 2)  # (B, positions, d)
        cols = cols - cols.mean(dim=2, keepdim=True)
        cols = cols / torch.sqrt(cols.pow(2).mean(dim=2, keepdim=True) + normalizer.epsilon)
        z = torch.cdist((cols - mean) @ M, C.unsqueeze(0))
        f = torch.clamp(z.mean(dim=2, keepdim=True) - z, min=0)
        maps = f.transpose(1, 2).reshape(x.shape[0], -1, oh, ow)
        pooled = F.avg_pool2d(maps, p)
        return pooled * (p * p) if conv.pooling == "sum" else pooled

    def run():
        with torch.inference_mode():
            return torch.cat([encode(X_t[s : s + TORCH_BATCH]) for s in range(0, len(X_t), TORCH_BATCH)])

    return run


def bench_shape(torch, name, n, threads, repeats):
    shape, _ = SHAPES[name]
    X, fused, generic = make_problem(shape, n, threads)
    assert fused.filters_ is not None and generic.filters_ is None
    warmup = timed(lambda: fused.transform(X[:2]))
    runners = [("fused", lambda: fused.transform(X)), ("generic", lambda: generic.transform(X))]
    few = X[:64]
    results = {"fused": fused.transform(few), "generic": generic.transform(few)}
    if torch is not None:
        runners.append(("torch", torch_runner(torch, X, fused)))
        results["torch"] = torch_runner(torch, few, fused)().numpy().transpose(0, 2, 3, 1)
    reference = generic.transform(few.astype(np.float64))
    diffs = {
        key: float(np.abs(F - reference).max() / np.abs(reference).max())
        for key, F in results.items()
    }
    times = alternate(runners, repeats)
    rates = {key: n / statistics.median(t) for key, t in times.items()}
    return name, n, warmup, diffs, rates


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="mnist,cifar", help=f"comma-separated, from {', '.join(SHAPES)}")
    parser.add_argument("--n-images", type=int, default=None, help="images per shape")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for all")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each")
    args = parser.parse_args(argv)
    shapes = parse_shapes(parser, args.shapes, SHAPES)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
        print("torch not installed: comparing with the generic path only")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        print(f"{var} = {os.environ.get(var)!r}")
    print(f"threads={args.threads}, repeats={args.repeats}, float32; medians of images/s")
    failed = []
    for name in shapes:
        name, n, warmup, diffs, rates = bench_shape(
            torch, name, args.n_images or SHAPES[name][1], args.threads, args.repeats
        )
        print(f"{name}: n={n}, warm-up (compile or cache load) {warmup:.2f} s")
        for key, rate in rates.items():
            print(f"  {key:8s} {rate:8.0f} images/s   fused / {key}: {rates['fused'] / rate:5.2f}   "
                  f"float32 error vs float64: {diffs[key]:.1e}")
        if rates["fused"] <= rates["generic"] or diffs["fused"] > 1.5 * diffs["generic"]:
            failed.append(name)
    print("target (fused faster than generic, error <= 1.5x generic's):",
          "met" if not failed else f"NOT met on {failed}")


if __name__ == "__main__":
    main()
