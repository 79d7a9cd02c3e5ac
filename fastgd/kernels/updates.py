r"""Compiled update rules: every rule of FORMULAS.md over one flat parameter vector.

Three layers, each used by the next:

``*_element``
    The math of one rule for one parameter, a function of scalars that returns
    the new scalars. Written without literals or calls other than ``math.sqrt``
    and ``abs``, so the same source compiles for the CPU (here) and for CUDA
    (``fastgd.cuda``): parity of the two targets by construction. Every scalar
    it receives already has the parameter's dtype, so float32 stays float32.
``*_step_scalars``
    What a rule needs once per step (bias corrections, step sizes), computed in
    float64 from the step count ``t`` (1 for the first step).
the kernels (``sgd``, ``momentum``, ..., ``lion``)
    Loops over the vector that update ``params`` and the state arrays in place.
    Each has a serial form and a multi-threaded ``*_parallel`` form with the
    same arguments; :mod:`fastgd.optim` picks one by size
    (``FASTGD_PARALLEL_THRESHOLD``). Hyperparameters are Python floats,
    ``step`` an int, flags bools.

The kernels check nothing: every array must be 1-D, of one dtype and of the
same length (state arrays a rule does not use may have length 0). The
optimizer classes validate before they call. From your own ``@njit`` code:

>>> import numpy as np
>>> from numba import njit
>>> from fastgd import kernels
>>> @njit
... def fit_quadratic(params, n_steps):
...     exp_avg = np.zeros_like(params)
...     exp_avg_sq = np.zeros_like(params)
...     for t in range(1, n_steps + 1):
...         grad = 2.0 * params                     # gradient of sum(params**2)
...         kernels.adam(params, grad, exp_avg, exp_avg_sq, t, 0.1, 0.9, 0.999, 1e-8, 0.0)
...     return params
>>> bool(np.all(np.abs(fit_quadratic(np.ones(3), 300)) < 0.05))
True
"""

import math

import numpy as np
from numba import prange

from fastgd._config import jit, jit_serial_and_parallel

RULES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam", "amsgrad", "adamax", "nadam",
         "adamw", "lion")
FAMILIES = ("sgd_momentum", "adam_family")
__all__ = [*RULES, *FAMILIES, *(name + "_parallel" for name in RULES + FAMILIES), "apply_rule"]


# --- one parameter: the math of every rule --------------------------------------------------

@jit(inline=True)
def sgd_element(param, grad, lr, weight_decay):
    if weight_decay != 0:
        grad = grad + weight_decay * param
    return param - lr * grad


@jit(inline=True)
def momentum_element(param, grad, buffer, first_step, lr, momentum, one_minus_dampening, weight_decay, nesterov):
    if weight_decay != 0:
        grad = grad + weight_decay * param
    if first_step:
        buffer = grad
    else:
        buffer = momentum * buffer + one_minus_dampening * grad
    if nesterov:
        direction = grad + momentum * buffer
    else:
        direction = buffer
    return param - lr * direction, buffer


@jit(inline=True)
def adagrad_element(param, grad, state_sum, clr, eps, weight_decay):
    if weight_decay != 0:
        grad = grad + weight_decay * param
    state_sum = state_sum + grad * grad
    return param - clr * grad / (math.sqrt(state_sum) + eps), state_sum


@jit(inline=True)
def rmsprop_element(param, grad, square_avg, buffer, grad_avg, lr, alpha, one_minus_alpha, eps, weight_decay,
                    momentum, centered, use_momentum):
    if weight_decay != 0:
        grad = grad + weight_decay * param
    square_avg = alpha * square_avg + one_minus_alpha * grad * grad
    if centered:
        grad_avg = alpha * grad_avg + one_minus_alpha * grad
        avg = math.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = math.sqrt(square_avg) + eps
    if use_momentum:
        buffer = momentum * buffer + grad / avg
        param = param - lr * buffer
    else:
        param = param - lr * grad / avg
    return param, square_avg, buffer, grad_avg


