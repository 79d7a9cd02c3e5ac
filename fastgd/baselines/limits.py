"""The machine's limits that fastgd's speed is measured against: memory bandwidth and matrix-product rates.

The in-place streams that bound a step (:class:`InPlaceStreams`, the steps' own access pattern),
STREAM's triad (:class:`StreamTriad`, main memory), the bytes a rule's step must move, and the
matrix-product rate through NumPy's BLAS at 2048² and at a network's own shapes (:func:`gemm_rate`,
:func:`network_gemm_rate`), MKL's at 2048² (:func:`mkl_gemm_rate`), and the higher of the two
(:func:`peak_gemm_rate`), the peak a GEMM share is measured against.
"""

import numpy as np

from fastgd import _config, optim
from fastgd.baselines.timer import seconds_per_call
from fastgd.baselines.trainers import SEED

__all__ = ["arrays_written", "bytes_moved", "bytes_per_parameter", "bytes_per_step", "InPlaceStreams", "StreamTriad",
           "TRIAD_SIZE", "last_level_cache_bytes", "in_place_bandwidth", "triad_bandwidth", "gemm_rate",
           "mkl_gemm_rate", "peak_gemm_rate", "epoch_gemm_shapes", "epoch_matmul_flops", "network_gemm_rate"]


def arrays_written(rule):
    """How many parameter-sized arrays a step of ``rule`` (default hyperparameters) writes in place: θ and its
    state."""
    state = optim.OPTIMIZERS[rule](np.zeros(1)).state
    return 1 + sum(isinstance(value, np.ndarray) and value.shape == (1,) for value in state.values())


def bytes_moved(arrays, dtype, size=1):
    """Bytes a step writing ``arrays`` arrays in place moves over ``size`` elements: those read and written, and g."""
    return (2 * arrays + 1) * np.dtype(dtype).itemsize * size


def bytes_per_parameter(rule, dtype):
    """Bytes one step moves per parameter: θ and g read, θ written, each state array read and written.

    Adam in float32: (3 + 2·2) arrays × 4 bytes = 28 bytes per parameter.
    """
    return bytes_moved(arrays_written(rule), dtype)


def bytes_per_step(rule, n_params, dtype):
    """Bytes a step of ``rule`` over ``n_params`` parameters must move (:func:`bytes_per_parameter`)."""
    return bytes_per_parameter(rule, dtype) * n_params


class InPlaceStreams:
    """``arrays`` vectors of ``size`` elements updated in place from one read-only vector, on every core.

    An update step's own access pattern, its memory traffic alone: a rule writing ``arrays``
    arrays (θ and its state, :func:`arrays_written`) reads them and g and writes them back in
    place, which this does with nothing else (``fastgd.kernels.memory.in_place_streams``), over
    the same working set, counted the same way (:func:`bytes_moved`). It is the reference for
    a step of that size and number of arrays: a share of it above 1 would be a step faster
    than its traffic alone. The first call compiles the kernel.
    """

    def __init__(self, size, arrays, dtype=np.float32):
        from fastgd.kernels.memory import MAX_STREAMS, in_place_streams

        if not 1 <= arrays <= MAX_STREAMS:
            raise ValueError(f"arrays must be from 1 to {MAX_STREAMS}, got {arrays}")
        dtype = np.dtype(dtype)
        self._kernel = in_place_streams
        self.written, self.grad, self.scalar = np.ones((arrays, size), dtype), np.ones(size, dtype), dtype.type(1e-7)
        self.bytes = bytes_moved(arrays, dtype, size)

    def __call__(self):
        self._kernel(self.written, self.grad, self.scalar)

    def bandwidth(self, budget_seconds):
        """Bytes per second of the best time (as STREAM reports): a ceiling should not sink with the machine's load,
        or medians of the steps it bounds would pass it."""
        return self.bytes / seconds_per_call(self, budget_seconds, statistic=np.min)


class StreamTriad:
    """STREAM's triad a ← b + s·c over float64 arrays of ``size`` elements, on every core: main memory's bandwidth
    once the arrays outgrow the last-level cache (:data:`TRIAD_SIZE`), beside the steps' own reference. The first call
    compiles the kernel."""

    BYTES_PER_ELEMENT = 24  # as STREAM counts: read b and c, write a

    def __init__(self, size):
        from fastgd.kernels.memory import triad

        self._kernel = triad
        self.a, self.b, self.c = np.zeros(size), np.ones(size), np.full(size, 2.0)

    def __call__(self):
        self._kernel(self.a, self.b, self.c, 3.0)

    def bandwidth(self, budget_seconds):
        """Bytes per second of the best time, as STREAM reports."""
        return self.BYTES_PER_ELEMENT * self.a.size / seconds_per_call(self, budget_seconds, statistic=np.min)


# 480 MB: beyond the 260 MiB L3 of this project's machines
TRIAD_SIZE = 20_000_000


