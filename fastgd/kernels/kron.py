r"""PSGD-Kron (pytorch-optimizer's ``Kron``): Kronecker-factored preconditioners, one tensor at a time.

``kron_step``
    Once per step, in float64: whether the preconditioners update (the probability schedule and its counter),
    whether they are balanced (a uniform draw keyed on (seed, step)), the momentum's bias correction.
``kron_tensor``
    One tensor's step over 1-D views of its span of the flat vector (a weight matrix row-major, rows × columns;
    a vector as a column): momentum, the factors' update from a probe vector, the preconditioned, clipped step.
    A factor is upper triangular (a side's square block of ``aux``) or diagonal (the block's first entries).
``kron_aux_size``
    The factors' room for a tensor of a given shape: a square block per side (a side longer than
    :data:`KRON_MAX_TRIANGULAR` is always diagonal).
``kron_uniform``, ``kron_probe``
    The random numbers: a counter-based generator (SplitMix64, as :mod:`fastgd.kernels.shuffle`) keyed on (seed,
    step) for the balancing draw and on (seed, step, tensor) for each tensor's standard normal probe (Box–Muller),
    so a run is fixed by its seed whatever ran before. Callable from Python: the tests draw the same numbers.
"""

import math

import numpy as np

from fastgd._config import jit
from fastgd.kernels.blas import syrk, trmm, trsm
from fastgd.kernels.shuffle import _GOLDEN, splitmix64

__all__ = ["KRON_MAX_TRIANGULAR", "kron_step", "kron_aux_size", "kron_tensor", "kron_uniform", "kron_probe",
           "kron_update_probability"]

# The longest side a triangular factor may have: pytorch-optimizer's default max_size_triangular.
KRON_MAX_TRIANGULAR = 8192
# pytorch-optimizer's eps: the smallest normal bfloat16 (and float32), 2⁻¹²⁶
_EPS = 2.0 ** -126
_UNIT = 2.0 ** -53
# pytorch-optimizer's default schedule (precondition_update_prob_schedule()): max_prob, min_prob, decay, flat_start
_SCHEDULE = (1.0, 0.03, 0.001, 500.0)


@jit(inline=True)
def _key(seed, step, stream):
    """The generator's state for one stream (0: the balancing draw; tensor k: k + 1) of one step."""
    _, bits = splitmix64(np.uint64(np.int64(seed)) * _GOLDEN ^ np.uint64(np.int64(step)))
    _, bits = splitmix64(bits ^ np.uint64(np.int64(stream)))
    return bits


@jit(inline=True)
def _uniform_from(bits):
    """A double in [0, 1) from the top 53 bits."""
    return float(bits >> np.uint64(11)) * _UNIT


@jit
def kron_uniform(seed, step):
    """The uniform draw in [0, 1) that decides step ``step``'s balancing (pytorch-optimizer's np.random.random())."""
    _, bits = splitmix64(_key(seed, step, 0))
    return _uniform_from(bits)


@jit
def kron_probe(seed, step, tensor, out):
    """Fill ``out`` with the standard normals of tensor ``tensor``'s probe at step ``step`` (Box–Muller, in
    float64, then rounded to ``out``'s dtype)."""
    state = _key(seed, step, tensor + 1)
    real = out.dtype.type
    for i in range(0, out.size, 2):
        state, first = splitmix64(state)
        state, second = splitmix64(state)
        radius = math.sqrt(-2.0 * math.log(1.0 - _uniform_from(first)))  # 1 − u in (0, 1]
        angle = 2.0 * math.pi * _uniform_from(second)
        out[i] = real(radius * math.cos(angle))
        if i + 1 < out.size:
            out[i + 1] = real(radius * math.sin(angle))


@jit(inline=True)
def kron_update_probability(step, probability):
    """The preconditioner's update probability at step ``step`` (1 for the first): ``probability``, or where it is
    NaN (None) pytorch-optimizer's default schedule at the step count before it, in float32 as torch computes it."""
    if probability == probability:
        return probability
    max_prob, min_prob, decay, flat_start = _SCHEDULE
    exponent = np.float32(-decay) * (np.float32(step - 1) - np.float32(flat_start))
    scheduled = np.float32(max_prob) * np.float32(math.exp(float(exponent)))
    return float(min(max(scheduled, np.float32(min_prob)), np.float32(max_prob)))