@jit(inline=True)
def adadelta_element(param, grad, square_avg, acc_delta, lr, rho, one_minus_rho, eps, weight_decay):
    if weight_decay != 0:
        grad = grad + weight_decay * param
    square_avg = rho * square_avg + one_minus_rho * grad * grad
    delta = math.sqrt(acc_delta + eps) / math.sqrt(square_avg + eps) * grad
    acc_delta = rho * acc_delta + one_minus_rho * delta * delta
    return param - lr * delta, square_avg, acc_delta


@jit(inline=True)
def adam_element(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, beta1, one_minus_beta1, beta2, one_minus_beta2,
                 eps, coupled_weight_decay, decay_factor, step_size, bias_correction2_sqrt, amsgrad):
    param = param * decay_factor
    if coupled_weight_decay != 0:
        grad = grad + coupled_weight_decay * param
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
def adamax_element(param, grad, exp_avg, exp_inf, beta1, one_minus_beta1, beta2, eps, weight_decay, clr):
    if weight_decay != 0:
        grad = grad + weight_decay * param
    exp_avg = beta1 * exp_avg + one_minus_beta1 * grad
    decayed = beta2 * exp_inf
    magnitude = abs(grad) + eps
    exp_inf = decayed if decayed > magnitude or decayed != decayed else magnitude
    return param - clr * exp_avg / exp_inf, exp_avg, exp_inf


@jit(inline=True)
def nadam_element(param, grad, exp_avg, exp_avg_sq, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                  weight_decay, bias_correction2, grad_coefficient, exp_avg_coefficient):
    if weight_decay != 0:
        grad = grad + weight_decay * param
    exp_avg = beta1 * exp_avg + one_minus_beta1 * grad
    exp_avg_sq = beta2 * exp_avg_sq + one_minus_beta2 * grad * grad
    denom = math.sqrt(exp_avg_sq / bias_correction2) + eps
    param = param - grad_coefficient * grad / denom
    return param - exp_avg_coefficient * exp_avg / denom, exp_avg, exp_avg_sq


@jit(inline=True)
def lion_element(param, grad, exp_avg, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay):
    interpolated = beta1 * exp_avg + one_minus_beta1 * grad
    # lr * sign(c) without a literal: sign(0) = 0 and sign(NaN) = NaN as np.sign
    if interpolated > 0:
        signed_lr = lr
    elif interpolated < 0:
        signed_lr = -lr
    else:
        signed_lr = lr * interpolated
    param = param - (signed_lr + lr * weight_decay * param)
    return param, beta2 * exp_avg + one_minus_beta2 * grad


# --- once per step: what the rules derive from the step count ------------------------------

@jit(inline=True)
def adagrad_step_scalars(step, lr, lr_decay):
    """Decayed learning rate γ / (1 + (t − 1) η)."""
    return lr / (1.0 + (step - 1) * lr_decay)


@jit(inline=True)
def adam_step_scalars(step, lr, beta1, beta2, weight_decay, decoupled_weight_decay):
    """(step size γ / (1 − β1ᵗ), √(1 − β2ᵗ), decoupled decay factor 1 − γλ, coupled λ)."""
    step_size = lr / (1.0 - beta1 ** step)
    bias_correction2_sqrt = math.sqrt(1.0 - beta2 ** step)
    if decoupled_weight_decay:
        return step_size, bias_correction2_sqrt, 1.0 - lr * weight_decay, 0.0
    return step_size, bias_correction2_sqrt, 1.0, weight_decay


@jit(inline=True)
def adamax_step_scalars(step, lr, beta1):
    """Step size γ / (1 − β1ᵗ)."""
    return lr / (1.0 - beta1 ** step)


@jit(inline=True)
def nadam_step_scalars(step, mu_product, lr, beta1, beta2, momentum_decay):
    """(Πₜ, 1 − β2ᵗ, coefficient of g, coefficient of m) from Πₜ₋₁ = ``mu_product``."""
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    mu_product = mu_product * mu
    grad_coefficient = lr * (1.0 - mu) / (1.0 - mu_product)
    exp_avg_coefficient = lr * mu_next / (1.0 - mu_product * mu_next)
    return mu_product, 1.0 - beta2 ** step, grad_coefficient, exp_avg_coefficient


