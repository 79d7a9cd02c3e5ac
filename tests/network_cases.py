"""Shared by the network tests: a torch ``nn.Sequential`` built from a declaration and given θ, and the grid of
shapes the passes are checked over (odd sizes, stride > 1, every padding, one channel, batch 1, a kernel as large as
its input, every layer kind)."""

import numpy as np

from fastgd.networks import (AvgPool1D, AvgPool2D, Conv1D, Conv2D, Dense, Flatten, GlobalAvgPool, Identity, MaxPool1D,
                             MaxPool2D, Network, ReLU, Sigmoid, Tanh)

# (name, layers, input_shape, loss, batch size)
GRID = [
    ("conv2d_same_odd_relu_maxpool", [Conv2D(3, 3, padding="same"), ReLU(), MaxPool2D(2), Flatten(), Dense(4)],
     (2, 7, 5), "cross_entropy", 3),
    ("conv2d_stride2_pad1_tanh", [Conv2D(4, (3, 2), stride=2, padding=1), Tanh(), Flatten(), Dense(3)],
     (1, 9, 6), "cross_entropy", 2),
    ("conv2d_even_kernel_same_sigmoid", [Conv2D(2, 4, padding="same"), Sigmoid(), Flatten(), Dense(3)],
     (3, 5, 6), "mse", 2),
    ("conv2d_valid_kernel_as_large_as_input", [Conv2D(5, (4, 3), padding="valid"), Flatten(), Dense(2)],
     (2, 4, 3), "cross_entropy", 1),
    ("conv2d_no_bias_stride_pair_avgpool", [Conv2D(3, 3, stride=(1, 2), bias=False), ReLU(), AvgPool2D(2, 1),
                                            Flatten(), Dense(3, bias=False)], (2, 6, 7), "cross_entropy", 2),
    ("maxpool2d_tf_same_overlapping", [Conv2D(3, 2), ReLU(), MaxPool2D(3, 2, padding="same"), Flatten(), Dense(3)],
     (1, 8, 7), "cross_entropy", 2),
    ("maxpool2d_torch_padding", [Conv2D(2, 3, padding=1), MaxPool2D(3, 2, padding=1), GlobalAvgPool(), Dense(2)],
     (2, 5, 5), "mse", 3),
    ("conv1d_stride_padding", [Conv1D(4, 5, stride=2, padding=1), ReLU(), Conv1D(3, 3, stride=2, padding=1), Tanh(),
                               Flatten(), Dense(3)], (1, 13), "cross_entropy", 3),
    ("conv1d_same_pools", [Conv1D(3, 4, padding="same"), Sigmoid(), MaxPool1D(2), Conv1D(2, 2), AvgPool1D(2, 1),
                           GlobalAvgPool(), Identity(), Dense(2)], (2, 9), "cross_entropy", 2),
    ("conv1d_kernel_as_large_as_input", [Conv1D(3, 6), Flatten(), Dense(2)], (2, 6), "mse", 1),
    ("maxpool1d_same_stride3", [MaxPool1D(2, 3, padding="same"), Flatten(), Dense(2)], (2, 8), "cross_entropy", 2),
    ("dense_only", [Dense(5), Tanh(), Dense(4), Sigmoid(), Dense(3)], (6,), "cross_entropy", 4),
    # torch's BCEWithLogitsLoss: one logit (a binary classifier), and three (three labels, the mean over every entry)
    ("conv2d_stride2_one_logit_bce", [Conv2D(2, 3, stride=2, padding=1), ReLU(), Flatten(), Dense(1)], (1, 5, 5),
     "binary_cross_entropy", 3),
    ("dense_three_logits_bce", [Dense(4), Tanh(), Dense(3)], (5,), "binary_cross_entropy", 4),
]


def network(case):
    _, layers, input_shape, loss, _ = case
    return Network(layers, input_shape=input_shape, loss=loss)


def data(case, dtype=np.float64, seed=0):
    """(θ, X, Y) for a case: θ drawn by torch's scheme with biases made non-zero, soft targets for cross-entropy."""
    net = network(case)
    rng = np.random.default_rng(seed)
    theta = net.init(random_state=seed, dtype=dtype)
    theta += dtype(0.1) * rng.normal(size=theta.size).astype(dtype)
    batch = case[4]
    X = rng.normal(size=(batch,) + net.input_shape).astype(dtype)
    if net.loss_name == "cross_entropy":
        Y = rng.dirichlet(np.ones(net.n_outputs), size=batch).astype(dtype)
    elif net.loss_name == "binary_cross_entropy":
        Y = rng.uniform(size=(batch, net.n_outputs)).astype(dtype)  # soft targets in [0, 1], as torch takes them
    else:
        Y = rng.normal(size=(batch, net.n_outputs)).astype(dtype)
    return net, theta, X, Y


