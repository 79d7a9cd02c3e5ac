"""Which pass an MLP batch takes on the CPU, measured on this machine and cached (as FFTW's wisdom is).

The passes (:data:`fastgd._config.PASSES`, :func:`fastgd.kernels.train.pass_blocks`) compute the same
gradient; which is fastest depends on the CPU, the BLAS libraries, the network's shapes, the dtype and
the threads: MKL's products beat OpenBLAS's on the Intel Xeon machines and lose by 2× at 64 rows on the
AMD EPYC ones (reports/design_measurements.md). :func:`calibrate` times every candidate that can run
here on random data of the network's shapes, a few consecutive batches of each in turn, round after round,
for about :data:`BUDGET_SECONDS` (:func:`measure`; each candidate's compiled pass is loaded, or compiled, before
the clock starts), and keeps the medians and the fastest in a JSON file (:func:`cache_path`) keyed by
:func:`cache_key`: the CPU model, the layer sizes, the batch's rows, the dtype, the thread count, Numba's
threading layer and the versions of Numba, NumPy, SciPy (whose BLAS the serial pass calls) and MKL.

Training (:func:`training_pass`) takes ``FASTGD_PASS`` where it names a pass, else the cached choice
for its key, else the fixed bounds of :func:`fastgd.kernels.train.model_blocks`, which the adaptation below
weighs against the other threaded pass before the first epoch. It does not run the whole calibration by itself:
compiling a pass a fit would not otherwise run (``blocks``) costs more than the time bound (seconds when it is
not yet in Numba's cache). The tests switch the adaptation off (``FASTGD_ADAPT=0``): a choice made by a timing
inside a test run would change from run to run which pass, and so which last bits, the tests see. ``fastgd calibrate``
measures; ``fastgd info`` shows what was chosen and every candidate's time.

A calibration holds for the load it was measured under. On a busy machine a multi-threaded pass waits,
in each parallel region, for a thread that has no core: 100-256-256-10/64 took 2.5–5 s an epoch on two
threads and 0.34 s on one (issue 29, AMD EPYC, load 2.7). So a training whose pass uses two threads or
more, chosen by ``auto``, adapts (:class:`PassAdaptation`, ``FASTGD_ADAPT``). Before its first epoch it
times a few batches (forward and backward, :func:`measure`, one round or about :data:`PROBE_BATCH_SECONDS`) of
that pass and of ``one_thread`` (and, where nothing is calibrated for its key, of the other threaded pass that
needs nothing more compiled: :func:`start_candidates`; the faster of the two threaded passes is kept), and starts
on the faster by :data:`SWITCH_MARGIN`: a first epoch on a
starved threaded pass would cost tens of the other's. Then it times its epochs, runs now and then one
epoch of the other pass as a probe, and takes whichever is faster by the margin for the epochs that
follow; a probe comes only while all probes together cost at most :data:`PROBE_SHARE` of the training's
time so far, by the last times measured.
"""

import contextlib
import datetime
import json
import os
import time
from dataclasses import dataclass

import numpy as np

from fastgd import _config, threads
from fastgd.kernels import mlp
from fastgd.kernels.calibrate import run_batches
from fastgd.kernels.train import (THREADED_MIN_MULTIPLY_ADDS, PassUnavailable, model_blocks, model_entry,
                                  multiply_adds, pass_blocks, pass_name)
from fastgd.machine import cpu_model

__all__ = ["SWITCHES_KEPT", "remember_switch", "remembered_switches", "switches_path", "describe_adapting",
           "PROBE_BATCH_SECONDS", "PROBE_SHARE", "SWITCH_MARGIN", "FALLBACK_PASS", "adapts", "PassAdaptation",
           "BUDGET_SECONDS", "Choice", "candidates", "cache_key", "cache_path", "measure", "calibrate", "cached",
           "cached_choices", "training_pass", "start_candidates", "measure_order", "check_arguments"]

