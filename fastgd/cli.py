"""The ``fastgd`` command.

    fastgd compare [CONFIG] [--preset quick|default|large|paper|suite] [--out DIR]    the main job: sweep, throughput,
                                                            report
    fastgd sweep [CONFIG] --store results.db [--preset quick|default|full|large|paper|suite] [--jobs N]
                 [--scheduler ADDRESS]
    fastgd report --store results.db --out DIR              the report again from a store alone (computes nothing)
    fastgd merge A.db B.db --out C.db                       stores of several machines in one, each run once
    fastgd train --dataset digits --optimizer adam --lr 1e-3     one run, its curve printed
    fastgd problems                                         the named test problems (fastgd.problems)
    fastgd baselines [--store PATH]                         every built-in rule on the problems, kept for
                                                            compare --against-baselines
    fastgd gradcheck [--network NAME]                       numerical against analytic gradients
    fastgd landscape --dataset digits --out DIR             loss landscape around a trained network
    fastgd info                                             versions, CPU, Numba threading layer and cache, MKL, CUDA
    fastgd calibrate --network 100-256-256-10 --batch-size 64    time the MLP passes here, cache the fastest

``train``, ``landscape``, ``sweep`` and ``compare`` take ``--dataset FILE
--target COLUMN`` (a CSV, Parquet, .npy or .npz file; ``--task`` when the
target's kind should not be inferred; ``--drop`` and ``--categorical``
COLUMN for a table's columns): the sweep or comparison then runs on that data
set alone, its target loss ``--target-loss``. ``sweep`` and ``compare`` take
``--problem NAME`` (repeatable) instead: they then run on those test problems
(:mod:`fastgd.problems`), each with its network, budget and target.

Every command takes ``--plugin FILE_OR_MODULE`` (repeatable): files that
register rules of their own (:mod:`fastgd.rules`), which then join the
built-ins everywhere, sweep workers included. ``fastgd <command> --help``
describes each. Bad input gives one line on stderr naming the problem and
exit status 2 (argparse's errors too: the usage is on ``--help``); nothing
runs, and no file or folder is created or changed, before the input has been
checked. Ctrl-C and SIGTERM end a command with one line and status 130 or
143; a sweep keeps what finished.
"""

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
import time

from fastgd.validation import MAX_SEED

__all__ = ["main"]


