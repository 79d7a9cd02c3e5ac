"""Running a sweep: runs grouped, trained (together or one by one), stored as they finish.

Runs that share a data set and network shape form a group; a group is cut into
chunks, and a chunk is one unit of work for a worker:

* batched (the default): the whole chunk trains in ONE compiled call,
  :func:`fastgd.kernels.train.train_runs_together`, one run per ``prange``
  iteration;
* one at a time (``batched=False``): each run through :class:`fastgd.training.Training`.

Both give the same numbers for a run. A run whose spec has ``track_objective`` also records the full training
objective (every training row, penalty included) at θ after each epoch, outside its clock: inside the compiled
call for the runs that ask (:func:`fastgd.kernels.train.training_objective`), through the model's ``loss`` for a
run trained alone (at its evaluation point, for a rule that has one); the store keeps it in ``curves.objective``.
Workers are local processes (``jobs``)
or the workers of a Dask cluster (``scheduler``); only this process writes the
store, one transaction per run, so a sweep killed at any moment loses at most
the chunks in flight. Runs already stored are skipped, so running a sweep
again resumes it; a run another sweep stored meanwhile is kept as it is.

A configuration with ``[tuning]`` runs in two phases through the same
machinery (:mod:`fastgd.sweep.plan`): its tuning trials, then the final
runs that the stored trials choose; the progress output names the phase, and
a sweep stopped in either phase resumes there.

Nothing is created before the sweep can start: the store is checked, and the
Dask scheduler reached, before the store file or its ``sweeps`` row is
written. An address where something other than a scheduler answers is refused
within :data:`SCHEDULER_TIMEOUT_SECONDS`; a scheduler without workers is waited
for, at most :data:`WORKER_WAIT_SECONDS`. A cluster that fails mid-sweep ends
it with a :class:`SweepError` counting the runs stored; a chunk whose data
set cannot be loaded where it runs (its file deleted meanwhile) has its runs
stored as failed, as a changed file's are. Local workers exit when this process dies, however it dies (each
watches its parent); interrupted (SIGINT, or SIGTERM from the command line),
a sweep stores the chunks that finished, stops its workers at once and
raises KeyboardInterrupt, whose ``outcome`` attribute counts what was stored.
"""

import math
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import numpy as np

from fastgd import _config, datasets, machine, optim, rules
from fastgd.models import MLP
from fastgd.sweep import plan, solvers
from fastgd.sweep.config import SweepConfig, network_for, network_options
from fastgd.sweep.progress import Progress
from fastgd.sweep.store import Store, check_store_path
from fastgd.training import first_divergent_epoch

__all__ = ["run_sweep", "execute_chunk", "SweepOutcome", "SweepError"]

CHUNK_SIZE = 48
# a group of runs with more work than a CHUNKS_PER_WORKER-th of a worker's share of a phase is cut (chunks_of)
CHUNKS_PER_WORKER = 2
SCHEDULER_TIMEOUT_SECONDS = 10
# how long a sweep waits for a scheduler without workers to get one, before anything is written
WORKER_WAIT_SECONDS = 60
# local worker processes per core at most: more only share the cores, and each costs the memory of a process
# that has imported NumPy, Numba and scikit-learn and holds its data set
MAX_JOBS_PER_CORE = 2


class SweepError(RuntimeError):
    """A sweep that cannot start or cannot go on (no scheduler, a worker that died); the message is one line."""


class _ClusterLost(Exception):
    """The Dask cluster failed under a running sweep (its scheduler gone, a worker killed); the reason, one line."""


@dataclass
class SweepOutcome:
    """What a sweep did: runs planned, already stored, new, failed, diverged; seconds; phases; notes."""
    total: int
    skipped: int
    stored: int
    failed: int
    diverged: int
    seconds: float
    # under [tuning]: {"tune": (total, skipped, stored), "final": ...}; and what the protocol could not choose
    phases: dict = field(default_factory=dict)
    notes: tuple = ()


def _network(spec, data):
    """The run's model: its declared network (:func:`fastgd.sweep.config.network_for`), else its MLP."""
    if spec.model is not None:
        return network_for(spec.model, data.task, data.n_features, data.n_outputs)
    return MLP([data.n_features, *spec.hidden_layer_sizes, data.n_outputs], spec.activation, data.output,
               spec.alpha, np.dtype(spec.dtype))


def _init(spec, net):
    """The run's starting θ: its seed's draw of the model's initialisation (by the scheme its [model] table names,
    else the declaration's own: scikit-learn's for the MLP), in the run's dtype."""
    scheme = network_options(spec.model)[1] if spec.model is not None else None
    return net.init(random_state=spec.seed, scheme=scheme, dtype=np.dtype(spec.dtype))


