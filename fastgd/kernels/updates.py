r"""The math of every built-in rule for one parameter, and what each computes once per step.

``*_element(param, grad, ...)``
    One parameter's update, a function of scalars returning the new
    parameter and the new state values. The rule declarations of
    :mod:`fastgd.rules.builtin` bind its arguments by name (state slots,
    hyperparameter scalars, per-step scalars, flags); the loops over the
    vector, for the CPU and for CUDA, are generated from those declarations
    (:mod:`fastgd.rules.compile`). Written without literals and with no calls
    but ``math.sqrt`` and ``abs``: every scalar already has the parameter's
    dtype, so float32 stays float32, and the same source compiles for the GPU.
    Weight decay is not here: the declarations compose it (coupled g ← g + λθ
    or decoupled θ ← θ(1 − γλ)) around the element.
``*_step``
    What a rule derives from the step count t (1 for the first step) and its
    hyperparameters, in float64, before the element pass: bias corrections,
    decayed rates, and 1 − β computed in float64 as torch computes them.

The vector kernels themselves (``fastgd.kernels.adam`` ...) are generated per
rule; see :mod:`fastgd.kernels`.
"""

import math

from fastgd._config import jit

__all__ = ["sgd_element", "adagrad_element", "rmsprop_element", "adadelta_element", "adam_element",
           "adamax_element", "nadam_element", "lion_element", "sgd_step", "adagrad_step", "one_minus_alpha_step",
           "one_minus_rho_step", "adam_step", "adamax_step", "nadam_step", "lion_step"]


# --- one parameter -----------------------------------------------------------------------------

@jit(inline=True)
def sgd_element(param, grad, momentum_buffer, first_step, lr, momentum, one_minus_dampening, use_momentum, nesterov):
    if not use_momentum:
        return param - lr * grad, momentum_buffer
    if first_step:
        buffer = grad
    else:
        buffer = momentum * momentum_buffer + one_minus_dampening * grad
    if nesterov:
        direction = grad + momentum * buffer
    else:
        direction = buffer
    return param - lr * direction, buffer


@jit(inline=True)
def adagrad_element(param, grad, sum, clr, eps):
    sum = sum + grad * grad
    return param - clr * grad / (math.sqrt(sum) + eps), sum


@jit(inline=True)
def rmsprop_element(param, grad, square_avg, momentum_buffer, grad_avg, lr, alpha, one_minus_alpha, eps, momentum,
                    centered, use_momentum):
    square_avg = alpha * square_avg + one_minus_alpha * grad * grad
    if centered:
        grad_avg = alpha * grad_avg + one_minus_alpha * grad
        avg = math.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = math.sqrt(square_avg) + eps
    if use_momentum:
        momentum_buffer = momentum * momentum_buffer + grad / avg
        param = param - lr * momentum_buffer
    else:
        param = param - lr * grad / avg
    return param, square_avg, momentum_buffer, grad_avg


@jit(inline=True)
def adadelta_element(param, grad, square_avg, acc_delta, lr, rho, one_minus_rho, eps):
    square_avg = rho * square_avg + one_minus_rho * grad * grad
    delta = math.sqrt(acc_delta + eps) / math.sqrt(square_avg + eps) * grad
    acc_delta = rho * acc_delta + one_minus_rho * delta * delta
    return param - lr * delta, square_avg, acc_delta


@jit(inline=True)
def adam_element(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, beta1, one_minus_beta1, beta2, one_minus_beta2,
                 eps, step_size, bias_correction2_sqrt, amsgrad):
    exp_avg = beta1 * exp_avg + one_minus_beta1 * grad
    exp_avg_sq = beta2 * exp_avg_sq + one_minus_beta2 * grad * grad
    if amsgrad:
        # written out rather than max(): a NaN must propagate, as torch.maximum does
        if not exp_avg_sq <= max_exp_avg_sq:
            max_exp_avg_sq = exp_avg_sq
        second_moment = max_exp_avg_sq
    else:
        second_moment = exp_avg_sq
    denom = math.sqrt(second_moment) / bias_correction2_sqrt + eps
    return param - step_size * exp_avg / denom, exp_avg, exp_avg_sq, max_exp_avg_sq


