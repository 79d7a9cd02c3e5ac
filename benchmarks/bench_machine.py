"""The machine's own limits, measured in the same run as the rest: memory bandwidth and matrix-multiply peak."""

from benchmarks import common


class MemoryBandwidth:
    """STREAM triad over three float64 arrays of 10⁷ elements (240 MB), on every core: main memory's bandwidth.

    Not the ceiling of ``bench_optim.UpdateStep.track_bandwidth``: a step's smaller
    working set may stream from the last-level cache (see ``InPlaceBandwidth``).
    """

    timeout = 120

    def setup(self):
        self.triad = common.StreamTriad(10_000_000)

    def track_stream_triad(self):
        return self.triad.bandwidth(common.TRACK_SECONDS) / 1e9

    track_stream_triad.unit = "GB/s (higher is better)"


class InPlaceBandwidth:
    """float32 arrays updated in place from one read-only vector, on every core: a step's memory traffic alone.

    At the sizes where ``opt.step`` runs its ``prange`` form, for steps that write
    1 to 4 arrays (θ and its state: SGD 1, Adam 3, AMSGrad 4). The ceiling of
    ``bench_optim.UpdateStep.track_bandwidth`` at the same ``n_params`` and
    number of arrays: counted the same way, over the same working set.
    """

    params = [[1_000_000, 10_000_000], [1, 2, 3, 4]]
    param_names = ["n_params", "arrays"]
    timeout = 120

    def setup(self, n_params, arrays):
        self.streams = common.InPlaceStreams(n_params, arrays, "float32")

    def track_in_place_update(self, n_params, arrays):
        return self.streams.bandwidth(common.TRACK_SECONDS) / 1e9

    track_in_place_update.unit = "GB/s (higher is better)"


class MatmulPeak:
    """A 2048 × 2048 matrix product through NumPy's BLAS: the ceiling for ``bench_training.EpochMatmulRate``."""

    params = [common.DTYPES]
    param_names = ["dtype"]
    timeout = 120

    def track_gemm(self, dtype):
        return common.gemm_rate(dtype, budget_seconds=common.TRACK_SECONDS) / 1e9

    track_gemm.unit = "GFLOP/s (higher is better)"