# the time of a calibration's timed rounds, all candidates together (at least MIN_ROUNDS rounds are run)
BUDGET_SECONDS = 0.2
MIN_ROUNDS = 2
MAX_ROUNDS = 25
# the timed batches of a candidate in each round, after its untimed one (measure, _time_batches): at least
# CONSECUTIVE_BATCHES, and as many as take about BLOCK_SECONDS (some scheduler ticks), at most MAX_BLOCK_BATCHES
CONSECUTIVE_BATCHES = 3
BLOCK_SECONDS = 0.01
MAX_BLOCK_BATCHES = 1000
OPENBLAS_QUIET_SECONDS = 0.1  # how long measure waits after the serial pass for OpenBLAS's threads to stop spinning
# and before it, after the others, for the OpenMP threads they ran on (Numba's and MKL's: 5-10 ms here)
OPENMP_QUIET_SECONDS = 0.02
CACHE_NAME = "pass_choices.json"
CACHE_FORMAT = 1
SWITCHES_NAME = "pass_switches.json"
SWITCHES_KEPT = 20  # the adaptation's switches fastgd info can show: the latest, older ones dropped

# adapting while training (PassAdaptation): the timed rounds of the probe of a few batches before the first epoch
# (at least MIN_ROUNDS of one batch a pass), the share of a training's time its probes may cost, how much faster
# the other pass must be to switch to it (on a quiet machine the two passes can be within noise of each other), the
# most epochs between two probes, and the pass a busy machine falls back to
PROBE_BATCH_SECONDS = 0.02
PROBE_SHARE = 0.05
SWITCH_MARGIN = 0.1
MAX_PROBE_INTERVAL = 32
FALLBACK_PASS = "one_thread"
RECENT_EPOCHS = 3  # the current pass's time: the median of its last epochs

# the clock of the timed rounds and the wait for OpenBLAS's threads (tests put fakes here)
clock = time.perf_counter
sleep = time.sleep


@dataclass(frozen=True)
class Choice:
    """A calibration: its ``key`` (:func:`cache_key`), the pass ``chosen``, each candidate's median ``seconds``
    per batch, the number of timed ``rounds`` and when it was ``measured`` (UTC, ISO 8601)."""

    key: dict
    chosen: str
    seconds: dict
    rounds: int
    measured: str

    def as_dict(self):
        """The calibration as the cache file stores it (JSON types only)."""
        return {"key": self.key, "chosen": self.chosen, "seconds": self.seconds, "rounds": self.rounds,
                "measured": self.measured}

    def describe(self):
        """One line: the network, the choice and every candidate's time per batch, fastest first."""
        key = self.key
        times = ", ".join(f"{name} {seconds * 1e3:.3f} ms" for name, seconds in
                          sorted(self.seconds.items(), key=lambda item: item[1]))
        network = "-".join(str(size) for size in key["layer_sizes"])
        return (f"{network}/{key['batch_rows']} {key['dtype']}, {key['threads']} threads: {self.chosen} "
                f"(per batch: {times}; measured {self.measured})")


def candidates(n_rows, n_threads):
    """The passes (:data:`fastgd._config.PASSES`) that can run here for batches of ``n_rows`` on ``n_threads``."""
    names = []
    for name in _config.PASSES:
        if name == "one_thread" and int(n_threads) < 2:
            continue  # the serial pass itself
        try:
            pass_blocks(name, n_rows, n_threads)
        except PassUnavailable:
            continue
        names.append(name)
    return names


def cache_key(layer_sizes, n_rows, dtype, n_threads):
    """What a calibration is valid for: the machine, the shapes, the dtype, the threads and the libraries."""
    import numba
    import scipy

    from fastgd.kernels import mkl

    mkl.available()  # loads it where it is installed, so that its version is known
    numba.get_num_threads()  # starts Numba's threads, so that the layer is known
    return {"cpu": cpu_model(), "layer_sizes": [int(size) for size in layer_sizes], "batch_rows": int(n_rows),
            "dtype": np.dtype(dtype).name, "threads": int(n_threads), "threading_layer": numba.threading_layer(),
            "numba": numba.__version__, "numpy": np.__version__, "scipy": scipy.__version__, "mkl": mkl.version()}


