"""Numba flags for every compiled function of fastgd, in one place.

Each flag can be overridden by an environment variable read once, at import;
a value outside what is listed raises :class:`SettingError` (a ValueError)
naming the variable:

``FASTGD_CACHE`` (default ``1``)
    Cache compiled machine code on disk (``cache=True``): a cold compile of a
    whole-epoch function takes seconds, a cached load a fraction of one.
``FASTGD_FASTMATH`` (default ``0``)
    Let LLVM reorder floating-point arithmetic. Off by default: it changes
    results in the last bits, breaks the parity with the NumPy reference and
    torch, and lets LLVM fold ``isnan``/``isfinite`` to constants, which would
    hide divergence. The divergence checks are always compiled without it.
``FASTGD_PARALLEL_THRESHOLD`` (default ``131072``)
    Vectors with at least this many elements use the ``prange`` form of a
    kernel; shorter ones the serial form, whose call costs no thread launch.
``FASTGD_CUDA_BLOCK_SIZE`` (default ``256``, at most ``1024``)
    Threads per block of the element-wise CUDA kernels (update rules,
    gathers, reductions).
``FASTGD_CUDA_MAX_BLOCKS`` (default ``4096``, at most ``2**31 - 1``)
    At most this many blocks per element-wise launch; past that the kernels'
    grid-stride loops give each thread several elements. 4096 blocks of 256
    threads keep a large GPU's memory bus busy.
``FASTGD_NUM_THREADS`` (default: every core Numba sees)
    Threads of fastgd's ``prange`` loops and of the BLAS behind its matrix
    products, one count for both (:mod:`fastgd.threads`, which reads it when
    ``fastgd.optim`` is imported).
``FASTGD_PASS`` (default ``auto``)
    Which pass an MLP batch takes on the CPU: ``serial`` (SciPy's BLAS, on the threads
    ``FASTGD_NUM_THREADS`` gives it), ``one_thread`` (the serial pass with fastgd's loops and the
    BLAS on one thread, whatever the count set: on a busy machine the faster), ``blocks`` (a block
    of the batch's rows per thread, MKL single-threaded in each), ``whole_batch_mkl`` (the whole
    batch's products on MKL's threads, where those are Numba's), or ``auto``: the choice
    ``fastgd calibrate`` measured and cached for the network's shapes, dtype and thread count
    (:mod:`fastgd.calibration`), else fixed bounds (``fastgd.kernels.train.model_blocks``). A pass
    that cannot run here is refused when a training first asks for it
    (:func:`fastgd.kernels.train.pass_blocks`).
``FASTGD_ADAPT`` (default ``1``)
    Whether a training on a multi-threaded pass that ``auto`` chose measures its epochs and moves
    to the ``one_thread`` pass when that is faster (a busy machine), and back when it no longer is
    (:class:`fastgd.calibration.PassAdaptation`). The passes agree up to rounding, so a run that
    switches differs from one that does not in the last bits: ``0`` keeps a run's bits fixed (the
    test suite's setting), as does any ``FASTGD_PASS`` other than ``auto``.

``FASTGD_PLUGINS`` and ``FASTGD_GENERATED_DIR``
    Plugins loaded with :mod:`fastgd.rules`, and where generated rule modules
    are written (:func:`fastgd.rules.compile.generated_directory`); the latter
    must name a writable directory, or one that can be made.
``FASTGD_BASELINES``
    The stored baselines' store (:mod:`fastgd.sweep.baselines`; by default in the user's cache directory).
``FASTGD_DATA_DIR``
    The folder of the user's own copies of MNIST, Fashion-MNIST and CIFAR-10 for the full DeepOBS problems, in
    DeepOBS's layout (``mnist/``, ``fmnist/``, ``cifar10/``; :func:`fastgd.datasets.deepobs_data_directory`;
    by default ``data_deepobs`` in the working directory).

Any other ``FASTGD_*`` variable is a misspelt setting that would be silently
ignored: the ``fastgd`` command refuses it in one line naming the nearest
setting (:func:`check_setting_names`), and importing fastgd warns about it
(:class:`SettingWarning`, once per process).

CUDA kernels are always compiled without fastmath: it would flush
denormals, approximate division and square roots, and break the parity with
the CPU kernels.

Numba's on-disk cache is keyed by signature and bytecode, not by these flags:
point ``NUMBA_CACHE_DIR`` at a separate directory when running with
non-default flags (or with ``NUMBA_BOUNDSCHECK=1``).

Nor is that cache safe when two processes compile two signatures of one
function at the same moment: Numba names a new entry's data file after the
number of entries its index holds, so both can write ``<name>.1.nbc`` and the
index can then point at the other signature's machine code (numba#10128).
Importing this module makes every save to and load from that cache take a
file lock of the entry's own (``<index>.nbi.lock``, beside it): the index is
read, numbered and written by one process at a time, and never read while an
entry is half saved. Compiling itself is not serialised across processes:
two sweep workers (or two test workers) compile two rules' steps at once.
:func:`compile_lock` with a name keeps two processes from compiling the same
thing twice at the same moment; without one it is machine-wide.
"""

