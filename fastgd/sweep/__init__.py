"""Sweeps: every rule over data sets, learning rates, batch sizes and seeds, into a SQLite store.

    >>> from fastgd import sweep                                   # doctest: +SKIP
    >>> outcome = sweep.run_sweep(sweep.load_preset("quick"), "results.db")
    >>> runs = sweep.load_runs("results.db")                       # a pandas DataFrame, one row per run

From the command line: ``fastgd sweep --preset quick --store results.db``. A configuration with a
``[tuning]`` table (the ``paper`` preset) tunes each rule on a validation split and runs its best setting
again with ten seeds (:mod:`fastgd.sweep.plan`).
"""

from fastgd.sweep.config import PRESETS, SweepConfig, SweepConfigError, Tuning, load_config, load_preset, parse
from fastgd.sweep.plan import RunSpec, runs
from fastgd.sweep.metrics import performance_profile, summarize, best_runs
from fastgd.sweep.runner import SweepError, SweepOutcome, execute_chunk, run_sweep
from fastgd.sweep.store import Store, StoreError, load_curves, load_runs

__all__ = ["PRESETS", "RunSpec", "SweepConfig", "SweepConfigError", "Tuning", "load_config", "load_preset", "parse",
           "runs", "performance_profile", "summarize", "best_runs", "SweepError", "SweepOutcome", "execute_chunk",
           "run_sweep",
           "Store", "StoreError", "load_curves", "load_runs"]
