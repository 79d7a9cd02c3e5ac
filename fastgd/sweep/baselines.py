"""Stored baselines: every built-in rule on the test-problem suite, trained once and kept, so that a new rule is
trained alone and compared with them (DeepOBS's published baselines, made on the user's machine).

``fastgd baselines`` (:func:`build`) runs the ``suite`` preset (:mod:`fastgd.problems`: every problem of the
small set, every built-in rule, the small tuning budget, ten seeds) into the baseline store, by default
:func:`default_path` (``FASTGD_BASELINES``, else ``fastgd/baselines.db`` in the user's cache directory). It
resumes where it stopped, as every sweep does.

``fastgd compare --preset suite --plugin my_rules.py --against-baselines`` (:func:`seed_store`) starts the
comparison's store as a copy of the baseline store: a store already holds the runs it would train, by run id
(the rule's definition, the data's content, the problem and every setting), so only the user's rules train; the
report draws them beside the stored runs. A built-in rule whose definition changed since the baselines were
built, or a configuration that is not the one they were built with, has new run ids and trains here:
:func:`coverage` counts how many of a configuration's runs the baselines hold.

Epochs and losses compare across machines; seconds do not. The copied runs keep their provenance (the machine
and commit that made them, :func:`fastgd.machine.provenance`), and the report says where runs of several
machines are mixed (:func:`fastgd.sweep.metrics.mixed_provenance`) and keeps them apart in its timings.
Baseline stores built on several machines merge (``fastgd merge``), each run kept once.
"""

import os
import sqlite3
import sys

from fastgd.sweep import plan
from fastgd.sweep.store import Store, StoreError, check_store_path, new_store_file

__all__ = ["SUITE_PRESET", "default_path", "build", "check_available", "seed_store", "coverage"]

# the preset the baselines are built with: every problem of the small set, every built-in rule
SUITE_PRESET = "suite"


def default_path():
    """Where the baseline store lives: ``FASTGD_BASELINES``, else ``fastgd/baselines.db`` under the user's cache
    directory (``$XDG_CACHE_HOME`` or ``~/.cache``; ``%LOCALAPPDATA%`` on Windows)."""
    explicit = os.environ.get("FASTGD_BASELINES")
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastgd", "baselines.db")


def build(path=None, jobs=None, progress=True, config=None, problems=None):
    """Train the baselines into ``path`` (default :func:`default_path`), resuming a build that stopped; returns the
    :class:`fastgd.sweep.SweepOutcome`. ``problems``: those of the suite alone (names; every one by default);
    ``config``: another configuration than the ``suite`` preset (tests)."""
    from fastgd.sweep.config import load_preset
    from fastgd.sweep.runner import run_sweep

    config = config or load_preset(SUITE_PRESET, problem_names=problems)
    path = path or default_path()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return run_sweep(config, path, jobs=jobs, progress=progress)


def check_available(path=None):
    """The baseline store's path, or a one-line :class:`StoreError` saying how to build it where it is missing or
    holds no runs."""
    path = path or default_path()
    if not os.path.exists(path):
        raise StoreError(f"no baseline store at {path}: build it once with `fastgd baselines` (every built-in rule "
                         "on the test-problem suite; it resumes if stopped), or name one with --against-baselines "
                         "PATH")
    check_store_path(path, "r")
    with Store(path, "r") as store:
        if not store.run_ids():
            raise StoreError(f"the baseline store {path} holds no runs: build it with `fastgd baselines`")
    return path


def seed_store(baseline_path, store_path):
    """Start the store at ``store_path`` as a copy of the baseline store (same schema, every run, curve, sweep and
    artefact); a store that exists already is left as it is (a comparison resumed). Returns the number of runs
    copied (0 when it existed)."""
    baseline_path = check_available(baseline_path)
    if os.path.exists(store_path):
        check_store_path(store_path, "w")
        return 0
    check_store_path(store_path, "w")
    with new_store_file(store_path, "seeding", f"{store_path} appeared while the baselines were copied into it: "
                                               "run again") as temporary:
        source = sqlite3.connect(f"file:{baseline_path}?mode=ro", uri=True)
        target = sqlite3.connect(temporary)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one file to link
        finally:
            target.close()
            source.close()
        with Store(temporary) as store:  # an older baseline store is upgraded here, not in the user's copy
            copied = len(store.run_ids())
    return copied


def coverage(config, baseline_path, rules=None):
    """``(held, planned)``: how many runs of ``config`` the baseline store holds, of those it plans before its
    trials are scored (the grid's runs, or the tuning trials), for ``rules`` (default: the configuration's)."""
    specs = [spec for spec in plan.runs(config) if rules is None or spec.rule in rules]
    with Store(check_available(baseline_path), "r") as store:
        held = store.run_ids()
    return sum(spec.run_id in held for spec in specs), len(specs)
