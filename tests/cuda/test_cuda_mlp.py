"""The MLP kernels of fastgd.cuda.mlp, one by one, against the same products and formulas in NumPy float64."""

import numpy as np
import pytest
from numba import cuda

from conftest import SIMULATOR
from fastgd.cuda import mlp
from fastgd.cuda.arrays import launch_shape
from fastgd.kernels.mlp import ACTIVATIONS, OUTPUTS
from fastgd.reference import HIDDEN, OUTPUT

DTYPES = [np.float32, np.float64]
# (rows, n_in, n_out): partial tiles in every direction, several tiles both
# ways (the simulator's tiles are 4 × 4, a GPU's 64 × 64)
SHAPES = [(7, 5, 6), (1, 3, 1), (13, 9, 10) if SIMULATOR else (70, 9, 66)]


def random(shape, dtype, seed):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(dtype)


def assert_product_close(actual, exact, bound, depth):
    """float64: 1e-12 relative; float32: within the rounding bound of a sum of ``depth`` float32 products.

    ``bound`` is Σ_k |a_ik b_kj| per element (times whatever scales the
    product after); a float32 sum of k products is within about (k + 2) ε of
    it, ε the float32 epsilon, whatever the order of the sum.
    """
    if actual.dtype == np.float64:
        np.testing.assert_allclose(actual, exact, rtol=1e-12, atol=1e-14 * bound.max())
    else:
        tolerance = ((depth + 4) * np.finfo(np.float32).eps) * bound + np.finfo(np.float32).tiny
        np.testing.assert_array_less(np.abs(actual - exact), tolerance)


