"""The threaded MLP pass (fastgd.kernels.threaded) and its MKL products, against NumPy and the serial pass."""

import numpy as np
import pytest
from numba import njit

from fastgd import MLP, _config, optim, reference, threads
from fastgd.kernels import mkl
from fastgd.kernels import train as train_kernels
from fastgd.kernels.mlp import workspace_size
from fastgd.training import Training

needs_mkl = pytest.mark.skipif(not mkl.available(), reason="MKL is not installed (pip install 'fastgd[mkl]')")

# relative agreement of the threaded pass with the serial one: their products come from two BLAS libraries
TOLERANCE = {np.float64: 1e-12, np.float32: 2e-5}


@njit
def _compiled_gemm(A, a_offset, lda, B, b_offset, ldb, C, c_offset, ldc, m, n, k, transpose_a, transpose_b, beta):
    mkl.gemm(A, a_offset, lda, B, b_offset, ldb, C, c_offset, ldc, m, n, k, transpose_a, transpose_b, 1.5, beta)


@njit
def _call(model, theta, X, Y, layer_sizes, activation, output, alpha, grad, activations, deltas):
    return model(theta, X, Y, layer_sizes, activation, output, alpha, grad, activations, deltas)


def _pass(n_blocks, net, theta, X, Y):
    """(loss, gradient, activations) of the model callback in ``n_blocks`` blocks; workspaces start as NaN."""
    size = workspace_size(net.layer_sizes, X.shape[0])
    grad = np.full_like(theta, np.nan)
    activations, deltas = np.full(size, np.nan, net.dtype), np.full(size, np.nan, net.dtype)
    loss = _call(train_kernels.model_entry(net.dtype, n_blocks), theta, X, Y, net.layer_sizes, net.activation_code,
                 net.output_code, net.alpha, grad, activations, deltas)
    return loss, grad, activations


def _data(net, n_samples, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, net.n_inputs)).astype(net.dtype)
    if net.output == "identity":
        Y = rng.standard_normal((n_samples, net.n_outputs)).astype(net.dtype)
    else:
        Y = np.eye(net.n_outputs, dtype=net.dtype)[rng.integers(0, net.n_outputs, n_samples)]
    X.flags.writeable = Y.flags.writeable = False  # as training passes them
    return X, Y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("transpose_a, transpose_b", [(False, False), (True, False), (False, True), (True, True)])
def test_mkl_gemm_on_blocks_of_larger_matrices_is_numpys(dtype, transpose_a, transpose_b):
    """The Python form (NumPy on strided views) against a plain NumPy product of copies: offsets and leading
    dimensions pick a block out of a larger matrix, and nothing else is written."""
    rng = np.random.default_rng(1)
    m, n, k, a_offset, b_offset, c_offset = 5, 4, 6, 3, 2, 7
    lda, ldb, ldc = (m if transpose_a else k) + 3, (k if transpose_b else n) + 2, n + 1
    A, B = rng.standard_normal(200).astype(dtype), rng.standard_normal(200).astype(dtype)
    C = rng.standard_normal(100).astype(dtype)
    a = A[a_offset:a_offset + lda * (k if transpose_a else m)].reshape(-1, lda)[:, :m if transpose_a else k]
    b = B[b_offset:b_offset + ldb * (n if transpose_b else k)].reshape(-1, ldb)[:, :k if transpose_b else n]
    c = C[c_offset:c_offset + ldc * m].reshape(m, ldc)[:, :n].copy()
    expected_block = 1.5 * ((a.T if transpose_a else a) @ (b.T if transpose_b else b)) + 0.5 * c
    by_numpy = C.copy()
    mkl.gemm(A, a_offset, lda, B, b_offset, ldb, by_numpy, c_offset, ldc, m, n, k, transpose_a, transpose_b, 1.5, 0.5)
    np.testing.assert_allclose(by_numpy[c_offset:c_offset + ldc * m].reshape(m, ldc)[:, :n], expected_block,
                               rtol=TOLERANCE[dtype])
    outside = np.ones(C.size, bool)
    outside[c_offset:c_offset + ldc * m].reshape(m, ldc)[:, :n] = False
    np.testing.assert_array_equal(by_numpy[outside], C[outside])  # nothing but the block is written


