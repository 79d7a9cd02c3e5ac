r"""The noisy quadratic's pass (DeepOBS's ``quadratic_deep``): whole samples x, one loss each, no network.

Each sample x ∈ ℝᵈ has the loss :math:`\ell(θ; x) = \tfrac12 (θ - x)^\top Q (θ - x)` for a fixed symmetric
Hessian Q; a batch's loss is the mean over its samples, and its gradient :math:`Q(θ - \bar x)`, where
:math:`\bar x` is the batch's mean sample. :func:`loss_and_gradient` computes both, float64 accumulated, for θ of
float32 or float64 (Q in θ's dtype); :func:`quadratic_entry` is the same pass as a C callback in the places of
:func:`fastgd.kernels.train.model_signature`, so the compiled epoch (:func:`fastgd.kernels.train.train_epoch`)
and a sweep's runs trained together take it as they take a network's: ``structure`` is Q's numbers (row-major,
θ's dtype) read as int64, the first code is d. Its NumPy oracle is
:func:`fastgd.networks.quadratic.reference_loss_grad`.
"""

import numpy as np

from fastgd import _config
from fastgd._config import jit

__all__ = ["loss_and_gradient", "quadratic_entry", "hessian_structure"]


@jit
def loss_and_gradient(theta, X, hessian, grad, work):
    """The mean over the rows x of X (n × d) of ½ (θ − x)ᵀ Q (θ − x), ``hessian`` Q (d × d, symmetric, θ's dtype), as
    a float64.

    Writes Q (θ − x̄) into ``grad`` (θ's size and dtype), or nothing where ``grad`` is empty (the loss alone).
    ``work``: a workspace of 2·n·d elements of θ's dtype: the rows θ − x, and their products with Q (one BLAS
    product; Q's symmetry makes row i of (θ − X) Q the vector Q (θ − x_i), and their mean the gradient). Shapes are
    not checked here (see :class:`fastgd.networks.quadratic.NoisyQuadratic`).
    """
    n, d = X.shape
    difference = work[:n * d].reshape((n, d))
    product = work[n * d:2 * n * d].reshape((n, d))
    for row in range(n):
        for a in range(d):
            difference[row, a] = theta[a] - X[row, a]
    np.dot(difference, hessian, product)
    total = 0.0
    for row in range(n):
        for a in range(d):
            total += float(difference[row, a]) * float(product[row, a])
    if grad.size:
        for a in range(d):
            grad[a] = 0.0
        for row in range(n):
            for a in range(d):
                grad[a] += product[row, a]
        scale = grad.dtype.type(1.0 / n)
        for a in range(d):
            grad[a] *= scale
    return 0.5 * total / n


def hessian_structure(hessian, dtype):
    """Q (d × d) as :func:`quadratic_entry`'s ``structure`` for θ of ``dtype``: its numbers in that dtype, row-major,
    read as a writeable int64 vector (a float32 Q of odd size is padded by one number)."""
    values = np.ascontiguousarray(hessian, dtype=dtype).reshape(-1)
    if values.nbytes % 8:
        values = np.concatenate([values, np.zeros(1, dtype)])
    return values.view(np.int64).copy()


def _pass_float64(theta, X, Y, structure, dimension, unused, alpha, grad, activations, deltas):
    """The noisy quadratic's pass in :func:`fastgd.kernels.train.model_signature`'s places, float64 (see
    :func:`quadratic_entry`)."""
    hessian = structure.view(np.float64)[:dimension * dimension].reshape((dimension, dimension))
    return loss_and_gradient(theta, X, hessian, grad, activations)


def _pass_float32(theta, X, Y, structure, dimension, unused, alpha, grad, activations, deltas):
    """The float32 twin of :func:`_pass_float64`."""
    hessian = structure.view(np.float32)[:dimension * dimension].reshape((dimension, dimension))
    return loss_and_gradient(theta, X, hessian, grad, activations)


_PASSES = {np.dtype(np.float64): _pass_float64, np.dtype(np.float32): _pass_float32}

_ENTRIES = {}


def quadratic_entry(dtype):
    """The noisy quadratic's pass for θ of ``dtype`` as a C callback of :func:`fastgd.kernels.train.model_signature`,
    compiled (or loaded) once per process; one callback serves every Hessian and dimension.

    Its places: ``structure``, Q in θ's dtype (:func:`hessian_structure`); the first code, d; ``Y`` (the data set's
    target column) and ``alpha`` are not read; ``activations``: 2·n·d elements for a batch of n rows, the
    workspace; ``deltas``: not read. An empty ``grad`` asks for the loss alone.
    """
    from fastgd.kernels.train import model_signature

    key = np.dtype(dtype)
    if key not in _ENTRIES:
        with _config.compile_lock(f"fastgd.kernels.quadratic.quadratic_entry({key})"):
            _ENTRIES[key] = _config.cfunc(model_signature(key))(_PASSES[key])
    return _ENTRIES[key]
