"""Benchmark one epoch of ConvNetClassifier's fine-tuning against the same network in PyTorch.

The network is ConvNetClassifier's default for MNIST-sized images: 5x5
filters, k=64, sigmoid, mean pooling 2; 3x3 filters, k=128, sigmoid, mean
pooling 2; softmax on the 5x5x128 maps (standardized, as ConvNetClassifier
feeds them). Both sides start from the same pretrained filters and run one
epoch of Adam minibatches (batch 64, float32, weight decay on the weights, no
dropout or shifts) over the same images, with the same number of threads
(``n_jobs``; ``torch.set_num_threads``), alternating in the same run.
skaecnn's epoch is ``partial_fit``, input checks included.

Printed: images/s (forward + backward + update), the ratio skaecnn / torch
(> 1 means skaecnn is faster), and the share of skaecnn's epoch that the
convolution GEMMs would take at numpy's float32 GEMM rate on this machine
(the forward ``P @ W.T``, the filter gradient ``P.T @ E`` and, for the second
layer, the input error ``E @ W``, each on one image's patch rows, timed
single-threaded and divided by the thread count).

**Target: ratio >= 1; aim >= 2.**

Run (needs ``pip install torch==2.13.0``, the ``bench`` extra)::

    python benchmarks/bench_finetune.py
    python benchmarks/bench_finetune.py --n-images 4096 --repeats 5 --threads 2
"""

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np
from _harness import alternate, timed
from threadpoolctl import threadpool_limits

from skaecnn import ConvNetClassifier, ConvPoolTransformer, SparseAutoencoderFeatures

# (h, w, c), then per layer (patch m, filters k, pool p)
IMAGE = (28, 28, 1)
LAYERS = ((5, 64, 2), (3, 128, 2))
BATCH = 64
ALPHA = 1e-4
LR = 1e-3


def make_classifier(X, y, threads):
    """A ConvNetClassifier with cheaply pretrained layers (the values do not matter for speed)."""
    layers = [
        ConvPoolTransformer(
            SparseAutoencoderFeatures(n_components=k, decoder="linear", max_iter=2, random_state=0),
            patch_size=m, n_patches=1000, pool_size=p, random_state=0,
        )
        for m, k, p in LAYERS
    ]
    clf = ConvNetClassifier(layers, alpha=ALPHA, batch_size=BATCH, learning_rate_init=LR,
                            max_iter=1, random_state=0, n_jobs=threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarnings of the short fits
        clf.fit(X[:256], y[:256])
    return clf


def torch_model(torch, clf):
    """The same network in PyTorch, from the classifier's current parameters."""
    nn = torch.nn
    modules = []
    c = IMAGE[2]
    for layer in clf.layers_:
        k, m = layer.filters_.shape[:2]
        conv = nn.Conv2d(c, k, m)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(layer.filters_.transpose(0, 3, 1, 2).astype(np.float32)))
            conv.bias.copy_(torch.from_numpy(layer.intercept_.astype(np.float32)))
        modules += [conv, nn.Sigmoid(), nn.AvgPool2d(layer.pool_size)]
        c = k
    ph, pw, k = clf.layers_[-1].output_shape_
    # skaecnn flattens (h, w, k); torch's maps are (k, h, w).
    order = np.arange(ph * pw * k).reshape(ph, pw, k).transpose(2, 0, 1).ravel()
    mean = torch.from_numpy(clf.feature_mean_[order].astype(np.float32))
    scale = torch.from_numpy(clf.feature_scale_[order].astype(np.float32))
    linear = nn.Linear(ph * pw * k, len(clf.classes_))
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(clf.coef_[:, order].astype(np.float32)))
        linear.bias.copy_(torch.from_numpy(clf.intercept_.astype(np.float32)))

    class Standardize(nn.Module):
        def forward(self, x):
            return (x - mean) * scale

    return nn.Sequential(*modules, nn.Flatten(), Standardize(), linear)


