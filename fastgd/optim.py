r"""Optimizers over a flat NumPy parameter vector, the way torch.optim works.

    >>> import numpy as np
    >>> from fastgd import optim
    >>> params = np.array([1.0, -2.0])
    >>> opt = optim.Adam(params, lr=0.1)
    >>> for _ in range(100):
    ...     opt.step(2 * params)          # gradient of sum(params**2); params change in place
    >>> bool(np.all(np.abs(params) < 0.1))
    True

Every class here is derived from a rule of :mod:`fastgd.rules`: its
signature and defaults, its checks (torch's messages), its state and the
compiled step (:mod:`fastgd.rules.compile`; the serial form below
``FASTGD_PARALLEL_THRESHOLD`` parameters, the ``prange`` form from there on).
``OPTIMIZERS`` maps every registered rule's name to its class, users' rules
included; tests, benchmarks, sweeps and reports iterate over it.

The params may also be a vector on an NVIDIA GPU: a numba device array or
any object with ``__cuda_array_interface__`` (a CuPy array, a PyTorch CUDA
tensor). It is updated in place, without a copy, by the rule's CUDA kernel
(:mod:`fastgd.cuda.rules`, one launch per step); the state lives on the
device, ``opt.params`` is a numba view of the same memory, the gradient must
be a device array too, and ``state_dict`` returns NumPy copies::

    params = torch.zeros(10_000_000, device="cuda")
    opt = optim.Adam(params, lr=1e-3)
    opt.step(grad)                        # grad: a CUDA tensor of params' shape and dtype

Hyperparameters live in ``opt.hyperparameters`` (also reachable as
``opt.param_groups[0]``, as in torch): change ``lr`` there between steps and
the next step checks and uses it. Hyperparameters that fix which state exists
or which code runs (flags such as ``amsgrad``, ``nesterov``, ``centered``, and
``momentum`` on or off) cannot change after construction.

``opt.params`` cannot be reassigned and ``opt.state`` is a read-only view
(its arrays may be written in place); ``load_state_dict`` replaces the state
after checking it. Every step checks that params still has the shape, dtype
and writeability it was built with.

A rule that acts per weight matrix takes the network's *layout*: the shapes
of the tensors the flat vector holds, in order, e.g. ``layout=[(64, 32),
(32, 10), (32,), (10,)]`` (fastgd's MLP gives ``net.layout``). Element-wise
rules ignore it; by default the vector is one tensor.
"""

import inspect
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fastgd import _config
from fastgd import cuda as fastgd_cuda
from fastgd import rules as rule_registry
from fastgd import threads  # noqa: F401  (FASTGD_NUM_THREADS applies from here on)
from fastgd.validation import is_real

__all__ = ["Optimizer", "OPTIMIZERS", "Packed", "optimizer_class", "SGD", "Momentum", "Nesterov", "Adagrad",
           "RMSprop", "Adadelta", "Adam", "AMSGrad", "Adamax", "NAdam", "AdamW", "Lion", "RAdam", "Rprop", "ASGD",
           "AdamWScheduleFree", "Lamb", "Adafactor", "Muon", "LBFGS"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
SEGMENT_FIELDS = 4  # a layout row: offset, ndim, rows, columns


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


def layout_array(layout, n_params):
    """The int64 (segments × 4) layout ``[offset, ndim, rows, columns]`` of shapes covering ``n_params``.

    ``layout`` lists the shapes of the tensors the flat vector holds, in order
    (``(rows, columns)`` or ``(n,)``); None is one vector of ``n_params``.
    """
    if layout is None:
        return np.array([[0, 1, n_params, 1]], dtype=np.int64)
    if isinstance(layout, np.ndarray) and layout.ndim == 2 and layout.shape[1] == SEGMENT_FIELDS:
        shapes = [(int(rows), int(columns)) if ndim == 2 else (int(rows),) for _, ndim, rows, columns in layout]
    else:
        try:
            if isinstance(layout, (str, bytes)):
                raise TypeError
            shapes = [tuple(shape) if not isinstance(shape, numbers.Integral) else (shape,) for shape in layout]
        except TypeError:
            raise ValueError(f"layout must list tensor shapes such as [(64, 32), (32,)], got {layout!r}") from None
    rows, offset = [], 0
    for shape in shapes:
        if not (1 <= len(shape) <= 2) or any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1
                                             for n in shape):
            raise ValueError(f"layout shapes must be (n,) or (rows, columns) of positive integers, got {shape!r}")
        size = int(shape[0]) * (int(shape[1]) if len(shape) == 2 else 1)  # not np.prod: per-call overhead, every shape
        rows.append([offset, len(shape), shape[0], shape[1] if len(shape) == 2 else 1])
        offset += size
    if offset != n_params:
        raise ValueError(f"layout covers {offset} parameters, params has {n_params}")
    return np.array(rows, dtype=np.int64).reshape(-1, SEGMENT_FIELDS)


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
        dict.clear(self)
        dict.update(self, values)
        self.changed = False


