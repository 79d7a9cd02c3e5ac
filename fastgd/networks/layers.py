"""The layers a network is declared from, in torch's vocabulary and with torch's defaults.

Each layer is a frozen dataclass holding its arguments as given; :class:`fastgd.networks.Network`
checks them in order, with the shape each layer receives, and refuses a bad one in one line naming
its index and kind (``layer 3 (Conv2D): stride must be ≥ 1, got 0``). Shapes are channels first, as
torch's, without the batch: ``(features,)``, ``(channels, length)``, ``(channels, height, width)``.

:func:`resolve` turns a layer and its input shape into a :class:`Resolved` layer: every size an
integer, the 1-D layers written as 2-D ones of height 1 (a ``Conv1D`` of kernel k is a ``Conv2D`` of
kernel (1, k)), and zero padding split into the rows and columns before and after (torch's "same"
pads an even kernel one more after than before).
"""

import dataclasses
import numbers

__all__ = ["Dense", "Conv1D", "Conv2D", "MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D", "GlobalAvgPool",
           "Flatten", "ReLU", "Tanh", "Sigmoid", "Identity", "LayerError", "Resolved", "resolve", "ACTIVATION_LAYERS"]


class LayerError(ValueError):
    """A layer that cannot be built where it stands; the message is one line naming its index and kind."""


@dataclasses.dataclass(frozen=True)
class Dense:
    """A fully connected layer, torch's ``nn.Linear``: y = x Wᵀ + b, W stored (out_features, in_features)."""

    out_features: int
    bias: bool = True


@dataclasses.dataclass(frozen=True)
class Conv1D:
    """torch's ``nn.Conv1d`` on (channels, length): weight (out_channels, in_channels, kernel_size).

    ``padding``: zeros on both ends, an int, or ``"valid"`` (none) or ``"same"`` (output as long
    as the input; stride 1 only, as in torch).
    """

    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: object = 0
    bias: bool = True


@dataclasses.dataclass(frozen=True)
class Conv2D:
    """torch's ``nn.Conv2d`` on (channels, height, width): weight (out_channels, in_channels, kh, kw).

    ``kernel_size``, ``stride`` and an int ``padding`` are an int or a pair (rows, columns);
    ``padding`` may also be ``"valid"`` or ``"same"`` (stride 1 only, as in torch).
    """

    out_channels: int
    kernel_size: object
    stride: object = 1
    padding: object = 0
    bias: bool = True


@dataclasses.dataclass(frozen=True)
class MaxPool1D:
    """torch's ``nn.MaxPool1d``: stride defaults to the kernel size.

    ``padding``: an int at most half the kernel (torch's rule; padded places never win), or
    ``"same"``, TensorFlow's: the output is ⌈length / stride⌉ long, the odd padded place after.
    """

    kernel_size: int
    stride: object = None
    padding: object = 0


@dataclasses.dataclass(frozen=True)
class MaxPool2D:
    """torch's ``nn.MaxPool2d``; ``padding`` as :class:`MaxPool1D`'s, per axis (DeepOBS pools with "same")."""

    kernel_size: object
    stride: object = None
    padding: object = 0


@dataclasses.dataclass(frozen=True)
class AvgPool1D:
    """torch's ``nn.AvgPool1d`` without padding: the mean of each window."""

    kernel_size: int
    stride: object = None


@dataclasses.dataclass(frozen=True)
class AvgPool2D:
    """torch's ``nn.AvgPool2d`` without padding: the mean of each window."""

    kernel_size: object
    stride: object = None


@dataclasses.dataclass(frozen=True)
class GlobalAvgPool:
    """The mean of each channel over its whole length or plane: (C, L) or (C, H, W) → (C,)."""


@dataclasses.dataclass(frozen=True)
class Flatten:
    """torch's ``nn.Flatten``: (C, H, W) → (C·H·W,), channels outermost."""


@dataclasses.dataclass(frozen=True)
class ReLU:
    """max(x, 0), element by element."""


@dataclasses.dataclass(frozen=True)
class Tanh:
    """tanh(x), element by element."""


@dataclasses.dataclass(frozen=True)
class Sigmoid:
    """The logistic function 1 / (1 + e⁻ˣ), element by element (scikit-learn's "logistic")."""


@dataclasses.dataclass(frozen=True)
class Identity:
    """x, unchanged."""


