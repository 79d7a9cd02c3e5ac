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
"""

import math

import numpy as np

from fastgd._config import jit
from fastgd.kernels.blas import gemm

IDENTITY, RELU, LOGISTIC, TANH, SOFTMAX = 0, 1, 2, 3, 4
ACTIVATIONS = {"identity": IDENTITY, "relu": RELU, "logistic": LOGISTIC, "tanh": TANH}
OUTPUTS = {"identity": IDENTITY, "logistic": LOGISTIC, "softmax": SOFTMAX}

__all__ = ["IDENTITY", "RELU", "LOGISTIC", "TANH", "SOFTMAX", "ACTIVATIONS", "OUTPUTS", "n_weights", "n_params",
           "activated", "times_derivative", "forward", "loss_and_gradient", "loss_only", "penalty", "workspace_size"]


@jit
def n_weights(layer_sizes):
    total = 0
    for layer in range(layer_sizes.size - 1):
        total += layer_sizes[layer] * layer_sizes[layer + 1]
    return total


@jit
def n_params(layer_sizes):
    return n_weights(layer_sizes) + layer_sizes[1:].sum()


@jit
def workspace_size(layer_sizes, n_samples):
    """Elements each of ``activations`` and ``deltas`` needs for ``n_samples`` rows."""
    return n_samples * layer_sizes[1:].sum()


@jit(inline=True)
def _weights(theta, weight_offset, n_in, n_out):
    return theta[weight_offset:weight_offset + n_in * n_out].reshape((n_in, n_out))


@jit(inline=True)
def _block(buffer, offset, n_rows, n_columns):
    return buffer[offset:offset + n_rows * n_columns].reshape((n_rows, n_columns))


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


@jit(internal=True)
def _activate(Z, bias, activation):
    """Z ← act(Z + b), row by row, in place."""
    real = Z.dtype.type
    zero, one = real(0.0), real(1.0)
    n_rows, n_columns = Z.shape
    for i in range(n_rows):
        for j in range(n_columns):
            Z[i, j] = activated(Z[i, j] + bias[j], activation, zero, one)


@jit(internal=True)
def _softmax_rows(Z, bias):
    """Z ← softmax(Z + b) per row, in place (shifted by the row maximum)."""
    n_rows, n_columns = Z.shape
    for i in range(n_rows):
        largest = Z[i, 0] + bias[0]
        for j in range(n_columns):
            Z[i, j] += bias[j]
            if Z[i, j] > largest:
                largest = Z[i, j]
        total = Z.dtype.type(0.0)
        for j in range(n_columns):
            Z[i, j] = math.exp(Z[i, j] - largest)
            total += Z[i, j]
        for j in range(n_columns):
            Z[i, j] /= total


@jit(internal=True)
def _scale_by_derivative(delta, A, activation):
    """delta ← delta ⊙ act'(z), the derivative written in terms of A = act(z)."""
    real = A.dtype.type
    zero, one = real(0.0), real(1.0)
    n_rows, n_columns = A.shape
    for i in range(n_rows):
        for j in range(n_columns):
            delta[i, j] = times_derivative(delta[i, j], A[i, j], activation, zero, one)


@jit
def forward(theta, X, layer_sizes, activation, output, activations):
    """Run the network on the rows of X; return the (m, n_out) output block of ``activations``."""
    n_samples = X.shape[0]
    n_layers = layer_sizes.size - 1
    weight_offset = 0
    bias_offset = n_weights(layer_sizes)
    activation_offset = 0
    inputs = X
    for layer in range(n_layers):
        n_in, n_out = layer_sizes[layer], layer_sizes[layer + 1]
        W = _weights(theta, weight_offset, n_in, n_out)
        bias = theta[bias_offset:bias_offset + n_out]
        Z = _block(activations, activation_offset, n_samples, n_out)
        gemm(inputs, W, Z, False, False, False)
        if layer < n_layers - 1:
            _activate(Z, bias, activation)
        elif output == SOFTMAX:
            _softmax_rows(Z, bias)
        else:
            _activate(Z, bias, output)
        inputs = Z
        weight_offset += n_in * n_out
        bias_offset += n_out
        activation_offset += n_samples * n_out
    return inputs


