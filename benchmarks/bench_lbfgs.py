"""L-BFGS on a bundled set's full batch: fastgd against ``torch.optim.LBFGS`` (issue 28's goal: ≥ 3× torch).

One ``step`` of ``ITERATIONS`` iterations with the strong-Wolfe line search, history ``HISTORY``, no early stop
(both tolerances 0), float64, on the set's training rows through one hidden layer of ``HIDDEN`` ReLU units (softmax
and cross-entropy, a logistic output for two classes, the identity and half the squared error for regression),
every implementation from the same weights, so each makes the same evaluations (``track_evaluations``):

* ``fastgd``: ``fastgd.optim.LBFGS`` with a Python closure over fastgd's compiled pass;
* ``fastgd_compiled``: :func:`fastgd.training.lbfgs_epochs`, the same step in one compiled call with the pass as
  its callback (what a sweep's ``lbfgs`` epoch is);
* ``torch``: ``torch.optim.LBFGS`` with the usual closure (zero_grad, forward, loss, backward).

``benchmarks/scripts/lbfgs_speed.py`` makes the same comparison in one run, with ratios.
"""

import numpy as np

from fastgd import MLP, datasets, optim
from fastgd.kernels import mlp as mlp_kernels
from fastgd.training import lbfgs_epochs

from benchmarks import common

HIDDEN = 32
ITERATIONS = 20
HISTORY = 10
SETTINGS = dict(max_iter=ITERATIONS, max_eval=10 * ITERATIONS, tolerance_grad=0.0, tolerance_change=0.0,
                history_size=HISTORY, line_search_fn="strong_wolfe")


def problem(dataset):
    """(net, X, Y, θ₀): the MLP on the set's training rows, float64, no penalty."""
    data = common.load_dataset(dataset)
    classification = data.task == "classification"
    n_outputs = data.n_classes if classification and data.n_classes > 2 else 1
    output = ("softmax" if n_outputs > 1 else "logistic") if classification else "identity"
    net = MLP([data.X_train.shape[1], HIDDEN, n_outputs], activation="relu", output=output, alpha=0.0)
    if classification:
        Y = np.eye(n_outputs)[data.y_train] if n_outputs > 1 else data.y_train.reshape(-1, 1).astype(np.float64)
    else:
        Y = data.y_train.reshape(-1, 1).astype(np.float64)
    X, Y = net.check_data(np.ascontiguousarray(data.X_train, dtype=np.float64), Y)
    return net, X, Y, net.init(random_state=0)


def fastgd_step(net, X, Y, start):
    """One step of fastgd.optim.LBFGS from ``start``, its closure over the compiled pass; returns its evaluations."""
    theta = start.copy()
    grad = np.empty_like(theta)
    size = net.epoch_workspaces(X.shape[0])[0]
    arguments = (X, Y, net.layer_sizes, net.activation_code, net.output_code, net.alpha, grad, np.empty(size),
                 np.empty(size))
    optimizer = optim.LBFGS(theta, **SETTINGS)
    optimizer.step(lambda: (mlp_kernels.loss_and_gradient(theta, *arguments), grad))
    return optimizer.state["func_evals"]


def compiled_step(net, X, Y, start):
    """The same step as one compiled call (:func:`fastgd.training.lbfgs_epochs`); returns its evaluations."""
    (_, _, evaluations), = lbfgs_epochs(net, start.copy(), X, Y, 1, **SETTINGS)
    return evaluations


def torch_step(net, X, Y, start):
    """One step of torch.optim.LBFGS from the same weights; returns its evaluations."""
    import torch

    sizes = net.layer_sizes.tolist()
    X_t, Y_t = torch.from_numpy(np.array(X)), torch.from_numpy(np.array(Y))
    model = torch.nn.Sequential(torch.nn.Linear(sizes[0], sizes[1], dtype=torch.float64), torch.nn.ReLU(),
                                torch.nn.Linear(sizes[1], sizes[2], dtype=torch.float64))
    with torch.no_grad():  # fastgd's W is n_in × n_out, torch's n_out × n_in
        (w1, w2), (b1, b2) = net.unpack(start)
        model[0].weight.copy_(torch.from_numpy(w1.T.copy()))
        model[2].weight.copy_(torch.from_numpy(w2.T.copy()))
        model[0].bias.copy_(torch.from_numpy(b1))
        model[2].bias.copy_(torch.from_numpy(b2))
    optimizer = torch.optim.LBFGS(model.parameters(), **SETTINGS)
    labels = Y_t.argmax(1) if net.output == "softmax" else None

    def closure():
        optimizer.zero_grad()
        out = model(X_t)
        if net.output == "softmax":
            loss = torch.nn.functional.cross_entropy(out, labels)
        elif net.output == "logistic":
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out, Y_t)
        else:
            loss = 0.5 * torch.mean((out - Y_t) ** 2)
        loss.backward()
        return loss

    optimizer.step(closure)
    return optimizer.state[optimizer._params[0]]["func_evals"]


STEPS = {"fastgd": fastgd_step, "fastgd_compiled": compiled_step, "torch": torch_step}


class LBFGSStep:
    """One L-BFGS step (see the module) on each bundled set's full batch, by each implementation."""

    params = [list(datasets.BUNDLED), list(STEPS)]
    param_names = ["dataset", "implementation"]
    timeout = 120

    def setup(self, dataset, implementation):
        if implementation == "torch":
            try:
                import torch
            except ImportError:
                raise NotImplementedError("torch is not installed") from None
            torch.set_num_threads(1)
        net, X, Y, start = problem(dataset)
        step = STEPS[implementation]
        self.step = common.warmed(lambda: step(net, X, Y, start))

    def time_step(self, dataset, implementation):
        self.step()

    def track_evaluations(self, dataset, implementation):
        return self.step()

    track_evaluations.unit = "loss and gradient evaluations in the step (the same for every implementation)"