class CommandError(Exception):
    """A problem with the user's input: reported as one line, exit status 2."""


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as an interruption: what finished is kept, then the command ends."""


class _Parser(argparse.ArgumentParser):
    """argparse with its errors in one line naming the option (the usage is on --help), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _one_line(text):
    return " ".join(str(text).split())


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _number(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _positive_float(text):
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _non_negative_float(text):
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _integer_in(low, high, what):
    """An argparse type: an integer from ``low`` to ``high``, refused in one line naming ``what`` it is."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {what}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a {what} from {low} to {high}, got {value}")
        return value

    return parse


_seed = _integer_in(0, MAX_SEED, "seed")


def command_info(arguments):
    import numba
    import numpy as np

    import fastgd
    from fastgd import _config
    from fastgd.machine import provenance

    facts = provenance()
    cpu_features = numba.config.CPU_FEATURES or "detected by LLVM at compile time"
    cache_dir = numba.config.CACHE_DIR or "next to each module (__pycache__)"
    lines = [
        f"fastgd {fastgd.__version__} (git {facts['git_commit'] or 'unknown'})",
        f"python {facts['python']}, numpy {np.__version__}, numba {numba.__version__}, "
        f"scikit-learn {facts['scikit-learn']}",
        f"cpu: {facts['cpu']}, {facts['cpu_count']} cores; features: {cpu_features}",
        f"llvm target: {_llvm_host()}",
        f"numba threading layer: {facts['threading_layer']}, threads: {facts['numba_threads']}",
        f"numba cache: {'on' if _config.CACHE else 'off'}, directory: {cache_dir}",
        f"fastmath: {_config.FASTMATH}, parallel threshold: {_config.PARALLEL_THRESHOLD} parameters",
        f"mkl (the threaded training pass): {_mkl_status()}",
        f"cuda: {_cuda_status()}",
    ]
    lines += _pass_lines()
    print("\n".join(lines))


def _pass_lines():
    """What ``fastgd info`` says of the MLP passes: FASTGD_PASS, every calibration cached here, whether trainings
    adapt their pass to the load, and the last switches they made."""
    from fastgd import _config, calibration

    choices = calibration.cached_choices()
    switches = calibration.remembered_switches()
    return ([f"mlp pass (FASTGD_PASS): {_config.PASS}; calibrated choices ({calibration.cache_path()}): "
             f"{len(choices) or 'none (fastgd calibrate measures them)'}"]
            + [f"  {choice.describe()}" for choice in choices]
            + [calibration.describe_adapting(),
               f"last switches of pass while training ({calibration.switches_path()}): {len(switches) or 'none'}"]
            + [f"  {line}" for line in switches])


def _network(text):
    """``--network``: layer sizes joined by dashes, e.g. 100-256-256-10."""
    parts = text.split("-")
    if len(parts) < 2 or not all(part.isascii() and part.isdigit() and int(part) >= 1 for part in parts):
        raise argparse.ArgumentTypeError(f"expected layer sizes joined by dashes, e.g. 100-256-256-10, got {text!r}")
    return [int(part) for part in parts]


def command_calibrate(arguments):
    import numba

    from fastgd import calibration, threads
    from fastgd.kernels.train import THREADED_MIN_MULTIPLY_ADDS, multiply_adds
    from fastgd.machine import cpu_model

    layer_sizes, n_rows, dtype = arguments.network, arguments.batch_size, arguments.dtype
    _check_network(layer_sizes, dtype, "--network")
    n_threads = arguments.threads or threads.get_num_threads()
    if n_threads > numba.config.NUMBA_NUM_THREADS:
        raise CommandError(f"--threads: at most {numba.config.NUMBA_NUM_THREADS} (the threads Numba started), "
                           f"got {n_threads}")
    network = "-".join(map(str, layer_sizes))
    print(f"calibrating {network}/{n_rows} {dtype} on {n_threads} threads ({cpu_model()}): "
          f"{', '.join(calibration.candidates(n_rows, n_threads))}", flush=True)
    choice = calibration.calibrate(layer_sizes, n_rows, dtype, n_threads, arguments.budget)
    fastest = choice.seconds[choice.chosen]
    for name, seconds in sorted(choice.seconds.items(), key=lambda item: item[1]):
        print(f"  {name:<16} {seconds * 1e3:10.3f} ms per batch  {seconds / fastest:5.2f}× the fastest")
    print(f"chosen: {choice.chosen} (medians of {choice.rounds} rounds; cached in "
          f"{calibration.cache_path()})")
    if multiply_adds(layer_sizes, n_rows) < THREADED_MIN_MULTIPLY_ADDS:
        print("note: below 2**20 multiply-adds a batch, training takes the serial pass without asking the cache")


def _mkl_status():
    from fastgd.kernels import mkl

    mkl.available()
    return mkl.describe()


def _llvm_host():
    import llvmlite.binding as llvm

    return f"{llvm.get_process_triple()} {llvm.get_host_cpu_name()}"


def _cuda_status():
    try:
        from fastgd import cuda
    except ImportError:
        return "unavailable (fastgd.cuda missing)"
    try:
        return cuda.describe()
    except AttributeError:
        return "available" if cuda.is_available() else "unavailable"


def command_sweep(arguments):
    from fastgd.sweep import SweepConfigError, SweepError, StoreError, run_sweep
    from fastgd.sweep.measure import record_datasets
    from fastgd.sweep.store import check_store_path

    if arguments.scheduler and arguments.jobs:
        raise CommandError("--jobs is for local runs; with --scheduler the cluster's workers run the sweep")
    try:
        config, targets = _sweep_config_and_targets(arguments)
        check_store_path(arguments.store, "w")
        _note_jobs(arguments.jobs)
        try:
            with _dask_logs_silenced(arguments.scheduler is not None):
                outcome = run_sweep(config, arguments.store, jobs=arguments.jobs, scheduler=arguments.scheduler,
                                    batched=not arguments.one_at_a_time, retry_failed=arguments.retry_failed,
                                    progress=not arguments.quiet)
        finally:  # also of a sweep stopped early: its report says what it ran on
            if os.path.exists(arguments.store):
                record_datasets(arguments.store, config, targets)
    except (SweepConfigError, SweepError, StoreError) as error:
        raise CommandError(f"--store: {error}" if isinstance(error, StoreError) else error) from None
    except KeyboardInterrupt as interrupt:
        done = getattr(interrupt, "outcome", None)
        if done is not None:
            interrupt.args = (f"{done.stored} new runs stored, {done.skipped + done.stored} of {done.total} in "
                              f"{arguments.store}; run the same command again to resume",)
        raise
    print(f"{config.name}: {outcome.total} runs, {outcome.skipped} already stored, {outcome.stored} new "
          f"({outcome.diverged} diverged, {outcome.failed} failed) in {outcome.seconds:.1f} s -> {arguments.store}")
    for line in _phase_lines(outcome):
        print(f"    {line}")


@contextlib.contextmanager
def _dask_logs_silenced(silenced):
    """Log records kept off stderr while a sweep runs on Dask: a lost scheduler makes Dask's client log
    tracebacks of scores of lines (from its own thread, by loggers with levels of their own), where the
    sweep's SweepError says what happened in one line."""
    import logging

    before = logging.root.manager.disable
    if silenced:
        logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(before)


def _note_jobs(jobs):
    """Say so on stderr when --jobs asks for more workers than a sweep starts (runner.max_local_workers)."""
    from fastgd.sweep.runner import MAX_JOBS_PER_CORE, max_local_workers

    if jobs is not None and jobs > max_local_workers():
        print(f"[fastgd] --jobs {jobs}: at most {max_local_workers()} worker processes ({MAX_JOBS_PER_CORE} per "
              f"core on {os.cpu_count()}), and no more than there are chunks of runs", file=sys.stderr,
              flush=True)


def _phase_lines(outcome):
    """What each phase of a tuning sweep did, and what the protocol could not choose (none for a grid)."""
    names = {"tune": "tuning", "final": "final runs"}
    return [*(f"{names[phase]}: {total} runs, {skipped} already stored, {stored} new"
              for phase, (total, skipped, stored) in outcome.phases.items()), *outcome.notes]


def _planned(config):
    """What a sweep of ``config`` will run, in words."""
    from fastgd.sweep import plan
    from fastgd.sweep.tuning import n_trials

    n_runs = len(plan.runs(config))
    if config.tuning is None:
        return f"{n_runs} runs"
    return (f"{n_runs} tuning runs ({config.tuning.budget} budget: {n_trials(config.tuning.budget)} per "
            f"rule and data set, on a validation split), then {config.tuning.final_seeds} final runs of each rule's "
            "best trial per data set")


def _sweep_config(arguments):
    """The configuration of ``sweep`` and ``compare`` (see :func:`_sweep_config_and_targets`)."""
    return _sweep_config_and_targets(arguments)[0]


def _sweep_config_and_targets(arguments):
    """(the configuration of ``sweep`` and ``compare``: CONFIG or --preset, on --dataset where given, with --plugin;
    {data set: how its target loss was chosen, in words} for --dataset).

    Raises SweepConfigError for a configuration that cannot run; CommandError for the options.
    """
    from fastgd.sweep import load_config, load_preset

    if arguments.config and arguments.preset:
        raise CommandError("give a CONFIG file or --preset, not both")
    if arguments.problem:
        return _problem_config(arguments), {}
    if arguments.target_loss is not None and not arguments.dataset:
        raise CommandError("--target-loss is for --dataset (a configuration has [targets])")
    for option, value in _file_options(arguments):
        if value is not None and not arguments.dataset:
            raise CommandError(f"{option} is for a data file given with --dataset; without --dataset the "
                               f"{'configuration' if arguments.config else 'preset'} runs on its own data sets")
    definition = None
    if arguments.dataset:
        name, source = _dataset_source(arguments, absolute=True)
        _check_dataset(name, source)  # a file is read once: the configuration's check finds it made
        definition = {"name": name}
        if source is not None:
            definition.update({key: value for key, value in (("path", source.path), ("target", source.target),
                                                             ("task", source.task)) if value is not None})
            if source.options:
                definition["options"] = {key: list(columns) for key, columns in source.options}
    if arguments.config:
        config = load_config(arguments.config, definition, arguments.target_loss)
    else:
        config = load_preset(arguments.preset or "default", definition, arguments.target_loss)
    config = config.with_plugins(arguments.plugins)
    if definition is None:
        return config, {}
    config, how = _chosen_target(arguments, config, definition)
    return config, {definition["name"]: how}


def _problem_config(arguments):
    """The configuration of ``sweep`` and ``compare`` with ``--problem``: CONFIG or --preset run on those test
    problems instead of its own data sets (:func:`fastgd.sweep.config.on_problems`)."""
    from fastgd.sweep import load_config, load_preset

    if arguments.dataset:
        raise CommandError("--problem and --dataset do not go together: a problem is a data set with its network "
                           "and budget; give one or the other")
    for option, value in (("--target-loss", arguments.target_loss), *_file_options(arguments)):
        if value is not None:
            raise CommandError(f"{option} is for --dataset; a problem has its own data and target")
    _check_problem_names(arguments.problem)
    if arguments.config:
        config = load_config(arguments.config, problem_names=arguments.problem)
    else:
        config = load_preset(arguments.preset or "default", problem_names=arguments.problem)
    return config.with_plugins(arguments.plugins)


def _check_problem_names(names):
    """CommandError in one line naming --problem where ``names`` has an unknown problem or one twice."""
    from fastgd import problems

    for name in names:
        try:
            problems.get(name)
        except problems.ProblemError as error:
            raise CommandError(f"--problem: {error}") from None
    repeated = next((name for index, name in enumerate(names) if name in names[:index]), None)
    if repeated is not None:
        raise CommandError(f"--problem: {repeated!r} is given twice")


def _chosen_target(arguments, config, definition):
    """(the configuration, how its data set's target loss was chosen in words): a target the user or the
    configuration gave is kept; else one is chosen for the data set (:func:`fastgd.sweep.targets.reference_target`)."""
    import tomllib
    from importlib import resources

    from fastgd.sweep.targets import reference_target

    name = definition["name"]
    if arguments.target_loss is not None:
        return config, f"{arguments.target_loss:g}, given with --target-loss"
    if arguments.config:  # read and checked by load_config already
        with open(arguments.config, "rb") as file:
            raw = tomllib.load(file)
    else:
        raw = tomllib.loads(resources.files("fastgd.sweep").joinpath("presets", f"{arguments.preset or 'default'}.toml")
                            .read_text())
    targets = raw.get("targets") if isinstance(raw.get("targets"), dict) else {}
    if name in targets:
        return config, f"{config.targets[name]:g}, the configuration's [targets]"
    _say(f"choosing a target loss for {name}: a reference run of {config.epochs_of(name)} epochs")
    try:
        choice = reference_target(config, name)
    except ValueError as error:
        raise CommandError(str(error)) from None
    return config.on_dataset(definition, choice.target_loss), choice.how


def _dataset_source(arguments, absolute=False):
    """(name, datasets.Source or None) of --dataset: a data set fastgd knows by name, or a file and its --target."""
    from fastgd import datasets

    text = arguments.dataset
    options = {key: list(columns) for key, columns in (("drop", arguments.drop),
                                                       ("categorical", arguments.categorical)) if columns}
    try:
        if datasets.is_builtin(text) or text in datasets.registered() or not _looks_like_a_file(text):
            datasets.resolve(text)  # an unknown name: one line listing the names and files it could be
            for option, value in _file_options(arguments):
                if value is not None:
                    raise CommandError(f"{option} is for a data file; {text!r} is a data set fastgd knows by name")
            return text, None
        path = os.path.abspath(text) if absolute else text
        target = arguments.target
        if datasets.file_format(text) == "npy" and target is not None:
            try:
                target = int(target)
            except ValueError:
                raise CommandError(f"--target: a .npy array's target is a column index, got {target!r}") from None
        return os.path.basename(text), datasets.Source(os.path.basename(text), path=path, target=target,
                                                       task=arguments.task, options=options)
    except datasets.DatasetError as error:
        raise CommandError(f"--dataset: {error}") from None


def _file_options(arguments):
    """(option, value) of the options that describe a data file given with --dataset."""
    return (("--target", arguments.target), ("--task", arguments.task), ("--drop", arguments.drop),
            ("--categorical", arguments.categorical))


def _looks_like_a_file(text):
    from fastgd import datasets

    return datasets.file_format(text) is not None or os.sep in text or os.path.exists(text)


def _check_dataset(name, source):
    """(task, n_features, n_outputs) of --dataset: a file is read and checked whole, a synthetic set is not made."""
    from fastgd import datasets

    try:
        return datasets.check(source or name)
    except ValueError as error:
        raise CommandError(f"--dataset: {error}") from None


def _load_dataset(name, source):
    """The data set _check_dataset accepted (a file's is cached: it is not read twice)."""
    from fastgd.datasets import load as load_dataset

    return load_dataset(name, {name: source} if source is not None else None)


def _check_optimizer(name):
    from fastgd import optim

    if name not in optim.OPTIMIZERS:
        raise CommandError(f"--optimizer: unknown optimizer {name!r}: use one of {sorted(optim.OPTIMIZERS)}")


def _check_activation(name):
    from fastgd.kernels.mlp import ACTIVATIONS

    if name not in ACTIVATIONS:
        raise CommandError(f"--activation: unknown activation {name!r}: use one of {sorted(ACTIVATIONS)}")


def _check_network(layer_sizes, dtype, option="--hidden"):
    from fastgd.models import check_network_fits

    try:
        check_network_fits(layer_sizes, dtype)
    except ValueError as error:
        raise CommandError(f"{option}: {error}") from None


def _known_network(arguments, task, n_features, n_outputs):
    """The network --network names, checked against the data set; None without --network."""
    if arguments.network is None:
        return None
    from fastgd.networks import NetworkError, known

    for option, value in (("--hidden", arguments.hidden), ("--activation", getattr(arguments, "activation", None))):
        if value is not None:
            raise CommandError(f"{option} is for the MLP; --network {arguments.network} declares its own layers")
    try:
        net = known(arguments.network)
    except NetworkError as error:
        raise CommandError(f"--network: {error}") from None
    alpha = getattr(arguments, "alpha", None)
    if alpha is not None:  # its L2 penalty: none unless asked, as in torch
        net = net.with_alpha(alpha)
    if n_features != net.n_inputs:
        raise CommandError(f"--network: {arguments.network} takes inputs of shape {net.input_shape} "
                           f"({net.n_inputs} features); {arguments.dataset} has {n_features} features")
    wanted = "classification" if net.loss_name == "cross_entropy" else "regression"
    if task != wanted or n_outputs != net.n_outputs:
        raise CommandError(f"--network: {arguments.network} is a {wanted} network with {net.n_outputs} outputs; "
                           f"{arguments.dataset} is a {task} data set with {n_outputs}")
    return net


def command_train(arguments):
    import numpy as np

    from fastgd import optim
    from fastgd.models import MLP
    from fastgd.training import Training, make_schedule

    dataset = _dataset_source(arguments)
    task, n_features, n_outputs = _check_dataset(*dataset)
    _check_optimizer(arguments.optimizer)
    network = _known_network(arguments, task, n_features, n_outputs)
    hidden = [32] if arguments.hidden is None else arguments.hidden
    activation = "relu" if arguments.activation is None else arguments.activation
    if network is None:
        _check_activation(activation)
        _check_network([n_features, *hidden, n_outputs], arguments.dtype)
    try:
        schedule = make_schedule(arguments.schedule, n_epochs=arguments.epochs)
    except ValueError as error:
        raise CommandError(f"--schedule: {error}") from None
    data = _load_dataset(*dataset)
    try:
        if network is None:
            net = MLP([data.n_features, *hidden, data.n_outputs], activation, data.output,
                      1e-4 if arguments.alpha is None else arguments.alpha, np.dtype(arguments.dtype))
            theta = net.init(random_state=arguments.seed)
        else:
            net = network
            theta = net.init(random_state=arguments.seed, dtype=np.dtype(arguments.dtype))
        optimizer = optim.OPTIMIZERS[arguments.optimizer](theta, lr=arguments.lr, layout=net.layout)
        training = Training(net, optimizer, data.X_train, data.Y_train, arguments.batch_size or data.X_train.shape[0],
                            seed=arguments.seed, schedule=schedule, clip_norm=arguments.clip_norm)
    except (TypeError, ValueError) as error:
        raise CommandError(error) from None
    described = net if network is None else f"{arguments.network}, {net.n_params} parameters" + (
        f", L2 penalty alpha {net.alpha:g}" if net.alpha else "")
    print(f"{data.name}: {data.X_train.shape[0]} training samples; {described}; {optimizer}")
    print(f"{'epoch':>5} {'loss':>12} {'seconds (since the start)':>26}")

    def report(training, loss):
        if not training.history.diverged:
            print(f"{training.epochs_done:>5} {loss:>12.6g} {training.history.seconds[-1]:>26.5f}")

    history = training.run(arguments.epochs, callback=report)
    print(training.describe_passes())
    if history.diverged:
        print(f"diverged at epoch {history.diverged_epoch}: {history.divergence_reason()}; lower --lr or use "
              "--clip-norm")
        return
    metric = data.test_metric(net.predict(optimizer.params, data.X_test))
    print(f"test {'accuracy' if data.metric_name == 'accuracy' else 'R²'}: {metric:.4f}")


def command_problems(arguments):
    from fastgd import problems

    for line in problem_lines(problems.PROBLEMS.values()):
        print(line)


def problem_lines(listed):
    """``fastgd problems``' lines: one block of ``listed`` (:class:`fastgd.problems.Problem`) each."""
    from fastgd.datasets import DatasetError, deepobs_folder
    from fastgd.sweep import parse
    from fastgd.sweep.config import model_description

    lines = []
    for problem in listed:
        if problem.reads_your_files:
            try:
                problem.load()
            except DatasetError as error:
                lines += _absent_problem_lines(problem, deepobs_folder(problem.data.loader,
                                                                       dict(problem.data.options).get("directory")),
                                               error)
                continue
        config = parse({"problems": [problem.name], "rules": ["sgd"], "learning_rates": [0.1], "seeds": [0]})
        data = problem.load()
        net, _ = config.model(problem.name, data)
        network = config.network_of(problem.name)
        described = (model_description(network) if network is not None else
                     model_description(None, *config.model_of(problem.name), data.n_features, data.n_outputs))
        shape = tuple(getattr(net, "input_shape", (data.n_features,)))
        classes = f"{data.n_classes} classes" if data.task == "classification" else "regression"
        try:
            f_star = problem.f_star()
        except NotImplementedError:
            f_star = None
        f_star = "—" if f_star is None else f"{f_star:.6g}"
        lines += [f"{problem.name}: {problem.title}",
                  f"    data     {data.X_train.shape[0]:,} training / {data.X_test.shape[0]:,} test rows, samples of "
                  f"shape {shape}, {classes}",
                  f"    network  {described}, {net.n_params:,} parameters",
                  f"    budget   batch {problem.batch_size}, {problem.epochs} epochs; target loss {problem.target:g}; "
                  f"f* {f_star}; {problem.dtype}",
                  f"    source   {problem.source}"]
    return lines


def _absent_problem_lines(problem, folder, error):
    """``fastgd problems``' block for a problem whose files are not there (or cannot be read): where they are
    looked for and why they cannot be used; the network as declared."""
    from fastgd.networks import known
    from fastgd.sweep.config import model_description

    model = problem.model if isinstance(problem.model, dict) else {"architecture": problem.model}
    net = known(model["architecture"])
    found = "not there" if not os.path.isdir(folder) else f"cannot be used: {str(error).split(': ', 1)[-1]}"
    return [f"{problem.name}: {problem.title}",
            f"    data     your files, looked for in {folder}: {found} (FASTGD_DATA_DIR names the folder that holds "
            "mnist/, fmnist/ and cifar10/)",
            f"    network  {model_description(model)}, {net.n_params:,} parameters",
            f"    budget   batch {problem.batch_size}, {problem.epochs} epochs; target loss {problem.target:g}; f* —; "
            f"{problem.dtype}",
            f"    source   {problem.source}"]


def command_gradcheck(arguments):
    from fastgd.sweep.measure import gradient_checks, network_gradient_check

    _check_optimizer(arguments.optimizer)
    if arguments.network is not None:
        try:
            checks = [network_gradient_check(arguments.network, arguments.optimizer, arguments.steps, arguments.lr)]
        except ValueError as error:
            raise CommandError(f"--network: {error}") from None
    else:
        checks = gradient_checks(arguments.optimizer, arguments.steps, arguments.lr)
    failures = 0
    print(f"backpropagation against central differences, after {arguments.steps} steps of {arguments.optimizer} "
          f"(lr {arguments.lr:g}) from the initial weights")
    if arguments.network is not None:
        print(f"{'network':>12} {'parameters':>10} {'loss':>21} {'max rel. error':>15}  where")
    else:
        print(f"{'activation':>10} {'output':>9} {'loss':>21} {'max rel. error':>15}  where")
    for check in checks:
        failures += not check["passed"]
        described = f"{check['network']:>12} {check['n_params']:>10,}" if arguments.network is not None else \
            f"{check['activation']:>10} {check['output']:>9}"
        print(f"{described} {check['loss']:>21} {check['max_relative_error']:>15.2e}  {check['where']}"
              f"{'' if check['passed'] else '  FAILED'}")
    if failures:
        raise CommandError(f"{failures} gradient checks above 1e-6")


def command_landscape(arguments):
    from fastgd import landscape

    dataset = _dataset_source(arguments)
    task, n_features, n_outputs = _check_dataset(*dataset)
    _check_optimizer(arguments.optimizer)
    network = _known_network(arguments, task, n_features, n_outputs)
    hidden = [32] if arguments.hidden is None else arguments.hidden
    if network is None:
        _check_network([n_features, *hidden, n_outputs], "float64")
    out_dir = _output_directory(arguments.out, "--out")
    from fastgd.report import figures

    data = _load_dataset(*dataset)
    # what fastgd compare stores for its report: rows, epochs and points within a budget on a large set
    drawn = landscape.trained_landscape(data, tuple(hidden), "relu", 1e-4, arguments.optimizer, arguments.lr,
                                        arguments.epochs, 32, arguments.extent, arguments.seed, network=network,
                                        model=arguments.network)
    cut = "" if drawn["n_epochs"] == arguments.epochs else f" (of {arguments.epochs} asked: the training budget)"
    trained = f"an MLP of layer sizes {drawn['layer_sizes']}" if network is None else \
        f"{arguments.network} ({network.n_params:,} parameters)"
    print(f"trained {trained} on {drawn['rows']:,} of the {drawn['training_rows']:,} training rows of {data.name} "
          f"with {arguments.optimizer} for {drawn['n_epochs']} epochs{cut}")
    if drawn["diverged_epoch"] is not None:
        print(f"diverged at epoch {drawn['diverged_epoch']}; the landscape is drawn around the parameters of the "
              "epoch before")
    _create_directory(out_dir, "--out")
    figure = figures.draw_landscapes({"": drawn}, out_dir)
    line = drawn["line"]
    print(f"loss at θ {line[len(line) // 2]:.6g}, at the ends of the slice {line[0]:.6g} and {line[-1]:.6g}")
    print(f"wrote {out_dir / figure.png}, {figure.svg} and {figure.csv}")


def _output_directory(path, option):
    """``path`` as a directory that exists or can be created, checked without creating anything."""
    from pathlib import Path

    out_dir = Path(path)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise CommandError(f"{option} {out_dir} exists and is not a directory")
        if not os.access(out_dir, os.W_OK | os.X_OK):
            raise CommandError(f"{option} {out_dir} is not writable")
        return out_dir
    parent = out_dir.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise CommandError(f"cannot create {option} {out_dir}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CommandError(f"cannot create {option} {out_dir}: {parent} is not writable")
    return out_dir


def _check_report_directory(out_dir, option, sweep_store=False):
    """Refuse an existing, non-empty ``out_dir`` that does not hold an earlier fastgd report (its ``index.html``
    says fastgd made it) or, with ``sweep_store``, a sweep store to resume (``sweep.db``): a report writes
    ``index.html``, ``runs.csv`` and a score of figures, and must not overwrite a user's files of those names."""
    from fastgd.report.build import is_fastgd_report

    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if is_fastgd_report(out_dir) or (sweep_store and (out_dir / "sweep.db").is_file()):
        return
    raise CommandError(f"{option} {out_dir} is a folder with other files in it and no earlier fastgd report: "
                       "give a new or empty folder")


def _create_directory(out_dir, option):
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CommandError(f"cannot create {option} {out_dir}: {error.strerror or error}") from None


def _say(message):
    print(f"[fastgd] {message}", file=sys.stderr, flush=True)


def _asv_results(path):
    from pathlib import Path

    if path:
        if not Path(path).is_dir():
            raise CommandError(f"--asv-results: no asv results directory at {path}")
        return path
    default = Path(".asv") / "results"
    return str(default) if default.is_dir() else None


def _drawing_workers(say):
    """The processes drawing a report's figures (:func:`fastgd.report.figures.drawing_workers`), said where two."""
    from fastgd.report.figures import drawing_workers

    workers = drawing_workers()
    if workers > 1:
        say(f"figures drawn by {workers} processes: a core is idle")
    return workers


def command_report(arguments):
    from fastgd.report import build_report, load_throughput
    from fastgd.report.build import check_reportable
    from fastgd.report.sections import HISTORY, THROUGHPUT, check_artefacts
    from fastgd.sweep.store import Store, StoreError

    try:
        with Store(arguments.store, mode="r") as store:
            check_reportable(store.runs_frame(), arguments.store)
            store.sweeps_frame()  # its JSON is checked too, before anything is written
            stored = store.artefacts()
            check_artefacts(stored, arguments.store)
    except (StoreError, ValueError) as error:
        raise CommandError(f"--store: {error}") from None
    out_dir = _output_directory(arguments.out, "--out")
    _check_report_directory(out_dir, "--out")
    if arguments.throughput and not os.path.isdir(arguments.throughput):
        raise CommandError(f"--throughput: no directory at {arguments.throughput}")
    # files given (or, for a store without them, found where they used to be) are drawn, not stored
    asv_results = _asv_results(arguments.asv_results) if arguments.asv_results or HISTORY not in stored else None
    throughput_dir = arguments.throughput or (out_dir if THROUGHPUT not in stored and out_dir.is_dir() else None)
    try:
        throughput = load_throughput(throughput_dir) if throughput_dir else None
    except ValueError as error:
        raise CommandError(f"--throughput: {error}") from None
    if arguments.throughput and throughput is None:
        raise CommandError(f"--throughput: no throughput measurements in {arguments.throughput}")
    _create_directory(out_dir, "--out")
    try:
        page = build_report(out_dir, arguments.store, throughput=throughput, asv_results=asv_results, progress=_say,
                            workers=_drawing_workers(_say))
    except (ValueError, StoreError) as error:
        raise CommandError(error) from None
    print(f"report: {page}")


def command_merge(arguments):
    from fastgd.sweep.store import StoreError, merge

    try:
        summary = merge(arguments.stores, arguments.out)
    except StoreError as error:
        raise CommandError(error) from None
    kept_first = summary["artefacts_kept_first"]
    print(f"{arguments.out}: {summary['runs']} runs ({summary['duplicate_runs']} stored twice, kept once), "
          f"{summary['sweeps']} sweeps, {summary['artefacts']} artefacts from {len(arguments.stores)} stores"
          + (f"; artefacts that differ, kept as the first store holds them: {', '.join(kept_first)}"
             if kept_first else ""))


COMPARE_THROUGHPUT = {
    "quick": dict(dataset_names=("iris", "wine"), parameter_counts=(1_000, 100_000), rules=("sgd", "adam"),
                  repeats=3),
    "default": dict(),
    # make demo's: its rules' steps at three sizes, the largest past the cache (the prange kernel)
    "lecture": dict(parameter_counts=(1_000, 100_000, 10_000_000)),
}
# the large preset leaves its time to the sweep: the quick measurements
COMPARE_THROUGHPUT["large"] = COMPARE_THROUGHPUT["quick"]
COMPARE_THROUGHPUT["paper"] = COMPARE_THROUGHPUT["default"]
# the suite leaves its time to the sweep too
COMPARE_THROUGHPUT["suite"] = COMPARE_THROUGHPUT["quick"]


def _throughput_settings(arguments, config, against):
    """:func:`fastgd.baselines.throughput.measure`'s settings for ``fastgd compare``: its preset's
    (:data:`COMPARE_THROUGHPUT`), the compared rules, and the compared data where they are not the bundled sets."""
    from fastgd import optim

    settings = dict(COMPARE_THROUGHPUT[arguments.preset or "default"])
    settings.setdefault("rules", [rule for rule in config.rules if rule in optim.OPTIMIZERS])  # the compared
    if against is not None:  # the baselines' rules were timed where they were built: the new rules, beside two
        from fastgd import rules as rule_registry

        settings = dict(COMPARE_THROUGHPUT["quick"], rules=("sgd", "adam", *(
            rule for rule in config.rules if not rule_registry.is_builtin(rule))))
    if arguments.dataset or arguments.config or arguments.problem:  # the report's throughput is of its data
        from fastgd.datasets import load as load_dataset

        settings["dataset_names"] = [load_dataset(name, config.sources) for name in config.datasets]
    return settings


def command_compare(arguments):
    from fastgd.report import build_report, save_throughput
    from fastgd.report.sections import SECTIONS, THROUGHPUT, record_artefacts
    from fastgd.baselines.throughput import PARAMETER_COUNTS, compile_steps_ahead, measure
    from fastgd.sweep import StoreError, SweepConfigError, SweepError, run_sweep
    from fastgd.sweep.measure import record_datasets
    from fastgd.sweep.store import check_store_path

    started = time.perf_counter()
    out_dir = _output_directory(arguments.out, "--out")
    _check_report_directory(out_dir, "--out", sweep_store=True)
    asv_results = _asv_results(arguments.asv_results)
    store = out_dir / "sweep.db"
    if out_dir.is_dir():  # a sweep to resume: its store must be a fastgd store
        try:
            check_store_path(store, "w")
        except StoreError as error:
            raise CommandError(f"--out: {error}") from None
    try:
        config, targets = _sweep_config_and_targets(arguments)
    except SweepConfigError as error:
        raise CommandError(error) from None
    against = None
    if arguments.against_baselines is not None:
        from fastgd.sweep import baselines

        try:
            against = baselines.check_available(arguments.against_baselines or None)
        except StoreError as error:
            raise CommandError(f"--against-baselines: {error}") from None
    _create_directory(out_dir, "--out")
    if against is not None:
        _seed_from_baselines(config, against, store)
    _say(f"1/4 sweep '{config.name}': {_planned(config)} into {store}")
    _note_jobs(arguments.jobs)
    try:
        outcome = run_sweep(config, store, jobs=arguments.jobs, progress=True)
    except StoreError as error:
        raise CommandError(f"--out: {error}") from None
    except SweepError as error:
        raise CommandError(error) from None
    finally:  # also of a sweep stopped early: its report says what it ran on
        if store.exists():
            record_datasets(store, config, targets)
    _say(f"    {outcome.stored} new runs, {outcome.skipped} already stored, {outcome.diverged} diverged, "
         f"{outcome.failed} failed ({outcome.seconds:.0f} s)")
    for line in _phase_lines(outcome):
        _say(f"    {line}")
    _say(f"2/4 what the report shows besides the runs, stored in {store}")
    throughput, compiling = None, None
    if not arguments.skip_throughput:
        settings = _throughput_settings(arguments, config, against)
        # the steps timed in 3/4 compile in worker processes while these artefacts are measured (both mostly
        # compile Numba functions, each on one core); nothing is timed until the compiling has finished
        compiling = compile_steps_ahead(settings["rules"], settings.get("parameter_counts", PARAMETER_COUNTS),
                                        say=lambda message: _say(f"    {message}"), wait=False)
    try:
        record_artefacts(store, config, asv_results=asv_results, progress=lambda message: _say(f"    {message}"),
                         sections=[section.name for section in SECTIONS if section.name != THROUGHPUT])
    except BaseException as error:  # an interrupt too: the compiling workers end with the command
        if compiling is not None:
            compiling.stop()
        if isinstance(error, StoreError):  # a full disk: the runs are kept
            raise CommandError(f"--out: {error}") from None
        raise
    if arguments.skip_throughput:
        _say(f"3/4 throughput: not measured ({_kept_throughput(store)})")
    else:
        _say("3/4 throughput against NumPy, scikit-learn, PyTorch and JAX + optax (those installed)")
        throughput = measure(progress=lambda message: _say(f"    {message}"), compiling=compiling, **settings)
        save_throughput(throughput, out_dir)
        try:
            record_artefacts(store, config, throughput=throughput, sections=[THROUGHPUT])
        except StoreError as error:
            raise CommandError(f"--out: {error}") from None
    _say("4/4 report")
    try:
        page = build_report(out_dir, store, progress=lambda message: _say(f"    {message}"),
                            workers=_drawing_workers(lambda message: _say(f"    {message}")))
    except ValueError as error:  # e.g. every run failed: the sweep's store stays, for --retry-failed or a look
        raise CommandError(error) from None
    print(f"report: {page}  ({time.perf_counter() - started:.0f} s)")


def _seed_from_baselines(config, baseline_path, store):
    """Start the comparison's store as a copy of the stored baselines and say how much of the sweep they hold."""
    from fastgd.sweep import StoreError, baselines

    try:
        copied = baselines.seed_store(baseline_path, str(store))
        held, planned = baselines.coverage(config, baseline_path)
    except StoreError as error:
        raise CommandError(f"--against-baselines: {error}") from None
    if copied:
        _say(f"baselines: {copied} runs copied from {baseline_path}")
    else:
        _say(f"baselines: {store} exists, kept as it is (a comparison resumed)")
    _say(f"    they hold {held} of the {planned} runs this sweep plans first; the others train here"
         + ("" if held else " (the baselines were built with another configuration or other rule definitions)"))


def command_baselines(arguments):
    from fastgd.sweep import SweepConfigError, SweepError, StoreError, baselines

    path = arguments.store or baselines.default_path()
    _check_problem_names(arguments.problem or [])
    _note_jobs(arguments.jobs)
    try:
        outcome = baselines.build(path, jobs=arguments.jobs, progress=not arguments.quiet,
                                  problems=arguments.problem)
    except (SweepConfigError, SweepError, StoreError) as error:
        raise CommandError(f"--store: {error}" if isinstance(error, StoreError) else error) from None
    print(f"baselines: {outcome.total} runs, {outcome.skipped} already stored, {outcome.stored} new "
          f"({outcome.diverged} diverged, {outcome.failed} failed) in {outcome.seconds:.1f} s -> {path}")
    for line in _phase_lines(outcome):
        print(f"    {line}")
    # each problem's loss landscape, which depends on no run: a comparison against the baselines keeps them
    from fastgd.report.sections import LANDSCAPE, record_artefacts
    from fastgd.sweep.config import load_preset

    try:
        record_artefacts(path, load_preset(baselines.SUITE_PRESET, problem_names=arguments.problem),
                         progress=None if arguments.quiet else lambda message: print(f"    {message}"),
                         sections=[LANDSCAPE])
    except StoreError as error:
        raise CommandError(f"--store: {error}") from None


def _kept_throughput(store):
    """What the report of ``store`` shows for throughput when none is measured now, in a few words."""
    from fastgd.report.sections import THROUGHPUT, throughput_provenance
    from fastgd.sweep.store import Store

    with Store(store, "r") as opened:
        artefacts = opened.artefacts()
    if THROUGHPUT not in artefacts:
        return "the report has none"
    line, _ = throughput_provenance(artefacts)
    return f"the report keeps the throughput stored before: {line[0].lower()}{line[1:-1]}"


def _add_dataset_options(command, default, sweep=False):
    command.add_argument("--dataset", default=default, metavar="NAME_OR_FILE",
                         help="a data set fastgd knows (digits, mnist1d, synthetic-<task>-<n>x<features>...) or a "
                              ".csv, .tsv, .parquet, .npy or .npz file" +
                              (" to run on instead of the configuration's" if sweep else f" (default: {default})"))
    command.add_argument("--target", metavar="COLUMN",
                         help="the target column of a CSV or Parquet file (a column index for .npy)")
    command.add_argument("--task", choices=["classification", "regression"],
                         help="the file's task (default: inferred from the target)")
    command.add_argument("--drop", action="append", metavar="COLUMN",
                         help="a column of the CSV or Parquet file to leave out; repeatable")
    command.add_argument("--categorical", action="append", metavar="COLUMN",
                         help="a column of the CSV or Parquet file to one-hot encode as it is (numbers, or text "
                              "fastgd would refuse as a likely mistake); repeatable")
    if sweep:
        command.add_argument("--target-loss", type=_positive_float, metavar="LOSS",
                             help="training loss that counts as reached on --dataset (default: the configuration's "
                                  "for that set, else 0.1)")
        command.add_argument("--problem", action="append", metavar="NAME",
                             help="a test problem (fastgd problems lists them) to run on instead of the "
                                  "configuration's data sets, with its own network, batch size, epochs and target; "
                                  "repeatable")


def build_parser():
    parser = _Parser(prog="fastgd", description="Gradient-descent optimizers compiled with Numba: "
                                     "sweeps, comparisons and reports.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    info = commands.add_parser("info", help="versions, CPU features, Numba threading layer and cache, MKL, CUDA",
                               description="Print what fastgd runs on.")
    info.set_defaults(handler=command_info)

    calibrate = commands.add_parser(
        "calibrate", help="time the MLP passes on this machine and cache the fastest for training",
        description="Time every pass an MLP batch can take here (serial, one_thread, blocks, whole_batch_mkl) on "
                    "random data of the network's shapes, a few consecutive batches of each in turn, round after "
                    "round, for about --budget seconds, print each one's median time per batch, and cache the "
                    "fastest: training then takes it for this network, batch size, dtype and thread count "
                    "(FASTGD_PASS=auto).")
    calibrate.add_argument("--network", type=_network, default=[100, 256, 256, 10],
                           help="layer sizes joined by dashes (default: 100-256-256-10)")
    calibrate.add_argument("--batch-size", type=_positive_int, default=64, help="rows a batch (default: 64)")
    calibrate.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    calibrate.add_argument("--threads", type=_positive_int, help="threads (default: fastgd's, FASTGD_NUM_THREADS)")
    calibrate.add_argument("--budget", type=_positive_float, default=0.2,
                           help="seconds of timed rounds, all passes together (default: 0.2; two rounds at least, "
                                "25 at most: a larger budget ends there)")
    calibrate.set_defaults(handler=command_calibrate)

    sweep = commands.add_parser(
        "sweep", help="train every rule over data sets, learning rates and seeds into a SQLite store",
        description="Run a sweep (a TOML CONFIG or a preset) into a SQLite store. Runs already in the store are "
                    "skipped, so running the same sweep again resumes it.")
    sweep.add_argument("config", nargs="?", help="sweep configuration (TOML); see fastgd.sweep.config")
    # fastgd.sweep.config.PRESETS, written out: importing it here would cost every command its imports (a test
    # compares the two)
    sweep.add_argument("--preset", choices=["quick", "default", "lecture", "full", "large", "paper", "suite"],
                       help="a configuration shipped with fastgd (default: default)")
    _add_dataset_options(sweep, default=None, sweep=True)
    sweep.add_argument("--store", required=True, help="SQLite file to write (created if missing; an existing file "
                       "must be a fastgd store)")
    sweep.add_argument("--jobs", type=_positive_int, help="local worker processes (default: all cores)")
    sweep.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on an existing Dask cluster, e.g. tcp://127.0.0.1:8786 (reached before anything "
                       "is written)")
    sweep.add_argument("--one-at-a-time", action="store_true",
                       help="train runs one by one instead of many in one compiled call")
    sweep.add_argument("--retry-failed", action="store_true", help="run again this sweep's runs stored as failed "
                       "(other sweeps' runs in the store are left as they are)")
    sweep.add_argument("--quiet", action="store_true", help="no progress output")
    sweep.set_defaults(handler=command_sweep)

    compare = commands.add_parser(
        "compare", help="the main job: sweep every rule, measure throughput, write the HTML report",
        description="Run a sweep (a preset or a TOML CONFIG) into --out/sweep.db, measure throughput against NumPy, "
                    "scikit-learn, PyTorch and JAX + optax, store in sweep.db what the report shows besides the runs "
                    "(the throughput and machine limits, trajectories, a loss landscape per data set, gradient checks, "
                    "the machine, the asv history), and write the comparison report (index.html with its figures "
                    "and data) to --out. Resumes a sweep already in --out. fastgd report --store sweep.db draws "
                    "the same report again, anywhere, from sweep.db alone.")
    compare.add_argument("config", nargs="?", help="sweep configuration (TOML); see fastgd.sweep.config")
    compare.add_argument("--preset", choices=list(COMPARE_THROUGHPUT),
                         help="sweep size (default: default, a few minutes on two cores; large: MNIST-1D and "
                              "100,000 rows, a 256-256 network, under 10 minutes; paper: the whole tuning "
                              "protocol, 32 trials per rule and data set, ten final seeds; suite: every test "
                              "problem (fastgd problems), small budget, ten final seeds)")
    _add_dataset_options(compare, default=None, sweep=True)
    compare.add_argument("--out", default=os.path.join("reports", "latest"), help="report directory "
                         "(default: reports/latest)")
    compare.add_argument("--jobs", type=_positive_int, help="local worker processes for the sweep")
    compare.add_argument("--asv-results", help="asv results directory whose history is stored and drawn "
                         "(default: .asv/results when present)")
    compare.add_argument("--skip-throughput", action="store_true", help="leave out the throughput measurements")
    compare.add_argument("--against-baselines", nargs="?", const="", metavar="STORE",
                         help="start from the stored baselines (fastgd baselines; default: FASTGD_BASELINES or the "
                              "user's cache): only the runs they lack train, e.g. a --plugin's rules on --preset suite")
    compare.set_defaults(handler=command_compare)

    built = commands.add_parser("baselines", help="train every built-in rule on the test-problem suite once, and keep "
                                                  "it for compare --against-baselines",
                                description="Run the suite preset (every problem of fastgd problems, every built-in "
                                            "rule, the small tuning budget, ten seeds) into the baseline store; it "
                                            "resumes where it stopped.")
    built.add_argument("--store", help="where to keep it (default: FASTGD_BASELINES, else fastgd/baselines.db in the "
                                       "user's cache directory)")
    built.add_argument("--problem", action="append", metavar="NAME",
                       help="build the baselines of this problem of the suite alone (repeatable; default: all)")
    built.add_argument("--jobs", type=_positive_int, help="local worker processes (default: all cores)")
    built.add_argument("--quiet", action="store_true", help="no progress output")
    built.set_defaults(handler=command_baselines)

    report = commands.add_parser("report", help="write the HTML report from an existing sweep store",
                                 description="Draw the comparison report from a sweep store alone: its runs, and "
                                             "what fastgd compare stored with them (throughput, trajectories, "
                                             "landscapes, gradient checks, the machine, the asv history). Nothing "
                                             "is trained, timed or measured; a section the store lacks says so and "
                                             "how to make it. Files given with --throughput and --asv-results are "
                                             "drawn into this report instead of the store's; the store is not "
                                             "changed.")
    report.add_argument("--store", required=True, help="SQLite store written by fastgd compare or fastgd sweep")
    report.add_argument("--out", required=True, help="report directory")
    report.add_argument("--throughput", help="directory with throughput_*.csv and throughput_machine.json (as "
                        "fastgd compare writes them) to draw instead of the store's (default: the store's; for a "
                        "store without any, the files in --out when there are)")
    report.add_argument("--asv-results", help="asv results directory to draw the history from instead of the "
                        "store's (default: the store's; for a store without one, .asv/results when present)")
    report.set_defaults(handler=command_report)

    merge = commands.add_parser("merge", help="merge result stores (of several machines) into a new one",
                                description="Copy every sweep, run (with its curve and provenance: the machine "
                                            "and code that trained it) and artefact of the stores into a new "
                                            "store. A run stored in several (the same run id) is kept once, as "
                                            "the first store holds it; the same run with different results, "
                                            "stores of different schema versions and an --out that exists are "
                                            "refused, and nothing is written.")
    merge.add_argument("stores", nargs="+", metavar="STORE", help="the stores to merge, two or more")
    merge.add_argument("--out", required=True, help="the merged store: a new file")
    merge.set_defaults(handler=command_merge)

    listing = commands.add_parser("problems", help="list the named test problems: data, network, budget, target, f*",
                                  description="List the test problems (fastgd.problems) that sweeps and compare take "
                                              "as --problem NAME or problems = [...]: each one's data (training and "
                                              "test rows, sample shape, classes), network (and its parameters), "
                                              "batch size, epochs, target training loss, optimal loss f* where "
                                              "known, and source. Loads each data set once.")
    listing.set_defaults(handler=command_problems)

    train = commands.add_parser("train", help="train one MLP, or a known network, on a data set and print its curve",
                                description="One training run; prints loss and seconds per epoch, then the test "
                                            "metric.")
    _add_dataset_options(train, default="digits")
    _add_rule_options(train, lr=1e-3)
    train.add_argument("--batch-size", type=_positive_int, default=32, help="(default: 32)")
    train.add_argument("--network", metavar="NAME", help="a known network (fastgd.networks.KNOWN, e.g. digits_cnn on "
                       "digits) instead of the MLP; the data set's rows are its inputs, flattened")
    train.add_argument("--hidden", type=_positive_int, nargs="*", help="the MLP's hidden layer sizes (default: 32)")
    train.add_argument("--activation", help="the MLP's: relu (default), tanh, logistic or identity")
    train.add_argument("--alpha", type=_non_negative_float,
                       help="the L2 penalty alpha/(2m)·ΣW² on the weights (default: 1e-4 for the MLP, as "
                            "scikit-learn's; none for a --network, as torch)")
    train.add_argument("--schedule", default="constant", help="learning-rate schedule")
    train.add_argument("--clip-norm", type=_positive_float, help="clip gradients to this global norm")
    train.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    train.add_argument("--seed", type=_seed, default=0, help=f"0 to {MAX_SEED}")
    train.set_defaults(handler=command_train)

    gradcheck = commands.add_parser("gradcheck", help="numerical against analytic gradients, every activation "
                                    "and output", description="Compare backpropagation with central differences, "
                                    "where a few steps of a rule lead from the initial weights.")
    gradcheck.add_argument("--optimizer", default="adam", help="the rule that takes the steps (default: adam)")
    gradcheck.add_argument("--steps", type=_integer_in(0, 10_000, "number of steps"), default=20, metavar="N",
                           help="steps before the check, 0 to 10000 (default: 20)")
    gradcheck.add_argument("--lr", type=_positive_float, default=1e-2, help="its learning rate (default: 1e-2)")
    gradcheck.add_argument("--network", metavar="NAME",
                           help="check this known network (e.g. digits_cnn, mnist1d_cnn; at most 20,000 parameters) "
                                "on random data instead of the MLPs of every activation and output")
    gradcheck.set_defaults(handler=command_gradcheck)

    landscape = commands.add_parser("landscape", help="loss landscape (1-D slice, 2-D contour) of a trained network",
                                    description="Train an MLP (or a known network), then draw its loss along "
                                                "filter-normalised random directions.")
    _add_dataset_options(landscape, default="digits")
    _add_rule_options(landscape, lr=3e-3)
    landscape.add_argument("--network", metavar="NAME", help="a known network (fastgd.networks.KNOWN, e.g. "
                           "digits_cnn on digits) instead of the MLP")
    landscape.add_argument("--hidden", type=_positive_int, nargs="*", help="the MLP's hidden layer sizes (default: 32)")
    landscape.add_argument("--extent", type=_positive_float, default=1.0, help="the slice spans [-extent, extent]")
    landscape.add_argument("--seed", type=_seed, default=0, help=f"0 to {MAX_SEED}")
    landscape.add_argument("--out", default="landscape", help="output directory")
    landscape.set_defaults(handler=command_landscape)

    for command in commands.choices.values():
        command.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                             help="a Python file (or module) that registers rules with fastgd.rules; repeatable")
    return parser


