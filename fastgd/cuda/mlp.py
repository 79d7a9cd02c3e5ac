r"""MLP forward and backward on the device: the math of :mod:`fastgd.kernels.mlp`, as CUDA kernels.

Layout of θ, activation and output codes, losses: those of
:mod:`fastgd.kernels.mlp`. All matrices are C-ordered 2-D device arrays
(views into θ, the gradient and the workspaces).

Matrix products are tiled: a block computes a ``BLOCK_M × BLOCK_N`` tile of
the result, stepping through the shared dimension ``BLOCK_K`` at a time
with both operands' tiles in shared memory, and each thread keeps a
``THREAD_M × THREAD_N`` piece of the tile in registers (rows and columns
strided by the thread grid, so that neither the shared-memory reads nor the
global writes conflict). Each product finishes with its layer's
element-wise work, fused:

:func:`forward_layer`     Z = act(A W + b)
:func:`weight_gradient`   ∇W = Aᵀ δ + (α/m) W, ∇b = Σ_rows δ, and Σ W² for the penalty
:func:`backward_delta`    δ_prev = (δ Wᵀ) ⊙ act'(A)

:func:`output_loss_and_delta` takes the output block row by row (softmax,
the loss in float64, δ = (P − Y) · scale), :func:`gather_batch` copies the
batch's rows, and :func:`finish_batch`, one thread, turns the batch's sums
into its loss, keeps the epoch's running total and stops the epoch at the
first non-finite loss. Sums, totals and flags live in one float64 ``status``
vector on the device (indices below), read by the host once per epoch.

Each element is summed over the shared dimension in increasing order, one
product and one add at a time (NVVM may fuse them into an FMA on a GPU): the
results follow the CPU's BLAS to rounding, not bit for bit, and are the same
from run to run. The float64 sums in ``status`` (loss, penalty, gradient
norm) are added to atomically, in no fixed order: their last bits may vary
from run to run, and with them a gradient clipping factor.
"""

import math

import numpy as np
from numba import cuda

from fastgd._config import cuda_jit
from fastgd.cuda.arrays import add_block_sum
from fastgd.kernels import mlp as cpu
from fastgd.kernels.mlp import IDENTITY, LOGISTIC, SOFTMAX

# the activation and its derivative: the CPU kernels' scalar source, compiled again for the device
activated = cuda_jit(cpu.activated.py_func, device=True)
times_derivative = cuda_jit(cpu.times_derivative.py_func, device=True)

__all__ = ["BLOCK_M", "BLOCK_N", "BLOCK_K", "THREAD_M", "THREAD_N", "product_shape", "forward_layer",
           "weight_gradient", "backward_delta", "output_loss_and_delta", "gather_batch", "finish_batch",
           "scale_by_factor", "DATA_LOSS", "PENALTY", "GRAD_SQUARES", "EPOCH_TOTAL", "GOOD_BATCHES", "BAD_LOSS",
           "THETA_NONFINITE", "STATUS_SIZE"]

# The tile shape: compile-time constants (shared and local arrays are sized
# by them). BLOCK_M / THREAD_M × BLOCK_N / THREAD_N threads per block, a
# power of two; every tile load gives each thread the same number of elements.
BLOCK_M = 64
BLOCK_N = 64
BLOCK_K = 16
THREAD_M = 4
THREAD_N = 4
ROW_THREADS = BLOCK_M // THREAD_M
COLUMN_THREADS = BLOCK_N // THREAD_N
BLOCK_THREADS = ROW_THREADS * COLUMN_THREADS
# the shared tiles get one column of padding: a walk down a column then
# visits every memory bank
A_TILE_COLUMNS = BLOCK_M + 1
B_TILE_COLUMNS = BLOCK_N + 1

# the float64 status vector of an epoch
DATA_LOSS, PENALTY, GRAD_SQUARES, EPOCH_TOTAL, GOOD_BATCHES, BAD_LOSS, THETA_NONFINITE = range(7)
STATUS_SIZE = 7


