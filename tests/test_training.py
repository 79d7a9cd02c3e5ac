"""The compiled epoch loop against a plain NumPy training loop, and its promises."""

import math

import numpy as np
import pytest
from numba.core.runtime import _nrt_python, rtsys

from fastgd import MLP, optim, reference
from fastgd.kernels import schedules as schedule_kernels
from fastgd.kernels.shuffle import shuffle_for_epoch
from fastgd.kernels.train import clip_by_global_norm
from fastgd.training import Training, make_schedule
from rule_cases import VARIANTS

RULES = sorted(optim.OPTIMIZERS)
SIZES = [4, 6, 3]


def problem(n_samples=23, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, SIZES[0]))
    Y = np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], n_samples)]
    return X, Y


def compiled_and_reference(rule, hyperparameters, batch_size, n_epochs=4, dtype=np.float64, schedule=None,
                           reference_schedule=None, clip_norm=None, activation="tanh"):
    X, Y = problem()
    net = MLP(SIZES, activation, "softmax", alpha=0.01, dtype=dtype)
    theta = net.init(random_state=0)
    theta_reference = theta.copy()
    optimizer = optim.OPTIMIZERS[rule](theta, layout=net.layout, **hyperparameters)
    training = Training(net, optimizer, X, Y, batch_size, seed=7,
                        schedule=schedule, clip_norm=clip_norm)
    history = training.run(n_epochs)
    losses = reference.train_mlp(theta_reference, X.astype(dtype), Y.astype(dtype), SIZES, activation, "softmax",
                                 0.01, rule, hyperparameters, batch_size, n_epochs, seed=7,
                                 schedule=reference_schedule, clip_norm=clip_norm)
    return history, theta, losses, theta_reference