# --- the vector kernels ---------------------------------------------------------------------

def sgd(params, grad, lr, weight_decay):
    r"""Gradient descent: :math:`g \leftarrow g + \lambda\theta`, :math:`\theta \leftarrow \theta - \gamma g`.

    Batch GD, SGD and mini-batch SGD: which samples formed ``grad`` is the
    caller's business. Updates ``params`` in place.
    """
    real = params.dtype.type
    lr_, weight_decay_ = real(lr), real(weight_decay)
    for i in prange(params.size):
        params[i] = sgd_element(params[i], grad[i], lr_, weight_decay_)


def sgd_momentum(params, grad, momentum_buffer, step, lr, momentum, dampening, weight_decay, nesterov):
    r"""Momentum and Nesterov momentum (torch.optim.SGD with momentum μ, dampening τ).

    .. math::
        b \leftarrow g \ (t = 1), \quad b \leftarrow \mu b + (1 - \tau) g \ (t > 1), \quad
        \theta \leftarrow \theta - \gamma\, (g + \mu b \text{ if nesterov else } b)

    ``momentum_buffer`` is the state b; ``nesterov=True`` takes the Nesterov
    direction (then ``dampening`` must be 0).
    """
    real = params.dtype.type
    first_step = step == 1
    lr_, momentum_, one_minus_dampening = real(lr), real(momentum), real(1.0 - dampening)
    weight_decay_ = real(weight_decay)
    for i in prange(params.size):
        params[i], momentum_buffer[i] = momentum_element(
            params[i], grad[i], momentum_buffer[i], first_step, lr_, momentum_, one_minus_dampening,
            weight_decay_, nesterov)


def adagrad(params, grad, state_sum, step, lr, lr_decay, eps, weight_decay):
    r"""Adagrad.

    .. math::
        \tilde\gamma = \frac{\gamma}{1 + (t-1)\eta}, \quad s \leftarrow s + g^2, \quad
        \theta \leftarrow \theta - \tilde\gamma \frac{g}{\sqrt{s} + \epsilon}
    """
    real = params.dtype.type
    clr = real(adagrad_step_scalars(step, lr, lr_decay))
    eps_, weight_decay_ = real(eps), real(weight_decay)
    for i in prange(params.size):
        params[i], state_sum[i] = adagrad_element(params[i], grad[i], state_sum[i], clr, eps_, weight_decay_)


def rmsprop(params, grad, square_avg, momentum_buffer, grad_avg, lr, alpha, eps, weight_decay, momentum, centered):
    r"""RMSprop, with torch's ``momentum`` and ``centered`` options.

    .. math::
        v \leftarrow \alpha v + (1-\alpha) g^2, \quad
        \tilde v = v - a^2 \text{ with } a \leftarrow \alpha a + (1-\alpha) g \text{ if centered, else } v

        \theta \leftarrow \theta - \gamma b, \ b \leftarrow \mu b + \frac{g}{\sqrt{\tilde v} + \epsilon}
        \text{ if } \mu > 0, \text{ else } \theta \leftarrow \theta - \gamma \frac{g}{\sqrt{\tilde v} + \epsilon}

    ``momentum_buffer`` is read only when ``momentum > 0`` and ``grad_avg`` only
    when ``centered``: otherwise they may have length 0.
    """
    real = params.dtype.type
    zero = real(0.0)
    use_momentum = momentum > 0
    lr_, alpha_, one_minus_alpha = real(lr), real(alpha), real(1.0 - alpha)
    eps_, weight_decay_, momentum_ = real(eps), real(weight_decay), real(momentum)
    for i in prange(params.size):
        buffer = momentum_buffer[i] if use_momentum else zero
        average = grad_avg[i] if centered else zero
        params[i], square_avg[i], buffer, average = rmsprop_element(
            params[i], grad[i], square_avg[i], buffer, average, lr_, alpha_, one_minus_alpha, eps_,
            weight_decay_, momentum_, centered, use_momentum)
        if use_momentum:
            momentum_buffer[i] = buffer
        if centered:
            grad_avg[i] = average


