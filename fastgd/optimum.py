r"""The optimal training loss f* of the convex problems fastgd trains: an MLP without hidden layers.

``fastgd.models.MLP([n_features, n_outputs], output=data.output, alpha=α)`` on a
:class:`fastgd.datasets.Dataset` is a linear model, and its training objective is convex:

* classification (softmax output, also for two classes: the data set's one-hot targets), multinomial
  logistic regression, :math:`f(θ) = \frac1n\sum_i -\log \mathrm{softmax}(x_i W + b)_{y_i} + \frac{α}{2n}\|W\|^2`;
* regression (identity output, one target column), ridge regression,
  :math:`f(θ) = \frac1{2n}\sum_i (x_i W + b - y_i)^2 + \frac{α}{2n}\|W\|^2`;

exactly the loss of :mod:`fastgd.kernels.mlp` (scikit-learn's MLP loss: the penalty covers the weights, not the
biases, and is divided by the number of rows n) on the training rows. :func:`optimal_training_loss` solves it in
float64 with NumPy and SciPy alone (none of fastgd's kernels: it is their independent check) and returns f* with a
minimiser θ* in fastgd's layout (``[W row-major, b]``, :mod:`fastgd.kernels.mlp`). A suboptimality plot of
f − f* (benchopt's) then reads correctly down to about 1e-12.

The cross-entropy here is not clipped; fastgd's clips probabilities to [ε, 1 − ε], which changes the loss only
where a probability is within ε = 2.2e-16 of 0 or 1 (by at most ε per such row at the top end).
"""

import numbers

import numpy as np

__all__ = ["optimal_training_loss", "training_objective", "GRADIENT_TOLERANCE", "MAX_PARAMETERS"]

# the Euclidean norm of the objective's gradient at the θ* returned: a solve that cannot reach it raises
GRADIENT_TOLERANCE = 1e-10
# Newton's step forms the exact Hessian, MAX_PARAMETERS² float64 numbers
MAX_PARAMETERS = 5000
_NEWTON_STEPS = 50


def _problem(data, alpha, hidden_layer_sizes):
    from fastgd.datasets import Dataset

    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a fastgd.datasets.Dataset (fastgd.datasets.load), got {type(data).__name__}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha < np.inf:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    if tuple(hidden_layer_sizes):
        raise ValueError(f"f* is known for the linear model only: a network with hidden layers "
                         f"{list(hidden_layer_sizes)} is not convex")
    n_params = (data.n_features + 1) * data.n_outputs
    if n_params > MAX_PARAMETERS:
        raise ValueError(f"data set {data.name!r} gives a linear model of {n_params} parameters; f* is solved with "
                         f"the exact Hessian for {MAX_PARAMETERS} at most")
    X = np.asarray(data.X_train, dtype=np.float64)
    ones = np.ones((X.shape[0], 1))
    return np.hstack([X, ones]), np.asarray(data.Y_train, dtype=np.float64), float(alpha)


def _penalised(n_features, n_outputs):
    """1.0 at θ's weights (the first n_features × n_outputs entries), 0.0 at its biases."""
    mask = np.zeros((n_features + 1, n_outputs))
    mask[:n_features] = 1.0
    return mask.ravel()


def _objective(theta, Xb, Y, alpha, classification, with_hessian=False):
    """(f, ∇f[, ∇²f]) at θ, θ = [W; b] row-major, which is fastgd's layout [W row-major, b]."""
    n, d1 = Xb.shape
    k = Y.shape[1]
    V = theta.reshape(d1, k)
    mask = _penalised(d1 - 1, k)
    Z = Xb @ V
    if classification:
        largest = Z.max(axis=1, keepdims=True)
        shifted = Z - largest
        log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_P = shifted - log_norm
        P = np.exp(log_P)
        value = -np.sum(Y * log_P) / n
        residual = (P - Y) / n
    else:
        value = 0.5 * np.sum((Z - Y) ** 2) / (n * k)
        residual = (Z - Y) / (n * k)
    value += 0.5 * alpha * np.sum((theta * mask) ** 2) / n
    grad = (Xb.T @ residual).ravel() + alpha / n * mask * theta
    if not with_hessian:
        return value, grad
    H = np.zeros((d1, k, d1, k))
    if classification:
        for a in range(k):
            for c in range(a, k):
                weights = P[:, a] * ((a == c) - P[:, c]) / n
                block = Xb.T @ (weights[:, None] * Xb)
                H[:, a, :, c] = block
                H[:, c, :, a] = block
    else:
        block = Xb.T @ Xb / (n * k)
        for a in range(k):
            H[:, a, :, a] = block
    H = H.reshape(d1 * k, d1 * k)
    H[np.diag_indices_from(H)] += alpha / n * mask
    return value, grad, H


