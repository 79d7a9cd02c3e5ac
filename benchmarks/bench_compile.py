"""What Numba's compilation costs a user: the first step or fit in a fresh process, cache empty or filled.

``ColdStart`` and ``WarmStart``: the wall time of a new Python process from before its first
import to the end of the workload (``common.START_WORKLOADS``): an Adam step on 1,000 float32
parameters, or a one-epoch ``MLPClassifier.fit`` on digits.

``CompileCost``: the seconds of single fits, imports excluded (``common.compile_costs``): the
first fit with an empty cache, then in the same process a fit with another rule and one in the
other dtype (what each new rule or dtype costs), a user's rule's first fit with an empty cache,
and the first fit again with the cache filled.
"""

import tempfile

from benchmarks import NUMBA_CACHE_DIR, common


class ColdStart:
    """With an empty Numba cache: every kernel the workload calls is compiled."""

    params = [list(common.START_WORKLOADS)]
    param_names = ["workload"]
    timeout = 300

    def track_cold_start(self, workload):
        with tempfile.TemporaryDirectory() as empty_cache:
            return common.start_seconds(workload, empty_cache)

    track_cold_start.unit = "seconds"


class WarmStart:
    """With the suite's Numba cache, which ``setup`` fills: machine code is loaded, not compiled."""

    params = [list(common.START_WORKLOADS)]
    param_names = ["workload"]
    timeout = 300

    def setup(self, workload):
        with common.numba_cache_lock():
            common.start_seconds(workload, NUMBA_CACHE_DIR)

    def track_warm_start(self, workload):
        # locked too: another benchmark's warm-up must not rewrite an index this process reads
        with common.numba_cache_lock():
            return common.start_seconds(workload, NUMBA_CACHE_DIR)

    track_warm_start.unit = "seconds"


class CompileCost:
    """Seconds of one fit per stage (see the module docstring); measured once, in fresh processes, in setup_cache."""

    params = [["first_fit", "next_rule", "next_dtype", "user_rule_first_fit", "cached_first_fit"]]
    param_names = ["stage"]
    timeout = 600

    def setup_cache(self):
        with tempfile.TemporaryDirectory() as work_dir:
            return common.compile_costs(work_dir)

    def track_fit_seconds(self, costs, stage):
        return costs[stage]

    track_fit_seconds.unit = "seconds"
