"""Timing helpers shared by the benchmark scripts (imported from their folder)."""

import time


def timed(fn):
    """Wall-clock seconds of one call of ``fn``."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def alternate(runners, repeats):
    """Time every ``(name, fn)`` of ``runners`` ``repeats`` times, interleaved.

    Repeat ``r`` runs them rotated by ``r // 2`` and, on odd ``r``, reversed,
    so that each goes first, last and next to each of the others as often as
    the others: a drift in the machine's load then hits all of them alike.
    Returns ``{name: [seconds, ...]}``.
    """
    times = {name: [] for name, _ in runners}
    for r in range(repeats):
        shift = (r // 2) % len(runners)
        order = runners[shift:] + runners[:shift]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            times[name].append(timed(fn))
    return times


def parse_shapes(parser, value, known):
    """The comma-separated names in ``value``, each a key of ``known``."""
    shapes = value.split(",")
    unknown = sorted(set(shapes) - set(known))
    if unknown:
        parser.error(f"unknown shape(s) {unknown}; choose from {list(known)}")
    return shapes
