"""Classic 2-D test functions with their gradients, and compiled optimizer trajectories over them.

    >>> from fastgd import functions
    >>> path = functions.trajectory("rosenbrock", "adam", n_steps=3000, lr=0.01)
    >>> path.shape, functions.FUNCTIONS["rosenbrock"].minimum
    ((3001, 2), (1.0, 1.0))

Every function has a start point from which the lecture-style pictures are
drawn and a box to draw them in. ``trajectory`` runs any rule of
:data:`fastgd.optim.OPTIMIZERS` (a user's rule too) in one compiled call, compiled once for
every rule, and records every point.
"""

from dataclasses import dataclass

import numpy as np

from fastgd import optim
from fastgd._config import jit

__all__ = ["TestFunction", "FUNCTIONS", "value_and_gradient", "trajectory", "best_learning_rate"]

ROSENBROCK, BEALE, HIMMELBLAU, SADDLE, QUADRATIC = range(5)
QUADRATIC_CONDITION = 50.0


@dataclass(frozen=True)
class TestFunction:
    """A two-dimensional test function: its compiled code, formula, start, minima and drawn region."""
    name: str
    code: int
    formula: str
    start: tuple
    minimum: tuple  # one global minimiser (Himmelblau has four, the saddle two)
    bounds: tuple  # (x_min, x_max, y_min, y_max) for plots


FUNCTIONS = {
    f.name: f for f in (
        TestFunction("rosenbrock", ROSENBROCK, "(1 - x)² + 100 (y - x²)²", (-1.5, 2.0), (1.0, 1.0),
                     (-2.0, 2.0, -1.0, 3.0)),
        TestFunction("beale", BEALE, "(1.5 - x + xy)² + (2.25 - x + xy²)² + (2.625 - x + xy³)²", (1.0, 1.4),
                     (3.0, 0.5), (-4.5, 4.5, -4.5, 4.5)),
        TestFunction("himmelblau", HIMMELBLAU, "(x² + y - 11)² + (x + y² - 7)²", (-0.5, -0.5), (3.0, 2.0),
                     (-5.0, 5.0, -5.0, 5.0)),
        TestFunction("saddle", SADDLE, "x² + y⁴/4 - y²/2 (saddle at the origin)", (1.5, 1e-3), (0.0, 1.0),
                     (-2.0, 2.0, -2.0, 2.0)),
        TestFunction("quadratic", QUADRATIC, f"(x² + {QUADRATIC_CONDITION:g} y²) / 2 (condition number "
                     f"{QUADRATIC_CONDITION:g})", (-2.0, 0.5), (0.0, 0.0), (-2.5, 2.5, -1.0, 1.0)),
    )
}


@jit
def value_and_gradient(code, x, y):
    """(f, ∂f/∂x, ∂f/∂y) of test function ``code`` at (x, y)."""
    if code == ROSENBROCK:
        return ((1 - x) ** 2 + 100 * (y - x * x) ** 2,
                -2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x))
    if code == BEALE:
        a, b, c = 1.5 - x + x * y, 2.25 - x + x * y * y, 2.625 - x + x * y ** 3
        return (a * a + b * b + c * c,
                2 * a * (y - 1) + 2 * b * (y * y - 1) + 2 * c * (y ** 3 - 1),
                2 * a * x + 2 * b * 2 * x * y + 2 * c * 3 * x * y * y)
    if code == HIMMELBLAU:
        a, b = x * x + y - 11, x + y * y - 7
        return a * a + b * b, 4 * x * a + 2 * b, 2 * a + 4 * y * b
    if code == SADDLE:
        return x * x + y ** 4 / 4 - y * y / 2, 2 * x, y ** 3 - y
    return (x * x + QUADRATIC_CONDITION * y * y) / 2, x, QUADRATIC_CONDITION * y


@jit(exact=True)
def _run(function_code, params, rule_step, hyper, states, aux, counters, layout, ascent, path):
    grad, point = np.empty(2), np.empty(2)
    # element by element: an array assigned to a slice makes Numba compile its shape-mismatch message (str, repr,
    # concatenation), which took 6 of this function's 8.4 s to compile
    path[0, 0], path[0, 1] = params[0], params[1]
    for step in range(1, path.shape[0]):
        hyper[hyper.size - 2], grad[0], grad[1] = value_and_gradient(function_code, params[0], params[1])
        if ascent is not None:  # a rule with a closure (SAM): the gradient again at its point
            ascent(params, grad, point, states, aux, hyper, counters, layout)
            _, grad[0], grad[1] = value_and_gradient(function_code, point[0], point[1])
        rule_step(params, grad, states, aux, hyper, counters, layout)
        path[step, 0], path[step, 1] = params[0], params[1]
        if not (np.isfinite(params[0]) and np.isfinite(params[1])):
            path[step + 1:] = np.nan
            return step
    return path.shape[0] - 1


def trajectory(function, optimizer="adam", n_steps=500, start=None, **hyperparameters):
    """Points visited by ``optimizer`` on ``function`` from ``start``: shape (n_steps + 1, 2), float64.

    Hyperparameters go to the optimizer class. A rule that acts per tensor
    (Muon, LAMB, Adafactor) sees the point as one 1 × 2 matrix. A run that
    leaves the floats (divergence) ends in rows of NaN from the first
    non-finite point.
    """
    if function not in FUNCTIONS:
        raise ValueError(f"unknown function {function!r}; one of {sorted(FUNCTIONS)}")
    if optimizer not in optim.OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; one of {sorted(optim.OPTIMIZERS)}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}")
    spec = FUNCTIONS[function]
    params = np.array(spec.start if start is None else start, dtype=np.float64)
    if params.shape != (2,) or not np.isfinite(params).all():
        raise ValueError(f"start must be two finite numbers, got {start!r}")
    packed = optim.OPTIMIZERS[optimizer](params, layout=[(1, 2)], **hyperparameters).packed()
    path = np.empty((n_steps + 1, 2))
    _run(spec.code, params, packed.function, packed.hyper, packed.states, packed.aux, packed.counters, packed.layout,
         packed.ascent, path)
    return path


LEARNING_RATE_GRID = tuple(float(rate) for rate in np.logspace(-4, 0, 9))


def best_learning_rate(function, optimizer="adam", n_steps=500, grid=LEARNING_RATE_GRID, **hyperparameters):
    """The learning rate of ``grid`` whose trajectory ends at the lowest value of ``function`` (ties: the smallest).

    Trajectories that stay within the function's plotting bounds come first: a
    rate that ends low after bouncing across the plane is a worse picture of
    the rule than one that walks there.
    """
    spec = FUNCTIONS[function] if function in FUNCTIONS else None
    if spec is None:
        raise ValueError(f"unknown function {function!r}; one of {sorted(FUNCTIONS)}")
    x_min, x_max, y_min, y_max = spec.bounds
    best_rate, best_score = None, (True, np.inf)
    for rate in grid:
        path = trajectory(function, optimizer, n_steps, lr=rate, **hyperparameters)
        if not np.isfinite(path).all():
            continue
        leaves = bool(np.any((path[:, 0] < x_min) | (path[:, 0] > x_max) | (path[:, 1] < y_min)
                             | (path[:, 1] > y_max)))
        score = (leaves, value_and_gradient(spec.code, path[-1, 0], path[-1, 1])[0])
        if score < best_score:
            best_rate, best_score = rate, score
    return grid[0] if best_rate is None else best_rate
