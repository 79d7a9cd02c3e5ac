"""Rules with a closure (SAM): a second gradient of the same batch at another point, before the step.

The built-ins ``sam_sgd`` and ``sam_adam`` against pytorch-optimizer's ``SAM`` wrapping torch.optim's SGD and
Adam, stepped with a closure on an MLP's loss; the compiled epoch (``Training``) against a loop that evaluates
each batch twice through pytorch-optimizer; the epoch's ascent into a separate point (serial and ``prange``) bit
for bit the optimizer's in-place one, and an epoch's ``prange`` step and ascent the serial epoch's; the
estimators, sweeps, declared networks and the command reaching the second evaluation (with ρ = 0 the evaluation
point is θ itself, so SAM-SGD is SGD bit for bit); the README's SAM as a user's rule; bad input refused in one
line naming the rule, before anything changes.
"""

import re

import numpy as np
import pytest

from fastgd import MLP, optim, rules
from fastgd.reference import mlp_loss_grad, splitmix64_permutation
from fastgd.training import Training

SIZES = [4, 6, 3]


def _problem(n_samples=23, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, SIZES[0]))
    return X, np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], n_samples)]


def _float64_squared_norm(param_groups, device=None, *, weight_adaptive=False):
    """pytorch-optimizer's ``get_global_gradient_norm`` without its rounding to float32: the sum of the squared
    per-tensor norms (of |θ|·g for an adaptive group), in float64."""
    import torch

    total = torch.zeros(1, dtype=torch.float64)
    for group in param_groups:
        adaptive = weight_adaptive and group.get("adaptive", False)
        for p in group["params"]:
            if p.grad is not None:
                total += torch.linalg.vector_norm(p.grad * p.abs() if adaptive else p.grad) ** 2
    return total


@pytest.fixture
def torch_sam(monkeypatch):
    """pytorch-optimizer's SAM in float64 throughout.

    It rounds the global norm to float32 (``get_global_gradient_norm`` stacks the per-tensor norms ``.float()``),
    which moves θ' by ~1e-8 relative each step; that one function is replaced by its float64 form, as fastgd sums
    in float64 (a float32 run agrees to float32 rounding either way)."""
    torch = pytest.importorskip("torch", reason="torch is not installed")
    pytest.importorskip("pytorch_optimizer", reason="pytorch-optimizer is not installed")
    from pytorch_optimizer.optimizer import sam as sam_module

    monkeypatch.setattr(sam_module, "get_global_gradient_norm", _float64_squared_norm)
    return torch, sam_module.SAM


def _torch_closure(torch, optimizer, tensor, X, Y, alpha=0.0):
    """pytorch-optimizer's closure: the gradient at the tensor's values into ``.grad``; returns the loss."""
    def closure():
        optimizer.zero_grad()
        loss, grad = mlp_loss_grad(tensor.detach().numpy().copy(), X, Y, SIZES, "tanh", "softmax", alpha)
        tensor.grad = torch.from_numpy(grad)
        return loss
    return closure


CASES = [
    ("sam_sgd", "SGD", dict(lr=0.1, momentum=0.9)),
    ("sam_sgd", "SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01, rho=0.2, adaptive=True)),
    ("sam_adam", "Adam", dict(lr=0.01)),
    ("sam_adam", "Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True, rho=0.1, adaptive=True,
                              perturb_eps=1e-8)),
]


@pytest.mark.parametrize("name, base, hyperparameters", CASES,
                         ids=[f"{name}-{i}" for i, (name, _, _) in enumerate(CASES)])
