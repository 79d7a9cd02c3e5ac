"""Loss landscapes around a trained θ: a 1-D slice and a 2-D plane of random directions.

As in the lecture, and filter-normalised as in Li et al. (2018), "Visualizing
the Loss Landscape of Neural Nets": a random Gaussian direction d has, for
every unit of every layer, the weights into that unit (a column of an MLP's W;
a declared network's filter, one output channel's slice of a kernel (out, in,
kh, kw), or a row of a dense layer's (out, in)) rescaled to the norm of the
same weights of the trained θ; bias components are zero. The loss
J(θ + a·d₁ + b·d₂), penalty included, over a grid is evaluated in parallel in
compiled code, one grid point a thread, through the model's compiled forward
pass: the MLP's (:mod:`fastgd.kernels.train`) or a declared network's
(:class:`fastgd.networks.Network`, :mod:`fastgd.kernels.network`).

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
from fastgd.kernels import network as network_kernels
from fastgd.kernels.train import dataset_loss, model_entry, workspace_elements

__all__ = ["random_direction", "line", "plane", "trained_landscape"]

CHUNK = 2048
# trained_landscape on a large set: at most LANDSCAPE_ROWS training rows (a fixed sample; the bundled sets are
# whole), fewer epochs where rows × parameters × epochs would pass TRAINING_BUDGET, and a plane coarser than
# PLANE_POINTS² where rows × parameters × points would pass LANDSCAPE_BUDGET: a report's landscapes then take
# seconds, not minutes, on a large set (the times behind the budgets: reports/design_measurements.md)
LANDSCAPE_ROWS = 2000
PLANE_POINTS = 31
MIN_PLANE_POINTS = 11
LANDSCAPE_BUDGET = 5e10
TRAINING_BUDGET = 1e9
MIN_EPOCHS = 3
# an MLP's grid of points × rows × parameters from which its losses are computed on Numba's threads (about a second
# on one core)
THREADED_GRID_WORK = 1e10


def _own_pass(net):
    """Whether ``net`` is a model with a pass of its own and no layers (the noisy quadratic,
    :mod:`fastgd.networks.quadratic`): its loss is its own method's, its cost per row its own count."""
    return hasattr(net, "multiply_adds_per_sample")


def random_direction(net, theta, random_state=None):
    """A filter-normalised random direction in θ's layout (zero on the biases); ``net`` an MLP or a declared
    network."""
    rng = np.random.default_rng(random_state)
    direction = np.zeros_like(theta)
    if _own_pass(net):  # one tensor, no filters: a random direction of θ's norm
        direction[...] = rng.standard_normal(theta.shape)
        direction *= np.linalg.norm(theta) / max(np.linalg.norm(direction), np.finfo(np.float64).tiny)
        return direction
    if net.stack is None:
        directions, weights = net.unpack(direction), net.unpack(theta)
        for tensor in net.tensors:
            if not tensor.name.endswith(".weight"):
                continue
            d, w = directions[tensor.name], weights[tensor.name]
            d[...] = rng.standard_normal(d.shape)
            # one filter a row: torch's weights put the unit (output channel) first
            rows, filters = d.reshape(d.shape[0], -1), w.reshape(w.shape[0], -1)
            rows *= (np.linalg.norm(filters, axis=1)
                     / np.maximum(np.linalg.norm(rows, axis=1), np.finfo(np.float64).tiny))[:, None]
        return direction
    # the MLP's passes' layout: a unit's weights are a column of its (in, out) matrix
    directions, _ = net.stack.unpack(direction)
    weights, _ = net.stack.unpack(theta)
    for d, w in zip(directions, weights):
        d[...] = rng.standard_normal(d.shape)
        d *= np.linalg.norm(w, axis=0) / np.maximum(np.linalg.norm(d, axis=0), np.finfo(np.float64).tiny)
    return direction


@jit(inline=True)
def _grid_point_loss(model, theta, first, second, a, b, X, Y, layer_sizes, activation, output, alpha,
                     workspace_elements_needed, chunk, no_grad):
    shifted = theta + a * first + b * second
    activations = np.empty(workspace_elements_needed, dtype=theta.dtype)
    batch_X = np.empty(chunk * X.shape[1], dtype=theta.dtype)
    batch_Y = np.empty(chunk * Y.shape[1], dtype=theta.dtype)
    return dataset_loss(model, shifted, X, Y, layer_sizes, activation, output, alpha, activations, chunk, batch_X,
                        batch_Y, no_grad)


