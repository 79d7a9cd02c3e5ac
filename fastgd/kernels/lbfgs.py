r"""L-BFGS, ``torch.optim.LBFGS``'s step exactly, as one compiled generator that asks for its evaluations.

:func:`lbfgs_step` is one call of torch's ``LBFGS.step(closure)``: up to ``max_iter`` iterations of the
two-loop recursion over the last ``history_size`` pairs (s, y), each followed by a fixed step of ``lr``
or by torch's strong-Wolfe line search (``_strong_wolfe`` with ``_cubic_interpolate``, c₁ = 1e-4,
c₂ = 0.9, its own tolerance 1e-9, at most ``max_eval`` − evaluations so far trials), and torch's tests
to stop (``tolerance_grad`` on max |g|, ``tolerance_change`` on gᵀd, on max |t·d| and on the loss's
change, ``max_eval`` evaluations). The state carries over between calls, as torch's does.

With ``settings[SCIPY_STOPPING]`` set, the same iterations stop as SciPy's L-BFGS-B (``scipy.optimize.minimize(
method="L-BFGS-B")``, which scikit-learn's ``solver="lbfgs"`` calls) stops without bounds, and the line search is
torch's (``settings[LINE_SEARCH]`` = :data:`STRONG_WOLFE`) or L-BFGS-B's own (:data:`MORE_THUENTE`, which implies
SciPy's stopping):

* after each iteration: at ``max_iter`` iterations, else beyond ``max_eval`` evaluations (both SciPy's status 1,
  limits checked only once an iteration ends, as SciPy's driver does), else at max |g| ≤ ``tolerance_grad``
  (``gtol``), else when the loss's relative decrease (f_k − f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) ≤
  ``tolerance_change`` (SciPy's ``factr``·ε); torch's three absolute tests are off;
* the first trial step is 1/‖d‖₂ (L-BFGS-B's, for an unbounded problem), a line search takes at most
  :data:`SCIPY_MAX_LINE_SEARCH` evaluations (SciPy's ``maxls``) and ``max_eval`` does not cut it short;
* a pair (s, y) joins the history when yᵀs > ε·(−gᵀs), L-BFGS-B's test (torch's: yᵀs > 1e-10);
* a line search that fails (torch's: does not lower the loss; Moré-Thuente's: accepts no step within
  :data:`SCIPY_MAX_LINE_SEARCH` evaluations), or a direction that is not one of descent, restarts from the
  steepest descent with the history emptied, not counted as an iteration (L-BFGS-B's restart); with the history
  already empty the run ends abnormally (SciPy's status 2, θ at the last iterate).

L-BFGS-B's line search (``lnsrlb``) is Moré and Thuente's (:mod:`fastgd.kernels.linesearch`, MINPACK-2's
``dcsrch``) with ftol = 1e-3, gtol = 0.9, xtol = 0.1 over steps in [0, 1e10], from the trial step 1/‖d‖₂ in the
first iteration and 1 after; it ends on the step it converges on or, with a warning, on the best step it found,
whether or not that lowers the loss. With it, a pair's yᵀs is t·(g_newᵀd − gᵀd), as L-BFGS-B forms it. L-BFGS-B
forms its direction from the compact representation of the same L-BFGS matrix (B₀ = I·yᵀy/yᵀs of the newest
pair) that the two-loop recursion applies: the same direction up to rounding.

``scalars[STATUS]`` and ``scalars[MESSAGE]`` then hold SciPy's status (0 converged, 1 a limit, 2 abnormal) and
its task code, a key of :data:`SCIPY_MESSAGES`.

Where torch calls the closure, the generator yields: θ then holds the point to evaluate, and the
caller writes the loss into ``evaluation[0]`` and the gradient into ``grad`` before it resumes the
generator. So one source serves both callers: :class:`fastgd.optim.LBFGS`, whose Python loop calls a
user's closure, and :func:`minimize`, which runs a whole optimisation in one compiled call with the
model's pass (:func:`fastgd.kernels.train.model_entry`, a C callback) as the function it evaluates.

Buffers (every vector from the caller; a step allocates only three 2-element arrays, the strong-Wolfe bracket, and
the Moré-Thuente search's state):

* ``vectors``: :data:`N_VECTORS` × n of θ's dtype: the direction d, the previous gradient, the current
  gradient, the line search's start, and its three remembered gradients;
* ``directions``, ``steps``: history_size × n, the y's and s's, a ring buffer whose oldest pair is at
  ``scalars[HEAD]``; ``history``: 2 × history_size float64, ρ = 1/yᵀs and the two-loop's α;
* ``scalars`` (float64, :data:`N_SCALARS`): torch's ``n_iter``, ``func_evals``, ``t``, ``H_diag``,
  ``prev_loss``, the ring buffer's head and count; and what the last step did: its last loss, its
  iterations and its evaluations, SciPy's status and message (below), and its first loss (at θ as given);
* ``settings`` (float64, :data:`N_SETTINGS`): lr, max_iter, max_eval, tolerance_grad,
  tolerance_change, the line search (1 torch's strong Wolfe, 2 L-BFGS-B's Moré-Thuente, 0 none: a step of lr), and 1
  for SciPy's stopping (0: torch's).

Inner products and scalars are float64; vectors stay in θ's dtype.
"""

