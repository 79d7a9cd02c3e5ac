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
evaluated by the same compiled forward pass that training uses (the C callback
of :func:`fastgd.kernels.train.model_entry`, run forward only), in one
compiled loop: the loop then compiles without a pass of its own inlined.
"""

from dataclasses import dataclass

import numpy as np

from fastgd._config import jit
from fastgd.kernels.train import model_entry, workspace_elements

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
    ``where`` names the coordinate it occurs at (layer, weight or bias, index).
    """

    max_relative_error: float
    where: dict
    numerical: np.ndarray
    analytic: np.ndarray

    def __repr__(self):
        return f"GradcheckResult(max_relative_error={self.max_relative_error:.3e}, where={self.where})"


@jit(inline=True)
def _loss(model, theta, X, Y, layer_sizes, activation, output, alpha, activations, no_grad):
    """J(θ) by ``model`` run forward only (``no_grad``: an empty array in place of the gradient and deltas)."""
    return model(theta, X, Y, layer_sizes, activation, output, alpha, no_grad, activations, no_grad)


@jit(inline=True)
def _central_difference(model, shifted, theta, k, step, X, Y, layer_sizes, activation, output, alpha, activations,
                        no_grad):
    """D(step) = (J(θ + step eₖ) − J(θ − step eₖ)) / (2 step); leaves ``shifted`` equal to θ."""
    shifted[k] = theta[k] + step
    forward_loss = _loss(model, shifted, X, Y, layer_sizes, activation, output, alpha, activations, no_grad)
    shifted[k] = theta[k] - step
    backward_loss = _loss(model, shifted, X, Y, layer_sizes, activation, output, alpha, activations, no_grad)
    shifted[k] = theta[k]
    return (forward_loss - backward_loss) / (2.0 * step)


@jit
def _central_differences(model, theta, X, Y, layer_sizes, activation, output, alpha, step_scale,
                         extrapolation_step_scale, agreement_factor, activations, no_grad, out):
    shifted = theta.copy()
    loss = _loss(model, theta, X, Y, layer_sizes, activation, output, alpha, activations, no_grad)
    for k in range(theta.size):
        scale = max(1.0, abs(theta[k]))
        step = step_scale * scale
        plain = _central_difference(model, shifted, theta, k, step, X, Y, layer_sizes, activation, output, alpha,
                                    activations, no_grad)
        wide = extrapolation_step_scale * scale
        extrapolated = (4.0 * _central_difference(model, shifted, theta, k, wide, X, Y, layer_sizes, activation,
                                                  output, alpha, activations, no_grad)
                        - _central_difference(model, shifted, theta, k, 2.0 * wide, X, Y, layer_sizes, activation,
                                              output, alpha, activations, no_grad)) / 3.0
        rounding = 2.220446049250313e-16 * max(abs(loss), 1e-300) / step
        out[k] = extrapolated if abs(extrapolated - plain) <= agreement_factor * rounding else plain
    return out


def numerical_gradient(net, theta, X, Y):
    """Central differences of ``net``'s loss at θ on (X, Y), Richardson-extrapolated where it is smooth; float64.

    ``net``: a network that runs the MLP's passes (:class:`fastgd.MLP`, a scikit-learn-order Dense stack)."""
    stack = net.stack
    if stack is None:
        raise ValueError("gradcheck runs the MLP's passes: declare the network in scikit-learn's order "
                         "(parameter_order='scikit-learn'), or compare against fastgd.networks.reference")
    theta = net._check_theta(theta)
    if theta.dtype != np.float64:
        raise TypeError("gradient checks need float64: rounding in float32 swamps the differences")
    X, Y = net.check_data(X, Y, theta.dtype)
    activations = np.empty(workspace_elements(stack.layer_sizes, X.shape[0]))
    return _central_differences(model_entry(np.float64), theta, X, Y, stack.layer_sizes, stack.activation_code,
                                stack.output_code, net.alpha, STEP_SCALE, EXTRAPOLATION_STEP_SCALE, AGREEMENT_FACTOR,
                                activations, np.empty(0), np.empty_like(theta))


def _locate(net, index):
    """Layer, kind and position of coordinate ``index`` of θ."""
    coefs, intercepts = net.stack.unpack(np.zeros(net.n_params))
    offset = 0
    for kind, blocks in (("weight", coefs), ("bias", intercepts)):
        for layer, block in enumerate(blocks):
            if index < offset + block.size:
                return {"layer": layer, "kind": kind, "index": tuple(int(i) for i in
                                                                    np.unravel_index(index - offset, block.shape))}
            offset += block.size
    raise IndexError(index)


def gradcheck(net, theta, X, Y):
    """Compare ``net.loss_grad`` with central differences at θ; see :class:`GradcheckResult`."""
    numerical = numerical_gradient(net, theta, X, Y)
    _, analytic = net.loss_grad(theta, X, Y)
    floor = RELATIVE_FLOOR * max(np.abs(analytic).max(), np.finfo(np.float64).tiny)
    errors = np.abs(numerical - analytic) / np.maximum(np.maximum(np.abs(numerical), np.abs(analytic)), floor)
    worst = int(np.argmax(errors))
    return GradcheckResult(float(errors[worst]), _locate(net, worst), numerical, analytic)
