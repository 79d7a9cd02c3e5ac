"""A declared network's forward pass, loss and gradient in plain NumPy, layer by layer: the oracle.

Slow and obvious on purpose: a convolution is a sum over its kernel's offsets of strided slices of
the zero-padded input, a pool a loop over its windows. It reads only the declaration's resolved
layers (:mod:`fastgd.networks.layers`) and unpacks θ itself, in torch's ``state_dict`` order, so
that a mistake in :mod:`fastgd.kernels.network` or in the plan built for it cannot leak in.
"""

import numpy as np

__all__ = ["unpack", "forward", "loss_and_gradient"]

_ACTIVATIONS = {
    "ReLU": (lambda z: np.maximum(z, 0), lambda a: (a > 0).astype(a.dtype)),
    "Tanh": (np.tanh, lambda a: 1 - a * a),
    "Sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda a: a * (1 - a)),
    "Identity": (lambda z: z, lambda a: np.ones_like(a)),
}


def unpack(network, theta):
    """[(weight, bias or None) or None per layer], each weight of torch's shape, as views into θ."""
    parameters, offset = [], 0
    for layer in network.resolved:
        if layer.weight_shape is None:
            parameters.append(None)
            continue
        size = int(np.prod(layer.weight_shape))
        weight = theta[offset:offset + size].reshape(layer.weight_shape)
        offset += size
        bias = None
        if layer.has_bias:
            bias = theta[offset:offset + layer.weight_shape[0]]
            offset += layer.weight_shape[0]
        parameters.append((weight, bias))
    assert offset == theta.size, "θ's size is not the network's"
    return parameters


def _as_chw(x, layer, which):
    return x.reshape((x.shape[0],) + (layer.in_chw if which == "in" else layer.out_chw))


def _padded(x, padding, value):
    top, bottom, left, right = padding
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def _windows(layer):
    """(a, b, rows, columns): for each kernel offset, the slices of the padded input it meets."""
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    _, out_h, out_w = layer.out_chw
    for a in range(kh):
        for b in range(kw):
            yield a, b, slice(a, a + sh * (out_h - 1) + 1, sh), slice(b, b + sw * (out_w - 1) + 1, sw)


def _layer_forward(layer, parameters, x):
    kind = layer.kind
    if kind == "Dense":
        weight, bias = parameters
        return x @ weight.T + (0 if bias is None else bias)
    if kind in ("Conv1D", "Conv2D"):
        weight, bias = parameters
        weight = weight.reshape(weight.shape[:2] + layer.kernel)
        xp = _padded(_as_chw(x, layer, "in"), layer.padding, 0)
        out = np.zeros((x.shape[0],) + layer.out_chw, dtype=x.dtype)
        for a, b, rows, columns in _windows(layer):
            out += np.einsum("oc,nchw->nohw", weight[:, :, a, b], xp[:, :, rows, columns])
        if bias is not None:
            out += bias[None, :, None, None]
        return out.reshape((x.shape[0],) + layer.out_shape)
    if kind in ("MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D"):
        xp = _padded(_as_chw(x, layer, "in"), layer.padding, -np.inf)
        stacked = np.stack([xp[:, :, rows, columns] for _, _, rows, columns in _windows(layer)])
        out = stacked.max(axis=0) if kind.startswith("Max") else stacked.mean(axis=0)
        return out.reshape((x.shape[0],) + layer.out_shape)
    if kind == "GlobalAvgPool":
        return _as_chw(x, layer, "in").mean(axis=(2, 3))
    if kind == "Flatten":
        return x.reshape(x.shape[0], -1)
    return _ACTIVATIONS[kind][0](x)


def forward(network, theta, X):
    """Every layer's output for X (n, *input_shape), the input first."""
    outputs = [np.asarray(X).reshape((X.shape[0],) + network.input_shape)]
    for layer, parameters in zip(network.resolved, unpack(network, theta)):
        outputs.append(_layer_forward(layer, parameters, outputs[-1]))
    return outputs


