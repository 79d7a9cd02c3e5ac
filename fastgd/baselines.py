"""The baselines fastgd is compared with, and the machine's own limits, as callables to time.

Each ``*_epoch`` function builds a trainer for one data set and returns a
zero-argument callable that runs ONE training epoch (a 1-hidden-layer ReLU MLP,
softmax/identity output as the data set needs, Adam, mini-batches), so that
every implementation is timed the same way:

* ``fastgd_epoch``: :class:`fastgd.training.Training`, one compiled call;
* ``numpy_epoch``: :func:`fastgd.reference.train_mlp`, plain NumPy;
* ``sklearn_epoch``: scikit-learn's MLPClassifier/MLPRegressor, ``partial_fit``;
* ``torch_epoch``: a plain PyTorch CPU loop (needs torch);
* ``jax_epoch``: JAX + optax with a whole epoch under ``jax.jit`` (:class:`JaxTraining`; needs the
  ``jax`` extra), the compiled peer a user would pick instead of fastgd.

``optimizer_step`` gives one update-rule step for fastgd (serial or parallel
kernel), the NumPy reference or torch.optim; ``in_place_bandwidth`` (the
ceiling of a step of that size), ``triad_bandwidth`` (main memory) and
``gemm_peak`` measure the memory bus and matrix-multiply peak. Used by the
comparison report, the asv suite and the speed scripts.
"""

import time
import warnings

import numpy as np

from fastgd import optim, reference

__all__ = ["IMPLEMENTATIONS", "TORCH_OPTIMIZERS", "fastgd_epoch", "numpy_epoch", "sklearn_epoch", "torch_epoch",
           "jax_epoch", "JaxTraining", "optax_transform", "available", "jax_available",
           "optimizer_step", "arrays_written", "bytes_moved", "bytes_per_parameter", "in_place_streams",
           "in_place_bandwidth", "triad_bandwidth",
           "gemm_peak", "median_seconds", "best_seconds", "torch_available"]

IMPLEMENTATIONS = ("fastgd", "numpy", "sklearn", "torch", "jax")
# torch.optim's class for each rule (the names of the hyperparameters are the same); Lion, LAMB,
# Schedule-Free AdamW and Muon (with AdamW on its vectors) have none
TORCH_OPTIMIZERS = {"sgd": "SGD", "momentum": "SGD", "nesterov": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop",
                    "adadelta": "Adadelta", "adam": "Adam", "amsgrad": "Adam", "adamax": "Adamax", "nadam": "NAdam",
                    "adamw": "AdamW", "radam": "RAdam", "rprop": "Rprop", "asgd": "ASGD", "adafactor": "Adafactor"}


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def jax_available():
    try:
        import jax  # noqa: F401
        import optax  # noqa: F401
    except ImportError:
        return False
    return True


def available(implementation):
    """Whether ``implementation`` (one of :data:`IMPLEMENTATIONS`) can run here: its optional packages are installed."""
    return {"torch": torch_available, "jax": jax_available}.get(implementation, lambda: True)()


def _timings(function, repeats, number, warmup):
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            function()
        times.append((time.perf_counter() - start) / number)
    return times


def median_seconds(function, repeats=7, number=1, warmup=1):
    """Median over ``repeats`` of the mean seconds of ``number`` calls, after ``warmup`` calls."""
    return float(np.median(_timings(function, repeats, number, warmup)))


def best_seconds(function, repeats=7, number=1, warmup=1):
    """The least over ``repeats`` of the mean seconds of ``number`` calls: for a ceiling, as STREAM reports one."""
    return float(np.min(_timings(function, repeats, number, warmup)))


# -- one training epoch -------------------------------------------------------------------------

def _sizes(data, hidden):
    return [data.n_features, hidden, data.n_outputs]


def fastgd_epoch(data, hidden=32, batch_size=32, rule="adam", lr=1e-3, dtype=np.float64, seed=0):
    from fastgd.models import MLP
    from fastgd.training import Training

    net = MLP(_sizes(data, hidden), "relu", data.output, alpha=1e-4, dtype=dtype)
    optimizer = optim.OPTIMIZERS[rule](net.init(random_state=seed), lr=lr, layout=net.layout)
    training = Training(net, optimizer, data.X_train, data.Y_train, min(batch_size, data.X_train.shape[0]),
                        seed=seed)
    return training.epoch


def numpy_epoch(data, hidden=32, batch_size=32, rule="adam", lr=1e-3, dtype=np.float64, seed=0):
    from fastgd.models import MLP

    sizes = _sizes(data, hidden)
    theta = MLP(sizes, "relu", data.output, dtype=dtype).init(random_state=seed)
    X, Y = data.X_train.astype(dtype), data.Y_train.astype(dtype)
    epochs = iter(range(1 << 62))

    def epoch():
        # one epoch of the reference loop; its optimizer state restarts each call, which
        # changes the numbers but not the work done
        reference.train_mlp(theta, X, Y, sizes, "relu", data.output, 1e-4, rule, dict(lr=lr),
                            min(batch_size, X.shape[0]), 1, seed=seed + next(epochs))

    return epoch


