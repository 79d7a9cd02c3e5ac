"""The report's sections that draw what ``fastgd compare`` stored besides the runs, each declared once.

A :class:`Section` holds everything about one kind of artefact: its name in the
store's ``artefacts`` table, how it is measured (a callable run by ``fastgd
compare``; the measuring itself lives in :mod:`fastgd.sweep.measure`), why a
stored one cannot be drawn (a damaged or hand-edited store), and how it is
drawn into the page (a figure, a table, a note, or the line saying it is not in
the store and how to make it). :data:`SECTIONS` lists them in the page's order,
and three loops iterate over it:

* :func:`record_artefacts` measures each and stores it (``fastgd compare``);
* :func:`check_artefacts` refuses a store holding one that cannot be drawn;
* :func:`fastgd.report.build.render_report` draws each into a :class:`Page`.

A new section is one more :class:`Section` in :data:`SECTIONS`: its draw adds a
figure, a note or a table to the page's sections, which the page shows in
order; nothing else changes.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from fastgd.report import figures
from fastgd.report.text import missing_line, table_of, throughput_lines
from fastgd.sweep import measure
from fastgd.sweep.measure import DATASETS

__all__ = ["Section", "Measuring", "Page", "SECTIONS", "record_artefacts", "check_artefacts", "artefact_problem",
           "section_of", "landscape_artefact", "throughput_provenance", "MACHINE", "GRADIENT_CHECKS", "TRAJECTORIES",
           "PARAMETER_PATHS",
           "THROUGHPUT", "HISTORY", "DATASETS", "LANDSCAPE"]

# the names of the artefacts in the store (a landscape's is LANDSCAPE:<data set>)
MACHINE, GRADIENT_CHECKS, TRAJECTORIES, THROUGHPUT, HISTORY, LANDSCAPE, PARAMETER_PATHS = (
    "machine", "gradient_checks", "trajectories", "throughput", "history", "landscape", "parameter_paths")


@dataclass(frozen=True)
class Measuring:
    """What a section's ``measure`` is given: the store's runs (its frame), the sweep's configuration
    (:class:`fastgd.sweep.SweepConfig`, or None), the throughput ``fastgd compare`` measured just before (or None),
    an asv results directory (or None) and the artefacts the store held before (:meth:`Store.artefacts`)."""

    runs: object
    config: object = None
    throughput: dict = None
    asv_results: object = None
    artefacts: dict = None


@dataclass
class Page:
    """What the sections draw into: the figures' directory, the runs they are drawn beside, the store's artefacts
    (:meth:`fastgd.sweep.store.Store.artefacts`) and the names of those given from files instead
    (``fastgd report --throughput``, ``--asv-results``); and what the drawing adds to the page.

    ``sections``: the page's sections in order, each {id, title, figure, note, table} (:meth:`add`, :meth:`add_text`);
    ``missing``: lines on sections not in the store; ``warnings``: lines for the page's top; ``summary``: lines the
    summary ends with; ``template``: values for the places the page's template keeps for a section (the data
    table, the throughput table, the gradient checks, the machine, the asv history's note). ``pool``: the processes
    drawing its figures (:func:`fastgd.report.figures.drawing_pool`), or None: each drawn where it is asked for.
    """

    out_dir: Path
    compared: object
    finished: object
    sweeps: object
    artefacts: dict
    given: frozenset = frozenset()
    say: Callable = lambda message: None
    sections: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    summary: list = field(default_factory=list)
    template: dict = field(default_factory=dict)
    pool: object = None

    def add(self, figure, **extra):
        """A section showing ``figure`` (a :class:`fastgd.report.figures.Figure`), with a ``note`` or ``table``."""
        self.sections.append(dict(id=figure.stem, title=figure.title, figure=figure, **extra))

    def draw(self, function, *arguments, **extra):
        """A section showing the figure ``function(*arguments)`` draws (a ``draw_*`` of
        :mod:`fastgd.report.figures`, which returns a :class:`fastgd.report.figures.Figure`), with a ``note`` or
        ``table``: drawn now where the page has no pool, else by the pool while the page goes on, in its place
        among the sections once :meth:`finish` has waited for it."""
        if self.pool is None:
            self.add(function(*arguments), **extra)
        else:
            self.sections.append(dict(drawing=self.pool.submit(function, *arguments), **extra))

    def finish(self):
        """Wait for the figures the pool draws and put each in its section (an error drawing one is raised here)."""
        for section in self.sections:
            drawing = section.pop("drawing", None)
            if drawing is not None:
                figure = drawing.result()
                section.update(id=figure.stem, title=figure.title, figure=figure)

    def add_text(self, id, title, note=None, table=None):
        """A section without a figure: a note, or a table ({"columns", "rows", "text": how many columns are text})."""
        self.sections.append(dict(id=id, title=title, figure=None, note=note, table=table))

    def lack(self, what, how):
        """Say that ``what`` is not in this store and ``how`` to make it."""
        self.missing.append(missing_line(what, how))

    def warn(self, line):
        """A warning on top of the page, said on the way too."""
        self.warnings.append(line)
        self.say(f"warning: {line}")


def _content(artefact):
    return artefact["content"]


@dataclass(frozen=True)
class Section:
    """One kind of artefact the report draws: stored once by ``fastgd compare``, drawn by every report of the store.

    ``name``: the artefact's name in the store (with ``per_dataset``, one artefact ``name:<data set>`` for each
    data set of the sweep's configuration). ``measure``: ``(Measuring) -> content`` (with ``per_dataset``,
    ``(Measuring, data set) -> content``), JSON-ready; None stores nothing (nothing measured this time: what the
    store held stays), and a section without ``measure`` is stored by another step (``measuring`` then names
    none). ``problem``: ``content -> str or None``, why stored content cannot be drawn (a TypeError, ValueError or
    AttributeError it raises reads as values of the wrong kind). ``draw``: ``(Page, what or None)``, None when the
    store lacks it: what it adds to the page. ``read``: the stored artefact ({"content", "made_at",
    "provenance"}) → what ``draw`` takes (its content, by default); with ``per_dataset``, draw takes
    {data set: what}. ``measuring``: the progress line while it is measured.
    """

    name: str
    problem: Callable
    draw: Callable
    measure: Callable = None
    read: Callable = _content
    per_dataset: bool = False
    measuring: str = ""

    def artefact(self, dataset=None):
        """The name of this section's artefact (of ``dataset``, for a section with one per data set)."""
        return f"{self.name}:{dataset}" if self.per_dataset else self.name

    def owns(self, name):
        """Whether the stored artefact ``name`` is this section's."""
        return name.startswith(self.name + ":") if self.per_dataset else name == self.name

    def stored(self, artefacts):
        """What ``draw`` takes from a store's ``artefacts``, or None where they hold none of this section's."""
        if self.per_dataset:
            return {name.split(":", 1)[1]: self.read(artefact) for name, artefact in artefacts.items()
                    if self.owns(name)}
        return self.read(artefacts[self.name]) if self.name in artefacts else None


