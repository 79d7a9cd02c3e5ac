r"""Matrix preconditioners per tensor: Shampoo's inverse roots and SOAP's eigenbases (pytorch-optimizer's).

``shampoo_tensor`` and ``soap_tensor`` are :class:`fastgd.rules.PerTensor` functions: they take one tensor's
1-D views of the flat vector (row-major for a weight matrix, which a conv kernel is as (out, in·kh·kw)), its
state slots, and ``aux``, the tensor's share of the auxiliary state, which holds the preconditioner matrices
(``*_aux_size`` says how many elements a tensor of a given shape takes). They call LAPACK (``np.linalg.eigh``,
``np.linalg.qr``, through SciPy's LAPACK as Numba binds it), so they have no CUDA form: the rules declare
``PerTensor(..., cuda=False)``. Matrix products go through :func:`fastgd.kernels.blas.gemm`, the statistics' G Gᵀ
and GᵀG through ``?syrk`` (:func:`_add_gram`: half a product's arithmetic). The gradient
view is never written: the functions work on a copy.

``shampoo_step`` and ``soap_step`` are the rules' per-step functions, in float64 as pytorch-optimizer computes
its Python scalars.
"""

import math

import numpy as np

from fastgd._config import jit
from fastgd.kernels.blas import gemm, syrk

__all__ = ["MAX_SIDE", "shampoo_step", "shampoo_aux_size", "shampoo_tensor", "inverse_root", "soap_step",
           "soap_aux_size", "soap_tensor"]

# SOAP keeps eigenbases for sides up to this many (pytorch-optimizer's default max_precondition_dim): the
# auxiliary state is sized from the tensor's shape alone, before the hyperparameters are known.
MAX_SIDE = 10000


# Tiles of the statistics' mirror pass (:func:`_add_gram`): a tile's rows and its transpose's stay in cache.
_MIRROR_TILE = 32


@jit
def _add_gram(g, r, c, transpose, aux, offset, alpha, beta):
    """The statistic S at ``aux[offset:]`` (side × side, symmetric) ← ``beta`` S + ``alpha`` G Gᵀ (or GᵀG with
    ``transpose``), G the r × c matrix ``g``: Shampoo's L += G Gᵀ (1, 1), SOAP's ``lerp(GG, G Gᵀ, w)`` (w, 1 − w).

    ``?syrk`` updates S's upper triangle, half a ``?gemm``'s arithmetic (DeepOBS 2c2d's R += GᵀG, 3136 × 3136
    from 1024 rows, float32, one thread, AMD EPYC Zen 4: 102 ms against the product's 192), and the lower
    triangle is then copied from it, tile by tile: S stays exactly symmetric.
    """
    side = c if transpose else r
    syrk(g, 0, aux, offset, r, c, transpose, alpha, beta)
    for top in range(0, side, _MIRROR_TILE):
        bottom = min(top + _MIRROR_TILE, side)
        for left in range(top, side, _MIRROR_TILE):
            for i in range(top, bottom):
                for j in range(max(left, i + 1), min(left + _MIRROR_TILE, side)):
                    aux[offset + j * side + i] = aux[offset + i * side + j]


@jit(exact=True)
def _finite(values, offset, n):
    """Whether ``values[offset:offset + n]`` is all finite (compiled without fastmath, which drops the check)."""
    for k in range(offset, offset + n):
        if not math.isfinite(values[k]):
            return False
    return True


@jit
def _fill_nan(values, offset, n):
    """A diverged statistic makes its matrix function NaN, as LAPACK would (Numba's refuses such input)."""
    for k in range(offset, offset + n):
        values[k] = math.nan


# --- Shampoo ----------------------------------------------------------------------------------------------

@jit(inline=True)
def shampoo_step(step, lr, weight_decay, fixed_decay, preconditioning_compute_steps):
    """(the decoupled decay factor 1 − λγ (1 − λ with ``fixed_decay``), whether this step recomputes the inverse
    roots: ``step % preconditioning_compute_steps == 0``)."""
    return 1.0 - weight_decay * (1.0 if fixed_decay else lr), step % preconditioning_compute_steps == 0


@jit(inline=True)
def shampoo_aux_size(rows, columns, ndim):
    """L and its inverse root (rows² each) and, for a matrix, R and its inverse root (columns² each)."""
    return 2 * (rows * rows + columns * columns) if ndim == 2 else 2 * rows * rows


