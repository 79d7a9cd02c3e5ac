r"""Multi-layer perceptrons over one flat parameter vector: forward, loss, backward.

Layout of θ (scikit-learn's ``_pack`` order): every weight matrix, row-major,
layer after layer, then every bias vector::

    θ = [W₁ (n₀×n₁), W₂ (n₁×n₂), ..., b₁ (n₁), b₂ (n₂), ...]

so the L2 penalty covers exactly ``θ[:n_weights]``. The gradient has the same
layout. Layer sizes include the input and the output: ``[64, 32, 10]`` is one
hidden layer; ``[4, 3]`` with no hidden layer is linear, logistic or softmax
regression.

Activations (hidden layers) and outputs are integer codes, so one compiled
function serves every network of a dtype:

    hidden: IDENTITY, RELU, LOGISTIC, TANH
    output: IDENTITY (squared error), LOGISTIC (binary cross-entropy per column),
            SOFTMAX (cross-entropy)

Losses are scikit-learn's MLP losses: squared error averaged over all entries
and halved, cross-entropy averaged over samples with probabilities clipped to
[ε, 1 − ε] (ε the dtype's machine epsilon), plus α/(2m)·ΣW² over the weights
(biases are not penalised), m the number of samples. The gradient is the exact
gradient of that loss (clipping aside).

Workspaces: ``activations`` and ``deltas`` are flat buffers of at least
``m × sum(layer_sizes[1:])`` elements, allocated once by the caller; layer l's
block is an (m, n_l) C-ordered view into them. Nothing is allocated per call.

Loops index slices from zero (a row, a layer's block), never ``vector[offset + k]``:
LLVM cannot prove such an index non-negative, so Numba's wraparound test stays on
every access and the loop is not vectorised (a ReLU derivative over 64 × 256
values took 70× as long). Row slices rather than 2-D views: the same speed, and
less code to compile.

Few functions, each written out: Numba compiles every function on its own and
optimises it again inside each caller, so a pass split into many small
helpers costs seconds more to compile than the same loops in one body. The
matrix products go to BLAS through :func:`fastgd.kernels.blas.gemm`.
"""

import math

import numpy as np

from numba.extending import overload
from numba.np.numpy_support import as_dtype

from fastgd._config import jit
from fastgd.kernels.blas import gemm

IDENTITY, RELU, LOGISTIC, TANH, SOFTMAX = 0, 1, 2, 3, 4
ACTIVATIONS = {"identity": IDENTITY, "relu": RELU, "logistic": LOGISTIC, "tanh": TANH}
OUTPUTS = {"identity": IDENTITY, "logistic": LOGISTIC, "softmax": SOFTMAX}

__all__ = ["IDENTITY", "RELU", "LOGISTIC", "TANH", "SOFTMAX", "ACTIVATIONS", "OUTPUTS", "n_weights", "n_params",
           "activated", "times_derivative", "forward", "loss_and_gradient", "penalty", "sum_of_squares",
           "workspace_size"]


@jit(inline=True)
def n_weights(layer_sizes):
    """The number of weights (not biases) of a network of ``layer_sizes``: θ's weights come first."""
    total = 0
    for layer in range(layer_sizes.size - 1):
        total += layer_sizes[layer] * layer_sizes[layer + 1]
    return total


@jit(inline=True)
def _units(layer_sizes):
    """Units after the input layer: biases, and rows of the workspaces per sample."""
    total = 0
    for layer in range(1, layer_sizes.size):
        total += layer_sizes[layer]
    return total


@jit(inline=True)
def n_params(layer_sizes):
    """The length of θ for ``layer_sizes``: every weight matrix, then every bias vector."""
    return n_weights(layer_sizes) + _units(layer_sizes)


@jit(inline=True)
def workspace_size(layer_sizes, n_samples):
    """Elements each of ``activations`` and ``deltas`` needs for ``n_samples`` rows."""
    return n_samples * _units(layer_sizes)


@jit(inline=True)
def activated(z, activation, zero, one):
    """act(z) for IDENTITY, RELU, LOGISTIC or TANH; ``zero`` and ``one`` in z's type.

    Scalar, so that :mod:`fastgd.cuda.mlp` compiles the same source for the GPU.
    """
    if activation == RELU:
        return z if z > zero else zero
    if activation == LOGISTIC:
        return one / (one + math.exp(-z))
    if activation == TANH:
        return math.tanh(z)
    return z


@jit(inline=True)
def times_derivative(value, a, activation, zero, one):
    """value · act'(z), the derivative written in terms of a = act(z); ``zero`` and ``one`` in a's type."""
    if activation == RELU:
        return zero if a <= zero else value
    if activation == LOGISTIC:
        return value * (a * (one - a))
    if activation == TANH:
        return value * (one - a * a)
    return value


