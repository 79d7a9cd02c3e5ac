"""Intel MKL's ``?gemm``, callable from compiled code: the matrix products of the threaded passes.

On the Intel Xeon machines, at the batch sizes of real training (64 to 1024 rows), MKL's
products beat OpenBLAS's; on the AMD EPYC ones they lose at 64 rows (the figures, with the
CPU named, are in reports/design_measurements.md and reports/network_speed.md). Two passes use
them (:mod:`fastgd.kernels.threaded`): the whole batch's products on MKL's own threads, where those
are Numba's (below); else one block of a batch's rows per thread, each block's products on MKL
inside Numba's parallel loop, on that one thread. Every other product in fastgd goes
to SciPy's BLAS (:mod:`fastgd.kernels.blas`), so the serial results never depend on whether
MKL is installed.

MKL is optional (``pip install "fastgd[mkl]"``). :func:`load` finds ``libmkl_rt`` (beside
the Python installation, where the ``mkl`` wheel puts it, or on the loader's path) and makes
its symbols visible to Numba's linker. Its threads are the GNU OpenMP runtime's, the one
Numba's ``omp`` threading layer runs its parallel loops on: one pool of threads for both, so
that MKL's products and Numba's loops never wait for each other's idle threads (two OpenMP
runtimes' workers, each spinning after its own work, slowed a pass several-fold). On another
threading layer MKL is sequential, and only the pass in blocks of rows uses it.
Compiled code that calls :func:`gemm` links ``cblas_?gemm`` by name, so it can be cached;
:func:`load` must run before such code is compiled or loaded from the cache
(``fastgd.kernels.train.model_entry`` sees to it).

``gemm(A, a_offset, lda, B, b_offset, ldb, C, c_offset, ldc, m, n, k, transpose_a, transpose_b, alpha, beta)``
computes ``C = alpha · op(A) @ op(B) + beta · C`` on row-major blocks of flat float32 or float64
vectors, with explicit leading dimensions (a block of rows or columns of a larger matrix).
"""

import ctypes
import ctypes.util
import glob
import os
import sys
import threading

import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload
from numba.np.numpy_support import as_dtype

__all__ = ["MKLError", "available", "load", "describe", "version", "shares_numbas_threads", "gemm",
           "gemm_on_this_thread"]

_ROW_MAJOR, _NO_TRANSPOSE, _TRANSPOSE = 101, 111, 112
_SEQUENTIAL, _GNU = 1, 3  # MKL_THREADING_SEQUENTIAL, MKL_THREADING_GNU
_LAYER_NAMES = {_SEQUENTIAL: "sequential", _GNU: "GNU OpenMP, Numba's threads"}
_lock = threading.Lock()
_state = {}  # "path", "version" and "layer" once loaded, or "error": why not


class MKLError(RuntimeError):
    """MKL is not installed here, or cannot be used; the message says which and how to install it."""


def _candidates():
    names = ("libmkl_rt.so.3", "libmkl_rt.so.2", "libmkl_rt.so", "libmkl_rt.3.dylib", "libmkl_rt.dylib",
             "mkl_rt.2.dll", "mkl_rt.3.dll")
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        for directory in (os.path.join(prefix, "lib"), os.path.join(prefix, "Library", "bin")):
            for name in names:
                yield os.path.join(directory, name)
            yield from sorted(glob.glob(os.path.join(directory, "libmkl_rt.so.*")))
    found = ctypes.util.find_library("mkl_rt")
    if found:
        yield found