def landscape_artefact(dataset):
    """The name of a data set's loss landscape in the store."""
    return f"{LANDSCAPE}:{dataset}"


def _has(mapping, *keys):
    return isinstance(mapping, dict) and all(key in mapping for key in keys)


def _numeric_grid(value, shape):
    array = np.asarray(value, dtype=np.float64)
    return array.shape == shape and array.dtype.kind == "f"


# --- throughput: measured by fastgd.baselines.throughput.measure just before, stored as JSON -----------------------

def _throughput_content(measuring):
    """:func:`fastgd.baselines.throughput.measure`'s dict as JSON: its tables (DataFrames) as lists of rows, the rest
    (the machine's limits) as it is, whatever keys either has; None where none was measured."""
    import pandas as pd

    throughput = measuring.throughput
    if throughput is None:
        return None
    # rows as pandas gives them (NaN stays NaN, which JSON's text then holds, rather than to_json's null)
    frames = {key: value.to_dict(orient="records") for key, value in throughput.items()
              if isinstance(value, pd.DataFrame)}
    return {"frames": frames, "values": {key: value for key, value in throughput.items() if key not in frames}}


def _throughput_from_artefact(artefact):
    import pandas as pd

    content = artefact["content"]
    return {**{key: pd.DataFrame(rows) for key, rows in content["frames"].items()}, **content["values"]}


