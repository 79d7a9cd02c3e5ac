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


def _grid(net, theta, X, Y, alphas, betas, first, second):
    from threadpoolctl import threadpool_limits

    theta = net._check_theta(theta)
    X, Y = net.check_data(X, Y)
    alphas = np.asarray(alphas, dtype=theta.dtype).ravel()
    betas = np.asarray(betas, dtype=theta.dtype).ravel()
    chunk = min(X.shape[0], CHUNK)
    # every grid point is one thread's work: BLAS inside it must not start threads of its own
    with threadpool_limits(1):
        return _losses_on_grid(theta, first.astype(theta.dtype), second.astype(theta.dtype), alphas, betas, X, Y,
                               net.layer_sizes, net.activation_code, net.output_code, net.alpha,
                               workspace_elements(net.layer_sizes, chunk), chunk)


def line(net, theta, X, Y, alphas, direction=None, random_state=None):
    """J(θ + a·d) for every a in ``alphas``; d filter-normalised random unless given."""
    if direction is None:
        direction = random_direction(net, theta, random_state)
    return _grid(net, theta, X, Y, alphas, [0.0], direction, np.zeros_like(direction))[0]


def plane(net, theta, X, Y, alphas, betas, directions=None, random_state=None):
    """J(θ + a·d₁ + b·d₂) as an array of shape (len(betas), len(alphas))."""
    if directions is None:
        rng = np.random.default_rng(random_state)
        directions = (random_direction(net, theta, rng), random_direction(net, theta, rng))
    first, second = directions
    return _grid(net, theta, X, Y, alphas, betas, first, second)