def last_level_cache_bytes(root="/sys/devices/system/cpu/cpu0/cache"):
    """The size of the CPU's last-level cache in bytes, as Linux's sysfs gives it (a VM sees its host's); None
    elsewhere. A working set below it streams from the cache, not from main memory."""
    import glob

    sizes = {}
    for directory in glob.glob(f"{root}/index*"):
        try:
            with open(f"{directory}/level") as level, open(f"{directory}/size") as size:
                text = size.read().strip()
                units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
                sizes[int(level.read())] = int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)
        except (OSError, ValueError):
            continue
    return sizes[max(sizes)] if sizes else None


def in_place_bandwidth(size, dtype=np.float32, arrays=1, budget_seconds=0.2):
    """Bytes/s of :class:`InPlaceStreams`, warmed: the reference for a step of ``size`` writing ``arrays`` arrays.

    Measure it in the same run as the steps it bounds, at their size and dtype: the working set
    decides whether both stream from cache or from memory.
    """
    streams = InPlaceStreams(size, arrays, dtype)
    streams()
    return streams.bandwidth(budget_seconds)


def triad_bandwidth(size=TRIAD_SIZE, budget_seconds=0.2):
    """Bytes/s of :class:`StreamTriad`, warmed."""
    triad = StreamTriad(size)
    triad()
    return triad.bandwidth(budget_seconds)


def gemm_rate(dtype, budget_seconds, shapes=((2048, 2048, 2048),)):
    """FLOP per second of NumPy's BLAS over the matrix products ``shapes``, each ``(m, k, n)``: an m×k by a k×n.

    A call runs every product once; the default is the square 2048² product, the BLAS's peak.
    """
    rng = np.random.default_rng(SEED)
    operands = [(rng.random((m, k)).astype(dtype), rng.random((k, n)).astype(dtype)) for m, k, n in shapes]
    outputs = [np.empty((m, n), dtype) for m, _, n in shapes]

    def products():
        for (a, b), out in zip(operands, outputs):
            np.matmul(a, b, out=out)

    return sum(2 * m * k * n for m, k, n in shapes) / seconds_per_call(products, budget_seconds)


def mkl_gemm_rate(dtype, budget_seconds, shape=(2048, 2048, 2048)):
    """FLOP per second of MKL's ``?gemm`` (the threaded passes' BLAS) on one ``(m, k, n)`` product, the square 2048²
    by default; raises :class:`fastgd.kernels.mkl.MKLError` where MKL is not installed."""
    from fastgd.kernels import floors, mkl

    mkl.load()  # before products_on_mkl is compiled or loaded: it links MKL's cblas_?gemm
    m, k, n = shape
    rng = np.random.default_rng(SEED)
    A, B = rng.random(m * k).astype(dtype), rng.random(k * n).astype(dtype)
    C = np.empty(m * n, dtype)
    run = _config.compile_for(floors.products_on_mkl, (A, B, C, m, n, k, 1))
    run(A, B, C, m, n, k, 1)
    return 2 * m * k * n / seconds_per_call(lambda: run(A, B, C, m, n, k, 1), budget_seconds)


def peak_gemm_rate(dtype, budget_seconds):
    """``(FLOP per second, BLAS name)``: the higher of NumPy's BLAS's and MKL's 2048² rates (MKL's where installed).

    The matrix-product peak of the machine as fastgd's passes can reach it: a share against the
    slower BLAS's peak would overstate itself where the passes run on the faster one.
    """
    from fastgd.kernels.mkl import MKLError

    rates = {"NumPy's BLAS": gemm_rate(dtype, budget_seconds)}
    try:
        rates["MKL"] = mkl_gemm_rate(dtype, budget_seconds)
    except MKLError:
        pass
    name = max(rates, key=rates.get)
    return rates[name], name


def epoch_gemm_shapes(layer_sizes, batch_size):
    """The matrix products of one batch's pass, as ``(m, k, n)``: per layer forward X·W, backward Aᵀ·δ, and
    δ·Wᵀ (not for the input layer)."""
    shapes = []
    for layer, (n_in, n_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:])):
        shapes += [(batch_size, n_in, n_out), (n_in, batch_size, n_out)]
        if layer > 0:
            shapes.append((batch_size, n_out, n_in))
    return shapes


def epoch_matmul_flops(n_samples, layer_sizes):
    """FLOPs of an epoch's matrix products (those of :func:`epoch_gemm_shapes`, over ``n_samples`` rows)."""
    return sum(2 * m * k * n for m, k, n in epoch_gemm_shapes(layer_sizes, n_samples))


def network_gemm_rate(layer_sizes, batch_size, dtype, budget_seconds):
    """FLOP per second of NumPy's BLAS on the network's own products (:func:`epoch_gemm_shapes`): the peak an epoch of
    that network could reach with its matrix products, against 2048²'s for large ones."""
    return gemm_rate(dtype, budget_seconds, epoch_gemm_shapes(layer_sizes, batch_size))