import math

import numpy as np
from numba import types
from numba.extending import overload

from fastgd._config import jit
from fastgd.kernels import linesearch

__all__ = ["lbfgs_step", "minimize", "cubic_interpolate", "new_buffers", "N_VECTORS", "N_SCALARS", "N_SETTINGS",
           "N_ITER", "FUNC_EVALS", "STEP_SIZE", "H_DIAG", "PREV_LOSS", "HEAD", "COUNT", "LOSS", "STEP_ITERS",
           "STEP_EVALS", "STATUS", "MESSAGE", "FIRST_LOSS", "LR", "MAX_ITER", "MAX_EVAL", "TOLERANCE_GRAD",
           "TOLERANCE_CHANGE", "LINE_SEARCH", "SCIPY_STOPPING", "SCIPY_MAX_LINE_SEARCH", "SCIPY_MESSAGES",
           "STRONG_WOLFE", "MORE_THUENTE"]

# rows of ``vectors``
DIRECTION, PREV_GRAD, FLAT_GRAD, X_INIT, G_PREV, BRACKET = 0, 1, 2, 3, 4, 5
N_VECTORS = 7  # BRACKET and BRACKET + 1
# entries of ``scalars``
N_ITER, FUNC_EVALS, STEP_SIZE, H_DIAG, PREV_LOSS, HEAD, COUNT, LOSS, STEP_ITERS, STEP_EVALS, STATUS, MESSAGE, \
    FIRST_LOSS = range(13)
N_SCALARS = 13
# entries of ``settings``
LR, MAX_ITER, MAX_EVAL, TOLERANCE_GRAD, TOLERANCE_CHANGE, LINE_SEARCH, SCIPY_STOPPING = range(7)
N_SETTINGS = 7
# values of settings[LINE_SEARCH] (0: none, a fixed step of lr)
STRONG_WOLFE, MORE_THUENTE = 1.0, 2.0

# SciPy's L-BFGS-B: evaluations a line search may take (maxls), and its messages by task code
SCIPY_MAX_LINE_SEARCH = 20
SCIPY_MESSAGES = {401: "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL",
                  402: "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH",
                  502: "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT",
                  504: "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT",
                  800: "ABNORMAL: "}
EPSILON = np.finfo(np.float64).eps

# torch's _strong_wolfe defaults, which LBFGS.step does not change
C1, C2, LINE_SEARCH_TOLERANCE = 1e-4, 0.9, 1e-9
# L-BFGS-B's line search (lnsrlb): dcsrch's tolerances and, without bounds, its largest step
SCIPY_FTOL, SCIPY_GTOL, SCIPY_XTOL, SCIPY_STEP_MAX = 1e-3, 0.9, 0.1, 1e10


def new_buffers(n_params, history_size, dtype):
    """Zeroed ``(vectors, directions, steps, history, scalars)`` for :func:`lbfgs_step` over ``n_params``."""
    return (np.zeros((N_VECTORS, n_params), dtype=dtype), np.zeros((history_size, n_params), dtype=dtype),
            np.zeros((history_size, n_params), dtype=dtype), np.zeros((2, history_size)), np.zeros(N_SCALARS))