@jit(inline=True)
def kron_step(step, momentum, pre_conditioner_update_probability, update_counter, balance_prob, seed):
    """(new update counter, update the factors?, balance them?, 1 − μᵗ, 1 − μ), as pytorch-optimizer decides:
    the factors update when the counter reaches 1 / probability; they are balanced at an update with probability
    ``balance_prob``."""
    probability = kron_update_probability(step, pre_conditioner_update_probability)
    counter = update_counter + 1.0
    if pre_conditioner_update_probability == pre_conditioner_update_probability:
        update = probability > 0.0 and counter >= 1.0 / probability
    else:  # the schedule's 1 / probability is a float32 tensor in torch
        update = probability > 0.0 and counter >= float(np.float32(1.0) / np.float32(probability))
    balance = kron_uniform(seed, step) < balance_prob and update
    return 0.0 if update else counter, update, balance, 1.0 - momentum ** step, 1.0 - momentum


@jit(inline=True)
def _side_room(side):
    return side * side if side <= KRON_MAX_TRIANGULAR else side


@jit(inline=True)
def kron_aux_size(rows, columns, ndim):
    """A square block per side of a matrix (one for a vector); the diagonal factors use its first entries."""
    return _side_room(rows) + (_side_room(columns) if ndim == 2 else 0)


@jit(inline=True)
def _triangular(side, ndim, diagonal, max_size_triangular, min_ndim_triangular):
    """pytorch-optimizer's choice: a diagonal factor for a side of 1, longer than the limit, of a tensor of fewer
    dimensions than ``min_ndim_triangular``, or chosen by the memory-saving mode."""
    return not (side == 1 or side > max_size_triangular or side > KRON_MAX_TRIANGULAR or ndim < min_ndim_triangular
                or diagonal)


@jit
def _apply(q, triangular, x, out, m, n, left, transpose):
    """out ← op(Q) X (``left``, Q m × m) or X op(Q) (Q n × n); X and out m × n. A diagonal Q scales rows or
    columns."""
    if triangular:
        # a loop, not out[:] = x: an array assigned to a slice makes Numba compile its shape-mismatch message (str,
        # repr, concatenation: seconds of compiling, once per process)
        for i in range(m * n):
            out[i] = x[i]
        trmm(q, 0, out, 0, m, n, left, True, transpose, x.dtype.type(1.0))
    else:
        for i in range(m):
            for j in range(n):
                out[i * n + j] = x[i * n + j] * (q[i] if left else q[j])


@jit
def _solve(q, triangular, x, m, n, left):
    """x ← Q⁻ᵀ X (``left``) or X Q⁻¹, in place: the probe's side of the update (pytorch-optimizer's conj_b)."""
    if triangular:
        trsm(q, 0, x, 0, m, n, left, True, left, x.dtype.type(1.0))
    else:
        for i in range(m):
            for j in range(n):
                x[i * n + j] = x[i * n + j] / (q[i] if left else q[j])


@jit
def _norm_lower_bound(a, side):
    """pytorch-optimizer's norm_lower_bound of the symmetric side × side ``a`` (scaled in place): a lower bound of
    its spectral norm from its largest row or column."""
    real = a.dtype.type
    largest = real(0.0)
    for i in range(side * side):
        largest = max(largest, abs(a[i]))
    scale = largest if largest > 0 else real(1.0)
    for i in range(side * side):
        a[i] = a[i] / scale
    column_best, column, row_best, row = real(-1.0), 0, real(-1.0), 0
    for j in range(side):
        total = real(0.0)
        for i in range(side):
            total += a[i * side + j] * a[i * side + j]
        if total > column_best:
            column_best, column = total, j
    for i in range(side):
        total = real(0.0)
        for j in range(side):
            total += a[i * side + j] * a[i * side + j]
        if total > row_best:
            row_best, row = total, i
    tiny = np.finfo(a.dtype).tiny
    x = np.empty(side, a.dtype)
    squares = real(0.0)
    if column_best > row_best:  # x = a[:, column] @ a, then ‖(x/‖x‖) @ aᵀ‖
        for k in range(side):
            total = real(0.0)
            for r in range(side):
                total += a[r * side + column] * a[r * side + k]
            x[k] = total
    else:  # x = a @ a[row, :], then ‖aᵀ @ (x/‖x‖)‖
        for r in range(side):
            total = real(0.0)
            for k in range(side):
                total += a[r * side + k] * a[row * side + k]
            x[r] = total
    for k in range(side):
        squares += x[k] * x[k]
    length = max(real(math.sqrt(squares)), tiny)
    bound = real(0.0)
    for r in range(side):
        total = real(0.0)
        for k in range(side):
            total += (x[k] / length) * (a[r * side + k] if column_best > row_best else a[k * side + r])
        bound += total * total
    return largest * real(math.sqrt(bound))


