r"""Every update rule of FORMULAS.md as a CUDA kernel over one flat device vector.

The math is not written here: each kernel calls the rule's scalar
``*_element`` function of :mod:`fastgd.kernels.updates`, compiled a second
time with ``cuda.jit(device=True)``, inside a grid-stride loop: one launch
per step, each thread a strided share of the parameters. The per-step scalars
(bias corrections, decayed learning rates) are computed on the host by the
same compiled ``*_step_scalars`` functions as on the CPU and cast to the
parameters' dtype, so float32 stays float32 and float64 follows the CPU
kernels' operations in the same order.

Launchers with the CPU kernels' names and signatures (``sgd``, ``momentum``,
..., ``lion``, ``adam_family``, ``sgd_momentum``) take numba device arrays
(1-D, one dtype, equal lengths; unused state may have length 0) and check
nothing, as the CPU kernels do: :mod:`fastgd.optim` validates. Each also
takes ``halt``, a device int32 array: when it has an element and that is
not 0, the kernel leaves everything as it is. A training epoch sets it at
the first non-finite loss without a host round trip. Most users reach these
through :mod:`fastgd.optim`, whose classes accept device arrays::

    params = numba.cuda.to_device(theta)                  # or a CuPy array, a torch CUDA tensor
    opt = fastgd.optim.Adam(params, lr=1e-3)
    opt.step(grad)                                        # grad on the device too: one launch
"""

from numba import cuda

from fastgd._config import cuda_jit
from fastgd.cuda.arrays import launch_shape, no_halt
from fastgd.kernels import updates as cpu

__all__ = [*cpu.RULES, *cpu.FAMILIES, "KERNELS", "apply_rule"]

sgd_element = cuda_jit(cpu.sgd_element.py_func, device=True)
momentum_element = cuda_jit(cpu.momentum_element.py_func, device=True)
adagrad_element = cuda_jit(cpu.adagrad_element.py_func, device=True)
rmsprop_element = cuda_jit(cpu.rmsprop_element.py_func, device=True)
adadelta_element = cuda_jit(cpu.adadelta_element.py_func, device=True)
adam_element = cuda_jit(cpu.adam_element.py_func, device=True)
adamax_element = cuda_jit(cpu.adamax_element.py_func, device=True)
nadam_element = cuda_jit(cpu.nadam_element.py_func, device=True)
lion_element = cuda_jit(cpu.lion_element.py_func, device=True)


# --- the kernels: one grid-stride loop per rule ---------------------------------------------
#
# Every scalar argument already has the parameters' dtype (the launchers cast
# them), flags are booleans. ``halt`` first: a stopped training epoch must
# not touch θ or the state.

@cuda_jit
def sgd_kernel(params, grad, lr, weight_decay, halt):
    if halt.size > 0 and halt[0] != 0:
        return
    for i in range(cuda.grid(1), params.size, cuda.gridsize(1)):
        params[i] = sgd_element(params[i], grad[i], lr, weight_decay)


@cuda_jit
def sgd_momentum_kernel(params, grad, momentum_buffer, first_step, lr, momentum, one_minus_dampening,
                        weight_decay, nesterov, halt):
    if halt.size > 0 and halt[0] != 0:
        return
    for i in range(cuda.grid(1), params.size, cuda.gridsize(1)):
        params[i], momentum_buffer[i] = momentum_element(
            params[i], grad[i], momentum_buffer[i], first_step, lr, momentum, one_minus_dampening, weight_decay,
            nesterov)


@cuda_jit
def adagrad_kernel(params, grad, state_sum, clr, eps, weight_decay, halt):
    if halt.size > 0 and halt[0] != 0:
        return
    for i in range(cuda.grid(1), params.size, cuda.gridsize(1)):
        params[i], state_sum[i] = adagrad_element(params[i], grad[i], state_sum[i], clr, eps, weight_decay)


