"""The MLP's forward and backward pass with its batch shared out over threads: one block of rows per thread.

:func:`~fastgd.kernels.mlp.loss_and_gradient` runs on one thread and leaves the
threads to BLAS, product by product. At real batch sizes (64 to 256 rows) that
leaves most of a second core idle: OpenBLAS runs a 64 × 100 × 256 float32
product no faster on two threads than on one. Here the rows of a batch are split
into ``n_blocks`` blocks, and each ``prange`` iteration takes its block through
its own single-threaded products (:func:`fastgd.kernels.mkl.gemm_on_this_thread`) and the
element-wise work around them:

* forward: each block of rows through every layer (bias, activation, softmax)
  and its output δ, with no barrier between layers;
* the loss, over all rows in order, and the penalty: as in the serial pass;
* backward, per layer: the weight gradient Aᵀδ in blocks of its rows (the
  inputs' columns, each summing the whole batch), with the penalty's α/m·W and
  the bias gradient in blocks of columns, each summing its rows in row order;
  then δ below = (δ Wᵀ) ⊙ act' in blocks of the batch's rows.

So a batch costs 2L parallel regions for L layers. Same math, same layout and
workspaces as the serial pass, nothing allocated; the bias gradients, the loss
and every element-wise value are the serial pass's for the same products, and the
products (MKL's, per block) agree with the serial pass's BLAS to rounding. The
number of blocks is a compile-time constant of each callback
(:func:`loss_and_gradient_in_blocks`), taken as the number of threads.

In one block and compiled without parallel loops it is the threaded pass where MKL's threads
are Numba's OpenMP threads (``fastgd.kernels.train.WHOLE_BATCH_ON_MKL``, :mod:`fastgd.kernels.mkl`):
every product the whole batch's, on MKL's threads.
"""

from numba import prange

from fastgd.kernels import mkl
from fastgd.kernels.mlp import (IDENTITY, _data_loss, add_bias_and_activate, machine_epsilon, n_weights, penalty,
                                times_derivative, workspace_size)

__all__ = ["loss_and_gradient_in_blocks"]

_BIAS_COLUMNS = 64  # columns per block of the bias gradient's column sums


