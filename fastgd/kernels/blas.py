"""Matrix products of row-major blocks through BLAS, callable from compiled code.

``gemm(A, B, C, transpose_a, transpose_b, accumulate)`` computes
``C = op(A) @ op(B)`` (or ``C += ...`` with ``accumulate``) for 2-D C-ordered
float32 or float64 arrays, op being the transpose where asked. It calls the
``?gemm`` of the BLAS that SciPy links (NumPy's OpenBLAS here) through
Numba's own entry point, as ``np.dot`` does, but takes transposes as flags
rather than as strided views: one short specialisation per dtype instead of
one per memory layout, which is most of what ``np.dot`` costs to compile.
Shapes are not checked: the callers' layouts are fixed by construction.
"""

import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload
from numba.np.linalg import ensure_blas
from numba.np.numpy_support import as_dtype

__all__ = ["gemm"]

# Numba's helper: column-major ?gemm (kind 's' or 'd', then Fortran's arguments by value)
_xxgemm = types.ExternalFunction("numba_xxgemm", types.intc(
    types.char, types.char, types.char, types.intp, types.intp, types.intp, types.voidptr, types.voidptr, types.intp,
    types.voidptr, types.intp, types.voidptr, types.voidptr, types.intp))
_N, _T = ord("N"), ord("T")


def gemm(A, B, C, transpose_a, transpose_b, accumulate):
    """C = op(A) @ op(B), or C += op(A) @ op(B) with ``accumulate``: compiled code only."""
    raise NotImplementedError("fastgd.kernels.blas.gemm is called from compiled code")


@overload(gemm)
def _gemm(A, B, C, transpose_a, transpose_b, accumulate):
    if not all(isinstance(array, types.Array) and array.ndim == 2 for array in (A, B, C)):
        raise TypingError("gemm takes three 2-D arrays")
    if not (A.dtype == B.dtype == C.dtype) or A.dtype not in (types.float32, types.float64):
        raise TypingError("gemm takes float32 or float64 arrays of one dtype")
    ensure_blas()
    dtype = as_dtype(C.dtype)
    kind = ord("s" if dtype == np.float32 else "d")
    one, zero = np.ones(1, dtype), np.zeros(1, dtype)

    def impl(A, B, C, transpose_a, transpose_b, accumulate):
        # C (m × n, row-major) is Cᵀ in column-major order, so Cᵀ = op(B)ᵀ op(A)ᵀ: B first, same flags
        m, n = C.shape
        k = A.shape[0] if transpose_a else A.shape[1]
        beta = one if accumulate else zero
        _xxgemm(kind, _T if transpose_b else _N, _T if transpose_a else _N, n, m, k, one.ctypes, B.ctypes,
                B.shape[1], A.ctypes, A.shape[1], beta.ctypes, C.ctypes, C.shape[1])

    return impl