class StateView(Mapping):
    """``opt.state``: the step count, each state array (a view: write into it in place) and scalar state.

    Read-only as a mapping: entries cannot be replaced, so nothing of another
    shape can reach the compiled step. Use :meth:`Optimizer.load_state_dict`
    to replace the state.
    """

    def __init__(self, optimizer):
        self._optimizer = optimizer

    def _keys(self):
        optimizer = self._optimizer
        aux = ("aux",) if optimizer._aux_is_state() else ()
        return ("step", *optimizer._present, *aux, *optimizer.rule.scalar_state)

    def __getitem__(self, key):
        optimizer = self._optimizer
        if key == "step":
            return int(optimizer._counters[0])
        if key == "aux" and optimizer._aux_is_state():
            return optimizer._aux
        if key in optimizer._present:
            return optimizer._states[optimizer._present.index(key)]
        scalars = list(optimizer.rule.scalar_state)
        if key in scalars:
            return float(optimizer._counters[1 + scalars.index(key)])
        raise KeyError(key)

    def __iter__(self):
        return iter(self._keys())

    def __len__(self):
        return len(self._keys())

    def __setitem__(self, key, value):
        raise TypeError("opt.state cannot be assigned to: write into its arrays in place, or use "
                        "opt.load_state_dict(...)")

    def __repr__(self):
        return f"StateView({dict(self)!r})"


@dataclass
class Packed:
    """An optimizer as compiled training loops take it (see :mod:`fastgd.rules.compile`).

    ``function`` is the rule's ``packed_step_entry`` for the dtype (a C
    callback) on the CPU, its CUDA launcher on a GPU. ``states``, ``aux`` and
    ``counters`` are the optimizer's own arrays, advanced in place; ``hyper``
    is a copy, whose learning rate a schedule may overwrite.
    """

    function: object
    hyper: np.ndarray
    states: object
    aux: object
    counters: np.ndarray
    layout: np.ndarray
    variant: object
    # the rule's packed_ascent_into entry for a rule with a closure (a second gradient per batch), else None: an epoch
    # given None does not compile the second evaluation
    ascent: object = None


