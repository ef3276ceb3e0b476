"""A one-line notice on stderr while numba compiles this package's kernels.

The kernels are compiled on first use, only for the dtypes and stages a call
needs, and cached on disk (``cache=True``): a compile takes seconds, loading
it from the cache a fraction of one. Numba's ``numba:compile`` event is
broadcast for actual compiles only, not for cache loads, so the notice
appears exactly when a call is about to pause to compile, at any verbosity:
once per process, as the kernels of a first run compile one after the other
with the program's own work in between.
"""

import sys

from numba.core import event

NOTICE = "skaecnn: compiling kernels (first run only)..."


def _is_ours(dispatcher):
    module = getattr(getattr(dispatcher, "py_func", None), "__module__", None) or ""
    return module.split(".")[0] == "skaecnn"


class _CompileNotice(event.Listener):
    """Prints :data:`NOTICE` when the first compile of a skaecnn kernel starts.

    Attributes
    ----------
    shown : bool
        Whether the notice was printed.
    before : callable or None
        Called just before the notice is printed: a program that shows an
        unfinished line (the CLI's stage line on a terminal) ends it there, so
        that the notice stands on a line of its own.
    """

    def __init__(self):
        self.shown = False
        self.before = None

    def on_start(self, event):
        if not self.shown and _is_ours(event.data["dispatcher"]):
            self.shown = True
            if self.before is not None:
                self.before()
            print(NOTICE, file=sys.stderr, flush=True)

    def on_end(self, event):
        pass


_notice = _CompileNotice()
event.register("numba:compile", _notice)
