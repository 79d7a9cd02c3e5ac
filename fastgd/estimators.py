"""scikit-learn estimators over fastgd's compiled training: MLPClassifier and MLPRegressor.

    >>> from sklearn.datasets import load_iris
    >>> from fastgd import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), optimizer="momentum", learning_rate_init=0.01,
    ...                     max_iter=300, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.95
    True

Every parameter of scikit-learn's MLPs is accepted, with its name, default and
meaning, so a scikit-learn user's code runs unchanged:

* ``solver="adam"`` is fastgd's ``adam`` rule with ``betas=(beta_1, beta_2)``
  and ``eps=epsilon``; ``solver="sgd"`` is ``nesterov`` (``nesterovs_momentum``),
  ``momentum``, or plain ``sgd`` when ``momentum=0``, with that ``momentum``.
  ``solver="lbfgs"`` is scikit-learn's L-BFGS: the full batch, 10 pairs of
  history, and SciPy's L-BFGS-B's stopping tests as scikit-learn calls it:
  ``max_iter`` iterations, more than ``max_fun`` loss evaluations, ``tol`` on
  the gradient's largest entry, the loss's relative decrease ≤ ``factr``·ε
  (2.2e-9), with L-BFGS-B's own line search (Moré-Thuente's,
  :mod:`fastgd.kernels.linesearch`), first step, test of a pair and restarts,
  compiled with the model's pass into one call
  (:func:`fastgd.training.fit_lbfgs`). As in scikit-learn
  it sets ``n_iter_`` and ``loss_`` (no ``loss_curve_``), has no
  ``partial_fit`` and warns as scikit-learn does when SciPy's would stop at
  a limit or abnormally.
* ``learning_rate`` applies, as in scikit-learn, to ``solver="sgd"`` only:
  ``"invscaling"`` sets the rate of each epoch to
  ``learning_rate_init / (t + 1) ** power_t`` (t: samples seen before it),
  ``"adaptive"`` divides it by 5 whenever ``n_iter_no_change`` epochs in a
  row fail to improve by ``tol``, and stops once it is at most 1e-6.
* ``fit(X, y, sample_weight=...)``: a weight counts as that many repetitions
  of the sample (scikit-learn's meaning: a weighted fit equals the fit of the
  repeated data). Weights must be whole multiples of one value (``w = c·k``,
  k integers, repeating rows up to 100 times the data set's size); the common
  factor c scales the L2 penalty as in scikit-learn. Other weights are refused.
* ``max_fun`` is for L-BFGS alone; ``MLPRegressor(loss=...)`` takes
  ``"squared_error"`` only.

fastgd adds ``optimizer`` (any rule of :data:`fastgd.optim.OPTIMIZERS`;
when given it decides the rule and ``solver`` must stay at its default, as
must the solver's own parameters, ``learning_rate`` and ``power_t``),
``optimizer_params`` (the rule's other hyperparameters; it may also set
``betas``, ``eps`` or ``momentum`` while the solver's parameters for them
stay at their defaults), ``schedule`` and
``schedule_params`` (:func:`fastgd.training.make_schedule`, for any rule),
``clip_norm`` (clip gradients by global norm), ``dtype`` (float32 or
float64; by default float32 input stays float32, anything else becomes
float64) and ``device``: ``"cpu"`` or ``"cuda"`` (an NVIDIA GPU, see
:mod:`fastgd.cuda`; the same batches and math, the data uploaded once per
fit). Without a usable GPU, ``device="cuda"`` raises
:class:`fastgd.cuda.CudaUnavailableError` saying why, before anything
changes. Predictions run on the CPU, from ``theta_``, which is copied back
from the device after every epoch.

The network and loss are scikit-learn's (weights initialised the same way for
the same ``random_state``; biases start at zero). An integer ``random_state``
also seeds the batch order, as ``fastgd train --seed`` and sweeps' seeds do:
the same data and settings give the same run, loss for loss. When training diverges (a
loss that is NaN, infinite or far above the first epoch's:
:func:`fastgd.training.is_divergent`), it stops, ``diverged_epoch_`` says
when, the parameters are those of the last epoch before, and a
``ConvergenceWarning`` is issued.
"""

import contextlib
import numbers
from numbers import Integral, Real
import threading
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, Options, StrOptions, validate_parameter_constraints
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from fastgd import cuda as fastgd_cuda
from fastgd import optim, threads
from fastgd import rules as rule_registry
from fastgd.kernels.mlp import ACTIVATIONS
from fastgd.models import MLP
from fastgd.training import SCHEDULES, Training, fit_lbfgs, make_schedule
from fastgd.validation import DenseInputOnly

__all__ = ["MLPClassifier", "MLPRegressor"]

_SEED_BOUND = np.iinfo(np.int32).max
_FLOATS = (np.float64, np.float32)  # the dtypes fit keeps; others are converted to float64
LEARNING_RATES = ("constant", "invscaling", "adaptive")
# scikit-learn's defaults of the parameters that configure its solvers; with optimizer= they must stay so
_SOLVER_DEFAULTS = dict(solver="adam", learning_rate="constant", power_t=0.5, momentum=0.9, nesterovs_momentum=True,
                        beta_1=0.9, beta_2=0.999, epsilon=1e-8)
