r"""Multi-layer perceptrons over one flat parameter vector θ: the low-level model API.

    >>> import numpy as np
    >>> from fastgd import MLP
    >>> net = MLP(layer_sizes=[4, 8, 3], activation="tanh", output="softmax", alpha=1e-4)
    >>> theta = net.init(random_state=0)
    >>> coefs, intercepts = net.unpack(theta)        # views into theta
    >>> [c.shape for c in coefs], [b.shape for b in intercepts]
    ([(4, 8), (8, 3)], [(8,), (3,)])
    >>> X = np.random.default_rng(0).normal(size=(5, 4))
    >>> Y = np.eye(3)[[0, 1, 2, 1, 0]]               # one-hot targets
    >>> loss, grad = net.loss_grad(theta, X, Y)
    >>> grad.shape == theta.shape
    True

With no hidden layer (``layer_sizes=[n_in, n_out]``) the network is linear
regression (``output="identity"``), logistic regression (``"logistic"``) or
softmax regression (``"softmax"``). The math and the layout of θ are in
:mod:`fastgd.kernels.mlp`.
"""

import numbers

import numpy as np

from fastgd.machine import physical_memory_bytes
from fastgd.kernels import mlp as mlp_kernels
from fastgd.kernels.train import (forward_entry, model_entry, model_loss_and_gradient, predict_in_chunks,
                                  workspace_elements)

