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

``*_sums``, ``*_finish``
    For the rules that sum over every parameter first (Prodigy, D-Adaptation
    Adam, Adan's global-norm clipping): one parameter's terms, and the float64
    scalars made from the sums (the distance estimate d).
``*_tensor``
    For the rules that act per tensor (LAMB, Adafactor, Muon): one tensor's
    update, over 1-D views of its span of the flat vector (row-major for a
    weight matrix), with the norms, row and column statistics or matrix
    function the rule needs; ``*_aux_size`` says how much auxiliary state
    (factored moments, scratch) a tensor of a given shape takes.

The vector kernels themselves (``fastgd.rules.kernels.adam`` ...) are generated per
rule; see :mod:`fastgd.rules.kernels`.
"""

import math

from fastgd._config import jit
from fastgd.kernels.blas import gemm

__all__ = ["sgd_element", "adagrad_element", "rmsprop_element", "adadelta_element", "adam_element",
           "adamax_element", "nadam_element", "lion_element", "radam_element", "rprop_element", "asgd_element",
           "asgd_evaluation", "schedule_free_element", "schedule_free_evaluation", "muon_vector_element",
           "sgd_step", "adagrad_step", "one_minus_alpha_step", "one_minus_rho_step", "adam_step", "adamax_step",
           "nadam_step", "lion_step", "radam_step", "rprop_step", "asgd_step", "schedule_free_step",
           "schedule_free_evaluation_weight", "lamb_step", "adafactor_step", "muon_step", "lamb_tensor",
           "adafactor_tensor", "adafactor_aux_size", "muon_tensor", "muon_aux_size", "adopt_step", "adopt_element",
           "adan_step", "adan_grad_squares", "adan_clip", "adan_element", "prodigy_step", "prodigy_sums",
           "prodigy_finish", "prodigy_element", "dadapt_adam_step", "dadapt_adam_sums", "dadapt_adam_finish",
           "dadapt_adam_element", "sam_norm_terms", "sam_scale", "sam_ascent",
           "squared_grad", "alig_step_size", "alig_element"]


# --- one parameter -----------------------------------------------------------------------------

@jit(inline=True)
def sgd_element(param, grad, momentum_buffer, first_step, lr, momentum, one_minus_dampening, use_momentum, nesterov):
    """SGD's update of one parameter: plain, with momentum, or Nesterov's (torch.optim.SGD); returns (param, buffer)."""
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
    """Adagrad's update of one parameter at the decayed rate ``clr``; returns (param, sum of squares)."""
    sum = sum + grad * grad
    return param - clr * grad / (math.sqrt(sum) + eps), sum


@jit(inline=True)
def rmsprop_element(param, grad, square_avg, momentum_buffer, grad_avg, lr, alpha, one_minus_alpha, eps, momentum,
                    centered, use_momentum):
    """RMSprop's update of one parameter, centred and with momentum as flagged; returns (param, *state)."""
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
    """Adadelta's update of one parameter; returns (param, square_avg, acc_delta)."""
    square_avg = rho * square_avg + one_minus_rho * grad * grad
    delta = math.sqrt(acc_delta + eps) / math.sqrt(square_avg + eps) * grad
    acc_delta = rho * acc_delta + one_minus_rho * delta * delta
    return param - lr * delta, square_avg, acc_delta


@jit(inline=True)
def adam_element(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, beta1, one_minus_beta1, beta2, one_minus_beta2,
                 eps, step_size, bias_correction2_sqrt, amsgrad):
    """Adam's (or AMSGrad's) update of one parameter, the bias corrections given; returns (param, *state)."""
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
    """Adamax's update of one parameter with the infinity norm; returns (param, exp_avg, exp_inf)."""
    exp_avg = beta1 * exp_avg + one_minus_beta1 * grad
    decayed = beta2 * exp_inf
    magnitude = abs(grad) + eps
    exp_inf = decayed if decayed > magnitude or decayed != decayed else magnitude
    return param - clr * exp_avg / exp_inf, exp_avg, exp_inf


@jit(inline=True)
def nadam_element(param, grad, exp_avg, exp_avg_sq, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                  bias_correction2, grad_coefficient, exp_avg_coefficient):
    """NAdam's update of one parameter, its momentum coefficients given; returns (param, *state)."""
    exp_avg = beta1 * exp_avg + one_minus_beta1 * grad
    exp_avg_sq = beta2 * exp_avg_sq + one_minus_beta2 * grad * grad
    denom = math.sqrt(exp_avg_sq / bias_correction2) + eps
    param = param - grad_coefficient * grad / denom
    return param - exp_avg_coefficient * exp_avg / denom, exp_avg, exp_avg_sq


@jit(inline=True)
def lion_element(param, grad, exp_avg, lr, beta1, one_minus_beta1, beta2, one_minus_beta2):
    """Lion's update of one parameter: the sign of the interpolated momentum; returns (param, exp_avg)."""
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
    """Per step: 1 − alpha, so that no element function writes a literal."""
    return 1.0 - alpha


@jit(inline=True)
def one_minus_rho_step(rho):
    """Per step: 1 − rho, so that no element function writes a literal."""
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


# --- the rules torch.optim 2.13 has beyond the lecture's, and those it lacks -------------------

@jit(inline=True)
def radam_element(param, grad, exp_avg, exp_avg_sq, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, lr,
                  bias_correction1, sqrt_bias_correction2, rectification, rectify):
    """RAdam's update of one parameter, rectified once the variance is tractable; returns (param, *state)."""
    exp_avg = beta1 * exp_avg + one_minus_beta1 * grad
    exp_avg_sq = beta2 * exp_avg_sq + one_minus_beta2 * grad * grad
    corrected = exp_avg / bias_correction1
    if rectify:
        adaptive = sqrt_bias_correction2 / (math.sqrt(exp_avg_sq) + eps)
        return param - corrected * lr * adaptive * rectification, exp_avg, exp_avg_sq
    return param - corrected * lr, exp_avg, exp_avg_sq


@jit(inline=True)
def radam_step(step, beta1, beta2):
    """(1 − β1ᵗ, √(1 − β2ᵗ), the rectification r_t, ρ_t > 5?, 1 − β1, 1 − β2)."""
    bias_correction2 = 1.0 - beta2 ** step
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho = rho_inf - 2.0 * step * beta2 ** step / bias_correction2
    rectify = rho > 5.0
    rectification = 1.0
    if rectify:
        rectification = math.sqrt((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
    return (1.0 - beta1 ** step, math.sqrt(bias_correction2), rectification, rectify, 1.0 - beta1,
            1.0 - beta2)


@jit(inline=True)
def rprop_element(param, grad, prev, step_size, etaminus, etaplus, step_size_min, step_size_max, zero, one):
    """Rprop's update of one parameter from the sign of grad·prev; returns (param, prev, step_size)."""
    product = grad * prev
    if product > zero:
        factor = etaplus
    elif product < zero:
        factor = etaminus
    elif product == zero:
        factor = one
    else:
        factor = product  # NaN, as torch's sign of NaN
    step_size = step_size * factor
    if step_size < step_size_min:
        step_size = step_size_min
    if step_size > step_size_max:
        step_size = step_size_max
    if product < zero:
        grad = zero  # the sign flipped: no move now, and no sign change seen at the next step
    if grad > zero:
        param = param - step_size
    elif grad < zero:
        param = param + step_size
    elif grad != zero:
        param = param - grad * step_size  # NaN propagates
    return param, grad, step_size


@jit(inline=True)
def rprop_step():
    """(0, 1) in the parameters' dtype: Rprop's element compares and resets without literals."""
    return 0.0, 1.0


@jit(inline=True)
def asgd_element(param, grad, ax, eta, decay, mu, averaging):
    """ASGD's update of one parameter and of its running average ``ax``; returns (param, ax)."""
    param = param * decay
    param = param - eta * grad
    if averaging:
        ax = ax + (param - ax) * mu
    else:
        ax = param
    return param, ax


@jit(inline=True)
def asgd_evaluation(param, ax):
    """ASGD's evaluation point of one parameter: its running average."""
    return ax


@jit(inline=True)
def asgd_step(step, lr, lambd, alpha, t0):
    """(η_t, 1 − λη_t, μ_t, μ_t ≠ 1?): η and μ of the previous step's end, as torch stores them."""
    eta = lr / (1.0 + lambd * lr * (step - 1)) ** alpha
    mu = 1.0 / max(1.0, step - 1 - t0)
    return eta, 1.0 - lambd * eta, mu, mu != 1.0


@jit(inline=True)
def schedule_free_element(param, grad, z, exp_avg_sq, beta2, one_minus_beta2, eps, weight_decay, bias_correction2,
                          ckp1, adaptive_y_lr, scheduled_lr):
    """Schedule-Free AdamW's update of one training point y and its z; returns (param, z, exp_avg_sq)."""
    exp_avg_sq = exp_avg_sq * beta2 + one_minus_beta2 * grad * grad
    normalized = grad / (math.sqrt(exp_avg_sq / bias_correction2) + eps)
    if weight_decay != 0:
        normalized = normalized + weight_decay * param  # at y, before y moves
    param = param + ckp1 * (z - param)
    param = param + adaptive_y_lr * normalized
    return param, z - scheduled_lr * normalized, exp_avg_sq


@jit(inline=True)
def schedule_free_step(step, lr, beta1, beta2, warmup_steps, r, weight_lr_power, lr_max, weight_sum):
    """(running max of γ, Σ weights, c_{t+1}, the y step, γ_t, 1 − β2ᵗ, 1 − β2), schedulefree's AdamW."""
    scheduled_lr = lr * (step / warmup_steps if step - 1 < warmup_steps else 1.0)
    lr_max = max(scheduled_lr, lr_max)
    weight = step ** r * lr_max ** weight_lr_power
    weight_sum = weight_sum + weight
    ckp1 = weight / weight_sum if weight_sum != 0.0 else 0.0
    adaptive_y_lr = scheduled_lr * (beta1 * (1.0 - ckp1) - 1.0)
    return lr_max, weight_sum, ckp1, adaptive_y_lr, scheduled_lr, 1.0 - beta2 ** step, 1.0 - beta2


@jit(inline=True)
def schedule_free_evaluation(param, z, evaluation_weight):
    """Schedule-Free AdamW's evaluation point x of one parameter, between y and z."""
    return param + evaluation_weight * (z - param)


@jit(inline=True)
def schedule_free_evaluation_weight(beta1):
    """x = y + (1 − 1/β1)(z − y): the evaluation point from the training point y."""
    return 1.0 - 1.0 / beta1


@jit(inline=True)
def lamb_step(step, lr, beta1, beta2, grad_averaging):
    """(γ / (1 − β1ᵗ), β3, 1 − β2): β3 = 1 − β1 with gradient averaging, else 1."""
    return lr / (1.0 - beta1 ** step), 1.0 - beta1 if grad_averaging else 1.0, 1.0 - beta2


@jit
def lamb_tensor(params, grad, exp_avg, exp_avg_sq, beta1, beta3, beta2, one_minus_beta2, eps, lamb_step_size, clamp,
                adam):
    """One tensor's LAMB step: Adam's direction, scaled by the trust ratio ‖θ‖ / ‖direction‖."""
    weight_squares, update_squares = 0.0, 0.0
    for i in range(params.size):
        exp_avg[i] = beta1 * exp_avg[i] + beta3 * grad[i]
        exp_avg_sq[i] = beta2 * exp_avg_sq[i] + one_minus_beta2 * grad[i] * grad[i]
        update = exp_avg[i] / (math.sqrt(exp_avg_sq[i]) + eps)
        weight_squares += float(params[i]) * float(params[i])
        update_squares += float(update) * float(update)
    weight_norm = min(math.sqrt(weight_squares), float(clamp))
    update_norm = math.sqrt(update_squares)
    trust_ratio = 1.0
    if weight_norm != 0.0 and update_norm != 0.0 and not adam:
        trust_ratio = weight_norm / (update_norm + float(eps))
    step_size = params.dtype.type(float(lamb_step_size) * trust_ratio)
    for i in range(params.size):
        params[i] = params[i] - step_size * (exp_avg[i] / (math.sqrt(exp_avg_sq[i]) + eps))


@jit(inline=True)
def adafactor_step(step, lr, beta2_decay, eps1, weight_decay, dtype_eps):
    """(1 − β2_t = t^decay, ρ_t = min(γ, 1/√t), ε₁ (the dtype's ε where it is None, NaN here), 1 − γλ)."""
    return step ** beta2_decay, min(lr, 1.0 / math.sqrt(step)), eps1 if eps1 == eps1 else dtype_eps, \
        1.0 - lr * weight_decay


@jit(inline=True)
def adafactor_aux_size(rows, columns, ndim):
    """Factored second moments: a row and a column factor per matrix, the full variance per vector."""
    return rows + columns if ndim == 2 else rows


@jit
def adafactor_tensor(params, grad, aux, rows, columns, ndim, one_minus_beta2_t, rho_t, epsilon1, eps2, d,
                     adafactor_decay):
    """One tensor's Adafactor step (torch.optim.Adafactor): factored for a matrix, full for a vector.

    The row and column of a matrix's entry come from the loops, not from a division and a remainder of the flat
    index, which the two passes over the update took per entry: the step on 100-256-256-10 took 19× Adam's (AMD
    EPYC Zen 4). Every sum keeps its order. No array is allocated: the same code compiles for the GPU."""
    n = params.size
    squares = 0.0
    for i in range(n):
        squares += float(params[i]) * float(params[i])
    alpha = max(float(eps2), math.sqrt(squares) / math.sqrt(n)) * float(rho_t)
    for i in range(n):
        params[i] = params[i] * adafactor_decay
    weight = one_minus_beta2_t
    floor = epsilon1 * epsilon1
    if ndim == 2:
        for i in range(rows):
            total = 0.0
            for j in range(columns):
                total += float(grad[i * columns + j]) * float(grad[i * columns + j])
            aux[i] = aux[i] + weight * (aux.dtype.type(total / columns) - aux[i])
        for j in range(columns):
            total = 0.0
            for i in range(rows):
                total += float(grad[i * columns + j]) * float(grad[i * columns + j])
            aux[rows + j] = aux[rows + j] + weight * (aux.dtype.type(total / rows) - aux[rows + j])
        row_mean = 0.0
        for i in range(rows):
            row_mean += float(aux[i])
        row_mean = aux.dtype.type(max(row_mean / rows, float(epsilon1)))
    else:
        for i in range(n):
            aux[i] = aux[i] + weight * (grad[i] * grad[i] - aux[i])
        row_mean = epsilon1
    # a vector as one row: its estimate is aux[j]
    n_rows, n_columns = (rows, columns) if ndim == 2 else (1, n)
    update_squares = 0.0
    for i in range(n_rows):
        for j in range(n_columns):
            estimate = aux[i] * aux[rows + j] / row_mean if ndim == 2 else aux[j]
            update = grad[i * n_columns + j] / math.sqrt(max(estimate, floor))
            update_squares += float(update) * float(update)
    step_size = params.dtype.type(alpha / max(1.0, math.sqrt(update_squares) / (math.sqrt(n) * float(d))))
    for i in range(n_rows):
        for j in range(n_columns):
            estimate = aux[i] * aux[rows + j] / row_mean if ndim == 2 else aux[j]
            params[i * n_columns + j] = params[i * n_columns + j] - step_size * (
                grad[i * n_columns + j] / math.sqrt(max(estimate, floor)))


@jit(inline=True)
def muon_step(step, lr, weight_decay, momentum, adamw_lr, adamw_beta1, adamw_beta2, adamw_weight_decay):
    """Muon's decay factor and 1 − μ; AdamW's (for the vectors) step size, √(1 − β2ᵗ), 1 − β1, 1 − β2, decay."""
    return (1.0 - lr * weight_decay, 1.0 - momentum, adamw_lr / (1.0 - adamw_beta1 ** step),
            math.sqrt(1.0 - adamw_beta2 ** step), 1.0 - adamw_beta1, 1.0 - adamw_beta2,
            1.0 - adamw_lr * adamw_weight_decay)


@jit(inline=True)
def muon_vector_element(param, grad, exp_avg, exp_avg_sq, adamw_beta1, adamw_one_minus_beta1, adamw_beta2,
                        adamw_one_minus_beta2, adamw_eps, adamw_step_size, adamw_bias_correction2_sqrt,
                        adamw_decay):
    # AdamW (torch.optim.AdamW) on the tensors that are not matrices, as Muon's reference usage pairs them
    """Muon's update of a parameter outside its matrices: AdamW's; returns (param, *state)."""
    param = param * adamw_decay
    exp_avg = adamw_beta1 * exp_avg + adamw_one_minus_beta1 * grad
    exp_avg_sq = adamw_beta2 * exp_avg_sq + adamw_one_minus_beta2 * grad * grad
    denom = math.sqrt(exp_avg_sq) / adamw_bias_correction2_sqrt + adamw_eps
    return param - adamw_step_size * exp_avg / denom, exp_avg, exp_avg_sq


@jit(inline=True)
def muon_aux_size(rows, columns, ndim):
    """Scratch for Newton–Schulz on a matrix: X and its successor (short × long), X Xᵀ and its polynomial."""
    if ndim != 2:
        return 0
    short, long = min(rows, columns), max(rows, columns)
    return 2 * short * long + 2 * short * short


@jit
def muon_tensor(params, grad, momentum_buffer, aux, rows, columns, lr, momentum, one_minus_momentum, nesterov, ns_a,
                ns_b, ns_c, eps, ns_steps, muon_decay, adjust_lr_fn_is_match_rms_adamw):
    """One weight matrix's Muon step: momentum, orthogonalised by Newton–Schulz, scaled to the shape."""
    n = params.size
    short, long = min(rows, columns), max(rows, columns)
    transposed = rows > columns
    x, successor, gram, polynomial = 0, short * long, 2 * short * long, 2 * short * long + short * short
    for i in range(n):
        params[i] = params[i] * muon_decay
        momentum_buffer[i] = momentum_buffer[i] + one_minus_momentum * (grad[i] - momentum_buffer[i])
        if nesterov:  # grad.lerp(buffer, μ), written as torch's lerp writes a weight ≥ 1/2
            update = momentum_buffer[i] - (momentum_buffer[i] - grad[i]) * one_minus_momentum
        else:
            update = momentum_buffer[i]
        row, column = i // columns, i % columns
        aux[x + (column * rows + row if transposed else i)] = update
    squares = 0.0
    for k in range(short * long):
        squares += float(aux[x + k]) * float(aux[x + k])
    scale = aux.dtype.type(1.0 / max(math.sqrt(squares), float(eps)))
    for k in range(short * long):
        aux[x + k] = aux[x + k] * scale
    for _ in range(int(ns_steps)):
        # A = X Xᵀ; B = b A + c A A; X ← a X + B X
        gemm(aux, x, aux, x, aux, gram, short, short, long, False, True, 1.0, 0.0)
        for k in range(short * short):
            aux[polynomial + k] = aux[gram + k]
        gemm(aux, gram, aux, gram, aux, polynomial, short, short, short, False, False, ns_c, ns_b)
        for k in range(short * long):
            aux[successor + k] = aux[x + k]
        gemm(aux, polynomial, aux, x, aux, successor, short, long, short, False, False, 1.0, ns_a)
        x, successor = successor, x
    if adjust_lr_fn_is_match_rms_adamw:
        ratio = 0.2 * math.sqrt(max(rows, columns))
    else:
        ratio = math.sqrt(max(1.0, rows / columns))
    step_size = params.dtype.type(float(lr) * ratio)
    for i in range(n):
        row, column = i // columns, i % columns
        params[i] = params[i] - step_size * aux[x + (column * rows + row if transposed else i)]


# --- ADOPT, Adan, Prodigy, D-Adaptation Adam (pytorch-optimizer's) ---------------------------------------------

@jit(inline=True)
def adopt_step(step, beta1, beta2):
    """(first step?, the clip ``step^¼``, 1 − β1, 1 − β2): ADOPT only accumulates v on its first step."""
    return step == 1, step ** 0.25, 1.0 - beta1, 1.0 - beta2


@jit(inline=True)
def adopt_element(param, grad, exp_avg, exp_avg_sq, lr, first_step, clip, one_minus_beta1, beta2, one_minus_beta2,
                  eps):
    """ADOPT's update of one parameter: the gradient normalised by the *previous* second moment, clipped, then
    averaged; returns (param, exp_avg, exp_avg_sq)."""
    if first_step:
        return param, exp_avg, exp_avg_sq + grad * grad
    denom = math.sqrt(exp_avg_sq)
    if denom < eps:
        denom = eps
    normed = grad / denom
    if normed > clip:
        normed = clip
    elif normed < -clip:
        normed = -clip
    exp_avg = exp_avg + one_minus_beta1 * (normed - exp_avg)
    return param - lr * exp_avg, exp_avg, exp_avg_sq * beta2 + one_minus_beta2 * grad * grad


@jit(inline=True)
def adan_step(step, lr, beta1, beta2, beta3):
    """(first step?, γ/(1 − β1ᵗ), γβ2/(1 − β2ᵗ), √(1 − β3ᵗ), 1 − β1, 1 − β2, 1 − β3)."""
    return (step == 1, lr / (1.0 - beta1 ** step), lr * beta2 / (1.0 - beta2 ** step), math.sqrt(1.0 - beta3 ** step),
            1.0 - beta1, 1.0 - beta2, 1.0 - beta3)


@jit(inline=True)
def adan_grad_squares(param, grad):
    """The term of the squared global gradient norm: g²."""
    return grad * grad


@jit(inline=True)
def adan_clip(grad_squares, max_grad_norm, eps, clip_global_norm):
    """The factor every gradient is scaled by: min(1, max_grad_norm / (‖g‖ + ε)), 1 without clipping."""
    if not clip_global_norm:
        return 1.0
    return min(max_grad_norm / (math.sqrt(grad_squares) + eps), 1.0)


@jit(inline=True)
def adan_element(param, grad, exp_avg, exp_avg_sq, exp_avg_diff, previous_grad, first_step, clip_factor, beta2,
                 beta3, one_minus_beta1, one_minus_beta2, one_minus_beta3, adan_bias_correction3_sqrt, eps,
                 adan_step_size, adan_diff_step_size):
    """Adan's update of one parameter; ``previous_grad`` holds −g_{t−1} (pytorch-optimizer's); returns (param,
    exp_avg, exp_avg_sq, exp_avg_diff, previous_grad)."""
    grad = grad * clip_factor
    if first_step:
        diff = grad - grad
    else:
        diff = previous_grad + grad
    exp_avg = exp_avg + one_minus_beta1 * (grad - exp_avg)
    exp_avg_diff = exp_avg_diff + one_minus_beta2 * (diff - exp_avg_diff)
    diff = diff * beta2 + grad
    exp_avg_sq = exp_avg_sq * beta3 + one_minus_beta3 * diff * diff
    denom = math.sqrt(exp_avg_sq) / adan_bias_correction3_sqrt + eps
    param = param - adan_step_size * exp_avg / denom
    param = param - adan_diff_step_size * exp_avg_diff / denom
    return param, exp_avg, exp_avg_sq, exp_avg_diff, -grad


@jit(inline=True)
def prodigy_step(step, lr, beta1, beta2, beta3, d0, d, d_max, d_numerator, weight_decay, bias_correction,
                 safeguard_warmup, fixed_decay):
    """Before the sums: d, d_max and the numerator (d₀, d₀, 0 at the first step; the numerator decayed by β3),
    β3 (√β2 where None), the step γd (bias-corrected if asked), the moments' weights and the decay factor."""
    if step == 1:
        d, d_max, d_numerator = d0, d0, 0.0
    s_decay = math.sqrt(beta2) if beta3 != beta3 else beta3
    correction = (1.0 - beta1 ** step) / math.sqrt(1.0 - beta2 ** step) if bias_correction else 1.0
    d_lr = d * lr / correction
    s_weight = (d / d0) * (d if safeguard_warmup else d_lr)
    decay = 1.0 - weight_decay * (1.0 if fixed_decay else d_lr)
    return (d, d_max, d_numerator * s_decay, s_decay, d_lr, d * (1.0 - beta1), d * d * (1.0 - beta2), s_weight,
            (d / d0) * d_lr, decay)


@jit(inline=True)
def prodigy_sums(param, grad, p0, s, s_decay, s_weight):
    """Prodigy's terms: g·(θ₀ − θ) for the numerator, |s_new| for the denominator (s_new as the element makes it)."""
    return grad * (p0 - param), abs(s * s_decay + s_weight * grad)


@jit(inline=True)
def prodigy_finish(d, d_max, d_numerator, d0, d_coef, growth_rate, numerator_weight, numerator_sum, s_sum):
    """The distance estimate: d̂ = d_coef·numerator/Σ|s|; d ← min(max(d_max, d̂), d·growth); returns (d, d_max,
    numerator, the estimate γd·d·ε's d, skip: Σ|s| = 0, where pytorch-optimizer leaves θ as it is)."""
    d_numerator = d_numerator + numerator_weight * numerator_sum
    if s_sum == 0.0:
        return d, d_max, d_numerator, d, True
    d_hat = d_coef * d_numerator / s_sum
    if d == d0:
        d = max(d, d_hat)
    d_max = max(d_max, d_hat)
    d = min(d_max, d * growth_rate)
    return d, d_max, d_numerator, d, False


@jit(inline=True)
def prodigy_element(param, grad, exp_avg, exp_avg_sq, s, beta1, beta2, s_decay, m_weight, v_weight, s_weight, d_lr,
                    d_new, eps, decay, skip):
    """Prodigy's update of one parameter: the moments weighted by d, then (unless skipped) the decoupled decay and
    Adam's step at γd with ε scaled by the new d; returns (param, exp_avg, exp_avg_sq, s)."""
    exp_avg = exp_avg * beta1 + m_weight * grad
    exp_avg_sq = exp_avg_sq * beta2 + v_weight * grad * grad
    s = s * s_decay + s_weight * grad
    if not skip:
        param = param * decay
        param = param - d_lr * exp_avg / (math.sqrt(exp_avg_sq) + d_new * eps)
    return param, exp_avg, exp_avg_sq, s


@jit(inline=True)
def dadapt_adam_step(step, lr, beta1, beta2, d0, d, weight_decay, bias_correction, fixed_decay):
    """Before the sums: d (d₀ at the first step), √β2, the step γd (bias-corrected if asked), the moments'
    weights, 1 − √β2 and the decoupled decay factor."""
    if step == 1:
        d = d0
    beta2_sqrt = math.sqrt(beta2)
    d_lr = d * lr
    if bias_correction:
        d_lr = d_lr / ((1.0 - beta1 ** step) / math.sqrt(1.0 - beta2 ** (step)))
    decay = 1.0 - weight_decay * (1.0 if fixed_decay else d_lr)
    return d, beta2_sqrt, d_lr, d_lr * (1.0 - beta1), 1.0 - beta2, d_lr * (1.0 - beta2_sqrt), 1.0 - beta2_sqrt, decay


@jit(inline=True)
def dadapt_adam_sums(param, grad, exp_avg_sq, s, eps, beta2_sqrt, s_weight, weight_decay, weight_decouple):
    """D-Adaptation Adam's terms: g·s/(√v + ε) with the old s and v, and |s_new|; g with coupled decay."""
    if not weight_decouple:
        grad = grad + weight_decay * param
    return grad * (s / (math.sqrt(exp_avg_sq) + eps)), abs(s * beta2_sqrt + s_weight * grad)


@jit(inline=True)
def dadapt_adam_finish(lr, d, numerator_weighted, d_lr, one_minus_beta2_sqrt, growth_rate, numerator_sum, s_sum):
    """The weighted numerator and the new d = max(d, min(d̂, d·growth)), d̂ = numerator / ((1 − √β2) Σ|s|);
    returns (d, numerator, skip: Σ|s| = 0, where pytorch-optimizer leaves θ as it is)."""
    if s_sum == 0.0:
        return d, numerator_weighted, True
    numerator_weighted = numerator_weighted + one_minus_beta2_sqrt * (d_lr * numerator_sum - numerator_weighted)
    if lr > 0.0:
        d_hat = numerator_weighted / (one_minus_beta2_sqrt * s_sum)
        d = max(d, min(d_hat, d * growth_rate))
    return d, numerator_weighted, False


@jit(inline=True)
def dadapt_adam_element(param, grad, exp_avg, exp_avg_sq, s, beta1, beta2, beta2_sqrt, m_weight, one_minus_beta2,
                        s_weight, eps, weight_decay, decay, weight_decouple, skip):
    """D-Adaptation Adam's update of one parameter: moments with γd folded into m, then (unless skipped) the decay
    and θ ← θ − m/(√v + ε); returns (param, exp_avg, exp_avg_sq, s)."""
    if not weight_decouple:
        grad = grad + weight_decay * param
    exp_avg = exp_avg * beta1 + m_weight * grad
    exp_avg_sq = exp_avg_sq * beta2 + one_minus_beta2 * grad * grad
    s = s * beta2_sqrt + s_weight * grad
    if not skip:
        if weight_decouple:
            param = param * decay
        param = param - exp_avg / (math.sqrt(exp_avg_sq) + eps)
    return param, exp_avg, exp_avg_sq, s


# --- closures: a second gradient at another point (SAM) ----------------------------------------

@jit(inline=True)
def sam_norm_terms(param, grad, adaptive):
    """One parameter's term of SAM's squared gradient norm: g², or (|θ|·g)² for adaptive SAM (ASAM)."""
    if adaptive:
        weighted = grad * abs(param)
        return weighted * weighted
    return grad * grad


@jit(inline=True)
def sam_scale(grad_norm_sq, rho, perturb_eps):
    """SAM's factor on the gradient, ρ / (‖g‖ + ε), in float64."""
    return rho / (math.sqrt(grad_norm_sq) + perturb_eps)


@jit(inline=True)
def sam_ascent(param, grad, scale, adaptive):
    """SAM's evaluation point of one parameter, θ + s·g, or θ + s·θ²·g (ASAM), in pytorch-optimizer's order."""
    if adaptive:
        return param + param * param * grad * scale
    return param + grad * scale


# --- the loss as an input: a Polyak step (AliG) ----------------------------------------------------

@jit(inline=True)
def squared_grad(param, grad):
    """One parameter's term of the squared gradient norm."""
    return grad * grad


@jit(inline=True)
def alig_step_size(grad_norm_sq, loss, lr):
    """AliG's step, min(loss / (‖g‖² + 10⁻⁶), γ), in float64 (pytorch-optimizer's constant)."""
    return min(loss / (grad_norm_sq + 1e-6), lr)


@jit(inline=True)
def alig_element(param, grad, momentum_buffer, step_size, momentum, use_momentum, adjusted_momentum):
    """AliG's update of one parameter: θ − ηg, then pytorch-optimizer's momentum (or its torch-like ``adjusted``)."""
    param = param - step_size * grad
    if not use_momentum:
        return param, momentum_buffer
    if adjusted_momentum:
        buffer = momentum_buffer * momentum - grad
        return param + step_size * momentum * buffer, buffer
    buffer = momentum_buffer * momentum - step_size * grad
    return param + momentum * buffer, buffer
