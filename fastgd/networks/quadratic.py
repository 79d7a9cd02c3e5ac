r"""DeepOBS's noisy quadratic as a model: θ ∈ ℝᵈ, each sample x ∈ ℝᵈ costs ½ (θ − x)ᵀ Q (θ − x).

:class:`NoisyQuadratic` stands where a declared :class:`fastgd.networks.Network` stands (the compiled epoch,
:class:`fastgd.training.Training`, sweeps, ``compare``, the report): one tensor ``theta`` of d parameters
(its layout ``[(d,)]``), initialised to ones as DeepOBS does; samples are whole rows x of the data set (a batch's
loss is the mean of its samples' losses, as DeepOBS's); the data set's target column is not read. Its pass is
:mod:`fastgd.kernels.quadratic`, its NumPy oracle :func:`reference_loss_grad`.

:func:`deepobs_hessian` is DeepOBS's ``quadratic_deep`` Hessian (Schneider, Balles & Hennig, ICLR 2019;
``deepobs/tensorflow/testproblems/quadratic_deep.py``), drawn as DeepOBS draws it: one
``numpy.random.RandomState(42)`` gives 90 eigenvalues uniform in [0, 1), then 10 uniform in [30, 60), then a
rotation R of SO(100) by the subgroup algorithm of Diaconis & Shahshahani; Q = Rᵀ D R. Its data set is
:func:`fastgd.datasets.deepobs_quadratic`. The training objective (the mean loss over the n training samples) is
minimised at their mean x̄, where it is f* = ½ · mean over i of (x_i − x̄)ᵀ Q (x_i − x̄) (:func:`optimal_loss`).

    >>> import numpy as np
    >>> from fastgd.networks.quadratic import NoisyQuadratic
    >>> net = NoisyQuadratic(np.diag([1.0, 4.0]))
    >>> theta = net.init()
    >>> net.loss_grad(theta, np.zeros((1, 2)), None)
    (2.5, array([1., 4.]))
"""

import functools

import numpy as np

from fastgd.kernels import quadratic as kernels
from fastgd.machine import physical_memory_bytes
from fastgd.networks.network import Network, NetworkError, Tensor, _check_dtype, _read_only

__all__ = ["NoisyQuadratic", "deepobs_hessian", "quadratic_deep", "reference_loss_grad", "optimal_loss",
           "DEEPOBS_SEED", "DEEPOBS_DIMENSION", "QUADRATICS"]

DEEPOBS_SEED = 42
DEEPOBS_DIMENSION = 100
PREDICT_CHUNK = 1024


def _random_rotation(rng, dimension):
    """A rotation of SO(``dimension``) from ``rng``, DeepOBS's ``random_rotation`` draw for draw."""
    angle = 2 * np.pi * rng.uniform()
    rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    for d in range(2, dimension):
        v = rng.normal(size=(d + 1, 1))
        v = v / np.sqrt(v.T @ v)
        e = np.zeros((d + 1, 1))
        e[0, 0] = 1.0
        x = (e - v) / np.sqrt((e - v).T @ (e - v))
        embedded = np.zeros((d + 1, d + 1))
        embedded[0, 0] = 1.0
        embedded[1:, 1:] = rotation
        rotation = embedded - 2 * np.outer(x, x.T @ embedded)
    return -rotation


@functools.cache
def deepobs_hessian(seed=DEEPOBS_SEED):
    """DeepOBS's ``quadratic_deep`` Hessian Q (100 × 100, float64, symmetric positive definite) and its eigenvalues:
    ``(Q, eigenvalues)``, read-only (see the module). Q is symmetrised, (Q + Qᵀ)/2: the product Rᵀ D R is
    symmetric to rounding only."""
    rng = np.random.RandomState(seed)
    eigenvalues = np.concatenate([rng.uniform(0.0, 1.0, 90), rng.uniform(30.0, 60.0, 10)])
    rotation = _random_rotation(rng, DEEPOBS_DIMENSION)
    hessian = rotation.T @ np.diag(eigenvalues) @ rotation
    hessian = (hessian + hessian.T) / 2
    hessian.flags.writeable = eigenvalues.flags.writeable = False
    return hessian, eigenvalues


