"""``fastgd.kernels.blas.gemm`` in CUDA device code: a plain triple loop, for one thread at a time.

Per-tensor rules (LAMB, Adafactor, Muon) run one thread per tensor on the
GPU, their code unchanged from the CPU. :func:`on_the_device` gives such a
function's device twin: the same code, with every global bound to ``gemm``
bound to :func:`device_gemm` instead (under the simulator, to the loops in
Python).
"""

import types

from numba import cuda

from fastgd._config import cuda_jit
from fastgd.kernels.blas import gemm

__all__ = ["gemm_loops", "device_gemm", "on_the_device"]


def gemm_loops(A, a_offset, B, b_offset, C, c_offset, m, n, k, transpose_a, transpose_b, alpha, beta):
    """``gemm``'s contract, as loops: C = alpha · op(A) @ op(B) + beta · C (C only written where beta is 0)."""
    real = C.dtype.type
    alpha_, beta_ = real(alpha), real(beta)
    for i in range(m):
        for j in range(n):
            total = real(0.0)
            for p in range(k):
                a = A[a_offset + (p * m + i if transpose_a else i * k + p)]
                b = B[b_offset + (j * k + p if transpose_b else p * n + j)]
                total += a * b
            index = c_offset + i * n + j
            if beta == 0:
                C[index] = alpha_ * total
            else:
                C[index] = alpha_ * total + beta_ * C[index]


_DEVICE = []


def device_gemm():
    """:func:`gemm_loops` as a CUDA device function (compiled once per process, on first use)."""
    if not _DEVICE:
        _DEVICE.append(cuda_jit(gemm_loops, device=True))
    return _DEVICE[0]


def on_the_device(function):
    """``function`` (a Python function) with its globals bound to ``gemm`` rebound to the device form.

    Under the simulator the device form is :func:`gemm_loops` itself, run in Python.
    """
    if not any(value is gemm for value in function.__globals__.values()):
        return function
    replacement = gemm_loops if cuda.config.ENABLE_CUDASIM else device_gemm()
    namespace = dict(function.__globals__)
    for name, value in function.__globals__.items():
        if value is gemm:
            namespace[name] = replacement
    twin = types.FunctionType(function.__code__, namespace, function.__name__, function.__defaults__,
                              function.__closure__)
    twin.__qualname__, twin.__module__ = function.__qualname__, function.__module__
    return twin
