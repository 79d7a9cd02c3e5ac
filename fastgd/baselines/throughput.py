"""Throughput of fastgd against the baselines, measured here and now: what the comparison report stores and shows.

Every number comes from this package (:mod:`fastgd.baselines`), the measurement layer the asv suite uses too:
the same trainers, steps, timer (``baselines.seconds_per_call``) and machine limits, so that a row
here and the asv benchmark named beside it are the same measurement.

Three tables (pandas DataFrames) and the machine's limits:

* ``training``: seconds per epoch and samples per second of a fit (``Trainer.seconds_per_epoch``;
  asv's ``bench_training.Epoch.track_samples_per_second`` at batch 32, Adam): one hidden layer of
  32 ReLU units, the rule's learning rate from ``baselines.LEARNING_RATES``, float64 (PyTorch
  float32), on each data set, for every implementation installed; the median of ``repeats``
  timings, every implementation on the same number of threads (``threads``);
* ``training_repeats``: each of those timings (dataset, implementation, repeat, seconds_per_epoch).
  The implementations take turns within each repeat, in an order that rotates, so that a busy
  moment of a shared machine falls on all of them and not on one: :func:`training_ratios` pairs
  them by repeat and gives each ratio's spread;
* ``steps``: seconds (median, first and third quartiles over batches of calls) and effective bandwidth of
  one update-rule step, every rule, float32, over parameter counts, for fastgd (the kernel users get
  at that size), NumPy and torch.optim (fused where torch has it); ``kernel`` names the
  ``baselines.STEP_IMPLEMENTATIONS`` entry timed (asv's ``bench_optim.UpdateStep.track_bandwidth``);
* ``machine``: the steps' references at the largest size (``in_place_bytes_per_second``: bytes/s
  of 1 to 4 float32 arrays updated in place from one more, keyed by that number: a step's own
  access pattern, its traffic alone, best of repeats, all cores), the last-level cache's size
  (``last_level_cache_bytes``: a working set below it streams from the cache), STREAM's triad beside it (main
  memory), the GEMM peak at 2048² (``gemm_flops_<dtype>``) and at each training network's own
  matrix products (``gemm_flops_at_network_sizes``: dtype → "layer sizes/batch" → FLOP/s), and the threads
  each implementation was given (``threads``: for training and for steps, implementation → how).

:mod:`fastgd.report.throughput` reads these tables: the ratios and their spread, each step's share of its
reference.
"""

import numpy as np

from fastgd import datasets, optim, reference
from fastgd.baselines.limits import (InPlaceStreams, arrays_written, bytes_moved, gemm_rate, last_level_cache_bytes,
                                     network_gemm_rate, triad_bandwidth)
from fastgd.baselines.steps import (TORCH_OPTIMIZERS, fits_as_one_vector, step_callable, users_step_implementation,
                                   worth_timing)
from fastgd.baselines.timer import per_call_seconds
from fastgd.baselines.trainers import (IMPLEMENTATIONS, available, dataset, same_threads, torch_available,
                                       warmed_trainer)
from fastgd.kernels.memory import MAX_STREAMS

__all__ = ["measure", "compile_steps_ahead", "StepsCompiling", "PARAMETER_COUNTS", "EPOCH_SETTINGS", "TRAINING_THREADS"]

PARAMETER_COUNTS = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
# asv's bench_training.Epoch at (dataset, 32, "adam", dtype, implementation)
EPOCH_SETTINGS = dict(hidden=32, batch_size=32, rule="adam")
EPOCH_DTYPES = {"torch": "float32"}  # the others float64
STEP_DTYPE = "float32"
# one thread each: a ratio that does not move with the machine's load (see same_threads)
TRAINING_THREADS = 1


def _network_label(layer_sizes, batch_size):
    return "-".join(map(str, layer_sizes)) + f"/{batch_size}"


def _step_kernels(rule, size):
    """(the implementation as the report names it, the STEP_IMPLEMENTATIONS key timed), each baseline with the
    rule."""
    kernels = [("fastgd", users_step_implementation(size))]
    if worth_timing(rule, size, "numpy"):
        kernels.append(("numpy", "numpy"))
    if torch_available() and rule in TORCH_OPTIMIZERS:
        kernels.append(("torch", "torch_fused" if worth_timing(rule, size, "torch_fused") else "torch"))
    return kernels


def _warmed_step(rule, size, kernel):
    """The step, called once (compiled); torch's default loop where it has no fused kernel for the rule."""
    try:
        step = step_callable(rule, size, STEP_DTYPE, kernel)
        step()
    except (NotImplementedError, RuntimeError) as unsupported:
        if kernel != "torch_fused":
            raise
        if isinstance(unsupported, RuntimeError) and "fused" not in str(unsupported):
            raise
        return _warmed_step(rule, size, "torch")
    return step, kernel


