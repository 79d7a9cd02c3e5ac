"""The measurement layer's trainers: one class each, with what it needs and why it is skipped."""

import os
import sys

import pytest

from fastgd import baselines, datasets


@pytest.fixture
def a_new_trainer():
    """A trainer declared as a user of the measurement layer would: one class, nothing else edited."""

    class EchoTrainer(baselines.Trainer, name="echo"):
        requires = ("fastgd_no_such_module",)
        install = "pip install echo"

        def epoch(self):
            return 0.0

    yield EchoTrainer
    del baselines.TRAINERS["echo"]


def test_a_trainer_is_one_class_registered_by_its_name(a_new_trainer):
    assert baselines.TRAINERS["echo"] is a_new_trainer and a_new_trainer.name == "echo"
    assert a_new_trainer.skip_reason() == "fastgd_no_such_module is not installed (pip install echo)"
    with pytest.raises(NotImplementedError, match="fastgd_no_such_module is not installed"):
        a_new_trainer(datasets.load("iris"), "sgd", (4,), 16, "float64")
    with pytest.raises(ValueError, match="two trainers named 'echo'"):
        type("Again", (baselines.Trainer,), {"epoch": lambda self: 0.0}, name="echo")


@pytest.mark.parametrize("implementation, rule, reason", [
    ("sklearn", "adamw", "scikit-learn's MLP has no adamw"),
    ("torch", "lion", "torch.optim has no lion"),
    ("jax", "rprop", "no optax transform stands in for rprop"),
])
def test_a_trainer_says_which_rules_it_lacks_before_it_is_built(implementation, rule, reason):
    trainer = baselines.TRAINERS[implementation]
    for module in trainer.requires:  # torch (the compare extra), jax and optax (the jax extra)
        pytest.importorskip(module, reason=f"{module} is not installed ({trainer.install})")
    assert trainer.skip_reason(rule) == reason
    assert trainer.skip_reason("adam") is None
    with pytest.raises(NotImplementedError, match=reason):
        trainer(datasets.load("iris"), rule, (4,), 16, "float64")