def cache_path():
    """The JSON file of cached calibrations, in the directory of fastgd's generated files
    (:func:`fastgd.rules.compile.generated_directory`, ``FASTGD_GENERATED_DIR`` where set)."""
    from fastgd.rules.compile import generated_directory

    return os.path.join(generated_directory(), CACHE_NAME)


def _key_text(key):
    return json.dumps(key, sort_keys=True)


_READ = {}  # path -> (its modification time in ns, its entries)


def _entries(path):
    """The cache file's entries (key text -> entry); none where it is missing, unreadable or of another format."""
    try:
        modified = os.stat(path).st_mtime_ns
    except OSError:
        return {}
    known = _READ.get(path)
    if known is not None and known[0] == modified:
        return known[1]
    try:
        with open(path, encoding="utf-8") as file:
            content = json.load(file)
        entries = content["entries"] if content.get("format") == CACHE_FORMAT else {}
    except (OSError, ValueError, KeyError, AttributeError):
        entries = {}
    _READ[path] = (modified, entries)
    return entries


def _rewrite(path, change):
    """Rewrite the JSON file ``path`` as ``change(its entries)`` returns them, under a lock, whole or not at all."""
    import filelock

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with filelock.FileLock(path + ".lock"):
        _READ.pop(path, None)
        entries = change(dict(_entries(path)))
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump({"format": CACHE_FORMAT, "entries": entries}, file, indent=1, sort_keys=True)
        os.replace(temporary, path)
        _READ.pop(path, None)


def _store(choice):
    _rewrite(cache_path(), lambda entries: {**entries, _key_text(choice.key): choice.as_dict()})


def switches_path():
    """The JSON file of the adaptation's last switches, beside :func:`cache_path`."""
    return os.path.join(os.path.dirname(cache_path()), SWITCHES_NAME)


def remember_switch(network, n_rows, dtype, n_threads, line):
    """Keep a training's switch of pass (``line``, as :class:`PassAdaptation` gives it) for ``fastgd info``, with
    the network (an MLP's layer sizes, or a declared network's description in a few words), the CPU and the time;
    only the last :data:`SWITCHES_KEPT` are kept. A log that cannot be written (a read-only directory) costs the
    training nothing: it is what info shows, not what training uses."""
    now = datetime.datetime.now(datetime.timezone.utc)
    entry = {"when": now.isoformat(timespec="seconds"), "cpu": cpu_model(), "change": str(line),
             "network": network if isinstance(network, str) else "-".join(str(int(size)) for size in network),
             "batch_rows": int(n_rows),
             "dtype": np.dtype(dtype).name, "threads": int(n_threads)}

    def add(entries):
        # keyed by a count that only grows (zero-padded, so that the keys sort as the switches came): two
        # switches in one second both stay, and dropping the oldest never reuses a key
        count = max((int(key) for key in entries if key.isdigit()), default=0) + 1
        entries[f"{count:012d}"] = entry
        return dict(sorted(entries.items())[-SWITCHES_KEPT:])

    try:
        _rewrite(switches_path(), add)
    except OSError:
        pass


def remembered_switches():
    """The switches :func:`remember_switch` kept, the oldest first: one line each."""
    return [f"{entry['when']} {entry['network']}/{entry['batch_rows']} {entry['dtype']}, {entry['threads']} "
            f"threads: {entry['change']}" for _, entry in sorted(_entries(switches_path()).items())]


def describe_adapting():
    """One line: whether trainings adapt their pass to the load (``FASTGD_ADAPT``, ``FASTGD_PASS``) and how."""
    if not _config.ADAPT:
        return "adapting to the load (FASTGD_ADAPT): off, every training keeps the pass it starts on"
    if _config.PASS != "auto":
        return f"adapting to the load (FASTGD_ADAPT): on, but FASTGD_PASS={_config.PASS} keeps the pass"
    return (f"adapting to the load (FASTGD_ADAPT): on; a training whose pass takes two threads or more weighs it "
            f"against {FALLBACK_PASS} (probes cost at most {PROBE_SHARE:.0%} of its time) and switches to the one "
            f"faster by {SWITCH_MARGIN:.0%}")


