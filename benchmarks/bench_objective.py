"""Benchmark one evaluation of the sparse-autoencoder objective + gradient.

Times ``skaecnn._objective.loss_and_gradient`` (numpy/BLAS, analytic gradient)
against the same objective written in PyTorch with autograd (forward +
backward on the CPU), on the same data and parameters, with the same number
of threads for both (``torch.set_num_threads`` and ``threadpoolctl`` for
numpy's BLAS).

The problem is UFLDL's ``sparseAutoencoderCost`` on ``n`` random patches
with ``k`` hidden units, parameters as in UFLDL's linear decoder exercise
(alpha = 3e-3, rho = 0.035, beta = 5), on three shapes:

* ``3x3``: 10,000 gray 3x3 patches (``d = 9``), k = 100 -- what
  ``python -m skaecnn`` fits on the bundled digits;
* ``5x5``: 10,000 gray 5x5 patches (``d = 25``), k = 100 (MNIST-sized);
* ``8x8x3``: 100,000 colour 8x8 patches (``d = 192``), k = 400 (UFLDL's
  STL-10 exercise).

Before timing, it checks that both give the same loss and gradient and
prints the relative differences (loss: |l_s - l_t| / |l_t|; gradient:
max |g_s - g_t| / max |g_t|). Then it times ``--repeats`` evaluations,
alternating skaecnn, torch and a 1024x1024 float32 numpy GEMM (and which
goes first), and prints the medians, the ratio torch / skaecnn (> 1 means
skaecnn is faster) with its spread (the ratio of the slowest to the fastest
of skaecnn's repeats), skaecnn's achieved GFLOP/s, counting the 5 GEMMs of
2 n d k flops each, and that as a fraction of the square GEMM's rate.

**Targets: ratio >= 1 on 8x8x3; >= 1.5 (aim 3) on 3x3 and 5x5.**

Run (needs ``pip install torch==2.13.0``, the project's ``bench`` extra)::

    python benchmarks/bench_objective.py                      # linear, both dtypes
    python benchmarks/bench_objective.py --shapes 3x3,5x5 --decoder both --repeats 9
    python benchmarks/bench_objective.py --dtype float32 --decoder sigmoid --threads 1

The script leaves ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` alone (some
environments set them, and they can slow numpy's GEMM); it prints whether they
are set and which OpenBLAS kernel threadpoolctl reports. To compare, run it
once more as ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ...``.
"""

import argparse
import os
import platform
import statistics
import sys

import numpy as np
from _harness import alternate, parse_shapes, spread, square_gemm
from threadpoolctl import threadpool_info, threadpool_limits

from skaecnn._objective import activations_buffer, initialize, loss_and_gradient
from skaecnn._threads import effective_threads

# UFLDL linearDecoderExercise.m
ALPHA = 3e-3
SPARSITY_TARGET = 0.035
SPARSITY_WEIGHT = 5.0
# name: (patch shape, samples n, hidden units k)
SHAPES = {
    "3x3": ((3, 3, 1), 10_000, 100),
    "5x5": ((5, 5, 1), 10_000, 100),
    "8x8x3": ((8, 8, 3), 100_000, 400),
}


def make_problem(n, d, k, dtype, decoder, seed=0):
    """Random patches and parameters (UFLDL init plus small non-zero biases)."""
    rng = np.random.RandomState(seed)
    if decoder == "sigmoid":
        # Targets must lie in (0, 1) for a sigmoid output (UFLDL rescales to [0.1, 0.9]).
        X = rng.uniform(0.1, 0.9, size=(n, d))
    else:
        # Linear decoder: ZCA-whitened-like, zero-mean data.
        X = rng.standard_normal(size=(n, d))
    X = np.ascontiguousarray(X, dtype=dtype)
    theta = initialize(d, k, rng, np.float64)
    theta[2 * k * d :] = rng.normal(scale=0.1, size=k + d)
    return X, theta.astype(dtype)