def torch_epoch(torch, model, X, y):
    X_t = torch.from_numpy(np.ascontiguousarray(X.transpose(0, 3, 1, 2)))
    y_t = torch.from_numpy(y.astype(np.int64))
    decay = [p for name, p in model.named_parameters() if name.endswith("weight")]
    other = [p for name, p in model.named_parameters() if not name.endswith("weight")]
    optimizer = torch.optim.Adam(
        [{"params": decay, "weight_decay": ALPHA}, {"params": other}], lr=LR
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)

    def run():
        for idx in torch.randperm(len(X_t), generator=generator).split(BATCH):
            optimizer.zero_grad()
            loss = loss_fn(model(X_t[idx]), y_t[idx])
            loss.backward()
            optimizer.step()

    return run


def gemm_seconds_per_image(clf):
    """Seconds numpy's float32 GEMM takes for one image's convolution products, one thread."""
    rng = np.random.RandomState(0)
    h, w, c = IMAGE
    total = 0.0
    for i, layer in enumerate(clf.layers_):
        m = layer.patch_size
        p = layer.pool_size
        k = layer.filters_.shape[0]
        oh, ow = (h - m + 1) // p, (w - m + 1) // p
        rows, d = oh * p * ow * p, m * m * c
        P = rng.standard_normal((rows, d)).astype(np.float32)
        W = rng.standard_normal((d, k)).astype(np.float32)
        E = rng.standard_normal((rows, k)).astype(np.float32)
        products = [lambda: P @ W, lambda: P.T @ E] + ([lambda: E @ W.T] if i > 0 else [])
        reps = 50
        for product in products:
            product()
            total += timed(lambda: [product() for _ in range(reps)]) / reps
        h, w, c = oh, ow, k
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-images", type=int, default=2048, help="images per epoch")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs of each")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        sys.exit("This benchmark needs PyTorch: pip install torch==2.13.0")
    torch.set_num_threads(args.threads)

    rng = np.random.RandomState(0)
    X = rng.uniform(0, 1, size=(args.n_images,) + IMAGE).astype(np.float32)
    y = rng.randint(10, size=args.n_images)
    start = time.perf_counter()
    clf = make_classifier(X, y, args.threads)
    setup = time.perf_counter() - start
    model = torch_model(torch, clf)
    with torch.no_grad():
        theirs = model(torch.from_numpy(X[:8].transpose(0, 3, 1, 2))).numpy()
    diff = float(np.max(np.abs(theirs - clf._decision(X[:8]))))

    runners = [
        ("skaecnn", lambda: clf.partial_fit(X, y)),
        ("torch", torch_epoch(torch, model, X, y)),
    ]
    with threadpool_limits(limits=args.threads, user_api="blas"):
        times = alternate(runners, args.repeats, prime=0)
    t_ours, t_torch = statistics.median(times["skaecnn"]), statistics.median(times["torch"])
    with threadpool_limits(limits=1, user_api="blas"):  # as in skaecnn's kernel threads
        gemm = gemm_seconds_per_image(clf) * args.n_images / args.threads

    n = args.n_images
    print(f"threads={args.threads}, {n} images of {IMAGE}, batch {BATCH}, float32, "
          f"layers (m, k, pool) {LAYERS}; setup (pretraining, compile) {setup:.1f} s; "
          f"max |skaecnn - torch| of the initial scores {diff:.1e}")
    print("medians over the repeats (slowest-fastest in brackets; the machine may be shared):")
    print(f"  skaecnn: {n / t_ours:.0f} images/s [{n / max(times['skaecnn']):.0f}-"
          f"{n / min(times['skaecnn']):.0f}]")
    print(f"  torch:   {n / t_torch:.0f} images/s [{n / max(times['torch']):.0f}-"
          f"{n / min(times['torch']):.0f}]")
    print(f"  ratio skaecnn / torch: {t_torch / t_ours:.2f} (target >= 1, aim >= 2)")
    print(f"  convolution GEMMs at numpy's rate: {gemm:.2f} s of skaecnn's {t_ours:.2f} s epoch "
          f"({gemm / t_ours:.0%})")


if __name__ == "__main__":
    main()