def _throughput_problem(content):
    frames = content.get("frames", {}) if isinstance(content, dict) else None
    if not (_has(content, "frames", "values") and _has(frames, "training", "steps")
            and all(isinstance(rows, list) for rows in frames.values())
            and isinstance(content["values"].get("machine"), dict)):
        return "not throughput tables (training, steps) and the machine's limits"
    return None


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
    return table_of(training, columns)


def _draw_throughput(page, throughput):
    """The throughput figure, its table under Best settings with when and where it was measured, and the summary's
    speed-ups; a store's throughput measured by other code or elsewhere than its other artefacts is warned of."""
    if THROUGHPUT in page.given:
        note = "Read from the throughput files given to fastgd report."
    else:
        note, warning = throughput_provenance(page.artefacts)
        if warning:
            page.warn(warning)
    if throughput is None:
        page.lack("Throughput", "fastgd compare measures and stores it (without --skip-throughput), fastgd report "
                  "--throughput DIR draws the throughput_*.csv files of DIR")
        page.template.update(throughput=None, throughput_note=note)
        return
    page.say("figure: throughput")
    page.draw(figures.draw_throughput, throughput, page.out_dir)
    page.summary.extend(throughput_lines(throughput))
    elsewhere = _throughput_elsewhere(throughput, page.finished)
    if elsewhere:
        note = f"{note or ''} {elsewhere}".strip()
        page.summary.append(elsewhere)
    page.template.update(throughput=_throughput_table(throughput), throughput_note=note)


# --- trajectories on the test functions ----------------------------------------------------------------------------

def _measure_trajectories(measuring):
    runs = measuring.runs
    return measure.trajectory_data(sorted(set(runs.loc[runs["status"] != "failed", "rule"])))


def _trajectories_problem(content):
    if not (_has(content, "functions", "paths") and isinstance(content["functions"], list)
            and isinstance(content["paths"], list)):
        return "not functions and paths"
    for surface in content["functions"]:
        if not (_has(surface, "name", "n_steps", "xs", "ys", "values", "start", "minimum", "bounds")
                and _numeric_grid(surface["values"], (len(surface["ys"]), len(surface["xs"])))):
            return "a function's grid of values does not match its coordinates"
    for path in content["paths"]:
        if not (_has(path, "function", "rule", "lr", "step", "x", "y")
                and len(path["step"]) == len(path["x"]) == len(path["y"])):
            return "a path's steps and coordinates differ in length"
    return None


def _draw_trajectories(page, data):
    """The stored paths over the test functions' contours, and which compared rules have none."""
    page.say("figures: trajectories and loss landscapes (as stored)")
    if data is None:
        page.lack("Trajectories on the test functions", "fastgd compare stores them")
        return
    page.draw(figures.draw_trajectories, data, page.out_dir)
    lacking = figures.rules_in(set(page.finished["rule"]) - {path["rule"] for path in data["paths"]})
    if lacking:
        page.lack(f"Trajectories of {', '.join(lacking)}", "fastgd compare stores them (given the plugins of their "
                  "rules)")


# --- paths over the cost surface of a two-parameter model (the lecture's linear regression) -----------------------

def _measure_parameter_paths(measuring, dataset):
    return measure.parameter_paths(measuring.config, dataset, measuring.runs)


def _draw_parameter_paths(page, stored):
    """The paths over each compared data set's cost surface that has one (a model of two parameters)."""
    names = sorted(page.finished["dataset"].unique())
    paths = {name: stored[name] for name in names if name in stored}
    if paths:
        page.draw(figures.draw_parameter_paths, paths, page.out_dir)