def exact(dtype_array):
    return dtype_array.astype(np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_forward_layer_is_activation_of_the_affine_map(activation, shape, dtype):
    rows, n_in, n_out = shape
    A, W, b = random((rows, n_in), dtype, 0), random((n_in, n_out), dtype, 1), random(n_out, dtype, 2)
    Z = cuda.device_array((rows, n_out), dtype=dtype)
    mlp.forward_layer[mlp.product_shape(rows, n_out)](cuda.to_device(A), cuda.to_device(W), cuda.to_device(b), Z,
                                                      ACTIVATIONS[activation])
    affine = exact(A) @ exact(W) + exact(b)
    bound = np.abs(exact(A)) @ np.abs(exact(W)) + np.abs(exact(b))
    result = Z.copy_to_host()
    assert result.dtype == dtype
    if activation == "identity":
        assert_product_close(result, affine, bound, n_in)
    else:
        # the activations are 1-Lipschitz or less: their error is the affine map's plus their own rounding
        np.testing.assert_allclose(result, HIDDEN[activation][0](affine), rtol=0,
                                   atol=(1e-12 if dtype == np.float64 else (n_in + 4) * 1.2e-7) * bound.max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("with_penalty", [True, False])
def test_weight_gradient_bias_gradient_and_penalty(shape, dtype, with_penalty):
    rows, n_in, n_out = shape
    A, delta, W = random((rows, n_in), dtype, 3), random((rows, n_out), dtype, 4), random((n_in, n_out), dtype, 5)
    decay = dtype(0.25)
    grad_W = cuda.device_array((n_in, n_out), dtype=dtype)
    grad_b = cuda.device_array(n_out, dtype=dtype)
    status = cuda.to_device(np.zeros(mlp.STATUS_SIZE))
    mlp.weight_gradient[mlp.product_shape(n_in, n_out)](cuda.to_device(A), cuda.to_device(delta),
                                                        cuda.to_device(W), decay, grad_W, grad_b, status,
                                                        with_penalty)
    expected = exact(A).T @ exact(delta) + 0.25 * exact(W)
    bound = np.abs(exact(A)).T @ np.abs(exact(delta)) + 0.25 * np.abs(exact(W))
    assert_product_close(grad_W.copy_to_host(), expected, bound, rows)
    # the bias gradient is summed row after row in the dtype, as the CPU kernel sums it
    expected_bias = np.zeros(n_out, dtype)
    for row in delta:
        expected_bias += row
    np.testing.assert_array_equal(grad_b.copy_to_host(), expected_bias)
    sums = status.copy_to_host()
    penalty = np.sum(exact(W) ** 2) if with_penalty else 0.0
    np.testing.assert_allclose(sums[mlp.PENALTY], penalty, rtol=1e-12)
    assert np.count_nonzero(np.delete(sums, mlp.PENALTY)) == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_backward_delta_is_the_transposed_product_times_the_derivative(activation, shape, dtype):
    rows, n_in, n_out = shape
    delta, W = random((rows, n_out), dtype, 6), random((n_in, n_out), dtype, 7)
    below = random((rows, n_in), dtype, 8)
    if activation == "logistic":
        below = (below + 1) / 2  # an activation in (0, 1)
    previous = cuda.device_array((rows, n_in), dtype=dtype)
    mlp.backward_delta[mlp.product_shape(rows, n_in)](cuda.to_device(delta), cuda.to_device(W),
                                                      cuda.to_device(below), previous, ACTIVATIONS[activation])
    derivative = {"identity": 1.0, "relu": (exact(below) > 0).astype(float),
                  "logistic": exact(below) * (1 - exact(below)), "tanh": 1 - exact(below) ** 2}[activation]
    product = exact(delta) @ exact(W).T
    # the derivative, computed in the dtype from values in [-1, 1], is within 3 ε of its exact value
    bound = np.abs(exact(delta)) @ np.abs(exact(W)).T * (np.abs(derivative) + 3.0 / (n_out + 4))
    assert_product_close(previous.copy_to_host(), product * derivative, bound, n_out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", sorted(OUTPUTS))
def test_output_loss_and_delta_per_row(output, dtype):
    rows, n_out = 9, 4
    rng = np.random.default_rng(9)
    Z = rng.normal(size=(rows, n_out)).astype(dtype)
    if output == "softmax":
        Y = np.eye(n_out, dtype=dtype)[rng.integers(0, n_out, rows)]
        P_in = Z  # z + b: the softmax is taken here
    elif output == "logistic":
        Y = rng.integers(0, 2, (rows, n_out)).astype(dtype)
        P_in = OUTPUT["logistic"](Z).astype(dtype)
    else:
        Y = rng.normal(size=(rows, n_out)).astype(dtype)
        P_in = Z
    P = cuda.to_device(P_in)
    delta = cuda.device_array((rows, n_out), dtype=dtype)
    status = cuda.to_device(np.zeros(mlp.STATUS_SIZE))
    scale = dtype(1.0 / rows) if output != "identity" else dtype(1.0 / (rows * n_out))
    eps = float(np.finfo(dtype).eps)
    mlp.output_loss_and_delta[launch_shape(rows)](P, cuda.to_device(Y), delta, OUTPUTS[output], scale, eps, status)
    probabilities = OUTPUT["softmax"](exact(Z)) if output == "softmax" else exact(P_in)
    tolerance = 1e-13 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(P.copy_to_host(), probabilities, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(delta.copy_to_host(), (probabilities - Y) * float(scale), rtol=tolerance,
                               atol=tolerance * float(scale))
    clipped = np.clip(P.copy_to_host().astype(np.float64), eps, 1 - eps)
    if output == "identity":
        loss = np.sum((exact(P_in) - Y) ** 2)
    else:
        loss = -np.sum(Y * np.log(clipped))
        if output == "logistic":
            loss -= np.sum((1 - Y) * np.log(1 - clipped))
    np.testing.assert_allclose(status.copy_to_host()[mlp.DATA_LOSS], loss, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_batch_takes_the_rows_of_the_order(dtype):
    X, Y = random((11, 3), dtype, 10), random((11, 2), dtype, 11)
    order = np.random.default_rng(12).permutation(11)
    batch_X, batch_Y = cuda.device_array((4, 3), dtype=dtype), cuda.device_array((4, 2), dtype=dtype)
    mlp.gather_batch[launch_shape(4 * 5)](cuda.to_device(X), cuda.to_device(Y), cuda.to_device(order), 5, batch_X,
                                          batch_Y)
    np.testing.assert_array_equal(batch_X.copy_to_host(), X[order[5:9]])
    np.testing.assert_array_equal(batch_Y.copy_to_host(), Y[order[5:9]])


def run_finish_batch(status, halt, factor, sums, clip_norm):
    host = status.copy_to_host()
    host[[mlp.DATA_LOSS, mlp.PENALTY, mlp.GRAD_SQUARES]] = sums
    status.copy_to_device(host)
    mlp.finish_batch[1, 1](status, halt, 4.0, 8.0, 0.05, clip_norm, factor)
    after = status.copy_to_host()
    assert after[mlp.DATA_LOSS] == after[mlp.PENALTY] == after[mlp.GRAD_SQUARES] == 0.0
    return after


def test_finish_batch_keeps_the_total_and_halts_at_the_first_non_finite_loss():
    status = cuda.to_device(np.zeros(mlp.STATUS_SIZE))
    halt = cuda.to_device(np.zeros(1, np.int32))
    factor = cuda.to_device(np.full(1, 7.0, np.float32))
    # loss = data / 8 + 0.05 · penalty / 4, weighted by the batch's 4 rows; ‖∇‖ = √squares
    after = run_finish_batch(status, halt, factor, (3.0, 2.0, 4.0), clip_norm=0.5)
    assert after[mlp.EPOCH_TOTAL] == (3.0 / 8.0 + 0.05 * 2.0 / 4.0) * 4.0 and after[mlp.GOOD_BATCHES] == 1
    assert factor.copy_to_host()[0] == np.float32(0.5 / 2.0)
    after = run_finish_batch(status, halt, factor, (1.0, 0.0, 0.16), clip_norm=0.5)
    assert after[mlp.GOOD_BATCHES] == 2 and factor.copy_to_host()[0] == 1.0  # norm 0.4: no clipping
    total = after[mlp.EPOCH_TOTAL]
    after = run_finish_batch(status, halt, factor, (np.inf, 1.0, 1.0), clip_norm=0.5)
    assert halt.copy_to_host()[0] == 1 and after[mlp.BAD_LOSS] == np.inf
    after = run_finish_batch(status, halt, factor, (2.0, 2.0, 1.0), clip_norm=0.5)
    assert after[mlp.EPOCH_TOTAL] == total and after[mlp.GOOD_BATCHES] == 2 and after[mlp.BAD_LOSS] == np.inf
    assert halt.copy_to_host()[0] == 1