@jit
def inverse_root(aux, offset, n, out, out_offset, power):
    """``out[out_offset:]`` = the n × n symmetric matrix at ``aux[offset:]`` to the power −1/``power``.

    pytorch-optimizer's ``compute_power_svd``: U diag(s^(−1/p)) Vᵀ from the SVD. For a symmetric matrix the SVD
    is the eigendecomposition with s = |λ| and V = sign(λ) Q, so this is Q diag(sign(λ) |λ|^(−1/p)) Qᵀ from
    ``eigh`` (a fraction of the SVD's cost); λ = 0 gives ∞ as there.
    """
    real = aux.dtype.type
    if not _finite(aux, offset, n * n):
        _fill_nan(out, out_offset, n * n)
        return
    values, vectors = np.linalg.eigh(aux[offset:offset + n * n].reshape((n, n)))
    left = np.empty(n * n, aux.dtype)
    right = np.empty(n * n, aux.dtype)
    roots = np.empty(n, aux.dtype)
    for j in range(n):
        magnitude = abs(values[j])
        roots[j] = real(magnitude ** (-1.0 / power)) if magnitude > 0 else real(math.inf)
        if values[j] < 0:
            roots[j] = -roots[j]
    for i in range(n):  # row by row: the products read and write in memory order
        for j in range(n):
            left[i * n + j] = vectors[i, j] * roots[j]
            right[i * n + j] = vectors[i, j]
    gemm(left, 0, right, 0, out, out_offset, n, n, n, False, True, 1.0, 0.0)


@jit
def shampoo_tensor(params, grad, momentum_buffer, aux, rows, columns, ndim, step, lr, momentum, weight_decay,
                   matrix_eps, use_momentum, weight_decouple, shampoo_decay, recompute):
    """One tensor's Shampoo step (pytorch-optimizer's ``Shampoo``).

    G ← lerp(G, B, μ) (from the second step, with momentum); decay (θ ← θ·``shampoo_decay``, or G ← G + λθ);
    L ← L + G Gᵀ, R ← R + GᵀG (L, R start at ``matrix_eps``·I); every k-th step L̃ = L^(−1/4), R̃ = R^(−1/4);
    U = L̃ G R̃; B ← U; θ ← θ − γU. A vector takes L ← L + g gᵀ, L̃ = L^(−1/2), U = L̃ g. ``aux`` holds L, L̃
    and, for a matrix, R, R̃.
    """
    n = params.size
    real = params.dtype.type
    one = real(1.0)
    g = np.empty(n, params.dtype)
    for i in range(n):
        g[i] = grad[i]
    if use_momentum and step > 1:  # grad.lerp_(buffer, μ) as torch writes it; the buffer starts at the gradient
        for i in range(n):
            if abs(momentum) < real(0.5):
                g[i] = g[i] + momentum * (momentum_buffer[i] - g[i])
            else:
                g[i] = momentum_buffer[i] - (momentum_buffer[i] - g[i]) * (one - momentum)
    if weight_decay != 0:
        if weight_decouple:
            for i in range(n):
                params[i] = params[i] * shampoo_decay
        else:
            for i in range(n):
                g[i] = g[i] + weight_decay * params[i]
    r = rows
    c = columns if ndim == 2 else 1
    left, left_root = 0, r * r
    right, right_root = 2 * r * r, 2 * r * r + c * c
    if step == 1:
        for k in range(2 * r * r + (2 * c * c if ndim == 2 else 0)):
            aux[k] = 0
        for i in range(r):
            aux[left + i * r + i] = matrix_eps
        if ndim == 2:
            for i in range(c):
                aux[right + i * c + i] = matrix_eps
    _add_gram(g, r, c, False, aux, left, 1.0, 1.0)  # L += G Gᵀ
    if ndim == 2:
        _add_gram(g, r, c, True, aux, right, 1.0, 1.0)  # R += Gᵀ G
    if recompute:
        inverse_root(aux, left, r, aux, left_root, 4.0 if ndim == 2 else 2.0)
        if ndim == 2:
            inverse_root(aux, right, c, aux, right_root, 4.0)
    update = np.empty(n, params.dtype)
    if ndim == 2:
        half = np.empty(n, params.dtype)
        gemm(aux, left_root, g, 0, half, 0, r, c, r, False, False, 1.0, 0.0)
        gemm(half, 0, aux, right_root, update, 0, r, c, c, False, False, 1.0, 0.0)
    else:
        gemm(g, 0, aux, left_root, update, 0, 1, r, r, False, False, 1.0, 0.0)  # gᵀ L̃, as the reference
    for i in range(n):
        if use_momentum:
            momentum_buffer[i] = update[i]
        params[i] = params[i] - lr * update[i]


# --- SOAP ---------------------------------------------------------------------------------------------------