def _choice(entry):
    return Choice(entry["key"], entry["chosen"], dict(entry["seconds"]), int(entry["rounds"]), entry["measured"])


def cached(layer_sizes, n_rows, dtype, n_threads):
    """The cached :class:`Choice` for this key (:func:`cache_key`), or None."""
    entry = _entries(cache_path()).get(_key_text(cache_key(layer_sizes, n_rows, dtype, n_threads)))
    return None if entry is None else _choice(entry)


def cached_choices():
    """Every cached :class:`Choice`, in the order of their keys."""
    return [_choice(entry) for _, entry in sorted(_entries(cache_path()).items())]


def _problem(layer_sizes, n_rows, dtype):
    """Random θ and a batch of the network's shapes, and the workspaces a pass writes (as training allocates them)."""
    dtype = np.dtype(dtype)
    sizes = np.asarray(layer_sizes, dtype=np.int64)
    rng = np.random.default_rng(0)
    theta = (rng.standard_normal(mlp.n_params(sizes)) * 0.05).astype(dtype)
    X = rng.standard_normal((int(n_rows), int(sizes[0]))).astype(dtype)
    Y = np.eye(int(sizes[-1]), dtype=dtype)[rng.integers(0, int(sizes[-1]), int(n_rows))]
    X.flags.writeable = Y.flags.writeable = False  # as training passes them
    workspace = int(n_rows) * int(np.sum(sizes[1:]))
    return (theta, X, Y, sizes, mlp.RELU, mlp.SOFTMAX, 1e-4, np.empty_like(theta), np.empty(workspace, dtype),
            np.empty(workspace, dtype))


def _prepare(name, problem, n_rows, n_threads):
    """A function of no arguments that runs one batch through the pass ``name``, and the context it runs in: the
    threaded passes with the other BLAS pools on one thread, as a fit runs them (:func:`fastgd.threads.blas_limit`),
    ``one_thread`` with every pool on one (:func:`fastgd.threads.limit`), as training runs its epochs."""
    model = model_entry(problem[0].dtype, pass_blocks(name, n_rows, n_threads))
    arguments = (model,) + problem + (1,)
    compiled = _config.compile_for(run_batches, arguments)

    def run():
        compiled(*arguments)

    if name == "one_thread":
        return run, lambda: threads.limit(1)
    return run, (lambda: threads.blas_limit(1)) if name != "serial" else contextlib.nullcontext


def measure_order(names):
    """``names`` in the order :func:`measure` times them in a round: ``blocks`` first, ``serial`` last, the others
    as given between them. Each pool of threads slows whoever runs next while it spins down: OpenBLAS's, the
    serial pass's, the longest (:func:`measure`); then Numba's, which the blocks pass wakes twice a layer, where
    one_thread, which runs on one of them, comes next."""
    names = list(names)
    rank = {"blocks": 0, "serial": 2}
    return sorted(names, key=lambda name: rank.get(name, 1))


def _time_batches(prepared, times):
    """One untimed batch of a prepared candidate (``(run, context)``, :func:`_prepare`), then at least
    :data:`CONSECUTIVE_BATCHES` and about :data:`BLOCK_SECONDS` of batches (by the untimed one's time) timed
    together; their mean seconds a batch appended to ``times``. The mean, as an epoch sums its batches: on a busy
    machine a threaded pass loses its time in the batches that wait for a core, which a median over batches would
    leave out, and a block shorter than a few of the scheduler's ticks may see none of them."""
    run, context = prepared
    with context():
        before = clock()
        run()
        untimed = clock() - before
        count = max(CONSECUTIVE_BATCHES, int(min(BLOCK_SECONDS / max(untimed, 1e-9), MAX_BLOCK_BATCHES)))
        before = clock()
        for _ in range(count):
            run()
        times.append((clock() - before) / count)


