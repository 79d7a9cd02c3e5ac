r"""Moré and Thuente's line search (MINPACK-2's ``dcsrch`` and ``dcstep``), the one SciPy's L-BFGS-B takes.

A search for a step t > 0 along a direction of descent that meets the sufficient decrease and the curvature
conditions

.. math::

    \phi(t) \le \phi(0) + \mathrm{ftol}\, t\, \phi'(0), \qquad |\phi'(t)| \le \mathrm{gtol}\, |\phi'(0)|,

over φ(t) = f(x + t·d). Each trial step comes from a safeguarded cubic or quadratic fit (:func:`dcstep`) to the
values and slopes at the best step so far, the other end of the bracket and the latest trial; until a minimiser is
bracketed the steps grow by a factor between 1.1 and 4 past the last; once bracketed, a bisection is forced
whenever the bracket fails to shrink by a third over two trials. While no trial has met the sufficient decrease
with a slope ≥ 0, the fits use ψ(t) = φ(t) − φ(0) − ftol·t·φ'(0) in place of φ (Moré and Thuente, "Line search
algorithms with guaranteed sufficient decrease", ACM TOMS 20 (1994) 286-307).

The search is reverse communication, as MINPACK-2's: :func:`dcsrch_start` takes φ(0), φ'(0) and the first trial
step and returns :data:`EVALUATE`; the caller evaluates φ and φ' at the step, hands them to :func:`dcsrch`, which
returns the next step and a task, and so on until the task is no longer :data:`EVALUATE`: :data:`CONVERGED` (both
conditions hold at the step last evaluated), one of the ``WARNING_*`` codes (no progress possible: the step last
evaluated is the best the search found) or :data:`ERROR` (bad arguments to :func:`dcsrch_start`). The search's
memory is one float64 array of :data:`N_STATE` entries that the caller owns and must not change in between.

:class:`scipy.optimize._dcsrch.DCSRCH` is the same search in Python (the tests' oracle, step by step).

A parabola from a short first step, with L-BFGS-B's tolerances: the steps grow fourfold until the slope is small::

    >>> import numpy as np
    >>> from fastgd.kernels import linesearch
    >>> state, step = np.zeros(linesearch.N_STATE), 0.01
    >>> task = linesearch.dcsrch_start(step, 9.0, -6.0, state, 1e-3, 0.9, 0.1, 0.0, 1e10)  # φ(t) = (t − 3)²
    >>> while task == linesearch.EVALUATE:
    ...     step, task = linesearch.dcsrch(step, (step - 3.0) ** 2, 2 * (step - 3.0), state)
    >>> round(step, 6), linesearch.TASK_NAMES[task]
    (0.85, 'CONVERGENCE')
"""

import math

from fastgd._config import jit

__all__ = ["dcstep", "dcsrch_start", "dcsrch", "N_STATE", "EVALUATE", "CONVERGED", "WARNING_ROUNDING",
           "WARNING_XTOL", "WARNING_STPMAX", "WARNING_STPMIN", "ERROR", "TASK_NAMES"]

# tasks
EVALUATE, CONVERGED, WARNING_ROUNDING, WARNING_XTOL, WARNING_STPMAX, WARNING_STPMIN, ERROR = range(7)
TASK_NAMES = {EVALUATE: "FG", CONVERGED: "CONVERGENCE", WARNING_ROUNDING: "WARNING: ROUNDING ERRORS PREVENT PROGRESS",
              WARNING_XTOL: "WARNING: XTOL TEST SATISFIED", WARNING_STPMAX: "WARNING: STP = STPMAX",
              WARNING_STPMIN: "WARNING: STP = STPMIN", ERROR: "ERROR"}

# entries of the state array: the tolerances and bounds, whether a minimiser is bracketed, the stage (1: ψ's fits,
# 2: φ's), φ(0), φ'(0) and ftol·φ'(0), the best step (LOW) and the bracket's other end (HIGH) with their values and
# slopes, the interval trial steps must lie in, and the bracket's width now and two trials ago
FTOL, GTOL, XTOL, STEP_MIN, STEP_MAX, BRACKETED, STAGE, F_ZERO, SLOPE_ZERO, SLOPE_TEST, LOW, F_LOW, G_LOW, \
    HIGH, F_HIGH, G_HIGH, LOWER, UPPER, WIDTH, WIDTH_BEFORE = range(20)
N_STATE = 20

# growth of the trial step before a bracket: at least 1.1×, at most 4× the last distance from the best step
EXTRAPOLATE_MIN, EXTRAPOLATE_MAX = 1.1, 4.0
# a bracket that has not shrunk to 2/3 of its width of two trials ago is bisected
SHRINK = 0.66


@jit(exact=True)
def _sign(value):
    return 1.0 if value > 0.0 else -1.0 if value < 0.0 else 0.0


