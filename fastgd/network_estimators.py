"""scikit-learn estimators over any declared network: :class:`NetworkClassifier` and :class:`NetworkRegressor`.

    >>> from sklearn.datasets import load_digits
    >>> from fastgd import NetworkClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = NetworkClassifier(network="digits_cnn", learning_rate_init=0.01, max_iter=3, random_state=0)
    >>> clf.fit(X[:200] / 16, y[:200]).score(X[:200] / 16, y[:200]) > 0.5
    True

``network`` is a :class:`fastgd.networks.Network`, the name of a known one (:func:`fastgd.networks.known`), or
None for a small fully connected network made at ``fit`` from the data (:data:`DEFAULT_HIDDEN` ReLU units, one
output per class or target). X comes as (n, C, H, W), (n, C, L) or flat (n, features), the flat form reshaped
to the network's ``input_shape``; anything else is refused in one line naming the first layer (index and
kind), its shape and X's before anything changes. The classifier trains ``cross_entropy`` networks (one output
per class; the default network has two for a binary problem) and ``binary_cross_entropy`` networks of one output
for two classes; its ``predict_proba`` is the softmax of the outputs (the logistic function of the one output), or
the outputs themselves where the network's :attr:`~fastgd.networks.Network.output` is already the probabilities
(scikit-learn's order). The regressor trains ``mse`` networks (torch's order) and ``squared_error`` ones
(scikit-learn's). Training is :class:`fastgd.training.Training`, the MLP's compiled epoch with the
network's pass: ``optimizer`` is any rule of :data:`fastgd.optim.OPTIMIZERS` (``optimizer_params`` its other
hyperparameters), ``schedule``/``schedule_params`` :func:`fastgd.training.make_schedule`'s, ``clip_norm`` the
global-norm clipping, ``alpha`` the L2 penalty (below), ``init`` the scheme of
:meth:`fastgd.networks.Network.init` (None, the default: the declaration's own, ``"torch"`` in torch's order,
``"scikit-learn"`` in scikit-learn's; a scheme of the other order is refused in one line), ``device``
``"cpu"`` or ``"cuda"`` (the epochs on an NVIDIA GPU,
:mod:`fastgd.cuda.network`; without one, ``fit`` raises :class:`fastgd.cuda.CudaUnavailableError` before
anything changes; predictions run on the CPU). Stopping follows scikit-learn's MLPs: after ``n_iter_no_change``
epochs whose loss did not fall by ``tol`` below the best, or at ``max_iter`` (with a ``ConvergenceWarning``); a
diverged fit stops, keeps the parameters of the epoch before and warns.

``alpha`` is scikit-learn's MLP penalty: the loss of a batch of m rows gains α/(2m)·ΣW² over every layer's
weights (dense matrices and convolution kernels, not the biases), its gradient α/m·W, on the CPU and on the GPU
alike (:meth:`fastgd.networks.Network.with_alpha`). It defaults to 0, where scikit-learn's ``MLPClassifier``
(and fastgd's :class:`fastgd.MLPClassifier`, which follows it) default to 1e-4: a network declared here is one
a PyTorch user would write, and torch (a loss with no penalty term, optimizers with ``weight_decay=0``) and the
declared :class:`fastgd.networks.Network` have none unless one is asked for. At 0 the same declaration fitted
here and in a plain PyTorch loop from the same θ gives the same curve; 1e-4 would change it unasked. A network
declared with an ``alpha`` of its own is refused unless ``alpha`` says the same; ``set_params(alpha=...)``
before a ``warm_start`` fit or a ``partial_fit`` changes the penalty from then on.

A network declared in scikit-learn's order (``parameter_order="scikit-learn"``, a Dense stack) is scikit-learn's MLP:
with the same ``random_state`` it starts from the weights :class:`fastgd.MLPClassifier` (and scikit-learn's
``MLPClassifier``) draws, drawn from ``random_state`` itself, and an integer ``random_state`` seeds its batch order as
it seeds fastgd's MLP estimators': the same declaration, data and settings fit the same coefficients as
:class:`fastgd.MLPClassifier` or :class:`fastgd.MLPRegressor`, bit for bit (``loss="binary_cross_entropy"`` with one
output is their binary classifier).
"""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from fastgd import cuda as fastgd_cuda
from fastgd import optim
from fastgd.networks import Dense, Network, NetworkError, ReLU, known
from fastgd.networks.network import ORDER_SCHEMES
from fastgd.training import SCHEDULES, Training, make_schedule
from fastgd.validation import DenseInputOnly

