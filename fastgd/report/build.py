"""Assemble the comparison report: figures, tables and a summary in one HTML page that opens offline.

``build_report(out_dir, store)`` reads a sweep store (and, when given, the
throughput measurements and asv results), draws every figure into
``out_dir`` (PNG, SVG and the CSV behind each) and writes ``out_dir/index.html``
from an autoescaping Jinja2 template. Nothing in the page is fetched from the
network.
"""

import json
import math
import platform
from pathlib import Path

import numpy as np

from fastgd import datasets, optim

__all__ = ["build_report", "save_throughput", "load_throughput", "gradient_checks", "summary_lines",
           "check_reportable", "unknown_rule_notes"]

LANDSCAPE_DATASET = "digits"


def save_throughput(throughput, out_dir):
    out_dir = Path(out_dir)
    throughput["training"].to_csv(out_dir / "throughput_training.csv", index=False)
    throughput["steps"].to_csv(out_dir / "throughput_steps.csv", index=False)
    (out_dir / "throughput_machine.json").write_text(json.dumps(throughput["machine"], indent=2))


_THROUGHPUT_COLUMNS = {
    "training": {"dataset", "implementation", "dtype", "seconds_per_epoch", "samples_per_second"},
    "steps": {"rule", "implementation", "parameters", "seconds", "bytes_per_second"},
}


def load_throughput(directory):
    """Throughput saved by :func:`save_throughput`, or None where it is missing; ValueError (one line) if unreadable."""
    import pandas as pd

    directory = Path(directory)
    paths = [directory / name for name in ("throughput_training.csv", "throughput_steps.csv",
                                           "throughput_machine.json")]
    if not all(path.is_file() for path in paths):
        return None
    try:
        throughput = {"training": pd.read_csv(paths[0]), "steps": pd.read_csv(paths[1]),
                      "machine": json.loads(paths[2].read_text(encoding="utf-8"))}
    except (OSError, ValueError) as error:  # pandas' parser errors and UnicodeDecodeError are ValueErrors
        raise ValueError(f"the throughput files in {directory} cannot be read: {' '.join(str(error).split())}") \
            from None
    for key, columns in _THROUGHPUT_COLUMNS.items():
        missing = sorted(columns - set(throughput[key].columns))
        if missing:
            raise ValueError(f"throughput_{key}.csv in {directory} lacks the columns {missing}")
    machine = throughput["machine"]
    if not isinstance(machine, dict) or not _positive_number(machine.get("triad_bytes_per_second")):
        raise ValueError(f"throughput_machine.json in {directory} has no positive triad_bytes_per_second")
    # the steps' ceilings, measured since files of earlier versions: optional, but well-formed when present
    ceilings = machine.get("in_place_bytes_per_second", {})
    if not (isinstance(ceilings, dict) and all(key.isdigit() and _positive_number(value)
                                               for key, value in ceilings.items())):
        raise ValueError(f"throughput_machine.json in {directory}: in_place_bytes_per_second must map numbers of "
                         "arrays to positive rates")
    if ceilings and not _positive_number(machine.get("in_place_parameters")):
        raise ValueError(f"throughput_machine.json in {directory}: in_place_parameters must be a positive number")
    return throughput


def _positive_number(value):
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0


def check_reportable(runs, store):
    """ValueError in one line when the runs of a store cannot make a report."""
    if runs.empty:
        raise ValueError(f"the store {store} holds no runs: run a sweep first")


def unknown_rule_notes(runs):
    """A line naming the store's rules this process does not have (a plugin not loaded): drawn from the
    store alone, without trajectories."""
    unknown = sorted(set(runs["rule"]) - set(optim.OPTIMIZERS))
    if not unknown:
        return []
    return [f"rules not registered here: {', '.join(unknown)}; their runs are drawn from the store, their "
            "trajectories are left out (give their plugin with --plugin)"]


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
            where = result.where
            rows.append(dict(activation=activation, output=output, loss=_loss_name(output),
                             max_relative_error=result.max_relative_error,
                             where=f"layer {where['layer']} {where['kind']} {where['index']}",
                             passed=result.max_relative_error < 1e-6))
    return rows


def _loss_name(output):
    return {"softmax": "cross-entropy", "logistic": "binary cross-entropy", "identity": "squared error"}[output]


