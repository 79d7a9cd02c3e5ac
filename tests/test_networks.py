"""Network declarations: shape inference, θ's layout in torch's order, initialisation, known architectures, and
the one-line refusals naming the layer. No compiled pass runs here (tests/test_network_passes.py has those)."""

import numpy as np
import pytest

from fastgd import networks
from fastgd.networks import (AvgPool2D, Conv1D, Conv2D, Dense, Flatten, GlobalAvgPool, LayerError, MaxPool1D,
                             MaxPool2D, Network, NetworkError, ReLU, Sigmoid)
from tests.network_cases import GRID, network, torch_module


def test_the_issues_example_declares_2c2d_with_torchs_names_and_shapes():
    net = Network([Conv2D(32, 5, padding="same"), ReLU(), MaxPool2D(2), Conv2D(64, 5, padding="same"), ReLU(),
                   MaxPool2D(2), Flatten(), Dense(1024), ReLU(), Dense(10)], input_shape=(1, 28, 28),
                  loss="cross_entropy")
    assert [(t.name, t.shape) for t in net.tensors] == [
        ("0.weight", (32, 1, 5, 5)), ("0.bias", (32,)), ("3.weight", (64, 32, 5, 5)), ("3.bias", (64,)),
        ("7.weight", (1024, 3136)), ("7.bias", (1024,)), ("9.weight", (10, 1024)), ("9.bias", (10,))]
    assert [layer.out_shape for layer in net.resolved][:7] == [
        (32, 28, 28), (32, 28, 28), (32, 14, 14), (64, 14, 14), (64, 14, 14), (64, 7, 7), (3136,)]
    assert net.layout == [(32, 25), (32,), (64, 800), (64,), (1024, 3136), (1024,), (10, 1024), (10,)]
    assert net.n_params == 3_274_634
    offsets = [t.offset for t in net.tensors]
    assert offsets == list(np.cumsum([0] + [t.size for t in net.tensors])[:-1])


@pytest.mark.parametrize("case", GRID, ids=[case[0] for case in GRID])
def test_layout_is_torchs_state_dict(case):
    pytest.importorskip("torch", reason="torch is the oracle of the layout")
    net = network(case)
    state = torch_module(net, np.zeros(net.n_params)).state_dict()
    assert [(t.name, t.shape) for t in net.tensors] == [(name, tuple(v.shape)) for name, v in state.items()]
    theta = np.arange(net.n_params, dtype=np.float64)
    for name, view in net.unpack(theta).items():
        tensor = next(t for t in net.tensors if t.name == name)
        assert np.shares_memory(view, theta) and view.ravel()[0] == tensor.offset


def test_output_shapes_match_torchs():
    torch = pytest.importorskip("torch", reason="torch is the oracle of the shapes")
    for case in GRID:
        net = network(case)
        module = torch_module(net, np.zeros(net.n_params))
        x = torch.zeros((1,) + net.input_shape, dtype=torch.float64)
        for layer, resolved in zip(module, net.resolved):
            x = layer(x)
            assert tuple(x.shape[1:]) == resolved.out_shape, (case[0], resolved.kind)


@pytest.mark.parametrize("name, n_params", [("2c2d", 3_274_634), ("3c3d", 895_210), ("mnist1d_cnn", 5_210),
                                            ("digits_cnn", 6_090), ("mnist_mlp", 1_336_610)])
def test_known_architectures_have_their_sources_parameter_counts(name, n_params):
    net = networks.known(name)
    assert net.n_params == n_params
    assert net.output_shape == (10,)


def test_3c3d_pools_as_deepobs_tensorflow_same_padding():
    shapes = [layer.out_shape for layer in networks.known("3c3d").resolved if layer.kind == "MaxPool2D"]
    assert shapes == [(64, 14, 14), (96, 6, 6), (128, 3, 3)]
    assert networks.known("mnist1d_cnn").resolved[4].out_shape == (25, 5)


