"""The asv suite: every benchmark runs once on its smallest parameters, and no rule or data set goes unbenchmarked.

Benchmarks are found and run by asv's own runner (``asv_runner``), the way ``asv run --quick``
runs them, in this process: a benchmark that asv would fail on fails here. Timings are not
checked (a benchmark measures, a test checks); what comes back is.
"""

import itertools
import math
import os
import pathlib
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("asv_runner", reason="the bench extra (asv) is not installed")
from asv_runner.discovery import disc_benchmarks, get_benchmark_from_name  # noqa: E402

from fastgd import datasets, optim, rules  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCHMARK_DIR = str(ROOT / "benchmarks")
QUICK = dict(number=1, repeat=1, warmup_time=0, rounds=1)  # what asv run --quick sets
# Size-like parameters run only these values; every other parameter runs all of its values.
# breast_cancer: the smallest bundled set with more training rows (426) than the largest
# numeric batch. The cold start of a fit alone takes ~15 s: test_start_workloads_run runs it warm.
# The network sizes of issue 15 (common.NETWORKS): only digits' 64-32-10 (the others take seconds an epoch).
# Rules: one of each kind of step (element-wise, a norm per tensor, a matrix function per weight matrix, sums over
# every parameter, an evaluation point, a closure, the loss, a matrix preconditioner): each rule's kernels have
# tests of their own (tests/test_optim.py and the parity files); here the benchmarks' code meets every kind.
SMALLEST = {"n_params": [1_000], "dataset": ["breast_cancer"], "workload": ["adam_step"],
            "network": ["digits 64-32-10/32"],
            "rule": ["sgd", "adam", "lamb", "muon", "prodigy", "schedule_free_adamw", "sam_sgd", "alig", "shampoo"]}
# Tracks that report NaN by design (a target not reached, a divergence).
MAY_BE_NAN = {"track_final_loss", "track_epochs_to_target", "track_seconds_to_target"}
# The benchmarks that must cover every rule of optim.OPTIMIZERS, and every bundled data set.
EVERY_RULE = ["bench_optim.UpdateStep.track_bandwidth", "bench_optim.StepCeilingShare.track_share",
              "bench_convergence.Convergence.track_final_loss", "bench_convergence.Convergence.track_test_score",
              "bench_convergence.Convergence.track_epochs_to_target",
              "bench_convergence.Convergence.track_seconds_to_target"]
EVERY_DATASET = ["bench_training.Epoch.track_samples_per_second", *EVERY_RULE[2:]]
# The first two time one step over one long vector: they leave out the rules whose state for such a vector would
# not fit (Shampoo's n × n preconditioner, SOAP's bases, PSGD-Kron's factors of a vector up to 8192), which
# benchmarks/scripts/preconditioner_speed.py and kron_speed.py time on network layouts instead.
ONE_VECTOR = EVERY_RULE[:2]