@pytest.mark.parametrize("rule", RULES)
def test_training_curve_matches_plain_numpy_loop_for_every_rule(rule):
    hyperparameters = VARIANTS[rule][-1]
    history, theta, losses, theta_reference = compiled_and_reference(rule, hyperparameters, batch_size=5)
    np.testing.assert_allclose(history.loss, losses, rtol=1e-10)
    np.testing.assert_allclose(theta, theta_reference, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("batch_size", [1, 5, 23, 100], ids=["sgd", "mini-batch", "full batch", "larger than n"])
def test_batch_gd_sgd_and_mini_batch(batch_size):
    history, theta, losses, theta_reference = compiled_and_reference("momentum", dict(lr=0.05), batch_size)
    np.testing.assert_allclose(history.loss, losses, rtol=1e-10)
    np.testing.assert_allclose(theta, theta_reference, rtol=1e-9, atol=1e-12)


SCHEDULE_CASES = {
    "constant": (dict(), lambda e, t, lr: lr),
    "step": (dict(gamma=0.5, step_size=2), lambda e, t, lr: lr * 0.5 ** (e // 2)),
    "exponential": (dict(gamma=0.9), lambda e, t, lr: lr * 0.9**e),
    # scikit-learn's SGDOptimizer: after each epoch, learning_rate_init / (samples seen + 1) ** power_t
    "invscaling": (dict(power_t=0.5), lambda e, t, lr: lr / (e * len(problem()[0]) + 1) ** 0.5),
    "cosine": (dict(eta_min=0.001, t_max=4),
               lambda e, t, lr: 0.001 + (lr - 0.001) * (1 + math.cos(math.pi * e / 4)) / 2),
    # SGDR with cycles of 1, 2, 4 epochs: epoch 3 starts the third cycle, at γ₀ again
    "cosine_restarts": (dict(eta_min=0.001, t_0=1, t_mult=2),
                        lambda e, t, lr: 0.001 + (lr - 0.001) * (1 + math.cos(math.pi * [0, 0, 1 / 2, 0][e])) / 2),
    # one warm-up epoch (a quarter of 4) at γ₀/2, then down by a third each epoch, towards 0.001 at epoch 4
    "warmup_linear": (dict(eta_min=0.001, t_max=4, warmup_fraction=0.25),
                      lambda e, t, lr: [lr / 2, lr, 0.001 + (lr - 0.001) * 2 / 3, 0.001 + (lr - 0.001) / 3][e]),
    # one warm-up epoch, one at γ₀, then the last half (2 epochs) down to 0
    "trapezoidal": (dict(t_max=4, warmup_fraction=0.25, decay_fraction=0.5),
                    lambda e, t, lr: [lr / 2, lr, lr, lr / 2][e]),
}


@pytest.mark.parametrize("warmup_steps", [0, 7])
@pytest.mark.parametrize("name", sorted(SCHEDULE_CASES))
def test_schedules_match_their_formulas(name, warmup_steps):
    params, formula = SCHEDULE_CASES[name]

    def expected(epoch, step, lr):
        factor = min(1.0, step / warmup_steps) if warmup_steps else 1.0
        return formula(epoch, step, lr) * factor

    history, theta, losses, theta_reference = compiled_and_reference(
        "sgd", dict(lr=0.5), batch_size=5, schedule=make_schedule(name, warmup_steps=warmup_steps, **params),
        reference_schedule=expected)
    np.testing.assert_allclose(history.loss, losses, rtol=1e-10)
    np.testing.assert_allclose(theta, theta_reference, rtol=1e-9, atol=1e-12)


def test_every_schedule_is_tested():
    assert set(SCHEDULE_CASES) == set(schedule_kernels.SCHEDULES)
    assert set(TORCH_SCHEDULERS) == set(schedule_kernels.SCHEDULES) - {"invscaling"}  # torch has no invscaling


def _torch_linear_phases(torch, optimizer, base_lr, warmup_epochs, constant_epochs, decay_epochs, eta_min):
    """torch's SequentialLR of LinearLR (warm-up from γ₀/(w + 1)), ConstantLR (×1) and LinearLR (decay to η_min)."""
    scheduler = torch.optim.lr_scheduler
    phases = [(warmup_epochs, lambda: scheduler.LinearLR(optimizer, 1 / (warmup_epochs + 1), 1.0, warmup_epochs)),
              (constant_epochs, lambda: scheduler.ConstantLR(optimizer, 1.0, constant_epochs)),
              (decay_epochs, lambda: scheduler.LinearLR(optimizer, 1.0, eta_min / base_lr, decay_epochs))]
    phases = [(length, make) for length, make in phases if length > 0]
    schedulers = [make() for _, make in phases]
    if len(schedulers) == 1:
        return schedulers[0]
    milestones = list(np.cumsum([length for length, _ in phases])[:-1])
    return scheduler.SequentialLR(optimizer, schedulers, milestones=[int(milestone) for milestone in milestones])


# name → (make_schedule's parameters, torch's scheduler of the same, made from (torch, optimizer, γ₀))
TORCH_SCHEDULERS = {
    "constant": (dict(), lambda torch, opt, lr: torch.optim.lr_scheduler.ConstantLR(opt, 1.0)),
    "step": (dict(gamma=0.5, step_size=3), lambda torch, opt, lr: torch.optim.lr_scheduler.StepLR(opt, 3, 0.5)),
    "exponential": (dict(gamma=0.9), lambda torch, opt, lr: torch.optim.lr_scheduler.ExponentialLR(opt, 0.9)),
    # over the 40 epochs only: after t_max fastgd stays at η_min where torch's rises again
    "cosine": (dict(t_max=40, eta_min=0.01),
               lambda torch, opt, lr: torch.optim.lr_scheduler.CosineAnnealingLR(opt, 40, eta_min=0.01)),
    "cosine_restarts": (dict(t_0=3, t_mult=2, eta_min=0.01),
                        lambda torch, opt, lr: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
                            opt, T_0=3, T_mult=2, eta_min=0.01)),
    # 40 epochs: 4 warm-up (round(0.1 · 40)), 36 of decay
    "warmup_linear": (dict(t_max=40, eta_min=0.01),
                      lambda torch, opt, lr: _torch_linear_phases(torch, opt, lr, 4, 0, 36, 0.01)),
    # 40 epochs: 6 warm-up (round(0.15 · 40)), 24 constant, the last 10 (a quarter) of decay to 0
    "trapezoidal": (dict(t_max=40, warmup_fraction=0.15, decay_fraction=0.25),
                    lambda torch, opt, lr: _torch_linear_phases(torch, opt, lr, 6, 24, 10, 0.0)),
}


@pytest.mark.parametrize("name", sorted(TORCH_SCHEDULERS))
def test_schedules_match_torch_lr_schedulers_epoch_by_epoch(name):
    torch = pytest.importorskip("torch", reason="torch (the oracles extra) is not installed")
    params, make_scheduler = TORCH_SCHEDULERS[name]
    base_lr, n_epochs = 0.3, 40
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    scheduler = make_scheduler(torch, optimizer, base_lr)
    theirs = []
    for _ in range(n_epochs):
        theirs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    schedule = make_schedule(name, **params)
    ours = [schedule_kernels.scheduled_lr(base_lr, schedule, epoch, 1) for epoch in range(n_epochs)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_gradient_clipping_by_global_norm():
    grad = np.array([3.0, 4.0])
    assert clip_by_global_norm(grad, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(grad, [0.6, 0.8])
    unchanged = np.array([0.3, 0.4])
    clip_by_global_norm(unchanged, 1.0)
    np.testing.assert_array_equal(unchanged, [0.3, 0.4])
    history, theta, losses, theta_reference = compiled_and_reference("sgd", dict(lr=1.0), 5, clip_norm=0.05)
    np.testing.assert_allclose(history.loss, losses, rtol=1e-10)
    np.testing.assert_allclose(theta, theta_reference, rtol=1e-9, atol=1e-12)


CLIPPING_COMPILED = """
import sys
import numpy as np
from fastgd import MLP, optim
from fastgd.kernels.train import clip_by_global_norm
from fastgd.training import Training
rng = np.random.default_rng(0)
X, Y = rng.normal(size=(40, 4)), np.eye(3)[rng.integers(0, 3, 40)]
net = MLP([4, 6, 3])
clip_norm = None if sys.argv[1] == "none" else float(sys.argv[1])
Training(net, optim.SGD(net.init(random_state=0), lr=0.1), X, Y, 8, clip_norm=clip_norm).run(2)
print(len(clip_by_global_norm.overloads))
"""


@pytest.mark.parametrize("clip_norm, compiled", [("none", 0), ("0.5", 1)])
def test_an_epoch_compiles_the_clipping_only_when_it_clips(clip_norm, compiled, tmp_path):
    """Nothing is compiled that the call does not use: the clipping is pruned from epochs without it (an empty
    cache: an epoch loaded from it never compiles what it calls)."""
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", CLIPPING_COMPILED, clip_norm], capture_output=True, text=True,
                            timeout=600, env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) == compiled


def test_same_seed_gives_bit_for_bit_the_same_run_and_another_seed_another():
    X, Y = problem()
    net = MLP(SIZES, "relu", "softmax")
    runs = []
    for seed in (3, 3, 4):
        theta = net.init(random_state=0)
        history = Training(net, optim.Adam(theta, lr=0.01), X, Y, batch_size=4, seed=seed).run(5)
        runs.append((theta, history.loss))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    assert not np.array_equal(runs[0][0], runs[2][0])


def test_shuffle_is_a_permutation_fixed_by_seed_and_epoch():
    orders = []
    for seed, epoch in [(1, 0), (1, 0), (1, 1), (2, 0)]:
        order = np.empty(50, dtype=np.int64)
        shuffle_for_epoch(order, seed, epoch)
        assert sorted(order) == list(range(50))
        np.testing.assert_array_equal(order, reference.splitmix64_permutation(50, seed, epoch))
        orders.append(order)
    np.testing.assert_array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[0], orders[2]) and not np.array_equal(orders[0], orders[3])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_is_bit_for_bit_the_same_on_one_blas_thread_and_on_two(dtype):
    """One thread count or another: the same run, bit for bit.

    The products are large enough (256 rows of 256 × 512) that the BLAS splits them between threads; it
    splits the output, never a sum, and the element-wise passes and the update run serially in an
    epoch, so nothing is summed in another order. Two BLAS threads whatever the cores: the BLAS runs
    them on one core as well. Where the BLAS's own products differ between one thread and two, the runs
    are held to the dtype's rounding instead.
    """
    import threadpoolctl

    from fastgd import threads

    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 256))
    Y = np.eye(10)[rng.integers(0, 10, 600)]
    runs = []
    for blas_threads in (1, 2):
        # threads.limit loads the BLAS fastgd calls first, so that the second limit reaches it too
        with threads.limit(1), threadpoolctl.threadpool_limits(blas_threads, user_api="blas"):
            net = MLP([256, 512, 10], alpha=1e-4, dtype=dtype)
            # SGD with momentum, not Adam: Adam's step is lr·sign(g) where g is near 0, so one rounding of the BLAS
            # (below) would move such a parameter by lr; every rule takes its step in the same serial loop
            training = Training(net, optim.SGD(net.init(0), lr=0.05, momentum=0.9), X, Y, 256)
            losses = [training.epoch() for _ in range(2)]
        runs.append((training.theta.copy(), losses))
    if _blas_products_depend_on_threads(dtype):
        # this machine's BLAS itself gives other last bits on one thread than on two (OpenBLAS's float32 kernels
        # where OPENBLAS_CORETYPE picks them, as on this project's AMD machines): fastgd can add nothing of its
        # own, so the runs agree to the dtype's rounding over two epochs
        np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-5)
    else:
        np.testing.assert_array_equal(runs[0][0], runs[1][0])
        assert runs[0][1] == runs[1][1]