def _summarise(spec, net, data, theta, losses, seconds, diverged_epoch, objectives=None):
    """The stored fields of a finished run from its curve, final θ and (``spec.track_objective``) the full training
    objective after each epoch."""
    losses, seconds = list(map(float, losses)), list(map(float, seconds))
    objectives = None if objectives is None else [value if math.isfinite(value) else None
                                                  for value in map(float, objectives)]
    # train_runs_together (compiled) stops a run only at a non-finite loss or θ; Training
    # also stops at a loss far above the first epoch's (fastgd.training.is_divergent). The
    # same test on the curve here makes both paths store the same run.
    grown = first_divergent_epoch(losses)
    if grown is not None and (diverged_epoch is None or grown < diverged_epoch):
        diverged_epoch, losses, seconds = grown, losses[:grown - 1], seconds[:grown - 1]
    reached = next((epoch for epoch, loss in enumerate(losses) if loss <= spec.target_loss), None)
    if objectives is not None:
        objectives = objectives[:len(losses)]
    result = dict(spec=spec, losses=losses, seconds=seconds, objectives=objectives, epochs_run=len(losses),
                  diverged_epoch=diverged_epoch,
                  status="diverged" if diverged_epoch else "ok", error=None,
                  final_loss=None if diverged_epoch else (losses[-1] if losses else None),
                  best_loss=min(losses) if losses else None,
                  epochs_to_target=None if reached is None else reached + 1,
                  seconds_to_target=None if reached is None else seconds[reached],
                  train_seconds=seconds[-1] if seconds else 0.0,
                  test_metric=None, test_metric_name=data.metric_name,
                  test_loss=None, validation_loss=None, validation_metric=None)
    if not diverged_epoch:
        # a run of the validation split has the validation rows as its data's test part (Dataset.validation_split)
        part = "validation" if spec.split == "validation" else "test"
        loss = net.loss(theta, data.X_test, data.Y_test)
        result[f"{part}_loss"] = loss if math.isfinite(loss) else None
        result[f"{part}_metric"] = data.test_metric(net.predict(theta, data.X_test))
    return result


def _failed(spec, error):
    return dict(spec=spec, status="failed", error=f"{type(error).__name__}: {error}", losses=[], seconds=[],
                epochs_run=0, test_metric_name=None)


def _train_alone(spec, net, data, optimizer):
    from fastgd.training import Training, make_schedule

    training = Training(net, optimizer, data.X_train, data.Y_train, _batch_size(spec, data), seed=spec.seed,
                        schedule=make_schedule(spec.schedule, n_epochs=spec.n_epochs))
    objectives = [] if spec.track_objective else None

    def record_objective(training, loss):
        # after each finite epoch, at the θ the run is evaluated at (a rule with an evaluation point's loss is
        # already the whole training set's there: fastgd.training.Training.epoch)
        if training.optimizer.rule.evaluation is not None:
            objectives.append(loss)
        else:
            objectives.append(net.loss(training.optimizer.params, data.X_train, data.Y_train))
        return False

    history = training.run(spec.n_epochs, callback=record_objective if spec.track_objective else None)
    return _summarise(spec, net, data, optimizer.evaluation_params(), history.loss, history.seconds,
                      history.diverged_epoch, objectives)


def _train_together(specs, net, data, optimizers):
    from threadpoolctl import threadpool_limits

    from fastgd.kernels.schedules import SAMPLES_PER_EPOCH
    from fastgd.kernels.train import train_runs_together
    from fastgd.training import make_schedule, runs_together_arguments

    n_runs, n_epochs = len(specs), specs[0].n_epochs
    thetas = np.stack([optimizer.params for optimizer in optimizers])
    losses = np.full((n_runs, n_epochs), np.nan)
    seconds = np.full((n_runs, n_epochs), np.nan)
    diverged = np.zeros(n_runs, dtype=np.int64)
    X, Y = net.check_data(data.X_train, data.Y_train, thetas.dtype)
    X = X.reshape(X.shape[0], -1)  # the epoch gathers flat rows
    schedule = make_schedule(specs[0].schedule, n_epochs=n_epochs)  # a chunk is one group: one schedule
    schedule[SAMPLES_PER_EPOCH] = X.shape[0]  # as Training sets it: invscaling counts the samples seen
    # the full training objective after every epoch, for the runs that ask
    track = np.array([spec.track_objective for spec in specs], dtype=np.bool_)
    objectives = np.full((n_runs, n_epochs), np.nan)
    arguments = runs_together_arguments(net, [optimizer.packed() for optimizer in optimizers], thetas, X, Y,
                                        schedule, _batch_size(specs[0], data),
                                        np.array([spec.seed for spec in specs], dtype=np.int64), n_epochs,
                                        (losses, seconds, diverged, track, objectives))
    # workers and other sweeps sharing the cache compile at the same time, maybe other signatures (dtypes)
    _config.compile_for(train_runs_together, arguments)
    # each run is one thread's work: BLAS inside it must not start threads of its own
    with threadpool_limits(1):
        train_runs_together(*arguments)
    results = []
    for run, spec in enumerate(specs):
        finished = int(diverged[run]) - 1 if diverged[run] else n_epochs
        results.append(_summarise(spec, net, data, thetas[run], losses[run, :finished], seconds[run, :finished],
                                  int(diverged[run]) or None, objectives[run, :finished] if track[run] else None))
    return results