# --- a loss landscape for each data set ----------------------------------------------------------------------------

def _measure_landscape(measuring, dataset):
    """A data set's loss landscape (:func:`fastgd.sweep.measure.dataset_landscape`); None, keeping the one the store
    holds, where that one was made of the same data, network and training (:func:`fastgd.sweep.measure.
    landscape_is_current`): a landscape depends on no run, and a comparison against the stored baselines (whose
    store holds theirs) would otherwise train the suite's CNNs again for minutes."""
    stored = (measuring.artefacts or {}).get(landscape_artefact(dataset))
    if stored is not None and measure.landscape_is_current(stored["content"], measuring.config, dataset):
        return None
    return measure.dataset_landscape(measuring.config, dataset)


def _landscape_problem(content):
    if not (_has(content, "alphas", "line", "grid_alphas", "grid_betas", "plane")
            and _numeric_grid(content["line"], (len(content["alphas"]),))
            and _numeric_grid(content["plane"], (len(content["grid_betas"]), len(content["grid_alphas"])))):
        return "its losses do not match its coordinates"
    return None


def _draw_landscapes(page, stored):
    """One figure of the landscapes of the compared data sets, and which of them have none."""
    names = sorted(page.finished["dataset"].unique())
    landscapes = {name: stored[name] for name in names if name in stored}
    if landscapes:
        page.draw(figures.draw_landscapes, landscapes, page.out_dir)
    lacking = [name for name in names if name not in landscapes]
    if lacking:
        page.lack(f"Loss landscape of {', '.join(lacking)}",
                  "fastgd compare stores one for each data set of its configuration")


# --- the asv history over commits ----------------------------------------------------------------------------------

def _measure_history(measuring):
    from fastgd.report.history import load_history

    if measuring.asv_results is None:
        return None
    history = load_history(measuring.asv_results)
    return {"source": str(measuring.asv_results), "records": history.to_dict(orient="records")}


def _history_from_artefact(artefact):
    import pandas as pd

    return pd.DataFrame(artefact["content"]["records"]), artefact["content"]["source"]


def _history_problem(content):
    if not (_has(content, "source", "records") and isinstance(content["records"], list) and all(
            _has(row, "commit", "commit_order", "benchmark", "relative") for row in content["records"])):
        return "not an asv history"
    return None


def _draw_history(page, stored):
    """The asv results over commits ((history, where it was read) or None), and a line on what was found."""
    if stored is None:
        note = "No asv history in this store (fastgd compare --asv-results .asv/results stores it; " \
               "fastgd report --asv-results .asv/results draws it from the files)."
    else:
        history, source = stored
        if not history.empty:
            page.draw(figures.draw_history, history, page.out_dir)
            note = f"{history['commit'].nunique()} commits with asv results in {source}."
        else:
            note = f"No asv results found in {source}."
    page.template["history_note"] = note


# --- gradient checks, the machine, the data sets -------------------------------------------------------------------

def _gradient_checks_problem(content):
    if not (isinstance(content, list) and all(
            _has(row, "activation", "output", "loss", "max_relative_error", "where", "passed")
            and isinstance(row["max_relative_error"], (int, float)) for row in content)):
        return "not rows of gradient checks"
    return None


def _draw_gradient_checks(page, checks):
    """The checks' rows for the page's table (None: the page says they are not in the store)."""
    if checks is None:
        page.lack("Gradient checks", "fastgd compare stores them")
    page.template["checks"] = checks


def _machine_problem(content):
    return None if isinstance(content, dict) else "not a table of facts"


def _draw_machine(page, stored):
    """The machine section: the description ``fastgd compare`` stored (``stored``: the artefact, with when it was
    made), and what the sweep's runs were made with (its row's provenance); nothing of the machine rendering the
    report."""
    if stored is None:
        page.lack("Machine description", "fastgd compare stores it")
    facts = dict(stored["content"]) if stored is not None else {}
    if stored is not None:
        facts["described_at"] = stored["made_at"]
    store_provenance = page.sweeps["provenance"].iloc[-1] if len(page.sweeps) else {}
    if store_provenance:
        facts["sweep_made_with"] = ", ".join(f"{k} {store_provenance.get(k)}" for k in
                                             ("fastgd", "git_commit", "numba", "numpy") if store_provenance.get(k))
    page.template["machine"] = facts


