r"""A declared network's forward pass, loss and backward pass on the device: :mod:`fastgd.kernels.network` as
CUDA kernels.

Same plan (one int64 row per layer, uploaded once), same θ layout, same workspaces as the CPU pass:
``activations`` and ``deltas`` hold one block per layer boundary (``n_rows ×`` the plan's per-row offsets),
``columns`` a group of samples' im2col matrix and then its product, the group as large as the CPU takes it
for the same ``columns`` size (:func:`fastgd.kernels.network.workspace_elements`), so that a convolution's
weight gradient is summed group by group as on the CPU. Where the CPU keeps every convolution's im2col matrix
from the forward pass for the backward (``columns`` large enough: :func:`fastgd.kernels.network._kept_elements`),
so does the device, at the CPU's places (each in the device's own order within it), and the backward pass then
builds none; the products go in the scratch after them.

Matrix products (a dense layer's, a convolution's W · columns, its δ · columnsᵀ and Wᵀ · δ) are
:func:`product`, the tiled shared-memory product of :mod:`fastgd.cuda.mlp`, over 2-D views into θ, the
gradient and the workspaces. Everything else is one thread per result element, each summing its terms in
the order the CPU adds them: im2col, the convolution's bias and layout, pooling, activations, and the
adjoints written as gathers (col2im and the pools' backward take, for each input element, the terms the
CPU scatters onto it, in the CPU's order). No float is added atomically: the results differ from the CPU's
only by the rounding of the products' sums (BLAS blocks them, the tile sums them in order), and are the
same from run to run.

Losses, as the CPU's: one thread per row writes d loss / d outputs (and, for cross-entropy, the row's
log-normaliser in float64), then one thread sums the loss in float64 in the CPU's order and adds it to
``status[DATA_LOSS]`` (:mod:`fastgd.cuda.mlp`'s status vector), before the division by the batch: the
caller divides (``n_rows`` for cross-entropy, ``n_rows × outputs`` for mse, as
:func:`fastgd.cuda.mlp.finish_batch` does).

The L2 penalty α/(2m)·ΣW² (:func:`fastgd.kernels.network.penalty`, the network's ``alpha``, weights only, m the
batch's rows), as the CPU's after the backward pass: one launch per layer with a weight
(:func:`fastgd.cuda.arrays.add_scaled_and_sum_of_squares` over the weight's span of θ and of the gradient) adds
α/m·W to the weight's gradient (:func:`fastgd.kernels.network.add_penalty_gradient`) and ΣW² in float64 to
``status[PENALTY]``, which the caller turns into the loss's term ``½α · status[PENALTY] / m`` (as
:func:`fastgd.cuda.mlp.finish_batch` does). That sum is a tree per block and one atomic add per block: it follows
the CPU's sum to rounding, its last bits free to vary from run to run, as the MLP's penalty does.

:class:`DevicePass` holds the uploaded plan, the workspaces and the views for batches of up to ``n_rows``;
:func:`loss_and_gradient` and :func:`forward` are one-call forms for tests and checks.
"""

import math

import numpy as np
from numba import cuda

from fastgd._config import cuda_jit
from fastgd.cuda import mlp
from fastgd.cuda import arrays
from fastgd.cuda.arrays import launch_shape, reduction_shape
from fastgd.cuda.mlp import A_TILE_COLUMNS, B_TILE_COLUMNS, BLOCK_K, THREAD_M, THREAD_N
from fastgd.kernels import network as cpu
from fastgd.kernels.network import (AVG_POOL, BINARY_CROSS_ENTROPY, CONV, CROSS_ENTROPY, DENSE, FLATTEN,
                                    GLOBAL_AVG_POOL, IDENTITY, MAX_POOL, PLAN_BIAS, PLAN_IN_C, PLAN_IN_H, PLAN_IN_ROW,
                                    PLAN_IN_W, PLAN_KIND, PLAN_OUT_C, PLAN_OUT_H, PLAN_OUT_ROW, PLAN_OUT_W, PLAN_WEIGHT,
                                    RELU, SIGMOID, TANH)

