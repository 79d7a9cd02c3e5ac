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

import numba

from fastgd._config import _env_int

__all__ = ["get_num_threads", "set_num_threads", "limit", "blas_limit", "describe"]


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


def set_num_threads(n_threads):
    """Use ``n_threads`` threads in fastgd's ``prange`` loops and in BLAS, from now on."""
    n_threads = _check(n_threads)
    numba.set_num_threads(n_threads)
    _threadpoolctl().threadpool_limits(n_threads, user_api="blas")


@contextlib.contextmanager
def limit(n_threads):
    """Within the block, use ``n_threads`` threads (Numba and BLAS); afterwards, what was set before."""
    n_threads = _check(n_threads)
    before = numba.get_num_threads()
    with _threadpoolctl().threadpool_limits(n_threads, user_api="blas"):
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
    threadpoolctl = _threadpoolctl()
    if not mkl.shares_numbas_threads():
        return threadpoolctl.threadpool_limits(n_threads, user_api="blas")
    others = {pool["prefix"]: n_threads for pool in threadpoolctl.threadpool_info()
              if pool["user_api"] == "blas" and pool["internal_api"] != "mkl"}
    return threadpoolctl.threadpool_limits(limits=others)


def describe():
    """One line: the Numba threads and each BLAS library's threads, e.g. for a benchmark's header."""
    blas = [f"{pool['internal_api']} {pool['num_threads']}" for pool in _threadpoolctl().threadpool_info()
            if pool["user_api"] == "blas"]
    n_threads = numba.get_num_threads()  # starts Numba's threads, which chooses the threading layer
    return (f"{n_threads} Numba threads ({numba.threading_layer()} layer), BLAS threads: "
            f"{', '.join(blas) or 'none found'}")


def _from_environment():
    n_threads = _env_int("FASTGD_NUM_THREADS", None, numba.config.NUMBA_NUM_THREADS)
    if n_threads is not None:
        set_num_threads(n_threads)


_from_environment()