def _datasets_problem(content):
    if not (isinstance(content, dict) and all(_has(row, "source", "task", "content_hash", "target_loss")
                                              for row in content.values())):
        return "not descriptions of data sets"
    return None


def _draw_datasets(page, described):
    """One row per data set of the compared runs: what :func:`fastgd.sweep.measure.record_datasets` stored of it,
    else what the store's runs and sweep configurations say (a store of ``run_sweep`` from Python, or of an older
    fastgd)."""
    runs, sweeps, described = page.compared, page.sweeps, described or {}
    tables = {}
    for config in sweeps["config"] if len(sweeps) else ():
        if isinstance(config, dict) and isinstance(config.get("datasets"), dict):
            tables.update({name: table for name, table in config["datasets"].items() if isinstance(table, dict)})
    rows = []
    for name, group in runs.groupby("dataset", sort=True):
        hashes = sorted({value for value in group.get("data_hash", ()) if isinstance(value, str) and value})
        targets = sorted(set(group["target_loss"].dropna())) if "target_loss" in group else []
        dtypes = ", ".join(sorted(set(group["dtype"].dropna()))) if "dtype" in group else ""
        row = described.get(name)
        if row is not None:
            rows.append([name, row["source"], row.get("target_column") or "–", row["task"], _models_of(group, row),
                         dtypes or "not recorded", f"{row.get('rows_train', '?')} + {row.get('rows_test', '?')}",
                         str(row.get("columns", "?")),
                         ", ".join(value[:16] for value in hashes) or row["content_hash"][:16],
                         row.get("target_loss_chosen") or f"{row['target_loss']:g}"])
            continue
        table = tables.get(name, {})
        source = table.get("path") or table.get("loader") or f"{name} (a data set fastgd knows by name)"
        rows.append([name, str(source), str(table.get("target", "–")), str(table.get("task") or "–"),
                     _models_of(group, None), dtypes or "not recorded", "not recorded", "not recorded",
                     ", ".join(value[:16] for value in hashes) or "not recorded",
                     ", ".join(f"{value:g}" for value in targets) + " (how it was chosen is not recorded)"])
    page.template["data"] = {"columns": ["data set", "source", "target column", "task", "model (parameters)", "dtype",
                                         "rows (training + test)", "columns", "content hash (SHA-256, first 16)",
                                         "target training loss"],
                             "rows": rows, "text": 6}


def _models_of(runs, described):
    """The models of one data set's runs in words: its description's (with the parameter count) where the runs
    trained that one, else what each run's columns say (:func:`fastgd.sweep.config.model_description`)."""
    from fastgd.sweep.config import model_description

    columns = {"n_features": None if described is None else described.get("columns"),
               "n_outputs": None if described is None else described.get("outputs")}
    if not {"hidden_layer_sizes", "activation", "alpha"} <= set(runs):
        return "not recorded"
    names = set()
    for model, hidden, activation, alpha in zip(runs["model"] if "model" in runs else [None] * len(runs),
                                                runs["hidden_layer_sizes"], runs["activation"], runs["alpha"]):
        declared = model if isinstance(model, str) and model else None
        hidden = hidden if isinstance(hidden, (list, tuple)) else json.loads(hidden)
        names.add(model_description(declared, hidden, activation, alpha, **columns))
    if described is not None and described.get("model") in names and len(names) == 1:
        return f"{described['model']} ({described['parameters']:,} parameters)" \
            if isinstance(described.get("parameters"), int) else described["model"]
    return "; ".join(sorted(names)) + " (parameters not recorded)"


