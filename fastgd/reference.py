"""Every update rule in plain NumPy, written from FORMULAS.md and nothing else.

The oracle for the tests and the "numpy" baseline of the benchmarks. Slow and
obvious on purpose: whole-array expressions, one line per line of the contract,
state created on the first step as torch.optim does. It imports nothing from
the rest of fastgd, so a mistake in the compiled kernels cannot leak into it.

    >>> import numpy as np
    >>> params = np.array([1.0, -2.0])
    >>> optimizer = ReferenceOptimizer("adam", params, lr=0.1)
    >>> optimizer.step(2 * params)   # gradient of sum(params**2)
    >>> params
    array([ 0.9, -1.9])
"""

import numpy as np

__all__ = ["DEFAULTS", "RULES", "ReferenceOptimizer"]

ADAM_DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False)

# Hyperparameter names and defaults, transcribed from the table of FORMULAS.md
# (torch.optim's names and defaults).
DEFAULTS = {
    "sgd": dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False),
    "momentum": dict(lr=1e-3, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False),
    "nesterov": dict(lr=1e-3, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=True),
    "adagrad": dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10),
    "rmsprop": dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False),
    "adadelta": dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0),
    "adam": dict(ADAM_DEFAULTS),
    "amsgrad": dict(ADAM_DEFAULTS, amsgrad=True),
    "adamax": dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
    "nadam": dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3),
    "adamw": dict(ADAM_DEFAULTS, weight_decay=1e-2),
    "lion": dict(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0),
}


def _coupled(params, grad, weight_decay):
    """g + λθ: coupled L2, applied first whenever λ ≠ 0."""
    return grad + weight_decay * params if weight_decay != 0 else grad


def sgd(params, grad, state, t, lr, momentum, dampening, weight_decay, nesterov):
    g = _coupled(params, grad, weight_decay)
    if momentum != 0:
        if t == 1:
            state["momentum_buffer"] = g.copy()
        else:
            state["momentum_buffer"] = momentum * state["momentum_buffer"] + (1 - dampening) * g
        b = state["momentum_buffer"]
        g = g + momentum * b if nesterov else b
    params -= lr * g


def adagrad(params, grad, state, t, lr, lr_decay, weight_decay, initial_accumulator_value, eps):
    if t == 1:
        state["sum"] = np.full_like(params, initial_accumulator_value)
    g = _coupled(params, grad, weight_decay)
    decayed_lr = lr / (1 + (t - 1) * lr_decay)
    state["sum"] = state["sum"] + g * g
    params -= decayed_lr * g / (np.sqrt(state["sum"]) + eps)


def rmsprop(params, grad, state, t, lr, alpha, eps, weight_decay, momentum, centered):
    if t == 1:
        state["square_avg"] = np.zeros_like(params)
        if momentum > 0:
            state["momentum_buffer"] = np.zeros_like(params)
        if centered:
            state["grad_avg"] = np.zeros_like(params)
    g = _coupled(params, grad, weight_decay)
    state["square_avg"] = alpha * state["square_avg"] + (1 - alpha) * g * g
    v_tilde = state["square_avg"]
    if centered:
        state["grad_avg"] = alpha * state["grad_avg"] + (1 - alpha) * g
        v_tilde = v_tilde - state["grad_avg"] ** 2
    if momentum > 0:
        state["momentum_buffer"] = momentum * state["momentum_buffer"] + g / (np.sqrt(v_tilde) + eps)
        params -= lr * state["momentum_buffer"]
    else:
        params -= lr * g / (np.sqrt(v_tilde) + eps)


def adadelta(params, grad, state, t, lr, rho, eps, weight_decay):
    if t == 1:
        state["square_avg"] = np.zeros_like(params)
        state["acc_delta"] = np.zeros_like(params)
    g = _coupled(params, grad, weight_decay)
    state["square_avg"] = rho * state["square_avg"] + (1 - rho) * g * g
    delta = np.sqrt(state["acc_delta"] + eps) / np.sqrt(state["square_avg"] + eps) * g
    state["acc_delta"] = rho * state["acc_delta"] + (1 - rho) * delta * delta
    params -= lr * delta