@needs_mkl
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("transpose_a, transpose_b", [(False, False), (True, False), (False, True), (True, True)])
def test_mkl_gemm_compiled_is_its_python_form(dtype, transpose_a, transpose_b):
    """The compiled form (MKL's cblas_?gemm) against the Python form, checked against NumPy above."""
    rng = np.random.default_rng(1)
    m, n, k, a_offset, b_offset, c_offset = 5, 4, 6, 3, 2, 7
    lda, ldb, ldc = (m if transpose_a else k) + 3, (k if transpose_b else n) + 2, n + 1
    A, B = rng.standard_normal(200).astype(dtype), rng.standard_normal(200).astype(dtype)
    C = rng.standard_normal(100).astype(dtype)
    by_numpy, compiled = C.copy(), C.copy()
    mkl.gemm(A, a_offset, lda, B, b_offset, ldb, by_numpy, c_offset, ldc, m, n, k, transpose_a, transpose_b, 1.5, 0.5)
    _compiled_gemm(A, a_offset, lda, B, b_offset, ldb, compiled, c_offset, ldc, m, n, k, transpose_a, transpose_b,
                   0.5)
    np.testing.assert_allclose(compiled, by_numpy, rtol=TOLERANCE[dtype] * 10, atol=TOLERANCE[dtype])


@needs_mkl
@pytest.mark.parametrize("activation, output, n_outputs", [("relu", "softmax", 7), ("tanh", "logistic", 3),
                                                           ("logistic", "identity", 2), ("identity", "softmax", 4)])
@pytest.mark.parametrize("dtype, n_blocks", [(np.float64, 2), (np.float64, 3), (np.float32, 2),
                                             (np.float64, train_kernels.WHOLE_BATCH_ON_MKL),
                                             (np.float32, train_kernels.WHOLE_BATCH_ON_MKL)])
def test_the_pass_in_blocks_is_the_serial_pass(activation, output, n_outputs, dtype, n_blocks):
    """Loss, gradient and activations of the threaded passes (in blocks of rows, and the whole batch on MKL's
    threads) against the serial pass (both compiled), and the gradient against the NumPy reference; 53 rows do
    not split evenly into 2 or 3 blocks, and a layer of 70 units gives the bias gradient two blocks of columns."""
    net = MLP([9, 70, 11, n_outputs], activation, output, alpha=1e-3, dtype=dtype)
    theta = net.init(random_state=2)
    X, Y = _data(net, 53)
    serial, threaded = _pass(1, net, theta, X, Y), _pass(n_blocks, net, theta, X, Y)
    tolerance = TOLERANCE[dtype]
    assert threaded[0] == pytest.approx(serial[0], rel=tolerance)
    for mine, oracle in zip(threaded[1:], serial[1:]):
        assert np.isfinite(mine).all()
        np.testing.assert_allclose(mine, oracle, rtol=tolerance * 50, atol=tolerance * 10)
    if dtype == np.float64:
        _, expected = reference.mlp_loss_grad(theta, X, Y, net.layer_sizes.tolist(), activation, output, net.alpha)
        np.testing.assert_allclose(threaded[1], expected, rtol=1e-9, atol=1e-12)


@needs_mkl
def test_the_pass_in_blocks_gives_the_calling_thread_its_mkl_threads_back():
    """Each block's products run on MKL with one thread for that thread alone (mkl.gemm_on_this_thread), and the
    thread's own setting is put back after: the calling thread runs one block itself, and a whole-batch product it
    makes next must have MKL's threads. threads.limit sets MKL's count on this thread alone (threadpoolctl calls
    mkl_set_num_threads_local), which setting it returns as the one it replaces."""
    import ctypes

    set_local = ctypes.CDLL(mkl.load()).MKL_Set_Num_Threads_Local
    net = MLP([9, 70, 11, 7], "relu", "softmax", dtype=np.float64)
    theta = net.init(random_state=2)
    X, Y = _data(net, 53)
    with threads.limit(2):
        before = set_local(0)
        set_local(before)
        assert before == 2
        serial, threaded = _pass(1, net, theta, X, Y), _pass(2, net, theta, X, Y)
        assert set_local(before) == before  # the pass left this thread's count as it found it
    np.testing.assert_allclose(threaded[1], serial[1], rtol=1e-10, atol=1e-12)