def adadelta(params, grad, square_avg, acc_delta, lr, rho, eps, weight_decay):
    r"""Adadelta.

    .. math::
        v \leftarrow \rho v + (1-\rho) g^2, \quad
        \Delta = \frac{\sqrt{u + \epsilon}}{\sqrt{v + \epsilon}} g, \quad
        u \leftarrow \rho u + (1-\rho) \Delta^2, \quad \theta \leftarrow \theta - \gamma \Delta
    """
    real = params.dtype.type
    lr_, rho_, one_minus_rho = real(lr), real(rho), real(1.0 - rho)
    eps_, weight_decay_ = real(eps), real(weight_decay)
    for i in prange(params.size):
        params[i], square_avg[i], acc_delta[i] = adadelta_element(
            params[i], grad[i], square_avg[i], acc_delta[i], lr_, rho_, one_minus_rho, eps_, weight_decay_)


def adam_family(params, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
                amsgrad, decoupled_weight_decay):
    r"""Adam, AMSGrad (``amsgrad=True``) and AdamW (``decoupled_weight_decay=True``).

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
        \hat m = \frac{m}{1-\beta_1^t}, \quad \hat v = \frac{v}{1-\beta_2^t}

        \theta \leftarrow \theta - \gamma \frac{\hat m}{\sqrt{\hat v} + \epsilon}

    AMSGrad replaces v in v̂ by w ← max(w, v), w = ``max_exp_avg_sq`` (read
    only when ``amsgrad``, else it may have length 0). With decoupled weight
    decay θ ← θ(1 − γλ) comes first and g is left as it is; otherwise
    g ← g + λθ.
    """
    real = params.dtype.type
    zero = real(0.0)
    step_size, bias_correction2_sqrt, decay_factor, coupled_weight_decay = adam_step_scalars(
        step, lr, beta1, beta2, weight_decay, decoupled_weight_decay)
    step_size_, bias_correction2_sqrt_ = real(step_size), real(bias_correction2_sqrt)
    decay_factor_, coupled_weight_decay_ = real(decay_factor), real(coupled_weight_decay)
    beta1_, one_minus_beta1, beta2_, one_minus_beta2 = real(beta1), real(1.0 - beta1), real(beta2), real(1.0 - beta2)
    eps_ = real(eps)
    for i in prange(params.size):
        maximum = max_exp_avg_sq[i] if amsgrad else zero
        params[i], exp_avg[i], exp_avg_sq[i], maximum = adam_element(
            params[i], grad[i], exp_avg[i], exp_avg_sq[i], maximum, beta1_, one_minus_beta1, beta2_,
            one_minus_beta2, eps_, coupled_weight_decay_, decay_factor_, step_size_, bias_correction2_sqrt_, amsgrad)
        if amsgrad:
            max_exp_avg_sq[i] = maximum


def adamax(params, grad, exp_avg, exp_inf, step, lr, beta1, beta2, eps, weight_decay):
    r"""Adamax.

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g, \quad u \leftarrow \max(\beta_2 u, |g| + \epsilon), \quad
        \theta \leftarrow \theta - \frac{\gamma}{1-\beta_1^t} \frac{m}{u}
    """
    real = params.dtype.type
    clr = real(adamax_step_scalars(step, lr, beta1))
    beta1_, one_minus_beta1, beta2_ = real(beta1), real(1.0 - beta1), real(beta2)
    eps_, weight_decay_ = real(eps), real(weight_decay)
    for i in prange(params.size):
        params[i], exp_avg[i], exp_inf[i] = adamax_element(
            params[i], grad[i], exp_avg[i], exp_inf[i], beta1_, one_minus_beta1, beta2_, eps_, weight_decay_, clr)


