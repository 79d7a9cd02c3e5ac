"""A stack of Dense layers declared in scikit-learn's parameter order, lowered onto the MLP's compiled passes.

A :class:`fastgd.networks.Network` declared with ``parameter_order="scikit-learn"`` is such a stack: Dense layers
with one activation kind between them and scikit-learn's MLP losses. θ is then scikit-learn's ``_pack`` order
(every weight (in, out), row-major, then every bias) and the network runs :mod:`fastgd.kernels.mlp`'s passes
(:func:`fastgd.kernels.train.model_entry`: the serial, blocks and threaded candidates that
:mod:`fastgd.calibration` chooses among) instead of the plan pass of :mod:`fastgd.kernels.network`, whose Dense
reads torch's (out, in) weights. :class:`fastgd.MLP` is this declaration. :func:`dense_stack` checks a
declaration and returns its :class:`DenseStack`, the one place that says what the passes take.
"""

import numpy as np

from fastgd.kernels import mlp as mlp_kernels
from fastgd.kernels.train import (forward_entry, model_entry, model_loss_and_gradient, predict_in_chunks,
                                  workspace_elements)
from fastgd.machine import physical_memory_bytes
from fastgd.networks.layers import ACTIVATION_LAYERS, Dense

__all__ = ["DenseStack", "dense_stack", "LOSS_OUTPUTS", "PREDICT_CHUNK"]

# scikit-learn's MLP losses, each with the output activation it is the loss of (what predict applies)
LOSS_OUTPUTS = {"cross_entropy": "softmax", "binary_cross_entropy": "logistic", "squared_error": "identity"}
PREDICT_CHUNK = 4096
_ACTIVATION_NAMES = {layer: name for name, layer in ACTIVATION_LAYERS.items()}


def dense_stack(layers, input_shape, loss, alpha, error):
    """The :class:`DenseStack` of a scikit-learn-order declaration, or ``error`` (an exception class) raised with
    one line naming the first layer that is not Dense, activation, Dense, ... with one activation kind."""
    if loss not in LOSS_OUTPUTS:
        raise error(f"a scikit-learn-order network's loss is one of {sorted(LOSS_OUTPUTS)} (scikit-learn's MLP "
                    f"losses; 'squared_error' is half of 'mse'), got {loss!r}")
    sizes, activation = [int(input_shape[0])], None
    for index, layer in enumerate(layers):
        kind = type(layer).__name__
        if index % 2 == 0:
            if not isinstance(layer, Dense) or not layer.bias:
                raise error(f"layer {index} ({kind}): a scikit-learn-order network is Dense layers (with bias) and "
                            f"one activation between each two; layer {index} must be Dense")
            sizes.append(int(layer.out_features))
            continue
        name = _ACTIVATION_NAMES.get(type(layer))
        if name is None:
            raise error(f"layer {index} ({kind}): a scikit-learn-order network has one activation (ReLU, Tanh, "
                        f"Sigmoid or Identity) between each two Dense layers")
        if activation is not None and name != activation:
            raise error(f"layer {index} ({kind}): a scikit-learn-order network has one activation kind between "
                        f"its Dense layers; layer 1 is {type(layers[1]).__name__}")
        activation = name
    if len(input_shape) != 1:
        raise error(f"layer 0 (Dense): a scikit-learn-order network takes flat inputs (features,), got input_shape "
                    f"{input_shape}")
    if len(layers) % 2 == 0:
        raise error(f"layer {len(layers) - 1} ({type(layers[-1]).__name__}): a scikit-learn-order network ends with "
                    f"Dense (its output activation is the loss's)")
    return DenseStack(sizes, activation or "relu", LOSS_OUTPUTS[loss], alpha)


