"""The pass an MLP batch takes: FASTGD_PASS forcing one, and the calibration (fastgd.calibration) choosing and
caching one, with a fake clock: which candidate is fastest is the test's to say, never the machine's."""

import contextlib
import json

import numpy as np
import pytest

from fastgd import MLP, _config, calibration, optim
from fastgd.kernels import mkl
from fastgd.kernels import train as train_kernels
from fastgd.training import Training
from tests.cli_harness import assert_refused, run_command

needs_mkl = pytest.mark.skipif(not mkl.available(), reason="MKL is not installed (pip install 'fastgd[mkl]')")

REAL_CANDIDATES, REAL_CPU_MODEL = calibration.candidates, calibration.cpu_model
LARGE = [100, 256, 256, 10]  # 64 rows: 6·10⁶ multiply-adds a batch, where training asks the calibration


class FakeClock:
    """A clock that moves only when a fake pass runs: by that candidate's seconds for the round."""

    def __init__(self, seconds_by_round):
        self.now, self.seconds_by_round, self.calls = 0.0, seconds_by_round, []
        self.sleeps = []  # (number of calls before it, seconds)

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append((len(self.calls), seconds))
        self.now += seconds

    def prepare(self, name, problem, n_rows, n_threads):
        def run():
            self.calls.append(name)
            runs = self.calls.count(name)  # the first is the warm-up, outside the clock's rounds
            series = self.seconds_by_round[name]
            self.now += series[(runs - 1) % len(series)]

        return run, contextlib.nullcontext


@pytest.fixture
def generated(tmp_path, monkeypatch):
    """Calibrations cached in a fresh directory (FASTGD_GENERATED_DIR), FASTGD_PASS=auto."""
    monkeypatch.setenv("FASTGD_GENERATED_DIR", str(tmp_path))
    monkeypatch.setattr(_config, "PASS", "auto")
    return tmp_path


@pytest.fixture
def fake(generated, monkeypatch):
    """Three candidates that run nowhere: blocks the fastest by its median, with one slow outlier round (its
    warm-up takes the series' first entry, each round then four: one untimed, three timed; the third round's are
    slow)."""
    clock = FakeClock({"serial": [3e-3], "blocks": [2e-3] * 9 + [9e-3] * 3, "whole_batch_mkl": [2.5e-3]})
    monkeypatch.setattr(calibration, "clock", clock)
    monkeypatch.setattr(calibration, "sleep", clock.sleep)
    monkeypatch.setattr(calibration, "_prepare", clock.prepare)
    monkeypatch.setattr(calibration, "BLOCK_SECONDS", 0.0)  # CONSECUTIVE_BATCHES timed batches a round
    monkeypatch.setattr(calibration, "candidates", lambda n_rows, n_threads: ["serial", "blocks", "whole_batch_mkl"])
    return clock


def test_the_fastest_candidate_by_its_median_is_chosen_within_the_budget(fake):
    choice = calibration.calibrate(LARGE, 64, np.float32, 2, budget_seconds=0.5)
    assert choice.chosen == "blocks"
    assert choice.seconds == pytest.approx({"serial": 3e-3, "blocks": 2e-3, "whole_batch_mkl": 2.5e-3})
    # warmed up once each, serial first; then rounds of each candidate in turn, serial last: one untimed batch, then
    # CONSECUTIVE_BATCHES timed ones
    run = 1 + calibration.CONSECUTIVE_BATCHES
    assert fake.calls[:3] == ["serial", "blocks", "whole_batch_mkl"]
    assert fake.calls[3:3 + 3 * run] == ["blocks"] * run + ["whole_batch_mkl"] * run + ["serial"] * run
    assert fake.calls.count("serial") == 1 + choice.rounds * run and choice.rounds >= calibration.MIN_ROUNDS
    # OpenBLAS's threads are left to go quiet after serial before another candidate runs, and the others' OpenMP
    # threads before serial runs
    quiet, openmp = calibration.OPENBLAS_QUIET_SECONDS, calibration.OPENMP_QUIET_SECONDS
    assert fake.sleeps == [(1, quiet)] + [
        wait for k in range(choice.rounds)
        for wait in ([(3 + k * 3 * run + 2 * run, openmp)] + ([(3 + (k + 1) * 3 * run, quiet)]
                                                              if k + 1 < choice.rounds else []))]
    # the rounds go on until the budget has passed, the next round's wait counted: one round over it at most
    timed = fake.now - (3e-3 + quiet + 2e-3 + 2.5e-3)  # less the warm-up calls and their wait
    assert choice.rounds > calibration.MIN_ROUNDS and timed + quiet >= 0.5
    assert choice.rounds >= 3 and timed - quiet - openmp - run * (3e-3 + 9e-3 + 2.5e-3) < 0.5


