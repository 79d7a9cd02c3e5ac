"""The peers fastgd's MLP training is measured against, one :class:`Trainer` class each (:data:`TRAINERS`).

fastgd's compiled epoch, the NumPy reference network and rule (its optimizer state kept from
epoch to epoch), scikit-learn's MLP, a plain PyTorch loop and JAX + optax with a jitted whole
epoch, all with the same network (ReLU hidden layers; softmax output with cross-entropy, or
identity output with half the squared error), the same Glorot-uniform weights (scikit-learn's
draw for :data:`SEED`, zero biases), no L2 penalty and the same learning rate per rule
(:func:`learning_rate`).

A trainer is one class: its name (``class TorchTrainer(Trainer, name="torch")`` registers it), the
packages it needs (``requires``, ``install``), the rules it has (``rules``, ``lacks``), and its epoch.
:meth:`Trainer.skip_reason` says, before anything is built, why it is skipped here; building one
that is skipped raises NotImplementedError with that reason (asv's "skipped").
"""

import abc
import contextlib
import dataclasses
import importlib
import math
import time
import warnings

import numpy as np

from fastgd import _config, datasets, optim, reference
from fastgd.baselines.timer import finite, seconds_per_call
from fastgd.models import MLP
from fastgd.training import Training

__all__ = ["IMPLEMENTATIONS", "TRAINERS", "TORCH_OPTIMIZERS", "TORCH_FUSED", "SEED", "LEARNING_RATES",
           "learning_rate", "available", "torch_available", "jax_available", "warm_up", "warmed_trainer", "dataset",
           "head", "Trainer", "FastgdTrainer", "NumpyTrainer", "SklearnTrainer", "TorchTrainer", "JaxTrainer",
           "JaxTraining", "JaxNetworkTraining", "optax_transform", "require_torch", "torch_optimizer_class",
           "SKLEARN_SOLVERS", "same_threads"]

SEED = 0
# torch.optim's class for each rule (the names of the hyperparameters are the same); Lion, LAMB,
# Schedule-Free AdamW and Muon (with AdamW on its vectors) have none
TORCH_OPTIMIZERS = {"sgd": "SGD", "momentum": "SGD", "nesterov": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop",
                    "adadelta": "Adadelta", "adam": "Adam", "amsgrad": "Adam", "adamax": "Adamax", "nadam": "NAdam",
                    "adamw": "AdamW", "radam": "RAdam", "rprop": "Rprop", "asgd": "ASGD", "adafactor": "Adafactor"}
# the classes with a fused CPU kernel (``fused=True``) in torch 2.13; torch_step checks the signature as well
TORCH_FUSED = frozenset({"SGD", "Adagrad", "Adam", "AdamW"})
# the rules optax has with torch's update (its momentum trace and Adam's ε placement are torch's)
OPTAX_RULES = ("sgd", "momentum", "nesterov", "adam", "adamw", "lion")

# --- settings shared by every trainer ----------------------------------------------------------


# A learning rate per rule with which a 32-unit ReLU network trained with batches of 32 makes
# steady progress on every bundled set (the convergence targets are set against these).
LEARNING_RATES = {"sgd": 0.05, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.02, "rmsprop": 1e-3,
                  "adadelta": 1.0, "adam": 1e-3, "amsgrad": 1e-3, "adamax": 2e-3, "nadam": 2e-3, "adamw": 1e-3,
                  "lion": 3e-4, "radam": 1e-3, "rprop": 1e-3, "asgd": 0.05, "schedule_free_adamw": 2.5e-3,
                  "lamb": 1e-2, "adafactor": 1e-2, "muon": 0.02}
LEARNING_RATE_BATCH_SIZE = 32


def learning_rate(rule, batch_size):
    """``LEARNING_RATES[rule]`` (a user's rule: its default), scaled down in proportion below batches of 32.

    Smaller batches give noisier gradients: at the full rate, momentum with batch 1 diverges on
    the large synthetic set in its first epoch (and fastgd then stops that epoch early).
    """
    rate = LEARNING_RATES.get(rule, optim.OPTIMIZERS[rule].default_hyperparameters()["lr"])
    return rate * min(1.0, batch_size / LEARNING_RATE_BATCH_SIZE)

# The rules scikit-learn's MLP has, as its solver settings.
SKLEARN_SOLVERS = {"sgd": dict(solver="sgd", momentum=0.0, nesterovs_momentum=False),
                   "momentum": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False),
                   "nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True),
                   "adam": dict(solver="adam")}


# --- data sets ---------------------------------------------------------------------------------