@jit(exact=True)
def cubic_interpolate(x1, f1, g1, x2, f2, g2, xmin_bound, xmax_bound):
    """torch's ``_cubic_interpolate``: the minimiser of the cubic through (x₁, f₁, g₁) and (x₂, f₂, g₂), clipped
    to [xmin_bound, xmax_bound]; the bounds' midpoint where the cubic has no minimum."""
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = math.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _dot(a, b):
    """Σ a·b in float64: the BLAS's ``ddot`` for float64 vectors, a loop for float32 ones.

    Compiled code only (an overload). A loop's running sum waits on each addition (without fastmath LLVM keeps its
    order): 2 µs over 2,410 values, 20 of them an iteration of the two-loop recursion, where ``ddot``'s blocked sums
    take a sixth of it.
    """
    return float(np.dot(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)))


@overload(_dot, inline="always")
def _dot_overload(a, b):
    if a.dtype == types.float64 and b.dtype == types.float64:
        return lambda a, b: np.dot(a, b)

    def loop(a, b):
        total = 0.0
        for k in range(a.size):
            total += float(a[k]) * float(b[k])
        return total

    return loop


@jit(inline=True)
def _max_abs(a):
    """max |a| in four interleaved running maxima (the same value: a maximum does not depend on the order), which
    overlap where one waits on each comparison."""
    m0 = m1 = m2 = m3 = 0.0
    tail = a.size - a.size % 4
    for k in range(0, tail, 4):
        m0 = max(m0, abs(float(a[k])))
        m1 = max(m1, abs(float(a[k + 1])))
        m2 = max(m2, abs(float(a[k + 2])))
        m3 = max(m3, abs(float(a[k + 3])))
    for k in range(tail, a.size):
        m0 = max(m0, abs(float(a[k])))
    return max(max(m0, m1), max(m2, m3))


@jit(inline=True)
def _copy(target, source):
    for k in range(target.size):
        target[k] = source[k]


@jit(inline=True)
def _move_to(theta, start, step_size, direction):
    """θ ← start + t·d, in θ's dtype (torch's ``p.add_(d, alpha=t)`` from the start)."""
    t = theta.dtype.type(step_size)
    for k in range(theta.size):
        theta[k] = start[k] + t * direction[k]


