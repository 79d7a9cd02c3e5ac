"""A declared network's forward pass, loss and gradient: the NumPy reference against torch autograd with the same θ,
and the compiled pass against both, over the grid of shapes of tests/network_cases.py (float64 to 1e-10 relative,
float32 to 1e-5)."""

import numpy as np
import pytest

from fastgd import networks
from fastgd.networks import reference
from tests.network_cases import GRID, data, torch_loss_and_gradient

torch = pytest.importorskip("torch", reason="torch autograd is the oracle of the passes")

IDS = [case[0] for case in GRID]


def assert_close(actual, expected, rtol):
    """Equal to ``rtol`` relative to the largest entry of ``expected`` (entries near zero are judged by it)."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(float(np.abs(expected).max(initial=0.0)), np.finfo(np.float64).tiny)
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("case", GRID, ids=IDS)
def test_reference_matches_torch_autograd_in_float64(case):
    net, theta, X, Y = data(case)
    loss, grad, outputs = torch_loss_and_gradient(net, theta, X, Y)
    assert_close(reference.forward(net, theta, X)[-1], outputs, 1e-10)
    ref_loss, ref_grad = reference.loss_and_gradient(net, theta, X, Y)
    assert_close(ref_loss, loss, 1e-10)
    assert_close(ref_grad, grad, 1e-10)
    assert np.abs(grad).max() > 0


@pytest.mark.parametrize("case", GRID, ids=IDS)
def test_compiled_pass_matches_the_reference_and_torch_in_float64(case):
    net, theta, X, Y = data(case)
    loss, grad = net.loss_grad(theta, X, Y)
    ref_loss, ref_grad = reference.loss_and_gradient(net, theta, X, Y)
    torch_loss, torch_grad, outputs = torch_loss_and_gradient(net, theta, X, Y)
    assert_close(loss, ref_loss, 1e-10)
    assert_close(grad, ref_grad, 1e-10)
    assert_close(loss, torch_loss, 1e-10)
    assert_close(grad, torch_grad, 1e-10)
    assert_close(net.predict(theta, X), outputs, 1e-10)
    assert_close(net.loss(theta, X, Y), torch_loss, 1e-10)


@pytest.mark.parametrize("case", GRID, ids=IDS)
def test_compiled_pass_in_float32_stays_float32_and_matches_torch_in_float64(case):
    net, theta, X, Y = data(case, dtype=np.float32)
    loss, grad = net.loss_grad(theta, X, Y)
    assert grad.dtype == np.float32 and net.predict(theta, X).dtype == np.float32
    # the oracle runs in float64 on the same float32 values: what float32 loses is all that is measured
    torch_loss, torch_grad, outputs = torch_loss_and_gradient(net, theta.astype(np.float64), X.astype(np.float64),
                                                              Y.astype(np.float64))
    assert_close(loss, torch_loss, 1e-5)
    assert_close(grad, torch_grad, 1e-5)
    assert_close(net.predict(theta, X), outputs, 1e-5)


@pytest.mark.parametrize("name", sorted(set(networks.KNOWN) - {"2c2d", "3c3d"}))
def test_known_networks_match_torch_autograd(name):
    net = networks.known(name)
    rng = np.random.default_rng(3)
    theta = net.init(random_state=3)
    X = rng.normal(size=(2,) + net.input_shape)
    Y = np.eye(net.n_outputs)[[1, 7]]
    loss, grad = net.loss_grad(theta, X, Y)
    torch_loss, torch_grad, _ = torch_loss_and_gradient(net, theta, X, Y)
    assert_close(loss, torch_loss, 1e-10)
    assert_close(grad, torch_grad, 1e-10)


def test_prediction_in_chunks_is_the_whole_batchs():
    case = GRID[0]
    net, theta, X, _ = data(case)
    X = np.concatenate([X] * 3)  # 9 rows: chunks of 4, 4 and 1
    whole = reference.forward(net, theta, X)[-1]
    assert_close(net.predict(theta, X, chunk_size=4), whole, 1e-12)
    assert_close(net.predict(theta, X.reshape(X.shape[0], -1), chunk_size=1), whole, 1e-12)


def test_the_gradient_is_the_losss_slope_by_central_differences():
    """Independent of torch and the reference: the compiled loss, shifted along each coordinate of θ."""
    net, theta, X, Y = data(GRID[1])
    _, grad = net.loss_grad(theta, X, Y)
    step = 1e-6
    for k in np.random.default_rng(0).choice(theta.size, 12, replace=False):
        shifted = theta.copy()
        shifted[k] += step
        up = net.loss(shifted, X, Y)
        shifted[k] -= 2 * step
        down = net.loss(shifted, X, Y)
        assert abs((up - down) / (2 * step) - grad[k]) <= 1e-7 * max(1.0, abs(grad[k]))


def conv_sizes(net):
    """[(a sample's inputs, its im2col matrix, its product)] of each convolution, in elements, from the declaration."""
    return [(int(np.prod(layer.in_chw)), layer.in_chw[0] * layer.kernel[0] * layer.kernel[1] * layer.out_chw[1]
             * layer.out_chw[2], int(np.prod(layer.out_chw)))
            for layer in net.resolved if layer.kind.startswith("Conv")]


def compiled_pass(net, theta, X, Y, columns):
    """(loss, gradient) of the compiled pass with a ``columns`` of ``columns`` elements."""
    from fastgd.kernels import network as kernels

    blocks, _ = net.workspace_elements(X.shape[0])
    X, Y = net.check_data(X, Y, theta.dtype)  # read-only, as Network passes them: no new specialisation
    grad = np.empty_like(theta)
    loss = kernels.loss_and_gradient(theta, X.reshape(-1), Y.reshape(-1), X.shape[0], net.plan,
                                     kernels.LOSSES[net.loss_name], grad, np.empty(blocks), np.empty(blocks),
                                     np.empty(columns))
    return loss, grad


@pytest.mark.parametrize("case", [GRID[0], GRID[6], GRID[7]], ids=[GRID[0][0], GRID[6][0], GRID[7][0]])
def test_convolutions_in_groups_of_fewer_samples_than_the_batch_give_the_same_pass(case):
    """``columns`` for one sample of the largest convolution, too small to keep the im2col matrices: each convolution
    then builds them again in the backward pass and takes its products in groups smaller than the batch (one sample
    for the largest), where the tests above keep them and take the whole batch at once."""
    net, theta, X, Y = data(case)
    sizes = conv_sizes(net)
    n_rows = X.shape[0]
    kept = n_rows * sum(matrix for _, matrix, _ in sizes)
    # by default: every im2col matrix kept, then one group of the whole batch's inputs and products
    assert net.workspace_elements(n_rows)[1] == kept + n_rows * max(inputs + out for inputs, _, out in sizes)
    one_sample = max(inputs + matrix + out for inputs, matrix, out in sizes)  # inputs, im2col matrix, product
    assert one_sample < kept
    loss, grad = compiled_pass(net, theta, X, Y, one_sample)
    ref_loss, ref_grad = reference.loss_and_gradient(net, theta, X, Y)
    assert_close(loss, ref_loss, 1e-10)
    assert_close(grad, ref_grad, 1e-10)


@pytest.mark.parametrize("case", [GRID[0], GRID[7], GRID[8]], ids=[GRID[0][0], GRID[7][0], GRID[8][0]])
def test_kept_im2col_matrices_with_groups_of_one_sample_give_the_same_pass(case):
    """``columns`` that holds the kept matrices and one sample's inputs and product of the largest convolution: the
    products in groups of one sample (the kept matrices read group by group)."""
    net, theta, X, Y = data(case)
    sizes = conv_sizes(net)
    kept = X.shape[0] * sum(matrix for _, matrix, _ in sizes)
    loss, grad = compiled_pass(net, theta, X, Y, kept + max(inputs + out for inputs, _, out in sizes))
    ref_loss, ref_grad = reference.loss_and_gradient(net, theta, X, Y)
    assert_close(loss, ref_loss, 1e-10)
    assert_close(grad, ref_grad, 1e-10)


@pytest.mark.parametrize("keep", [True, False], ids=["kept", "not_kept"])
def test_the_backward_pass_reads_the_forward_passs_im2col_matrices_where_they_are_kept(keep):
    """The inputs' block wiped between the passes: where the matrices are kept, the first convolution's weight
    gradient is still the reference's (the backward pass read them, not the inputs); where they are not, it is
    built from the wiped inputs, and is not."""
    from fastgd._config import jit
    from fastgd.kernels import network as kernels

    @jit
    def wiped_pass(theta, inputs, targets, n_rows, plan, loss, grad, activations, deltas, columns):
        kernels._forward(theta, inputs, n_rows, plan, activations, columns)
        outputs, size = kernels._output_block(n_rows, plan, activations)
        output_deltas, _ = kernels._output_block(n_rows, plan, deltas)
        kernels._loss(outputs, targets, n_rows, size, loss, output_deltas, True)
        activations[:inputs.size] = 0.0
        kernels._backward(theta, n_rows, plan, activations, deltas, grad, columns)

    net, theta, X, Y = data(GRID[7])
    sizes = conv_sizes(net)
    blocks, columns = net.workspace_elements(X.shape[0])
    if not keep:
        columns = max(inputs + matrix + out for inputs, matrix, out in sizes)
    grad = np.empty_like(theta)
    wiped_pass(theta, X.reshape(-1), Y.reshape(-1), X.shape[0], net.plan, kernels.LOSSES[net.loss_name], grad,
               np.empty(blocks), np.empty(blocks), np.empty(columns))
    _, ref_grad = reference.loss_and_gradient(net, theta, X, Y)
    first_weight = slice(0, net.tensors[0].size)
    assert net.tensors[0].name.endswith("weight") and np.abs(ref_grad[first_weight]).max() > 0
    if keep:
        assert_close(grad, ref_grad, 1e-10)
    else:
        np.testing.assert_array_equal(grad[first_weight], 0.0)


@pytest.mark.parametrize("whole_batch", [True, False], ids=["one_group", "groups"])
def test_a_block_between_two_convolutions_is_stored_samples_innermost_where_both_take_the_batch_at_once(whole_batch):
    """Conv1D, ReLU, Conv1D: after the forward pass, the ReLU's block holds the reference's outputs as (c·l) × n (the
    samples innermost) where both convolutions take the whole batch in one group, else row by row; the block after the
    second convolution (a Tanh follows) row by row in both."""
    from fastgd.kernels import network as kernels

    net, theta, X, _ = data(GRID[7])
    n_rows = X.shape[0]
    blocks, columns = net.workspace_elements(n_rows)
    if not whole_batch:
        columns = max(inputs + matrix + out for inputs, matrix, out in conv_sizes(net))  # groups of one sample
    activations = np.empty(blocks)
    kernels.forward(theta, X.reshape(-1), n_rows, net.plan, activations, np.empty(columns))
    expected = reference.forward(net, theta, X)
    for layer, inner in ((1, whole_batch), (3, False)):
        size = int(np.prod(net.resolved[layer].out_chw))
        start = n_rows * net.plan[layer, kernels.PLAN_OUT_ROW]
        rows = expected[layer + 1].reshape(n_rows, size)
        assert_close(activations[start:start + n_rows * size], (rows.T if inner else rows).reshape(-1), 1e-12)


def test_the_im2col_matrices_are_kept_up_to_their_budget():
    """The MNIST-1D CNN at batch 100 keeps its three convolutions' matrices (5·19 + 75·10 + 75·5 elements a sample);
    the digits CNN at batch 64 (9·64 + 144·16 a sample) and DeepOBS's 3c3d at batch 128 (millions) do not: their
    ``columns`` stays one group's inputs, matrix and product."""
    from fastgd.kernels import network as kernels

    mnist1d = networks.known("mnist1d_cnn")
    assert conv_sizes(mnist1d) == [(40, 5 * 19, 25 * 19), (25 * 19, 75 * 10, 25 * 10), (25 * 10, 75 * 5, 25 * 5)]
    kept = 100 * (5 * 19 + 75 * 10 + 75 * 5)
    assert kept <= kernels.KEPT_BUDGET
    assert mnist1d.workspace_elements(100)[1] == kept + 100 * (25 * 19 + 25 * 10)
    for name, n_rows in (("digits_cnn", 64), ("3c3d", 128)):
        net = networks.known(name)
        largest = max(inputs + matrix + out for inputs, matrix, out in conv_sizes(net))
        assert n_rows * sum(matrix for _, matrix, _ in conv_sizes(net)) > kernels.KEPT_BUDGET
        group = min(n_rows, max(kernels.COLUMNS_BUDGET // largest, kernels.MIN_GROUP_SAMPLES))
        assert net.workspace_elements(n_rows)[1] == group * largest
    # DeepOBS 2c2d's second convolution takes 175,616 elements a sample: 4 a group, not the budget's 1; a batch of 2
    # takes 2
    largest = max(inputs + matrix + out for inputs, matrix, out in conv_sizes(networks.known("2c2d")))
    assert kernels.COLUMNS_BUDGET // largest == 0
    assert networks.known("2c2d").workspace_elements(128)[1] == kernels.MIN_GROUP_SAMPLES * largest
    assert networks.known("2c2d").workspace_elements(2)[1] == 2 * largest


@pytest.mark.parametrize("pool, input_shape", [
    (networks.MaxPool2D(2), (3, 4, 6)),       # 2×2 windows covering the planes (the planes stacked as one)
    (networks.MaxPool2D(2), (3, 5, 7)),       # 2×2 windows tiling, a row and a column left over
    (networks.MaxPool2D(3), (2, 6, 7)),       # other tiling windows
    (networks.MaxPool2D(2, 1), (2, 4, 5)),    # overlapping windows: the general path
    (networks.MaxPool1D(2), (2, 9)),
], ids=["2x2_exact", "2x2_odd", "3x3", "overlapping", "1d"])
def test_max_pool_sends_each_delta_where_torch_does_on_ties_and_nans(pool, input_shape):
    """The pool layer alone (forward, then backward from given deltas) on data full of ties, signed zeros and NaNs:
    its outputs and input deltas are torch's, value for value (torch picks the first largest, or the last NaN)."""
    from fastgd._config import jit
    from fastgd.kernels import network as kernels

    @jit
    def pool_pass(theta, layer, n_rows, activations, deltas, grad, columns):
        kernels._forward_layer(theta, layer, n_rows, activations, columns)
        kernels._backward_layer(theta, layer, n_rows, activations, deltas, grad, columns, True)

    net = networks.Network([pool, networks.Flatten(), networks.Dense(1)], input_shape=input_shape, loss="mse")
    rng = np.random.default_rng(3)
    n_rows = 2
    X = rng.integers(-2, 3, size=(n_rows,) + input_shape).astype(np.float64)  # many ties
    X[X == -2] = -0.0
    X.reshape(-1)[rng.choice(X.size, X.size // 6, replace=False)] = np.nan
    blocks, columns = net.workspace_elements(n_rows)
    activations, deltas = np.zeros(blocks), np.zeros(blocks)
    activations[:X.size] = X.reshape(-1)
    deltas[:X.size] = 7.0  # stale values the backward must overwrite
    layer = net.plan[0]
    out_start = n_rows * layer[kernels.PLAN_OUT_ROW]
    out_size = layer[kernels.PLAN_OUT_C] * layer[kernels.PLAN_OUT_H] * layer[kernels.PLAN_OUT_W]
    upstream = rng.normal(size=n_rows * out_size)
    deltas[out_start:out_start + upstream.size] = upstream
    theta = net.init(random_state=0)
    pool_pass(theta, layer, n_rows, activations, deltas, np.zeros_like(theta), np.zeros(columns))

    x = torch.tensor(X if len(input_shape) == 3 else X[:, :, None, :], requires_grad=True)
    kernel = pool.kernel_size if isinstance(pool.kernel_size, tuple) else (pool.kernel_size,) * 2
    if len(input_shape) == 2:
        kernel = (1, pool.kernel_size)
    stride = pool.stride if pool.stride is not None else kernel
    if len(input_shape) == 2:
        stride = (1, stride if isinstance(stride, int) else stride[1])
    out = torch.nn.functional.max_pool2d(x, kernel, stride)
    out.backward(torch.from_numpy(upstream.reshape(out.shape)))
    np.testing.assert_array_equal(activations[out_start:out_start + upstream.size], out.detach().numpy().reshape(-1))
    np.testing.assert_array_equal(deltas[:X.size], x.grad.numpy().reshape(-1))
    assert np.isnan(out.detach().numpy()).any() and (x.grad.numpy() != 0).any()


def test_a_nan_passes_through_relu_as_in_torch():
    torch = pytest.importorskip("torch", reason="torch is the oracle")
    from fastgd.kernels import network as kernels
    from tests.network_cases import torch_module

    net = networks.Network([networks.Dense(4), networks.ReLU(), networks.Dense(3)], input_shape=(5,))
    theta = net.init(random_state=0)
    X = np.random.default_rng(0).normal(size=(3, 5))
    X[1, 2] = np.nan
    blocks, columns = net.workspace_elements(3)
    ours = kernels.forward(theta, X.reshape(-1), 3, net.plan, np.empty(blocks), np.empty(columns))
    with torch.no_grad():
        theirs = torch_module(net, theta)(torch.from_numpy(X)).numpy()
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    assert np.isnan(ours[1]).all() and not np.isnan(ours[[0, 2]]).any()


def by_hand_penalty(net, theta, alpha, n_rows):
    """α/(2m)·ΣW² over the weights the NumPy reference unpacks (not the biases)."""
    weights = [parameters[0] for parameters in reference.unpack(net, theta) if parameters is not None]
    return alpha / (2 * n_rows) * sum(float(np.sum(w.astype(np.float64) ** 2)) for w in weights)


@pytest.mark.parametrize("case", [GRID[0], GRID[4], GRID[7]], ids=[GRID[0][0], GRID[4][0], GRID[7][0]])
def test_an_l2_penalty_adds_alpha_over_2m_times_the_squared_weights_and_its_gradient(case):
    """scikit-learn's penalty, weights only: the loss is the reference's plus α/(2m)·ΣW² by hand, the gradient the
    reference's plus α/m·W on the weights and unchanged on the biases (a case without biases included)."""
    plain, theta, X, Y = data(case)
    net = plain.with_alpha(0.3)
    ref_loss, ref_grad = reference.loss_and_gradient(plain, theta, X, Y)
    penalty = by_hand_penalty(net, theta, 0.3, X.shape[0])
    assert penalty > 0
    loss, grad = net.loss_grad(theta, X, Y)
    assert_close(loss, ref_loss + penalty, 1e-12)
    assert_close(net.loss(theta, X, Y), ref_loss + penalty, 1e-12)
    expected = ref_grad.copy()
    for tensor, (weight, _) in zip([t for t in net.tensors if t.name.endswith(".weight")],
                                   [p for p in reference.unpack(net, theta) if p is not None]):
        expected[tensor.offset:tensor.offset + tensor.size] += 0.3 / X.shape[0] * weight.ravel()
    assert_close(grad, expected, 1e-12)
    assert plain.alpha == 0.0 and plain.loss(theta, X, Y) == pytest.approx(ref_loss, rel=1e-12)
    with pytest.raises(networks.NetworkError, match=r"^alpha must be a finite number >= 0, got -1$"):
        plain.with_alpha(-1)


def test_a_networks_landscape_is_its_loss_at_theta_plus_a_times_d_by_the_reference(monkeypatch):
    """The centre of the plane is the network's loss at θ, a point (a, b) the NumPy reference's loss at θ + a·d₁ +
    b·d₂ plus the penalty by hand, with the rows taken in chunks; the directions are filter-normalised."""
    from fastgd import landscape

    plain, theta, X, Y = data(GRID[0])
    X, Y = np.concatenate([X] * 3), np.concatenate([Y] * 3)  # 9 rows: chunks of 4, 4 and 1
    net = plain.with_alpha(0.05)
    monkeypatch.setattr(landscape, "CHUNK", 4)
    rng = np.random.default_rng(3)
    first, second = landscape.random_direction(net, theta, rng), landscape.random_direction(net, theta, rng)
    for direction in (first, second):
        for name, view in net.unpack(direction).items():
            if name.endswith(".bias"):
                assert not view.any()
                continue
            trained = net.unpack(theta)[name]
            np.testing.assert_allclose(np.linalg.norm(view.reshape(view.shape[0], -1), axis=1),
                                       np.linalg.norm(trained.reshape(trained.shape[0], -1), axis=1), rtol=1e-12)
    alphas, betas = [-0.5, 0.0, 0.75], [-1.0, 0.0, 0.25, 2.0]
    surface = landscape.plane(net, theta, X, Y, alphas, betas, directions=(first, second))
    assert surface.shape == (4, 3)
    assert abs(surface[1, 1] - net.loss(theta, X, Y)) <= 1e-12 * net.loss(theta, X, Y)
    for row, b in enumerate(betas):
        for column, a in enumerate(alphas):
            shifted = theta + a * first + b * second
            expected = reference.loss_and_gradient(plain, shifted, X, Y)[0] + by_hand_penalty(net, shifted, 0.05, 9)
            assert abs(surface[row, column] - expected) <= 1e-12 * expected
    line = landscape.line(net, theta, X, Y, alphas, direction=first)
    np.testing.assert_array_equal(line, surface[1])
    with pytest.raises(ValueError, match="direction must be an array of θ's shape"):
        landscape.line(net, theta, X, Y, alphas, direction=first[:-1])


def test_binary_cross_entropy_is_torchs_at_logits_far_from_zero():
    """BCEWithLogitsLoss where e^z overflows float64 (|z| = 800) and where σ(z) rounds to 1 (z = 40): the loss and
    its gradient stay finite and torch's, whichever the sign."""
    net = networks.Network([networks.Dense(1)], input_shape=(1,), loss="binary_cross_entropy")
    theta = np.array([1.0, 0.5])  # z = x + 0.5
    X = np.array([[-800.5], [-40.5], [-0.5], [2.5], [39.5], [799.5]])
    Y = np.array([[0.3], [1.0], [0.0], [0.7], [0.0], [1.0]])
    loss, grad = net.loss_grad(theta, X, Y)
    torch_loss, torch_grad, _ = torch_loss_and_gradient(net, theta, X, Y)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert_close(loss, torch_loss, 1e-12)
    assert_close(grad, torch_grad, 1e-12)
    ref_loss, ref_grad = reference.loss_and_gradient(net, theta, X, Y)
    assert_close(ref_loss, torch_loss, 1e-12)
    assert_close(ref_grad, torch_grad, 1e-12)
