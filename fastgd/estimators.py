"""scikit-learn estimators over fastgd's compiled training: MLPClassifier and MLPRegressor.

    >>> from sklearn.datasets import load_iris
    >>> from fastgd import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), optimizer="momentum", learning_rate_init=0.01,
    ...                     max_iter=300, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.95
    True

Parameters keep scikit-learn's MLP names and defaults where they exist
(``hidden_layer_sizes, activation, alpha, batch_size, learning_rate_init,
max_iter, shuffle, random_state, tol, n_iter_no_change, early_stopping,
validation_fraction, warm_start, verbose``); ``optimizer`` names a rule of
:data:`fastgd.optim.OPTIMIZERS` (``"adam"`` by default), ``optimizer_params``
sets its other hyperparameters, ``schedule``/``schedule_params`` the learning-
rate schedule (:func:`fastgd.training.make_schedule`), ``clip_norm`` clips
gradients by global norm, ``dtype`` fixes float32 or float64 (by default:
float32 input stays float32, anything else becomes float64), ``device``
chooses where training runs: ``"cpu"`` or ``"cuda"`` (an NVIDIA GPU, see
:mod:`fastgd.cuda`; the same batches and math, the data uploaded once per
fit). Without a usable GPU, ``device="cuda"`` raises
:class:`fastgd.cuda.CudaUnavailableError` saying why, before anything
changes. Predictions run on the CPU, from ``theta_``, which is copied back
from the device after every epoch.

The network and loss are scikit-learn's (weights initialised the same way for
the same ``random_state``; biases start at zero). When the loss becomes NaN
or infinite, training stops, ``diverged_epoch_`` says when, the parameters
are those of the last finite epoch, and a ``ConvergenceWarning`` is issued.
"""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from fastgd import cuda as fastgd_cuda
from fastgd import optim
from fastgd.models import MLP
from fastgd.training import SCHEDULES, Training, make_schedule

__all__ = ["MLPClassifier", "MLPRegressor"]

_SEED_BOUND = np.iinfo(np.int32).max