def loss_and_gradient_in_blocks(n_blocks):
    """The Python function of the pass in ``n_blocks`` blocks of rows, for ``fastgd._config.cfunc(parallel=True)``
    (``parallel=False`` for one block: the whole batch's products on MKL's threads).

    Its arguments and result are :func:`~fastgd.kernels.mlp.loss_and_gradient`'s. ``n_blocks``
    is held in the function's closure, which Numba's cache keys each entry by.
    """
    if n_blocks < 1:
        raise ValueError(f"n_blocks must be at least 1, got {n_blocks}")
    # in blocks, each thread's products on that thread alone (mkl.gemm_on_this_thread says why); in one block, on
    # MKL's threads
    product = mkl.gemm_on_this_thread if n_blocks > 1 else mkl.gemm

    def loss_and_gradient_threaded(theta, X, Y, layer_sizes, activation, output, alpha, grad, activations, deltas):
        real = theta.dtype.type
        zero, one = real(0.0), real(1.0)
        n_samples = X.shape[0]
        n_layers = layer_sizes.size - 1
        inputs, targets = X.reshape(X.size), Y.reshape(Y.size)
        blocks = min(n_blocks, n_samples)
        n_last = layer_sizes[n_layers]
        last_offset = workspace_size(layer_sizes, n_samples) - n_samples * n_last
        # output layer: d loss / d z = (P − Y) / m for both cross-entropies, / (m k) for squared error
        scale = real(1.0 / n_samples) if output != IDENTITY else real(1.0 / (n_samples * n_last))

        for block in prange(blocks):
            first, stop = block * n_samples // blocks, (block + 1) * n_samples // blocks
            weight_offset, bias_offset = 0, n_weights(layer_sizes)
            below, activation_offset = 0, 0
            for layer in range(n_layers):
                n_in, n_out = layer_sizes[layer], layer_sizes[layer + 1]
                if layer == 0:
                    product(inputs, first * n_in, n_in, theta, weight_offset, n_out, activations,
                         first * n_out, n_out, stop - first, n_out, n_in, False, False, 1.0, 0.0)
                else:
                    product(activations, below + first * n_in, n_in, theta, weight_offset, n_out, activations,
                         activation_offset + first * n_out, n_out, stop - first, n_out, n_in, False, False,
                         1.0, 0.0)
                kind = activation if layer < n_layers - 1 else output
                bias = theta[bias_offset:bias_offset + n_out]
                for i in range(first, stop):
                    add_bias_and_activate(activations[activation_offset + i * n_out:
                                                      activation_offset + (i + 1) * n_out], bias, kind, zero, one)
                weight_offset += n_in * n_out
                bias_offset += n_out
                below = activation_offset
                activation_offset += n_samples * n_out
            if grad.size != 0:
                outputs = activations[last_offset + first * n_last:last_offset + stop * n_last]
                block_targets = targets[first * n_last:stop * n_last]
                output_deltas = deltas[last_offset + first * n_last:last_offset + stop * n_last]
                for k in range((stop - first) * n_last):
                    output_deltas[k] = (outputs[k] - block_targets[k]) * scale

        loss = (_data_loss(activations[last_offset:last_offset + n_samples * n_last], targets, n_samples, n_last,
                           output, machine_epsilon(theta))
                + penalty(theta, layer_sizes, alpha, n_samples))
        if grad.size == 0:
            return loss  # forward only, as the serial pass (predictions, a data set's loss)

        decay = real(alpha / n_samples)
        weight_offset = n_weights(layer_sizes)
        bias_offset = theta.size
        activation_offset = last_offset
        for layer in range(n_layers - 1, -1, -1):
            n_in, n_out = layer_sizes[layer], layer_sizes[layer + 1]
            weight_offset -= n_in * n_out
            bias_offset -= n_out
            below = activation_offset - n_samples * n_in
            # dW = inputsᵀ δ (+ α/m·W) in blocks of its rows; db = the column sums of δ in blocks of columns
            weight_blocks = min(blocks, n_in)
            bias_blocks = (n_out + _BIAS_COLUMNS - 1) // _BIAS_COLUMNS
            for block in prange(max(weight_blocks, bias_blocks)):
                if block < weight_blocks:
                    first, stop = block * n_in // weight_blocks, (block + 1) * n_in // weight_blocks
                    if layer == 0:
                        product(inputs, first, n_in, deltas, activation_offset, n_out, grad,
                             weight_offset + first * n_out, n_out, stop - first, n_out, n_samples, True, False,
                             1.0, 0.0)
                    else:
                        product(activations, below + first, n_in, deltas, activation_offset, n_out, grad,
                             weight_offset + first * n_out, n_out, stop - first, n_out, n_samples, True, False,
                             1.0, 0.0)
                    if alpha != 0.0:
                        weight_grad = grad[weight_offset + first * n_out:weight_offset + stop * n_out]
                        weights = theta[weight_offset + first * n_out:weight_offset + stop * n_out]
                        for k in range((stop - first) * n_out):
                            weight_grad[k] += decay * weights[k]
                if block < bias_blocks:
                    first, stop = block * _BIAS_COLUMNS, min((block + 1) * _BIAS_COLUMNS, n_out)
                    bias_grad = grad[bias_offset + first:bias_offset + stop]
                    for j in range(stop - first):
                        bias_grad[j] = zero
                    for i in range(n_samples):
                        row = deltas[activation_offset + i * n_out + first:activation_offset + i * n_out + stop]
                        for j in range(stop - first):
                            bias_grad[j] += row[j]
            if layer > 0:
                # δ below = (δ Wᵀ) ⊙ act'(z), act' written in terms of the activations, in blocks of rows
                for block in prange(blocks):
                    first, stop = block * n_samples // blocks, (block + 1) * n_samples // blocks
                    product(deltas, activation_offset + first * n_out, n_out, theta, weight_offset, n_out, deltas,
                         below + first * n_in, n_in, stop - first, n_in, n_out, False, True, 1.0, 0.0)
                    deltas_below = deltas[below + first * n_in:below + stop * n_in]
                    activations_below = activations[below + first * n_in:below + stop * n_in]
                    for k in range((stop - first) * n_in):
                        deltas_below[k] = times_derivative(deltas_below[k], activations_below[k], activation, zero,
                                                           one)
                activation_offset = below
        return loss

    return loss_and_gradient_threaded
