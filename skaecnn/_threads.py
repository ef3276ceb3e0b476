"""Running independent pieces of numpy work on threads with single-threaded BLAS.

Multi-threaded OpenBLAS parallelizes each GEMM with a barrier per panel; on a
busy machine its threads stall on each other. Splitting the work into blocks,
each on its own thread with one BLAS thread, avoids those barriers (used by the
sparse autoencoder objective, see :mod:`skaecnn._objective`).
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import ThreadpoolController

_controller = None
_executor = None
_executor_key = None
# One parallel objective at a time: it owns the executor and the BLAS
# thread setting while it runs.
_parallel_lock = threading.Lock()


def _reset_after_fork():
    # The parent's executor threads and a lock another thread held at the fork
    # do not exist in the child.
    global _executor, _executor_key, _parallel_lock
    _executor = _executor_key = None
    _parallel_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _blas_controller():
    global _controller
    if _controller is None:
        _controller = ThreadpoolController().select(user_api="blas")
    return _controller


def blas_num_threads():
    """Threads numpy's BLAS may use now (1 if no BLAS is known)."""
    return max([lib.num_threads for lib in _blas_controller().lib_controllers], default=1)


def _get_executor(n_threads):
    global _executor, _executor_key
    if _executor_key != n_threads:
        if _executor is not None:
            _executor.shutdown(wait=False)
        _executor = ThreadPoolExecutor(n_threads, thread_name_prefix="skaecnn-objective")
        _executor_key = n_threads
    return _executor


class parallel:
    """Context in which ``run(work, items)`` returns ``[work(i) for i in
    items]``, computed by ``n_threads`` threads with single-threaded BLAS.
    With one thread, on the calling thread and with nothing changed."""

    def __init__(self, n_threads):
        self.n_threads = max(1, int(n_threads))

    def __enter__(self):
        if self.n_threads == 1:
            return self._run_here
        self._lock = _parallel_lock
        self._lock.acquire()
        try:
            self._limiter = _blas_controller().limit(limits=1)
            self._executor = _get_executor(self.n_threads)
        except BaseException:
            self._lock.release()
            raise
        return self._run_threads

    def __exit__(self, *exc_info):
        if self.n_threads > 1:
            try:
                self._limiter.restore_original_limits()
            finally:
                self._lock.release()
        return False

    @staticmethod
    def _run_here(work, items):
        return [work(i) for i in items]

    def _run_threads(self, work, items):
        return list(self._executor.map(work, items))