@cuda_jit
def rmsprop_kernel(params, grad, square_avg, momentum_buffer, grad_avg, lr, alpha, one_minus_alpha, eps,
                   weight_decay, momentum, centered, use_momentum, halt):
    if halt.size > 0 and halt[0] != 0:
        return
    zero = params.dtype.type(0.0)
    for i in range(cuda.grid(1), params.size, cuda.gridsize(1)):
        buffer = momentum_buffer[i] if use_momentum else zero
        average = grad_avg[i] if centered else zero
        params[i], square_avg[i], buffer, average = rmsprop_element(
            params[i], grad[i], square_avg[i], buffer, average, lr, alpha, one_minus_alpha, eps, weight_decay,
            momentum, centered, use_momentum)
        if use_momentum:
            momentum_buffer[i] = buffer
        if centered:
            grad_avg[i] = average


@cuda_jit
def adadelta_kernel(params, grad, square_avg, acc_delta, lr, rho, one_minus_rho, eps, weight_decay, halt):
    if halt.size > 0 and halt[0] != 0:
        return
    for i in range(cuda.grid(1), params.size, cuda.gridsize(1)):
        params[i], square_avg[i], acc_delta[i] = adadelta_element(
            params[i], grad[i], square_avg[i], acc_delta[i], lr, rho, one_minus_rho, eps, weight_decay)


@cuda_jit
def adam_family_kernel(params, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, beta1, one_minus_beta1, beta2,
                       one_minus_beta2, eps, coupled_weight_decay, decay_factor, step_size, bias_correction2_sqrt,
                       amsgrad, halt):
    if halt.size > 0 and halt[0] != 0:
        return
    zero = params.dtype.type(0.0)
    for i in range(cuda.grid(1), params.size, cuda.gridsize(1)):
        maximum = max_exp_avg_sq[i] if amsgrad else zero
        params[i], exp_avg[i], exp_avg_sq[i], maximum = adam_element(
            params[i], grad[i], exp_avg[i], exp_avg_sq[i], maximum, beta1, one_minus_beta1, beta2, one_minus_beta2,
            eps, coupled_weight_decay, decay_factor, step_size, bias_correction2_sqrt, amsgrad)
        if amsgrad:
            max_exp_avg_sq[i] = maximum


@cuda_jit
def adamax_kernel(params, grad, exp_avg, exp_inf, beta1, one_minus_beta1, beta2, eps, weight_decay, clr, halt):
    if halt.size > 0 and halt[0] != 0:
        return
    for i in range(cuda.grid(1), params.size, cuda.gridsize(1)):
        params[i], exp_avg[i], exp_inf[i] = adamax_element(
            params[i], grad[i], exp_avg[i], exp_inf[i], beta1, one_minus_beta1, beta2, eps, weight_decay, clr)


@cuda_jit
def nadam_kernel(params, grad, exp_avg, exp_avg_sq, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                 weight_decay, bias_correction2, grad_coefficient, exp_avg_coefficient, halt):
    if halt.size > 0 and halt[0] != 0:
        return
    for i in range(cuda.grid(1), params.size, cuda.gridsize(1)):
        params[i], exp_avg[i], exp_avg_sq[i] = nadam_element(
            params[i], grad[i], exp_avg[i], exp_avg_sq[i], beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
            weight_decay, bias_correction2, grad_coefficient, exp_avg_coefficient)


@cuda_jit
def lion_kernel(params, grad, exp_avg, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay, halt):
    if halt.size > 0 and halt[0] != 0:
        return
    for i in range(cuda.grid(1), params.size, cuda.gridsize(1)):
        params[i], exp_avg[i] = lion_element(
            params[i], grad[i], exp_avg[i], lr, beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay)


# --- the launchers: the CPU kernels' signatures ----------------------------------------------

def _halt(halt):
    return no_halt() if halt is None else halt