@needs_mkl
@pytest.mark.parametrize("n_blocks", [2, train_kernels.WHOLE_BATCH_ON_MKL])
def test_a_threaded_pass_run_forward_only_predicts_what_the_serial_pass_does(n_blocks):
    """Predictions and a data set's loss through a threaded pass with no gradient asked (what prediction takes when
    training compiled that pass) against the serial pass and the NumPy reference; 37 rows in chunks of 16."""
    net = MLP([9, 70, 11, 4], "tanh", "softmax", alpha=1e-3)
    theta = net.init(random_state=3)
    X, Y = _data(net, 37)
    n_out, chunk = 4, 16
    outputs = {}
    for blocks in (1, n_blocks):
        model = train_kernels.model_entry(np.float64, blocks)
        activations = np.empty(train_kernels.workspace_elements(net.layer_sizes, chunk))
        batch_X, batch_Y, no_grad = np.empty(chunk * 9), np.zeros(chunk * n_out), np.empty(0)
        outputs[blocks] = train_kernels.predict_in_chunks(model, theta, X, net.layer_sizes, net.activation_code,
                                                          net.output_code, activations, chunk, batch_X, batch_Y,
                                                          no_grad, np.empty((37, n_out)))
        loss = train_kernels.dataset_loss(model, theta, X, Y, net.layer_sizes, net.activation_code, net.output_code,
                                          net.alpha, activations, chunk, batch_X, np.empty(chunk * n_out), no_grad)
        expected_loss, _ = reference.mlp_loss_grad(theta, X, Y, net.layer_sizes.tolist(), "tanh", "softmax",
                                                   net.alpha)
        assert loss == pytest.approx(expected_loss, rel=1e-12)
    expected = reference.mlp_forward(theta, X, net.layer_sizes.tolist(), "tanh", "softmax")[-1]
    np.testing.assert_allclose(outputs[n_blocks], outputs[1], rtol=1e-12)
    np.testing.assert_allclose(outputs[n_blocks], expected, rtol=1e-12)


@needs_mkl
def test_fewer_rows_than_blocks_and_no_penalty():
    net = MLP([3, 8, 2], "relu", "softmax", alpha=0.0)
    theta = net.init(random_state=0)
    X, Y = _data(net, 1)
    serial, threaded = _pass(1, net, theta, X, Y), _pass(3, net, theta, X, Y)
    assert threaded[0] == pytest.approx(serial[0], rel=1e-12)
    np.testing.assert_allclose(threaded[1], serial[1], rtol=1e-12, atol=1e-15)


@needs_mkl
def test_training_with_the_threaded_pass_follows_the_serial_one(monkeypatch):
    """Five Adam epochs of one network and data, the threaded pass against the serial one: the losses and the
    parameters agree to rounding (each product's rounding differs, and so does each step's from there on)."""
    net = MLP([12, 40, 40, 5], "relu", "softmax", alpha=1e-4)
    X, Y = _data(net, 300, seed=4)
    results = []
    passes = ("serial", "blocks", "whole_batch_mkl")
    for name in passes:
        monkeypatch.setattr(_config, "PASS", name)  # FASTGD_PASS
        training = Training(net, optim.Adam(net.init(random_state=1), lr=1e-2, layout=net.layout), X, Y, 64, seed=3)
        assert training.threaded == (name != "serial") and training.pass_name == name
        history = training.run(5)
        results.append((np.array(history.loss), training.theta.copy(),
                        {n_blocks for _, n_blocks in training._epochs.chosen.values()}))
    (serial_losses, serial_theta, serial_blocks), *threaded = results
    assert serial_blocks <= {1}
    for (losses, theta, blocks), name in zip(threaded, passes[1:]):
        assert blocks == {train_kernels.pass_blocks(name, 64, threads.get_num_threads())}
        np.testing.assert_allclose(losses, serial_losses, rtol=1e-10)
        np.testing.assert_allclose(theta, serial_theta, rtol=1e-8, atol=1e-10)
        assert losses[-1] < losses[0]  # it trains (on random labels: slowly)


def test_when_the_pass_is_threaded(monkeypatch):
    """From 2²⁰ multiply-adds a batch, where MKL is installed: the whole batch on MKL's threads where those are
    Numba's, else one block of rows per thread up to 2²⁶; the serial pass otherwise."""
    big, small, large, largest = [100, 256, 256, 10], [64, 32, 10], [256, 512, 512, 10], [256, 1024, 1024, 10]
    whole = train_kernels.WHOLE_BATCH_ON_MKL
    monkeypatch.setattr(mkl, "available", lambda: True)
    monkeypatch.setattr(mkl, "shares_numbas_threads", lambda: True)
    for layer_sizes, n_rows in ((big, 64), (big, 16), (large, 256), (largest, 1024), ([2048, 2048, 10], 1)):
        assert train_kernels.model_blocks(layer_sizes, n_rows, 2) == whole, (layer_sizes, n_rows)
    assert train_kernels.model_blocks(big, 8, 2) == 1  # 757,760 multiply-adds a batch
    assert train_kernels.model_blocks(small, 32, 2) == 1  # digits: 75,776
    assert train_kernels.model_blocks(largest, 1024, 1) == 1
    monkeypatch.setattr(mkl, "shares_numbas_threads", lambda: False)  # MKL sequential: blocks of rows only
    assert train_kernels.model_blocks(big, 64, 2) == 2
    assert train_kernels.model_blocks(big, 64, 8) == 4  # at least 16 rows a block
    assert train_kernels.model_blocks(big, 64, 1) == 1
    assert train_kernels.model_blocks(big, 16, 2) == 1
    assert train_kernels.model_blocks(large, 256, 2) == 1  # 10⁸ multiply-adds: no faster
    assert train_kernels.model_blocks(largest, 1024, 2) == 1  # 1.4·10⁹: OpenBLAS is faster
    monkeypatch.setattr(mkl, "available", lambda: False)
    assert train_kernels.model_blocks(big, 64, 2) == 1
    assert train_kernels.model_blocks(largest, 1024, 2) == 1


