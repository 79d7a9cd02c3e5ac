"""Compiled training of any network (an MLP is one): one compiled call per epoch, Python only between epochs.

    >>> import numpy as np
    >>> from fastgd import MLP, optim
    >>> from fastgd.training import Training
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3)); Y = X @ np.array([[1.0], [-2.0], [0.5]])
    >>> net = MLP([3, 1], output="identity", alpha=0.0)             # linear regression
    >>> theta = net.init(random_state=0)
    >>> training = Training(net, optim.Adam(theta, lr=0.05), X, Y, batch_size=32, seed=0)
    >>> history = training.run(n_epochs=100)
    >>> bool(history.loss[-1] < 1e-3), history.diverged_epoch
    (True, None)

Batch GD is ``batch_size >= n_samples``, SGD ``batch_size=1``, mini-batch
anything between. The optimizer object is the state: its params are θ, its
state arrays are updated in place, and its step count advances, so training can
continue (``partial_fit``) or be inspected (``state_dict``) afterwards.

With an optimizer over a device array (see :mod:`fastgd.optim`) the epochs
run on the GPU (:mod:`fastgd.cuda.train`): X and Y are uploaded once (or
taken as they are when already on the device), the same batches and the same
math as on the CPU, one host synchronisation per epoch.

Every network is a :class:`fastgd.networks.Network` declaration (:class:`fastgd.MLP` is one) and trains through
the same compiled epoch: its ``epoch_pass`` is the MLP's passes (:func:`fastgd.kernels.train.model_entry`, the
calibrated candidates) for a scikit-learn-order Dense stack, else the plan pass, a C callback of the same
signature (:func:`fastgd.kernels.train.network_entry`); :func:`epoch_arguments` builds the epoch's argument list
from it and the optimizer. X may come as (n, *input_shape) or flat. With an optimizer over a device array the epochs
run on the GPU: the MLP's (:func:`fastgd.cuda.train.train_epoch`) or the plan's
(:func:`fastgd.cuda.train.train_network_epoch`, the pass of :mod:`fastgd.cuda.network`).
"""

import contextlib
import math
import numbers
import threading
import time
from dataclasses import dataclass, field, replace

import numba
import numpy as np

from fastgd import _config, calibration, threads
from fastgd.kernels import schedules as schedule_kernels
from fastgd.kernels.train import THREADED_MIN_MULTIPLY_ADDS, multiply_adds, pass_blocks, train_epoch
from fastgd.optim import Optimizer

__all__ = ["History", "Training", "make_schedule", "SCHEDULES", "DIVERGENCE_FACTOR", "divergence_threshold",
           "is_divergent", "first_divergent_epoch", "epoch_arguments", "runs_together_arguments", "LBFGSResult",
           "fit_lbfgs",
           "LBFGS_HISTORY_SIZE", "LBFGS_TOLERANCE_CHANGE", "lbfgs_epochs"]

SCHEDULES = tuple(schedule_kernels.SCHEDULES)

# the clock of the host epochs' seconds (History.seconds, and what the pass adaptation weighs); a test can put a
# fake one here to play a busy machine
clock = time.perf_counter
# the batches of each pass a plan-pass network's probe times before its first epoch (_HostEpochs._probe_network)
NETWORK_PROBE_BATCHES = 2

# Divergence, defined here once for Training, the estimators and the sweeps: an epoch
# diverges when its loss is NaN or infinite, or above DIVERGENCE_FACTOR times the first
# epoch's loss (or times 1, when the first loss is below 1). The first epoch's loss is
# the mean of its batches' losses, each taken before that batch's update: with full
# batches it is the loss at the starting parameters. A run whose loss grew ten-thousand-fold
# is lost: no schedule or rule here brings it back, and the float overflow it heads for
# would only say so later. The floor of 1 keeps a run that starts near a perfect fit
# (a warm start) from being called diverged when its loss wobbles by small absolute amounts.
DIVERGENCE_FACTOR = 1e4


def divergence_threshold(first_loss):
    """The loss above which an epoch counts as diverged, given the first epoch's loss."""
    return DIVERGENCE_FACTOR * max(float(first_loss), 1.0)


def is_divergent(loss, first_loss):
    """True for a NaN or infinite loss, or one above :func:`divergence_threshold` (``first_loss`` None: finite only)."""
    loss = float(loss)
    if not math.isfinite(loss):
        return True
    return first_loss is not None and loss > divergence_threshold(first_loss)


def first_divergent_epoch(losses, first_loss=None):
    """The 1-based epoch of ``losses`` that diverged first, or None; ``first_loss`` defaults to ``losses[0]``."""
    for epoch, loss in enumerate(losses):
        if first_loss is None and math.isfinite(loss):
            first_loss = float(loss)
        if is_divergent(loss, first_loss):
            return epoch + 1
    return None


