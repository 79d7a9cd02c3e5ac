"""A network declared once: layers in torch's vocabulary, an input shape and a loss; everything else derived.

    >>> import numpy as np
    >>> from fastgd.networks import Network, Conv2D, ReLU, MaxPool2D, Flatten, Dense
    >>> net = Network([Conv2D(4, 3, padding="same"), ReLU(), MaxPool2D(2), Flatten(), Dense(10)],
    ...               input_shape=(1, 8, 8), loss="cross_entropy")
    >>> [(t.name, t.shape) for t in net.tensors]
    [('0.weight', (4, 1, 3, 3)), ('0.bias', (4,)), ('4.weight', (10, 64)), ('4.bias', (10,))]
    >>> net.layout                                   # what per-tensor rules (Muon) see
    [(4, 9), (4,), (10, 64), (10,)]
    >>> theta = net.init(random_state=0)
    >>> X = np.random.default_rng(0).normal(size=(5, 1, 8, 8))
    >>> Y = np.eye(10)[[0, 1, 2, 3, 4]]
    >>> loss, grad = net.loss_grad(theta, X, Y)
    >>> grad.shape == theta.shape
    True

θ is one flat vector holding every layer's weight and bias in the order and shapes of torch's
``nn.Sequential(...).state_dict()`` (names ``"<layer index>.weight"``); the compiled pass is
:mod:`fastgd.kernels.network`, its NumPy oracle :mod:`fastgd.networks.reference`.

A stack of Dense layers with one activation kind between them may instead be declared in scikit-learn's order
(``parameter_order="scikit-learn"``: every weight (in, out), then every bias), with scikit-learn's MLP losses and
initialisation; it then runs the MLP's compiled passes (:mod:`fastgd.networks.dense`). :class:`fastgd.MLP` is that
declaration. Which passes a network runs is chosen once, in :meth:`Network.__init__`, from the declaration.
"""

import contextlib
import dataclasses
import math
import numbers
import time

import numpy as np

from fastgd.kernels import network as kernels
from fastgd.kernels.train import network_entry
from fastgd.machine import physical_memory_bytes
from fastgd.networks.dense import LOSS_OUTPUTS, _read_only, checked_targets, dense_stack
from fastgd.networks.layers import LayerError, resolve

clock = time.perf_counter  # the predict probe's clock (tests replace it)

