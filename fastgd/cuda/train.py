"""A whole epoch of MLP training on the device: the CPU's :func:`fastgd.kernels.train.train_epoch`, as launches.

θ, the optimizer's state, the data, the gradient and every workspace stay
on the device. The host shuffles (the CPU's generator, so both targets see
the same batches), uploads the epoch's order once, then only launches
kernels: per batch the gather, one product per layer forward, the output
loss and δ, the weight gradients and δs backward, the batch's bookkeeping
(:func:`fastgd.cuda.mlp.finish_batch`) and the update. Learning-rate
schedule and per-step scalars are known on the host in advance, so nothing
waits for the device until the epoch's status (loss, divergence) is read at
its end: the one synchronisation of an epoch.
"""

import numpy as np
from numba import cuda

from fastgd.cuda import mlp
from fastgd.cuda.arrays import add_sum_of_squares, flag_nonfinite, launch_shape, reduction_shape
from fastgd.kernels.mlp import IDENTITY, SOFTMAX
from fastgd.kernels.schedules import learning_rate_scale
from fastgd.kernels.shuffle import shuffle_for_epoch
from fastgd.kernels.train import workspace_elements

__all__ = ["DeviceWorkspace", "train_epoch", "check_device_data", "NetworkWorkspace", "train_network_epoch"]


def check_device_data(net, X, Y, dtype=None):
    """X and Y already on the device, as :meth:`fastgd.MLP.check_data` checks host data (no conversion here).

    ``net``: a network, ``dtype`` θ's (by default the network's declared one); X as flat rows, (n, inputs).
    """
    from fastgd import cuda as fastgd_cuda

    X, Y = fastgd_cuda.as_device_array(X, "X"), fastgd_cuda.as_device_array(Y, "Y")
    if Y.ndim == 1 and net.n_outputs == 1:
        Y = Y.reshape(Y.shape[0], 1)
    dtype = net.dtype if dtype is None else dtype
    for name, array, columns in (("X", X, net.n_inputs), ("Y", Y, net.n_outputs)):
        if array.ndim != 2 or array.shape[1] != columns or array.shape[0] != X.shape[0]:
            raise ValueError(f"{name} on the device must have shape ({X.shape[0]}, {columns}), got "
                             f"{tuple(array.shape)}")
        if array.dtype != dtype:
            raise TypeError(f"{name} on the device has dtype {array.dtype}, the network {dtype}: convert it "
                            "on the device first")
        if not array.is_c_contiguous():
            raise ValueError(f"{name} on the device must be C-contiguous")
    flags = cuda.to_device(np.zeros(2))
    flag_nonfinite[launch_shape(X.size)](X.reshape(X.size), flags, 0)
    flag_nonfinite[launch_shape(Y.size)](Y.reshape(Y.size), flags, 1)
    has_nan_x, has_nan_y = flags.copy_to_host()
    if has_nan_x or has_nan_y:
        raise ValueError(f"{'X' if has_nan_x else 'Y'} contains NaN or infinity")
    return X, Y