# the rule's hyperparameter each of them sets
_SOLVER_SOURCES = {"betas": ("beta_1", "beta_2"), "eps": ("epsilon",), "momentum": ("momentum",)}
# sample_weight is applied by repeating rows: at most this many times the data set's rows
MAX_WEIGHT_REPETITION = 100
_RULE_KEY = "_fastgd_rule"  # in a pickle's state: (name, hash, Plugin or None) of a user's rule, see __getstate__
# scikit-learn's adaptive schedule stops once the learning rate is at most this
_ADAPTIVE_MIN_LEARNING_RATE = 1e-6


def _repetitions(sample_weight, n_samples):
    """(counts, scale) with sample_weight == scale * counts, counts non-negative integers; ValueError otherwise."""
    positive = sample_weight[sample_weight > 0]
    whole = np.all(sample_weight == np.round(sample_weight)) and positive.max() < 2 ** 53
    scale = float(np.gcd.reduce(positive.astype(np.int64))) if whole else float(positive.min())
    counts = sample_weight / scale
    rounded = np.round(counts)
    if not np.allclose(counts, rounded, rtol=1e-9, atol=0.0):
        raise ValueError("sample_weight: fastgd applies a weight as repetitions of its sample, so the weights must "
                         "be whole multiples of one value (w = c * k, k = 0, 1, 2, ...); these are not")
    if rounded.sum() > MAX_WEIGHT_REPETITION * n_samples:
        raise ValueError(f"sample_weight: fastgd applies a weight as repetitions of its sample; these weights repeat "
                         f"the {n_samples} samples {int(rounded.sum())} times in all, more than "
                         f"{MAX_WEIGHT_REPETITION} times the data set")
    return rounded.astype(np.int64), scale


_PER_THREAD = threading.local()
# per estimator class: its parameters' names, and the sets of parameter values that passed scikit-learn's check (at
# most _MAX_CHECKED_SETS, values of immutable types only). scikit-learn reads __init__'s signature at each get_params
# and builds every constraint anew at each check: together a fifth of a short L-BFGS fit (wine: 0.14 of 0.66 ms, Zen 4)
_PARAMETER_NAMES = {}
_CHECKED_PARAMETERS = {}
_MAX_CHECKED_SETS = 64
_IMMUTABLE = (type(None), bool, int, float, str, type, np.dtype, np.generic)
_NO_TARGETS = object()  # _validated's y when there are none (predict): None is a y fit must refuse


def _random_state(random_state):
    """``check_random_state(random_state)``, without its fixed cost for an integer seed.

    ``RandomState(seed)`` first seeds a new MT19937 from fresh entropy through a
    ``SeedSequence`` (a noticeable share of a short fit: reports/design_measurements.md), then
    overwrites that state with the legacy seeding. Each thread keeps one RandomState
    instead and seeds it again (``RandomState.seed``: the same state, far cheaper). A fit
    uses the generator while it runs and keeps no reference to it.
    """
    if isinstance(random_state, numbers.Integral):
        rng = getattr(_PER_THREAD, "random_state", None)
        if rng is None:
            rng = _PER_THREAD.random_state = np.random.RandomState()
        rng.seed(random_state)
        return rng
    return check_random_state(random_state)


def _parameters_key(params):
    """A hashable key of ``params`` that tells apart any two sets of values scikit-learn's check could tell apart
    (each value with its type: 1, 1.0 and True are three), or None where a value is not of an immutable type (a
    dict, a RandomState: it may change in place)."""
    items = []
    for name, value in params.items():
        if type(value) is tuple and all(isinstance(item, _IMMUTABLE) for item in value):
            value = tuple((type(item), item) for item in value)
        elif not isinstance(value, _IMMUTABLE):
            return None
        items.append((name, type(value), value))
    return tuple(items)