def adam(params, grad, state, t, lr, betas, eps, weight_decay, amsgrad, decoupled=False):
    beta1, beta2 = betas
    if t == 1:
        state["exp_avg"] = np.zeros_like(params)
        state["exp_avg_sq"] = np.zeros_like(params)
        if amsgrad:
            state["max_exp_avg_sq"] = np.zeros_like(params)
    if decoupled:
        params *= 1 - lr * weight_decay
        g = grad
    else:
        g = _coupled(params, grad, weight_decay)
    state["exp_avg"] = beta1 * state["exp_avg"] + (1 - beta1) * g
    state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
    m_hat = state["exp_avg"] / (1 - beta1**t)
    if amsgrad:
        state["max_exp_avg_sq"] = np.maximum(state["max_exp_avg_sq"], state["exp_avg_sq"])
        v_hat = state["max_exp_avg_sq"] / (1 - beta2**t)
    else:
        v_hat = state["exp_avg_sq"] / (1 - beta2**t)
    params -= lr * m_hat / (np.sqrt(v_hat) + eps)


def adamw(params, grad, state, t, lr, betas, eps, weight_decay, amsgrad):
    adam(params, grad, state, t, lr, betas, eps, weight_decay, amsgrad, decoupled=True)


def adamax(params, grad, state, t, lr, betas, eps, weight_decay):
    beta1, beta2 = betas
    if t == 1:
        state["exp_avg"] = np.zeros_like(params)
        state["exp_inf"] = np.zeros_like(params)
    g = _coupled(params, grad, weight_decay)
    state["exp_avg"] = beta1 * state["exp_avg"] + (1 - beta1) * g
    state["exp_inf"] = np.maximum(beta2 * state["exp_inf"], np.abs(g) + eps)
    params -= lr * state["exp_avg"] / ((1 - beta1**t) * state["exp_inf"])


def nadam(params, grad, state, t, lr, betas, eps, weight_decay, momentum_decay):
    beta1, beta2 = betas
    if t == 1:
        state["exp_avg"] = np.zeros_like(params)
        state["exp_avg_sq"] = np.zeros_like(params)
        state["mu_product"] = 1.0
    g = _coupled(params, grad, weight_decay)
    mu = beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    state["mu_product"] = state["mu_product"] * mu
    mu_product = state["mu_product"]
    state["exp_avg"] = beta1 * state["exp_avg"] + (1 - beta1) * g
    state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
    v_hat = state["exp_avg_sq"] / (1 - beta2**t)
    denom = np.sqrt(v_hat) + eps
    params -= lr * (1 - mu) / (1 - mu_product) * g / denom
    params -= lr * mu_next / (1 - mu_product * mu_next) * state["exp_avg"] / denom


def lion(params, grad, state, t, lr, betas, weight_decay):
    beta1, beta2 = betas
    if t == 1:
        state["exp_avg"] = np.zeros_like(params)
    c = beta1 * state["exp_avg"] + (1 - beta1) * grad
    params -= lr * (np.sign(c) + weight_decay * params)
    state["exp_avg"] = beta2 * state["exp_avg"] + (1 - beta2) * grad


RULES = {
    "sgd": sgd, "momentum": sgd, "nesterov": sgd, "adagrad": adagrad, "rmsprop": rmsprop, "adadelta": adadelta,
    "adam": adam, "amsgrad": adam, "adamax": adamax, "nadam": nadam, "adamw": adamw, "lion": lion,
}


class ReferenceOptimizer:
    """The rule ``name`` over the 1-D array ``params``, updated in place by :meth:`step`.

    Hyperparameters not given take FORMULAS.md's defaults. ``state`` holds the
    rule's state arrays under torch's names, ``t`` the number of steps taken.
    """

    def __init__(self, name, params, **hyperparameters):
        unknown = set(hyperparameters) - set(DEFAULTS[name])
        if unknown:
            raise TypeError(f"unknown hyperparameters for {name}: {sorted(unknown)}")
        self.name = name
        self.params = params
        self.hyperparameters = dict(DEFAULTS[name], **hyperparameters)
        self.state = {}
        self.t = 0

    def step(self, grad):
        self.t += 1
        RULES[self.name](self.params, grad, self.state, self.t, **self.hyperparameters)