class DeviceWorkspace:
    """Every device buffer of a training run, allocated once, and the views the epochs launch over.

    ``theta`` is the optimizer's params (device); the views into it, the
    gradient and the activation and δ blocks (one set per batch length: the
    full one and the last, shorter one) are made once.
    """

    def __init__(self, net, theta, n_samples, batch_size):
        dtype, sizes = theta.dtype, net.stack.layer_sizes  # the MLP's passes' sizes (a scikit-learn-order network)
        self.layer_sizes = sizes.tolist()
        self.order_host = np.empty(n_samples, dtype=np.int64)
        self.order = cuda.device_array(n_samples, dtype=np.int64)
        self.grad = cuda.device_array(net.n_params, dtype=dtype)
        self.activations = cuda.device_array(workspace_elements(sizes, batch_size), dtype=dtype)
        self.deltas = cuda.device_array(workspace_elements(sizes, batch_size), dtype=dtype)
        self.batch_X = cuda.device_array(batch_size * net.n_inputs, dtype=dtype)
        self.batch_Y = cuda.device_array(batch_size * net.n_outputs, dtype=dtype)
        self.status = cuda.device_array(mlp.STATUS_SIZE, dtype=np.float64)
        self.halt = cuda.device_array(1, dtype=np.int32)
        self.clip_factor = cuda.device_array(1, dtype=dtype)
        self.weights, self.biases = self._layers(theta)
        self.grad_weights, self.grad_biases = self._layers(self.grad)
        self._blocks = {}

    def _layers(self, vector):
        weights, biases = [], []
        weight_offset = 0
        bias_offset = sum(n_in * n_out for n_in, n_out in zip(self.layer_sizes, self.layer_sizes[1:]))
        for n_in, n_out in zip(self.layer_sizes, self.layer_sizes[1:]):
            weights.append(vector[weight_offset:weight_offset + n_in * n_out].reshape(n_in, n_out))
            biases.append(vector[bias_offset:bias_offset + n_out])
            weight_offset += n_in * n_out
            bias_offset += n_out
        return weights, biases

    def blocks(self, n_rows):
        """(batch X, batch Y, [(Z, δ) per layer]) for a batch of ``n_rows`` rows: the CPU's layout."""
        if n_rows not in self._blocks:
            layers, offset = [], 0
            for n_out in self.layer_sizes[1:]:
                size = n_rows * n_out
                layers.append((self.activations[offset:offset + size].reshape(n_rows, n_out),
                               self.deltas[offset:offset + size].reshape(n_rows, n_out)))
                offset += size
            batch_X = self.batch_X[:n_rows * self.layer_sizes[0]].reshape(n_rows, self.layer_sizes[0])
            batch_Y = self.batch_Y[:n_rows * self.layer_sizes[-1]].reshape(n_rows, self.layer_sizes[-1])
            self._blocks[n_rows] = (batch_X, batch_Y, layers)
        return self._blocks[n_rows]

    def reset(self):
        """Zero the status and the halt flag: a new epoch."""
        self.status.copy_to_device(np.zeros(mlp.STATUS_SIZE))
        self.halt.copy_to_device(np.zeros(1, dtype=np.int32))


def _loss_and_gradient(workspace, inputs, targets, layers, activation, output, alpha):
    """Launch the forward pass, the output loss and δ, and the backward pass of one batch."""
    n_rows = inputs.shape[0]
    n_layers = len(layers)
    real = inputs.dtype.type
    current = inputs
    for layer, (Z, _) in enumerate(layers):
        weights = workspace.weights[layer]
        if layer < n_layers - 1:
            layer_activation = activation
        else:
            layer_activation = IDENTITY if output == SOFTMAX else output
        mlp.forward_layer[mlp.product_shape(n_rows, Z.shape[1])](current, weights, workspace.biases[layer], Z,
                                                                  layer_activation)
        current = Z
    output_block, output_delta = layers[-1]
    n_outputs = output_block.shape[1]
    scale = real(1.0 / n_rows) if output != IDENTITY else real(1.0 / (n_rows * n_outputs))
    eps = float(np.finfo(inputs.dtype).eps)
    mlp.output_loss_and_delta[launch_shape(n_rows)](output_block, targets, output_delta, output, scale, eps,
                                                    workspace.status)
    decay = real(alpha / n_rows)
    for layer in range(n_layers - 1, -1, -1):
        Z, delta = layers[layer]
        below = inputs if layer == 0 else layers[layer - 1][0]
        grad_weights = workspace.grad_weights[layer]
        mlp.weight_gradient[mlp.product_shape(*grad_weights.shape)](
            below, delta, workspace.weights[layer], decay, grad_weights, workspace.grad_biases[layer],
            workspace.status, alpha != 0.0)
        if layer > 0:
            mlp.backward_delta[mlp.product_shape(n_rows, below.shape[1])](
                delta, workspace.weights[layer], below, layers[layer - 1][1], activation)