def _train_solver(spec, net, data):
    """A whole-batch solver's run (:mod:`fastgd.sweep.solvers`): each epoch one L-BFGS step on every training row
    (:func:`fastgd.training.lbfgs_epochs`), its loss the step's first evaluation, its seconds the steps' own; the
    full training objective (``track_objective``) at θ after each epoch, outside the clock."""
    from threadpoolctl import threadpool_limits

    from fastgd.training import is_divergent, lbfgs_epochs

    settings = solvers.SOLVERS[spec.rule].optimizer_settings(spec.optimizer_hyperparameters())
    theta = _init(spec, net)
    losses, seconds, objectives, diverged, elapsed = [], [], [] if spec.track_objective else None, None, 0.0
    with threadpool_limits(1):  # one thread's work, as a run trained in a sweep's shared call
        for epoch, (loss, step_seconds, _) in enumerate(lbfgs_epochs(net, theta, data.X_train, data.Y_train,
                                                                      spec.n_epochs, **settings), start=1):
            if is_divergent(loss, losses[0] if losses else None):
                diverged = epoch
                break
            elapsed += step_seconds
            losses.append(loss)
            seconds.append(elapsed)
            if objectives is not None:
                objectives.append(net.loss(theta, data.X_train, data.Y_train))
            if not np.all(np.isfinite(theta)):
                diverged = epoch + 1
                break
    return _summarise(spec, net, data, theta, losses, seconds, diverged, objectives)


def _batch_size(spec, data):
    return data.X_train.shape[0] if spec.batch_size == "full" else spec.batch_size


def _check_definition(spec, data):
    """The rule and the data as this process has them must be those the sweep planned (their hashes are in the
    run's id)."""
    rule = solvers.definition(spec.rule)
    if rule.hash != spec.rule_hash:
        raise RuntimeError(f"rule {spec.rule!r} has definition {rule.hash[:12]} here, the sweep planned "
                           f"{spec.rule_hash[:12]}: its plugin differs between this worker and the sweep")
    if data.content_hash != spec.data_hash:
        raise RuntimeError(f"data set {spec.dataset!r} has content {data.content_hash[:12]} here, the sweep planned "
                           f"{spec.data_hash[:12]}: its file differs between this worker and the sweep")