def _blas_products_depend_on_threads(dtype):
    """Whether NumPy's BLAS gives other bits on one thread than on two for the products of the test above."""
    import threadpoolctl

    rng = np.random.default_rng(1)
    for m, k, n in ((256, 256, 512), (256, 512, 10), (10, 256, 512), (512, 256, 256)):
        A, B = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
        products = []
        for blas_threads in (1, 2):
            with threadpoolctl.threadpool_limits(blas_threads, user_api="blas"):
                products.append(A @ B)
        if not np.array_equal(*products):
            return True
    return False


def test_float32_training_stays_float32_and_follows_float64():
    history32, theta32, _, _ = compiled_and_reference("adam", dict(lr=0.01), 5, dtype=np.float32)
    history64, theta64, _, _ = compiled_and_reference("adam", dict(lr=0.01), 5, dtype=np.float64)
    assert theta32.dtype == np.float32
    np.testing.assert_allclose(history32.loss, history64.loss, rtol=1e-4)
    np.testing.assert_allclose(theta32, theta64, rtol=1e-3, atol=1e-4)


def test_divergence_stops_training_and_keeps_the_last_finite_parameters():
    X, Y = problem()
    X = X * 1e3
    net = MLP(SIZES, "relu", "softmax", alpha=0.0)
    theta = net.init(random_state=0)
    training = Training(net, optim.SGD(theta, lr=1e6), X, Y, batch_size=23)
    history = training.run(50)
    assert history.diverged and 1 <= history.diverged_epoch < 50
    assert len(history.loss) == history.diverged_epoch - 1
    assert np.isfinite(theta).all()
    with pytest.raises(RuntimeError, match="diverged"):
        training.epoch()


