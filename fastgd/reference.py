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

import inspect

import numpy as np

__all__ = ["DEFAULTS", "RULES", "EVALUATION", "ReferenceOptimizer", "register", "unregister", "mlp_layout",
           "ReferenceLBFGS"]

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
    # torch.optim 2.13's other rules, then the reference implementations named by each docstring
    "radam": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False),
    "rprop": dict(lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0)),
    "asgd": dict(lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0),
    "schedule_free_adamw": dict(lr=2.5e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, warmup_steps=0, r=0.0,
                                weight_lr_power=2.0),
    "lamb": dict(lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0, grad_averaging=True, adam=False, eps=1e-6,
                 clamp=10.0),
    "adafactor": dict(lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0),
    "muon": dict(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True, ns_coefficients=(3.4445, -4.775, 2.0315),
                 eps=1e-7, ns_steps=5, adjust_lr_fn="original", adamw_lr=1e-3, adamw_betas=(0.9, 0.999),
                 adamw_eps=1e-8, adamw_weight_decay=1e-2),
    # pytorch-optimizer 4.1's (the options fastgd takes)
    "adopt": dict(lr=1e-3, betas=(0.9, 0.9999), weight_decay=0.0, weight_decouple=False, eps=1e-6),
    "adan": dict(lr=1e-3, betas=(0.98, 0.92, 0.99), weight_decay=0.0, weight_decouple=False, max_grad_norm=0.0,
                 eps=1e-8),
    "prodigy": dict(lr=1.0, betas=(0.9, 0.999), beta3=None, d0=1e-6, d_coef=1.0, growth_rate=float("inf"),
                    weight_decay=0.0, fixed_decay=False, bias_correction=False, safeguard_warmup=False, eps=1e-8),
    "dadapt_adam": dict(lr=1.0, betas=(0.9, 0.999), d0=1e-6, growth_rate=float("inf"), weight_decay=0.0,
                        weight_decouple=False, fixed_decay=False, bias_correction=False, eps=1e-8),
    "shampoo": dict(lr=1e-3, momentum=0.0, weight_decay=0.0, weight_decouple=False, fixed_decay=False,
                    preconditioning_compute_steps=1, matrix_eps=1e-6),
    "soap": dict(lr=3e-3, betas=(0.95, 0.95), shampoo_beta=None, weight_decay=1e-2, precondition_frequency=10,
                 max_precondition_dim=10000, precondition_1d=False, correct_bias=True, normalize_gradient=False,
                 eps=1e-8),
    "psgd_kron": dict(lr=1e-3, momentum=0.9, weight_decay=0.0, weight_decouple=True,
                      pre_conditioner_update_probability=None, max_size_triangular=8192, min_ndim_triangular=2,
                      memory_save_mode="none", momentum_into_precondition_update=True, precondition_lr=0.1,
                      precondition_init_scale=1.0, balance_prob=0.01, maximize=False, seed=0),
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


def _adam_moments(params, grad, state, t, lr, betas, weight_decay, decoupled):
    """Weight decay (decoupled: θ ← θ(1 − γλ); else g + λθ), then Adam's moments m and v; returns m̂ = m/(1 − β₁ᵗ)."""
    beta1, beta2 = betas
    if t == 1:
        state["exp_avg"] = np.zeros_like(params)
        state["exp_avg_sq"] = np.zeros_like(params)
    if decoupled:
        params *= 1 - lr * weight_decay
        g = grad
    else:
        g = _coupled(params, grad, weight_decay)
    state["exp_avg"] = beta1 * state["exp_avg"] + (1 - beta1) * g
    state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
    return state["exp_avg"] / (1 - beta1**t)


def adam(params, grad, state, t, lr, betas, eps, weight_decay, amsgrad, decoupled=False):
    beta2 = betas[1]
    if t == 1 and amsgrad:
        state["max_exp_avg_sq"] = np.zeros_like(params)
    m_hat = _adam_moments(params, grad, state, t, lr, betas, weight_decay, decoupled)
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


def radam(params, grad, state, t, lr, betas, eps, weight_decay, decoupled_weight_decay):
    beta2 = betas[1]
    m_hat = _adam_moments(params, grad, state, t, lr, betas, weight_decay, decoupled_weight_decay)
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
    if rho_t > 5:
        rect = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        params -= lr * m_hat * np.sqrt(1 - beta2**t) / (np.sqrt(state["exp_avg_sq"]) + eps) * rect
    else:
        params -= lr * m_hat


def rprop(params, grad, state, t, lr, etas, step_sizes):
    etaminus, etaplus = etas
    if t == 1:
        state["prev"] = np.zeros_like(params)
        state["step_size"] = np.full_like(params, lr)
    product = grad * state["prev"]
    factor = np.where(product > 0, etaplus, np.where(product < 0, etaminus, 1.0))
    state["step_size"] = np.clip(state["step_size"] * factor, *step_sizes)
    g = np.where(product < 0, 0.0, grad)
    params -= np.sign(g) * state["step_size"]
    state["prev"] = g


