"""fastgd's compiled kernels: pure ``@njit`` functions over arrays and scalars.

Callable from Python and from your own ``@njit`` code. Every registered rule
(:mod:`fastgd.rules`, a user's too) has a kernel here, generated from its
definition for its default flags, and a ``prange`` twin:

    fastgd.kernels.<rule>(params, grad, *state arrays, step, *scalar state, *hyperparameters)
    fastgd.kernels.<rule>_parallel(...)                  # same arguments, multi-threaded

Hyperparameters come in the rule's order, tuples spread out (``betas`` →
``beta1, beta2``), flags left out; ``step`` counts from 1. A rule with scalar
state (NAdam's ``mu_product``) returns its new value. The arrays must be 1-D,
of one dtype and of one length: kernels check nothing. ``kernel_parameters``
names them for any rule:

>>> import numpy as np
>>> from numba import njit
>>> from fastgd import kernels
>>> kernels.kernel_parameters("adam")
('params', 'grad', 'exp_avg', 'exp_avg_sq', 'step', 'lr', 'beta1', 'beta2', 'eps', 'weight_decay')
>>> @njit
... def fit_quadratic(params, n_steps):
...     exp_avg = np.zeros_like(params)
...     exp_avg_sq = np.zeros_like(params)
...     for t in range(1, n_steps + 1):
...         grad = 2.0 * params                     # gradient of sum(params**2)
...         kernels.adam(params, grad, exp_avg, exp_avg_sq, t, 0.1, 0.9, 0.999, 1e-8, 0.0)
...     return params
>>> bool(np.all(np.abs(fit_quadratic(np.ones(3), 300)) < 0.05))
True

:mod:`fastgd.kernels.updates` holds the built-in rules' element and per-step
functions; :mod:`.mlp`, :mod:`.train`, :mod:`.schedules` the networks and
training loops.
"""

from fastgd.kernels.updates import *  # noqa: F401,F403
from fastgd.kernels.updates import __all__ as _ELEMENTS

__all__ = [*_ELEMENTS, "kernel_parameters"]


def _variant(name):
    from fastgd import rules

    return rules.compiled(rules.get(name))


def kernel_parameters(rule):
    """The parameter names of ``fastgd.kernels.<rule>``."""
    return _variant(rule).kernel_parameters


def __getattr__(name):
    from fastgd import rules

    base, parallel = (name[:-len("_parallel")], True) if name.endswith("_parallel") else (name, False)
    if base in rules.RULES:
        variant = _variant(base)
        return variant.kernel_parallel if parallel else variant.kernel
    raise AttributeError(f"module 'fastgd.kernels' has no attribute {name!r}")


def __dir__():
    from fastgd import rules

    return sorted([*globals(), *rules.RULES, *(name + "_parallel" for name in rules.RULES)])