__all__ = ["NetworkClassifier", "NetworkRegressor", "DEFAULT_HIDDEN"]

DEFAULT_HIDDEN = 16  # units of the default network's hidden layer
_SEED_BOUND = np.iinfo(np.int32).max
_FLOATS = (np.float64, np.float32)


def _softmax(outputs):
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _logistic(outputs):
    # exp of a negative number only: no overflow for logits of either sign
    small = np.exp(-np.abs(outputs))
    return np.where(outputs >= 0, 1.0 / (1.0 + small), small / (1.0 + small))


class _BaseNetworkEstimator(DenseInputOnly, BaseEstimator):
    """What the classifier and the regressor share: parameters, the network, the fit loop, the forward pass."""

    _loss = None  # the loss of the network made at fit (network=None)
    _losses = ()  # the losses of the networks the estimator trains

    def __init__(self, network=None, *, optimizer="adam", optimizer_params=None, learning_rate_init=1e-3,
                 batch_size="auto", max_iter=200, shuffle=True, random_state=None, tol=1e-4, n_iter_no_change=10,
                 warm_start=False, schedule="constant", schedule_params=None, clip_norm=None, alpha=0.0,
                 init=None, dtype=None, verbose=False, device="cpu"):
        self.network = network
        self.optimizer = optimizer
        self.optimizer_params = optimizer_params
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.schedule = schedule
        self.schedule_params = schedule_params
        self.clip_norm = clip_norm
        self.alpha = alpha
        self.init = init
        self.dtype = dtype
        self.verbose = verbose
        self.device = device

    _parameter_constraints = {
        "network": [None, str, Network],
        "optimizer": [str],
        "optimizer_params": [None, dict],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "warm_start": ["boolean"],
        "schedule": [StrOptions(set(SCHEDULES))],
        "schedule_params": [None, dict],
        "clip_norm": [None, Interval(Real, 0, None, closed="neither")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "init": [None, StrOptions({scheme for schemes in ORDER_SCHEMES.values() for scheme in schemes})],
        "dtype": [None, str, type, np.dtype],
        "verbose": ["verbose"],
        "device": [StrOptions({"cpu", "cuda"})],
    }

    # -- checks -------------------------------------------------------------------------------

    def _check_parameters(self):
        """Every parameter checked before anything changes; a ValueError naming the one that is wrong."""
        self._validate_params()
        if self.optimizer not in optim.OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(optim.OPTIMIZERS)}, got {self.optimizer!r}")
        params = dict(self.optimizer_params or {})
        accepted = set(optim.OPTIMIZERS[self.optimizer].default_hyperparameters()) - {"lr"}
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise ValueError(f"optimizer_params has unknown keys for {self.optimizer}: {unknown}; it takes "
                             f"{sorted(accepted)} (the learning rate is learning_rate_init)")
        if self.dtype is not None:
            try:
                dtype = np.dtype(self.dtype)
            except TypeError:
                dtype = None
            if dtype not in _FLOATS:
                raise ValueError(f"dtype must be None, float32 or float64, got {self.dtype!r}")
        if isinstance(self.alpha, bool) or not np.isfinite(self.alpha):
            raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha!r}")
        try:
            make_schedule(self.schedule, n_epochs=self.max_iter, **dict(self.schedule_params or {}))
        except TypeError as error:
            raise ValueError(f"schedule_params: {error}") from None
        if self.device == "cuda":
            fastgd_cuda.require('device="cuda"')

    def _declared_network(self):
        """The network ``network`` names (None for the default, made at fit), its loss and ``init`` checked."""
        network = self.network
        if network is None:
            self._init_scheme("torch")
            return None
        if isinstance(network, str):
            network = known(network)
        self._init_scheme(network.parameter_order)
        if network.loss_name not in self._losses:
            raise NetworkError(f"{type(self).__name__} trains networks with loss {' or '.join(map(repr, self._losses))}"
                               f"; this network's loss is {network.loss_name!r}")
        if network.alpha not in (0.0, self.alpha):
            raise NetworkError(f"the network is declared with alpha={network.alpha!r} and {type(self).__name__} has "
                               f"alpha={self.alpha!r}: give the L2 penalty as the estimator's alpha")
        return self._penalised(network)

    def _init_scheme(self, order):
        """The scheme ``init`` asks for a network in ``order``: the order's own for None; NetworkError in one line
        for a scheme of the other order."""
        schemes = ORDER_SCHEMES[order]
        if self.init is None:
            return schemes[0]
        if self.init not in schemes:
            raise NetworkError(f"init={self.init!r} is not a scheme of a network in {order}'s parameter order "
                               f"({', '.join(map(repr, schemes))}); init=None takes the declaration's own "
                               f"({schemes[0]!r})")
        return self.init

    def _penalised(self, network):
        """``network`` with the estimator's L2 penalty ``alpha`` (itself where it has it already)."""
        return network if network.alpha == self.alpha else network.with_alpha(self.alpha)

    def _flat_features(self, X, network):
        """X as (n, features): an (n, *input_shape) array flattened, after its shape is checked against the network."""
        if isinstance(X, np.ndarray) and X.ndim > 2:
            if network is not None and X.shape[1:] != network.input_shape:
                raise network.input_error(X.shape)
            return X.reshape(X.shape[0], -1)
        return X

    def _check_flat_width(self, X, network):
        if network is not None and X.shape[1] != network.n_inputs:
            raise network.input_error(X.shape)

    # -- fitting ------------------------------------------------------------------------------

    def _fit(self, X, y, incremental):
        self._check_parameters()
        first_pass = not hasattr(self, "theta_") or (not self.warm_start and not incremental)
        network = self._declared_network() if first_pass else self._penalised(self.network_)
        X = self._flat_features(X, network)
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=isinstance(self, RegressorMixin),
                             dtype=_FLOATS, reset=first_pass)
        self._check_flat_width(X, network)
        Y = self._targets(y, first_pass, incremental, network)
        rng = check_random_state(self.random_state)
        if first_pass:
            n_outputs = Y.shape[1]
            if network is None:
                network = Network([Dense(DEFAULT_HIDDEN), ReLU(), Dense(n_outputs)], input_shape=(X.shape[1],),
                                  loss=self._loss, alpha=self.alpha)
            elif network.n_outputs != n_outputs:
                raise NetworkError(f"the network has {network.n_outputs} outputs; {self._what_outputs(n_outputs)}")
            dtype = np.dtype(self.dtype) if self.dtype is not None else X.dtype
            scheme = self._init_scheme(network.parameter_order)
            self.network_ = network
            if scheme == "scikit-learn":
                # scikit-learn's MLP draws its weights from random_state itself and fastgd's MLP estimators shuffle
                # with an integer random_state as it is: the same random_state gives their θ and their batches
                self.theta_ = network.init(random_state=rng, scheme=scheme, dtype=dtype)
                integer = isinstance(self.random_state, Integral) and not isinstance(self.random_state, bool)
                self._seed = int(self.random_state) if integer else int(rng.randint(_SEED_BOUND))
            else:
                self._seed = int(rng.randint(_SEED_BOUND))
                self.theta_ = network.init(random_state=self._seed, scheme=scheme, dtype=dtype)
            self.optimizer_ = None
            self.n_outputs_ = n_outputs
            self.n_iter_ = 0
            self.loss_curve_ = []
            self.best_loss_ = np.inf
            self.diverged_epoch_ = None
            self._no_improvement_count = 0
            self._epochs_done = 0
            self._first_loss = None
        if Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} targets, the fitted network {self.n_outputs_}")
        self.network_ = network
        X = X.astype(self.theta_.dtype, copy=False)
        if self.optimizer_ is None or self.optimizer_.name != self.optimizer:
            self.optimizer_ = optim.OPTIMIZERS[self.optimizer](self._params_on_device(), lr=self.learning_rate_init,
                                                               layout=network.layout,
                                                               **dict(self.optimizer_params or {}))
        elif self.optimizer_.device != self.device:
            # a fitted optimizer (an unpickled one is on the CPU) moves to this fit's device, its state with it
            self.optimizer_ = self.optimizer_.with_params(self._params_on_device(self.optimizer_))
        elif self.device == "cuda" and self.optimizer_.rule.evaluation is None:
            self.optimizer_.params.copy_to_device(self.theta_)  # theta_ may have been changed since
        batch_size = min(200, X.shape[0]) if self.batch_size == "auto" else self.batch_size
        training = Training(network, self.optimizer_, X, Y, batch_size, shuffle=self.shuffle, seed=self._seed,
                            schedule=make_schedule(self.schedule, n_epochs=self.max_iter,
                                                   **dict(self.schedule_params or {})),
                            clip_norm=self.clip_norm)
        training.epochs_done = self._epochs_done
        training.history.first_loss = self._first_loss
        for _ in range(1 if incremental else self.max_iter):
            loss = training.epoch()
            self._epochs_done = training.epochs_done
            self._first_loss = training.history.first_loss
            if training.history.diverged:
                self.diverged_epoch_ = self.n_iter_ + 1
                warnings.warn(f"Training diverged at epoch {self.diverged_epoch_}: "
                              f"{training.history.divergence_reason()}. The parameters are those of the epoch before;"
                              " lower learning_rate_init or clip gradients (clip_norm).", ConvergenceWarning,
                              stacklevel=3)
                break
            if training.evaluation is not None:
                self.theta_ = training.evaluation.copy()  # a rule that evaluates elsewhere: predict there
            elif self.device == "cuda":
                self.optimizer_.params.copy_to_host(self.theta_)
            self.n_iter_ += 1
            self.loss_curve_.append(loss)
            self.loss_ = loss
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            self._no_improvement_count = self._no_improvement_count + 1 if loss > self.best_loss_ - self.tol else 0
            self.best_loss_ = min(self.best_loss_, loss)
            if self._no_improvement_count > self.n_iter_no_change or incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn(f"Maximum iterations ({self.max_iter}) reached and the optimization hasn't converged "
                              "yet.", ConvergenceWarning, stacklevel=3)
        return self

    def _params_on_device(self, optimizer=None):
        """θ as the optimizer of this fit takes it: ``theta_`` itself on the CPU, a copy on the GPU.

        ``optimizer``: the fitted optimizer moving to this device; a rule that evaluates elsewhere brings its
        own training point (``theta_`` is its evaluation point), any other takes ``theta_``.
        """
        source = self.theta_
        if optimizer is not None and optimizer.rule.evaluation is not None:
            params = optimizer.params
            source = params.copy_to_host() if hasattr(params, "copy_to_host") else params.copy()
        if self.device == "cuda":
            from numba import cuda

            return cuda.to_device(source)
        return source

    def _outputs(self, X):
        """The network's outputs for X, (n, n_outputs), in θ's dtype."""
        check_is_fitted(self, "theta_")
        X = self._flat_features(X, self.network_)
        X = validate_data(self, X, dtype=_FLOATS, reset=False)
        return self.network_.predict(self.theta_, X.astype(self.theta_.dtype, copy=False))