def dataset(name):
    """A data set by its name here: a bundled one, or a generated one (:func:`fastgd.datasets.synthetic_name`;
    75,000 training rows take a second to make)."""
    if name not in datasets.BUNDLED and not datasets.SYNTHETIC_NAME.fullmatch(name):
        raise ValueError(f"unknown data set {name!r}: a bundled one ({', '.join(datasets.BUNDLED)}) or "
                         "synthetic-classification-<rows>x<features>[-<k>classes]")
    return datasets.load(name)


def head(data, n_rows):
    """The first ``n_rows`` training rows of ``data`` (views: same dtype, layout and flags)."""
    return dataclasses.replace(data, X_train=data.X_train[:n_rows], y_train=data.y_train[:n_rows])


def require_torch():
    """``torch``, or NotImplementedError (asv's "skipped") naming why it cannot be imported."""
    reason = TorchTrainer.skip_reason()
    if reason is not None:
        raise NotImplementedError(reason)
    import torch

    return torch


def torch_optimizer_class(rule):
    """torch.optim's class for ``rule`` (:data:`TORCH_OPTIMIZERS`); asv's "skipped" where torch has none,
    a user's rule included."""
    name = TORCH_OPTIMIZERS.get(rule)
    if name is None:
        raise NotImplementedError(f"torch.optim has no {rule}")
    return getattr(require_torch().optim, name)


# --- MLP training ------------------------------------------------------------------------------

TRAINERS = {}  # name -> Trainer class, in the order they are defined below


def _imports(module):
    # not cached: importing a module already imported is a lookup in sys.modules, and a test may take it away
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


class Trainer(abc.ABC):
    """One implementation of MLP training: built with its data and settings, then epoch after epoch.

    ``data``: a ``fastgd.datasets.Dataset``; ``rule``: a key of ``optim.OPTIMIZERS`` (an
    implementation without it raises NotImplementedError); ``hidden``: units of the one hidden
    layer, or a tuple of units per hidden layer; ``batch_size``: samples per update (at most the
    training set); ``dtype``: of the parameters and of the arithmetic. Shuffling and initial
    weights come from ``SEED``, the learning rate from :func:`learning_rate`.
    """

    COMPILED_WHEN_BUILT = False  # True: the constructor compiles everything an epoch runs, for these shapes
    name = None  # its key in TRAINERS, given as ``class NewTrainer(Trainer, name="new")``
    requires = ()  # the modules it imports, each installed by ``install``
    install = None  # how to install what it requires, for the skip reason

    def __init_subclass__(cls, name=None, **kwargs):
        super().__init_subclass__(**kwargs)
        if name is not None:
            if name in TRAINERS:
                raise ValueError(f"two trainers named {name!r}")
            cls.name = name
            TRAINERS[name] = cls

    @classmethod
    def skip_reason(cls, rule=None):
        """Why this trainer cannot run here (a module it requires does not import) or cannot run ``rule``; None where
        it can."""
        missing = [module for module in cls.requires if not _imports(module)]
        if missing:
            return f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed" + (
                f" ({cls.install})" if cls.install else "")
        return None if rule is None else cls.rule_skip_reason(rule)

    rules = None  # the rules it has (a container; None: every registered rule)
    lacks = "{rule} is not available"  # why it is skipped for a rule it does not have

    @classmethod
    def rule_skip_reason(cls, rule):
        """Why this implementation has no ``rule``, a user's rule included; None where it has it."""
        return None if cls.rules is None or rule in cls.rules else cls.lacks.format(rule=rule)

    def __init__(self, data, rule, hidden, batch_size, dtype):
        reason = self.skip_reason(rule)
        if reason is not None:
            raise NotImplementedError(reason)
        self.data, self.rule = data, rule
        self.hidden = (int(hidden),) if np.ndim(hidden) == 0 else tuple(int(units) for units in hidden)
        self.batch_size, self.dtype = batch_size, np.dtype(dtype)
        self.learning_rate = learning_rate(rule, batch_size)
        self.n_samples = data.X_train.shape[0]
        self.layer_sizes = [data.n_features, *self.hidden, data.n_outputs]

    def initial_theta(self):
        """fastgd's θ layout with scikit-learn's Glorot-uniform draw, zero biases."""
        return MLP(self.layer_sizes, "relu", self.data.output, alpha=0.0, dtype=self.dtype).init(random_state=SEED)

    @abc.abstractmethod
    def epoch(self):
        """Train one epoch; return its mean training loss (over batches, each before its update)."""

    def fit(self, n_epochs):
        """Train ``n_epochs`` more epochs the way users of this implementation do; return their mean losses.

        Stops after an epoch whose loss is not finite (divergence), which is then the last.
        """
        losses = []
        for _ in range(n_epochs):
            losses.append(self.epoch())
            if not math.isfinite(losses[-1]):
                break
        return losses

    def fit_seconds(self, n_epochs):
        """Wall seconds of :meth:`fit` for ``n_epochs``."""
        start = time.perf_counter()
        self.fit(n_epochs)
        return time.perf_counter() - start

    def seconds_per_epoch(self, budget_seconds):
        """Seconds per epoch of a fit that lasts about ``budget_seconds`` (one epoch if that is longer).

        A first epoch, untimed, sizes the fit: it may carry first-call costs (JAX's first run of
        its compiled epoch is many times slower than the next).
        """
        start = time.perf_counter()
        finite(self.epoch())
        n_epochs = max(1, int(budget_seconds / (time.perf_counter() - start)))
        start = time.perf_counter()
        finite(self.fit(n_epochs)[-1])
        return (time.perf_counter() - start) / n_epochs