def _compile_step(rule, kernel):
    """Compile fastgd's step of ``rule`` (``kernel``: a ``fastgd_*`` key of ``STEP_IMPLEMENTATIONS``) into Numba's
    cache, in a worker process of :func:`_compile_steps_ahead`. A step that fails to compile fails again, with its
    message, where :func:`measure` takes it."""
    try:
        step_callable(rule, COMPILE_AHEAD_PARAMETERS, STEP_DTYPE, kernel)()
    except Exception:  # noqa: BLE001 - measured again in the parent, which says what failed
        pass


# parameters of the steps compiled ahead: the size does not enter the compiled signature, only the time to run it
COMPILE_AHEAD_PARAMETERS = 64


def _too_large(rules, parameter_counts):
    """{size: the rules whose state for one long vector of ``size`` parameters would not fit}: Shampoo's n × n
    preconditioner of 10⁵ parameters would take 80 GB (such rules are timed on network layouts by
    benchmarks/scripts/preconditioner_speed.py and kron_speed.py)."""
    return {size: [rule for rule in rules if not fits_as_one_vector(rule, size)] for size in parameter_counts}


class StepsCompiling:
    """The built-in rules' float32 steps compiling into Numba's cache in worker processes (:func:`compile_steps_ahead`
    with ``wait=False``); :meth:`wait` returns when they are all compiled, :meth:`stop` ends the workers early."""

    def __init__(self, pool, futures):
        self._pool, self._futures = pool, futures

    def done(self):
        return all(future.done() for future in self._futures)

    def wait(self):
        try:
            for future in self._futures:
                future.result()
        finally:
            self._pool.shutdown()

    def stop(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


def compile_steps_ahead(rules=None, parameter_counts=PARAMETER_COUNTS, say=None, wait=True):
    """Compile the built-in rules' float32 steps that :func:`measure` times, every kernel the sizes take, in one
    worker process per core: in one process the 29 rules' serial and ``prange`` steps compiled one after the
    other for minutes (about 3.5 s each, AMD EPYC) while the other cores idled. The timing process then loads them
    from Numba's cache. Rules from plugins compile where they are timed (a worker has not loaded them).

    ``wait=False``: return at once a :class:`StepsCompiling` (None where there is nothing to do or one core), so
    that other work runs beside the compiling; ``fastgd compare`` measures its report's other artefacts meanwhile,
    and times nothing until :meth:`StepsCompiling.wait` has returned.
    """
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    from fastgd import rules as rule_registry

    say = say or (lambda message: None)
    rules = list(optim.OPTIMIZERS) if rules is None else list(rules)
    too_large = _too_large(rules, parameter_counts)
    # every rule's serial step, then every rule's prange one: the two of one rule share its compile lock (its
    # generated module and dtype), so side by side they would take turns
    kernels = {(users_step_implementation(size), rule) for size in parameter_counts for rule in rules
               if rule_registry.is_builtin(rule) and rule not in too_large[size]}
    tasks = [(rule, kernel) for kernel, rule in sorted(kernels, key=lambda task: (task[0] != "fastgd_serial", task))]
    workers = min(os.cpu_count() or 1, len(tasks))
    if workers < 2:
        return None  # one core: the timing process compiles as fast
    say(f"compiling {len(tasks)} steps on {workers} processes" + ("" if wait else ", in the background"))
    # spawn, not fork: Numba's threading layers are not safe to fork once started
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    compiling = StepsCompiling(pool, [pool.submit(_compile_step, rule, kernel) for rule, kernel in tasks])
    if not wait:
        return compiling
    compiling.wait()
    return None


def measure(dataset_names=tuple(datasets.BUNDLED), parameter_counts=PARAMETER_COUNTS, rules=None, repeats=5,
            budget_seconds=0.05, progress=None, training_threads=TRAINING_THREADS, compiling=None):
    """Run every measurement; ``progress(message)`` is called before each group.

    ``compiling``: the steps' compilation started before (:func:`compile_steps_ahead` with ``wait=False``), waited
    for before anything is timed; without it, the steps compile ahead here, after the training's timings.

    ``dataset_names``: names :func:`fastgd.baselines.dataset` reads, or ``fastgd.datasets.Dataset``
    objects (a user's file, as the sweep reads it). Each training figure is timed ``repeats`` times
    for about ``budget_seconds`` each (at least one epoch), the implementations taking turns, all on
    ``training_threads`` threads; each step for about ``budget_seconds`` in at least ``repeats``
    batches of calls, every implementation on as many threads as fastgd's loops use.
    """
    import pandas as pd

    from fastgd import threads

    say = progress or (lambda message: None)
    rules = list(optim.OPTIMIZERS) if rules is None else list(rules)
    if compiling is not None:
        if not compiling.done():
            say("waiting for the steps compiling in the background")
        compiling.wait()
    implementations = [i for i in IMPLEMENTATIONS if available(i)]
    largest = max(parameter_counts)

    say("machine: memory bandwidth and matrix-multiply peak")
    written = {rule: arrays_written(rule) for rule in rules}

    # the steps' references, measured again after each step at the largest size and at the end, keeping the best:
    # the load of a shared machine drifts, and a reference measured only in a busy moment would sit below a step
    # timed in a quiet one
    streams = {arrays: InPlaceStreams(largest, arrays, STEP_DTYPE)
               for arrays in sorted(set(written.values())) if arrays <= MAX_STREAMS}
    best = {}

    def measure_reference(arrays):
        if arrays in streams:
            streams[arrays]()
            best[arrays] = max(best.get(arrays, 0.0), streams[arrays].bandwidth(budget_seconds))

    for arrays in streams:
        measure_reference(arrays)
    machine = {"in_place_bytes_per_second": {},
               "in_place_parameters": largest,
               # whether the steps at the largest size stream from the cache or from main memory
               "last_level_cache_bytes": last_level_cache_bytes(),
               "triad_bytes_per_second": triad_bandwidth(budget_seconds=budget_seconds),
               "gemm_flops_float64": gemm_rate("float64", budget_seconds),
               "gemm_flops_float32": gemm_rate("float32", budget_seconds),
               "gemm_flops_at_network_sizes": {}, "threads": {}}

    training, timings, networks = [], [], []
    with same_threads(training_threads) as told:
        machine["threads"]["training"] = {implementation: told[implementation] for implementation in implementations}
        for name in dataset_names:
            data = name if isinstance(name, datasets.Dataset) else dataset(name)
            say(f"training throughput on {data.name}")
            layer_sizes = [data.n_features, EPOCH_SETTINGS["hidden"], data.n_outputs]
            dtypes = {implementation: EPOCH_DTYPES.get(implementation, "float64") for implementation in implementations}
            trainers = {implementation: warmed_trainer(implementation, data, dtype=dtypes[implementation],
                                                                 **EPOCH_SETTINGS)
                        for implementation in implementations}
            for repeat in range(repeats):
                turn = repeat % len(implementations)
                for implementation in implementations[turn:] + implementations[:turn]:
                    timings.append(dict(dataset=data.name, implementation=implementation, repeat=repeat,
                                        seconds_per_epoch=trainers[implementation].seconds_per_epoch(budget_seconds)))
            for implementation in implementations:
                seconds = float(np.median([row["seconds_per_epoch"] for row in timings if row["dataset"] == data.name
                                           and row["implementation"] == implementation]))
                training.append(dict(dataset=data.name, implementation=implementation, dtype=dtypes[implementation],
                                     seconds_per_epoch=seconds,
                                     samples_per_second=trainers[implementation].n_samples / seconds,
                                     repeats=repeats, threads=training_threads))
            networks.extend((layer_sizes, dtype) for dtype in sorted(set(dtypes.values())))
    for layer_sizes, dtype in networks:  # the BLAS's rate on all its threads, as the peak beside it
        machine["gemm_flops_at_network_sizes"].setdefault(dtype, {})[
            _network_label(layer_sizes, EPOCH_SETTINGS["batch_size"])] = network_gemm_rate(
            layer_sizes, EPOCH_SETTINGS["batch_size"], dtype, budget_seconds)

    steps = []
    alone = [rule for rule in rules if rule not in reference.RULES]
    if alone:
        say(f"{', '.join(alone)}: no NumPy reference declared; the compiled rule's step is timed alone")
    too_large = _too_large(rules, parameter_counts)
    left_out = sorted({rule for names in too_large.values() for rule in names})
    if left_out:
        sizes = {rule: ", ".join(f"{size:,}" for size in parameter_counts if rule in too_large[size])
                 for rule in left_out}
        say("; ".join(f"{rule} not timed on {sizes[rule]} parameters" for rule in left_out)
            + ": its state for one long vector would not fit")
    if compiling is None:
        compile_steps_ahead(rules, parameter_counts, say)
    step_threads = threads.get_num_threads()
    with same_threads(step_threads) as told:
        machine["threads"]["steps"] = {implementation: told[implementation] for implementation in ("fastgd", "numpy",
                                                                                                    "torch")
                                       if implementation in told}
        for size in parameter_counts:
            say(f"update-rule steps on {size:,} parameters")
            for rule in rules:
                if rule in too_large[size]:
                    continue
                moved = bytes_moved(written[rule], STEP_DTYPE, size)
                for implementation, kernel in _step_kernels(rule, size):
                    step, kernel = _warmed_step(rule, size, kernel)
                    timed = per_call_seconds(step, budget_seconds, min_repeats=repeats)
                    seconds = float(np.median(timed))
                    # the middle half of the batches: dozens of millisecond batches, of which the odd one
                    # meets a busy moment; the extremes would call every step on a shared machine unreliable
                    low, high = (float(value) for value in np.percentile(timed, [25, 75]))
                    steps.append(dict(rule=rule, parameters=size, implementation=implementation, kernel=kernel,
                                      seconds=seconds, seconds_low=low, seconds_high=high,
                                      bytes_per_second=moved / seconds, arrays_written=written[rule]))
                if size == largest:
                    measure_reference(written[rule])
        for arrays in streams:
            measure_reference(arrays)
    machine["in_place_bytes_per_second"] = {str(arrays): rate for arrays, rate in best.items()}
    return {"training": pd.DataFrame(training), "training_repeats": pd.DataFrame(timings), "steps": pd.DataFrame(steps),
            "machine": machine}


