"""Each rule's runtime overhead per epoch against SGD, per data set (DeepOBS's measure), read from the runs' curves.

DeepOBS (Schneider et al. 2019) reports a rule's cost as the ratio of its seconds per epoch to SGD's on the same
test problem. Here, from a store's runs and curves alone:

* :func:`run_epoch_seconds`: per run, the median of its epochs' seconds (each epoch's end minus the previous one's,
  from the curves' ``seconds``, which count from the run's own start), with what its time may be compared with
  (its :data:`SETTING_COLUMNS`, the machine that ran it, and whether it trained in a sweep's shared compiled call
  or alone);
* :func:`overhead_table`: per machine, setting and rule, the median over runs, and its ratio to SGD's on the same
  setting and machine with a bootstrap interval over runs;
* :func:`step_ratios`: beside them, each rule's update step alone over SGD's, from the throughput ``fastgd compare``
  stored (timed apart from training: the rule's own cost without the model's passes);
* :func:`draw_overhead`: the report's section (a figure, a table and the text saying what the seconds measure).

What the seconds are: a sweep trains each chunk of runs (one rule, one data set) in one compiled call,
:func:`fastgd.kernels.train.train_runs_together`, one run per ``prange`` iteration, and each run times its own
epochs from its own start on the one thread that runs it (local workers divide the cores among them). So
a run's seconds are one thread's time for its epochs whatever the chunk's size, and every rule is timed alike,
but beside whatever the other threads run then (memory bandwidth and caches are shared) and under the machine's
load. A rule with an evaluation point (ASGD, schedule-free) trains alone through :class:`fastgd.training.Training`,
whose pass may take several threads: its seconds are not comparable with the others' and are given apart.
"""

import math

import numpy as np

__all__ = ["REFERENCE", "SETTING_COLUMNS", "run_epoch_seconds", "overhead_table", "overhead_cells", "step_ratios",
           "draw_overhead"]

# the rule every other is compared with
REFERENCE = "sgd"
# what must be equal for two runs' seconds per epoch to be compared (the learning rate, seed, schedule and the
# rule's hyperparameters are not: they leave the work of an epoch as it is)
SETTING_COLUMNS = ["dataset", "data_hash", "model", "hidden_layer_sizes", "activation", "dtype", "batch_size",
                   "split"]
CONFIDENCE = 0.95
N_RESAMPLES = 2000


def _text(value):
    if isinstance(value, (list, tuple)):
        return "-".join(map(str, value))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _trained(rule, batched):
    """How a run trained: "together" (in a sweep's shared compiled call) or "alone" (one Training, whose pass may
    take several threads): a sweep run with ``batched=False`` trains every run alone, a batched one a rule with an
    evaluation point (known from the registry; a rule not registered here is taken as batched) and a whole-batch
    solver (``lbfgs``)."""
    from fastgd.rules import registry
    from fastgd.sweep.solvers import is_solver

    if batched is not None and batched == batched and not batched:  # NaN: an older store, which batched
        return "alone"
    if is_solver(rule):  # a whole-batch solver always trains alone
        return "alone"
    known = registry.RULES.get(rule)
    return "alone" if known is not None and known.evaluation is not None else "together"


def _machines(runs, sweeps):
    """Each run's machine in words (its CPU, cores and host, from its own provenance or its sweep's)."""
    from fastgd.sweep.metrics import _run_provenances

    if sweeps is None or "sweep_id" not in runs:
        return runs.index.to_series().map(lambda index: "not recorded")
    provenances = _run_provenances(runs, sweeps)

    def label(index):
        facts = provenances.get(index)
        if not isinstance(facts, dict) or not facts.get("cpu"):
            return "not recorded"
        return f"{facts['cpu']} × {facts.get('cpu_count', '?')} on {facts.get('host', '?')}"

    return runs.index.to_series().map(label)