class FastgdTrainer(Trainer, name="fastgd"):
    """fastgd's compiled epochs (``fastgd.training.Training``, as the estimators run them)."""

    def __init__(self, data, rule, hidden, batch_size, dtype):
        super().__init__(data, rule, hidden, batch_size, dtype)
        self.net = MLP(self.layer_sizes, "relu", data.output, alpha=0.0, dtype=self.dtype)
        optimizer = optim.OPTIMIZERS[rule](self.initial_theta(), lr=self.learning_rate, layout=self.net.layout)
        self.training = Training(self.net, optimizer, data.X_train, data.Y_train, batch_size, seed=SEED)

    def epoch(self):
        return self.training.epoch()

    def test_outputs(self):
        return self.net.predict(self.training.theta, self.data.X_test)

    def floor_seconds(self, budget_seconds):
        """Seconds per epoch of its matrix products alone and of its rule's steps alone (:mod:`fastgd.kernels.floors`).

        Both as its epochs take them: the same pass (serial, or the whole batch on MKL's threads) and
        the same step (serial, or ``prange`` beside a threaded pass), on copies of its buffers and state.
        Returns ``{"products": s, "steps": s}``; NotImplementedError for the pass in blocks of rows.
        """
        from fastgd.kernels import floors, mkl
        from fastgd.kernels.train import WHOLE_BATCH_ON_MKL

        training = self.training
        n_blocks = training._blocks()
        if n_blocks not in (1, WHOLE_BATCH_ON_MKL):
            raise NotImplementedError("the floor of the pass in blocks of rows is not measured")
        if n_blocks == WHOLE_BATCH_ON_MKL:
            mkl.load()  # before epoch_products_on_mkl is compiled or loaded: it links MKL's cblas_?gemm
        products = floors.epoch_products if n_blocks == 1 else floors.epoch_products_on_mkl
        n_samples, batch_size = training.X.shape[0], training.batch_size
        rng = np.random.default_rng(SEED)
        theta = training.theta.copy()
        grad = (rng.standard_normal(theta.size) * 1e-3).astype(theta.dtype)
        # a batch's rows, and workspaces filled with finite values: products of garbage may be denormal or NaN
        inputs = np.ascontiguousarray(training.X[:batch_size]).reshape(-1)
        activations = rng.standard_normal(training._epochs.activations.size).astype(theta.dtype)
        deltas = rng.standard_normal(training._epochs.deltas.size).astype(theta.dtype)
        product_arguments = (inputs, theta, grad.copy(), activations, deltas, self.net.layer_sizes, n_samples,
                             batch_size)
        packed = training.optimizer.packed(parallel=n_blocks != 1)
        hyper = packed.hyper.copy()
        hyper[-1] = 1.0  # the constant schedule's factor
        n_steps = -(-n_samples // batch_size)
        step_arguments = (packed.function, theta, grad, packed.states.copy(), packed.aux.copy(), hyper,
                          packed.counters.copy(), packed.layout, n_steps)
        seconds = {}
        for name, dispatcher, arguments in (("products", products, product_arguments),
                                            ("steps", floors.epoch_steps, step_arguments)):
            run = _config.compile_for(dispatcher, arguments)
            run(*arguments)  # warm: caches, pages, threads
            seconds[name] = seconds_per_call(lambda: run(*arguments), budget_seconds)
        return seconds


class NumpyTrainer(Trainer, name="numpy"):
    """The NumPy reference network (``reference.mlp_loss_grad``) and rule, in a plain mini-batch loop."""

    rules = reference.RULES  # the registry of references: a user's rule may declare one, or none
    lacks = "rule {rule!r} declares no NumPy reference"

    def __init__(self, data, rule, hidden, batch_size, dtype):
        super().__init__(data, rule, hidden, batch_size, dtype)
        self.theta = self.initial_theta()
        self.X = data.X_train.astype(self.dtype)
        self.Y = data.Y_train.astype(self.dtype)
        self.optimizer = reference.ReferenceOptimizer(rule, self.theta, layout=reference.mlp_layout(self.layer_sizes),
                                                      lr=self.learning_rate)
        self.rng = np.random.default_rng(SEED)

    def epoch(self):
        order = self.rng.permutation(self.n_samples)
        total = 0.0
        for start in range(0, self.n_samples, self.batch_size):
            rows = order[start:start + self.batch_size]
            loss, grad = reference.mlp_loss_grad(self.theta, self.X[rows], self.Y[rows], self.layer_sizes, "relu",
                                                 self.data.output, 0.0)
            total += loss * rows.size
            self.optimizer.step(grad)
        return total / self.n_samples


class SklearnTrainer(Trainer, name="sklearn"):
    """scikit-learn's MLPClassifier or MLPRegressor.

    :meth:`epoch` is one ``partial_fit``, scikit-learn's only per-epoch call, which also checks
    its input again (about a millisecond here); :meth:`fit` is one ``fit`` of that many epochs,
    how scikit-learn users train, where that check is paid once. ``fit`` starts over from
    the initial weights, as scikit-learn's does.
    """

    rules = SKLEARN_SOLVERS
    lacks = "scikit-learn's MLP has no {rule}"

    def __init__(self, data, rule, hidden, batch_size, dtype):
        super().__init__(data, rule, hidden, batch_size, dtype)
        self.X = data.X_train.astype(self.dtype)
        self.y = data.y_train if data.task == "classification" else data.y_train.astype(self.dtype)
        self.estimator = self._estimator(max_iter=1)

    def _estimator(self, max_iter):
        from sklearn.neural_network import MLPClassifier, MLPRegressor

        estimator = MLPClassifier if self.data.task == "classification" else MLPRegressor
        # tol=0 and a patience beyond max_iter: a fit runs exactly max_iter epochs
        return estimator(hidden_layer_sizes=self.hidden, activation="relu", alpha=0.0, batch_size=self.batch_size,
                         learning_rate="constant", learning_rate_init=self.learning_rate, max_iter=max_iter,
                         shuffle=True, random_state=SEED, tol=0.0, n_iter_no_change=max_iter + 1,
                         **SKLEARN_SOLVERS[self.rule])

    def epoch(self):
        if self.data.task == "classification":
            self.estimator.partial_fit(self.X, self.y, classes=np.arange(self.data.n_classes))
        else:
            self.estimator.partial_fit(self.X, self.y)
        return self.estimator.loss_

    def fit(self, n_epochs):
        from sklearn.exceptions import ConvergenceWarning

        self.estimator = self._estimator(max_iter=n_epochs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.estimator.fit(self.X, self.y)
        return list(self.estimator.loss_curve_)

    def test_outputs(self):
        if self.data.task == "classification":
            return self.estimator.predict_proba(self.data.X_test.astype(self.dtype))
        return self.estimator.predict(self.data.X_test.astype(self.dtype))


class TorchTrainer(Trainer, name="torch"):
    """A plain PyTorch CPU loop: ``nn.Sequential(Linear, ReLU, Linear)``, ``torch.optim``, fancy-indexed batches."""

    requires = ("torch",)
    install = "pip install torch"

    rules = TORCH_OPTIMIZERS
    lacks = "torch.optim has no {rule}"

    def __init__(self, data, rule, hidden, batch_size, dtype):
        super().__init__(data, rule, hidden, batch_size, dtype)
        torch = require_torch()
        optimizer_class = self.optimizer_class(rule)
        torch_dtype = getattr(torch, self.dtype.name)
        self.X = torch.from_numpy(data.X_train.astype(self.dtype))
        layers = []
        for n_in, n_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            layers += [torch.nn.Linear(n_in, n_out, dtype=torch_dtype), torch.nn.ReLU()]
        layers.pop()  # no activation after the output layer: the loss applies softmax
        coefs, intercepts = MLP(self.layer_sizes, "relu", data.output, alpha=0.0, dtype=self.dtype).unpack(
            self.initial_theta())
        with torch.no_grad():
            for linear, coef, intercept in zip(layers[::2], coefs, intercepts):
                linear.weight.copy_(torch.from_numpy(coef.T.copy()))
                linear.bias.copy_(torch.from_numpy(intercept))
        self.model = torch.nn.Sequential(*layers)
        if data.task == "classification":
            self.targets = torch.from_numpy(data.y_train.copy())
            self.loss_function = torch.nn.CrossEntropyLoss()
        else:
            self.targets = torch.from_numpy(data.Y_train.astype(self.dtype))
            mean_squared_error = torch.nn.MSELoss()
            self.loss_function = lambda outputs, targets: mean_squared_error(outputs, targets) / 2
        hyperparameters = dict(optim.OPTIMIZERS[rule].default_hyperparameters(), lr=self.learning_rate)
        self.optimizer = optimizer_class(self.model.parameters(), **hyperparameters)
        self.generator = torch.Generator().manual_seed(SEED)
        self.torch = torch

    @staticmethod
    def optimizer_class(rule):
        """The class that steps ``rule``'s parameters (a torch.optim.Optimizer); a trainer over another package's
        optimizers in the same loop overrides this alone."""
        return torch_optimizer_class(rule)

    def epoch(self):
        order = self.torch.randperm(self.n_samples, generator=self.generator)
        total = 0.0
        for start in range(0, self.n_samples, self.batch_size):
            rows = order[start:start + self.batch_size]
            self.optimizer.zero_grad()
            loss = self.loss_function(self.model(self.X[rows]), self.targets[rows])
            loss.backward()
            self.optimizer.step()
            total += loss.item() * rows.numel()
        return total / self.n_samples


class JaxTrainer(Trainer, name="jax"):
    """JAX + optax, the compiled peer a user would pick instead: a whole epoch in one ``jax.jit``
    (:class:`JaxTraining`, compiled when the trainer is built, so the first epoch is
    timed as warm as the next). Same network, initial weights and loss as the others."""

    COMPILED_WHEN_BUILT = True
    requires = ("jax", "optax")
    install = "pip install 'fastgd[jax]'"

    rules = OPTAX_RULES
    lacks = "no optax transform stands in for {rule}"

    def __init__(self, data, rule, hidden, batch_size, dtype):
        super().__init__(data, rule, hidden, batch_size, dtype)
        coefs, intercepts = MLP(self.layer_sizes, "relu", data.output, alpha=0.0, dtype=self.dtype).unpack(
            self.initial_theta())
        classification = data.task == "classification"
        self.training = JaxTraining(coefs, intercepts, data.X_train,
                                              data.y_train if classification else data.Y_train, classification,
                                              rule, self.learning_rate, batch_size, dtype=self.dtype, seed=SEED)

    def epoch(self):
        return self.training.epoch()


WARM_UP_ROWS = 64
IMPLEMENTATIONS = tuple(TRAINERS)


def available(implementation):
    """Whether ``implementation`` (one of :data:`IMPLEMENTATIONS`) can run here: what it requires is installed."""
    return TRAINERS[implementation].skip_reason() is None


def torch_available():
    """Whether PyTorch imports here (the ``torch`` trainer and steps can run)."""
    return available("torch")


def jax_available():
    """Whether JAX and optax import here (the ``jax`` trainer can run)."""
    return available("jax")


def warm_up(implementation, data, rule, hidden, batch_size, dtype):
    """One epoch of ``implementation`` on the first rows of the same arrays (at least a batch), to be run before any
    timing.

    It compiles (or loads) every Numba kernel an epoch calls, for exactly these array types
    (a slice has the dtype, layout and flags of the whole), and pays torch's and
    scikit-learn's first-call costs. A trainer that compiles for its own shapes when built (JAX's)
    needs none: its warm-up would compile for the warm-up's shapes, which the trainer timed does not use.
    """
    if TRAINERS[implementation].COMPILED_WHEN_BUILT:
        return
    # at least one whole batch: fastgd picks its model's pass by the batch's size (kernels.train.model_blocks)
    rows = min(max(WARM_UP_ROWS, batch_size), data.X_train.shape[0])
    TRAINERS[implementation](head(data, rows), rule, hidden, min(batch_size, rows), dtype).epoch()


@contextlib.contextmanager
def same_threads(n_threads):
    """Within the block, every implementation computes on ``n_threads`` threads, as far as each can be told to.

    A ratio of two implementations' times means little when one has the cores to itself and the other not:
    on a busy machine PyTorch's epoch took several times longer with two threads than with one (issue 25). fastgd's
    loops and every BLAS loaded (NumPy's and SciPy's, which scikit-learn calls) through
    :func:`fastgd.threads.limit`; PyTorch through ``torch.set_num_threads`` (restored after); JAX through
    ``XLA_FLAGS``, which XLA reads once, when JAX first computes: later it cannot be changed, and the
    yielded description says so. Yields {implementation: how its threads were set}, for the report.
    """
    from fastgd import threads

    told = {}
    torch, torch_before = None, None
    with threads.limit(n_threads):
        told.update(fastgd=f"{n_threads} (Numba and BLAS)", numpy=f"{n_threads} (BLAS)",
                    sklearn=f"{n_threads} (BLAS)")
        if torch_available():
            import torch

            torch_before = torch.get_num_threads()
            torch.set_num_threads(n_threads)
            told["torch"] = f"{n_threads} (torch.set_num_threads)"
        if jax_available():
            told["jax"] = _limit_jax_threads(n_threads)
        try:
            yield told
        finally:
            if torch is not None:
                torch.set_num_threads(torch_before)


def _limit_jax_threads(n_threads):
    import os

    try:
        from jax._src import xla_bridge

        started = bool(xla_bridge._backends)
    except (ImportError, AttributeError):
        return "XLA's own thread pool (whether JAX had started could not be told)"
    if started:
        return "XLA's own thread pool (JAX had computed before: XLA_FLAGS can no longer be set)"
    flags = [f"--xla_cpu_multi_thread_eigen={'false' if n_threads == 1 else 'true'}",
             f"intra_op_parallelism_threads={n_threads}"]
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()
    return f"{n_threads} (XLA_FLAGS intra_op_parallelism_threads, set before JAX computed)"


def warmed_trainer(implementation, data, rule, hidden, batch_size, dtype, warming=contextlib.nullcontext):
    """A new trainer of ``implementation`` after :func:`warm_up`, which runs inside the context ``warming()``."""
    with warming():
        warm_up(implementation, data, rule, hidden, batch_size, dtype)
    return TRAINERS[implementation](data, rule, hidden, batch_size, dtype)


def optax_transform(rule, lr):
    """optax's transform for ``rule`` with fastgd's (torch's) default hyperparameters, where optax has the same
    update: its momentum trace and Adam's ε placement are torch's. NotImplementedError for the other rules."""
    import optax

    hyper = optim.OPTIMIZERS[rule].default_hyperparameters() if rule in optim.OPTIMIZERS else {}
    if rule in ("sgd", "momentum", "nesterov"):
        return optax.sgd(lr, momentum=hyper["momentum"] or None, nesterov=hyper["nesterov"])
    if rule == "adam":
        return optax.adam(lr, *hyper["betas"], eps=hyper["eps"])
    if rule == "adamw":
        return optax.adamw(lr, *hyper["betas"], eps=hyper["eps"], weight_decay=hyper["weight_decay"])
    if rule == "lion":
        return optax.lion(lr, *hyper["betas"], weight_decay=hyper["weight_decay"])
    raise NotImplementedError(f"no optax transform stands in for {rule}")


class JaxTraining:
    """An MLP trained by JAX + optax the way a JAX user writes it: a whole epoch in one ``jax.jit``.

    The epoch draws a permutation, runs ``lax.scan`` over its full batches (and one step for the
    last, shorter batch) and returns the mean of the batch losses; θ and the optimizer state are
    donated to it, so XLA updates them in place. It is compiled here, for these shapes, so the
    first epoch is as warm as the next. The network is fastgd's (``coefs``/``intercepts`` as
    :meth:`fastgd.MLP.unpack` gives them, ReLU hidden layers) with fastgd's loss: softmax
    cross-entropy for class labels ``targets``, else half the mean squared error, plus
    α/(2m)·ΣW². float64 turns on ``jax_enable_x64`` for the process.
    """

    def __init__(self, coefs, intercepts, X, targets, classification, rule, lr, batch_size, alpha=0.0,
                 dtype=np.float32, seed=0):
        import jax
        import jax.numpy as jnp
        import optax

        transform = optax_transform(rule, lr)
        dtype = np.dtype(dtype)
        if dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        self.params = [(jnp.asarray(np.asarray(coef, dtype)), jnp.asarray(np.asarray(intercept, dtype)))
                       for coef, intercept in zip(coefs, intercepts)]
        self.opt_state = transform.init(self.params)
        self.X = jnp.asarray(np.asarray(X, dtype))
        self.targets = jnp.asarray(targets if classification else np.asarray(targets, dtype))

        def loss_of(params, X, targets):
            outputs = X
            for layer, (coef, intercept) in enumerate(params):
                outputs = outputs @ coef + intercept
                if layer < len(params) - 1:
                    outputs = jax.nn.relu(outputs)
            if classification:
                loss = optax.softmax_cross_entropy_with_integer_labels(outputs, targets).mean()
            else:
                loss = 0.5 * jnp.mean((outputs - targets) ** 2)
            if alpha:
                loss = loss + 0.5 * alpha * sum(jnp.sum(coef * coef) for coef, _ in params) / X.shape[0]
            return loss

        n_samples = self.X.shape[0]
        _, over_order = _jax_epoch(loss_of, transform, n_samples, batch_size)

        def epoch(params, opt_state, key, X, targets):
            return over_order(params, opt_state, jax.random.permutation(key, n_samples), X, targets)

        self.key = jax.random.key(seed)
        # compiled ahead, for these shapes: jax.jit would trace and compile this new closure at its first call
        # (far longer than an epoch on a small set), inside whatever times that call
        self._epoch = jax.jit(epoch, donate_argnums=(0, 1)).lower(self.params, self.opt_state, self.key, self.X,
                                                                  self.targets).compile()
        self._split = jax.random.split

    def epoch(self):
        """Train one epoch; its mean training loss (over batches, each before its update)."""
        self.key, key = self._split(self.key)
        self.params, self.opt_state, loss = self._epoch(self.params, self.opt_state, key, self.X, self.targets)
        return float(loss)


def _jax_epoch(loss_of, transform, n_samples, batch_size):
    """``(step, epoch)`` of a JAX + optax training: ``step(carry, rows, X, targets)`` one update of ``transform``
    on ``loss_of(params, X[rows], targets[rows])``, and ``epoch(params, opt_state, order, X, targets)`` its full
    batches of ``order`` in one ``lax.scan``, then the short last one, returning ``(params, opt_state, the mean of
    the batches' losses weighted by their rows)`` (fastgd's epoch loss)."""
    import jax
    import optax

    size = min(batch_size, n_samples)
    n_full = n_samples // size

    def step(carry, rows, X, targets):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_of)(params, X[rows], targets[rows])
        updates, opt_state = transform.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    def epoch(params, opt_state, order, X, targets):
        carry, losses = jax.lax.scan(lambda carry, rows: step(carry, rows, X, targets), (params, opt_state),
                                     order[:n_full * size].reshape(n_full, size))
        total = losses.sum() * size
        if n_full * size < n_samples:
            carry, loss = step(carry, order[n_full * size:], X, targets)
            total = total + loss * (n_samples - n_full * size)
        return (*carry, total / n_samples)

    return step, epoch


def _jax_layer(layer, parameters, x):
    """One resolved layer of a declared network (:class:`fastgd.networks.layers.Resolved`) in JAX, on x of
    shape (n, *layer.in_shape); channels first, as fastgd and torch hold them."""
    import jax
    import jax.numpy as jnp

    n_rows = x.shape[0]
    if layer.kind == "Dense":
        weight, bias = parameters
        x = x.reshape(n_rows, -1) @ weight.T
        return x + bias if bias is not None else x
    if layer.kind in ("ReLU", "Tanh", "Sigmoid", "Identity"):
        return {"ReLU": jax.nn.relu, "Tanh": jnp.tanh, "Sigmoid": jax.nn.sigmoid,
                "Identity": lambda value: value}[layer.kind](x)
    if layer.kind == "Flatten":
        return x.reshape(n_rows, -1)
    # the rest on (n, C, H, W): a 1-D layer is a 2-D one of height 1, as fastgd's kernels take it
    x = x.reshape((n_rows,) + tuple(layer.in_chw))
    top, bottom, left, right = layer.padding
    if layer.kind in ("Conv1D", "Conv2D"):
        weight, bias = parameters
        weight = weight.reshape(weight.shape[:2] + tuple(layer.kernel))
        x = jax.lax.conv_general_dilated(x, weight, tuple(layer.stride), ((top, bottom), (left, right)),
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
        if bias is not None:
            x = x + bias[None, :, None, None]
    elif layer.kind in ("MaxPool1D", "MaxPool2D"):
        x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, *layer.kernel), (1, 1, *layer.stride),
                                  ((0, 0), (0, 0), (top, bottom), (left, right)))
    elif layer.kind in ("AvgPool1D", "AvgPool2D"):
        x = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 1, *layer.kernel), (1, 1, *layer.stride),
                                  "VALID") / (layer.kernel[0] * layer.kernel[1])
    elif layer.kind == "GlobalAvgPool":
        return x.mean(axis=(2, 3))
    else:
        raise NotImplementedError(f"layer {layer.kind} has no JAX translation here")
    return x.reshape((n_rows,) + tuple(layer.out_shape))