def _check_real(name, value, low=None, high=None, *, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, fit loop, predictions."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, alpha=1e-4, batch_size="auto",
                 learning_rate_init=1e-3, max_iter=200, shuffle=True, random_state=None, tol=1e-4,
                 verbose=False, warm_start=False, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, optimizer="adam", optimizer_params=None, schedule="constant",
                 schedule_params=None, clip_norm=None, dtype=None, device="cpu"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.optimizer = optimizer
        self.optimizer_params = optimizer_params
        self.schedule = schedule
        self.schedule_params = schedule_params
        self.clip_norm = clip_norm
        self.dtype = dtype
        self.device = device

    # -- checks -------------------------------------------------------------------------------

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, numbers.Integral) else list(sizes)
        if any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0 for n in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {self.hidden_layer_sizes!r}.")
        return [int(n) for n in sizes]

    def _check_parameters(self):
        if self.activation not in ("identity", "logistic", "tanh", "relu"):
            raise ValueError(f"activation must be one of 'identity', 'logistic', 'tanh', 'relu', got "
                             f"{self.activation!r}")
        _check_real("alpha", self.alpha, 0.0)
        _check_real("learning_rate_init", self.learning_rate_init, 0.0, low_open=True)
        _check_int("max_iter", self.max_iter, 1)
        _check_real("tol", self.tol, 0.0)
        _check_int("n_iter_no_change", self.n_iter_no_change, 1)
        _check_real("validation_fraction", self.validation_fraction, 0.0, 1.0, low_open=True, high_open=True)
        if not (self.batch_size == "auto" or (isinstance(self.batch_size, numbers.Integral)
                                               and not isinstance(self.batch_size, bool))):
            raise ValueError(f"batch_size must be 'auto' or a positive integer, got {self.batch_size!r}")
        if self.optimizer not in optim.OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(optim.OPTIMIZERS)}, got {self.optimizer!r}")
        if self.optimizer_params is not None and not isinstance(self.optimizer_params, dict):
            raise ValueError(f"optimizer_params must be a dict or None, got {self.optimizer_params!r}")
        if self.optimizer_params and "lr" in self.optimizer_params:
            raise ValueError("optimizer_params must not contain 'lr': set learning_rate_init")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        if self.schedule_params is not None and not isinstance(self.schedule_params, dict):
            raise ValueError(f"schedule_params must be a dict or None, got {self.schedule_params!r}")
        if self.clip_norm is not None:
            _check_real("clip_norm", self.clip_norm, 0.0, low_open=True)
        if self.dtype is not None and np.dtype(self.dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be None, float32 or float64, got {self.dtype!r}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        if self.device == "cuda":
            fastgd_cuda.require('device="cuda"')

    def _make_optimizer(self, theta):
        cls = optim.OPTIMIZERS[self.optimizer]
        params = dict(self.optimizer_params or {})
        accepted = cls.default_hyperparameters()
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ValueError(f"optimizer_params has unknown keys for {self.optimizer}: {unknown}; it takes "
                             f"{sorted(set(accepted) - {'lr'})}")
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

    def _fit(self, X, y, incremental):
        self._check_parameters()
        hidden = self._hidden_sizes()
        first_pass = not hasattr(self, "theta_") or (not self.warm_start and not incremental)
        X, Y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples = X.shape[0]
        rng = check_random_state(self.random_state)
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
        # alpha or activation may have changed since the first pass (warm_start)
        net = self._net = MLP(layer_sizes, self.activation, self.out_activation_, self.alpha, self._net.dtype)
        X = X.astype(net.dtype, copy=False)

        early_stopping = self.early_stopping and not incremental
        X_val = Y_val = None
        if early_stopping:
            stratify = Y if self._stratify() else None
            X, X_val, Y, Y_val = train_test_split(X, Y, random_state=rng, test_size=self.validation_fraction,
                                                  stratify=stratify)
            n_samples = X.shape[0]
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

        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size < 1 or self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be "
                              "clipped", stacklevel=3)
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        if not incremental or not hasattr(self, "optimizer_"):
            self.optimizer_ = self._make_optimizer(self._params_on_device())
        elif self.optimizer_.device != self.device:
            self.optimizer_ = self.optimizer_.with_params(self._params_on_device())  # its state moves along
        elif self.device == "cuda" and not self._evaluates_elsewhere():
            self.optimizer_.params.copy_to_device(self.theta_)  # theta_ may have changed since (coefs_ are views)
        training = Training(net, self.optimizer_, X, Y, batch_size, shuffle=self.shuffle,
                            seed=rng.randint(_SEED_BOUND), schedule=self._make_schedule(),
                            clip_norm=self.clip_norm)
        training.epochs_done = self._epochs_done
        self.history_ = training.history

        for _ in range(1 if incremental else self.max_iter):
            loss = training.epoch()
            if self._evaluates_elsewhere():
                # predictions use the rule's evaluation point; the optimizer keeps its training point
                self.optimizer_.evaluation_params(out=self.theta_)
            elif self.device == "cuda":
                self.optimizer_.params.copy_to_host(self.theta_)
            self._epochs_done = training.epochs_done
            if training.history.diverged:
                self.diverged_epoch_ = self.n_iter_ + 1
                warnings.warn(f"Training diverged at epoch {self.diverged_epoch_}: the loss became {loss}. The "
                              "parameters are those of the last finite epoch; lower learning_rate_init or clip "
                              "gradients (clip_norm).", ConvergenceWarning, stacklevel=3)
                break
            self.n_iter_ += 1
            self.t_ += n_samples
            self.loss_curve_.append(loss)
            self.loss_ = loss
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            if early_stopping:
                score = self._score_validation(X_val, Y_val)
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
            if self._no_improvement_count > self.n_iter_no_change:
                if self.verbose:
                    print(f"{'Validation score' if early_stopping else 'Training loss'} did not improve more than "
                          f"tol={self.tol} for {self.n_iter_no_change} consecutive epochs. Stopping.")
                break
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                              "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)
        if early_stopping:
            self.theta_[...] = best_theta
        return self

    def _evaluates_elsewhere(self):
        """Whether the rule trains at one point and evaluates at another (Schedule-Free AdamW, ASGD)."""
        return optim.OPTIMIZERS[self.optimizer].rule.evaluation is not None

    def _params_on_device(self):
        """θ as the optimizer of this fit takes it: ``theta_`` itself, or a copy (on the GPU, or of the training point).

        A rule with an evaluation point trains its own copy: ``theta_`` is then
        that evaluation point, refreshed after every epoch.
        """
        if self.device == "cuda":
            from numba import cuda

            return cuda.to_device(self.theta_)
        return self.theta_.copy() if self._evaluates_elsewhere() else self.theta_

    def _expose_layers(self):
        # views into θ: edits to coefs_ change the model, as in scikit-learn
        self.coefs_, self.intercepts_ = self._net.unpack(self.theta_)

    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ returns __dict__ itself, not a copy
        optimizer = state.get("optimizer_")
        if optimizer is not None and optimizer.device != "cpu":
            # device memory does not pickle: keep the optimizer, state and all, over theta_ on the CPU
            state["optimizer_"] = optimizer.with_params(state["theta_"])
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "theta_" in state:
            self._expose_layers()

    def _forward(self, X):
        check_is_fitted(self, "theta_")
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False)
        return self._net.predict(self.theta_, X.astype(self._net.dtype, copy=False))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


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
        X, y = validate_data(self, X, y, multi_output=True, dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if incremental and hasattr(self, "_label_binarizer"):
            classes = unique_labels(y)
            if len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        elif not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            check_classification_targets(y)
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        elif self.warm_start:
            classes = unique_labels(y)
            if set(classes) != set(self.classes_):
                raise ValueError(f"warm_start can only be used where `y` has the same classes as in the previous "
                                 f"call to fit. Previously got {self.classes_}, `y` has {classes}")
        return X, self._label_binarizer.transform(y).astype(np.float64)

    def fit(self, X, y):
        """Fit the network to data X and labels y; returns self."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y), keeping the optimizer's state; ``classes`` is required on the first call."""
        self._check_parameters()  # before classes_ is set: a refused call changes nothing
        if not hasattr(self, "classes_"):
            if classes is None and not type_of_target(y).startswith("multilabel"):
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y if classes is None else classes)
            self.classes_ = self._label_binarizer.classes_
        return self._fit(X, y, incremental=True)

    def _score_validation(self, X, Y):
        from sklearn.metrics import accuracy_score

        probabilities = self._net.predict(self.theta_, X)
        if self.n_outputs_ == 1:
            probabilities, Y = probabilities.ravel(), Y.ravel()
        binarizer = self._label_binarizer
        return float(accuracy_score(binarizer.inverse_transform(Y), binarizer.inverse_transform(probabilities)))

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

    def _output_activation(self):
        return "identity"

    def _stratify(self):
        return False

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=(np.float64, np.float32),
                             reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        return X, Y

    def fit(self, X, y):
        """Fit the network to data X and targets y; returns self."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y):
        """One epoch over (X, y), keeping the optimizer's state."""
        return self._fit(X, y, incremental=True)

    def _score_validation(self, X, Y):
        from sklearn.metrics import r2_score

        return float(r2_score(Y, self._net.predict(self.theta_, X)))

    def predict(self, X):
        """Predicted targets."""
        predictions = self._forward(X)
        return predictions.ravel() if predictions.shape[1] == 1 else predictions

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