@jit(exact=True)
def _cubic_root_term(theta, slope_a, slope_b, clamp):
    """γ = s·√((θ/s)² − (a/s)(b/s)) with s the largest magnitude, scaled against overflow; with ``clamp`` a
    negative radicand gives 0."""
    scale = max(abs(theta), abs(slope_a), abs(slope_b))
    radicand = (theta / scale) ** 2 - (slope_a / scale) * (slope_b / scale)
    if clamp:
        radicand = max(0.0, radicand)
    return scale * math.sqrt(radicand) if radicand >= 0.0 else math.nan


@jit(exact=True)
def dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, bracketed, step_min, step_max):
    """One update of the bracket and the next trial step, MINPACK-2's ``dcstep``.

    (stx, fx, dx): the best step so far, its value and slope (the slope of descent towards ``stp``); (sty, fy, dy):
    the bracket's other end; (stp, fp, dp): the latest trial; ``bracketed``: whether a minimiser lies between stx
    and sty; [step_min, step_max]: where an extrapolated step may go. Returns ``(stx, fx, dx, sty, fy, dy, step,
    bracketed)``: the updated ends and the next trial step, from one of four cases (a higher value; a lower value
    with the slope's sign changed; a lower value with a smaller slope of the same sign; with a slope not smaller).
    """
    opposite = _sign(dp) * _sign(dx) < 0.0
    if fp > fx:
        # a higher value: bracketed; the cubic's minimiser if nearer stx than the quadratic's, else their mean
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        gamma = _cubic_root_term(theta, dx, dp, False)
        if stp < stx:
            gamma = -gamma
        ratio = ((gamma - dx) + theta) / (((gamma - dx) + gamma) + dp)
        cubic = stx + ratio * (stp - stx)
        quadratic = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
        if abs(cubic - stx) <= abs(quadratic - stx):
            step = cubic
        else:
            step = cubic + (quadratic - cubic) / 2.0
        bracketed = True
    elif opposite:
        # a lower value and the slope changed sign: bracketed; the cubic's step if longer than the secant's
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        gamma = _cubic_root_term(theta, dx, dp, False)
        if stp > stx:
            gamma = -gamma
        ratio = ((gamma - dp) + theta) / (((gamma - dp) + gamma) + dx)
        cubic = stp + ratio * (stx - stp)
        secant = stp + (dp / (dp - dx)) * (stx - stp)
        step = cubic if abs(cubic - stp) > abs(secant - stp) else secant
        bracketed = True
    elif abs(dp) < abs(dx):
        # a lower value, the same sign, a smaller slope: the cubic's step where the cubic falls without bound
        # towards the step or has its minimiser beyond stp, else a bound; against the secant's step
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        gamma = _cubic_root_term(theta, dx, dp, True)
        if stp > stx:
            gamma = -gamma
        ratio = ((gamma - dp) + theta) / ((gamma + (dx - dp)) + gamma)
        if ratio < 0.0 and gamma != 0.0:
            cubic = stp + ratio * (stx - stp)
        elif stp > stx:
            cubic = step_max
        else:
            cubic = step_min
        secant = stp + (dp / (dp - dx)) * (stx - stp)
        if bracketed:
            step = cubic if abs(cubic - stp) < abs(secant - stp) else secant
            towards_far_end = stp + SHRINK * (sty - stp)
            step = min(towards_far_end, step) if stp > stx else max(towards_far_end, step)
        else:
            step = cubic if abs(cubic - stp) > abs(secant - stp) else secant
            step = min(max(step, step_min), step_max)
    else:
        # a lower value, the same sign, a slope not smaller: the cubic through stp and sty once bracketed, else a
        # bound
        if bracketed:
            theta = 3.0 * (fp - fy) / (sty - stp) + dy + dp
            gamma = _cubic_root_term(theta, dy, dp, False)
            if stp > sty:
                gamma = -gamma
            ratio = ((gamma - dp) + theta) / (((gamma - dp) + gamma) + dy)
            step = stp + ratio * (sty - stp)
        elif stp > stx:
            step = step_max
        else:
            step = step_min

    if fp > fx:
        sty, fy, dy = stp, fp, dp
    else:
        if opposite:
            sty, fy, dy = stx, fx, dx
        stx, fx, dx = stp, fp, dp
    return stx, fx, dx, sty, fy, dy, step, bracketed


