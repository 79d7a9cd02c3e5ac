"""Assemble the comparison report: figures, tables and a summary in one HTML page that opens offline.

Two steps, so that a report is a pure function of the store:

* :func:`record_artefacts` (``fastgd compare``, after its sweep and throughput
  measurements) computes what the report shows besides the runs, once, and
  stores it: the throughput and the machine's limits, the trajectories on the
  test functions, a loss landscape for each data set of the sweep, the
  gradient checks, a description of the machine, the asv history summary.
* :func:`build_report` reads a store, draws every figure into ``out_dir``
  (PNG, SVG and the CSV behind each) and writes ``out_dir/index.html`` from an
  autoescaping Jinja2 template. It trains, times and describes nothing: a
  store copied to another machine gives the same report there. A section
  whose artefact the store lacks (a store of ``fastgd sweep`` alone, or of an
  older fastgd) says so and how to make it. Nothing in the page is fetched
  from the network.

The artefacts go in the store's ``artefacts`` table (:mod:`fastgd.sweep.store`),
not in files beside it: the one file a sweep writes is then all a report
needs, copied anywhere, and nothing it names can go missing or stale apart
from it. They are small: JSON, a few hundred kB for the trajectories' contours.
"""

import json
import math
import platform
from pathlib import Path

import numpy as np

from fastgd import optim

__all__ = ["build_report", "record_artefacts", "save_throughput", "load_throughput", "gradient_checks",
           "summary_lines", "check_reportable", "check_artefacts", "unknown_rule_notes", "describe_machine",
           "landscape_artefact", "render_report", "split_phases", "rank_sentence", "pairs_line",
           "is_fastgd_report", "record_datasets", "dataset_descriptions"]

# the names of the artefacts in the store
MACHINE, GRADIENT_CHECKS, TRAJECTORIES, THROUGHPUT, HISTORY, DATASETS = (
    "machine", "gradient_checks", "trajectories", "throughput", "history", "datasets")


def landscape_artefact(dataset):
    """The name of a data set's loss landscape in the store."""
    return f"landscape:{dataset}"


def save_throughput(throughput, out_dir):
    out_dir = Path(out_dir)
    throughput["training"].to_csv(out_dir / "throughput_training.csv", index=False)
    throughput["steps"].to_csv(out_dir / "throughput_steps.csv", index=False)
    if throughput.get("training_repeats") is not None:
        throughput["training_repeats"].to_csv(out_dir / "throughput_training_repeats.csv", index=False)
    (out_dir / "throughput_machine.json").write_text(json.dumps(throughput["machine"], indent=2))