__all__ = ["product", "add_row_bias", "im2col", "conv_output", "conv_deltas", "col2im", "bias_gradient",
           "pool_forward", "pool_backward", "global_pool_forward", "global_pool_backward", "activation_forward",
           "activation_backward", "loss_rows", "loss_total", "DevicePass", "loss_and_gradient", "forward"]

# the CPU pass's plan-row reader and max-pool window, compiled again for the device
_geometry = cuda_jit(cpu._layer_geometry.py_func, device=True)
_window_max = cuda_jit(cpu._window_max.py_func, device=True)


@cuda_jit
def product(a, b, transpose_a, transpose_b, c, accumulate):
    """``c = op(a) @ op(b)``, or ``c += op(a) @ op(b)`` with ``accumulate``; launch with
    :func:`fastgd.cuda.mlp.product_shape` over c's shape. op(x) is x or its transpose, read in place."""
    a_tile = cuda.shared.array((BLOCK_K, A_TILE_COLUMNS), dtype=c.dtype)
    b_tile = cuda.shared.array((BLOCK_K, B_TILE_COLUMNS), dtype=c.dtype)
    accumulators = cuda.local.array((THREAD_M, THREAD_N), dtype=c.dtype)
    a_values = cuda.local.array(THREAD_M, dtype=c.dtype)
    b_values = cuda.local.array(THREAD_N, dtype=c.dtype)
    mlp._tile_product(a, b, transpose_a, transpose_b, a_tile, b_tile, accumulators, a_values, b_values)
    n_rows, n_columns = c.shape
    for r in range(mlp.THREAD_M):
        row = cuda.blockIdx.y * mlp.BLOCK_M + cuda.threadIdx.y + r * mlp.ROW_THREADS
        for k in range(mlp.THREAD_N):
            column = cuda.blockIdx.x * mlp.BLOCK_N + cuda.threadIdx.x + k * mlp.COLUMN_THREADS
            if row < n_rows and column < n_columns:
                if accumulate:
                    c[row, column] = accumulators[r, k] + c[row, column]
                else:
                    c[row, column] = accumulators[r, k]


@cuda_jit
def add_row_bias(theta, layer, n_rows, activations):
    """A dense layer's outputs += its bias, row by row (the layer has one: the plan's bias ≥ 0)."""
    out_size = layer[PLAN_OUT_C] * layer[PLAN_OUT_H] * layer[PLAN_OUT_W]
    start = n_rows * layer[PLAN_OUT_ROW]
    bias = layer[PLAN_BIAS]
    for k in range(cuda.grid(1), n_rows * out_size, cuda.gridsize(1)):
        activations[start + k] += theta[bias + k % out_size]