import contextlib
import difflib
import hashlib
import os
import tempfile
import threading
import time
import warnings

import numba
from numba._dispatcher import compute_fingerprint
from numba.core.ccallback import CFunc

__all__ = ["SettingError", "SettingWarning", "SETTINGS", "unknown_settings", "check_setting_names", "CACHE",
           "RELOAD_HOOKS_KEPT", "FASTMATH", "PARALLEL_THRESHOLD", "CUDA_BLOCK_SIZE", "CUDA_MAX_BLOCKS", "PASSES",
           "PASS", "ADAPT", "jit", "cfunc", "cuda_jit", "compile_lock", "compile_name", "compile_for",
           "compile_seconds"]


class SettingError(ValueError):
    """A FASTGD_* environment variable with a value fastgd cannot use; the message is one line naming it."""


class SettingWarning(UserWarning):
    """A FASTGD_* environment variable fastgd does not read (a misspelt setting)."""


# every FASTGD_* environment variable fastgd reads (a test finds each name the sources read in this list)
SETTINGS = ("FASTGD_CACHE", "FASTGD_FASTMATH", "FASTGD_PARALLEL_THRESHOLD", "FASTGD_CUDA_BLOCK_SIZE",
            "FASTGD_CUDA_MAX_BLOCKS", "FASTGD_NUM_THREADS", "FASTGD_PASS", "FASTGD_ADAPT",
            "FASTGD_PLUGINS", "FASTGD_GENERATED_DIR", "FASTGD_BASELINES", "FASTGD_DATA_DIR")


def unknown_settings(environment=None):
    """One line for each ``FASTGD_*`` variable of ``environment`` (default: ``os.environ``) that is not in
    :data:`SETTINGS`, naming the nearest setting where one is close."""
    lines = []
    for name in sorted(environment if environment is not None else os.environ):
        if name.startswith("FASTGD_") and name not in SETTINGS:
            nearest = difflib.get_close_matches(name, SETTINGS, n=1, cutoff=0.6)
            hint = f" (did you mean {nearest[0]}?)" if nearest else f"; the settings are {', '.join(SETTINGS)}"
            lines.append(f"{name} is not a fastgd setting{hint}")
    return lines


def check_setting_names(environment=None):
    """Raise :class:`SettingError` for the first unknown ``FASTGD_*`` variable (see :func:`unknown_settings`)."""
    lines = unknown_settings(environment)
    if lines:
        raise SettingError(lines[0])