def run_epoch_seconds(runs, curves, sweeps=None):
    """One row per run that finished without diverging and has a curve: its setting (:data:`SETTING_COLUMNS` it
    has, as text), ``machine``, ``trained`` ("together" or "alone"), ``rule``, ``epochs`` and ``seconds_per_epoch``:
    the median over its epochs of each epoch's seconds (a busy moment slows one epoch, not the run's figure).

    ``runs``: the store's runs (tuning trials are timed on the validation split's rows: their ``split`` keeps them
    apart); ``curves``: the store's curves; ``sweeps``: its sweeps, whose provenance names the machine of a run that
    does not record its own.
    """
    import pandas as pd

    timed = runs[runs["status"] == "ok"]
    columns = [column for column in SETTING_COLUMNS if column in timed]
    frame = timed[["run_id", "rule", *columns]].copy()
    for column in columns:
        frame[column] = frame[column].map(_text)
    frame["machine"] = _machines(timed, sweeps)
    batched = timed["batched"] if "batched" in timed else pd.Series(1, index=timed.index)
    frame["trained"] = [_trained(rule, flag) for rule, flag in zip(timed["rule"], batched)]
    ordered = curves.loc[curves["run_id"].isin(frame["run_id"]), ["run_id", "epoch", "seconds"]]
    ordered = ordered.sort_values(["run_id", "epoch"])
    each = ordered.groupby("run_id")["seconds"].diff().fillna(ordered["seconds"])
    per_run = each.groupby(ordered["run_id"]).agg(["median", "size"])
    per_run.columns = ["seconds_per_epoch", "epochs"]
    frame = frame.merge(per_run, left_on="run_id", right_index=True, how="inner")
    return frame.reset_index(drop=True)