def sklearn_epoch(data, hidden=32, batch_size=32, rule="adam", lr=1e-3, dtype=np.float64, seed=0):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    if rule not in ("sgd", "adam"):
        raise NotImplementedError(f"scikit-learn's MLP has no {rule}")
    settings = dict(hidden_layer_sizes=(hidden,), solver=rule, learning_rate_init=lr, alpha=1e-4,
                    batch_size=min(batch_size, data.X_train.shape[0]), random_state=seed, max_iter=1)
    if data.task == "classification":
        model, y = MLPClassifier(**settings), data.y_train
    else:
        model, y = MLPRegressor(**settings), data.y_train
    X = data.X_train.astype(dtype)
    classes = np.arange(data.n_classes) if data.task == "classification" else None

    def epoch():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if classes is not None:
                model.partial_fit(X, y, classes=classes)
            else:
                model.partial_fit(X, y)

    return epoch


def torch_epoch(data, hidden=32, batch_size=32, rule="adam", lr=1e-3, dtype=np.float32, seed=0):
    import torch

    if rule not in TORCH_OPTIMIZERS:
        raise NotImplementedError(f"torch.optim has no {rule}")
    torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    X = torch.tensor(data.X_train, dtype=torch_dtype)
    model = torch.nn.Sequential(torch.nn.Linear(data.n_features, hidden), torch.nn.ReLU(),
                                torch.nn.Linear(hidden, data.n_outputs)).to(torch_dtype)
    if data.task == "classification":
        y, loss_function = torch.tensor(data.y_train), torch.nn.CrossEntropyLoss()
    else:
        y, loss_function = torch.tensor(data.Y_train, dtype=torch_dtype), torch.nn.MSELoss()
    optimizer = getattr(torch.optim, TORCH_OPTIMIZERS[rule])(model.parameters(), lr=lr)
    batch_size = min(batch_size, len(X))

    def epoch():
        order = torch.randperm(len(X), generator=generator)
        for first in range(0, len(X), batch_size):
            rows = order[first:first + batch_size]
            optimizer.zero_grad()
            loss_function(model(X[rows]), y[rows]).backward()
            optimizer.step()

    return epoch


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

        def step(carry, rows, X, targets):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_of)(params, X[rows], targets[rows])
            updates, opt_state = transform.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        n_samples = self.X.shape[0]
        size = min(batch_size, n_samples)
        n_full = n_samples // size

        def epoch(params, opt_state, key, X, targets):
            order = jax.random.permutation(key, n_samples)
            carry, losses = jax.lax.scan(lambda carry, rows: step(carry, rows, X, targets), (params, opt_state),
                                         order[:n_full * size].reshape(n_full, size))
            total = losses.sum() * size
            if n_full * size < n_samples:
                carry, loss = step(carry, order[n_full * size:], X, targets)
                total = total + loss * (n_samples - n_full * size)
            return (*carry, total / n_samples)

        self.key = jax.random.key(seed)
        # compiled ahead, for these shapes: jax.jit would trace and compile this new closure at its first call
        # (about a second, against 2 ms for an epoch on digits), inside whatever times that call
        self._epoch = jax.jit(epoch, donate_argnums=(0, 1)).lower(self.params, self.opt_state, self.key, self.X,
                                                                  self.targets).compile()
        self._split = jax.random.split

    def epoch(self):
        """Train one epoch; its mean training loss (over batches, each before its update)."""
        self.key, key = self._split(self.key)
        self.params, self.opt_state, loss = self._epoch(self.params, self.opt_state, key, self.X, self.targets)
        return float(loss)


def jax_epoch(data, hidden=32, batch_size=32, rule="adam", lr=1e-3, dtype=np.float64, seed=0):
    from fastgd.models import MLP

    net = MLP(_sizes(data, hidden), "relu", data.output, alpha=1e-4, dtype=dtype)
    coefs, intercepts = net.unpack(net.init(random_state=seed))
    classification = data.task == "classification"
    training = JaxTraining(coefs, intercepts, data.X_train, data.y_train if classification else data.Y_train,
                           classification, rule, lr, batch_size, alpha=1e-4, dtype=dtype, seed=seed)
    return training.epoch


# -- one update-rule step -----------------------------------------------------------------------

def arrays_written(rule):
    """How many parameter-sized arrays a step of ``rule`` (default hyperparameters) writes in place: θ and its state."""
    state = optim.OPTIMIZERS[rule](np.zeros(1)).state
    return 1 + sum(isinstance(value, np.ndarray) and value.shape == (1,) for value in state.values())


