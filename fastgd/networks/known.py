"""Networks known by name, each with the source it was transcribed from: ``known("mnist_2c2d")``.

The layers are the sources'; initialisation is :meth:`fastgd.networks.Network.init`'s (the
sources' own schemes, DeepOBS's truncated normals and constant biases, are not reproduced).
"""

from fastgd.networks.layers import ACTIVATION_LAYERS, Conv1D, Conv2D, Dense, Flatten, MaxPool2D, ReLU
from fastgd.networks.network import Network, NetworkError

__all__ = ["known", "KNOWN", "mnist_2c2d", "cifar10_3c3d", "mnist1d_cnn", "digits_cnn", "mnist_mlp", "mlp"]


def mnist_2c2d(n_classes=10):
    """DeepOBS's ``mnist_2c2d`` (Schneider, Balles & Hennig, ICLR 2019; ``net_mnist_2c2d`` in
    ``deepobs/pytorch/testproblems/testproblems_modules.py``), on (1, 28, 28).

    Two 5×5 convolutions of 32 and 64 channels, TensorFlow "same" padding, each followed by ReLU
    and a 2×2 max pool of stride 2 (its "same" padding pads nothing on 28 and 14), then a dense layer
    of 1024 units with ReLU and the output layer: 3,274,634 parameters.
    """
    return Network([Conv2D(32, 5, padding="same"), ReLU(), MaxPool2D(2), Conv2D(64, 5, padding="same"), ReLU(),
                    MaxPool2D(2), Flatten(), Dense(1024), ReLU(), Dense(n_classes)],
                   input_shape=(1, 28, 28), loss="cross_entropy")


def cifar10_3c3d(n_classes=10):
    """DeepOBS's ``cifar10_3c3d`` (Schneider, Balles & Hennig, ICLR 2019; ``net_cifar10_3c3d`` in
    ``deepobs/pytorch/testproblems/testproblems_modules.py``), on (3, 32, 32).

    Convolutions of 64 (5×5, "valid"), 96 (3×3, "valid") and 128 (3×3, "same") channels, each
    followed by ReLU and a 3×3 max pool of stride 2 with TensorFlow's "same" padding (one padded
    place after: 28 → 14, 12 → 6, 6 → 3), then dense layers of 512 and 256 units with ReLU and the
    output layer: 895,210 parameters. (DeepOBS adds an L2 penalty of 0.002 on the weights;
    that belongs to the test problem, not the network.)
    """
    return Network([Conv2D(64, 5, padding="valid"), ReLU(), MaxPool2D(3, 2, padding="same"),
                    Conv2D(96, 3, padding="valid"), ReLU(), MaxPool2D(3, 2, padding="same"),
                    Conv2D(128, 3, padding="same"), ReLU(), MaxPool2D(3, 2, padding="same"), Flatten(),
                    Dense(512), ReLU(), Dense(256), ReLU(), Dense(n_classes)],
                   input_shape=(3, 32, 32), loss="cross_entropy")


def mnist1d_cnn(n_classes=10):
    """The convolutional baseline of MNIST-1D (Greydanus, "Scaling down deep learning", 2020;
    ``ConvBase`` in ``greydanus/mnist1d``, ``models.py``), on (1, 40).

    Three 1-D convolutions of 25 channels (kernel 5 then 3 and 3, stride 2, padding 1), each
    followed by ReLU (40 → 19 → 10 → 5), then a dense output layer on the 125 features: 5,210
    parameters.
    """
    return Network([Conv1D(25, 5, stride=2, padding=1), ReLU(), Conv1D(25, 3, stride=2, padding=1), ReLU(),
                    Conv1D(25, 3, stride=2, padding=1), ReLU(), Flatten(), Dense(n_classes)],
                   input_shape=(1, 40), loss="cross_entropy")


def digits_cnn(n_classes=10):
    """fastgd's small CNN for scikit-learn's 8×8 digits (``load_digits``), on (1, 8, 8); no outside source.

    3×3 convolutions of 16 and 32 channels with "same" padding, each followed by ReLU and a 2×2
    max pool (8 → 4 → 2), then a dense output layer on the 128 features: 6,090 parameters.
    """
    return Network([Conv2D(16, 3, padding="same"), ReLU(), MaxPool2D(2), Conv2D(32, 3, padding="same"), ReLU(),
                    MaxPool2D(2), Flatten(), Dense(n_classes)],
                   input_shape=(1, 8, 8), loss="cross_entropy")


def mlp(layer_sizes, activation="relu", loss="cross_entropy"):
    """A fully connected network of ``layer_sizes`` (input first, output last), ``activation`` between layers.

    The networks fastgd's benchmarks train (``100-256-256-10``, ``256-512-512-10``, scikit-learn's
    default hidden layer of 100) as declarations. Its θ is in torch's order (each layer's weight
    (out, in) then its bias), not :class:`fastgd.MLP`'s (all weights (in, out), then all biases).
    """
    sizes = list(layer_sizes)
    if len(sizes) < 2:
        raise NetworkError(f"layer_sizes must list at least two sizes (input and output), got {layer_sizes!r}")
    if activation not in ACTIVATION_LAYERS:
        raise NetworkError(f"activation must be one of {sorted(ACTIVATION_LAYERS)}, got {activation!r}")
    layers = []
    for size in sizes[1:-1]:
        layers += [Dense(size), ACTIVATION_LAYERS[activation]()]
    return Network(layers + [Dense(sizes[-1])], input_shape=(sizes[0],), loss=loss)


def mnist_mlp(n_classes=10):
    """DeepOBS's ``mnist_mlp`` (Schneider, Balles & Hennig, ICLR 2019; ``net_mlp``): 784-1000-500-100-10, ReLU."""
    return mlp([784, 1000, 500, 100, n_classes])


KNOWN = {"mnist_2c2d": mnist_2c2d, "2c2d": mnist_2c2d, "cifar10_3c3d": cifar10_3c3d, "3c3d": cifar10_3c3d,
         "mnist1d_cnn": mnist1d_cnn, "digits_cnn": digits_cnn, "mnist_mlp": mnist_mlp,
         "mlp_100_256_256_10": lambda: mlp([100, 256, 256, 10]),
         "mlp_256_512_512_10": lambda: mlp([256, 512, 512, 10]),
         "mlp_64_100_10": lambda: mlp([64, 100, 10])}


def known(name):
    """The network ``name`` (see :data:`KNOWN`), newly declared."""
    if name not in KNOWN:
        raise NetworkError(f"no known network {name!r}; known: {sorted(KNOWN)}")
    return KNOWN[name]()
