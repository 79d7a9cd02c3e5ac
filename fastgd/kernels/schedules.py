r"""Learning-rate schedules, evaluated inside the compiled training loop.

A schedule is a float64 vector ``[kind, gamma, step_size, power_t, eta_min,
t_max, warmup_steps, samples_per_epoch]`` (see :func:`fastgd.training.make_schedule`;
:class:`fastgd.training.Training` fills in its rows per epoch); the rate at
update step t (1, 2, ...) during epoch e (0, 1, ...) of n rows is

=============  =====================================================
constant       γ₀
step           γ₀ · gamma^⌊e / step_size⌋
exponential    γ₀ · gamma^e
invscaling     γ₀ / (e·n + 1)^power_t              (scikit-learn's: n·e samples seen before the epoch)
cosine         η_min + (γ₀ − η_min)(1 + cos(π e / t_max)) / 2
=============  =====================================================

times min(1, t / warmup_steps) when ``warmup_steps`` > 0 (linear warm-up).
"""

import math

from fastgd._config import jit

CONSTANT, STEP, EXPONENTIAL, INVSCALING, COSINE = 0, 1, 2, 3, 4
SCHEDULES = {"constant": CONSTANT, "step": STEP, "exponential": EXPONENTIAL, "invscaling": INVSCALING,
             "cosine": COSINE}
KIND, GAMMA, STEP_SIZE, POWER_T, ETA_MIN, T_MAX, WARMUP_STEPS, SAMPLES_PER_EPOCH = range(8)


@jit(inline=True)
def scheduled_lr(base_lr, schedule, epoch, step):
    """The learning rate at update ``step`` (from 1) of ``epoch`` (from 0): the table above."""
    kind = int(schedule[KIND])
    if kind == STEP:
        lr = base_lr * schedule[GAMMA] ** (epoch // int(schedule[STEP_SIZE]))
    elif kind == EXPONENTIAL:
        lr = base_lr * schedule[GAMMA] ** epoch
    elif kind == INVSCALING:
        lr = base_lr / (epoch * schedule[SAMPLES_PER_EPOCH] + 1.0) ** schedule[POWER_T]
    elif kind == COSINE:
        eta_min = schedule[ETA_MIN]
        progress = min(epoch, schedule[T_MAX]) / schedule[T_MAX]
        lr = eta_min + (base_lr - eta_min) * (1.0 + math.cos(math.pi * progress)) / 2.0
    else:
        lr = base_lr
    warmup_steps = schedule[WARMUP_STEPS]
    if warmup_steps > 0 and step < warmup_steps:
        lr *= step / warmup_steps
    return lr


@jit
def learning_rate_scale(base_lr, schedule, epoch, step):
    """The factor the schedule puts on every learning rate of a rule at this step: scheduled / base.

    Not inlined: its arguments are float64 and int64 whatever the parameters' dtype, so it is compiled
    once and the epoch of each further dtype only calls it (once a batch: a call costs nothing there).
    """
    if base_lr == 0.0:
        return 1.0
    return scheduled_lr(base_lr, schedule, epoch, step) / base_lr