@jit(exact=True)
def lbfgs_step(theta, grad, evaluation, vectors, directions, steps, history, scalars, settings):
    """One ``torch.optim.LBFGS.step(closure)`` over the flat θ, as a generator: each yield asks the caller to
    evaluate at θ (the loss into ``evaluation[0]``, the gradient into ``grad``) before resuming it.

    The first yield is torch's first closure call, at θ as given. When the generator ends, θ holds the new point,
    ``scalars[LOSS]`` the loss torch's step last knew (at θ after a line search; without one, after the last
    iteration of ``max_iter``, the loss before its step), ``scalars[STEP_ITERS]`` and ``scalars[STEP_EVALS]`` the
    step's iterations and evaluations. Buffers: see the module's docstring.
    """
    lr, max_iter, max_eval = settings[LR], int(settings[MAX_ITER]), int(settings[MAX_EVAL])
    tolerance_grad, tolerance_change = settings[TOLERANCE_GRAD], settings[TOLERANCE_CHANGE]
    strong_wolfe = settings[LINE_SEARCH] == STRONG_WOLFE
    more_thuente = settings[LINE_SEARCH] == MORE_THUENTE
    scipy_stopping = settings[SCIPY_STOPPING] != 0.0 or more_thuente
    history_size = directions.shape[0]
    real = theta.dtype.type
    d, prev_grad, flat_grad, x_init = vectors[DIRECTION], vectors[PREV_GRAD], vectors[FLAT_GRAD], vectors[X_INIT]
    g_prev = vectors[G_PREV]
    ro, al = history[0], history[1]
    bracket, bracket_f, bracket_gtd = np.zeros(2), np.zeros(2), np.zeros(2)
    search = np.zeros(linesearch.N_STATE)

    yield 0
    loss = evaluation[0]
    _copy(flat_grad, grad)
    current_evals = 1
    scalars[FUNC_EVALS] += 1
    scalars[LOSS], scalars[STEP_ITERS], scalars[STEP_EVALS], scalars[FIRST_LOSS] = loss, 0.0, 1.0, loss
    scalars[STATUS], scalars[MESSAGE] = 0.0, 401.0
    if _max_abs(flat_grad) <= tolerance_grad:
        return

    t, h_diag, prev_loss = scalars[STEP_SIZE], scalars[H_DIAG], scalars[PREV_LOSS]
    head, count = int(scalars[HEAD]), int(scalars[COUNT])
    n_iter = 0
    previous_gts = 0.0  # gᵀs of the last iteration (L-BFGS-B's test of a pair)
    previous_ys = 0.0  # yᵀs of the last iteration as L-BFGS-B forms it: t·(g_newᵀd − gᵀd)
    while n_iter < max_iter:
        n_iter += 1
        scalars[N_ITER] += 1
        if scalars[N_ITER] == 1:
            for k in range(d.size):
                d[k] = -flat_grad[k]
            head, count, h_diag = 0, 0, 1.0
        else:
            # y = g − g_prev, s = t·d, each rounded to θ's dtype as torch's tensors are
            ts = real(t)
            ys, yy = 0.0, 0.0
            for k in range(d.size):
                y_k, s_k = float(flat_grad[k] - prev_grad[k]), float(d[k] * ts)
                ys += y_k * s_k
                yy += y_k * y_k
            if more_thuente:
                ys = previous_ys
            if (ys > EPSILON * -previous_gts) if scipy_stopping else (ys > 1e-10):
                if count == history_size:
                    slot = head  # the oldest pair goes
                    head = (head + 1) % history_size
                else:
                    slot = (head + count) % history_size
                    count += 1
                y_slot, s_slot = directions[slot], steps[slot]
                for k in range(d.size):
                    y_slot[k] = flat_grad[k] - prev_grad[k]
                    s_slot[k] = d[k] * ts
                ro[slot] = 1.0 / ys
                h_diag = ys / yy
            # two-loop recursion, q and then r in d's buffer (s was taken from d above)
            for k in range(d.size):
                d[k] = -flat_grad[k]
            for i in range(count - 1, -1, -1):
                slot = (head + i) % history_size
                al[slot] = _dot(steps[slot], d) * ro[slot]
                factor = real(-al[slot])
                y_slot = directions[slot]
                for k in range(d.size):
                    d[k] += factor * y_slot[k]
            scale = real(h_diag)
            for k in range(d.size):
                d[k] *= scale
            for i in range(count):
                slot = (head + i) % history_size
                be_i = _dot(directions[slot], d) * ro[slot]
                factor = real(al[slot] - be_i)
                s_slot = steps[slot]
                for k in range(d.size):
                    d[k] += factor * s_slot[k]

        _copy(prev_grad, flat_grad)
        prev_loss = loss
        gtd = _dot(flat_grad, d)
        if scipy_stopping and gtd >= 0.0 and count > 0:
            # not a direction of descent: L-BFGS-B's restart, the steepest descent with the history emptied
            head, count, h_diag = 0, 0, 1.0
            for k in range(d.size):
                d[k] = -flat_grad[k]
            gtd = _dot(flat_grad, d)
        if scalars[N_ITER] == 1:
            if scipy_stopping:
                t = min(1.0 / math.sqrt(_dot(d, d)), 1e10) * lr
            else:
                absolute_sum = 0.0
                for k in range(flat_grad.size):
                    absolute_sum += abs(float(flat_grad[k]))
                t = min(1.0, 1.0 / absolute_sum) * lr
        else:
            t = lr
        if scipy_stopping:
            if gtd >= 0.0:  # the steepest descent is no descent: g rounds to nothing useful
                scalars[STATUS], scalars[MESSAGE] = 2.0, 800.0
                n_iter -= 1
                scalars[N_ITER] -= 1
                break
        elif gtd > -tolerance_change:
            break

        evals_here = 0
        opt_cond = False
        search_failed = False
        if more_thuente:
            # L-BFGS-B's lnsrlb: dcsrch from t over [0, 1e10], at most SCIPY_MAX_LINE_SEARCH evaluations; the step
            # it ends on (converged, or a warning: the best step it found) is the last one evaluated, where θ is
            _copy(x_init, theta)
            task = linesearch.dcsrch_start(t, loss, gtd, search, SCIPY_FTOL, SCIPY_GTOL, SCIPY_XTOL, 0.0,
                                           SCIPY_STEP_MAX)
            gtd_new = gtd
            while task == linesearch.EVALUATE and evals_here < SCIPY_MAX_LINE_SEARCH:
                _move_to(theta, x_init, t, d)
                yield 0
                evals_here += 1
                gtd_new = _dot(grad, d)
                t, task = linesearch.dcsrch(t, evaluation[0], gtd_new, search)
            search_failed = task == linesearch.EVALUATE or task == linesearch.ERROR
            if not search_failed:
                loss = evaluation[0]
                _copy(flat_grad, grad)
                previous_ys = t * (gtd_new - gtd)
        elif strong_wolfe:
            # torch's _strong_wolfe(obj_func, x_init, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals)
            max_ls = SCIPY_MAX_LINE_SEARCH - 1 if scipy_stopping else max_eval - current_evals
            _copy(x_init, theta)
            d_norm = _max_abs(d)
            _move_to(theta, x_init, t, d)
            yield 0
            f_new = evaluation[0]
            _copy(theta, x_init)
            evals_here = 1
            gtd_new = _dot(grad, d)
            t_prev, f_prev, gtd_prev = 0.0, loss, gtd
            _copy(g_prev, flat_grad)
            done = False
            ls_iter = 0
            while ls_iter < max_ls:
                if f_new > (loss + C1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
                    bracket[0], bracket[1] = t_prev, t
                    bracket_f[0], bracket_f[1] = f_prev, f_new
                    _copy(vectors[BRACKET], g_prev)
                    _copy(vectors[BRACKET + 1], grad)
                    bracket_gtd[0], bracket_gtd[1] = gtd_prev, gtd_new
                    break
                if abs(gtd_new) <= -C2 * gtd:
                    bracket[0], bracket[1] = t, t
                    bracket_f[0], bracket_f[1] = f_new, f_new
                    _copy(vectors[BRACKET], grad)
                    done = True
                    break
                if gtd_new >= 0:
                    bracket[0], bracket[1] = t_prev, t
                    bracket_f[0], bracket_f[1] = f_prev, f_new
                    _copy(vectors[BRACKET], g_prev)
                    _copy(vectors[BRACKET + 1], grad)
                    bracket_gtd[0], bracket_gtd[1] = gtd_prev, gtd_new
                    break
                min_step = t + 0.01 * (t - t_prev)
                max_step = t * 10
                previous_t = t
                t = cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, min_step, max_step)
                t_prev, f_prev, gtd_prev = previous_t, f_new, gtd_new
                _copy(g_prev, grad)
                _move_to(theta, x_init, t, d)
                yield 0
                f_new = evaluation[0]
                _copy(theta, x_init)
                evals_here += 1
                gtd_new = _dot(grad, d)
                ls_iter += 1
            if ls_iter == max_ls:
                bracket[0], bracket[1] = 0.0, t
                bracket_f[0], bracket_f[1] = loss, f_new
                _copy(vectors[BRACKET], flat_grad)
                _copy(vectors[BRACKET + 1], grad)

            # zoom
            insufficient_progress = False
            low, high = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
            while not done and ls_iter < max_ls:
                if abs(bracket[1] - bracket[0]) * d_norm < LINE_SEARCH_TOLERANCE:
                    break
                lower, upper = (bracket[0], bracket[1]) if bracket[0] <= bracket[1] else (bracket[1], bracket[0])
                t = cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1],
                                      bracket_gtd[1], lower, upper)
                largest, smallest = max(bracket[0], bracket[1]), min(bracket[0], bracket[1])
                eps = 0.1 * (largest - smallest)
                if min(largest - t, t - smallest) < eps:
                    if insufficient_progress or t >= largest or t <= smallest:
                        if abs(t - largest) < abs(t - smallest):
                            t = largest - eps
                        else:
                            t = smallest + eps
                        insufficient_progress = False
                    else:
                        insufficient_progress = True
                else:
                    insufficient_progress = False
                _move_to(theta, x_init, t, d)
                yield 0
                f_new = evaluation[0]
                _copy(theta, x_init)
                evals_here += 1
                gtd_new = _dot(grad, d)
                ls_iter += 1
                if f_new > (loss + C1 * t * gtd) or f_new >= bracket_f[low]:
                    bracket[high], bracket_f[high], bracket_gtd[high] = t, f_new, gtd_new
                    _copy(vectors[BRACKET + high], grad)
                    low, high = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
                else:
                    if abs(gtd_new) <= -C2 * gtd:
                        done = True
                    elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                        bracket[high], bracket_f[high], bracket_gtd[high] = bracket[low], bracket_f[low], \
                            bracket_gtd[low]
                        _copy(vectors[BRACKET + high], vectors[BRACKET + low])
                    bracket[low], bracket_f[low], bracket_gtd[low] = t, f_new, gtd_new
                    _copy(vectors[BRACKET + low], grad)
            t = bracket[low]
            loss = bracket_f[low]
            _copy(flat_grad, vectors[BRACKET + low])
            _move_to(theta, x_init, t, d)
            opt_cond = _max_abs(flat_grad) <= tolerance_grad
        else:
            if scipy_stopping:
                _copy(x_init, theta)  # the iterate to go back to should the step not lower the loss
            _move_to(theta, theta, t, d)
            if n_iter != max_iter or scipy_stopping:
                yield 0
                loss = evaluation[0]
                _copy(flat_grad, grad)
                opt_cond = _max_abs(flat_grad) <= tolerance_grad
                evals_here = 1

        current_evals += evals_here
        scalars[FUNC_EVALS] += evals_here
        if scipy_stopping:
            if search_failed if more_thuente else not loss < prev_loss:
                # the line search failed (Moré-Thuente: no step accepted within its evaluations; torch's: no lower
                # loss): back to the last iterate, then L-BFGS-B's restart (not an iteration), or its abnormal end
                # when the history is already empty
                _copy(theta, x_init)
                _copy(flat_grad, prev_grad)
                loss = prev_loss
                n_iter -= 1
                scalars[N_ITER] -= 1
                if count == 0:
                    scalars[STATUS], scalars[MESSAGE] = 2.0, 800.0
                    break
                head, count, h_diag = 0, 0, 1.0
                previous_ys = 0.0
                continue
            previous_gts = t * gtd
            if n_iter >= max_iter:
                scalars[STATUS], scalars[MESSAGE] = 1.0, 504.0
                break
            if current_evals > max_eval:
                scalars[STATUS], scalars[MESSAGE] = 1.0, 502.0
                break
            if _max_abs(flat_grad) <= tolerance_grad:
                scalars[STATUS], scalars[MESSAGE] = 0.0, 401.0
                break
            if prev_loss - loss <= tolerance_change * max(abs(prev_loss), abs(loss), 1.0):
                scalars[STATUS], scalars[MESSAGE] = 0.0, 402.0
                break
            continue
        if n_iter == max_iter or current_evals >= max_eval or opt_cond:
            break
        step_norm = 0.0
        for k in range(d.size):
            step_norm = max(step_norm, abs(float(d[k] * real(t))))
        if step_norm <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
            break

    scalars[STEP_SIZE], scalars[H_DIAG], scalars[PREV_LOSS] = t, h_diag, prev_loss
    scalars[HEAD], scalars[COUNT] = head, count
    scalars[LOSS], scalars[STEP_ITERS], scalars[STEP_EVALS] = loss, n_iter, current_evals


