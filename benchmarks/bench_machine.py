"""The machine's own limits, measured in the same run as the rest: memory bandwidth and matrix-multiply peak."""

from benchmarks import common


class MemoryBandwidth:
    """STREAM triad over three float64 arrays of 10⁷ elements (240 MB), on every core.

    The ceiling for ``bench_optim.UpdateStep.track_bandwidth``, which counts bytes the same way.
    """

    timeout = 120

    def setup(self):
        self.triad = common.StreamTriad(10_000_000)

    def track_stream_triad(self):
        return self.triad.bandwidth(common.TRACK_SECONDS) / 1e9

    track_stream_triad.unit = "GB/s (higher is better)"


class MatmulPeak:
    """A 2048 × 2048 matrix product through NumPy's BLAS: the ceiling for ``bench_training.EpochMatmulRate``."""

    params = [common.DTYPES]
    param_names = ["dtype"]
    timeout = 120

    def track_gemm(self, dtype):
        return common.gemm_rate(dtype, budget_seconds=common.TRACK_SECONDS) / 1e9

    track_gemm.unit = "GFLOP/s (higher is better)"
