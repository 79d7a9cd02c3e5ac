"""Whole epochs of training in one compiled call: shuffle, batch, forward, loss, backward, update.

The model and the rule enter as first-class functions (C callbacks): the
model's forward and backward pass (:func:`model_entry`, the MLP's
:func:`~fastgd.kernels.mlp.loss_and_gradient`, or :func:`network_entry`, a declared
network's :func:`~fastgd.kernels.network.loss_and_gradient`; both of
:func:`model_signature`) and the rule's
``packed_step_entry`` (:mod:`fastgd.rules.compile`) with its packed
arguments: a 2-D state array, an auxiliary vector, a float64 hyperparameter
vector whose last entry the schedule sets (the factor on every learning rate
of the rule; the entry before it, the batch's loss), float64 counters and the
network's layout. The schedule is a float64 vector (:mod:`.schedules`). So
one specialisation per dtype covers every rule, a user's included, every
schedule and every network shape (a second one, the first time gradients are
clipped: an epoch without clipping does not compile it; a third, the first time a rule with a closure trains: it
evaluates each batch twice, and the others do not compile that); a new rule compiles only its own loop, and
the epoch's own compilation does not optimise the model's code again. Every
buffer comes from the caller; an epoch allocates nothing.
"""

import math

import numba
import numpy as np
from numba import prange, types

from fastgd import _config
from fastgd._config import jit
from fastgd.kernels.clock import monotonic_seconds
from fastgd.kernels import network as network_kernels
from fastgd.kernels.mlp import loss_and_gradient, penalty, sum_of_squares, workspace_size
from fastgd.kernels.schedules import learning_rate_scale
from fastgd.kernels.shuffle import shuffle_for_epoch

__all__ = ["train_epoch", "train_runs_together", "training_objective", "dataset_loss", "predict_in_chunks",
           "model_loss_and_gradient",
           "clip_by_global_norm", "model_entry", "network_entry", "forward_entry", "model_signature", "model_blocks",
           "pass_blocks", "pass_name", "PassUnavailable", "multiply_adds", "WHOLE_BATCH_ON_MKL"]


# Which pass a batch takes, by its multiply-adds (rows × Σ n_in·n_out). Below 2²⁰ a batch's products are so
# short that parallel regions cost as much as they save; the blocks of rows stop helping past 2²⁶, where one
# BLAS call on every thread runs near the peak. The epochs these bounds were chosen from, with the CPU they were
# measured on, are in reports/design_measurements.md.
THREADED_MIN_MULTIPLY_ADDS = 1 << 20
THREADED_MAX_MULTIPLY_ADDS = 1 << 26  # for the blocks of rows
THREADED_MIN_ROWS_PER_BLOCK = 16
# model_blocks' answer for the whole batch's products on MKL's threads, the element-wise work on one
WHOLE_BATCH_ON_MKL = 0


def multiply_adds(layer_sizes, n_rows):
    """A batch's multiply-adds in its forward products: ``n_rows`` × Σ n_in·n_out."""
    sizes = np.asarray(layer_sizes, dtype=np.int64)
    return int(n_rows) * int(np.sum(sizes[:-1] * sizes[1:]))


class PassUnavailable(ValueError):
    """A pass named by :data:`fastgd._config.PASSES` cannot run here; the message is one line saying why."""


def pass_blocks(name, n_rows, n_threads):
    """The ``n_blocks`` of :func:`model_entry` for the pass ``name`` (one of :data:`fastgd._config.PASSES`).

    ``serial``: 1; ``one_thread``: 1 too, the serial pass, which the caller runs with its threads and
    the BLAS's limited to one (``fastgd.threads.limit(1)``: a kernel cannot set them). ``blocks``: one
    block of rows per thread, ``min(n_threads, n_rows)`` of them, which needs MKL, two of them at least
    and a threading layer other than workqueue. ``whole_batch_mkl``: :data:`WHOLE_BATCH_ON_MKL`, which
    needs MKL on Numba's OpenMP threads and more than one thread. Raises :class:`PassUnavailable` (one
    line, naming the pass and why) for a pass that cannot run here.
    """
    if name in ("serial", "one_thread"):
        return 1
    if name not in ("blocks", "whole_batch_mkl"):
        raise PassUnavailable(f"unknown pass {name!r}; the passes are serial, one_thread, blocks, whole_batch_mkl")
    from fastgd.kernels import mkl

    try:
        mkl.load()
    except mkl.MKLError as error:
        raise PassUnavailable(f"the {name} pass cannot run here: {error}") from None
    if int(n_threads) < 2:
        raise PassUnavailable(f"the {name} pass cannot run here: it needs 2 threads or more, fastgd has {n_threads}")
    numba.get_num_threads()  # starts Numba's threads, so that the layer is known
    layer = numba.threading_layer()
    if name == "whole_batch_mkl":
        if not mkl.shares_numbas_threads():
            raise PassUnavailable(f"the {name} pass cannot run here: MKL's threads are not Numba's (Numba's "
                                  f"threading layer is {layer}, MKL's {mkl.describe()})")
        return WHOLE_BATCH_ON_MKL
    if layer == "workqueue":
        raise PassUnavailable(f"the {name} pass cannot run here: Numba's workqueue threading layer ends the "
                              "process when two threads start parallel regions at once")
    n_blocks = min(int(n_threads), int(n_rows))
    if n_blocks < 2:
        raise PassUnavailable(f"the {name} pass cannot run here: one row a batch cannot be split in blocks")
    return n_blocks