def check_arguments(layer_sizes, n_rows, dtype, n_threads, budget_seconds=BUDGET_SECONDS):
    """A ValueError in one line naming the argument, before anything is measured or cached: the layer sizes (two
    or more positive integers, a network that fits in memory), the batch's rows and the threads (positive integers,
    the threads at most those Numba started), the dtype (float32 or float64, the MLP passes' two) and the budget (a
    finite number of seconds, 0 or more). :func:`measure` and :func:`calibrate` check; ``fastgd calibrate`` checks its
    options first, so that its lines name them."""
    import numba

    from fastgd.machine import physical_memory_bytes

    sizes = list(layer_sizes) if isinstance(layer_sizes, (list, tuple, np.ndarray)) else None
    if (sizes is None or len(sizes) < 2
            or not all(isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size >= 1
                       for size in sizes)):
        raise ValueError(f"layer_sizes: expected two or more positive integers (inputs, hidden..., outputs), "
                         f"got {layer_sizes!r}")
    for name, value in (("n_rows", n_rows), ("n_threads", n_threads)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    if n_threads > numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"n_threads: at most {numba.config.NUMBA_NUM_THREADS} (the threads Numba started), "
                         f"got {n_threads}")
    try:
        kind = np.dtype(dtype) if dtype is not None else None  # np.dtype(None) is float64
    except TypeError:
        kind = None
    if kind is None or kind.name not in ("float32", "float64"):
        raise ValueError(f"dtype: the MLP passes run in float32 or float64, got {dtype!r}")
    if (isinstance(budget_seconds, bool) or not isinstance(budget_seconds, (int, float, np.integer, np.floating))
            or not np.isfinite(budget_seconds) or budget_seconds < 0):
        raise ValueError(f"budget_seconds: expected a number of seconds, 0 or more (0: the fewest rounds), "
                         f"got {budget_seconds!r}")
    # what _problem allocates: θ and its gradient, a batch and its targets, the two workspaces
    sizes = np.asarray(sizes, dtype=np.int64)
    elements = (2 * mlp.n_params(sizes) + n_rows * (int(sizes[0]) + int(sizes[-1]))
                + 2 * n_rows * int(np.sum(sizes[1:])))
    needed, memory = elements * kind.itemsize, physical_memory_bytes()
    if memory is not None and needed > memory:
        raise ValueError(f"layer_sizes: a network of layer sizes {list(map(int, sizes))} at {n_rows} rows needs "
                         f"about {needed / 2 ** 30:.3g} GiB to calibrate; this machine has {memory / 2 ** 30:.3g} GiB")


