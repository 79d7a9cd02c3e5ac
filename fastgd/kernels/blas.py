"""Matrix products of row-major blocks of flat vectors, callable from compiled code (CPU and CUDA) and Python.

``gemm(A, a_offset, B, b_offset, C, c_offset, m, n, k, transpose_a, transpose_b, alpha, beta)``
computes ``C = alpha · op(A) @ op(B) + beta · C`` where op(A) is m × k, op(B)
is k × n and C is m × n, each a row-major block of a flat, contiguous float32
or float64 vector starting at its offset; op is the transpose where asked (A
then holds k × m, B holds n × k). With ``beta == 0`` C is only written, as in
BLAS (a NaN there does not propagate).

On the CPU it calls the ``?gemm`` of the BLAS that SciPy links (NumPy's
OpenBLAS here) through Numba's own entry point, as ``np.dot`` does, but with
offsets and transposes as plain integers and flags: one short specialisation
per dtype, where ``np.dot`` compiles one per memory layout of its operands.
In CUDA device code (:mod:`fastgd.cuda.blas`) it is a plain triple loop, for
the per-tensor rules that run one thread per tensor; called from Python (and
so under the CUDA simulator) it is NumPy. Shapes are not checked: the
callers' layouts are fixed by construction.
"""

import numpy as np
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload
from numba.np.linalg import ensure_blas
from numba.np.numpy_support import as_dtype

__all__ = ["gemm", "trsm"]

# Numba's helper: column-major ?gemm (kind 's' or 'd', then Fortran's arguments by value; pointers as integers)
_xxgemm = types.ExternalFunction("numba_xxgemm", types.intc(
    types.char, types.char, types.char, types.intp, types.intp, types.intp, types.intp, types.intp, types.intp,
    types.intp, types.intp, types.intp, types.intp, types.intp))
_N, _T = ord("N"), ord("T")


def gemm(A, a_offset, B, b_offset, C, c_offset, m, n, k, transpose_a, transpose_b, alpha, beta):
    """C = alpha · op(A) @ op(B) + beta · C on blocks of flat vectors (see the module docstring)."""
    a = A[a_offset:a_offset + m * k].reshape((k, m) if transpose_a else (m, k))
    b = B[b_offset:b_offset + k * n].reshape((n, k) if transpose_b else (k, n))
    product = alpha * ((a.T if transpose_a else a) @ (b.T if transpose_b else b))
    c = C[c_offset:c_offset + m * n]
    c[:] = (product if beta == 0 else product + beta * c.reshape(m, n)).ravel()


@intrinsic
def _address_of_copy(typingctx, value):
    """The address of a copy of ``value`` on the calling function's stack (BLAS takes alpha and beta by pointer)."""
    def codegen(context, builder, signature, arguments):
        slot = cgutils.alloca_once_value(builder, arguments[0])
        return builder.ptrtoint(slot, context.get_value_type(types.intp))

    return types.intp(value), codegen


@overload(gemm)
def _gemm(A, a_offset, B, b_offset, C, c_offset, m, n, k, transpose_a, transpose_b, alpha, beta):
    if not all(isinstance(array, types.Array) and array.ndim == 1 for array in (A, B, C)):
        raise TypingError("gemm takes three 1-D arrays")
    if not (A.dtype == B.dtype == C.dtype) or A.dtype not in (types.float32, types.float64):
        raise TypingError("gemm takes float32 or float64 arrays of one dtype")
    ensure_blas()
    dtype = as_dtype(C.dtype)
    kind, itemsize, real = ord("s" if dtype == np.float32 else "d"), dtype.itemsize, dtype.type

    def impl(A, a_offset, B, b_offset, C, c_offset, m, n, k, transpose_a, transpose_b, alpha, beta):
        # C (m × n, row-major) is Cᵀ in column-major order, so Cᵀ = op(B)ᵀ op(A)ᵀ: B first, same flags
        _xxgemm(kind, _T if transpose_b else _N, _T if transpose_a else _N, n, m, k, _address_of_copy(real(alpha)),
                B.ctypes.data + b_offset * itemsize, k if transpose_b else n,
                A.ctypes.data + a_offset * itemsize, m if transpose_a else k,
                _address_of_copy(real(beta)), C.ctypes.data + c_offset * itemsize, n)

    return impl