# The report's stored sections, in the page's order (figures, then lines on what is missing, in this order).
SECTIONS = [
    Section(THROUGHPUT, measure=_throughput_content, problem=_throughput_problem, draw=_draw_throughput,
            read=_throughput_from_artefact),
    Section(TRAJECTORIES, measure=_measure_trajectories, problem=_trajectories_problem, draw=_draw_trajectories,
            measuring="trajectories on the test functions"),
    Section(PARAMETER_PATHS, measure=_measure_parameter_paths, problem=_trajectories_problem,
            draw=_draw_parameter_paths, per_dataset=True, measuring="paths over the cost surface"),
    Section(LANDSCAPE, measure=lambda measuring, dataset: _measure_landscape(measuring, dataset),
            problem=_landscape_problem, draw=_draw_landscapes, per_dataset=True, measuring="loss landscape"),
    Section(HISTORY, measure=_measure_history, problem=_history_problem, draw=_draw_history,
            read=_history_from_artefact),
    Section(GRADIENT_CHECKS, measure=lambda measuring: measure.gradient_checks(), problem=_gradient_checks_problem,
            draw=_draw_gradient_checks, measuring="gradient checks"),
    Section(MACHINE, measure=lambda measuring: measure.describe_machine(), problem=_machine_problem,
            draw=_draw_machine, read=lambda artefact: artefact),
    # stored by fastgd.sweep.measure.record_datasets before a sweep runs: a sweep stopped early says what it ran on
    Section(DATASETS, problem=_datasets_problem, draw=_draw_datasets),
]


def section_of(name):
    """The section of :data:`SECTIONS` whose artefact ``name`` is, or None."""
    return next((section for section in SECTIONS if section.owns(name)), None)


def record_artefacts(store, config=None, throughput=None, asv_results=None, progress=None, sections=None):
    """Measure what the report shows besides the runs and store it in ``store``, replacing what it held: every
    section of :data:`SECTIONS` with a ``measure``, in order (``sections``: only those of these names).

    ``config``: the sweep's :class:`fastgd.sweep.SweepConfig`, whose data sets
    each get their artefact of a per-data-set section (a loss landscape: its
    network as the sweep trains it); without one, none. ``throughput``:
    :func:`fastgd.baselines.throughput.measure`'s dict, stored as it is (without
    it, the throughput stored before stays). ``asv_results``: a directory
    whose history summary is stored. Trajectories are made for every rule of
    the store's runs that is registered here.
    """
    from fastgd.machine import provenance
    from fastgd.sweep.store import Store

    say = progress or (lambda message: None)
    made_by = provenance()
    with Store(store) as opened:
        measuring = Measuring(opened.runs_frame(), config, throughput, asv_results, opened.artefacts())
        for section in SECTIONS:
            if section.measure is None or (sections is not None and section.name not in sections):
                continue
            if section.per_dataset:
                for dataset in config.datasets if config is not None else ():
                    say(f"{section.measuring} on {dataset}")
                    content = section.measure(measuring, dataset)
                    if content is not None:  # None: nothing to measure there (paths of a model not of two parameters)
                        opened.put_artefact(section.artefact(dataset), content, made_by)
                continue
            if section.measuring:
                say(section.measuring)
            content = section.measure(measuring)
            if content is not None:
                opened.put_artefact(section.name, content, made_by)


def artefact_problem(name, content):
    """Why the stored artefact ``name`` cannot be drawn (what a damaged or hand-edited store may hold), or None;
    an artefact of no section of :data:`SECTIONS` is not drawn, so not checked."""
    section = section_of(name)
    if section is None:
        return None
    try:
        return section.problem(content)
    except (TypeError, ValueError, AttributeError):
        return "values of the wrong kind"


def check_artefacts(artefacts, store):
    """ValueError in one line naming the first stored artefact (:meth:`Store.artefacts`) that cannot be drawn."""
    for name, artefact in artefacts.items():
        problem = artefact_problem(name, artefact["content"])
        if problem:
            raise ValueError(f"the store {store} is damaged: its artefact {name!r} holds {problem}")
