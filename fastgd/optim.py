r"""Optimizers over a flat NumPy parameter vector, the way torch.optim works.

    >>> import numpy as np
    >>> from fastgd import optim
    >>> params = np.array([1.0, -2.0])
    >>> opt = optim.Adam(params, lr=0.1)
    >>> for _ in range(100):
    ...     opt.step(2 * params)          # gradient of sum(params**2); params change in place
    >>> bool(np.all(np.abs(params) < 0.1))
    True

Each class validates its hyperparameters (torch's messages), owns its state
arrays and calls one compiled kernel of :mod:`fastgd.kernels` per step: the
serial form below ``FASTGD_PARALLEL_THRESHOLD`` parameters, the ``prange``
form from there on. ``OPTIMIZERS`` maps the lower-case rule names of
FORMULAS.md to the classes; tests, benchmarks, sweeps and reports iterate over it.

The params may also be a vector on an NVIDIA GPU: a numba device array or
any object with ``__cuda_array_interface__`` (a CuPy array, a PyTorch CUDA
tensor). It is updated in place, without a copy, by the rule's CUDA kernel
(:mod:`fastgd.cuda.updates`, one launch per step); the state lives on the
device, ``opt.params`` is a numba view of the same memory, the gradient must
be a device array too, and ``state_dict`` returns NumPy copies::

    params = torch.zeros(10_000_000, device="cuda")
    opt = optim.Adam(params, lr=1e-3)
    opt.step(grad)                        # grad: a CUDA tensor of params' shape and dtype

Hyperparameters live in ``opt.hyperparameters`` (also reachable as
``opt.param_groups[0]``, as in torch): change ``lr`` there between steps and
the next step checks and uses it. Hyperparameters that fix which state exists
(``momentum`` on or off, ``nesterov``, ``centered``, ``amsgrad``) cannot change
after construction.
"""

import inspect
import numbers

import numpy as np

from fastgd import _config
from fastgd import cuda as fastgd_cuda
from fastgd.kernels import updates

__all__ = [
    "Optimizer", "SGD", "Momentum", "Nesterov", "Adagrad", "RMSprop", "Adadelta", "Adam", "AMSGrad", "Adamax",
    "NAdam", "AdamW", "Lion", "OPTIMIZERS",
]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _check_params(params):
    if not isinstance(params, np.ndarray):
        if fastgd_cuda.is_device_array(params):
            return _check_device_params(params)
        raise TypeError(f"params must be a NumPy ndarray, got {type(params).__name__}")
    if params.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"params must have dtype float32 or float64, got {params.dtype}")
    if params.ndim != 1:
        raise ValueError(f"params must be a 1-D vector, got an array of shape {params.shape}")
    if not params.flags.writeable:
        raise ValueError("params must be writeable: the optimizer updates it in place")
    if not params.flags.c_contiguous:
        raise ValueError("params must be contiguous: pass np.ascontiguousarray(params) and use that array")
    return params


def _check_device_params(params):
    """The numba device array viewing ``params`` (a GPU vector), after the same checks as on the CPU."""
    if not getattr(params, "__cuda_ndarray__", False):
        fastgd_cuda.require(f"params of type {type(params).__name__}")
        try:
            read_only = params.__cuda_array_interface__["data"][1]
        except Exception as error:  # e.g. torch's "use var.detach()" for a tensor that requires grad
            raise TypeError(f"params: cannot read the __cuda_array_interface__ of {type(params).__name__}: "
                            f"{error}") from None
        if read_only:
            raise ValueError("params must be writeable: the optimizer updates it in place")
    array = fastgd_cuda.as_device_array(params, "params")
    if array.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"params must have dtype float32 or float64, got {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"params must be a 1-D vector, got an array of shape {tuple(array.shape)}")
    if not array.is_c_contiguous():
        raise ValueError("params must be contiguous: pass a contiguous copy and use that array")
    return array