def test_known_refuses_an_unknown_name_listing_the_known():
    with pytest.raises(NetworkError, match="no known network 'lenet'.*2c2d"):
        networks.known("lenet")


def test_torch_init_draws_within_one_over_root_fan_in():
    net = networks.known("digits_cnn")
    theta = net.init(random_state=1)
    for tensor in net.tensors:
        shape = net.resolved[tensor.layer].weight_shape
        bound = 1 / np.sqrt(np.prod(shape[1:]))
        values = theta[tensor.offset:tensor.offset + tensor.size]
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.7 * bound  # drawn, not zero or squeezed
    np.testing.assert_array_equal(theta, net.init(random_state=1))
    assert not np.array_equal(theta, net.init(random_state=2))


def test_lecture_init_has_glorot_weights_and_zero_biases_in_float32():
    net = networks.known("digits_cnn")
    theta = net.init(random_state=0, scheme="lecture", dtype=np.float32)
    assert theta.dtype == np.float32
    for tensor in net.tensors:
        values = theta[tensor.offset:tensor.offset + tensor.size]
        if tensor.name.endswith("bias"):
            assert not values.any()
            continue
        shape = tensor.shape
        receptive = int(np.prod(shape[2:]))
        bound = np.sqrt(6 / ((shape[0] + shape[1]) * receptive))
        assert 0.7 * bound < np.abs(values).max() <= bound


@pytest.mark.parametrize("layers, input_shape, message", [
    ([Conv2D(4, 3), Flatten(), Conv2D(2, 3), Flatten(), Dense(2)], (1, 8, 8),
     r"^layer 2 \(Conv2D\): takes an input \(channels, height, width\), got \(144,\) \(a flat vector"),
    ([Conv2D(4, 9), Flatten(), Dense(2)], (1, 8, 8), r"^layer 0 \(Conv2D\): kernel \(9, 9\) is larger than its "),
    ([Conv2D(4, 3, stride=0), Flatten(), Dense(2)], (1, 8, 8), r"^layer 0 \(Conv2D\): stride must be ≥ 1, got 0$"),
    ([Conv2D(4, 3), ReLU(), Conv2D(-1, 3), Flatten(), Dense(2)], (1, 8, 8),
     r"^layer 2 \(Conv2D\): out_channels must be ≥ 1, got -1$"),
    ([Conv2D(4, 3, stride=2, padding="same"), Flatten(), Dense(2)], (1, 8, 8),
     r"^layer 0 \(Conv2D\): padding='same' needs stride 1"),
    ([Conv2D(4, 3, padding="full"), Flatten(), Dense(2)], (1, 8, 8), r"^layer 0 \(Conv2D\): padding must be"),
    ([Conv1D(4, 3), Flatten(), Dense(2)], (1, 8, 8), r"^layer 0 \(Conv1D\): takes an input \(channels, length\)"),
    ([MaxPool2D(3), ReLU(), MaxPool2D(3), Flatten(), Dense(2)], (1, 8, 8),
     r"^layer 2 \(MaxPool2D\): pool \(3, 3\) is larger than its input \(2, 2\)$"),
    ([MaxPool1D(2, padding=2), Flatten(), Dense(2)], (1, 8), r"^layer 0 \(MaxPool1D\): padding 2 is more than half"),
    ([AvgPool2D(2, stride=-1), Flatten(), Dense(2)], (1, 8, 8), r"^layer 0 \(AvgPool2D\): stride must be ≥ 1"),
    ([Dense(2)], (1, 8, 8), r"^layer 0 \(Dense\): takes a flat input \(features,\), got \(1, 8, 8\): put Flatten"),
    ([Dense(0)], (4,), r"^layer 0 \(Dense\): out_features must be ≥ 1, got 0$"),
    ([Dense(2.5)], (4,), r"^layer 0 \(Dense\): out_features must be an integer, got 2.5$"),
    ([GlobalAvgPool(), Dense(2)], (4,), r"^layer 0 \(GlobalAvgPool\): takes an input \(channels, length\)"),
    ([Dense(3), "relu"], (4,), r"^layer 1 \(str\): is not a layer fastgd knows"),
    ([Conv2D(2, 3), Sigmoid()], (1, 5, 5), r"^layer 1 \(Sigmoid\): the network's output must be flat"),
])
def test_a_layer_that_cannot_stand_is_refused_in_one_line_naming_it(layers, input_shape, message):
    with pytest.raises(LayerError, match=message) as error:
        Network(layers, input_shape=input_shape)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("arguments, message", [
    (dict(layers=[], input_shape=(4,)), "at least one layer"),
    (dict(layers=[Dense(2)], input_shape=(0,)), "input_shape must be 1 to 3 positive integers"),
    (dict(layers=[Dense(2)], input_shape=(1, 2, 3, 4)), "input_shape must be"),
    (dict(layers=[Dense(2)], input_shape=4), "input_shape must be"),
    (dict(layers=[Dense(2)], input_shape=(4,), loss="hinge"), "loss must be one of"),
])
def test_bad_network_arguments_are_refused_in_one_line(arguments, message):
    with pytest.raises(NetworkError, match=message):
        Network(**arguments)


