"""Floors of the matrix preconditioners' steps: the least time any implementation of the rule's arithmetic could take
on this machine, and so the most a step could gain over pytorch-optimizer's here (issue 28's ≥ 3× goal).

A step's floor is its arithmetic that no implementation can skip, at the fastest matrix-product rate this machine
gave in the same run (one thread: the higher of NumPy's BLAS's, MKL's where installed, and torch's 2048² ``?gemm``),
plus its eigendecompositions and QR factorisations at the speed of the faster of the two LAPACKs here (SciPy's, as
fastgd calls it through Numba, and torch's), each timed at its own side. Elementwise work counts nothing, so the
floor is a lower bound and ``pytorch-optimizer's time / floor`` an upper bound on the speed-up: where it is under
3, no implementation of that step reaches issue 28's goal on this machine.

Arithmetic in FLOPs (``?gemm`` of an m×k by a k×n: 2mkn; ``?syrk`` of a side×k block: side²·k; a triangular
factor times a dense block: half the product), for a matrix G (r × c; a conv kernel is (out, in·kh·kw)); "both
sides" is r²c + rc² (the left side's part is r²c, the right's rc²):

* **Shampoo, statistics** (L += G Gᵀ, R += GᵀG, then L̃ G R̃): the two statistics by ``?syrk`` (1× both sides) and
  the two products (2×): 3× both sides. A vector g: r² + 2r².
* **Shampoo, roots**: the same, and per side an ``eigh`` and V diag(λ^-1/4) Vᵀ (a ``?syrk``: side³).
* **SOAP, Adam**: Q_Lᵀ G Q_R and Q_L N Q_Rᵀ (2× each), the statistics by ``?syrk`` (1×): 5× both sides. The
  reference also rotates the first moment m every step (Q_Lᵀ m Q_R, 2× more); an implementation that keeps m's
  rotation and lerps it with the gradient's (a rotation is linear) need not, so the floor leaves it out. A vector
  (``precondition_1d=False``, the default) is Adam's elementwise work.
* **SOAP, refresh**: that, m rotated again into the new bases (2×), and per side a power iteration S·Q (2·side³)
  and a QR.
* **Kron, precondition only** (Q_Lᵀ Q_L G Q_Rᵀ Q_R): with the products P = QᵀQ kept between the factors' updates,
  P_L G P_R: 2× both sides (four triangular products are the same arithmetic).
* **Kron, update** (the factors updated, then the step): A = Q_L G Q_Rᵀ and the probe's Q_L⁻ᵀ V Q_R⁻¹ (triangular:
  1× each), the four Gram terms A Aᵀ, AᵀA, B Bᵀ, BᵀB (``?syrk``: 2×), the step (2×): 6× both sides, and per
  triangular side triu(T₁ − T₂)·Q and QᵀQ (triangle by triangle: side³/3 each). A side of 1 or a vector's is
  diagonal: elementwise.
"""

import functools
import time

import numpy as np


def _best_seconds(function, repeats):
    function()
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - began)
    return best


def _lapack():
    from fastgd._config import jit

    @jit(cache=False)
    def eigh(matrix):
        return np.linalg.eigh(matrix)

    @jit(cache=False)
    def qr(matrix):
        return np.linalg.qr(matrix)

    return eigh, qr


# the products whose best rate is the machine's: the square sizes of the layouts' largest sides
_PEAK_SIDES = (2048, 3136)