def _start_epoch(workspace, n_samples, shuffle, seed, epoch):
    """The epoch's order of rows, on the device, and a zeroed status (both epochs, the MLP's and a network's)."""
    order = workspace.order_host
    if shuffle:
        shuffle_for_epoch(order, seed, epoch)
    else:
        order[:] = np.arange(n_samples)
    workspace.order.copy_to_device(order)
    workspace.reset()


def _finish_batch_and_step(workspace, theta, packed, n_rows, divisor, half_alpha, clip_norm, base_lr, schedule,
                           epoch, counter_trail):
    """After a batch's gradient: its loss booked, the gradient clipped, the rule's step (halted by a non-finite
    loss, on the device), and the counters after it kept for :func:`_end_epoch`."""
    counters = packed.counters
    if clip_norm > 0.0:
        add_sum_of_squares[reduction_shape(workspace.grad.size)](workspace.grad, workspace.status,
                                                                 mlp.GRAD_SQUARES)
    mlp.finish_batch[1, 1](workspace.status, workspace.halt, float(n_rows), divisor, half_alpha, clip_norm,
                           workspace.clip_factor)
    if clip_norm > 0.0:
        mlp.scale_by_factor[launch_shape(workspace.grad.size)](workspace.grad, workspace.clip_factor)
    packed.hyper[packed.hyper.size - 1] = learning_rate_scale(base_lr, schedule, epoch, int(counters[0]) + 1)
    packed.function(theta, workspace.grad, packed.states, packed.aux, packed.hyper, counters, packed.layout,
                    workspace.halt)
    counter_trail.append(counters.copy())


def _end_epoch(workspace, theta, counters, counter_trail, n_samples):
    """(loss, whether θ is finite) from the status, after the epoch's one wait for the device; at a non-finite
    batch loss, the counters as they were before that batch."""
    flag_nonfinite[launch_shape(theta.size)](theta, workspace.status, mlp.THETA_NONFINITE)
    status = workspace.status.copy_to_host()  # the epoch's one wait for the device
    good_batches = int(status[mlp.GOOD_BATCHES])
    theta_finite = status[mlp.THETA_NONFINITE] == 0.0
    if good_batches < len(counter_trail) - 1:
        counters[:] = counter_trail[good_batches]
        return float(status[mlp.BAD_LOSS]), theta_finite
    return float(status[mlp.EPOCH_TOTAL]) / n_samples, theta_finite


def train_epoch(theta, X, Y, layer_sizes, activation, output, alpha, packed, base_lr, schedule, clip_norm,
                batch_size, shuffle, seed, epoch, workspace):
    """One epoch over the device arrays (X, Y): :func:`fastgd.kernels.train.train_epoch` on the device.

    The arguments are the CPU's, with ``theta``, ``X``, ``Y`` and the rule's
    state on the device (``packed``: :meth:`fastgd.optim.Optimizer.packed`,
    whose function is the rule's CUDA ``packed_launch``) and the buffers in
    ``workspace`` (a :class:`DeviceWorkspace` over ``theta``). ``hyper`` and
    ``counters`` stay on the host; at a non-finite batch loss the counters are
    those before that batch, as on the CPU. Returns (loss, whether θ is
    finite): the mean loss of the batches, or the first non-finite batch loss.
    """
    counters = packed.counters
    n_samples = X.shape[0]
    _start_epoch(workspace, n_samples, shuffle, seed, epoch)
    n_outputs = layer_sizes[-1]
    half_alpha = 0.5 * alpha
    counter_trail = [counters.copy()]
    for start in range(0, n_samples, batch_size):
        stop = min(start + batch_size, n_samples)
        n_rows = stop - start
        batch_X, batch_Y, layers = workspace.blocks(n_rows)
        if n_rows == n_samples:
            inputs, targets = X, Y  # full batch: the order of the rows does not matter
        else:
            mlp.gather_batch[launch_shape(batch_X.size + batch_Y.size)](X, Y, workspace.order, start, batch_X,
                                                                      batch_Y)
            inputs, targets = batch_X, batch_Y
        _loss_and_gradient(workspace, inputs, targets, layers, activation, output, alpha)
        divisor = 2.0 * n_rows * n_outputs if output == IDENTITY else float(n_rows)
        _finish_batch_and_step(workspace, theta, packed, n_rows, divisor, half_alpha, clip_norm, base_lr, schedule,
                               epoch, counter_trail)
    return _end_epoch(workspace, theta, counters, counter_trail, n_samples)


