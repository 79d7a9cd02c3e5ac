r"""What a rule is: its hyperparameters, its state, its per-step scalars and its element function.

A rule is declared once, as a :class:`Rule`; the optimizer class, the serial
and ``prange`` kernels, the packed step that compiled training calls, the CUDA
kernel and the rule's identity in a results store are all derived from it
(:mod:`fastgd.rules.compile`, :mod:`fastgd.cuda.rules`, :mod:`fastgd.optim`).

The pieces, for Adam::

    Rule(
        "adam",
        element=adam_element,                  # the math of one parameter (below)
        hyperparameters={"lr": LearningRate(1e-3), "betas": Betas((0.9, 0.999)),
                         "eps": Real(1e-8, label="epsilon value"),
                         "weight_decay": WeightDecay(0.0, "coupled"), "amsgrad": Flag(False)},
        state={"exp_avg": State(), "exp_avg_sq": State(), "max_exp_avg_sq": State(when="amsgrad")},
        per_step=PerStep(adam_step_scalars, "step_size", "bias_correction2_sqrt", ...),
    )

**Hyperparameters** are checked as torch.optim checks them (same messages).
Numeric ones become named scalars: ``lr``, ``betas`` → ``beta1, beta2``,
``eps`` … in the order declared, ``lr`` first. Flags and choices are
*structural*: they are constants of the compiled code and cannot change after
an optimizer is built (nor can :class:`Derived` flags, such as "momentum is
not 0").

**State** slots are arrays shaped as the parameters (``State``) and scalars
carried from step to step (``ScalarState``, e.g. NAdam's running product).

**The element function** takes ``(param, grad, ...)`` and then any of: state
slots, hyperparameter scalars, per-step outputs and flags, *by name*; it
returns the new parameter followed by the new value of every state slot, in
the order it takes them. Every scalar it receives has the parameter's dtype
(flags and boolean per-step outputs stay booleans), so float32 stays float32:
write it without float literals (pass constants as hyperparameters or per-step
scalars) and with no calls but ``math`` functions and ``abs``, and the same
source compiles for the CPU and, through ``numba.cuda``, for the GPU.

**Per-step scalars** are computed once per step, in float64, from the step
count ``step`` (1 for the first step), hyperparameter scalars, scalar state
and flags: bias corrections, decayed rates. Outputs named as a scalar state
update it.

**The loss** of the batch, ``loss`` (float64; in the parameters' dtype in the
element and per-tensor functions), is an input by name of the per-step,
element, per-tensor and reduction finish functions (a Polyak step size, AliG's
min(loss / ‖g‖², γ)). A rule that takes it needs it at every step:
``optimizer.step(grad, loss=...)`` or ``step(closure)``; the compiled epoch
passes each batch's loss, taken at θ before the step.

**Search spaces** for tuning are declared on the hyperparameters:
``LearningRate`` searches ``LogUniform(1e-5, 1)`` unless told otherwise;
``search=`` takes a ``LogUniform``, ``Uniform`` or ``OneMinusLogUniform``
(momenta, betas), one per entry (or None) for a tuple such as ``betas``.
:mod:`fastgd.sweep.tuning` samples them; the others stay at their defaults.

**Weight decay** is composed, not written into elements (optax's ``chain``):
a :class:`WeightDecay` hyperparameter adds ``g ← g + λθ`` before the element
(``"coupled"``, L2), ``θ ← θ(1 − γλ)`` before it (``"decoupled"``, AdamW's)
or ``θ ← θ / (1 + γλ)`` after it (``"proximal"``, Adan's).

**Global reductions** (:class:`Reduction`) are sums over every parameter of
the model, taken before the element pass: global norms, dot products,
D-Adaptation's and Prodigy's distance estimates. Its function takes ``(param,
grad, ...)`` as the element does and returns one term per declared output;
each output is the float64 sum of its term over the whole flat vector, in a
fixed order (blocks of :data:`REDUCTION_BLOCK` summed in turn, so the
``prange`` kernels give the serial ones' bits). A ``finish`` function (a
:class:`PerStep`) then turns the sums into scalars (new scalar state,
the step's distance estimate); the element and per-tensor functions take the
sums and the finish's outputs by name. Order within a step: per-step
function → reduction → finish → element (or per-tensor) pass.

**A closure** (:class:`Closure`) makes the rule evaluate the batch's gradient
a second time, at another point (SAM's θ + ρ·g/‖g‖): given the gradient g at
θ, the closure's own :class:`Reduction` sums terms of ``(param, grad)`` over
every parameter (SAM: g², for ‖g‖) and its finish turns the sums into
scalars; ``ascent(param, grad, ...)`` then gives each parameter of the
evaluation point θ'; the gradient is evaluated again **on the same batch**
at θ', θ is restored bit for bit, and the step (weight decay, per-step
function, reduction, element) runs with the gradient at θ'. The optimizer
classes take it as torch's ``step(closure)`` (``closure()`` returns ``(loss,
grad)`` at ``opt.params``); the compiled epoch calls the model's pass twice
per batch for such a rule (and once for the others, which do not compile the
second call); the batch's loss is the one at θ. SAM over SGD, whole::

    Rule("sam_sgd", element=sgd_element, hyperparameters={..., "rho": Real(0.05),
                                                          "perturb_eps": Real(1e-12)},
         closure=Closure(sam_ascent, reduction=Reduction(squared_grad, "grad_norm_sq",
                                                         finish=PerStep(sam_scale, "scale"))))

The closure's functions take hyperparameter scalars and flags by name (the
reduction ``(param, grad, ...)`` in the parameters' dtype, its finish the sums
in float64, ``ascent(param, grad, ...)`` the sums and the finish's outputs in
the parameters' dtype, too) and the step count of the step about to be taken,
``step``, in the finish. They see no state: the ascent happens before the
step. A rule with a closure runs on the CPU only (``device="cuda"`` is refused
in one line naming it).

**The reference** (``reference=``) is the rule in plain NumPy, the oracle of
the tests and of :mod:`fastgd.reference`: ``function(params, grad, state, t,
**hyperparameters)`` updates ``params`` (a 1-D array) and ``state`` (a dict
it fills on the first step, ``t`` = 1) in place; tuples stay tuples
(``betas``), flags booleans; it also takes ``layout`` (the list of tensor
shapes of the flat vector) if it names it, and ``closure`` (a function of no
arguments returning ``(loss, grad)`` at ``params`` as they are when it is
called) if the rule has a :class:`Closure`.
"""

import dis
import functools
import hashlib
import inspect
import json
import keyword
import math
import numbers
import types
from dataclasses import dataclass

import numpy as np

from fastgd.validation import is_integer, is_real

__all__ = ["RuleError", "Hyperparameter", "Real", "LearningRate", "Reals", "Betas", "Integer", "Flag", "Choice",
           "WeightDecay", "Derived", "State", "ScalarState", "PerStep", "PerTensor", "EvaluationPoint", "Reduction",
           "Closure", "LogUniform", "Uniform", "OneMinusLogUniform", "Rule", "GENERATOR_VERSION"]

# Part of every rule's hash: bump it when the generated code changes meaning.
GENERATOR_VERSION = 2

_MISSING = object()


class RuleError(ValueError):
    """A rule definition that cannot work; the message names the rule and the problem in one line."""


# --- search spaces (declared with each hyperparameter, used by tuning) --------------------------