def asgd(params, grad, state, t, lr, lambd, alpha, t0, weight_decay):
    if t == 1:
        state["ax"] = np.zeros_like(params)
    g = _coupled(params, grad, weight_decay)
    eta = lr / (1 + lambd * lr * (t - 1)) ** alpha  # as stored at the end of the step before
    mu = 1 / max(1, t - 1 - t0)
    params *= 1 - lambd * eta
    params -= eta * g
    state["ax"] = state["ax"] + mu * (params - state["ax"]) if mu != 1 else params.copy()


def schedule_free_adamw(params, grad, state, t, lr, betas, eps, weight_decay, warmup_steps, r, weight_lr_power):
    beta1, beta2 = betas
    if t == 1:
        state["z"] = params.copy()
        state["exp_avg_sq"] = np.zeros_like(params)
        state["lr_max"], state["weight_sum"] = -1.0, 0.0
    scheduled = lr * min(1.0, t / warmup_steps) if warmup_steps else lr
    state["lr_max"] = max(scheduled, state["lr_max"])
    weight = t**r * state["lr_max"] ** weight_lr_power
    state["weight_sum"] += weight
    c = weight / state["weight_sum"] if state["weight_sum"] else 0.0
    state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * grad * grad
    g = grad / (np.sqrt(state["exp_avg_sq"] / (1 - beta2**t)) + eps) + weight_decay * params
    params += c * (state["z"] - params) + scheduled * (beta1 * (1 - c) - 1) * g
    state["z"] = state["z"] - scheduled * g


def _tensors(params, layout):
    """(start, shape) of every tensor the flat vector holds; one vector without a layout."""
    start = 0
    for shape in layout or [(params.size,)]:
        yield start, tuple(shape)
        start += int(np.prod(shape))


def lamb(params, grad, state, t, lr, betas, weight_decay, grad_averaging, adam, eps, clamp, layout=None):
    beta1, beta2 = betas
    if t == 1:
        state["exp_avg"] = np.zeros_like(params)
        state["exp_avg_sq"] = np.zeros_like(params)
    state["exp_avg"] = beta1 * state["exp_avg"] + ((1 - beta1) if grad_averaging else 1.0) * grad
    state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * grad * grad
    params *= 1 - weight_decay * lr
    update = state["exp_avg"] / (np.sqrt(state["exp_avg_sq"]) + eps)
    for start, shape in _tensors(params, layout):
        tensor = slice(start, start + int(np.prod(shape)))
        weight_norm = min(np.linalg.norm(params[tensor]), clamp)
        update_norm = np.linalg.norm(update[tensor])
        trust = 1.0 if adam or weight_norm == 0 or update_norm == 0 else weight_norm / (update_norm + eps)
        params[tensor] -= lr / (1 - beta1**t) * trust * update[tensor]


def adafactor(params, grad, state, t, lr, beta2_decay, eps, d, weight_decay, layout=None):
    eps1 = np.finfo(params.dtype).eps if eps[0] is None else eps[0]
    eps2 = eps[1]
    if t == 1:
        state["moments"] = [(np.zeros(shape[0]), np.zeros(shape[1])) if len(shape) == 2 else np.zeros(shape)
                            for _, shape in _tensors(params, layout)]
    beta = t**beta2_decay  # 1 - β2_t
    rho = min(lr, 1 / np.sqrt(t))
    for (start, shape), moments in zip(_tensors(params, layout), state["moments"]):
        theta = params[start:start + int(np.prod(shape))].reshape(shape)
        g = grad[start:start + int(np.prod(shape))].reshape(shape)
        alpha = max(eps2, np.sqrt(np.mean(theta * theta))) * rho
        theta *= 1 - lr * weight_decay
        if len(shape) == 2:
            rows, columns = moments
            rows += beta * (np.mean(g * g, axis=1) - rows)
            columns += beta * (np.mean(g * g, axis=0) - columns)
            estimate = np.outer(rows, columns) / max(rows.mean(), eps1)
        else:
            moments += beta * (g * g - moments)
            estimate = moments
        update = g / np.sqrt(np.maximum(estimate, eps1 * eps1))
        theta -= alpha / max(1.0, np.sqrt(np.mean(update * update)) / d) * update
    state["aux"] = np.concatenate([np.concatenate(m) if isinstance(m, tuple) else m for m in state["moments"]])