def test_data_that_does_not_match_the_input_shape_is_refused_before_anything_runs():
    net = networks.known("digits_cnn")
    theta = net.init(random_state=0)
    with pytest.raises(NetworkError, match=r"X has shape \(3, 8, 8\); the network takes \(n, 1, 8, 8\)"):
        net.loss_grad(theta, np.zeros((3, 8, 8)), np.zeros((3, 10)))
    with pytest.raises(NetworkError, match=r"Y must have shape \(3, 10\) \(one-hot\), got \(3, 9\)"):
        net.loss_grad(theta, np.zeros((3, 64)), np.zeros((3, 9)))
    with pytest.raises(NetworkError, match="X contains NaN"):
        net.predict(theta, np.full((2, 1, 8, 8), np.nan))
    with pytest.raises(NetworkError, match=r"theta must have shape \(6090,\)"):
        net.predict(theta[:-1], np.zeros((2, 64)))
    with pytest.raises(NetworkError, match="scheme must be one of"):
        net.init(scheme="kaiming")


def test_a_workspace_that_would_not_fit_is_refused_with_the_size_it_needs(monkeypatch):
    from fastgd.networks import network as network_module

    net = networks.known("2c2d")
    monkeypatch.setattr(network_module, "physical_memory_bytes", lambda: 2 ** 30)
    # per row 784 + 2·25088 + 6272 + 2·12544 + 2·3136 + 2·1024 + 10 = 90650 elements, activations and deltas
    # alike; the second convolution's columns and product, (32·25 + 64)·196 = 169344 a sample, for one sample (more
    # than the 2¹⁷ elements aimed at); θ and its gradient: 4 B · (2·90650·10⁴ + 169344 + 2·3274634) = 6.78 GiB
    with pytest.raises(NetworkError, match=r"^layer 0 \(Conv2D\) and the rest need 6.78 GiB for 10000 rows in "
                                           r"float32 \(3274634 parameters\); this machine has 1 GiB$"):
        net.check_fits(10_000, np.float32)
    net.check_fits(64, np.float32)
    huge = Network([Dense(2 ** 18)], input_shape=(2 ** 14,))
    with pytest.raises(NetworkError, match="this machine has 1 GiB"):
        huge.init()


def test_describe_names_every_layer_with_its_shapes_and_parameters():
    text = networks.known("mnist1d_cnn").describe()
    assert "0 Conv1D(out_channels=25, kernel_size=5, stride=2, padding=1, bias=True): (1, 40) → (25, 19), 150" in text
    assert text.endswith("5210 parameters; loss cross_entropy")