class MachineLimits:
    """The fastest product rate and the fastest ``eigh``/QR per side on this machine's current thread settings
    (fastgd's and torch's), float32. ``rate_sources`` and ``sources`` say whose each was.

    The rate is the best of five products at each of :data:`_PEAK_SIDES` by NumPy's BLAS (``np.matmul``), the BLAS
    fastgd's compiled code calls (SciPy's, :func:`fastgd.kernels.blas.gemm`) and torch's: an upper bound, as a
    floor needs (a median rate ran under what fastgd's own products reached in the same run).
    """

    def __init__(self, torch):
        from fastgd._config import jit
        from fastgd.kernels.blas import gemm

        @jit(cache=False)
        def compiled(a, b, c, n):
            gemm(a, 0, b, 0, c, 0, n, n, n, False, False, 1.0, 0.0)

        self.torch = torch
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
                rate = 2 * side ** 3 / _best_seconds(run, 5)
                self.rate_sources[name] = max(self.rate_sources[name], rate)
        self.rate = max(self.rate_sources.values())
        self._eigh, self._qr = _lapack()
        self.sources = {}

    @functools.lru_cache(maxsize=None)
    def _matrix(self, side):
        rng = np.random.default_rng(side)
        block = rng.normal(size=(side, side)).astype(np.float32)
        return np.ascontiguousarray(block @ block.T + np.eye(side, dtype=np.float32))

    @functools.lru_cache(maxsize=None)
    def eigh_seconds(self, side):
        return self._fastest("eigh", side, self._eigh, self.torch.linalg.eigh)

    @functools.lru_cache(maxsize=None)
    def qr_seconds(self, side):
        return self._fastest("qr", side, self._qr, self.torch.linalg.qr)

    def _fastest(self, what, side, ours, theirs):
        matrix = self._matrix(side)
        repeats = 1 if side > 2000 else 3
        times = {"SciPy's LAPACK": _best_seconds(lambda: ours(matrix), repeats),
                 "torch": _best_seconds(lambda: theirs(self.torch.from_numpy(matrix)), repeats)}
        name = min(times, key=times.get)
        self.sources[what, side] = name
        return times[name]


def _sides(shape):
    """(r, c, matrix?) of a layout's tensor: a vector is r × 1."""
    return (int(shape[0]), int(shape[1]), True) if len(shape) == 2 else (int(np.prod(shape)), 1, False)


def floor_seconds(layout, kind, machine):
    """The least seconds a step of ``kind`` (a key of :data:`FLOORS`) over ``layout`` could take on ``machine``."""
    return FLOORS[kind](layout, machine)


def _shampoo(layout, machine, roots):
    flops, seconds = 0.0, 0.0
    for shape in layout:
        r, c, matrix = _sides(shape)
        if matrix:
            flops += 3 * (r * r * c + r * c * c)
            sides = (r, c)
        else:
            flops += 3 * r * r
            sides = (r,)
        if roots:
            for side in sides:
                flops += side ** 3
                seconds += machine.eigh_seconds(side)
    return flops / machine.rate + seconds


def _soap(layout, machine, refresh):
    flops, seconds = 0.0, 0.0
    for shape in layout:
        r, c, matrix = _sides(shape)
        if not matrix:
            continue
        flops += (7 if refresh else 5) * (r * r * c + r * c * c)
        if refresh:
            for side in (r, c):
                flops += 2 * side ** 3
                seconds += machine.qr_seconds(side)
    return flops / machine.rate + seconds


def _kron(layout, machine, update):
    flops = 0.0
    for shape in layout:
        r, c, matrix = _sides(shape)
        if not matrix:
            continue
        left, right = r > 1, c > 1  # triangular factors; a side of 1 is diagonal
        both = (r * r * c if left else 0) + (r * c * c if right else 0)
        flops += (6 if update else 2) * both
        if update:
            flops += sum(2 * side ** 3 / 3 for side, triangular in ((r, left), (c, right)) if triangular)
    return flops / machine.rate


FLOORS = {
    "Shampoo, roots": functools.partial(_shampoo, roots=True),
    "Shampoo, statistics": functools.partial(_shampoo, roots=False),
    "SOAP, Adam": functools.partial(_soap, refresh=False),
    "SOAP, refresh": functools.partial(_soap, refresh=True),
    "Kron, precondition only": functools.partial(_kron, update=False),
    "Kron, update": functools.partial(_kron, update=True),
}


def describe(machine):
    """One line: the rate and whose it was, and whose LAPACK was faster at each side measured."""
    rates = ", ".join(f"{name} {rate / 1e9:.0f}" for name, rate in machine.rate_sources.items())
    lapack = ", ".join(f"{what} {side}: {name}" for (what, side), name in sorted(machine.sources.items()))
    return (f"Floors at {machine.rate / 1e9:.0f} GFLOP/s (float32, the best 2048² and 3136² products here: {rates} "
            f"GFLOP/s); the faster "
            f"LAPACK at each side: {lapack or 'none measured'}.")