class JaxNetworkTraining:
    """A declared network (:class:`fastgd.networks.Network`) trained by JAX + optax as a JAX user writes it: its
    layers as ``jax.lax`` convolutions, windows and products on channels-first arrays, a whole epoch in one
    ``jax.jit`` with ``lax.scan`` over its full batches (and one step for the last, shorter batch); or, with
    ``per_step=True``, one jitted step a batch called from Python. Both are offered because XLA's CPU backend
    runs a convolution's gradient far slower inside ``lax.scan``'s loop than at the top level of a jitted
    function (measured in reports/cnn_epoch_speed*.md), so that a comparison can take the faster.

    θ (``net.unpack``'s tensors, torch's shapes), the loss (torch's cross-entropy on one-hot ``Y`` or mean squared
    error, plus the network's penalty α/(2m)·ΣW²) and Adam (``optax.adam``, torch's update) are fastgd's; the
    epoch takes the order of the rows from the caller (:meth:`epoch`), so that it can take fastgd's batches. θ and
    the optimizer state are donated to the epoch, which is compiled here, for these shapes, so the first epoch is
    as warm as the next. Threads: XLA reads ``XLA_FLAGS`` when JAX first computes (:func:`same_threads`).
    """

    def __init__(self, net, theta, X, Y, lr, batch_size, rule="adam", per_step=False):
        import jax
        import jax.numpy as jnp

        dtype = np.dtype(theta.dtype)
        if dtype != np.float32:
            raise ValueError(f"JaxNetworkTraining trains in float32 (JAX's default), got {dtype}")
        transform = optax_transform(rule, lr)
        tensors = net.unpack(theta)
        self.params = [None if layer.weight_shape is None else
                       (jnp.asarray(tensors[f"{index}.weight"]),
                        jnp.asarray(tensors[f"{index}.bias"]) if layer.has_bias else None)
                       for index, layer in enumerate(net.resolved)]
        self.opt_state = transform.init(self.params)
        X, Y = net.check_data(X, Y, dtype)
        self.X, self.Y = jnp.asarray(np.asarray(X)), jnp.asarray(np.asarray(Y))
        resolved, loss_name, alpha = net.resolved, net.loss_name, net.alpha

        def loss_of(params, X, Y):
            outputs = X
            for layer, parameters in zip(resolved, params):
                outputs = _jax_layer(layer, parameters, outputs)
            if loss_name == "cross_entropy":
                loss = -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(outputs, axis=1), axis=1))
            elif loss_name == "binary_cross_entropy":
                loss = jnp.mean(jnp.logaddexp(0.0, outputs) - outputs * Y)
            else:
                loss = jnp.mean((outputs - Y) ** 2)
            if alpha:
                loss = loss + 0.5 * alpha * sum(jnp.sum(p[0] * p[0]) for p in params if p is not None) / X.shape[0]
            return loss

        n_samples = self.X.shape[0]
        size = min(batch_size, n_samples)
        n_full = n_samples // size
        step, epoch = _jax_epoch(loss_of, transform, n_samples, batch_size)

        self.n_samples, self.batch_size, self.per_step = n_samples, size, per_step
        order = jnp.arange(n_samples, dtype=jnp.int32)
        self._as_order = lambda rows: jnp.asarray(np.asarray(rows, dtype=np.int32))
        if per_step:
            # compiled ahead for the two batch sizes an epoch takes
            one_step = jax.jit(lambda params, opt_state, rows, X, Y: step((params, opt_state), rows, X, Y),
                               donate_argnums=(0, 1))
            self._steps = {rows: one_step.lower(self.params, self.opt_state, order[:rows], self.X, self.Y).compile()
                           for rows in {size, n_samples - n_full * size} - {0}}
            return
        self._epoch = jax.jit(epoch, donate_argnums=(0, 1)).lower(self.params, self.opt_state, order, self.X,
                                                                  self.Y).compile()

    def epoch(self, order):
        """Train one epoch over the rows in ``order`` (a permutation of the rows, batches cut from it in turn); the
        mean of its batches' losses, each taken before its update, weighted by batch size (fastgd's epoch loss)."""
        order = self._as_order(order)
        if not self.per_step:
            self.params, self.opt_state, loss = self._epoch(self.params, self.opt_state, order, self.X, self.Y)
            return float(loss)
        losses = []
        for start in range(0, self.n_samples, self.batch_size):
            rows = order[start:start + self.batch_size]
            (self.params, self.opt_state), loss = self._steps[rows.shape[0]](self.params, self.opt_state, rows,
                                                                             self.X, self.Y)
            losses.append((loss, rows.shape[0]))
        return sum(float(loss) * rows for loss, rows in losses) / self.n_samples

    def theta(self):
        """θ now, in the network's layout (a NumPy float32 vector)."""
        return np.concatenate([np.asarray(array).ravel() for parameters in self.params if parameters is not None
                               for array in parameters if array is not None])