def make_schedule(name="constant", *, gamma=0.1, step_size=10, power_t=0.5, eta_min=0.0, t_max=None,
                  warmup_steps=0, n_epochs=None, t_0=10, t_mult=2, warmup_fraction=0.1, decay_fraction=0.1):
    """The float64 schedule vector of :mod:`fastgd.kernels.schedules`, checked.

    ``name``: constant, step (× ``gamma`` every ``step_size`` epochs),
    exponential (× ``gamma`` per epoch), invscaling (scikit-learn's: ÷ (t + 1)^``power_t`` for
    the whole epoch, t the samples seen before it; :class:`Training` fills in its rows), cosine (to ``eta_min`` over
    ``t_max`` epochs, by default ``n_epochs``), and the Crowded Valley study's: cosine_restarts (torch's
    CosineAnnealingWarmRestarts: cosine to ``eta_min`` over ``t_0`` epochs, then again over ``t_0·t_mult``, ...),
    warmup_linear (linear warm-up over the first ``warmup_fraction`` of ``t_max``'s epochs, then linear decay to
    ``eta_min`` at ``t_max``) and trapezoidal (the same warm-up, constant, then linear decay to ``eta_min`` over the
    last ``decay_fraction`` of the epochs, at least one). A fraction of the epochs is rounded half up to whole
    epochs. ``warmup_steps`` > 0 adds a linear warm-up over that many update steps to any of them.
    Raises ValueError, one line naming the parameter, for a value out of its range.
    """
    if name not in schedule_kernels.SCHEDULES:
        raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {name!r}")
    if t_max is None:
        t_max = n_epochs if n_epochs is not None else 1
    checks = [("gamma", gamma, 0 < gamma), ("step_size", step_size, step_size >= 1),
              ("power_t", power_t, power_t >= 0), ("eta_min", eta_min, eta_min >= 0),
              ("t_max", t_max, t_max > 0), ("warmup_steps", warmup_steps, warmup_steps >= 0),
              ("t_0", t_0, t_0 >= 1 and float(t_0).is_integer()),
              ("t_mult", t_mult, t_mult >= 1 and float(t_mult).is_integer()),
              ("warmup_fraction", warmup_fraction, 0 <= warmup_fraction < 1),
              ("decay_fraction", decay_fraction, 0 < decay_fraction <= 1)]
    for key, value, ok in checks:
        if not (isinstance(value, numbers.Real) and math.isfinite(value) and ok):
            raise ValueError(f"Invalid {key} for the {name} schedule: {value}")
    warmup_epochs = decay_epochs = 0
    if name in ("warmup_linear", "trapezoidal"):
        warmup_epochs = math.floor(warmup_fraction * t_max + 0.5)
        decay_epochs = (t_max - warmup_epochs if name == "warmup_linear"
                        else max(1, math.floor(decay_fraction * t_max + 0.5)))
        if warmup_epochs + decay_epochs > t_max or decay_epochs < 1:
            raise ValueError(f"Invalid warmup_fraction for the {name} schedule over {t_max} epochs: "
                             f"{warmup_epochs} warm-up and {decay_epochs} decay epochs do not fit")
    vector = np.zeros(schedule_kernels.SIZE)
    vector[[schedule_kernels.KIND, schedule_kernels.GAMMA, schedule_kernels.STEP_SIZE, schedule_kernels.POWER_T,
            schedule_kernels.ETA_MIN, schedule_kernels.T_MAX, schedule_kernels.WARMUP_STEPS, schedule_kernels.T_0,
            schedule_kernels.T_MULT, schedule_kernels.WARMUP_EPOCHS, schedule_kernels.DECAY_EPOCHS]] = [
        schedule_kernels.SCHEDULES[name], gamma, int(step_size), power_t, eta_min, t_max, int(warmup_steps),
        int(t_0), int(t_mult), warmup_epochs, decay_epochs]
    return vector


@dataclass
class History:
    """What training recorded, one entry per completed epoch."""

    loss: list = field(default_factory=list)  # mean training loss of the epoch's batches
    seconds: list = field(default_factory=list)  # wall-clock seconds since training started, at epoch end
    diverged_epoch: int = None  # 1-based epoch that diverged (see is_divergent); None if none
    diverged_loss: float = None  # that epoch's loss: NaN, infinite, or above divergence_threshold(first_loss)
    # the reference of the divergence test: the first epoch's loss unless set before the
    # first epoch (an estimator continuing a fit keeps the loss its first fit started from)
    first_loss: float = None
    passes: list = field(default_factory=list)  # the pass each epoch ran (fastgd._config.PASSES), one per epoch run
    # why the pass changed while training (fastgd.calibration.PassAdaptation), one line per switch
    pass_changes: list = field(default_factory=list)

    @property
    def diverged(self):
        return self.diverged_epoch is not None

    def divergence_reason(self):
        """Why training diverged, as a phrase ("the loss became nan"); None if it did not."""
        if not self.diverged:
            return None
        if math.isnan(self.diverged_loss):
            return "the loss or the parameters became NaN"
        if math.isinf(self.diverged_loss):
            return f"the loss became {self.diverged_loss}"
        return (f"the loss became {self.diverged_loss:.4g}, above {DIVERGENCE_FACTOR:g} times the first epoch's loss "
                f"({self.first_loss:.4g}, or 1 if lower)")