def test_a_pass_timed_in_turn_with_others_is_timed_over_consecutive_batches(generated, monkeypatch):
    """A candidate's first batch after another's is slow (its threads wake, the other's still spin): it runs
    untimed, and the consecutive batches after it are timed together, as an epoch sums them."""
    # series of 1 + CONSECUTIVE_BATCHES: every round's untimed batch takes the slow entry after the warm-up's, its
    # timed batches the others, one of them slow: a wait for a core, which the time a batch keeps
    clock = FakeClock({"serial": [1e-3, 9e-3, 4e-3, 1e-3], "whole_batch_mkl": [2e-3, 9e-3, 5e-3, 2e-3]})
    monkeypatch.setattr(calibration, "clock", clock)
    monkeypatch.setattr(calibration, "sleep", clock.sleep)
    monkeypatch.setattr(calibration, "_prepare", clock.prepare)
    monkeypatch.setattr(calibration, "candidates", lambda n_rows, n_threads: ["serial", "whole_batch_mkl"])
    monkeypatch.setattr(calibration, "BLOCK_SECONDS", 0.0)
    assert calibration.CONSECUTIVE_BATCHES == 3
    seconds, rounds = calibration.measure(LARGE, 64, np.float32, 2, budget_seconds=0.0, min_rounds=3)
    # with the untimed batches, 3.75e-3 and 4.5e-3; a median over batches, 1e-3 and 2e-3
    assert rounds == 3 and seconds == pytest.approx({"serial": 2e-3, "whole_batch_mkl": 3e-3})


def test_a_short_batch_is_timed_in_a_block_of_about_block_seconds(generated, monkeypatch):
    """A block shorter than a few scheduler ticks may miss every wait for a core: short batches are timed in
    blocks of about BLOCK_SECONDS, by the untimed batch's time, long ones CONSECUTIVE_BATCHES at a time."""
    clock = FakeClock({"serial": [1e-3], "whole_batch_mkl": [0.5]})
    monkeypatch.setattr(calibration, "clock", clock)
    monkeypatch.setattr(calibration, "sleep", clock.sleep)
    monkeypatch.setattr(calibration, "_prepare", clock.prepare)
    monkeypatch.setattr(calibration, "candidates", lambda n_rows, n_threads: ["serial", "whole_batch_mkl"])
    monkeypatch.setattr(calibration, "BLOCK_SECONDS", 0.01)
    seconds, rounds = calibration.measure(LARGE, 64, np.float32, 2, budget_seconds=0.0, min_rounds=1)
    assert rounds == 1 and seconds == pytest.approx({"serial": 1e-3, "whole_batch_mkl": 0.5})
    assert clock.calls.count("serial") == 1 + 1 + 10  # warm-up, the untimed batch, then 0.01 s of 1 ms batches
    assert clock.calls.count("whole_batch_mkl") == 1 + 1 + calibration.CONSECUTIVE_BATCHES  # warm-up, untimed


def test_at_least_two_rounds_and_at_most_max_rounds(fake):
    assert calibration.calibrate(LARGE, 64, np.float32, 2, budget_seconds=1e-9).rounds == calibration.MIN_ROUNDS
    assert calibration.calibrate(LARGE, 64, np.float32, 2, budget_seconds=1e9).rounds == calibration.MAX_ROUNDS


def test_the_cache_is_read_back_and_keyed_by_machine_shapes_dtype_threads_and_libraries(fake, generated):
    import numba
    import scipy

    choice = calibration.calibrate(LARGE, 64, np.float32, 2)
    assert calibration.cached(LARGE, 64, np.float32, 2) == choice
    assert calibration.cached_choices() == [choice]
    [entry] = json.loads((generated / "pass_choices.json").read_text())["entries"].values()
    assert entry["chosen"] == "blocks" and entry["seconds"] == pytest.approx(choice.seconds)
    assert entry["key"] == {"cpu": calibration.cpu_model(), "layer_sizes": LARGE, "batch_rows": 64,
                            "dtype": "float32", "threads": 2, "threading_layer": numba.threading_layer(),
                            "numba": numba.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
                            "mkl": mkl.version()}
    for other in ((LARGE, 32, np.float32, 2), (LARGE, 64, np.float64, 2), (LARGE, 64, np.float32, 1),
                  ([100, 256, 10], 64, np.float32, 2)):
        assert calibration.cached(*other) is None, other


def test_a_changed_key_measures_again_and_keeps_the_other(fake, monkeypatch):
    first = calibration.calibrate(LARGE, 64, np.float32, 2)
    runs = len(fake.calls)
    monkeypatch.setattr(calibration, "cpu_model", lambda: "another CPU")
    assert calibration.cached(LARGE, 64, np.float32, 2) is None
    fake.seconds_by_round["serial"] = [1e-3]  # serial is the fastest on the other CPU
    second = calibration.calibrate(LARGE, 64, np.float32, 2)
    assert len(fake.calls) > runs and second.chosen == "serial" and second.key["cpu"] == "another CPU"
    assert calibration.cached(LARGE, 64, np.float32, 2) == second
    monkeypatch.setattr(calibration, "cpu_model", REAL_CPU_MODEL)
    assert calibration.cached(LARGE, 64, np.float32, 2) == first
    assert len(calibration.cached_choices()) == 2


ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx fma avx2 bmi2

processor\t: 1
model name\t: AMD EPYC
"""


def test_two_cpus_a_virtual_machine_names_alike_are_told_apart():
    # this project's machines are both "AMD EPYC" in /proc/cpuinfo: a Zen 3 without AVX-512 and a Zen 4 with it,
    # whose fastest passes differ; a calibration cached on one must not be taken on the other
    from fastgd.machine import describe_cpu

    zen4 = ZEN3.replace("model\t\t: 1", "model\t\t: 17").replace("avx2 bmi2", "avx2 bmi2 avx512f avx512bw")
    assert describe_cpu(ZEN3) == "AMD EPYC (family 25 model 1; AVX2, no AVX-512)"
    assert describe_cpu(zen4) == "AMD EPYC (family 25 model 17; AVX-512)"
    assert describe_cpu("processor\t: 0\nmodel name\t: Some CPU\n") == "Some CPU"
    assert describe_cpu("processor\t: 0\nBogoMIPS\t: 50.00\n") is None  # no model name (some ARM kernels)


def test_an_unreadable_cache_is_no_cache_and_is_written_over(fake, generated):
    (generated / "pass_choices.json").write_text("{not json")
    assert calibration.cached_choices() == []
    choice = calibration.calibrate(LARGE, 64, np.float32, 2)
    assert calibration.cached_choices() == [choice]


@needs_mkl
def test_training_takes_the_cached_choice_and_fastgd_pass_overrides_it(fake, monkeypatch):
    """Where no calibration is cached, the fixed bounds (the whole batch on MKL's threads, where they are Numba's);
    then the calibrated choice; FASTGD_PASS over both."""
    assert calibration.training_pass(LARGE, 64, np.float32, 2) == ("whole_batch_mkl", train_kernels.WHOLE_BATCH_ON_MKL)
    calibration.calibrate(LARGE, 64, np.float32, 2)  # blocks, by the fake clock
    monkeypatch.setattr(calibration, "candidates", REAL_CANDIDATES)  # the choice must be one that can run here
    assert calibration.training_pass(LARGE, 64, np.float32, 2) == ("blocks", 2)
    assert calibration.training_pass(LARGE, 64, np.float64, 2) == ("whole_batch_mkl", 0)  # not calibrated
    assert calibration.training_pass(LARGE, 8, np.float32, 2) == ("serial", 1)  # 757,760 multiply-adds: serial
    monkeypatch.setattr(_config, "PASS", "serial")
    assert calibration.training_pass(LARGE, 64, np.float32, 2) == ("serial", 1)
    monkeypatch.setattr(_config, "PASS", "whole_batch_mkl")
    assert calibration.training_pass([4, 3, 2], 8, np.float64, 2) == ("whole_batch_mkl", 0)


@needs_mkl
def test_a_training_runs_the_cached_choice(fake):
    fake.seconds_by_round["serial"] = [1e-3]
    calibration.calibrate(LARGE, 64, np.float64, 2)
    net = MLP(LARGE, dtype=np.float64)
    X = np.random.default_rng(0).standard_normal((64, 100))
    Y = np.eye(10)[np.arange(64) % 10]
    training = Training(net, optim.SGD(net.init(random_state=0), lr=0.1), X, Y, 64)
    with calibration.threads.limit(2):
        assert training.pass_name == "serial" and not training.threaded
        training.run(1)
    assert np.isfinite(training.history.loss).all()


def test_one_thread_is_a_candidate_from_two_threads_and_can_be_the_cached_choice(fake, monkeypatch):
    assert REAL_CANDIDATES(64, 1) == ["serial"]  # on one thread the one_thread pass is the serial pass
    assert REAL_CANDIDATES(64, 2)[:2] == ["serial", "one_thread"]
    monkeypatch.setattr(calibration, "candidates", lambda n_rows, n_threads: ["serial", "one_thread"])
    fake.seconds_by_round.update(serial=[9e-3], one_thread=[1e-3])  # a busy machine
    assert calibration.calibrate(LARGE, 64, np.float64, 2).chosen == "one_thread"
    monkeypatch.setattr(calibration, "candidates", REAL_CANDIDATES)
    assert calibration.training_pass(LARGE, 64, np.float64, 2) == ("one_thread", 1)


def test_the_one_thread_pass_runs_each_epoch_on_one_thread_and_trains_as_the_serial_pass(generated, monkeypatch):
    import numba

    from fastgd import threads

    real_limit, seen = threads.limit, []

    @contextlib.contextmanager
    def recording_limit(n_threads):
        with real_limit(n_threads):
            seen.append((n_threads, numba.get_num_threads()))
            yield

    net = MLP([12, 40, 40, 5], dtype=np.float64)
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((300, 12)), np.eye(5)[rng.integers(0, 5, 300)]
    results = {}
    for name in ("serial", "one_thread"):
        monkeypatch.setattr(_config, "PASS", name)
        monkeypatch.setattr(threads, "limit", recording_limit)
        training = Training(net, optim.Adam(net.init(random_state=1), lr=1e-2), X, Y, 64, seed=3)
        with real_limit(2):
            assert training.pass_name == name and not training.threaded
            results[name] = (training.run(3).loss, training.theta.copy())
            assert numba.get_num_threads() == 2  # the count set, back after each epoch
    assert seen == [(1, 1)] * 3  # the one_thread pass's three epochs, none of the serial pass's
    np.testing.assert_allclose(results["one_thread"][0], results["serial"][0], rtol=1e-12)
    np.testing.assert_allclose(results["one_thread"][1], results["serial"][1], rtol=1e-10, atol=1e-14)


def test_fastgd_pass_refuses_a_pass_that_cannot_run_here_in_one_line(generated, monkeypatch):
    monkeypatch.setattr(mkl, "_state", {"error": "MKL is not installed: pip install \"fastgd[mkl]\" (the mkl wheel)"})
    monkeypatch.setattr(_config, "PASS", "whole_batch_mkl")
    with pytest.raises(_config.SettingError) as error:
        calibration.training_pass(LARGE, 64, np.float32, 2)
    assert str(error.value) == ('FASTGD_PASS=whole_batch_mkl: the whole_batch_mkl pass cannot run here: MKL is not '
                                'installed: pip install "fastgd[mkl]" (the mkl wheel)')
    monkeypatch.setattr(_config, "PASS", "serial")  # the serial pass runs everywhere
    assert calibration.training_pass(LARGE, 64, np.float32, 2) == ("serial", 1)


@needs_mkl
def test_the_blocks_pass_needs_two_threads_and_two_rows():
    with pytest.raises(train_kernels.PassUnavailable, match="^the blocks pass cannot run here: it needs 2 threads"):
        train_kernels.pass_blocks("blocks", 64, 1)
    with pytest.raises(train_kernels.PassUnavailable, match="one row a batch cannot be split"):
        train_kernels.pass_blocks("blocks", 1, 2)
    assert train_kernels.pass_blocks("blocks", 64, 2) == 2
    with pytest.raises(train_kernels.PassUnavailable, match="unknown pass 'fastest'"):
        train_kernels.pass_blocks("fastest", 64, 2)


def test_fastgd_pass_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("FASTGD_PASS", " Serial ")
    assert _config._env_choice("FASTGD_PASS", "auto", ("auto",) + _config.PASSES) == "serial"
    monkeypatch.setenv("FASTGD_PASS", "fastest")
    with pytest.raises(_config.SettingError, match="^FASTGD_PASS must be one of auto, serial, one_thread, "
                                                   "blocks, whole_batch_mkl, got 'fastest'$"):
        _config._env_choice("FASTGD_PASS", "auto", ("auto",) + _config.PASSES)


def test_a_real_calibration_times_every_candidate_that_can_run_here(generated):
    """Not a timing test: only that every candidate ran, was timed and the fastest cached."""
    choice = calibration.calibrate([20, 64, 64, 4], 32, np.float64, 2, budget_seconds=0.01)
    assert set(choice.seconds) == set(calibration.candidates(32, 2)) and "serial" in choice.seconds
    assert all(np.isfinite(seconds) and seconds > 0 for seconds in choice.seconds.values())
    assert choice.chosen == min(choice.seconds, key=choice.seconds.get)
    assert calibration.MIN_ROUNDS <= choice.rounds <= calibration.MAX_ROUNDS
    assert calibration.cached([20, 64, 64, 4], 32, np.float64, 2) == choice


# -- the command --------------------------------------------------------------------------------

def test_fastgd_calibrate_prints_every_candidate_and_the_choice_and_info_shows_it(fake, tmp_path):
    code, out, err = run_command(["calibrate", "--network", "100-256-256-10", "--batch-size", "64", "--dtype",
                                  "float32", "--threads", "2"], tmp_path)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("calibrating 100-256-256-10/64 float32 on 2 threads (")
    assert lines[0].endswith("): serial, blocks, whole_batch_mkl")
    assert lines[1].split() == ["blocks", "2.000", "ms", "per", "batch", "1.00×", "the", "fastest"]
    assert lines[2].split()[:2] == ["whole_batch_mkl", "2.500"] and lines[3].split()[:2] == ["serial", "3.000"]
    assert lines[4].startswith("chosen: blocks (medians of ")
    code, out, err = run_command(["info"], tmp_path)
    assert code == 0
    info = out.splitlines()
    at = next(index for index, line in enumerate(info) if line.startswith("mlp pass (FASTGD_PASS)"))
    assert info[at].startswith("mlp pass (FASTGD_PASS): auto; calibrated choices (") and info[at].endswith(": 1")
    assert info[at + 1].startswith("  100-256-256-10/64 float32, 2 threads: blocks (per batch: blocks 2.000 ms, "
                                   "whole_batch_mkl 2.500 ms, serial 3.000 ms; measured ")
    assert info[at + 2].startswith("adapting to the load (FASTGD_ADAPT): ")


def test_fastgd_info_says_when_nothing_is_calibrated(generated, tmp_path):
    code, out, _ = run_command(["info"], tmp_path)
    assert out.splitlines()[-3].endswith("calibrated choices (" + str(generated / "pass_choices.json")
                                         + "): none (fastgd calibrate measures them)")
    assert out.splitlines()[-1] == f"last switches of pass while training ({generated / 'pass_switches.json'}): none"


@pytest.mark.parametrize("arguments, message", [
    (["--network", "100-x-10"], "argument --network: expected layer sizes joined by dashes"),
    (["--network", "100"], "argument --network: expected layer sizes joined by dashes"),
    (["--batch-size", "0"], "argument --batch-size"),
    (["--threads", "100000"], "--threads: at most"),
    (["--dtype", "float16"], "argument --dtype: invalid choice"),
])
def test_fastgd_calibrate_refuses_bad_input_in_one_line(generated, tmp_path, arguments, message):
    assert_refused(["calibrate", *arguments], tmp_path, message)
    assert not (generated / "pass_choices.json").exists()


@pytest.mark.parametrize("arguments, message", [
    (dict(n_rows=0), "n_rows: expected a positive integer, got 0"),
    (dict(n_rows=1.5), "n_rows: expected a positive integer, got 1.5"),
    (dict(layer_sizes=[100]), "layer_sizes: expected two or more positive integers"),
    (dict(layer_sizes=[100, 0, 10]), "layer_sizes: expected two or more positive integers"),
    (dict(layer_sizes="100-10"), "layer_sizes: expected two or more positive integers"),
    (dict(dtype=np.int32), "dtype: the MLP passes run in float32 or float64"),
    (dict(dtype="float16"), "dtype: the MLP passes run in float32 or float64"),
    (dict(dtype="nonsense"), "dtype: the MLP passes run in float32 or float64"),
    (dict(dtype=None), "dtype: the MLP passes run in float32 or float64"),
    (dict(n_threads=0), "n_threads: expected a positive integer, got 0"),
    (dict(n_threads=100000), "n_threads: at most"),
    (dict(budget_seconds=float("nan")), "budget_seconds: expected a number of seconds, 0 or more"),
    (dict(budget_seconds=-1), "budget_seconds: expected a number of seconds, 0 or more"),
    (dict(layer_sizes=[10 ** 6, 10 ** 6, 10]), "needs about"),
])
@pytest.mark.parametrize("function", [calibration.calibrate, calibration.measure])
def test_the_python_calibration_refuses_bad_input_in_one_line_before_measuring(fake, generated, function, arguments,
                                                                               message):
    given = dict(layer_sizes=LARGE, n_rows=64, dtype="float32", n_threads=1, budget_seconds=0.2) | arguments
    with pytest.raises(ValueError) as refused:
        function(**given)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert fake.calls == []  # nothing ran
    assert not (generated / "pass_choices.json").exists()


@pytest.mark.parametrize("env, message", [
    ({"FASTGD_PASS": "fastest"}, "environment: FASTGD_PASS must be one of auto, serial, one_thread, blocks, "
                                 "whole_batch_mkl, got 'fastest'"),
    pytest.param({"FASTGD_PASS": "blocks", "FASTGD_NUM_THREADS": "1"},
                 "environment: FASTGD_PASS=blocks: the blocks pass cannot run here: it needs 2 threads or more, "
                 "fastgd has 1", marks=needs_mkl),
])
def test_a_bad_or_impossible_fastgd_pass_is_refused_in_one_line(tmp_path, env, message):
    assert_refused(["train", "--dataset", "iris", "--epochs", "1"], tmp_path, message, env=env, in_process=False)
