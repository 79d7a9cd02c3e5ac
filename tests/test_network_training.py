"""A declared network trained by ``fastgd.training.Training`` (the MLP's compiled epoch, kernels.train.train_epoch, with
the network's pass as its C callback) against a plain PyTorch loop from the same θ over the same batches: float64,
51 update steps, SGD with momentum (with a step schedule) and Adam, θ and every epoch's loss to 1e-9; against the MLP's
own path for an MLP-shaped network; clipping against a NumPy loop; divergence, float32, a per-tensor rule (Muon) over
a network's layout, and bad input refused before anything trains."""

import numpy as np
import pytest

from fastgd import MLP, optim
from fastgd.networks import Dense, Network, NetworkError, Tanh, known
from fastgd.reference import splitmix64_permutation
from fastgd.training import Training, make_schedule
from tests.network_cases import GRID, data, torch_module

torch = pytest.importorskip("torch", reason="a plain PyTorch loop is the oracle of training")

N_SAMPLES, BATCH_SIZE, N_EPOCHS, SEED = 10, 4, 17, 5  # batches of 4, 4 and 2: 51 update steps

RULES = [("sgd", dict(lr=0.05, momentum=0.9), lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9)),
         ("adam", dict(lr=0.01), lambda params: torch.optim.Adam(params, lr=0.01))]
CASES = [GRID[0], GRID[7]]  # a 2-D convolution with "same" padding and a max pool; strided 1-D convolutions


def training_data(case, dtype=np.float64):
    net, theta, _, _ = data(case, dtype)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(N_SAMPLES,) + net.input_shape).astype(dtype)
    Y = np.eye(net.n_outputs, dtype=dtype)[rng.integers(0, net.n_outputs, N_SAMPLES)]
    return net, theta, X, Y


def torch_training(net, theta, X, Y, make_optimizer, gamma=None):
    module = torch_module(net, theta)
    optimizer = make_optimizer(module.parameters())
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma) if gamma is not None else None
    inputs, targets = torch.from_numpy(X), torch.from_numpy(Y)
    losses = []
    for epoch in range(N_EPOCHS):
        order = splitmix64_permutation(N_SAMPLES, SEED, epoch)
        total = 0.0
        for start in range(0, N_SAMPLES, BATCH_SIZE):
            rows = torch.from_numpy(order[start:start + BATCH_SIZE])
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(module(inputs[rows]), targets[rows])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        losses.append(total / N_SAMPLES)
        if scheduler is not None:
            scheduler.step()
    return np.concatenate([p.detach().numpy().ravel() for p in module.parameters()]), losses


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
@pytest.mark.parametrize("rule, hyperparameters, make_optimizer", RULES, ids=[rule[0] for rule in RULES])
def test_training_a_network_follows_a_plain_pytorch_loop(case, rule, hyperparameters, make_optimizer):
    net, theta, X, Y = training_data(case)
    start = theta.copy()
    # SGD under a step schedule (×0.8 an epoch, torch's StepLR), Adam under none
    gamma = 0.8 if rule == "sgd" else None
    torch_theta, torch_losses = torch_training(net, theta.copy(), X, Y, make_optimizer, gamma)
    schedule = make_schedule("step", gamma=gamma, step_size=1) if gamma is not None else None
    training = Training(net, optim.OPTIMIZERS[rule](theta, **hyperparameters), X, Y, BATCH_SIZE, seed=SEED,
                        schedule=schedule)
    history = training.run(N_EPOCHS)
    assert np.abs(torch_theta - start).max() > 1e-2  # the runs went somewhere
    assert torch_losses[-1] < torch_losses[0]
    assert history.diverged_epoch is None and len(history.loss) == N_EPOCHS
    np.testing.assert_allclose(theta, torch_theta, rtol=0, atol=1e-9 * np.abs(torch_theta).max())
    np.testing.assert_allclose(history.loss, torch_losses, rtol=1e-9)


