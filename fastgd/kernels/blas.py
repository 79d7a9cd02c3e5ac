"""Matrix products of row-major blocks of flat vectors through BLAS, callable from compiled code.

``gemm(A, a_offset, B, b_offset, C, c_offset, m, n, k, transpose_a, transpose_b, accumulate)``
computes ``C = op(A) @ op(B)`` (or ``C += ...`` with ``accumulate``) where
op(A) is m × k, op(B) is k × n and C is m × n, each a row-major block of a
flat, contiguous float32 or float64 vector starting at its offset; op is the
transpose where asked (A then holds k × m, B holds n × k). It calls the
``?gemm`` of the BLAS that SciPy links (NumPy's OpenBLAS here) through
Numba's own entry point, as ``np.dot`` does, but with offsets and transposes
as plain integers and flags: one short specialisation per dtype, where
``np.dot`` compiles one per memory layout of its operands. Shapes are not
checked: the callers' layouts are fixed by construction.
"""

import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload
from numba.np.linalg import ensure_blas
from numba.np.numpy_support import as_dtype

__all__ = ["gemm"]

# Numba's helper: column-major ?gemm (kind 's' or 'd', then Fortran's arguments by value; pointers as integers)
_xxgemm = types.ExternalFunction("numba_xxgemm", types.intc(
    types.char, types.char, types.char, types.intp, types.intp, types.intp, types.intp, types.intp, types.intp,
    types.intp, types.intp, types.intp, types.intp, types.intp))
_N, _T = ord("N"), ord("T")


def gemm(A, a_offset, B, b_offset, C, c_offset, m, n, k, transpose_a, transpose_b, accumulate):
    """C = op(A) @ op(B), or C += op(A) @ op(B) with ``accumulate``: compiled code only (see the module docstring)."""
    raise NotImplementedError("fastgd.kernels.blas.gemm is called from compiled code")


@overload(gemm)
def _gemm(A, a_offset, B, b_offset, C, c_offset, m, n, k, transpose_a, transpose_b, accumulate):
    if not all(isinstance(array, types.Array) and array.ndim == 1 for array in (A, B, C)):
        raise TypingError("gemm takes three 1-D arrays")
    if not (A.dtype == B.dtype == C.dtype) or A.dtype not in (types.float32, types.float64):
        raise TypingError("gemm takes float32 or float64 arrays of one dtype")
    ensure_blas()
    dtype = as_dtype(C.dtype)
    kind, itemsize = ord("s" if dtype == np.float32 else "d"), dtype.itemsize
    one, zero = np.ones(1, dtype), np.zeros(1, dtype)

    def impl(A, a_offset, B, b_offset, C, c_offset, m, n, k, transpose_a, transpose_b, accumulate):
        # C (m × n, row-major) is Cᵀ in column-major order, so Cᵀ = op(B)ᵀ op(A)ᵀ: B first, same flags
        beta = one if accumulate else zero
        _xxgemm(kind, _T if transpose_b else _N, _T if transpose_a else _N, n, m, k, one.ctypes.data,
                B.ctypes.data + b_offset * itemsize, k if transpose_b else n,
                A.ctypes.data + a_offset * itemsize, m if transpose_a else k,
                beta.ctypes.data, C.ctypes.data + c_offset * itemsize, n)

    return impl
