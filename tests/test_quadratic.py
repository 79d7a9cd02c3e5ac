"""DeepOBS's noisy quadratic (quadratic_deep): its Hessian and data as DeepOBS draws them, the compiled pass against
the NumPy oracle and central differences, training against plain loops (NumPy's SGD, torch's Adam) over the same
batches of whole samples, f* in closed form, and the problem in a sweep."""

import numpy as np
import pytest

from fastgd import datasets, optim, problems, sweep
from fastgd.networks.quadratic import (NoisyQuadratic, deepobs_hessian, optimal_loss, quadratic_deep,
                                       reference_loss_grad)
from fastgd.reference import splitmix64_permutation
from fastgd.training import Training


def _deepobs_rotation(rng, dimension):
    """DeepOBS's random_rotation as it is written there (stacked blocks), for the transcription's check."""
    t = 2 * np.pi * rng.uniform()
    R = [[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]]
    for d in range(2, dimension):
        v = rng.normal(size=(d + 1, 1))
        v = np.divide(v, np.sqrt(np.transpose(v).dot(v)))
        e = np.concatenate((np.array([[1.0]]), np.zeros((d, 1))), axis=0)
        x = np.divide((e - v), (np.sqrt(np.transpose(e - v).dot(e - v))))
        D = np.vstack([np.hstack([[[1.0]], np.zeros((1, d))]), np.hstack([np.zeros((d, 1)), R])])
        R = D - 2 * np.outer(x, np.transpose(x).dot(D))
    return np.negative(R)