# --- triangular solves (PSGD-Kron's preconditioner update) -------------------------------------------------------
#
# Numba's helper library has no ?trsm: SciPy's cython_blas exports the one of the BLAS it links. Its address is
# registered under a name of our own, so compiled code refers to the symbol, not to an address, and stays in the
# on-disk cache.

def _register_trsm():
    from llvmlite import binding
    from numba.extending import get_cython_function_address

    for kind in ("s", "d"):
        binding.add_symbol(f"fastgd_{kind}trsm", get_cython_function_address("scipy.linalg.cython_blas",
                                                                             f"{kind}trsm"))


_register_trsm()
# side, uplo, transa, diag, m, n, alpha, A, lda, B, ldb: every argument by address (Fortran's convention)
_TRSM_SIGNATURE = types.void(*([types.intp] * 11))
_strsm = types.ExternalFunction("fastgd_strsm", _TRSM_SIGNATURE)
_dtrsm = types.ExternalFunction("fastgd_dtrsm", _TRSM_SIGNATURE)
_L, _R, _U, _LOWER = ord("L"), ord("R"), ord("U"), ord("L")


def trsm(A, a_offset, B, b_offset, m, n, left, upper, transpose_a, alpha):
    """B ← alpha · op(A)⁻¹ B (``left``) or alpha · B op(A)⁻¹, in place, on row-major blocks of flat vectors.

    B is m × n from ``b_offset``; A is the triangular m × m (``left``) or n × n block from ``a_offset``, upper
    triangular where ``upper`` (its other triangle is not read); op(A) is Aᵀ where ``transpose_a``. The CPU form
    calls the BLAS's ``?trsm``; called from Python it is SciPy's ``solve_triangular``.
    """
    from scipy.linalg import solve_triangular

    side = m if left else n
    a = A[a_offset:a_offset + side * side].reshape(side, side)
    b = B[b_offset:b_offset + m * n].reshape(m, n)
    if left:
        solved = solve_triangular(a, b, trans=1 if transpose_a else 0, lower=not upper)
    else:  # X op(A) = B ⇔ op(A)ᵀ Xᵀ = Bᵀ
        solved = solve_triangular(a, b.T, trans=0 if transpose_a else 1, lower=not upper).T
    b[:] = alpha * solved


@overload(trsm)
def _trsm(A, a_offset, B, b_offset, m, n, left, upper, transpose_a, alpha):
    if not all(isinstance(array, types.Array) and array.ndim == 1 for array in (A, B)):
        raise TypingError("trsm takes two 1-D arrays")
    if not (A.dtype == B.dtype) or A.dtype not in (types.float32, types.float64):
        raise TypingError("trsm takes float32 or float64 arrays of one dtype")
    dtype = as_dtype(B.dtype)
    solve, itemsize, real = (_strsm if dtype == np.float32 else _dtrsm), dtype.itemsize, dtype.type

    def impl(A, a_offset, B, b_offset, m, n, left, upper, transpose_a, alpha):
        # row-major B (m × n) is Bᵀ column-major and A is Aᵀ: op(A) X = B ⇔ Xᵀ op(A)ᵀ = Bᵀ, so the side and the
        # triangle swap and the transpose flag stays
        _address = _address_of_copy
        solve(_address(np.uint8(_R if left else _L)), _address(np.uint8(_LOWER if upper else _U)),
              _address(np.uint8(_T if transpose_a else _N)), _address(np.uint8(_N)),
              _address(np.int32(n)), _address(np.int32(m)), _address(real(alpha)),
              A.ctypes.data + a_offset * itemsize, _address(np.int32(m if left else n)),
              B.ctypes.data + b_offset * itemsize, _address(np.int32(n)))

    return impl