class Optimizer:
    """Base class of the optimizer classes: a rule, its hyperparameters, its state and the step counter.

    Each class is made by :func:`optimizer_class` from a rule; ``rule`` is
    that :class:`fastgd.rules.Rule` and ``name`` its key in ``OPTIMIZERS``.
    """

    rule = None
    name = None

    def __init__(self, params, *args, layout=None, **kwargs):
        cls = type(self)
        given = kwargs
        if args or not kwargs.keys() <= cls.rule.defaults.keys():
            # positional hyperparameters, or a name the rule does not take: the signature's binding and messages
            # (a measurable share of a small fit's fixed cost: keywords alone skip it; reports/design_measurements.md)
            try:
                bound = cls._signature.bind(params, *args, **kwargs)
            except TypeError as error:
                raise TypeError(f"{cls.__name__}: {error}") from None
            given = {k: v for k, v in bound.arguments.items() if k != "params"}
        values = dict(self.rule.defaults, **given)
        checked = self.rule.check(values)
        params = _check_params(params)
        self._params = params
        self._shape, self._dtype = tuple(params.shape), params.dtype
        # where params live, chosen once: every method then asks this object, not the device's name
        self._place = _HOST if isinstance(params, np.ndarray) else _DEVICE
        self._layout = layout_array(layout, int(params.size))
        self._parallel = params.size >= _config.PARALLEL_THRESHOLD
        self._hyperparameters = Hyperparameters()
        self._install(checked, self._initial_state(checked))

    # -- torch.optim's surface --------------------------------------------------------------

    @property
    def params(self):
        """The parameter vector the optimizer updates in place (cannot be reassigned)."""
        return self._params

    @params.setter
    def params(self, value):
        raise AttributeError("params cannot be reassigned: write into opt.params in place (opt.params[:] = ...), "
                             "or create a new optimizer (opt.with_params(...) keeps the state)")

    @property
    def device(self):
        """``"cpu"`` for params in a NumPy array, ``"cuda"`` for params on an NVIDIA GPU."""
        return self._place.name

    @property
    def hyperparameters(self):
        """The hyperparameters; change them in place between steps (the next step checks them)."""
        return self._hyperparameters

    @property
    def param_groups(self):
        """``[opt.hyperparameters]``: the one group of this flat vector, as torch spells it."""
        return [self._hyperparameters]

    @property
    def state(self):
        """Read-only view: ``step``, the state arrays (writeable in place) and scalar state."""
        return StateView(self)

    @property
    def layout(self):
        """The shapes of the tensors the flat vector holds (one vector by default)."""
        return [(int(rows), int(columns)) if ndim == 2 else (int(rows),) for _, ndim, rows, columns in self._layout]

    @property
    def variant_key(self):
        """(rule hash, flags): optimizers with equal keys run the same compiled code on the same state layout."""
        return self.rule.hash, tuple(sorted(self._variant.flags.items()))

    @classmethod
    def default_hyperparameters(cls):
        """The hyperparameters a new instance gets when none are given."""
        return dict(cls.rule.defaults)

    def step(self, grad=None, loss=None):
        """Take one step with gradient ``grad`` (same shape and dtype as params), or torch's ``step(closure)``.

        ``closure()`` evaluates the model at ``params`` as they are when it is
        called and returns ``(loss, grad)``; ``step(closure)`` returns that
        loss, the one at the parameters before the step. A rule with a
        :class:`~fastgd.rules.Closure` (SAM) needs one: it calls it a second
        time at its evaluation point, then steps from ``params`` with the
        gradient there. A gradient given to such a rule is refused in one
        line naming it, before anything changes. A rule that takes the loss
        (:attr:`fastgd.rules.Rule.uses_loss`, a Polyak step) needs ``loss``,
        the loss at ``params``, or a closure.
        """
        if callable(grad):
            return self._step_with_closure(grad)
        if self.rule.closure is not None:
            raise TypeError(f"{self.name} evaluates the gradient a second time (a closure rule): call "
                            "step(closure), closure() returning (loss, grad) at params, not step(grad)")
        if grad is None:
            raise TypeError(f"{self.name}.step needs a gradient (an array of params' shape) or a closure")
        self._step(self._check_grad(grad), self._check_loss(loss))

    def _check_loss(self, loss):
        """The loss as the step takes it (NaN for a rule that does not read it), or a one-line refusal."""
        if not self.rule.uses_loss:
            return math.nan
        if loss is None:
            raise TypeError(f"{self.name} takes the loss: call step(grad, loss=...) with the loss at params, or "
                            "step(closure)")
        if not is_real(loss):
            raise TypeError(f"{self.name}: loss must be a real number, got {type(loss).__name__}")
        return float(loss)

    def _closure_gradient(self, closure):
        """``(loss, grad)`` from ``closure()``, checked as a step's gradient is."""
        returned = closure()
        try:
            loss, grad = returned
        except (TypeError, ValueError):
            raise TypeError(f"{self.name}: the closure must return (loss, grad), got "
                            f"{type(returned).__name__}") from None
        return loss, self._check_grad(grad)

    def _step_with_closure(self, closure):
        loss, grad = self._closure_gradient(closure)
        checked_loss = self._check_loss(loss)
        if self.rule.closure is not None:
            self._place.refuse_closure(self)
            if self._hyperparameters.changed:
                self._refresh()
            params = self._params
            self._place.check_unchanged(self)
            self._variant.check_compiles(self._dtype, self._parallel)
            self._compiled = True
            grad = grad.copy() if grad is params else grad
            origin = params.copy()
            try:
                self._variant.packed_ascent(params, grad, self._states, self._aux, self._hyper, self._counters,
                                            self._layout_argument)
                grad = self._closure_gradient(closure)[1].copy()
            finally:
                params[...] = origin
        self._step(grad, checked_loss)
        return loss

    def _step(self, grad, loss):
        if self._hyperparameters.changed:
            self._refresh()
        self._hyper[-2] = loss
        params = self._params
        if not self._ready:
            self._place.check_unchanged(self)
            if not self._compiled:
                self._variant.check_compiles(self._dtype, self._parallel)
                self._compiled = True
        self._step_function(params, grad, self._states, self._aux, self._hyper, self._counters, self._layout_argument)

    def state_dict(self):
        """A copy of the state (step count, arrays, scalars) and of the hyperparameters.

        The arrays are NumPy arrays, also for an optimizer on the GPU.
        """
        state = {key: _host_copy(value) for key, value in self.state.items()}
        return {"rule": self.name, "state": state, "param_groups": [dict(self._hyperparameters)]}

    def load_state_dict(self, state_dict):
        """Restore what :meth:`state_dict` returned; nothing changes if it does not fit.

        The saved hyperparameters may differ from this optimizer's, also in
        those that decide which state exists (``amsgrad``, ``centered``...):
        the state then takes the saved layout.
        """
        expected_keys = ["param_groups", "rule", "state"]
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a dict as state_dict() returns it, got {type(state_dict).__name__}")
        missing = [key for key in expected_keys if key not in state_dict]
        if missing:
            raise ValueError(f"state_dict lacks {missing}: it needs the keys {expected_keys} that state_dict() "
                             "returns")
        if state_dict["rule"] != self.name:
            raise ValueError(f"state_dict is for rule {state_dict['rule']!r}, this optimizer is {self.name!r}")
        groups = state_dict["param_groups"]
        if not (isinstance(groups, (list, tuple)) and len(groups) == 1 and isinstance(groups[0], Mapping)):
            raise ValueError("state_dict param_groups must be a list of one dict of hyperparameters")
        hyperparameters = self._recheck(groups[0], structure_may_change=True)
        saved = state_dict["state"]
        if not isinstance(saved, Mapping):
            raise ValueError("state_dict state must be a dict")
        present = self.rule.present_state(hyperparameters)
        aux_size = self._aux_size() if self._aux_is_state() else 0
        expected = {"step", *present, *self.rule.scalar_state, *(("aux",) if aux_size else ())}
        if set(saved) != expected:
            raise ValueError(f"state_dict state has keys {sorted(saved)}, expected {sorted(expected)}")
        if aux_size:
            aux = saved["aux"]
            if not isinstance(aux, np.ndarray) or aux.shape != (aux_size,) or aux.dtype != self._dtype:
                raise ValueError(f"state_dict state 'aux' must be a {self._dtype} array of shape ({aux_size},) for "
                                 f"this layout")
        step = saved["step"]
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"Invalid step in state_dict: {step!r}")
        arrays = {}
        for key in present:
            array = saved[key]
            if not isinstance(array, np.ndarray) or array.shape != self._shape:
                raise ValueError(f"state_dict state {key!r} must be an array of shape {self._shape}")
            if array.dtype != self._dtype:
                raise TypeError(f"state_dict state {key!r} has dtype {array.dtype}, params {self._dtype}")
            arrays[key] = array
        scalars = []
        for key in self.rule.scalar_state:
            value = saved[key]
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
                raise ValueError(f"state_dict state {key!r} must be a finite number, got {value!r}")
            scalars.append(float(value))
        if aux_size:
            arrays["aux"] = saved["aux"]
        self._install(hyperparameters, (arrays, [float(step), *scalars]))

    def evaluation_params(self, out=None):
        """Where to evaluate the model: the parameters themselves, or the rule's evaluation point.

        A rule such as Schedule-Free AdamW or averaged SGD trains at one point
        and evaluates at another (its :class:`~fastgd.rules.EvaluationPoint`):
        then a host array of it, written into ``out`` when given. Otherwise
        ``params`` itself (on its device).
        """
        if self.rule.evaluation is None:
            return self._params
        if self._hyperparameters.changed:
            self._refresh()
        params, states = self._place.host(self._params), self._place.host(self._states)
        out = np.empty(self._shape, self._dtype) if out is None else out
        arguments = (params, states, self._hyper, out)
        _config.compile_for(self._variant.evaluate, arguments)
        self._variant.evaluate(*arguments)
        return out

    def with_params(self, params):
        """This optimizer (rule, hyperparameters, layout, state) over other params, e.g. a copy of θ on another device.

        The state is copied; ``params`` keeps its own values.
        """
        moved = type(self)(params, layout=self.layout, **self._hyperparameters)
        moved.load_state_dict(self.state_dict())
        return moved

    def __reduce__(self):
        # by rule name and definition, not by class: a user's rule has no importable class, and the
        # compiled code is rebuilt where the optimizer is unpickled (on the CPU; a device optimizer
        # pickles its state as NumPy arrays)
        params = self._place.host(self._params)
        return _unpickle_optimizer, (self.name, self.rule.hash, params, self.layout, self.state_dict(),
                                     rule_registry.plugin_of(self.name))

    def packed(self, parallel=False):
        """This optimizer as compiled training loops take it: a :class:`Packed`.

        ``parallel``: its step's ``prange`` form (on the CPU), for loops whose threads are already awake.
        """
        if self._hyperparameters.changed:
            self._refresh()
        if self.rule.closure is not None:
            self._place.refuse_closure(self)
        return Packed(self._place.packed_function(self._variant, self._dtype, parallel), self._hyper.copy(),
                      self._states, self._aux, self._counters, self._layout_argument, self._variant,
                      self._variant.ascent_entry(self._dtype, parallel))

    def __repr__(self):
        settings = ", ".join(f"{key}={value!r}" for key, value in self._hyperparameters.items())
        where = "" if self._place is _HOST else f" on {self.device}"
        return f"{type(self).__name__}(<{self._params.size} x {self._dtype}{where}>, {settings})"

    # -- checks -----------------------------------------------------------------------------

    def _check_grad(self, grad):
        return self._place.check_grad(self, grad)

    def _check_host_grad(self, grad):
        if not isinstance(grad, np.ndarray):
            raise TypeError(f"grad must be a NumPy ndarray, got {type(grad).__name__}")
        if grad.shape != self._shape:
            raise ValueError(f"grad has shape {grad.shape}, params {self._shape}")
        if grad.dtype != self._dtype:
            raise TypeError(f"grad has dtype {grad.dtype}, params {self._dtype}")
        if not grad.flags.c_contiguous:
            grad = np.ascontiguousarray(grad)
        return grad

    def _check_device_grad(self, grad):
        if isinstance(grad, np.ndarray):
            raise TypeError("grad is a NumPy array but params are on the GPU: pass the gradient as a device array")
        if not fastgd_cuda.is_device_array(grad):
            raise TypeError(f"grad must be a CUDA device array like params, got {type(grad).__name__}")
        grad = fastgd_cuda.as_device_array(grad, "grad")
        if tuple(grad.shape) != self._shape:
            raise ValueError(f"grad has shape {tuple(grad.shape)}, params {self._shape}")
        if grad.dtype != self._dtype:
            raise TypeError(f"grad has dtype {grad.dtype}, params {self._dtype}")
        if not grad.is_c_contiguous():
            raise ValueError("grad must be contiguous on the device")
        return grad

    def _params_changed(self):
        params = self._params
        if not params.flags.writeable:
            raise ValueError("params must be writeable: the optimizer updates it in place (it was made read-only "
                             "after the optimizer was built)")
        raise ValueError(f"params changed to shape {params.shape} and dtype {params.dtype} after the optimizer was "
                         f"built for {self._shape} {self._dtype}: create a new optimizer")

    def _recheck(self, values, structure_may_change=False):
        """Checked copy of hyperparameters given after construction."""
        checked = self.rule.check(dict(values))
        if not structure_may_change:
            self._refuse_structure_change(checked)
        return checked

    def _refuse_structure_change(self, checked):
        rule = self.rule
        current = self._current
        for name in rule.structural_names:
            if checked[name] != current[name]:
                raise ValueError(f"{name} cannot change to {checked[name]!r} after construction: it decides which "
                                 "state or code exists; create a new optimizer (or load a state_dict)")
        for name, derived in rule.derived.items():
            if derived(checked[derived.source]) != derived(current[derived.source]):
                raise ValueError(f"{derived.source} cannot change to {checked[derived.source]!r} after construction: "
                                 "it decides which state or code exists; create a new optimizer (or load a "
                                 "state_dict)")

    def _hyper_vector(self, hyperparameters):
        """The float64 hyperparameters compiled code takes, then the batch's loss (NaN until a step gives it; read by
        a rule that takes it) and 1.0: the factor a schedule sets on the learning rates."""
        return np.array([*self.rule.hyper_vector(hyperparameters), math.nan, 1.0], dtype=np.float64)

    def _refresh(self):
        checked = self._recheck(self._hyperparameters)
        self._hyper = self._hyper_vector(checked)
        self._current = checked
        self._hyperparameters.checked(checked)

    # -- state --------------------------------------------------------------------------------

    def _initial_state(self, hyperparameters):
        """({slot: initial value (scalar or host array)}, counters) for a new optimizer; aux starts at zero."""
        rule = self.rule
        host = self._params if self._place is _HOST else None
        if host is None and any(callable(rule.state[name].initial) for name in rule.present_state(hyperparameters)):
            host = self._params.copy_to_host()
        values = {name: rule.initial_state(name, host if host is not None else np.empty(self._shape, self._dtype),
                                           hyperparameters)
                  for name in rule.present_state(hyperparameters)}
        counters = [0.0] + [float(slot.initial) for slot in rule.scalar_state.values()]
        return values, counters

    def _install(self, hyperparameters, state):
        """Make ``hyperparameters`` and ``state`` (values per slot, counters) this optimizer's, all at once."""
        values, counters = state
        rule = self.rule
        flags = rule.flags(hyperparameters)
        present = rule.present_state(hyperparameters)
        variant = rule_registry.compiled(rule, flags)
        states = self._new_states(present, values)
        self._variant = variant
        self._present = present
        self._states = states
        self._aux = self._new_aux(values.get("aux"))
        self._counters = np.array(counters, dtype=np.float64)
        self._hyper = self._hyper_vector(hyperparameters)
        self._current = dict(hyperparameters)  # the last checked values, which the compiled code was made for
        self._hyperparameters.checked(hyperparameters)
        self._step_function, self._layout_argument = self._place.step_function(variant, self._parallel,
                                                                              self._layout)
        # the host's step checks params and compiles on its first call; the device's launch needs neither
        self._compiled = self._ready = self._place is _DEVICE

    def _aux_size(self):
        """Elements of auxiliary state the rule needs for this layout (its PerTensor ``aux_size``, summed)."""
        tensor = self.rule.per_tensor
        if tensor is None or tensor.aux_size is None:
            return 0
        size_of = getattr(tensor.aux_size, "py_func", tensor.aux_size)
        return int(sum(size_of(int(rows), int(columns), int(ndim)) for _, ndim, rows, columns in self._layout))

    def _aux_is_state(self):
        """Whether the rule's auxiliary array is state (saved, restored) rather than scratch."""
        return self._aux_size() > 0 and self.rule.per_tensor.aux_is_state

    def _new_aux(self, saved=None):
        """The auxiliary state on params' device: zeros, or a copy of a saved host array."""
        return self._place.new_aux(self._aux_size(), saved, self._dtype)

    def _new_states(self, present, values):
        """The (slots × n) state array on params' device, each row set from a scalar or a host array."""
        return self._place.new_states(present, values, int(self._params.size), self._dtype)