def discover():
    """The suite's benchmarks by name, as asv finds them.

    Importing the suite points NUMBA_CACHE_DIR at the suite's own cache: undone here, it
    would otherwise reach every later test of this process. (Numba, imported above with
    fastgd.optim, has already read it: kernels compiled here go to this test run's cache.)
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT))
        patch.setitem(os.environ, "NUMBA_CACHE_DIR", os.environ.get("NUMBA_CACHE_DIR", ""))
        return {benchmark.name: benchmark for benchmark in disc_benchmarks(BENCHMARK_DIR)}


SUITE = discover()
# what the suite was discovered with: the built-ins, and users' rules registered by then (FASTGD_PLUGINS)
BENCHMARKED_RULES = list(optim.OPTIMIZERS)
CLASSES = sorted({name.rsplit(".", 1)[0] for name in SUITE})


@pytest.fixture(autouse=True)
def restore_meta_path(monkeypatch):
    """get_benchmark_from_name adds an importer to sys.meta_path at every call: asv's one-benchmark processes can
    afford it."""
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))


def parameter_values(benchmark, name):
    """The values of parameter ``name`` as asv records them (their repr)."""
    return set(benchmark.params[benchmark.param_names.index(name)])


def one_vector_rules(names):
    """The rules of ``names`` whose state for one vector of 10³ and of 10⁷ parameters fits."""
    from fastgd import baselines

    return [name for name in names if all(baselines.fits_as_one_vector(name, n) for n in (1_000, 10_000_000))]


def unbenchmarked(names, parameter, required):
    """{benchmark name: the required values its ``parameter`` lacks}, for those that lack some (the one-vector
    benchmarks require only the rules that fit one vector)."""
    missing = {}
    for name in names:
        needed = one_vector_rules(required) if parameter == "rule" and name in ONE_VECTOR else required
        lacking = {value for value in needed if repr(value) not in parameter_values(SUITE[name], parameter)}
        if lacking:
            missing[name] = lacking
    return missing


def test_every_rule_and_bundled_dataset_is_benchmarked():
    assert unbenchmarked(EVERY_RULE, "rule", BENCHMARKED_RULES) == {}
    # the one-vector benchmarks leave out only the matrix preconditioners, whose steps the scripts time on layouts
    assert set(BENCHMARKED_RULES) - set(one_vector_rules(BENCHMARKED_RULES)) <= {"shampoo", "soap", "psgd_kron"}
    assert unbenchmarked(EVERY_DATASET, "dataset", datasets.BUNDLED) == {}


def test_the_guard_sees_a_rule_without_benchmarks():
    rules.register(rules.Rule("newrule", element=rules.get("sgd").element,
                              hyperparameters=rules.get("sgd").hyperparameters, derived=rules.get("sgd").derived,
                              state=rules.get("sgd").state, per_step=rules.get("sgd").per_step))
    try:
        # the registry now holds newrule (other tests' users' rules aside)
        required = [name for name in optim.OPTIMIZERS if name in BENCHMARKED_RULES or name == "newrule"]
        assert unbenchmarked(EVERY_RULE, "rule", required) == {name: {"newrule"} for name in EVERY_RULE}
    finally:
        rules.unregister("newrule")


def smallest_combinations(benchmark):
    """{asv's index: parameter values (reprs)} of the combinations to run; {None: ()} without parameters."""
    if not benchmark.params:
        return {None: ()}
    allowed = [values if name not in SMALLEST else
               [repr(value) for value in SMALLEST[name]] if set(map(repr, SMALLEST[name])) & set(values) else
               values[:1]  # a size-like parameter without the usual smallest value: its first
               for name, values in zip(benchmark.param_names, benchmark.params)]
    return {index: combination for index, combination in enumerate(itertools.product(*benchmark.params))
            if all(value in values for value, values in zip(combination, allowed))}


def run_once(name, index, cache):
    """What asv_runner does for one benchmark and one combination (``-a`` as --quick sets); None when setup skips it."""
    benchmark = get_benchmark_from_name(BENCHMARK_DIR, name if index is None else f"{name}-{index}",
                                        extra_params=QUICK)
    benchmark.set_cache(cache)
    if benchmark.do_setup():
        return None
    try:
        return benchmark.do_run()
    finally:
        benchmark.do_teardown()


def check_result(benchmark, result):
    if benchmark.type == "time":
        assert result["samples"] and all(sample > 0 for sample in result["samples"])
    elif benchmark.type == "peakmemory":
        assert isinstance(result, int) and result > 0
    else:
        assert isinstance(result, (int, float)) and not isinstance(result, bool)
        method = benchmark.name.rsplit(".", 1)[1]
        assert math.isfinite(result) or (method in MAY_BE_NAN and math.isnan(result)), result


@pytest.mark.parametrize("benchmark_class", CLASSES)
def test_every_benchmark_runs_once(benchmark_class, tmp_path, monkeypatch):
    unavailable = set()
    try:
        import torch  # noqa: F401
    except ImportError:
        unavailable |= {"'torch'", "'torch_fused'"}
    try:
        import jax  # noqa: F401
        import optax  # noqa: F401
    except ImportError:
        unavailable.add("'jax'")
    from benchmarks import common

    monkeypatch.setattr(common, "TRACK_SECONDS", 0.0)  # tracks that time something: the fewest calls
    monkeypatch.chdir(tmp_path)  # asv runs setup_cache and its benchmarks in a scratch directory
    names = [name for name in SUITE if name.rsplit(".", 1)[0] == benchmark_class]
    cache = SUITE[names[0]].do_setup_cache()
    for name in names:
        benchmark = SUITE[name]
        combinations = smallest_combinations(benchmark)
        ran = []
        for index, combination in combinations.items():
            result = run_once(name, index, cache)
            if result is not None:
                check_result(benchmark, result)
                ran.append(combination)
        assert ran, f"{name}: setup skipped every combination"
        # every value of every parameter ran in some combination (torch's where torch is installed)
        for position, parameter in enumerate(benchmark.param_names):
            expected = {combination[position] for combination in combinations.values()} - unavailable
            exercised = {combination[position] for combination in ran}
            assert exercised == expected, f"{name}: {parameter} never ran with {expected - exercised}"


@pytest.mark.parametrize("name", ["bench_optim.UpdateStep.track_bandwidth",
                                  "bench_training.Epoch.track_samples_per_second"])
def test_without_torch_its_rows_are_skipped(name, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    monkeypatch.chdir(tmp_path)
    benchmark = SUITE[name]
    cache = benchmark.do_setup_cache()
    position = benchmark.param_names.index("implementation")
    torch_rows = [index for index, combination in smallest_combinations(benchmark).items()
                  if combination[position] in ("'torch'", "'torch_fused'")]
    assert torch_rows and all(run_once(name, index, cache) is None for index in torch_rows[:4])


def test_without_jax_its_rows_are_skipped(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "jax", None)  # import jax now raises ImportError
    monkeypatch.chdir(tmp_path)
    name = "bench_training.NetworkEpoch.track_samples_per_second"
    benchmark = SUITE[name]
    cache = benchmark.do_setup_cache()
    position = benchmark.param_names.index("implementation")
    jax_rows = [index for index, combination in smallest_combinations(benchmark).items()
                if combination[position] == "'jax'"]
    assert jax_rows and all(run_once(name, index, cache) is None for index in jax_rows)


def test_start_workloads_run():
    from benchmarks import common

    for workload, code in common.START_WORKLOADS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as in the benchmark's own process (PYTHONWARNINGS=ignore)
            exec(compile(code, workload, "exec"), {})


def test_the_smallest_network_is_a_network():
    from benchmarks import common

    assert set(SMALLEST["network"]) <= set(common.NETWORKS)
    network_epoch = SUITE["bench_training.NetworkEpoch.track_samples_per_second"]
    assert repr(SMALLEST["network"][0]) in parameter_values(network_epoch, "network")


def test_the_network_labels_are_their_layer_sizes():
    from benchmarks import common

    data = common.load_network_data(SMALLEST["network"][0])
    assert data.X_train.shape == (1347, 64) and data.n_outputs == 10
    for label, network in common.NETWORKS.items():
        sizes, batch_size = label.split()[-1].split("/")
        assert list(map(int, sizes.split("-"))) == network.layer_sizes and int(batch_size) == network.batch_size


@pytest.fixture
def restore_jax_x64():
    """JaxTrainer turns on jax_enable_x64 for the process in float64: off again afterwards, where it was off."""
    try:
        import jax
    except ImportError:
        yield
        return
    before = jax.config.jax_enable_x64
    yield
    jax.config.update("jax_enable_x64", before)


@pytest.mark.parametrize("hidden", [8, (16, 8)], ids=["one_hidden_layer", "two_hidden_layers"])
@pytest.mark.parametrize("implementation", ["jax", "torch", "numpy"])
def test_baseline_trains_as_fastgd_does(implementation, hidden, restore_jax_x64):
    """An honest baseline: from the same weights, with the same loss and Adam, its epoch losses are fastgd's.

    Three epochs from one trainer: a baseline whose optimizer state restarted each epoch (Adam's
    moments and step count) would part from fastgd's losses at the second.

    Full batches, so that each implementation's own shuffling changes only the order of a sum;
    float64, so that the only differences are rounding. fastgd's epoch is the oracle here, itself
    checked against the NumPy reference and torch.optim in test_training.py and test_optim.py.
    """
    if implementation == "jax":
        pytest.importorskip("jax", reason="the jax extra is not installed")
        pytest.importorskip("optax", reason="the jax extra (optax) is not installed")
    elif implementation == "torch":
        pytest.importorskip("torch", reason="the compare extra (torch) is not installed")
    from fastgd import baselines

    data = datasets.load("wine")
    n_samples = data.X_train.shape[0]
    fastgd_losses = baselines.FastgdTrainer(data, "adam", hidden, n_samples, "float64").fit(3)
    baseline = baselines.TRAINERS[implementation](data, "adam", hidden, n_samples, "float64")
    assert baseline.layer_sizes == [13, *([hidden] if isinstance(hidden, int) else hidden), 3]
    losses = baseline.fit(3)
    assert len(losses) == 3 and losses[0] > losses[-1]  # it trains
    np.testing.assert_allclose(losses, fastgd_losses, rtol=1e-9, atol=0)  # they agree to ~4e-16 here


def test_the_last_level_cache_is_read_from_sysfs(tmp_path):
    from fastgd import baselines

    for index, (level, size) in enumerate([(1, "48K"), (2, "2048K"), (3, "260M"), (2, "64K")]):
        directory = tmp_path / f"index{index}"
        directory.mkdir()
        (directory / "level").write_text(f"{level}\n")
        (directory / "size").write_text(f"{size}\n")
    assert baselines.last_level_cache_bytes(tmp_path) == 260 * 2 ** 20
    assert baselines.last_level_cache_bytes(tmp_path / "missing") is None


def test_network_speed_takes_the_gemm_share_against_the_runs_highest_peak_of_its_dtype():
    """A share against a peak measured low overstates itself: each network's share uses the dtype's highest."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("network_speed", ROOT / "benchmarks" / "scripts" / "network_speed.py")
    network_speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(network_speed)
    networks = [dict(dtype="float32", row_peak_flops=2e11, matmul_flops=1e10, seconds={"fastgd": 0.1}),
                dict(dtype="float32", row_peak_flops=3e11, matmul_flops=6e10, seconds={"fastgd": 0.3}),
                dict(dtype="float64", row_peak_flops=1e11, matmul_flops=1e8, seconds={"fastgd": 0.002})]
    network_speed.share_of_the_run_peak(networks)
    assert [network["peak_flops"] for network in networks] == [3e11, 3e11, 1e11]
    assert [network["gemm_share"] for network in networks] == pytest.approx([1 / 3, 2 / 3, 0.5])


def test_network_speed_takes_the_highest_share_and_peer_ratio_from_the_floor():
    """The floor (products and steps alone) caps the share against the run's peak and the ratio to the faster peer."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("network_speed", ROOT / "benchmarks" / "scripts" / "network_speed.py")
    network_speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(network_speed)
    networks = [dict(dtype="float32", row_peak_flops=4e11, matmul_flops=4e10,
                     seconds={"fastgd": 0.4, "torch": 0.9, "jax": 0.6}, floor={"products": 0.2, "steps": 0.05}),
                dict(dtype="float32", row_peak_flops=2e11, matmul_flops=1e10, seconds={"fastgd": 0.1})]
    network_speed.share_of_the_run_peak(networks)
    floor = networks[0]["floor"]
    assert floor["seconds"] == pytest.approx(0.25)
    assert floor["products_share"] == pytest.approx(0.5)  # 4e10 FLOP in 0.2 s against 4e11 FLOP/s
    assert floor["highest_share"] == pytest.approx(0.4)
    assert floor["highest_peer_ratio"] == pytest.approx(0.6 / 0.25)  # the faster peer, JAX
    assert "floor" not in networks[1]


def test_network_speed_names_the_pass_fastgd_took_the_cpu_and_the_load():
    """issue 29: a time of fastgd's means little without the pass that made it (and the CPU and its load)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("network_speed", ROOT / "benchmarks" / "scripts" / "network_speed.py")
    network_speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(network_speed)
    network = dict(label="100-256-256-10/64, float32", dtype="float32", row_peak_flops=2e11, matmul_flops=1e10,
                   seconds={"fastgd": 0.1, "jax": 0.2}, spread={"fastgd": [0.1, 0.1], "jax": [0.2, 0.2]},
                   peak_blas=["mkl"], fastgd_pass=["serial"])
    results = dict(cpus=2, cpu="AMD EPYC", threads="2 Numba threads", networks=[network],
                   load_average=(5.6, 4.3, 5.1), fastgd_pass_setting="auto",
                   fit_fixed_cost=dict(fit=0.02, fixed=0.001, beyond_compiled=0.001), import_numba_seconds=0.2,
                   numba_floor_seconds=0.5, adam_step_seconds=0.56, warm_fit_seconds=0.2)
    network_speed.share_of_the_run_peak(results["networks"])
    text = "\n".join(network_speed.report(results))
    assert "on 2 CPUs, AMD EPYC (2 Numba threads; load average at the start 5.6 / 4.3 / 5.1 (1, 5, 15 min))" in text
    assert "| 100-256-256-10/64, float32 | 100.00 ms (serial) | n/a | n/a | 2.00 |" in text


@pytest.mark.parametrize("arrays", range(1, 6))
def test_the_in_place_streams_add_the_scaled_gradient_to_every_row(arrays):
    # the reference of StepCeilingShare, up to θ and four state arrays (Adan, Prodigy): NumPy's sum is the oracle
    from fastgd.kernels.memory import MAX_STREAMS, in_place_streams

    assert MAX_STREAMS >= arrays
    rng = np.random.default_rng(arrays)
    rows, grad = rng.normal(size=(arrays, 37)).astype(np.float32), rng.normal(size=37).astype(np.float32)
    expected = rows + np.float32(0.5) * grad
    in_place_streams(rows, grad, np.float32(0.5))
    np.testing.assert_array_equal(rows, expected)


def test_lbfgs_steps_make_the_same_evaluations_from_the_same_weights():
    """bench_lbfgs times like for like: fastgd's two forms and torch's step make the same evaluations."""
    pytest.importorskip("torch", reason="torch.optim.LBFGS is the reference")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT))
        from benchmarks import bench_lbfgs

    net, X, Y, start = bench_lbfgs.problem("iris")
    counts = {name: step(net, X, Y, start) for name, step in bench_lbfgs.STEPS.items()}
    assert len(set(counts.values())) == 1 and counts["torch"] > bench_lbfgs.ITERATIONS, counts


def test_preconditioner_floors_count_each_steps_arithmetic():
    """The floors' arithmetic on a tiny layout, counted by hand: a 4 × 6 matrix (both sides: 4²·6 + 4·6² = 240
    FLOPs) and a vector of 4, on a machine of one FLOP a second; eigendecompositions and QRs count nothing."""
    import importlib.util

    path = ROOT / "benchmarks" / "scripts" / "preconditioner_floors.py"
    spec = importlib.util.spec_from_file_location("preconditioner_floors", path)
    floors = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(floors)

    class Machine:
        rate = 1.0

    layout, machine = [(4, 6), (4,)], Machine()
    expected = {
        "Shampoo, statistics": 3 * 240 + 3 * 16,  # the vector: g gᵀ and L̃ g
        "Shampoo, roots": 3 * 240 + 3 * 16 + (4 ** 3 + 6 ** 3 + 4 ** 3),  # and V D Vᵀ per side
        "SOAP, Adam": 5 * 240,  # a vector is not rotated by default
        "SOAP, refresh": 7 * 240 + 2 * (4 ** 3 + 6 ** 3),
        "Kron, precondition only": 2 * 240,
        "Kron, update": 6 * 240 + 2 * (4 ** 3 + 6 ** 3) / 3,
    }
    assert set(expected) == set(floors.FLOORS)
    for kind, seconds in expected.items():
        assert floors.floor_seconds(layout, kind, machine) == pytest.approx(seconds), kind
    # a side of 1 is diagonal in Kron: a 1 × 6 matrix has only its right side's products
    assert floors.floor_seconds([(1, 6)], "Kron, precondition only", machine) == pytest.approx(2 * 36)