def product_shape(n_rows, n_columns):
    """(grid, block) of a product kernel whose result is n_rows × n_columns."""
    grid = (-(-n_columns // BLOCK_N), -(-n_rows // BLOCK_M))
    return grid, (COLUMN_THREADS, ROW_THREADS)


@cuda_jit(device=True)
def _tile_product(a, b, transpose_a, transpose_b, a_tile, b_tile, accumulators, a_values, b_values):
    """This thread's share of op(a) @ op(b) into ``accumulators`` (THREAD_M × THREAD_N, zeroed here).

    op(x) is x, or x's transpose when the flag says so: the transposes the
    backward pass needs are read in place, never copied. ``a_tile`` and
    ``b_tile`` are the block's shared tiles, ``a_values`` and ``b_values``
    this thread's registers for one step of the shared dimension.
    """
    zero = accumulators.dtype.type(0.0)
    n_rows = a.shape[1] if transpose_a else a.shape[0]
    depth = a.shape[0] if transpose_a else a.shape[1]
    n_columns = b.shape[0] if transpose_b else b.shape[1]
    row0 = cuda.blockIdx.y * BLOCK_M
    column0 = cuda.blockIdx.x * BLOCK_N
    thread_row = cuda.threadIdx.y
    thread_column = cuda.threadIdx.x
    thread = thread_row * COLUMN_THREADS + thread_column
    for r in range(THREAD_M):
        for c in range(THREAD_N):
            accumulators[r, c] = zero
    for k0 in range(0, depth, BLOCK_K):
        # Each thread loads its share of both tiles; consecutive threads read
        # consecutive addresses of the stored (not the transposed) matrix.
        for load in range(BLOCK_M * BLOCK_K // BLOCK_THREADS):
            element = thread + load * BLOCK_THREADS
            if transpose_a:
                i = element % BLOCK_M
                k = element // BLOCK_M
            else:
                k = element % BLOCK_K
                i = element // BLOCK_K
            row = row0 + i
            if row < n_rows and k0 + k < depth:
                a_tile[k, i] = a[k0 + k, row] if transpose_a else a[row, k0 + k]
            else:
                a_tile[k, i] = zero
        for load in range(BLOCK_N * BLOCK_K // BLOCK_THREADS):
            element = thread + load * BLOCK_THREADS
            if transpose_b:
                k = element % BLOCK_K
                j = element // BLOCK_K
            else:
                j = element % BLOCK_N
                k = element // BLOCK_N
            column = column0 + j
            if column < n_columns and k0 + k < depth:
                b_tile[k, j] = b[column, k0 + k] if transpose_b else b[k0 + k, column]
            else:
                b_tile[k, j] = zero
        cuda.syncthreads()
        for k in range(BLOCK_K):
            for r in range(THREAD_M):
                a_values[r] = a_tile[k, thread_row + r * ROW_THREADS]
            for c in range(THREAD_N):
                b_values[c] = b_tile[k, thread_column + c * COLUMN_THREADS]
            for r in range(THREAD_M):
                for c in range(THREAD_N):
                    accumulators[r, c] += a_values[r] * b_values[c]
        cuda.syncthreads()


@cuda_jit
def forward_layer(inputs, weights, bias, outputs, activation):
    """``outputs = act(inputs @ weights + bias)``; ``activation`` IDENTITY, RELU, LOGISTIC or TANH."""
    a_tile = cuda.shared.array((BLOCK_K, A_TILE_COLUMNS), dtype=inputs.dtype)
    b_tile = cuda.shared.array((BLOCK_K, B_TILE_COLUMNS), dtype=inputs.dtype)
    accumulators = cuda.local.array((THREAD_M, THREAD_N), dtype=inputs.dtype)
    a_values = cuda.local.array(THREAD_M, dtype=inputs.dtype)
    b_values = cuda.local.array(THREAD_N, dtype=inputs.dtype)
    _tile_product(inputs, weights, False, False, a_tile, b_tile, accumulators, a_values, b_values)
    zero, one = outputs.dtype.type(0.0), outputs.dtype.type(1.0)
    n_rows, n_columns = outputs.shape
    for r in range(THREAD_M):
        row = cuda.blockIdx.y * BLOCK_M + cuda.threadIdx.y + r * ROW_THREADS
        for c in range(THREAD_N):
            column = cuda.blockIdx.x * BLOCK_N + cuda.threadIdx.x + c * COLUMN_THREADS
            if row < n_rows and column < n_columns:
                outputs[row, column] = activated(accumulators[r, c] + bias[column], activation, zero, one)


@cuda_jit
def weight_gradient(inputs, delta, weights, decay, grad_weights, grad_bias, status, with_penalty):
    """``∇W = inputsᵀ δ + decay · W``, ``∇b = Σ_rows δ``; ``status[PENALTY] += Σ W²`` if ``with_penalty``.

    Launch over ∇W's shape (n_in × n_out). The bias gradient is summed by
    the first row of blocks, one thread per column, rows in order, as the
    CPU kernel sums it.
    """
    a_tile = cuda.shared.array((BLOCK_K, A_TILE_COLUMNS), dtype=inputs.dtype)
    b_tile = cuda.shared.array((BLOCK_K, B_TILE_COLUMNS), dtype=inputs.dtype)
    accumulators = cuda.local.array((THREAD_M, THREAD_N), dtype=inputs.dtype)
    a_values = cuda.local.array(THREAD_M, dtype=inputs.dtype)
    b_values = cuda.local.array(THREAD_N, dtype=inputs.dtype)
    squares = cuda.shared.array(BLOCK_THREADS, dtype=np.float64)
    _tile_product(inputs, delta, True, False, a_tile, b_tile, accumulators, a_values, b_values)
    n_in, n_out = grad_weights.shape
    own_squares = 0.0
    for r in range(THREAD_M):
        row = cuda.blockIdx.y * BLOCK_M + cuda.threadIdx.y + r * ROW_THREADS
        for c in range(THREAD_N):
            column = cuda.blockIdx.x * BLOCK_N + cuda.threadIdx.x + c * COLUMN_THREADS
            if row < n_in and column < n_out:
                weight = weights[row, column]
                grad_weights[row, column] = accumulators[r, c] + decay * weight
                if with_penalty:
                    own_squares += float(weight) * float(weight)
    if with_penalty:
        add_block_sum(own_squares, cuda.threadIdx.y * COLUMN_THREADS + cuda.threadIdx.x, squares, status, PENALTY)
    if cuda.blockIdx.y == 0 and cuda.threadIdx.y == 0:
        for c in range(THREAD_N):
            column = cuda.blockIdx.x * BLOCK_N + cuda.threadIdx.x + c * COLUMN_THREADS
            if column < n_out:
                total = delta.dtype.type(0.0)
                for i in range(delta.shape[0]):
                    total += delta[i, column]
                grad_bias[column] = total


@cuda_jit
def backward_delta(delta, weights, activations, previous_delta, activation):
    """``previous_delta = (δ Wᵀ) ⊙ act'(z)``, the derivative written in terms of ``activations`` = act(z)."""
    a_tile = cuda.shared.array((BLOCK_K, A_TILE_COLUMNS), dtype=delta.dtype)
    b_tile = cuda.shared.array((BLOCK_K, B_TILE_COLUMNS), dtype=delta.dtype)
    accumulators = cuda.local.array((THREAD_M, THREAD_N), dtype=delta.dtype)
    a_values = cuda.local.array(THREAD_M, dtype=delta.dtype)
    b_values = cuda.local.array(THREAD_N, dtype=delta.dtype)
    _tile_product(delta, weights, False, True, a_tile, b_tile, accumulators, a_values, b_values)
    zero, one = delta.dtype.type(0.0), delta.dtype.type(1.0)
    n_rows, n_columns = previous_delta.shape
    for r in range(THREAD_M):
        row = cuda.blockIdx.y * BLOCK_M + cuda.threadIdx.y + r * ROW_THREADS
        for c in range(THREAD_N):
            column = cuda.blockIdx.x * BLOCK_N + cuda.threadIdx.x + c * COLUMN_THREADS
            if row < n_rows and column < n_columns:
                previous_delta[row, column] = times_derivative(accumulators[r, c], activations[row, column],
                                                               activation, zero, one)


@cuda_jit
def output_loss_and_delta(outputs, targets, delta, output, scale, eps, status):
    """Per row: softmax of ``outputs`` in place (SOFTMAX), the loss into ``status[DATA_LOSS]``, δ = (P − Y)·scale.

    ``outputs`` holds z + b for SOFTMAX, act(z + b) for LOGISTIC and
    IDENTITY. The loss is the CPU's ``_data_loss`` before its division by
    the batch size: summed in float64, probabilities clipped to [eps, 1 − eps].
    """
    n_rows, n_columns = outputs.shape
    for i in range(cuda.grid(1), n_rows, cuda.gridsize(1)):
        if output == SOFTMAX:
            largest = outputs[i, 0]
            for j in range(n_columns):
                if outputs[i, j] > largest:
                    largest = outputs[i, j]
            total = outputs.dtype.type(0.0)
            for j in range(n_columns):
                outputs[i, j] = math.exp(outputs[i, j] - largest)
                total += outputs[i, j]
            for j in range(n_columns):
                outputs[i, j] /= total
        row_loss = 0.0
        for j in range(n_columns):
            p = outputs[i, j]
            y = targets[i, j]
            if output == IDENTITY:
                difference = float(p) - float(y)
                row_loss += difference * difference
            else:
                clipped = min(max(float(p), eps), 1.0 - eps)
                if float(y) != 0.0:
                    row_loss -= float(y) * math.log(clipped)
                if output == LOGISTIC and float(y) != 1.0:
                    row_loss -= (1.0 - float(y)) * math.log(1.0 - clipped)
            delta[i, j] = (p - y) * scale
        cuda.atomic.add(status, DATA_LOSS, row_loss)


@cuda_jit
def gather_batch(X, Y, order, start, batch_X, batch_Y):
    """Rows ``order[start:start + len(batch_X)]`` of X and Y into the C-ordered batch buffers."""
    n_rows, n_inputs = batch_X.shape
    n_outputs = batch_Y.shape[1]
    width = n_inputs + n_outputs
    for element in range(cuda.grid(1), n_rows * width, cuda.gridsize(1)):
        row = element // width
        column = element - row * width
        source = order[start + row]
        if column < n_inputs:
            batch_X[row, column] = X[source, column]
        else:
            batch_Y[row, column - n_inputs] = Y[source, column - n_inputs]


@cuda_jit
def finish_batch(status, halt, n_rows, data_divisor, half_alpha, clip_norm, clip_factor):
    """One thread: the batch's loss from its sums, the epoch's total, the halt flag, the clipping factor.

    loss = ``status[DATA_LOSS] / data_divisor + half_alpha · status[PENALTY] / n_rows``,
    as the CPU's ``_data_loss + penalty``. A finite loss is added (times
    ``n_rows``) to ``status[EPOCH_TOTAL]``; the first non-finite one goes to
    ``status[BAD_LOSS]`` and sets ``halt``, which stops every later update
    of the epoch. With ``clip_norm`` > 0, ``clip_factor[0]`` becomes
    clip_norm / ‖∇‖ where the norm exceeds it, else 1. The sums are reset
    for the next batch.
    """
    if cuda.grid(1) != 0:
        return
    loss = status[DATA_LOSS] / data_divisor + half_alpha * status[PENALTY] / n_rows
    if halt[0] == 0:
        if math.isfinite(loss):
            status[EPOCH_TOTAL] += loss * n_rows
            status[GOOD_BATCHES] += 1.0
            if clip_norm > 0.0:
                norm = math.sqrt(status[GRAD_SQUARES])
                clip_factor[0] = clip_norm / norm if norm > clip_norm else 1.0
        else:
            halt[0] = 1
            status[BAD_LOSS] = loss
    status[DATA_LOSS] = 0.0
    status[PENALTY] = 0.0
    status[GRAD_SQUARES] = 0.0


@cuda_jit
def scale_by_factor(values, factor):
    """``values *= factor[0]``, in the values' dtype."""
    scale = factor[0]
    for i in range(cuda.grid(1), values.size, cuda.gridsize(1)):
        values[i] = values[i] * scale