def test_matches_pytorch_optimizers_sam_after_200_steps_on_an_mlp(torch_sam, name, base, hyperparameters):
    torch, SAM = torch_sam
    X, Y = _problem()
    net = MLP(SIZES, "tanh", "softmax")
    theta = net.init(random_state=1)
    tensor = torch.tensor(theta.copy(), requires_grad=True)
    theirs = SAM([tensor], getattr(torch.optim, base), **hyperparameters)
    ours = optim.OPTIMIZERS[name](theta, layout=net.layout, **hyperparameters)
    rng = np.random.default_rng(2)
    for _ in range(200):
        rows = rng.choice(len(X), 8, replace=False)  # a mini-batch: both evaluations of a step on the same rows
        loss = ours.step(lambda: mlp_loss_grad(theta, X[rows], Y[rows], SIZES, "tanh", "softmax", 0.0))
        closure = _torch_closure(torch, theirs, tensor, X[rows], Y[rows])
        assert loss == pytest.approx(closure(), rel=1e-10)  # the loss at θ, before the step
        theirs.step(closure)
    scale = max(1.0, np.abs(theta).max())
    assert np.abs(theta - tensor.detach().numpy()).max() <= 1e-10 * scale
    assert np.abs(theta - net.init(random_state=1)).max() > 0.1  # it moved
    for key, value in ours.state.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_allclose(value, theirs.state[tensor][key].numpy(), rtol=1e-10, atol=1e-14)


def test_float32_agrees_with_float64_to_float32_rounding():
    X, Y = _problem()
    results = []
    for dtype in (np.float32, np.float64):
        theta = MLP(SIZES, "tanh", "softmax").init(random_state=1).astype(dtype)
        opt = optim.OPTIMIZERS["sam_adam"](theta, lr=0.01, adaptive=True)
        data = X.astype(dtype), Y.astype(dtype)
        for _ in range(50):
            opt.step(lambda: mlp_loss_grad(theta, *data, SIZES, "tanh", "softmax", 0.0))
        assert theta.dtype == dtype and all(v.dtype == dtype for v in opt.state.values() if hasattr(v, "dtype"))
        results.append(theta)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4, atol=1e-5)


def test_an_epoch_of_training_equals_pytorch_optimizers_sam_evaluating_each_batch_twice(torch_sam):
    torch, SAM = torch_sam
    X, Y = _problem()
    net = MLP(SIZES, "tanh", "softmax", alpha=0.01)
    theta = net.init(random_state=0)
    tensor = torch.tensor(theta.copy(), requires_grad=True)
    hyperparameters = dict(lr=0.05, momentum=0.9, rho=0.1)
    history = Training(net, optim.OPTIMIZERS["sam_sgd"](theta, **hyperparameters), X, Y, 5, seed=7).run(3)
    theirs = SAM([tensor], torch.optim.SGD, **hyperparameters)
    losses = []
    for epoch in range(3):
        order, total = splitmix64_permutation(len(X), 7, epoch), 0.0
        for start in range(0, len(X), 5):
            rows = order[start:start + 5]
            closure = _torch_closure(torch, theirs, tensor, X[rows], Y[rows], alpha=0.01)
            total += closure() * len(rows)  # the batch's loss at θ, as the epoch records it
            theirs.step(closure)
        losses.append(total / len(X))
    np.testing.assert_allclose(history.loss, losses, rtol=1e-12)
    assert np.abs(theta - tensor.detach().numpy()).max() <= 1e-10