@dataclass(frozen=True)
class LogUniform:
    """Log-uniform between ``low`` and ``high`` (both > 0)."""

    low: float
    high: float

    def from_unit(self, u):
        return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))


@dataclass(frozen=True)
class Uniform:
    """Uniform between ``low`` and ``high``."""

    low: float
    high: float

    def from_unit(self, u):
        return float(self.low + u * (self.high - self.low))


@dataclass(frozen=True)
class OneMinusLogUniform:
    """``1 - x`` with ``x`` log-uniform between ``low`` and ``high`` (both in (0, 1]): momenta and betas near 1.

    Choi et al. (2019), "On Empirical Comparisons of Optimizers for Deep
    Learning", tune ``1 - β`` on a log scale: 0.9 and 0.99 are as far apart as
    0.99 and 0.999.
    """

    low: float
    high: float

    def from_unit(self, u):
        return 1.0 - LogUniform(self.low, self.high).from_unit(1.0 - u)


_DISTRIBUTIONS = (LogUniform, Uniform, OneMinusLogUniform)


# --- hyperparameters -------------------------------------------------------------------------



class Hyperparameter:
    """A declared hyperparameter: default, check, the scalars it contributes to compiled code."""

    structural = False

    def __init__(self, default=_MISSING, *, search=None, doc=None):
        self.default = default
        self.search = search
        self.doc = doc

    def check(self, name, value):
        """The value as compiled code takes it (float, tuple of floats, bool, str), or raise."""
        raise NotImplementedError

    def scalar_names(self, name):
        """Names of the float64 scalars this hyperparameter contributes, in order (none if structural)."""
        return () if self.structural else (name,)

    def scalars(self, value):
        return () if self.structural else (float(value),)

    # The search space is left out of the rule's hash: it decides which settings are tried, not what a
    # setting computes.
    def search_distributions(self):
        """The distributions tuning samples, one per searched scalar (none if the hyperparameter is not searched)."""
        return () if self.search is None else (self.search,)

    def from_search(self, values):
        """The hyperparameter's value from one sampled number per :meth:`search_distributions` entry."""
        return values[0]

    def describe(self):
        """A JSON-able description: part of the rule's hash."""
        described = {key: value for key, value in vars(self).items() if key not in ("search", "doc")}
        described["kind"] = type(self).__name__
        if described.get("default") is _MISSING:
            described["default"] = "<missing>"
        return described


class Real(Hyperparameter):
    """A real number in [low, high) (ends closed or open as given); never NaN, nor infinite unless ``infinite``.

    Refused values give torch's message, ``Invalid <label>: <value>``; the
    label defaults to ``<name> value`` (torch's wording for most). Where the
    reference words it otherwise, ``message`` is a template with ``{value}``.
    ``infinite=True`` accepts +∞ (with no ``high``): a growth rate without a bound. ``optional=True`` accepts
    None (Prodigy's β3: √β2 where None); compiled code then sees NaN.
    """

    # instance attributes only where True: the other rules' identities stay as they were
    infinite = False
    optional = False

    def __init__(self, default=_MISSING, low=0.0, high=None, *, low_open=False, high_open=True, label=None,
                 message=None, search=None, doc=None, infinite=False, optional=False):
        super().__init__(default, search=search, doc=doc)
        self.low, self.high, self.low_open, self.high_open, self.label = low, high, low_open, high_open, label
        self.message = message
        if infinite:
            self.infinite = True
        if optional:
            self.optional = True

    def scalars(self, value):
        return (math.nan if value is None else float(value),)

    def _label(self, name):
        return self.label or f"{name} value"

    def _inside(self, value):
        if self.infinite and value == math.inf and self.high is None:
            return True
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def check(self, name, value):
        if value is None and self.optional:
            return None
        if not is_real(value):
            raise TypeError(f"{self._label(name)} must be a real number, got {value!r}")
        value = float(value)
        if not self._inside(value):
            if self.message:
                raise ValueError(self.message.format(value=value))
            raise ValueError(f"Invalid {self._label(name)}: {value}")
        return value


class LearningRate(Real):
    """A learning rate, a real ≥ 0 ("Invalid learning rate: …").

    Every rule has one named ``lr``; a rule may have others (Muon's
    ``adamw_lr`` for its vectors). A schedule scales all of them by the same
    factor, step by step.
    """

    def __init__(self, default=_MISSING, *, message=None, search=LogUniform(1e-5, 1.0), doc=None):
        super().__init__(default, 0.0, label="learning rate", message=message, search=search, doc=doc)


class WeightDecay(Real):
    """``weight_decay`` λ ≥ 0, applied around the element: ``"coupled"`` (g ← g + λθ before it),
    ``"decoupled"`` (θ ← θ(1 − γλ) before it) or ``"proximal"`` (θ ← θ / (1 + γλ) after it, the proximal step of
    λ/2‖θ‖², Adan's default).

    ``decoupled_when`` names a flag of the rule that switches a coupled or proximal decay
    to decoupled (torch's ``decoupled_weight_decay=True``, pytorch-optimizer's ``weight_decouple=True``).
    """

    MODES = ("coupled", "decoupled", "proximal")

    def __init__(self, default=0.0, mode="coupled", *, decoupled_when=None, message=None, search=None, doc=None):
        if mode not in self.MODES:
            raise RuleError(f"WeightDecay mode must be 'coupled', 'decoupled' or 'proximal', got {mode!r}")
        super().__init__(default, 0.0, label="weight_decay value", message=message, search=search, doc=doc)
        self.mode, self.decoupled_when = mode, decoupled_when


class Reals(Hyperparameter):
    """A tuple of reals, each named as a scalar (``betas`` → ``beta1, beta2``) and each in its range.

    Messages are torch's for betas: ``Invalid beta parameter at index 1: -0.1``;
    ``messages`` gives one template (with ``{value}``) per entry where the
    reference words them otherwise. An entry may be None where ``optional``
    says so (Adafactor's ε₁: the dtype's own); compiled code then sees NaN.
    """

    def __init__(self, default=_MISSING, names=("beta1", "beta2"), low=0.0, high=1.0, *, low_open=False,
                 high_open=True, label="beta parameter", messages=None, optional=(), search=None, doc=None):
        super().__init__(default, search=search, doc=doc)
        self.names, self.label = tuple(names), label
        self.messages, self.optional = tuple(messages or ()), tuple(optional)
        self._element = Real(low=low, high=high, low_open=low_open, high_open=high_open, label=label)

    def check(self, name, value):
        if not (isinstance(value, (tuple, list)) and len(value) == len(self.names)):
            raise ValueError(f"Invalid {name}: {value!r} (expected {len(self.names)} numbers "
                             f"({', '.join(self.names)}))")
        checked = []
        for index, item in enumerate(value):
            if item is None and self.names[index] in self.optional:
                checked.append(None)
                continue
            if not is_real(item):
                raise TypeError(f"{self.label} at index {index} must be a real number, got {item!r}")
            if not self._element._inside(float(item)):
                if self.messages:
                    raise ValueError(self.messages[index].format(value=float(item)))
                raise ValueError(f"Invalid {self.label} at index {index}: {float(item)}")
            checked.append(float(item))
        return tuple(checked)

    def scalar_names(self, name):
        return self.names

    def scalars(self, value):
        return tuple(math.nan if v is None else float(v) for v in value)

    def search_distributions(self):
        """``search`` is one distribution or None per entry (None keeps the entry at its default)."""
        return () if self.search is None else tuple(d for d in self.search if d is not None)

    def from_search(self, values):
        sampled = iter(values)
        return tuple(default if space is None else next(sampled) for default, space in zip(self.default, self.search))

    def describe(self):
        described = super().describe()
        described["_element"] = self._element.describe()
        return described