def make_torch_objective(torch, n, d, k, alpha, rho, beta, decoder):
    """The same objective in PyTorch; the gradient comes from autograd."""
    eps = None

    def objective(theta, X):
        nonlocal eps
        if eps is None:
            eps = torch.finfo(X.dtype).eps
        theta.grad = None
        W1 = theta[: k * d].view(k, d)
        W2 = theta[k * d : 2 * k * d].view(d, k)
        b1 = theta[2 * k * d : 2 * k * d + k]
        b2 = theta[2 * k * d + k :]
        A = torch.sigmoid(torch.addmm(b1, X, W1.T))
        Y = torch.addmm(b2, A, W2.T)
        if decoder == "sigmoid":
            Y = torch.sigmoid(Y)
        loss = (0.5 / n) * (Y - X).square().sum()
        loss = loss + (0.5 * alpha) * (W1.square().sum() + W2.square().sum())
        if beta:
            rho_hat = A.mean(dim=0).clamp(eps, 1 - eps)
            kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log(
                (1 - rho) / (1 - rho_hat)
            )
            loss = loss + beta * kl.sum()
        loss.backward()
        return loss.item(), theta.grad

    return objective


def describe_environment(torch, threads):
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}"
    )
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var)
        print(f"  {var} = {value!r}" if value is not None else f"  {var}: not set")
    with threadpool_limits(limits=threads):
        for lib in threadpool_info():
            path = lib["filepath"]
            packages = ("numpy", "scipy", "torch", "scikit_learn", "sklearn", "numba")
            owner = next(
                (pkg for pkg in packages if f"{os.sep}{pkg}" in path), os.path.dirname(path)
            )
            print(
                f"  threadpoolctl: {lib['user_api']}/{lib['internal_api']} "
                f"{lib.get('version')} kernel={lib.get('architecture', '-')} "
                f"threads={lib['num_threads']}  [{owner}: {os.path.basename(path)}]"
            )
    blas = "MKL" if torch.backends.mkl.is_available() else "non-MKL"
    print(f"  torch BLAS: {blas}, torch threads = {torch.get_num_threads()}")


def rel_diffs(loss_s, grad_s, loss_t, grad_t):
    loss_rel = abs(loss_s - loss_t) / abs(loss_t)
    g_s = np.asarray(grad_s, dtype=np.float64)
    g_t = np.asarray(grad_t, dtype=np.float64)
    grad_rel = np.max(np.abs(g_s - g_t)) / np.max(np.abs(g_t))
    return loss_rel, grad_rel


