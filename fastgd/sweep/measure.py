"""What ``fastgd compare`` measures besides the runs, for its report: each function trains, times or describes here
and now and returns plain JSON-ready values, which the report's sections (:mod:`fastgd.report.sections`) store and
later draw without computing anything.

* :func:`describe_machine`: the machine and the versions it runs;
* :func:`gradient_checks`: backpropagation against central differences along training;
* :func:`trajectory_data`: every rule's path on the test functions, with their contour grids;
* :func:`dataset_landscape`: a data set's loss landscape, its MLP as the sweep trains it;
* :func:`dataset_descriptions` (stored by :func:`record_datasets` before a sweep runs): where each data set comes
  from, its size, hash and target loss, and the model trained on it.

The throughput is measured by :func:`fastgd.baselines.throughput.measure`, on the measurement layer the asv suite
shares (:mod:`fastgd.baselines`). This module sits at the sweep's layer because a landscape and a description take
the sweep's configuration.
"""

import json
import platform

import numpy as np

from fastgd import functions, optim
from fastgd import rules as rules_registry

__all__ = ["DATASETS", "describe_machine", "gradient_checks", "network_gradient_check", "trajectory_data",
           "dataset_landscape", "landscape_is_current", "dataset_descriptions", "record_datasets",
           "TRAJECTORY_SETTINGS"]

# the store's artefact of data-set descriptions, written by record_datasets before a sweep
DATASETS = "datasets"

# per test function: the learning rate with which each rule reaches the minimum
# (or escapes the saddle) in the plotted number of steps, from a grid search
TRAJECTORY_SETTINGS = {
    "rosenbrock": (3000, {"sgd": 1e-3, "momentum": 1e-3, "nesterov": 1e-3, "adagrad": 1.0, "rmsprop": 3e-3,
                          "adadelta": 0.3, "adam": 3e-2, "amsgrad": 0.1, "adamax": 1.0, "nadam": 1e-2,
                          "adamw": 3e-2, "lion": 3e-3}),
    "beale": (2000, {"sgd": 3e-2, "momentum": 3e-3, "nesterov": 3e-3, "adagrad": 1.0, "rmsprop": 3e-3,
                     "adadelta": 0.1, "adam": 3e-2, "amsgrad": 0.1, "adamax": 0.1, "nadam": 3e-2, "adamw": 3e-2,
                     "lion": 1e-3}),
    "saddle": (600, {"sgd": 1e-2, "momentum": 1e-3, "nesterov": 1e-3, "adagrad": 0.1, "rmsprop": 1e-3,
                     "adadelta": 0.1, "adam": 3e-3, "amsgrad": 1e-2, "adamax": 3e-3, "nadam": 3e-3, "adamw": 3e-3,
                     "lion": 1e-3}),
}

# a known network's gradient check takes six passes per parameter: above this many parameters it would take minutes
GRADCHECK_MAX_PARAMETERS = 20_000
# rows of data a known network's gradient check takes its loss on
GRADCHECK_ROWS = 8

# the stored contour grid of each test function (points a side) and the most points stored of one path
FUNCTION_GRID_POINTS = 150
PATH_POINTS = 600


def describe_machine():
    """The machine this process runs on, and with what: :func:`fastgd.machine.provenance` and the platform."""
    from fastgd.machine import provenance

    return dict(provenance(), platform=platform.platform())


def gradient_checks(optimizer="adam", steps=20, lr=1e-2):
    """gradcheck for every hidden activation × output of a small network, float64.

    Each check is made where ``steps`` steps of the rule ``optimizer`` (any
    registered rule) lead from the initial weights: backpropagation is checked
    along training, not only at a random start.
    """
    from fastgd.gradcheck import gradcheck
    from fastgd.kernels.mlp import ACTIVATIONS, OUTPUTS
    from fastgd.models import MLP

    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 5))
    rows = []
    for output in OUTPUTS:
        Y = {"softmax": np.eye(3)[rng.integers(0, 3, 16)], "logistic": rng.integers(0, 2, (16, 3)).astype(float),
             "identity": rng.normal(size=(16, 3))}[output]
        for activation in ACTIVATIONS:
            net = MLP([5, 6, 4, 3], activation, output, alpha=0.1)
            theta = net.init(random_state=0) + rng.normal(0, 0.1, net.n_params)
            rule = optim.OPTIMIZERS[optimizer](theta, lr=lr, layout=net.layout)
            for _ in range(steps):
                rule.step(net.loss_grad(theta, X, Y)[1])
            result = gradcheck(net, theta, X, Y)
            rows.append(dict(activation=activation, output=output, loss=_loss_name(output),
                             max_relative_error=result.max_relative_error, where=result.location,
                             passed=result.max_relative_error < 1e-6))
    return rows