def measure(layer_sizes, n_rows, dtype, n_threads, budget_seconds=BUDGET_SECONDS, names=None,
            min_rounds=MIN_ROUNDS):
    """Each candidate's median seconds per batch (forward and backward), and the number of timed rounds.

    Every candidate is loaded (or compiled) and run once before the clock starts, ``serial`` first (below). Then
    rounds: in each, every candidate in turn (:func:`measure_order`, ``serial`` last) runs one batch untimed, which
    wakes its threads, then a few batches (at least :data:`CONSECUTIVE_BATCHES`, about :data:`BLOCK_SECONDS`), one
    after another as an epoch runs them, timed together (:func:`_time_batches`). Rounds go on until
    ``budget_seconds`` have passed, the wait before the next round counted (at least ``min_rounds``, at most
    :data:`MAX_ROUNDS`); a candidate's time a batch is the median over rounds.

    Why so (issue 29, AMD EPYC Zen 4, 256-512-512-10/256, float32): timed one batch each in turn, the threaded
    passes took up to 2.5 times their time a batch in a run of them (whole_batch_mkl 9.8 ms against 4.3 ms), and
    the calibration chose one_thread, whose epochs were 1.6 times slower. The serial pass's products run on
    SciPy's OpenBLAS threads, which spin for about 0.1 s after each call (OpenBLAS's thread timeout): a threaded
    pass run in that time took 10.9, 8.8, 8.8, 8.5, 7.1, then 4.6 ms a batch. So ``serial`` runs last in a round, and
    nothing follows it but the next round, after a wait (:data:`OPENBLAS_QUIET_SECONDS`, :func:`sleep`), as the
    others' first batches wait after its own; and it waits in turn for the OpenMP threads of the others to go quiet
    (:data:`OPENMP_QUIET_SECONDS`).

    Runs on ``n_threads`` threads (:func:`fastgd.threads.limit`). ``names``: the candidates to time (default:
    every one that can run here, :func:`candidates`).
    """
    check_arguments(layer_sizes, n_rows, dtype, n_threads, budget_seconds)
    names = measure_order(candidates(n_rows, n_threads) if names is None else names)
    problem = _problem(layer_sizes, n_rows, dtype)
    times = {name: [] for name in names}
    rounds = 0
    with threads.limit(n_threads):
        runs = {name: _prepare(name, problem, n_rows, n_threads) for name in names}
        # the candidates but serial run with the other BLAS pools on one thread (their own contexts say so too):
        # set once a round around them all, where each one's own would set and reset OpenBLAS's pool for each, and
        # every reset wakes its threads to spin beside the next candidate (blocks at 64 rows: 0.4 ms a batch in a
        # run of batches, 8-28 ms in rounds that reset the pool after each candidate)
        others = [name for name in names if name != "serial"]
        # before the others' first batches, and before each round but the first: the serial pass, or OpenBLAS's
        # pool reset after the others, is followed by nothing but this wait
        wait = OPENBLAS_QUIET_SECONDS if others else 0.0
        if "serial" in runs:
            # first: a process's first products start OpenBLAS's threads and fill its buffers, which one untimed
            # batch did not cover (serial at 256 rows, a fresh process: 6.4-7.2 ms a batch, then 3.6-4.0)
            runs["serial"][0]()
            if wait:
                sleep(wait)
        with threads.blas_limit(1):
            for name in others:
                run, context = runs[name]
                with context():
                    run()
        start = clock()
        while rounds < MAX_ROUNDS:
            if rounds >= min_rounds and clock() - start + (wait if rounds else 0.0) >= budget_seconds:
                break
            if rounds and wait:
                sleep(wait)
            with threads.blas_limit(1):
                for name in others:
                    _time_batches(runs[name], times[name])
            if "serial" in runs:
                if others:
                    # the others' OpenMP threads spin for a while after their last parallel region, as OpenBLAS's
                    # do after serial: serial at 64 rows took 0.62-0.80 ms a batch straight after whole_batch_mkl
                    # or blocks, 0.42 after 10 ms or more, and alone (0.38 in its epochs)
                    sleep(OPENMP_QUIET_SECONDS)
                _time_batches(runs["serial"], times["serial"])
            rounds += 1
    return {name: float(np.median(seconds)) for name, seconds in times.items()}, rounds


def calibrate(layer_sizes, n_rows, dtype, n_threads=None, budget_seconds=BUDGET_SECONDS):
    """Measure every candidate (:func:`measure`), cache the result under its key and return it as a :class:`Choice`
    (the fastest candidate chosen). ``n_threads`` defaults to :func:`fastgd.threads.get_num_threads`."""
    n_threads = threads.get_num_threads() if n_threads is None else n_threads
    check_arguments(layer_sizes, n_rows, dtype, n_threads, budget_seconds)
    key = cache_key(layer_sizes, n_rows, dtype, n_threads)
    seconds, rounds = measure(layer_sizes, n_rows, dtype, n_threads, budget_seconds)
    measured = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    choice = Choice(key, min(seconds, key=seconds.get), seconds, rounds, measured)
    _store(choice)
    return choice