def _check_generated_dir():
    """FASTGD_GENERATED_DIR, when set, must be a writable directory, or a path one can be made at (nothing is
    made here)."""
    value = os.environ.get("FASTGD_GENERATED_DIR")
    if not value:
        return
    path = os.path.abspath(value)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise SettingError(f"FASTGD_GENERATED_DIR: {value} is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise SettingError(f"FASTGD_GENERATED_DIR: the directory {value} is not writable")
        return
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise SettingError(f"FASTGD_GENERATED_DIR: {value} cannot be made: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SettingError(f"FASTGD_GENERATED_DIR: {value} cannot be made: {parent} is not writable")


def _env_flag(name, default):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise SettingError(f"{name} must be 0 or 1, got {value!r}")


def _env_int(name, default, high):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    text = value.strip()
    # digits only: int() would also take "1_000", "+5" and other scripts' digits
    if not (text.isascii() and text.isdigit()):
        raise SettingError(f"{name} must be a positive integer, got {value!r}")
    number = int(text)
    if not 1 <= number <= high:
        raise SettingError(f"{name} must be an integer from 1 to {high}, got {number}")
    return number


def _env_choice(name, default, choices):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    if value.strip().lower() not in choices:
        raise SettingError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value.strip().lower()


# the MLP passes on the CPU that FASTGD_PASS names (fastgd.kernels.train.pass_blocks says what each is)
PASSES = ("serial", "one_thread", "blocks", "whole_batch_mkl")
PASS = _env_choice("FASTGD_PASS", "auto", ("auto",) + PASSES)
ADAPT = _env_flag("FASTGD_ADAPT", True)
CACHE = _env_flag("FASTGD_CACHE", True)
FASTMATH = _env_flag("FASTGD_FASTMATH", False)
PARALLEL_THRESHOLD = _env_int("FASTGD_PARALLEL_THRESHOLD", 1 << 17, 2 ** 62)
# CUDA's limits: 1024 threads per block, 2**31 - 1 blocks along x
CUDA_BLOCK_SIZE = _env_int("FASTGD_CUDA_BLOCK_SIZE", 256, 1024)
CUDA_MAX_BLOCKS = _env_int("FASTGD_CUDA_MAX_BLOCKS", 4096, 2 ** 31 - 1)
_check_generated_dir()


def _warn_about_unknown_settings():
    for line in unknown_settings():
        warnings.warn(line, SettingWarning, stacklevel=3)


_warn_about_unknown_settings()

# error_model="numpy": a float division by zero gives inf/nan as in NumPy. The
# default ("python") tests every divisor and raises, which also stops LLVM from
# vectorising the update loops. nogil lets threads (sweeps, Dask) run kernels
# side by side.
_OPTIONS = dict(cache=CACHE, error_model="numpy", nogil=True)


def jit(func=None, *, parallel=False, exact=False, inline=False, cache=None, internal=False):
    """``numba.njit`` with fastgd's flags.

    ``exact=True`` compiles without fastmath whatever ``FASTGD_FASTMATH`` says:
    use it for every function that tests ``isnan``/``isfinite``.
    ``inline=True`` inlines the function into its callers in Numba's own IR.
    Use it for the small functions inside hot loops: LLVM cannot inline a
    callee that was loaded from the cache as machine code, and a loop with a
    call in it is not vectorised. ``cache=False`` keeps a function out of the
    on-disk cache (one with no source file, defined at a prompt, cannot be in it).
    """
    options = dict(_OPTIONS, parallel=parallel, fastmath=False if exact else FASTMATH,
                   inline="always" if inline else "never")
    if cache is not None:
        options["cache"] = cache and CACHE
    if internal:
        options.update(no_cpython_wrapper=True, no_cfunc_wrapper=True)
    if func is None:
        return numba.njit(**options)
    return numba.njit(**options)(func)


def cfunc(signature, *, parallel=False):
    """``numba.cfunc(signature)`` with fastgd's flags: a C callback that compiled code can take as an argument.

    ``parallel=True`` shares its ``prange`` loops out over Numba's threads. Numba's on-disk cache keys
    a callback by its function's qualified name, closure contents and signature, not by these flags:
    one function must not be compiled both ways.
    """
    return numba.cfunc(signature, cache=CACHE, error_model="numpy", nogil=True, fastmath=FASTMATH, parallel=parallel)


def cuda_jit(func=None, *, device=False):
    """``numba.cuda.jit`` with fastgd's flags: on-disk cache as ``FASTGD_CACHE``, never fastmath.

    Device functions are inlined into their callers in Numba's own IR (as
    ``jit(inline=True)`` on the CPU): the matrix-product tile loop keeps its
    accumulators in registers only inside its kernel, and a kernel that
    calls a device function compiled on its own would ask the driver for
    the GPU's compute capability, which ``cuda.compile_ptx`` without a GPU
    cannot answer. Under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) only
    ``device`` is passed. ``numba.cuda`` is imported here, on first use, so
    that the CPU path never pays for it.
    """
    from numba import cuda

    if cuda.config.ENABLE_CUDASIM:
        options = dict(device=device)
    else:
        options = dict(device=device, fastmath=False, cache=CACHE, inline="always" if device else "never")
    if func is None:
        return cuda.jit(**options)
    return cuda.jit(**options)(func)


_compile_lock_in_process = threading.RLock()
_compile_lock_depth = 0
_compile_seconds = 0.0  # see compile_seconds()


def _lock_directory():
    directory = numba.config.CACHE_DIR or tempfile.gettempdir()
    os.makedirs(directory, exist_ok=True)
    return directory


@contextlib.contextmanager
def compile_lock(name=None):
    """Inside, this thread alone on the machine compiles ``name`` (any text naming what is compiled: a function,
    a rule and dtype), or with no name, does anything under the machine-wide lock.

    The lock is a file beside the cache (``NUMBA_CACHE_DIR``, or the temporary directory when Numba keeps
    its cache beside the sources), one per name, taken with ``filelock`` (POSIX and Windows alike). Inside
    any of them, taking one again (of any name) takes nothing more: a process holds at most one, so two
    processes never wait on each other's. What the cache itself needs (one save at a time per entry) is
    the cache's own lock (see the module's docstring), not this one.
    """
    global _compile_lock_depth, _compile_seconds
    with _compile_lock_in_process:
        if _compile_lock_depth:
            _compile_lock_depth += 1
            try:
                yield
            finally:
                _compile_lock_depth -= 1
            return
        import filelock

        suffix = "" if name is None else "-" + hashlib.sha1(str(name).encode()).hexdigest()[:16]
        started = time.perf_counter()
        try:
            with filelock.FileLock(os.path.join(_lock_directory(), f"fastgd-compile{suffix}.lock")):
                _compile_lock_depth = 1
                try:
                    yield
                finally:
                    _compile_lock_depth = 0
        finally:
            _compile_seconds += time.perf_counter() - started


def compile_seconds():
    """The seconds this process has spent compiling or loading compiled code (inside :func:`compile_lock`, its
    waits for another process's compile included): a sweep's progress takes them out of its rate of work."""
    return _compile_seconds


def _guard_cache_index():
    """Make Numba's on-disk cache take a lock per entry (``<index>.nbi.lock``) around each save and load.

    Numba's ``IndexDataCacheFile.save`` reads the index, picks the first free data file number and writes
    the index and then the data, with nothing between two processes doing the same (numba#10128): two
    signatures saved at once can share a data file, and a load between the index's write and the data's
    can read another entry's stale file. Done once per process; any Numba function's cache gains it.
    """
    from numba.core import caching

    cache_file = caching.IndexDataCacheFile
    if getattr(cache_file, "_fastgd_guarded", False):
        return
    import filelock

    save, load = cache_file.save, cache_file.load

    def guarded_save(self, key, data):
        with filelock.FileLock(self._index_path + ".lock"):
            return save(self, key, data)

    def guarded_load(self, key):
        if not os.path.exists(self._index_path):
            return None  # nothing saved yet: no lock file made for every function looked up
        with filelock.FileLock(self._index_path + ".lock"):
            return load(self, key)

    cache_file.save, cache_file.load, cache_file._fastgd_guarded = guarded_save, guarded_load, True


_guard_cache_index()


def _keep_reload_hooks():
    """Make every compile result cached by Numba carry its code's reload hooks, and code loaded from the cache keep
    them.

    Numba runs a compile result's ``reload_init`` functions before loading its code from the cache, and a
    function compiled in this process passes the hooks of its library on to every caller that links its code;
    but a C callback (``cfunc``) is cached without the hooks its own code added to its library, and a function
    loaded from the cache passes none on, so a caller compiled later, linking it, is cached without them.
    :mod:`fastgd.kernels.linking` needs them: its hooks register the symbols that a cached caller's machine code
    refers to. So a result is saved with its library's hooks too, and a loaded one's library holds its hooks. Done
    once per process.

    Returns whether the hooks are kept: False (nothing patched) where this Numba's compile results are not built
    as the patch expects, and :func:`fastgd.kernels.linking.by_symbol` then leaves Numba to link its functions
    as it does any other (slower to compile, never a call to a symbol nobody registered).
    """
    import inspect

    from numba.core import codegen, compiler

    result_class = compiler.CompileResult
    if getattr(result_class, "_fastgd_keeps_hooks", False):
        return True
    try:
        expected = ("reload_init" in result_class._fields and "_rebuild" in result_class.__dict__
                    and "self.reload_init" in inspect.getsource(result_class._reduce)
                    and "self._reload_init" in inspect.getsource(codegen.CodeLibrary.__init__))
    except (AttributeError, OSError, TypeError):
        expected = False
    if not expected:
        return False
    reduce, rebuild = result_class._reduce, result_class.__dict__["_rebuild"].__func__

    def reduce_with_library_hooks(self):
        state = list(reduce(self))
        hooks = self.reload_init if self.reload_init is not None else []
        place = next((k for k, item in enumerate(state) if item is hooks), None)
        if place is not None:
            state[place] = list(hooks) + [hook for hook in self.library._reload_init if hook not in hooks]
        return tuple(state)

    def rebuild_keeping_hooks(cls, *arguments, **keywords):
        result = rebuild(cls, *arguments, **keywords)
        if result.reload_init:
            result.library._reload_init.update(result.reload_init)
        return result

    result_class._reduce = reduce_with_library_hooks
    result_class._rebuild = classmethod(rebuild_keeping_hooks)
    result_class._fastgd_keeps_hooks = True
    return True


# whether compiled code may call fastgd's kernels by symbol (fastgd.kernels.linking)
RELOAD_HOOKS_KEPT = _keep_reload_hooks()


def compile_name(dispatcher):
    """The name :func:`compile_lock` takes for compiling ``dispatcher``: its function's module and qualified
    name (what Numba's cache files are named after)."""
    function = getattr(dispatcher, "py_func", dispatcher)
    return f"{function.__module__}.{function.__qualname__}"


# (dispatcher, the arguments' type fingerprints) -> the compiled entry point
_ENTRY_POINTS = {}


# id -> (callback, its Numba type): fingerprints do not cover C callbacks, and training passes a few
# long-lived ones (the model's and each rule's, per dtype). Each is held, so its id stays its own.
_TYPES_BY_ID = {}


def _type_key(argument):
    """What decides ``argument``'s Numba type, cheaply: the dispatcher's own C fingerprint (a fraction of what
    ``numba.typeof`` costs for an array), else its type (found once per C callback)."""
    try:
        return compute_fingerprint(argument)
    except (NotImplementedError, ValueError):
        if not isinstance(argument, CFunc):
            return numba.typeof(argument)
        known = _TYPES_BY_ID.get(id(argument))
        if known is None or known[0] is not argument:
            known = _TYPES_BY_ID[id(argument)] = (argument, numba.typeof(argument))
        return known[1]


def compile_for(dispatcher, arguments):
    """Compile ``dispatcher`` (or load it from the cache) for the types of ``arguments``, under :func:`compile_lock`.

    A signature this process already has costs a dictionary lookup of the arguments' type
    fingerprints and takes no lock. Returns the compiled function for exactly these types: calling
    it skips the dispatcher's type resolution (a cost per call that grows with a training epoch's 27
    arguments, two of them C callbacks), so it must only ever get arguments of the same types.
    """
    key = (dispatcher, tuple(_type_key(argument) for argument in arguments))
    entry_point = _ENTRY_POINTS.get(key)
    if entry_point is None:
        signature = tuple(numba.typeof(argument) for argument in arguments)
        if signature not in dispatcher.overloads:
            with compile_lock(compile_name(dispatcher)):
                dispatcher.compile(signature)
        entry_point = _ENTRY_POINTS[key] = dispatcher.overloads[signature].entry_point
    return entry_point
