"""fastgd.kernels.floors, the speed benchmarks' lower bound on an epoch: the products and the steps it times are an
epoch's, checked against NumPy's products and the optimizer's own steps; and the peak a GEMM share is taken against."""

import time

import numpy as np
import pytest

from fastgd import baselines, datasets, optim
from fastgd.kernels import floors, mkl
from fastgd.kernels.mlp import workspace_size

needs_mkl = pytest.mark.skipif(not mkl.available(), reason="MKL is not installed (pip install 'fastgd[mkl]')")


def numpy_epoch_products(inputs, theta, grad, activations, deltas, layer_sizes, n_samples, batch_size):
    """What the products leave in the buffers, in NumPy: every batch's products in the pass's order, a batch of
    ``rows`` using the first rows of ``inputs`` and blocks of ``rows`` rows (a block of δ is overwritten by δ·Wᵀ
    once its weight gradient has been taken)."""
    for start in range(0, n_samples, batch_size):
        rows = min(batch_size, n_samples - start)
        X = inputs[:rows * layer_sizes[0]].reshape(rows, layer_sizes[0])
        weight_offset, below, offset = 0, 0, 0
        for layer, (n_in, n_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:])):
            W = theta[weight_offset:weight_offset + n_in * n_out].reshape(n_in, n_out)
            A = X if layer == 0 else activations[below:below + rows * n_in].reshape(rows, n_in)
            activations[offset:offset + rows * n_out] = (A @ W).ravel()
            delta = deltas[offset:offset + rows * n_out].reshape(rows, n_out)
            grad[weight_offset:weight_offset + n_in * n_out] = (A.T @ delta).ravel()
            if layer > 0:
                deltas[below:below + rows * n_in] = (delta @ W.T).ravel()
            weight_offset += n_in * n_out
            below, offset = offset, offset + rows * n_out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("products", ["epoch_products", pytest.param("epoch_products_on_mkl", marks=needs_mkl)])
@pytest.mark.parametrize("n_samples", [6, 13])  # one batch; two full ones and a last of one row
def test_the_epoch_products_are_numpys(products, dtype, n_samples):
    if products == "epoch_products_on_mkl":
        mkl.load()
    layer_sizes = np.array([5, 7, 4, 3], dtype=np.int64)
    batch_size = 6
    rng = np.random.default_rng(0)
    n_params = int(np.sum(layer_sizes[:-1] * layer_sizes[1:]) + np.sum(layer_sizes[1:]))
    theta = rng.standard_normal(n_params).astype(dtype)
    inputs = rng.standard_normal(batch_size * 5).astype(dtype)
    activations = rng.standard_normal(workspace_size(layer_sizes, batch_size)).astype(dtype)
    deltas = rng.standard_normal(activations.size).astype(dtype)
    grad = np.zeros(n_params, dtype)
    expected = [array.copy() for array in (grad, activations, deltas)]
    numpy_epoch_products(inputs, theta, *expected, layer_sizes, n_samples, batch_size)
    getattr(floors, products)(inputs, theta, grad, activations, deltas, layer_sizes, n_samples, batch_size)
    tolerance = 1e-12 if dtype == np.float64 else 2e-5
    for name, got, want in zip(("grad", "activations", "deltas"), (grad, activations, deltas), expected):
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance, err_msg=name)


def test_the_epoch_steps_are_the_optimizers_steps():
    rng = np.random.default_rng(1)
    params = rng.standard_normal(300)
    grad = rng.standard_normal(300)
    by_steps = optim.Adam(params.copy(), lr=1e-2, weight_decay=1e-3)
    for _ in range(5):
        by_steps.step(grad)
    packed_from = optim.Adam(params.copy(), lr=1e-2, weight_decay=1e-3)
    packed = packed_from.packed()
    hyper = packed.hyper.copy()
    hyper[-1] = 1.0  # the constant schedule's factor
    theta = params.copy()
    assert floors.epoch_steps(packed.function, theta, grad, packed.states, packed.aux, hyper, packed.counters,
                              packed.layout, 5) == 5
    np.testing.assert_array_equal(theta, by_steps.params)


@pytest.mark.parametrize("batch_size", [32, pytest.param(200, marks=needs_mkl)])
def test_the_floor_of_a_trainer_leaves_its_training_alone(batch_size, monkeypatch):
    from fastgd.kernels import train

    data = datasets.load("digits")
    from fastgd import _config

    # the whole batch on MKL's threads for the larger batch, the serial pass for the other (FASTGD_PASS)
    monkeypatch.setattr(_config, "PASS", "serial" if batch_size == 32 else "whole_batch_mkl")
    trainer = baselines.FastgdTrainer(data, "adam", (32,), batch_size, "float64")
    trainer.epoch()
    assert trainer.training._blocks() == (1 if batch_size == 32 else train.WHOLE_BATCH_ON_MKL)
    packed = trainer.training.optimizer.packed()
    before = [array.copy() for array in (trainer.training.theta, packed.states, packed.counters)]
    started = time.perf_counter()
    seconds = trainer.floor_seconds(0.01)
    elapsed = time.perf_counter() - started
    assert set(seconds) == {"products", "steps"}
    # an epoch's products (or steps) alone, timed at least once inside the call: no longer than the call itself (a
    # fixed bound such as 1 s failed on a busy machine, where MKL's threads wait for a core)
    assert all(0 < value <= elapsed for value in seconds.values()), (seconds, elapsed)
    packed = trainer.training.optimizer.packed()
    for got, want in zip((trainer.training.theta, packed.states, packed.counters), before):
        np.testing.assert_array_equal(got, want)


def test_the_floor_of_the_pass_in_blocks_of_rows_is_not_measured(monkeypatch):
    trainer = baselines.FastgdTrainer(datasets.load("iris"), "sgd", (8,), 16, "float64")
    monkeypatch.setattr(trainer.training, "_blocks", lambda: 2)
    with pytest.raises(NotImplementedError, match="blocks of rows"):
        trainer.floor_seconds(0.01)


def test_the_peak_is_the_faster_blas(monkeypatch):
    monkeypatch.setattr(baselines.limits, "gemm_rate", lambda dtype, budget_seconds: 2e11)
    monkeypatch.setattr(baselines.limits, "mkl_gemm_rate", lambda dtype, budget_seconds: 3e11)
    assert baselines.peak_gemm_rate("float32", 0.1) == (3e11, "MKL")
    monkeypatch.setattr(baselines.limits, "mkl_gemm_rate", lambda dtype, budget_seconds: 1e11)
    assert baselines.peak_gemm_rate("float32", 0.1) == (2e11, "NumPy's BLAS")

    def not_installed(dtype, budget_seconds):
        raise mkl.MKLError("MKL is not installed")

    monkeypatch.setattr(baselines.limits, "mkl_gemm_rate", not_installed)
    assert baselines.peak_gemm_rate("float32", 0.1) == (2e11, "NumPy's BLAS")


@needs_mkl
def test_mkls_rate_is_a_rate_of_a_right_product():
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal(6 * 4), rng.standard_normal(4 * 5)
    C = np.empty(30)
    mkl.load()
    assert floors.products_on_mkl(A, B, C, 6, 5, 4, 3) == 3
    np.testing.assert_allclose(C.reshape(6, 5), A.reshape(6, 4) @ B.reshape(4, 5), rtol=1e-12)
    assert 0 < baselines.mkl_gemm_rate(np.float64, 0.01, shape=(64, 64, 64)) < 1e13

