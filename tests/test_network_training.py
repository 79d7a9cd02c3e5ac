"""A declared network's compiled epoch (fastgd.kernels.train.train_epoch with its network_entry pass) against a
plain PyTorch loop from the same θ over the same batches: float64, 50 update steps, SGD with momentum and Adam, θ and
every epoch's loss to 1e-9; and a per-tensor rule (Muon) over a network's layout."""

import numpy as np
import pytest

from fastgd import optim
from fastgd.kernels import network as network_kernels
from fastgd.kernels.train import network_entry, train_epoch
from fastgd.reference import splitmix64_permutation
from fastgd.training import make_schedule
from tests.network_cases import GRID, data, torch_module

torch = pytest.importorskip("torch", reason="a plain PyTorch loop is the oracle of training")

N_SAMPLES, BATCH_SIZE, N_EPOCHS, SEED = 10, 4, 17, 5  # batches of 4, 4 and 2: 51 update steps

RULES = [("sgd", dict(lr=0.05, momentum=0.9), lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9)),
         ("adam", dict(lr=0.01), lambda params: torch.optim.Adam(params, lr=0.01))]
CASES = [GRID[0], GRID[7]]  # a 2-D convolution with "same" padding and a max pool; strided 1-D convolutions


def training_data(case):
    net, theta, _, _ = data(case)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(N_SAMPLES,) + net.input_shape)
    Y = np.eye(net.n_outputs)[rng.integers(0, net.n_outputs, N_SAMPLES)]
    return net, theta, X, Y


def fastgd_training(net, theta, X, Y, rule, hyperparameters):
    optimizer = optim.OPTIMIZERS[rule](theta, **hyperparameters)
    packed = optimizer.packed()
    blocks, columns = net.workspace_elements(BATCH_SIZE)
    flat_X, flat_Y = net.check_data(X, Y, theta.dtype)
    flat_X = flat_X.reshape(N_SAMPLES, -1)
    buffers = (np.empty(N_SAMPLES, np.int64), np.empty_like(theta), np.empty(blocks + columns), np.empty(blocks),
               np.empty(BATCH_SIZE * flat_X.shape[1]), np.empty(BATCH_SIZE * Y.shape[1]))
    losses = []
    for epoch in range(N_EPOCHS):
        losses.append(train_epoch(network_entry(theta.dtype), theta, flat_X, flat_Y, net.plan.ravel().copy(),
                                  network_kernels.LOSSES[net.loss_name], blocks, 0.0, packed.function, packed.hyper,
                                  packed.hyper[0], packed.states, packed.aux, packed.counters, packed.layout,
                                  make_schedule(), None, BATCH_SIZE, True, SEED, epoch, *buffers))
    return losses


def torch_training(net, theta, X, Y, make_optimizer):
    module = torch_module(net, theta)
    optimizer = make_optimizer(module.parameters())
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
            total += float(loss) * len(rows)
        losses.append(total / N_SAMPLES)
    return np.concatenate([p.detach().numpy().ravel() for p in module.parameters()]), losses


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
@pytest.mark.parametrize("rule, hyperparameters, make_optimizer", RULES, ids=[rule[0] for rule in RULES])
def test_compiled_epochs_follow_a_plain_pytorch_loop(case, rule, hyperparameters, make_optimizer):
    net, theta, X, Y = training_data(case)
    start = theta.copy()
    torch_theta, torch_losses = torch_training(net, theta.copy(), X, Y, make_optimizer)
    losses = fastgd_training(net, theta, X, Y, rule, hyperparameters)
    moved = np.abs(torch_theta - start).max()
    assert moved > 1e-2  # the runs went somewhere
    assert torch_losses[-1] < torch_losses[0]
    np.testing.assert_allclose(theta, torch_theta, rtol=0, atol=1e-9 * np.abs(torch_theta).max())
    np.testing.assert_allclose(losses, torch_losses, rtol=1e-9)


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