@pytest.mark.parametrize("dtype, adaptive", [(np.float32, False), (np.float64, True)])
def test_the_epochs_ascent_writes_the_point_the_optimizers_moves_theta_to_serial_and_parallel_alike(dtype,
                                                                                                    adaptive):
    """``packed_ascent_into`` (what the compiled epoch calls: θ read, the point written into ``out``) and its
    ``prange`` twin give bit for bit the point the optimizer classes' in-place ``packed_ascent`` moves θ to, over
    several of the reduction's blocks and a remainder, leaving θ and the gradient as they were; NumPy's
    θ + ρg/(‖g‖ + ε) (θ + ρθ²g/(‖θg‖ + ε) for ASAM) agrees to rounding."""
    rng = np.random.default_rng(5)
    theta = rng.normal(size=3 * 4096 + 13).astype(dtype)
    grad = rng.normal(size=theta.size).astype(dtype)
    opt = optim.OPTIMIZERS["sam_sgd"](theta.copy(), lr=0.1, rho=0.05, adaptive=adaptive)
    packed, module = opt.packed(), opt._variant.module
    rest = (packed.states, packed.aux, packed.hyper, packed.counters, packed.layout)
    in_place = theta.copy()
    opt._variant.packed_ascent(in_place, grad, *rest)
    theta_before, grad_before = theta.copy(), grad.copy()
    for name in ("packed_ascent_into", "packed_ascent_into_parallel"):
        out = np.full_like(theta, np.nan)
        vars(module)[name](theta, grad, out, *rest)
        np.testing.assert_array_equal(out, in_place, err_msg=name)
        np.testing.assert_array_equal(theta, theta_before)
        np.testing.assert_array_equal(grad, grad_before)
    t, g = theta.astype(np.float64), grad.astype(np.float64)
    weighted = g * np.abs(t) if adaptive else g
    scale = 0.05 / (np.sqrt(np.sum(weighted * weighted)) + 1e-12)
    expected = t + (t * t * g if adaptive else g) * scale
    np.testing.assert_allclose(in_place, expected, rtol=1e-6 if dtype == np.float32 else 1e-14,
                               atol=1e-7 if dtype == np.float32 else 1e-16)
    assert np.abs(in_place - theta).max() > 1e-4  # it moved


def test_an_epoch_with_the_prange_step_and_ascent_equals_the_serial_one_bit_for_bit():
    """A threaded pass's epoch takes the rule's ``prange`` step and ascent (``packed(parallel=True)``): from the
    same θ over the same batches it ends where the serial epoch does, bit for bit, with θ over several of the
    reduction's blocks."""
    X, Y = _problem(n_samples=40)
    X = np.hstack([X, X[:, ::-1], X * 0.5])  # 12 inputs: 12·400 + 400 + 400·3 + 3 > 4096 parameters
    net = MLP([12, 400, 3], "tanh", "softmax")
    thetas = []
    for parallel in (False, True):
        theta = net.init(random_state=0)
        opt = optim.OPTIMIZERS["sam_sgd"](theta, lr=0.1, momentum=0.9, rho=0.1)
        opt.packed = lambda parallel=False, opt=opt, chosen=parallel: type(opt).packed(opt, parallel=chosen)
        history = Training(net, opt, X, Y, 8, seed=3).run(2)
        thetas.append((theta, history.loss))
    assert thetas[0][0].size > 4096
    np.testing.assert_array_equal(thetas[0][0], thetas[1][0])
    assert thetas[0][1] == thetas[1][1]
    assert np.abs(thetas[0][0] - net.init(random_state=0)).max() > 1e-3  # it trained


def _sgd_twin(make, **extra):
    """``make(optimizer, optimizer_params)`` fitted with sgd and with sam_sgd at ρ = 0 (θ' = θ: the second
    evaluation gives the first gradient again) and at ρ = 0.1."""
    return (make("sgd", dict(extra)), make("sam_sgd", dict(extra, rho=0.0)), make("sam_sgd", dict(extra, rho=0.1)))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_estimators_and_the_network_estimators_train_a_closure_rule():
    from sklearn.datasets import load_iris

    from fastgd import MLPClassifier
    from fastgd.network_estimators import NetworkClassifier
    from fastgd.networks import Dense, Network, ReLU

    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    sgd, twin, sam = _sgd_twin(lambda name, params: MLPClassifier(
        hidden_layer_sizes=(8,), optimizer=name, optimizer_params=params, learning_rate_init=0.1, max_iter=15,
        random_state=0).fit(X, y), momentum=0.9)
    assert twin.loss_curve_ == sgd.loss_curve_
    np.testing.assert_array_equal(twin.theta_, sgd.theta_)
    assert sam.loss_curve_ != sgd.loss_curve_ and sam.score(X, y) > 0.85
    network = Network([Dense(8), ReLU(), Dense(3)], input_shape=(4,))
    sgd, twin, sam = _sgd_twin(lambda name, params: NetworkClassifier(
        network, optimizer=name, optimizer_params=params, learning_rate_init=0.1, max_iter=5, batch_size=16,
        random_state=0).fit(X, y))
    assert twin.loss_curve_ == sgd.loss_curve_ and sam.loss_curve_ != sgd.loss_curve_