ACTIVATION_LAYERS = {"relu": ReLU, "tanh": Tanh, "logistic": Sigmoid, "identity": Identity}


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A layer with its input and output shapes fixed, every size an integer, 1-D layers as 2-D ones of height 1.

    ``kind`` is the declaration's class name; ``in_shape``/``out_shape`` are the declared shapes,
    ``in_chw``/``out_chw`` the same as (channels, height, width) triples (a flat vector is (n, 1, 1)).
    ``padding`` is (top, bottom, left, right); ``weight_shape`` is torch's, or None without parameters.
    """

    kind: str
    in_shape: tuple
    out_shape: tuple
    in_chw: tuple
    out_chw: tuple
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)
    weight_shape: tuple = None
    has_bias: bool = False


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _positive(value, name, dims):
    """``value`` (an int, or a tuple of ``dims`` ints) as a tuple of positive ints, else the problem in words."""
    values = (value,) * dims if _is_int(value) else value
    if not isinstance(values, tuple) or len(values) != dims or not all(_is_int(v) for v in values):
        raise _Problem(f"{name} must be an integer{' or a pair of integers' if dims == 2 else ''}, got {value!r}")
    if min(values) < 1:
        raise _Problem(f"{name} must be ≥ 1, got {value!r}")
    return tuple(int(v) for v in values)


class _Problem(Exception):
    """What is wrong with a layer, in words; :func:`resolve` adds which layer it is."""


def _chw(shape):
    return (shape[0], 1, 1) if len(shape) == 1 else (shape[0], 1, shape[1]) if len(shape) == 2 else tuple(shape)


def _spatial(shape, dims):
    """The last ``dims`` sizes of a (C, L) or (C, H, W) input as a (height, width) pair."""
    return (1, shape[1]) if dims == 1 else (shape[1], shape[2])


def _expect(in_shape, dims):
    names = {1: "(channels, length)", 2: "(channels, height, width)"}
    if len(in_shape) != dims + 1:
        raise _Problem(f"takes an input {names[dims]}, got {in_shape}"
                       + (" (a flat vector: it cannot follow Flatten or Dense)" if len(in_shape) == 1 else ""))


def _conv(layer, in_shape, dims):
    _expect(in_shape, dims)
    (out_channels,) = _positive(layer.out_channels, "out_channels", 1)
    kernel = _positive(layer.kernel_size, "kernel_size", dims)
    stride = _positive(layer.stride, "stride", dims)
    if not isinstance(layer.bias, bool):
        raise _Problem(f"bias must be True or False, got {layer.bias!r}")
    kernel, stride = ((1,) + kernel, (1,) + stride) if dims == 1 else (kernel, stride)
    size = _spatial(in_shape, dims)
    padding = layer.padding
    if padding == "same":
        if stride != (1, 1):
            raise _Problem(f"padding='same' needs stride 1 (as torch's), got stride {layer.stride!r}")
        # torch's split: the odd padded place goes after
        pads = tuple((k - 1) // 2 for k in kernel), tuple(k - 1 - (k - 1) // 2 for k in kernel)
    elif padding == "valid":
        pads = (0, 0), (0, 0)
    else:
        values = (padding,) * dims if _is_int(padding) else padding
        if not isinstance(values, tuple) or len(values) != dims or not all(_is_int(v) and v >= 0 for v in values):
            raise _Problem(f"padding must be 'valid', 'same' or an integer ≥ 0"
                           f"{' or a pair of them' if dims == 2 else ''}, got {padding!r}")
        values = ((0,) + tuple(values)) if dims == 1 else tuple(values)
        pads = tuple(int(v) for v in values), tuple(int(v) for v in values)
    padded = tuple(size[a] + pads[0][a] + pads[1][a] for a in range(2))
    if kernel[0] > padded[0] or kernel[1] > padded[1]:
        raise _Problem(f"kernel {_shown(kernel, dims)} is larger than its padded input {_shown(padded, dims)}")
    out = tuple((padded[a] - kernel[a]) // stride[a] + 1 for a in range(2))
    out_shape = (out_channels, out[1]) if dims == 1 else (out_channels,) + out
    weight = (out_channels, in_shape[0]) + (kernel[1:] if dims == 1 else kernel)
    return Resolved("Conv1D" if dims == 1 else "Conv2D", tuple(in_shape), out_shape, _chw(in_shape), _chw(out_shape),
                    kernel, stride, (pads[0][0], pads[1][0], pads[0][1], pads[1][1]), weight, layer.bias)


def _shown(pair, dims):
    return pair[1] if dims == 1 else pair


def _pool(layer, in_shape, dims, kind):
    _expect(in_shape, dims)
    kernel = _positive(layer.kernel_size, "kernel_size", dims)
    stride = kernel if layer.stride is None else _positive(layer.stride, "stride", dims)
    kernel, stride = ((1,) + kernel, (1,) + stride) if dims == 1 else (kernel, stride)
    size = _spatial(in_shape, dims)
    padding = getattr(layer, "padding", 0)
    if padding == "same":
        out = tuple(-(-size[a] // stride[a]) for a in range(2))
        total = tuple(max((out[a] - 1) * stride[a] + kernel[a] - size[a], 0) for a in range(2))
        pads = tuple(t // 2 for t in total), tuple(t - t // 2 for t in total)
    else:
        values = (padding,) * dims if _is_int(padding) else padding
        if not isinstance(values, tuple) or len(values) != dims or not all(_is_int(v) and v >= 0 for v in values):
            raise _Problem(f"padding must be 'same' or an integer ≥ 0{' or a pair of them' if dims == 2 else ''}, "
                           f"got {padding!r}")
        values = ((0,) + tuple(values)) if dims == 1 else tuple(values)
        if any(2 * values[a] > kernel[a] for a in range(2)):
            raise _Problem(f"padding {padding!r} is more than half the kernel {_shown(kernel, dims)} (torch's rule)")
        pads = tuple(int(v) for v in values), tuple(int(v) for v in values)
        if kernel[0] > size[0] + 2 * pads[0][0] or kernel[1] > size[1] + 2 * pads[0][1]:
            raise _Problem(f"pool {_shown(kernel, dims)} is larger than its input {_shown(size, dims)}")
        out = tuple((size[a] + 2 * pads[0][a] - kernel[a]) // stride[a] + 1 for a in range(2))
    out_shape = (in_shape[0], out[1]) if dims == 1 else (in_shape[0],) + out
    return Resolved(kind, tuple(in_shape), out_shape, _chw(in_shape), _chw(out_shape), kernel, stride,
                    (pads[0][0], pads[1][0], pads[0][1], pads[1][1]))


def _resolve(layer, in_shape):
    kind = type(layer).__name__
    if isinstance(layer, Dense):
        if len(in_shape) != 1:
            raise _Problem(f"takes a flat input (features,), got {in_shape}: put Flatten() before it")
        (out_features,) = _positive(layer.out_features, "out_features", 1)
        if not isinstance(layer.bias, bool):
            raise _Problem(f"bias must be True or False, got {layer.bias!r}")
        return Resolved(kind, tuple(in_shape), (out_features,), _chw(in_shape), _chw((out_features,)),
                        weight_shape=(out_features, in_shape[0]), has_bias=layer.bias)
    if isinstance(layer, (Conv1D, Conv2D)):
        return _conv(layer, in_shape, 1 if isinstance(layer, Conv1D) else 2)
    if isinstance(layer, (MaxPool1D, MaxPool2D, AvgPool1D, AvgPool2D)):
        return _pool(layer, in_shape, 1 if kind.endswith("1D") else 2, kind)
    if isinstance(layer, GlobalAvgPool):
        if len(in_shape) not in (2, 3):
            raise _Problem(f"takes an input (channels, length) or (channels, height, width), got {in_shape}")
        size = in_shape[1] * (in_shape[2] if len(in_shape) == 3 else 1)
        return Resolved(kind, tuple(in_shape), (in_shape[0],), _chw(in_shape), _chw((in_shape[0],)),
                        kernel=(1, size))
    if isinstance(layer, Flatten):
        flat = (in_shape[0] * (in_shape[1] if len(in_shape) > 1 else 1) * (in_shape[2] if len(in_shape) > 2 else 1),)
        return Resolved(kind, tuple(in_shape), flat, _chw(in_shape), _chw(flat))
    if isinstance(layer, (ReLU, Tanh, Sigmoid, Identity)):
        return Resolved(kind, tuple(in_shape), tuple(in_shape), _chw(in_shape), _chw(in_shape))
    raise _Problem("is not a layer fastgd knows (Dense, Conv1D, Conv2D, MaxPool1D/2D, AvgPool1D/2D, "
                   "GlobalAvgPool, Flatten, ReLU, Tanh, Sigmoid, Identity)")


def resolve(index, layer, in_shape):
    """``layer`` (the ``index``-th of its network) given inputs of ``in_shape``, as a :class:`Resolved` layer.

    Raises :class:`LayerError`, one line naming the layer's index and kind, where it cannot stand there.
    """
    try:
        return _resolve(layer, tuple(in_shape))
    except _Problem as problem:
        raise LayerError(f"layer {index} ({type(layer).__name__}): {problem}") from None
