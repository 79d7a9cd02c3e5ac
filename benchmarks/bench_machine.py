"""The machine's own limits, measured in the same run as the rest: memory bandwidth and matrix-multiply peak.

Measured by ``fastgd.baselines``, as the comparison report measures them.
"""

from fastgd import baselines

from benchmarks import common


class MemoryBandwidth:
    """STREAM triad over three float64 arrays of 2·10⁷ elements (480 MB, beyond the L3), on every core: main memory's
    bandwidth, best of repeats.

    Not the reference of ``bench_optim.UpdateStep.track_bandwidth``: a step's own access
    pattern is in-place read-modify-write (see ``InPlaceBandwidth``).
    """

    timeout = 120

    def setup(self):
        self.triad = common.warmed(baselines.StreamTriad(baselines.TRIAD_SIZE))

    def track_stream_triad(self):
        return self.triad.bandwidth(common.TRACK_SECONDS) / 1e9

    track_stream_triad.unit = "GB/s (higher is better)"


class InPlaceBandwidth:
    """float32 arrays updated in place from one read-only vector, on every core: a step's own access pattern, its
    traffic alone (``baselines.InPlaceStreams``), best of repeats.

    At the sizes where ``opt.step`` runs its ``prange`` form, for steps that write
    1 to 4 arrays (θ and its state: SGD 1, Adam 3, AMSGrad 4). The reference of
    ``bench_optim.UpdateStep.track_bandwidth`` at the same ``n_params`` and
    number of arrays: counted the same way, over the same working set
    (``bench_optim.StepCeilingShare`` takes the ratio in one process).
    """

    params = [[1_000_000, 10_000_000], [1, 2, 3, 4]]
    param_names = ["n_params", "arrays"]
    timeout = 120

    def setup(self, n_params, arrays):
        self.streams = common.warmed(baselines.InPlaceStreams(n_params, arrays, "float32"))

    def track_in_place_update(self, n_params, arrays):
        return self.streams.bandwidth(common.TRACK_SECONDS) / 1e9

    track_in_place_update.unit = "GB/s (higher is better)"


class MatmulPeak:
    """A 2048 × 2048 matrix product through NumPy's BLAS: the ceiling for ``bench_training.EpochMatmulRate``."""

    params = [common.DTYPES]
    param_names = ["dtype"]
    timeout = 120

    def track_gemm(self, dtype):
        return baselines.gemm_rate(dtype, budget_seconds=common.TRACK_SECONDS) / 1e9

    track_gemm.unit = "GFLOP/s (higher is better)"


class NetworkMatmulPeak:
    """NumPy's BLAS on a network's own matrix products (``baselines.epoch_gemm_shapes``: per layer X·W, Aᵀ·δ and
    δ·Wᵀ at its batch size), for each network of ``common.NETWORKS`` in its dtype: the most its epoch's products
    could reach there, beside the 2048² peak of ``MatmulPeak``."""

    params = [list(common.NETWORKS)]
    param_names = ["network"]
    timeout = 120

    def track_gemm(self, network):
        spec = common.NETWORKS[network]
        return baselines.network_gemm_rate(spec.layer_sizes, spec.batch_size, spec.dtype, common.TRACK_SECONDS) / 1e9

    track_gemm.unit = "GFLOP/s (higher is better)"
