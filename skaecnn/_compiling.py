"""A one-line notice on stderr while numba compiles this package's kernels.

The kernels are compiled on first use, only for the dtypes and stages a call
needs, and cached on disk (``cache=True``): a compile takes seconds, loading
it from the cache a fraction of one. Numba's ``numba:compile`` event is
broadcast for actual compiles only, not for cache loads, so the notice
appears exactly when a call is about to pause to compile, at any verbosity.
"""

import math
import sys
import time

from numba.core import event

# The kernels one call needs compile one after the other: compiles that start
# within this many seconds of the end of the previous one share its notice.
_QUIET_SECONDS = 2.0
NOTICE = "skaecnn: compiling kernels (first run only)..."


def _is_ours(dispatcher):
    module = getattr(getattr(dispatcher, "py_func", None), "__module__", None) or ""
    return module.split(".")[0] == "skaecnn"


class _CompileNotice(event.Listener):
    """Prints :data:`NOTICE` when a compile of a skaecnn kernel starts, unless
    another one ended less than ``_QUIET_SECONDS`` before.

    Compiles run under numba's global compiler lock, one at a time; those of
    the functions a kernel calls are nested in its own (``_depth``).
    """

    def __init__(self):
        self._depth = 0
        self._ours = False
        self._last_end = -math.inf

    def on_start(self, event):
        if self._depth == 0:
            self._ours = _is_ours(event.data["dispatcher"])
            if self._ours and time.monotonic() - self._last_end > _QUIET_SECONDS:
                print(NOTICE, file=sys.stderr, flush=True)
        self._depth += 1

    def on_end(self, event):
        self._depth -= 1
        if self._depth == 0 and self._ours:
            self._last_end = time.monotonic()


_notice = _CompileNotice()
event.register("numba:compile", _notice)