def training_objective(theta, data, alpha=0.0):
    """(f(θ), ∇f(θ)) of the linear model's training objective on ``data``'s training rows (see the module), float64.

    θ in fastgd's layout, ``(n_features + 1) * n_outputs`` long. The NumPy form :func:`optimal_training_loss` solves.
    """
    Xb, Y, alpha = _problem(data, alpha, ())
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (Xb.shape[1] * Y.shape[1],):
        raise ValueError(f"theta must have shape ({Xb.shape[1] * Y.shape[1]},), got {theta.shape}")
    return _objective(theta, Xb, Y, alpha, data.task == "classification")


def optimal_training_loss(data, alpha=0.0, hidden_layer_sizes=()):
    """``(f_star, theta_star)``: the minimum of the linear model's training objective on ``data`` and a minimiser.

    ``data``: a :class:`fastgd.datasets.Dataset` (its training rows, as a sweep's run of the test split trains on
    them; pass ``data.validation_split(...)`` for a tuning run's rows); ``alpha``: the L2 penalty α of
    :class:`fastgd.models.MLP`; ``hidden_layer_sizes`` must be empty (ValueError in one line otherwise: a network
    with hidden layers is not convex). The model must have at most :data:`MAX_PARAMETERS` parameters (ValueError).

    Regression: the normal equations solved by least squares on the penalised system, then refined by Newton steps.
    Classification: SciPy's L-BFGS-B, then Newton steps with the exact Hessian (a least-squares solve: the
    softmax's biases, and without a penalty its weights, are free along one direction that changes nothing).
    ``theta_star`` is float64 in fastgd's layout, ``(n_features + 1) * n_outputs`` long, and the Euclidean norm of
    the gradient there is at most :data:`GRADIENT_TOLERANCE` (1e-10); RuntimeError in one line when no such point
    is found. ``f_star`` is the objective at ``theta_star``, a Python float. (Separable classes without a penalty
    have no minimiser: their infimum 0 is approached by weights that grow without bound; give alpha > 0.)
    """
    from threadpoolctl import threadpool_limits

    Xb, Y, alpha = _problem(data, alpha, hidden_layer_sizes)
    # products of a few hundred thousand multiply-adds: BLAS's threads cost more than they save (25× on a busy
    # 2-core machine)
    with threadpool_limits(1):
        return _solve(data, Xb, Y, alpha)


def _solve(data, Xb, Y, alpha):
    classification = data.task == "classification"
    n_params = Xb.shape[1] * Y.shape[1]
    if classification:
        from scipy.optimize import minimize

        result = minimize(_objective, np.zeros(n_params), args=(Xb, Y, alpha, True), jac=True, method="L-BFGS-B",
                          options=dict(maxiter=20000, maxcor=30, gtol=1e-6, ftol=0.0))
        theta = result.x
    else:
        mask = _penalised(Xb.shape[1] - 1, 1)
        # rows sqrt(α)·e_j under Xb for the penalised columns: the normal equations of the ridge objective
        augmented = np.vstack([Xb, np.sqrt(alpha) * np.diag(mask)[mask > 0]])
        targets = np.concatenate([Y[:, 0], np.zeros(int(mask.sum()))])
        theta = np.linalg.lstsq(augmented, targets, rcond=None)[0]
    theta = _newton(theta, Xb, Y, alpha, classification)
    value, grad = _objective(theta, Xb, Y, alpha, classification)
    norm = float(np.linalg.norm(grad))
    if not (np.isfinite(value) and norm <= GRADIENT_TOLERANCE):
        raise RuntimeError(f"no minimiser of the training objective on {data.name!r} with alpha={alpha:g} found "
                           f"(the gradient's norm is {norm:.3g} after the solve)")
    return float(value), theta


def _newton(theta, Xb, Y, alpha, classification):
    """Newton's steps from ``theta`` with a backtracking line search, until the gradient stops shrinking."""
    value, grad, hessian = _objective(theta, Xb, Y, alpha, classification, with_hessian=True)
    for _ in range(_NEWTON_STEPS):
        norm = np.linalg.norm(grad)
        if norm <= GRADIENT_TOLERANCE * 1e-3:
            break
        step = np.linalg.lstsq(hessian, -grad, rcond=None)[0]
        scale = 1.0
        while scale > 1e-10:
            candidate = theta + scale * step
            new_value, new_grad = _objective(candidate, Xb, Y, alpha, classification)
            # near the optimum the value no longer resolves a decrease: the gradient's norm decides there
            if new_value < value or (new_value <= value + 1e-15 * abs(value)
                                     and np.linalg.norm(new_grad) < norm):
                break
            scale *= 0.5
        else:
            break
        theta = candidate
        value, grad, hessian = _objective(theta, Xb, Y, alpha, classification, with_hessian=True)
    return theta