class Betas(Reals):
    """torch's ``betas=(β1, β2)``, each in [0, 1)."""

    def __init__(self, default=_MISSING, names=("beta1", "beta2"), *, search=None, doc=None):
        super().__init__(default, names, 0.0, 1.0, search=search, doc=doc)


class Integer(Hyperparameter):
    """An integer in [low, high]; compiled code sees it as a float64 scalar."""

    def __init__(self, default=_MISSING, low=0, high=None, *, label=None, message=None, search=None, doc=None):
        super().__init__(default, search=search, doc=doc)
        self.low, self.high, self.label, self.message = low, high, label, message

    def check(self, name, value):
        label = self.label or f"{name} value"
        if not is_integer(value):
            raise TypeError(f"{label} must be an integer, got {value!r}")
        if value < self.low or (self.high is not None and value > self.high):
            raise ValueError(self.message.format(value=value) if self.message else f"Invalid {label}: {value}")
        return int(value)

    def from_search(self, values):
        return int(round(values[0]))


class Flag(Hyperparameter):
    """True or False; structural (a constant of the compiled code)."""

    structural = True

    def check(self, name, value):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {value!r}")
        return bool(value)


class Choice(Hyperparameter):
    """One of a few strings; structural. Code sees it as flags ``<name>_is_<option>``.

    ``aliases`` maps other accepted values to options (torch's ``None`` for a
    default); ``message`` is a template with ``{value}`` for a refused value.
    """

    structural = True

    def __init__(self, default=_MISSING, options=(), *, aliases=None, message=None, doc=None):
        super().__init__(default, doc=doc)
        self.options, self.aliases, self.message = tuple(options), dict(aliases or {}), message

    def check(self, name, value):
        try:
            value = self.aliases.get(value, value)
        except TypeError:  # unhashable
            pass
        if not isinstance(value, str) or value not in self.options:
            if self.message:
                raise ValueError(self.message.format(value=value))
            raise ValueError(f"Invalid {name}: {value!r} (one of {list(self.options)})")
        return value


@dataclass(frozen=True)
class Derived:
    """A structural flag computed from one numeric hyperparameter, e.g. ``Derived("momentum", lambda m: m != 0)``.

    It decides state (a momentum buffer exists only with momentum) and code;
    changing ``source`` across it after construction is refused, naming ``source``.
    """

    source: str
    function: object

    def __call__(self, value):
        return bool(self.function(value))


# --- state and per-step scalars ----------------------------------------------------------------

@dataclass(frozen=True)
class State:
    """A state array shaped as the parameters.

    ``initial``: a number, the name of a hyperparameter whose value it starts
    at, or a function ``(params, hyperparameters) -> number or array`` (e.g. a
    copy of the parameters). ``when``: the name of a flag (or derived flag)
    without which the slot does not exist; the element then receives 0.
    """

    initial: object = 0.0
    when: str = None


@dataclass(frozen=True)
class ScalarState:
    """A float64 scalar carried from step to step, updated by the per-step output of the same name."""

    initial: float = 0.0


class PerStep:
    """The per-step function and the names of what it returns (a tuple, or one value for one name)."""

    def __init__(self, function, *outputs):
        if not outputs:
            raise RuleError(f"PerStep({getattr(function, '__name__', function)!r}) needs the names of its outputs")
        self.function = function
        self.outputs = tuple(outputs)


class PerTensor:
    """A function over one whole tensor at a time, for rules that need more than one parameter's view.

    Called once per tensor of the layout (``where="all"``), or per weight
    matrix only (``where="matrices"``; the element function then updates
    the vectors). It takes ``(params, grad, ...)`` as 1-D views of the
    tensor's span of the flat vector (row-major for a matrix) and then, by
    name, its state slots' views, ``aux`` (its share of the auxiliary state,
    ``aux_size(rows, columns, ndim)`` elements: factored moments, scratch),
    ``rows``, ``columns``, ``ndim``, ``step``, ``tensor`` (the tensor's index
    in the layout, a key for random draws), hyperparameter scalars,
    per-step outputs and flags; it updates them in place and returns nothing.
    ``aux_is_state=False`` marks the auxiliary array as scratch: it is then
    left out of ``state`` and ``state_dict``. ``cuda=False`` says the function
    has no device form (it calls LAPACK: eigendecompositions, QR, triangular
    solves); the rule then trains on the CPU only, and ``device="cuda"`` is
    refused in one line naming it.
    Norms for trust ratios, row and column statistics and matrix functions
    (Newton–Schulz) are written here; :func:`fastgd.kernels.blas.gemm` gives
    matrix products on the CPU and the GPU.
    """

    def __init__(self, function, where="all", aux_size=None, aux_is_state=True, cuda=True):
        if where not in ("all", "matrices"):
            raise RuleError(f"PerTensor where must be 'all' or 'matrices', got {where!r}")
        if not isinstance(cuda, bool):
            raise RuleError(f"PerTensor cuda must be True or False, got {cuda!r}")
        self.function, self.where, self.aux_size = function, where, aux_size
        self.aux_is_state, self.cuda = aux_is_state, cuda


class EvaluationPoint:
    """Where to evaluate the model when the parameters are a training point (Schedule-Free, averaged SGD).

    ``function(param, ...)`` returns one evaluation parameter, taking by name
    state slots, hyperparameter scalars, flags and the outputs of
    ``scalars`` (a :class:`PerStep` of hyperparameter scalars, in float64,
    such as 1 − 1/β₁). Predictions and reported losses use this point.
    """

    def __init__(self, function, scalars=None):
        self.function, self.scalars = function, scalars


class Reduction:
    """Sums over every parameter of the model, before the element pass: ``Reduction(function, "name", ...)``.

    ``function(param, grad, ...)`` takes, by name, state slots, hyperparameter
    scalars, per-step outputs and flags (in the parameters' dtype, as the
    element does; ``grad`` after a coupled weight decay, ``param`` before the
    step) and returns one term per output (one value for one output). Each
    output is the float64 sum of its term over the whole flat vector: ``(g·g,)``
    gives the squared global gradient norm, ``(g·(θ₀ − θ), |s|)`` Prodigy's
    two sums. ``finish`` (a :class:`PerStep`) computes float64 scalars from
    them: its function takes ``step``, hyperparameter scalars, scalar state,
    flags, per-step outputs and the sums; outputs named as a scalar state
    update it. The element and per-tensor functions take the sums and the
    finish's outputs by name. ``when`` names a flag without which the pass is
    skipped and the sums are 0 (Adan's clipping by the global norm, off by
    default).
    """

    def __init__(self, function, *outputs, finish=None, when=None):
        if not outputs:
            raise RuleError(f"Reduction({getattr(function, '__name__', function)!r}) needs the names of its outputs")
        self.function, self.outputs, self.finish, self.when = function, tuple(outputs), finish, when