class NetworkWorkspace:
    """Every device buffer of a declared network's training run, allocated once: the pass
    (:class:`fastgd.cuda.network.DevicePass`, whose status vector the epoch keeps), the gradient, the order."""

    def __init__(self, net, theta, n_samples, batch_size):
        from fastgd.cuda import network

        self.device_pass = network.DevicePass(net, theta.dtype, batch_size)
        self.status = self.device_pass.status
        self.order_host = np.empty(n_samples, dtype=np.int64)
        self.order = cuda.device_array(n_samples, dtype=np.int64)
        self.in_order = cuda.to_device(np.arange(n_samples, dtype=np.int64))  # a full batch's rows, as the CPU's
        self.grad = cuda.device_array(net.n_params, dtype=theta.dtype)
        self.batch_Y = cuda.device_array(batch_size * net.n_outputs, dtype=theta.dtype)
        self.halt = cuda.device_array(1, dtype=np.int32)
        self.clip_factor = cuda.device_array(1, dtype=theta.dtype)

    def reset(self):
        """Zero the status and the halt flag: a new epoch."""
        self.status.copy_to_device(np.zeros(mlp.STATUS_SIZE))
        self.halt.copy_to_device(np.zeros(1, dtype=np.int32))


def train_network_epoch(theta, X, Y, net, packed, base_lr, schedule, clip_norm, batch_size, shuffle, seed, epoch,
                        workspace):
    """One epoch of a declared network (:class:`fastgd.networks.Network`) over the device arrays X (n × inputs,
    flat rows) and Y: the CPU's epoch on the device, as :func:`train_epoch` is for the MLP.

    Per batch: the rows gathered into the pass's input block (a full batch in its order, as the CPU takes it),
    the network's pass (:mod:`fastgd.cuda.network`), the batch's bookkeeping and the rule's update; one wait
    for the device, at the end. The network's L2 penalty (``net.alpha``) is in the pass's gradient and in each
    batch's loss, as on the CPU. Returns (loss, whether θ is finite), as :func:`train_epoch`.
    """
    counters = packed.counters
    n_samples = X.shape[0]
    _start_epoch(workspace, n_samples, shuffle, seed, epoch)
    device_pass = workspace.device_pass
    n_outputs = net.n_outputs
    counter_trail = [counters.copy()]
    for start in range(0, n_samples, batch_size):
        stop = min(start + batch_size, n_samples)
        n_rows = stop - start
        inputs = device_pass.inputs(n_rows)
        targets = workspace.batch_Y[:n_rows * n_outputs].reshape(n_rows, n_outputs)
        rows = workspace.in_order if n_rows == n_samples else workspace.order
        mlp.gather_batch[launch_shape(inputs.size + targets.size)](X, Y, rows, start, inputs, targets)
        device_pass.loss_and_gradient(theta, workspace.batch_Y, n_rows, workspace.grad)
        divisor = float(n_rows) if net.loss_name == "cross_entropy" else float(n_rows * n_outputs)
        _finish_batch_and_step(workspace, theta, packed, n_rows, divisor, 0.5 * net.alpha, clip_norm, base_lr,
                               schedule, epoch, counter_trail)
    return _end_epoch(workspace, theta, counters, counter_trail, n_samples)