def execute_chunk(specs, batched=True, plugins=(), sources=None):
    """Train the runs of one chunk (one group); returns one result dict per spec, never raises for a run.

    ``plugins`` (:class:`fastgd.rules.Plugin`) are loaded first: a local
    worker process or a Dask worker then knows the users' rules the sweep
    names, in the definition the sweep planned. ``sources``: the sweep's own
    data sets (:attr:`SweepConfig.sources`), a file read where the worker runs.
    """
    start, compiled_before = time.perf_counter(), _config.compile_seconds()
    rules.load_plugins(plugins)
    try:
        data = datasets.load(specs[0].dataset, sources)
        if specs[0].split == "validation":  # a chunk is one group: one split of one data set
            data = data.validation_split(specs[0].validation_fraction)
        net = _network(specs[0], data)
    except Exception as error:
        # its file deleted, or no longer readable, since the sweep checked it: the chunk's runs fail as a changed
        # file's do, and the sweep goes on
        return _stamped([_failed(spec, error) for spec in specs], batched, time.perf_counter() - start,
                        _config.compile_seconds() - compiled_before)
    results, ready, optimizers = [], [], []
    for spec in [spec for spec in specs if solvers.is_solver(spec.rule)]:
        try:  # a whole-batch solver trains alone, with no optimizer object
            _check_definition(spec, data)
            results.append(_train_solver(spec, net, data))
        except Exception as error:
            results.append(_failed(spec, error))
    for spec in [spec for spec in specs if not solvers.is_solver(spec.rule)]:
        try:
            _check_definition(spec, data)
            theta = _init(spec, net)
            optimizers.append(optim.OPTIMIZERS[spec.rule](theta, layout=net.layout,
                                                          **spec.optimizer_hyperparameters()))
            ready.append(spec)
        except Exception as error:  # a run that cannot start is stored as failed; the sweep goes on
            results.append(_failed(spec, error))
    alone = [(spec, optimizer) for spec, optimizer in zip(ready, optimizers)
             if not batched or optimizer.rule.evaluation is not None]
    if batched and len(alone) < len(ready):
        # one compiled call per rule variant: its runs share the rule's step and state layout (a rule with an
        # evaluation point trains alone, its losses taken there)
        by_variant = {}
        for spec, optimizer in zip(ready, optimizers):
            if optimizer.rule.evaluation is None:
                by_variant.setdefault(optimizer.variant_key, []).append((spec, optimizer))
        for runs in by_variant.values():
            batch = [spec for spec, _ in runs]
            try:
                results += _train_together(batch, net, data, [optimizer for _, optimizer in runs])
            except Exception as error:
                results += [_failed(spec, error) for spec in batch]
    for spec, optimizer in alone:
        try:
            results.append(_train_alone(spec, net, data, optimizer))
        except Exception as error:
            results.append(_failed(spec, error))
    return _stamped(results, batched, time.perf_counter() - start, _config.compile_seconds() - compiled_before)


def _stamped(results, batched, elapsed, compiling):
    """The results with what made them: this process's provenance, how they ran, their wall time, and the chunk's
    wall seconds and its seconds of compiling (``chunk_seconds`` and ``compile_seconds``, on its first result only,
    so that the results' sums are the chunk's: the progress line's ETA models them, see
    :class:`fastgd.sweep.progress.Progress`)."""
    made_by = machine.provenance()  # of this process: a Dask worker may be another machine than the sweep's client
    for index, result in enumerate(results):
        result["provenance"] = made_by
        result["batched"] = batched
        result["wall_seconds"] = elapsed if batched else result.get("train_seconds", 0.0)
        result["compile_seconds"] = compiling if index == 0 else 0.0
        result["chunk_seconds"] = elapsed if index == 0 else 0.0
    return results


def max_local_workers():
    """The most local worker processes a sweep starts: :data:`MAX_JOBS_PER_CORE` per core."""
    return MAX_JOBS_PER_CORE * (os.cpu_count() or 1)


def local_workers(jobs, n_chunks):
    """How many local worker processes run ``n_chunks`` chunks when ``jobs`` are asked for (None: one per core):
    no more than there are chunks, nor than :func:`max_local_workers`."""
    return max(1, min(jobs or os.cpu_count() or 1, n_chunks, max_local_workers()))


def compile_group(spec):
    """What a run's first chunk compiles for (its rule, dtype and model): runs of one group after the first find
    their code compiled, which the progress line's ETA counts on."""
    return spec.rule, spec.dtype, spec.model


