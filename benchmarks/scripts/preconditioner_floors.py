"""Floors of the matrix preconditioners' steps: the least time any implementation of the rule's arithmetic could take
on this machine, and so the most a step could gain over pytorch-optimizer's here (issue 28's ≥ 3× goal).

A step's floor is its matrix products that no implementation can skip, at the fastest matrix-product rate this
machine gave in the same run (:class:`MachineLimits`). Everything else counts nothing: elementwise work, and the
eigendecompositions and QR factorisations too. An ``eigh``'s time depends on the matrix (divide and conquer
deflates repeated eigenvalues: the benchmarks' statistics, built from one gradient repeated, have low rank), so no
time measured on another matrix bounds it; a first version that counted ``eigh`` and QR at their times on random
matrices gave "floors" above fastgd's own Shampoo root steps. So the floor is a lower bound and
``pytorch-optimizer's time / floor`` an upper bound on the speed-up: where it is under 3, no implementation of that
step reaches issue 28's goal on this machine.

Arithmetic in FLOPs (``?gemm`` of an m×k by a k×n: 2mkn; ``?syrk`` of a side×k block: side²·k; a triangular
factor times a dense block: half the product), for a matrix G (r × c; a conv kernel is (out, in·kh·kw)); "both
sides" is r²c + rc² (the left side's part is r²c, the right's rc²):

* **Shampoo, statistics** (L += G Gᵀ, R += GᵀG, then L̃ G R̃): the two statistics by ``?syrk`` (1× both sides) and
  the two products (2×): 3× both sides. A vector g: r² + 2r².
* **Shampoo, roots**: the same, and per side V diag(λ^-1/4) Vᵀ (a ``?syrk``: side³); the ``eigh`` counts nothing.
* **SOAP, Adam**: Q_Lᵀ G Q_R and Q_L N Q_Rᵀ (2× each), the statistics by ``?syrk`` (1×): 5× both sides. The
  reference also rotates the first moment m every step (Q_Lᵀ m Q_R, 2× more); an implementation that keeps m's
  rotation and lerps it with the gradient's (a rotation is linear) need not, so the floor leaves it out. A vector
  (``precondition_1d=False``, the default) is Adam's elementwise work.
* **SOAP, refresh**: that, m rotated again into the new bases (2×), and per side a power iteration S·Q
  (2·side³); the QR counts nothing.
* **Kron, precondition only** (Q_Lᵀ Q_L G Q_Rᵀ Q_R): with the products P = QᵀQ kept between the factors' updates,
  P_L G P_R: 2× both sides (four triangular products are the same arithmetic).
* **Kron, update** (the factors updated, then the step): A = Q_L G Q_Rᵀ and the probe's Q_L⁻ᵀ V Q_R⁻¹ (triangular:
  1× each), the four Gram terms A Aᵀ, AᵀA, B Bᵀ, BᵀB (``?syrk``: 2×), the step (2×): 6× both sides, and per
  triangular side triu(T₁ − T₂)·Q and QᵀQ (triangle by triangle: side³/3 each). A side of 1 or a vector's is
  diagonal: elementwise.
"""

import functools

import numpy as np


# the products whose best rate is the machine's: the square sizes of the layouts' largest sides
_PEAK_SIDES = (2048, 3136)