def _ratio_interval(values, reference, seed):
    """(low, high) of the ratio of medians ``values`` / ``reference`` by a percentile bootstrap over each side's
    runs; NaN where a side has one run."""
    from scipy import stats

    if len(values) < 2 or len(reference) < 2:
        return math.nan, math.nan

    def ratio(first, second, axis=-1):
        return np.median(first, axis=axis) / np.median(second, axis=axis)

    result = stats.bootstrap((values, reference), ratio, confidence_level=CONFIDENCE, n_resamples=N_RESAMPLES,
                             method="percentile", vectorized=True, paired=False, rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def overhead_table(per_run, reference=REFERENCE, seed=0):
    """Per machine, setting (the columns of ``per_run`` from :func:`run_epoch_seconds` but its run's own) and rule:
    ``runs``, ``seconds`` (the median over runs of their seconds per epoch), ``seconds_low``, ``seconds_high`` (the
    runs' quartiles), and ``ratio`` (``seconds`` over ``reference``'s on the same setting and machine; NaN where it
    has no runs there) with ``ratio_low``, ``ratio_high`` (:data:`CONFIDENCE` percentile bootstrap over the runs of
    both, each resampled; NaN with fewer than two runs a side) and ``reference_runs``."""
    import pandas as pd

    keys = [column for column in per_run.columns if column not in ("run_id", "rule", "epochs", "seconds_per_epoch")]
    records = []
    for setting, group in per_run.groupby(keys, sort=True, dropna=False):
        setting = dict(zip(keys, setting if isinstance(setting, tuple) else (setting,)))
        base = group.loc[group["rule"] == reference, "seconds_per_epoch"].to_numpy(dtype=float)
        for rule, of_rule in group.groupby("rule", sort=True):
            values = of_rule["seconds_per_epoch"].to_numpy(dtype=float)
            low, high = np.percentile(values, [25, 75])
            ratio = ratio_low = ratio_high = math.nan
            if len(base) and np.median(base) > 0:  # a clock that read no time between epochs gives no ratio
                ratio = float(np.median(values) / np.median(base))
                ratio_low, ratio_high = (1.0, 1.0) if rule == reference else _ratio_interval(values, base, seed)
            records.append(dict(setting, rule=rule, runs=len(values), seconds=float(np.median(values)),
                                seconds_low=float(low), seconds_high=float(high), ratio=ratio, ratio_low=ratio_low,
                                ratio_high=ratio_high, reference_runs=len(base)))
    columns = [*keys, "rule", "runs", "seconds", "seconds_low", "seconds_high", "ratio", "ratio_low", "ratio_high",
               "reference_runs"]
    return pd.DataFrame(records, columns=columns)


def _label(table):
    """Each row's column of the table in words: its data set, with what else sets it apart from the data set's other
    settings (batch size, model, training rows, how it trained, the machine) where those vary."""
    words = {"batch_size": "batch {}", "model": "{}", "hidden_layer_sizes": "hidden {}", "activation": "{}",
             "dtype": "{}", "data_hash": "content {:.8}", "split": "{} split", "trained": "trained {}",
             "machine": "on {}"}
    # what differs between the settings of one data set (the machine: anywhere in the store)
    varying = [column for column in words if column in table and (
        table[column].nunique() > 1 if column == "machine" else (table.groupby("dataset")[column].nunique() > 1).any())]

    def label(row):
        parts = []
        for column in varying:
            value = row[column]
            if column == "split":
                value = "validation" if value == "validation" else ""
            if column == "trained":
                value = "alone" if value == "alone" else ""
            if value:
                parts.append(words[column].format(value))
        return row["dataset"] + (f" ({', '.join(parts)})" if parts else "")

    return table.apply(label, axis=1) if len(table) else table["dataset"]


def _engineering(seconds):
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def overhead_cells(table, reference=REFERENCE):
    """The section's table as text: one row per rule (figure order), one column per setting
    (:func:`_label`), each cell the ratio to SGD with its interval, or the seconds per epoch with their quartiles
    where SGD has no runs on that setting; – where the rule has none."""
    from fastgd.report.figures import rules_in

    labelled = table.assign(column=_label(table), reference_rule=reference)
    columns = list(dict.fromkeys(labelled.sort_values("column", kind="stable")["column"]))
    cells = {}
    for row in labelled.itertuples():
        if row.rule == row.reference_rule and math.isfinite(row.ratio):
            text = "1× (the reference)"
        elif math.isfinite(row.ratio):
            interval = (f" [{row.ratio_low:.3g}, {row.ratio_high:.3g}]"
                        if math.isfinite(row.ratio_low) and math.isfinite(row.ratio_high) else "")
            text = f"{row.ratio:.3g}×{interval}"
        else:
            text = f"{_engineering(row.seconds)} [{_engineering(row.seconds_low)}, {_engineering(row.seconds_high)}]"
        cells[(row.rule, row.column)] = f"{text} ({row.runs})"
    rows = [[rule, *(cells.get((rule, column), "–") for column in columns)] for rule in rules_in(table["rule"])]
    return {"columns": ["rule", *columns], "rows": rows, "text": 1}


def step_ratios(artefacts, reference=REFERENCE):
    """Each rule's update step alone over ``reference``'s, from the throughput ``fastgd compare`` stored (its steps
    table: fastgd's step, float32, timed apart from training): {parameters: Series by rule} at the smallest and the
    largest parameter count timed; {} without a stored throughput or a ``reference`` step in it."""
    import pandas as pd

    from fastgd.report.sections import THROUGHPUT

    stored = artefacts.get(THROUGHPUT)
    if stored is None:
        return {}
    steps = pd.DataFrame(stored["content"]["frames"]["steps"])
    if steps.empty or not {"rule", "parameters", "implementation", "seconds"} <= set(steps):
        return {}
    seconds = steps[steps["implementation"] == "fastgd"].pivot_table(index="parameters", columns="rule",
                                                                     values="seconds")
    if reference not in seconds:
        return {}
    sizes = sorted({int(seconds.index.min()), int(seconds.index.max())})
    return {size: (seconds.loc[size] / seconds.loc[size, reference]).dropna() for size in sizes}


def _with_steps(cells, ratios):
    """The table of :func:`overhead_cells` with a column per size of ``ratios`` (:func:`step_ratios`)."""
    for size, of_size in ratios.items():
        cells["columns"].append(f"update step alone, {size:,} parameters")
        for row in cells["rows"]:
            row.append(f"{of_size[row[0]]:.3g}×" if row[0] in of_size else "–")
    return cells


def _note(table, reference):
    from fastgd.report.text import plural

    labelled = table.assign(column=_label(table))
    # the columns of rules trained alone are never over the reference's, and the sentence on them says so: a
    # column named here is one where the reference itself has no runs
    alone = labelled["trained"] == "alone" if "trained" in labelled else False
    without = sorted(set(labelled.loc[(labelled["reference_runs"] == 0) & ~alone, "column"]))
    machines = sorted(set(table["machine"])) if "machine" in table else []
    text = (f"Seconds per epoch of each rule over {reference}'s (DeepOBS's runtime overhead): per run, the median of "
            "its epochs' wall-clock seconds (the curves' seconds: each epoch's end minus the previous one's); per "
            "rule, the median over its runs that finished without diverging; each cell that median over "
            f"{reference}'s on the same data set, batch size, model, dtype and training rows, measured on the same "
            f"machine, with its {CONFIDENCE:.0%} percentile bootstrap interval over the runs of both (each resampled) "
            "and, in brackets, the rule's runs. 1× is as fast as "
            f"{reference}; every rule's epoch does the same passes through the model, so the overhead is the "
            "update's and its state's. What the seconds measure: a sweep trains a chunk of one rule's runs in one "
            "compiled call, one run per thread, each timing its own epochs from its own start; so they are one "
            "thread's time whatever the chunk's size, every rule timed alike, but beside whatever the other threads "
            "ran then and under the machine's load.")
    if "trained" in table and (table["trained"] == "alone").any():
        text += (" Rules with an evaluation point (ASGD, schedule-free) train alone, through a pass that may take "
                 "several threads: their seconds are given apart (trained alone) and not divided by "
                 f"{reference}'s.")
    if without:
        text += (f" No {reference} runs on {', '.join(without)}: seconds per epoch alone there, the median over runs "
                 "with the runs' quartiles" + (", in the table only." if len(without) < len(set(labelled["column"]))
                                               else "."))
    if len(machines) > 1:
        text += (f" The store holds runs of {plural(len(machines), 'machine')} ({'; '.join(machines)}): each "
                 "machine's runs are compared among themselves, never across machines.")
    return text


def draw_overhead(page, runs, curves, reference=REFERENCE):
    """The report's section on runtime overhead: the figure and table of :func:`overhead_table` over ``runs`` (the
    finished runs compared, no tuning trials) and ``curves``, drawn into ``page``
    (:class:`fastgd.report.sections.Page`); a line saying why where no run can be timed."""
    from fastgd.report import figures

    per_run = run_epoch_seconds(runs, curves, page.sweeps)
    if per_run.empty:
        page.add_text("runtime_overhead", "Runtime overhead per epoch",
                      note="No run finished without diverging with a curve to time: no seconds per epoch to show.")
        return
    table = overhead_table(per_run, reference)
    table = table.assign(column=_label(table))
    page.say("figure: runtime overhead per epoch")
    note = _note(table, reference)
    ratios = step_ratios(page.artefacts, reference)
    if ratios:
        note += (f" The last columns: each rule's update step alone over {reference}'s, fastgd's float32 step timed "
                 "apart from training by fastgd compare (see Throughput): the rule's own cost without the model's "
                 "passes.")
    page.draw(figures.draw_runtime_overhead, table, page.out_dir, reference, note=note,
              table=_with_steps(overhead_cells(table.drop(columns="column"), reference), ratios))