@needs_mkl
def test_mkl_runs_on_numbas_openmp_threads_where_numbas_loops_do():
    """MKL is loaded on the GNU OpenMP runtime exactly where Numba's loops run on it (one pool of threads)."""
    import numba

    mkl.load()
    assert mkl.shares_numbas_threads() == (numba.threading_layer() == "omp")
    assert ("Numba's threads" in mkl.describe()) == mkl.shares_numbas_threads()


@pytest.mark.parametrize("runtimes, layer", [(["libgomp"], "omp"), (["libomp"], "omp"), (["libgomp", "libiomp"], "omp"),
                                             (["libgomp"], "tbb")])
def test_mkl_takes_numbas_threads_only_where_they_are_gnu_openmps(monkeypatch, runtimes, layer):
    """MKL's GNU layer only where Numba's loops run on libgomp and no other OpenMP runtime is loaded."""
    import numba
    import threadpoolctl

    monkeypatch.setattr(numba, "threading_layer", lambda: layer)
    monkeypatch.setattr(threadpoolctl, "threadpool_info",
                        lambda: [dict(user_api="openmp", prefix=prefix) for prefix in runtimes])
    expected = mkl._GNU if (runtimes, layer) == (["libgomp"], "omp") else mkl._SEQUENTIAL
    assert mkl._threading_layer() == expected


def test_the_whole_batch_pass_and_model_entry_refuse_negative_blocks():
    with pytest.raises(ValueError, match="n_blocks must be 1 or more"):
        train_kernels.model_entry(np.float64, -1)


def test_blocks_must_be_positive():
    from fastgd.kernels.threaded import loss_and_gradient_in_blocks

    with pytest.raises(ValueError, match="n_blocks must be at least 1"):
        loss_and_gradient_in_blocks(0)


def test_fastgd_info_says_whether_the_threaded_pass_can_run(capsys, monkeypatch):
    from fastgd import cli

    cli.main(["info"])
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("mkl"))
    assert ("Math Kernel Library" in line) == mkl.available()
    monkeypatch.setattr(mkl, "_state", {"error": "MKL is not installed: pip install \"fastgd[mkl]\" (the mkl wheel)"})
    cli.main(["info"])
    expected = 'mkl (the threaded training pass): MKL is not installed: pip install "fastgd[mkl]"'
    assert expected in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("n_blocks", [1, pytest.param(2, marks=needs_mkl),
                                      pytest.param(train_kernels.WHOLE_BATCH_ON_MKL, marks=needs_mkl)])
def test_a_fit_on_the_threaded_pass_keeps_blas_to_one_thread(monkeypatch, n_blocks):
    """OpenBLAS's workers must not spin beside the pass's threads: a fit that takes the threaded pass runs under
    threads.blas_limit(1) (and trains, with early stopping's validation products in between), another does not."""
    import contextlib

    from fastgd import MLPClassifier

    limits = []

    @contextlib.contextmanager
    def recording_limit(n_threads):
        limits.append(n_threads)
        yield

    monkeypatch.setattr(threads, "blas_limit", recording_limit)
    monkeypatch.setattr(_config, "PASS", train_kernels.pass_name(n_blocks))
    X = np.random.default_rng(0).standard_normal((200, 6))
    y = (X[:, 0] > 0).astype(int)
    classifier = MLPClassifier(hidden_layer_sizes=(16,), batch_size=32, max_iter=3, early_stopping=True,
                               random_state=0).fit(X, y)
    assert limits == ([1] if n_blocks != 1 else [])
    assert len(classifier.loss_curve_) == 3 and np.isfinite(classifier.loss_curve_).all()


def test_no_threaded_pass_on_the_workqueue_layer(monkeypatch):
    """The workqueue layer ends the process when two threads start parallel regions at once."""
    import numba

    monkeypatch.setattr(mkl, "available", lambda: True)
    monkeypatch.setattr(mkl, "shares_numbas_threads", lambda: False)
    monkeypatch.setattr(numba, "threading_layer", lambda: "workqueue")
    assert train_kernels.model_blocks([100, 256, 256, 10], 64, 2) == 1
    monkeypatch.setattr(numba, "threading_layer", lambda: "tbb")
    assert train_kernels.model_blocks([100, 256, 256, 10], 64, 2) == 2