def _real(name, value, low, high=None, *, high_open=True, index=None):
    """``float(value)``, or torch's "Invalid <name>: <value>" unless low <= value < high (<= if not high_open)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    below = True if high is None else (value < high if high_open else value <= high)
    if not (value >= low and below):  # also catches NaN
        where = "" if index is None else f" at index {index}"
        raise ValueError(f"Invalid {name}{where}: {value}")
    return value


def _betas(betas):
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"Invalid betas: {betas!r} (expected a pair (beta1, beta2))")
    return tuple(_real("beta parameter", beta, 0.0, 1.0, index=index) for index, beta in enumerate(betas))


def _flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


class Hyperparameters(dict):
    """A dict that notes when it is written to, so a step re-checks it only then.

    The optimizer stores checked values as Python floats, bools and tuples:
    the kernels then always see the same argument types and never compile again.
    """

    changed = False

    def __setitem__(self, key, value):
        self.changed = True
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self.changed = True
        super().__delitem__(key)

    def update(self, *args, **kwargs):
        self.changed = True
        super().update(*args, **kwargs)

    def pop(self, *args):
        self.changed = True
        return super().pop(*args)

    def popitem(self):
        self.changed = True
        return super().popitem()

    def clear(self):
        self.changed = True
        super().clear()

    def setdefault(self, key, default=None):
        self.changed = True
        return super().setdefault(key, default)

    def __ior__(self, other):
        self.update(other)
        return self

    def checked(self, values):
        """Store already-checked ``values`` and clear the mark."""
        dict.update(self, values)
        self.changed = False


class Optimizer:
    """Base class: a rule, its hyperparameters, its state and the step counter.

    Subclasses give ``name`` (the key in ``OPTIMIZERS``), ``kernels`` (the
    serial and parallel kernel), ``structural`` (hyperparameters that decide
    which state exists), and implement ``_check`` (validate and normalise the
    hyperparameters), ``_state_names`` and ``_update`` (call the kernel).
    """

    name = None
    kernels = None
    structural = ()
    code = None  # the rule's code for fastgd.kernels.apply_rule
    slots = ()  # state names in the order apply_rule takes them

    def __init__(self, params, hyperparameters):
        self.params = _check_params(params)
        checked = self._check(hyperparameters)
        self.hyperparameters = Hyperparameters()
        self.hyperparameters.checked({key: checked[key] for key in hyperparameters})
        self.device = "cpu" if isinstance(self.params, np.ndarray) else "cuda"
        if self.device == "cuda":
            # an instance attribute, so that a CPU step pays nothing for the device case
            self._check_grad = self._check_device_grad
        self._parallel = self.params.size >= _config.PARALLEL_THRESHOLD
        # state arrays a rule does not use are passed to the kernel as this
        # zero-length view, which it never reads
        self._unused = self.params[:0]
        self._set_structure(self.hyperparameters)
        self.state = self._initial_state()

    # -- torch.optim's surface --------------------------------------------------------------

    @property
    def param_groups(self):
        """``[opt.hyperparameters]``: the one group of this flat vector, as torch spells it."""
        return [self.hyperparameters]

    @classmethod
    def default_hyperparameters(cls):
        """The hyperparameters a new instance gets when none are given."""
        parameters = inspect.signature(cls.__init__).parameters
        return {name: p.default for name, p in parameters.items() if name not in ("self", "params")}

    def step(self, grad):
        """Take one step with gradient ``grad`` (same shape and dtype as params)."""
        grad = self._check_grad(grad)
        if self.hyperparameters.changed:
            self.hyperparameters.checked(self._recheck(self.hyperparameters))
        step = self.state["step"] + 1
        self._update(grad, step, self.hyperparameters)
        self.state["step"] = step

    def state_dict(self):
        """A copy of the state (step count and arrays) and of the hyperparameters.

        The arrays are NumPy arrays, also for an optimizer on the GPU.
        """
        state = {key: _host_copy(value) for key, value in self.state.items()}
        return {"rule": self.name, "state": state, "param_groups": [dict(self.hyperparameters)]}

    def load_state_dict(self, state_dict):
        """Restore what :meth:`state_dict` returned; nothing changes if it does not fit.

        The saved hyperparameters may differ from this optimizer's, also in
        those that decide which state exists (``amsgrad``, ``centered``...):
        the state then takes the saved layout.
        """
        if state_dict.get("rule") != self.name:
            raise ValueError(f"state_dict is for rule {state_dict.get('rule')!r}, this optimizer is {self.name!r}")
        hyperparameters = self._recheck(state_dict["param_groups"][0], structure_may_change=True)
        saved = state_dict["state"]
        expected = {"step", *self._extra_state(), *self._state_names(hyperparameters)}
        if set(saved) != expected:
            raise ValueError(f"state_dict state has keys {sorted(saved)}, expected {sorted(expected)}")
        step = saved["step"]
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"Invalid step in state_dict: {step!r}")
        for key in self._state_names(hyperparameters):
            array = saved[key]
            if not isinstance(array, np.ndarray) or array.shape != self.params.shape:
                raise ValueError(f"state_dict state {key!r} must be an array of shape {self.params.shape}")
            if array.dtype != self.params.dtype:
                raise TypeError(f"state_dict state {key!r} has dtype {array.dtype}, params {self.params.dtype}")
        self.state = {key: self._own_copy(value) if isinstance(value, np.ndarray) else type(self._extra_state().get(
            key, 0))(value) for key, value in saved.items()}
        self.hyperparameters.checked(hyperparameters)
        self._set_structure(hyperparameters)

    def with_params(self, params):
        """This optimizer (rule, hyperparameters, state) over other params, e.g. a copy of θ on another device.

        The state is copied; ``params`` keeps its own values.
        """
        moved = type(self)(params, **self.hyperparameters)
        moved.load_state_dict(self.state_dict())
        return moved

    def packed(self):
        """This optimizer as compiled training loops take it: ``(code, hyper, state0, state1, state2, counters)``.

        See :func:`fastgd.kernels.apply_rule`. The state arrays are this
        optimizer's own, updated in place; the float64 ``counters`` ([step,
        mu_product]) are a copy: hand them back with :meth:`absorb_counters`.
        """
        if self.hyperparameters.changed:
            self.hyperparameters.checked(self._recheck(self.hyperparameters))
        hp = self.hyperparameters
        states = [self.state.get(name, self._unused) for name in self.slots]
        states += [self._unused] * (3 - len(states))
        counters = np.array([self.state["step"], self.state.get("mu_product", 1.0)], dtype=np.float64)
        hyper = np.array(self._hyper_vector(hp), dtype=np.float64)
        return (self._code(hp), hyper, *states, counters)

    def absorb_counters(self, counters):
        """Take back the counters a compiled loop advanced (see :meth:`packed`)."""
        self.state["step"] = int(counters[0])
        if "mu_product" in self.state:
            self.state["mu_product"] = float(counters[1])

    def __repr__(self):
        settings = ", ".join(f"{key}={value!r}" for key, value in self.hyperparameters.items())
        where = "" if self.device == "cpu" else f" on {self.device}"
        return f"{type(self).__name__}(<{self.params.size} x {self.params.dtype}{where}>, {settings})"

    # -- shared checks ----------------------------------------------------------------------

    def _check_grad(self, grad):
        if not isinstance(grad, np.ndarray):
            raise TypeError(f"grad must be a NumPy ndarray, got {type(grad).__name__}")
        if grad.shape != self.params.shape:
            raise ValueError(f"grad has shape {grad.shape}, params {self.params.shape}")
        if grad.dtype != self.params.dtype:
            raise TypeError(f"grad has dtype {grad.dtype}, params {self.params.dtype}")
        if not grad.flags.c_contiguous:
            grad = np.ascontiguousarray(grad)
        return grad

    def _check_device_grad(self, grad):
        if isinstance(grad, np.ndarray):
            raise TypeError("grad is a NumPy array but params are on the GPU: pass the gradient as a device array")
        if not fastgd_cuda.is_device_array(grad):
            raise TypeError(f"grad must be a CUDA device array like params, got {type(grad).__name__}")
        grad = fastgd_cuda.as_device_array(grad, "grad")
        if tuple(grad.shape) != tuple(self.params.shape):
            raise ValueError(f"grad has shape {tuple(grad.shape)}, params {tuple(self.params.shape)}")
        if grad.dtype != self.params.dtype:
            raise TypeError(f"grad has dtype {grad.dtype}, params {self.params.dtype}")
        if not grad.is_c_contiguous():
            raise ValueError("grad must be contiguous on the device")
        return grad

    def _recheck(self, hyperparameters, structure_may_change=False):
        """Checked copy of hyperparameters given after construction."""
        if set(hyperparameters) != set(self._structure["keys"]):
            raise ValueError(f"{type(self).__name__} takes the hyperparameters {sorted(self._structure['keys'])}, "
                             f"got {sorted(hyperparameters)}")
        checked = self._check(hyperparameters)
        if not structure_may_change:
            for key, value in self._structure_of(checked).items():
                if value != self._structure[key]:
                    raise ValueError(f"{key} cannot change to {checked[key]!r} after construction: it decides "
                                     "which state exists; create a new optimizer (or load a state_dict)")
        return checked

    def _structure_of(self, hyperparameters):
        """What fixes the state layout and the kernel: the key set and the structural values."""
        structure = {key: hyperparameters[key] != 0 if key == "momentum" else hyperparameters[key]
                     for key in self.structural}
        structure["keys"] = frozenset(hyperparameters)
        return structure

    def _set_structure(self, hyperparameters):
        self._structure = self._structure_of(hyperparameters)
        kernels = self._kernel_pair(hyperparameters)
        if self.device == "cuda":
            from fastgd.cuda import updates as cuda_updates

            self._kernel = cuda_updates.KERNELS[kernels[0].py_func.__name__]
        else:
            self._kernel = kernels[self._parallel]

    def _initial_state(self):
        state = {"step": 0}
        state.update(self._extra_state())
        for key in self._state_names(self.hyperparameters):
            state[key] = self._full(self._initial_value(key))
        return state

    def _initial_value(self, key):
        """What the state array ``key`` starts at."""
        return 0.0

    def _full(self, value):
        """A new state array shaped as params, on params' device, set to ``value``."""
        if self.device == "cpu":
            return np.full_like(self.params, value)
        from fastgd.cuda import arrays

        return arrays.full(self.params.size, value, self.params.dtype)

    def _own_copy(self, array):
        """A copy of the NumPy ``array`` (checked shape and dtype) on params' device."""
        if self.device == "cpu":
            return np.array(array)
        from numba import cuda

        return cuda.to_device(np.ascontiguousarray(array))

    def _extra_state(self):
        """Scalar state beside the step count, with its initial value."""
        return {}

    def _kernel_pair(self, hyperparameters):
        """(serial, parallel) kernel for these hyperparameters."""
        return self.kernels

    # -- what each rule gives ---------------------------------------------------------------

    def _check(self, hyperparameters):
        """Return the hyperparameters as Python floats, bools and tuples, or raise."""
        raise NotImplementedError

    def _state_names(self, hyperparameters):
        raise NotImplementedError

    def _update(self, grad, step, hyperparameters):
        raise NotImplementedError

    def _code(self, hyperparameters):
        return self.code

    def _hyper_vector(self, hyperparameters):
        """The float64 hyperparameter layout of :func:`fastgd.kernels.apply_rule` for this rule."""
        raise NotImplementedError