def newton_schulz(update, coefficients, steps, eps):
    """The orthogonalisation Muon takes: X ← aX + (bA + cA²)X with A = XXᵀ, from U/‖U‖."""
    a, b, c = coefficients
    x = update.T if update.shape[0] > update.shape[1] else update
    x = x / max(np.linalg.norm(x), eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if update.shape[0] > update.shape[1] else x


def muon(params, grad, state, t, lr, weight_decay, momentum, nesterov, ns_coefficients, eps, ns_steps, adjust_lr_fn,
         adamw_lr, adamw_betas, adamw_eps, adamw_weight_decay, layout=None):
    if t == 1:
        for key in ("momentum_buffer", "exp_avg", "exp_avg_sq"):
            state[key] = np.zeros_like(params)
    beta1, beta2 = adamw_betas
    for start, shape in _tensors(params, layout):
        span = slice(start, start + int(np.prod(shape)))
        if len(shape) != 2:  # AdamW
            params[span] *= 1 - adamw_lr * adamw_weight_decay
            state["exp_avg"][span] = beta1 * state["exp_avg"][span] + (1 - beta1) * grad[span]
            state["exp_avg_sq"][span] = beta2 * state["exp_avg_sq"][span] + (1 - beta2) * grad[span] ** 2
            v_hat = state["exp_avg_sq"][span] / (1 - beta2**t)
            params[span] -= adamw_lr * state["exp_avg"][span] / (1 - beta1**t) / (np.sqrt(v_hat) + adamw_eps)
            continue
        buffer = state["momentum_buffer"][span]
        buffer += (1 - momentum) * (grad[span] - buffer)
        update = (grad[span] + momentum * (buffer - grad[span]) if nesterov else buffer).reshape(shape)
        rows, columns = shape
        scale = np.sqrt(max(1, rows / columns)) if adjust_lr_fn == "original" else 0.2 * np.sqrt(max(rows, columns))
        params[span] *= 1 - lr * weight_decay
        params[span] -= lr * scale * newton_schulz(update, ns_coefficients, ns_steps, eps).ravel()


def adopt(params, grad, state, t, lr, betas, weight_decay, weight_decouple, eps):
    beta1, beta2 = betas
    if t == 1:
        state["exp_avg"] = np.zeros_like(params)
        state["exp_avg_sq"] = np.zeros_like(params)
    if weight_decouple:
        params *= 1 - lr * weight_decay
    else:
        grad = _coupled(params, grad, weight_decay)
    if t == 1:
        state["exp_avg_sq"] += grad * grad
        return
    clip = t ** 0.25
    normed = np.clip(grad / np.maximum(np.sqrt(state["exp_avg_sq"]), eps), -clip, clip)
    state["exp_avg"] += (1 - beta1) * (normed - state["exp_avg"])
    params -= lr * state["exp_avg"]
    state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * grad * grad


def adan(params, grad, state, t, lr, betas, weight_decay, weight_decouple, max_grad_norm, eps):
    beta1, beta2, beta3 = betas
    if max_grad_norm > 0:
        grad = grad * min(max_grad_norm / (np.sqrt(np.sum(grad * grad)) + eps), 1.0)
    if t == 1:
        for key in ("exp_avg", "exp_avg_sq", "exp_avg_diff"):
            state[key] = np.zeros_like(params)
        difference = np.zeros_like(params)
    else:
        difference = grad + state["previous_grad"]  # previous_grad holds -g_{t-1}
    state["exp_avg"] += (1 - beta1) * (grad - state["exp_avg"])
    state["exp_avg_diff"] += (1 - beta2) * (difference - state["exp_avg_diff"])
    corrected = grad + beta2 * difference
    state["exp_avg_sq"] = beta3 * state["exp_avg_sq"] + (1 - beta3) * corrected * corrected
    denominator = np.sqrt(state["exp_avg_sq"]) / np.sqrt(1 - beta3**t) + eps
    if weight_decouple:
        params *= 1 - lr * weight_decay
    params -= lr / (1 - beta1**t) * state["exp_avg"] / denominator
    params -= lr * beta2 / (1 - beta2**t) * state["exp_avg_diff"] / denominator
    if not weight_decouple:
        params /= 1 + lr * weight_decay  # the proximal step
    state["previous_grad"] = -grad


def prodigy(params, grad, state, t, lr, betas, beta3, d0, d_coef, growth_rate, weight_decay, fixed_decay,
            bias_correction, safeguard_warmup, eps):
    beta1, beta2 = betas
    beta3 = np.sqrt(beta2) if beta3 is None else beta3
    if t == 1:
        state.update(p0=params.copy(), exp_avg=np.zeros_like(params), exp_avg_sq=np.zeros_like(params),
                     s=np.zeros_like(params), d=d0, d_max=d0, d_numerator=0.0)
    d = state["d"]
    correction = (1 - beta1**t) / np.sqrt(1 - beta2**t) if bias_correction else 1.0
    d_lr = d * lr / correction
    state["d_numerator"] = beta3 * state["d_numerator"] + d / d0 * d_lr * np.sum(grad * (state["p0"] - params))
    state["exp_avg"] = beta1 * state["exp_avg"] + d * (1 - beta1) * grad
    state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + d * d * (1 - beta2) * grad * grad
    state["s"] = beta3 * state["s"] + d / d0 * (d if safeguard_warmup else d_lr) * grad
    total = np.sum(np.abs(state["s"]))
    if total == 0:
        return
    d_hat = d_coef * state["d_numerator"] / total
    if d == d0:
        d = max(d, d_hat)
    state["d_max"] = max(state["d_max"], d_hat)
    state["d"] = d = min(state["d_max"], d * growth_rate)
    params *= 1 - weight_decay * (1.0 if fixed_decay else d_lr)
    params -= d_lr * state["exp_avg"] / (np.sqrt(state["exp_avg_sq"]) + d * eps)


def dadapt_adam(params, grad, state, t, lr, betas, d0, growth_rate, weight_decay, weight_decouple, fixed_decay,
                bias_correction, eps):
    beta1, beta2 = betas
    root = np.sqrt(beta2)
    if t == 1:
        state.update(exp_avg=np.zeros_like(params), exp_avg_sq=np.zeros_like(params), s=np.zeros_like(params), d=d0,
                     numerator_weighted=0.0)
    d = state["d"]
    d_lr = d * lr / ((1 - beta1**t) / np.sqrt(1 - beta2**t) if bias_correction else 1.0)
    if not weight_decouple:
        grad = _coupled(params, grad, weight_decay)
    numerator = d_lr * np.sum(grad * state["s"] / (np.sqrt(state["exp_avg_sq"]) + eps))
    state["exp_avg"] = beta1 * state["exp_avg"] + d_lr * (1 - beta1) * grad
    state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * grad * grad
    state["s"] = root * state["s"] + d_lr * (1 - root) * grad
    total = np.sum(np.abs(state["s"]))
    if total == 0:
        return
    state["numerator_weighted"] += (1 - root) * (numerator - state["numerator_weighted"])
    if lr > 0:
        state["d"] = max(d, min(state["numerator_weighted"] / ((1 - root) * total), d * growth_rate))
    if weight_decouple:
        params *= 1 - weight_decay * (1.0 if fixed_decay else d_lr)
    params -= state["exp_avg"] / (np.sqrt(state["exp_avg_sq"]) + eps)


def _inverse_root_svd(matrix, power):
    """matrix^(−1/power) from its SVD, as pytorch-optimizer's ``compute_power_svd``."""
    u, s, vh = np.linalg.svd(matrix)
    return (u * s ** (-1.0 / power)) @ vh


def shampoo(params, grad, state, t, lr, momentum, weight_decay, weight_decouple, fixed_decay,
            preconditioning_compute_steps, matrix_eps, layout=None):
    tensors = list(_tensors(params, layout))
    if t == 1:
        if momentum > 0:
            state["momentum_buffer"] = grad.copy()  # the first step's lerp then leaves the gradient as it is
        state["statistics"] = [[np.eye(side, dtype=params.dtype) * matrix_eps for side in shape]
                               for _, shape in tensors]
        state["roots"] = [[np.zeros((side, side), params.dtype) for side in shape] for _, shape in tensors]
    for (start, shape), statistics, roots in zip(tensors, state["statistics"], state["roots"]):
        span = slice(start, start + int(np.prod(shape)))
        g = grad[span].copy()
        if momentum > 0:
            g = g + momentum * (state["momentum_buffer"][span] - g)
        if weight_decay != 0:
            if weight_decouple:
                params[span] *= 1 - weight_decay * (1.0 if fixed_decay else lr)
            else:
                g = g + weight_decay * params[span]
        g = g.reshape(shape)
        if len(shape) == 2:
            statistics[0] += g @ g.T
            statistics[1] += g.T @ g
        else:
            statistics[0] += np.outer(g, g)
        if t % preconditioning_compute_steps == 0:
            for k, statistic in enumerate(statistics):
                roots[k] = _inverse_root_svd(statistic, 2 * len(shape))
        update = roots[0] @ g @ roots[1] if len(shape) == 2 else roots[0] @ g
        if momentum > 0:
            state["momentum_buffer"][span] = update.ravel()
        params[span] -= lr * update.ravel()
    state["aux"] = np.concatenate([np.concatenate([np.concatenate([s.ravel(), r.ravel()]) for s, r in zip(ss, rr)])
                                   for ss, rr in zip(state["statistics"], state["roots"])])


SOAP_MAX_SIDE = 10000  # fastgd keeps eigenbases for sides up to this many


def soap(params, grad, state, t, lr, betas, shampoo_beta, weight_decay, precondition_frequency,
         max_precondition_dim, precondition_1d, correct_bias, normalize_gradient, eps, layout=None):
    beta1, beta2 = betas
    shampoo_beta = beta2 if shampoo_beta is None else shampoo_beta
    tensors = list(_tensors(params, layout))
    if t == 1:
        state["exp_avg"] = np.zeros_like(params)
        state["exp_avg_sq"] = np.zeros_like(params)
        # per tensor and side: [statistic, eigenbasis], or None for a side that is not rotated
        state["sides"] = [[[np.zeros((side, side), params.dtype), None]
                           if side <= max_precondition_dim and (len(shape) == 2 or precondition_1d) else None
                           for side in (shape if len(shape) == 2 else shape[:1])] for _, shape in tensors]

    def rotate(x, sides, forward):
        left, right = (sides + [None])[:2]
        if left is not None:
            x = (left[1].T if forward else left[1]) @ x
        if right is not None:
            x = x @ (right[1] if forward else right[1].T)
        return x

    s = t - 1
    step_size = lr * np.sqrt(1 - beta2**s) / (1 - beta1**s) if correct_bias and s > 0 else lr
    for (start, shape), sides in zip(tensors, state["sides"]):
        span = slice(start, start + int(np.prod(shape)))
        matrix_shape = shape if len(shape) == 2 else (shape[0], 1)
        g = grad[span].reshape(matrix_shape)
        m = state["exp_avg"][span].reshape(matrix_shape)
        v = state["exp_avg_sq"][span].reshape(matrix_shape)
        if t > 1:
            m += (1 - beta1) * (g - m)
            v += (1 - beta2) * (rotate(g, sides, True) ** 2 - v)
            update = rotate(rotate(m, sides, True) / (np.sqrt(v) + eps), sides, False)
            if normalize_gradient:
                update = update / (np.sqrt(np.mean(update**2)) + eps)
            params[span] -= step_size * update.ravel()
            params[span] *= 1 - weight_decay * lr
        for k, side in enumerate(sides):
            if side is None:
                continue
            side[0] += (1 - shampoo_beta) * ((g @ g.T if k == 0 else g.T @ g) - side[0])
            if t == 1:
                side[1] = np.linalg.eigh(side[0] + 1e-30 * np.eye(len(side[0]), dtype=params.dtype))[1][:, ::-1]
            elif s % precondition_frequency == 0:
                product = side[0] @ side[1]
                order = np.argsort(-np.sum(side[1] * product, axis=0))
                v[...] = v[order, :] if k == 0 else v[:, order]
                side[1] = np.linalg.qr(product[:, order])[0]
    aux = []
    for (start, shape), sides in zip(tensors, state["sides"]):
        for k, side in enumerate(shape if len(shape) == 2 else shape[:1]):
            if side > SOAP_MAX_SIDE:
                continue
            pair = sides[k]
            zeros = np.zeros(side * side, params.dtype)
            aux += [zeros, zeros] if pair is None else [pair[0].ravel(), pair[1].ravel()]
        # then the first moment in the (new) bases, which the compiled step keeps rather than rotating m each step
        matrix_shape = shape if len(shape) == 2 else (shape[0], 1)
        m = state["exp_avg"][start:start + int(np.prod(shape))].reshape(matrix_shape)
        aux.append(rotate(m, sides, True).ravel())
    state["aux"] = np.concatenate(aux)


# --- PSGD-Kron (pytorch-optimizer's Kron), its draws from SplitMix64 keyed on (seed, step, tensor) ---------------

_SPLITMIX = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)


