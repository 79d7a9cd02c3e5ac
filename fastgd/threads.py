"""One thread count for fastgd's compiled loops and the BLAS behind its matrix products.

A training epoch runs Numba ``prange`` loops and BLAS matrix products one after the
other. Each has its own thread pool; left alone they can disagree (Numba's counts
every core, an OpenBLAS or MKL set up elsewhere may not), and a benchmark that gives
PyTorch two threads should give fastgd two as well. This module keeps both pools at one
count, which users read and set here::

    from fastgd import threads
    threads.get_num_threads()          # what both pools use now
    threads.set_num_threads(1)         # from here on
    with threads.limit(1):             # for a block, then back
        ...

``FASTGD_NUM_THREADS`` sets the count when this module is first imported (``fastgd.optim``
and ``fastgd.training`` import it); by default both pools use every core Numba sees.

The BLAS that fastgd's compiled matrix products call is SciPy's (Numba's entry point), which
may not be loaded yet: setting a count loads it first, since a library loaded later would not
see the limit.
"""

import contextlib
import numbers
import time

import numba

from fastgd._config import _env_int

__all__ = ["get_num_threads", "set_num_threads", "limit", "blas_limit", "describe", "seconds_on_one_and_all"]


def _check(n_threads):
    highest = numba.config.NUMBA_NUM_THREADS
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral) or not 1 <= n_threads <= highest:
        raise ValueError(f"n_threads must be an integer from 1 to {highest} (the threads Numba started), "
                         f"got {n_threads!r}")
    return int(n_threads)


def get_num_threads():
    """The number of threads fastgd's ``prange`` loops use in this thread (and the BLAS pool is kept at)."""
    return numba.get_num_threads()


def _threadpoolctl():
    """threadpoolctl, with every BLAS fastgd calls loaded (imported here: ``import fastgd`` stays cheap)."""
    from numba.np.linalg import ensure_blas

    import threadpoolctl

    ensure_blas()  # SciPy's BLAS, which compiled code calls
    return threadpoolctl


class _LoadedLibraries:
    """A number that changes whenever the process loads or unloads a shared library (None where it cannot tell).

    glibc counts both in every ``dl_iterate_phdr`` record (``dlpi_adds``, ``dlpi_subs``); the first record is
    enough, a few µs, where finding the thread pools again takes about 1 ms (threadpoolctl opens each library).
    """

    def __init__(self):
        import ctypes

        self.counts = None
        try:
            iterate = ctypes.CDLL(None).dl_iterate_phdr
        except (OSError, AttributeError):  # not glibc-like (macOS, Windows): found again each time
            self.iterate = None
            return
        self.iterate = iterate
        self.callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)(
            self._first_record)
        self.ctypes = ctypes

    def _first_record(self, info, size, data):
        # struct dl_phdr_info on 64-bit glibc: addr, name, phdr, phnum (padded to 8), adds, subs
        if size >= 48:
            adds, subs = (self.ctypes.c_ulonglong * 2).from_address(info + 32)
            self.counts = (adds, subs)
        return 1  # stop after the first record

    def fingerprint(self):
        if self.iterate is None:
            return None
        self.counts = None
        self.iterate(self.callback, None)
        return self.counts


_controller = {"fingerprint": None, "controller": None, "libraries": None}


def _pools():
    """threadpoolctl's ThreadpoolController over every thread pool loaded: found once, and again only after a
    shared library was loaded or unloaded (MKL, which :mod:`fastgd.kernels.mkl` loads on demand; a user's torch)."""
    threadpoolctl = _threadpoolctl()
    if _controller["libraries"] is None:
        _controller["libraries"] = _LoadedLibraries()
    fingerprint = _controller["libraries"].fingerprint()
    if fingerprint is None or fingerprint != _controller["fingerprint"] or _controller["controller"] is None:
        _controller["controller"] = threadpoolctl.ThreadpoolController()
        _controller["fingerprint"] = fingerprint
    return _controller["controller"]


def set_num_threads(n_threads):
    """Use ``n_threads`` threads in fastgd's ``prange`` loops and in BLAS, from now on."""
    n_threads = _check(n_threads)
    numba.set_num_threads(n_threads)
    _pools().limit(limits=n_threads, user_api="blas")


@contextlib.contextmanager
def limit(n_threads):
    """Within the block, use ``n_threads`` threads (Numba and BLAS); afterwards, what was set before."""
    n_threads = _check(n_threads)
    before = numba.get_num_threads()
    with _pools().limit(limits=n_threads, user_api="blas"):
        numba.set_num_threads(n_threads)
        try:
            yield
        finally:
            numba.set_num_threads(before)


def blas_limit(n_threads):
    """A context manager: within it, the BLAS pools that are not Numba's use ``n_threads`` threads; afterwards, what
    was set before. The estimators run a fit that takes a threaded pass under ``blas_limit(1)``.

    MKL, where fastgd loaded it onto Numba's own OpenMP threads (:mod:`fastgd.kernels.mkl`), keeps
    its count: its threads are the pass's, and the pass with the whole batch's products on MKL needs them.
    """
    from fastgd.kernels import mkl

    n_threads = _check(n_threads)
    pools = _pools()
    if not mkl.shares_numbas_threads():
        return pools.limit(limits=n_threads, user_api="blas")
    others = {pool["prefix"]: n_threads for pool in pools.info()
              if pool["user_api"] == "blas" and pool["internal_api"] != "mkl"}
    return pools.limit(limits=others)


def seconds_on_one_and_all(run, clock=time.perf_counter, warm=True):
    """(seconds of ``run()`` on one thread, seconds on the threads as set): each the second of two calls, the
    first untimed, to wake the threads and to leave any first-call cost out; with ``warm=False`` each one call,
    where a run is long beside waking threads and where two more runs would cost more than the choice saves.

    One thread first: after their last product the BLAS's threads spin a while, so the threads as set go last,
    and what follows the probe finds them as it would have. On a busy machine a product on two threads waits for
    the one that has no core: the probes that choose between the two (a network's first epoch, a full-batch
    L-BFGS, a long predict) all time it this way.
    """
    seconds = []
    for context in (lambda: limit(1), contextlib.nullcontext):
        with context():
            if warm:
                run()
            start = clock()
            run()
            seconds.append(clock() - start)
    return tuple(seconds)


def describe():
    """One line: the Numba threads and each BLAS library's threads, e.g. for a benchmark's header."""
    blas = [f"{pool['internal_api']} {pool['num_threads']}" for pool in _pools().info()
            if pool["user_api"] == "blas"]
    n_threads = numba.get_num_threads()  # starts Numba's threads, which chooses the threading layer
    return (f"{n_threads} Numba threads ({numba.threading_layer()} layer), BLAS threads: "
            f"{', '.join(blas) or 'none found'}")


def _from_environment():
    n_threads = _env_int("FASTGD_NUM_THREADS", None, numba.config.NUMBA_NUM_THREADS)
    if n_threads is not None:
        set_num_threads(n_threads)


_from_environment()
