"""What an epoch of MLP training cannot go below: its batches' matrix products alone, and its rule's steps alone.

Instruments for the speed benchmarks (``benchmarks/scripts/network_speed.py``), not a training path.
Each runs, for one epoch's batches, only the part named, with the same shapes, BLAS and threads
as the training pass (:mod:`fastgd.kernels.mlp` on SciPy's BLAS, or the whole batch on MKL's
threads, :mod:`fastgd.kernels.threaded`); everything else an epoch does (bias and activation,
softmax and loss, gathering a batch, bias gradients) is left out. The sum of the two is a lower
bound on an epoch that runs each batch's step after its products, as every pass here does: a GEMM
share or a ratio to a peer computed from it is the most such an epoch could reach with these
products and this rule on this machine.

The products are those of :func:`fastgd.baselines.epoch_gemm_shapes`: per layer the forward X·W
and the weight gradient Aᵀ·δ, and δ·Wᵀ for every layer but the first. The buffers are the pass's
(θ and its gradient, ``workspace_size`` activations and deltas); ``inputs`` holds a batch's rows.
"""

from fastgd import _config
from fastgd.kernels import mkl
from fastgd.kernels.blas import gemm
from fastgd.kernels.mlp import n_weights

__all__ = ["epoch_products", "epoch_products_on_mkl", "epoch_steps", "products_on_mkl"]


def _epoch_products(on_mkl):
    """The Python function of an epoch's matrix products, on MKL's threads or SciPy's BLAS; ``on_mkl`` is a constant
    of its closure, so the other branch is pruned before Numba types it (and the cache keys each on it)."""

    def epoch_products(inputs, theta, grad, activations, deltas, layer_sizes, n_samples, batch_size):
        n_layers = layer_sizes.size - 1
        for start in range(0, n_samples, batch_size):
            rows = min(batch_size, n_samples - start)
            weight_offset, below, offset = 0, 0, 0
            for layer in range(n_layers):
                n_in, n_out = layer_sizes[layer], layer_sizes[layer + 1]
                A, a_offset = (inputs, 0) if layer == 0 else (activations, below)
                # forward A·W, then the weight gradient Aᵀ·δ, then δ·Wᵀ (not for the first layer)
                if on_mkl:
                    mkl.gemm(A, a_offset, n_in, theta, weight_offset, n_out, activations, offset, n_out, rows,
                             n_out, n_in, False, False, 1.0, 0.0)
                    mkl.gemm(A, a_offset, n_in, deltas, offset, n_out, grad, weight_offset, n_out, n_in, n_out,
                             rows, True, False, 1.0, 0.0)
                    if layer > 0:
                        mkl.gemm(deltas, offset, n_out, theta, weight_offset, n_out, deltas, below, n_in, rows,
                                 n_in, n_out, False, True, 1.0, 0.0)
                else:
                    gemm(A, a_offset, theta, weight_offset, activations, offset, rows, n_out, n_in, False, False,
                         1.0, 0.0)
                    gemm(A, a_offset, deltas, offset, grad, weight_offset, n_in, n_out, rows, True, False, 1.0, 0.0)
                    if layer > 0:
                        gemm(deltas, offset, theta, weight_offset, deltas, below, rows, n_in, n_out, False, True,
                             1.0, 0.0)
                weight_offset += n_in * n_out
                below = offset
                offset += rows * n_out
        return n_weights(layer_sizes)

    return epoch_products


# An epoch's matrix products on SciPy's BLAS, as fastgd.kernels.mlp.loss_and_gradient makes them.
epoch_products = _config.jit(_epoch_products(False))
# The same, each the whole batch's on MKL's threads, as the pass on MKL's threads makes them; MKL must be
# loaded (fastgd.kernels.mkl.load) before it is compiled or loaded.
epoch_products_on_mkl = _config.jit(_epoch_products(True))


@_config.jit
def epoch_steps(rule_step, theta, grad, states, aux, hyper, counters, layout, n_steps):
    """``n_steps`` calls of a rule's packed step (``fastgd.rules.compile``), as a training epoch makes them."""
    for _ in range(n_steps):
        rule_step(theta, grad, states, aux, hyper, counters, layout)
    return n_steps


@_config.jit
def products_on_mkl(A, B, C, m, n, k, repeats):
    """``repeats`` products C = A·B (m × k by k × n, row-major, whole vectors) on MKL: its rate on a shape."""
    for _ in range(repeats):
        mkl.gemm(A, 0, k, B, 0, n, C, 0, n, m, n, k, False, False, 1.0, 0.0)
    return repeats
