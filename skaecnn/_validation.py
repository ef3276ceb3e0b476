"""Parameter checks shared by the estimators.

Numbers go through :func:`sklearn.utils.check_scalar`, whose messages name the
parameter and its bounds; this module adds the string options it lacks.
"""

import numbers

from sklearn.utils import check_scalar


def check_option(value, name, options):
    """Raise a ValueError naming ``name`` unless ``value`` is one of ``options``."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}."
        )
    return value


def check_positive_int(value, name, min_val=1):
    """``value`` as an int >= ``min_val`` (booleans are refused)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not bool.")
    return check_scalar(value, name, numbers.Integral, min_val=min_val)


def check_real(value, name, **bounds):
    """``value`` as a float within ``bounds`` (see :func:`sklearn.utils.check_scalar`)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, not bool.")
    return float(check_scalar(value, name, numbers.Real, **bounds))