@jit
def _update_factor(q, triangular, t1, t2, side, precondition_lr, eps, scratch):
    """Q ← Q − lr · triu(T₁ − T₂) Q / (‖T₁ + T₂‖ + eps) (triangular; the norm a lower bound of the spectral one), or
    q ← q − lr (t₁ − t₂) q / (max|t₁ + t₂| + eps) (diagonal): pytorch-optimizer's update_precondition."""
    if triangular:  # the terms' upper triangles (syrk); T₁ + T₂ is made whole for the norm
        for i in range(side):
            for j in range(i, side):
                total = t1[i * side + j] + t2[i * side + j]
                t1[i * side + j] = (t1[i * side + j] - t2[i * side + j]) * precondition_lr
                t2[i * side + j] = total
                t2[j * side + i] = total
        denominator = _norm_lower_bound(t2, side) + eps
        for i in range(side):
            for j in range(i, side):
                t1[i * side + j] = t1[i * side + j] / denominator
        for i in range(side * side):  # a loop, as in _apply
            scratch[i] = q[i]
        trmm(t1, 0, scratch, 0, side, side, True, True, False, q.dtype.type(1.0))
        for i in range(side * side):
            q[i] = q[i] - scratch[i]
    else:
        largest = t1.dtype.type(0.0)
        for i in range(side):
            largest = max(largest, abs(t1[i] + t2[i]))
        for i in range(side):
            q[i] = q[i] - (t1[i] - t2[i]) * precondition_lr * q[i] / (largest + eps)


@jit
def _gram(x, m, n, left, out):
    """The upper triangle of X Xᵀ (``left``, m × m) or of Xᵀ X (n × n), for a triangular factor."""
    syrk(x, 0, out, 0, m, n, not left, 1.0, 0.0)


@jit
def _squares(x, m, n, left, out):
    """Σⱼ X²ᵢⱼ per row (``left``) or per column: the diagonal factor's terms."""
    side = m if left else n
    for k in range(side):
        out[k] = x.dtype.type(0.0)
    for i in range(m):
        for j in range(n):
            out[i if left else j] += x[i * n + j] * x[i * n + j]