def test_the_hessian_is_deepobs_draw_its_spectrum_and_a_rotation():
    hessian, eigenvalues = deepobs_hessian()
    rng = np.random.RandomState(42)
    drawn = np.concatenate((rng.uniform(0., 1., 90), rng.uniform(30., 60., 10)), axis=0)
    rotation = _deepobs_rotation(rng, 100)
    np.testing.assert_array_equal(eigenvalues, drawn)
    np.testing.assert_allclose(hessian, rotation.T @ np.diag(drawn) @ rotation, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(100), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    np.testing.assert_array_equal(hessian, hessian.T)
    np.testing.assert_allclose(np.linalg.eigvalsh(hessian), np.sort(drawn), rtol=1e-10)
    assert np.sum(drawn < 1) == 90 and np.all((drawn[90:] >= 30) & (drawn[90:] < 60))


def test_the_data_set_is_deepobs_samples_in_raw_units():
    data = problems.get("quadratic_deep").load()
    expected_train = np.float32(np.random.RandomState(42).normal(0.0, 0.6, (1000, 100)))
    expected_test = np.float32(np.random.RandomState(43).normal(0.0, 0.6, (1000, 100)))
    np.testing.assert_array_equal(data.X_train, expected_train)
    np.testing.assert_array_equal(data.X_test, expected_test)
    assert data.task == "regression" and not data.y_train.any()
    with pytest.raises(datasets.DatasetError, match="give standardise = false"):
        datasets.Source("q", loader="deepobs_quadratic")
    with pytest.raises(datasets.DatasetError, match="takes no options, test_size or split_seed"):
        datasets.Source("q", loader="deepobs_quadratic", standardise=False, test_size=0.5)


@pytest.fixture(scope="module")
def small():
    """A 6-dimensional noisy quadratic with a spread spectrum and 10 samples."""
    rng = np.random.default_rng(0)
    rotation = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    hessian = rotation.T @ np.diag([0.1, 0.5, 1.0, 3.0, 30.0, 55.0]) @ rotation
    hessian = (hessian + hessian.T) / 2
    return NoisyQuadratic(hessian), rng.normal(0, 0.6, size=(10, 6)), rng.normal(size=6)


def test_the_compiled_pass_is_the_numpy_oracles_and_the_losss_slope(small):
    net, X, theta = small
    loss, grad = net.loss_grad(theta, X, None)
    oracle_loss, oracle_grad = reference_loss_grad(theta, X, net.hessian)
    assert loss == pytest.approx(oracle_loss, rel=1e-13)
    np.testing.assert_allclose(grad, oracle_grad, rtol=1e-12, atol=1e-13)
    assert net.loss(theta, X, None) == loss  # an empty gradient asks for the loss alone
    step = 1e-6
    for k in range(6):
        shifted = theta.copy()
        shifted[k] += step
        up = net.loss(shifted, X, None)
        shifted[k] -= 2 * step
        down = net.loss(shifted, X, None)
        assert (up - down) / (2 * step) == pytest.approx(grad[k], rel=1e-7, abs=1e-7)
    # whole samples: a batch's loss is its samples' mean loss, and predict gives each sample's
    np.testing.assert_allclose(net.predict(theta, X)[:, 0].mean(), loss, rtol=1e-13)


def test_float32_stays_float32(small):
    net, X, theta = small
    loss, grad = net.loss_grad(theta.astype(np.float32), X, None)
    assert grad.dtype == np.float32
    assert loss == pytest.approx(reference_loss_grad(theta.astype(np.float32), X.astype(np.float32),
                                                     net.hessian)[0], rel=1e-5)


def test_bad_hessians_and_data_are_refused_in_one_line(small):
    net, X, theta = small
    for hessian, message in ((np.ones((2, 3)), "square"), (np.array([[1.0, 2.0], [0.0, 1.0]]), "symmetric")):
        with pytest.raises(ValueError, match=message):
            NoisyQuadratic(hessian)
    with pytest.raises(ValueError) as refused:
        net.loss_grad(theta, X[:, :5], None)
    assert "(n, 6)" in str(refused.value) and "\n" not in str(refused.value)


def _numpy_epochs(net, X, theta, batch_size, seed, n_epochs, step):
    """Epoch losses of a plain loop over fastgd's batches of whole samples (its permutation, the last batch short),
    each batch's loss and gradient from the NumPy oracle, then ``step(theta, grad)``."""
    losses = []
    for epoch in range(n_epochs):
        order = np.asarray(splitmix64_permutation(X.shape[0], seed, epoch))
        total = 0.0
        for first in range(0, X.shape[0], batch_size):
            rows = order[first:first + batch_size]
            loss, grad = reference_loss_grad(theta, X[rows], net.hessian)
            total += loss * rows.size
            step(theta, grad)
        losses.append(total / X.shape[0])
    return losses


def test_sgd_trains_as_a_plain_numpy_loop_over_the_same_batches():
    net = quadratic_deep()
    data = problems.get("quadratic_deep").load()
    X = data.X_train[:300]
    theta = net.init()
    history = Training(net, optim.SGD(theta, lr=0.01), X, np.zeros((300, 1)), 128, seed=3).run(4)
    expected = net.init()

    def sgd(params, grad):
        params -= 0.01 * grad

    losses = _numpy_epochs(net, X, expected, 128, 3, 4, sgd)
    np.testing.assert_allclose(history.loss, losses, rtol=1e-11)
    np.testing.assert_allclose(theta, expected, rtol=1e-11, atol=1e-13)
    assert losses[-1] < losses[0] / 1.5


def test_adam_trains_as_torchs_adam_over_the_same_batches():
    torch = pytest.importorskip("torch", reason="torch's Adam is the oracle")
    net = quadratic_deep()
    X = problems.get("quadratic_deep").load().X_train[:300]
    theta = net.init()
    history = Training(net, optim.Adam(theta, lr=0.05), X, np.zeros((300, 1)), 128, seed=5).run(3)
    parameter = torch.nn.Parameter(torch.ones(100, dtype=torch.float64))
    adam = torch.optim.Adam([parameter], lr=0.05)

    def step(params, grad):
        parameter.grad = torch.from_numpy(grad.copy())
        adam.step()
        params[...] = parameter.detach().numpy()

    losses = _numpy_epochs(net, X, net.init(), 128, 5, 3, step)
    np.testing.assert_allclose(history.loss, losses, rtol=1e-9)
    np.testing.assert_allclose(theta, parameter.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_f_star_is_the_loss_at_the_samples_mean_and_nothing_lower():
    problem = problems.get("quadratic_deep")
    data = problem.load()
    hessian = deepobs_hessian()[0]
    f_star, theta_star = optimal_loss(data.X_train, hessian)
    assert problem.f_star() == f_star
    np.testing.assert_allclose(theta_star, data.X_train.mean(axis=0))
    # the closed form: ½ tr(Q S), S the samples' covariance (divided by n)
    centred = data.X_train - data.X_train.mean(axis=0)
    assert f_star == pytest.approx(0.5 * np.trace(hessian @ centred.T @ centred) / 1000, rel=1e-12)
    net = quadratic_deep()
    assert np.max(np.abs(net.loss_grad(theta_star, data.X_train, None)[1])) < 1e-12
    rng = np.random.default_rng(1)
    for _ in range(3):
        shift = rng.normal(0, 0.1, 100)
        # f(θ* + δ) − f* = ½ δᵀ Q δ > 0
        assert net.loss(theta_star + shift, data.X_train, None) - f_star == pytest.approx(
            0.5 * shift @ hessian @ shift, rel=1e-8)
    assert problems.as_dataset_table(problem)["f_star"] == f_star


def test_a_sweep_trains_the_problem_as_training_does(tmp_path):
    raw = dict(name="q", rules=["sgd", "adam"], learning_rates=[0.01], seeds=[0], problems=["quadratic_deep"])
    config = sweep.parse(raw)
    assert config.network_of("quadratic_deep") == '{"architecture": "quadratic_deep"}'
    config = config.on_dataset({"name": "quadratic_deep", **dict(config.source["datasets"]["quadratic_deep"],
                                                                 epochs=3)}, target_loss=86.0)
    sweep.run_sweep(config, tmp_path / "q.db", jobs=1, progress=False)
    runs = sweep.load_runs(tmp_path / "q.db").set_index("rule")
    curves = sweep.load_curves(tmp_path / "q.db")
    data = problems.get("quadratic_deep").load()
    for rule in ("sgd", "adam"):
        run = runs.loc[rule]
        assert run["status"] == "ok"
        theta = quadratic_deep().init()
        history = Training(quadratic_deep(), optim.OPTIMIZERS[rule](theta, lr=0.01), data.X_train, data.Y_train,
                           128, seed=0).run(3)
        stored = curves[curves["run_id"] == run["run_id"]].sort_values("epoch")["loss"].to_numpy()
        np.testing.assert_allclose(stored, history.loss, rtol=1e-10)
        assert run["test_loss"] == pytest.approx(quadratic_deep().loss(theta, data.X_test, None), rel=1e-10)


def test_its_landscape_is_the_quadratic_at_each_point_and_refuses_a_penalty(small):
    from fastgd import landscape
    from fastgd.networks import NetworkError

    net, X, theta = small
    first, second = landscape.random_direction(net, theta, 0), landscape.random_direction(net, theta, 1)
    assert np.linalg.norm(first) == pytest.approx(np.linalg.norm(theta))  # θ's scale, as a filter's would be
    grid = [-0.5, 0.0, 1.0]
    surface = landscape.plane(net, theta, X, None, grid, grid, directions=(first, second))
    for row, b in enumerate(grid):
        for column, a in enumerate(grid):
            shifted = theta + a * first + b * second
            by_hand = np.mean([0.5 * (shifted - x) @ net.hessian @ (shifted - x) for x in X])
            assert surface[row, column] == pytest.approx(by_hand, rel=1e-12)
    with pytest.raises(NetworkError, match="takes no L2 penalty"):
        net.with_alpha(0.1)
