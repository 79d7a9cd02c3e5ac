"""One update step of every rule: fastgd's two kernel forms beside the NumPy reference and torch.optim."""

from benchmarks import common


class UpdateStep:
    """``step(grad)`` on a flat vector of standard normal parameters with a fixed standard normal gradient.

    Implementations: ``fastgd_serial`` and ``fastgd_parallel`` are ``opt.step`` with the serial
    or the ``prange`` kernel forced (below ``FASTGD_PARALLEL_THRESHOLD`` parameters users get
    the serial one, from there on the parallel one); ``numpy`` is ``fastgd.reference``;
    ``torch`` is ``torch.optim`` as it comes (one tensor, its for-each loop) and ``torch_fused``
    its fused CPU kernel, for the classes that have one. Every rule runs with its default
    hyperparameters, which are torch's.

    ``track_bandwidth`` divides the bytes a step must move (``common.bytes_per_step``: θ, g and
    the state read, θ and the state written) by the step's time; ``bench_machine.InPlaceBandwidth``
    at the same size is the ceiling to hold it against.
    """

    params = [common.RULES, [1_000, 100_000, 1_000_000, 10_000_000], common.DTYPES,
              list(common.STEP_IMPLEMENTATIONS)]
    param_names = ["rule", "n_params", "dtype", "implementation"]
    # setup runs again before every sample: keep samples within a second per benchmark (at
    # least three), which the slow rows (NumPy on 10^7 float64) reach after three or four
    repeat = (3, 100, 1.0)
    warmup_time = 0.0  # setup has compiled and run the step once
    timeout = 120

    def setup(self, rule, n_params, dtype, implementation):
        self.bytes_per_step = common.bytes_per_step(rule, n_params, dtype)
        params, grad = common.params_and_grad(n_params, dtype)
        self.step = common.STEP_IMPLEMENTATIONS[implementation](rule, params, grad)
        with common.numba_cache_lock():
            self.step()  # compiles, or loads, the kernel
        # last: a sample is one call right after setup (asv_runner >= 0.3), which should find the
        # step's code and data in cache as a step in a training loop does
        self.step()

    def time_step(self, rule, n_params, dtype, implementation):
        self.step()

    def track_bandwidth(self, rule, n_params, dtype, implementation):
        return self.bytes_per_step / common.seconds_per_call(self.step, common.TRACK_SECONDS) / 1e9

    track_bandwidth.unit = "GB/s (higher is better)"