# minimize's own copy of the generator, kept out of the on-disk cache: a generator that Numba loads from its cache
# cannot be iterated by a function compiled afterwards (the generator's implementation is registered only when it
# is compiled in the process), while minimize itself, once cached, loads as machine code that needs neither
_lbfgs_step_compiled_here = jit(lbfgs_step.py_func, exact=True, cache=False)


@jit(exact=True)
def minimize(model, theta, X, Y, layer_sizes, activation, output, alpha, grad, activations, deltas, evaluation,
             vectors, directions, steps, history, scalars, settings):
    """One :func:`lbfgs_step` on the full batch (X, Y) in one compiled call, ``model`` (a pass of
    :func:`fastgd.kernels.train.model_signature`) evaluating every point it asks for; returns ``scalars[LOSS]``.

    ``activations`` and ``deltas``: the pass's workspaces for all of X's rows. With ``settings[MAX_ITER]`` the
    whole optimisation's iterations and ``settings[MAX_EVAL]`` its evaluations, this is a full L-BFGS run.
    """
    for _ in _lbfgs_step_compiled_here(theta, grad, evaluation, vectors, directions, steps, history, scalars,
                                       settings):
        evaluation[0] = model(theta, X, Y, layer_sizes, activation, output, alpha, grad, activations, deltas)
    return scalars[LOSS]