def _lr_and_weight_decay(hp):
    return dict(lr=_real("learning rate", hp["lr"], 0.0),
                weight_decay=_real("weight_decay value", hp["weight_decay"], 0.0))


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with momentum, as torch.optim.SGD.

    .. math::
        g \leftarrow g + \lambda\theta; \quad \text{if } \mu \ne 0:\
        b \leftarrow g\ (t=1),\ b \leftarrow \mu b + (1-\tau) g\ (t>1),\
        g \leftarrow g + \mu b \text{ (Nesterov) or } b; \quad \theta \leftarrow \theta - \gamma g

    Batch GD, SGD and mini-batch SGD are this one rule: they differ in how many
    samples formed the gradient. Kernels: :func:`fastgd.kernels.sgd` and, with
    momentum, :func:`fastgd.kernels.sgd_momentum`.

    >>> import numpy as np
    >>> params = np.array([1.0])
    >>> SGD(params, lr=0.25).step(2 * params)
    >>> params
    array([0.5])
    """

    name = "sgd"
    kernels = (updates.sgd, updates.sgd_parallel)
    structural = ("momentum", "nesterov")
    slots = ("momentum_buffer",)

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov))

    def _kernel_pair(self, hp):
        return (updates.sgd_momentum, updates.sgd_momentum_parallel) if hp["momentum"] != 0 else self.kernels

    def _code(self, hp):
        return updates.SGD_MOMENTUM if hp["momentum"] != 0 else updates.SGD

    def _hyper_vector(self, hp):
        if hp["momentum"] == 0:
            return [hp["lr"], hp["weight_decay"]]
        return [hp["lr"], hp["momentum"], hp["dampening"], hp["weight_decay"], hp["nesterov"]]

    def _check(self, hp):
        checked = dict(_lr_and_weight_decay(hp), momentum=_real("momentum value", hp["momentum"], 0.0),
                       dampening=_real("dampening value", hp["dampening"], 0.0, 1.0, high_open=False),
                       nesterov=_flag("nesterov", hp["nesterov"]))
        if checked["nesterov"] and (checked["momentum"] <= 0 or checked["dampening"] != 0):
            raise ValueError(f"Nesterov momentum requires a momentum and zero dampening, got momentum="
                             f"{checked['momentum']}, dampening={checked['dampening']}")
        return checked

    def _state_names(self, hp):
        return ("momentum_buffer",) if hp["momentum"] != 0 else ()

    def _update(self, grad, step, hp):
        if hp["momentum"] == 0:
            self._kernel(self.params, grad, hp["lr"], hp["weight_decay"])
        else:
            self._kernel(self.params, grad, self.state["momentum_buffer"], step, hp["lr"], hp["momentum"],
                         hp["dampening"], hp["weight_decay"], hp["nesterov"])


class Momentum(SGD):
    r"""SGD with heavy-ball momentum μ = 0.9 by default (torch.optim.SGD(momentum=μ)).

    .. math::
        b \leftarrow g\ (t=1), \quad b \leftarrow \mu b + (1-\tau) g\ (t>1), \quad
        \theta \leftarrow \theta - \gamma b

    The lecture's v ← μv − γg, θ ← θ + v is the same trajectory for a constant γ.
    Kernel: :func:`fastgd.kernels.momentum`.
    """

    name = "momentum"

    def __init__(self, params, lr=1e-3, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                         nesterov=nesterov)


class Nesterov(SGD):
    r"""Nesterov accelerated gradient (torch.optim.SGD(momentum=μ, nesterov=True)).

    .. math::
        b \leftarrow g\ (t=1), \quad b \leftarrow \mu b + g\ (t>1), \quad
        \theta \leftarrow \theta - \gamma (g + \mu b)

    Kernel: :func:`fastgd.kernels.nesterov`.
    """

    name = "nesterov"

    def __init__(self, params, lr=1e-3, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=True):
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                         nesterov=nesterov)


class Adagrad(Optimizer):
    r"""Adagrad (torch.optim.Adagrad).

    .. math::
        \tilde\gamma = \frac{\gamma}{1 + (t-1)\eta}, \quad s \leftarrow s + g^2, \quad
        \theta \leftarrow \theta - \tilde\gamma \frac{g}{\sqrt{s} + \epsilon}

    s starts at ``initial_accumulator_value``. Kernel: :func:`fastgd.kernels.adagrad`.
    """

    name = "adagrad"
    kernels = (updates.adagrad, updates.adagrad_parallel)
    code = updates.ADAGRAD
    slots = ("sum",)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))

    def _check(self, hp):
        return dict(_lr_and_weight_decay(hp), lr_decay=_real("lr_decay value", hp["lr_decay"], 0.0),
                    initial_accumulator_value=_real("initial_accumulator_value value",
                                                    hp["initial_accumulator_value"], 0.0),
                    eps=_real("epsilon value", hp["eps"], 0.0))

    def _state_names(self, hp):
        return ("sum",)

    def _initial_value(self, key):
        return self.hyperparameters["initial_accumulator_value"]

    def _update(self, grad, step, hp):
        self._kernel(self.params, grad, self.state["sum"], step, hp["lr"], hp["lr_decay"], hp["eps"],
                     hp["weight_decay"])

    def _hyper_vector(self, hp):
        return [hp["lr"], hp["lr_decay"], hp["eps"], hp["weight_decay"]]


class RMSprop(Optimizer):
    r"""RMSprop (torch.optim.RMSprop), with its ``momentum`` and ``centered`` options.

    .. math::
        v \leftarrow \alpha v + (1-\alpha) g^2; \quad
        \tilde v = v - a^2,\ a \leftarrow \alpha a + (1-\alpha) g \text{ if centered, else } \tilde v = v;

        \mu > 0:\ b \leftarrow \mu b + \frac{g}{\sqrt{\tilde v}+\epsilon},\ \theta \leftarrow \theta - \gamma b;
        \quad \text{else } \theta \leftarrow \theta - \gamma \frac{g}{\sqrt{\tilde v}+\epsilon}

    Kernel: :func:`fastgd.kernels.rmsprop`.
    """

    name = "rmsprop"
    kernels = (updates.rmsprop, updates.rmsprop_parallel)
    structural = ("momentum", "centered")
    code = updates.RMSPROP
    slots = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered))

    def _check(self, hp):
        return dict(_lr_and_weight_decay(hp), alpha=_real("alpha value", hp["alpha"], 0.0, 1.0, high_open=False),
                    eps=_real("epsilon value", hp["eps"], 0.0), momentum=_real("momentum value", hp["momentum"], 0.0),
                    centered=_flag("centered", hp["centered"]))

    def _state_names(self, hp):
        return ("square_avg",) + (("momentum_buffer",) if hp["momentum"] > 0 else ()) + (
            ("grad_avg",) if hp["centered"] else ())

    def _update(self, grad, step, hp):
        state = self.state
        self._kernel(self.params, grad, state["square_avg"], state.get("momentum_buffer", self._unused),
                     state.get("grad_avg", self._unused), hp["lr"], hp["alpha"], hp["eps"], hp["weight_decay"],
                     hp["momentum"], hp["centered"])

    def _hyper_vector(self, hp):
        return [hp["lr"], hp["alpha"], hp["eps"], hp["weight_decay"], hp["momentum"], hp["centered"]]


class Adadelta(Optimizer):
    r"""Adadelta (torch.optim.Adadelta).

    .. math::
        v \leftarrow \rho v + (1-\rho) g^2, \quad
        \Delta = \frac{\sqrt{u+\epsilon}}{\sqrt{v+\epsilon}} g, \quad
        u \leftarrow \rho u + (1-\rho)\Delta^2, \quad \theta \leftarrow \theta - \gamma\Delta

    Kernel: :func:`fastgd.kernels.adadelta`.
    """

    name = "adadelta"
    kernels = (updates.adadelta, updates.adadelta_parallel)
    code = updates.ADADELTA
    slots = ("square_avg", "acc_delta")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def _check(self, hp):
        return dict(_lr_and_weight_decay(hp), rho=_real("rho value", hp["rho"], 0.0, 1.0, high_open=False),
                    eps=_real("epsilon value", hp["eps"], 0.0))

    def _state_names(self, hp):
        return ("square_avg", "acc_delta")

    def _update(self, grad, step, hp):
        self._kernel(self.params, grad, self.state["square_avg"], self.state["acc_delta"], hp["lr"], hp["rho"],
                     hp["eps"], hp["weight_decay"])

    def _hyper_vector(self, hp):
        return [hp["lr"], hp["rho"], hp["eps"], hp["weight_decay"]]


class Adam(Optimizer):
    r"""Adam (torch.optim.Adam); ``amsgrad=True`` gives AMSGrad.

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2, \quad
        \theta \leftarrow \theta - \gamma \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}

    AMSGrad uses w ← max(w, v) in place of v under the root. Weight decay is
    coupled (g ← g + λθ); :class:`AdamW` decouples it. Kernel:
    :func:`fastgd.kernels.adam_family`.
    """

    name = "adam"
    kernels = (updates.adam_family, updates.adam_family_parallel)
    structural = ("amsgrad",)
    code = updates.ADAM_FAMILY
    slots = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    def _check(self, hp):
        return dict(_lr_and_weight_decay(hp), betas=_betas(hp["betas"]), eps=_real("epsilon value", hp["eps"], 0.0),
                    amsgrad=_flag("amsgrad", hp["amsgrad"]))

    def _state_names(self, hp):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if hp["amsgrad"] else ())

    def _update(self, grad, step, hp):
        state = self.state
        beta1, beta2 = hp["betas"]
        self._kernel(self.params, grad, state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq",
                     self._unused), step, hp["lr"], beta1, beta2, hp["eps"], hp["weight_decay"], hp["amsgrad"],
                     self.decoupled_weight_decay)

    def _hyper_vector(self, hp):
        return [hp["lr"], *hp["betas"], hp["eps"], hp["weight_decay"], hp["amsgrad"], self.decoupled_weight_decay]


class AMSGrad(Adam):
    r"""AMSGrad (torch.optim.Adam(amsgrad=True)): Adam with the running maximum of v.

    .. math::
        w \leftarrow \max(w, v), \quad
        \theta \leftarrow \theta - \gamma \frac{m / (1-\beta_1^t)}{\sqrt{w / (1-\beta_2^t)} + \epsilon}
    """

    name = "amsgrad"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=True):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


class AdamW(Adam):
    r"""AdamW (torch.optim.AdamW): Adam with decoupled weight decay.

    .. math::
        \theta \leftarrow \theta (1 - \gamma\lambda), \text{ then Adam (AMSGrad if amsgrad) with } \lambda = 0
    """

    name = "adamw"
    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


class Adamax(Optimizer):
    r"""Adamax (torch.optim.Adamax), Adam with the infinity norm.

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g, \quad u \leftarrow \max(\beta_2 u, |g| + \epsilon), \quad
        \theta \leftarrow \theta - \frac{\gamma}{1-\beta_1^t}\frac{m}{u}

    Kernel: :func:`fastgd.kernels.adamax`.
    """

    name = "adamax"
    kernels = (updates.adamax, updates.adamax_parallel)
    code = updates.ADAMAX
    slots = ("exp_avg", "exp_inf")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _check(self, hp):
        return dict(_lr_and_weight_decay(hp), betas=_betas(hp["betas"]), eps=_real("epsilon value", hp["eps"], 0.0))

    def _state_names(self, hp):
        return ("exp_avg", "exp_inf")

    def _update(self, grad, step, hp):
        beta1, beta2 = hp["betas"]
        self._kernel(self.params, grad, self.state["exp_avg"], self.state["exp_inf"], step, hp["lr"], beta1, beta2,
                     hp["eps"], hp["weight_decay"])

    def _hyper_vector(self, hp):
        return [hp["lr"], *hp["betas"], hp["eps"], hp["weight_decay"]]


class NAdam(Optimizer):
    r"""NAdam (torch.optim.NAdam): Adam with Nesterov momentum and a momentum schedule.

    .. math::
        \mu_t = \beta_1(1 - \tfrac12 0.96^{t\psi}), \quad \Pi_t = \Pi_{t-1}\mu_t, \quad
        \hat v = \frac{v}{1-\beta_2^t}

        \theta \leftarrow \theta - \gamma\frac{1-\mu_t}{1-\Pi_t}\frac{g}{\sqrt{\hat v}+\epsilon}
        - \gamma\frac{\mu_{t+1}}{1-\Pi_t\mu_{t+1}}\frac{m}{\sqrt{\hat v}+\epsilon}

    ``state["mu_product"]`` is Π (a float64 scalar). Kernel: :func:`fastgd.kernels.nadam`.
    """

    name = "nadam"
    kernels = (updates.nadam, updates.nadam_parallel)
    code = updates.NADAM
    slots = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay))

    def _check(self, hp):
        return dict(_lr_and_weight_decay(hp), betas=_betas(hp["betas"]), eps=_real("epsilon value", hp["eps"], 0.0),
                    momentum_decay=_real("momentum_decay value", hp["momentum_decay"], 0.0))

    def _extra_state(self):
        return {"mu_product": 1.0}

    def _state_names(self, hp):
        return ("exp_avg", "exp_avg_sq")

    def _update(self, grad, step, hp):
        state = self.state
        beta1, beta2 = hp["betas"]
        state["mu_product"] = self._kernel(self.params, grad, state["exp_avg"], state["exp_avg_sq"], step,
                                           state["mu_product"], hp["lr"], beta1, beta2, hp["eps"],
                                           hp["weight_decay"], hp["momentum_decay"])

    def _hyper_vector(self, hp):
        return [hp["lr"], *hp["betas"], hp["eps"], hp["weight_decay"], hp["momentum_decay"]]


class Lion(Optimizer):
    r"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms").

    .. math::
        c = \beta_1 m + (1-\beta_1) g, \quad
        \theta \leftarrow \theta - \gamma(\operatorname{sign}(c) + \lambda\theta), \quad
        m \leftarrow \beta_2 m + (1-\beta_2) g

    Weight decay is decoupled. Take γ 3-10x smaller than Adam's: every
    coordinate moves by γ per step. Kernel: :func:`fastgd.kernels.lion`.
    """

    name = "lion"
    kernels = (updates.lion, updates.lion_parallel)
    code = updates.LION
    slots = ("exp_avg",)

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    def _check(self, hp):
        return dict(_lr_and_weight_decay(hp), betas=_betas(hp["betas"]))

    def _state_names(self, hp):
        return ("exp_avg",)

    def _update(self, grad, step, hp):
        beta1, beta2 = hp["betas"]
        self._kernel(self.params, grad, self.state["exp_avg"], hp["lr"], beta1, beta2, hp["weight_decay"])

    def _hyper_vector(self, hp):
        return [hp["lr"], *hp["betas"], hp["weight_decay"]]


def _host_copy(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if fastgd_cuda.is_device_array(value):
        return value.copy_to_host()
    return value


OPTIMIZERS = {
    cls.name: cls
    for cls in (SGD, Momentum, Nesterov, Adagrad, RMSprop, Adadelta, Adam, AMSGrad, Adamax, NAdam, AdamW, Lion)
}