# Two forms of one loop over the grid's points: compiling the prange form took 6.7-8.7 s against 3.6-3.8 s for the
# serial one (AMD EPYC Zen 3, load 7.5), and a report's landscapes are small (0.05 s warm on iris), so the threaded
# form is compiled only for a grid of THREADED_GRID_WORK or more.
@jit(exact=True)
def _losses_on_grid(model, theta, first, second, alphas, betas, X, Y, layer_sizes, activation, output, alpha,
                    workspace_elements_needed, chunk, no_grad):
    losses = np.empty((betas.size, alphas.size))
    for point in range(alphas.size * betas.size):
        row, column = point // alphas.size, point % alphas.size
        losses[row, column] = _grid_point_loss(model, theta, first, second, alphas[column], betas[row], X, Y,
                                               layer_sizes, activation, output, alpha, workspace_elements_needed,
                                               chunk, no_grad)
    return losses


@jit(parallel=True, exact=True)
def _losses_on_grid_threaded(model, theta, first, second, alphas, betas, X, Y, layer_sizes, activation, output,
                             alpha, workspace_elements_needed, chunk, no_grad):
    losses = np.empty((betas.size, alphas.size))
    for point in prange(alphas.size * betas.size):
        row, column = point // alphas.size, point % alphas.size
        losses[row, column] = _grid_point_loss(model, theta, first, second, alphas[column], betas[row], X, Y,
                                               layer_sizes, activation, output, alpha, workspace_elements_needed,
                                               chunk, no_grad)
    return losses


@jit(parallel=True, exact=True)
def _network_losses_on_grid(theta, first, second, alphas, betas, X, Y, plan, loss, alpha, chunk, block_elements,
                            column_elements):
    """A declared network's loss (``plan``'s, :mod:`fastgd.kernels.network`) on every grid point, penalty included:
    ``chunk`` rows of the flat (n × inputs) ``X`` at a time through its compiled forward pass."""
    losses = np.empty((betas.size, alphas.size))
    n_samples = X.shape[0]
    for point in prange(alphas.size * betas.size):
        row, column = point // alphas.size, point % alphas.size
        shifted = theta + alphas[column] * first + betas[row] * second
        blocks = np.empty(block_elements, dtype=theta.dtype)
        columns = np.empty(column_elements, dtype=theta.dtype)
        total = 0.0
        for start in range(0, n_samples, chunk):
            stop = min(start + chunk, n_samples)
            rows = stop - start
            total += network_kernels.loss_only(shifted, X[start:stop].reshape(rows * X.shape[1]),
                                               Y[start:stop].reshape(rows * Y.shape[1]), rows, plan, loss, blocks,
                                               columns) * rows
        losses[row, column] = total / n_samples + network_kernels.penalty(shifted, plan, alpha, n_samples)
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
    X, Y = net.check_data(X, Y, theta.dtype)
    alphas = _coordinates("alphas", alphas, theta.dtype)
    betas = _coordinates("betas", betas, theta.dtype)
    first, second = _check_direction("direction", first, theta), _check_direction("direction", second, theta)
    chunk = min(X.shape[0], CHUNK)
    if _own_pass(net):  # its loss is one BLAS product a chunk: a point at a time
        return np.array([[net.loss(theta + a * first + b * second, X, Y) for a in alphas] for b in betas])
    stack = net.stack
    if stack is None:
        net.check_fits(chunk, theta.dtype)
        blocks, columns = net.workspace_elements(chunk)
        net.prepare(theta.dtype, backward=False)  # here, not from the grid's threads
        with threadpool_limits(1):
            return _network_losses_on_grid(theta, first.astype(theta.dtype), second.astype(theta.dtype), alphas,
                                           betas, X.reshape(X.shape[0], -1), Y, net.plan,
                                           network_kernels.LOSSES[net.loss_name], net.alpha, chunk, blocks, columns)
    # every grid point is one thread's work: BLAS inside it must not start threads of its own
    threaded = alphas.size * betas.size * X.shape[0] * theta.size >= THREADED_GRID_WORK
    losses_on_grid = _losses_on_grid_threaded if threaded else _losses_on_grid
    with threadpool_limits(1):
        # the serial pass: every grid point is one prange iteration already, or the loop is serial
        return losses_on_grid(model_entry(theta.dtype), theta, first.astype(theta.dtype), second.astype(theta.dtype),
                              alphas, betas, X, Y, stack.layer_sizes, stack.activation_code, stack.output_code,
                              net.alpha, workspace_elements(stack.layer_sizes, chunk), chunk, np.empty(0, theta.dtype))


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