def test_a_sweep_trains_a_closure_rule_together_and_alone_alike(tmp_path):
    from fastgd import sweep
    from fastgd.sweep.runner import execute_chunk

    text = "\n".join(['name = "sam"', 'datasets = ["iris"]', 'rules = ["sam_sgd"]', "learning_rates = [0.1]",
                      "seeds = [0, 1]", "epochs = 3", "", "[model]", "hidden_layer_sizes = [8]", "",
                      "[targets]", "iris = 0.3", ""])
    (tmp_path / "sam.toml").write_text(text)
    specs = sweep.runs(sweep.load_config(tmp_path / "sam.toml"))
    together, alone = execute_chunk(specs, batched=True), execute_chunk(specs, batched=False)
    assert [r["status"] for r in together + alone] == ["ok"] * 4
    by_seed = {r["spec"].seed: r["losses"] for r in alone}
    for result in together:
        assert result["losses"] == by_seed[result["spec"].seed] and len(result["losses"]) == 3


def test_fastgd_train_takes_a_closure_rule(tmp_path):
    from cli_harness import run_command

    code, out, err = run_command(["train", "--dataset", "iris", "--optimizer", "sam_adam", "--epochs", "2",
                                  "--hidden", "8"], tmp_path)
    assert code == 0, err
    assert "sam_adam" in out or "SAMAdam" in out, out