class Closure:
    """A second gradient of the same batch at another point, before the step: ``Closure(ascent, reduction=...)``.

    ``ascent(param, grad, ...)`` returns the evaluation point's parameter from
    the parameter and the batch's gradient at θ, taking by name hyperparameter
    scalars, flags and the sums and finish outputs of ``reduction`` (a
    :class:`Reduction` over ``(param, grad)``, summed over every parameter;
    its finish takes ``step``, hyperparameter scalars, flags and the sums).
    See the module docstring for the order of a step.
    """

    def __init__(self, ascent, reduction=None):
        self.ascent, self.reduction = ascent, reduction


# Terms a reduction sums per block, in order: the serial and the prange kernels add the same partial sums.
REDUCTION_BLOCK = 4096


# The names the generated code binds (fastgd.rules.compile, fastgd.cuda.rules): a hyperparameter, flag, state
# slot or per-step output of the same name would shadow one of them. tests/test_rule_checks.py parses every
# built-in rule's generated modules and fails when this list lacks a name they use.
GENERATED_NAMES = frozenset({
    "add_in_order", "ascent", "aux", "aux_size", "closure_finish", "closure_reduction", "columns", "counters",
    "cuda", "dtype_eps", "element", "evaluate", "evaluation", "evaluation_scalars", "finish", "float", "grad",
    "halt", "hyper", "int", "kernel", "kernel_parallel", "launch", "launch_shape", "layout", "loop_kernel",
    "loop_scalars", "loss", "machine_epsilon", "min", "ndim", "new_block_sums", "no_halt", "np", "numba", "out",
    "packed_ascent", "packed_ascent_into", "packed_ascent_into_parallel", "packed_launch", "packed_step",
    "packed_step_parallel", "params", "per_step", "per_tensor", "prange", "range", "reduction", "reduction_inputs",
    "reduction_kernel", "rows", "states", "step", "tensor_kernel", "tensor_shape", "to_element"})
# A rule's name becomes a file name (its generated modules) and an attribute (fastgd.rules.kernels.<name>, and
# <name>_parallel for its prange twin): short enough for any file system, and never a prange twin's name.
MAX_RULE_NAME_LENGTH = 64

# Names every per-step function may take besides the rule's own: the step count, the dtype's ε and the batch's
# loss (a rule taking the loss anywhere needs it at every step).
STEP_NAMES = ("step", "dtype_eps", "loss")
# Names a per-tensor function may take besides the rule's own.
TENSOR_NAMES = ("aux", "rows", "columns", "ndim", "step", "dtype_eps", "tensor")


# --- the rule ---------------------------------------------------------------------------------

def _parameters(function, what, rule_name):
    """Positional parameter names of a Python function or a Numba dispatcher."""
    python = getattr(function, "py_func", function)
    if not isinstance(python, types.FunctionType):
        raise RuleError(f"rule {rule_name!r}: the {what} must be a Python function or a numba.njit function, got "
                        f"{type(function).__name__}")
    parameters = inspect.signature(python).parameters.values()
    for parameter in parameters:
        if parameter.kind not in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            raise RuleError(f"rule {rule_name!r}: the {what} {python.__name__} must take plain positional "
                            f"parameters, not {parameter}")
        if parameter.default is not parameter.empty:
            raise RuleError(f"rule {rule_name!r}: the {what}'s parameter {parameter.name!r} must not have a default "
                            "(declare defaults on the hyperparameters)")
    return [parameter.name for parameter in parameters]