class _Host:
    """Params in a NumPy array: state in NumPy arrays, the rule's serial or ``prange`` compiled step."""

    name = "cpu"

    @staticmethod
    def host(array):
        """``array`` as a host array (itself)."""
        return array

    @staticmethod
    def check_grad(optimizer, grad):
        return optimizer._check_host_grad(grad)

    @staticmethod
    def refuse_closure(optimizer):
        """A rule with a closure steps on the CPU."""

    @staticmethod
    def check_unchanged(optimizer):
        """Params must keep the shape, dtype and writeability the optimizer was built for."""
        params = optimizer._params
        if params.shape != optimizer._shape or params.dtype != optimizer._dtype or not params.flags.writeable:
            optimizer._params_changed()

    @staticmethod
    def step_function(variant, parallel, layout):
        """(the compiled step, the layout argument it takes)."""
        return (variant.packed_step_parallel if parallel else variant.packed_step), layout

    @staticmethod
    def packed_function(variant, dtype, parallel):
        return variant.entry(dtype, parallel)

    @staticmethod
    def new_aux(size, saved, dtype):
        return np.zeros(size, dtype=dtype) if saved is None else np.array(saved, dtype=dtype)

    @staticmethod
    def new_states(present, values, n, dtype):
        states = np.empty((len(present), n), dtype=dtype)
        for row, name in enumerate(present):
            states[row] = values[name]
        return states