def sgd(params, grad, lr, weight_decay, halt=None):
    """:func:`fastgd.kernels.sgd` on the device."""
    real = params.dtype.type
    sgd_kernel[launch_shape(params.size)](params, grad, real(lr), real(weight_decay), _halt(halt))


def sgd_momentum(params, grad, momentum_buffer, step, lr, momentum, dampening, weight_decay, nesterov, halt=None):
    """:func:`fastgd.kernels.sgd_momentum` on the device."""
    real = params.dtype.type
    sgd_momentum_kernel[launch_shape(params.size)](
        params, grad, momentum_buffer, step == 1, real(lr), real(momentum), real(1.0 - dampening),
        real(weight_decay), bool(nesterov), _halt(halt))


def momentum(params, grad, momentum_buffer, step, lr, momentum, dampening, weight_decay, halt=None):
    """:func:`fastgd.kernels.momentum` on the device."""
    sgd_momentum(params, grad, momentum_buffer, step, lr, momentum, dampening, weight_decay, False, halt)


def nesterov(params, grad, momentum_buffer, step, lr, momentum, weight_decay, halt=None):
    """:func:`fastgd.kernels.nesterov` on the device."""
    sgd_momentum(params, grad, momentum_buffer, step, lr, momentum, 0.0, weight_decay, True, halt)


def adagrad(params, grad, state_sum, step, lr, lr_decay, eps, weight_decay, halt=None):
    """:func:`fastgd.kernels.adagrad` on the device."""
    real = params.dtype.type
    clr = cpu.adagrad_step_scalars(step, lr, lr_decay)
    adagrad_kernel[launch_shape(params.size)](params, grad, state_sum, real(clr), real(eps), real(weight_decay),
                                              _halt(halt))


def rmsprop(params, grad, square_avg, momentum_buffer, grad_avg, lr, alpha, eps, weight_decay, momentum, centered,
            halt=None):
    """:func:`fastgd.kernels.rmsprop` on the device."""
    real = params.dtype.type
    rmsprop_kernel[launch_shape(params.size)](
        params, grad, square_avg, momentum_buffer, grad_avg, real(lr), real(alpha), real(1.0 - alpha), real(eps),
        real(weight_decay), real(momentum), bool(centered), momentum > 0, _halt(halt))


def adadelta(params, grad, square_avg, acc_delta, lr, rho, eps, weight_decay, halt=None):
    """:func:`fastgd.kernels.adadelta` on the device."""
    real = params.dtype.type
    adadelta_kernel[launch_shape(params.size)](
        params, grad, square_avg, acc_delta, real(lr), real(rho), real(1.0 - rho), real(eps), real(weight_decay),
        _halt(halt))


def adam_family(params, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
                amsgrad, decoupled_weight_decay, halt=None):
    """:func:`fastgd.kernels.adam_family` on the device."""
    real = params.dtype.type
    step_size, bias_correction2_sqrt, decay_factor, coupled_weight_decay = cpu.adam_step_scalars(
        step, lr, beta1, beta2, weight_decay, decoupled_weight_decay)
    adam_family_kernel[launch_shape(params.size)](
        params, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, real(beta1), real(1.0 - beta1), real(beta2),
        real(1.0 - beta2), real(eps), real(coupled_weight_decay), real(decay_factor), real(step_size),
        real(bias_correction2_sqrt), bool(amsgrad), _halt(halt))


def adam(params, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, halt=None):
    """:func:`fastgd.kernels.adam` on the device."""
    adam_family(params, grad, exp_avg, exp_avg_sq, params[:0], step, lr, beta1, beta2, eps, weight_decay, False,
                False, halt)


def amsgrad(params, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
            halt=None):
    """:func:`fastgd.kernels.amsgrad` on the device."""
    adam_family(params, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, True,
                False, halt)


def adamw(params, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay, halt=None):
    """:func:`fastgd.kernels.adamw` on the device."""
    adam_family(params, grad, exp_avg, exp_avg_sq, params[:0], step, lr, beta1, beta2, eps, weight_decay, False,
                True, halt)