_THROUGHPUT_COLUMNS = {
    "training": {"dataset", "implementation", "dtype", "seconds_per_epoch", "samples_per_second"},
    "steps": {"rule", "implementation", "parameters", "seconds", "bytes_per_second"},
    "training_repeats": {"dataset", "implementation", "repeat", "seconds_per_epoch"},
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
    repeats = directory / "throughput_training_repeats.csv"
    if repeats.is_file():  # written since the repeats were kept: optional
        try:
            throughput["training_repeats"] = pd.read_csv(repeats)
        except (OSError, ValueError) as error:
            raise ValueError(f"{repeats} cannot be read: {' '.join(str(error).split())}") from None
    for key, columns in _THROUGHPUT_COLUMNS.items():
        if key not in throughput:
            continue
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


def _throughput_content(throughput):
    """:func:`fastgd.report.throughput.measure`'s dict as JSON: its tables (DataFrames) as lists of rows, the rest
    (the machine's limits) as it is, whatever keys either has."""
    import pandas as pd

    # rows as pandas gives them (NaN stays NaN, which JSON's text then holds, rather than to_json's null)
    frames = {key: value.to_dict(orient="records") for key, value in throughput.items()
              if isinstance(value, pd.DataFrame)}
    return {"frames": frames, "values": {key: value for key, value in throughput.items() if key not in frames}}


def _throughput_from_content(content):
    import pandas as pd

    return {**{key: pd.DataFrame(rows) for key, rows in content["frames"].items()}, **content["values"]}


def describe_machine():
    """The machine this process runs on, and with what: stored by :func:`record_artefacts` for the report."""
    from fastgd.machine import provenance

    return dict(provenance(), platform=platform.platform())


def record_artefacts(store, config=None, throughput=None, asv_results=None, progress=None):
    """Compute what the report shows besides the runs and store it in ``store`` (replacing what it held).

    ``config``: the sweep's :class:`fastgd.sweep.SweepConfig`, whose data sets
    each get a loss landscape (its network as the sweep trains it); without
    one, none. ``throughput``: :func:`fastgd.report.throughput.measure`'s
    dict, stored as it is. ``asv_results``: a directory whose history summary
    is stored. Trajectories are made for every rule of the store's runs that
    is registered here.
    """
    from fastgd import landscape
    from fastgd.report import figures
    from fastgd.report.history import load_history
    from fastgd.datasets import load as load_dataset
    from fastgd.machine import provenance
    from fastgd.sweep.store import Store

    say = progress or (lambda message: None)
    made_by = provenance()
    with Store(store) as opened:
        runs = opened.runs_frame()

        def put(name, content):
            opened.put_artefact(name, content, made_by)

        if throughput is not None:
            put(THROUGHPUT, _throughput_content(throughput))
        put(MACHINE, describe_machine())
        say("gradient checks")
        put(GRADIENT_CHECKS, gradient_checks())
        say("trajectories on the test functions")
        put(TRAJECTORIES, figures.trajectory_data(sorted(set(runs.loc[runs["status"] != "failed", "rule"]))))
        for dataset in config.datasets if config is not None else ():
            say(f"loss landscape on {dataset}")
            hidden, activation, alpha = config.model_of(dataset)
            put(landscape_artefact(dataset), landscape.trained_landscape(load_dataset(dataset, config.sources),
                                                                         hidden, activation, alpha))
        if asv_results is not None:
            history = load_history(asv_results)
            put(HISTORY, {"source": str(asv_results), "records": history.to_dict(orient="records")})


def dataset_descriptions(config, targets=None):
    """What the report says of each data set of ``config``: where it comes from (a file's path and target column,
    or fastgd's name for it), its task, rows, columns and content hash, its target loss and how that was chosen
    (``targets``: {data set: how, in words}; else the configuration's [targets])."""
    from fastgd.sweep.config import load_dataset

    described = {}
    for name in config.datasets:
        data = load_dataset(name, config.sources)
        source = config.sources.get(name)
        path = getattr(source, "path", None)
        described[name] = dict(
            source=str(path) if path else f"{getattr(source, 'loader', None) or name} (a data set fastgd knows by "
                                          "name)",
            target_column=None if getattr(source, "target", None) is None else str(source.target),
            task=data.task, rows_train=int(data.X_train.shape[0]), rows_test=int(data.X_test.shape[0]),
            columns=int(data.n_features), outputs=int(data.n_outputs), content_hash=data.content_hash,
            target_loss=float(config.targets[name]),
            target_loss_chosen=(targets or {}).get(name) or f"{config.targets[name]:g}, the configuration's [targets]")
    return described


def record_datasets(store, config, targets=None):
    """Store :func:`dataset_descriptions` in ``store`` (created if new), before its sweep runs: a sweep stopped early
    still says what it ran on."""
    from fastgd.sweep.runner import provenance
    from fastgd.sweep.store import Store

    descriptions = dataset_descriptions(config, targets)
    with Store(store) as opened:
        stored = opened.artefacts().get(DATASETS)
        content = dict(stored["content"]) if stored and isinstance(stored["content"], dict) else {}
        content.update(descriptions)  # data sets of earlier sweeps into the same store stay described
        opened.put_artefact(DATASETS, content, provenance())


def _numeric_grid(value, shape):
    array = np.asarray(value, dtype=np.float64)
    return array.shape == shape and array.dtype.kind == "f"


def _artefact_problem(name, content):
    """Why a stored artefact cannot be drawn (what a damaged or hand-edited store may hold), or None."""
    def has(mapping, *keys):
        return isinstance(mapping, dict) and all(key in mapping for key in keys)

    try:
        if name == THROUGHPUT:
            frames = content.get("frames", {}) if isinstance(content, dict) else None
            if not (has(content, "frames", "values") and has(frames, "training", "steps")
                    and all(isinstance(rows, list) for rows in frames.values())
                    and isinstance(content["values"].get("machine"), dict)):
                return "not throughput tables (training, steps) and the machine's limits"
        elif name == TRAJECTORIES:
            if not (has(content, "functions", "paths") and isinstance(content["functions"], list)
                    and isinstance(content["paths"], list)):
                return "not functions and paths"
            for surface in content["functions"]:
                if not (has(surface, "name", "n_steps", "xs", "ys", "values", "start", "minimum", "bounds")
                        and _numeric_grid(surface["values"], (len(surface["ys"]), len(surface["xs"])))):
                    return "a function's grid of values does not match its coordinates"
            for path in content["paths"]:
                if not (has(path, "function", "rule", "lr", "step", "x", "y")
                        and len(path["step"]) == len(path["x"]) == len(path["y"])):
                    return "a path's steps and coordinates differ in length"
        elif name.startswith(landscape_artefact("")):
            if not (has(content, "alphas", "line", "grid_alphas", "grid_betas", "plane")
                    and _numeric_grid(content["line"], (len(content["alphas"]),))
                    and _numeric_grid(content["plane"], (len(content["grid_betas"]), len(content["grid_alphas"])))):
                return "its losses do not match its coordinates"
        elif name == GRADIENT_CHECKS:
            if not (isinstance(content, list) and all(
                    has(row, "activation", "output", "loss", "max_relative_error", "where", "passed")
                    and isinstance(row["max_relative_error"], (int, float)) for row in content)):
                return "not rows of gradient checks"
        elif name == DATASETS:
            if not (isinstance(content, dict) and all(has(row, "source", "task", "content_hash", "target_loss")
                                                      for row in content.values())):
                return "not descriptions of data sets"
        elif name == MACHINE:
            if not isinstance(content, dict):
                return "not a table of facts"
        elif name == HISTORY:
            if not (has(content, "source", "records") and isinstance(content["records"], list) and all(
                    has(row, "commit", "commit_order", "benchmark", "relative") for row in content["records"])):
                return "not an asv history"
    except (TypeError, ValueError, AttributeError):
        return "values of the wrong kind"
    return None


def check_artefacts(artefacts, store):
    """ValueError in one line naming the first stored artefact (:meth:`Store.artefacts`) that cannot be drawn."""
    for name, artefact in artefacts.items():
        problem = _artefact_problem(name, artefact["content"])
        if problem:
            raise ValueError(f"the store {store} is damaged: its artefact {name!r} holds {problem}")


def unknown_rule_notes(runs):
    """A line naming the store's rules this process does not have (a plugin not loaded): drawn from the
    store alone, without trajectories."""
    unknown = sorted(set(runs["rule"]) - set(optim.OPTIMIZERS))
    if not unknown:
        return []
    return [f"rules not registered here: {', '.join(unknown)}; they are drawn from the store, after the registered "
            "rules (give their plugin with --plugin to order and colour them as registered)"]


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


def split_phases(runs):
    """``(compared, tuning)``: the runs the comparison is made of and the tuning trials (``phase`` "tune").

    Tuning trials are scored on a validation split and only choose the
    settings; best runs, intervals, ranks, winners and profiles are computed
    from the other runs alone. A store without a ``phase`` column (before
    tuning was stored) has no tuning trials.
    """
    if "phase" not in runs:
        return runs, runs.iloc[0:0]
    tune = (runs["phase"] == "tune").to_numpy()
    return runs[~tune], runs[tune]


# the fewest seeds a side with which Mann-Whitney's two-sided test can reach p < 0.05 (2 / C(8, 4) = 0.029)
MIN_SEEDS_TO_SEPARATE = 4


def _plural(count, word):
    return f"{count} {word}{'' if count == 1 else 's'}"


def _milliseconds(low, high):
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no interval"
    return f"95% interval [{low * 1e3:.3g}, {high * 1e3:.3g}] ms"


def rank_sentence(rank):
    """:meth:`RankTest.summary` and which pairs of rules the Nemenyi test separates (a significant Friedman test
    with a critical difference wider than every gap separates none)."""
    if rank.note:
        return rank.summary()
    rules = list(rank.mean_ranks.index)
    pairs = [(first, second) for index, first in enumerate(rules) for second in rules[index + 1:]]
    apart = [f"{first} ahead of {second}" for first, second in pairs if rank.different(first, second)]
    if not apart:
        return f"{rank.summary()}; no two rules' mean ranks lie the critical difference apart"
    shown = "; ".join(apart[:8]) + ("; …" if len(apart) > 8 else "")
    return f"{rank.summary()}; {len(apart)} of {len(pairs)} pairs lie the critical difference apart ({shown})"


def _alongside(pairwise, dataset, winner, shown=6):
    """What the pairwise tests say of ``winner`` against every other rule on ``dataset``, as a sentence ('' without
    pairwise tests: one rule): the rules it cannot be told from, any the test puts ahead of it (pairwise tests need
    not be transitive), or that every other rule is behind."""
    if pairwise is None:
        return ""
    pairs = pairwise[(pairwise["dataset"] == dataset) & ((pairwise["rule_a"] == winner)
                                                         | (pairwise["rule_b"] == winner))]

    def others(rows):
        names = sorted((set(rows["rule_a"]) | set(rows["rule_b"])) - {winner})
        return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")

    ahead = pairs[pairs["significant"] & (pairs["better"] != winner)]
    level = pairs[~pairs["significant"]]
    text = ""
    if len(ahead):
        text += f" Significantly ahead of {winner} on epochs to target all the same: {others(ahead)}."
    if len(level):
        text += f" Not significantly different from {winner} on epochs to target: {others(level)}."
    return text or f" Every other rule is significantly behind {winner}."


def pairs_line(pairwise, dataset, shown=8):
    """One line on which pairs of rules differ on ``dataset`` (:func:`fastgd.sweep.stats.pairwise_tests`): the
    significant pairs where there are at most ``shown``, else the others where there are at most ``shown``, else
    the counts alone (every pair is in the report's pairwise.csv). Pairs of rules that both missed the target on
    every seed have nothing to compare and are counted apart."""
    group = pairwise[pairwise["dataset"] == dataset]
    held = group[group["significant"]]
    incomparable = group[group["pvalue"].isna()]
    level = group.drop(held.index).drop(incomparable.index)
    n_pairs = len(group)
    head = f"{dataset}, epochs to target (Mann-Whitney U over seeds, Holm-corrected): "
    if len(incomparable) == n_pairs:
        return head + "nothing to compare: no rule reached the target on any seed."
    tail = (f" {_plural(len(incomparable), 'pair')} of rules that both missed the target on every seed: nothing to "
            "compare." if len(incomparable) else "")
    if held.empty:
        return head + f"no significant difference between any of the {len(level)} comparable pairs of rules." + tail

    def listed(rows, words):
        return "; ".join(words(row) + f" (p = {row.pvalue_holm:.2g})" for row in rows.itertuples())

    if len(held) <= shown:
        return head + "significant: " + listed(held, lambda row: f"{row.better} better than "
                                               f"{row.rule_b if row.better == row.rule_a else row.rule_a}") \
            + f"; {len(level)} of {n_pairs} pairs not significantly different." + tail
    if len(level) <= shown:
        text = listed(level, lambda row: f"{row.rule_a} and {row.rule_b}") if len(level) else "none"
        return head + f"{len(held)} of {n_pairs} pairs differ significantly; not significantly different: {text}." \
            + tail
    return head + f"{len(held)} of {n_pairs} pairs differ significantly, {len(level)} do not (every pair in " \
                  "pairwise.csv)." + tail


def summary_lines(runs, throughput, pairwise=None):
    """The text on top: per data set the winner (:func:`fastgd.sweep.stats.winners`: epochs to target first,
    wall-clock second with its interval) and which differences are significant (:func:`pairs_line`); the rank test
    across data sets; the measured speed-ups. ``runs``: the finished runs compared (no tuning trials);
    ``pairwise``: their :func:`fastgd.sweep.stats.pairwise_tests`, where computed already."""
    from fastgd.sweep import stats

    lines = []
    best = stats.best_configuration_runs(runs)
    if pairwise is None and best["rule"].nunique() > 1:
        pairwise = stats.pairwise_tests(runs)
    seeds = best.groupby(["dataset", "rule"]).size()
    if len(seeds) and seeds.max() < MIN_SEEDS_TO_SEPARATE:
        lines.append(f"With {_plural(int(seeds.max()), 'seed')} per configuration at most, no difference over seeds "
                     f"can be significant (Mann-Whitney U needs {MIN_SEEDS_TO_SEPARATE} or more a side at α = 0.05): "
                     "read the winners below as unconfirmed (the tuning protocol's final runs take ten seeds or "
                     "more).")
    for row in stats.winners(runs).itertuples():
        of_dataset = best[best["dataset"] == row.dataset]
        reaching = of_dataset.groupby("rule")["epochs_to_target"].apply(lambda s: bool(s.notna().all()))
        n_rules = len(reaching)
        target = of_dataset["target_loss"].iloc[0] if "target_loss" in of_dataset else math.nan
        if row.winner is None:
            budget = (f" within {int(of_dataset['n_epochs'].iloc[0])} epochs" if "n_epochs" in of_dataset else "")
            lines.append(f"{row.dataset}: no rule reached the target loss {target:g} on any seed{budget}: nothing to "
                         "compare on time to the target (the final losses are under Best settings); a lower target "
                         "is reached by none, a higher one may be: see how the target was chosen.")
        else:
            winner = of_dataset[of_dataset["rule"] == row.winner]
            over = (f"mean over {_plural(row.n_seeds, 'seed')}" if row.reached == row.n_seeds else
                    f"mean over the {row.reached} of {row.n_seeds} seeds that reached it")
            lines.append(
                f"{row.verdict}. {row.winner} at learning rate {winner['learning_rate'].iloc[0]:.3g}: "
                f"{row.epochs:.3g} epoch{'' if row.epochs == 1 else 's'} and {row.seconds * 1e3:.3g} ms to the "
                f"target loss {target:g} ({_milliseconds(row.seconds_low, row.seconds_high)}; {over}); "
                f"{int(reaching.sum())} of {_plural(n_rules, 'rule')} reach it on every seed."
                + _alongside(pairwise, row.dataset, row.winner))
        if pairwise is not None and (pairwise["dataset"] == row.dataset).any():
            lines.append(pairs_line(pairwise, row.dataset))
    scores = stats.score_matrix(runs) if len(best) else None
    if scores is not None and scores.shape[1] >= 2:
        lines.append(f"Across data sets, ranks on epochs to target: {rank_sentence(stats.rank_test(scores))}.")
    if throughput is not None:
        lines.extend(_training_ratio_lines(throughput))
        lines.extend(_step_ratio_lines(throughput))
        lines.extend(_limit_lines(throughput))
    return lines


def _threads_said(throughput, part):
    """How many threads every implementation had for ``part`` ("training" or "steps"), in a few words; '' for a
    throughput stored before it was recorded."""
    told = (throughput["machine"].get("threads") or {}).get(part) or {}
    if not told:
        return ""
    counts = {str(how).split(" ")[0] for how in told.values()}
    if len(counts) == 1 and next(iter(counts)).isdigit():
        return f"every implementation on {_plural(int(next(iter(counts))), 'thread')}"
    return "threads: " + "; ".join(f"{_label(implementation)} {how}" for implementation, how in told.items())


def _training_ratio_lines(throughput):
    """fastgd's speed-up over each other implementation's training epoch: the median over data sets of the ratios
    whose repeats agree (:func:`fastgd.report.throughput.training_ratios`), each with its spread; the others named
    as unreliable, not quoted as a headline."""
    from fastgd.report.throughput import UNRELIABLE_SPREAD, training_ratios

    ratios = training_ratios(throughput)
    threads = _threads_said(throughput, "training")
    lines = []
    for other in ("numpy", "sklearn", "torch", "jax"):
        of_other = ratios[ratios["other"] == other]
        if of_other.empty:
            continue
        held, noisy = of_other[of_other["reliable"]], of_other[~of_other["reliable"]]
        if len(held):
            each = ", ".join(f"{row.dataset} {row.ratio:.3g}x ({row.low:.3g}x to {row.high:.3g}x over "
                             f"{row.n_repeats} repeats)" for row in held.itertuples())
            lines.append(f"Training epochs: fastgd is {np.median(held['ratio']):.3g}x faster than {_label(other)} "
                         f"(median over {_plural(len(held), 'data set')}: {each}"
                         + (f"; {threads}" if threads else "") + ").")
        if len(noisy):
            each = ", ".join(
                f"{row.dataset} from {row.low:.3g}x to {row.high:.3g}x over {row.n_repeats} repeats"
                if math.isfinite(row.low) else f"{row.dataset} {row.ratio:.3g}x from one timing (no repeats stored)"
                for row in noisy.itertuples())
            lines.append(f"Unreliable, not quoted: fastgd against {_label(other)} on {_plural(len(noisy), 'data set')} "
                         f"({each}): repeats that disagree by more than {UNRELIABLE_SPREAD:g}x, or none, say the "
                         "machine was busy; measure again on a quiet one.")
    return lines


def _step_ratio_lines(throughput):
    """fastgd's Adam step against PyTorch's and NumPy's at the smallest and largest sizes, each ratio with the range
    its timings allow (one's first quartile over batches against the other's third, and the reverse) where stored;
    a ratio whose range spans more than the unreliable spread is named so, not quoted."""
    from fastgd.report.throughput import UNRELIABLE_SPREAD

    steps = throughput["steps"]
    adam = steps[steps["rule"] == "adam"].set_index(["parameters", "implementation"])
    threads = _threads_said(throughput, "steps")
    lines = []
    for other in ("torch", "numpy"):
        if other not in set(adam.index.get_level_values("implementation")):
            continue
        quoted, noisy = [], []
        for size in sorted({adam.index.get_level_values("parameters").min(),
                            adam.index.get_level_values("parameters").max()}):
            if (size, other) not in adam.index or (size, "fastgd") not in adam.index:
                continue
            mine, theirs = adam.loc[(size, "fastgd")], adam.loc[(size, other)]
            ratio = theirs["seconds"] / mine["seconds"]
            if "seconds_low" in adam and math.isfinite(mine.get("seconds_low", math.nan)):
                low, high = theirs["seconds_low"] / mine["seconds_high"], theirs["seconds_high"] / mine["seconds_low"]
                text = f"{ratio:.3g}x at {size:,} parameters ({low:.3g}x to {high:.3g}x over its middle timings)"
                (quoted if high <= UNRELIABLE_SPREAD * low else noisy).append(text)
            else:
                noisy.append(f"{ratio:.3g}x at {size:,} parameters from medians alone (no spread stored)")
        if quoted:
            lines.append(f"Adam step: fastgd is faster than {_label(other)} by " + " and ".join(quoted)
                         + (f"; {threads}" if threads else "") + ".")
        if noisy:
            lines.append(f"Unreliable, not quoted: fastgd's Adam step against {_label(other)}, "
                         + " and ".join(noisy) + f" (timings that disagree by more than {UNRELIABLE_SPREAD:g}x, or "
                         "no spread, say the machine was busy).")
    return lines


def step_ceiling_shares(throughput):
    """Each rule's fastgd step at the largest size over the in-place reference for as many arrays, ascending
    (:func:`fastgd.report.throughput.ceiling_shares`); None without one."""
    from fastgd.report.throughput import ceiling_shares

    return ceiling_shares(throughput)


def _limit_lines(throughput):
    """The steps' shares of their in-place references, where those stream from, and the matrix-multiply peaks."""
    lines = []
    steps, machine = throughput["steps"], throughput["machine"]
    share = step_ceiling_shares(throughput)
    if share is not None and not share.empty:
        largest = int(steps["parameters"].max())
        line = (f"Update steps at {largest:,} float32 parameters move data at {share.iloc[0]:.0%} "
                f"({share.index[0]}) to {share.iloc[-1]:.0%} ({share.index[-1]}) of the in-place "
                "read-modify-write bandwidth for as many arrays (the steps' own access pattern, best of repeats, "
                "all cores, same run)")
        references = machine.get("in_place_bytes_per_second", {})
        cache = machine.get("last_level_cache_bytes")
        if references and _positive_number(cache):
            arrays = sorted(int(key) for key in references)
            # the working set of a reference: its arrays and the vector they are updated from
            sets = [(n + 1) * 4 * largest for n in arrays]
            if max(sets) <= cache:
                where = (f"every working set ({sets[0] / 1e6:.0f} to {sets[-1] / 1e6:.0f} MB) fits the "
                         f"{cache / 2 ** 20:.0f} MiB last-level cache, so steps and references stream from the "
                         "cache, not from main memory")
            elif min(sets) > cache:
                where = f"every working set exceeds the {cache / 2 ** 20:.0f} MiB last-level cache: main memory"
            else:
                where = (f"working sets of {sets[0] / 1e6:.0f} to {sets[-1] / 1e6:.0f} MB, about the "
                         f"{cache / 2 ** 20:.0f} MiB last-level cache: partly from the cache")
            line += f"; {where}"
        rates = ", ".join(f"{int(key)} array{'s' if int(key) > 1 else ''} {value / 1e9:.0f} GB/s"
                          for key, value in sorted(references.items(), key=lambda item: int(item[0])))
        lines.append(f"{line}. The references: {rates}; STREAM's triad, main memory's bandwidth and not a step's "
                     f"limit, {machine['triad_bytes_per_second'] / 1e9:.0f} GB/s.")
    peaks = [f"{dtype} {machine[f'gemm_flops_{dtype}'] / 1e9:.0f}" for dtype in ("float64", "float32")
             if _positive_number(machine.get(f"gemm_flops_{dtype}"))]
    at_networks = machine.get("gemm_flops_at_network_sizes") or {}
    if peaks:
        line = f"Matrix products: the BLAS's peak at 2048² is {' and '.join(peaks)} GFLOP/s"
        shown = [f"{label} {dtype} {rate / 1e9:.1f}" for dtype, networks in sorted(at_networks.items()) if isinstance(
                 networks, dict) for label, rate in sorted(networks.items()) if _positive_number(rate)]
        if shown:
            line += f"; at the training networks' own products (layer sizes/batch, GFLOP/s): {', '.join(shown)}"
        lines.append(line + ".")
    return lines


_IDENTITY = ("git_commit", "fastgd", "host", "cpu", "cpu_count")  # what makes two measurements comparable


def _made_with(provenance):
    commit = provenance.get("git_commit")
    return (f"fastgd {provenance.get('fastgd', '?')}" + (f" at commit {commit[:10]}" if commit else "")
            + f" on {provenance.get('cpu', '?')} × {provenance.get('cpu_count', '?')} ({provenance.get('host', '?')})")


def throughput_provenance(artefacts):
    """(a line saying when and with what the stored throughput was measured, a warning where that is not what
    made the store's other measurements, else None), from a store's artefacts; (None, None) without throughput.

    ``fastgd compare --skip-throughput`` keeps the throughput an earlier compare stored, perhaps with
    other code or on another machine than everything else it then stores; the report says so.
    """
    stored = artefacts.get(THROUGHPUT)
    if stored is None:
        return None, None
    made = stored["provenance"] or {}
    line = f"Measured {stored['made_at']} by {_made_with(made)}."
    machine = artefacts.get(MACHINE)
    other = (machine or {}).get("provenance") or {}
    if machine is None or all(made.get(key) == other.get(key) for key in _IDENTITY):
        return line, None
    return line, (f"the throughput was measured {stored['made_at']} by {_made_with(made)}, the store's other "
                  f"measurements {machine['made_at']} by {_made_with(other)}: fastgd compare without "
                  "--skip-throughput measures it again")


def _label(implementation):
    return {"numpy": "the NumPy reference", "sklearn": "scikit-learn's MLP", "torch": "PyTorch",
            "jax": "JAX + optax", "fastgd": "fastgd"}[implementation]


def _machine(stored, store_provenance):
    """The machine section: the description :func:`record_artefacts` stored, and what the sweep's runs were made
    with (its row's provenance); nothing of the machine rendering the report."""
    facts = dict(stored["content"]) if stored is not None else {}
    if stored is not None:
        facts["described_at"] = stored["made_at"]
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


def _missing(section, how):
    return f"{section}: not in this store; {how}."


def build_report(out_dir, store, throughput=None, asv_results=None, title="fastgd: optimizer comparison",
                 progress=None):
    """Write ``out_dir/index.html`` and its figures from ``store`` alone; returns the page's path.

    Draws the runs and the artefacts :func:`record_artefacts` stored, and
    computes nothing else. ``throughput`` (:func:`load_throughput`'s, from
    files) and ``asv_results`` (an asv results directory) are drawn instead of
    the store's, into this report only: the store is not changed.
    """
    from fastgd.sweep.store import Store

    with Store(store, mode="r") as opened:  # a report reads the store and writes nothing into it
        runs, curves, sweeps = opened.runs_frame(), opened.curves_frame(), opened.sweeps_frame()
        artefacts = opened.artefacts()
    check_reportable(runs, store)
    check_artefacts(artefacts, store)
    return render_report(out_dir, runs, curves, sweeps, artefacts, throughput=throughput, asv_results=asv_results,
                         title=title, progress=progress)


# the page's mark: a folder whose index.html carries it holds a fastgd report, which a new one may replace
GENERATOR = '<meta name="generator" content="fastgd">'
# the footer of reports made before the mark
_OLDER_MARK = "Made by <code>fastgd</code> from the sweep store alone"


def is_fastgd_report(directory):
    """Whether ``directory`` holds a report fastgd wrote (its ``index.html`` says so)."""
    try:
        page = (Path(directory) / "index.html").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return GENERATOR in page or _OLDER_MARK in page


def check_reportable(runs, store):
    """ValueError in one line when the runs of a store cannot make a report."""
    if runs.empty:
        raise ValueError(f"the store {store} holds no runs: run a sweep first")
    compared = split_phases(runs)[0]
    if compared.empty:
        raise ValueError(f"the store {store} holds only tuning trials (phase 'tune'): train the chosen settings "
                         "before making a report")
    failed = compared["status"] == "failed"
    if failed.all():
        errors = compared["error"].dropna() if "error" in compared else ()
        first = f" (the first: {' '.join(str(errors.iloc[0]).split())})" if len(errors) else ""
        raise ValueError(f"every run in the store {store} failed, {len(compared)} of {len(compared)}{first}: "
                         "nothing to report")


def _interval_text(row, scale=1.0):
    if not math.isfinite(row["mean"]):
        return "–" if row["n"] == 0 else f"{row['mean']:.4g}"
    if math.isfinite(row["low"]) and math.isfinite(row["high"]):
        return f"{row['mean'] * scale:.4g} [{row['low'] * scale:.4g}, {row['high'] * scale:.4g}]"
    return f"{row['mean'] * scale:.4g}"


def _interval_table(table):
    """Per data set and rule: mean [low, high] of each measure, the seeds of the best configuration and how many
    reached the target."""
    rows = []
    for (dataset, rule), group in table.groupby(["dataset", "rule"], sort=True):
        measured = group.set_index("measure")
        rows.append([dataset, rule, _interval_text(measured.loc["final_loss"]),
                     _interval_text(measured.loc["test_metric"]), _interval_text(measured.loc["epochs_to_target"]),
                     _interval_text(measured.loc["seconds_to_target"], 1e3),
                     str(int(measured.loc["epochs_to_target", "n"])), str(int(measured.loc["final_loss", "n_seeds"]))])
    return {"columns": ["dataset", "rule", "final training loss", "test metric", "epochs to target",
                        "ms to target", "seeds reaching", "seeds"], "rows": rows, "text": 2}


def _data_table(runs, sweeps, stored):
    """One row per data set of ``runs``: what :func:`record_datasets` stored of it, else what the store's runs and
    sweep configurations say (a store of ``run_sweep`` from Python, or of an older fastgd)."""
    described = stored.get(DATASETS) or {}
    tables = {}
    for config in sweeps["config"] if len(sweeps) else ():
        if isinstance(config, dict) and isinstance(config.get("datasets"), dict):
            tables.update({name: table for name, table in config["datasets"].items() if isinstance(table, dict)})
    rows = []
    for name, group in runs.groupby("dataset", sort=True):
        hashes = sorted({value for value in group.get("data_hash", ()) if isinstance(value, str) and value})
        targets = sorted(set(group["target_loss"].dropna())) if "target_loss" in group else []
        row = described.get(name)
        if row is not None:
            rows.append([name, row["source"], row.get("target_column") or "–", row["task"],
                         f"{row.get('rows_train', '?')} + {row.get('rows_test', '?')}", str(row.get("columns", "?")),
                         ", ".join(value[:16] for value in hashes) or row["content_hash"][:16],
                         row.get("target_loss_chosen") or f"{row['target_loss']:g}"])
            continue
        table = tables.get(name, {})
        source = table.get("path") or table.get("loader") or f"{name} (a data set fastgd knows by name)"
        rows.append([name, str(source), str(table.get("target", "–")), str(table.get("task") or "–"),
                     "not recorded", "not recorded", ", ".join(value[:16] for value in hashes) or "not recorded",
                     ", ".join(f"{value:g}" for value in targets) + " (how it was chosen is not recorded)"])
    return {"columns": ["data set", "source", "target column", "task", "rows (training + test)", "columns",
                        "content hash (SHA-256, first 16)", "target training loss"], "rows": rows, "text": 4}


def _throughput_elsewhere(throughput, runs):
    """A sentence where the throughput was measured on other data than the runs compared, else ''."""
    timed = sorted(set(throughput["training"]["dataset"]))
    compared = sorted(set(runs["dataset"]))
    if set(compared) <= set(timed):
        return ""
    return (f"The throughput was measured on {', '.join(timed)}, not on the data this report compares "
            f"({', '.join(sorted(set(compared) - set(timed)))}): its speeds are for other data.")


def _throughput_table(throughput):
    """The training throughput with each timing's spread over its repeats (least to greatest seconds per epoch)
    and the threads every implementation had."""
    training = throughput["training"].copy()
    timings = throughput.get("training_repeats")
    columns = ["dataset", "implementation", "dtype", "seconds_per_epoch", "samples_per_second"]
    if timings is not None and len(timings):
        spread = timings.groupby(["dataset", "implementation"])["seconds_per_epoch"].agg(["min", "max", "size"])
        training = training.join(spread, on=["dataset", "implementation"])
        training["repeats (least to greatest s/epoch)"] = [
            f"{row['size']:.0f}: {row['min']:.3g} to {row['max']:.3g}" for _, row in training.iterrows()]
        columns.append("repeats (least to greatest s/epoch)")
    threads = (throughput["machine"].get("threads") or {}).get("training") or {}
    if threads:
        training["threads"] = training["implementation"].map(lambda name: str(threads.get(name, "–")))
        columns.append("threads")
    return _table(training, columns)


def _algoperf_table(runs):
    from fastgd.sweep import stats

    epochs = stats.algoperf_scores(runs, "epochs_to_target")
    seconds = stats.algoperf_scores(runs, "seconds_to_target")
    return {"columns": ["rule", "AlgoPerf score, epochs to target", "AlgoPerf score, seconds to target"],
            "rows": [[rule, f"{epochs[rule]:.3f}", f"{seconds[rule]:.3f}"] for rule in epochs.index], "text": 1}


def _tuning_table(tune):
    """Per data set, budget, batch size and rule: the trials, the best validation loss and after how many trials
    it was reached."""
    from fastgd.report.figures import tuning_progress

    data = tuning_progress(tune)
    rows = []
    for (dataset, budget, batch_size, rule), group in data.groupby(["dataset", "budget", "batch_size", "rule"],
                                                                   sort=True):
        scores = group["score"].astype(float)
        finite = scores[np.isfinite(scores)]
        best = f"{finite.min():.4g}" if len(finite) else "–"
        after = str(int(group.loc[finite.idxmin(), "trials"])) if len(finite) else "–"
        rows.append([dataset, str(budget), str(batch_size), rule, str(len(group)), best, after])
    return {"columns": ["dataset", "budget", "batch size", "rule", "trials", "best validation loss",
                        "reached after (trials)"], "rows": rows, "text": 4}


def render_report(out_dir, runs, curves, sweeps, artefacts, throughput=None, asv_results=None,
                  title="fastgd: optimizer comparison", progress=None):
    """Write ``out_dir/index.html`` from a store's frames (:meth:`Store.runs_frame`, ``curves_frame``,
    ``sweeps_frame``, ``artefacts``) as :func:`build_report` reads them; returns the page's path.

    Tuning trials (``phase`` "tune") are drawn in the tuning section only;
    everything else is computed from the other runs (:func:`split_phases`).
    """
    import pandas as pd
    from jinja2 import Environment, PackageLoader, select_autoescape

    from fastgd.report import figures, rank_figure
    from fastgd.report.history import load_history
    from fastgd.sweep import stats
    from fastgd.sweep.metrics import best_runs, mixed_provenance, mixed_settings
    from fastgd.sweep.completeness import completeness

    say = progress or (lambda message: None)
    stored = {name: artefact["content"] for name, artefact in artefacts.items()}
    compared, tune = split_phases(runs)
    if throughput is None:
        throughput_note, throughput_warning = throughput_provenance(artefacts)
    else:
        throughput_note, throughput_warning = "Read from the throughput files given to fastgd report.", None
    warnings = mixed_provenance(runs, sweeps) + mixed_settings(compared) + (
        [throughput_warning] if throughput_warning else [])
    notes = unknown_rule_notes(runs)
    incomplete = completeness(runs, sweeps)
    for line in warnings + notes + ([incomplete] if incomplete else []):
        say(f"warning: {line}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    finished = compared[compared["status"] != "failed"]
    several_rules = finished["rule"].nunique() > 1
    missing = []
    sections = []
    summary_after = []  # lines the summary ends with, found while the sections are drawn

    def add(figure, **extra):
        sections.append(dict(id=figure.stem, title=figure.title, figure=figure, **extra))

    say("figures: convergence, learning rates, time to target")
    add(figures.draw_convergence(finished, curves, out_dir))
    add(figures.draw_learning_rate_sensitivity(finished, out_dir))
    add(figures.draw_time_to_target(finished, out_dir))
    say("statistics: intervals, ranks, AlgoPerf scores")
    intervals = stats.intervals(finished)
    add(figures.draw_intervals(finished, out_dir, intervals),
        note="The same intervals in numbers, mean [low, high] (95%, bootstrap over seeds); times in milliseconds, "
             "over the seeds that reached the target.",
        table=_interval_table(intervals))
    pairwise = None
    if several_rules:
        pairwise = stats.pairwise_tests(finished)
        pairwise.to_csv(out_dir / "pairwise.csv", index=False)
        rank = stats.rank_test(stats.score_matrix(finished))
        add(rank_figure.draw_critical_difference(finished, out_dir),
            note=f"Friedman and Nemenyi tests on epochs to target: {rank_sentence(rank)}.")
        add(figures.draw_performance_profile(finished, out_dir),
            note="AlgoPerf's benchmark score (Dahl et al. 2023) of each rule's best configuration: its performance "
                 "profile integrated from τ = 1 to 4 over the data sets and divided by 3, 1 when fastest everywhere, "
                 "0 when never within 4x of the fastest. On seconds it is the profile above; on epochs, the same "
                 "for the deterministic measure.",
            table=_algoperf_table(finished))
    else:
        add(figures.draw_performance_profile(finished, out_dir))
        sections.append(dict(id="critical_difference", title="Critical-difference diagram", figure=None,
                             note="One rule only: nothing to rank."))
    if not tune.empty:
        say("figure: tuning budgets")
        add(figures.draw_tuning(tune, out_dir), table=_tuning_table(tune))
    else:
        sections.append(dict(id="tuning", title="Tuning budgets", figure=None,
                             note=_missing("Tuning budgets", "a tuning sweep (runs of phase 'tune', scored on a "
                                           "validation split) stores the trials it draws")))
    if throughput is None and THROUGHPUT in stored:
        throughput = _throughput_from_content(stored[THROUGHPUT])
    if throughput is not None:
        say("figure: throughput")
        add(figures.draw_throughput(throughput, out_dir))
        elsewhere = _throughput_elsewhere(throughput, finished)
        if elsewhere:
            throughput_note = f"{throughput_note or ''} {elsewhere}".strip()
            summary_after.append(elsewhere)
    else:
        missing.append(_missing("Throughput", "fastgd compare measures and stores it (without --skip-throughput), "
                                "fastgd report --throughput DIR draws the throughput_*.csv files of DIR"))
    say("figures: trajectories and loss landscapes (as stored)")
    if TRAJECTORIES in stored:
        add(figures.draw_trajectories(stored[TRAJECTORIES], out_dir))
        lacking = figures.rules_in(set(finished["rule"]) - {path["rule"] for path in stored[TRAJECTORIES]["paths"]})
        if lacking:
            missing.append(_missing(f"Trajectories of {', '.join(lacking)}",
                                    "fastgd compare stores them (given the plugins of their rules)"))
    else:
        missing.append(_missing("Trajectories on the test functions", "fastgd compare stores them"))
    names = sorted(finished["dataset"].unique())
    landscapes = {name: stored[landscape_artefact(name)] for name in names if landscape_artefact(name) in stored}
    if landscapes:
        add(figures.draw_landscapes(landscapes, out_dir))
    lacking = [name for name in names if name not in landscapes]
    if lacking:
        missing.append(_missing(f"Loss landscape of {', '.join(lacking)}",
                                "fastgd compare stores one for each data set of its configuration"))
    if asv_results is not None:
        history, source = load_history(asv_results), asv_results
    elif HISTORY in stored:
        history, source = pd.DataFrame(stored[HISTORY]["records"]), stored[HISTORY]["source"]
    else:
        history, source = None, None
    if history is None:
        history_note = "No asv history in this store (fastgd compare --asv-results .asv/results stores it; " \
                       "fastgd report --asv-results .asv/results draws it from the files)."
    elif not history.empty:
        add(figures.draw_history(history, out_dir))
        history_note = f"{history['commit'].nunique()} commits with asv results in {source}."
    else:
        history_note = f"No asv results found in {source}."
    checks = stored.get(GRADIENT_CHECKS)
    if checks is None:
        missing.append(_missing("Gradient checks", "fastgd compare stores them"))
    if MACHINE not in stored:
        missing.append(_missing("Machine description", "fastgd compare stores it"))
    for line in missing:
        say(f"missing: {line}")

    best = best_runs(finished)
    best_table = _table(best.sort_values(["dataset", "rule"]),
                        ["dataset", "rule", "learning_rate", "final_loss_mean", "test_metric_mean",
                         "epochs_to_target_mean", "seconds_to_target_mean", "diverged_share"])
    throughput_table = None
    if throughput is not None:
        throughput_table = _throughput_table(throughput)
    counts = runs["status"].value_counts().to_dict()
    store_provenance = sweeps["provenance"].iloc[-1] if len(sweeps) else {}
    environment = Environment(loader=PackageLoader("fastgd.report", "templates"),
                              autoescape=select_autoescape(["html"]))
    page = environment.get_template("report.html").render(
        title=title, warnings=warnings, notes=notes, missing=missing, incomplete=incomplete,
        summary=([f"Incomplete: {incomplete}."] if incomplete else []) + summary_lines(finished, throughput, pairwise)
        + summary_after,
        pairwise_csv=pairwise is not None,
        sections=sections, best=best_table, data=_data_table(compared, sweeps, stored), throughput=throughput_table,
        throughput_note=throughput_note,
        checks=checks, history_note=history_note,
        machine=_machine(artefacts.get(MACHINE), store_provenance),
        sweep_names=", ".join(sorted(set(sweeps["name"]))), n_runs=len(runs), n_tuning=len(tune), counts=counts,
        datasets=sorted(runs["dataset"].unique()),
        rules=figures.rules_in(runs["rule"]))
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    runs.to_csv(out_dir / "runs.csv", index=False)
    return path