__all__ = ["MLP"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
PREDICT_CHUNK = 4096


class MLP:
    """A fully connected network: sizes, activations, loss; parameters live outside it in θ.

    Parameters
    ----------
    layer_sizes : sequence of int
        Units per layer, input first and output last (at least two entries).
    activation : {"relu", "tanh", "logistic", "identity"}
        Activation of the hidden layers.
    output : {"softmax", "logistic", "identity"}
        Output activation, which also fixes the loss: cross-entropy, binary
        cross-entropy per output, or squared error.
    alpha : float
        L2 penalty α: the loss gains α/(2m)·ΣW² over the weights (not the biases).
    dtype : float32 or float64
        dtype of θ, of the gradient and of all the arithmetic.
    """

    def __init__(self, layer_sizes, activation="relu", output="softmax", alpha=1e-4, dtype=np.float64):
        sizes = list(layer_sizes) if not isinstance(layer_sizes, (str, bytes)) else None
        if not sizes or len(sizes) < 2 or not all(
                isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1 for n in sizes):
            raise ValueError(f"layer_sizes must list at least two positive integers (input and output units), "
                             f"got {layer_sizes!r}")
        if activation not in mlp_kernels.ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(mlp_kernels.ACTIVATIONS)}, got {activation!r}")
        if output not in mlp_kernels.OUTPUTS:
            raise ValueError(f"output must be one of {sorted(mlp_kernels.OUTPUTS)}, got {output!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha < np.inf:
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
        if np.dtype(dtype) not in _FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
        self.layer_sizes = np.array(sizes, dtype=np.int64)
        self.activation = activation
        self.output = output
        self.alpha = float(alpha)
        self.dtype = np.dtype(dtype)
        self.activation_code = mlp_kernels.ACTIVATIONS[activation]
        self.output_code = mlp_kernels.OUTPUTS[output]
        self.n_weights = sum(n_in * n_out for n_in, n_out in zip(sizes, sizes[1:]))
        self.n_params = self.n_weights + sum(sizes[1:])

    def __repr__(self):
        return (f"MLP(layer_sizes={self.layer_sizes.tolist()}, activation={self.activation!r}, "
                f"output={self.output!r}, alpha={self.alpha}, dtype={self.dtype.name})")

    @property
    def layout(self):
        """The shapes of the tensors θ holds, in order: every weight matrix, then every bias vector.

        What rules that act per matrix take (``optim.Muon(theta, layout=net.layout)``).
        """
        sizes = self.layer_sizes.tolist()
        return [(n_in, n_out) for n_in, n_out in zip(sizes, sizes[1:])] + [(n_out,) for n_out in sizes[1:]]

    @property
    def n_inputs(self):
        return int(self.layer_sizes[0])

    @property
    def n_outputs(self):
        return int(self.layer_sizes[-1])

    # -- parameters ---------------------------------------------------------------------------

    def init(self, random_state=None):
        """A new θ: Glorot-uniform weights as scikit-learn draws them, zero biases.

        The weights are exactly those of scikit-learn's MLP for the same
        ``random_state`` (an int, a ``RandomState`` or None): bound
        √(6 / (fan_in + fan_out)), or √(2 / ...) for logistic hidden units.
        scikit-learn also draws random biases; here they are zero, as the
        lecture initialises them, but are drawn and discarded so that the
        weights stay comparable layer by layer.
        """
        from sklearn.utils import check_random_state

        rng = check_random_state(random_state)
        factor = 2.0 if self.activation == "logistic" else 6.0
        theta = np.zeros(self.n_params, dtype=self.dtype)
        coefs, _ = self.unpack(theta)
        for coef in coefs:
            fan_in, fan_out = coef.shape
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef[...] = rng.uniform(-bound, bound, (fan_in, fan_out))
            rng.uniform(-bound, bound, fan_out)  # scikit-learn's bias draw, discarded
        return theta

    def unpack(self, theta):
        """Views into θ: (coefs, intercepts), ``coefs[i]`` of shape (n_i, n_{i+1})."""
        theta = self._check_theta(theta)
        coefs, intercepts = [], []
        weight_offset, bias_offset = 0, self.n_weights
        for n_in, n_out in zip(self.layer_sizes[:-1].tolist(), self.layer_sizes[1:].tolist()):
            coefs.append(theta[weight_offset:weight_offset + n_in * n_out].reshape(n_in, n_out))
            intercepts.append(theta[bias_offset:bias_offset + n_out])
            weight_offset += n_in * n_out
            bias_offset += n_out
        return coefs, intercepts

    def pack(self, coefs, intercepts):
        """A new θ from per-layer weights and biases (scikit-learn's ``coefs_``, ``intercepts_``)."""
        theta = np.zeros(self.n_params, dtype=self.dtype)
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
        """(loss, gradient) on (X, Y); the loss is a Python float, the gradient has θ's layout and dtype."""
        theta = self._check_theta(theta)
        X, Y = self.check_data(X, Y)
        grad = np.empty_like(theta)
        size = workspace_elements(self.layer_sizes, X.shape[0])
        activations, deltas = np.empty(size, self.dtype), np.empty(size, self.dtype)
        loss = model_loss_and_gradient(model_entry(self.dtype), self._writeable(theta), X, Y, self.layer_sizes,
                                       self.activation_code, self.output_code, self.alpha, grad, activations, deltas)
        return float(loss), grad

    def loss(self, theta, X, Y):
        """The loss on (X, Y), penalty included."""
        from fastgd.kernels.train import dataset_loss

        theta = self._writeable(self._check_theta(theta))
        X, Y = self.check_data(X, Y)
        chunk = max(1, min(X.shape[0], PREDICT_CHUNK))
        model, activations, batch_X, batch_Y, no_grad = self._forward_workspace(chunk)
        return float(dataset_loss(model, theta, X, Y, self.layer_sizes, self.activation_code, self.output_code,
                                  self.alpha, activations, chunk, batch_X, batch_Y, no_grad))

    def predict(self, theta, X):
        """Output activations (probabilities for softmax and logistic outputs), shape (n, n_outputs)."""
        theta = self._writeable(self._check_theta(theta))
        X, _ = self.check_data(X, None)
        chunk = max(1, min(X.shape[0], PREDICT_CHUNK))
        model, activations, batch_X, batch_Y, no_grad = self._forward_workspace(chunk)
        out = np.empty((X.shape[0], self.n_outputs), self.dtype)
        return predict_in_chunks(model, theta, X, self.layer_sizes, self.activation_code, self.output_code,
                                 activations, chunk, batch_X, batch_Y, no_grad, out)

    def __setstate__(self, state):
        # a model loaded from a read-only memmap (joblib, scikit-learn's pickle check) holds read-only arrays: the
        # compiled passes' C signatures are the ones training compiled, for writeable arrays
        self.__dict__.update({name: value.copy() if isinstance(value, np.ndarray) and not value.flags.writeable
                              else value for name, value in state.items()})

    @staticmethod
    def _writeable(theta):
        """θ as the compiled pass takes it: a read-only θ (a fitted model unpickled from a read-only memmap) is
        copied, since the pass's C signature is the one training compiled, for a writeable θ."""
        return theta if theta.flags.writeable else theta.copy()

    def _forward_workspace(self, n_rows):
        """The compiled pass training takes (its serial form: prediction compiles no pass of its own) and the buffers
        of a forward pass over ``n_rows`` rows: activations, a block of inputs, one of targets (zeros), no gradient."""
        return (forward_entry(self.dtype, self.layer_sizes, n_rows),
                np.empty(workspace_elements(self.layer_sizes, n_rows), self.dtype),
                np.empty(n_rows * self.layer_sizes[0], self.dtype), np.zeros(n_rows * self.n_outputs, self.dtype),
                np.empty(0, self.dtype))

    def epoch_pass(self, dtype, n_rows, n_blocks=1):
        """The model's places in the compiled epoch (:func:`fastgd.kernels.train.train_epoch`) for batches of
        ``n_rows``: ``(pass, structure, code, code, alpha)``.

        The pass is :func:`fastgd.kernels.train.model_entry` for ``dtype`` (θ's, the network's) and ``n_blocks``
        (:func:`fastgd.kernels.train.model_blocks`); the structure is the layer sizes, the codes the activation
        and the output.
        """
        return model_entry(np.dtype(dtype), n_blocks), self.layer_sizes, self.activation_code, self.output_code, \
            self.alpha

    def epoch_workspaces(self, n_rows):
        """(elements of ``activations``, elements of ``deltas``) of :meth:`epoch_pass`'s pass on ``n_rows`` rows."""
        size = workspace_elements(self.layer_sizes, n_rows)
        return size, size

    # -- checks -------------------------------------------------------------------------------

    def _check_theta(self, theta):
        if not isinstance(theta, np.ndarray):
            raise TypeError(f"theta must be a NumPy ndarray, got {type(theta).__name__}")
        if theta.shape != (self.n_params,):
            raise ValueError(f"theta must have shape ({self.n_params},) for layer_sizes "
                             f"{self.layer_sizes.tolist()}, got {theta.shape}")
        if theta.dtype != self.dtype:
            raise TypeError(f"theta has dtype {theta.dtype}, the network {self.dtype}")
        if not theta.flags.c_contiguous:
            raise ValueError("theta must be contiguous")
        return theta

    def check_data(self, X, Y):
        """X as a C-ordered (n, n_inputs) array of the network's dtype; Y likewise as (n, n_outputs).

        Both come back as read-only views: compiled code never writes the data,
        and Numba types read-only and writeable arrays apart, so one type
        means one compiled specialisation whatever the caller passed.
        """
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_inputs:
            raise ValueError(f"X must have shape (n_samples, {self.n_inputs}), got {X.shape}")
        X = _read_only(np.ascontiguousarray(X, dtype=self.dtype))
        if not np.isfinite(X).all():
            raise ValueError("X contains NaN or infinity")
        if Y is None:
            return X, None
        Y = np.asarray(Y)
        if Y.ndim == 1 and self.n_outputs == 1:
            Y = Y.reshape(-1, 1)
        if Y.ndim != 2 or Y.shape != (X.shape[0], self.n_outputs):
            raise ValueError(f"Y must have shape ({X.shape[0]}, {self.n_outputs})"
                             f"{' (one-hot)' if self.output == 'softmax' else ''}, got {Y.shape}")
        Y = _read_only(np.ascontiguousarray(Y, dtype=self.dtype))
        if not np.isfinite(Y).all():
            raise ValueError("Y contains NaN or infinity")
        return X, Y


def _read_only(array):
    view = array.view()
    view.flags.writeable = False
    return view


def network_bytes(layer_sizes, dtype):
    """About the memory one training run of this network needs: θ, its gradient, three state arrays and a copy."""
    sizes = [int(n) for n in layer_sizes]
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    return np.dtype(dtype).itemsize * 6 * n_params


def check_network_fits(layer_sizes, dtype):
    """ValueError in one line when one training run of this network would not fit in this machine's memory."""
    memory = physical_memory_bytes()
    needed = network_bytes(layer_sizes, dtype)
    if memory is not None and needed > memory:
        raise ValueError(f"a network of layer sizes {list(layer_sizes)} needs about {needed / 2 ** 30:.3g} GiB to "
                         f"train; this machine has {memory / 2 ** 30:.3g} GiB")