def test_an_mlp_shaped_network_trains_as_the_mlp_does():
    """The same weights in the two layouts (torch's (out, in) per layer; the MLP's (in, out), then the biases)."""
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(N_SAMPLES, 4)), np.eye(3)[rng.integers(0, 3, N_SAMPLES)]
    net = Network([Dense(6), Tanh(), Dense(3)], input_shape=(4,))
    mlp = MLP([4, 6, 3], activation="tanh", output="softmax", alpha=0.0)
    theta = net.init(random_state=0)
    tensors = net.unpack(theta)
    mlp_theta = mlp.pack([tensors["0.weight"].T, tensors["2.weight"].T], [tensors["0.bias"], tensors["2.bias"]])
    histories = [Training(model, optim.Adam(params, lr=0.02), X, Y, BATCH_SIZE, seed=SEED).run(N_EPOCHS)
                 for model, params in ((net, theta), (mlp, mlp_theta))]
    coefs, intercepts = mlp.unpack(mlp_theta)
    tensors = net.unpack(theta)
    assert histories[0].loss[-1] < 0.8 * histories[0].loss[0]
    np.testing.assert_allclose(histories[0].loss, histories[1].loss, rtol=1e-10)
    for mine, theirs in ((tensors["0.weight"].T, coefs[0]), (tensors["2.weight"].T, coefs[1]),
                         (tensors["0.bias"], intercepts[0]), (tensors["2.bias"], intercepts[1])):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-10)


def test_clipping_follows_a_numpy_loop_over_the_same_batches():
    net, theta, X, Y = training_data(GRID[0])
    expected = theta.copy()
    reference = optim.SGD(expected, lr=0.05, momentum=0.9)
    clipped = 0
    for epoch in range(3):
        order = splitmix64_permutation(N_SAMPLES, SEED, epoch)
        for start in range(0, N_SAMPLES, BATCH_SIZE):
            rows = order[start:start + BATCH_SIZE]
            _, grad = net.loss_grad(expected, X[rows], Y[rows])
            norm = np.linalg.norm(grad)
            if norm > 0.3:
                grad *= 0.3 / norm
                clipped += 1
            reference.step(grad)
    training = Training(net, optim.SGD(theta, lr=0.05, momentum=0.9), X, Y, BATCH_SIZE, seed=SEED, clip_norm=0.3)
    training.run(3)
    assert clipped >= 3  # the clipping acted
    np.testing.assert_allclose(theta, expected, rtol=0, atol=1e-12)


def test_divergence_stops_a_network_and_keeps_its_last_finite_parameters():
    net = Network([Dense(5), Tanh(), Dense(2)], input_shape=(3,), loss="mse")
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(N_SAMPLES, 3)), rng.normal(size=(N_SAMPLES, 2))
    theta = net.init(random_state=0)
    training = Training(net, optim.SGD(theta, lr=1e3), X, Y, N_SAMPLES, shuffle=False)
    history = training.run(50)
    assert history.diverged_epoch is not None and history.diverged_epoch < 50
    assert len(history.loss) == history.diverged_epoch - 1
    assert np.isfinite(theta).all()
    with pytest.raises(RuntimeError, match="diverged"):
        training.epoch()


def test_float32_training_of_a_network_stays_float32_and_follows_float64():
    runs = []
    for dtype in (np.float64, np.float32):
        net, theta, X, Y = training_data(GRID[0], dtype)
        history = Training(net, optim.Adam(theta, lr=0.01), X, Y, BATCH_SIZE, seed=SEED).run(3)
        assert theta.dtype == dtype
        runs.append((theta.astype(np.float64), history.loss))
    np.testing.assert_allclose(runs[1][1], runs[0][1], rtol=1e-4)
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=0, atol=1e-4)


def test_a_network_takes_flat_rows_as_well_as_images():
    net, theta, X, Y = training_data(GRID[0])
    other = theta.copy()
    Training(net, optim.Adam(theta, lr=0.01), X, Y, BATCH_SIZE, seed=SEED).run(2)
    Training(net, optim.Adam(other, lr=0.01), X.reshape(N_SAMPLES, -1), Y, BATCH_SIZE, seed=SEED).run(2)
    np.testing.assert_array_equal(theta, other)


@pytest.mark.parametrize("change, message", [
    (lambda X, Y, theta: (X[:, :, :6], Y, theta),
     r"layer 0 \(Conv2D\): X has shape \(10, 2, 6, 5\); the network takes \(n, 2, 7, 5\)"),
    (lambda X, Y, theta: (X, Y[:, :3], theta), r"Y must have shape \(10, 4\)"),
    (lambda X, Y, theta: (X, Y, theta[:-1]), r"theta must have shape \(133,\)"),
])
def test_bad_input_is_refused_in_one_line_before_anything_trains(change, message):
    net, theta, X, Y = training_data(GRID[0])
    X, Y, params = change(X, Y, theta.copy())
    before = params.copy()
    with pytest.raises(NetworkError, match=message) as raised:
        Training(net, optim.Adam(params, lr=0.01), X, Y, BATCH_SIZE)
    assert "\n" not in str(raised.value)
    np.testing.assert_array_equal(params, before)