class Rule:
    """One update rule, declared once. See the module docstring; :func:`fastgd.rules.register` adds it."""

    def __init__(self, name, *, hyperparameters, element=None, per_tensor=None, state=None, scalar_state=None,
                 per_step=None, derived=None, evaluation=None, reduction=None, closure=None, check=None, reference=None,
                 doc=None, class_name=None):
        self.name = name
        self.closure = closure
        self.element = element
        self.reduction = reduction
        self.per_tensor = per_tensor
        self.evaluation = evaluation
        self.hyperparameters = dict(hyperparameters)
        self.state = dict(state or {})
        self.scalar_state = dict(scalar_state or {})
        self.per_step = per_step
        self.derived = dict(derived or {})
        self.cross_check = check
        self.reference = reference
        self.doc = inspect.cleandoc(doc) if doc else None
        self.class_name = class_name or "".join(part.capitalize() for part in str(name).split("_"))
        self._validate()

    @functools.cached_property
    def hash(self):
        """sha256 of everything that defines the rule's results (:meth:`_hash`).

        Taken on first use: reading the sources of the built-ins' functions costs time that
        ``import fastgd.optim`` would pay for rules it may never use (reports/design_measurements.md). A user's
        rule is hashed when it is registered (:func:`fastgd.rules.register`), from the sources its compiled code
        comes from.
        """
        return self._hash()

    def __repr__(self):
        return f"<Rule {self.name!r} {self.hash[:12]}>"

    # -- what compiled code sees ------------------------------------------------------------

    @property
    def scalar_names(self):
        """Names of the float64 hyperparameter vector, in order; ``lr`` first."""
        return tuple(n for name, spec in self.hyperparameters.items() for n in spec.scalar_names(name))

    @property
    def structural_names(self):
        return tuple(name for name, spec in self.hyperparameters.items() if spec.structural)

    @property
    def weight_decay(self):
        """The composed weight decay: (name, its WeightDecay declaration), or None."""
        for name, spec in self.hyperparameters.items():
            if isinstance(spec, WeightDecay):
                return name, spec
        return None

    @property
    def learning_rates(self):
        """The names of the learning-rate scalars (``lr`` first): a schedule scales them all."""
        return tuple(name for name, spec in self.hyperparameters.items() if isinstance(spec, LearningRate))

    @property
    def uses_layout(self):
        """Whether the rule acts per tensor (and so needs the layout of the flat vector)."""
        return self.per_tensor is not None

    @functools.cached_property
    def uses_loss(self):
        """Whether a function of the rule takes the batch's loss, ``loss`` (a Polyak step): then every step needs it."""
        functions = [self.element, self.per_step and self.per_step.function,
                     self.per_tensor and self.per_tensor.function,
                     self.reduction and self.reduction.finish and self.reduction.finish.function]
        return any("loss" in _parameters(function, "function", self.name) for function in functions if function)

    def reduces(self, flags):
        """Whether the step of a variant with ``flags`` (a dict) takes the reduction pass over every parameter."""
        return self.reduction is not None and (self.reduction.when is None or bool(flags[self.reduction.when]))

    def flags(self, hyperparameters):
        """Every compile-time flag for checked hyperparameters: flags, choices as ``<name>_is_<option>``, derived."""
        flags = {}
        for name, spec in self.hyperparameters.items():
            if isinstance(spec, Flag):
                flags[name] = hyperparameters[name]
            elif isinstance(spec, Choice):
                for option in spec.options:
                    flags[f"{name}_is_{option}"] = hyperparameters[name] == option
        for name, derived in self.derived.items():
            flags[name] = derived(hyperparameters[derived.source])
        return flags

    def flag_names(self):
        names = [name for name, spec in self.hyperparameters.items() if isinstance(spec, Flag)]
        names += [f"{name}_is_{option}" for name, spec in self.hyperparameters.items() if isinstance(spec, Choice)
                  for option in spec.options]
        return names + list(self.derived)

    def variant(self, hyperparameters):
        """What fixes the compiled code and the state layout: the flags, as a sorted tuple."""
        return tuple(sorted(self.flags(hyperparameters).items()))

    def present_state(self, hyperparameters):
        """The state slots that exist for these (checked) hyperparameters, in declaration order."""
        flags = self.flags(hyperparameters)
        return tuple(name for name, slot in self.state.items() if slot.when is None or flags[slot.when])

    def hyper_vector(self, hyperparameters):
        """The float64 scalars of checked hyperparameters, in :attr:`scalar_names` order."""
        return [value for name, spec in self.hyperparameters.items() for value in spec.scalars(hyperparameters[name])]

    # -- tuning -------------------------------------------------------------------------------

    @property
    def search_space(self):
        """Hyperparameter name → its declared ``search`` (for tuples, one distribution or None per entry), for the
        searched ones only, ``lr`` first; the others stay at their defaults when tuning."""
        return {name: spec.search for name, spec in self.hyperparameters.items() if spec.search is not None}

    @property
    def search_dimensions(self):
        """How many numbers one point of the search space takes."""
        return sum(len(spec.search_distributions()) for spec in self.hyperparameters.values())

    def from_unit(self, point):
        """The searched hyperparameters at ``point``, one number in [0, 1] per dimension (declaration order)."""
        values, position = {}, 0
        for name, spec in self.hyperparameters.items():
            distributions = spec.search_distributions()
            if distributions:
                units = point[position:position + len(distributions)]
                values[name] = spec.from_search([d.from_unit(float(u)) for d, u in zip(distributions, units)])
                position += len(distributions)
        return values

    def _validate_search(self):
        for name, spec in self.hyperparameters.items():
            if spec.search is None:
                continue
            if spec.structural:
                self._fail(f"{name!r} is structural (a constant of the compiled code): it cannot have a search space")
            if isinstance(spec, Reals):
                if not (isinstance(spec.search, tuple) and len(spec.search) == len(spec.names)
                        and any(entry is not None for entry in spec.search)):
                    self._fail(f"the search space of {name!r} must be a tuple of {len(spec.names)} distributions "
                               f"or None ({', '.join(spec.names)}), got {spec.search!r}")
            for distribution in spec.search_distributions():
                if not isinstance(distribution, _DISTRIBUTIONS):
                    self._fail(f"the search space of {name!r} must be LogUniform, Uniform or OneMinusLogUniform, got "
                               f"{distribution!r}")
                low, high = distribution.low, distribution.high
                if not (is_real(low) and is_real(high) and math.isfinite(low) and math.isfinite(high)
                        and low < high):
                    self._fail(f"the search space of {name!r} needs finite low < high, got {distribution!r}")
                if isinstance(distribution, LogUniform) and low <= 0:
                    self._fail(f"the search space of {name!r} is log-uniform: low must be > 0, got {distribution!r}")
                if isinstance(distribution, OneMinusLogUniform) and not (0 < low and high <= 1):
                    self._fail(f"the search space of {name!r} needs 0 < low < high <= 1, got {distribution!r}")
        # every point of the box lies between its two corners, and the declared ranges and checks are intervals
        for corner in (0.0, 1.0):
            values = {**self.defaults, **self.from_unit([corner] * self.search_dimensions)}
            try:
                checked = self.check(values)
            except (TypeError, ValueError) as error:
                self._fail(f"its search space reaches values it refuses: {error}")
            if self.variant(checked) != self.variant(self.check(self.defaults)):
                self._fail(f"its search space changes the rule's structure (flags {self.variant(checked)}); "
                           "tune structural choices as separate rules")

    # -- checks of values -------------------------------------------------------------------

    @property
    def defaults(self):
        return {name: spec.default for name, spec in self.hyperparameters.items()}

    def check(self, values):
        """Checked copy of a complete hyperparameter dict (torch's messages); raises TypeError or ValueError."""
        unknown = sorted(set(values) - set(self.hyperparameters))
        missing = sorted(set(self.hyperparameters) - set(values))
        if unknown or missing:
            raise ValueError(f"{self.class_name} takes the hyperparameters {sorted(self.hyperparameters)}, got "
                             f"{sorted(values)}")
        checked = {name: spec.check(name, values[name]) for name, spec in self.hyperparameters.items()}
        if self.cross_check is not None:
            self.cross_check(checked)
        return checked

    def initial_state(self, name, params, hyperparameters):
        """The initial value of slot ``name`` for ``params`` (host NumPy): a scalar or an array of params' shape."""
        initial = self.state[name].initial
        if isinstance(initial, str):
            return float(hyperparameters[initial])
        if callable(initial):
            try:
                value = initial(params, dict(hyperparameters))
            except Exception as error:
                raise RuleError(f"rule {self.name!r}: the initial value of state {name!r} raised "
                                f"{type(error).__name__}: {error}") from None
            if is_real(value):
                return float(value)
            value = np.asarray(value)
            if value.shape != params.shape:
                raise RuleError(f"rule {self.name!r}: the initial value of state {name!r} has shape {value.shape}, "
                                f"the parameters {params.shape}")
            return value
        return float(initial)

    # -- the declaration itself -------------------------------------------------------------

    def _fail(self, problem):
        raise RuleError(f"rule {self.name!r}: {problem}")

    def _validate(self):
        if not (isinstance(self.name, str) and self.name.isidentifier() and self.name == self.name.lower()
                and not keyword.iskeyword(self.name)):
            raise RuleError(f"a rule's name must be a lower-case Python identifier, got {self.name!r}")
        if len(self.name) > MAX_RULE_NAME_LENGTH:
            raise RuleError(f"a rule's name must have at most {MAX_RULE_NAME_LENGTH} characters, got "
                            f"{len(self.name)} ({self.name[:20]}...)")
        if self.name.startswith("_"):
            raise RuleError(f"a rule's name must not start with '_' (private and dunder names), got {self.name!r}")
        if self.name.endswith("_parallel"):
            raise RuleError(f"a rule's name must not end in '_parallel' (fastgd.rules.kernels.<rule>_parallel is each "
                            f"rule's prange kernel), got {self.name!r}")
        if not self.hyperparameters or next(iter(self.hyperparameters)) != "lr":
            self._fail("its first hyperparameter must be the learning rate 'lr' (schedules scale it)")
        for name, spec in self.hyperparameters.items():
            if not isinstance(spec, Hyperparameter):
                self._fail(f"hyperparameter {name!r} must be declared as Real, Betas, Flag, ... (fastgd.rules), "
                           f"got {spec!r}")
            if spec.default is _MISSING:
                self._fail(f"hyperparameter {name!r} has no default")
            try:
                spec.check(name, spec.default)
            except (TypeError, ValueError) as error:
                self._fail(f"the default of {name!r} is refused by its own check: {error}")
        if sum(isinstance(spec, WeightDecay) for spec in self.hyperparameters.values()) > 1:
            self._fail("at most one WeightDecay hyperparameter")
        if self.cross_check is not None:
            try:
                self.cross_check({name: spec.default for name, spec in self.hyperparameters.items()})
            except (TypeError, ValueError) as error:
                self._fail(f"its defaults fail its check: {error}")
        self._validate_search()

        flags = self.flag_names()
        for name, derived in self.derived.items():
            if not isinstance(derived, Derived):
                self._fail(f"derived flag {name!r} must be a fastgd.rules.Derived")
            source = self.hyperparameters.get(derived.source)
            if source is None or source.structural:
                self._fail(f"derived flag {name!r} must come from a numeric hyperparameter, got {derived.source!r}")
        for name, slot in self.state.items():
            if not isinstance(slot, State):
                self._fail(f"state {name!r} must be a fastgd.rules.State")
            if slot.when is not None and slot.when not in flags:
                self._fail(f"state {name!r} exists 'when' {slot.when!r}, which is not a flag of the rule ({flags})")
            if isinstance(slot.initial, str) and slot.initial not in self.hyperparameters:
                self._fail(f"state {name!r} starts at hyperparameter {slot.initial!r}, which the rule does not have")
            if not (isinstance(slot.initial, str) or callable(slot.initial) or is_real(slot.initial)):
                shape = getattr(slot.initial, "shape", None)
                given = f"an array of shape {tuple(shape)}" if shape is not None else repr(slot.initial)
                self._fail(f"state {name!r} must start at a number, a hyperparameter name or a function "
                           f"(params, hyperparameters) -> array, got {given}")
        for name, slot in self.scalar_state.items():
            if not isinstance(slot, ScalarState) or not is_real(slot.initial):
                self._fail(f"scalar state {name!r} must be a fastgd.rules.ScalarState with a number")

        scalars = self.scalar_names
        names = [*scalars, *flags, *self.state, *self.scalar_state]
        seen = set()
        for name in names:
            if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_") or name == "step":
                self._fail(f"{name!r} cannot be a name in compiled code (an identifier, not 'step' nor _private)")
            if name in GENERATED_NAMES:
                self._fail(f"{name!r} is a name the generated code uses: choose another name for the "
                           f"{self._kind_of(name)}")
            if name in seen:
                self._fail(f"the name {name!r} is used twice (hyperparameter scalars, flags and state share one "
                           "namespace)")
            seen.add(name)

        outputs = ()
        if self.per_step is not None:
            if not isinstance(self.per_step, PerStep):
                self._fail("per_step must be a fastgd.rules.PerStep(function, 'output', ...)")
            outputs = self.per_step.outputs
            accepted = {*STEP_NAMES, *scalars, *self.scalar_state, *flags}
            for parameter in _parameters(self.per_step.function, "per-step function", self.name):
                if parameter not in accepted:
                    self._fail(f"the per-step function's parameter {parameter!r} is not 'step', a hyperparameter "
                               f"scalar, a scalar state or a flag (it can take {sorted(accepted)})")
            for output in outputs:
                if not output.isidentifier() or output.startswith("_"):
                    self._fail(f"per-step output {output!r} is not an identifier")
                if output in GENERATED_NAMES:
                    self._fail(f"per-step output {output!r} is a name the generated code uses: choose another name")
                if output in seen and output not in self.scalar_state:
                    self._fail(f"per-step output {output!r} clashes with a hyperparameter, flag or state of the rule")
        outputs = (*outputs, *self._validate_reduction(scalars, flags, outputs, seen))
        for name in self.scalar_state:
            if name not in outputs:
                self._fail(f"scalar state {name!r} is not updated: the per-step function (or the reduction's "
                           "finish) must return it")

        taken = set(getattr(self, "_reduction_state", ()))  # a slot only the reduction reads (Prodigy's θ₀)
        if self.element is None and self.per_tensor is None:
            self._fail("it needs an element function, a PerTensor function, or both")
        if self.element is not None:
            taken |= self._check_function(self.element, "element function", {*self.state, *scalars, *flags,
                                                                               *outputs, "loss"})
        if self.per_tensor is not None:
            if not isinstance(self.per_tensor, PerTensor):
                self._fail("per_tensor must be a fastgd.rules.PerTensor(function, where=..., aux_size=...)")
            if self.per_tensor.where == "matrices" and self.element is None:
                self._fail("a PerTensor function for matrices only needs an element function for the vectors")
            taken |= self._check_function(self.per_tensor.function, "per-tensor function",
                                          {*self.state, *scalars, *flags, *outputs, *TENSOR_NAMES, "loss"})
            if self.per_tensor.aux_size is not None:
                if _parameters(self.per_tensor.aux_size, "aux_size function", self.name) != ["rows", "columns",
                                                                                             "ndim"]:
                    self._fail("its aux_size function must take (rows, columns, ndim)")
            decay = self.weight_decay
            if decay is not None and (decay[1].mode == "coupled" and decay[1].decoupled_when is None):
                self._fail("coupled weight decay changes the gradient element by element: a per-tensor rule takes "
                           "WeightDecay(..., 'decoupled') or handles the decay itself")
            if decay is not None and decay[1].mode == "proximal":
                self._fail("proximal weight decay follows the element: a per-tensor rule takes "
                           "WeightDecay(..., 'decoupled') or handles the decay itself")
        for slot in self.state:
            if slot not in taken:
                self._fail(f"the element does not take its state slot {slot!r}")
        if self.evaluation is not None:
            if not isinstance(self.evaluation, EvaluationPoint):
                self._fail("evaluation must be a fastgd.rules.EvaluationPoint(function, scalars=...)")
            extra = ()
            if self.evaluation.scalars is not None:
                for parameter in _parameters(self.evaluation.scalars.function, "evaluation scalars", self.name):
                    if parameter not in {*scalars, *flags}:
                        self._fail(f"the evaluation scalars' parameter {parameter!r} is not a hyperparameter scalar "
                                   "or a flag")
                extra = self.evaluation.scalars.outputs
                for output in extra:
                    if not output.isidentifier() or output.startswith("_") or output in GENERATED_NAMES:
                        self._fail(f"evaluation scalar {output!r} is not an identifier, or is a name the generated "
                                   "code uses: choose another name")
            self._check_function(self.evaluation.function, "evaluation function", {*self.state, *scalars, *flags,
                                                                                   *extra}, returns_state=False)
        for name, spec in self.hyperparameters.items():
            if isinstance(spec, WeightDecay) and spec.decoupled_when is not None and spec.decoupled_when not in flags:
                self._fail(f"{name} is decoupled when {spec.decoupled_when!r}, which is not a flag of the rule")
        self._validate_closure(scalars, flags)

    def _validate_closure(self, scalars, flags):
        """Check the closure: its reduction over ``(param, grad)``, its finish and its ascent function."""
        closure = self.closure
        if closure is None:
            return
        if not isinstance(closure, Closure):
            self._fail("closure must be a fastgd.rules.Closure(ascent, reduction=Reduction(...))")
        names = set()
        reduction = closure.reduction
        if reduction is not None:
            if not isinstance(reduction, Reduction):
                self._fail("the closure's reduction must be a fastgd.rules.Reduction(function, 'output', ...)")
            if reduction.when is not None:
                self._fail("the closure's reduction is always taken: it takes no 'when'")
            sums = reduction.outputs
            taken = {*scalars, *flags}
            for parameter in _parameters(reduction.function, "closure's reduction function", self.name)[2:]:
                if parameter not in taken:
                    self._fail(f"the closure's reduction function's parameter {parameter!r} is not a hyperparameter "
                               f"scalar or a flag (it can take {sorted(taken)})")
            outputs = list(sums)
            if reduction.finish is not None:
                if not isinstance(reduction.finish, PerStep):
                    self._fail("the closure's reduction's finish must be a fastgd.rules.PerStep(function, 'output')")
                accepted = {"step", *scalars, *flags, *sums}
                for parameter in _parameters(reduction.finish.function, "closure's finish function", self.name):
                    if parameter not in accepted:
                        self._fail(f"the closure's finish function's parameter {parameter!r} is not 'step', a "
                                   f"hyperparameter scalar, a flag or a sum (it can take {sorted(accepted)})")
                outputs += list(reduction.finish.outputs)
            for output in outputs:
                if not isinstance(output, str) or not output.isidentifier() or keyword.iskeyword(output) \
                        or output.startswith("_") or output in STEP_NAMES:
                    self._fail(f"the closure's output {output!r} is not an identifier (nor 'step' nor _private)")
                if output in GENERATED_NAMES or output in taken or output in names:
                    self._fail(f"the closure's output {output!r} clashes with a hyperparameter, a flag, another "
                               "output or a name the generated code uses")
                names.add(output)
        accepted = {*scalars, *flags, *names}
        parameters = _parameters(closure.ascent, "closure's ascent function", self.name)
        if len(parameters) < 2:
            self._fail("the closure's ascent function must take (param, grad, ...)")
        for parameter in parameters[2:]:
            if parameter not in accepted:
                self._fail(f"the closure's ascent function's parameter {parameter!r} is not a hyperparameter scalar, "
                           f"a flag or an output of the closure's reduction (it can take {sorted(accepted)})")

    def _validate_reduction(self, scalars, flags, step_outputs, seen):
        """Check the reduction and its finish; return the names they add for the element: sums, finish outputs."""
        reduction = self.reduction
        if reduction is None:
            return ()
        if not isinstance(reduction, Reduction):
            self._fail("reduction must be a fastgd.rules.Reduction(function, 'output', ..., finish=PerStep(...))")
        if reduction.when is not None and reduction.when not in flags:
            self._fail(f"the reduction is taken 'when' {reduction.when!r}, which is not a flag of the rule ({flags})")
        taken = set(step_outputs)
        for output in reduction.outputs:
            if not isinstance(output, str) or not output.isidentifier() or keyword.iskeyword(output) \
                    or output.startswith("_") or output == "step":
                self._fail(f"reduction output {output!r} is not an identifier (nor 'step' nor _private)")
            if output in GENERATED_NAMES or output in STEP_NAMES or output in TENSOR_NAMES:
                self._fail(f"reduction output {output!r} is a name the generated code uses: choose another name")
            if output in seen or output in taken:
                self._fail(f"reduction output {output!r} clashes with a hyperparameter, flag, state or per-step "
                           "output of the rule")
            taken.add(output)
        self._reduction_state = self._check_function(reduction.function, "reduction function",
                                                     {*self.state, *scalars, *flags, *step_outputs})
        self._check_reduction_returns(scalars, flags)
        finished = ()
        if reduction.finish is not None:
            if not isinstance(reduction.finish, PerStep):
                self._fail("the reduction's finish must be a fastgd.rules.PerStep(function, 'output', ...)")
            accepted = {*STEP_NAMES, *scalars, *self.scalar_state, *flags, *step_outputs, *reduction.outputs}
            for parameter in _parameters(reduction.finish.function, "reduction's finish function", self.name):
                if parameter not in accepted:
                    self._fail(f"the reduction's finish function's parameter {parameter!r} is not 'step', a "
                               "hyperparameter scalar, a scalar state, a flag, a per-step output or a sum of the "
                               f"reduction (it can take {sorted(accepted)})")
            finished = reduction.finish.outputs
            for output in finished:
                if not isinstance(output, str) or not output.isidentifier() or output.startswith("_"):
                    self._fail(f"the reduction's finish output {output!r} is not an identifier")
                if output in GENERATED_NAMES or output in TENSOR_NAMES:
                    self._fail(f"the reduction's finish output {output!r} is a name the generated code uses: "
                               "choose another name")
                if output in self.scalar_state:
                    continue
                if output in seen or output in taken:
                    self._fail(f"the reduction's finish output {output!r} clashes with a hyperparameter, flag, "
                               "state, per-step output or sum of the rule")
                taken.add(output)
        return (*reduction.outputs, *finished)

    def _check_reduction_returns(self, scalars, flags):
        """Call the reduction's Python function once on stand-in numbers: one number per declared output, or refuse.

        Stand-ins are 0.5 (True for flags); a function that raises on them is left to the compiler's check.
        """
        reduction = self.reduction
        python = getattr(reduction.function, "py_func", reduction.function)
        arguments = [True if name in flags else np.float64(0.5)
                     for name in _parameters(python, "reduction function", self.name)]
        try:
            with np.errstate(all="ignore"):
                returned = python(*arguments)
        except Exception:  # noqa: BLE001 - its own bug shows when it compiles
            return
        values = returned if isinstance(returned, tuple) else (returned,)
        declared = len(reduction.outputs)
        if len(values) != declared:
            self._fail(f"the reduction function returns {len(values)} value{'s' * (len(values) != 1)}, it declares "
                       f"{declared} output{'s' * (declared != 1)} ({', '.join(reduction.outputs)})")
        for output, value in zip(reduction.outputs, values):
            shape = np.shape(value)
            if shape != () or not (is_real(value) or isinstance(value, (bool, np.bool_))):
                self._fail(f"the reduction function's term for {output!r} must be one number per parameter, got "
                           f"{'shape ' + str(shape) if shape != () else type(value).__name__}")

    def _kind_of(self, name):
        if name in self.state or name in self.scalar_state:
            return "state slot"
        if name in self.scalar_names:
            return "hyperparameter"
        return "flag"

    def _check_function(self, function, what, accepted, returns_state=True):
        """Check a function that takes ``(param(s), ...)`` and then names of ``accepted``; returns the state it
        takes."""
        parameters = _parameters(function, what, self.name)
        first = 2 if returns_state else 1
        if len(parameters) < first:
            self._fail(f"the {what} must take ({'params, grad' if first == 2 else 'param'}, ...)")
        for parameter in parameters[first:]:
            if parameter not in accepted:
                self._fail(f"the {what}'s parameter {parameter!r} is not a state slot, a hyperparameter scalar, a "
                           f"per-step output or a flag (it can take {sorted(accepted)})")
        if len(set(parameters)) != len(parameters):
            self._fail(f"the {what} takes a name twice")
        return {name for name in parameters[first:] if name in self.state}

    @property
    def element_parameters(self):
        return [] if self.element is None else _parameters(self.element, "element function", self.name)

    @property
    def element_state_order(self):
        """The state slots in the order the element takes (and returns) them."""
        return [name for name in self.element_parameters[2:] if name in self.state]

    def tensor_parameters(self):
        return _parameters(self.per_tensor.function, "per-tensor function", self.name)

    # -- identity ---------------------------------------------------------------------------

    def _hash(self):
        """sha256 of everything that defines the rule's results: declarations, the source of its functions and
        every global they read (:func:`source_of`); a compiled function reading a global that has no stable
        description (a dict, an object) is refused, naming it."""
        def source(function, what, compiled=True):
            try:
                return source_of(function, strict=compiled)
            except UnhashableGlobal as problem:
                self._fail(f"its {what}: {problem}")

        per_tensor, evaluation = self.per_tensor, self.evaluation
        description = {
            "generator": GENERATOR_VERSION,
            "name": self.name,
            "hyperparameters": {name: spec.describe() for name, spec in self.hyperparameters.items()},
            "state": {name: [source(slot.initial, f"initial value of state {name!r}", False)
                             if callable(slot.initial) else slot.initial, slot.when]
                      for name, slot in self.state.items()},
            "scalar_state": {name: slot.initial for name, slot in self.scalar_state.items()},
            "per_step": None if self.per_step is None else [source(self.per_step.function, "per-step function"),
                                                            list(self.per_step.outputs)],
            "derived": {name: [d.source, source(d.function, f"derived flag {name!r}", False)]
                        for name, d in self.derived.items()},
            "check": None if self.cross_check is None else source(self.cross_check, "check function", False),
            "element": None if self.element is None else source(self.element, "element function"),
            "per_tensor": None if per_tensor is None else [
                source(per_tensor.function, "per-tensor function"), per_tensor.where,
                source(per_tensor.aux_size, "aux_size function"),  # "None" without one, as identities always were
                per_tensor.aux_is_state] + ([] if per_tensor.cuda else ["cpu only"]),
            "evaluation": None if evaluation is None else [
                source(evaluation.function, "evaluation function"),
                None if evaluation.scalars is None else [source(evaluation.scalars.function, "evaluation scalars"),
                                                         list(evaluation.scalars.outputs)]],
        }
        if self.reduction is not None:  # only where declared: the other rules' identities stay as they were
            reduction = self.reduction
            description["reduction"] = [
                source(reduction.function, "reduction function"), list(reduction.outputs), reduction.when,
                None if reduction.finish is None else [source(reduction.finish.function, "reduction's finish function"),
                                                       list(reduction.finish.outputs)]]
        if self.closure is not None:  # only where declared, as the reduction
            closure = self.closure
            reduction = closure.reduction
            description["closure"] = [source(closure.ascent, "closure's ascent function"), None if reduction is None
                                      else [source(reduction.function, "closure's reduction function"),
                                            list(reduction.outputs),
                                            None if reduction.finish is None else
                                            [source(reduction.finish.function, "closure's finish function"),
                                             list(reduction.finish.outputs)]]]
        canonical = json.dumps(description, sort_keys=True, default=repr)
        return hashlib.sha256(canonical.encode()).hexdigest()