def torch_module(net, theta):
    """``nn.Sequential`` of ``net``'s layers, its parameters loaded from θ in ``parameters()`` order."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class SamePool(nn.Module):
        """A max pool after padding with -inf (TensorFlow's "same")."""

        def __init__(self, resolved, dims):
            super().__init__()
            self.resolved, self.dims = resolved, dims

        def forward(self, x):
            top, bottom, left, right = self.resolved.padding
            pads = (left, right) if self.dims == 1 else (left, right, top, bottom)
            kernel, stride = self.resolved.kernel, self.resolved.stride
            pool = F.max_pool1d if self.dims == 1 else F.max_pool2d
            if self.dims == 1:
                kernel, stride = kernel[1], stride[1]
            return pool(F.pad(x, pads, value=-float("inf")), kernel, stride)

    class GlobalAverage(nn.Module):
        def forward(self, x):
            return x.mean(dim=tuple(range(2, x.dim())))

    modules, shape = [], net.input_shape
    for layer, resolved in zip(net.layers, net.resolved):
        kind = type(layer).__name__
        if kind == "Dense":
            modules.append(nn.Linear(shape[0], layer.out_features, bias=layer.bias))
        elif kind in ("Conv1D", "Conv2D"):
            conv = nn.Conv1d if kind == "Conv1D" else nn.Conv2d
            modules.append(conv(shape[0], layer.out_channels, layer.kernel_size, stride=layer.stride,
                                padding=layer.padding, bias=layer.bias))
        elif kind in ("MaxPool1D", "MaxPool2D"):
            if layer.padding == "same":
                modules.append(SamePool(resolved, 1 if kind.endswith("1D") else 2))
            else:
                pool = nn.MaxPool1d if kind.endswith("1D") else nn.MaxPool2d
                modules.append(pool(layer.kernel_size, layer.stride, padding=layer.padding))
        elif kind in ("AvgPool1D", "AvgPool2D"):
            pool = nn.AvgPool1d if kind.endswith("1D") else nn.AvgPool2d
            modules.append(pool(layer.kernel_size, layer.stride))
        elif kind == "GlobalAvgPool":
            modules.append(GlobalAverage())
        else:
            modules.append({"Flatten": nn.Flatten, "ReLU": nn.ReLU, "Tanh": nn.Tanh, "Sigmoid": nn.Sigmoid,
                            "Identity": nn.Identity}[kind]())
        shape = resolved.out_shape
    module = nn.Sequential(*modules).to(torch.float64 if theta.dtype == np.float64 else torch.float32)
    with torch.no_grad():
        offset = 0
        for parameter in module.parameters():
            parameter.copy_(torch.from_numpy(theta[offset:offset + parameter.numel()].reshape(parameter.shape)))
            offset += parameter.numel()
    assert offset == theta.size
    return module


def torch_loss_and_gradient(net, theta, X, Y):
    """(loss, gradient flattened in θ's order, outputs) by torch autograd, θ loaded into torch's own modules."""
    import torch
    from torch.nn import functional as F

    module = torch_module(net, theta)
    outputs = module(torch.from_numpy(np.ascontiguousarray(X)))
    target = torch.from_numpy(np.ascontiguousarray(Y))
    loss = {"cross_entropy": F.cross_entropy, "mse": F.mse_loss,
            "binary_cross_entropy": F.binary_cross_entropy_with_logits}[net.loss_name](outputs, target)
    loss.backward()
    grad = np.concatenate([p.grad.numpy().ravel() for p in module.parameters()]) if theta.size else theta.copy()
    return float(loss), grad, outputs.detach().numpy()


def device_kernel_signatures(real):
    """The argument types :mod:`fastgd.cuda.network` launches each of its kernels with, for θ's numba type ``real``:
    the PTX test compiles these, the simulator test checks every launch against them."""
    import numba

    vector, matrix = numba.types.Array(real, 1, "C"), numba.types.Array(real, 2, "C")
    row = numba.types.Array(numba.types.int64, 1, "C")
    status = numba.types.Array(numba.types.float64, 1, "C")
    integer, flag = numba.types.int64, numba.types.boolean
    return {
        "product": (matrix, matrix, flag, flag, matrix, flag),
        "add_row_bias": (vector, row, integer, vector),
        "im2col": (row, integer, integer, integer, vector, vector, integer),
        "conv_output": (vector, row, integer, integer, integer, vector, integer, vector),
        "conv_deltas": (row, integer, integer, integer, vector, vector, integer),
        "col2im": (row, integer, integer, integer, vector, integer, vector),
        "bias_gradient": (row, integer, vector, vector),
        "pool_forward": (row, integer, vector),
        "pool_backward": (row, integer, vector, vector),
        "global_pool_forward": (row, integer, vector),
        "global_pool_backward": (row, integer, vector),
        "activation_forward": (row, integer, vector),
        "activation_backward": (row, integer, vector, vector),
        "loss_rows": (row, integer, vector, integer, vector, vector, status),
        "loss_total": (row, integer, vector, integer, vector, status, status),
    }