@jit(exact=True)
def dcsrch_start(step, f_zero, slope_zero, state, ftol, gtol, xtol, step_min, step_max):
    """Begin a search from the trial ``step`` with φ(0) = ``f_zero`` and φ'(0) = ``slope_zero`` (< 0), tolerances
    ``ftol``, ``gtol``, ``xtol`` and steps bounded to [``step_min``, ``step_max``]; fills ``state`` (N_STATE
    float64). Returns :data:`EVALUATE` (evaluate φ and φ' at ``step``, then call :func:`dcsrch`) or :data:`ERROR`
    (a step outside the bounds, φ'(0) ≥ 0, a negative tolerance, bounds out of order)."""
    if (step < step_min or step > step_max or slope_zero >= 0.0 or ftol < 0.0 or gtol < 0.0 or xtol < 0.0
            or step_min < 0.0 or step_max < step_min):
        return ERROR
    state[FTOL], state[GTOL], state[XTOL], state[STEP_MIN], state[STEP_MAX] = ftol, gtol, xtol, step_min, step_max
    state[BRACKETED], state[STAGE] = 0.0, 1.0
    state[F_ZERO], state[SLOPE_ZERO], state[SLOPE_TEST] = f_zero, slope_zero, ftol * slope_zero
    state[WIDTH] = step_max - step_min
    state[WIDTH_BEFORE] = 2.0 * state[WIDTH]
    state[LOW], state[F_LOW], state[G_LOW] = 0.0, f_zero, slope_zero
    state[HIGH], state[F_HIGH], state[G_HIGH] = 0.0, f_zero, slope_zero
    state[LOWER], state[UPPER] = 0.0, step + EXTRAPOLATE_MAX * step
    return EVALUATE


@jit(exact=True)
def dcsrch(step, f, g, state):
    """Take φ(``step``) = ``f`` and φ'(``step``) = ``g`` of the trial last asked for; returns ``(step, task)``.

    With :data:`EVALUATE` the returned step is the next trial; otherwise the step is the one just evaluated, and the
    task says why the search ends: :data:`CONVERGED`, or a ``WARNING_*`` (the bracket is within ``xtol`` of its
    upper end, rounding leaves no room for another trial, or the step sits at a bound with the conditions unmet).
    """
    ftol_test = state[F_ZERO] + step * state[SLOPE_TEST]
    bracketed = state[BRACKETED] != 0.0
    if state[STAGE] == 1.0 and f <= ftol_test and g >= 0.0:
        state[STAGE] = 2.0

    if f <= ftol_test and abs(g) <= state[GTOL] * -state[SLOPE_ZERO]:
        return step, CONVERGED
    if step == state[STEP_MIN] and (f > ftol_test or g >= state[SLOPE_TEST]):
        return step, WARNING_STPMIN
    if step == state[STEP_MAX] and f <= ftol_test and g <= state[SLOPE_TEST]:
        return step, WARNING_STPMAX
    if bracketed and state[UPPER] - state[LOWER] <= state[XTOL] * state[UPPER]:
        return step, WARNING_XTOL
    if bracketed and (step <= state[LOWER] or step >= state[UPPER]):
        return step, WARNING_ROUNDING

    if state[STAGE] == 1.0 and f <= state[F_LOW] and f > ftol_test:
        # a lower value without sufficient decrease: fit ψ, whose values and slopes shift by ftol·φ'(0)·t
        shift = state[SLOPE_TEST]
        low, f_low, g_low, high, f_high, g_high, step, bracketed = dcstep(
            state[LOW], state[F_LOW] - state[LOW] * shift, state[G_LOW] - shift,
            state[HIGH], state[F_HIGH] - state[HIGH] * shift, state[G_HIGH] - shift,
            step, f - step * shift, g - shift, bracketed, state[LOWER], state[UPPER])
        f_low, g_low = f_low + low * shift, g_low + shift
        f_high, g_high = f_high + high * shift, g_high + shift
    else:
        low, f_low, g_low, high, f_high, g_high, step, bracketed = dcstep(
            state[LOW], state[F_LOW], state[G_LOW], state[HIGH], state[F_HIGH], state[G_HIGH],
            step, f, g, bracketed, state[LOWER], state[UPPER])
    state[LOW], state[F_LOW], state[G_LOW] = low, f_low, g_low
    state[HIGH], state[F_HIGH], state[G_HIGH] = high, f_high, g_high
    state[BRACKETED] = 1.0 if bracketed else 0.0

    if bracketed:
        if abs(high - low) >= SHRINK * state[WIDTH_BEFORE]:
            step = low + 0.5 * (high - low)
        state[WIDTH_BEFORE] = state[WIDTH]
        state[WIDTH] = abs(high - low)
        state[LOWER], state[UPPER] = min(low, high), max(low, high)
    else:
        state[LOWER] = step + EXTRAPOLATE_MIN * (step - low)
        state[UPPER] = step + EXTRAPOLATE_MAX * (step - low)
    step = min(max(step, state[STEP_MIN]), state[STEP_MAX])
    if bracketed and (step <= state[LOWER] or step >= state[UPPER]
                      or state[UPPER] - state[LOWER] <= state[XTOL] * state[UPPER]):
        step = low  # no room for another trial: end on the best step
    return step, EVALUATE
