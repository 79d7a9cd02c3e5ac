"""Sweeps under hostile conditions: a shared store, too many workers, a full disk, bad settings, a scheduler
that is not one. Each ends in one clear line before anything is created or changed, or in correct behaviour.
"""

import sqlite3
import tomllib

import pytest

from cli_harness import assert_refused, run_command, snapshot
from fastgd import sweep
from fastgd.sweep import runner

TINY = """
name = "{name}"
datasets = ["iris"]
rules = ["sgd"]
learning_rates = [0.1]
seeds = {seeds}
epochs = 2

[model]
hidden_layer_sizes = [4]

[targets]
iris = 0.5
"""


def tiny(name="tiny", seeds=(0,)):
    return sweep.parse(tomllib.loads(TINY.format(name=name, seeds=list(seeds))))


# -- 4. --retry-failed in a shared store ------------------------------------------------------

def test_retry_failed_runs_again_only_the_failed_runs_this_sweep_plans(tmp_path, monkeypatch):
    store = tmp_path / "shared.db"
    trained = runner._train_alone

    def failing(spec, net, data, optimizer):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(runner, "_train_alone", failing)
    mine, theirs = tiny("mine", seeds=[0]), tiny("theirs", seeds=[1])
    for config in (mine, theirs):
        assert sweep.run_sweep(config, store, jobs=1, batched=False, progress=False).failed == 1
    monkeypatch.setattr(runner, "_train_alone", trained)
    retried = sweep.run_sweep(mine, store, jobs=1, batched=False, progress=False, retry_failed=True)
    assert (retried.stored, retried.failed) == (1, 0)
    runs = sweep.load_runs(store).set_index("seed")
    assert runs.loc[0, "status"] == "ok"
    # the other sweep's failure is its own to retry: still stored, with its error
    assert runs.loc[1, "status"] == "failed" and runs.loc[1, "error"] == "RuntimeError: injected failure"
