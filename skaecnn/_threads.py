"""Threads as a parameter: how many an estimator uses, and BLAS limits that
concurrent calls share.

The rule (:func:`effective_threads`): an estimator's ``n_jobs`` asks for a
number of threads, None or negative ones counted from all the process may
use: the cores (numba's pool; in a joblib/loky child, the share joblib gave
it through ``NUMBA_NUM_THREADS``), or inside a dask worker's task that
worker's share for the task (its ``nthreads`` divided among the tasks it runs
or has ready to run), or inside a task of dask's local threaded scheduler
the cores divided among the scheduler's threads, so that tasks together run
no more threads than there are. It gets at most what the caller allows
around the call -- numba's thread count of the calling thread
(``numba.set_num_threads``, which an enclosing estimator of this package
sets for the estimators it fits) and the BLAS limit found outside this
package's own sections
(``threadpoolctl.threadpool_limits``, or the ``OPENBLAS_NUM_THREADS=1`` that
a dask nanny starts its workers with). A limit is never raised.

Where BLAS must run on fewer threads than it may (every kernel thread runs its
own matrix products, as in the autoencoder objective's blocks, see
:mod:`skaecnn._objective`), :func:`blas_limit` lowers the
process-wide BLAS setting for the duration: concurrent sections share the
smallest limit any of them asks, and the last one to leave restores what the
first one found, so that two threads transforming at once leave the limits as
they were. Multi-threaded OpenBLAS parallelizes each GEMM with a barrier per
panel; on a busy machine its threads stall on each other, which is why work
split into blocks, each on its own thread with one BLAS thread, runs faster.
"""

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
from threadpoolctl import ThreadpoolController

_controller = None
# The BLAS limits of the sections now open (blas_limit), and the settings the
# first of them found.
_blas_lock = threading.Lock()
_blas_requests = []
_blas_found = None


def _reset_after_fork():
    # Locks or sections other threads held at the fork do not exist in the
    # child.
    global _blas_lock, _blas_requests, _blas_found
    _blas_lock = threading.Lock()
    _blas_requests, _blas_found = [], None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _blas_controller():
    global _controller
    if _controller is None:
        _controller = ThreadpoolController().select(user_api="blas")
    return _controller


def _outer_blas_limits():
    """The BLAS thread limits set outside this package's sections, one per
    library; call with ``_blas_lock`` held."""
    if _blas_requests:
        return _blas_found
    return [lib.num_threads for lib in _blas_controller().lib_controllers]


def _dask_worker_share():
    """The threads of the dask worker running the calling task, divided among
    the tasks it runs or has ready to run (which start as threads free up);
    None outside a worker's task."""
    # A worker has imported distributed; elsewhere it is not imported just to ask.
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        state = distributed.get_worker().state
    except ValueError:  # not running as a worker's task
        return None
    tasks = min(state.nthreads, max(1, state.executing_count + len(state.ready)))
    return max(1, state.nthreads // tasks)


def _dask_local_share(available):
    """``available`` divided among the threads of dask's local threaded
    scheduler (``compute()`` without a ``Client``) when the calling thread is
    one of them, which run a task each; None elsewhere."""
    threaded = sys.modules.get("dask.threaded")
    if threaded is None:
        return None
    # dask's own pools, and a ThreadPoolExecutor given as dask's "pool".
    with threaded.pools_lock:
        pools = [threaded.default_pool, sys.modules["dask"].config.get("pool", None)]
        pools += [pool for by_size in threaded.pools.values() for pool in by_size.values()]
    name = threading.current_thread().name
    for pool in pools:
        # An executor's threads are named "{_thread_name_prefix}_{i}", from
        # before they start (a new thread runs its first task before the
        # executor adds it to its _threads); dask itself reads _max_workers.
        if isinstance(pool, ThreadPoolExecutor) and name.startswith(f"{pool._thread_name_prefix}_"):
            return max(1, available // pool._max_workers)
    return None


def effective_threads(n_jobs):
    """The number of threads an estimator with ``n_jobs`` uses now.

    Parameters
    ----------
    n_jobs : int or None
        None or -1: all the process may use -- all cores (numba's thread
        pool, ``NUMBA_NUM_THREADS``, which a joblib/loky child has from
        joblib), or in a dask worker's task the worker's share for it, or
        in a task of dask's local threaded scheduler the cores divided
        among its threads (at least 1);
        ``-2`` all but one, and so on; a positive ``n``: ``n``, even beyond
        a dask worker's share.

    Returns
    -------
    n_threads : int
        That number, capped by numba's pool, by the calling thread's numba
        thread count (``numba.set_num_threads``, thread-local) and by the BLAS
        limit set around the call (``threadpoolctl.threadpool_limits``); at
        least 1.
    """
    requested = _requested(n_jobs)
    with _blas_lock:
        blas = _outer_blas_limits()
    return _capped(requested, numba.get_num_threads(), blas)


def _requested(n_jobs):
    """The threads ``n_jobs`` asks for, before the limits of :func:`_capped`.

    Asks dask (and takes its locks), so it is called without ``_blas_lock``.
    """
    available = numba.config.NUMBA_NUM_THREADS
    # What "all" means here; an explicit n_jobs may ask beyond a worker's share.
    share = _dask_worker_share() or _dask_local_share(available) or available
    if n_jobs is None:
        return share
    if n_jobs < 0:
        return share + 1 + n_jobs
    return n_jobs


def _capped(n_threads, numba_threads, blas):
    """``n_threads`` within numba's pool, the calling thread's numba thread
    count and the outer BLAS limits ``blas``; at least 1."""
    return max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS, numba_threads, *blas))


