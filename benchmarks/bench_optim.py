"""One update step of every rule: fastgd's two kernel forms beside the NumPy reference and torch.optim, and each
step's share of its own access pattern's bandwidth."""

from fastgd import baselines
from fastgd.kernels.memory import MAX_STREAMS

from benchmarks import common


# the rules whose state for one vector of 10³ and of 10⁷ parameters fits: not Shampoo's n × n preconditioner, nor
# SOAP's n × n bases of a vector up to 10⁴ (benchmarks/scripts/preconditioner_speed.py times both on network layouts)
VECTOR_RULES = tuple(rule for rule in common.RULES
                     if all(baselines.fits_as_one_vector(rule, n) for n in (1_000, 10_000_000)))


class UpdateStep:
    """``step(grad)`` on a flat vector of standard normal parameters with a fixed standard normal gradient.

    Implementations: ``fastgd_serial`` and ``fastgd_parallel`` are ``opt.step`` with the serial
    or the ``prange`` kernel forced (below ``FASTGD_PARALLEL_THRESHOLD`` parameters users get
    the serial one, from there on the parallel one); ``numpy`` is ``fastgd.reference``;
    ``torch`` is ``torch.optim`` as it comes (one tensor, its for-each loop) and ``torch_fused``
    its fused CPU kernel, for the classes that have one. Every rule runs with its default
    hyperparameters, which are torch's.

    ``track_bandwidth`` divides the bytes a step must move (``baselines.bytes_per_step``: θ, g and
    the state read, θ and the state written) by the median time of a step in a running loop
    (``baselines.seconds_per_call``, the comparison report's timer); ``bench_machine.InPlaceBandwidth``
    at the same size is the reference to hold it against. Two sizes, float32: 10³, where per-call
    overhead decides, and 10⁷, where memory bandwidth does (the report's steps table has the sizes
    between). The combinations ``baselines.worth_timing`` leaves out are skipped, as the report
    leaves them out: NumPy at 10⁷ but for Adam; the kernel form users do not get but for SGD and
    Adam; torch's default loop where it has a fused kernel (but for Adam), so that torch is timed
    at its best, as the report's ``torch`` rows are. They are skipped before torch is imported,
    which costs a benchmark process two seconds.
    """

    params = [VECTOR_RULES, [1_000, 10_000_000], ["float32"], list(baselines.STEP_IMPLEMENTATIONS)]
    param_names = ["rule", "n_params", "dtype", "implementation"]
    timeout = 120

    def setup(self, rule, n_params, dtype, implementation):
        if not baselines.worth_timing(rule, n_params, implementation):
            raise NotImplementedError(f"{implementation} at {n_params:,}: see baselines.worth_timing")
        self.bytes_per_step = baselines.bytes_per_step(rule, n_params, dtype)
        self.step = common.warmed(baselines.step_callable(rule, n_params, dtype, implementation))

    def track_bandwidth(self, rule, n_params, dtype, implementation):
        return self.bytes_per_step / baselines.seconds_per_call(self.step, common.TRACK_SECONDS) / 1e9

    track_bandwidth.unit = "GB/s (higher is better)"


class StepCeilingShare:
    """Each rule's step at 10⁷ float32 parameters as a share of its own access pattern's bandwidth: the honest limit.

    fastgd's ``opt.step`` in the form users get at that size, its bytes per second
    (``baselines.bytes_per_step``) over those of ``baselines.InPlaceStreams`` for as many arrays
    (θ and the rule's state), measured in the same process before and after: the same traffic alone,
    in place, over the same working set, best of repeats. The step is timed by its median, so
    the share should stay at or below about 1; ``benchmarks/scripts/step_ceiling_check.py``
    asserts that no rule passes 1.05, as the report measures it.
    """

    params = [VECTOR_RULES]
    param_names = ["rule"]
    N_PARAMS = 10_000_000
    timeout = 120

    def setup(self, rule):
        arrays = baselines.arrays_written(rule)
        if arrays > MAX_STREAMS:
            raise NotImplementedError(f"{rule} writes {arrays} arrays; the in-place reference streams at most "
                                      f"{MAX_STREAMS}")
        self.bytes_per_step = baselines.bytes_per_step(rule, self.N_PARAMS, "float32")
        implementation = baselines.users_step_implementation(self.N_PARAMS)
        self.step = common.warmed(baselines.step_callable(rule, self.N_PARAMS, "float32", implementation))
        self.streams = common.warmed(baselines.InPlaceStreams(self.N_PARAMS, arrays, "float32"))

    def track_share(self, rule):
        # the reference before and after the step, keeping the better: a busy moment should not lower it alone
        before = self.streams.bandwidth(common.TRACK_SECONDS / 2)
        step_rate = self.bytes_per_step / baselines.seconds_per_call(self.step, common.TRACK_SECONDS)
        return step_rate / max(before, self.streams.bandwidth(common.TRACK_SECONDS / 2))

    track_share.unit = "fraction of the in-place bandwidth for as many arrays (at most ~1)"