class NetworkClassifier(ClassifierMixin, _BaseNetworkEstimator):
    """A declared network as a scikit-learn classifier: one label per sample, two classes or more.

    The network's loss is ``cross_entropy``, its outputs one per class of ``classes_`` (sorted), or
    ``binary_cross_entropy`` with one output for two classes; ``predict_proba`` is their softmax (the logistic
    function of the one output), or the outputs themselves in scikit-learn's order. See the module docstring for the
    parameters.
    """

    _loss = "cross_entropy"
    _losses = ("cross_entropy", "binary_cross_entropy")

    def _what_outputs(self, n_outputs):
        return f"y has {n_outputs} classes"

    def _targets(self, y, first_pass, incremental, network):
        if isinstance(y, np.ndarray) and y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"{type(self).__name__} takes one label per sample (binary or multiclass), got {kind} y")
        classes = self.classes_ if hasattr(self, "classes_") else None
        if first_pass and not (incremental and classes is not None):
            # partial_fit's first call takes the classes it was given, a fit those of y
            classes = self._classes if incremental else np.unique(y)
        if len(classes) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes in y, got 1 class: {classes}")
        positions = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
        if not np.array_equal(classes[positions], y):
            raise ValueError(f"y has classes not in classes_ ({classes.tolist()})")
        one_output = network is not None and network.loss_name == "binary_cross_entropy"
        if one_output and (network.n_outputs != 1 or len(classes) != 2):
            raise NetworkError(f"a network of loss 'binary_cross_entropy' classifies two classes with one output; this "
                               f"one has {network.n_outputs} and y has {len(classes)} classes (declare "
                               "loss='cross_entropy' with one output per class)")
        self.classes_ = classes  # checked: a refused y leaves the classes as they were
        if one_output:
            # the one output is the second class's probability, as scikit-learn's binary MLP has it
            return (positions == 1).astype(np.float64)[:, np.newaxis]
        return np.eye(len(classes))[positions]

    def fit(self, X, y):
        """Train the network on X and labels y; returns self."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y), keeping the optimizer's state; ``classes`` (every label) on the first call."""
        if not hasattr(self, "classes_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        self._classes = None if hasattr(self, "classes_") else np.unique(classes)
        return self._fit(X, y, incremental=True)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes): the softmax of the network's outputs, or for one output
        (two classes) its logistic function, the second class's probability; the outputs as they are where the
        network's ``output`` is already their probabilities (scikit-learn's order)."""
        outputs = self._outputs(X).astype(np.float64)
        output = self.network_.output
        if outputs.shape[1] == 1:
            second = outputs[:, 0] if output == "logistic" else _logistic(outputs[:, 0])
            return np.vstack([1 - second, second]).T
        return outputs if output == "softmax" else _softmax(outputs)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        return np.log(self.predict_proba(X))

    def predict(self, X):
        """Predicted class labels: the largest output's, or for one output the second class where its probability
        is above one half (its logit above 0), as scikit-learn's binary MLP reads it."""
        outputs = self._outputs(X)
        if outputs.shape[1] == 1:
            threshold = 0.5 if self.network_.output == "logistic" else 0.0
            return self.classes_[(outputs[:, 0] > threshold).astype(np.intp)]
        return self.classes_[np.argmax(outputs, axis=1)]


class NetworkRegressor(RegressorMixin, _BaseNetworkEstimator):
    """A declared network as a scikit-learn regressor of one target or several.

    The network's loss is ``mse`` (torch's ``F.mse_loss``, the mean over every entry), or in scikit-learn's order
    ``squared_error`` (half of it, scikit-learn's MLPRegressor's), and its outputs are one per target. See the module
    docstring for the parameters.
    """

    _loss = "mse"
    _losses = ("mse", "squared_error")

    def _what_outputs(self, n_outputs):
        return f"y has {n_outputs} targets"

    def _targets(self, y, first_pass, incremental, network):
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def fit(self, X, y):
        """Train the network on X and targets y; returns self."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y):
        """One epoch over (X, y), keeping the optimizer's state."""
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predicted targets, (n_samples,) for one target, else (n_samples, n_targets)."""
        outputs = self._outputs(X).astype(np.float64, copy=False)
        return outputs.ravel() if outputs.shape[1] == 1 else outputs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