def _splitmix_bits(state, count):
    """``count`` outputs of SplitMix64 from ``state`` (Steele et al. 2014), as a uint64 array."""
    golden, mix1, mix2 = (np.uint64(c) for c in _SPLITMIX)
    z = np.uint64(state) + golden * np.arange(1, count + 1, dtype=np.uint64)
    z = (z ^ (z >> np.uint64(30))) * mix1
    z = (z ^ (z >> np.uint64(27))) * mix2
    return z ^ (z >> np.uint64(31))


def _kron_key(seed, step, stream):
    golden = np.uint64(_SPLITMIX[0])
    first = _splitmix_bits((np.array([seed], dtype=np.uint64) * golden)[0] ^ np.uint64(step), 1)[0]
    return _splitmix_bits(first ^ np.uint64(stream), 1)[0]


def _kron_uniforms(bits):
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


def kron_draws(seed, step, tensor, size):
    """(the balancing uniform of step ``step``, tensor ``tensor``'s ``size`` standard normals): Box–Muller."""
    balance = _kron_uniforms(_splitmix_bits(_kron_key(seed, step, 0), 1))[0]
    uniforms = _kron_uniforms(_splitmix_bits(_kron_key(seed, step, tensor + 1), 2 * ((size + 1) // 2)))
    radius = np.sqrt(-2.0 * np.log(1.0 - uniforms[0::2]))
    angle = 2.0 * np.pi * uniforms[1::2]
    normals = np.empty(2 * radius.size)
    normals[0::2], normals[1::2] = radius * np.cos(angle), radius * np.sin(angle)
    return balance, normals[:size]


def _kron_lower_bound(a):
    """pytorch-optimizer's norm_lower_bound of a symmetric matrix."""
    largest = np.abs(a).max()
    a = a / (largest if largest > 0 else 1.0)
    columns, rows = (a * a).sum(axis=0), (a * a).sum(axis=1)
    tiny = np.finfo(a.dtype).tiny
    if columns.max() > rows.max():
        x = a[:, np.argmax(columns)] @ a
        return largest * np.linalg.norm((x / max(np.linalg.norm(x), tiny)) @ a.T)
    x = a @ a[np.argmax(rows), :]
    return largest * np.linalg.norm(a.T @ (x / max(np.linalg.norm(x), tiny)))


def _kron_diagonal_sides(shape, memory_save_mode):
    """Which sides pytorch-optimizer's memory_save_mode makes diagonal."""
    largest = int(np.argsort(shape)[::-1][0])
    if memory_save_mode == "one_diag":
        return [k == largest for k in range(len(shape))]
    if memory_save_mode == "smart_one_diag":
        return [len(shape) >= 2 and sorted(shape)[-1] > sorted(shape)[-2] and k == largest for k in range(len(shape))]
    return [memory_save_mode == "all_diag"] * len(shape)


def psgd_kron(params, grad, state, t, lr, momentum, weight_decay, weight_decouple, pre_conditioner_update_probability,
              max_size_triangular, min_ndim_triangular, memory_save_mode, momentum_into_precondition_update,
              precondition_lr, precondition_init_scale, balance_prob, maximize, seed, layout=None):
    shapes = [shape for _, shape in _tensors(params, layout)]
    if t == 1:
        state["momentum_buffer"] = np.zeros_like(params)
        state["update_counter"] = 0
        state["factors"] = []
        for shape in shapes:
            scale = precondition_init_scale ** (1 / len(shape))
            diagonal = _kron_diagonal_sides(shape, memory_save_mode)
            state["factors"].append([
                scale * np.ones(side, params.dtype)
                if side == 1 or side > max_size_triangular or len(shape) < min_ndim_triangular or diagonal[k]
                else scale * np.eye(side, dtype=params.dtype) for k, side in enumerate(shape)])
    if pre_conditioner_update_probability is None:  # the default schedule, in float32 as torch computes it
        probability = np.float32(np.exp(np.float32(-0.001) * (np.float32(t - 1) - np.float32(500.0))))
        probability = np.clip(probability, np.float32(0.03), np.float32(1.0))
        threshold = np.float32(1.0) / probability
    else:
        probability = pre_conditioner_update_probability
        threshold = 1.0 / probability
    counter = state["update_counter"] + 1
    update = bool(probability > 0 and counter >= threshold)
    state["update_counter"] = 0 if update else counter
    balance = kron_draws(seed, t, 0, 0)[0] < balance_prob and update
    for tensor, ((start, shape), factors) in enumerate(zip(_tensors(params, layout), state["factors"])):
        span = slice(start, start + int(np.prod(shape)))
        theta, g = params[span].reshape(shape), (-1 if maximize else 1) * grad[span].reshape(shape)
        matrix = len(shape) == 2
        if matrix and not weight_decouple:
            g = g + weight_decay * theta
        buffer = state["momentum_buffer"][span]
        buffer[:] = momentum * buffer + (1 - momentum) * g.ravel()
        debiased = buffer.reshape(shape) / (1 - momentum**t)
        if matrix and balance:
            norms = [np.abs(q).max() for q in factors]
            mean = np.sqrt(norms[0] * norms[1])
            factors[:] = [q * (mean / norm) for q, norm in zip(factors, norms)]
        # a vector is a column: its one factor is the left one
        column = debiased if matrix else debiased[:, None]
        sides = factors if matrix else [factors[0], np.ones(1, params.dtype)]
        if update:
            target = column if momentum_into_precondition_update else (g if matrix else g[:, None])
            probe = kron_draws(seed, t, tensor, int(np.prod(shape)))[1].reshape(column.shape).astype(params.dtype)
            left, right = sides
            a = (left @ target if left.ndim == 2 else left[:, None] * target)
            a = a @ right.T if right.ndim == 2 else a * right
            b = np.linalg.solve(left.T, probe) if left.ndim == 2 else probe / left[:, None]
            b = np.linalg.solve(right.T, b.T).T if right.ndim == 2 else b / right
            updated = []
            for side, q in enumerate(factors):
                if q.ndim == 2:
                    t1, t2 = (a @ a.T, b @ b.T) if side == 0 else (a.T @ a, b.T @ b)
                    change = np.triu((t1 - t2) * precondition_lr) / (_kron_lower_bound(t1 + t2) + 2.0**-126)
                    updated.append(q - change @ q)
                else:
                    t1, t2 = (a * a).sum(axis=1 - side), (b * b).sum(axis=1 - side)
                    updated.append(q - (t1 - t2) * precondition_lr * q / (np.abs(t1 + t2).max() + 2.0**-126))
            factors[:] = updated
            sides = factors if matrix else [factors[0], np.ones(1, params.dtype)]
        left, right = sides
        preconditioned = left.T @ (left @ column) if left.ndim == 2 else left[:, None] ** 2 * column
        if matrix:
            preconditioned = (preconditioned @ right.T) @ right if right.ndim == 2 else preconditioned * right**2
        preconditioned = preconditioned * min(1.1 / (np.sqrt(np.mean(preconditioned**2)) + 1e-6), 1.0)
        if matrix and weight_decouple:
            preconditioned = preconditioned + weight_decay * theta
        params[span] -= lr * preconditioned.ravel()
    # fastgd's auxiliary state: a square block per side (side² entries, a diagonal factor in its first ones)
    blocks = []
    for shape, factors in zip(shapes, state["factors"]):
        for side, q in zip(shape, factors):
            block = np.zeros(side * side if side <= 8192 else side, params.dtype)
            block[:q.size] = q.ravel()
            blocks.append(block)
    state["aux"] = np.concatenate(blocks)

# Where a rule that trains at one point evaluates the model: (params, state, hyperparameters) -> params.
EVALUATION = {
    "asgd": lambda params, state, hp: state["ax"],
    "schedule_free_adamw": lambda params, state, hp: params + (1 - 1 / hp["betas"][0]) * (state["z"] - params),
}


RULES = {
    "sgd": sgd, "momentum": sgd, "nesterov": sgd, "adagrad": adagrad, "rmsprop": rmsprop, "adadelta": adadelta,
    "adam": adam, "amsgrad": adam, "adamax": adamax, "nadam": nadam, "adamw": adamw, "lion": lion, "radam": radam,
    "rprop": rprop, "asgd": asgd, "schedule_free_adamw": schedule_free_adamw, "lamb": lamb, "adafactor": adafactor,
    "muon": muon, "adopt": adopt, "adan": adan, "prodigy": prodigy, "dadapt_adam": dadapt_adam,
    "shampoo": shampoo, "soap": soap,
    "psgd_kron": psgd_kron,
}


def register(name, function, defaults):
    """Add a user's NumPy version of rule ``name``: ``function(params, grad, state, t, **hyperparameters)``.

    ``fastgd.rules.register`` calls this for a rule declared with
    ``reference=``; the oracle then covers it as it covers the built-ins.
    """
    RULES[name] = function
    DEFAULTS[name] = dict(defaults)


def unregister(name):
    """Remove a user's NumPy version of rule ``name`` (its rule was removed, or replaced by one without)."""
    RULES.pop(name, None)
    DEFAULTS.pop(name, None)


class ReferenceOptimizer:
    """The rule ``name`` over the 1-D array ``params``, updated in place by :meth:`step`.

    Hyperparameters not given take FORMULAS.md's defaults. ``state`` holds the
    rule's state arrays under torch's names, ``t`` the number of steps taken.
    """

    def __init__(self, name, params, layout=None, **hyperparameters):
        if name not in RULES:
            raise ValueError(f"no NumPy reference for rule {name!r}; there is one for {sorted(RULES)}")
        unknown = set(hyperparameters) - set(DEFAULTS[name])
        if unknown:
            raise TypeError(f"unknown hyperparameters for {name}: {sorted(unknown)}")
        self.name = name
        self.params = params
        self.layout = layout
        self.hyperparameters = dict(DEFAULTS[name], **hyperparameters)
        self.state = {}
        self.t = 0
        self._function = RULES[name]
        # rules that act per tensor take the layout (the shapes the flat vector holds); looked up once, not per
        # step: inspect.signature costs as much as a NumPy step of a thousand parameters
        parameters = inspect.signature(self._function).parameters
        self._extra = {"layout": layout} if "layout" in parameters else {}
        # a rule with a closure (SAM) evaluates the gradient again: step(grad, closure=...)
        self.takes_closure = "closure" in parameters
        # a rule that takes the batch's loss (a Polyak step): step(grad, loss=...)
        self.takes_loss = "loss" in parameters

    def evaluation_params(self):
        """Where the model is evaluated: params, or the rule's evaluation point (:data:`EVALUATION`)."""
        if self.name not in EVALUATION or self.t == 0:
            return self.params
        return EVALUATION[self.name](self.params, self.state, self.hyperparameters)

    def step(self, grad, closure=None, loss=None):
        """One step with ``grad`` at params; a rule with a closure needs ``closure()`` → (loss, grad) at params, a rule
        that takes the loss ``loss``, the loss at params."""
        extra = self._extra
        if self.takes_closure:
            if closure is None:
                raise TypeError(f"the NumPy {self.name} evaluates the gradient again: step(grad, closure=...)")
            extra = dict(extra, closure=closure)
        if self.takes_loss:
            if loss is None:
                raise TypeError(f"the NumPy {self.name} takes the loss: step(grad, loss=...)")
            extra = dict(extra, loss=float(loss))
        self.t += 1
        self._function(self.params, grad, self.state, self.t, **self.hyperparameters, **extra)


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


def mlp_layout(layer_sizes):
    """The shapes θ holds: every weight matrix, then every bias vector."""
    return [(n_in, n_out) for n_in, n_out in zip(layer_sizes, layer_sizes[1:])] + [(n,) for n in layer_sizes[1:]]


def train_mlp(theta, X, Y, layer_sizes, activation, output, alpha, rule, hyperparameters, batch_size,
              n_epochs, seed, shuffle=True, schedule=None, clip_norm=None):
    """Plain mini-batch training; returns the mean batch loss of every epoch.

    ``schedule(epoch, step)`` gives the learning rate of an update step
    (1-based); constant by default. θ is updated in place.
    """
    optimizer = ReferenceOptimizer(rule, theta, layout=mlp_layout(layer_sizes), **hyperparameters)
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
            if optimizer.takes_closure:  # the same batch at the closure's point
                optimizer.step(grad, closure=lambda rows=rows: mlp_loss_grad(theta, X[rows], Y[rows], layer_sizes,
                                                                             activation, output, alpha), loss=loss)
            else:
                optimizer.step(grad, loss=loss)
        if rule in EVALUATION:  # the loss where the model is evaluated, over the whole set
            total = mlp_loss_grad(optimizer.evaluation_params(), X, Y, layer_sizes, activation, output, alpha)[0] * n
        losses.append(total / n)
    return losses


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """torch's ``_cubic_interpolate``, line for line."""
    xmin_bound, xmax_bound = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = np.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """torch's ``_strong_wolfe`` over NumPy vectors, line for line: (f_new, g_new, t, evaluations)."""
    d_norm = np.abs(d).max()
    g = g.copy()
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = g_new @ d
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f, bracket_g = [t_prev, t], [f_prev, f_new], [g_prev, g_new.copy()]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f, bracket_g = [t_prev, t], [f_prev, f_new], [g_prev, g_new.copy()]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new.copy(), gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = g_new @ d
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) else min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = g_new @ d
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new.copy(), gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos], bracket_gtd[high_pos] = bracket_g[low_pos], bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new.copy(), gtd_new
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


class ReferenceLBFGS:
    """``torch.optim.LBFGS`` over a flat NumPy vector, its ``step`` transcribed line for line with lists for the
    history; the closure returns ``(loss, grad)`` at ``params`` (see :class:`fastgd.optim.LBFGS`)."""

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100, line_search_fn=None):
        self.params = params
        self.lr, self.max_iter = lr, max_iter
        self.max_eval = max_iter * 5 // 4 if max_eval is None else max_eval
        self.tolerance_grad, self.tolerance_change = tolerance_grad, tolerance_change
        self.history_size, self.line_search_fn = history_size, line_search_fn
        self.state = {"func_evals": 0, "n_iter": 0}

    def _evaluate(self, closure):
        loss, grad = closure()
        return float(loss), np.array(grad, dtype=self.params.dtype)

    def _directional_evaluate(self, closure, x, t, d):
        self.params += t * d
        loss, flat_grad = self._evaluate(closure)
        self.params[...] = x
        return loss, flat_grad

    def step(self, closure):
        state = self.state
        loss, flat_grad = self._evaluate(closure)
        orig_loss = loss
        current_evals = 1
        state["func_evals"] += 1
        if np.abs(flat_grad).max() <= self.tolerance_grad:
            return orig_loss
        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        H_diag, prev_flat_grad, prev_loss = state.get("H_diag"), state.get("prev_flat_grad"), state.get("prev_loss")
        n_iter = 0
        while n_iter < self.max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = y @ s
                if ys > 1e-10:
                    if len(old_dirs) == self.history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / (y @ y)
                num_old = len(old_dirs)
                al = [None] * num_old
                q = -flat_grad
                for i in range(num_old - 1, -1, -1):
                    al[i] = (old_stps[i] @ q) * ro[i]
                    q = q - al[i] * old_dirs[i]
                d = r = q * H_diag
                for i in range(num_old):
                    be_i = (old_dirs[i] @ r) * ro[i]
                    r += (al[i] - be_i) * old_stps[i]
            prev_flat_grad = flat_grad.copy()
            prev_loss = loss
            t = min(1.0, 1.0 / np.abs(flat_grad).sum()) * self.lr if state["n_iter"] == 1 else self.lr
            gtd = flat_grad @ d
            if gtd > -self.tolerance_change:
                break
            ls_func_evals = 0
            if self.line_search_fn == "strong_wolfe":
                x_init = self.params.copy()
                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    lambda x, t, d: self._directional_evaluate(closure, x, t, d), x_init, t, d, loss, flat_grad, gtd,
                    max_ls=self.max_eval - current_evals)
                self.params += t * d
                opt_cond = np.abs(flat_grad).max() <= self.tolerance_grad
            else:
                self.params += t * d
                if n_iter != self.max_iter:
                    loss, flat_grad = self._evaluate(closure)
                    opt_cond = np.abs(flat_grad).max() <= self.tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals
            if n_iter == self.max_iter or current_evals >= self.max_eval or opt_cond:
                break
            if np.abs(d * t).max() <= self.tolerance_change or abs(loss - prev_loss) < self.tolerance_change:
                break
        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss


# --- closures: a second gradient at another point --------------------------------------------------

def sam_over(base):
    """SAM (pytorch-optimizer's ``SAM``) over the NumPy rule ``base``: a reference taking ``closure``.

    θ' = θ + s·g (adaptive: θ + s·θ²·g) with s = ρ / (‖g‖ + ε) (adaptive: the norm of |θ|·g), the gradient
    again at θ' from ``closure()``, θ restored, then ``base``'s step with that gradient.
    """
    def sam(params, grad, state, t, rho, adaptive, perturb_eps, closure, **hyperparameters):
        weighted = grad * np.abs(params) if adaptive else grad
        norm = np.sqrt(np.sum(weighted.astype(np.float64) ** 2)) + perturb_eps
        scale = params.dtype.type(rho / norm)
        old = params.copy()
        params += (params * params * grad if adaptive else grad) * scale
        _, ascended = closure()
        params[...] = old
        base(params, np.asarray(ascended, dtype=params.dtype), state, t, **hyperparameters)

    sam.__name__ = f"sam_{base.__name__}"
    return sam


# --- the loss as an input (Polyak steps) ------------------------------------------------------------

def alig(params, grad, state, t, lr, momentum, adjusted_momentum, loss):
    """AliG (pytorch-optimizer's ``AliG``, Berrada et al. 2020): SGD at the Polyak step min(loss / (‖g‖² + 1e-6), γ),
    γ its ``max_lr``, with its momentum (``adjusted_momentum``: torch-like)."""
    step_size = min(loss / (float(np.sum(grad.astype(np.float64) ** 2)) + 1e-6), lr)
    step_size = params.dtype.type(step_size)
    params -= step_size * grad
    if momentum > 0:
        buffer = state.setdefault("momentum_buffer", np.zeros_like(params))
        momentum = params.dtype.type(momentum)
        if adjusted_momentum:
            buffer[...] = buffer * momentum - grad
            params += step_size * momentum * buffer
        else:
            buffer[...] = buffer * momentum - step_size * grad
            params += momentum * buffer