class Training:
    """A network, an optimizer over its θ, and a training set: epochs run compiled.

    Parameters
    ----------
    net : fastgd.networks.Network (fastgd.MLP is one)
    optimizer : fastgd.optim.Optimizer
        Its ``params`` is θ (``net.n_params`` of the declared ``net.dtype``, else of float32 or float64).
    X, Y : arrays
        Training data, as :meth:`fastgd.networks.Network.check_data` takes them.
    batch_size : int
        Samples per update; ≥ n_samples is batch gradient descent.
    shuffle : bool
        Reshuffle every epoch; the order depends only on (``seed``, epoch).
    seed : int
        Seed of the shuffling.
    schedule : ndarray, optional
        From :func:`make_schedule`; constant by default.
    clip_norm : float, optional
        Clip each gradient to this global L2 norm.
    """

    def __init__(self, net, optimizer, X, Y, batch_size, shuffle=True, seed=0, schedule=None, clip_norm=None):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastgd.optim optimizer, got {type(optimizer).__name__}")
        on_device = optimizer.device == "cuda"
        if on_device:
            theta = _check_device_network_theta(net, optimizer.params)
            X, Y = _device_network_data(net, X, Y, theta.dtype)
        else:
            theta = net._check_theta(optimizer.params)
            X, Y = net.check_data(X, Y, theta.dtype)
            X = X.reshape(X.shape[0], -1)  # the epoch gathers flat rows
        if X.shape[0] == 0:
            raise ValueError("the training set is empty")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if clip_norm is not None and not (clip_norm > 0 and math.isfinite(clip_norm)):
            raise ValueError(f"clip_norm must be a positive number or None, got {clip_norm!r}")
        if optimizer.rule.uses_layout and optimizer.layout != net.layout:
            raise ValueError(f"{optimizer.name} acts per weight matrix: build the optimizer with layout=net.layout "
                             f"({net.layout}), not {optimizer.layout}")
        self.net, self.optimizer, self.X, self.Y = net, optimizer, X, Y
        self.dtype = np.dtype(theta.dtype)
        net.check_fits(int(min(batch_size, X.shape[0])), self.dtype)
        # a rule that trains at one point and evaluates at another reports the loss at its evaluation point
        self._evaluates_elsewhere = optimizer.rule.evaluation is not None
        # the evaluation point after the last epoch (a host array), for a rule that has one; else None
        self.evaluation = None
        if self._evaluates_elsewhere:
            self.evaluation = np.empty(net.n_params, self.dtype)
            self._host_data = (X.copy_to_host(), Y.copy_to_host()) if on_device else (X, Y)
        self.theta = theta
        self.batch_size = int(min(batch_size, X.shape[0]))
        self.shuffle = bool(shuffle)
        self.seed = int(seed) & 0x7FFFFFFFFFFFFFFF
        self.schedule = make_schedule() if schedule is None else np.array(schedule, dtype=np.float64)
        self.schedule[schedule_kernels.SAMPLES_PER_EPOCH] = X.shape[0]  # invscaling counts the samples seen
        self.clip_norm = 0.0 if clip_norm is None else float(clip_norm)
        self.epochs_done = 0
        self.history = History()
        self._seconds = 0.0
        # where the epochs run, chosen once: every epoch then calls the same object. On the device the MLP's passes
        # (net.stack) have their own epoch, every other network the plan pass's
        self._epochs = (_HostEpochs if not on_device else _DeviceNetworkEpochs if net.stack is None
                        else _DeviceEpochs)(self)

    def _blocks(self):
        """This epoch's model pass: 1 for the serial pass, else a threaded one (calibration.training_pass)."""
        return self._epochs.blocks()

    @property
    def pass_name(self):
        """The name of the pass the next epoch takes at today's thread count (:data:`fastgd._config.PASSES`; the
        device's own pass is ``serial``)."""
        return self._epochs.pass_name()

    @property
    def threaded(self):
        """Whether the next epoch takes the threaded pass (:mod:`fastgd.kernels.threaded`) at today's thread count.

        Its threads should not share the cores with a BLAS pool's: OpenBLAS's workers spin on
        a core for a while after each product, and every parallel region of the pass then
        waits for a thread that has no core (:func:`fastgd.threads.blas_limit`).
        """
        return self._epochs.blocks() != 1

    def epoch(self):
        """Run one epoch; return its mean loss. Records history and divergence.

        The loss is the mean of the batches' losses, each taken before its
        update; for a rule with an evaluation point (Schedule-Free AdamW,
        ASGD) it is the loss over the whole training set at that point after
        the epoch, which is where the model is evaluated.
        """
        if self.history.diverged:
            raise RuntimeError(f"training diverged at epoch {self.history.diverged_epoch}; start a new one")
        epochs = self._epochs
        n_blocks, name = epochs.blocks(), epochs.pass_name()
        # a threaded pass keeps Numba's threads awake between its parallel regions: the rule's step shares them
        packed = self.optimizer.packed(parallel=n_blocks != 1)
        epochs.keep_last_finite()
        loss, seconds, theta_finite = epochs.run(packed, n_blocks)
        self._seconds += seconds
        self.epochs_done += 1
        history = self.history
        history.passes.append(name)
        epochs.measured(name, seconds)  # a switch of pass it causes goes into the history
        if history.first_loss is None and math.isfinite(loss):
            history.first_loss = float(loss)
        if is_divergent(loss, history.first_loss) or not theta_finite:
            history.diverged_epoch = self.epochs_done
            history.diverged_loss = float(loss) if not math.isfinite(loss) or theta_finite else math.nan
            # θ as it was after the last epoch that did not diverge, so predictions stay meaningful
            epochs.restore_last_finite()
            return history.diverged_loss
        if self._evaluates_elsewhere:
            loss = self.net.loss(self.optimizer.evaluation_params(out=self.evaluation), *self._host_data)
        self.history.loss.append(float(loss))
        self.history.seconds.append(self._seconds)
        return float(loss)

    def describe_passes(self):
        """One line: the passes the epochs ran, and each switch with its reason (e.g. for ``fastgd train``)."""
        passes = self.history.passes
        if not passes:
            return "passes: no epoch yet"
        spans, start = [], 0
        for index in range(1, len(passes) + 1):
            if index == len(passes) or passes[index] != passes[start]:
                first, last = start + 1, index
                spans.append(f"{passes[start]} (epoch{'s' if last > first else ''} "
                             f"{first}{f'-{last}' if last > first else ''})")
                start = index
        adapting = self._epochs.adapting()
        why = ("; " + "; ".join(self.history.pass_changes)) if self.history.pass_changes else ""
        return (f"passes: {', '.join(spans)}{why}"
                f"{'' if adapting is None else f' (adapting to the load: {adapting})'}")

    def run(self, n_epochs, callback=None):
        """Up to ``n_epochs`` epochs; stops on divergence (:func:`is_divergent`) or when ``callback(training, loss)``
        returns True."""
        for _ in range(n_epochs):
            loss = self.epoch()
            if self.history.diverged or (callback is not None and callback(self, loss)):
                break
        return self.history