def network_gradient_check(name, optimizer="adam", steps=20, lr=1e-2):
    """gradcheck of the known network ``name`` (:data:`fastgd.networks.KNOWN`) on random data, float64, where
    ``steps`` steps of ``optimizer`` lead from its initial weights (torch's scheme, seed 0), as
    :func:`gradient_checks` does for the MLP; one row of its keys, ``network`` and ``n_params`` in place of the
    activation and output. ValueError in one line for a network of more than GRADCHECK_MAX_PARAMETERS."""
    from fastgd.gradcheck import gradcheck
    from fastgd.networks import known

    net = known(name)
    if net.n_params > GRADCHECK_MAX_PARAMETERS:
        raise ValueError(f"{name} has {net.n_params:,} parameters; a gradient check takes six passes for each, "
                         f"so it takes networks of at most {GRADCHECK_MAX_PARAMETERS:,}")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(GRADCHECK_ROWS, *net.input_shape))
    Y = np.eye(net.n_outputs)[rng.integers(0, net.n_outputs, GRADCHECK_ROWS)] if net.loss_name == "cross_entropy" \
        else rng.normal(size=(GRADCHECK_ROWS, net.n_outputs))
    theta = net.init(random_state=0)
    rule = optim.OPTIMIZERS[optimizer](theta, lr=lr, layout=net.layout)
    for _ in range(steps):
        rule.step(net.loss_grad(theta, X, Y)[1])
    result = gradcheck(net, theta, X, Y)
    return dict(network=name, n_params=net.n_params, loss=net.loss_name.replace("_", "-"),
                max_relative_error=result.max_relative_error, where=result.location,
                passed=result.max_relative_error < 1e-6)


def _loss_name(output):
    return {"softmax": "cross-entropy", "logistic": "binary cross-entropy", "identity": "squared error"}[output]


def _function_grid(spec, resolution=FUNCTION_GRID_POINTS):
    x_min, x_max, y_min, y_max = spec.bounds
    xs, ys = np.linspace(x_min, x_max, resolution), np.linspace(y_min, y_max, resolution)
    values = np.array([[functions.value_and_gradient(spec.code, x, y)[0] for x in xs] for y in ys])
    return xs, ys, values