class _Device:
    """Params on an NVIDIA GPU: state in device arrays, the rule's CUDA kernels (:mod:`fastgd.cuda.rules`)."""

    name = "cuda"

    @staticmethod
    def host(array):
        """A host copy of the device ``array``."""
        return array.copy_to_host()

    @staticmethod
    def check_grad(optimizer, grad):
        return optimizer._check_device_grad(grad)

    @staticmethod
    def refuse_closure(optimizer):
        """A rule with a closure has no CUDA form yet: refused in one line naming it."""
        raise rule_registry.RuleError(f"rule {optimizer.name!r}: its closure (a second gradient per step) has no CUDA "
                                      "form yet: train it on the CPU (NumPy arrays, device='cpu')")

    @staticmethod
    def check_unchanged(optimizer):
        """A device array cannot change shape, dtype or writeability under the optimizer."""

    @staticmethod
    def step_function(variant, parallel, layout):
        from numba import cuda

        from fastgd.cuda import rules as cuda_rules

        return cuda_rules.compiled(variant).packed_launch, cuda.to_device(layout)

    @staticmethod
    def packed_function(variant, dtype, parallel):
        from fastgd.cuda import rules as cuda_rules

        return cuda_rules.compiled(variant).packed_launch

    @staticmethod
    def new_aux(size, saved, dtype):
        from numba import cuda

        if saved is not None:
            return cuda.to_device(np.ascontiguousarray(saved, dtype=dtype))
        from fastgd.cuda import arrays

        return arrays.full(size, 0.0, dtype) if size else cuda.device_array(0, dtype=dtype)

    @staticmethod
    def new_states(present, values, n, dtype):
        from numba import cuda

        from fastgd.cuda import arrays

        states = cuda.device_array((len(present), n), dtype=dtype)
        for row, name in enumerate(present):
            value = values[name]
            if isinstance(value, np.ndarray):
                states[row].copy_to_device(np.ascontiguousarray(value, dtype=dtype))
            else:
                arrays.fill(states[row], value)
        return states