def _finite_sum(array):
    """Whether ``array``'s sum is finite: then every value is (a sum that overflows says no, and leaves the
    question to scikit-learn's own check)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(array.sum()))


def _plain_features(X):
    """X is a C-ordered float32 or float64 NumPy matrix with a row and a column, every value finite."""
    return (type(X) is np.ndarray and X.ndim == 2 and X.dtype in _FLOATS and X.flags.c_contiguous
            and X.shape[0] >= 1 and X.shape[1] >= 1 and _finite_sum(X))


def _plain_targets(y, n_samples):
    """y is a NumPy vector or matrix of integers, booleans or finite floats, one row per sample."""
    return (type(y) is np.ndarray and 1 <= y.ndim <= 2 and y.shape[0] == n_samples
            and (y.ndim == 1 or y.shape[1] >= 1)
            and (y.dtype.kind in "iub" or (y.dtype.kind == "f" and _finite_sum(y))))


def _validated(estimator, X, y=_NO_TARGETS, *, reset):
    """``validate_data(estimator, X[, y], multi_output=True, dtype=(float64, float32), reset=reset)``, faster
    for plain NumPy input.

    Arrays that scikit-learn would pass through unchanged (:func:`_plain_features`,
    :func:`_plain_targets`) are checked here in two sums, and scikit-learn only records
    ``n_features_in_`` and the feature names (``skip_check_array``): its full check is a
    noticeable share of a short fit. Anything else, an array with a NaN
    or a ``y`` of None included, takes scikit-learn's own path, its conversions and its messages.
    """
    targets = y is not _NO_TARGETS
    if _plain_features(X) and (not targets or _plain_targets(y, X.shape[0])):
        _record_plain_features(estimator, X, reset)
        return (X, y) if targets else X
    if targets:
        return validate_data(estimator, X, y, multi_output=True, y_numeric=isinstance(estimator, RegressorMixin),
                             dtype=_FLOATS, reset=reset)
    return validate_data(estimator, X, dtype=_FLOATS, reset=reset)


def _record_plain_features(estimator, X, reset):
    """What ``validate_data(estimator, X, skip_check_array=True, reset=reset)`` records and checks, for a NumPy
    matrix, which has no feature names: ``n_features_in_``, and no ``feature_names_in_`` left from a data frame.

    scikit-learn's own call spends most of its time asking narwhals whether X is a data frame.
    Whatever it would warn about or refuse (fewer or more features than fitted, a fit on named
    features) still goes to it, for its messages.
    """
    if reset:
        estimator.n_features_in_ = X.shape[1]
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif hasattr(estimator, "feature_names_in_") or getattr(estimator, "n_features_in_", None) != X.shape[1]:
        validate_data(estimator, X, skip_check_array=True, reset=False)


# a regression target above this (about 6.7e153) overflows float64 when squared: the loss would be infinite from the
# first step whatever the learning rate
_LARGEST_TARGET = float(np.sqrt(np.finfo(np.float64).max)) / 2

# Integer labels spanning at most this many values above the length of y are counted, not sorted
_COUNTED_LABEL_SPAN = 1 << 16
_LARGEST_INDEX = np.iinfo(np.intp).max  # uint64 labels above it would wrap round when counted


def _integer_classes(y):
    """(classes, index of each label in them): ``np.unique(y, return_inverse=True)`` for integer labels.

    Labels within a short span are counted (``np.bincount``, one pass) rather than sorted, which
    costs several times less (reports/design_measurements.md).
    """
    low, high = int(y.min()), int(y.max())
    if high - low > y.size + _COUNTED_LABEL_SPAN or high > _LARGEST_INDEX:
        return np.unique(y, return_inverse=True)
    shifted = y.astype(np.intp) - low if low else y.astype(np.intp, copy=False)
    present = np.bincount(shifted, minlength=high - low + 1) > 0
    classes = (np.flatnonzero(present) + low).astype(y.dtype)
    index = np.cumsum(present) - 1
    return classes, index[shifted]


def _read_labels(y):
    """(``LabelBinarizer().fit(y)``, the index of each label in its ``classes_``, or None where not taken here),
    for classification targets; ValueError for others, as scikit-learn says it.

    Integer labels in a 1-D array, the common case, are read in one pass (:func:`_integer_classes`):
    scikit-learn's own path (``check_classification_targets``, then ``fit``) finds their type three
    times over, which cost more than half of a one-epoch fit on digits. The fitted state is what
    ``fit`` sets (classes sorted, in y's dtype); a test compares the two. Other targets take
    scikit-learn's path, with its messages for what is not a classification target.
    """
    if isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype.kind in "iu" and y.size:
        binarizer = LabelBinarizer()
        binarizer.classes_, positions = _integer_classes(y)
        binarizer.y_type_ = "multiclass" if len(binarizer.classes_) > 2 else "binary"
        binarizer.sparse_input_ = False
        return binarizer, positions
    check_classification_targets(y)
    return LabelBinarizer().fit(y), None


def _evaluates_elsewhere(rule):
    """Whether ``rule`` trains at one point and evaluates at another (Schedule-Free AdamW, ASGD)."""
    return rule.evaluation is not None


def _on_host(array):
    return array if isinstance(array, np.ndarray) else array.copy_to_host()


class _BaseMLP(DenseInputOnly, BaseEstimator):
    """What the classifier and the regressor share: parameters, fit loop, predictions."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=1e-4,
                 batch_size="auto", learning_rate="constant", learning_rate_init=1e-3, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, optimizer=None, optimizer_params=None,
                 schedule="constant", schedule_params=None, clip_norm=None, dtype=None, device="cpu"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.optimizer = optimizer
        self.optimizer_params = optimizer_params
        self.schedule = schedule
        self.schedule_params = schedule_params
        self.clip_norm = clip_norm
        self.dtype = dtype
        self.device = device

    # -- checks -------------------------------------------------------------------------------

    @classmethod
    def _get_param_names(cls):
        """scikit-learn's, read from ``__init__``'s signature once per class."""
        names = _PARAMETER_NAMES.get(cls)
        if names is None:
            names = _PARAMETER_NAMES[cls] = tuple(super()._get_param_names())
        return list(names)

    def _validate_params(self):
        """scikit-learn's check of every parameter against ``_parameter_constraints``, skipped for a set of values
        (:func:`_parameters_key`) that this class has already seen pass."""
        params = self.get_params(deep=False)
        key = _parameters_key(params)
        checked = _CHECKED_PARAMETERS.setdefault(type(self), set())
        if key is not None and key in checked:
            return
        validate_parameter_constraints(self._parameter_constraints, params, caller_name=type(self).__name__)
        if key is not None:
            if len(checked) >= _MAX_CHECKED_SETS:
                checked.clear()
            checked.add(key)

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
        if any(isinstance(n, bool) or not isinstance(n, numbers.Integral) for n in sizes):
            raise ValueError(f"hidden_layer_sizes must be integers (units per layer), got {self.hidden_layer_sizes!r}.")
        if any(n <= 0 for n in sizes):  # scikit-learn's message
            raise ValueError(f"hidden_layer_sizes must be > 0, got {self.hidden_layer_sizes!r}.")
        return [int(n) for n in sizes]

    # scikit-learn's own vocabulary (sklearn.utils._param_validation): its MLPs' constraints, each parameter's as
    # scikit-learn states it (a test compares), and fastgd's own parameters beside them. A new parameter is one
    # entry here, one keyword of __init__, and what it does.
    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions(set(LEARNING_RATES))],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        # fastgd's own: a rule's name is checked against the registry at fit (a plugin may register it later)
        "optimizer": [None, str],
        "optimizer_params": [None, dict],
        "schedule": [StrOptions(set(SCHEDULES))],
        "schedule_params": [None, dict],
        "clip_norm": [None, Interval(Real, 0, None, closed="neither")],
        "dtype": [None, str, type, np.dtype],
        "device": [StrOptions({"cpu", "cuda"})],
    }

    def _check_parameters(self, incremental=False):
        """Every parameter checked before anything is changed: scikit-learn's InvalidParameterError (a ValueError)
        for one outside its constraint, a ValueError naming the conflict otherwise."""
        self._validate_params()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        self._hidden_sizes()
        if self.optimizer is not None and self.optimizer not in optim.OPTIMIZERS:
            hint = (" (a rule of your own must be registered in this process: load its plugin with "
                    "fastgd.rules.load_plugin, or name it in FASTGD_PLUGINS for worker processes)")
            raise ValueError(f"optimizer must be None or one of {sorted(optim.OPTIMIZERS)}, got "
                             f"{self.optimizer!r}{hint}")
        if self.optimizer_params and "lr" in self.optimizer_params:
            raise ValueError("optimizer_params must not contain 'lr': set learning_rate_init")
        if self.dtype is not None:
            try:
                dtype = np.dtype(self.dtype)
            except TypeError:
                dtype = None
            if dtype not in (np.float32, np.float64):
                raise ValueError(f"dtype must be None, float32 or float64, got {self.dtype!r}")
        name, params, _ = self._rule()  # conflicts between solver, optimizer and schedule
        if self._lbfgs():
            unused = [name for name, value in (("optimizer_params", self.optimizer_params or None),
                                               ("schedule", None if self.schedule == "constant" else self.schedule),
                                               ("clip_norm", self.clip_norm)) if value is not None]
            if unused:
                raise ValueError(f"solver='lbfgs' takes no {unused[0]} (it is for the first-order rules): leave it "
                                 "at its default")
            if self.device == "cuda":
                raise ValueError("solver='lbfgs' runs on the CPU only: device='cuda' has no L-BFGS yet")
        else:
            self._checked_rule_class(name, params)  # before fit makes a network: a refused fit leaves none behind
        if self.device == "cuda":
            fastgd_cuda.require('device="cuda"')

    def _rule(self):
        """(rule name, its hyperparameters besides lr, scikit-learn's per-epoch learning-rate schedule or None)."""
        params = dict(self.optimizer_params or {})
        if self.optimizer is not None:
            changed = [name for name, default in _SOLVER_DEFAULTS.items() if getattr(self, name) != default]
            if changed:
                raise ValueError(f"optimizer={self.optimizer!r} names the update rule, so {changed[0]}="
                                 f"{getattr(self, changed[0])!r} (a scikit-learn solver setting) has no meaning: leave "
                                 "it at its default and give the rule's hyperparameters in optimizer_params and its "
                                 "schedule in schedule, or set optimizer=None")
            return self.optimizer, params, None
        if self.solver == "lbfgs":
            return "lbfgs", params, None
        if self.solver == "adam":
            rule, mapped, per_epoch = "adam", dict(betas=(self.beta_1, self.beta_2), eps=self.epsilon), None
        else:
            rule = ("nesterov" if self.nesterovs_momentum else "momentum") if self.momentum > 0 else "sgd"
            mapped = dict(momentum=self.momentum) if self.momentum > 0 else {}
            per_epoch = None if self.learning_rate == "constant" else self.learning_rate
            if per_epoch and self.schedule != "constant":
                raise ValueError(f"learning_rate={self.learning_rate!r} and schedule={self.schedule!r} both set the "
                                 "learning-rate schedule: give one")
        # optimizer_params may set what the solver's parameters also set, while those stay at their defaults
        for key in sorted(set(params) & set(mapped)):
            sources = _SOLVER_SOURCES[key]
            changed = [name for name in sources if getattr(self, name) != _SOLVER_DEFAULTS[name]]
            if changed:
                raise ValueError(f"optimizer_params sets {key!r} and so does {changed[0]}={getattr(self, changed[0])!r}"
                                 f" (solver={self.solver!r}): give one")
        return rule, dict(mapped, **params), per_epoch

    def _check_solver(self):
        """scikit-learn's: partial_fit exists for the stochastic solvers (and any optimizer= rule), not for lbfgs."""
        if self._lbfgs():
            raise AttributeError("partial_fit is only available for stochastic optimizers. lbfgs is not stochastic.")
        return True

    def _lbfgs(self):
        """Whether this fit is scikit-learn's L-BFGS (``solver="lbfgs"`` with no ``optimizer``)."""
        return self.optimizer is None and self.solver == "lbfgs"

    def _checked_rule_class(self, name, params):
        """The optimizer class of rule ``name``, ``params`` (its hyperparameters besides lr) checked by the rule."""
        cls = optim.OPTIMIZERS[name]
        accepted = cls.default_hyperparameters()
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ValueError(f"optimizer_params has unknown keys for {name}: {unknown}; it takes "
                             f"{sorted(set(accepted) - {'lr'})}")
        cls.rule.check(dict(accepted, lr=self.learning_rate_init, **params))
        return cls

    def _make_optimizer(self, theta):
        name, params, _ = self._rule()
        cls = self._checked_rule_class(name, params)
        return cls(theta, lr=self.learning_rate_init, layout=self._net.layout, **params)

    def _make_schedule(self):
        params = dict(self.schedule_params or {})
        try:
            return make_schedule(self.schedule, n_epochs=self.max_iter, **params)
        except TypeError as error:
            raise ValueError(f"schedule_params: {error}") from None

    def _working_dtype(self, X):
        if self.dtype is not None:
            return np.dtype(self.dtype)
        return X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)

    # -- fitting ------------------------------------------------------------------------------

    def _fit(self, X, y, incremental, sample_weight=None):
        self._check_parameters(incremental)
        hidden = self._hidden_sizes()
        _, _, per_epoch_schedule = self._rule()
        first_pass = not hasattr(self, "theta_") or (not self.warm_start and not incremental)
        X, Y = self._validate_input(X, y, incremental, reset=first_pass)
        repeats, weight_scale = None, 1.0
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
            repeats, weight_scale = _repetitions(sample_weight, X.shape[0])
        rng = _random_state(self.random_state)
        if first_pass:
            dtype = self._working_dtype(X)
            self.n_outputs_ = Y.shape[1]
            self.out_activation_ = self._output_activation()
            self._net = MLP([X.shape[1], *hidden, self.n_outputs_], self.activation, self.out_activation_,
                            self.alpha, dtype)
            self.theta_ = self._net.init(rng)
            self._expose_layers()
            self.n_layers_ = len(hidden) + 2
            self.n_iter_ = 0
            self.t_ = 0
            self.loss_curve_ = []
            self._no_improvement_count = 0
            self.best_loss_ = np.inf
            self.diverged_epoch_ = None
            self._epochs_done = 0
        layer_sizes = [X.shape[1], *hidden, self.n_outputs_]
        if layer_sizes != self._net.layer_sizes.tolist():
            raise ValueError(f"the fitted network has layer sizes {self._net.layer_sizes.tolist()}, this fit needs "
                             f"{layer_sizes}: refit without warm_start")
        if not first_pass or weight_scale != 1.0:
            # alpha or activation may have changed since the first pass (warm_start); a common
            # factor c of the sample weights divides the penalty, as scikit-learn's sum of weights does
            self._net = MLP(layer_sizes, self.activation, self.out_activation_, self.alpha / weight_scale,
                            self._net.dtype)
        net = self._net
        X = X.astype(net.dtype, copy=False)
        if self._lbfgs():
            # scikit-learn's L-BFGS takes the whole training set: no validation split (early_stopping is ignored)
            if repeats is not None:
                X, Y = np.repeat(X, repeats, axis=0), np.repeat(Y, repeats, axis=0)
            return self._fit_lbfgs(X, Y, first_pass)

        early_stopping = self.early_stopping
        X_val = Y_val = repeats_val = None
        if early_stopping:
            stratify = Y if self._stratify() else None
            if repeats is None:
                X, X_val, Y, Y_val = train_test_split(X, Y, random_state=rng, test_size=self.validation_fraction,
                                                      stratify=stratify)
            else:
                X, X_val, Y, Y_val, repeats, repeats_val = train_test_split(
                    X, Y, repeats, random_state=rng, test_size=self.validation_fraction, stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError(f"The validation set is too small (n_samples={X_val.shape[0]}); increase "
                                 "validation_fraction or turn early_stopping off")
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
            best_theta = self.theta_.copy()
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            if self.best_loss_ is None:
                self.best_loss_ = np.inf
        if repeats is not None:
            # a weight of k is k repetitions of the sample: the fit of the repeated data
            X, Y = np.repeat(X, repeats, axis=0), np.repeat(Y, repeats, axis=0)
            if X.shape[0] == 0:
                raise ValueError("sample_weight: every training sample has weight zero")
        n_samples = X.shape[0]

        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be "
                              "clipped", stacklevel=3)
            batch_size = int(min(self.batch_size, n_samples))

        if not incremental or not hasattr(self, "optimizer_"):
            self.optimizer_ = self._make_optimizer(self._params_on_device())
            self._epoch_learning_rate = float(self.learning_rate_init)
        elif self.optimizer_.device != self.device:
            # its state and its training point move along
            self.optimizer_ = self.optimizer_.with_params(self._params_on_device(self.optimizer_))
        elif self.device == "cuda" and not _evaluates_elsewhere(self.optimizer_.rule):
            self.optimizer_.params.copy_to_device(self.theta_)  # theta_ may have changed since (coefs_ are views)
        # the rule that trains: the fitted optimizer's (partial_fit keeps it whatever `optimizer` says since)
        refresh_theta = self._theta_refresh(_evaluates_elsewhere(self.optimizer_.rule))
        # an integer random_state is the batch order's seed itself, as `fastgd train --seed` and sweeps use it: the
        # same settings give the same run (a seed drawn from rng after the weights gave another batch order)
        integer_seed = isinstance(self.random_state, numbers.Integral) and not isinstance(self.random_state, bool)
        training = Training(net, self.optimizer_, X, Y, batch_size, shuffle=self.shuffle,
                            seed=int(self.random_state) if integer_seed else rng.randint(_SEED_BOUND),
                            schedule=self._make_schedule(),
                            clip_norm=self.clip_norm)
        training.epochs_done = self._epochs_done
        # divergence is judged against the loss the first fit started from
        previous = None if first_pass else getattr(self, "history_", None)  # none if the first fit failed early
        training.history.first_loss = None if previous is None else previous.first_loss
        self.history_ = training.history

        # A fit that takes the threaded pass keeps the BLAS to one thread: OpenBLAS's workers spin on a core for
        # a while after each product (validation scores here), and each parallel region of the next epoch then
        # waits for a thread with no core (100-256-256-10, batch 64, early stopping: 162 ms an epoch, 78 without)
        with threads.blas_limit(1) if training.threaded else contextlib.nullcontext():
            for _ in range(1 if incremental else self.max_iter):
                if per_epoch_schedule is not None:
                    self.optimizer_.param_groups[0]["lr"] = self._epoch_learning_rate
                loss = training.epoch()
                refresh_theta(training)
                self._epochs_done = training.epochs_done
                if training.history.diverged:
                    self.diverged_epoch_ = self.n_iter_ + 1
                    warnings.warn(f"Training diverged at epoch {self.diverged_epoch_}: "
                                  f"{training.history.divergence_reason()}. The parameters are those of the epoch "
                                  "before; lower learning_rate_init or clip gradients (clip_norm).", ConvergenceWarning,
                                  stacklevel=3)
                    break
                self.n_iter_ += 1
                self.t_ += n_samples
                self.loss_curve_.append(loss)
                self.loss_ = loss
                if self.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
                if early_stopping:
                    score = self._score_validation(X_val, Y_val, repeats_val)
                    self.validation_scores_.append(score)
                    self._no_improvement_count = (self._no_improvement_count + 1
                                                  if score < self.best_validation_score_ + self.tol else 0)
                    if score > self.best_validation_score_:
                        self.best_validation_score_ = score
                        best_theta[...] = self.theta_
                else:
                    self._no_improvement_count = (self._no_improvement_count + 1
                                                  if loss > self.best_loss_ - self.tol else 0)
                    self.best_loss_ = min(self.best_loss_, loss)
                if per_epoch_schedule == "invscaling":
                    self._epoch_learning_rate = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if early_stopping else "Training loss"
                    message = (f"{what} did not improve more than tol={self.tol} for {self.n_iter_no_change} "
                               "consecutive epochs.")
                    if per_epoch_schedule == "adaptive" and self._epoch_learning_rate > _ADAPTIVE_MIN_LEARNING_RATE:
                        self._epoch_learning_rate /= 5.0
                        self._no_improvement_count = 0
                        if self.verbose:
                            print(f"{message} Setting learning rate to {self._epoch_learning_rate:f}")
                    else:
                        if self.verbose:
                            too_small = " Learning rate too small." if per_epoch_schedule == "adaptive" else ""
                            print(f"{message}{too_small} Stopping.")
                        break
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                                  "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)
        if early_stopping:
            self.theta_[...] = best_theta
        return self

    def _theta_refresh(self, evaluates_elsewhere):
        """What brings ``theta_`` up to date after each epoch, chosen once per fit (device and rule are fixed)."""
        if evaluates_elsewhere:
            def refresh(training):
                # predictions use the rule's evaluation point (the epoch computed it for its loss; after a diverged
                # epoch theta_ keeps the last good one); the optimizer keeps its training point
                if not training.history.diverged:
                    self.theta_[...] = training.evaluation
        elif self.device == "cuda":
            def refresh(training):
                self.optimizer_.params.copy_to_host(self.theta_)
        else:
            def refresh(training):
                pass  # theta_ is the optimizer's own parameters
        return refresh

    def _fit_lbfgs(self, X, Y, first_pass):
        """scikit-learn's ``_fit_lbfgs``: the full batch, ``max_iter`` iterations, ``max_fun`` evaluations, ``tol``
        on the gradient's largest entry, from ``theta_`` (:func:`fastgd.training.fit_lbfgs`). As in scikit-learn,
        it sets ``n_iter_`` and ``loss_`` and no ``loss_curve_`` nor ``best_loss_``, and warns when a limit
        stopped it; fastgd adds ``lbfgs_result_`` (:class:`fastgd.training.LBFGSResult`: the evaluations too)."""
        if first_pass:
            for name in ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_"):
                self.__dict__.pop(name, None)
        result = self.lbfgs_result_ = fit_lbfgs(self._net, self.theta_, X, Y, self.max_iter, self.max_fun, self.tol)
        self.n_iter_ = min(result.n_iter, self.max_iter)
        self.t_ = X.shape[0] * self.n_iter_
        self.loss_ = result.loss
        if self.verbose:
            print(f"L-BFGS: {self.n_iter_} iterations, {result.n_evals} evaluations, loss = {self.loss_:.8f}")
        if result.status != 0:
            # scikit-learn's _check_optimize_result, word for word
            message = (f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status={result.status}):\n"
                       f"{result.message}\n")
            if self.n_iter_ == self.max_iter:
                message += f"\nIncrease the number of iterations to improve the convergence (max_iter={self.max_iter})."
            message += ("\nYou might also want to scale the data as shown in:\n"
                        "    https://scikit-learn.org/stable/modules/preprocessing.html")
            warnings.warn(message, ConvergenceWarning, stacklevel=3)
        if not np.all(np.isfinite(self.theta_)):
            raise ValueError("Solver produced non-finite parameter weights. The input data may contain large values "
                             "and need to be preprocessed.")
        return self

    def _params_on_device(self, optimizer=None):
        """θ as the optimizer of this fit takes it: ``theta_`` itself, or a copy (on the GPU, or of the training point).

        A rule with an evaluation point trains its own copy: ``theta_`` is then
        that evaluation point, refreshed after every epoch. ``optimizer``: the
        fitted optimizer moving to this device, whose training point moves
        with it; by default the optimizer about to be made from ``theta_``.
        """
        rule = optim.OPTIMIZERS[self._rule()[0]].rule if optimizer is None else optimizer.rule
        evaluates_elsewhere = _evaluates_elsewhere(rule)
        source = self.theta_ if optimizer is None or not evaluates_elsewhere else _on_host(optimizer.params)
        if self.device == "cuda":
            from numba import cuda

            return cuda.to_device(source)
        return source.copy() if evaluates_elsewhere else source

    def _expose_layers(self):
        # views into θ: edits to coefs_ change the model, as in scikit-learn
        self.coefs_, self.intercepts_ = self._net.unpack(self.theta_)

    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ returns __dict__ itself, not a copy
        name = state.get("optimizer")
        if isinstance(name, str) and name in rule_registry.RULES and not rule_registry.is_builtin(name):
            # a user's rule travels with the estimator, fitted or not (GridSearchCV's workers unpickle clones):
            # its identity, and the plugin that registered it, loaded where the estimator is unpickled
            state[_RULE_KEY] = (name, rule_registry.get(name).hash, rule_registry.plugin_of(name))
        optimizer = state.get("optimizer_")
        if optimizer is not None and optimizer.device != "cpu":
            # device memory does not pickle: keep the optimizer, state and all, on the CPU, over theta_ (or its own
            # training point, for a rule that evaluates elsewhere)
            state["optimizer_"] = optimizer.with_params(optimizer.params.copy_to_host()
                                                        if _evaluates_elsewhere(optimizer.rule) else state["theta_"])
        return state

    def __setstate__(self, state):
        state = dict(state)
        carried = state.pop(_RULE_KEY, None)
        if carried is not None:
            rule_registry.rebuild(*carried)
        super().__setstate__(state)
        if "theta_" in state:
            self._expose_layers()

    def _forward(self, X):
        check_is_fitted(self, "theta_")
        X = _validated(self, X, reset=False)
        return self._net.predict(self.theta_, X.astype(self._net.dtype, copy=False))


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained by fastgd's compiled loop.

    Softmax output and cross-entropy for several classes, one logistic output
    for two, one logistic output per label for multilabel targets.
    See the module docstring for the parameters.
    """

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _stratify(self):
        return self._label_binarizer.y_type_ != "multilabel-indicator"

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validated(self, X, y, reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if incremental and hasattr(self, "_label_binarizer"):
            classes = unique_labels(y)
            if len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        elif not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer, positions = _read_labels(y)
            self.classes_ = self._label_binarizer.classes_
            if positions is not None:
                return X, self._one_hot(y, positions)
        elif self.warm_start:
            # integer labels read in one pass, as a first fit reads them (unique_labels finds their type anew: a
            # tenth of a warm-started L-BFGS fit on breast_cancer)
            integer = isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype.kind in "iu" and y.size
            classes, positions = _integer_classes(y) if integer else (unique_labels(y), None)
            if set(classes) != set(self.classes_):
                raise ValueError(f"warm_start can only be used where `y` has the same classes as in the previous "
                                 f"call to fit. Previously got {self.classes_}, `y` has {classes}")
            return X, self._one_hot(y, positions)
        return X, self._one_hot(y)

    def _one_hot(self, y, positions=None):
        """The targets as the fitted LabelBinarizer encodes them, in float64.

        For one label per sample (two classes or more), computed here: ``transform`` would check
        the targets' type once more, which costs more than a short fit's epochs on digits.
        ``positions``: each label's index in ``classes_``, where the caller has it.
        """
        binarizer = self._label_binarizer
        classes = binarizer.classes_
        if binarizer.y_type_ in ("binary", "multiclass") and len(classes) >= 2 and y.ndim == 1:
            if positions is None:
                positions = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
                if not np.array_equal(classes[positions], y):
                    positions = None  # a label not in classes_: transform's encoding of it
            if positions is not None:
                if binarizer.y_type_ == "binary":
                    return (positions == 1).astype(np.float64)[:, np.newaxis]
                one_hot = np.zeros((y.shape[0], len(classes)))
                one_hot[np.arange(y.shape[0]), positions] = 1.0
                return one_hot
        return binarizer.transform(y).astype(np.float64)

    def fit(self, X, y, sample_weight=None):
        """Fit the network to data X and labels y (each sample repeated as its weight says); returns self."""
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @available_if(lambda estimator: estimator._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), keeping the optimizer's state; ``classes`` is required on the first call."""
        self._check_parameters(incremental=True)  # before classes_ is set: a refused call changes nothing
        if hasattr(self, "classes_") and classes is not None and not np.array_equal(
                np.unique(np.asarray(classes)), self.classes_):
            # scikit-learn's check (sklearn.utils.multiclass._check_partial_fit_first_call), and its message
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, was: "
                             f"{self.classes_!r}")
        if not hasattr(self, "classes_"):
            if classes is None and not type_of_target(y).startswith("multilabel"):
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y if classes is None else classes)
            self.classes_ = self._label_binarizer.classes_
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def _score_validation(self, X, Y, sample_weight=None):
        from sklearn.metrics import accuracy_score

        probabilities = self._net.predict(self.theta_, X)
        if self.n_outputs_ == 1:
            probabilities, Y = probabilities.ravel(), Y.ravel()
        binarizer = self._label_binarizer
        return float(accuracy_score(binarizer.inverse_transform(Y), binarizer.inverse_transform(probabilities),
                                    sample_weight=sample_weight))

    def predict(self, X):
        """Predicted class labels."""
        probabilities = self._forward(X)
        if self.n_outputs_ == 1:
            probabilities = probabilities.ravel()
        return self._label_binarizer.inverse_transform(probabilities)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes)."""
        probabilities = self._forward(X)
        if self.n_outputs_ == 1:
            probabilities = probabilities.ravel()
            return np.vstack([1 - probabilities, probabilities]).T
        return probabilities

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor trained by fastgd's compiled loop.

    Identity output and squared error (halved, averaged over all entries).
    See the module docstring for the parameters.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, loss="squared_error", solver="adam",
                 alpha=1e-4, batch_size="auto", learning_rate="constant", learning_rate_init=1e-3, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, optimizer=None,
                 optimizer_params=None, schedule="constant", schedule_params=None, clip_norm=None, dtype=None,
                 device="cpu"):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver, alpha=alpha,
            batch_size=batch_size, learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun, optimizer=optimizer,
            optimizer_params=optimizer_params, schedule=schedule, schedule_params=schedule_params,
            clip_norm=clip_norm, dtype=dtype, device=device)
        self.loss = loss

    _parameter_constraints = {**_BaseMLP._parameter_constraints, "loss": [StrOptions({"squared_error"})]}

    def _output_activation(self):
        return "identity"

    def _stratify(self):
        return False

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validated(self, X, y, reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.dtype.kind not in "biuf":
            try:
                y = y.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"y must hold numbers for a regressor, got {y.dtype} values such as "
                                 f"{y.flat[0].item() if isinstance(y.flat[0], np.generic) else y.flat[0]!r}; "
                                 "for classes use MLPClassifier") from None
        if y.size and float(np.max(np.abs(y))) > _LARGEST_TARGET:
            raise ValueError(f"y holds values up to {float(np.max(np.abs(y))):.3g}: their squared error overflows "
                             f"(above {_LARGEST_TARGET:.3g}); scale y first (e.g. sklearn.preprocessing.StandardScaler "
                             "in a TransformedTargetRegressor)")
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        return X, Y

    def fit(self, X, y, sample_weight=None):
        """Fit the network to data X and targets y (each sample repeated as its weight says); returns self."""
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @available_if(lambda estimator: estimator._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), keeping the optimizer's state."""
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def _score_validation(self, X, Y, sample_weight=None):
        from sklearn.metrics import r2_score

        return float(r2_score(Y, self._net.predict(self.theta_, X), sample_weight=sample_weight))

    def predict(self, X):
        """Predicted targets."""
        predictions = self._forward(X)
        return predictions.ravel() if predictions.shape[1] == 1 else predictions

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