def pass_name(n_blocks):
    """The name (:data:`fastgd._config.PASSES`) of :func:`model_entry`'s pass ``n_blocks`` (1: ``serial``; the
    ``one_thread`` pass is the serial one on one thread)."""
    if int(n_blocks) == WHOLE_BATCH_ON_MKL:
        return "whole_batch_mkl"
    return "serial" if int(n_blocks) == 1 else "blocks"


def model_blocks(layer_sizes, n_rows, n_threads):
    """Which pass :func:`model_entry` should take for batches of ``n_rows`` on ``n_threads`` threads.

    1, the serial pass (SciPy's BLAS), below 2²⁰ multiply-adds a batch; from there,
    :data:`WHOLE_BATCH_ON_MKL` where MKL's threads are Numba's, else n ≥ 2 blocks of rows, one per
    thread and at least 16 rows a block, up to 2²⁶ (see above). Both need MKL, more than one
    thread and a threading layer other than workqueue.
    """
    batch_multiply_adds = multiply_adds(layer_sizes, n_rows)
    if int(n_threads) < 2 or batch_multiply_adds < THREADED_MIN_MULTIPLY_ADDS:
        return 1
    from fastgd.kernels import mkl

    if not mkl.available():
        return 1
    numba.get_num_threads()  # starts Numba's threads, so that the layer is known
    # the workqueue layer ends the process when two threads start parallel regions at once (threaded sweeps)
    if numba.threading_layer() == "workqueue":
        return 1
    if mkl.shares_numbas_threads():
        return WHOLE_BATCH_ON_MKL
    n_blocks = min(int(n_threads), int(n_rows) // THREADED_MIN_ROWS_PER_BLOCK)
    return n_blocks if n_blocks >= 2 and batch_multiply_adds <= THREADED_MAX_MULTIPLY_ADDS else 1


def model_signature(dtype):
    """The Numba signature of a model's pass as training calls it, for ``dtype``.

    ``(θ, X, Y, structure, code, code, alpha, grad, activations, deltas) -> loss``: the MLP's
    :func:`~fastgd.kernels.mlp.loss_and_gradient`, whose structure is its layer sizes and whose codes
    are its activation and output; a declared network's pass (:func:`network_entry`) reads its own
    meaning into the same places. The data blocks are typed read-only (:meth:`fastgd.MLP.check_data`
    makes them so; a gathered batch converts), the rest writeable and C-ordered.
    """
    real = numba.from_dtype(np.dtype(dtype))
    vector, data = types.Array(real, 1, "C"), types.Array(real, 2, "C", readonly=True)
    return types.float64(vector, data, data, types.Array(types.int64, 1, "C"), types.int64, types.int64,
                         types.float64, vector, vector, vector)


_MODEL_ENTRIES = {}


def forward_entry(dtype, layer_sizes, n_rows):
    """A :func:`model_entry` pass for forward passes alone (predictions, a data set's loss) over ``n_rows`` rows.

    One this process already compiled or loaded for ``dtype`` (training's: prediction then compiles no pass of its
    own), else the one :func:`model_blocks` picks for ``n_rows`` rows, as training would. Every pass computes the
    same outputs, to rounding.
    """
    made = sorted(n_blocks for made_dtype, n_blocks in _MODEL_ENTRIES if made_dtype == np.dtype(dtype))
    if made:
        return model_entry(dtype, 1 if 1 in made else made[0])
    from fastgd import threads

    return model_entry(dtype, model_blocks(layer_sizes, n_rows, threads.get_num_threads()))


def model_entry(dtype, n_blocks=1):
    """The MLP's forward and backward pass for ``dtype`` as a C callback, compiled (or loaded) once per process.

    ``n_blocks`` (:func:`model_blocks`): 1, the serial pass,
    :func:`~fastgd.kernels.mlp.loss_and_gradient`, whose products go to SciPy's BLAS; > 1, the
    pass with its batch's rows in that many blocks, one ``prange`` iteration each, every block's
    products on MKL single-threaded; :data:`WHOLE_BATCH_ON_MKL`, the same pass in one block, not
    parallel, so that MKL runs each product on its own threads (:mod:`fastgd.kernels.threaded`).
    The last two raise :class:`fastgd.kernels.mkl.MKLError` where MKL is not installed.
    """
    key = (np.dtype(dtype), int(n_blocks))
    if key not in _MODEL_ENTRIES:
        if key[1] < 0:
            raise ValueError(f"n_blocks must be 1 or more, or WHOLE_BATCH_ON_MKL (0), got {n_blocks}")
        if key[1] != 1:
            from fastgd.kernels import mkl
            from fastgd.kernels.threaded import loss_and_gradient_in_blocks

            mkl.load()  # before its code is compiled or loaded: that code links MKL's cblas_?gemm by name
            # one block, compiled without parallel loops: MKL, called outside a parallel region, takes its threads
            function = loss_and_gradient_in_blocks(max(key[1], 1))
            parallel = key[1] > 1
        else:
            function, parallel = loss_and_gradient.py_func, False
        with _config.compile_lock(f"fastgd.kernels.train.model_entry{key}"):
            _MODEL_ENTRIES[key] = _config.cfunc(model_signature(key[0]), parallel=parallel)(function)
    return _MODEL_ENTRIES[key]


def _network_pass(theta, X, Y, plan, loss, columns_start, alpha, grad, activations, deltas):
    """A declared network's pass in :func:`model_signature`'s places (see :func:`network_entry`)."""
    n_rows = X.shape[0]
    table = plan.reshape((plan.size // network_kernels.PLAN_COLUMNS, network_kernels.PLAN_COLUMNS))
    inputs, targets = X.reshape(X.size), Y.reshape(Y.size)
    blocks, columns = activations[:columns_start], activations[columns_start:]
    value = network_kernels.loss_and_gradient_inlined(theta, inputs, targets, n_rows, table, loss, grad, blocks,
                                                      deltas, columns)
    network_kernels.add_penalty_gradient(theta, table, alpha, n_rows, grad)
    return value + network_kernels.penalty(theta, table, alpha, n_rows)


_NETWORK_ENTRIES = {}


def network_entry(dtype):
    """A declared network's forward and backward pass for ``dtype`` as a C callback of :func:`model_signature`,
    compiled (or loaded) once per process; one callback serves every network.

    Its places: ``structure``, the network's plan (:mod:`fastgd.kernels.network`) flattened row by row into a
    writeable int64 vector; the first code, the loss (:data:`fastgd.kernels.network.LOSSES`); the second, where
    the convolutions' ``columns`` workspace starts in ``activations`` (``activations`` holds the blocks of
    :func:`fastgd.kernels.network.workspace_elements` for a whole batch, then the columns; ``deltas`` the
    blocks). ``alpha``: the network's L2 penalty (:func:`fastgd.kernels.network.penalty`), added to the batch's
    loss and its gradient to ``grad``, as the MLP's pass does. It always runs the backward pass
    (unlike the MLP's, an empty ``grad`` does not ask for the loss alone): a network's forward passes outside
    training are :meth:`fastgd.networks.Network.loss` and :meth:`~fastgd.networks.Network.predict`.
    """
    key = np.dtype(dtype)
    if key not in _NETWORK_ENTRIES:
        with _config.compile_lock(f"fastgd.kernels.train.network_entry({key})"):
            _NETWORK_ENTRIES[key] = _config.cfunc(model_signature(key))(_network_pass)
    return _NETWORK_ENTRIES[key]


@jit
def clip_by_global_norm(grad, max_norm):
    """Scale ``grad`` so that its L2 norm is at most ``max_norm``; return the norm before.

    The norm's sum is :func:`fastgd.kernels.mlp.sum_of_squares` (float64, eight partial sums): one running sum
    over every gradient entry took about 75 µs of each batch at 100-256-256-10/64 (93,000 parameters, AMD EPYC
    Zen 4), every batch of a training with ``clip_norm``."""
    norm = math.sqrt(sum_of_squares(grad, 0, grad.size))
    if norm > max_norm:
        factor = grad.dtype.type(max_norm / norm)
        for k in range(grad.size):
            grad[k] *= factor
    return norm


@jit(internal=True)
def _gather_rows(source, order, start, stop, buffer):
    """Rows order[start:stop] of ``source`` as a C-ordered block of ``buffer``."""
    n_columns = source.shape[1]
    for row in range(stop - start):
        source_row = order[start + row]
        for column in range(n_columns):
            buffer[row * n_columns + column] = source[source_row, column]
    return buffer[:(stop - start) * n_columns].reshape((stop - start, n_columns))


@jit(exact=True)
def train_epoch(model, theta, X, Y, layer_sizes, activation, output, alpha,
                rule_step, hyper, base_lr, states, aux, counters, layout, ascent,
                schedule, clip_norm, batch_size, shuffle, seed, epoch,
                order, grad, activations, deltas, batch_X, batch_Y, origin):
    """One epoch over (X, Y); returns the mean loss of its batches, weighted by batch size.

    ``model`` is :func:`model_entry` for θ's dtype, ``rule_step`` the rule's
    ``packed_step_entry``. Each batch's loss is taken before its update, as scikit-learn's
    ``loss_curve_`` does. Stops at the first batch whose loss is not finite
    and returns that loss: the caller reports divergence. ``clip_norm``: the
    largest global norm of a batch's gradient, or None for no clipping (then
    the clipping is not compiled in; it clips the gradient the rule steps with). ``ascent``: a rule with a
    closure's ``packed_ascent_into`` entry (SAM; :meth:`fastgd.rules.compile.CompiledVariant.ascent_entry`), or
    None (then the second evaluation is not compiled in): from each batch's gradient at θ it writes the closure's
    point into ``origin``, the model's pass runs again there on the same batch and the rule steps from θ with that
    second gradient; the batch's loss is the one at θ.
    Workspaces: ``order`` (n int64), ``grad`` (θ's size),
    ``activations`` and ``deltas`` (``workspace_size(layer_sizes,
    batch_size)``), ``batch_X`` and ``batch_Y`` (batch_size × columns), ``origin`` (θ's size with an
    ``ascent``, else empty).
    """
    n_samples = X.shape[0]
    if shuffle:
        shuffle_for_epoch(order, seed, epoch)
    else:
        for i in range(n_samples):
            order[i] = i
    total = 0.0
    for start in range(0, n_samples, batch_size):
        stop = min(start + batch_size, n_samples)
        if stop - start == n_samples:
            inputs, targets = X, Y  # full batch: the order of the rows does not matter
        else:
            inputs = _gather_rows(X, order, start, stop, batch_X)
            targets = _gather_rows(Y, order, start, stop, batch_Y)
        loss = model(theta, inputs, targets, layer_sizes, activation, output, alpha, grad, activations, deltas)
        if not math.isfinite(loss):
            return loss
        total += loss * (stop - start)
        if ascent is not None:
            # the closure's point is written into ``origin`` from θ and the gradient, in the ascent's one pass over
            # them (no copy of θ first), and evaluated there: θ itself is never moved
            ascent(theta, grad, origin, states, aux, hyper, counters, layout)
            model(origin, inputs, targets, layer_sizes, activation, output, alpha, grad, activations, deltas)
        if clip_norm is not None:
            clip_by_global_norm(grad, clip_norm)
        # the last hyperparameter slot scales every learning rate of the rule; the one before is the batch's loss at
        # θ, which a rule taking the loss reads (a Polyak step)
        hyper[hyper.size - 2] = loss
        hyper[hyper.size - 1] = learning_rate_scale(base_lr, schedule, epoch, np.int64(counters[0]) + 1)
        rule_step(theta, grad, states, aux, hyper, counters, layout)
    return total / n_samples


@jit(exact=True)
def all_finite(values):
    for k in range(values.size):
        if not math.isfinite(values[k]):
            return False
    return True


@jit(internal=True)
def training_objective(model, theta, X, Y, layer_sizes, activation, output, alpha, chunk_size, forward_only, grad,
                       activations, deltas, batch_X, batch_Y):
    """The full training objective at θ: the loss over every row of (X, Y), penalty included (float64).

    What f* (:func:`fastgd.optimum.optimal_training_loss`) is the minimum of, unlike an epoch's mean of batch losses
    taken before each update. Evaluated ``chunk_size`` rows at a time (the rows in order: the result does not depend
    on the epoch's shuffling) through the epoch's ``model`` pass and workspaces; ``forward_only``: the pass takes an
    empty gradient as a request for the loss alone (the MLP's), else it runs its backward pass into ``grad`` and
    ``deltas`` too (a declared network's). ``alpha`` is given to each chunk as 0 and the penalty added once, for
    all n rows: the MLP's (:func:`fastgd.kernels.mlp.penalty`) where ``forward_only``, else a declared network's
    over its plan (:func:`fastgd.kernels.network.penalty`), ``layer_sizes`` then being the plan flattened.
    """
    n_samples = X.shape[0]
    empty = grad[:0]
    total = 0.0
    for start in range(0, n_samples, chunk_size):
        stop = min(start + chunk_size, n_samples)
        if stop - start == n_samples:
            inputs, targets = X, Y
        else:
            inputs, targets = _rows(X, start, stop, batch_X), _rows(Y, start, stop, batch_Y)
        if forward_only:
            loss = model(theta, inputs, targets, layer_sizes, activation, output, 0.0, empty, activations, empty)
        else:
            loss = model(theta, inputs, targets, layer_sizes, activation, output, 0.0, grad, activations, deltas)
        total += loss * (stop - start)
    if forward_only:
        return total / n_samples + penalty(theta, layer_sizes, alpha, n_samples)
    if alpha == 0.0:  # no penalty; a model with a pass of its own (the noisy quadratic) has no plan to read
        return total / n_samples
    table = layer_sizes.reshape((layer_sizes.size // network_kernels.PLAN_COLUMNS, network_kernels.PLAN_COLUMNS))
    return total / n_samples + network_kernels.penalty(theta, table, alpha, n_samples)


@jit(parallel=True, exact=True)
def train_runs_together(model, thetas, X, Y, layer_sizes, activation, output, alpha,
                        rule_step, hypers, base_lrs, states, auxes, counters, layout, ascent,
                        schedule, clip_norm, batch_size, seeds, n_epochs, activation_elements, delta_elements,
                        losses, seconds, diverged_epochs, track_objective, forward_only, objectives):
    """Train many runs of one network on one data set, one run per ``prange`` iteration.

    The model's places are its ``epoch_pass`` (:meth:`fastgd.MLP.epoch_pass`, a declared network's
    :meth:`fastgd.networks.Network.epoch_pass`) for batches of ``batch_size`` rows; each run's
    ``activations`` and ``deltas`` are ``activation_elements`` and ``delta_elements`` long, the
    model's ``epoch_workspaces(batch_size)``.

    Every run takes one rule (``rule_step`` and ``ascent``, see :func:`train_epoch`); run r
    has its own θ (``thetas[r]``), hyperparameters (``hypers[r]``,
    ``base_lrs[r]``), state (``states[r]``: slots × n_params, ``auxes[r]``),
    counters and shuffling seed; each runs :func:`train_epoch` for up to ``n_epochs`` epochs,
    exactly as it would alone, so the results are those of separate runs,
    whatever the number of threads. Fills ``losses[r, e]``, ``seconds[r, e]``
    (wall-clock seconds since the run started, at the end of epoch e) and
    ``diverged_epochs[r]`` (1-based epoch with a non-finite loss or θ, else 0).

    Where ``track_objective[r]`` is true, ``objectives[r, e]`` is the full training objective at θ after epoch e
    (:func:`training_objective`, ``forward_only`` as it says), evaluated after that epoch's clock is read, so
    ``seconds`` stays the training's alone; other runs' rows of ``objectives`` (n_runs × n_epochs) are not written.
    """
    n_runs, n_params = thetas.shape
    n_rows = min(batch_size, X.shape[0])
    for run in prange(n_runs):
        theta = thetas[run]
        order = np.empty(X.shape[0], dtype=np.int64)
        grad = np.empty(n_params, dtype=thetas.dtype)
        activations = np.empty(activation_elements, dtype=thetas.dtype)
        deltas = np.empty(delta_elements, dtype=thetas.dtype)
        batch_X = np.empty(n_rows * X.shape[1], dtype=thetas.dtype)
        batch_Y = np.empty(n_rows * Y.shape[1], dtype=thetas.dtype)
        origin = np.empty(n_params if ascent is not None else 0, dtype=thetas.dtype)
        timespec = np.zeros(2, dtype=np.int64)
        start = monotonic_seconds(timespec)
        diverged_epochs[run] = 0
        for epoch in range(n_epochs):
            loss = train_epoch(model, theta, X, Y, layer_sizes, activation, output, alpha, rule_step, hypers[run],
                               base_lrs[run], states[run], auxes[run], counters[run], layout, ascent,
                               schedule, clip_norm, n_rows, True, seeds[run], epoch, order, grad, activations,
                               deltas, batch_X, batch_Y, origin)
            losses[run, epoch] = loss
            seconds[run, epoch] = monotonic_seconds(timespec) - start
            if not (math.isfinite(loss) and all_finite(theta)):
                diverged_epochs[run] = epoch + 1
                break
            if track_objective[run]:
                evaluated = monotonic_seconds(timespec)
                objectives[run, epoch] = training_objective(model, theta, X, Y, layer_sizes, activation, output,
                                                            alpha, n_rows, forward_only, grad, activations, deltas,
                                                            batch_X, batch_Y)
                start += monotonic_seconds(timespec) - evaluated  # the evaluation is not training time


@jit(inline=True)
def _rows(source, start, stop, buffer):
    """Rows start:stop of ``source`` as a C-ordered block of ``buffer``."""
    n_columns = source.shape[1]
    for row in range(start, stop):
        for column in range(n_columns):
            buffer[(row - start) * n_columns + column] = source[row, column]
    return buffer[:(stop - start) * n_columns].reshape((stop - start, n_columns))


@jit(exact=True)
def dataset_loss(model, theta, X, Y, layer_sizes, activation, output, alpha, activations, chunk_size, batch_X,
                 batch_Y, no_grad):
    """The loss over all of (X, Y), evaluated ``chunk_size`` rows at a time (float64).

    ``model`` is :func:`model_entry`'s serial pass, the one training compiled, run forward only (``no_grad``:
    an empty array of θ's dtype); ``batch_X``, ``batch_Y``: chunk_size × columns of X and of Y.
    """
    n_samples = X.shape[0]
    total = 0.0
    for start in range(0, n_samples, chunk_size):
        stop = min(start + chunk_size, n_samples)
        # alpha = 0 per chunk: the penalty is added once, for all n samples
        total += model(theta, _rows(X, start, stop, batch_X), _rows(Y, start, stop, batch_Y), layer_sizes,
                       activation, output, 0.0, no_grad, activations, no_grad) * (stop - start)
    return total / n_samples + penalty(theta, layer_sizes, alpha, n_samples)


@jit(exact=True)
def predict_in_chunks(model, theta, X, layer_sizes, activation, output, activations, chunk_size, batch_X, batch_Y,
                      no_grad, out):
    """Output activations for every row of X into ``out`` (n × n_outputs), chunk by chunk, through ``model`` run
    forward only (see :func:`dataset_loss`; ``batch_Y`` holds zeros, the targets of a loss nobody reads)."""
    n_samples, n_out = X.shape[0], out.shape[1]
    for start in range(0, n_samples, chunk_size):
        stop = min(start + chunk_size, n_samples)
        n_rows = stop - start
        model(theta, _rows(X, start, stop, batch_X), batch_Y[:n_rows * n_out].reshape((n_rows, n_out)), layer_sizes,
              activation, output, 0.0, no_grad, activations, no_grad)
        end = workspace_size(layer_sizes, n_rows)
        outputs = activations[end - n_rows * n_out:end]
        for row in range(n_rows):
            for column in range(n_out):
                out[start + row, column] = outputs[row * n_out + column]
    return out


@jit(exact=True)
def model_loss_and_gradient(model, theta, X, Y, layer_sizes, activation, output, alpha, grad, activations, deltas):
    """``model``'s loss and gradient (into ``grad``) on the whole of (X, Y): :func:`model_entry`'s pass called from
    Python (:meth:`fastgd.MLP.loss_grad`), the code training runs, without compiling the same pass again as a
    dispatcher of its own."""
    return model(theta, X, Y, layer_sizes, activation, output, alpha, grad, activations, deltas)


def workspace_elements(layer_sizes, n_rows):
    """Python-side size of the ``activations``/``deltas`` buffers for ``n_rows`` rows (:func:`workspace_size`)."""
    return int(n_rows) * int(np.sum(np.asarray(layer_sizes)[1:]))
