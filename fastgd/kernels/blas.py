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

__all__ = ["gemm", "trsm", "trmm", "syrk"]

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


# --- triangular solves and products (PSGD-Kron's factors) -------------------------------------------------------
#
# Numba's helper library has no ?trsm nor ?trmm: SciPy's cython_blas exports those of the BLAS it links. Their
# addresses are registered under names of our own, so compiled code refers to the symbols, not to addresses, and
# stays in the on-disk cache.

def _register_triangular():
    from llvmlite import binding
    from numba.extending import get_cython_function_address

    for kind in ("s", "d"):
        for name in ("trsm", "trmm", "syrk"):
            binding.add_symbol(f"fastgd_{kind}{name}", get_cython_function_address("scipy.linalg.cython_blas",
                                                                                   f"{kind}{name}"))


_register_triangular()
# side, uplo, transa, diag, m, n, alpha, A, lda, B, ldb: every argument by address (Fortran's convention); ?trsm
# and ?trmm take the same
_TRSM_SIGNATURE = types.void(*([types.intp] * 11))
_strsm = types.ExternalFunction("fastgd_strsm", _TRSM_SIGNATURE)
_dtrsm = types.ExternalFunction("fastgd_dtrsm", _TRSM_SIGNATURE)
_strmm = types.ExternalFunction("fastgd_strmm", _TRSM_SIGNATURE)
_dtrmm = types.ExternalFunction("fastgd_dtrmm", _TRSM_SIGNATURE)
_L, _R, _U, _LOWER = ord("L"), ord("R"), ord("U"), ord("L")
# uplo, trans, n, k, alpha, A, lda, beta, C, ldc
_SYRK_SIGNATURE = types.void(*([types.intp] * 10))
_ssyrk = types.ExternalFunction("fastgd_ssyrk", _SYRK_SIGNATURE)
_dsyrk = types.ExternalFunction("fastgd_dsyrk", _SYRK_SIGNATURE)


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


def trmm(A, a_offset, B, b_offset, m, n, left, upper, transpose_a, alpha):
    """B ← alpha · op(A) B (``left``) or alpha · B op(A), in place, on row-major blocks of flat vectors: A, B and
    op as :func:`trsm`'s (the other triangle of A is not read). The CPU form calls the BLAS's ``?trmm``."""
    side = m if left else n
    a = A[a_offset:a_offset + side * side].reshape(side, side)
    a = np.triu(a) if upper else np.tril(a)
    a = a.T if transpose_a else a
    b = B[b_offset:b_offset + m * n].reshape(m, n)
    b[:] = alpha * (a @ b if left else b @ a)


@overload(trmm)
def _trmm(A, a_offset, B, b_offset, m, n, left, upper, transpose_a, alpha):
    if not all(isinstance(array, types.Array) and array.ndim == 1 for array in (A, B)):
        raise TypingError("trmm takes two 1-D arrays")
    if not (A.dtype == B.dtype) or A.dtype not in (types.float32, types.float64):
        raise TypingError("trmm takes float32 or float64 arrays of one dtype")
    dtype = as_dtype(B.dtype)
    multiply, itemsize, real = (_strmm if dtype == np.float32 else _dtrmm), dtype.itemsize, dtype.type

    def impl(A, a_offset, B, b_offset, m, n, left, upper, transpose_a, alpha):
        _address = _address_of_copy  # the same change of sides as trsm's
        multiply(_address(np.uint8(_R if left else _L)), _address(np.uint8(_LOWER if upper else _U)),
                 _address(np.uint8(_T if transpose_a else _N)), _address(np.uint8(_N)),
                 _address(np.int32(n)), _address(np.int32(m)), _address(real(alpha)),
                 A.ctypes.data + a_offset * itemsize, _address(np.int32(m if left else n)),
                 B.ctypes.data + b_offset * itemsize, _address(np.int32(n)))

    return impl


def syrk(A, a_offset, C, c_offset, m, n, transpose_a, alpha, beta):
    """The upper triangle of C ← alpha · A Aᵀ + beta · C (m × m), or with Aᵀ A (n × n) where ``transpose_a``, for
    the row-major m × n block A; the strict lower triangle of C is not written (with ``beta == 0`` C's upper
    triangle is only written, as in BLAS). The CPU form calls the BLAS's ``?syrk``."""
    a = A[a_offset:a_offset + m * n].reshape(m, n)
    product = a.T @ a if transpose_a else a @ a.T
    side = product.shape[0]
    c = C[c_offset:c_offset + side * side].reshape(side, side)
    upper = np.triu_indices(side)
    c[upper] = alpha * product[upper] + (beta * c[upper] if beta != 0 else 0)


@overload(syrk)
def _syrk(A, a_offset, C, c_offset, m, n, transpose_a, alpha, beta):
    if not all(isinstance(array, types.Array) and array.ndim == 1 for array in (A, C)):
        raise TypingError("syrk takes two 1-D arrays")
    if not (A.dtype == C.dtype) or A.dtype not in (types.float32, types.float64):
        raise TypingError("syrk takes float32 or float64 arrays of one dtype")
    dtype = as_dtype(C.dtype)
    product, itemsize, real = (_ssyrk if dtype == np.float32 else _dsyrk), dtype.itemsize, dtype.type

    def impl(A, a_offset, C, c_offset, m, n, transpose_a, alpha, beta):
        # A row-major is Aᵀ column-major (n × m, leading dimension n): A Aᵀ is its ᵀ·, Aᵀ A its ·ᵀ; C is symmetric,
        # and its column-major lower triangle is the row-major upper one
        side = n if transpose_a else m
        product(_address_of_copy(np.uint8(_LOWER)), _address_of_copy(np.uint8(_N if transpose_a else _T)),
                _address_of_copy(np.int32(side)), _address_of_copy(np.int32(m if transpose_a else n)),
                _address_of_copy(real(alpha)), A.ctypes.data + a_offset * itemsize, _address_of_copy(np.int32(n)),
                _address_of_copy(real(beta)), C.ctypes.data + c_offset * itemsize, _address_of_copy(np.int32(side)))

    return impl
