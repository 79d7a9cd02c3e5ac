r"""Learning-rate schedules, evaluated inside the compiled training loop.

A schedule is a float64 vector ``[kind, gamma, step_size, power_t, eta_min,
t_max, warmup_steps, samples_per_epoch, t_0, t_mult, warmup_epochs, decay_epochs]``
(see :func:`fastgd.training.make_schedule`; :class:`fastgd.training.Training` fills
in its rows per epoch); the rate at update step t (1, 2, ...) during epoch e
(0, 1, ...) of n rows is

===============  =====================================================
constant         γ₀
step             γ₀ · gamma^⌊e / step_size⌋
exponential      γ₀ · gamma^e
invscaling       γ₀ / (e·n + 1)^power_t              (scikit-learn's: n·e samples seen before the epoch)
cosine           η_min + (γ₀ − η_min)(1 + cos(π e / t_max)) / 2
cosine_restarts  η_min + (γ₀ − η_min)(1 + cos(π e_c / T_c)) / 2, the cycles T_c = t_0 · t_mult^c in turn,
                 e_c the epochs since the cycle began (SGDR; torch's CosineAnnealingWarmRestarts)
warmup_linear    γ₀ (e + 1) / (w + 1) for e < w, then η_min + (γ₀ − η_min)(t_max − e) / (t_max − w)
trapezoidal      γ₀ (e + 1) / (w + 1) for e < w, γ₀ until the last d epochs, then
                 η_min + (γ₀ − η_min)(t_max − e) / d; η_min after t_max
===============  =====================================================

(w ``warmup_epochs``, d ``decay_epochs``: the Crowded Valley study's schedules, stepped once an epoch as
DeepOBS steps torch's), times min(1, t / warmup_steps) when ``warmup_steps`` > 0 (linear warm-up over steps).
"""

import math

from fastgd._config import jit

CONSTANT, STEP, EXPONENTIAL, INVSCALING, COSINE, COSINE_RESTARTS, WARMUP_LINEAR, TRAPEZOIDAL = range(8)
SCHEDULES = {"constant": CONSTANT, "step": STEP, "exponential": EXPONENTIAL, "invscaling": INVSCALING,
             "cosine": COSINE, "cosine_restarts": COSINE_RESTARTS, "warmup_linear": WARMUP_LINEAR,
             "trapezoidal": TRAPEZOIDAL}
(KIND, GAMMA, STEP_SIZE, POWER_T, ETA_MIN, T_MAX, WARMUP_STEPS, SAMPLES_PER_EPOCH, T_0, T_MULT, WARMUP_EPOCHS,
 DECAY_EPOCHS) = range(12)
SIZE = 12


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
    elif kind == COSINE_RESTARTS:
        eta_min = schedule[ETA_MIN]
        period = schedule[T_0]
        if schedule[T_MULT] == 1.0:
            position = epoch % period  # one cycle length: no loop over a long run's many restarts
        else:
            position = float(epoch)
            while position >= period:  # cycles grow geometrically: a few turns
                position -= period
                period *= schedule[T_MULT]
        lr = eta_min + (base_lr - eta_min) * (1.0 + math.cos(math.pi * position / period)) / 2.0
    elif kind == WARMUP_LINEAR or kind == TRAPEZOIDAL:
        warmup_epochs = schedule[WARMUP_EPOCHS]
        decay_epochs = schedule[DECAY_EPOCHS]
        if epoch < warmup_epochs:
            lr = base_lr * (epoch + 1.0) / (warmup_epochs + 1.0)
        elif epoch < schedule[T_MAX] - decay_epochs:
            lr = base_lr
        else:
            eta_min = schedule[ETA_MIN]
            lr = eta_min + (base_lr - eta_min) * max(schedule[T_MAX] - epoch, 0.0) / decay_epochs
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