def _trained_landscape():
    from fastgd import landscape
    from fastgd.models import MLP
    from fastgd.training import Training

    data = datasets.load(LANDSCAPE_DATASET)
    net = MLP([data.n_features, 32, data.n_outputs], "relu", data.output, alpha=1e-4)
    theta = net.init(random_state=0)
    Training(net, optim.Adam(theta, lr=3e-3), data.X_train, data.Y_train, 32, seed=0).run(20)
    alphas = np.linspace(-1.0, 1.0, 61)
    line = landscape.line(net, theta, data.X_train, data.Y_train, alphas, random_state=0)
    grid_alphas, grid_betas = np.linspace(-1.0, 1.0, 31), np.linspace(-1.0, 1.0, 31)
    plane = landscape.plane(net, theta, data.X_train, data.Y_train, grid_alphas, grid_betas, random_state=1)
    return (alphas, line), (grid_alphas, grid_betas, plane)


def summary_lines(runs, throughput):
    """The text on top: fastest rule to target per data set, and the measured speed-ups."""
    from fastgd.sweep.metrics import best_runs

    lines = []
    best = best_runs(runs)
    for name, group in best.groupby("dataset", sort=True):
        reached = group[group["reached"]]
        if reached.empty:
            lines.append(f"{name}: no rule reached the target loss {group['seconds_to_target_mean'].size and ''}"
                         f"within the epoch budget.")
            continue
        winner = reached.loc[reached["seconds_to_target_mean"].idxmin()]
        target = runs.loc[runs["dataset"] == name, "target_loss"].iloc[0]
        lines.append(f"{name}: fastest to the target loss {target:g} is {winner['rule']} at learning rate "
                     f"{winner['learning_rate']:g}, in {winner['seconds_to_target_mean'] * 1e3:.3g} ms "
                     f"({winner['epochs_to_target_mean']:.3g} epochs, mean over {int(winner['n_seeds'])} "
                     f"seed{'' if int(winner['n_seeds']) == 1 else 's'}); "
                     f"{len(reached)} of {len(group)} rules reach it.")
    if throughput is not None:
        training = throughput["training"].pivot(index="dataset", columns="implementation",
                                                values="seconds_per_epoch")
        for other in ("numpy", "sklearn", "torch", "jax"):
            if other in training:
                ratios = training[other] / training["fastgd"]
                lines.append(f"Training epochs: fastgd is {np.median(ratios):.1f}x faster than {_label(other)} "
                             f"(median over data sets; from {ratios.min():.1f}x to {ratios.max():.1f}x).")
        steps = throughput["steps"]
        adam = steps[steps["rule"] == "adam"].pivot(index="parameters", columns="implementation", values="seconds")
        for other in ("torch", "numpy"):
            if other in adam:
                small, large = adam.index.min(), adam.index.max()
                lines.append(f"Adam step: fastgd is {adam.loc[small, other] / adam.loc[small, 'fastgd']:.1f}x faster "
                             f"than {_label(other)} at {small:,} parameters and "
                             f"{adam.loc[large, other] / adam.loc[large, 'fastgd']:.2f}x at {large:,}.")
        share = step_ceiling_shares(throughput)
        if share is not None and not share.empty:
            lines.append(f"Update steps at {steps['parameters'].max():,} float32 parameters move data at "
                         f"{share.iloc[0]:.0%} ({share.index[0]}) to {share.iloc[-1]:.0%} ({share.index[-1]}) of "
                         "the rate of the same traffic alone (as many arrays updated in place, over as many "
                         "elements, in the same run).")
    return lines


def step_ceiling_shares(throughput):
    """Each rule's fastgd step at the largest size over its ceiling (its traffic alone), ascending; None without one.

    Not STREAM's triad: its larger working set streams from main memory while a
    step's may sit in the last-level cache, and shares of it pass 100 %.
    """
    steps, machine = throughput["steps"], throughput["machine"]
    largest = steps["parameters"].max()
    ceilings = machine.get("in_place_bytes_per_second")
    if "arrays_written" not in steps or not ceilings or machine.get("in_place_parameters") != largest:
        return None
    fastgd_steps = steps[(steps["implementation"] == "fastgd") & (steps["parameters"] == largest)]
    ceiling = fastgd_steps["arrays_written"].astype(str).map(ceilings)
    share = (fastgd_steps["bytes_per_second"] / ceiling).set_axis(fastgd_steps["rule"])
    return share.dropna().sort_values()


