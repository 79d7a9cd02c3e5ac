"""Networks declared once, as a list of layers in torch's vocabulary: :class:`Network` and its layers.

:mod:`.layers` holds the declarations, :mod:`.network` the :class:`Network` that derives θ's layout,
initialisation, workspaces and the compiled pass from them, :mod:`.dense` the MLP's passes that a Dense stack
declared in scikit-learn's order runs (:class:`fastgd.MLP` is one), :mod:`.reference` the NumPy oracle,
:mod:`.known` the architectures known by name (DeepOBS's 2c2d and 3c3d, MNIST-1D's CNN, ...), and
:mod:`.quadratic` DeepOBS's noisy quadratic (``quadratic_deep``), a model of one tensor θ that stands where a
network stands.
"""

from fastgd.networks.layers import (AvgPool1D, AvgPool2D, Conv1D, Conv2D, Dense, Flatten, GlobalAvgPool,
                                    Identity, LayerError, MaxPool1D, MaxPool2D, ReLU, Sigmoid, Tanh)
from fastgd.networks.network import INIT_SCHEMES, ORDER_SCHEMES, PARAMETER_ORDERS, Network, NetworkError, Tensor
from fastgd.networks.known import KNOWN, known

__all__ = ["Network", "NetworkError", "LayerError", "Tensor", "Dense", "Conv1D", "Conv2D", "MaxPool1D",
           "MaxPool2D", "AvgPool1D", "AvgPool2D", "GlobalAvgPool", "Flatten", "ReLU", "Tanh", "Sigmoid",
           "Identity", "known", "KNOWN", "INIT_SCHEMES", "PARAMETER_ORDERS", "ORDER_SCHEMES"]