@jit(internal=True)
def _data_loss(P, Y, output):
    """The loss of outputs P against targets Y, without the penalty, in float64."""
    n_samples, n_outputs = P.shape
    total = 0.0
    if output == IDENTITY:
        for i in range(n_samples):
            for j in range(n_outputs):
                difference = float(P[i, j]) - float(Y[i, j])
                total += difference * difference
        return total / (2.0 * n_samples * n_outputs)
    eps = float(np.finfo(P.dtype).eps)
    for i in range(n_samples):
        for j in range(n_outputs):
            p = min(max(float(P[i, j]), eps), 1.0 - eps)
            y = float(Y[i, j])
            if y != 0.0:
                total -= y * math.log(p)
            if output == LOGISTIC and y != 1.0:
                total -= (1.0 - y) * math.log(1.0 - p)
    return total / n_samples


@jit
def penalty(theta, layer_sizes, alpha, n_samples):
    """α/(2m)·ΣW² over the weights, θ[:n_weights]."""
    if alpha == 0.0:
        return 0.0
    weights = theta[:n_weights(layer_sizes)]
    # BLAS dot: a vectorised sum of squares (a plain loop's float sum cannot be
    # reordered into SIMD lanes without fastmath)
    return 0.5 * alpha * float(np.dot(weights, weights)) / n_samples


@jit
def loss_only(theta, X, Y, layer_sizes, activation, output, alpha, activations):
    """The loss of the network on (X, Y), penalty included, as a float64."""
    P = forward(theta, X, layer_sizes, activation, output, activations)
    return _data_loss(P, Y, output) + penalty(theta, layer_sizes, alpha, X.shape[0])


@jit
def loss_and_gradient(theta, X, Y, layer_sizes, activation, output, alpha, grad, activations, deltas):
    """Forward and backward pass: fill ``grad`` (θ's layout) and return the loss (float64)."""
    real = theta.dtype.type
    n_samples = X.shape[0]
    n_layers = layer_sizes.size - 1
    P = forward(theta, X, layer_sizes, activation, output, activations)
    loss = _data_loss(P, Y, output) + penalty(theta, layer_sizes, alpha, n_samples)

    # offsets of the last layer's blocks, walked backwards
    weight_offset = n_weights(layer_sizes)
    bias_offset = weight_offset + layer_sizes[1:].sum()
    activation_offset = workspace_size(layer_sizes, n_samples)
    n_out = layer_sizes[n_layers]
    weight_offset -= layer_sizes[n_layers - 1] * n_out
    bias_offset -= n_out
    activation_offset -= n_samples * n_out

    # output layer: d loss / d z = (P − Y) / m for both cross-entropies, / (m k) for squared error
    scale = real(1.0 / n_samples) if output != IDENTITY else real(1.0 / (n_samples * n_out))
    delta = _block(deltas, activation_offset, n_samples, n_out)
    for i in range(n_samples):
        for j in range(n_out):
            delta[i, j] = (P[i, j] - Y[i, j]) * scale

    decay = real(alpha / n_samples)
    for layer in range(n_layers - 1, -1, -1):
        n_in, n_out = layer_sizes[layer], layer_sizes[layer + 1]
        W = _weights(theta, weight_offset, n_in, n_out)
        grad_W = _weights(grad, weight_offset, n_in, n_out)
        grad_b = grad[bias_offset:bias_offset + n_out]
        delta = _block(deltas, activation_offset, n_samples, n_out)
        if layer == 0:
            inputs = X
        else:
            inputs = _block(activations, activation_offset - n_samples * n_in, n_samples, n_in)
        gemm(inputs, delta, grad_W, True, False, False)
        for i in range(n_in):
            for j in range(n_out):
                grad_W[i, j] += decay * W[i, j]
        for j in range(n_out):
            grad_b[j] = real(0.0)
        for i in range(n_samples):
            for j in range(n_out):
                grad_b[j] += delta[i, j]
        if layer > 0:
            previous = _block(deltas, activation_offset - n_samples * n_in, n_samples, n_in)
            gemm(delta, W, previous, False, True, False)
            _scale_by_derivative(previous, inputs, activation)
            weight_offset -= layer_sizes[layer - 1] * n_in
            bias_offset -= n_in
            activation_offset -= n_samples * n_in
    return loss