def _add_rule_options(command, lr):
    """The rule, learning rate and epochs of a command that trains one network (train, landscape)."""
    command.add_argument("--optimizer", default="adam", help="rule from fastgd.optim.OPTIMIZERS")
    command.add_argument("--lr", type=_positive_float, default=lr, help="learning rate")
    command.add_argument("--epochs", type=_positive_int, default=20)


def _load_plugins(arguments):
    """Load ``--plugin`` files before anything else: their rules can then be named and checked."""
    from fastgd import rules

    try:
        plugins = [rules.resolve_plugin(spec) for spec in arguments.plugin]
        rules.load_plugins(plugins)
    except rules.PluginError as error:
        raise CommandError(str(error)) from None
    return plugins


def _check_environment():
    """The FASTGD_* settings, read when fastgd._config and fastgd.rules (FASTGD_PLUGINS) are first imported: a bad
    value is bad input."""
    import warnings

    try:
        with warnings.catch_warnings():
            # refused below, in one line: the import's warning would be a second
            warnings.simplefilter("ignore")
            from fastgd import _config
        _config.check_setting_names()
        import fastgd.rules  # noqa: F401
        import fastgd.threads  # noqa: F401  (FASTGD_NUM_THREADS)
        if _config.PASS != "auto":
            from fastgd.kernels.train import pass_blocks

            try:
                pass_blocks(_config.PASS, 2, fastgd.threads.get_num_threads())
            except ValueError as error:
                raise _config.SettingError(f"FASTGD_PASS={_config.PASS}: {error}") from None
    except ValueError as error:
        raise CommandError(f"environment: {error}") from None


def _raise_terminated(signum, frame):
    raise _Terminated()


def main(argv=None):
    """The ``fastgd`` command: parse ``argv`` (the process's by default) and run its subcommand."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    # SIGTERM ends a command the way Ctrl-C does: sweeps keep what finished and stop their workers
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if on_main_thread else None
    try:
        _check_environment()
        arguments.plugins = _load_plugins(arguments) if arguments.plugin else []
        arguments.handler(arguments)
    except CommandError as error:
        print(f"fastgd {arguments.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except MemoryError as error:
        print(f"fastgd {arguments.command}: error: not enough memory: {_one_line(error) or 'MemoryError'}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        terminated = isinstance(interrupt, _Terminated)
        detail = f": {_one_line(interrupt.args[0])}" if interrupt.args else ""
        print(f"fastgd {arguments.command}: {'terminated' if terminated else 'interrupted'}{detail}",
              file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    except Exception as error:
        from fastgd.rules import RuleError

        if not isinstance(error, RuleError):
            raise
        print(f"fastgd {arguments.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
