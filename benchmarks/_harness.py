"""Timing helpers shared by the benchmark scripts (imported from their folder)."""

import resource
import time

import numpy as np


def quiesce(window=0.01, timeout=1.0):
    """Wait until this process's threads have stopped burning CPU.

    After a call returns, its worker threads may spin in wait for more work:
    numpy's OpenBLAS keeps one core busy for about 0.1 s after a GEMM on 2
    threads, PyTorch's OpenMP threads for a few ms. Whatever runs next then has
    one core fewer. This waits until a ``window`` passes with under 10% of a
    core used (at most ``timeout`` seconds).
    """
    def cpu():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        before = cpu()
        time.sleep(window)
        if cpu() - before < 0.1 * window:
            return


def timed(fn):
    """Wall-clock seconds of one call of ``fn``."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def alternate(runners, repeats, prime=0.2):
    """Time every ``(name, fn)`` of ``runners`` ``repeats`` times, interleaved.

    Repeat ``r`` runs them rotated by ``r // 2`` and, on odd ``r``, reversed,
    so that each goes first, last and next to each of the others as often as
    the others: a drift in the machine's load then hits all of them alike.
    Before each timed call, the threads of the runner before have stopped
    spinning (:func:`quiesce`), then untimed calls for ``prime`` seconds (at
    least one) have woken the runner's own threads and caches: each is timed
    as in a loop of its own calls, whichever ran before it. On this VM,
    after an idle spell even an empty parallel kernel launch takes
    milliseconds, one call is not always enough to wake up from it, and that
    would swamp a 1-image transform. Nor are 20 ms: after the square GEMM
    and the quiet spell, a 2.6 ms objective evaluation (3x3 float32, 2
    threads) still took 4.9 ms in the next 20 ms, and 4.0 ms after 0.2 s of
    calls; a 0.1 s quiet spell made it 6.8 ms. Runners of seconds may pass
    0.
    Returns ``{name: [seconds, ...]}``.
    """
    times = {name: [] for name, _ in runners}
    for r in range(repeats):
        shift = (r // 2) % len(runners)
        order = runners[shift:] + runners[:shift]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            quiesce()
            if prime:
                end = time.perf_counter() + prime
                fn()
                while time.perf_counter() < end:
                    fn()
            times[name].append(timed(fn))
    return times


def parse_shapes(parser, value, known):
    """The comma-separated names in ``value``, each a key of ``known``."""
    shapes = value.split(",")
    unknown = sorted(set(shapes) - set(known))
    if unknown:
        parser.error(f"unknown shape(s) {unknown}; choose from {list(known)}")
    return shapes


def square_gemm(size=1024):
    """numpy's float32 GEMM of two ``size x size`` matrices, the machine's
    reference rate: returns ``(fn, flops)`` for one call. Time it among the
    other runners (its BLAS threads are whatever limit is in force there)."""
    rng = np.random.RandomState(0)
    A = rng.standard_normal((size, size)).astype(np.float32)
    B = rng.standard_normal((size, size)).astype(np.float32)
    C = np.empty((size, size), dtype=np.float32)
    return (lambda: np.matmul(A, B, out=C)), 2 * size**3


def spread(times):
    """max / min of a list of timings."""
    return max(times) / min(times)