_HOST, _DEVICE = _Host(), _Device()


def _host_copy(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if fastgd_cuda.is_device_array(value):
        return value.copy_to_host()
    return value


def _unpickle_optimizer(name, definition, params, layout, state_dict, plugin=None):
    # a user's rule travels as its plugin: loaded here when this process lacks it (a fresh process, a worker)
    rule = rule_registry.rebuild(name, definition, plugin)
    read_only = isinstance(params, np.ndarray) and not params.flags.writeable
    optimizer = optimizer_class(rule)(params.copy() if read_only else params, layout=layout,
                                      **state_dict["param_groups"][0])
    optimizer.load_state_dict(state_dict)
    if read_only:
        # unpickled from read-only memory (a memmap): usable to inspect; a step says params must be writeable
        optimizer._params = params
    return optimizer


# --- one class per rule ---------------------------------------------------------------------

_CLASSES = {}  # rule name -> the class of the Rule registered under it (a replaced rule gets a new one)


def optimizer_class(rule):
    """The optimizer class of ``rule`` (a :class:`fastgd.rules.Rule`), made once per definition; TypeError for
    anything else (a rule's name is looked up in :data:`OPTIMIZERS`)."""
    if not isinstance(rule, rule_registry.Rule):
        hint = f"; for a rule by name use fastgd.optim.OPTIMIZERS[{rule!r}]" if isinstance(rule, str) else ""
        raise TypeError(f"optimizer_class takes a fastgd.rules.Rule, got {type(rule).__name__}{hint}")
    cls = _CLASSES.get(rule.name)
    if cls is not None and cls.rule is rule:
        return cls
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                  inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    parameters += [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
                   for name, default in rule.defaults.items()]
    parameters.append(inspect.Parameter("layout", inspect.Parameter.KEYWORD_ONLY, default=None))
    signature = inspect.Signature(parameters)
    public = signature.replace(parameters=parameters[1:])
    bind = signature.replace(parameters=parameters[1:-1])

    def __init__(self, params, *args, layout=None, **kwargs):
        Optimizer.__init__(self, params, *args, layout=layout, **kwargs)

    __init__.__signature__ = signature
    doc = rule.doc or f"The rule {rule.name!r}."
    namespace = dict(rule=rule, name=rule.name, _signature=bind, __init__=__init__, __signature__=public,
                     __doc__=doc, __module__=__name__)
    cls = type(rule.class_name, (Optimizer,), namespace)
    cls.__qualname__ = rule.class_name
    _CLASSES[rule.name] = cls
    return cls


class _Optimizers(Mapping):
    """Rule name → optimizer class, for every registered rule (read-only; see :func:`fastgd.rules.register`)."""

    def __getitem__(self, name):
        rule = rule_registry.RULES.get(name) if isinstance(name, str) else None
        if rule is None:
            raise KeyError(name)
        return optimizer_class(rule)

    def __iter__(self):
        return iter(rule_registry.RULES)

    def __len__(self):
        return len(rule_registry.RULES)

    def __contains__(self, name):
        return name in rule_registry.RULES

    def __repr__(self):
        return f"OPTIMIZERS({list(self)})"


OPTIMIZERS = _Optimizers()

# every built-in rule's class under its torch-style name: optim.Adam, optim.RAdam, optim.Muon, ...
for _name in list(rule_registry.RULES):
    if rule_registry.is_builtin(_name):
        globals()[rule_registry.get(_name).class_name] = OPTIMIZERS[_name]
del _name


def __getattr__(name):
    # a user's rule's class by its class name, once registered (optim.Signum)
    for rule in rule_registry.RULES.values():
        if rule.class_name == name:
            return optimizer_class(rule)
    raise AttributeError(f"module 'fastgd.optim' has no attribute {name!r}")


class LBFGS:
    r"""L-BFGS with ``torch.optim.LBFGS``'s signature, defaults and step, over a flat NumPy vector.

        >>> import numpy as np
        >>> from fastgd import optim
        >>> params = np.array([3.0, -1.0])
        >>> opt = optim.LBFGS(params, line_search_fn="strong_wolfe")
        >>> def closure():                 # returns the loss AND its gradient at params
        ...     return float(params @ params), 2 * params
        >>> opt.step(closure)              # the loss at the start; params change in place
        10.0
        >>> bool(np.all(np.abs(params) < 1e-6))
        True

    ``step(closure)`` runs up to ``max_iter`` iterations (at most ``max_eval`` closure calls, by default
    ``max_iter * 5 // 4``) of the two-loop recursion over the last ``history_size`` pairs, each with a step of
    ``lr`` (times min(1, 1/‖g‖₁) on the very first iteration) or with torch's strong-Wolfe line search
    (``line_search_fn="strong_wolfe"``), and stops as torch's does (``tolerance_grad`` on max |g|,
    ``tolerance_change`` on the directional derivative, the step and the loss's change). The state carries over
    from one ``step`` to the next. The step itself is the compiled generator
    :func:`fastgd.kernels.lbfgs.lbfgs_step`; the closure runs in Python between its requests.

    **How the closure differs from torch's.** torch's closure zeroes the gradients, runs ``backward()`` and
    returns the loss, and the optimizer reads the gradients from ``p.grad``. Here there is no ``.grad``: the
    closure evaluates the model at ``params`` as they are when it is called (the optimizer moves them in place,
    also to trial points of the line search) and returns ``(loss, grad)``, a real number and an array of
    params' shape (any float dtype; it is copied, so the closure may reuse its array). ``step`` returns the loss
    of its first closure call, as torch's does. ``state`` holds torch's counters ``n_iter`` and ``func_evals``.

    Bad input is refused in one line before anything changes: a negative ``lr``, ``max_iter``, ``max_eval`` or
    ``history_size`` below 1, negative tolerances, a ``line_search_fn`` other than None or ``"strong_wolfe"`` (at
    construction, where torch waits for the step), a step without a closure, and a closure whose gradient has the
    wrong shape.
    """

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100, line_search_fn=None):
        hyperparameters = dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                               tolerance_change=tolerance_change, history_size=history_size,
                               line_search_fn=line_search_fn)
        self._checked(hyperparameters)
        if max_eval is None:
            hyperparameters["max_eval"] = max_iter * 5 // 4  # fixed here, as torch's constructor fixes it
        params = _check_params(params)
        if not isinstance(params, np.ndarray):
            raise ValueError("LBFGS runs on the CPU: params must be a NumPy array (device='cuda' has no L-BFGS yet)")
        self._params = params
        self.param_groups = [hyperparameters]
        self._history_size = int(history_size)
        from fastgd.kernels import lbfgs as kernels

        self._kernels = kernels
        (self._vectors, self._directions, self._steps, self._history,
         self._scalars) = kernels.new_buffers(params.size, self._history_size, params.dtype)
        self._grad = np.zeros_like(params)
        self._evaluation = np.zeros(1)

    @staticmethod
    def _checked(values):
        """``settings`` for :func:`fastgd.kernels.lbfgs.lbfgs_step` from torch's hyperparameters, after checks."""
        from fastgd.kernels import lbfgs as kernels
        from fastgd.validation import is_integer, is_real

        lr, max_iter, max_eval = values["lr"], values["max_iter"], values["max_eval"]
        if not is_real(lr) or not lr >= 0.0:
            raise ValueError(f"LBFGS: Invalid learning rate: {lr!r} (a real number >= 0)")
        for name in ("max_iter", "history_size") + (() if max_eval is None else ("max_eval",)):
            if not is_integer(values[name]) or values[name] < 1:
                raise ValueError(f"LBFGS: {name} must be an integer >= 1, got {values[name]!r}")
        for name in ("tolerance_grad", "tolerance_change"):
            if not is_real(values[name]) or not values[name] >= 0.0:
                raise ValueError(f"LBFGS: {name} must be a real number >= 0, got {values[name]!r}")
        if values["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: line_search_fn must be None or 'strong_wolfe', got {values['line_search_fn']!r}")
        settings = np.zeros(kernels.N_SETTINGS)
        settings[kernels.LR], settings[kernels.MAX_ITER] = lr, max_iter
        settings[kernels.MAX_EVAL] = max_iter * 5 // 4 if max_eval is None else max_eval
        settings[kernels.TOLERANCE_GRAD] = values["tolerance_grad"]
        settings[kernels.TOLERANCE_CHANGE] = values["tolerance_change"]
        settings[kernels.LINE_SEARCH] = values["line_search_fn"] == "strong_wolfe"
        return settings

    @property
    def params(self):
        """The parameter vector the optimizer updates in place."""
        return self._params

    @property
    def state(self):
        """torch's counters: ``n_iter`` (iterations over every step so far) and ``func_evals`` (closure calls)."""
        kernels = self._kernels
        return {"n_iter": int(self._scalars[kernels.N_ITER]), "func_evals": int(self._scalars[kernels.FUNC_EVALS])}

    def step(self, closure=None):
        """One torch ``LBFGS.step``: see the class; returns the loss of the first closure call."""
        if closure is None or not callable(closure):
            raise TypeError("LBFGS.step needs a closure: a function of no arguments returning (loss, grad) at params")
        group = self.param_groups[0]
        if int(group["history_size"]) != self._history_size:
            raise ValueError("LBFGS: history_size cannot change after construction")
        settings = self._checked(group)
        params, grad, evaluation = self._params, self._grad, self._evaluation
        first_loss = None
        for _ in self._kernels.lbfgs_step(params, grad, evaluation, self._vectors, self._directions, self._steps,
                                          self._history, self._scalars, settings):
            returned = closure()
            try:
                loss, new_grad = returned
            except (TypeError, ValueError):
                raise TypeError("LBFGS: the closure must return (loss, grad), got "
                                f"{type(returned).__name__}") from None
            new_grad = np.asarray(new_grad)
            if new_grad.shape != params.shape:
                raise ValueError(f"LBFGS: the closure's grad has shape {new_grad.shape}, params {params.shape}")
            grad[...] = new_grad
            evaluation[0] = float(loss)
            if first_loss is None:
                first_loss = loss
        return first_loss