class DenseStack:
    """The MLP's compiled passes for one stack: layer sizes, hidden activation, output activation, L2 penalty α.

    Methods take θ of either float dtype and answer in it; their checks are :meth:`check_theta` and
    :meth:`check_data` (whose ``dtype`` is the declared network's, or θ's where it declares none).
    """

    def __init__(self, sizes, activation, output, alpha):
        self.layer_sizes = np.array(sizes, dtype=np.int64)
        self.activation = activation
        self.output = output
        self.alpha = float(alpha)
        self.activation_code = mlp_kernels.ACTIVATIONS[activation]
        self.output_code = mlp_kernels.OUTPUTS[output]
        self.n_weights = sum(n_in * n_out for n_in, n_out in zip(sizes, sizes[1:]))
        self.n_params = self.n_weights + sum(sizes[1:])

    @property
    def layout(self):
        """Every weight matrix (n_in, n_out), then every bias vector (n_out,): θ's tensors in θ's order."""
        sizes = self.layer_sizes.tolist()
        return [(n_in, n_out) for n_in, n_out in zip(sizes, sizes[1:])] + [(n_out,) for n_out in sizes[1:]]

    @property
    def n_inputs(self):
        return int(self.layer_sizes[0])

    @property
    def n_outputs(self):
        return int(self.layer_sizes[-1])

    # -- parameters ---------------------------------------------------------------------------

    def init(self, random_state, dtype):
        """scikit-learn's MLP initialisation (see :meth:`fastgd.MLP.init`)."""
        from sklearn.utils import check_random_state

        rng = check_random_state(random_state)
        factor = 2.0 if self.activation == "logistic" else 6.0
        theta = np.zeros(self.n_params, dtype=dtype)
        coefs, _ = self.unpack(theta)
        for coef in coefs:
            fan_in, fan_out = coef.shape
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef[...] = rng.uniform(-bound, bound, (fan_in, fan_out))
            rng.uniform(-bound, bound, fan_out)  # scikit-learn's bias draw, discarded
        return theta

    def unpack(self, theta):
        """Views into θ: (coefs, intercepts), ``coefs[i]`` of shape (n_i, n_{i+1})."""
        coefs, intercepts = [], []
        weight_offset, bias_offset = 0, self.n_weights
        for n_in, n_out in zip(self.layer_sizes[:-1].tolist(), self.layer_sizes[1:].tolist()):
            coefs.append(theta[weight_offset:weight_offset + n_in * n_out].reshape(n_in, n_out))
            intercepts.append(theta[bias_offset:bias_offset + n_out])
            weight_offset += n_in * n_out
            bias_offset += n_out
        return coefs, intercepts

    def pack(self, coefs, intercepts, dtype):
        """A new θ of ``dtype`` from per-layer weights and biases (scikit-learn's ``coefs_``, ``intercepts_``)."""
        theta = np.zeros(self.n_params, dtype=dtype)
        own_coefs, own_intercepts = self.unpack(theta)
        if len(coefs) != len(own_coefs) or len(intercepts) != len(own_intercepts):
            raise ValueError(f"expected {len(own_coefs)} weight matrices and bias vectors")
        for target, source in zip(own_coefs + own_intercepts, list(coefs) + list(intercepts)):
            source = np.asarray(source)
            if source.shape != target.shape:
                raise ValueError(f"a layer has shape {source.shape}, expected {target.shape}")
            target[...] = source
        return theta

    # -- evaluation ---------------------------------------------------------------------------

    def loss_grad(self, theta, X, Y):
        """(loss, gradient) on checked (X, Y) in θ's dtype."""
        dtype = theta.dtype
        grad = np.empty_like(theta)
        size = workspace_elements(self.layer_sizes, X.shape[0])
        activations, deltas = np.empty(size, dtype), np.empty(size, dtype)
        loss = model_loss_and_gradient(model_entry(dtype), _writeable(theta), X, Y, self.layer_sizes,
                                       self.activation_code, self.output_code, self.alpha, grad, activations, deltas)
        return float(loss), grad

    def loss(self, theta, X, Y):
        """The loss on checked (X, Y), penalty included."""
        from fastgd.kernels.train import dataset_loss

        theta = _writeable(theta)
        chunk = max(1, min(X.shape[0], PREDICT_CHUNK))
        model, activations, batch_X, batch_Y, no_grad = self._forward_workspace(chunk, theta.dtype)
        return float(dataset_loss(model, theta, X, Y, self.layer_sizes, self.activation_code, self.output_code,
                                  self.alpha, activations, chunk, batch_X, batch_Y, no_grad))

    def predict(self, theta, X, chunk_size=None):
        """Output activations of checked X (probabilities for softmax and logistic outputs), (n, n_outputs),
        ``chunk_size`` rows at a time (by default :data:`PREDICT_CHUNK`)."""
        theta = _writeable(theta)
        chunk = max(1, min(X.shape[0], int(PREDICT_CHUNK if chunk_size is None else chunk_size)))
        model, activations, batch_X, batch_Y, no_grad = self._forward_workspace(chunk, theta.dtype)
        out = np.empty((X.shape[0], self.n_outputs), theta.dtype)
        return predict_in_chunks(model, theta, X, self.layer_sizes, self.activation_code, self.output_code,
                                 activations, chunk, batch_X, batch_Y, no_grad, out)

    def _forward_workspace(self, n_rows, dtype):
        """The compiled pass training takes (its serial form: prediction compiles no pass of its own) and the buffers
        of a forward pass over ``n_rows`` rows: activations, a block of inputs, one of targets (zeros), no gradient."""
        return (forward_entry(dtype, self.layer_sizes, n_rows),
                np.empty(workspace_elements(self.layer_sizes, n_rows), dtype),
                np.empty(n_rows * self.layer_sizes[0], dtype), np.zeros(n_rows * self.n_outputs, dtype),
                np.empty(0, dtype))

    def epoch_pass(self, dtype, n_rows, n_blocks=1):
        """``(pass, structure, code, code, alpha)``: :func:`fastgd.kernels.train.model_entry` for ``dtype`` and
        ``n_blocks`` (:func:`fastgd.kernels.train.model_blocks`), the layer sizes, the activation and output codes."""
        return model_entry(np.dtype(dtype), n_blocks), self.layer_sizes, self.activation_code, self.output_code, \
            self.alpha

    def epoch_workspaces(self, n_rows):
        """(elements of ``activations``, elements of ``deltas``) of :meth:`epoch_pass`'s pass on ``n_rows`` rows."""
        size = workspace_elements(self.layer_sizes, n_rows)
        return size, size

    def workspace_bytes(self, n_rows, dtype):
        """Bytes of a pass on ``n_rows`` rows: θ, its gradient and the two workspaces."""
        return np.dtype(dtype).itemsize * (2 * self.n_params + 2 * workspace_elements(self.layer_sizes, n_rows))

    def check_fits(self, n_rows, dtype, error):
        """``error`` in one line where a pass on ``n_rows`` rows would not fit in this machine's memory."""
        memory = physical_memory_bytes()
        needed = self.workspace_bytes(n_rows, dtype)
        if memory is not None and needed > memory:
            raise error(f"a network of layer sizes {self.layer_sizes.tolist()} needs {needed / 2 ** 30:.3g} GiB for "
                        f"{n_rows} rows in {np.dtype(dtype).name}; this machine has {memory / 2 ** 30:.3g} GiB")

    # -- checks -------------------------------------------------------------------------------

    def check_theta(self, theta, dtype):
        """θ checked: an ndarray of the stack's size, contiguous, of ``dtype`` (None: float32 or float64)."""
        if not isinstance(theta, np.ndarray):
            raise TypeError(f"theta must be a NumPy ndarray, got {type(theta).__name__}")
        if theta.shape != (self.n_params,):
            raise ValueError(f"theta must have shape ({self.n_params},) for layer_sizes "
                             f"{self.layer_sizes.tolist()}, got {theta.shape}")
        if dtype is not None and theta.dtype != dtype:
            raise TypeError(f"theta has dtype {theta.dtype}, the network {dtype}")
        if theta.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"theta must be float32 or float64, got {theta.dtype}")
        if not theta.flags.c_contiguous:
            raise ValueError("theta must be contiguous")
        return theta

    def check_data(self, X, Y, dtype):
        """X as a C-ordered read-only (n, n_inputs) array of ``dtype``; Y likewise as (n, n_outputs)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_inputs:
            raise ValueError(f"X must have shape (n_samples, {self.n_inputs}), got {X.shape}")
        X = _read_only(np.ascontiguousarray(X, dtype=dtype))
        if not np.isfinite(X).all():
            raise ValueError("X contains NaN or infinity")
        if Y is None:
            return X, None
        return X, checked_targets(Y, X.shape[0], self.n_outputs, self.output == "softmax", dtype, ValueError)

    def __setstate__(self, state):
        # a model loaded from a read-only memmap (joblib, scikit-learn's pickle check) holds read-only arrays: the
        # compiled passes' C signatures are the ones training compiled, for writeable arrays
        self.__dict__.update({name: value.copy() if isinstance(value, np.ndarray) and not value.flags.writeable
                              else value for name, value in state.items()})


def _writeable(theta):
    """θ as the compiled pass takes it: a read-only θ (a fitted model unpickled from a read-only memmap) is copied,
    since the pass's C signature is the one training compiled, for a writeable θ."""
    return theta if theta.flags.writeable else theta.copy()


def checked_targets(Y, n_rows, n_outputs, one_hot, dtype, error):
    """Y as a C-ordered read-only (``n_rows``, ``n_outputs``) array of ``dtype`` (a vector where there is one output),
    or ``error`` (the caller's class: a ValueError as scikit-learn's MLPs raise, a NetworkError) in one line naming
    the shape it must have (``one_hot``: the loss takes one-hot rows) or the non-finite entries."""
    Y = np.asarray(Y)
    if Y.ndim == 1 and n_outputs == 1:
        Y = Y.reshape(-1, 1)
    if Y.shape != (n_rows, n_outputs):
        raise error(f"Y must have shape ({n_rows}, {n_outputs}){' (one-hot)' if one_hot else ''}, got {Y.shape}")
    Y = _read_only(np.ascontiguousarray(Y, dtype=dtype))
    if not np.isfinite(Y).all():
        raise error("Y contains NaN or infinity")
    return Y


def _read_only(array):
    """A read-only view: compiled code never writes the data, and Numba types read-only and writeable arrays apart,
    so one type means one compiled specialisation whatever the caller passed."""
    view = array.view()
    view.flags.writeable = False
    return view