def training_pass(layer_sizes, n_rows, dtype, n_threads):
    """``(name, n_blocks)``: the pass a training's batches of ``n_rows`` take on ``n_threads`` threads.

    ``FASTGD_PASS`` where it names one (a :class:`fastgd._config.SettingError` in one line where that pass
    cannot run here); else, from 2²⁰ multiply-adds a batch on two threads or more (below, the serial pass: the
    products cost calls, not arithmetic), the cached calibration for this key; else
    :func:`fastgd.kernels.train.model_blocks`' fixed bounds.
    """
    if _config.PASS != "auto":
        try:
            return _config.PASS, pass_blocks(_config.PASS, n_rows, n_threads)
        except PassUnavailable as error:
            raise _config.SettingError(f"FASTGD_PASS={_config.PASS}: {error}") from None
    if int(n_threads) >= 2 and multiply_adds(layer_sizes, n_rows) >= THREADED_MIN_MULTIPLY_ADDS:
        choice = cached(layer_sizes, n_rows, dtype, n_threads)
        if choice is not None and choice.chosen in candidates(n_rows, n_threads):
            return choice.chosen, pass_blocks(choice.chosen, n_rows, n_threads)
    n_blocks = model_blocks(layer_sizes, n_rows, n_threads)
    return pass_name(n_blocks), n_blocks


def start_candidates(layer_sizes, n_rows, dtype, n_threads, chosen):
    """The passes a training that adapts (:func:`adapts`) times on a few batches before its first epoch.

    ``chosen`` and :data:`FALLBACK_PASS`; where no calibration is cached for this key, also the other threaded
    pass of the two that need no code beyond what the training compiles anyway (``serial``, the same compiled
    pass as one_thread, and ``whole_batch_mkl``, where it can run here). Which of those is faster depends on the
    CPU: MKL's products beat OpenBLAS's on the Intel Xeon machines; on the AMD EPYC Zen 4, quiet, whole epochs
    on ``serial`` took 0.81-0.90 of those on ``whole_batch_mkl`` at 256 and 1024 rows
    (reports/pass_candidates_zen4.md). The probe's pick is not cached: one round is not sure of a 10% difference
    (at 256 rows one probe in a fresh process timed serial at 7.9 ms a batch, against 3.6-4.0 in others, and
    cached, every later fit kept the slower pass); ``fastgd calibrate`` measures longer and caches. ``blocks``
    is left to ``fastgd calibrate``: it would compile a pass the training may never take, and it was the
    fastest in no run on either AMD machine."""
    names = [chosen]
    if cached(layer_sizes, n_rows, dtype, n_threads) is None:
        runnable = candidates(n_rows, n_threads)
        names += [name for name in ("whole_batch_mkl", "serial") if name != chosen and name in runnable]
    return names + [FALLBACK_PASS]


def threads_clearly_faster(one_thread_seconds, threads_seconds):
    """Whether work timed on one thread and on the threads as set should keep the threads: only where they were
    faster by :data:`SWITCH_MARGIN`. One thread is the choice no load can stall, so a near tie goes to it (a
    quiet digits L-BFGS fit: 15 ms on two threads, 11 on one, which one short probe could not tell apart)."""
    return threads_seconds < (1.0 - SWITCH_MARGIN) * one_thread_seconds


def adapts(name, n_threads):
    """Whether a training whose pass ``name`` was chosen for ``n_threads`` threads adapts (:class:`PassAdaptation`):
    ``FASTGD_ADAPT`` on, ``FASTGD_PASS`` ``auto``, two threads or more, and a pass other than the fallback."""
    return _config.ADAPT and _config.PASS == "auto" and int(n_threads) >= 2 and name != FALLBACK_PASS


def _milliseconds(seconds):
    milliseconds = seconds * 1e3
    return f"{milliseconds:.0f} ms" if milliseconds >= 100 else f"{milliseconds:.3g} ms"