def test_the_readme_sam_is_the_built_in_sam_sgd():
    from readme_examples import blocks

    [block] = [block for block in blocks("python") if '"my_sam"' in block.source]
    namespace = {}
    try:
        exec(compile(block.source, "README.md", "exec"), namespace)
        np.testing.assert_allclose(namespace["params"], 0.0, atol=0.02)  # the minimum of |θ|², within about ρ/2
        X, Y = _problem()
        theta = MLP(SIZES, "tanh", "softmax").init(random_state=3)
        mine, builtin = theta.copy(), theta.copy()
        users = optim.OPTIMIZERS["my_sam"](mine, lr=0.1, rho=0.2)
        sam_sgd = optim.OPTIMIZERS["sam_sgd"](builtin, lr=0.1, rho=0.2)
        from fastgd import reference

        oracle = reference.ReferenceOptimizer("my_sam", theta.copy(), lr=0.1, rho=0.2)
        for _ in range(30):
            users.step(lambda: mlp_loss_grad(mine, X, Y, SIZES, "tanh", "softmax", 0.0))
            sam_sgd.step(lambda: mlp_loss_grad(builtin, X, Y, SIZES, "tanh", "softmax", 0.0))
            at = oracle.params
            oracle.step(mlp_loss_grad(at, X, Y, SIZES, "tanh", "softmax", 0.0)[1],
                        closure=lambda: mlp_loss_grad(at, X, Y, SIZES, "tanh", "softmax", 0.0))
        np.testing.assert_allclose(mine, builtin, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(mine, oracle.params, rtol=1e-10, atol=1e-12)
    finally:
        rules.unregister("my_sam")


# -- bad input --------------------------------------------------------------------------------------------------

def test_a_closure_rule_stepped_with_a_gradient_is_refused_in_one_line_naming_it():
    params = np.ones(4)
    opt = optim.OPTIMIZERS["sam_sgd"](params, lr=0.1)
    with pytest.raises(TypeError, match=r"^sam_sgd evaluates the gradient a second time \(a closure rule\): call "
                                        r"step\(closure\)") as refused:
        opt.step(np.ones(4))
    assert "\n" not in str(refused.value)
    np.testing.assert_array_equal(params, 1.0)
    assert opt.state["step"] == 0


def test_a_closure_that_fails_the_second_time_leaves_params_and_state_as_they_were():
    params = np.array([1.0, -2.0, 3.0])
    opt = optim.OPTIMIZERS["sam_adam"](params, lr=0.1)
    calls = []

    def closure():
        calls.append(params.copy())
        if len(calls) == 2:
            return 0.0, np.ones(5)  # the wrong shape, at θ'
        return 0.0, 2 * params

    with pytest.raises(ValueError, match=re.escape("grad has shape (5,), params (3,)")):
        opt.step(closure)
    assert not np.array_equal(calls[1], calls[0])  # it was called at θ'
    np.testing.assert_array_equal(params, [1.0, -2.0, 3.0])
    assert opt.state["step"] == 0 and not opt.state["exp_avg"].any()
    with pytest.raises(TypeError, match="the closure must return \\(loss, grad\\)"):
        opt.step(lambda: 2 * params)


def test_the_cuda_path_refuses_a_closure_rule_in_one_line_naming_it():
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    from fastgd.cuda import rules as cuda_rules

    optimizer = optim.OPTIMIZERS["sam_sgd"](np.ones(4))
    with pytest.raises(rules.RuleError, match=r"^rule 'sam_sgd': its closure \(a second gradient per step\) has no "
                                              "CUDA form yet"):
        cuda_rules.compiled(optimizer._variant)
    with pytest.raises(rules.RuleError, match="^rule 'sam_adam': its closure"):
        optim._DEVICE.refuse_closure(optim.OPTIMIZERS["sam_adam"](np.ones(4)))


def _ascent(param, grad, scale):
    return param + scale * grad


def _element(param, grad, lr):
    return param - lr * grad


@pytest.mark.parametrize("closure, message", [
    ("not a closure", "closure must be a fastgd.rules.Closure(ascent, reduction=Reduction(...))"),
    (rules.Closure(lambda param, grad, unknown: param), "the closure's ascent function's parameter 'unknown' is not"),
    (rules.Closure(lambda param: param), "the closure's ascent function must take (param, grad, ...)"),
    (rules.Closure(_ascent, rules.Reduction(lambda param, grad: grad, "scale", when="flag")),
     "the closure's reduction is always taken: it takes no 'when'"),
    (rules.Closure(_ascent, rules.Reduction(lambda param, grad: grad, "lr")),
     "the closure's output 'lr' clashes with a hyperparameter"),
    (rules.Closure(_ascent, rules.Reduction(lambda param, grad, other: grad, "scale")),
     "the closure's reduction function's parameter 'other' is not a hyperparameter scalar or a flag"),
    (rules.Closure(_ascent, rules.Reduction(lambda param, grad: grad, "s", finish=rules.PerStep(lambda t: t, "scale"))),
     "the closure's finish function's parameter 't' is not 'step'"),
])
def test_a_bad_closure_is_refused_at_declaration_in_one_line_naming_the_rule(closure, message):
    with pytest.raises(rules.RuleError, match="^rule 'bad_closure': " + re.escape(message)):
        rules.Rule("bad_closure", element=_element, hyperparameters={"lr": rules.LearningRate(0.1)}, closure=closure)


# -- the loss as an input: AliG's Polyak step -------------------------------------------------------------------

@pytest.mark.parametrize("hyperparameters", [dict(lr=0.5), dict(lr=0.3, momentum=0.9),
                                             dict(lr=0.3, momentum=0.5, adjusted_momentum=True)],
                         ids=["plain", "momentum", "adjusted"])
def test_alig_matches_pytorch_optimizers_alig_after_200_steps_on_an_mlp(monkeypatch, hyperparameters):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    pytest.importorskip("pytorch_optimizer", reason="pytorch-optimizer is not installed")
    from pytorch_optimizer.optimizer import alig as alig_module

    # as for SAM: its global norm without the rounding to float32
    monkeypatch.setattr(alig_module, "get_global_gradient_norm", _float64_squared_norm)
    X, Y = _problem()
    net = MLP(SIZES, "tanh", "softmax")
    theta = net.init(random_state=1)
    tensor = torch.tensor(theta.copy(), requires_grad=True)
    theirs = alig_module.AliG([tensor], max_lr=hyperparameters["lr"],
                              **{k: v for k, v in hyperparameters.items() if k != "lr"})
    ours = optim.OPTIMIZERS["alig"](theta, **hyperparameters)
    rng = np.random.default_rng(2)
    for step in range(200):
        rows = rng.choice(len(X), 8, replace=False)
        if step % 2:
            ours.step(lambda: mlp_loss_grad(theta, X[rows], Y[rows], SIZES, "tanh", "softmax", 0.0))
        else:
            ours.step(*mlp_loss_grad(theta, X[rows], Y[rows], SIZES, "tanh", "softmax", 0.0)[::-1])
        loss, grad = mlp_loss_grad(tensor.detach().numpy().copy(), X[rows], Y[rows], SIZES, "tanh", "softmax", 0.0)
        tensor.grad = torch.from_numpy(grad)
        theirs.step(lambda: loss)
    assert np.abs(theta - tensor.detach().numpy()).max() <= 1e-10 * max(1.0, np.abs(theta).max())
    assert np.abs(theta - net.init(random_state=1)).max() > 0.1


def test_the_compiled_epoch_gives_alig_each_batchs_loss():
    X, Y = _problem()
    net = MLP(SIZES, "tanh", "softmax", alpha=0.01)
    theta = net.init(random_state=0)
    copy = theta.copy()
    history = Training(net, optim.OPTIMIZERS["alig"](theta, lr=0.5, momentum=0.5), X, Y, 5, seed=7).run(3)
    oracle = optim.OPTIMIZERS["alig"](copy, lr=0.5, momentum=0.5)
    losses = []
    for epoch in range(3):
        order, total = splitmix64_permutation(len(X), 7, epoch), 0.0
        for start in range(0, len(X), 5):
            rows = order[start:start + 5]
            loss = oracle.step(lambda: mlp_loss_grad(copy, X[rows], Y[rows], SIZES, "tanh", "softmax", 0.01))
            total += loss * len(rows)
        losses.append(total / len(X))
    np.testing.assert_allclose(history.loss, losses, rtol=1e-12)
    np.testing.assert_allclose(theta, copy, rtol=1e-12, atol=1e-14)


def test_a_loss_rule_without_a_loss_is_refused_in_one_line_naming_it():
    params = np.ones(3)
    opt = optim.OPTIMIZERS["alig"](params, momentum=0.9)
    with pytest.raises(TypeError, match=r"^alig takes the loss: call step\(grad, loss=...\)"):
        opt.step(np.ones(3))
    with pytest.raises(TypeError, match="^alig: loss must be a real number, got str"):
        opt.step(np.ones(3), loss="0.5")
    np.testing.assert_array_equal(params, 1.0)
    assert opt.state["step"] == 0
    opt.step(np.ones(3), loss=0.5)  # η = min(0.5 / (3 + 1e-6), 0.1); b = −ηg; θ = 1 − η + 0.9 b
    np.testing.assert_allclose(params, 0.81)
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    from fastgd.cuda import rules as cuda_rules

    with pytest.raises(rules.RuleError, match="^rule 'alig': "):
        cuda_rules.compiled(opt._variant)


def _polyak_element(param, grad, lr, loss):
    return param - lr * loss * grad


def test_a_users_rule_takes_the_loss_by_name_in_its_element():
    rules.register(rules.Rule("loss_scaled", element=_polyak_element, hyperparameters={"lr": rules.LearningRate(0.1)}))
    try:
        assert rules.get("loss_scaled").uses_loss and not rules.get("sgd").uses_loss
        params = np.array([1.0, 2.0], dtype=np.float32)
        optim.OPTIMIZERS["loss_scaled"](params, lr=0.5).step(np.ones(2, np.float32), loss=2.0)
        np.testing.assert_array_equal(params, [0.0, 1.0])
        assert params.dtype == np.float32
    finally:
        rules.unregister("loss_scaled")
