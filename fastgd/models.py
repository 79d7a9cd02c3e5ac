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

An MLP is a declaration on :class:`fastgd.networks.Network` (a Dense stack in scikit-learn's parameter order),
not a second kind of model: everything that takes a network takes it, and a Network declared with the same
layers and ``parameter_order="scikit-learn"`` is the same network (θ, losses, gradients, training, bit for bit).
"""

import numbers

import numpy as np

from fastgd.machine import physical_memory_bytes
from fastgd.kernels import mlp as mlp_kernels
from fastgd.networks.dense import LOSS_OUTPUTS
from fastgd.networks.layers import ACTIVATION_LAYERS, Dense
from fastgd.networks.network import Network

__all__ = ["MLP"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# an output activation -> the scikit-learn loss a declaration names for it
_OUTPUT_LOSSES = {output: loss for loss, output in LOSS_OUTPUTS.items()}


def _of_the_stack(name):
    """A read-only attribute of the MLP that is its Dense stack's (``MLP.stack``, :mod:`fastgd.networks.dense`)."""
    return property(lambda self: getattr(self.stack, name), doc=f"The Dense stack's ``{name}``.")


class MLP(Network):
    """A fully connected network: sizes, activations, loss; parameters live outside it in θ.

    A declaration on :class:`fastgd.networks.Network`: Dense layers of ``layer_sizes[1:]`` with ``activation``
    between them, on inputs of ``layer_sizes[0]``, in scikit-learn's parameter order, of ``dtype``, with the loss
    of ``output``. It runs the MLP's compiled passes (:mod:`fastgd.networks.dense`), as every such declaration does;
    what it adds is scikit-learn's vocabulary: ``unpack`` and ``pack`` as ``(coefs, intercepts)``.

    Parameters
    ----------
    layer_sizes : sequence of int
        Units per layer, input first and output last (at least two entries).
    activation : {"relu", "tanh", "logistic", "identity"}
        Activation of the hidden layers.
    output : {"softmax", "logistic", "identity"}
        Output activation, which also fixes the loss: cross-entropy, binary
        cross-entropy per output, or squared error (the declaration's ``"cross_entropy"``,
        ``"binary_cross_entropy"``, ``"squared_error"``). :meth:`predict` returns it: probabilities for softmax
        and logistic outputs.
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
        layers = []
        for size in sizes[1:-1]:
            layers += [Dense(int(size)), ACTIVATION_LAYERS[activation]()]
        super().__init__(layers + [Dense(int(sizes[-1]))], (int(sizes[0]),), _OUTPUT_LOSSES[output], alpha,
                         parameter_order="scikit-learn", dtype=dtype)
        # a stack without hidden layers declares no activation: the one asked for is the MLP's all the same
        stack = self.stack
        stack.activation, stack.activation_code = activation, mlp_kernels.ACTIVATIONS[activation]

    def __repr__(self):
        return (f"MLP(layer_sizes={self.layer_sizes.tolist()}, activation={self.activation!r}, "
                f"output={self.output!r}, alpha={self.alpha}, dtype={self.dtype.name})")

    def with_alpha(self, alpha):
        """The same MLP with the L2 penalty ``alpha``."""
        return MLP(self.layer_sizes.tolist(), self.activation, self.output, alpha, self.dtype)

    # scikit-learn's vocabulary, the stack's
    layer_sizes = _of_the_stack("layer_sizes")
    activation = _of_the_stack("activation")
    activation_code = _of_the_stack("activation_code")
    output_code = _of_the_stack("output_code")
    n_weights = _of_the_stack("n_weights")

    # -- parameters ---------------------------------------------------------------------------

    def init(self, random_state=None, scheme=None, dtype=None):
        """A new θ: Glorot-uniform weights as scikit-learn draws them, zero biases (``scheme="scikit-learn"``).

        The weights are exactly those of scikit-learn's MLP for the same
        ``random_state`` (an int, a ``RandomState`` or None): bound
        √(6 / (fan_in + fan_out)), or √(2 / ...) for logistic hidden units.
        scikit-learn also draws random biases; here they are zero, as the
        lecture initialises them, but are drawn and discarded so that the
        weights stay comparable layer by layer.
        """
        return super().init(random_state, scheme, dtype)

    def unpack(self, theta):
        """Views into θ: (coefs, intercepts), ``coefs[i]`` of shape (n_i, n_{i+1})."""
        return self.stack.unpack(self._check_theta(theta))

    def pack(self, coefs, intercepts):
        """A new θ from per-layer weights and biases (scikit-learn's ``coefs_``, ``intercepts_``)."""
        return self.stack.pack(coefs, intercepts, self.dtype)


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