def nadam(params, grad, exp_avg, exp_avg_sq, step, mu_product, lr, beta1, beta2, eps, weight_decay, momentum_decay):
    r"""NAdam (Dozat 2016, torch's form). Returns the new running product Πₜ.

    .. math::
        \mu_t = \beta_1 (1 - \tfrac12 0.96^{t\psi}), \quad \Pi_t = \Pi_{t-1} \mu_t, \quad
        \hat v = \frac{v}{1-\beta_2^t}

        \theta \leftarrow \theta - \gamma \frac{1-\mu_t}{1-\Pi_t} \frac{g}{\sqrt{\hat v}+\epsilon}
        - \gamma \frac{\mu_{t+1}}{1 - \Pi_t\mu_{t+1}} \frac{m}{\sqrt{\hat v}+\epsilon}

    ``mu_product`` is Πₜ₋₁ (1.0 before the first step); keep the returned value
    for the next step.
    """
    real = params.dtype.type
    new_mu_product, bias_correction2, grad_coefficient, exp_avg_coefficient = nadam_step_scalars(
        step, mu_product, lr, beta1, beta2, momentum_decay)
    bias_correction2_ = real(bias_correction2)
    grad_coefficient_, exp_avg_coefficient_ = real(grad_coefficient), real(exp_avg_coefficient)
    beta1_, one_minus_beta1, beta2_, one_minus_beta2 = real(beta1), real(1.0 - beta1), real(beta2), real(1.0 - beta2)
    eps_, weight_decay_ = real(eps), real(weight_decay)
    for i in prange(params.size):
        params[i], exp_avg[i], exp_avg_sq[i] = nadam_element(
            params[i], grad[i], exp_avg[i], exp_avg_sq[i], beta1_, one_minus_beta1, beta2_, one_minus_beta2, eps_,
            weight_decay_, bias_correction2_, grad_coefficient_, exp_avg_coefficient_)
    return new_mu_product