@pytest.mark.parametrize("losses, expected", [
    ([1.0, 0.5, 0.2], None),
    ([1.0, 0.5, float("nan")], 3),
    ([1.0, float("inf")], 2),
    ([float("nan")], 1),
    ([2.0, 3.0, 19_999.0, 20_001.0], 4),  # above 10⁴ times the first epoch's loss
    ([1e-6, 9_999.0, 10_001.0], 3),  # a first loss below 1 counts as 1: small wobbles are not divergence
    ([0.9, 0.9 * 10 ** 4 + 1e-9], None),  # the threshold is 10⁴ (not 10⁴ × 0.9)
    ([5e3, 4e7, 5e7 + 1.0], 3),
])
def test_divergence_is_a_non_finite_loss_or_one_far_above_the_first(losses, expected):
    from fastgd.training import first_divergent_epoch

    assert first_divergent_epoch(losses) == expected


def test_a_loss_growing_without_bound_stops_training_before_it_overflows():
    X, Y = problem()
    net = MLP(SIZES, "identity", "softmax", alpha=1e-4)
    theta = net.init(random_state=0)
    history = Training(net, optim.SGD(theta, lr=1e6), X, Y, batch_size=23).run(50)
    assert history.diverged and 2 <= history.diverged_epoch < 50
    assert math.isfinite(history.diverged_loss) and history.diverged_loss > 1e4 * max(history.loss[0], 1.0)
    assert len(history.loss) == history.diverged_epoch - 1 and max(history.loss) <= 1e4 * max(history.loss[0], 1.0)
    assert "above 10000 times the first epoch's loss" in history.divergence_reason()
    assert np.isfinite(theta).all()