@jit(inline=True)
def soap_step(step, lr, beta1, beta2, shampoo_beta, weight_decay, precondition_frequency, correct_bias):
    """(first step?, the step size γ√(1 − β2ˢ)/(1 − β1ˢ) (γ without ``correct_bias``), 1 − β1, 1 − β2,
    1 − β_shampoo (β2 where None, NaN here), the decay factor 1 − γλ, whether this step refreshes the
    eigenbases), with s = t − 1: SOAP's first step only builds its preconditioner."""
    s = step - 1
    step_size = lr
    if correct_bias and s > 0:
        step_size = lr * (math.sqrt(1.0 - beta2 ** s) / (1.0 - beta1 ** s))
    statistics_beta = shampoo_beta if shampoo_beta == shampoo_beta else beta2
    return (step == 1, step_size, 1.0 - beta1, 1.0 - beta2, 1.0 - statistics_beta, 1.0 - weight_decay * lr,
            s > 0 and s % precondition_frequency == 0)


@jit(inline=True)
def _soap_sides_size(rows, columns, ndim):
    size = 2 * rows * rows if rows <= MAX_SIDE else 0
    if ndim == 2 and columns <= MAX_SIDE:
        size += 2 * columns * columns
    return size


@jit(inline=True)
def soap_aux_size(rows, columns, ndim):
    """The statistic GG and its eigenbasis Q (side² each) for every side up to :data:`MAX_SIDE`: rows and columns
    of a matrix, the length of a vector (used with ``precondition_1d``); then the first moment in the bases,
    Q_Lᵀ m Q_R (rows × columns)."""
    return _soap_sides_size(rows, columns, ndim) + rows * (columns if ndim == 2 else 1)


@jit(inline=True)
def _lerp(start, end, weight, one):
    """torch's ``lerp``: start + w(end − start) for |w| < ½, else end − (end − start)(1 − w)."""
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (one - weight)


@jit
def _rotate(x, aux, r, c, left, q_left, right, q_right, forward, out):
    """``out`` = Q_Lᵀ X Q_R (``forward``) or Q_L X Q_Rᵀ, X the r × c matrix ``x``; an inactive side is the
    identity. The left side is applied first, as the reference's ``tensordot`` over dimension 0 then 1."""
    n = r * c
    middle = np.empty(n, x.dtype)
    if left:
        gemm(aux, q_left, x, 0, middle, 0, r, c, r, forward, False, 1.0, 0.0)
    else:
        for i in range(n):
            middle[i] = x[i]
    if right:
        gemm(middle, 0, aux, q_right, out, 0, r, c, c, False, not forward, 1.0, 0.0)
    else:
        for i in range(n):
            out[i] = middle[i]


@jit
def _eigenbasis(aux, offset, n):
    """Q (at ``offset + n²``) from ``eigh(GG + 1e-30·I)``, GG at ``offset``, columns by decreasing eigenvalue."""
    if not _finite(aux, offset, n * n):
        _fill_nan(aux, offset + n * n, n * n)
        return
    matrix = np.empty((n, n), aux.dtype)
    for i in range(n):
        for j in range(n):
            matrix[i, j] = aux[offset + i * n + j]
        matrix[i, i] = matrix[i, i] + aux.dtype.type(1e-30)
    _, vectors = np.linalg.eigh(matrix)
    for i in range(n):
        for j in range(n):
            aux[offset + n * n + i * n + j] = vectors[i, n - 1 - j]


@jit
def _power_iteration(aux, offset, n, exp_avg_sq, r, c, along_rows):
    """One QR power iteration of the eigenbasis (pytorch-optimizer's ``get_orthogonal_matrix_qr``): P = GG Q,
    columns sorted by the estimated eigenvalues diag(Qᵀ GG Q), decreasing; Q ← the Q of P's QR, in the
    parameters' dtype; ``exp_avg_sq`` permuted the same way along its rows (or columns)."""
    q = offset + n * n
    product = np.empty(n * n, aux.dtype)
    gemm(aux, offset, aux, q, product, 0, n, n, n, False, False, 1.0, 0.0)
    estimates = np.zeros(n, aux.dtype)
    for i in range(n):  # each column's sum in row order, read row by row
        for j in range(n):
            estimates[j] += aux[q + i * n + j] * product[i * n + j]
    if not _finite(product, 0, n * n):
        _fill_nan(aux, q, n * n)
        return
    order = np.argsort(-estimates)
    permuted = np.empty(r * c, exp_avg_sq.dtype)
    for i in range(r):
        for j in range(c):
            permuted[i * c + j] = exp_avg_sq[order[i] * c + j] if along_rows else exp_avg_sq[i * c + order[j]]
    for k in range(r * c):
        exp_avg_sq[k] = permuted[k]
    iteration = np.empty((n, n), aux.dtype)
    for i in range(n):
        for j in range(n):
            iteration[i, j] = product[i * n + order[j]]
    basis, _ = np.linalg.qr(iteration)
    for i in range(n):
        for j in range(n):
            aux[q + i * n + j] = basis[i, j]


