"""One optimizer step over a flat vector, as each implementation takes it (:data:`STEP_IMPLEMENTATIONS`).

fastgd's ``opt.step`` with its serial or its ``prange`` kernel, the NumPy rules of
:mod:`fastgd.reference`, and ``torch.optim`` (its default loop, and its fused kernel where torch has
one), all on the same standard normal parameters and gradient.
"""

import contextlib
import functools
import inspect

import numpy as np

from fastgd import _config, optim, reference
from fastgd.baselines.trainers import (SEED, TORCH_FUSED, TORCH_OPTIMIZERS, NumpyTrainer, require_torch,
                                       torch_optimizer_class)

__all__ = ["STEP_IMPLEMENTATIONS", "parallel_threshold", "params_and_grad", "fastgd_step", "numpy_step", "torch_step",
           "users_step_implementation", "MAX_AUX_PER_PARAMETER", "fits_as_one_vector", "worth_timing", "step_callable"]


@contextlib.contextmanager
def parallel_threshold(n_params):
    """Optimizers built inside use their ``prange`` kernel from ``n_params`` parameters on."""
    saved = _config.PARALLEL_THRESHOLD
    _config.PARALLEL_THRESHOLD = n_params
    try:
        yield
    finally:
        _config.PARALLEL_THRESHOLD = saved


@functools.lru_cache(maxsize=1)
def _random_vectors(n_params, dtype):
    rng = np.random.default_rng(SEED)
    return rng.standard_normal(n_params, dtype=dtype), rng.standard_normal(n_params, dtype=dtype)


def params_and_grad(n_params, dtype):
    """Standard normal parameters and gradient, fresh copies (a step writes them)."""
    params, grad = _random_vectors(n_params, np.dtype(dtype).name)
    return params.copy(), grad.copy()


def fastgd_step(rule, params, grad, parallel=None):
    """``opt.step(grad)`` of fastgd's optimizer; ``parallel`` forces the kernel form (None: by size, as users get).

    A rule with a closure (SAM) steps with a closure returning ``grad`` at both of its points: its ascent and its
    step, without the model's second pass."""
    if parallel is None:
        optimizer = optim.OPTIMIZERS[rule](params)
    else:
        with parallel_threshold(1 if parallel else params.size + 1):
            optimizer = optim.OPTIMIZERS[rule](params)
    if optimizer.rule.closure is not None:
        return functools.partial(optimizer.step, lambda: (1.0, grad))
    if optimizer.rule.uses_loss:  # a Polyak step: a loss of 1 with the fixed gradient
        return functools.partial(optimizer.step, grad, loss=1.0)
    return functools.partial(optimizer.step, grad)


def numpy_step(rule, params, grad):
    """One step of the plain NumPy rule of ``fastgd.reference`` (NotImplementedError, asv's "skipped", for a rule
    that declares none: the reference is optional)."""
    reason = NumpyTrainer.rule_skip_reason(rule)
    if reason is not None:
        raise NotImplementedError(reason)
    optimizer = reference.ReferenceOptimizer(rule, params)
    if optimizer.takes_closure:  # as fastgd_step: the same gradient at both points
        return functools.partial(optimizer.step, grad, closure=lambda: (1.0, grad))
    return functools.partial(optimizer.step, grad, loss=1.0)


def torch_step(rule, params, grad, fused=False):
    """``torch.optim``'s step over the same memory (``fused``: its fused CPU kernel)."""
    torch = require_torch()
    optimizer_class = torch_optimizer_class(rule)
    options = {}
    if fused:
        if "fused" not in inspect.signature(optimizer_class).parameters:
            raise NotImplementedError(f"torch.optim.{optimizer_class.__name__} has no fused implementation")
        options["fused"] = True
    tensor = torch.from_numpy(params)
    tensor.grad = torch.from_numpy(grad)
    hyperparameters = optim.OPTIMIZERS[rule].default_hyperparameters()
    return optimizer_class([tensor], **hyperparameters, **options).step


STEP_IMPLEMENTATIONS = {
    "fastgd_serial": functools.partial(fastgd_step, parallel=False),
    "fastgd_parallel": functools.partial(fastgd_step, parallel=True),
    "numpy": numpy_step,
    "torch": torch_step,
    "torch_fused": functools.partial(torch_step, fused=True),
}


def users_step_implementation(n_params):
    """The key of :data:`STEP_IMPLEMENTATIONS` that is fastgd's ``opt.step`` as users get it at ``n_params``: the
    serial kernel below ``FASTGD_PARALLEL_THRESHOLD`` parameters, the ``prange`` one from there on."""
    return "fastgd_parallel" if n_params >= _config.PARALLEL_THRESHOLD else "fastgd_serial"


# A step over one vector whose auxiliary state passes this many elements per parameter is not timed here
MAX_AUX_PER_PARAMETER = 64


def fits_as_one_vector(rule, n_params):
    """Whether ``rule``'s auxiliary state for ``n_params`` parameters held as one vector stays within
    :data:`MAX_AUX_PER_PARAMETER` elements each: Shampoo keeps an n × n preconditioner for a vector of n (10⁷
    parameters would take 8 · 10¹⁴ bytes); its steps are timed on network layouts by
    ``benchmarks/scripts/preconditioner_speed.py``."""
    tensor = optim.OPTIMIZERS[rule].rule.per_tensor
    if tensor is None or tensor.aux_size is None:
        return True
    size_of = getattr(tensor.aux_size, "py_func", tensor.aux_size)
    return size_of(n_params, 1, 1) <= MAX_AUX_PER_PARAMETER * n_params


def worth_timing(rule, n_params, implementation):
    """Whether a step of ``implementation`` says something the others do not, decided before torch is imported.

    The NumPy reference beyond 10⁶ parameters only for Adam (slow, and far from the memory bus
    at every size); fastgd's kernel form that users do not get at ``n_params`` only for SGD and
    Adam (the serial and ``prange`` loops are the same for every rule); torch.optim at its
    best: fused where it has a fused kernel (:data:`TORCH_FUSED`), its default loop elsewhere
    and for Adam. Never the NumPy reference of a rule that declares none, nor a rule whose state for one
    vector would not fit (:func:`fits_as_one_vector`).
    """
    if not fits_as_one_vector(rule, n_params):
        return False
    if implementation == "numpy":
        # a user's rule need not declare a NumPy reference: its step is then timed in fastgd alone
        return rule in reference.RULES and (n_params <= 1_000_000 or rule == "adam")
    if implementation.startswith("fastgd") and implementation != users_step_implementation(n_params):
        return rule in ("sgd", "adam")
    if implementation == "torch_fused":
        return TORCH_OPTIMIZERS.get(rule) in TORCH_FUSED
    if implementation == "torch":
        return TORCH_OPTIMIZERS.get(rule) not in TORCH_FUSED or rule == "adam"
    return True


def step_callable(rule, n_params, dtype, implementation):
    """A zero-argument callable taking one step of ``rule`` (default hyperparameters) on ``n_params`` standard normal
    parameters with a fixed standard normal gradient; ``implementation`` is a key of :data:`STEP_IMPLEMENTATIONS`
    (NotImplementedError where it lacks the rule). Not yet called: the first call compiles fastgd's kernel."""
    return STEP_IMPLEMENTATIONS[implementation](rule, *params_and_grad(n_params, dtype))