def test_a_trainer_whose_package_does_not_import_is_not_available(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    assert not baselines.available("torch") and baselines.available("numpy")
    assert baselines.TorchTrainer.skip_reason("adam") == "torch is not installed (pip install torch)"
    with pytest.raises(NotImplementedError, match="torch is not installed"):
        baselines.require_torch()


def test_a_rule_whose_state_for_one_vector_would_not_fit_is_not_timed_as_one():
    # Shampoo keeps an n × n preconditioner for a vector of n: 10⁷ parameters would take 8 · 10¹⁴ bytes
    from fastgd.baselines import steps

    assert not steps.fits_as_one_vector("shampoo", 10_000_000)
    assert not any(steps.worth_timing("shampoo", 10_000_000, implementation)
                   for implementation in steps.STEP_IMPLEMENTATIONS)
    assert steps.fits_as_one_vector("adafactor", 10_000_000) and steps.fits_as_one_vector("adam", 10_000_000)
    assert steps.fits_as_one_vector("soap", 10_000_000)  # a vector longer than 10000 takes Adam, no bases


def test_compares_step_throughput_leaves_out_a_rule_whose_state_for_one_vector_would_not_fit_and_says_so():
    # fastgd compare measured Shampoo's step on 10⁵ parameters as one vector: an 80 GB preconditioner, and the
    # README's main command stopped
    from fastgd.baselines import throughput

    messages = []
    measured = throughput.measure(dataset_names=(), parameter_counts=(1_000,), rules=["sgd", "shampoo"], repeats=1,
                                  budget_seconds=0.001, progress=messages.append)
    assert set(measured["steps"]["rule"]) == {"sgd"}
    assert "shampoo not timed on 1,000 parameters: its state for one long vector would not fit" in messages


def test_measure_waits_for_the_steps_compiling_beside_it_before_timing_anything(monkeypatch):
    # fastgd compare compiles the steps in worker processes while it measures the report's other artefacts, then
    # times: a timing that began before the workers ended would share the cores with them
    from fastgd.baselines import throughput

    events = []

    class Compiling:
        def done(self):
            return False

        def wait(self):
            events.append("waited")

    timed_gemm = throughput.gemm_rate
    monkeypatch.setattr(throughput, "gemm_rate", lambda *a, **k: (events.append("timed"), timed_gemm(*a, **k))[1])
    monkeypatch.setattr(throughput, "compile_steps_ahead", lambda *a, **k: events.append("compiled here"))
    settings = dict(dataset_names=(), parameter_counts=(1_000,), rules=["sgd"], repeats=1, budget_seconds=0.001)
    messages = []
    throughput.measure(compiling=Compiling(), progress=messages.append, **settings)
    assert events[0] == "waited" and "timed" in events and "compiled here" not in events
    assert messages[0] == "waiting for the steps compiling in the background"
    events.clear()
    throughput.measure(**settings)  # nothing compiling beside it: it compiles ahead itself, after the training
    assert events.count("compiled here") == 1 and events.index("timed") < events.index("compiled here")


def test_steps_compile_in_workers_while_the_caller_goes_on():
    from fastgd.baselines import throughput

    messages = []
    compiling = throughput.compile_steps_ahead(["sgd"], (1_000, 10_000_000), say=messages.append, wait=False)
    if (os.cpu_count() or 1) < 2:  # one core: the timing process compiles as fast
        assert compiling is None
        return
    assert isinstance(compiling, throughput.StepsCompiling)
    assert messages == ["compiling 2 steps on 2 processes, in the background"]  # the serial and the prange step
    compiling.wait()
    # one kind of step, or one core: nothing to share out, the timing process compiles
    assert throughput.compile_steps_ahead(["sgd"], (1_000,), wait=False) is None


@pytest.mark.parametrize("case_index, alpha, per_step", [(0, 0.0, False), (5, 0.0, False), (6, 0.0, False),
                                                        (7, 0.3, False), (8, 0.0, False), (11, 0.0, False),
                                                        (12, 0.1, False), (0, 0.0, True), (7, 0.3, True)])
def test_jax_trains_a_declared_network_as_fastgd_does_from_the_same_theta_and_batches(case_index, alpha, per_step):
    """The JAX + optax epoch the CNN benchmarks time does fastgd's work: from the same θ over fastgd's batches
    (its SplitMix64 order), Adam, float32, 9 steps: every epoch's loss and θ after them to float32 rounding; over
    convolutions with padding and strides, every pool, 1-D layers, the mean squared error, binary cross-entropy of one
    logit and a penalty; the epoch as one lax.scan or as a jitted step a batch."""
    pytest.importorskip("jax", reason="JAX is the peer trained here")
    pytest.importorskip("optax", reason="optax is the peer's optimizer")
    import numpy as np

    from fastgd import optim
    from fastgd.reference import splitmix64_permutation
    from fastgd.training import Training
    from tests.network_cases import GRID, network

    net = network(GRID[case_index]).with_alpha(alpha)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(10,) + net.input_shape).astype(np.float32)
    if net.loss_name == "cross_entropy":
        Y = np.eye(net.n_outputs, dtype=np.float32)[rng.integers(0, net.n_outputs, 10)]
    elif net.loss_name == "binary_cross_entropy":
        Y = rng.integers(0, 2, (10, net.n_outputs)).astype(np.float32)
    else:
        Y = rng.normal(size=(10, net.n_outputs)).astype(np.float32)
    theta = net.init(random_state=0, dtype=np.float32)
    fastgd = Training(net, optim.Adam(theta.copy(), lr=0.01), X, Y, 4, seed=3)
    jax = baselines.JaxNetworkTraining(net, theta.copy(), X, Y, 0.01, 4, per_step=per_step)
    for epoch in range(3):  # batches of 4, 4 and 2
        expected = fastgd.epoch()
        assert jax.epoch(splitmix64_permutation(10, 3, epoch)) == pytest.approx(expected, rel=2e-5)
    assert np.abs(jax.theta() - fastgd.theta).max() <= 2e-5 * max(1.0, np.abs(fastgd.theta).max())
    assert np.abs(fastgd.theta - theta).max() > 0.01  # it moved
    with pytest.raises(ValueError, match="float32"):
        baselines.JaxNetworkTraining(net, theta.astype(np.float64), X, Y, 0.01, 4)