def bytes_per_parameter(rule, dtype):
    """Bytes one step moves per parameter: θ and g read, θ written, each state array read and written."""
    return bytes_moved(arrays_written(rule), dtype)


def optimizer_step(rule, size, dtype=np.float32, implementation="fastgd", seed=0):
    """A zero-argument callable taking one step of ``rule`` on ``size`` parameters.

    ``implementation``: "fastgd" (the class, serial or parallel by size),
    "fastgd-serial", "fastgd-parallel", "numpy" or "torch" (fused when torch
    has a fused kernel for the rule and dtype, else its default).
    """
    rng = np.random.default_rng(seed)
    params = rng.standard_normal(size).astype(dtype)
    grad = rng.standard_normal(size).astype(dtype)
    if implementation.startswith("fastgd"):
        from fastgd import _config

        threshold = {"fastgd": _config.PARALLEL_THRESHOLD, "fastgd-serial": 1 << 62, "fastgd-parallel": 1}
        saved, _config.PARALLEL_THRESHOLD = _config.PARALLEL_THRESHOLD, threshold[implementation]
        try:
            optimizer = optim.OPTIMIZERS[rule](params)
        finally:
            _config.PARALLEL_THRESHOLD = saved
        return lambda: optimizer.step(grad)
    if implementation == "numpy":
        optimizer = reference.ReferenceOptimizer(rule, params)
        return lambda: optimizer.step(grad)
    if implementation == "torch":
        import torch

        if rule not in TORCH_OPTIMIZERS:
            raise NotImplementedError(f"torch.optim has no {rule}")
        tensor = torch.from_numpy(params).requires_grad_(True)
        tensor.grad = torch.from_numpy(grad)
        hyperparameters = optim.OPTIMIZERS[rule](np.zeros(1, dtype)).hyperparameters
        cls = getattr(torch.optim, TORCH_OPTIMIZERS[rule])
        try:
            optimizer = cls([tensor], **hyperparameters, fused=True)
            optimizer.step()
        except (RuntimeError, TypeError, ValueError):  # no fused kernel for this rule or dtype
            optimizer = cls([tensor], **hyperparameters)
        return optimizer.step
    raise ValueError(f"unknown implementation {implementation!r}")


# -- the machine --------------------------------------------------------------------------------

def bytes_moved(arrays, dtype, size=1):
    """Bytes a step writing ``arrays`` arrays in place moves over ``size`` elements: those read and written, and g."""
    return (2 * arrays + 1) * np.dtype(dtype).itemsize * size


def in_place_streams(size, arrays, dtype=np.float32):
    """(call, bytes): a step's memory traffic alone, ``arrays`` vectors of ``size`` updated in place from one more.

    The ceiling of a step that writes as many arrays (θ and its state, see
    :func:`arrays_written`) over as many elements, counted the same way
    (:func:`bytes_moved`).
    """
    from fastgd.kernels.memory import MAX_STREAMS, in_place_streams as kernel

    if not 1 <= arrays <= MAX_STREAMS:
        raise ValueError(f"arrays must be from 1 to {MAX_STREAMS}, got {arrays}")
    dtype = np.dtype(dtype)
    written, grad, scalar = np.ones((arrays, size), dtype), np.ones(size, dtype), dtype.type(1e-7)
    return (lambda: kernel(written, grad, scalar)), bytes_moved(arrays, dtype, size)


def in_place_bandwidth(size, dtype=np.float32, arrays=1, repeats=7):
    """Bytes/s of :func:`in_place_streams`, all threads: the ceiling of a step of that size writing as many arrays.

    Measure it in the same run as the steps it bounds, at their size and
    dtype: the working set decides whether both stream from cache or from memory.
    """
    call, moved = in_place_streams(size, arrays, dtype)
    # the best time, as STREAM reports: a ceiling should not sink with the machine's load, or medians of the
    # steps it bounds would pass it
    return moved / best_seconds(call, repeats)


def triad_bandwidth(size=20_000_000, repeats=7):
    """STREAM triad a = b + s·c over float64 with all threads, bytes/s counted as STREAM does (24 B per element).

    Main memory's bandwidth when the arrays outgrow the last-level cache; not a
    step's ceiling (see :func:`in_place_bandwidth`).
    """
    from fastgd.kernels.memory import triad

    a, b, c = np.zeros(size), np.ones(size), np.full(size, 2.0)
    return 24 * size / median_seconds(lambda: triad(a, b, c, 3.0), repeats)


def gemm_peak(dtype=np.float64, size=2048, repeats=5):
    """FLOP/s of a large square matrix product through NumPy's BLAS."""
    a = np.random.default_rng(0).random((size, size)).astype(dtype)
    return 2 * size**3 / median_seconds(lambda: a @ a, repeats)