def _set_blas(limit):
    # Called with _blas_lock held; never above what the first section found.
    for lib, found in zip(_blas_controller().lib_controllers, _blas_found):
        lib.set_num_threads(min(found, limit))


class blas_limit:
    """Context in which numpy's (and scipy's) BLAS uses at most ``n_threads``.

    Concurrent sections share the smallest limit asked; the last to leave
    restores the settings the first one found. A section asking no fewer
    threads than BLAS has changes nothing.
    """

    def __init__(self, n_threads):
        self.n_threads = max(1, int(n_threads))

    def __enter__(self):
        with _blas_lock:
            self._enter_locked(_outer_blas_limits())
        return self

    def _enter_locked(self, found):
        global _blas_found
        # No section ever sets more than what the first one found: one that
        # would lower nothing need not take part (each setting costs a
        # microsecond, much of a 1-image transform).
        self._lowers = any(limit > self.n_threads for limit in found)
        if self._lowers:
            _blas_found = found
            _blas_requests.append(self.n_threads)
            _set_blas(min(_blas_requests))

    def __exit__(self, *exc_info):
        global _blas_found
        if not self._lowers:
            return False
        with _blas_lock:
            _blas_requests.remove(self.n_threads)
            if _blas_requests:
                _set_blas(min(_blas_requests))
            else:
                for lib, found in zip(_blas_controller().lib_controllers, _blas_found):
                    lib.set_num_threads(found)
                _blas_found = None
        return False


class threads:
    """Context that runs numba's kernels (in the calling thread) on
    :func:`effective_threads` ``(n_jobs)`` threads, and BLAS on at most
    ``blas_threads`` (default: the same number); ``as`` gives that number.

    It never raises a limit. The limits are read once, for both (each read
    costs about a microsecond, as much as a transform's other checks).
    """

    def __init__(self, n_jobs, blas_threads=None):
        self.n_jobs = n_jobs
        self.blas_threads = blas_threads

    def __enter__(self):
        requested = _requested(self.n_jobs)
        self._previous = numba.get_num_threads()
        with _blas_lock:
            found = _outer_blas_limits()
            n_threads = _capped(requested, self._previous, found)
            self._blas = blas_limit(self.blas_threads or n_threads)
            self._blas._enter_locked(found)
        self._changed = n_threads != self._previous
        if self._changed:
            numba.set_num_threads(n_threads)
        return n_threads

    def __exit__(self, *exc_info):
        try:
            self._blas.__exit__(*exc_info)
        finally:
            if self._changed:
                numba.set_num_threads(self._previous)
        return False
