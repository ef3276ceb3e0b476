"""Parameter checks shared by the estimators and the plotting functions, and
the warning about input outside the fitted range.

Estimators declare ``_parameter_constraints`` for scikit-learn's validation
(``InvalidParameterError``, honouring ``skip_parameter_validation``); the
plotting functions check their arguments with the helpers below.
"""

import numbers

from sklearn.utils import check_scalar
from sklearn.utils._param_validation import Interval as _SklearnInterval


class Interval(_SklearnInterval):
    """scikit-learn's ``Interval``, refusing booleans: ``True`` is not a count or a rate.

    As in scikit-learn, NaN is never inside, and an unbounded side refuses
    infinity unless it is closed.
    """

    def is_satisfied_by(self, val):
        return not isinstance(val, bool) and super().is_satisfied_by(val)


#: The constraint of every estimator's ``n_jobs``: None, -1, -2, ... (all
#: cores, all but one, ...) or a positive count; never 0.
N_JOBS = [
    None,
    Interval(numbers.Integral, None, -1, closed="right"),
    Interval(numbers.Integral, 1, None, closed="left"),
]


class DataRangeWarning(UserWarning):
    """Input values far outside the range an estimator was fitted on.

    :class:`ConvPoolTransformer` issues it when images to transform reach
    beyond the values of its training patches by more than their width, as
    8-bit pixels (0-255) given to a model fitted on pixels scaled to [0, 1].
    """


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