def chunks_of(specs, size=CHUNK_SIZE, work=None, workers=1):
    """The chunks a sweep hands to its workers: runs of one group and rule (one compiled call), at most ``size``.

    With ``work`` (``{run id: its work}``, :func:`run_work`) and several ``workers``, a group whose work is more
    than a :data:`CHUNKS_PER_WORKER`-th of a worker's share of the whole is cut into even chunks of about that
    much, and the chunks come largest first: the workers take them in that order, so that the longest runs start
    first and the small ones fill in at the end (the suite's 2c2d, most of a rule's work, left one core idle for
    minutes at the end of each phase when it came last, in one chunk)."""
    groups = {}
    for spec in specs:
        groups.setdefault((spec.group, spec.rule), []).append(spec)
    if not work or workers <= 1:
        return [group[i:i + size] for group in groups.values() for i in range(0, len(group), size)]
    share = sum(work.get(spec.run_id, 0.0) for spec in specs) / (CHUNKS_PER_WORKER * workers)
    chunks = []
    for group in groups.values():
        group_work = sum(work.get(spec.run_id, 0.0) for spec in group)
        pieces = max(-(-len(group) // size), min(len(group), math.ceil(group_work / share) if share > 0 else 1))
        # even pieces: their sizes differ by one run at most
        bounds = [len(group) * piece // pieces for piece in range(pieces + 1)]
        chunks += [group[start:stop] for start, stop in zip(bounds, bounds[1:])]
    # sorted is stable: chunks of equal work keep the plan's order
    return sorted(chunks, key=lambda chunk: -sum(work.get(spec.run_id, 0.0) for spec in chunk))


def _init_worker(threads, plugins=()):
    import multiprocessing
    import signal
    import threading

    import numba
    from threadpoolctl import threadpool_limits

    # Ctrl-C reaches the whole process group: the parent alone decides what happens then
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent.sentinel,), daemon=True,
                         name="fastgd-exit-with-parent").start()
    numba.set_num_threads(threads)
    threadpool_limits(1)
    rules.load_plugins(plugins)


def _exit_with_parent(sentinel):
    """Block until the parent process is gone, then end this worker at once (also inside a compiled call).

    The sentinel is the pipe (a process handle on Windows) through which the parent
    started this process: it becomes ready only when the parent exits, however it
    exits, SIGKILL included. Without this, a worker whose parent was killed waits
    forever on its task queue, and keeps multiprocessing's resource tracker alive.
    """
    from multiprocessing.connection import wait

    wait([sentinel])
    os._exit(1)


def _plugins_for(config, in_processes):
    """The plugins workers load: the configuration's, and those that registered any other user rule it names.

    Refuses a user's rule registered directly in this process (not by a
    plugin) when other processes must run it: they could not know it.
    """
    plugins = list(config.plugins)
    known = {plugin.digest or plugin.spec for plugin in plugins}
    for name in config.rules:
        if rules.is_builtin(name) or solvers.is_solver(name):
            continue
        plugin = rules.plugin_of(name)
        if plugin is None:
            if in_processes:
                raise rules.RuleError(f"rule {name!r} was registered in this process, not by a plugin: worker "
                                      "processes cannot load it; put it in a plugin file (plugins = [...] in the "
                                      "configuration, --plugin) or run with one job")
        elif (plugin.digest or plugin.spec) not in known:
            plugins.append(plugin)
            known.add(plugin.digest or plugin.spec)
    return tuple(plugins)


def _check_users_rules_compile(config):
    """Compile each user's rule once for the sweep's dtype, before the store is touched.

    A definition Numba cannot compile is then one clear error, not a store of
    failed runs. Built-in rules are left to the workers.
    """
    seen = set()
    for spec in plan.runs(config):
        # seeds, data sets, batch sizes and learning rates leave the compiled code as it is
        key = (spec.rule, spec.hyperparameters, spec.dtype)
        if rules.is_builtin(spec.rule) or solvers.is_solver(spec.rule) or key in seen:
            continue
        seen.add(key)
        optimizer = optim.OPTIMIZERS[spec.rule](np.zeros(1, np.dtype(spec.dtype)), **spec.optimizer_hyperparameters())
        if optimizer.variant_key not in seen:
            seen.add(optimizer.variant_key)
            optimizer.packed()  # compiles the rule's training entry point, or raises RuleError


def run_work(config, specs):
    """{run id: the run's work}, an estimate for the progress line's ETA (:class:`Progress`'s ``work``): epochs ×
    (three passes over its training rows, forward and backward, each a sample's multiply-adds
    (:func:`fastgd.kernels.network.multiply_adds_per_sample`, an MLP's Σ n_in·n_out) + a step over θ a batch)."""
    from fastgd.kernels.network import multiply_adds_per_sample

    per_group, work = {}, {}
    for spec in specs:
        key = (spec.dataset, spec.model, spec.hidden_layer_sizes, spec.activation)
        if key not in per_group:
            data = datasets.load(spec.dataset, config.sources)
            net, _ = config.model(spec.dataset, data)
            if hasattr(net, "multiply_adds_per_sample"):  # a model of its own count (the noisy quadratic's)
                madds = net.multiply_adds_per_sample
            elif net.stack is not None:
                sizes = np.asarray(net.stack.layer_sizes, dtype=np.int64)
                madds = int(np.sum(sizes[:-1] * sizes[1:]))
            else:
                madds = multiply_adds_per_sample(net.plan)
            per_group[key] = (data.X_train.shape[0], madds, net.n_params)
        rows, madds, n_params = per_group[key]
        if spec.split == "validation" and spec.validation_fraction:
            rows = max(1, int(rows * (1 - spec.validation_fraction)))
        batch = rows if spec.batch_size == "full" else max(1, min(int(spec.batch_size), rows))
        work[spec.run_id] = spec.n_epochs * (3.0 * rows * madds + -(-rows // batch) * n_params)
    return work


def run_sweep(config, store_path, jobs=None, scheduler=None, batched=True, retry_failed=False, progress=True,
              chunk_size=CHUNK_SIZE):
    """Run every run of ``config`` not already in the store at ``store_path``; see the module docstring.

    ``jobs``: local worker processes (default one per core), at most one per chunk of runs and
    :func:`max_local_workers` in all.

    Raises :class:`fastgd.sweep.StoreError` for a path that is not (and cannot become) a
    fastgd store and :class:`SweepError` when the scheduler cannot be reached, both
    before anything is written.
    """
    if not isinstance(config, SweepConfig):
        raise TypeError(f"config must be a SweepConfig (from load_config, load_preset or parse), got "
                        f"{type(config).__name__}")
    for name, value in (("jobs", jobs), ("chunk_size", chunk_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if scheduler is not None and jobs is not None:
        raise ValueError("jobs is for local runs; with a scheduler the cluster's workers run the sweep")
    started = time.perf_counter()
    specs = plan.runs(config)
    check_store_path(store_path, "w")
    in_processes = scheduler is not None or (jobs or os.cpu_count() or 1) > 1
    plugins = _plugins_for(config, in_processes)
    _check_users_rules_compile(config)
    client = _connect(scheduler, progress) if scheduler is not None else None
    pool = _LocalPool(plugins)  # the local worker processes, started once for both phases of a tuning sweep
    try:
        with Store(store_path) as store:
            # rules as resolved: "all" names the rules registered now, which a report of a killed sweep lists
            sweep_id = store.begin_sweep(config.name, dict(config.source, rules=list(config.rules)),
                                         machine.provenance())
            planned = list(specs)  # the final runs of a tuning sweep join once its trials are stored

            def outcome(notes=()):
                # counted in the store: exact also when an interruption fell between a commit and its count
                statuses = store.statuses(sweep_id)
                mine = list(statuses.values())
                held = store.run_ids()
                phases = {}
                if config.tuning is not None:
                    for phase in ("tune", "final"):
                        ids = {spec.run_id for spec in planned if spec.phase == phase}
                        new = len(ids & set(statuses))
                        phases[phase] = (len(ids), len(ids & held) - new, new)
                return SweepOutcome(len(planned), len(held & {spec.run_id for spec in planned}) - len(mine),
                                    len(mine), mine.count("failed"), mine.count("diverged"),
                                    time.perf_counter() - started, phases, tuple(notes))

            def run(phase_specs, label):
                if retry_failed:
                    # this sweep's own failed runs only: a shared store keeps other sweeps' as they are
                    store.forget(store.run_ids("failed") & {spec.run_id for spec in phase_specs})
                done = store.run_ids()
                pending = [spec for spec in phase_specs if spec.run_id not in done]
                work = run_work(config, pending) if pending else {}
                slots = len(client.scheduler_info()["workers"]) if client is not None else local_workers(jobs, len(
                    pending))
                chunks = chunks_of(pending, chunk_size, work, slots)
                workers = local_workers(jobs, len(chunks))
                bar = Progress(len(pending), enabled=progress, label=label, work=sum(work.values()) or None,
                               groups=len({compile_group(spec) for spec in pending}),
                               workers=workers if client is None else slots)
                compiled_groups = set()

                def store_results(results):
                    for result in results:
                        store.add(sweep_id, result)  # False: another sweep writing this store got there first
                    groups = {compile_group(result["spec"]) for result in results} - compiled_groups
                    compiled_groups.update(groups)
                    bar.update(len(results), work=sum(work.get(result["spec"].run_id, 0.0) for result in results)
                               if work else None, new_groups=len(groups),
                               compile_seconds=sum(result.get("compile_seconds", 0.0) for result in results),
                               seconds=sum(result.get("chunk_seconds", 0.0) for result in results))

                try:
                    if client is not None:
                        _run_on_dask(chunks, batched, client, store_results, plugins, config.sources)
                    elif workers <= 1:
                        for chunk in chunks:
                            store_results(execute_chunk(chunk, batched, plugins, _sources_of(chunk, config.sources)))
                    else:
                        _run_in_processes(chunks, batched, workers, store_results, plugins, config.sources,
                                          pool=pool)
                except KeyboardInterrupt as interrupt:
                    interrupt.outcome = outcome()
                    raise
                except BrokenProcessPool:
                    raise SweepError(f"a worker process died (out of memory?); {outcome().stored} runs were "
                                     "stored: run the sweep again to resume") from None
                except _ClusterLost as lost:
                    stored = outcome().stored
                    raise SweepError(f"the Dask cluster at {scheduler} failed mid-sweep ({lost}); {stored} new "
                                     f"run{'s were' if stored != 1 else ' was'} stored in {store_path}: run the same "
                                     "command again to resume") from None
                finally:
                    bar.close()

            if config.tuning is None:
                run(specs, config.name)
                return outcome()
            run(specs, f"{config.name}, tuning ({config.tuning.budget} budget)")
            # the final runs follow from the stored trials, whichever sweep stored them
            stored = store.runs_frame().set_index("run_id")["validation_loss"]
            try:
                final, notes = plan.final_runs(config, {spec.run_id: stored.get(spec.run_id)
                                                            for spec in specs if spec.run_id in stored.index})
            except ValueError as error:
                raise SweepError(str(error)) from None
            planned += final
            run(final, f"{config.name}, final runs ({config.tuning.final_seeds} seeds)")
            return outcome(notes)
    finally:
        pool.close()
        if client is not None:
            _close(client)


def _close(client):
    """Close a Dask client within :data:`SCHEDULER_TIMEOUT_SECONDS`: its cluster may be gone, and what the sweep
    raises (or returns) says what happened."""
    try:
        client.close(timeout=SCHEDULER_TIMEOUT_SECONDS)
    except Exception:  # TimeoutError, or the connection's own error
        pass


def _connect(address, progress=False):
    """A Dask client of the scheduler at ``address``, which has a worker; SweepError in one line when there is
    none, or none joins it in :data:`WORKER_WAIT_SECONDS` (said on stderr when ``progress``)."""
    try:
        from distributed import Client
    except ImportError:
        raise SweepError("a sweep on a Dask cluster needs dask.distributed: pip install 'fastgd[distributed]'") \
            from None
    _probe_scheduler(address)
    try:
        client = Client(address, timeout=SCHEDULER_TIMEOUT_SECONDS)
    except Exception as error:  # OSError (timed out, refused), ValueError (address), TypeError...
        raise SweepError(f"cannot reach the Dask scheduler at {address}: {_reason(error)}") from None
    try:
        if not client.scheduler_info().get("workers"):
            if progress:
                print(f"[fastgd] the Dask scheduler at {address} has no workers: waiting up to "
                      f"{WORKER_WAIT_SECONDS} s for one", file=sys.stderr, flush=True)
            client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
    except Exception as error:  # TimeoutError; the scheduler gone meanwhile
        client.close()
        waited = "none joined" if isinstance(error, TimeoutError) else _reason(error)
        raise SweepError(f"the Dask scheduler at {address} has no workers ({waited} in {WORKER_WAIT_SECONDS} s): "
                         f"start some (dask worker {address}) and run the same command again") from None
    return client


def _reason(error):
    return " ".join(str(error).split()) or type(error).__name__


def _probe_scheduler(address):
    """Refuse a TCP address where something answers that is not a Dask scheduler, within
    :data:`SCHEDULER_TIMEOUT_SECONDS`.

    A scheduler sends its handshake as soon as it accepts a connection; Dask's client then waits for it
    without a time limit, so a server that waits for the client to speak first (HTTP) would hold the sweep
    forever. The handshake's first 8 bytes are its number of frames, a small little-endian integer.
    """
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme != "tcp":
            return
        host, port = parse_host_port(location)
    except (ValueError, TypeError):
        return  # Dask's own error names the address
    try:
        connection = socket.create_connection((host, port), timeout=SCHEDULER_TIMEOUT_SECONDS)
    except OSError:
        return  # nothing answers: Dask's own error says so, within its time limit
    with connection:
        received = b""
        try:
            while len(received) < 8:
                more = connection.recv(8 - len(received))
                if not more:
                    break
                received += more
        except OSError:  # socket.timeout included
            pass
    if len(received) < 8 or not 0 < int.from_bytes(received, "little") < 1 << 16:
        heard = f"it sent {received!r}" if received else f"it sent nothing in {SCHEDULER_TIMEOUT_SECONDS} s"
        raise SweepError(f"cannot reach the Dask scheduler at {address}: something listens there that is not a "
                         f"Dask scheduler ({heard})")


def _sources_of(chunk, sources):
    """The sweep's own data set a chunk trains on, as ``execute_chunk`` takes it (None for a built-in set)."""
    name = chunk[0].dataset
    return {name: sources[name]} if sources and name in sources else None


class _LocalPool:
    """A sweep's local worker processes: started by the first phase that needs them and kept for the next, whose
    chunks then find the imports made, the data sets loaded and the compiled code in memory (the suite's final
    runs otherwise started two processes again, each importing NumPy, Numba and scikit-learn, generating
    MNIST-1D and loading the 2c2d's epoch from the cache)."""

    def __init__(self, plugins=()):
        self.plugins, self.jobs, self.pool = plugins, None, None

    def executor(self, jobs):
        """A ProcessPoolExecutor of ``jobs`` workers: the one already started if it has as many."""
        import multiprocessing

        if self.pool is not None and self.jobs != jobs:
            self.close()
        if self.pool is None:
            threads = max(1, (os.cpu_count() or 1) // jobs)
            # spawn, not fork: Numba's threading layers are not safe to fork once started
            self.pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init_worker, initargs=(threads, self.plugins))
            self.jobs = jobs
        return self.pool

    def close(self):
        """Wait for the workers to exit (their work is done or was cancelled)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        self.pool = self.jobs = None


def _run_in_processes(chunks, batched, jobs, store_results, plugins=(), sources=None, pool=None):
    """Train ``chunks`` on ``jobs`` local worker processes, those of ``pool`` (a :class:`_LocalPool`, kept for the
    next phase) or new ones (ended here)."""
    local = pool or _LocalPool(plugins)
    try:
        _run_on_pool(local.executor(jobs), chunks, batched, store_results, plugins, sources)
    finally:
        if pool is None:
            local.close()


class _HeldSignals:
    """SIGINT and SIGTERM held while the parent waits on its workers, and raised by :meth:`raise_held`.

    Their handlers raise (KeyboardInterrupt, the command line's SIGTERM): raised at any bytecode, such an exception
    can land inside ``concurrent.futures`` while it holds a future's lock or half-built waiters, or inside the
    executor's shutdown, and leave the stopped sweep waiting forever for a lock or a thread. Held, the signal is
    raised where the parent is between two waits, by the handler that was installed (so it raises what it would
    have raised). Only a Python handler is held, and only on the main thread, where signals are delivered.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.held, self.previous = [], {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                handler = signal.getsignal(number)
                if callable(handler):
                    self.previous[number] = handler
                    signal.signal(number, self._hold)
        return self

    def _hold(self, number, frame):
        self.held.append((number, frame))

    def raise_held(self):
        """Call the first held signal's own handler (which raises), if one arrived."""
        if self.held:
            number, frame = self.held[0]
            self.held.clear()
            self.previous[number](number, frame)

    def __exit__(self, *exception):
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        return False


# how long the parent waits on its workers before it looks for a held signal: the delay a Ctrl-C may take
SIGNAL_POLL_SECONDS = 0.1


def _run_on_pool(pool, chunks, batched, store_results, plugins, sources):
    futures, stored = [], set()
    with _HeldSignals() as signals:
        try:
            futures = [pool.submit(execute_chunk, chunk, batched, plugins, _sources_of(chunk, sources))
                       for chunk in chunks]
            order = {future: index for index, future in enumerate(futures)}
            running = set(futures)
            while running:
                signals.raise_held()
                done, running = wait(running, timeout=SIGNAL_POLL_SECONDS, return_when=FIRST_COMPLETED)
                # in the order they were submitted: the store's order then follows the plan's
                for future in sorted(done, key=order.get):
                    store_results(future.result())
                    stored.add(future)
            signals.raise_held()  # a signal during the last chunk's storing stops the sweep as it would have
        except BaseException:
            # interrupted, or a worker died: stop the others now rather than after their chunks, and keep every
            # chunk that had finished (storing twice stores once); a second Ctrl-C is held until this is done
            workers = list((pool._processes or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for worker in workers:
                worker.terminate()
            for future in futures:
                if future not in stored and future.done() and not future.cancelled() and future.exception() is None:
                    store_results(future.result())
            for worker in workers:
                worker.join()
            raise


def _run_on_dask(chunks, batched, client, store_results, plugins=(), sources=None):
    from distributed import as_completed as completed_on_cluster

    # each task carries the plugins' sources: a worker without the files loads the same code
    futures = [client.submit(execute_chunk, chunk, batched, plugins, _sources_of(chunk, sources), pure=False)
               for chunk in chunks]
    try:
        for future in completed_on_cluster(futures):
            try:
                results = future.result()
            except Exception as error:
                # execute_chunk never raises for a run: this is the cluster (FutureCancelledError when the
                # scheduler is gone, CommClosedError, KilledWorker)
                reason = getattr(error, "reason", None)  # a cancelled future's, e.g. scheduler-connection-lost
                raise _ClusterLost(f"{type(error).__name__}: {reason}" if isinstance(reason, str)
                                   else _reason(error)) from None
            store_results(results)
    except BaseException:
        client.cancel(futures)
        raise