def test_a_known_network_is_refused_where_its_input_shape_does_not_match_the_data():
    with pytest.raises(NetworkError, match=r"layer 0 \(Conv2D\): X has shape \(5, 1, 28, 28\); the network takes "
                                           r"\(n, 1, 8, 8\) \(input_shape \(1, 8, 8\)\) or \(n, 64\)"):
        net = known("digits_cnn")
        Training(net, optim.Adam(net.init(random_state=0), lr=0.01), np.zeros((5, 1, 28, 28)), np.eye(10)[:5], 2)


def test_muon_takes_a_networks_layout_and_treats_each_kernel_as_one_matrix():
    """net.layout is what per-tensor rules take: Muon orthogonalises a conv kernel as the matrix (out, in·kh·kw)."""
    from fastgd.reference import ReferenceOptimizer

    net, theta, X, Y = data(GRID[0])
    assert net.layout[0] == (3, 2 * 3 * 3)
    _, grad = net.loss_grad(theta, X, Y)
    expected = theta.copy()
    reference = ReferenceOptimizer("muon", expected, layout=net.layout, lr=0.02)
    optimizer = optim.OPTIMIZERS["muon"](theta, layout=net.layout, lr=0.02)
    for _ in range(3):
        reference.step(grad)
        optimizer.step(grad)
    np.testing.assert_allclose(theta, expected, rtol=1e-12, atol=1e-12)
    assert not np.allclose(theta, data(GRID[0])[1])


def test_fastgd_train_trains_a_known_network_on_the_digits(tmp_path):
    from tests.cli_harness import run_command

    code, out, err = run_command(["train", "--network", "digits_cnn", "--epochs", "2", "--lr", "0.01"], tmp_path)
    assert code == 0, err
    lines = out.splitlines()
    assert "digits_cnn, 6090 parameters" in lines[0]
    losses = [float(line.split()[1]) for line in lines[2:4]]
    assert losses[1] < losses[0]
    assert lines[-1].startswith("test accuracy: ") and float(lines[-1].split()[-1]) > 0.8


def test_fastgd_train_gives_a_known_network_the_l2_penalty_alpha(tmp_path):
    """--alpha penalises a --network's weights: each batch of m rows adds α/(2m)·ΣW², so an epoch's mean loss rises
    by the batches' count times α·ΣW²/(2n) over n rows. At a learning rate of 1e-4 the weights barely move in one
    epoch, so that rise is the initial weights' (the data's part of the loss moves as little)."""
    from tests.cli_harness import run_command

    losses = {}
    for alpha in (None, "2.0"):
        code, out, err = run_command(["train", "--network", "digits_cnn", "--epochs", "1", "--lr", "0.0001"]
                                     + ([] if alpha is None else ["--alpha", alpha]), tmp_path)
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].split("; ")[1] == "digits_cnn, 6090 parameters" + (", L2 penalty alpha 2" if alpha else "")
        losses[alpha] = float(lines[2].split()[1])
    net = known("digits_cnn")
    squares = sum(float(np.sum(value ** 2)) for name, value in net.unpack(net.init(random_state=0)).items()
                  if name.endswith("weight"))
    n_rows = 1347  # digits' training rows, in batches of 32
    assert losses["2.0"] - losses[None] == pytest.approx(-(-n_rows // 32) * 2.0 * squares / (2 * n_rows), rel=0.05)


@pytest.mark.parametrize("arguments, message", [
    (["--network", "no_such_net"], "--network: no known network 'no_such_net'"),
    (["--network", "digits_cnn", "--dataset", "iris"],
     "--network: digits_cnn takes inputs of shape (1, 8, 8) (64 features); iris has 4 features"),
    (["--network", "digits_cnn", "--hidden", "5"], "--hidden is for the MLP; --network digits_cnn declares"),
    (["--network", "mlp_64_100_10", "--dataset", "synthetic-regression-50x64"],
     "--network: mlp_64_100_10 is a classification network with 10 outputs"),
])
def test_fastgd_train_refuses_a_network_that_does_not_fit_the_data_in_one_line(arguments, message, tmp_path):
    from tests.cli_harness import assert_refused

    assert_refused(["train", *arguments], tmp_path, message)