__all__ = ["Network", "NetworkError", "Tensor", "INIT_SCHEMES", "PARAMETER_ORDERS", "ORDER_SCHEMES"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# torch's order's schemes; scikit-learn's order has one, scikit-learn's MLP's ("scikit-learn")
INIT_SCHEMES = ("torch", "lecture")
PARAMETER_ORDERS = ("torch", "scikit-learn")
# each parameter order's initialisation schemes, its own (Network.init's default) first
ORDER_SCHEMES = {"torch": INIT_SCHEMES, "scikit-learn": ("scikit-learn",)}
PREDICT_CHUNK = 1024
# a prediction of more than PREDICT_PROBES chunks first times one on one thread and one on the threads as set
# (_predict_threads); the choice is kept for predictions of the same network this many seconds
PREDICT_PROBES = 2
PREDICT_CHOICE_SECONDS = 30.0
_PREDICT_CHOICES = {}  # (plan, dtype, chunk, threads) -> (threads kept?, time.monotonic() when probed)


class NetworkError(ValueError):
    """A network, or data for it, that fastgd cannot use; the message is one line naming the problem."""


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One tensor θ holds: torch's ``state_dict`` name, torch's shape, where it starts in θ, its layer."""

    name: str
    shape: tuple
    offset: int
    layer: int

    @property
    def size(self):
        return int(np.prod(self.shape))


class Network:
    """A sequence of layers (:mod:`fastgd.networks.layers`) on inputs of ``input_shape``, with a loss.

    Parameters
    ----------
    layers : sequence of layer declarations
        Checked in order; the first that cannot stand where it is raises a :class:`LayerError` naming
        its index and kind.
    input_shape : tuple of int
        One sample's shape, channels first: ``(features,)``, ``(channels, length)`` or
        ``(channels, height, width)``.
    loss : {"cross_entropy", "mse", "binary_cross_entropy"}; in scikit-learn's order {"cross_entropy",
            "binary_cross_entropy", "squared_error"}
        torch's ``F.cross_entropy`` on the last layer's outputs (logits) against one-hot or
        probability targets, averaged over samples; ``F.mse_loss``, the mean over every entry; or
        ``F.binary_cross_entropy_with_logits`` (``nn.BCEWithLogitsLoss``), each output a logit against a target in
        [0, 1], the mean over every entry (one output: over the samples, a binary classifier).
        The last layer's output must be flat. In scikit-learn's order the losses are scikit-learn's MLP's,
        each on its output activation: cross-entropy of the softmax, binary cross-entropy per output of the
        logistic function, half the mean squared error of the outputs as they are.
    alpha : float
        L2 penalty α in scikit-learn's convention (as :class:`fastgd.MLP`'s): the loss of m samples gains
        α/(2m)·ΣW² over every layer's weight, not the biases; 0 (the default) for none.
    parameter_order : {"torch", "scikit-learn"}
        θ's order: torch's ``state_dict`` (the default), or scikit-learn's ``coefs_`` then ``intercepts_``,
        for Dense layers (with bias) and one activation kind between each two, nothing after the last: such a
        network runs the MLP's compiled passes and :mod:`fastgd.calibration`'s choice among them.
    dtype : float32, float64 or None
        θ's dtype where the declaration fixes one (as :class:`fastgd.MLP` does); None (the default): θ's own,
        either.

    Attributes
    ----------
    stack : fastgd.networks.dense.DenseStack or None
        The MLP's passes this network runs (a scikit-learn-order declaration), else None: the plan pass.
    output : str
        What :meth:`predict` applies to the last layer's outputs: ``"identity"`` in torch's order (logits, as
        torch's module returns them), the loss's output activation in scikit-learn's (probabilities for the
        cross-entropies, as scikit-learn's ``predict_proba``).
    """

    # a model that stands where a network stands without declaring layers (the noisy quadratic) has these
    stack = None
    dtype = None
    parameter_order = "torch"
    output = "identity"

    def __init__(self, layers, input_shape, loss="cross_entropy", alpha=0.0, parameter_order="torch", dtype=None):
        if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
            raise NetworkError(f"layers must be a sequence of layers, got {type(layers).__name__}")
        layers = tuple(layers)
        if not layers:
            raise NetworkError("a network needs at least one layer")
        shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
        if shape is None or not 1 <= len(shape) <= 3 or not all(
                isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1 for n in shape):
            raise NetworkError(f"input_shape must be 1 to 3 positive integers (features,), (channels, length) or "
                               f"(channels, height, width), got {input_shape!r}")
        if parameter_order not in PARAMETER_ORDERS:
            raise NetworkError(f"parameter_order must be one of {list(PARAMETER_ORDERS)}, got {parameter_order!r}")
        if parameter_order == "torch" and loss not in kernels.LOSSES:
            also = f" ({loss!r} is scikit-learn's: parameter_order='scikit-learn')" if loss in LOSS_OUTPUTS else ""
            raise NetworkError(f"loss must be one of {sorted(kernels.LOSSES)}, got {loss!r}{also}")
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha < np.inf:
            raise NetworkError(f"alpha must be a finite number >= 0, got {alpha!r}")
        self.dtype = None if dtype is None else _check_dtype(dtype)
        self.alpha = float(alpha)
        self.layers = layers
        self.input_shape = tuple(int(n) for n in shape)
        self.loss_name = loss
        self.parameter_order = parameter_order
        resolved = []
        for index, layer in enumerate(layers):
            resolved.append(resolve(index, layer, shape))
            shape = resolved[-1].out_shape
        if len(shape) != 1:
            raise LayerError(f"layer {len(layers) - 1} ({resolved[-1].kind}): the network's output must be flat "
                             f"(features,) for the loss, got {shape}: end with Flatten() or Dense")
        self.resolved = tuple(resolved)
        # the one place that chooses the passes: a scikit-learn-order declaration is checked here as a Dense
        # stack and runs the MLP's; every other runs the plan pass
        if parameter_order == "scikit-learn":
            self.stack = dense_stack(layers, self.input_shape, loss, self.alpha, NetworkError)
            self.output = self.stack.output
            self._declare_stack()
            return
        tensors, offset = [], 0
        for index, layer in enumerate(resolved):
            if layer.weight_shape is None:
                continue
            tensors.append(Tensor(f"{index}.weight", layer.weight_shape, offset, index))
            offset += tensors[-1].size
            if layer.has_bias:
                tensors.append(Tensor(f"{index}.bias", (layer.weight_shape[0],), offset, index))
                offset += tensors[-1].size
        self.tensors = tuple(tensors)
        self.n_params = offset
        self.plan = self._plan()
        # the plan as the compiled epoch's structure argument: one writeable int64 vector, the type the MLP's has
        self._epoch_plan = self.plan.ravel().copy()
        # the same plan as a writeable table, for the kernels called from here (loss, gradient, prediction): the
        # type the epoch's callback gives them (its vector reshaped), so that a prediction after a fit reuses the
        # layers' compiled code; the read-only `plan` would make Numba compile each of them again (12 s of a first
        # predict of the digits CNN)
        self._kernel_plan = self._epoch_plan.reshape(self.plan.shape)

    def _declare_stack(self):
        """θ's tensors in scikit-learn's order (every weight (in, out), then every bias); no plan: the MLP's passes
        read the stack's layer sizes."""
        dense = [index for index, layer in enumerate(self.resolved) if layer.weight_shape is not None]
        tensors, offset = [], 0
        # math.prod, not Tensor.size's np.prod: an estimator declares its MLP at every fit, some of which take 1 ms
        for (index, kind), shape in zip([(i, "weight") for i in dense] + [(i, "bias") for i in dense],
                                        self.stack.layout):
            tensors.append(Tensor(f"{index}.{kind}", shape, offset, index))
            offset += math.prod(shape)
        self.tensors = tuple(tensors)
        self.n_params = self.stack.n_params
        self.plan = self._epoch_plan = self._kernel_plan = None

    def __repr__(self):
        penalised = f", alpha={self.alpha!r}" if self.alpha else ""
        order = f", parameter_order={self.parameter_order!r}" if self.parameter_order != "torch" else ""
        dtype = f", dtype={self.dtype.name}" if self.dtype is not None else ""
        return (f"Network({list(self.layers)!r}, input_shape={self.input_shape}, loss={self.loss_name!r}{penalised}"
                f"{order}{dtype})")

    def with_alpha(self, alpha):
        """The same declaration with the L2 penalty ``alpha``."""
        return Network(self.layers, self.input_shape, self.loss_name, alpha, self.parameter_order, self.dtype)

    def __setstate__(self, state):
        # a model loaded from a read-only memmap (joblib, scikit-learn's pickle check) holds read-only arrays: the
        # compiled passes' C signatures are the ones training compiled, for writeable arrays
        self.__dict__.update({name: value.copy() if isinstance(value, np.ndarray) and not value.flags.writeable
                              and name != "plan" else value for name, value in state.items()})

    @property
    def output_shape(self):
        return self.resolved[-1].out_shape

    @property
    def n_outputs(self):
        return self.output_shape[0]

    @property
    def n_inputs(self):
        return int(np.prod(self.input_shape))

    @property
    def layout(self):
        """The shapes per-tensor rules take (``optim.Muon(theta, layout=net.layout)``), in θ's order.

        A weight is the matrix (out, in·kh·kw), as torch's Muon flattens a kernel; a bias its vector. In
        scikit-learn's order a weight is (in, out), as θ holds it.
        """
        if self.stack is not None:
            return self.stack.layout
        return [(t.shape[0], int(np.prod(t.shape[1:]))) if len(t.shape) > 1 else t.shape for t in self.tensors]

    def describe(self):
        """One line per layer: index, kind, input → output shape, parameters."""
        lines = []
        for index, (layer, resolved) in enumerate(zip(self.layers, self.resolved)):
            count = sum(t.size for t in self.tensors if t.layer == index)
            lines.append(f"{index:>3} {layer!r}: {resolved.in_shape} → {resolved.out_shape}, {count} parameters")
        lines.append(f"{self.n_params} parameters; loss {self.loss_name}"
                     + (f", L2 penalty alpha {self.alpha:g}" if self.alpha else ""))
        return "\n".join(lines)

    def _plan(self):
        plan = np.zeros((len(self.resolved), kernels.PLAN_COLUMNS), dtype=np.int64)
        offsets = {t.name: t.offset for t in self.tensors}
        row = 0
        for index, layer in enumerate(self.resolved):
            size_in = int(np.prod(layer.in_chw))
            plan[index, kernels.PLAN_KIND] = kernels.KINDS[layer.kind]
            plan[index, kernels.PLAN_IN_C:kernels.PLAN_IN_W + 1] = layer.in_chw
            plan[index, kernels.PLAN_OUT_C:kernels.PLAN_OUT_W + 1] = layer.out_chw
            plan[index, kernels.PLAN_KERNEL_H:kernels.PLAN_KERNEL_W + 1] = layer.kernel
            plan[index, kernels.PLAN_STRIDE_H:kernels.PLAN_STRIDE_W + 1] = layer.stride
            plan[index, kernels.PLAN_PAD_TOP] = layer.padding[0]
            plan[index, kernels.PLAN_PAD_LEFT] = layer.padding[2]
            plan[index, kernels.PLAN_WEIGHT] = offsets.get(f"{index}.weight", -1)
            plan[index, kernels.PLAN_BIAS] = offsets.get(f"{index}.bias", -1)
            plan[index, kernels.PLAN_IN_ROW] = row
            row += size_in
            plan[index, kernels.PLAN_OUT_ROW] = row
        plan.flags.writeable = False
        return plan

    # -- parameters ---------------------------------------------------------------------------

    def init(self, random_state=None, scheme=None, dtype=None):
        """A new θ of ``dtype`` (by default the declared one, else float64).

        ``scheme="torch"`` (torch's order's default): torch's ``reset_parameters`` of ``nn.Linear`` and
        ``nn.Conv*d``, weights and biases uniform in ±1/√fan_in (kaiming-uniform with a = √5), fan_in = in·kh·kw.
        ``scheme="lecture"``: Glorot-uniform weights, bound √(6 / (fan_in + fan_out)) with
        fan_out = out·kh·kw (torch's ``xavier_uniform_``), and zero biases. ``random_state``:
        an int, None or a ``numpy.random.Generator``; the draws follow θ's order.
        ``scheme="scikit-learn"`` (scikit-learn's order's default and only scheme): the weights of scikit-learn's
        MLP for the same ``random_state`` (an int, a ``RandomState`` or None), Glorot-uniform of bound
        √(6 / (fan_in + fan_out)), √(2 / ...) for logistic hidden units; zero biases, as the lecture initialises
        them, their draws made and discarded so that the weights stay scikit-learn's layer by layer.
        """
        order_schemes = ORDER_SCHEMES[self.parameter_order]
        scheme = order_schemes[0] if scheme is None else scheme
        if scheme not in order_schemes:
            raise NetworkError(f"scheme must be one of {list(order_schemes)} for a network in {self.parameter_order}'s "
                               f"order, got {scheme!r}")
        dtype = _check_dtype(dtype if dtype is not None else self.dtype if self.dtype is not None else np.float64)
        if self.stack is not None:
            return self.stack.init(random_state, dtype)
        self.check_fits(1, dtype)
        rng = np.random.default_rng(random_state)
        theta = np.zeros(self.n_params, dtype=dtype)
        for tensor in self.tensors:
            weight_shape = self.resolved[tensor.layer].weight_shape
            receptive = int(np.prod(weight_shape[2:]))
            fan_in, fan_out = weight_shape[1] * receptive, weight_shape[0] * receptive
            if scheme == "torch":
                bound = 1.0 / np.sqrt(fan_in)
            elif tensor.name.endswith(".weight"):
                bound = np.sqrt(6.0 / (fan_in + fan_out))
            else:
                continue
            theta[tensor.offset:tensor.offset + tensor.size] = rng.uniform(-bound, bound, tensor.size)
        return theta

    def unpack(self, theta):
        """``{name: view}`` into θ, each of torch's shape (what ``module.load_state_dict`` takes); in
        scikit-learn's order each of θ's, a weight (in, out)."""
        theta = self._check_theta(theta)
        return {t.name: theta[t.offset:t.offset + t.size].reshape(t.shape) for t in self.tensors}

    # -- workspaces ---------------------------------------------------------------------------

    def workspace_elements(self, n_rows):
        """(elements of each of ``activations`` and ``deltas``, elements of ``columns``) for ``n_rows`` rows."""
        if self.stack is not None:
            return self.stack.epoch_workspaces(n_rows)[0], 0
        return kernels.workspace_elements(self._kernel_plan, n_rows)

    def workspace_bytes(self, n_rows, dtype=np.float64):
        """Bytes of a pass on ``n_rows`` rows: θ, its gradient and the three workspaces."""
        blocks, columns = self.workspace_elements(n_rows)
        return np.dtype(dtype).itemsize * (2 * self.n_params + 2 * blocks + columns)

    def check_fits(self, n_rows, dtype=np.float64):
        """NetworkError in one line, naming the largest layer, when a pass on ``n_rows`` rows would not fit in memory.

        The size counted is :meth:`workspace_bytes`; the machine's is :func:`fastgd.machine.physical_memory_bytes`.
        """
        if self.stack is not None:
            return self.stack.check_fits(n_rows, dtype, NetworkError)
        memory = physical_memory_bytes()
        needed = self.workspace_bytes(n_rows, dtype)
        if memory is not None and needed > memory:
            sizes = [int(np.prod(layer.out_chw)) for layer in self.resolved]
            largest = int(np.argmax(sizes))
            raise NetworkError(f"layer {largest} ({self.resolved[largest].kind}) and the rest need "
                               f"{needed / 2 ** 30:.3g} GiB for {n_rows} rows in {np.dtype(dtype).name} "
                               f"({self.n_params} parameters); this machine has {memory / 2 ** 30:.3g} GiB")

    def prepare(self, dtype, backward=True):
        """Compile (or load from Numba's cache) the compiled code of the layer kinds this network uses, for θ's
        ``dtype``, forward and with ``backward`` backward too (:func:`fastgd.kernels.network.prepare`): done once per
        process and kind; the methods below do it before they run compiled code. Compiled code of your own that runs
        :attr:`plan` needs no call (a kind not prepared is compiled at its first call), but compiles better here.

        The MLP's passes (:attr:`stack`) compile as training takes them: nothing to do here for them."""
        if self.stack is not None:
            return
        kernels.prepare(self.plan, _check_dtype(dtype), backward)

    def epoch_pass(self, dtype, n_rows, n_blocks=1):
        """The network's places in the compiled epoch (:func:`fastgd.kernels.train.train_epoch`) for batches of
        ``n_rows``: ``(pass, structure, code, code, alpha)``.

        The pass is :func:`fastgd.kernels.train.network_entry` for θ's ``dtype``, whose docstring says what it reads
        in each place. One pass serves every batch size: ``n_blocks`` must be 1. A scikit-learn-order network's is
        the MLP's (:meth:`fastgd.networks.dense.DenseStack.epoch_pass`), in ``n_blocks`` blocks of rows.
        """
        if self.stack is not None:
            return self.stack.epoch_pass(dtype, n_rows, n_blocks)
        if n_blocks != 1:
            raise NetworkError(f"a declared network has one pass, in one block of rows; got n_blocks={n_blocks}")
        blocks, _ = self.workspace_elements(n_rows)
        self.prepare(dtype)
        return network_entry(_check_dtype(dtype)), self._epoch_plan, kernels.LOSSES[self.loss_name], blocks, \
            self.alpha

    def epoch_workspaces(self, n_rows):
        """(elements of ``activations``, elements of ``deltas``) of :meth:`epoch_pass`'s pass on ``n_rows`` rows:
        the layer blocks then the convolutions' columns, and the blocks."""
        if self.stack is not None:
            return self.stack.epoch_workspaces(n_rows)
        blocks, columns = self.workspace_elements(n_rows)
        return blocks + columns, blocks

    # -- evaluation ---------------------------------------------------------------------------

    def loss_grad(self, theta, X, Y):
        """(loss, gradient) on (X, Y), the penalty included; the loss a Python float, the gradient in θ's layout and
        dtype."""
        theta = self._check_theta(theta)
        X, Y = self.check_data(X, Y, theta.dtype)
        if self.stack is not None:
            return self.stack.loss_grad(theta, X, Y)
        n_rows = X.shape[0]
        self.check_fits(n_rows, theta.dtype)
        blocks, columns = self.workspace_elements(n_rows)
        self.prepare(theta.dtype)
        grad = np.empty_like(theta)
        loss = kernels.loss_and_gradient(theta, X.reshape(-1), Y.reshape(-1), n_rows, self._kernel_plan,
                                         kernels.LOSSES[self.loss_name], grad, np.empty(blocks, theta.dtype),
                                         np.empty(blocks, theta.dtype), np.empty(columns, theta.dtype))
        kernels.add_penalty_gradient(theta, self._kernel_plan, self.alpha, n_rows, grad)
        return float(loss) + kernels.penalty(theta, self._kernel_plan, self.alpha, n_rows), grad

    def loss(self, theta, X, Y):
        """The loss on (X, Y), the penalty included, as a Python float."""
        theta = self._check_theta(theta)
        X, Y = self.check_data(X, Y, theta.dtype)
        if self.stack is not None:
            return self.stack.loss(theta, X, Y)
        self.check_fits(X.shape[0], theta.dtype)
        blocks, columns = self.workspace_elements(X.shape[0])
        self.prepare(theta.dtype, backward=False)
        return float(kernels.loss_only(theta, X.reshape(-1), Y.reshape(-1), X.shape[0], self._kernel_plan,
                                       kernels.LOSSES[self.loss_name], np.empty(blocks, theta.dtype),
                                       np.empty(columns, theta.dtype))
                     + kernels.penalty(theta, self._kernel_plan, self.alpha, X.shape[0]))

    def predict(self, theta, X, chunk_size=None):
        """The outputs, shape (n, n_outputs), ``chunk_size`` rows at a time (by default the passes' own chunk):
        the last layer's through :attr:`output` (in torch's order logits for cross-entropy; in scikit-learn's the
        loss's output activation, probabilities for the cross-entropies)."""
        theta = self._check_theta(theta)
        X, _ = self.check_data(X, None, theta.dtype)
        if self.stack is not None:
            return self.stack.predict(theta, X, chunk_size)
        chunk = max(1, min(X.shape[0], int(PREDICT_CHUNK if chunk_size is None else chunk_size)))
        self.check_fits(chunk, theta.dtype)
        blocks, columns = self.workspace_elements(chunk)
        out = np.empty((X.shape[0], self.n_outputs), theta.dtype)
        self.prepare(theta.dtype, backward=False)
        inputs, activations, columns = X.reshape(X.shape[0], -1), np.empty(blocks, theta.dtype), np.empty(
            columns, theta.dtype)

        def predict_rows(start, stop):
            kernels.predict_in_chunks(theta, inputs[start:stop], self._kernel_plan, activations, columns, chunk,
                                      out[start:stop])

        key = (self._kernel_plan.tobytes(), theta.dtype.name, chunk)
        done, threads_context = _predict_threads(predict_rows, X.shape[0], chunk, key)
        with threads_context:
            predict_rows(done, X.shape[0])
        return out

    # -- checks -------------------------------------------------------------------------------

    def _check_theta(self, theta):
        if self.stack is not None:
            return self.stack.check_theta(theta, self.dtype)
        if not isinstance(theta, np.ndarray):
            raise TypeError(f"theta must be a NumPy ndarray, got {type(theta).__name__}")
        if theta.shape != (self.n_params,):
            raise NetworkError(f"theta must have shape ({self.n_params},) for this network, got {theta.shape}")
        if self.dtype is not None and theta.dtype != self.dtype:
            raise TypeError(f"theta has dtype {theta.dtype}, the network {self.dtype}")
        _check_dtype(theta.dtype)
        if not theta.flags.c_contiguous:
            raise NetworkError("theta must be contiguous")
        return theta

    def input_error(self, shape):
        """The :class:`NetworkError` for data of ``shape`` that the network cannot take: one line naming the first
        layer, what it takes and what came."""
        return NetworkError(f"layer 0 ({self.resolved[0].kind}): X has shape {tuple(shape)}; the network takes (n, "
                            f"{', '.join(map(str, self.input_shape))}) (input_shape {self.input_shape}) or "
                            f"(n, {self.n_inputs}), n ≥ 1")

    def check_data(self, X, Y, dtype=None):
        """X as a C-ordered (n, *input_shape) array of ``dtype`` (by default the declared one), Y as (n, n_outputs);
        both read-only views.

        X may also come flat, (n, prod(input_shape)), as scikit-learn's data sets do. Read-only: compiled code never
        writes the data, and Numba types read-only and writeable arrays apart, so one type means one compiled
        specialisation whatever the caller passed.
        """
        dtype = self.dtype if dtype is None else dtype
        if dtype is None:
            raise TypeError("check_data: give the dtype of θ (the network declares none)")
        if self.stack is not None:
            return self.stack.check_data(X, Y, _check_dtype(dtype))
        X = np.asarray(X)
        flat = (self.n_inputs,)
        if X.ndim < 2 or X.shape[0] < 1 or X.shape[1:] not in (self.input_shape, flat):
            raise self.input_error(X.shape)
        X = _read_only(np.ascontiguousarray(X, dtype=dtype).reshape((X.shape[0],) + self.input_shape))
        if not np.isfinite(X).all():
            raise NetworkError("X contains NaN or infinity")
        if Y is None:
            return X, None
        return X, checked_targets(Y, X.shape[0], self.n_outputs, self.loss_name == "cross_entropy", dtype,
                                  NetworkError)


def _check_dtype(dtype):
    if np.dtype(dtype) not in _FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    return np.dtype(dtype)


def _predict_threads(predict_rows, n_rows, chunk, key):
    """(rows predicted, the context the rest runs in) for a plan-pass network's prediction of ``n_rows`` rows.

    A prediction of more than :data:`PREDICT_PROBES` chunks first predicts one chunk on one thread and one on the
    threads as set (:func:`fastgd.threads.seconds_on_one_and_all`; no untimed chunk before each: a chunk is long
    beside waking threads, and on a busy machine each chunk on two threads costs the most), and keeps the threads
    for the rest only where they were clearly faster (:func:`fastgd.calibration.threads_clearly_faster`); the
    choice serves the same network's predictions (``key``) for :data:`PREDICT_CHOICE_SECONDS`. Why: on a busy
    machine the convolutions' products on two BLAS threads wait for the one that has no core; a digits CNN's
    prediction of 7,188 rows took 1.3-2.0 s on two threads and 0.22-0.29 s on one at load 6.8 (AMD EPYC Zen 4).
    Where the training would not adapt (``FASTGD_ADAPT=0``, one thread) the threads stay as set;
    ``FASTGD_PASS=one_thread`` predicts on one thread. The probe's chunks are the prediction's own (whole chunks:
    a product's last bits may depend on its rows, never on its threads), so the outputs are the same bits
    whatever it chose."""
    from fastgd import _config, calibration, threads

    if _config.PASS == "one_thread":
        return 0, threads.limit(1)
    n_threads = threads.get_num_threads()
    if n_rows <= PREDICT_PROBES * chunk or not calibration.adapts("serial", n_threads):
        return 0, contextlib.nullcontext()
    kept = _PREDICT_CHOICES.get((*key, n_threads))
    done = 0
    if kept is None or time.monotonic() - kept[1] > PREDICT_CHOICE_SECONDS:
        starts = iter(range(0, PREDICT_PROBES * chunk, chunk))

        def next_chunk():
            start = next(starts)
            predict_rows(start, start + chunk)

        seconds = threads.seconds_on_one_and_all(next_chunk, clock, warm=False)
        kept = (calibration.threads_clearly_faster(*seconds), time.monotonic())
        _PREDICT_CHOICES[(*key, n_threads)] = kept
        done = PREDICT_PROBES * chunk
    return done, contextlib.nullcontext() if kept[0] else threads.limit(1)
