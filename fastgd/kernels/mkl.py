"""Intel MKL's sequential ``?gemm``, callable from compiled code: the matrix products of the threaded model.

On this project's 2-core machine, at the batch sizes of real training (64 to 256 rows),
OpenBLAS gains nothing from a second thread on one product, while MKL run single-threaded
on each thread's own block of rows keeps both cores busy (``benchmarks/scripts/network_speed.py``
has the figures). :mod:`fastgd.kernels.threaded` splits a batch into one block per thread and
calls :func:`gemm` on each; every other product in fastgd goes to SciPy's BLAS
(:mod:`fastgd.kernels.blas`), so the serial results never depend on whether MKL is installed.

MKL is optional (``pip install "fastgd[mkl]"``). :func:`load` finds ``libmkl_rt`` (beside
the Python installation, where the ``mkl`` wheel puts it, or on the loader's path), makes
its symbols visible to Numba's linker and sets MKL to its sequential layer: the threads are
Numba's, and MKL must not start its own inside them. Compiled code that calls :func:`gemm`
links ``cblas_?gemm`` by name, so it can be cached; :func:`load` must run before such code
is compiled or loaded from the cache (``fastgd.kernels.train.model_entry`` sees to it).

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

__all__ = ["MKLError", "available", "load", "describe", "gemm"]

_ROW_MAJOR, _NO_TRANSPOSE, _TRANSPOSE = 101, 111, 112
_SEQUENTIAL = 1  # MKL_THREADING_SEQUENTIAL
_lock = threading.Lock()
_state = {}  # "path" and "version" once loaded, or "error": why not


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


def load():
    """Load MKL once per process (sequential layer, symbols visible to Numba); return its path.

    Raises :class:`MKLError` when it is not installed or will not run sequentially (another library
    loaded it first with its own threading layer).
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
            layer = library.MKL_Set_Threading_Layer(ctypes.c_int(_SEQUENTIAL))
            if layer != _SEQUENTIAL:
                _state["error"] = (f"MKL at {path} runs with threading layer {layer}, set before fastgd loaded it; "
                                   "fastgd's threaded model needs the sequential one (MKL_THREADING_LAYER=SEQUENTIAL)")
                raise MKLError(_state["error"])
            binding.load_library_permanently(path)
            buffer = ctypes.create_string_buffer(256)
            library.mkl_get_version_string(buffer, ctypes.c_int(len(buffer)))
            _state["path"], _state["version"] = path, buffer.value.decode(errors="replace").strip()
            return path
        _state["error"] = "MKL is not installed: pip install \"fastgd[mkl]\" (the mkl wheel) to use the threaded model"
        raise MKLError(_state["error"])


def available():
    """Whether :func:`load` succeeds here (it is called)."""
    try:
        load()
    except MKLError:
        return False
    return True


def describe():
    """MKL's version string and path once loaded, or why it is not used."""
    if "path" in _state:
        return f"{_state['version']} ({_state['path']})"
    return _state.get("error", "not loaded")


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