@jit(inline=True)
def adamax_element(param, grad, exp_avg, exp_inf, beta1, one_minus_beta1, beta2, eps, clr):
    exp_avg = beta1 * exp_avg + one_minus_beta1 * grad
    decayed = beta2 * exp_inf
    magnitude = abs(grad) + eps
    exp_inf = decayed if decayed > magnitude or decayed != decayed else magnitude
    return param - clr * exp_avg / exp_inf, exp_avg, exp_inf


@jit(inline=True)
def nadam_element(param, grad, exp_avg, exp_avg_sq, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                  bias_correction2, grad_coefficient, exp_avg_coefficient):
    exp_avg = beta1 * exp_avg + one_minus_beta1 * grad
    exp_avg_sq = beta2 * exp_avg_sq + one_minus_beta2 * grad * grad
    denom = math.sqrt(exp_avg_sq / bias_correction2) + eps
    param = param - grad_coefficient * grad / denom
    return param - exp_avg_coefficient * exp_avg / denom, exp_avg, exp_avg_sq


@jit(inline=True)
def lion_element(param, grad, exp_avg, lr, beta1, one_minus_beta1, beta2, one_minus_beta2):
    interpolated = beta1 * exp_avg + one_minus_beta1 * grad
    # lr * sign(c) without a literal: sign(0) = 0 and sign(NaN) = NaN as np.sign
    if interpolated > 0:
        signed_lr = lr
    elif interpolated < 0:
        signed_lr = -lr
    else:
        signed_lr = lr * interpolated
    return param - signed_lr, beta2 * exp_avg + one_minus_beta2 * grad


# --- once per step ---------------------------------------------------------------------------

@jit(inline=True)
def sgd_step(step, dampening):
    """(first step?, 1 − τ): the momentum buffer starts as the gradient itself."""
    return step == 1, 1.0 - dampening


@jit(inline=True)
def adagrad_step(step, lr, lr_decay):
    """Decayed learning rate γ / (1 + (t − 1) η)."""
    return lr / (1.0 + (step - 1) * lr_decay)


@jit(inline=True)
def one_minus_alpha_step(alpha):
    return 1.0 - alpha


@jit(inline=True)
def one_minus_rho_step(rho):
    return 1.0 - rho


@jit(inline=True)
def adam_step(step, lr, beta1, beta2):
    """(step size γ / (1 − β1ᵗ), √(1 − β2ᵗ), 1 − β1, 1 − β2)."""
    return lr / (1.0 - beta1 ** step), math.sqrt(1.0 - beta2 ** step), 1.0 - beta1, 1.0 - beta2


@jit(inline=True)
def adamax_step(step, lr, beta1):
    """(step size γ / (1 − β1ᵗ), 1 − β1)."""
    return lr / (1.0 - beta1 ** step), 1.0 - beta1


@jit(inline=True)
def nadam_step(step, mu_product, lr, beta1, beta2, momentum_decay):
    """(Πₜ, 1 − β2ᵗ, coefficient of g, coefficient of m, 1 − β1, 1 − β2) from Πₜ₋₁ = ``mu_product``."""
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    mu_product = mu_product * mu
    grad_coefficient = lr * (1.0 - mu) / (1.0 - mu_product)
    exp_avg_coefficient = lr * mu_next / (1.0 - mu_product * mu_next)
    return mu_product, 1.0 - beta2 ** step, grad_coefficient, exp_avg_coefficient, 1.0 - beta1, 1.0 - beta2


@jit(inline=True)
def lion_step(beta1, beta2):
    """(1 − β1, 1 − β2)."""
    return 1.0 - beta1, 1.0 - beta2