def trained_landscape(data, hidden_layer_sizes=(32,), activation="relu", alpha=1e-4, optimizer="adam", lr=3e-3,
                      n_epochs=20, batch_size=32, extent=1.0, seed=0, network=None, init="torch", model=None):
    """Train an MLP on ``data`` (a :class:`fastgd.datasets.Dataset`), then its loss on a line and a plane around θ.

    ``network``: a declared :class:`fastgd.networks.Network` to train instead (its own L2 penalty; the MLP's
    ``hidden_layer_sizes``, ``activation`` and ``alpha`` are then not read), from θ drawn by its ``init`` scheme
    (:meth:`fastgd.networks.Network.init`) in float64; ``model`` names it in the result (by default its number
    of parameters). A network's cost per row is its forward pass's multiply-adds
    (:func:`fastgd.kernels.network.multiply_adds_per_sample`) where an MLP's is its parameters.

    Cheap at any size: a set of more than ``LANDSCAPE_ROWS`` training rows is
    trained and evaluated on a fixed sample of that many, and the plane has
    ``PLANE_POINTS`` points a side unless rows × parameters × points would pass
    ``LANDSCAPE_BUDGET`` (then fewer, at least ``MIN_PLANE_POINTS``; the line
    has twice as many less one); ``n_epochs`` is cut (to no fewer than
    ``MIN_EPOCHS``) where rows × parameters × epochs would pass
    ``TRAINING_BUDGET``. Returns a dict of plain lists (JSON-ready):
    ``alphas``, ``line``, ``grid_alphas``, ``grid_betas``, ``plane`` (rows:
    betas) and what was trained (an MLP's ``layer_sizes`` and ``activation``, a network's ``model``; ``rows``,
    ``n_epochs``...).
    """
    from fastgd import optim
    from fastgd.models import MLP
    from fastgd.training import Training

    X, Y = data.X_train, data.Y_train
    if X.shape[0] > LANDSCAPE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(X.shape[0], LANDSCAPE_ROWS, replace=False))
        X, Y = X[rows], Y[rows]
    if network is None:
        net = MLP([data.n_features, *hidden_layer_sizes, data.n_outputs], activation, data.output, alpha)
        theta, per_row = net.init(random_state=seed), net.n_params
        described = {"layer_sizes": [int(n) for n in net.layer_sizes], "activation": activation, "alpha": alpha}
    else:
        net = network
        theta = net.init(random_state=seed, scheme=init)
        per_row = net.multiply_adds_per_sample if _own_pass(net) else network_kernels.multiply_adds_per_sample(
            net.plan)
        described = {"model": model or f"a network of {net.n_params:,} parameters", "init": init,
                     "alpha": net.alpha, "parameters": int(net.n_params)}
    n_epochs = min(n_epochs, max(MIN_EPOCHS, int(TRAINING_BUDGET // (X.shape[0] * per_row))))
    history = Training(net, optim.OPTIMIZERS[optimizer](theta, lr=lr, layout=net.layout), X, Y,
                       min(batch_size, X.shape[0]), seed=seed).run(n_epochs)
    affordable = LANDSCAPE_BUDGET / (X.shape[0] * per_row)
    points = int(min(PLANE_POINTS, max(MIN_PLANE_POINTS, np.sqrt(affordable))))
    points += 1 - points % 2  # odd: θ itself is a grid point
    alphas = np.linspace(-extent, extent, 2 * points - 1)
    grid = np.linspace(-extent, extent, points)
    losses = line(net, theta, X, Y, alphas, random_state=seed)
    surface = plane(net, theta, X, Y, grid, grid, random_state=seed + 1)
    return {"alphas": alphas.tolist(), "line": losses.tolist(), "grid_alphas": grid.tolist(),
            "grid_betas": grid.tolist(), "plane": surface.tolist(), **described, "optimizer": optimizer, "lr": lr,
            "n_epochs": n_epochs,
            "rows": int(X.shape[0]), "training_rows": int(data.X_train.shape[0]), "data_hash": data.content_hash,
            "diverged_epoch": None if history.diverged_epoch is None else int(history.diverged_epoch)}