def bench_one(torch, name, dtype, decoder, repeats):
    patch, n, k = SHAPES[name]
    d = int(np.prod(patch))
    X, theta = make_problem(n, d, k, dtype, decoder)
    grad = np.empty_like(theta)
    # As SparseAutoencoderFeatures(n_jobs=None) fitting with L-BFGS under the
    # script's thread limit.
    n_threads = effective_threads(None)
    activations = activations_buffer(n, k, dtype)

    def run_skaecnn():
        return loss_and_gradient(
            theta, X, k, ALPHA, SPARSITY_TARGET, SPARSITY_WEIGHT, decoder, grad=grad,
            n_threads=n_threads, activations=activations,
        )

    X_t = torch.from_numpy(X)
    theta_t = torch.from_numpy(theta.copy()).requires_grad_(True)
    torch_objective = make_torch_objective(
        torch, n, d, k, ALPHA, SPARSITY_TARGET, SPARSITY_WEIGHT, decoder
    )

    def run_torch():
        return torch_objective(theta_t, X_t)

    # Agreement (also the warm-up of both).
    loss_s, grad_s = run_skaecnn()
    grad_s = grad_s.copy()
    loss_t, grad_t = run_torch()
    grad_t = grad_t.numpy()
    assert grad_s.dtype == grad_t.dtype == np.dtype(dtype)
    loss_rel, grad_rel = rel_diffs(loss_s, grad_s, loss_t, grad_t)
    tol = 1e-9 if np.dtype(dtype) == np.float64 else 1e-3
    status = "OK" if max(loss_rel, grad_rel) < tol else f"MISMATCH (tol {tol:g})"
    print(
        f"  check {name:5s} {np.dtype(dtype).name:7s} {decoder:7s}: loss {loss_s:.10g} vs {loss_t:.10g}, "
        f"rel diff loss {loss_rel:.2e}, grad {grad_rel:.2e}  {status}"
    )
    run_skaecnn()
    run_torch()

    gemm, gemm_flops = square_gemm()
    gemm()
    times = alternate([("skaecnn", run_skaecnn), ("torch", run_torch), ("gemm", gemm)], repeats)
    t_s = statistics.median(times["skaecnn"])
    t_t = statistics.median(times["torch"])
    gflops = 5 * 2 * n * d * k / t_s / 1e9
    gemm_gflops = gemm_flops / statistics.median(times["gemm"]) / 1e9
    return dict(name=name, dtype=np.dtype(dtype).name, decoder=decoder, skaecnn=t_s, torch=t_t,
                ratio=t_t / t_s, gflops=gflops, of_gemm=gflops / gemm_gflops,
                gemm=gemm_gflops, loss_rel=loss_rel, grad_rel=grad_rel,
                spread=spread(times["skaecnn"]), torch_spread=spread(times["torch"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=",".join(SHAPES),
                        help=f"comma-separated, from {', '.join(SHAPES)}")
    parser.add_argument("--repeats", type=int, default=7, help="timed evaluations of each")
    parser.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    parser.add_argument(
        "--decoder", choices=["linear", "sigmoid", "both"], default="linear",
        help="output nonlinearity (default linear, as UFLDL uses on colour patches)",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for numpy's BLAS and torch (default: all cores)")
    args = parser.parse_args(argv)
    shapes = parse_shapes(parser, args.shapes, SHAPES)

    try:
        import torch
    except ImportError:
        sys.exit("This benchmark needs PyTorch: pip install torch==2.13.0")

    torch.set_num_threads(args.threads)
    try:
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass

    dtypes = ["float32", "float64"] if args.dtype == "both" else [args.dtype]
    decoders = ["linear", "sigmoid"] if args.decoder == "both" else [args.decoder]
    print(f"repeats={args.repeats}, threads={args.threads}; shapes (patch, n, k): "
          + "; ".join(f"{s} {SHAPES[s][1]} {SHAPES[s][2]}" for s in shapes))
    describe_environment(torch, args.threads)
    print("  load average at start: %.2f %.2f %.2f" % os.getloadavg())

    rows = []
    with threadpool_limits(limits=args.threads):
        for name in shapes:
            for dtype in dtypes:
                for decoder in decoders:
                    rows.append(bench_one(torch, name, dtype, decoder, args.repeats))

    print("  load average at end:   %.2f %.2f %.2f" % os.getloadavg())
    print()
    print("medians over the repeats (max/min of the repeats in brackets; the machine may be "
          "shared):")
    print(f"{'shape':6s} {'dtype':8s} {'decoder':8s} {'skaecnn ms':>15s} {'torch ms':>15s} "
          f"{'torch/skaecnn':>14s} {'GFLOP/s':>8s} {'of GEMM':>8s}")
    for r in rows:
        print(f"{r['name']:6s} {r['dtype']:8s} {r['decoder']:8s} "
              f"{r['skaecnn'] * 1e3:8.2f} [{r['spread']:4.2f}] "
              f"{r['torch'] * 1e3:8.2f} [{r['torch_spread']:4.2f}] "
              f"{r['ratio']:14.2f} {r['gflops']:8.1f} {r['of_gemm']:8.1%}")
    print(f"numpy float32 GEMM 1024^3: {statistics.median(r['gemm'] for r in rows):.1f} GFLOP/s "
          "(median over the rows)")
    short = [f"{r['name']} {r['dtype']} {r['decoder']}" for r in rows
             if r["ratio"] < (1.0 if r["name"] == "8x8x3" else 1.5)]
    print("targets (>= 1 on 8x8x3, >= 1.5 on 3x3 and 5x5):",
          "met" if not short else f"NOT met on {', '.join(short)}")


if __name__ == "__main__":
    main()
