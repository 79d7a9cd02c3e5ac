"""The timed calls of a pass calibration: a batch's forward and backward pass, repeated, in one compiled call.

:mod:`fastgd.calibration` times each candidate pass (:func:`fastgd.kernels.train.model_entry`) through
:func:`run_batches`, which takes the pass as a C callback, as a training epoch does: one specialisation
per dtype covers every candidate and every network.
"""

from fastgd._config import jit

__all__ = ["run_batches"]


@jit(exact=True)
def run_batches(model, theta, X, Y, layer_sizes, activation, output, alpha, grad, activations, deltas, n_batches):
    """Run ``model`` (forward and backward, gradient into ``grad``) on the batch (X, Y) ``n_batches`` times;
    return the sum of the losses (so that no call can be left out)."""
    total = 0.0
    for _ in range(n_batches):
        total += model(theta, X, Y, layer_sizes, activation, output, alpha, grad, activations, deltas)
    return total