_LIBRARY_MODULES = ("numpy", "numba", "math", "builtins", "cmath", "llvmlite")


class UnhashableGlobal(Exception):
    """A compiled function reads a global whose value cannot be part of a rule's identity (or calls itself)."""


class _Unhashable(Exception):
    """What kind of value could not be described (``a dict``): :func:`source_of` names the global."""


def _is_library(value):
    module = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
    return isinstance(module, str) and module.split(".")[0] in _LIBRARY_MODULES


def _described(value, strict, _seen, _stack, reader, hint=""):
    """:func:`_describe_constant` of what ``reader`` (the sentence's subject: who reads what) reads; a value that
    cannot be part of the identity raises :class:`UnhashableGlobal` naming both."""
    try:
        return _describe_constant(value, strict, _seen, _stack)
    except _Unhashable as kind:
        raise UnhashableGlobal(f"{reader}, {kind}, which cannot be part of the rule's identity{hint}") from None


def _describe_constant(value, strict, _seen, _stack):
    """A stable text for a global a rule's function reads; None for the libraries' own objects (numpy, math...).

    Arrays by dtype, shape and the sha256 of their bytes (their repr elides the middle of a long one);
    functions by their source (:func:`source_of`); anything else raises :class:`UnhashableGlobal` when
    ``strict`` (the function is compiled, and Numba freezes what it reads), else is named by its type.
    """
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            if strict:
                raise _Unhashable("an array of Python objects")
            return f"array of objects {value.shape}"
        data = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        return f"array {value.dtype.str} {value.shape} {data}"
    if isinstance(value, np.generic):
        return f"{value.dtype.str} {value!r}"
    if value is None or isinstance(value, (bool, numbers.Number, str, bytes)):
        return repr(value)
    if isinstance(value, tuple):
        if all(item is None or isinstance(item, (bool, numbers.Number, str, bytes)) for item in value):
            return repr(value)
        return "(" + ", ".join(_describe_constant(item, strict, _seen, _stack) or repr(item) for item in value) + ")"
    if callable(getattr(value, "py_func", None)) or isinstance(value, types.FunctionType):
        return source_of(value, _seen=_seen, strict=strict, _stack=_stack)
    if _is_library(value):
        return None
    if isinstance(value, types.ModuleType):
        return f"module {value.__name__}"
    if strict:
        raise _Unhashable(f"a {type(value).__name__}")
    return f"<{type(value).__qualname__}>"