def test_an_epoch_allocates_nothing_per_step():
    X, Y = problem(n_samples=200)
    net = MLP(SIZES, "relu", "softmax")
    allocations = []
    _nrt_python.memsys_enable_stats()
    for batch_size in (200, 2):  # 1 and 100 steps per epoch
        training = Training(net, optim.NAdam(net.init(random_state=0)), X, Y, batch_size)
        training.epoch()  # compile
        before = rtsys.get_allocation_stats().alloc
        training.epoch()
        allocations.append(rtsys.get_allocation_stats().alloc - before)
    _nrt_python.memsys_disable_stats()
    assert allocations[0] == allocations[1]


def test_optimizer_state_carries_over_between_epochs_and_runs():
    X, Y = problem()
    net = MLP(SIZES, "relu", "softmax")
    optimizer = optim.NAdam(net.init(random_state=0), lr=0.01)
    Training(net, optimizer, X, Y, batch_size=5).run(2)
    assert optimizer.state["step"] == 2 * 5
    assert optimizer.state["mu_product"] < 1.0
    Training(net, optimizer, X, Y, batch_size=23).run(1)
    assert optimizer.state["step"] == 11


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(batch_size=2.5), "batch_size must be a positive integer"),
    (dict(batch_size=2, clip_norm=-1.0), "clip_norm must be a positive number"),
])
def test_bad_training_settings_are_refused(kwargs, message):
    X, Y = problem()
    net = MLP(SIZES)
    with pytest.raises(ValueError, match=message):
        Training(net, optim.Adam(net.init(0)), X, Y, **kwargs)


@pytest.mark.parametrize("name, kwargs, message", [
    ("linear", {}, "schedule must be one of"),
    ("step", dict(step_size=0), "Invalid step_size"),
    ("exponential", dict(gamma=0.0), "Invalid gamma"),
    ("cosine", dict(t_max=float("inf")), "Invalid t_max"),
    ("cosine_restarts", dict(t_0=0), "Invalid t_0"),
    ("cosine_restarts", dict(t_0=2.5), "Invalid t_0"),
    ("cosine_restarts", dict(t_0=float("inf")), "Invalid t_0"),
    ("cosine_restarts", dict(t_mult=0.5), "Invalid t_mult"),
    ("warmup_linear", dict(warmup_fraction=1.0), "Invalid warmup_fraction"),
    ("warmup_linear", dict(t_max=1, warmup_fraction=0.5), "1 warm-up and 0 decay epochs do not fit"),
    ("trapezoidal", dict(decay_fraction=0.0), "Invalid decay_fraction"),
    ("trapezoidal", dict(t_max=4, warmup_fraction=0.5, decay_fraction=0.75), "2 warm-up and 3 decay epochs"),
])
def test_bad_schedules_are_refused(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_schedule(name, **kwargs)