@jit(inline=True)
def add_bias_and_activate(z, bias, kind, zero, one):
    """One row of a layer: z ← act(z + bias), ``kind`` a hidden activation or SOFTMAX (over the row)."""
    n_out = z.size
    if kind == SOFTMAX:
        # shifted by the row maximum: exp never overflows
        largest = z[0] + bias[0]
        for j in range(n_out):
            z[j] += bias[j]
            if z[j] > largest:
                largest = z[j]
        total = zero
        for j in range(n_out):
            z[j] = math.exp(z[j] - largest)
            total += z[j]
        for j in range(n_out):
            z[j] /= total
    else:
        for j in range(n_out):
            z[j] = activated(z[j] + bias[j], kind, zero, one)


@jit(inline=True)
def forward(theta, X, layer_sizes, activation, output, activations):
    """Run the network on the rows of X; return the (m, n_out) output block of ``activations``."""
    _forward(theta, X.reshape(X.size), X.shape[0], layer_sizes, activation, output, activations)
    n_samples, n_out = X.shape[0], layer_sizes[layer_sizes.size - 1]
    end = workspace_size(layer_sizes, n_samples)
    return activations[end - n_samples * n_out:end].reshape((n_samples, n_out))


@jit(inline=True)
def _forward(theta, inputs, n_samples, layer_sizes, activation, output, activations):
    """The forward pass over flat blocks (row-major): ``inputs`` is n_samples × layer_sizes[0]."""
    real = theta.dtype.type
    zero, one = real(0.0), real(1.0)
    n_layers = layer_sizes.size - 1
    weight_offset, bias_offset = 0, n_weights(layer_sizes)
    inputs_offset, activation_offset = 0, 0
    for layer in range(n_layers):
        n_in, n_out = layer_sizes[layer], layer_sizes[layer + 1]
        gemm(inputs, inputs_offset, theta, weight_offset, activations, activation_offset, n_samples, n_out, n_in,
             False, False, 1.0, 0.0)
        kind = activation if layer < n_layers - 1 else output
        bias = theta[bias_offset:bias_offset + n_out]
        for i in range(n_samples):
            add_bias_and_activate(activations[activation_offset + i * n_out:activation_offset + (i + 1) * n_out],
                                  bias, kind, zero, one)
        if layer == 0:
            inputs = activations
        inputs_offset = activation_offset
        weight_offset += n_in * n_out
        bias_offset += n_out
        activation_offset += n_samples * n_out


def machine_epsilon(array):
    """ε of ``array``'s dtype, as a float64 constant in compiled code."""
    return float(np.finfo(array.dtype).eps)


@overload(machine_epsilon)
def _machine_epsilon(array):
    value = float(np.finfo(as_dtype(array.dtype)).eps)
    return lambda array: value


@jit(inline=True)
def _data_loss(P, Y, n_samples, n_outputs, output, eps):
    """The loss of flat outputs P against flat targets Y, without the penalty, in float64.

    ``eps`` clips probabilities.
    """
    total = 0.0
    for k in range(n_samples * n_outputs):
        p, y = float(P[k]), float(Y[k])
        if output == IDENTITY:
            total += (p - y) * (p - y)
            continue
        p = min(max(p, eps), 1.0 - eps)
        if y != 0.0:
            total -= y * math.log(p)
        if output == LOGISTIC and y != 1.0:
            total -= (1.0 - y) * math.log(1.0 - p)
    if output == IDENTITY:
        return total / (2.0 * n_samples * n_outputs)
    return total / n_samples