@cuda_jit
def im2col(layer, n_rows, first, count, activations, columns, matrix):
    """Samples ``first … first + count − 1`` of the layer's input as im2col columns, side by side, at ``matrix`` in
    ``columns``.

    ``columns[matrix + ((c·kh + a)·kw + b)·count·positions + s·positions + oh·out_w + ow]`` (row-major,
    ``count · positions`` a row) is input ``[first + s, c, oh·sh − pt + a, ow·sw − pl + b]``, zero outside the input.
    """
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _geometry(layer, n_rows)
    positions = out_h * out_w
    pitch = count * positions
    zero = columns.dtype.type(0.0)
    for k in range(cuda.grid(1), c_in * kh * kw * pitch, cuda.gridsize(1)):
        row = k // pitch
        place = k - row * pitch
        s = place // positions
        p = place - s * positions
        oh = p // out_w
        ow = p - oh * out_w
        c = row // (kh * kw)
        a = (row // kw) % kh
        b = row % kw
        y = oh * sh - pt + a
        x = ow * sw - pl + b
        if 0 <= y < height and 0 <= x < width:
            columns[matrix + k] = activations[in_start + (first + s) * in_size + (c * height + y) * width + x]
        else:
            columns[matrix + k] = zero


@cuda_jit
def conv_output(theta, layer, n_rows, first, count, columns, product_start, activations):
    """The group's product (out × samples·positions, at ``product_start`` in ``columns``) plus the bias, laid out
    channels first, sample by sample, in the layer's output block."""
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _geometry(layer, n_rows)
    positions = out_h * out_w
    pitch = count * positions
    zero = activations.dtype.type(0.0)
    for k in range(cuda.grid(1), count * out_size, cuda.gridsize(1)):
        s = k // out_size
        rest = k - s * out_size
        o = rest // positions
        p = rest - o * positions
        shift = theta[bias + o] if bias >= 0 else zero
        activations[out_start + (first + s) * out_size + rest] = columns[product_start + o * pitch + s * positions
                                                                         + p] + shift


@cuda_jit
def conv_deltas(layer, n_rows, first, count, deltas, columns, product_start):
    """The group's output deltas as the matrix out × samples·positions, at ``product_start`` in ``columns``."""
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _geometry(layer, n_rows)
    positions = out_h * out_w
    pitch = count * positions
    for k in range(cuda.grid(1), c_out * pitch, cuda.gridsize(1)):
        o = k // pitch
        place = k - o * pitch
        s = place // positions
        p = place - s * positions
        columns[product_start + k] = deltas[out_start + (first + s) * out_size + o * positions + p]


@cuda_jit
def col2im(layer, n_rows, first, count, columns, matrix, deltas):
    """The adjoint of :func:`im2col` into the group's input deltas (overwritten): each input place sums the
    column entries that came from it, in the CPU's order (kernel row, then kernel column)."""
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _geometry(layer, n_rows)
    positions = out_h * out_w
    pitch = count * positions
    for k in range(cuda.grid(1), count * in_size, cuda.gridsize(1)):
        s = k // in_size
        rest = k - s * in_size
        c = rest // (height * width)
        y = (rest // width) % height
        x = rest % width
        total = deltas.dtype.type(0.0)
        for a in range(kh):
            shifted_y = y + pt - a
            if shifted_y < 0 or shifted_y % sh != 0 or shifted_y // sh >= out_h:
                continue
            oh = shifted_y // sh
            for b in range(kw):
                shifted_x = x + pl - b
                if shifted_x < 0 or shifted_x % sw != 0 or shifted_x // sw >= out_w:
                    continue
                total += columns[matrix + ((c * kh + a) * kw + b) * pitch + s * positions + oh * out_w
                                 + shifted_x // sw]
        deltas[in_start + (first + s) * in_size + rest] = total


@cuda_jit
def bias_gradient(layer, n_rows, deltas, grad):
    """``grad[bias + o]`` = the sum of channel o's output deltas: per sample over its positions, then sample after
    sample, as the CPU sums them (a dense layer has one position)."""
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _geometry(layer, n_rows)
    positions = out_h * out_w
    zero = grad.dtype.type(0.0)
    for o in range(cuda.grid(1), c_out, cuda.gridsize(1)):
        total = zero
        for i in range(n_rows):
            start = out_start + i * out_size + o * positions
            sample = zero
            for p in range(positions):
                sample += deltas[start + p]
            total += sample
        grad[bias + o] = total


@cuda_jit
def pool_forward(layer, n_rows, activations):
    """Max or average pooling (the plan's kind), one thread per output; average pooling has no padding."""
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _geometry(layer, n_rows)
    real = activations.dtype.type
    scale = real(1.0) / real(kh * kw)  # in θ's dtype: no float64 division in a float32 kernel
    area, pooled_area = height * width, out_h * out_w
    for k in range(cuda.grid(1), n_rows * c_in * pooled_area, cuda.gridsize(1)):
        plane_index = k // pooled_area
        place = k - plane_index * pooled_area
        oh = place // out_w
        ow = place - oh * out_w
        plane_start = in_start + plane_index * area
        plane = activations[plane_start:plane_start + area]
        if kind == MAX_POOL:
            value = _window_max(plane, height, width, kh, kw, oh * sh - pt, ow * sw - pl)[0]
        else:
            total = real(0.0)
            for a in range(kh):
                for b in range(kw):
                    total += plane[(oh * sh + a) * width + ow * sw + b]
            value = total * scale
        activations[out_start + k] = value


@cuda_jit
def pool_backward(layer, n_rows, activations, deltas):
    """The pools' input deltas (overwritten), one thread per input place: the output deltas of the windows that
    took it (max) or cover it (average, times 1/area), in the CPU's order of windows."""
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _geometry(layer, n_rows)
    real = deltas.dtype.type
    scale = real(1.0) / real(kh * kw)  # in θ's dtype: no float64 division in a float32 kernel
    area, pooled_area = height * width, out_h * out_w
    # max pooling's windows start at (oh·sh − pt, ow·sw − pl), average pooling's at (oh·sh, ow·sw)
    top_pad, left_pad = (pt, pl) if kind == MAX_POOL else (0, 0)
    for k in range(cuda.grid(1), n_rows * c_in * area, cuda.gridsize(1)):
        plane_index = k // area
        where = k - plane_index * area
        y = where // width
        x = where - y * width
        plane_start = in_start + plane_index * area
        plane = activations[plane_start:plane_start + area]
        pooled = out_start + plane_index * pooled_area
        low_y, low_x = y + top_pad - kh + 1, x + left_pad - kw + 1
        first_oh = 0 if low_y <= 0 else (low_y + sh - 1) // sh
        first_ow = 0 if low_x <= 0 else (low_x + sw - 1) // sw
        last_oh, last_ow = min(out_h - 1, (y + top_pad) // sh), min(out_w - 1, (x + left_pad) // sw)
        total = real(0.0)
        for oh in range(first_oh, last_oh + 1):
            for ow in range(first_ow, last_ow + 1):
                delta = deltas[pooled + oh * out_w + ow]
                if kind == MAX_POOL:
                    if _window_max(plane, height, width, kh, kw, oh * sh - pt, ow * sw - pl)[1] == where:
                        total += delta
                else:
                    total += delta * scale
        deltas[in_start + k] = total


@cuda_jit
def global_pool_forward(layer, n_rows, activations):
    """Each channel's mean, one thread per (sample, channel), summed in order."""
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _geometry(layer, n_rows)
    real = activations.dtype.type
    area = height * width
    scale = real(1.0) / real(area)
    for k in range(cuda.grid(1), n_rows * c_in, cuda.gridsize(1)):
        total = real(0.0)
        for p in range(area):
            total += activations[in_start + k * area + p]
        activations[out_start + k] = total * scale


@cuda_jit
def global_pool_backward(layer, n_rows, deltas):
    """Each input place's delta: its channel's output delta times 1/area."""
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _geometry(layer, n_rows)
    area = height * width
    scale = deltas.dtype.type(1.0) / deltas.dtype.type(area)
    for k in range(cuda.grid(1), n_rows * in_size, cuda.gridsize(1)):
        deltas[in_start + k] = deltas[out_start + k // area] * scale


@cuda_jit
def activation_forward(layer, n_rows, activations):
    """ReLU, tanh, sigmoid or the identity (Flatten's copy), element by element."""
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _geometry(layer, n_rows)
    real = activations.dtype.type
    zero, one = real(0.0), real(1.0)
    for k in range(cuda.grid(1), n_rows * in_size, cuda.gridsize(1)):
        z = activations[in_start + k]
        if kind == RELU:
            value = z if z > zero else zero
        elif kind == TANH:
            value = math.tanh(z)
        elif kind == SIGMOID:
            value = one / (one + math.exp(-z))
        else:
            value = z
        activations[out_start + k] = value


@cuda_jit
def activation_backward(layer, n_rows, activations, deltas):
    """The input deltas of an activation (or Flatten), its derivative written in terms of its outputs."""
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _geometry(layer, n_rows)
    real = deltas.dtype.type
    zero, one = real(0.0), real(1.0)
    for k in range(cuda.grid(1), n_rows * in_size, cuda.gridsize(1)):
        a = activations[out_start + k]
        above = deltas[out_start + k]
        if kind == RELU:
            value = above if a > zero else zero
        elif kind == TANH:
            value = above * (one - a * a)
        elif kind == SIGMOID:
            value = above * (a * (one - a))
        else:
            value = above
        deltas[in_start + k] = value


@cuda_jit
def loss_rows(layer, n_rows, targets, loss, activations, deltas, row_values):
    """One thread per row of the output block: d loss / d outputs into ``deltas``' output block, and for
    cross-entropy the row's log-normaliser (float64) into ``row_values``. ``layer`` is the last plan row,
    ``targets`` (n_rows × outputs) flat. The CPU's losses (:func:`fastgd.kernels.network._loss`), term for term."""
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _geometry(layer, n_rows)
    real = deltas.dtype.type
    count = n_rows * out_size
    for i in range(cuda.grid(1), n_rows, cuda.gridsize(1)):
        row = out_start + i * out_size
        if loss == CROSS_ENTROPY:
            largest = float(activations[row])
            mass = 0.0
            for j in range(out_size):
                largest = max(largest, float(activations[row + j]))
            exponentials = 0.0
            for j in range(out_size):
                exponentials += math.exp(float(activations[row + j]) - largest)
                mass += float(targets[i * out_size + j])
            log_normaliser = largest + math.log(exponentials)
            row_values[i] = log_normaliser
            for j in range(out_size):
                deltas[row + j] = real((math.exp(float(activations[row + j]) - log_normaliser) * mass
                                        - float(targets[i * out_size + j])) / n_rows)
        elif loss == BINARY_CROSS_ENTROPY:
            for j in range(out_size):
                z = float(activations[row + j])
                small = math.exp(-abs(z))
                sigma = 1.0 / (1.0 + small) if z >= 0.0 else small / (1.0 + small)
                deltas[row + j] = real((sigma - float(targets[i * out_size + j])) / count)
        else:
            for j in range(out_size):
                difference = float(activations[row + j]) - float(targets[i * out_size + j])
                deltas[row + j] = real(2.0 * difference / count)


@cuda_jit
def loss_total(layer, n_rows, targets, loss, activations, row_values, status):
    """One thread: ``status[DATA_LOSS] +=`` the batch's loss before its division (by ``n_rows`` for
    cross-entropy, by ``n_rows × outputs`` for mse and binary cross-entropy), summed in float64 in the CPU's
    order."""
    if cuda.grid(1) != 0:
        return
    (kind, c_in, height, width, c_out, out_h, out_w, in_size, out_size, in_start, out_start, weight, bias, kh, kw, sh,
     sw, pt, pl) = _geometry(layer, n_rows)
    total = 0.0
    for i in range(n_rows):
        row = out_start + i * out_size
        for j in range(out_size):
            if loss == CROSS_ENTROPY:
                total += float(targets[i * out_size + j]) * (row_values[i] - float(activations[row + j]))
            elif loss == BINARY_CROSS_ENTROPY:
                z = float(activations[row + j])
                total += max(z, 0.0) - z * float(targets[i * out_size + j]) + math.log1p(math.exp(-abs(z)))
            else:
                difference = float(activations[row + j]) - float(targets[i * out_size + j])
                total += difference * difference
    status[mlp.DATA_LOSS] += total



class DevicePass:
    """A network's pass on the device for batches of up to ``n_rows``: the plan uploaded, the workspaces
    allocated once, the matrix views made once per batch length.

    ``activations[:n_rows · inputs]`` is where a batch's inputs go (:attr:`inputs`); ``status`` is
    :mod:`fastgd.cuda.mlp`'s float64 status vector, whose ``DATA_LOSS`` the pass adds the batch's loss to (and
    whose ``PENALTY`` the weights' ΣW², for a network with an ``alpha``).
    """

    def __init__(self, network, dtype, n_rows):
        self.network, self.dtype, self.n_rows = network, np.dtype(dtype), int(n_rows)
        self.plan = np.asarray(network.plan)
        self.device_plan = cuda.to_device(np.ascontiguousarray(self.plan))
        self.rows = [self.device_plan[index] for index in range(self.plan.shape[0])]
        blocks, columns = network.workspace_elements(self.n_rows)
        self.activations = cuda.device_array(blocks, dtype=self.dtype)
        self.deltas = cuda.device_array(blocks, dtype=self.dtype)
        self.columns = cuda.device_array(columns, dtype=self.dtype)
        self.row_values = cuda.device_array(self.n_rows, dtype=np.float64)
        self.status = cuda.device_array(mlp.STATUS_SIZE, dtype=np.float64)
        self.loss_code = cpu.LOSSES[network.loss_name]
        # (start, size) of each layer's weight in θ, for the penalty: the CPU's spans (weights, not biases)
        self.weight_spans = [(int(layer[PLAN_WEIGHT]), int(cpu._weight_size.py_func(layer))) for layer in self.plan
                             if layer[PLAN_WEIGHT] >= 0]
        self._views = {}

    def inputs(self, n_rows):
        """The first block of ``activations`` as (n_rows × inputs): where a batch's inputs go."""
        size = self.network.n_inputs
        return self.activations[:n_rows * size].reshape(n_rows, size)

    def _dense_views(self, theta, grad, index, n_rows):
        """(X, W, Z, δ below, δ, ∇W) of dense layer ``index`` as matrices; ``grad`` may be None."""
        key = (id(theta), id(grad), index, n_rows)
        if key not in self._views:
            layer = self.plan[index]
            n_in = int(layer[PLAN_IN_C] * layer[PLAN_IN_H] * layer[PLAN_IN_W])
            n_out = int(layer[PLAN_OUT_C] * layer[PLAN_OUT_H] * layer[PLAN_OUT_W])
            in_start, out_start, weight = (int(n_rows * layer[PLAN_IN_ROW]), int(n_rows * layer[PLAN_OUT_ROW]),
                                           int(layer[PLAN_WEIGHT]))

            def block(array, start, n_columns):
                return array[start:start + n_rows * n_columns].reshape(n_rows, n_columns)

            weights = theta[weight:weight + n_out * n_in].reshape(n_out, n_in)
            grad_weights = None if grad is None else grad[weight:weight + n_out * n_in].reshape(n_out, n_in)
            self._views[key] = (block(self.activations, in_start, n_in), weights,
                                block(self.activations, out_start, n_out), block(self.deltas, in_start, n_in),
                                block(self.deltas, out_start, n_out), grad_weights, theta, grad)
        return self._views[key][:6]

    def _conv_shape(self, index, n_rows):
        """(depth, positions, samples a group, where the product starts in ``columns``, where the batch's kept im2col
        matrix starts, −1 where none is kept) of convolution ``index``: the CPU's groups and places
        (:func:`fastgd.kernels.network._conv_forward`)."""
        scratch = int(cpu._kept_elements_python(self.plan, n_rows, self.columns.size))
        kept = 0
        for layer in self.plan[:index]:
            if layer[PLAN_KIND] == CONV:
                _, depth, positions, _ = cpu._conv_sizes.py_func(layer)
                kept += n_rows * int(depth * positions)
        in_size, depth, positions, c_out = (int(size) for size in cpu._conv_sizes.py_func(self.plan[index]))
        # the CPU's group: its scratch also holds the group's inputs (samples innermost, unused here)
        group = int(cpu._group_size.py_func(self.columns.size - scratch, n_rows,
                                            cpu._conv_sample_elements.py_func(in_size, depth, c_out, positions,
                                                                              scratch > 0)))
        if scratch > 0:
            return depth, positions, group, scratch, kept
        return depth, positions, group, group * depth * positions, -1

    def _conv_matrices(self, theta, grad, index, count, positions, depth, product_start, matrix):
        """(W, ∇W, columns, product) of convolution ``index`` for a group of ``count`` samples, as matrices, the
        columns at ``matrix`` in ``columns``."""
        layer = self.plan[index]
        c_out, weight = int(layer[PLAN_OUT_C]), int(layer[PLAN_WEIGHT])
        pitch = count * positions
        weights = theta[weight:weight + c_out * depth].reshape(c_out, depth)
        grad_weights = None if grad is None else grad[weight:weight + c_out * depth].reshape(c_out, depth)
        return (weights, grad_weights, self.columns[matrix:matrix + depth * pitch].reshape(depth, pitch),
                self.columns[product_start:product_start + c_out * pitch].reshape(c_out, pitch))

    @staticmethod
    def _group_matrix(kept, first, depth, positions):
        """Where a group's im2col matrix starts in ``columns``: in the kept matrix where there is one, else at 0."""
        return kept + first * depth * positions if kept >= 0 else 0

    def forward(self, theta, n_rows):
        """Every layer's forward pass on the ``n_rows`` inputs already in :meth:`inputs`."""
        for index in range(self.plan.shape[0]):
            layer, row = self.plan[index], self.rows[index]
            kind = int(layer[PLAN_KIND])
            out_elements = n_rows * int(layer[PLAN_OUT_C] * layer[PLAN_OUT_H] * layer[PLAN_OUT_W])
            if kind == DENSE:
                inputs, weights, outputs, _, _, _ = self._dense_views(theta, None, index, n_rows)
                product[mlp.product_shape(*outputs.shape)](inputs, weights, False, True, outputs, False)
                if layer[PLAN_BIAS] >= 0:
                    add_row_bias[launch_shape(out_elements)](theta, row, n_rows, self.activations)
            elif kind == CONV:
                depth, positions, group, product_start, kept = self._conv_shape(index, n_rows)
                for first in range(0, n_rows, group):
                    count = min(group, n_rows - first)
                    matrix = self._group_matrix(kept, first, depth, positions)
                    weights, _, columns, result = self._conv_matrices(theta, None, index, count, positions, depth,
                                                                      product_start, matrix)
                    im2col[launch_shape(columns.size)](row, n_rows, first, count, self.activations, self.columns,
                                                       matrix)
                    product[mlp.product_shape(*result.shape)](weights, columns, False, False, result, False)
                    conv_output[launch_shape(result.size)](theta, row, n_rows, first, count, self.columns,
                                                           product_start, self.activations)
            elif kind == MAX_POOL or kind == AVG_POOL:
                pool_forward[launch_shape(out_elements)](row, n_rows, self.activations)
            elif kind == GLOBAL_AVG_POOL:
                global_pool_forward[launch_shape(out_elements)](row, n_rows, self.activations)
            else:
                activation_forward[launch_shape(out_elements)](row, n_rows, self.activations)

    def loss_and_gradient(self, theta, targets, n_rows, grad):
        """Forward and backward pass on the ``n_rows`` inputs in :meth:`inputs` against ``targets`` (flat,
        n_rows × outputs): fill ``grad`` (θ's layout), the penalty's α/m·W included, and add the loss, before its
        division, to ``status[DATA_LOSS]`` (and the weights' ΣW² to ``status[PENALTY]`` where α ≠ 0)."""
        self.forward(theta, n_rows)
        last = self.rows[-1]
        loss_rows[launch_shape(n_rows)](last, n_rows, targets, self.loss_code, self.activations, self.deltas,
                                        self.row_values)
        loss_total[1, 1](last, n_rows, targets, self.loss_code, self.activations, self.row_values, self.status)
        for index in range(self.plan.shape[0] - 1, -1, -1):
            self._backward_layer(theta, grad, index, n_rows, index > 0)
        if self.network.alpha != 0.0:
            scale = self.dtype.type(self.network.alpha / n_rows)
            for weights, grad_weights in self._weight_views(theta, grad):
                arrays.add_scaled_and_sum_of_squares[reduction_shape(weights.size)](weights, scale, grad_weights,
                                                                                    self.status, mlp.PENALTY)

    def _weight_views(self, theta, grad):
        """[(W, ∇W)] of every layer with a weight, as flat views into θ and the gradient (made once)."""
        key = ("weights", id(theta), id(grad))
        if key not in self._views:
            self._views[key] = ([(theta[start:start + size], grad[start:start + size])
                                 for start, size in self.weight_spans], theta, grad)
        return self._views[key][0]

    def _backward_layer(self, theta, grad, index, n_rows, input_deltas):
        layer, row = self.plan[index], self.rows[index]
        kind = int(layer[PLAN_KIND])
        in_elements = n_rows * int(layer[PLAN_IN_C] * layer[PLAN_IN_H] * layer[PLAN_IN_W])
        has_bias = layer[PLAN_BIAS] >= 0
        if kind == DENSE:
            inputs, weights, _, below, above, grad_weights = self._dense_views(theta, grad, index, n_rows)
            product[mlp.product_shape(*grad_weights.shape)](above, inputs, True, False, grad_weights, False)
            if has_bias:
                bias_gradient[launch_shape(int(layer[PLAN_OUT_C]))](row, n_rows, self.deltas, grad)
            if input_deltas:
                product[mlp.product_shape(*below.shape)](above, weights, False, False, below, False)
        elif kind == CONV:
            depth, positions, group, product_start, kept = self._conv_shape(index, n_rows)
            if has_bias:
                bias_gradient[launch_shape(int(layer[PLAN_OUT_C]))](row, n_rows, self.deltas, grad)
            for first in range(0, n_rows, group):
                count = min(group, n_rows - first)
                matrix = self._group_matrix(kept, first, depth, positions)
                weights, grad_weights, columns, result = self._conv_matrices(theta, grad, index, count, positions,
                                                                             depth, product_start, matrix)
                if kept < 0:  # else the forward pass's, kept
                    im2col[launch_shape(columns.size)](row, n_rows, first, count, self.activations, self.columns,
                                                       matrix)
                conv_deltas[launch_shape(result.size)](row, n_rows, first, count, self.deltas, self.columns,
                                                       product_start)
                # ∇W (out × in·kh·kw) += δ (out × samples·positions) · columnsᵀ
                product[mlp.product_shape(*grad_weights.shape)](result, columns, False, True, grad_weights,
                                                                first > 0)
                if input_deltas:
                    # the columns are spent: Wᵀδ takes their place, then goes back to the inputs' places
                    product[mlp.product_shape(*columns.shape)](weights, result, True, False, columns, False)
                    col2im[launch_shape(count * in_elements // n_rows)](row, n_rows, first, count, self.columns,
                                                                        matrix, self.deltas)
        elif not input_deltas:
            return
        elif kind == MAX_POOL or kind == AVG_POOL:
            pool_backward[launch_shape(in_elements)](row, n_rows, self.activations, self.deltas)
        elif kind == GLOBAL_AVG_POOL:
            global_pool_backward[launch_shape(in_elements)](row, n_rows, self.deltas)
        else:
            activation_backward[launch_shape(in_elements)](row, n_rows, self.activations, self.deltas)

    def outputs(self, n_rows):
        """The output block after :meth:`forward`, as the device matrix (n_rows × outputs)."""
        last = self.plan[-1]
        size = int(last[PLAN_OUT_C] * last[PLAN_OUT_H] * last[PLAN_OUT_W])
        start = int(n_rows * last[PLAN_OUT_ROW])
        return self.activations[start:start + n_rows * size].reshape(n_rows, size)


def _upload(network, theta, X, Y=None):
    theta = np.asarray(theta)
    X, Y = network.check_data(X, Y, theta.dtype)
    device_pass = DevicePass(network, theta.dtype, X.shape[0])
    device_pass.inputs(X.shape[0]).copy_to_device(np.ascontiguousarray(X.reshape(X.shape[0], -1)))
    return device_pass, cuda.to_device(theta), X.shape[0], (None if Y is None else cuda.to_device(Y.reshape(-1)))


def loss_and_gradient(network, theta, X, Y):
    """(loss, gradient) of ``network`` at host θ on host (X, Y), computed on the device, the L2 penalty included:
    what :meth:`fastgd.networks.Network.loss_grad` computes on the CPU, to rounding."""
    device_pass, device_theta, n_rows, targets = _upload(network, theta, X, Y)
    device_pass.status.copy_to_device(np.zeros(mlp.STATUS_SIZE))
    grad = cuda.device_array(network.n_params, dtype=device_theta.dtype)
    device_pass.loss_and_gradient(device_theta, targets, n_rows, grad)
    divisor = n_rows if network.loss_name == "cross_entropy" else n_rows * network.n_outputs
    status = device_pass.status.copy_to_host()
    return (float(status[mlp.DATA_LOSS]) / divisor + 0.5 * network.alpha * float(status[mlp.PENALTY]) / n_rows,
            grad.copy_to_host())


def forward(network, theta, X):
    """The network's outputs (n × outputs) at host θ for host X, computed on the device."""
    device_pass, device_theta, n_rows, _ = _upload(network, theta, X)
    device_pass.forward(device_theta, n_rows)
    return device_pass.outputs(n_rows).copy_to_host()


# every layer kind has its kernels here
assert {DENSE, CONV, MAX_POOL, AVG_POOL, GLOBAL_AVG_POOL, FLATTEN, RELU, TANH, SIGMOID, IDENTITY} == set(
    cpu.KINDS.values())
