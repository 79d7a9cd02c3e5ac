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

__all__ = ["DEFAULTS", "RULES", "ReferenceOptimizer", "register"]

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


def register(name, function, defaults):
    """Add a user's NumPy version of rule ``name``: ``function(params, grad, state, t, **hyperparameters)``.

    ``fastgd.rules.register`` calls this for a rule declared with
    ``reference=``; the oracle then covers it as it covers the built-ins.
    """
    RULES[name] = function
    DEFAULTS[name] = dict(defaults)


class ReferenceOptimizer:
    """The rule ``name`` over the 1-D array ``params``, updated in place by :meth:`step`.

    Hyperparameters not given take FORMULAS.md's defaults. ``state`` holds the
    rule's state arrays under torch's names, ``t`` the number of steps taken.
    """

    def __init__(self, name, params, **hyperparameters):
        if name not in RULES:
            raise ValueError(f"no NumPy reference for rule {name!r}; there is one for {sorted(RULES)}")
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


# --- multi-layer perceptrons ------------------------------------------------------------------
#
# The lecture's backpropagation, layer by layer over lists of W and b, with
# scikit-learn's losses. Only the layout of θ (all weights, then all biases)
# is shared with fastgd.kernels.mlp, so that results can be compared.

HIDDEN = {
    "identity": (lambda z: z, lambda a: np.ones_like(a)),
    "relu": (lambda z: np.maximum(z, 0), lambda a: (a > 0).astype(a.dtype)),
    "logistic": (lambda z: 1 / (1 + np.exp(-z)), lambda a: a * (1 - a)),
    "tanh": (np.tanh, lambda a: 1 - a**2),
}


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


OUTPUT = {"identity": HIDDEN["identity"][0], "logistic": HIDDEN["logistic"][0], "softmax": _softmax}


def mlp_unpack(theta, layer_sizes):
    """Lists of W (n_in × n_out) and b views into θ (weights first, then biases)."""
    weights, biases, offset = [], [], 0
    for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        weights.append(theta[offset:offset + n_in * n_out].reshape(n_in, n_out))
        offset += n_in * n_out
    for n_out in layer_sizes[1:]:
        biases.append(theta[offset:offset + n_out])
        offset += n_out
    return weights, biases


def mlp_forward(theta, X, layer_sizes, activation, output):
    """Activations of every layer, input first."""
    weights, biases = mlp_unpack(theta, layer_sizes)
    activations = [X]
    for layer, (W, b) in enumerate(zip(weights, biases)):
        z = activations[-1] @ W + b
        last = layer == len(weights) - 1
        activations.append(OUTPUT[output](z) if last else HIDDEN[activation][0](z))
    return activations


def mlp_loss(P, Y, output, theta, layer_sizes, alpha):
    """scikit-learn's MLP loss of outputs P against Y, plus α/(2m)·ΣW²."""
    m = P.shape[0]
    if output == "identity":
        data = ((P - Y) ** 2).mean() / 2
    else:
        eps = np.finfo(P.dtype).eps
        P = np.clip(P, eps, 1 - eps)
        data = -np.sum(Y * np.log(P)) / m
        if output == "logistic":
            data -= np.sum((1 - Y) * np.log(1 - P)) / m
    weights, _ = mlp_unpack(theta, layer_sizes)
    return data + alpha / (2 * m) * sum(np.sum(W**2) for W in weights)


def mlp_loss_grad(theta, X, Y, layer_sizes, activation, output, alpha):
    """(loss, gradient in θ's layout) by backpropagation."""
    activations = mlp_forward(theta, X, layer_sizes, activation, output)
    P, m = activations[-1], X.shape[0]
    loss = mlp_loss(P, Y, output, theta, layer_sizes, alpha)
    weights, _ = mlp_unpack(theta, layer_sizes)
    grad = np.zeros_like(theta)
    grad_weights, grad_biases = mlp_unpack(grad, layer_sizes)
    delta = (P - Y) / m if output != "identity" else (P - Y) / (m * Y.shape[1])
    for layer in range(len(weights) - 1, -1, -1):
        grad_weights[layer][...] = activations[layer].T @ delta + alpha / m * weights[layer]
        grad_biases[layer][...] = delta.sum(axis=0)
        if layer > 0:
            delta = (delta @ weights[layer].T) * HIDDEN[activation][1](activations[layer])
    return loss, grad


def splitmix64_permutation(n, seed, epoch):
    """The order fastgd's compiled loop visits n samples in, at (seed, epoch): SplitMix64 + Fisher-Yates."""
    mask = (1 << 64) - 1
    golden = 0x9E3779B97F4A7C15

    def next_bits(state):
        state = (state + golden) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return state, z ^ (z >> 31)

    order = list(range(n))
    state, _ = next_bits(((seed * golden) & mask) ^ epoch)
    for i in range(n - 1, 0, -1):
        state, bits = next_bits(state)
        j = bits % (i + 1)
        order[i], order[j] = order[j], order[i]
    return np.array(order)


def train_mlp(theta, X, Y, layer_sizes, activation, output, alpha, rule, hyperparameters, batch_size,
              n_epochs, seed, shuffle=True, schedule=None, clip_norm=None):
    """Plain mini-batch training; returns the mean batch loss of every epoch.

    ``schedule(epoch, step)`` gives the learning rate of an update step
    (1-based); constant by default. θ is updated in place.
    """
    optimizer = ReferenceOptimizer(rule, theta, **hyperparameters)
    base_lr = optimizer.hyperparameters["lr"]
    n = X.shape[0]
    losses = []
    for epoch in range(n_epochs):
        order = splitmix64_permutation(n, seed, epoch) if shuffle else np.arange(n)
        total = 0.0
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size] if batch_size < n else np.arange(n)
            loss, grad = mlp_loss_grad(theta, X[rows], Y[rows], layer_sizes, activation, output, alpha)
            total += loss * len(rows)
            if clip_norm is not None:
                norm = np.sqrt(np.sum(grad.astype(np.float64) ** 2))
                if norm > clip_norm:
                    grad = grad * grad.dtype.type(clip_norm / norm)
            if schedule is not None:
                optimizer.hyperparameters["lr"] = schedule(epoch, optimizer.t + 1, base_lr)
            optimizer.step(grad)
        losses.append(total / n)
    return losses