def lion(params, grad, exp_avg, lr, beta1, beta2, weight_decay):
    r"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms").

    .. math::
        c = \beta_1 m + (1-\beta_1) g, \quad \theta \leftarrow \theta - \gamma(\operatorname{sign}(c) + \lambda\theta),
        \quad m \leftarrow \beta_2 m + (1-\beta_2) g
    """
    real = params.dtype.type
    lr_, weight_decay_ = real(lr), real(weight_decay)
    beta1_, one_minus_beta1, beta2_, one_minus_beta2 = real(beta1), real(1.0 - beta1), real(beta2), real(1.0 - beta2)
    for i in prange(params.size):
        params[i], exp_avg[i] = lion_element(
            params[i], grad[i], exp_avg[i], lr_, beta1_, one_minus_beta1, beta2_, one_minus_beta2, weight_decay_)


sgd, sgd_parallel = jit_serial_and_parallel(sgd)
sgd_momentum, sgd_momentum_parallel = jit_serial_and_parallel(sgd_momentum)
adagrad, adagrad_parallel = jit_serial_and_parallel(adagrad)
rmsprop, rmsprop_parallel = jit_serial_and_parallel(rmsprop)
adadelta, adadelta_parallel = jit_serial_and_parallel(adadelta)
adam_family, adam_family_parallel = jit_serial_and_parallel(adam_family)
adamax, adamax_parallel = jit_serial_and_parallel(adamax)
nadam, nadam_parallel = jit_serial_and_parallel(nadam)
lion, lion_parallel = jit_serial_and_parallel(lion)


# --- the named variants of the two families -------------------------------------------------

def momentum(params, grad, momentum_buffer, step, lr, momentum, dampening, weight_decay):
    """Momentum: :func:`sgd_momentum` with ``nesterov=False``."""
    sgd_momentum(params, grad, momentum_buffer, step, lr, momentum, dampening, weight_decay, False)


def nesterov(params, grad, momentum_buffer, step, lr, momentum, weight_decay):
    """Nesterov momentum: :func:`sgd_momentum` with ``dampening=0``, ``nesterov=True``."""
    sgd_momentum(params, grad, momentum_buffer, step, lr, momentum, 0.0, weight_decay, True)


def adam(params, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    """Adam with coupled L2 weight decay: :func:`adam_family` without AMSGrad."""
    adam_family(params, grad, exp_avg, exp_avg_sq, params[:0], step, lr, beta1, beta2, eps, weight_decay, False, False)


def amsgrad(params, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    """AMSGrad: :func:`adam_family` with ``amsgrad=True``."""
    adam_family(params, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
                True, False)


def adamw(params, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    """AdamW: :func:`adam_family` with decoupled weight decay θ ← θ(1 − γλ)."""
    adam_family(params, grad, exp_avg, exp_avg_sq, params[:0], step, lr, beta1, beta2, eps, weight_decay,
                False, True)


_PARALLEL_FAMILIES = dict(sgd_momentum=sgd_momentum_parallel, adam_family=adam_family_parallel)
momentum, momentum_parallel = jit_serial_and_parallel(momentum, _PARALLEL_FAMILIES)
nesterov, nesterov_parallel = jit_serial_and_parallel(nesterov, _PARALLEL_FAMILIES)
adam, adam_parallel = jit_serial_and_parallel(adam, _PARALLEL_FAMILIES)
amsgrad, amsgrad_parallel = jit_serial_and_parallel(amsgrad, _PARALLEL_FAMILIES)
adamw, adamw_parallel = jit_serial_and_parallel(adamw, _PARALLEL_FAMILIES)


# --- one entry point for compiled training loops --------------------------------------------
#
# The training loop receives its rule as an integer code, a float64 vector of
# hyperparameters (lr first, so a schedule can overwrite it), three state
# arrays (zero-length where unused) and float64 counters [step, mu_product]:
# one compiled loop per dtype serves every rule. Layouts of ``hyper``:
#   SGD           lr, weight_decay
#   SGD_MOMENTUM  lr, momentum, dampening, weight_decay, nesterov
#   ADAGRAD       lr, lr_decay, eps, weight_decay
#   RMSPROP       lr, alpha, eps, weight_decay, momentum, centered
#   ADADELTA      lr, rho, eps, weight_decay
#   ADAM_FAMILY   lr, beta1, beta2, eps, weight_decay, amsgrad, decoupled_weight_decay
#   ADAMAX        lr, beta1, beta2, eps, weight_decay
#   NADAM         lr, beta1, beta2, eps, weight_decay, momentum_decay
#   LION          lr, beta1, beta2, weight_decay
SGD, SGD_MOMENTUM, ADAGRAD, RMSPROP, ADADELTA, ADAM_FAMILY, ADAMAX, NADAM, LION = range(9)


@jit
def apply_rule(code, params, grad, state0, state1, state2, hyper, counters):
    """One step of the rule ``code`` (serial kernels); advances ``counters``."""
    counters[0] += 1.0
    step = np.int64(counters[0])
    lr = hyper[0]
    if code == SGD:
        sgd(params, grad, lr, hyper[1])
    elif code == SGD_MOMENTUM:
        sgd_momentum(params, grad, state0, step, lr, hyper[1], hyper[2], hyper[3], hyper[4] != 0.0)
    elif code == ADAGRAD:
        adagrad(params, grad, state0, step, lr, hyper[1], hyper[2], hyper[3])
    elif code == RMSPROP:
        rmsprop(params, grad, state0, state1, state2, lr, hyper[1], hyper[2], hyper[3], hyper[4], hyper[5] != 0.0)
    elif code == ADADELTA:
        adadelta(params, grad, state0, state1, lr, hyper[1], hyper[2], hyper[3])
    elif code == ADAM_FAMILY:
        adam_family(params, grad, state0, state1, state2, step, lr, hyper[1], hyper[2], hyper[3], hyper[4],
                    hyper[5] != 0.0, hyper[6] != 0.0)
    elif code == ADAMAX:
        adamax(params, grad, state0, state1, step, lr, hyper[1], hyper[2], hyper[3], hyper[4])
    elif code == NADAM:
        counters[1] = nadam(params, grad, state0, state1, step, counters[1], lr, hyper[1], hyper[2], hyper[3],
                            hyper[4], hyper[5])
    else:
        lion(params, grad, state0, lr, hyper[1], hyper[2], hyper[3])