def _threading_layer():
    """MKL's threading layer for this process: GNU OpenMP where Numba's parallel loops run on it, else sequential.

    Numba's ``omp`` layer may be built on another OpenMP runtime (Intel's or LLVM's, in some conda
    builds): MKL on libgomp would then be a second pool of threads beside Numba's.
    """
    import numba
    import threadpoolctl

    numba.get_num_threads()  # starts Numba's threads, so that the layer is known
    if numba.threading_layer() != "omp":
        return _SEQUENTIAL
    runtimes = {pool["prefix"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "openmp"}
    if runtimes != {"libgomp"}:
        return _SEQUENTIAL
    try:
        # Numba's omp layer loaded it privately; MKL's GNU layer looks its symbols up globally
        ctypes.CDLL(ctypes.util.find_library("gomp") or "libgomp.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return _SEQUENTIAL
    return _GNU


def load():
    """Load MKL once per process (threading layer set, symbols visible to Numba); return its path.

    Raises :class:`MKLError` when it is not installed or runs with a threading layer other than the one
    chosen here (another library loaded it first with its own).
    """
    with _lock:
        if "path" in _state:
            return _state["path"]
        if "error" in _state:
            raise MKLError(_state["error"])
        from llvmlite import binding

        for path in _candidates():
            if not os.path.exists(path) and os.sep in path:
                continue
            try:
                library = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
            wanted = _threading_layer()
            layer = library.MKL_Set_Threading_Layer(ctypes.c_int(wanted))
            if layer != wanted:
                _state["error"] = (f"MKL at {path} runs with threading layer {layer}, set before fastgd loaded it; "
                                   f"fastgd's threaded passes need the {_LAYER_NAMES[wanted]} one")
                raise MKLError(_state["error"])
            binding.load_library_permanently(path)
            buffer = ctypes.create_string_buffer(256)
            library.mkl_get_version_string(buffer, ctypes.c_int(len(buffer)))
            _state["path"], _state["version"] = path, buffer.value.decode(errors="replace").strip()
            _state["layer"] = layer
            return path
        _state["error"] = "MKL is not installed: pip install \"fastgd[mkl]\" (the mkl wheel) to use the threaded passes"
        raise MKLError(_state["error"])


def available():
    """Whether :func:`load` succeeds here (it is called)."""
    try:
        load()
    except MKLError:
        return False
    return True


def describe():
    """MKL's version string, path and threading layer once loaded, or why it is not used."""
    if "path" in _state:
        return f"{_state['version']} ({_state['path']}; threads: {_LAYER_NAMES[_state['layer']]})"
    return _state.get("error", "not loaded")


def version():
    """MKL's version string once loaded (:func:`load`), else None."""
    return _state.get("version")


def shares_numbas_threads():
    """Whether MKL has been loaded (:func:`load`) and runs its products on Numba's OpenMP threads (its GNU layer)."""
    return _state.get("layer") == _GNU


def gemm(A, a_offset, lda, B, b_offset, ldb, C, c_offset, ldc, m, n, k, transpose_a, transpose_b, alpha, beta):
    """C = alpha · op(A) @ op(B) + beta · C on row-major blocks with leading dimensions (see the module docstring).

    Called from Python it is NumPy (a slow, obvious form for tests).
    """
    a = np.lib.stride_tricks.as_strided(A[a_offset:], shape=(k, m) if transpose_a else (m, k),
                                        strides=(lda * A.itemsize, A.itemsize))
    b = np.lib.stride_tricks.as_strided(B[b_offset:], shape=(n, k) if transpose_b else (k, n),
                                        strides=(ldb * B.itemsize, B.itemsize))
    c = np.lib.stride_tricks.as_strided(C[c_offset:], shape=(m, n), strides=(ldc * C.itemsize, C.itemsize))
    product = alpha * ((a.T if transpose_a else a) @ (b.T if transpose_b else b))
    c[...] = product if beta == 0 else product + beta * c


def _cblas(kind, real):
    integer = types.intc
    return types.ExternalFunction(f"cblas_{kind}gemm", types.void(
        integer, integer, integer, integer, integer, integer, real, types.intp, integer, types.intp, integer,
        real, types.intp, integer))  # pointers as integers, as fastgd.kernels.blas passes them


_CBLAS = {np.dtype(np.float32): _cblas("s", types.float32), np.dtype(np.float64): _cblas("d", types.float64)}


@overload(gemm)
def _gemm(A, a_offset, lda, B, b_offset, ldb, C, c_offset, ldc, m, n, k, transpose_a, transpose_b, alpha, beta):
    if not all(isinstance(array, types.Array) and array.ndim == 1 for array in (A, B, C)):
        raise TypingError("mkl.gemm takes three 1-D arrays")
    if not (A.dtype == B.dtype == C.dtype) or A.dtype not in (types.float32, types.float64):
        raise TypingError("mkl.gemm takes float32 or float64 arrays of one dtype")
    dtype = as_dtype(C.dtype)
    cblas, real, itemsize = _CBLAS[dtype], dtype.type, dtype.itemsize

    def impl(A, a_offset, lda, B, b_offset, ldb, C, c_offset, ldc, m, n, k, transpose_a, transpose_b, alpha, beta):
        cblas(_ROW_MAJOR, _TRANSPOSE if transpose_a else _NO_TRANSPOSE, _TRANSPOSE if transpose_b else _NO_TRANSPOSE,
              m, n, k, real(alpha), A.ctypes.data + a_offset * itemsize, lda, B.ctypes.data + b_offset * itemsize,
              ldb, real(beta), C.ctypes.data + c_offset * itemsize, ldc)

    return impl


# MKL's threads for the calling thread alone, over its global count; returns the previous one (0: none was set)
_SET_NUM_THREADS_LOCAL = types.ExternalFunction("MKL_Set_Num_Threads_Local", types.intc(types.intc))


def gemm_on_this_thread(A, a_offset, lda, B, b_offset, ldb, C, c_offset, ldc, m, n, k, transpose_a, transpose_b,
                        alpha, beta):
    """:func:`gemm` on the calling thread alone: for a product made inside a parallel loop, each thread one block.

    MKL runs a product inside an OpenMP parallel region on one thread by itself, unless the calling thread has a
    count of its own: threadpoolctl (and so :func:`fastgd.threads.limit`) sets MKL's count with
    ``mkl_set_num_threads_local``, on the thread that calls it, which runs a block of a parallel loop too. That
    thread's products then asked for two threads inside the loop, and the pass in blocks of rows took 24-45 ms a
    batch instead of 0.4-0.5 (100-256-256-10/64, float32, AMD EPYC Zen 4) once MKL's count had been set, even to
    the count it had. So the count is set to one for this thread around the product, and put back after.

    Called from Python it is NumPy, as :func:`gemm`.
    """
    gemm(A, a_offset, lda, B, b_offset, ldb, C, c_offset, ldc, m, n, k, transpose_a, transpose_b, alpha, beta)


@overload(gemm_on_this_thread)
def _gemm_on_this_thread(A, a_offset, lda, B, b_offset, ldb, C, c_offset, ldc, m, n, k, transpose_a, transpose_b,
                         alpha, beta):
    def impl(A, a_offset, lda, B, b_offset, ldb, C, c_offset, ldc, m, n, k, transpose_a, transpose_b, alpha, beta):
        previous = _SET_NUM_THREADS_LOCAL(1)
        gemm(A, a_offset, lda, B, b_offset, ldb, C, c_offset, ldc, m, n, k, transpose_a, transpose_b, alpha, beta)
        _SET_NUM_THREADS_LOCAL(previous)

    return impl