class MachineLimits:
    """The fastest float32 product rate on this machine's current thread settings (fastgd's and torch's):
    ``rate``, and ``rate_sources`` the best of each BLAS.

    The best of five products at each of :data:`_PEAK_SIDES` by NumPy's BLAS (``np.matmul``), the BLAS fastgd's
    compiled code calls (SciPy's, :func:`fastgd.kernels.blas.gemm`) and torch's: an upper bound, as a floor needs
    (a median rate ran under what fastgd's own products reached in the same run).
    """

    def __init__(self, torch):
        from fastgd._config import jit
        from fastgd.baselines.timer import seconds_per_call
        from fastgd.kernels.blas import gemm

        @jit(cache=False)
        def compiled(a, b, c, n):
            gemm(a, 0, b, 0, c, 0, n, n, n, False, False, 1.0, 0.0)

        self.rate_sources = {"NumPy's BLAS": 0.0, "fastgd's BLAS (SciPy's)": 0.0, "torch": 0.0}
        rng = np.random.default_rng(0)
        for side in _PEAK_SIDES:
            a, b = (rng.random((side, side)).astype(np.float32) for _ in range(2))
            out = np.empty((side, side), np.float32)
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            runs = {"NumPy's BLAS": lambda: np.matmul(a, b, out=out),
                    "fastgd's BLAS (SciPy's)": lambda: compiled(a.ravel(), b.ravel(), out.ravel(), side),
                    "torch": lambda: ta @ tb}
            for name, run in runs.items():
                run()  # warmed: compiled, the BLAS's threads and buffers up
                rate = 2 * side ** 3 / seconds_per_call(run, 0.0, min_repeats=5, statistic=np.min)
                self.rate_sources[name] = max(self.rate_sources[name], rate)
        self.rate = max(self.rate_sources.values())


def _sides(shape):
    """(r, c, matrix?) of a layout's tensor: a vector is r × 1."""
    return (int(shape[0]), int(shape[1]), True) if len(shape) == 2 else (int(np.prod(shape)), 1, False)


def floor_seconds(layout, kind, machine):
    """The least seconds a step of ``kind`` (a key of :data:`FLOORS`) over ``layout`` could take on ``machine``."""
    return sum(FLOORS[kind](*_sides(shape)) for shape in layout) / machine.rate


def _both_sides(r, c):
    return r * r * c + r * c * c


def _shampoo(r, c, matrix, roots):
    """FLOPs of one tensor's Shampoo step: statistics and L̃ G R̃, and with ``roots`` V diag(λ^-1/4) Vᵀ per side."""
    if not matrix:
        return 3 * r * r + (r ** 3 if roots else 0)
    return 3 * _both_sides(r, c) + (r ** 3 + c ** 3 if roots else 0)


def _soap(r, c, matrix, refresh):
    """FLOPs of one tensor's SOAP step: two rotations and the statistics, and with ``refresh`` m rotated again and a
    power iteration per side; a vector (not rotated by default) none."""
    if not matrix:
        return 0
    return (7 if refresh else 5) * _both_sides(r, c) + (2 * (r ** 3 + c ** 3) if refresh else 0)


def _kron(r, c, matrix, update):
    """FLOPs of one tensor's Kron step on its triangular sides (a side of 1, or a vector's, is diagonal)."""
    if not matrix:
        return 0
    left, right = r > 1, c > 1
    both = (r * r * c if left else 0) + (r * c * c if right else 0)
    if not update:
        return 2 * both
    return 6 * both + sum(2 * side ** 3 / 3 for side, triangular in ((r, left), (c, right)) if triangular)


# each kind's FLOPs for one tensor of r × c (``matrix``) or a vector of r
FLOORS = {
    "Shampoo, roots": functools.partial(_shampoo, roots=True),
    "Shampoo, statistics": functools.partial(_shampoo, roots=False),
    "SOAP, Adam": functools.partial(_soap, refresh=False),
    "SOAP, refresh": functools.partial(_soap, refresh=True),
    "Kron, precondition only": functools.partial(_kron, update=False),
    "Kron, update": functools.partial(_kron, update=True),
}


def describe(machine):
    """One line: the rate and whose it was."""
    rates = ", ".join(f"{name} {rate / 1e9:.0f}" for name, rate in machine.rate_sources.items())
    return (f"Floors at {machine.rate / 1e9:.0f} GFLOP/s (float32, the best 2048² and 3136² products here: {rates} "
            "GFLOP/s); eigendecompositions and QRs count nothing in them.")
