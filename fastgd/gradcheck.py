"""Numerical against analytic gradients: the lecture's check of backpropagation.

    >>> import numpy as np
    >>> from fastgd import MLP
    >>> from fastgd.gradcheck import gradcheck
    >>> net = MLP([3, 5, 2], activation="tanh", output="softmax", alpha=0.1)
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.normal(size=(8, 3)), np.eye(2)[rng.integers(0, 2, 8)]
    >>> result = gradcheck(net, net.init(random_state=0), X, Y)
    >>> result.max_relative_error < 1e-6
    True

The numerical gradient is a central difference, D(h) = (J(θ + h eₖ) − J(θ − h eₖ)) / 2h,
improved by Richardson's extrapolation where the loss is smooth enough for it:

* D at h = ε^(1/3)·max(1, |θₖ|) (ε the float64 machine epsilon) balances the
  O(h²) truncation error against the rounding error, about ε·|J| / h: some
  4·10⁻¹¹·|J|. On a loss of 2 that is a relative error of 4·10⁻⁶ on a gradient
  entry of 2·10⁻⁵, which failed a correct backward pass (logistic hidden units,
  logistic output).
* (4 D(h) − D(2h)) / 3 at h = ε^(1/5)·max(1, |θₖ|) cancels the h² term, leaving
  O(h⁴) truncation and about 10⁻¹³·|J| of rounding. Its wider steps may cross
  a ReLU's kink, though, where no difference quotient is the derivative.

So each coordinate takes the extrapolation where it agrees with the plain
difference to within the plain difference's rounding error, and the plain
difference where it does not (a kink within the wider steps). The loss is
evaluated by the same compiled pass that training uses (the C callback of the
network's :meth:`~fastgd.networks.Network.epoch_pass`: the MLP's
:func:`fastgd.kernels.train.model_entry`, run forward only, or a declared
network's :func:`fastgd.kernels.train.network_entry`, which always runs its
backward pass too), in one compiled loop: the loop then compiles without a pass
of its own inlined, and one loop serves every network.

Any declared network in float64 can be checked, a convolutional one as an MLP:

    >>> from fastgd.networks import Network, Conv2D, Tanh, AvgPool2D, Flatten, Dense
    >>> cnn = Network([Conv2D(2, 3, padding=1), Tanh(), AvgPool2D(2), Flatten(), Dense(3)], input_shape=(1, 4, 4))
    >>> X = rng.normal(size=(4, 1, 4, 4))
    >>> result = gradcheck(cnn, cnn.init(random_state=0), X, np.eye(3)[[0, 1, 2, 0]])
    >>> result.max_relative_error < 1e-6
    True
    >>> result.location.startswith("layer ")
    True
"""

from dataclasses import dataclass

import numpy as np

from fastgd._config import jit

__all__ = ["GradcheckResult", "gradcheck", "numerical_gradient"]

STEP_SCALE = np.finfo(np.float64).eps ** (1 / 3)  # the plain central difference's
EXTRAPOLATION_STEP_SCALE = np.finfo(np.float64).eps ** (1 / 5)  # Richardson's
# the plain difference's rounding error bound, ε·|J|/h, times this: where the extrapolation
# agrees with it that closely, the loss is smooth over the wider steps
AGREEMENT_FACTOR = 100.0
# entries below this share of the largest gradient entry are compared with it
# rather than with themselves: their relative error is rounding noise
RELATIVE_FLOOR = 1e-3


@dataclass
class GradcheckResult:
    """Outcome of :func:`gradcheck`.

    ``max_relative_error`` is maxₖ |nₖ − aₖ| / max(|nₖ|, |aₖ|, 10⁻³·maxⱼ|aⱼ|);
    ``where`` names the coordinate it occurs at: ``layer``, the index of its layer in the declaration,
    ``layer_kind`` (``"Dense"``, ``"Conv2D"``, ...), ``kind`` (``"weight"`` or ``"bias"``) and ``index``, its
    position in that tensor as θ holds it (torch's shape in torch's order, (in, out) weights in scikit-learn's);
    :attr:`location` says the same in words.
    """

    max_relative_error: float
    where: dict
    numerical: np.ndarray
    analytic: np.ndarray

    @property
    def location(self):
        """``where`` in words, e.g. ``"layer 0 (Conv2D) weight (3, 1, 1, 0)"``."""
        where = self.where
        return f"layer {where['layer']} ({where['layer_kind']}) {where['kind']} {where['index']}"

    def __repr__(self):
        return f"GradcheckResult(max_relative_error={self.max_relative_error:.3e}, where={self.where})"


@jit(inline=True)
def _loss(model, theta, X, Y, structure, first, second, alpha, grad, activations, deltas):
    """J(θ) by ``model`` in :func:`fastgd.kernels.train.model_signature`'s places (the MLP's pass runs forward only
    where ``grad`` and ``deltas`` are empty)."""
    return model(theta, X, Y, structure, first, second, alpha, grad, activations, deltas)