def trajectory_data(rules=None):
    """Every registered rule of ``rules`` (default: the registry's), in the registry's order, on the test functions
    of TRAJECTORY_SETTINGS, as plain lists (JSON-ready) for :func:`fastgd.report.figures.draw_trajectories`: each
    function's contour grid, and each path.

    A rule without a tuned learning rate there (a user's) takes the rate of a
    small grid that ends lowest (:func:`fastgd.functions.best_learning_rate`).
    A path keeps at most PATH_POINTS of its points, evenly spaced, and its last.
    """
    rules = [rule for rule in optim.OPTIMIZERS if rules is None or rule in rules]
    surfaces, paths = [], []  # lists: the order of the panels survives JSON with sorted keys
    for name, (n_steps, rates) in TRAJECTORY_SETTINGS.items():
        spec = functions.FUNCTIONS[name]
        xs, ys, values = _function_grid(spec)
        surfaces.append({"name": name, "n_steps": n_steps, "xs": xs.tolist(), "ys": ys.tolist(),
                         "values": values.tolist(), "start": list(spec.start), "minimum": list(spec.minimum),
                         "bounds": list(spec.bounds)})
        for rule in rules:
            # the pictures show each rule's own dynamics: no weight decay pulling towards the origin
            extra = {key: 0.0 for key, hyperparameter in rules_registry.get(rule).hyperparameters.items()
                     if isinstance(hyperparameter, rules_registry.WeightDecay)}
            lr = rates.get(rule) or functions.best_learning_rate(name, rule, n_steps, **extra)
            path = functions.trajectory(name, rule, n_steps, lr=lr, **extra)
            steps = sorted(set(range(0, n_steps + 1, max(1, n_steps // PATH_POINTS))) | {n_steps})
            paths.append({"function": name, "rule": rule, "lr": float(lr), "step": steps,
                          "x": path[steps, 0].tolist(), "y": path[steps, 1].tolist()})
    return {"functions": surfaces, "paths": paths}


def dataset_landscape(config, dataset):
    """:func:`fastgd.landscape.trained_landscape` of ``dataset`` with the model ``config`` (a
    :class:`fastgd.sweep.SweepConfig`) trains on it: its MLP, or its declared network (named as the report names
    it, :func:`fastgd.sweep.config.model_description`)."""
    from fastgd import landscape
    from fastgd.datasets import load as load_dataset
    from fastgd.sweep.config import model_description, network_options

    data = load_dataset(dataset, config.sources)
    network = config.network_of(dataset)
    if network is not None:
        net, _ = config.model(dataset, data)
        return landscape.trained_landscape(data, network=net, init=network_options(network)[1],
                                           model=model_description(network))
    hidden, activation, alpha = config.model_of(dataset)
    return landscape.trained_landscape(data, hidden, activation, alpha)


def landscape_is_current(content, config, dataset):
    """Whether ``content``, a stored :func:`dataset_landscape`, is the one it would make now: of the same data (its
    content hash), the same model as ``config`` trains it on ``dataset`` and the same training
    (:func:`fastgd.landscape.trained_landscape`'s rule and learning rate). Nothing is trained to tell."""
    import inspect

    from fastgd import landscape
    from fastgd.datasets import load as load_dataset
    from fastgd.sweep.config import model_description, network_options

    if not isinstance(content, dict):
        return False
    data = load_dataset(dataset, config.sources)
    defaults = {name: parameter.default
                for name, parameter in inspect.signature(landscape.trained_landscape).parameters.items()}
    expected = {"data_hash": data.content_hash, "optimizer": defaults["optimizer"], "lr": defaults["lr"]}
    network = config.network_of(dataset)
    if network is not None:
        net, _ = config.model(dataset, data)
        _, init = network_options(network)
        expected.update(model=model_description(network), init=init, alpha=net.alpha, parameters=int(net.n_params))
    else:
        hidden, activation, alpha = config.model_of(dataset)
        expected.update(layer_sizes=[int(data.n_features), *map(int, hidden), int(data.n_outputs)],
                        activation=activation, alpha=alpha)
    return all(content.get(key) == value for key, value in expected.items())


# the cost surface of a two-parameter model: points a side, and how far around the paths and the minimum it reaches
COST_GRID_POINTS = 120
COST_GRID_MARGIN = 0.25


def _path_setting(runs, rule):
    """The run whose setting draws ``rule``'s path: its final runs' setting (the seed first in order), else the
    grid setting of lowest mean final loss; None where every run failed or diverged."""
    runs = runs[(runs["rule"] == rule) & (runs["status"] == "ok")]
    if "phase" in runs:
        final = runs[runs["phase"] == "final"]
        runs = final if len(final) else runs[runs["phase"].fillna("grid") == "grid"]
    if runs.empty:
        return None
    runs = runs.assign(setting=runs["hyperparameters"].map(lambda value: json.dumps(value, sort_keys=True))
                       + "|" + runs["learning_rate"].map(repr) + "|" + runs["batch_size"].astype(str)
                       + "|" + runs["schedule"].astype(str) + "|" + runs["n_epochs"].astype(str))
    best = runs.groupby("setting", sort=True)["final_loss"].mean().idxmin()
    return runs[runs["setting"] == best].sort_values("seed", kind="stable").iloc[0]


def parameter_paths(config, dataset, runs, max_points=PATH_POINTS):
    """Each rule's path through (θ₀, θ₁) over the training cost surface of ``dataset``, where its model has two
    parameters (a linear regression on one feature, the lecture's h(x) = θ₀ + θ₁x); None for any other model.

    ``runs``: the store's runs frame. A rule's path takes the setting of its final runs (the first seed's), else
    its grid setting of lowest mean final loss, at a constant learning rate (a rule tuned under another schedule
    is left out), from that seed's initial θ, over its batch size's batches in the order the compiled epoch takes
    them (:func:`fastgd.reference.splitmix64_permutation`), recorded after every step: that run again, its steps
    taken one at a time through ``fastgd.optim`` (each path's ``loss``, its epochs' mean batch losses, is the
    stored curve to rounding). The surface is the training objective (:meth:`fastgd.MLP.loss`'s: half the mean
    squared error, the penalty included) on a grid that holds every path and the minimum. Returns
    :func:`trajectory_data`'s shape: one surface (named after the data set; ``start`` the first path's start,
    ``minimum`` the (ridge) least-squares θ) and the paths, ``x`` θ₀ (the intercept), ``y`` θ₁.
    """
    from fastgd.datasets import load as load_dataset
    from fastgd.reference import splitmix64_permutation

    data = load_dataset(dataset, config.sources)
    net, init = config.model(dataset, data)
    if net.n_params != 2 or data.task != "regression" or config.network_of(dataset) is not None:
        return None
    X, Y = data.X_train, data.Y_train
    runs = runs[runs["dataset"] == dataset]
    paths, starts = [], []
    for rule in [rule for rule in optim.OPTIMIZERS if rule in set(runs["rule"])]:
        run = _path_setting(runs, rule)
        if run is None or run["schedule"] != "constant":
            continue
        theta = init(int(run["seed"])).astype(np.float64)
        optimizer = optim.OPTIMIZERS[rule](theta, lr=float(run["learning_rate"]), layout=net.layout,
                                           **run["hyperparameters"])
        batch = X.shape[0] if str(run["batch_size"]) == "full" else min(int(run["batch_size"]), X.shape[0])
        points, epoch_losses = [theta.copy()], []
        for epoch in range(int(run["n_epochs"])):
            order = np.asarray(splitmix64_permutation(X.shape[0], int(run["seed"]), epoch))
            total = 0.0
            for first in range(0, X.shape[0], batch):
                rows = order[first:first + batch]
                # through a closure: a closure rule (SAM) evaluates the batch again, a Polyak step reads the loss
                loss = optimizer.step(lambda rows=rows: net.loss_grad(theta, X[rows], Y[rows]))
                total += loss * rows.size
                points.append(theta.copy())
            epoch_losses.append(total / X.shape[0])
            if not np.all(np.isfinite(theta)):
                break  # diverged: its path ends at its last finite point
        points = np.array(points)
        if not np.all(np.isfinite(points)):
            points = points[:np.argmin(np.all(np.isfinite(points), axis=1))]
        steps = sorted(set(range(0, len(points), max(1, len(points) // max_points))) | {len(points) - 1})
        # θ is (weight, bias) in the MLP's layout: the lecture's θ₁ (slope) then θ₀ (intercept)
        paths.append({"function": dataset, "rule": rule, "lr": float(run["learning_rate"]), "step": steps,
                      "x": points[steps, 1].tolist(), "y": points[steps, 0].tolist(), "seed": int(run["seed"]),
                      "run_id": run["run_id"], "loss": epoch_losses})
        starts.append(points[0])
    if not paths:
        return None
    # the minimum of ½‖Aθ − y‖²/n + α/(2n)·w², θ = (w, b), A = [x, 1]: (AᵀA + diag(α, 0)) θ = Aᵀy
    design = np.column_stack([X[:, 0], np.ones(X.shape[0])])
    minimum = np.linalg.solve(design.T @ design + np.diag([net.alpha, 0.0]), design.T @ Y[:, 0])
    xs_all = np.concatenate([path["x"] for path in paths] + [[minimum[1]]])
    ys_all = np.concatenate([path["y"] for path in paths] + [[minimum[0]]])
    # a square around the paths and the minimum: the axes are drawn to equal scale, so the contours keep their shape
    ranges = []
    for values in (xs_all, ys_all):
        low, high = np.percentile(values, [1, 99]) if values.size > 50 else (values.min(), values.max())
        ranges.append((min(low, values[-1]), max(high, values[-1])))
    half = (1 + COST_GRID_MARGIN) * max(max(high - low for low, high in ranges) / 2, 1e-3)
    bounds = [float(value) for low, high in ranges for value in ((low + high) / 2 - half, (low + high) / 2 + half)]
    xs = np.linspace(bounds[0], bounds[1], COST_GRID_POINTS)
    ys = np.linspace(bounds[2], bounds[3], COST_GRID_POINTS)
    # ½ mean((θ₁x + θ₀ − y)²) + α/(2n)·θ₁², expanded in the data's moments: the whole grid at once
    x, y, n = X[:, 0], Y[:, 0], X.shape[0]
    slope, intercept = np.meshgrid(ys, xs, indexing="ij")
    values = 0.5 * (slope ** 2 * np.mean(x * x) + intercept ** 2 + np.mean(y * y) + 2 * slope * intercept * np.mean(x)
                    - 2 * slope * np.mean(x * y) - 2 * intercept * np.mean(y)) + net.alpha / (2 * n) * slope ** 2
    surface = {"name": dataset, "n_steps": max(path["step"][-1] for path in paths), "xs": xs.tolist(),
               "ys": ys.tolist(), "values": values.tolist(), "start": [float(starts[0][1]), float(starts[0][0])],
               "minimum": [float(minimum[1]), float(minimum[0])], "bounds": bounds}
    return {"functions": [surface], "paths": paths}


def dataset_descriptions(config, targets=None):
    """What the report says of each data set of ``config``: where it comes from (a file's path and target column,
    or fastgd's name for it), its task, rows, columns and content hash, its target loss and how that was chosen
    (``targets``: {data set: how, in words}; else the configuration's [targets]), and the model trained on it
    (:func:`fastgd.sweep.config.model_description`) with its number of parameters."""
    from fastgd.datasets import load as load_dataset
    from fastgd.sweep.config import model_description

    described = {}
    for name in config.datasets:
        data = load_dataset(name, config.sources)
        net, _ = config.model(name, data)
        network = config.network_of(name)
        model = model_description(network, n_features=data.n_features, n_outputs=data.n_outputs) \
            if network is not None else model_description(None, *config.model_of(name), data.n_features,
                                                           data.n_outputs)
        source = config.sources.get(name)
        path = getattr(source, "path", None)
        described[name] = dict(
            source=str(path) if path else f"{getattr(source, 'loader', None) or name} (a data set fastgd knows by "
                                          "name)",
            target_column=None if getattr(source, "target", None) is None else str(source.target),
            task=data.task, rows_train=int(data.X_train.shape[0]), rows_test=int(data.X_test.shape[0]),
            columns=int(data.n_features), outputs=int(data.n_outputs), content_hash=data.content_hash,
            target_loss=float(config.targets[name]),
            target_loss_chosen=(targets or {}).get(name) or f"{config.targets[name]:g}, the configuration's [targets]",
            model=model, parameters=int(net.n_params))
    return described


def record_datasets(store, config, targets=None):
    """Store :func:`dataset_descriptions` in ``store`` (created if new), before its sweep runs: a sweep stopped early
    still says what it ran on."""
    from fastgd.machine import provenance
    from fastgd.sweep.store import Store

    descriptions = dataset_descriptions(config, targets)
    with Store(store) as opened:
        stored = opened.artefacts().get(DATASETS)
        content = dict(stored["content"]) if stored and isinstance(stored["content"], dict) else {}
        content.update(descriptions)  # data sets of earlier sweeps into the same store stay described
        opened.put_artefact(DATASETS, content, provenance())