def adamax(params, grad, exp_avg, exp_inf, step, lr, beta1, beta2, eps, weight_decay, halt=None):
    """:func:`fastgd.kernels.adamax` on the device."""
    real = params.dtype.type
    clr = cpu.adamax_step_scalars(step, lr, beta1)
    adamax_kernel[launch_shape(params.size)](
        params, grad, exp_avg, exp_inf, real(beta1), real(1.0 - beta1), real(beta2), real(eps), real(weight_decay),
        real(clr), _halt(halt))


def nadam(params, grad, exp_avg, exp_avg_sq, step, mu_product, lr, beta1, beta2, eps, weight_decay, momentum_decay,
          halt=None):
    """:func:`fastgd.kernels.nadam` on the device; returns the new running product Πₜ."""
    real = params.dtype.type
    new_mu_product, bias_correction2, grad_coefficient, exp_avg_coefficient = cpu.nadam_step_scalars(
        step, mu_product, lr, beta1, beta2, momentum_decay)
    nadam_kernel[launch_shape(params.size)](
        params, grad, exp_avg, exp_avg_sq, real(beta1), real(1.0 - beta1), real(beta2), real(1.0 - beta2),
        real(eps), real(weight_decay), real(bias_correction2), real(grad_coefficient), real(exp_avg_coefficient),
        _halt(halt))
    return new_mu_product


def lion(params, grad, exp_avg, lr, beta1, beta2, weight_decay, halt=None):
    """:func:`fastgd.kernels.lion` on the device."""
    real = params.dtype.type
    lion_kernel[launch_shape(params.size)](
        params, grad, exp_avg, real(lr), real(beta1), real(1.0 - beta1), real(beta2), real(1.0 - beta2),
        real(weight_decay), _halt(halt))


# The launcher standing in for each CPU kernel (serial or parallel form alike):
# an optimizer over device arrays looks its kernel up here by the CPU name.
KERNELS = {name: globals()[name] for name in (*cpu.RULES, *cpu.FAMILIES)}


def apply_rule(code, params, grad, state0, state1, state2, hyper, counters, halt=None):
    """:func:`fastgd.kernels.apply_rule` on the device: one step of rule ``code``; advances ``counters`` (host)."""
    counters[0] += 1.0
    step = int(counters[0])
    lr = float(hyper[0])
    if code == cpu.SGD:
        sgd(params, grad, lr, hyper[1], halt)
    elif code == cpu.SGD_MOMENTUM:
        sgd_momentum(params, grad, state0, step, lr, hyper[1], hyper[2], hyper[3], hyper[4] != 0.0, halt)
    elif code == cpu.ADAGRAD:
        adagrad(params, grad, state0, step, lr, hyper[1], hyper[2], hyper[3], halt)
    elif code == cpu.RMSPROP:
        rmsprop(params, grad, state0, state1, state2, lr, hyper[1], hyper[2], hyper[3], hyper[4], hyper[5] != 0.0,
                halt)
    elif code == cpu.ADADELTA:
        adadelta(params, grad, state0, state1, lr, hyper[1], hyper[2], hyper[3], halt)
    elif code == cpu.ADAM_FAMILY:
        adam_family(params, grad, state0, state1, state2, step, lr, hyper[1], hyper[2], hyper[3], hyper[4],
                    hyper[5] != 0.0, hyper[6] != 0.0, halt)
    elif code == cpu.ADAMAX:
        adamax(params, grad, state0, state1, step, lr, hyper[1], hyper[2], hyper[3], hyper[4], halt)
    elif code == cpu.NADAM:
        counters[1] = nadam(params, grad, state0, state1, step, float(counters[1]), lr, hyper[1], hyper[2],
                            hyper[3], hyper[4], hyper[5], halt)
    else:
        lion(params, grad, state0, lr, hyper[1], hyper[2], hyper[3], halt)