@jit(inline=True)
def _central_difference(model, shifted, theta, k, step, X, Y, structure, first, second, alpha, grad, activations,
                        deltas):
    """D(step) = (J(θ + step eₖ) − J(θ − step eₖ)) / (2 step); leaves ``shifted`` equal to θ."""
    shifted[k] = theta[k] + step
    forward_loss = _loss(model, shifted, X, Y, structure, first, second, alpha, grad, activations, deltas)
    shifted[k] = theta[k] - step
    backward_loss = _loss(model, shifted, X, Y, structure, first, second, alpha, grad, activations, deltas)
    shifted[k] = theta[k]
    return (forward_loss - backward_loss) / (2.0 * step)


@jit
def _central_differences(model, theta, X, Y, structure, first, second, alpha, step_scale,
                         extrapolation_step_scale, agreement_factor, grad, activations, deltas, out):
    shifted = theta.copy()
    loss = _loss(model, theta, X, Y, structure, first, second, alpha, grad, activations, deltas)
    for k in range(theta.size):
        scale = max(1.0, abs(theta[k]))
        step = step_scale * scale
        plain = _central_difference(model, shifted, theta, k, step, X, Y, structure, first, second, alpha, grad,
                                    activations, deltas)
        wide = extrapolation_step_scale * scale
        extrapolated = (4.0 * _central_difference(model, shifted, theta, k, wide, X, Y, structure, first, second,
                                                  alpha, grad, activations, deltas)
                        - _central_difference(model, shifted, theta, k, 2.0 * wide, X, Y, structure, first, second,
                                              alpha, grad, activations, deltas)) / 3.0
        rounding = 2.220446049250313e-16 * max(abs(loss), 1e-300) / step
        out[k] = extrapolated if abs(extrapolated - plain) <= agreement_factor * rounding else plain
    return out


def numerical_gradient(net, theta, X, Y):
    """Central differences of ``net``'s loss (its penalty included) at θ on (X, Y), Richardson-extrapolated where it
    is smooth; float64.

    ``net``: any network (:class:`fastgd.networks.Network`, :class:`fastgd.MLP`); X as :meth:`~fastgd.networks.
    Network.check_data` takes it, (n, *input_shape) or flat."""
    theta = net._check_theta(theta)
    if theta.dtype != np.float64:
        raise TypeError("gradient checks need float64: rounding in float32 swamps the differences")
    X, Y = net.check_data(X, Y, theta.dtype)
    n_rows = X.shape[0]
    net.check_fits(n_rows, theta.dtype)
    model, structure, first, second, alpha = net.epoch_pass(theta.dtype, n_rows)
    activations, deltas = net.epoch_workspaces(n_rows)
    if net.stack is not None:
        # the MLP's pass runs forward only where the gradient and deltas are empty: half the work
        grad, deltas = np.empty(0), np.empty(0)
    else:
        grad, deltas = np.empty_like(theta), np.empty(deltas)
    # the pass's place for X is the (rows, features) block a gathered batch is: a read-only view stays read-only
    return _central_differences(model, theta, X.reshape(n_rows, -1), Y, structure, first, second, alpha, STEP_SCALE,
                                EXTRAPOLATION_STEP_SCALE, AGREEMENT_FACTOR, grad, np.empty(activations), deltas,
                                np.empty_like(theta))


def _locate(net, index):
    """Layer (index in the declaration and kind), weight or bias, and position in that tensor of coordinate
    ``index`` of θ, from the declaration's tensors."""
    for tensor in net.tensors:
        if tensor.offset <= index < tensor.offset + tensor.size:
            position = np.unravel_index(index - tensor.offset, tensor.shape)
            # a model that declares no layers (the noisy quadratic) is its own one layer
            kind = net.resolved[tensor.layer].kind if tensor.layer < len(net.resolved) else type(net).__name__
            return {"layer": tensor.layer, "layer_kind": kind,
                    "kind": tensor.name.rsplit(".", 1)[-1], "index": tuple(int(i) for i in position)}
    raise IndexError(index)


def gradcheck(net, theta, X, Y):
    """Compare ``net.loss_grad`` with central differences at θ; see :class:`GradcheckResult`."""
    numerical = numerical_gradient(net, theta, X, Y)
    _, analytic = net.loss_grad(theta, X, Y)
    floor = RELATIVE_FLOOR * max(np.abs(analytic).max(), np.finfo(np.float64).tiny)
    errors = np.abs(numerical - analytic) / np.maximum(np.maximum(np.abs(numerical), np.abs(analytic)), floor)
    worst = int(np.argmax(errors))
    return GradcheckResult(float(errors[worst]), _locate(net, worst), numerical, analytic)
