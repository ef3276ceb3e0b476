"""Transform throughput on a dask LocalCluster vs numpy in one process.

The collection: 200,000 MNIST-shaped images (28 x 28, float64 in [0, 1], as
``images / 255`` gives), random, or the MNIST test set tiled (``--mnist
DIR``), written once to a zarr store on disk (zarr's default compression) in
blocks of ``--block`` images: 1.25 GB, more than all workers' memory limits
together (``--memory-limit``, split evenly among the workers; a worker's own
resident size is about 300 MiB, which rules out float32's 627 MB with two
workers). The transformer: k = 64 5 x 5 filters folded
from a SparseAutoencoderFeatures, sigmoid, mean pooling over quadrants (12 x
12 regions: 2 x 2 x 64 = 256 features per image, Coates et al.'s pooling);
fitted on a sample before timing.

Three runs, alternated over ``--repeats`` rounds (medians reported):

* ``numpy``: ``conv.transform(X)`` of the collection in memory, in this
  process, ``n_jobs=None`` (both cores);
* ``1x2``: ``conv.transform(da.from_zarr(store)).to_zarr(out)`` on a
  LocalCluster of 1 worker x 2 threads;
* ``2x1``: the same on 2 workers x 1 thread.

The distributed runs read the input from disk and write the features to
disk; the numpy run does neither (its input is already in memory), so the
ratio is conservative. Workers run as dask starts them (a nanny, with
``OPENBLAS_NUM_THREADS=1`` and so one thread per task). Per cluster it
reports each worker's peak resident size (``VmHWM``, Linux: its whole life,
warm-up included) against its memory_limit and whether it spilled
to disk, and the per-task overhead, two ways: ``noop``, thread-seconds per
task of a graph of empty tasks (one per block, as the transform's); and
``idle``, the thread-seconds of the timed runs not spent inside tasks (their
task streams), per task (median over the runs).

**Targets (issue 12): each distributed rate >= 0.85 x numpy's; every
worker's peak under its memory_limit, no spilling, while the input is larger
than all memory limits together.**

The machine may be shared: compare only figures of one run.

Run::

    python benchmarks/bench_dask.py
    python benchmarks/bench_dask.py --mnist ../shared/data/mnist --block 2000
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _harness import alternate  # noqa: E402

N_IMAGES = 200_000
SIDE = 28


def _collection(n, mnist):
    """``n`` float64 28 x 28 images in [0, 1]."""
    if mnist is None:
        return np.random.default_rng(0).random((n, SIDE, SIDE))
    from skaecnn.datasets import load_mnist

    digits = load_mnist(mnist, subset="test").images / 255
    return np.resize(digits, (n, SIDE, SIDE))


def _fitted(images):
    from skaecnn import ConvPoolTransformer, SparseAutoencoderFeatures

    conv = ConvPoolTransformer(
        SparseAutoencoderFeatures(n_components=64, max_iter=50, random_state=0),
        patch_size=5, n_patches=10_000, pool_size=12, random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the rate is what is measured
        conv.fit(images[:2000])
    assert conv.path_ == "folded"
    return conv


def _worker_memory(dask_worker):
    """Peak resident bytes of the worker process, and how often it spilled."""
    # VmHWM (Linux), not getrusage's maxrss: that one keeps the peak of this
    # large process, which the worker was forked from before it exec'd.
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return peak * 1024, dask_worker.data.cumulative_metrics.get(("disk-write", "count"), 0)


def _noop_overhead(client, n_tasks):
    """Thread-seconds per task of a graph of ``n_tasks`` empty tasks."""
    import dask.array as da

    graph = da.zeros(n_tasks, chunks=1).map_blocks(np.negative).sum()
    threads = sum(client.nthreads().values())
    start = time.perf_counter()
    graph.compute(scheduler=client)
    return (time.perf_counter() - start) * threads / n_tasks


def _distributed_run(client, store, out, conv, stats):
    """A run of the transform from ``store`` to ``out`` on ``client``'s cluster,
    appending (thread-seconds outside tasks per task, tasks, seconds
    computing per task) to ``stats``."""
    import dask
    import dask.array as da
    from distributed import get_task_stream

    threads = sum(client.nthreads().values())

    def run():
        start = time.perf_counter()
        with get_task_stream(client) as stream, dask.config.set(scheduler=client):
            conv.transform(da.from_zarr(store)).to_zarr(out, overwrite=True)
        wall = time.perf_counter() - start
        busy = sum(
            part["stop"] - part["start"]
            for task in stream.data for part in task["startstops"]
            if part["action"] == "compute"
        )
        n_tasks = len(stream.data)
        stats.append(((wall * threads - busy) / n_tasks, n_tasks, busy / n_tasks))

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", help="folder of the MNIST IDX files (default: random images)")
    parser.add_argument("--n-images", type=int, default=N_IMAGES)
    parser.add_argument("--block", type=int, default=2000, help="images per block (task)")
    parser.add_argument("--memory-limit", default="1GiB",
                        help="all workers' memory together, split evenly")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import dask
    import dask.array as da
    import zarr
    from distributed import Client, LocalCluster

    total_limit = dask.utils.parse_bytes(args.memory_limit)
    X = _collection(args.n_images, args.mnist)
    if X.nbytes <= total_limit:
        parser.error(f"the input ({X.nbytes / 2**20:.0f} MiB) must exceed --memory-limit")
    conv = _fitted(X)
    conv.transform(X[:2])  # compile or load the kernels

    folder = tempfile.mkdtemp(prefix="bench_dask_")
    try:
        store = os.path.join(folder, "images.zarr")
        z = zarr.create_array(store=store, shape=X.shape, chunks=(args.block, SIDE, SIDE),
                              dtype=X.dtype)
        z[:] = X
        on_disk = sum(
            os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(store) for f in fs
        )
        print(f"{len(X)} images of {SIDE}x{SIDE} {X.dtype}: {X.nbytes / 2**20:.0f} MiB "
              f"({on_disk / 2**20:.0f} MiB on disk), blocks of {args.block} images "
              f"({args.block * X[0].nbytes / 2**20:.1f} MiB), {z.nchunks} tasks; "
              f"features {conv.output_shape_} per image; all workers' memory "
              f"{total_limit / 2**20:.0f} MiB; {os.cpu_count()} cores (maybe shared)")

        clusters = {}
        for name, (workers, threads) in {"1x2": (1, 2), "2x1": (2, 1)}.items():
            cluster = LocalCluster(n_workers=workers, threads_per_worker=threads,
                                   processes=True, memory_limit=total_limit // workers,
                                   dashboard_address=None)
            clusters[name] = (cluster, Client(cluster, set_as_default=False))

        out = os.path.join(folder, "features.zarr")
        stats = {name: [] for name in clusters}
        runners = [("numpy", lambda: conv.transform(X))]
        runners += [(name, _distributed_run(client, store, out, conv, stats[name]))
                    for name, (_, client) in clusters.items()]
        for _, client in clusters.values():
            # Imports and kernels in every worker: a block per thread.
            warm = da.from_zarr(store)[: 4 * args.block]
            conv.transform(warm).sum().compute(scheduler=client)
        noop = {name: _noop_overhead(client, z.nchunks) for name, (_, client) in clusters.items()}
        times = alternate(runners, args.repeats, prime=0)

        numpy_rate = len(X) / statistics.median(times["numpy"])
        print(f"{'run':6} {'images/s':>9} {'vs numpy':>9}  seconds")
        for name, seconds in times.items():
            rate = len(X) / statistics.median(seconds)
            print(f"{name:6} {rate:9.0f} {rate / numpy_rate:9.2f}  "
                  + " ".join(f"{s:.2f}" for s in seconds))
        for name, (cluster, client) in clusters.items():
            idle, n_tasks, busy = (statistics.median(v) for v in zip(*stats[name]))
            limit = total_limit // len(cluster.workers)
            memory = client.run(_worker_memory)
            print(f"{name}: per task {busy * 1e3:.0f} ms computing, overhead "
                  f"{noop[name] * 1e3:.1f} ms (noop), {idle * 1e3:.1f} ms (idle; {n_tasks:.0f} "
                  f"tasks, to_zarr's included); memory_limit {limit / 2**20:.0f} MiB, peak "
                  + ", ".join(f"{peak / 2**20:.0f} MiB ({spills:.0f} spills)"
                              for peak, spills in memory.values()))
        for cluster, client in clusters.values():
            client.close()
            cluster.close()
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