def _label(implementation):
    return {"numpy": "the NumPy reference", "sklearn": "scikit-learn's MLP", "torch": "PyTorch",
            "jax": "JAX + optax", "fastgd": "fastgd"}[implementation]


def _machine(store_provenance):
    from fastgd.sweep.runner import provenance

    facts = dict(provenance())
    facts["platform"] = platform.platform()
    if store_provenance:
        facts["sweep_made_with"] = ", ".join(f"{k} {store_provenance.get(k)}" for k in
                                             ("fastgd", "git_commit", "numba", "numpy") if store_provenance.get(k))
    return facts


def _table(frame, columns, formats=None):
    formats = formats or {}
    rows = []
    for record in frame[columns].to_dict("records"):
        rows.append([formats.get(column, _format)(record[column]) for column in columns])
    return {"columns": columns, "rows": rows}


def _format(value):
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def build_report(out_dir, store, throughput=None, asv_results=None, title="fastgd: optimizer comparison",
                 progress=None):
    """Write ``out_dir/index.html`` and its figures; returns the page's path."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    from fastgd.report import figures
    from fastgd.report.history import load_history
    from fastgd.sweep.metrics import best_runs, mixed_provenance, mixed_settings
    from fastgd.sweep.store import Store

    say = progress or (lambda message: None)
    with Store(store, mode="r") as opened:  # a report reads the store and writes nothing into it
        runs, curves, sweeps = opened.runs_frame(), opened.curves_frame(), opened.sweeps_frame()
    check_reportable(runs, store)
    warnings = mixed_provenance(runs, sweeps) + mixed_settings(runs)
    notes = unknown_rule_notes(runs)
    for line in warnings + notes:
        say(f"warning: {line}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    finished = runs[runs["status"] != "failed"]
    drawn = []
    say("figures: convergence, learning rates, time to target")
    drawn.append(figures.draw_convergence(finished, curves, out_dir))
    drawn.append(figures.draw_learning_rate_sensitivity(finished, out_dir))
    drawn.append(figures.draw_time_to_target(finished, out_dir))
    drawn.append(figures.draw_performance_profile(finished, out_dir))
    if throughput is not None:
        say("figure: throughput")
        drawn.append(figures.draw_throughput(throughput, out_dir))
    say("figures: trajectories and loss landscape")
    drawn.append(figures.draw_trajectories(out_dir, rules=sorted(set(finished["rule"]))))
    drawn.append(figures.draw_landscape(*_trained_landscape(), out_dir))
    history_note = "No asv results were given (fastgd report --asv-results .asv/results)."
    if asv_results is not None:
        history = load_history(asv_results)
        if history["commit"].nunique() >= 1 and not history.empty:
            drawn.append(figures.draw_history(history, out_dir))
            history_note = f"{history['commit'].nunique()} commits with asv results in {asv_results}."
        else:
            history_note = f"No asv results found in {asv_results}."
    say("gradient checks")
    checks = gradient_checks()

    best = best_runs(finished)
    best_table = _table(best.sort_values(["dataset", "rule"]),
                        ["dataset", "rule", "learning_rate", "final_loss_mean", "test_metric_mean",
                         "epochs_to_target_mean", "seconds_to_target_mean", "diverged_share"])
    throughput_table = None
    if throughput is not None:
        training = throughput["training"].copy()
        throughput_table = _table(training, ["dataset", "implementation", "dtype", "seconds_per_epoch",
                                             "samples_per_second"])
    counts = runs["status"].value_counts().to_dict()
    store_provenance = sweeps["provenance"].iloc[-1] if len(sweeps) else {}
    environment = Environment(loader=PackageLoader("fastgd.report", "templates"),
                              autoescape=select_autoescape(["html"]))
    page = environment.get_template("report.html").render(
        title=title, warnings=warnings, notes=notes, summary=summary_lines(finished, throughput), figures=drawn, best=best_table,
        throughput=throughput_table, checks=checks, history_note=history_note, machine=_machine(store_provenance),
        sweep_names=", ".join(sorted(set(sweeps["name"]))), n_runs=len(runs), counts=counts,
        datasets=sorted(runs["dataset"].unique()),
        rules=figures.rules_in(runs["rule"]))
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    runs.to_csv(out_dir / "runs.csv", index=False)
    return path