@jit(inline=True)
def sum_of_squares(values, start, stop):
    """Σ values[k]² over ``start <= k < stop``, in float64: eight partial sums, each of every eighth square, added
    pairwise at the end (the remainder last); the same order every time.

    One running sum is a chain of dependent additions that the compiler may not reorder (no fastmath): the L2
    penalty's sum over 93,000 weights took about 110 µs of a 370 µs pass at 100-256-256-10/64 (AMD EPYC Zen 4),
    where eight chains side by side take a fraction of it. Each square is of the value in float64 (Numba's
    ``float()`` of a float32 stays float32, and so did the squares of the single sum this replaced)."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    k = start
    while k + 8 <= stop:
        s0 += np.float64(values[k]) * np.float64(values[k])
        s1 += np.float64(values[k + 1]) * np.float64(values[k + 1])
        s2 += np.float64(values[k + 2]) * np.float64(values[k + 2])
        s3 += np.float64(values[k + 3]) * np.float64(values[k + 3])
        s4 += np.float64(values[k + 4]) * np.float64(values[k + 4])
        s5 += np.float64(values[k + 5]) * np.float64(values[k + 5])
        s6 += np.float64(values[k + 6]) * np.float64(values[k + 6])
        s7 += np.float64(values[k + 7]) * np.float64(values[k + 7])
        k += 8
    rest = 0.0
    while k < stop:
        value = np.float64(values[k])
        rest += value * value
        k += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)) + rest


@jit(inline=True)
def penalty(theta, layer_sizes, alpha, n_samples):
    """α/(2m)·ΣW² over the weights, θ[:n_weights], summed in float64 (:func:`sum_of_squares`)."""
    if alpha == 0.0:
        return 0.0
    return 0.5 * alpha * sum_of_squares(theta, 0, n_weights(layer_sizes)) / n_samples


@jit
def loss_and_gradient(theta, X, Y, layer_sizes, activation, output, alpha, grad, activations, deltas):
    """Forward and backward pass: fill ``grad`` (θ's layout) and return the loss (float64).

    An empty ``grad`` (and ``deltas``) asks for the forward pass and the loss alone.
    """
    real = theta.dtype.type
    zero, one = real(0.0), real(1.0)
    n_samples = X.shape[0]
    n_layers = layer_sizes.size - 1
    inputs, targets = X.reshape(X.size), Y.reshape(Y.size)
    _forward(theta, inputs, n_samples, layer_sizes, activation, output, activations)

    # the last layer's blocks, walked backwards
    n_out = layer_sizes[n_layers]
    weight_offset = n_weights(layer_sizes)
    bias_offset = theta.size
    activation_offset = workspace_size(layer_sizes, n_samples) - n_samples * n_out
    outputs = activations[activation_offset:activation_offset + n_samples * n_out]
    output_deltas = deltas[activation_offset:activation_offset + n_samples * n_out]
    loss = (_data_loss(outputs, targets, n_samples, n_out, output, machine_epsilon(theta))
            + penalty(theta, layer_sizes, alpha, n_samples))
    if grad.size == 0:
        # forward only (predictions, a data set's loss): the outputs stay in their block of ``activations``, and
        # prediction calls the very pass training compiled rather than compiling a forward pass of its own
        return loss
    # output layer: d loss / d z = (P − Y) / m for both cross-entropies, / (m k) for squared error
    scale = real(1.0 / n_samples) if output != IDENTITY else real(1.0 / (n_samples * n_out))
    for k in range(n_samples * n_out):
        output_deltas[k] = (outputs[k] - targets[k]) * scale

    decay = real(alpha / n_samples)
    for layer in range(n_layers - 1, -1, -1):
        n_in, n_out = layer_sizes[layer], layer_sizes[layer + 1]
        weight_offset -= n_in * n_out
        bias_offset -= n_out
        below = activation_offset - n_samples * n_in
        # dW = inputsᵀ δ (+ the penalty's α/m·W), db = the column sums of δ
        if layer == 0:
            gemm(inputs, 0, deltas, activation_offset, grad, weight_offset, n_in, n_out, n_samples, True, False, 1.0,
                 0.0)
        else:
            gemm(activations, below, deltas, activation_offset, grad, weight_offset, n_in, n_out, n_samples, True,
                 False, 1.0, 0.0)
        if alpha != 0.0:
            weight_grad = grad[weight_offset:weight_offset + n_in * n_out]
            weights = theta[weight_offset:weight_offset + n_in * n_out]
            for k in range(n_in * n_out):
                weight_grad[k] += decay * weights[k]
        bias_grad = grad[bias_offset:bias_offset + n_out]
        for j in range(n_out):
            bias_grad[j] = zero
        for i in range(n_samples):
            row = deltas[activation_offset + i * n_out:activation_offset + (i + 1) * n_out]
            for j in range(n_out):
                bias_grad[j] += row[j]
        if layer > 0:
            # δ below = (δ Wᵀ) ⊙ act'(z), act' written in terms of the activations
            deltas_below = deltas[below:below + n_samples * n_in]
            activations_below = activations[below:below + n_samples * n_in]
            if n_out == 1:
                # an outer product (one output: a regression, two classes), the very products ?gemm forms with
                # k = 1, in the loop that applies act': ?gemm took 3-4 µs over 426 × 32, a tenth of the pass
                weights = theta[weight_offset:weight_offset + n_in]
                for i in range(n_samples):
                    delta = deltas[activation_offset + i]
                    row = deltas_below[i * n_in:(i + 1) * n_in]
                    row_activations = activations_below[i * n_in:(i + 1) * n_in]
                    for j in range(n_in):
                        row[j] = times_derivative(delta * weights[j], row_activations[j], activation, zero, one)
            else:
                gemm(deltas, activation_offset, theta, weight_offset, deltas, below, n_samples, n_in, n_out, False,
                     True, 1.0, 0.0)
                for k in range(n_samples * n_in):
                    deltas_below[k] = times_derivative(deltas_below[k], activations_below[k], activation, zero, one)
            activation_offset = below
    return loss
