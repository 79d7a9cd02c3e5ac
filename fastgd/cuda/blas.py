"""``fastgd.kernels.blas.gemm`` in CUDA device code: a plain triple loop, for one thread at a time.

Per-tensor rules (LAMB, Adafactor, Muon) run one thread per tensor on the
GPU, their code unchanged from the CPU; this gives their matrix products a
device form. Registered when :mod:`fastgd.cuda.rules` is imported, and not
under the simulator, which runs the NumPy form.
"""

from numba import cuda

from fastgd.kernels.blas import gemm

__all__ = ["register"]

_REGISTERED = []


def register():
    """Register the device form of ``gemm`` with numba-cuda, once."""
    if _REGISTERED or cuda.config.ENABLE_CUDASIM:
        return
    from numba.cuda.extending import overload

    @overload(gemm, target="cuda")
    def _gemm_on_the_device(A, a_offset, B, b_offset, C, c_offset, m, n, k, transpose_a, transpose_b, alpha, beta):
        def impl(A, a_offset, B, b_offset, C, c_offset, m, n, k, transpose_a, transpose_b, alpha, beta):
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
                    C[index] = alpha_ * total if beta == 0 else alpha_ * total + beta_ * C[index]

        return impl

    _REGISTERED.append(True)
