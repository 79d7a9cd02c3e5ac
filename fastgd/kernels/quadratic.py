r"""The noisy quadratic's pass (DeepOBS's ``quadratic_deep``): whole samples x, one loss each, no network.

Each sample x ∈ ℝᵈ has the loss :math:`\ell(θ; x) = \tfrac12 (θ - x)^\top Q (θ - x)` for a fixed symmetric
Hessian Q; a batch's loss is the mean over its samples, and its gradient :math:`Q(θ - \bar x)`, where
:math:`\bar x` is the batch's mean sample. :func:`loss_and_gradient` computes both, float64 accumulated, for θ of
float32 or float64; :func:`quadratic_entry` is the same pass as a C callback in the places of
:func:`fastgd.kernels.train.model_signature`, so the compiled epoch (:func:`fastgd.kernels.train.train_epoch`)
and a sweep's runs trained together take it as they take a network's: ``structure`` is Q's float64 numbers
(row-major) read as int64, the first code is d. Its NumPy oracle is
:func:`fastgd.networks.quadratic.reference_loss_grad`.
"""

import numpy as np

from fastgd import _config
from fastgd._config import jit

__all__ = ["loss_and_gradient", "quadratic_entry", "hessian_structure"]


@jit
def loss_and_gradient(theta, X, hessian, grad, work):
    """The mean over the rows x of X (n × d) of ½ (θ − x)ᵀ Q (θ − x), ``hessian`` Q (d × d, float64, symmetric), as a
    float64.

    Writes Q (θ − x̄) into ``grad`` (θ's size and dtype), or nothing where ``grad`` is empty (the loss alone).
    ``work``: a workspace of 2d elements of θ's dtype. Shapes are not checked here (see
    :class:`fastgd.networks.quadratic.NoisyQuadratic`).
    """
    n, d = X.shape
    difference, product = work[:d], work[d:2 * d]
    total = 0.0
    for row in range(n):
        for a in range(d):
            difference[a] = theta[a] - X[row, a]
        _symmetric_product(hessian, difference, product)
        for a in range(d):
            total += float(difference[a]) * float(product[a])
    if grad.size:
        for a in range(d):
            difference[a] = 0.0
        for row in range(n):
            for a in range(d):
                difference[a] += X[row, a]
        for a in range(d):
            difference[a] = theta[a] - difference[a] / n
        _symmetric_product(hessian, difference, grad)
    return 0.5 * total / n


@jit(inline=True)
def _symmetric_product(hessian, vector, out):
    """out = Q v for a symmetric Q, column by column (Q's row b is its column b): each column's update is an axpy,
    which vectorises where a row's dot product (a reduction) does not without fastmath."""
    d = vector.size
    for a in range(d):
        out[a] = 0.0
    for b in range(d):
        scale = vector[b]
        for a in range(d):
            out[a] += hessian[b, a] * scale


def hessian_structure(hessian):
    """Q (d × d) as :func:`quadratic_entry`'s ``structure``: its float64 numbers row-major, read as a writeable int64
    vector."""
    return np.ascontiguousarray(hessian, dtype=np.float64).reshape(-1).view(np.int64).copy()


def _quadratic_pass(theta, X, Y, structure, dimension, unused, alpha, grad, activations, deltas):
    """The noisy quadratic's pass in :func:`fastgd.kernels.train.model_signature`'s places (see
    :func:`quadratic_entry`)."""
    hessian = structure.view(np.float64).reshape((dimension, dimension))
    return loss_and_gradient(theta, X, hessian, grad, activations)


_ENTRIES = {}


def quadratic_entry(dtype):
    """The noisy quadratic's pass for θ of ``dtype`` as a C callback of :func:`fastgd.kernels.train.model_signature`,
    compiled (or loaded) once per process; one callback serves every Hessian and dimension.

    Its places: ``structure``, Q (:func:`hessian_structure`); the first code, d; ``Y`` (the data set's target
    column) and ``alpha`` are not read; ``activations``: 2d elements, the workspace; ``deltas``: not read. An empty
    ``grad`` asks for the loss alone.
    """
    from fastgd.kernels.train import model_signature

    key = np.dtype(dtype)
    if key not in _ENTRIES:
        with _config.compile_lock(f"fastgd.kernels.quadratic.quadratic_entry({key})"):
            _ENTRIES[key] = _config.cfunc(model_signature(key))(_quadratic_pass)
    return _ENTRIES[key]