def _loss(network, z, Y):
    """(loss, d loss / d z) of the last layer's outputs."""
    n = z.shape[0]
    if network.loss_name == "cross_entropy":
        shifted = z - z.max(axis=1, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -np.sum(Y * log_softmax) / n
        return loss, (np.exp(log_softmax) * Y.sum(axis=1, keepdims=True) - Y) / n
    if network.loss_name == "binary_cross_entropy":
        # torch's BCEWithLogitsLoss: the mean over every entry of −y log σ(z) − (1 − y) log(1 − σ(z))
        return np.mean(np.logaddexp(0.0, z) - z * Y), (0.5 * (1.0 + np.tanh(0.5 * z)) - Y) / z.size
    return np.mean((z - Y) ** 2), 2 * (z - Y) / z.size


def _layer_backward(layer, parameters, x, y, delta, grads):
    """δ of the layer's input from δ of its output; fills ``grads`` (weight, bias) for layers with parameters."""
    kind = layer.kind
    if kind == "Dense":
        weight, _ = parameters
        grads[0][...] = delta.T @ x
        if grads[1] is not None:
            grads[1][...] = delta.sum(axis=0)
        return delta @ weight
    if kind in ("Conv1D", "Conv2D"):
        weight, _ = parameters
        weight = weight.reshape(weight.shape[:2] + layer.kernel)
        weight_grad = grads[0].reshape(weight.shape)
        xp = _padded(_as_chw(x, layer, "in"), layer.padding, 0)
        delta = _as_chw(delta, layer, "out")
        delta_padded = np.zeros_like(xp)
        for a, b, rows, columns in _windows(layer):
            weight_grad[:, :, a, b] = np.einsum("nohw,nchw->oc", delta, xp[:, :, rows, columns])
            delta_padded[:, :, rows, columns] += np.einsum("oc,nohw->nchw", weight[:, :, a, b], delta)
        if grads[1] is not None:
            grads[1][...] = delta.sum(axis=(0, 2, 3))
        top, bottom, left, right = layer.padding
        _, height, width = layer.in_chw
        return delta_padded[:, :, top:top + height, left:left + width].reshape(x.shape)
    if kind in ("MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D"):
        xp = _padded(_as_chw(x, layer, "in"), layer.padding, -np.inf)
        delta = _as_chw(delta, layer, "out")
        delta_padded = np.zeros_like(xp)
        (kh, kw), (sh, sw) = layer.kernel, layer.stride
        _, out_h, out_w = layer.out_chw
        for oh in range(out_h):
            for ow in range(out_w):
                window = xp[:, :, oh * sh:oh * sh + kh, ow * sw:ow * sw + kw]
                target = delta_padded[:, :, oh * sh:oh * sh + kh, ow * sw:ow * sw + kw]
                if kind.startswith("Max"):
                    # the first largest entry of each window takes the whole delta
                    flat = window.reshape(window.shape[0], window.shape[1], -1)
                    mask = np.zeros_like(flat)
                    np.put_along_axis(mask, flat.argmax(axis=2)[..., None], 1.0, axis=2)
                    target += mask.reshape(window.shape) * delta[:, :, oh:oh + 1, ow:ow + 1]
                else:
                    target += delta[:, :, oh:oh + 1, ow:ow + 1] / (kh * kw)
        top, _, left, _ = layer.padding
        _, height, width = layer.in_chw
        return delta_padded[:, :, top:top + height, left:left + width].reshape(x.shape)
    if kind == "GlobalAvgPool":
        _, height, width = layer.in_chw
        return np.broadcast_to(delta[:, :, None, None] / (height * width),
                               delta.shape + (height, width)).reshape(x.shape).copy()
    if kind == "Flatten":
        return delta.reshape(x.shape)
    return delta * _ACTIVATIONS[kind][1](y)


def loss_and_gradient(network, theta, X, Y):
    """(loss, gradient in θ's layout) of ``network`` at θ on (X, Y) by backpropagation, layer by layer."""
    outputs = forward(network, theta, X)
    loss, delta = _loss(network, outputs[-1], np.asarray(Y, dtype=theta.dtype))
    grad = np.zeros_like(theta)
    parameters, gradients = unpack(network, theta), unpack(network, grad)
    for index in range(len(network.resolved) - 1, -1, -1):
        delta = _layer_backward(network.resolved[index], parameters[index], outputs[index], outputs[index + 1], delta,
                                gradients[index])
    return float(loss), grad