@jit
def kron_tensor(params, grad, momentum_buffer, aux, rows, columns, ndim, step, tensor, lr, momentum, weight_decay,
                weight_decouple, max_size_triangular, min_ndim_triangular, memory_save_mode_is_one_diag,
                memory_save_mode_is_smart_one_diag, memory_save_mode_is_all_diag, momentum_into_precondition_update,
                precondition_lr, precondition_init_scale, maximize, seed, do_update, balance,
                bias_correction1, one_minus_momentum):
    """One tensor's PSGD-Kron step (pytorch-optimizer's ``Kron.step`` for one parameter), in place.

    A matrix (rows × columns) has a left and a right factor, a vector (ndim 1) a left one; each is upper triangular
    or diagonal, set to (init scale)^(1/ndim)·I at step 1. Weight decay reaches matrices only, as there.
    """
    real = params.dtype.type
    m = rows
    n = columns if ndim == 2 else 1
    size = m * n
    # which factors are diagonal: pytorch-optimizer's memory_save_mode (ties go to the later side, as argsort)
    left_diagonal = memory_save_mode_is_all_diag or (memory_save_mode_is_one_diag and (ndim == 1 or m > n)) or (
        memory_save_mode_is_smart_one_diag and ndim == 2 and m > n)
    right_diagonal = memory_save_mode_is_all_diag or (memory_save_mode_is_one_diag and ndim == 2 and n >= m) or (
        memory_save_mode_is_smart_one_diag and ndim == 2 and n > m)
    left_triangular = _triangular(m, ndim, left_diagonal, max_size_triangular, min_ndim_triangular)
    right_triangular = ndim == 2 and _triangular(n, ndim, right_diagonal, max_size_triangular, min_ndim_triangular)
    left_room = _side_room(m)
    q_left = aux[:left_room]
    q_right = aux[left_room:]  # empty for a vector
    if np.int64(step) == 1:
        scale = real(float(precondition_init_scale) ** (1.0 / ndim))
        aux[:] = real(0.0)
        for i in range(m):
            q_left[i * m + i if left_triangular else i] = scale
        if ndim == 2:
            for j in range(n):
                q_right[j * n + j if right_triangular else j] = scale
    matrix = ndim == 2

    g = np.empty(size, params.dtype)
    for i in range(size):
        g[i] = -grad[i] if maximize else grad[i]
        if matrix and not weight_decouple and weight_decay != 0:
            g[i] = g[i] + weight_decay * params[i]
    debiased = np.empty(size, params.dtype)
    for i in range(size):
        momentum_buffer[i] = momentum_buffer[i] * momentum + one_minus_momentum * g[i]
        debiased[i] = momentum_buffer[i] / bias_correction1

    if matrix and balance:  # the factors' largest entries to their geometric mean
        left_norm, right_norm = real(0.0), real(0.0)
        for i in range(m * m if left_triangular else m):
            left_norm = max(left_norm, abs(q_left[i]))
        for j in range(n * n if right_triangular else n):
            right_norm = max(right_norm, abs(q_right[j]))
        mean = real(math.sqrt(left_norm * right_norm))
        left_factor, right_factor = mean / left_norm, mean / right_norm
        for i in range(m * m if left_triangular else m):
            q_left[i] = q_left[i] * left_factor
        for j in range(n * n if right_triangular else n):
            q_right[j] = q_right[j] * right_factor

    work = np.empty(size, params.dtype)
    if do_update:
        eps = real(_EPS)
        target = debiased if momentum_into_precondition_update else g
        a = np.empty(size, params.dtype)
        _apply(q_left, left_triangular, target, work, m, n, True, False)
        if matrix:
            _apply(q_right, right_triangular, work, a, m, n, False, True)
        else:
            for i in range(size):  # a loop, as in _apply
                a[i] = work[i]
        b = np.empty(size, params.dtype)
        kron_probe(seed, step, tensor, b)
        _solve(q_left, left_triangular, b, m, n, True)
        if matrix:
            _solve(q_right, right_triangular, b, m, n, False)
        # every factor's terms from the factors before the update, then the updates
        left_terms = m * m if left_triangular else m
        t1_left, t2_left = np.empty(left_terms, params.dtype), np.empty(left_terms, params.dtype)
        if left_triangular:
            _gram(a, m, n, True, t1_left)
            _gram(b, m, n, True, t2_left)
        else:
            _squares(a, m, n, True, t1_left)
            _squares(b, m, n, True, t2_left)
        if matrix:
            right_terms = n * n if right_triangular else n
            t1_right, t2_right = np.empty(right_terms, params.dtype), np.empty(right_terms, params.dtype)
            if right_triangular:
                _gram(a, m, n, False, t1_right)
                _gram(b, m, n, False, t2_right)
            else:
                _squares(a, m, n, False, t1_right)
                _squares(b, m, n, False, t2_right)
        side_scratch = np.empty(max(m * m if left_triangular else 0, n * n if right_triangular else 0), params.dtype)
        _update_factor(q_left, left_triangular, t1_left, t2_left, m, precondition_lr, eps, side_scratch)
        if matrix:
            _update_factor(q_right, right_triangular, t1_right, t2_right, n, precondition_lr, eps, side_scratch)

    # P = Q_Lᵀ Q_L D Q_Rᵀ Q_R
    update = np.empty(size, params.dtype)
    _apply(q_left, left_triangular, debiased, work, m, n, True, False)
    _apply(q_left, left_triangular, work, update, m, n, True, True)
    if matrix:
        _apply(q_right, right_triangular, update, work, m, n, False, True)
        _apply(q_right, right_triangular, work, update, m, n, False, False)
    squares = 0.0
    for i in range(size):
        squares += float(update[i]) * float(update[i])
    rms = real(math.sqrt(squares / size))
    clip = min(real(1.1) / (rms + real(1e-6)), real(1.0))
    for i in range(size):
        step_i = update[i] * clip
        if matrix and weight_decouple and weight_decay != 0:
            step_i = step_i + weight_decay * params[i]
        params[i] = params[i] - lr * step_i