class PassAdaptation:
    """Which pass a training's next epoch takes, from the seconds of the epochs it ran: the pure logic, no clock.

    It starts on ``chosen`` (what :func:`training_pass` chose) with ``fallback`` as the other pass. After each
    epoch the training calls :meth:`record` with the pass that ran and its seconds; :meth:`next_pass` says which
    pass runs next. An epoch of the other pass is a probe: the first comes right after the first epoch;
    later ones no sooner than ``interval`` epochs after the last (1, doubled after each probe, at most
    :data:`MAX_PROBE_INTERVAL`), and only while the probes' cost so far plus this one's,
    predicted from the last times measured, stays within ``share`` of the training's seconds. A probe faster
    than the current pass's time (the median of its last :data:`RECENT_EPOCHS` epochs) by ``margin`` makes it
    the current pass. ``changes`` lists each switch, one line each.
    """

    def __init__(self, chosen, fallback=FALLBACK_PASS, share=PROBE_SHARE, margin=SWITCH_MARGIN):
        if chosen == fallback:
            raise ValueError(f"the chosen pass and the fallback are both {chosen!r}: nothing to adapt between")
        if not (0 <= share < 1 and 0 <= margin < 1):
            raise ValueError(f"share and margin must be in [0, 1), got {share!r} and {margin!r}")
        self.current, self.other = chosen, fallback
        self.share, self.margin = float(share), float(margin)
        self.times = {chosen: [], fallback: []}  # each pass's epoch seconds, the latest last
        self.elapsed = 0.0  # seconds of every epoch recorded
        self.probe_cost = 0.0  # what the probes cost beyond the current pass's time, together
        self.interval = 1
        self.since_probe = 0  # epochs of the current pass since the last probe (or the start)
        self.probing = False
        self.epochs = 0
        self.changes = []

    def start(self, batch_seconds, n_batches):
        """Start from a probe of a few batches of both passes (``batch_seconds``: pass -> seconds a batch, as
        :func:`measure` gives them), an epoch being ``n_batches``: the faster by the margin takes the first epoch,
        the other's epoch time is predicted from its batches (so no epoch probes it before the share allows).
        Return the line of a switch, else None."""
        chosen, fallback = self.current, self.other
        self.times[fallback] = [batch_seconds[fallback] * n_batches]
        if batch_seconds[fallback] >= (1.0 - self.margin) * batch_seconds[chosen]:
            return None
        line = (f"before epoch 1: {fallback} took {_milliseconds(batch_seconds[fallback])} a batch, {chosen} "
                f"{_milliseconds(batch_seconds[chosen])}: {fallback} from here")
        self.current, self.other = fallback, chosen
        self.times = {fallback: [], chosen: [batch_seconds[chosen] * n_batches]}
        self.changes.append(line)
        return line

    def next_pass(self):
        """The pass the next epoch takes."""
        return self.other if self.probing else self.current

    def estimate(self, name):
        """The seconds an epoch of ``name`` takes, by the last measurements; None before any."""
        times = self.times[name]
        if not times:
            return None
        return times[-1] if name != self.current else float(np.median(times[-RECENT_EPOCHS:]))

    def record(self, name, seconds):
        """Take the epoch that ran on ``name`` for ``seconds``; return the line of a switch it caused, else None."""
        if name not in self.times:
            raise ValueError(f"the pass {name!r} is neither {self.current!r} nor {self.other!r}")
        seconds = float(seconds)
        self.epochs += 1
        self.elapsed += seconds
        current_seconds = self.estimate(self.current)
        self.times[name] = (self.times[name] + [seconds])[-RECENT_EPOCHS:]
        if name == self.other:
            return self._probed(seconds, current_seconds)
        self.since_probe += 1
        self.probing = self._probe_due()
        return None

    def _probed(self, seconds, current_seconds):
        self.probing, self.since_probe = False, 0
        if current_seconds is None:  # a probe before any epoch of the current pass: only a measurement
            return None
        self.probe_cost += max(seconds - current_seconds, 0.0)
        self.interval = min(2 * self.interval, MAX_PROBE_INTERVAL)
        if seconds >= (1.0 - self.margin) * current_seconds:
            return None
        line = (f"epoch {self.epochs}: {self.other} took {seconds * 1e3:.0f} ms an epoch, {self.current} "
                f"{current_seconds * 1e3:.0f} ms: {self.other} from here")
        self.current, self.other = self.other, self.current
        self.times[self.current] = [seconds]
        self.changes.append(line)
        return line

    def _probe_due(self):
        if self.since_probe < self.interval:
            return False
        other = self.estimate(self.other)
        if other is None:
            return True  # the first probe
        predicted = max(other - self.estimate(self.current), 0.0)
        return self.probe_cost + predicted <= self.share * self.elapsed