class _HostEpochs:
    """A training's epochs on the CPU: the compiled epoch (:func:`fastgd.kernels.train.train_epoch`) and every
    buffer it writes, allocated once."""

    def __init__(self, training):
        self.training = training
        net, X, Y, theta = training.net, training.X, training.Y, training.theta
        n_rows, dtype = training.batch_size, training.dtype
        self.order = np.empty(X.shape[0], dtype=np.int64)
        self.grad = np.empty_like(theta)
        activations, deltas = net.epoch_workspaces(n_rows)
        self.activations, self.deltas = np.empty(activations, dtype), np.empty(deltas, dtype)
        self.batch_X = np.empty(n_rows * X.shape[1], dtype)
        self.batch_Y = np.empty(n_rows * Y.shape[1], dtype)
        # a closure rule's evaluation point (SAM's θ + ρg/‖g‖), where the second gradient is taken; empty for the
        # other rules
        self.origin = np.empty(theta.size if training.optimizer.rule.closure is not None else 0, dtype)
        self.last_finite = theta.copy()
        self.compiled = None  # the compiled epoch for these argument types
        self.batch_rows = min(n_rows, X.shape[0])
        self.chosen = {}  # thread count -> (name, n_blocks): the model's pass there (calibration.training_pass)
        # thread count -> calibration.PassAdaptation, where the training adapts its pass to the load there
        self.adaptations = {}
        # asked once: a small MLP never starts Numba's thread pool nor loads MKL (unless FASTGD_PASS says so).
        # A network on the plan pass has one pass, whose products take the BLAS's threads: on more than one it
        # weighs that pass against the same on one thread, as an MLP's threaded pass does (on a busy machine a BLAS
        # thread that waits for a core stalls every product: a digits CNN's epoch took 1.6 s on two threads, 0.07 s
        # on one). The MLP's passes (net.stack) are the calibrated candidates.
        self.stack = net.stack
        self.may_thread = numba.config.NUMBA_NUM_THREADS >= 2 if self.stack is None else (_config.PASS != "auto" or (
            numba.config.NUMBA_NUM_THREADS >= 2
            and multiply_adds(self.stack.layer_sizes, self.batch_rows) >= THREADED_MIN_MULTIPLY_ADDS))

    def _next_pass(self):
        """``(name, n_blocks)`` of the next epoch's pass at today's thread count."""
        if not self.may_thread:
            return "serial", 1
        n_threads = threads.get_num_threads()
        if self.stack is None:
            return self._network_pass(n_threads), 1
        chosen = self.chosen.get(n_threads)
        if chosen is None:
            chosen = calibration.training_pass(self.stack.layer_sizes, self.batch_rows, self.training.dtype,
                                               n_threads)
            self.chosen[n_threads] = chosen
            if calibration.adapts(chosen[0], n_threads):
                self.adaptations[n_threads] = self._adaptation(chosen[0], n_threads)
                chosen = self.chosen[n_threads]  # the probe may have found the other threaded pass faster
        adaptation = self.adaptations.get(n_threads)
        if adaptation is None or adaptation.next_pass() == chosen[0]:
            return chosen
        return adaptation.next_pass(), pass_blocks(adaptation.next_pass(), self.batch_rows, n_threads)

    def _network_pass(self, n_threads):
        """A plan-pass network's next pass: ``serial`` (its products on the BLAS's threads), or ``one_thread``
        where FASTGD_PASS says so or the adaptation to the load has moved there. The adaptation starts from a probe
        of a few batches of both before the first epoch (:meth:`_probe_network`), as an MLP's does: on a busy
        machine the serial pass's first epoch alone can cost many times a whole quiet training (a digits CNN's
        epoch, 80 ms quiet, took 3.3 s on two threads while two other processes compiled, AMD EPYC Zen 4)."""
        if _config.PASS == "one_thread":
            return "one_thread"
        if n_threads not in self.adaptations and calibration.adapts("serial", n_threads):
            adaptation = calibration.PassAdaptation("serial")
            self.adaptations[n_threads] = adaptation
            n_batches = -(-self.training.X.shape[0] // self.batch_rows)
            self._switched(adaptation.start(self._probe_network(), n_batches), n_threads)
        adaptation = self.adaptations.get(n_threads)
        return "serial" if adaptation is None else adaptation.next_pass()

    def _probe_network(self):
        """Seconds a batch of a plan-pass network's ``one_thread`` and ``serial`` passes: each runs the epoch's own
        compiled function (no code compiled for the probe) on the data's first :data:`NETWORK_PROBE_BATCHES`
        batches in order, once untimed to wake its threads, then timed; on copies of θ, of the rule's state and of
        the schedule, so the training itself is not moved. ``one_thread`` first: the serial pass's BLAS threads
        spin for a while after their last product (:func:`fastgd.calibration.measure`), and nothing follows it
        here but the first epoch, which takes the BLAS's threads as they are."""
        training = self.training
        rows = min(training.X.shape[0], NETWORK_PROBE_BATCHES * self.batch_rows)
        packed = training.optimizer.packed()
        copied = replace(packed, hyper=packed.hyper.copy(), states=packed.states.copy(), aux=packed.aux.copy(),
                         counters=packed.counters.copy())
        arguments = epoch_arguments(training.net.epoch_pass(training.dtype, training.batch_size, 1), copied,
                                    training.theta.copy(), training.X[:rows], training.Y[:rows],
                                    training.schedule.copy(), training.clip_norm, training.batch_size, False,
                                    training.seed, 0, (np.empty(rows, np.int64), self.grad, self.activations,
                                                       self.deltas, self.batch_X, self.batch_Y, self.origin))
        compiled = self._compiled(arguments)
        one_thread, serial = threads.seconds_on_one_and_all(lambda: compiled(*arguments), clock)
        n_batches = -(-rows // self.batch_rows)
        return {"one_thread": one_thread / n_batches, "serial": serial / n_batches}

    def _adaptation(self, chosen, n_threads):
        """The adaptation of the pass to the load, started from a probe of a few batches of the passes
        :func:`calibration.start_candidates` names (one round, :func:`calibration.measure`). With no calibration
        cached that weighs the two threaded passes as well: the faster is the one the adaptation keeps
        (``self.chosen``), for this training only. Its switches, if any, go into the history."""
        sizes, dtype, fallback = self.stack.layer_sizes, self.training.dtype, calibration.FALLBACK_PASS
        names = calibration.start_candidates(sizes, self.batch_rows, dtype, n_threads, chosen)
        batch_seconds, _ = calibration.measure(sizes, self.batch_rows, dtype, n_threads,
                                               calibration.PROBE_BATCH_SECONDS, names=names, min_rounds=1)
        threaded = min(names[:-1], key=batch_seconds.get)
        if threaded != chosen:
            self.chosen[n_threads] = (threaded, pass_blocks(threaded, self.batch_rows, n_threads))
            self._switched(f"before epoch 1: {threaded} took {batch_seconds[threaded] * 1e3:.3g} ms a batch, "
                           f"{chosen} {batch_seconds[chosen] * 1e3:.3g} ms: {threaded} from here", n_threads)
        adaptation = calibration.PassAdaptation(threaded, fallback)
        self._switched(adaptation.start(batch_seconds, -(-self.training.X.shape[0] // self.batch_rows)), n_threads)
        return adaptation

    def _switched(self, line, n_threads):
        """Record a switch of pass (``line``; None where there was none): in the training's history, and for
        ``fastgd info`` (:func:`fastgd.calibration.remember_switch`)."""
        if line is None:
            return
        self.training.history.pass_changes.append(line)
        net = self.training.net
        network = f"{type(net).__name__}({net.n_params} parameters)" if self.stack is None else self.stack.layer_sizes
        calibration.remember_switch(network, self.batch_rows, self.training.dtype, n_threads, line)

    def blocks(self):
        return self._next_pass()[1]

    def pass_name(self):
        return self._next_pass()[0]

    def measured(self, name, seconds):
        """Tell the adaptation at today's thread count, if any, that an epoch ran on ``name`` for ``seconds``; a
        switch this causes is recorded (:meth:`_switched`)."""
        n_threads = threads.get_num_threads()
        adaptation = self.adaptations.get(n_threads) if self.may_thread else None
        if adaptation is not None:
            self._switched(adaptation.record(name, seconds), n_threads)

    def adapting(self):
        """None where the epochs do not adapt their pass at today's thread count, else which passes they weigh."""
        adaptation = self.adaptations.get(threads.get_num_threads()) if self.may_thread else None
        return None if adaptation is None else f"{adaptation.current} against {adaptation.other}"

    def keep_last_finite(self):
        theta = self.training.theta
        if not theta.flags.writeable:
            raise ValueError("theta must be writeable: training updates it in place")
        self.last_finite[...] = theta

    def restore_last_finite(self):
        self.training.theta[...] = self.last_finite

    def run(self, packed, n_blocks):
        """One epoch: ``(mean loss, seconds, whether θ is finite)``."""
        training = self.training
        arguments = epoch_arguments(training.net.epoch_pass(training.dtype, training.batch_size, n_blocks), packed,
                                    training.theta, training.X, training.Y, training.schedule, training.clip_norm,
                                    training.batch_size, training.shuffle, training.seed, training.epochs_done,
                                    (self.order, self.grad, self.activations, self.deltas, self.batch_X,
                                     self.batch_Y, self.origin))
        self._compiled(arguments)
        # the one_thread pass: this epoch's loops and the BLAS on one thread, whatever the count set
        one_thread = self.may_thread and self.pass_name() == "one_thread"
        with threads.limit(1) if one_thread else contextlib.nullcontext():
            start = clock()
            loss = self.compiled(*arguments)
            seconds = clock() - start
        return loss, seconds, bool(np.isfinite(training.theta).all())

    def _compiled(self, arguments):
        """The compiled epoch for ``arguments``' types, compiled (or loaded from the cache) at the first call, before
        any clock starts: epoch seconds are training only. Every later epoch, and the probe, passes arrays and
        scalars of the same types."""
        if self.compiled is None:
            self.compiled = _config.compile_for(train_epoch, arguments)
        return self.compiled


def _model_and_rule(model_pass, theta, X, Y, function, hyper, base_lr, states, aux, counters, layout, ascent,
                    schedule, clip_norm, batch_size):
    """The places an epoch's arguments begin with, one run's or many runs' (θ, hyperparameters, base learning rate,
    states, aux and counters stacked by run): the model's (its ``epoch_pass``), then the rule's step and its state,
    the schedule, the clipping and the batch size. :func:`epoch_arguments` and :func:`runs_together_arguments`
    build on it, so the two declarations, the model's and the rule's, reach both compiled epochs one way."""
    entry, structure, code, second_code, alpha = model_pass
    return (entry, theta, X, Y, structure, code, second_code, alpha, function, hyper, base_lr, states, aux, counters,
            layout, ascent, schedule,
            # None: an epoch that does not clip does not compile the clipping
            clip_norm if clip_norm > 0.0 else None, batch_size)


def epoch_arguments(model_pass, packed, theta, X, Y, schedule, clip_norm, batch_size, shuffle, seed, epoch,
                    workspaces):
    """The argument list of :func:`fastgd.kernels.train.train_epoch`, from the model's places and the rule's.

    ``model_pass``: the model's ``epoch_pass(dtype, batch_size, n_blocks)`` (:meth:`fastgd.MLP.epoch_pass`,
    :meth:`fastgd.networks.Network.epoch_pass`); ``packed``: the optimizer's ``packed()`` step and state;
    ``clip_norm``: 0 for no clipping; ``workspaces``: ``(order, grad, activations, deltas, batch_X, batch_Y,
    origin)``, ``activations`` and ``deltas`` of the model's ``epoch_workspaces(batch_size)`` elements, ``origin``
    θ's size for a rule with a closure (``packed.ascent``), else empty.
    """
    return _model_and_rule(model_pass, theta, X, Y, packed.function, packed.hyper, packed.hyper[0], packed.states,
                           packed.aux, packed.counters, packed.layout, packed.ascent, schedule, clip_norm,
                           batch_size) + (shuffle, seed, epoch) + tuple(workspaces)


def runs_together_arguments(net, packs, thetas, X, Y, schedule, batch_size, seeds, n_epochs, outputs):
    """The argument list of :func:`fastgd.kernels.train.train_runs_together`: runs of one rule (``packs``, each
    run's optimizer's ``packed()``, one compiled step) of ``net`` on (X, Y), each from its own θ (``thetas``, runs ×
    parameters) and shuffling seed (``seeds``). The serial pass: each run is one thread's work. No clipping.

    ``outputs``: ``(losses, seconds, diverged, track, objectives)``, what the runs fill (and ``track``, which of
    them evaluate the full objective after each epoch). The hyperparameters, states, aux and counters are the packs'
    stacked by run; each run's base learning rate is its first hyperparameter, as one run's is."""
    hypers = np.stack([pack.hyper for pack in packs])
    n_rows = min(batch_size, X.shape[0])
    losses, seconds, diverged, track, objectives = outputs
    return _model_and_rule(net.epoch_pass(thetas.dtype, n_rows), thetas, X, Y, packs[0].function, hypers,
                           hypers[:, 0].copy(), np.stack([pack.states for pack in packs]),
                           np.stack([pack.aux for pack in packs]), np.stack([pack.counters for pack in packs]),
                           packs[0].layout, packs[0].ascent, schedule, 0.0, batch_size) + (
        seeds, n_epochs, *net.epoch_workspaces(n_rows), losses, seconds, diverged, track,
        # the MLP's passes take an empty gradient as a request for the loss alone; the plan pass runs its backward
        net.stack is not None, objectives)


class _DeviceEpochs:
    """A training's epochs on the GPU (:func:`fastgd.cuda.train.train_epoch`), its workspace allocated once."""

    def __init__(self, training):
        from numba import cuda

        from fastgd.cuda import train as cuda_train

        self.training, self.cuda_train = training, cuda_train
        self.workspace = cuda_train.DeviceWorkspace(training.net, training.theta, training.X.shape[0],
                                                    training.batch_size)
        self.last_finite = cuda.device_array_like(training.theta)

    def blocks(self):
        return 1  # one pass, the device's

    def pass_name(self):
        return "serial"

    def measured(self, name, seconds):
        pass  # one pass: nothing to adapt

    def adapting(self):
        return None

    def keep_last_finite(self):
        self.last_finite.copy_to_device(self.training.theta)

    def restore_last_finite(self):
        self.training.theta.copy_to_device(self.last_finite)

    def run(self, packed, n_blocks):
        """One epoch: ``(mean loss, seconds, whether θ is finite)``."""
        training, net = self.training, self.training.net
        start = time.perf_counter()
        stack = net.stack
        loss, theta_finite = self.cuda_train.train_epoch(
            training.theta, training.X, training.Y, stack.layer_sizes.tolist(), stack.activation_code,
            stack.output_code, net.alpha, packed, packed.hyper[0], training.schedule, training.clip_norm,
            training.batch_size, training.shuffle, training.seed, training.epochs_done, self.workspace)
        return loss, time.perf_counter() - start, theta_finite


class _DeviceNetworkEpochs(_DeviceEpochs):
    """A declared network's epochs on the GPU (:func:`fastgd.cuda.train.train_network_epoch`), its workspace
    allocated once."""

    def __init__(self, training):
        from numba import cuda

        from fastgd.cuda import train as cuda_train

        self.training, self.cuda_train = training, cuda_train
        self.workspace = cuda_train.NetworkWorkspace(training.net, training.theta, training.X.shape[0],
                                                     training.batch_size)
        self.last_finite = cuda.device_array_like(training.theta)

    def run(self, packed, n_blocks):
        """One epoch: ``(mean loss, seconds, whether θ is finite)``."""
        training = self.training
        start = time.perf_counter()
        loss, theta_finite = self.cuda_train.train_network_epoch(
            training.theta, training.X, training.Y, training.net, packed, packed.hyper[0], training.schedule,
            training.clip_norm, training.batch_size, training.shuffle, training.seed, training.epochs_done,
            self.workspace)
        return loss, time.perf_counter() - start, theta_finite


def _check_device_network_theta(net, theta):
    if tuple(theta.shape) != (net.n_params,):
        raise ValueError(f"theta must have shape ({net.n_params},) for this network, got {tuple(theta.shape)}")
    if net.dtype is not None and theta.dtype != net.dtype:
        raise TypeError(f"theta has dtype {theta.dtype}, the network {net.dtype}")
    if np.dtype(theta.dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"theta must be float32 or float64, got {theta.dtype}")
    if not theta.is_c_contiguous():
        raise ValueError("theta on the device must be contiguous")
    return theta


def _device_network_data(net, X, Y, dtype):
    """A network's X (flat rows) and Y on the device: checked as they are if they already live there (X as
    (n, *input_shape) or (n, inputs)), else checked and uploaded once."""
    from numba import cuda

    from fastgd import cuda as fastgd_cuda
    from fastgd.cuda.train import check_device_data

    on_device = fastgd_cuda.is_device_array(X), fastgd_cuda.is_device_array(Y)
    if any(on_device):
        if not all(on_device):
            raise TypeError("X and Y must both be device arrays or both host arrays")
        X = fastgd_cuda.as_device_array(X, "X")
        if tuple(X.shape[1:]) == net.input_shape and X.is_c_contiguous():
            X = X.reshape(X.shape[0], net.n_inputs)  # (n, *input_shape) as flat rows: the same memory
        return check_device_data(net, X, Y, dtype)
    X, Y = net.check_data(X, Y, dtype)
    return cuda.to_device(np.ascontiguousarray(X.reshape(X.shape[0], -1))), cuda.to_device(Y)


# scikit-learn's solver="lbfgs" is SciPy's L-BFGS-B at its defaults: maxcor=10 pairs, ftol = 1e7·ε (factr)
LBFGS_HISTORY_SIZE = 10
LBFGS_TOLERANCE_CHANGE = 1e7 * np.finfo(np.float64).eps


# fit_lbfgs's buffers, kept by each thread for its next fit of the same sizes where they take at most this many bytes:
# fresh ones start out of the caches (0.24 ms more in a 1.4 ms fit on breast_cancer, Zen 4), and a search over
# settings, a cross-validation, fits the same sizes again and again
LBFGS_KEPT_BYTES = 16 << 20
_LBFGS_KEPT = threading.local()


def _lbfgs_buffers(dtype, n_params, history_size, n_activations, n_deltas):
    """fit_lbfgs's ``(grad, activations, deltas, vectors, directions, steps, history, scalars)``, all but the pass's
    workspaces zeroed: this thread's from its last fit where the sizes are the same, else new ones."""
    key = (np.dtype(dtype), n_params, history_size, n_activations, n_deltas)
    kept = getattr(_LBFGS_KEPT, "buffers", None)
    if kept is not None and kept[0] == key:
        buffers = kept[1]
        for index in (0, 3, 4, 5, 6, 7):
            buffers[index].fill(0)
        return buffers
    from fastgd.kernels import lbfgs as lbfgs_kernels

    buffers = (np.zeros(n_params, dtype), np.empty(n_activations, dtype), np.empty(n_deltas, dtype),
               *lbfgs_kernels.new_buffers(n_params, history_size, dtype))
    _LBFGS_KEPT.buffers = (key, buffers) if sum(buffer.nbytes for buffer in buffers) <= LBFGS_KEPT_BYTES else None
    return buffers


# a full-batch L-BFGS fit's choice of one thread or the BLAS's (_full_batch_threads): probed only for fits that may
# run this many evaluations, and kept for fits of the same shapes in this process for this many seconds
FULL_BATCH_PROBE_MIN_EVALUATIONS = 50
FULL_BATCH_CHOICE_SECONDS = 30.0
_FULL_BATCH_CHOICES = {}  # (layer sizes, rows, dtype, threads) -> (one thread?, time.monotonic() when probed)


def _full_batch_threads(net, n_rows, max_evaluations, compiled, arguments):
    """The context a full-batch L-BFGS on the MLP's passes (``net.stack``; a plan-pass network's keeps the threads
    as set) runs in (``compiled`` :func:`fastgd.kernels.lbfgs.minimize` on
    ``arguments``): the threads as set where they are faster than one thread by
    :data:`fastgd.calibration.SWITCH_MARGIN`, else one thread for everything.

    ``FASTGD_PASS=one_thread`` says one thread. Otherwise the choice is measured where the fit adapts
    (:func:`fastgd.calibration.adapts`: ``FASTGD_ADAPT`` on, two threads or more), an evaluation has at least 2²⁰
    multiply-adds (below, the BLAS keeps small products on one thread anyway) and the fit may take
    :data:`FULL_BATCH_PROBE_MIN_EVALUATIONS`: :func:`_probe_full_batch`, kept for
    :data:`FULL_BATCH_CHOICE_SECONDS`. Why: on a busy machine a product on two BLAS threads waits for the thread
    that has no core; a digits fit (hidden layer 32) took 455 ms on two threads and 16 ms on one at load 5.5 (AMD
    EPYC Zen 4); quiet, 15 ms on two and 11 ms on one, which a short probe could not tell apart. So one thread, the
    pass no load can stall, keeps the fit unless the threads are clearly faster (larger fits: more rows, wider
    layers)."""
    if _config.PASS == "one_thread":
        return threads.limit(1)
    n_threads = threads.get_num_threads()
    stack = net.stack
    if (stack is None or not calibration.adapts("serial", n_threads)
            or max_evaluations < FULL_BATCH_PROBE_MIN_EVALUATIONS
            or multiply_adds(stack.layer_sizes, n_rows) < THREADED_MIN_MULTIPLY_ADDS):
        return contextlib.nullcontext()
    key = (tuple(stack.layer_sizes.tolist()), n_rows, np.dtype(arguments[1].dtype).name, n_threads)
    kept = _FULL_BATCH_CHOICES.get(key)
    if kept is None or time.monotonic() - kept[1] > FULL_BATCH_CHOICE_SECONDS:
        kept = (_probe_full_batch(compiled, arguments), time.monotonic())
        _FULL_BATCH_CHOICES[key] = kept
    return threads.limit(1) if kept[0] else contextlib.nullcontext()


def _probe_full_batch(compiled, arguments):
    """Whether a full-batch L-BFGS should run on one thread: unless the threads as set are faster by the margin.
    Timed: its own compiled ``minimize`` for one iteration, from a copy of θ with a fresh L-BFGS state (the fit's
    own are not touched), run once untimed and once timed on one thread, then the same on the threads as set (one
    thread first: nothing but the fit follows the BLAS's threads while they spin down). No code is compiled for it."""
    from fastgd.kernels import lbfgs as lbfgs_kernels

    *pass_arguments, grad, activations, deltas, origin, vectors, directions, steps, history, scalars, settings = \
        arguments
    settings = settings.copy()
    settings[lbfgs_kernels.MAX_ITER], settings[lbfgs_kernels.MAX_EVAL] = 1, 2
    state = [np.zeros_like(array) for array in (grad, vectors, directions, steps, history, scalars)]
    theta = pass_arguments[1].copy()

    def one_iteration():
        for array in state:
            array.fill(0)
        compiled(*pass_arguments[:1], theta.copy(), *pass_arguments[2:], state[0], activations, deltas, origin,
                 *state[1:], settings)

    return not calibration.threads_clearly_faster(*threads.seconds_on_one_and_all(one_iteration, clock))


@dataclass
class LBFGSResult:
    """What :func:`fit_lbfgs` did: the final ``loss``, its ``n_iter`` iterations and ``n_evals`` evaluations,
    SciPy's ``status`` (0 converged, 1 stopped at ``max_iter`` iterations or beyond ``max_fun`` evaluations, 2 an
    abnormal end: no step lowers the loss) and SciPy's ``message`` for it."""

    loss: float
    n_iter: int
    n_evals: int
    status: int
    message: str = ""


def fit_lbfgs(net, theta, X, Y, max_iter, max_fun, tol, history_size=LBFGS_HISTORY_SIZE,
              tolerance_change=LBFGS_TOLERANCE_CHANGE, stopping="scipy"):
    """Minimise ``net``'s full-batch loss on (X, Y) from θ (changed in place) with L-BFGS in one compiled call.

    The iterations are torch's L-BFGS step (:func:`fastgd.kernels.lbfgs.minimize`); every loss and gradient comes
    from the model's compiled pass (:func:`fastgd.kernels.train.model_entry`, serial) over all of X's rows.
    ``stopping="scipy"`` (the default, scikit-learn's ``solver="lbfgs"``) is SciPy's L-BFGS-B without bounds: its
    line search (Moré-Thuente's, :mod:`fastgd.kernels.linesearch`) from its first step, its line-search limit,
    its test of a pair and its restarts, and its stopping: ``max_iter`` iterations, more than ``max_fun``
    evaluations, ``tol`` on max |g| (``gtol``), ``tolerance_change`` on the loss's relative decrease
    (``factr``·ε) (see the kernel's module); ``stopping="torch"`` is one ``torch.optim.LBFGS.step`` with its
    strong-Wolfe line search, ``max_eval=max_fun``, ``tolerance_grad=tol`` and an absolute ``tolerance_change``.
    Returns an :class:`LBFGSResult`.
    """
    from fastgd.kernels import lbfgs as lbfgs_kernels

    if stopping not in ("scipy", "torch"):
        raise ValueError(f"fit_lbfgs: stopping must be 'scipy' or 'torch', got {stopping!r}")
    dtype = theta.dtype
    X, Y = net.check_data(X, Y, dtype)
    model, layer_sizes, activation, output, alpha = net.epoch_pass(dtype, X.shape[0], 1)
    n_activations, n_deltas = net.epoch_workspaces(X.shape[0])
    grad, activations, deltas, vectors, directions, steps, history, scalars = _lbfgs_buffers(
        dtype, theta.size, history_size, n_activations, n_deltas)
    settings = np.zeros(lbfgs_kernels.N_SETTINGS)
    settings[lbfgs_kernels.LR], settings[lbfgs_kernels.MAX_ITER], settings[lbfgs_kernels.MAX_EVAL] = 1.0, max_iter, \
        max_fun
    settings[lbfgs_kernels.TOLERANCE_GRAD], settings[lbfgs_kernels.TOLERANCE_CHANGE] = tol, tolerance_change
    scipy = stopping == "scipy"
    settings[lbfgs_kernels.LINE_SEARCH] = lbfgs_kernels.MORE_THUENTE if scipy else lbfgs_kernels.STRONG_WOLFE
    settings[lbfgs_kernels.SCIPY_STOPPING] = scipy
    arguments = (model, theta, X, Y, layer_sizes, activation, output, alpha, grad, activations, deltas, np.zeros(1),
                 vectors, directions, steps, history, scalars, settings)
    compiled = _config.compile_for(lbfgs_kernels.minimize, arguments)
    with _full_batch_threads(net, X.shape[0], max_fun, compiled, arguments):
        loss = float(compiled(*arguments))
    n_iter, n_evals = int(scalars[lbfgs_kernels.STEP_ITERS]), int(scalars[lbfgs_kernels.STEP_EVALS])
    if stopping == "scipy":
        status = int(scalars[lbfgs_kernels.STATUS])
        message = lbfgs_kernels.SCIPY_MESSAGES[int(scalars[lbfgs_kernels.MESSAGE])]
    else:
        status = 1 if n_iter >= max_iter else 2 if n_evals >= max_fun else 0
        message = ""
    return LBFGSResult(loss, n_iter, n_evals, status, message)


def lbfgs_epochs(net, theta, X, Y, n_epochs, lr=1.0, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn="strong_wolfe"):
    """``n_epochs`` calls of torch's ``LBFGS.step`` on the full batch (X, Y) from θ (changed in place), each one
    compiled call (:func:`fastgd.kernels.lbfgs.minimize`) whose evaluations are the model's pass; torch's
    hyperparameters and defaults but ``line_search_fn`` (strong Wolfe here; None: a fixed step of ``lr``).

    A generator: after each step it yields ``(loss, seconds, evaluations)``: the loss of the step's first
    evaluation (at θ as the step found it, as a full-batch epoch's loss is taken), the step's wall-clock seconds
    (compilation excluded) and its evaluations. The L-BFGS state carries over from step to step, as torch's.
    ``net`` is any :class:`fastgd.networks.Network` (:class:`fastgd.models.MLP` is one).
    """
    from fastgd import optim
    from fastgd.kernels import lbfgs as lbfgs_kernels

    settings = optim.LBFGS._checked(dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                                         tolerance_change=tolerance_change, history_size=history_size,
                                         line_search_fn=line_search_fn))
    X, Y = net.check_data(X, Y, theta.dtype)
    X = X.reshape(X.shape[0], -1)
    model, structure, code, second_code, alpha = net.epoch_pass(theta.dtype, X.shape[0])
    n_activations, n_deltas = net.epoch_workspaces(X.shape[0])
    grad = np.zeros_like(theta)
    activations, deltas = np.empty(n_activations, theta.dtype), np.empty(n_deltas, theta.dtype)
    vectors, directions, steps, history, scalars = lbfgs_kernels.new_buffers(theta.size, int(history_size),
                                                                             theta.dtype)
    arguments = (model, theta, X, Y, structure, code, second_code, alpha, grad, activations, deltas, np.zeros(1),
                 vectors, directions, steps, history, scalars, settings)
    compiled = _config.compile_for(lbfgs_kernels.minimize, arguments)
    for _ in range(n_epochs):
        context = _full_batch_threads(net, X.shape[0], n_epochs * settings[lbfgs_kernels.MAX_EVAL], compiled,
                                      arguments)
        started = time.perf_counter()
        with context:
            compiled(*arguments)
        seconds = time.perf_counter() - started
        yield float(scalars[lbfgs_kernels.FIRST_LOSS]), seconds, int(scalars[lbfgs_kernels.STEP_EVALS])