def source_of(function, _seen=None, *, strict=False, _stack=()):
    """The source of ``function`` and of every global it reads, recursively: what its results depend on.

    A rule's hash covers this text, so editing a helper the element calls (a
    global, or an attribute of a module it imports: ``helpers.scale``) or a
    constant it reads (a number, a string, a tuple, a NumPy array, by its
    bytes) changes the rule's identity too. Functions without source (defined
    at a prompt) contribute their bytecode and constants. ``strict``: a
    global with no stable description (a dict, a list, an object) or a
    function that reaches itself (recursion, which inlined element code
    cannot do) raises :class:`UnhashableGlobal`, naming it.
    """
    _seen = set() if _seen is None else _seen
    python = getattr(function, "py_func", function)
    if not isinstance(python, types.FunctionType):
        return repr(function)
    if python in _stack:
        if strict:
            cycle = _stack[_stack.index(python):]
            through = f" (through {', '.join(f.__name__ for f in cycle[1:])})" if len(cycle) > 1 else ""
            raise UnhashableGlobal(f"{python.__name__} calls itself{through}: recursion cannot be compiled into a "
                                   "rule's loop")
        return ""
    if python in _seen:
        return ""
    _seen.add(python)
    _stack = (*_stack, python)
    strict = strict and not (python.__module__ or "").startswith("fastgd.")  # fastgd's own code is versioned
    try:
        text = inspect.getsource(python)
    except (OSError, TypeError):
        text = repr((python.__code__.co_code, python.__code__.co_consts))
    parts = [text]
    for name, attributes in sorted(_globals_read(python.__code__)):
        if name not in python.__globals__:
            continue  # a builtin (abs, range), or a name that fails when compiled
        value, path = python.__globals__[name], name
        for attribute in attributes:
            if not isinstance(value, types.ModuleType) or _is_library(value) or not hasattr(value, attribute):
                break
            value, path = getattr(value, attribute), f"{path}.{attribute}"
        if isinstance(value, types.ModuleType) and (_is_library(value) or attributes):
            continue
        described = _described(value, strict, _seen, _stack, f"{python.__name__} reads the global {path!r}",
                                " (use a number, a string, a tuple or a NumPy array)")
        if described is not None:
            # a function read by its own name is its source alone, as identities were taken before attributes were
            function = isinstance(value, types.FunctionType) or hasattr(value, "py_func")
            parts.append(described if function and path == name else f"{path} = {described}")
    for cell in python.__closure__ or ():
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        described = _described(contents, strict, _seen, _stack,
                               f"{python.__name__} reads a variable of its enclosing function")
        parts.append(repr(contents) if described is None else described)
    return "\n".join(parts)


_ATTRIBUTE_READS = ("LOAD_ATTR", "LOAD_METHOD")


def _globals_read(code):
    """(name, attributes) for each global ``code`` reads, with the attributes read off it: ``helpers.scale(x)``
    gives ("helpers", ("scale",)); functions defined inside are included."""
    reads = set()
    instructions = list(dis.get_instructions(code))
    for index, instruction in enumerate(instructions):
        if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            attributes = []
            for following in instructions[index + 1:]:
                if following.opname not in _ATTRIBUTE_READS:
                    break
                attributes.append(following.argval)
            reads.add((instruction.argval, tuple(attributes)))
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            reads |= _globals_read(constant)
    return reads