def reference_loss_grad(theta, X, hessian):
    """The NumPy oracle: (mean over rows x of X of ½ (θ − x)ᵀ Q (θ − x), its gradient in θ), float64."""
    difference = np.asarray(theta, np.float64)[None, :] - np.asarray(X, np.float64)
    loss = 0.5 * np.mean(np.einsum("ia,ab,ib->i", difference, hessian, difference))
    return float(loss), hessian @ difference.mean(axis=0)


def optimal_loss(X, hessian):
    """``(f_star, theta_star)`` of the training objective on the samples X: θ* = x̄, f* = ½ mean (x − x̄)ᵀQ(x − x̄)."""
    X = np.asarray(X, np.float64)
    theta = X.mean(axis=0)
    return reference_loss_grad(theta, X, hessian)[0], theta


class NoisyQuadratic(Network):
    """The noisy quadratic of Hessian ``hessian`` (d × d, symmetric) as a model fastgd trains (see the module).

    ``name``: what a report calls it. Samples are rows of d numbers; ``loss_name`` is ``"quadratic"`` and the
    data set it trains on is a regression set (its target column is not read).
    """

    loss_name = "quadratic"

    def __init__(self, hessian, name="noisy quadratic"):
        # Network.__init__ declares layers: the quadratic has none, and sets what the Network's methods read itself
        hessian = np.asarray(hessian, dtype=np.float64)
        if hessian.ndim != 2 or hessian.shape[0] != hessian.shape[1] or hessian.shape[0] < 1:
            raise NetworkError(f"the Hessian must be a square matrix, got shape {hessian.shape}")
        if not np.isfinite(hessian).all() or not np.allclose(hessian, hessian.T, rtol=1e-12, atol=1e-12):
            raise NetworkError("the Hessian must be finite and symmetric")
        self.hessian = _read_only(hessian.copy())
        self.name = name
        dimension = hessian.shape[0]
        self.layers = ()
        self.resolved = ()
        self.input_shape = (dimension,)
        self.tensors = (Tensor("theta", (dimension,), 0, 0),)
        self.n_params = dimension
        self.alpha = 0.0  # DeepOBS's loss as it is: no L2 penalty (with_alpha refuses one)
        # Q in each dtype θ may have: the pass's product takes Q in θ's
        self._hessians = {np.dtype(dtype): _read_only(hessian.astype(dtype)) for dtype in (np.float32, np.float64)}
        self._structures = {dtype: kernels.hessian_structure(hessian, dtype) for dtype in self._hessians}

    def __repr__(self):
        return f"NoisyQuadratic({self.name!r}, dimension {self.n_params})"

    def with_alpha(self, alpha):
        """Refused: the noisy quadratic's loss is DeepOBS's, with no L2 penalty."""
        raise NetworkError(f"{self.name} takes no L2 penalty (alpha = {alpha!r}): its loss is DeepOBS's as it is")

    @property
    def output_shape(self):
        return (1,)

    @property
    def multiply_adds_per_sample(self):
        """A sample's multiply-adds in the pass: Q (θ − x), d² (what a sweep's progress line counts)."""
        return self.n_params * self.n_params

    @property
    def layout(self):
        return [(self.n_params,)]

    def describe(self):
        eigenvalues = np.linalg.eigvalsh(self.hessian)
        return (f"{self.name}: ½ (θ − x)ᵀ Q (θ − x) in {self.n_params} dimensions, Q's eigenvalues "
                f"{eigenvalues[0]:.3g} to {eigenvalues[-1]:.3g}")

    def init(self, random_state=None, scheme="torch", dtype=np.float64):
        """θ = ones, DeepOBS's start (``random_state`` and ``scheme`` change nothing: every seed starts there)."""
        return np.ones(self.n_params, dtype=_check_dtype(dtype))

    def workspace_elements(self, n_rows):
        """(elements of the pass's workspace for ``n_rows`` rows, 0): the rows θ − x and their products with Q."""
        return 2 * int(n_rows) * self.n_params, 0

    def workspace_bytes(self, n_rows, dtype=np.float64):
        """Bytes of a pass on ``n_rows`` rows: θ, its gradient, Q and the workspace."""
        return np.dtype(dtype).itemsize * (2 * self.n_params + self.hessian.size + self.workspace_elements(n_rows)[0])

    def check_fits(self, n_rows, dtype=np.float64):
        """NetworkError in one line when a pass on ``n_rows`` rows would not fit in this machine's memory."""
        memory = physical_memory_bytes()
        needed = self.workspace_bytes(n_rows, dtype)
        if memory is not None and needed > memory:
            raise NetworkError(f"the noisy quadratic needs {needed / 2 ** 30:.3g} GiB for {n_rows} rows in "
                               f"{np.dtype(dtype).name}; this machine has {memory / 2 ** 30:.3g} GiB")

    def epoch_pass(self, dtype, n_rows, n_blocks=1):
        """``(pass, structure, code, code, alpha)`` of :func:`fastgd.kernels.quadratic.quadratic_entry`."""
        if n_blocks != 1:
            raise NetworkError(f"the noisy quadratic has one pass, in one block of rows; got n_blocks={n_blocks}")
        dtype = _check_dtype(dtype)
        return kernels.quadratic_entry(dtype), self._structures[dtype], self.n_params, 0, 0.0

    def epoch_workspaces(self, n_rows):
        """(elements of ``activations``, of ``deltas``) of :meth:`epoch_pass`'s pass on ``n_rows`` rows."""
        return self.workspace_elements(n_rows)

    def loss_grad(self, theta, X, Y):
        """(loss, gradient) on the samples X (``Y`` is not read); the loss a Python float, the gradient θ's dtype."""
        theta = self._check_theta(theta)
        X, _ = self.check_data(X, None, theta.dtype)
        grad = np.empty_like(theta)
        loss = kernels.loss_and_gradient(theta, X, self._hessians[theta.dtype], grad, self._work(X, theta.dtype))
        return float(loss), grad

    def loss(self, theta, X, Y):
        theta = self._check_theta(theta)
        X, _ = self.check_data(X, None, theta.dtype)
        return float(kernels.loss_and_gradient(theta, X, self._hessians[theta.dtype], theta[:0],
                                               self._work(X, theta.dtype)))

    def _work(self, X, dtype):
        self.check_fits(X.shape[0], dtype)
        return np.empty(self.workspace_elements(X.shape[0])[0], dtype)

    def predict(self, theta, X, chunk_size=PREDICT_CHUNK):
        """Each sample's loss at θ, shape (n, 1)."""
        theta = self._check_theta(theta)
        X, _ = self.check_data(X, None, theta.dtype)
        difference = theta[None, :].astype(np.float64) - X
        return (0.5 * np.einsum("ia,ab,ib->i", difference, self.hessian, difference))[:, None].astype(theta.dtype)

    def input_error(self, shape):
        return NetworkError(f"the noisy quadratic: X has shape {tuple(shape)}; it takes samples of "
                            f"{self.n_params} numbers, (n, {self.n_params}), n ≥ 1")


def quadratic_deep():
    """DeepOBS's ``quadratic_deep``: the noisy quadratic of :func:`deepobs_hessian` in 100 dimensions."""
    return NoisyQuadratic(deepobs_hessian()[0], name="quadratic_deep")


# the noisy quadratics a sweep configuration names as an architecture (model = "quadratic_deep")
QUADRATICS = {"quadratic_deep": quadratic_deep}
