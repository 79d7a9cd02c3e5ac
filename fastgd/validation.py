"""One vocabulary for checking the values users give: what counts as an integer, a real number, a seed.

The rules' hyperparameters (:mod:`fastgd.rules.definition`), the estimators' parameters, sweep
configurations and the command line check their values with these, so that ``True`` is never a number
and a seed means the same everywhere. Light on purpose (no NumPy): the command line imports it first.
"""

import numbers

__all__ = ["MAX_SEED", "DatasetError", "DenseInputOnly", "is_integer", "is_real", "is_seed"]

# seeds go to NumPy's RandomState (scikit-learn's initialisation and splits), which takes 0 to 2**32 - 1
MAX_SEED = 2 ** 32 - 1


def is_integer(value):
    """True for an integer (Python's or NumPy's); False for a bool, which Python counts as one."""
    return isinstance(value, numbers.Integral) and not _is_bool(value)


def is_real(value):
    """True for a real number, integers included (Python's or NumPy's); False for a bool. NaN and infinity are
    real numbers here: say ``math.isfinite`` where they are not wanted."""
    return isinstance(value, numbers.Real) and not _is_bool(value)


def is_seed(value):
    """True for an integer seed from 0 to :data:`MAX_SEED`."""
    return is_integer(value) and 0 <= value <= MAX_SEED


def _is_bool(value):
    # NumPy's booleans (named bool_ before NumPy 2, bool since), without importing NumPy
    return isinstance(value, bool) or type(value).__name__ in ("bool", "bool_")


class DatasetError(ValueError):
    """Data that cannot be used as it is; the message is one line naming the file or data set and the problem.

    Defined here, below both :mod:`fastgd.datasets` (which gives it its name) and :mod:`fastgd.datafiles` (whose
    readers the data sets call), so that neither imports the other back."""


class DenseInputOnly:
    """Mixin for scikit-learn estimators that take dense arrays only (the compiled passes read rows of a
    dense matrix): their tags say so, so that scikit-learn's checks expect sparse input to be refused."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags
