"""A training adapting its pass to the load (fastgd.calibration.PassAdaptation, FASTGD_ADAPT): the decisions from
made-up epoch times, then trainings on a machine made to look busy by a fake clock (fastgd.training.clock)."""

import numba
import numpy as np
import pytest

from fastgd import _config, calibration, optim, threads, training
from fastgd.calibration import FALLBACK_PASS, MAX_PROBE_INTERVAL, PROBE_SHARE, SWITCH_MARGIN, PassAdaptation
from fastgd.kernels import mkl
from fastgd.models import MLP
from fastgd.training import Training

THREADED = "whole_batch_mkl"  # the name only: the decisions run no pass


def _run(adaptation, seconds_of, n_epochs):
    """Feed ``n_epochs`` epochs to ``adaptation``, each taking ``seconds_of(epoch, name)``; the passes run, and the
    switch lines returned."""
    passes, lines = [], []
    for epoch in range(n_epochs):
        name = adaptation.next_pass()
        passes.append(name)
        line = adaptation.record(name, seconds_of(epoch, name))
        if line is not None:
            lines.append(line)
    return passes, lines


def test_a_busy_machine_moves_to_one_thread_after_one_probe_and_tries_back_within_the_share():
    """2 s an epoch on two threads, 0.5 s on one: the first probe (epoch 2) switches; the threaded pass is tried
    again only once its predicted extra 1.5 s fits in PROBE_SHARE of the seconds so far."""
    adaptation = PassAdaptation(THREADED)
    passes, lines = _run(adaptation, lambda epoch, name: 2.0 if name == THREADED else 0.5, 200)
    assert passes[:3] == [THREADED, FALLBACK_PASS, FALLBACK_PASS]
    assert lines[0] == f"epoch 2: {FALLBACK_PASS} took 500 ms an epoch, {THREADED} 2000 ms: {FALLBACK_PASS} from here"
    # the first re-probe: the first epoch after which 1.5 s ≤ share × (2.5 s + 0.5 s × the one-thread epochs since)
    since = next(k for k in range(1, 1000) if 1.5 <= PROBE_SHARE * (2.5 + 0.5 * k))
    assert passes.index(THREADED, 1) == 2 + since
    assert len(lines) == 1  # the probes of the threaded pass lost, as they should
    cost = sum(2.0 - 0.5 for name in passes[1:] if name == THREADED)
    assert cost <= PROBE_SHARE * sum(2.0 if name == THREADED else 0.5 for name in passes)


def test_a_quiet_machine_stays_threaded_and_its_probes_cost_at_most_the_share():
    adaptation = PassAdaptation(THREADED)
    passes, lines = _run(adaptation, lambda epoch, name: 0.10 if name == THREADED else 0.15, 2000)
    probes = [epoch for epoch, name in enumerate(passes) if name == FALLBACK_PASS]
    assert lines == [] and probes[0] == 1
    later_cost = 0.05 * (len(probes) - 1)  # the first probe is free of the budget
    assert later_cost <= PROBE_SHARE * (0.10 * passes.count(THREADED) + 0.15 * len(probes))
    assert len(probes) >= 2000 // (4 * MAX_PROBE_INTERVAL)  # it keeps looking, the gaps bounded
    assert max(np.diff(probes)) <= 2 * MAX_PROBE_INTERVAL


@pytest.mark.parametrize("faster_by, switches", [(0.9 * SWITCH_MARGIN, False), (1.5 * SWITCH_MARGIN, True)])
def test_the_other_pass_must_be_faster_by_the_margin(faster_by, switches):
    adaptation = PassAdaptation(THREADED)
    _run(adaptation, lambda epoch, name: 1.0 if name == THREADED else 1.0 - faster_by, 2)
    assert (adaptation.current == FALLBACK_PASS) == switches


def test_load_arriving_later_is_noticed_within_the_probe_interval():
    """Quiet for 300 epochs (the probe interval grown to its most), then the threaded pass slows tenfold."""
    adaptation = PassAdaptation(THREADED)
    passes, lines = _run(adaptation, lambda epoch, name: (0.1 if epoch < 300 else 1.0) if name == THREADED else 0.15,
                         400)
    assert len(lines) == 1
    switched = 1 + int(lines[0].split(":")[0].removeprefix("epoch "))  # the first epoch on one thread
    assert 300 < switched <= 300 + MAX_PROBE_INTERVAL + 2
    # from there on one thread, but for the probes of the threaded pass the share allows (each lost)
    rest = passes[switched - 1:]
    assert rest[0] == FALLBACK_PASS and rest.count(THREADED) <= len(rest) // MAX_PROBE_INTERVAL + 1


def test_a_busy_spell_that_ends_brings_the_threaded_pass_back():
    adaptation = PassAdaptation(THREADED)
    passes, lines = _run(adaptation, lambda epoch, name: (1.0 if epoch < 20 else 0.1) if name == THREADED else 0.15,
                         3000)
    assert len(lines) == 2 and passes[-1] == THREADED
    assert lines[1].endswith(f"{THREADED} from here")


def test_a_probe_of_batches_before_the_first_epoch_starts_a_busy_machine_on_one_thread():
    """20 ms a batch threaded, 2 ms on one thread, 100 batches an epoch: one thread from the first epoch, and the
    threaded pass, predicted at 2 s an epoch, probed again only once its extra 1.7 s fit in the share."""
    adaptation = PassAdaptation(THREADED)
    line = adaptation.start({THREADED: 0.020, FALLBACK_PASS: 0.002}, 100)
    assert line == f"before epoch 1: {FALLBACK_PASS} took 2 ms a batch, {THREADED} 20 ms: {FALLBACK_PASS} from here"
    assert adaptation.changes == [line]
    passes, lines = _run(adaptation, lambda epoch, name: 2.0 if name == THREADED else 0.3, 200)
    since = next(k for k in range(1, 1000) if 2.0 - 0.3 <= PROBE_SHARE * 0.3 * k)
    assert passes.index(THREADED) == since and lines == []


def test_a_probe_of_batches_on_a_quiet_machine_keeps_the_pass_and_spares_the_first_epoch_probe():
    adaptation = PassAdaptation(THREADED)
    assert adaptation.start({THREADED: 0.0010, FALLBACK_PASS: 0.0015}, 100) is None
    passes, _ = _run(adaptation, lambda epoch, name: 0.11 if name == THREADED else 0.17, 40)
    # its epoch predicted from its batches: 0.15 s, 0.04 s more than the threaded pass's
    since = next(k for k in range(1, 1000) if 0.15 - 0.11 <= PROBE_SHARE * 0.11 * k)
    assert passes.index(FALLBACK_PASS) == since  # not epoch 2: the batches told its time


def test_refusals():
    with pytest.raises(ValueError, match="nothing to adapt between"):
        PassAdaptation(FALLBACK_PASS)
    with pytest.raises(ValueError, match="share and margin must be in"):
        PassAdaptation(THREADED, share=1.5)
    with pytest.raises(ValueError, match="is neither"):
        PassAdaptation(THREADED).record("blocks", 1.0)


def test_which_trainings_adapt(monkeypatch):
    monkeypatch.setattr(_config, "ADAPT", True)
    monkeypatch.setattr(_config, "PASS", "auto")
    assert calibration.adapts(THREADED, 2) and calibration.adapts("serial", 2)  # the serial pass on BLAS's threads
    assert not calibration.adapts(THREADED, 1) and not calibration.adapts(FALLBACK_PASS, 2)
    monkeypatch.setattr(_config, "PASS", THREADED)  # FASTGD_PASS keeps the pass, and so the bits
    assert not calibration.adapts(THREADED, 2)
    monkeypatch.setattr(_config, "PASS", "auto")
    monkeypatch.setattr(_config, "ADAPT", False)  # FASTGD_ADAPT=0
    assert not calibration.adapts(THREADED, 2)


# ------------------------------------------------------------------------------------------ trainings, made busy

needs_two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                       reason="Numba started one thread here (one core): no threaded pass to leave")


class BusyClock:
    """A machine where anything on two threads or more is ten times slower: each reading advances 1 s while Numba
    runs more than one thread (the threaded pass), 0.1 s while it runs one (the one-thread pass)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 1.0 if numba.get_num_threads() > 1 else 0.1
        return self.now


class QuietClock:
    """A machine where two threads are twice as fast as one: each reading advances 0.05 s while Numba runs more
    than one thread, 0.1 s while it runs one."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 0.05 if numba.get_num_threads() > 1 else 0.1
        return self.now


def per_batch(clock):
    """``clock`` as the probe of batches reads it: it times CONSECUTIVE_BATCHES batches with two readings, so each
    reading advances it as many steps (a step a batch, as an epoch's clock advances one step an epoch)."""
    return lambda: [clock() for _ in range(calibration.CONSECUTIVE_BATCHES)][-1]


def _problem():
    # 128 rows × (64·128 + 128·10) = 1.2 million multiply-adds a batch: past THREADED_MIN_MULTIPLY_ADDS
    net = MLP([64, 128, 10], "relu", "softmax", alpha=1e-4)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((256, 64))
    Y = np.eye(10)[(X[:, :10].argmax(axis=1))]
    return net, X, Y


def _train(net, X, Y, n_epochs):
    run = Training(net, optim.Adam(net.init(random_state=2), lr=1e-2), X, Y, 128, seed=1)
    run.run(n_epochs)
    return run


@pytest.fixture
def adapting(monkeypatch, tmp_path):
    """FASTGD_ADAPT on, FASTGD_PASS auto, no calibration cached, and the busy clock."""
    monkeypatch.setenv("FASTGD_GENERATED_DIR", str(tmp_path))
    monkeypatch.setattr(_config, "ADAPT", True)
    monkeypatch.setattr(_config, "PASS", "auto")
    busy = BusyClock()
    monkeypatch.setattr(training, "clock", busy)
    monkeypatch.setattr(calibration, "clock", per_batch(busy))  # the probe of batches before the first epoch


@needs_two_threads
def test_a_busy_training_starts_on_one_thread_and_trains_as_one_thread_does(adapting, monkeypatch):
    net, X, Y = _problem()
    adapted = _train(net, X, Y, 6)
    chosen = calibration.training_pass(net.layer_sizes, 128, net.dtype, 2)[0]
    assert adapted.history.passes == [FALLBACK_PASS] * 6
    assert adapted.history.pass_changes == [f"before epoch 1: {FALLBACK_PASS} took 100 ms a batch, {chosen} 1000 ms: "
                                            f"{FALLBACK_PASS} from here"]
    assert adapted.pass_name == FALLBACK_PASS and not adapted.threaded
    assert adapted.describe_passes() == (f"passes: {FALLBACK_PASS} (epochs 1-6); {adapted.history.pass_changes[0]} "
                                         f"(adapting to the load: {FALLBACK_PASS} against {chosen})")
    assert adapted.history.seconds == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    # six epochs on one thread, forced: the same training, bit for bit
    monkeypatch.setattr(_config, "PASS", FALLBACK_PASS)
    one_thread = _train(net, X, Y, 6)
    assert one_thread.history.passes == [FALLBACK_PASS] * 6 and one_thread.history.pass_changes == []
    np.testing.assert_array_equal(adapted.theta, one_thread.theta)
    assert adapted.history.loss == one_thread.history.loss and adapted.history.loss[-1] < adapted.history.loss[0]


@needs_two_threads
@pytest.mark.skipif(not mkl.available(), reason="MKL is not installed (pip install 'fastgd[mkl]'): one threaded pass")
@pytest.mark.parametrize("calibrated", [False, True])
def test_with_nothing_calibrated_a_training_weighs_both_threaded_passes_and_keeps_the_faster(adapting, monkeypatch,
                                                                                             calibrated):
    net, X, Y = _problem()
    chosen = calibration.training_pass(net.layer_sizes, 128, net.dtype, 2)[0]
    other = {"whole_batch_mkl": "serial", "serial": "whole_batch_mkl"}[chosen]
    if calibrated:  # `fastgd calibrate` chose `chosen`: the training trusts it and weighs it against one thread only
        choice = calibration.Choice({}, chosen, {chosen: 2e-3, other: 1e-3}, 2, "2026-12-07T00:00:00+00:00")
        monkeypatch.setattr(calibration, "cached", lambda *key: choice)
    asked = []

    def measure(layer_sizes, n_rows, dtype, n_threads, budget_seconds, names, min_rounds):
        asked.append(list(names))
        return {chosen: 2e-3, other: 1e-3, FALLBACK_PASS: 3e-3}, 1

    monkeypatch.setattr(calibration, "measure", measure)
    run = _train(net, X, Y, 1)
    if calibrated:
        assert asked == [[chosen, FALLBACK_PASS]] and run.history.passes == [chosen]
        assert run.history.pass_changes == []
        return
    assert asked == [[chosen, other, FALLBACK_PASS]] and run.history.passes == [other]
    assert calibration.cached(net.layer_sizes, 128, net.dtype, 2) is None  # one probe's pick, this fit's only
    assert run.history.pass_changes == [f"before epoch 1: {other} took 1 ms a batch, {chosen} 2 ms: {other} from here"]
    assert run.describe_passes().startswith(f"passes: {other} (epoch 1); before epoch 1: {other} took 1 ms")
    asked.clear()  # the next fit weighs the three again
    assert _train(net, X, Y, 1).history.passes == [other] and asked == [[chosen, other, FALLBACK_PASS]]
    monkeypatch.setattr(_config, "PASS", other)  # the same epoch as the pass forced, bit for bit
    np.testing.assert_array_equal(run.theta, _train(net, X, Y, 1).theta)


@needs_two_threads
def test_a_training_that_turns_busy_moves_to_one_thread_and_stays_close_to_the_threaded_one(adapting, monkeypatch):
    """Quiet for the probe of batches and the first epoch, then busy: the epoch probe of one thread switches; the
    parameters follow the threaded pass's to rounding."""
    net, X, Y = _problem()

    class TurningBusy:
        busy = False
        now = 0.0

        def __call__(self):  # while quiet, two threads twice as fast as one
            self.now += (1.0 if self.busy else 0.05) if numba.get_num_threads() > 1 else 0.1
            return self.now

    clock = TurningBusy()
    monkeypatch.setattr(training, "clock", clock)
    monkeypatch.setattr(calibration, "clock", per_batch(clock))
    # the two threaded passes are alike to this clock: the probe weighs the one training chose against one thread
    monkeypatch.setattr(calibration, "start_candidates", lambda *key_and_chosen: [key_and_chosen[-1], FALLBACK_PASS])
    adapted = Training(net, optim.Adam(net.init(random_state=2), lr=1e-2), X, Y, 128, seed=1)
    adapted.run(6, callback=lambda run, loss: setattr(clock, "busy", True))  # busy from the second epoch
    chosen = adapted.history.passes[0]
    assert chosen != FALLBACK_PASS
    # the second epoch, busy, brings the current pass's time (the median of two) above the one-thread estimate that
    # the batches gave (0.2 s): the third epoch probes one thread and it stays
    assert adapted.history.passes == [chosen] * 2 + [FALLBACK_PASS] * 4
    assert adapted.history.pass_changes == [f"epoch 3: {FALLBACK_PASS} took 100 ms an epoch, {chosen} 525 ms: "
                                            f"{FALLBACK_PASS} from here"]
    monkeypatch.setattr(_config, "PASS", chosen)
    threaded = _train(net, X, Y, 6)
    np.testing.assert_allclose(adapted.history.loss, threaded.history.loss, rtol=1e-10)
    np.testing.assert_allclose(adapted.theta, threaded.theta, rtol=1e-8, atol=1e-10)


@needs_two_threads
def test_a_busy_declared_network_starts_on_one_thread_and_trains_as_one_thread_does(adapting, monkeypatch):
    """A declared network's one pass takes its products on the BLAS's threads: busy, the probe of two batches of
    each before the first epoch (the epoch's own compiled code, on copies) starts it on one thread, and the training
    is the one-thread training bit for bit (the BLAS splits a product's output, not its sums; the probe moved
    neither θ nor the rule's state). Its switch is kept for `fastgd info`, with the network in a few words. On a
    machine where two threads are faster it keeps the serial pass."""
    from fastgd.networks import Conv2D, Dense, Flatten, MaxPool2D, Network, ReLU

    net = Network([Conv2D(4, 3, padding="same"), ReLU(), MaxPool2D(2), Flatten(), Dense(3)], input_shape=(1, 6, 6))
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 1, 6, 6))
    Y = np.eye(3)[rng.integers(0, 3, 40)]

    def train():
        run = Training(net, optim.Adam(net.init(random_state=0), lr=1e-2), X, Y, 16, seed=1)
        run.run(5)
        return run

    adapted = train()
    assert adapted.history.passes == [FALLBACK_PASS] * 5
    # the busy clock advances 1 s a reading on two threads, 0.1 s on one: two batches timed by two readings
    assert adapted.history.pass_changes == [f"before epoch 1: {FALLBACK_PASS} took 50 ms a batch, serial 500 ms: "
                                            f"{FALLBACK_PASS} from here"]
    assert calibration.remembered_switches()[-1].endswith(
        f" Network({net.n_params} parameters)/16 float64, 2 threads: {adapted.history.pass_changes[0]}")
    monkeypatch.setattr(_config, "PASS", FALLBACK_PASS)  # forced: one thread from the first epoch
    one_thread = train()
    assert one_thread.history.passes == [FALLBACK_PASS] * 5 and one_thread.history.pass_changes == []
    np.testing.assert_array_equal(adapted.theta, one_thread.theta)
    assert adapted.history.loss == one_thread.history.loss
    monkeypatch.setattr(_config, "PASS", "auto")

    monkeypatch.setattr(training, "clock", QuietClock())
    quiet = train()
    assert quiet.history.passes[0] == "serial" and quiet.history.pass_changes == []
    monkeypatch.setattr(training, "clock", BusyClock())
    monkeypatch.setattr(_config, "ADAPT", False)  # FASTGD_ADAPT=0: the serial pass however slow
    assert train().history.passes == ["serial"] * 5


@needs_two_threads
@pytest.mark.parametrize("setting", ["FASTGD_PASS", "FASTGD_ADAPT"])
def test_a_forced_pass_or_adapting_off_keeps_the_pass_however_slow(adapting, monkeypatch, setting):
    net, X, Y = _problem()
    if setting == "FASTGD_PASS":
        monkeypatch.setattr(_config, "PASS", calibration.training_pass(net.layer_sizes, 128, net.dtype, 2)[0])
    else:
        monkeypatch.setattr(_config, "ADAPT", False)
    run = _train(net, X, Y, 4)
    assert len(set(run.history.passes)) == 1 and run.history.passes[0] != FALLBACK_PASS
    assert run.history.pass_changes == [] and run.describe_passes().endswith("(epochs 1-4)")


@needs_two_threads
def test_an_estimator_records_the_switch_in_its_history(adapting):
    from fastgd import MLPClassifier

    net, X, Y = _problem()
    model = MLPClassifier(hidden_layer_sizes=(128,), batch_size=128, max_iter=4, random_state=0, tol=0.0)
    with pytest.warns(Warning):  # four epochs do not converge
        model.fit(X, Y.argmax(axis=1))
    assert model.history_.passes == [FALLBACK_PASS] * 4
    assert len(model.history_.pass_changes) == 1 and model.history_.pass_changes[0].startswith("before epoch 1")


def test_fastgd_train_says_which_pass_ran(tmp_path):
    from tests.cli_harness import run_command

    code, out, err = run_command(["train", "--dataset", "iris", "--epochs", "2"], tmp_path)
    assert code == 0, err
    assert out.splitlines()[-2] == "passes: serial (epochs 1-2)"  # a small network: the serial pass, no adapting


@needs_two_threads
def test_fastgd_info_shows_the_switches_trainings_made_and_whether_they_adapt(adapting, tmp_path):
    from tests.cli_harness import run_command

    net, X, Y = _problem()
    busy = _train(net, X, Y, 2)
    code, out, err = run_command(["info"], tmp_path)
    assert (code, err) == (0, "")
    info = out.splitlines()
    assert info[-3].startswith(f"adapting to the load (FASTGD_ADAPT): on; a training whose pass takes two threads or "
                               f"more weighs it against {FALLBACK_PASS} (probes cost at most {PROBE_SHARE:.0%}")
    assert info[-2] == f"last switches of pass while training ({tmp_path / 'pass_switches.json'}): 1"
    # when, the network, and the line the training's history holds
    assert info[-1].startswith("  20") and info[-1].endswith(
        f" 64-128-10/128 float64, 2 threads: {busy.history.pass_changes[0]}")


def test_only_the_last_switches_are_kept_and_an_unwritable_log_costs_the_training_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTGD_GENERATED_DIR", str(tmp_path))
    for index in range(calibration.SWITCHES_KEPT + 3):
        calibration.remember_switch([4, 8, 2], 16, np.float32, 2, f"switch {index}")
    kept = calibration.remembered_switches()
    assert len(kept) == calibration.SWITCHES_KEPT
    assert [line.rsplit(": ", 1)[1] for line in kept] == [f"switch {index}" for index in
                                                          range(3, calibration.SWITCHES_KEPT + 3)]
    assert kept[-1].split(" ", 1)[1].startswith("4-8-2/16 float32, 2 threads: ")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the directory should be")
    monkeypatch.setenv("FASTGD_GENERATED_DIR", str(blocked / "sub"))
    calibration.remember_switch([4, 8, 2], 16, np.float32, 2, "lost")  # no error: the log is for info only
    assert calibration.remembered_switches() == []



@needs_two_threads
def test_a_busy_lbfgs_fit_runs_on_one_thread_and_fits_as_one_thread_does(adapting, monkeypatch):
    """A full-batch L-BFGS fit probes one iteration of its own compiled minimize on one thread and on two, from a
    copy of θ and a fresh state: busy, it fits on one thread, and the fit is the forced one-thread fit bit for bit
    (the probe moved nothing); on a machine where two threads are faster it keeps them. The choice is kept for the
    shapes, and measured again after FULL_BATCH_CHOICE_SECONDS."""
    net, X, Y = _problem()  # 256 rows: 2.4 million multiply-adds an evaluation
    monkeypatch.setattr(training, "_FULL_BATCH_CHOICES", {})
    key = (tuple(net.layer_sizes.tolist()), 256, "float64", 2)

    def fit():
        theta = net.init(random_state=4)
        result = training.fit_lbfgs(net, theta, X, Y, max_iter=15, max_fun=100, tol=1e-12)
        return theta, result

    adapted, adapted_result = fit()
    assert training._FULL_BATCH_CHOICES[key][0] is True
    assert adapted_result.n_iter == 15
    monkeypatch.setattr(_config, "PASS", FALLBACK_PASS)
    one_thread, one_thread_result = fit()
    np.testing.assert_array_equal(adapted, one_thread)
    assert adapted_result.loss == one_thread_result.loss
    monkeypatch.setattr(_config, "PASS", "auto")

    monkeypatch.setattr(training, "clock", QuietClock())
    fit()
    assert training._FULL_BATCH_CHOICES[key][0] is True  # kept: measured less than FULL_BATCH_CHOICE_SECONDS ago
    monkeypatch.setattr(training, "FULL_BATCH_CHOICE_SECONDS", 0.0)
    quiet, _ = fit()
    assert training._FULL_BATCH_CHOICES[key][0] is False
    np.testing.assert_array_equal(quiet, one_thread)
    # too few evaluations to pay for a probe: the threads as set, nothing measured
    monkeypatch.setattr(training, "_FULL_BATCH_CHOICES", {})
    training.fit_lbfgs(net, net.init(random_state=4), X, Y, max_iter=3, max_fun=10, tol=1e-12)
    assert training._FULL_BATCH_CHOICES == {}


@needs_two_threads
def test_a_long_prediction_on_a_busy_machine_goes_on_one_thread_after_its_probe(adapting, monkeypatch):
    from fastgd.kernels import network as network_kernels
    from fastgd.networks import Conv2D, Dense, Flatten, MaxPool2D, Network, ReLU
    from fastgd.networks import network as network_module

    net = Network([Conv2D(4, 3, padding="same"), ReLU(), MaxPool2D(2), Flatten(), Dense(3)], input_shape=(1, 6, 6))
    theta = net.init(random_state=0)
    X = np.random.default_rng(0).normal(size=(700, 36))
    calls, predict_in_chunks = [], network_kernels.predict_in_chunks

    def spied(theta, inputs, *arguments):
        calls.append((inputs.shape[0], numba.get_num_threads()))
        return predict_in_chunks(theta, inputs, *arguments)

    monkeypatch.setattr(network_kernels, "predict_in_chunks", spied)

    def predict(clock):
        calls.clear()
        monkeypatch.setattr(network_module, "_PREDICT_CHOICES", {})
        monkeypatch.setattr(network_module, "clock", clock)
        return net.predict(theta, X, chunk_size=100)

    # busy: a chunk timed on one thread, one on two, then the rest on one thread
    busy = predict(BusyClock())
    assert calls == [(100, 1), (100, 2), (500, 1)]
    with threads.limit(1):
        one_thread = net.predict(theta, X, chunk_size=100)
    # the probe's chunks are the prediction's, nothing left out or twice; its threads move no bit
    np.testing.assert_array_equal(busy, one_thread)
    quiet = predict(QuietClock())
    assert calls[-1] == (500, 2)
    np.testing.assert_array_equal(quiet, one_thread)
    calls.clear()
    net.predict(theta, X, chunk_size=100)  # the quiet choice, kept: no probe
    assert calls == [(700, 2)]
    # two chunks or fewer, adapting off, or one thread forced: no probe
    calls.clear()
    net.predict(theta, X[:200], chunk_size=100)
    assert calls == [(200, 2)]
    monkeypatch.setattr(_config, "ADAPT", False)
    predict(BusyClock())
    assert calls == [(700, 2)]
    monkeypatch.setattr(_config, "ADAPT", True)
    monkeypatch.setattr(_config, "PASS", FALLBACK_PASS)
    predict(BusyClock())
    assert calls == [(700, 1)]