@jit
def soap_tensor(params, grad, exp_avg, exp_avg_sq, aux, rows, columns, ndim, first_step, soap_step_size,
                one_minus_beta1, one_minus_beta2, one_minus_shampoo_beta, eps, weight_decay, soap_decay,
                max_precondition_dim, refresh, precondition_1d, normalize_gradient):
    """One tensor's SOAP step (pytorch-optimizer's ``SOAP``): Adam in the eigenbases of Shampoo's statistics.

    Step 1 only builds the statistics GG_L ← (1 − β_s) G Gᵀ, GG_R ← (1 − β_s) GᵀG and their eigenbases Q (eigh,
    decreasing). Then: m ← lerp(m, G, 1 − β1) (unrotated), v ← lerp(v, (Q_Lᵀ G Q_R)², 1 − β2),
    N = Q_L [(Q_Lᵀ m Q_R) / (√v + ε)] Q_Rᵀ (divided by RMS(N) + ε with ``normalize_gradient``),
    θ ← (θ − η N)(1 − γλ), the statistics take G, and every ``precondition_frequency`` steps each Q takes one QR
    power iteration (v permuted with it). A side longer than ``max_precondition_dim`` is not rotated; a vector is
    rotated only with ``precondition_1d``.

    The reference rotates m every step. Here Q_Lᵀ m Q_R is kept in ``aux`` and takes the rotated gradient's lerp
    (the same by linearity, to rounding); it is rotated afresh only when the bases change. A step that does not
    refresh the bases so takes two rotations (four products), not three (six), beside its two statistics
    (reports/preconditioner_speed.md: DeepOBS 2c2d's such step 981-996 → 753-784 ms).
    """
    n = params.size
    one = params.dtype.type(1.0)
    r = rows
    c = columns if ndim == 2 else 1
    left = (ndim == 2 or precondition_1d) and r <= max_precondition_dim
    right = ndim == 2 and c <= max_precondition_dim
    q_left = r * r
    right_offset = 2 * r * r if r <= MAX_SIDE else 0
    q_right = right_offset + c * c
    g = np.empty(n, params.dtype)
    for i in range(n):
        g[i] = grad[i]
    kept = _soap_sides_size(rows, columns, ndim)  # Q_Lᵀ m Q_R at aux[kept:kept + n]
    if not first_step:
        rotated = np.empty(n, params.dtype)
        _rotate(g, aux, r, c, left, q_left, right, q_right, True, rotated)
        for i in range(n):
            exp_avg[i] = _lerp(exp_avg[i], g[i], one_minus_beta1, one)
            exp_avg_sq[i] = _lerp(exp_avg_sq[i], rotated[i] * rotated[i], one_minus_beta2, one)
            # a rotation is linear: Q_Lᵀ lerp(m, G) Q_R = lerp(Q_Lᵀ m Q_R, Q_Lᵀ G Q_R), with no third rotation
            aux[kept + i] = _lerp(aux[kept + i], rotated[i], one_minus_beta1, one)
            rotated[i] = aux[kept + i] / (math.sqrt(exp_avg_sq[i]) + eps)
        update = np.empty(n, params.dtype)
        _rotate(rotated, aux, r, c, left, q_left, right, q_right, False, update)
        if normalize_gradient:
            squares = 0.0
            for i in range(n):
                squares += float(update[i]) * float(update[i])
            scale = params.dtype.type(math.sqrt(squares / n)) + eps
            for i in range(n):
                update[i] = update[i] / scale
        for i in range(n):
            params[i] = params[i] - soap_step_size * update[i]
        if weight_decay != 0:
            for i in range(n):
                params[i] = params[i] * soap_decay
    if left:
        _add_gram(g, r, c, False, aux, 0, one_minus_shampoo_beta, 1.0 - one_minus_shampoo_beta)
    if right:
        _add_gram(g, r, c, True, aux, right_offset, one_minus_shampoo_beta,
                  1.0 - one_minus_shampoo_beta)
    if first_step:
        if left:
            _eigenbasis(aux, 0, r)
        if right:
            _eigenbasis(aux, right_offset, c)
    elif refresh:
        if left:
            _power_iteration(aux, 0, r, exp_avg_sq, r, c, True)
        if right:
            _power_iteration(aux, right_offset, c, exp_avg_sq, r, c, False)
    if first_step or refresh:  # new bases: m rotated into them afresh
        moment = np.empty(n, params.dtype)
        _rotate(exp_avg, aux, r, c, left, q_left, right, q_right, True, moment)
        for i in range(n):
            aux[kept + i] = moment[i]
