"""The vector kernels generated from every registered rule, a user's too: pure ``@njit`` functions.

Callable from Python and from your own ``@njit`` code. Every rule (:mod:`fastgd.rules`) has a kernel
here, generated from its declaration for its default flags, and a ``prange`` twin:

    fastgd.rules.kernels.<rule>(params, grad, *state arrays, step, *scalar state, *hyperparameters)
    fastgd.rules.kernels.<rule>_parallel(...)            # same arguments, multi-threaded

Hyperparameters come in the rule's order, tuples spread out (``betas`` →
``beta1, beta2``), flags left out; ``step`` counts from 1. A rule with scalar
state (NAdam's ``mu_product``) returns its new value. The arrays must be 1-D,
of one dtype and of one length: kernels check nothing. ``kernel_parameters``
names them for any rule:

>>> import numpy as np
>>> from numba import njit
>>> from fastgd.rules import kernels
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

A kernel is compiled on first use (from Numba's on-disk cache where it was before); the module's
attributes are looked up in the registry each time, so a rule registered later has its kernel too.
"""

from fastgd.rules import RULES, compiled, get

__all__ = ["kernel_parameters"]

_PARALLEL = "_parallel"


def kernel_parameters(rule):
    """The parameter names of ``fastgd.rules.kernels.<rule>``."""
    return compiled(get(rule)).kernel_parameters


def __getattr__(name):
    base, parallel = (name[:-len(_PARALLEL)], True) if name.endswith(_PARALLEL) else (name, False)
    if base in RULES:
        variant = compiled(get(base))
        return variant.kernel_parallel if parallel else variant.kernel
    raise AttributeError(f"module 'fastgd.rules.kernels' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *RULES, *(name + _PARALLEL for name in RULES)])
