"""Loss landscapes around a trained θ: a 1-D slice and a 2-D plane of random directions.

As in the lecture, and filter-normalised as in Li et al. (2018), "Visualizing
the Loss Landscape of Neural Nets": a random Gaussian direction d has, for
every unit of every layer, the weights into that unit (a column of W) rescaled
to the norm of the same column of the trained W; bias components are zero.
The loss J(θ + a·d₁ + b·d₂) over a grid is evaluated in parallel in compiled
code.

    >>> import numpy as np
    >>> from fastgd import MLP, landscape
    >>> net = MLP([2, 4, 1], activation="tanh", output="identity", alpha=0.0)
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 2)); Y = X[:, :1] * X[:, 1:]
    >>> theta = net.init(random_state=0)
    >>> losses = landscape.line(net, theta, X, Y, np.linspace(-1, 1, 11), random_state=0)
    >>> losses.shape, bool(losses[5] == net.loss(theta, X, Y))
    ((11,), True)
"""

import numpy as np
from numba import prange

from fastgd._config import jit
from fastgd.kernels.train import dataset_loss, workspace_elements

__all__ = ["random_direction", "line", "plane"]

CHUNK = 2048


def random_direction(net, theta, random_state=None):
    """A filter-normalised random direction in θ's layout (zero on the biases)."""
    rng = np.random.default_rng(random_state)
    direction = np.zeros_like(theta)
    directions, _ = net.unpack(direction)
    weights, _ = net.unpack(theta)
    for d, w in zip(directions, weights):
        d[...] = rng.standard_normal(d.shape)
        d *= np.linalg.norm(w, axis=0) / np.maximum(np.linalg.norm(d, axis=0), np.finfo(np.float64).tiny)
    return direction


@jit(parallel=True, exact=True)
def _losses_on_grid(theta, first, second, alphas, betas, X, Y, layer_sizes, activation, output, alpha,
                    workspace_elements_needed, chunk):
    losses = np.empty((betas.size, alphas.size))
    for point in prange(alphas.size * betas.size):
        row, column = point // alphas.size, point % alphas.size
        shifted = theta + alphas[column] * first + betas[row] * second
        activations = np.empty(workspace_elements_needed, dtype=theta.dtype)
        losses[row, column] = dataset_loss(shifted, X, Y, layer_sizes, activation, output, alpha, activations,
                                           chunk)
    return losses


def _coordinates(name, values, dtype):
    """Grid coordinates as a 1-D array of θ's dtype; ValueError for an empty, nested or non-finite grid."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if array.ndim > 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite numbers")
    return array.ravel().astype(dtype)


def _check_direction(name, direction, theta):
    if not isinstance(direction, np.ndarray) or direction.shape != theta.shape:
        raise ValueError(f"{name} must be an array of θ's shape {theta.shape}, got "
                         f"{getattr(direction, 'shape', type(direction).__name__)}")
    if not np.isfinite(direction).all():
        raise ValueError(f"{name} must be finite")
    return direction


def _grid(net, theta, X, Y, alphas, betas, first, second):
    from threadpoolctl import threadpool_limits

    theta = net._check_theta(theta)
    X, Y = net.check_data(X, Y)
    alphas = _coordinates("alphas", alphas, theta.dtype)
    betas = _coordinates("betas", betas, theta.dtype)
    first, second = _check_direction("direction", first, theta), _check_direction("direction", second, theta)
    chunk = min(X.shape[0], CHUNK)
    # every grid point is one thread's work: BLAS inside it must not start threads of its own
    with threadpool_limits(1):
        return _losses_on_grid(theta, first.astype(theta.dtype), second.astype(theta.dtype), alphas, betas, X, Y,
                               net.layer_sizes, net.activation_code, net.output_code, net.alpha,
                               workspace_elements(net.layer_sizes, chunk), chunk)


def line(net, theta, X, Y, alphas, direction=None, random_state=None):
    """J(θ + a·d) for every a in ``alphas``; d filter-normalised random unless given."""
    theta = net._check_theta(theta)
    if direction is None:
        direction = random_direction(net, theta, random_state)
    return _grid(net, theta, X, Y, alphas, [0.0], direction, np.zeros_like(direction))[0]


def plane(net, theta, X, Y, alphas, betas, directions=None, random_state=None):
    """J(θ + a·d₁ + b·d₂) as an array of shape (len(betas), len(alphas))."""
    theta = net._check_theta(theta)
    if directions is None:
        rng = np.random.default_rng(random_state)
        directions = (random_direction(net, theta, rng), random_direction(net, theta, rng))
    if not isinstance(directions, (tuple, list)) or len(directions) != 2:
        raise ValueError("directions must be a pair of arrays (d1, d2)")
    first, second = directions
    return _grid(net, theta, X, Y, alphas, betas, first, second)
