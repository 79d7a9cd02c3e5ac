"""Sweeps: configuration errors, the store, batched against one-at-a-time, resuming, SIGKILL, Dask."""

import fcntl
import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from fastgd import machine, optim, rules, sweep
from fastgd.sweep import runner
from fastgd.sweep.progress import Progress
from fastgd.sweep.store import PROTOCOL_COLUMNS, SCHEMA_VERSION

SMALL = """
name = "small"
datasets = ["iris", "diabetes"]
rules = ["sgd", "adam", "nadam", "rmsprop"]
learning_rates = [0.01, 0.1, 30.0]
batch_sizes = [16, "full"]
seeds = [0, 1]
epochs = 6

[model]
hidden_layer_sizes = [8]
activation = "tanh"

[targets]
iris = 0.5
diabetes = 0.4

[hyperparameters.rmsprop]
centered = [false, true]
"""


def config(text=SMALL, **replace):
    import tomllib

    raw = tomllib.loads(text)
    raw.update(replace)
    return sweep.parse(raw)


def fastgd_command(*arguments, **kwargs):
    return subprocess.run([sys.executable, "-m", "fastgd.cli", *arguments], capture_output=True, text=True,
                          timeout=600, **kwargs)


def comparable(frame):
    """What must not depend on how the runs were executed."""
    columns = ["run_id", "status", "final_loss", "best_loss", "test_metric", "epochs_run", "diverged_epoch",
               "epochs_to_target"]
    return frame[columns].sort_values("run_id").reset_index(drop=True)


# -- configuration ----------------------------------------------------------------------------

def test_presets_parse_and_cover_every_rule():
    for name in sweep.PRESETS:
        preset = sweep.load_preset(name)
        if name == "lecture":  # make demo's: the lecture's rules, as the default preset runs every rule
            assert set(preset.rules) == {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam",
                                         "amsgrad", "adamax", "nadam"}  # the lecture's, as FORMULAS.md lists them
            default = sweep.load_preset("default")
            assert (preset.datasets, preset.tuning, preset.targets, preset.hidden_layer_sizes, preset.n_epochs) == (
                default.datasets, default.tuning, default.targets, default.hidden_layer_sizes, default.n_epochs)
            continue
        assert set(preset.rules) == set(optim.OPTIMIZERS)
    default = sweep.load_preset("default")
    assert set(default.datasets) >= {"iris", "wine", "breast_cancer", "digits", "diabetes"}
    # the tuning protocol on the small budget: every rule tuned, then ten seeds of its best trial
    assert default.tuning.budget == "small" and default.tuning.final_seeds == 10


def test_runs_expand_the_grid_with_stable_ids():
    small = config()
    specs = sweep.runs(small)
    # 2 data sets x (3 rules + rmsprop x 2 centered) x 3 rates x 2 batch sizes x 2 seeds
    assert len(specs) == 2 * 5 * 3 * 2 * 2
    assert len({spec.run_id for spec in specs}) == len(specs)
    assert [spec.run_id for spec in sweep.runs(config())] == [spec.run_id for spec in specs]


@pytest.mark.parametrize("replace, message", [
    (dict(rules=["adam", "adamm"]), "unknown rule 'adamm'"),
    (dict(learning_rates=[0.1, -0.01]), "learning rates, got -0.01"),
    (dict(learning_rates=[0.1, "fast"]), "learning rates, got 'fast'"),
    (dict(learning_rates=[0.1, float("inf")]), "learning rates, got inf"),
    (dict(learning_rates=[0.1, float("nan")]), "learning rates, got nan"),
    (dict(datasets=["iris", "mnist"]), "unknown dataset 'mnist'"),
    (dict(epochs=0), "'epochs' must be an integer from 1 to"),
    (dict(epochs=10 ** 9), "'epochs' must be an integer from 1 to 100000"),
    (dict(batch_sizes=[0]), "'batch_sizes' must be a non-empty list of batch sizes"),
    (dict(batch_sizes=[2 ** 40]), "'batch_sizes' must be a non-empty list of batch sizes"),
    (dict(targets={"iris": 0.5}), "[targets] needs a positive finite target training loss for 'diabetes'"),
    (dict(targets={"iris": 0.5, "diabetes": float("inf")}), "target training loss for 'diabetes', got inf"),
    (dict(targets={"iris": 0.5, "diabetes": float("nan")}), "target training loss for 'diabetes', got nan"),
    (dict(targets={"iris": 0.5, "diabetes": 0.4, "wine": 0.1}), "[targets] has 'wine', which is not in 'datasets'"),
    (dict(model={"hidden_layer_sizes": [8], "activation": "softmax"}), "[model] activation must be one of"),
    (dict(model={"hidden_layer_sizes": [10 ** 9, 10 ** 9]}), "GiB to train; this machine has"),
    (dict(colour="blue"), "unknown key 'colour'"),
    (dict(name=7), "'name' must be a non-empty line of text"),
    (dict(hyperparameters={"adam": {"betas": [[0.9, 1.5]]}}), "Invalid beta parameter at index 1: 1.5"),
    (dict(hyperparameters={"adam": {"momentum": [0.9]}}), "rule 'adam' has no hyperparameter 'momentum'"),
    (dict(hyperparameters={"adamm": {"eps": [0.1]}}), "unknown rule 'adamm'"),
    (dict(hyperparameters={"adam": {"weight_decay": [float("inf")]}}), "weight_decay must hold finite numbers"),
    # a grid for a rule the sweep does not run would be ignored
    (dict(hyperparameters={"adamw": {"eps": [0.1]}}), "[hyperparameters.adamw] is for a rule not in 'rules'"),
    # repeated values would define the same runs twice
    (dict(rules=["sgd", "adam", "sgd"]), "'rules' lists 'sgd' twice"),
    (dict(learning_rates=[0.1, 1e-1]), "'learning_rates' lists 0.1 twice"),
    (dict(seeds=[0, 1, 0]), "'seeds' lists 0 twice"),
    (dict(batch_sizes=["full", "full"]), "'batch_sizes' lists 'full' twice"),
    (dict(datasets=["iris", "iris"], targets={"iris": 0.5}), "'datasets' lists 'iris' twice"),
    (dict(hyperparameters={"rmsprop": {"centered": [True, True]}}), "centered' lists True twice"),
    # seeds go to NumPy's RandomState
    (dict(seeds=[0, 2 ** 32]), "integer seeds from 0 to 4294967295, got 4294967296"),
    (dict(seeds=[-1]), "integer seeds from 0 to 4294967295, got -1"),
    # names that parse but could not run
    (dict(datasets=["synthetic-classification-0x5"], targets={"synthetic-classification-0x5": 0.1}),
     "needs n_samples >= 8, got 0"),
    (dict(datasets=["synthetic-classification-100x1"], targets={"synthetic-classification-100x1": 0.1}),
     "needs n_features >= 2, got 1"),
    (dict(datasets=["synthetic-regression-99999999999x99999"],
          targets={"synthetic-regression-99999999999x99999": 0.1}), "GiB to make; this machine has"),
    (dict(datasets=["synthetic-regression-010x5"], targets={"synthetic-regression-010x5": 0.1}),
     "without leading zeros"),
])
def test_bad_configurations_are_refused(replace, message):
    with pytest.raises(sweep.SweepConfigError) as error:
        config(**replace)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("text, message", [
    ('datasets = ["iris"]\nrules = ["adamm"]\nlearning_rates=[0.1]\nseeds=[0]\nepochs=1\n[targets]\niris=0.1\n',
     "unknown rule 'adamm'"),
    ('datasets = ["iris"]\nlearning_rates=[-0.1]\nseeds=[0]\nepochs=1\n[targets]\niris=0.1\n', "learning rates"),
    ('datasets = ["imagenet"]\nlearning_rates=[0.1]\nseeds=[0]\nepochs=1\n[targets]\nimagenet=0.1\n',
     "unknown dataset 'imagenet'"),
    ('datasets = ["iris"\nepochs = ', "is not valid TOML"),
])
def test_command_line_refuses_bad_configuration_with_one_line_before_running(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    store = tmp_path / "results.db"
    result = fastgd_command("sweep", str(path), "--store", str(store))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastgd sweep: error:") and message in lines[0]
    assert not store.exists()


def test_command_line_refuses_missing_file_and_bad_jobs(tmp_path):
    result = fastgd_command("sweep", str(tmp_path / "missing.toml"), "--store", str(tmp_path / "r.db"))
    assert result.returncode == 2 and "no such configuration file" in result.stderr
    result = fastgd_command("sweep", "--preset", "quick", "--store", str(tmp_path / "r.db"), "--jobs", "0")
    assert result.returncode == 2 and "expected a positive integer" in result.stderr


# -- running and storing ----------------------------------------------------------------------

def test_batched_runs_give_the_numbers_of_runs_trained_one_at_a_time(tmp_path):
    small = config()
    sweep.run_sweep(small, tmp_path / "batched.db", jobs=1, progress=False)
    sweep.run_sweep(small, tmp_path / "alone.db", jobs=1, batched=False, progress=False)
    batched, alone = sweep.load_runs(tmp_path / "batched.db"), sweep.load_runs(tmp_path / "alone.db")
    assert len(batched) == len(sweep.runs(small))
    pd.testing.assert_frame_equal(comparable(batched), comparable(alone))
    curves_batched = sweep.load_curves(tmp_path / "batched.db").sort_values(["run_id", "epoch"])
    curves_alone = sweep.load_curves(tmp_path / "alone.db").sort_values(["run_id", "epoch"])
    np.testing.assert_array_equal(curves_batched["loss"].to_numpy(), curves_alone["loss"].to_numpy())
    # the grid includes a learning rate of 30: some runs diverge, and say when
    diverged = batched[batched["status"] == "diverged"]
    assert len(diverged) > 0 and diverged["diverged_epoch"].notna().all() and diverged["final_loss"].isna().all()
    assert set(batched["status"]) <= {"ok", "diverged"}


def test_stored_run_matches_training_it_directly(tmp_path):
    from fastgd import MLP
    from fastgd.datasets import load as load_dataset
    from fastgd.training import Training

    small = config()
    sweep.run_sweep(small, tmp_path / "r.db", jobs=1, progress=False)
    runs = sweep.load_runs(tmp_path / "r.db").set_index("run_id")
    spec = next(s for s in sweep.runs(small) if s.rule == "nadam" and s.batch_size == 16 and s.learning_rate == 0.1)
    data = load_dataset(spec.dataset)
    net = MLP([data.n_features, 8, data.n_outputs], "tanh", data.output, 1e-4)
    training = Training(net, optim.NAdam(net.init(random_state=spec.seed), lr=0.1), data.X_train, data.Y_train,
                        16, seed=spec.seed)
    history = training.run(spec.n_epochs)
    assert runs.loc[spec.run_id, "final_loss"] == history.loss[-1]
    assert runs.loc[spec.run_id, "best_loss"] == min(history.loss)


def test_metrics_units_and_provenance_are_stored(tmp_path):
    small = config()
    sweep.run_sweep(small, tmp_path / "r.db", jobs=1, progress=False)
    runs = sweep.load_runs(tmp_path / "r.db")
    ok = runs[runs["status"] == "ok"]
    assert set(ok.loc[ok["dataset"] == "iris", "test_metric_name"]) == {"accuracy"}
    assert set(ok.loc[ok["dataset"] == "diabetes", "test_metric_name"]) == {"r2"}
    reached = ok.dropna(subset=["epochs_to_target"])
    assert len(reached) > 0 and (reached["best_loss"] <= reached["target_loss"]).all()
    assert (reached["seconds_to_target"] <= reached["train_seconds"]).all()
    with sweep.Store(tmp_path / "r.db") as store:
        provenance = store.sweeps_frame()["provenance"].iloc[0]
        assert store.integrity_check() == "ok"
    assert {"fastgd", "git_commit", "numba", "numpy", "cpu", "threading_layer", "device"} <= set(provenance)


def test_each_run_row_says_what_made_it(tmp_path):
    import numba

    import fastgd

    one_run = config(datasets=["iris"], rules=["sgd", "adam"], learning_rates=[0.1], batch_sizes=[16], seeds=[0],
                     targets={"iris": 0.5}, hyperparameters={})
    sweep.run_sweep(one_run, tmp_path / "r.db", jobs=1, progress=False)
    runs = sweep.load_runs(tmp_path / "r.db")
    made = machine.provenance()
    assert len(runs) == 2
    assert set(runs["fastgd_version"]) == {fastgd.__version__} and set(runs["numba_version"]) == {numba.__version__}
    assert set(runs["numpy_version"]) == {np.__version__} and set(runs["git_commit"]) == {made["git_commit"]}
    assert set(runs["cpu"]) == {made["cpu"]} and set(runs["cpu_count"]) == {os.cpu_count()}
    assert runs["numba_threads"].between(1, os.cpu_count()).all()
    # stored as the worker process had them, not copied from the sweep's row
    with sqlite3.connect(tmp_path / "r.db") as connection:
        stored = connection.execute("SELECT cpu, cpu_count, numba_threads FROM runs").fetchall()
    connection.close()
    assert all(cpu == made["cpu"] and isinstance(cores, int) and isinstance(threads, int)
               for cpu, cores, threads in stored)


def test_failing_run_is_stored_as_failed_and_the_sweep_goes_on(tmp_path, monkeypatch):
    original = runner._train_alone

    def fails_for_adam(spec, net, data, optimizer):
        if spec.rule == "adam":
            raise RuntimeError("injected failure")
        return original(spec, net, data, optimizer)

    monkeypatch.setattr(runner, "_train_alone", fails_for_adam)
    outcome = sweep.run_sweep(config(), tmp_path / "r.db", jobs=1, batched=False, progress=False)
    runs = sweep.load_runs(tmp_path / "r.db")
    failed = runs[runs["status"] == "failed"]
    assert set(failed["rule"]) == {"adam"} and outcome.failed == len(failed) > 0
    assert (failed["error"] == "RuntimeError: injected failure").all()
    assert (runs.loc[runs["rule"] != "adam", "status"] != "failed").all()
    # running again skips everything stored, failures too, unless asked to retry them
    monkeypatch.setattr(runner, "_train_alone", original)
    again = sweep.run_sweep(config(), tmp_path / "r.db", jobs=1, batched=False, progress=False)
    assert again.stored == 0 and again.skipped == again.total
    retried = sweep.run_sweep(config(), tmp_path / "r.db", jobs=1, batched=False, progress=False, retry_failed=True)
    assert retried.stored == len(failed) and retried.failed == 0


def test_resuming_runs_only_what_is_missing(tmp_path):
    one_seed = config(seeds=[0])
    first = sweep.run_sweep(one_seed, tmp_path / "r.db", jobs=1, progress=False)
    second = sweep.run_sweep(config(), tmp_path / "r.db", jobs=1, progress=False)
    assert second.skipped == first.stored and second.stored == second.total - first.stored
    runs = sweep.load_runs(tmp_path / "r.db")
    assert len(runs) == len(sweep.runs(config())) and runs["run_id"].is_unique


def test_local_worker_processes_store_the_same_results(tmp_path):
    small = config(datasets=["iris"], targets={"iris": 0.5})
    sweep.run_sweep(small, tmp_path / "one.db", jobs=1, progress=False)
    sweep.run_sweep(small, tmp_path / "two.db", jobs=2, progress=False, chunk_size=8)
    pd.testing.assert_frame_equal(comparable(sweep.load_runs(tmp_path / "one.db")),
                                  comparable(sweep.load_runs(tmp_path / "two.db")))


def test_chunks_come_largest_first_and_a_group_with_most_of_the_work_is_cut_for_the_workers():
    config = sweep.parse(dict(problems=["lecture_linreg", "digits_cnn"], rules=["sgd", "adam"],
                              tuning={"budget": "small"}))
    specs = sweep.runs(config)  # 8 trials of each rule on each problem
    work = runner.run_work(config, specs)
    heavy = {spec.run_id for spec in specs if spec.dataset == "digits_cnn"}
    assert min(work[run] for run in heavy) > 100 * max(work[spec.run_id] for spec in specs if spec.run_id not in heavy)
    one_each = runner.chunks_of(specs)  # without the work: a chunk per group and rule, in the plan's order
    assert [(chunk[0].dataset, chunk[0].rule, len(chunk)) for chunk in one_each] == [
        ("lecture_linreg", "sgd", 8), ("lecture_linreg", "adam", 8), ("digits_cnn", "sgd", 8),
        ("digits_cnn", "adam", 8)]
    assert runner.chunks_of(specs, work=work, workers=1) == one_each
    chunks = runner.chunks_of(specs, work=work, workers=2)
    assert sorted(spec.run_id for chunk in chunks for spec in chunk) == sorted(spec.run_id for spec in specs)
    assert all(len({(spec.group, spec.rule) for spec in chunk}) == 1 for chunk in chunks)
    # each rule's digits_cnn trials are half the whole: cut in two even chunks of a quarter each, which come first;
    # the linear regression's, a chunk each, after them
    assert [(chunk[0].dataset, chunk[0].rule, len(chunk)) for chunk in chunks] == [
        ("digits_cnn", "sgd", 4), ("digits_cnn", "sgd", 4), ("digits_cnn", "adam", 4), ("digits_cnn", "adam", 4),
        ("lecture_linreg", "sgd", 8), ("lecture_linreg", "adam", 8)]
    sizes = [sum(work[spec.run_id] for spec in chunk) for chunk in chunks]
    assert sizes == sorted(sizes, reverse=True)
    # at most size runs a chunk, as without the work: each group's 8 in 3, 3 and 2, the CNN's first
    assert [len(chunk) for chunk in runner.chunks_of(specs, size=3, work=work, workers=2)] == ([3] * 4 + [2] * 2) * 2


def test_the_local_workers_are_started_once_and_kept_for_the_next_phase():
    pool = runner._LocalPool()
    try:
        first = pool.executor(2)
        pids = {first.submit(os.getpid).result() for _ in range(4)}
        assert pool.executor(2) is first and first.submit(os.getpid).result() in pids and os.getpid() not in pids
        assert pool.executor(1) is not first  # another number of workers: new processes
    finally:
        pool.close()
    assert pool.pool is None


def test_sweep_killed_with_sigkill_resumes_and_stores_every_run_once(tmp_path):
    text = SMALL.replace('datasets = ["iris", "diabetes"]', 'datasets = ["digits", "iris", "diabetes"]')
    text = text.replace("epochs = 6", "epochs = 40").replace("[targets]", "[targets]\ndigits = 0.1")
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    store = tmp_path / "r.db"
    expected = len(sweep.runs(sweep.load_config(path)))
    arguments = [sys.executable, "-m", "fastgd.cli", "sweep", str(path), "--store", str(store), "--jobs", "1",
                 "--one-at-a-time", "--quiet"]
    process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stored = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if store.exists():
            with sqlite3.connect(store, timeout=30) as connection:
                try:
                    stored = connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
                except sqlite3.OperationalError:  # the schema is being created
                    stored = 0
            if stored > 0:
                break
        time.sleep(0.05)
    assert process.poll() is None, "the sweep finished before it could be killed: make it longer"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 0 < stored < expected

    result = subprocess.run(arguments, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    with sweep.Store(store) as reopened:
        assert reopened.integrity_check() == "ok"
        runs = reopened.runs_frame()
        curves = reopened.curves_frame()
    assert len(runs) == expected and runs["run_id"].is_unique
    assert (curves.groupby("run_id").size().reindex(runs["run_id"]).fillna(0).to_numpy()
            == runs["epochs_run"].to_numpy()).all()


@pytest.fixture(scope="module")
def dask_scheduler():
    """The address of a local Dask cluster of two worker processes, one thread each, shared by this module's tests."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_dask_cluster_stores_what_a_local_run_stores(tmp_path, dask_scheduler):
    small = config(datasets=["iris"], targets={"iris": 0.5})
    sweep.run_sweep(small, tmp_path / "local.db", jobs=1, progress=False)
    outcome = sweep.run_sweep(small, tmp_path / "dask.db", scheduler=dask_scheduler, progress=False, chunk_size=8)
    assert outcome.stored == len(sweep.runs(small))
    pd.testing.assert_frame_equal(comparable(sweep.load_runs(tmp_path / "local.db")),
                                  comparable(sweep.load_runs(tmp_path / "dask.db")))


GENERATED = """
name = "generated"
rules = ["adam"]
learning_rates = [0.01, 0.1]
seeds = [0, 1]
epochs = 3

[model]
hidden_layer_sizes = [8]

[datasets.blobs]
loader = "make_classification"
options = {n_samples = 200, n_features = 6, n_informative = 3, n_classes = 3}

[targets]
blobs = 0.5
"""


def test_a_generated_set_given_no_seed_is_the_same_in_every_local_worker(tmp_path):
    # each worker makes the set itself: unseeded, every worker's copy differed and every run failed its hash check
    generated = config(GENERATED)
    sweep.run_sweep(generated, tmp_path / "r.db", jobs=2, progress=False, chunk_size=1, batched=False)
    runs = sweep.load_runs(tmp_path / "r.db")
    assert len(runs) == len(sweep.runs(generated)) and set(runs["status"]) == {"ok"}


def test_a_generated_set_given_no_seed_is_the_same_in_every_dask_worker(tmp_path, dask_scheduler):
    generated = config(GENERATED)
    sweep.run_sweep(generated, tmp_path / "r.db", scheduler=dask_scheduler, progress=False, chunk_size=1,
                    batched=False)
    runs = sweep.load_runs(tmp_path / "r.db")
    assert len(runs) == len(sweep.runs(generated)) and set(runs["status"]) == {"ok"}


def test_store_refuses_another_schema_version(tmp_path):
    path = tmp_path / "r.db"
    sweep.Store(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(RuntimeError, match="schema version 99"):
        sweep.Store(path)


# -- metrics and progress ---------------------------------------------------------------------

def hand_made_runs():
    rows = []
    # data set a: fast solves in 1 s, slow in 2 s; data set b: fast in 4 s, slow never; c: nobody
    for dataset, seconds in [("a", {"fast": 1.0, "slow": 2.0}), ("b", {"fast": 4.0, "slow": None}),
                             ("c", {"fast": None, "slow": None})]:
        for rule, time_to_target in seconds.items():
            for seed in (0, 1):
                rows.append(dict(dataset=dataset, rule=rule, learning_rate=0.1, batch_size="32", hyperparameters={},
                                 seed=seed, status="ok", final_loss=0.5 + seed, best_loss=0.4, test_metric=0.9,
                                 epochs_to_target=None if time_to_target is None else 3,
                                 seconds_to_target=time_to_target))
    return pd.DataFrame(rows)


def test_summarize_gives_mean_and_spread_over_seeds():
    summary = sweep.summarize(hand_made_runs())
    row = summary[(summary["dataset"] == "a") & (summary["rule"] == "fast")].iloc[0]
    assert row["final_loss_mean"] == 1.0 and row["final_loss_std"] == pytest.approx(np.std([0.5, 1.5], ddof=1))
    assert row["n_seeds"] == 2 and row["reached_share"] == 1.0 and row["diverged_share"] == 0.0


def test_performance_profile_by_hand():
    profile = sweep.performance_profile(hand_made_runs(), taus=[1.0, 1.5, 2.0, 10.0])
    share = {(r.rule, r.tau): r.share for r in profile.itertuples()}
    # three problems; "fast" is fastest on a and b; "slow" is within 2x on a only; c counts for nobody
    assert share[("fast", 1.0)] == pytest.approx(2 / 3)
    assert share[("slow", 1.0)] == 0.0 and share[("slow", 1.5)] == 0.0
    assert share[("slow", 2.0)] == pytest.approx(1 / 3) and share[("slow", 10.0)] == pytest.approx(1 / 3)


def test_progress_draws_a_bar_on_a_terminal_and_lines_elsewhere():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal, log = Terminal(), io.StringIO()
    for stream in (terminal, log):
        progress = Progress(4, label="s", stream=stream)
        for _ in range(4):
            progress.update()
        progress.close()
    assert "\r" in terminal.getvalue() and "4/4" in terminal.getvalue() and "ETA" in terminal.getvalue()
    assert "\r" not in log.getvalue() and log.getvalue().strip().endswith("s: 4/4 done, ETA 0:00:00")


def test_quick_preset_runs_end_to_end_from_the_command_line(tmp_path):
    store = tmp_path / "quick.db"
    result = fastgd_command("sweep", "--preset", "quick", "--store", str(store), "--jobs", "1")
    assert result.returncode == 0, result.stderr
    builtin = {name for name in optim.OPTIMIZERS if rules.is_builtin(name)}
    n_runs = 8 * len(builtin)  # two data sets, four learning rates, one seed per rule
    assert f"{n_runs} new" in result.stdout
    runs = sweep.load_runs(store)
    assert set(runs["rule"]) == builtin and len(runs) == n_runs


@pytest.mark.parametrize("text", [textwrap.dedent(SMALL)])
def test_load_config_reads_a_file(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert sweep.runs(sweep.load_config(path)) == sweep.runs(config())


def test_concurrent_first_compiles_into_an_empty_cache_are_safe(tmp_path):
    # two worker processes start together on an empty Numba cache: both compile
    # and write the same cache files; the results must be those of a warm run
    small = config(datasets=["iris"], targets={"iris": 0.5}, rules=["adam", "lion"], hyperparameters={})
    sweep.run_sweep(small, tmp_path / "warm.db", jobs=1, progress=False)
    script = textwrap.dedent(f"""
        import tomllib
        from fastgd import sweep
        raw = tomllib.loads({SMALL!r})
        raw.update(datasets=["iris"], targets={{"iris": 0.5}}, rules=["adam", "lion"], hyperparameters={{}})
        sweep.run_sweep(sweep.parse(raw), {str(tmp_path / 'cold.db')!r}, jobs=2, chunk_size=4, progress=False)
    """)
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "empty-cache"))
    result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert any((tmp_path / "empty-cache").rglob("*.nbi"))
    pd.testing.assert_frame_equal(comparable(sweep.load_runs(tmp_path / "warm.db")),
                                  comparable(sweep.load_runs(tmp_path / "cold.db")))


def test_compile_lock_admits_one_process_at_a_time(tmp_path):
    # what keeps two workers from writing one cache entry's files for two signatures at once
    script = textwrap.dedent("""
        import time
        from fastgd import _config
        with _config.compile_lock():
            print(time.monotonic())
    """)
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))  # the child's lock file is tmp_path's
    with open(tmp_path / "fastgd-compile.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        child = subprocess.Popen([sys.executable, "-c", script], env=environment, stdout=subprocess.PIPE, text=True)
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=3)  # blocked on the lock this process holds
        released = time.monotonic()
        fcntl.flock(held, fcntl.LOCK_UN)
    entered = float(child.communicate(timeout=60)[0])
    assert child.returncode == 0 and entered >= released


def test_compile_for_compiles_a_signature_once():
    import numba

    from fastgd import _config

    @numba.njit
    def double(values):
        return 2 * values

    values = np.arange(3.0)
    _config.compile_for(double, (values,))
    _config.compile_for(double, (values,))
    assert list(double.overloads) == [(numba.typeof(values),)]
    np.testing.assert_array_equal(double(values), 2 * values)


def test_compile_lock_may_be_taken_inside_itself(tmp_path):
    # in a child process: a lock that is not re-entrant would hang it, not this run
    script = textwrap.dedent("""
        from fastgd import _config
        with _config.compile_lock():
            with _config.compile_lock():
                pass
            with _config.compile_lock():
                print("done")
    """)
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == "done", result.stderr[-2000:]


def test_named_compile_locks_block_the_same_name_only(tmp_path, monkeypatch):
    script = textwrap.dedent("""
        import sys, time
        from fastgd import _config
        with _config.compile_lock(sys.argv[1]):
            print(time.monotonic())
    """)
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))

    def child(name):
        return subprocess.Popen([sys.executable, "-c", script, name], env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    import numba

    from fastgd import _config

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))  # where the children's locks are
    with _config.compile_lock("rule-a"):  # in this process, as a worker compiling a rule
        same, other = child("rule-a"), child("rule-b")
        assert other.wait(timeout=60) == 0  # another name: not blocked
        with pytest.raises(subprocess.TimeoutExpired):
            same.wait(timeout=3)  # the same name: blocked until this process's compile ends
        released = time.monotonic()
    entered = float(same.communicate(timeout=60)[0])
    assert same.returncode == 0 and entered >= released


RACY_MODULE = """
import numba

@numba.njit(cache=True)
def twice(value):
    return value + value
"""

# two processes save two signatures of one function into an empty cache at the same moment; the index's
# write is slowed down (beneath fastgd's guard) so that without the guard both would read the empty index
# and number their data files alike
RACY_SAVE = """
import sys, time
import numpy as np
import fastgd._config  # noqa: F401  (guards Numba's cache)
from numba.core import caching

write_index = caching.IndexDataCacheFile._save_index

def slow_write(self, overloads):
    time.sleep(1.5)
    write_index(self, overloads)

caching.IndexDataCacheFile._save_index = slow_write
sys.path.insert(0, sys.argv[2])
import racy
print(racy.twice(np.float64(1.25)) if sys.argv[1] == "float" else racy.twice(np.int64(3)))
"""

RACY_LOAD = """
import sys
import numpy as np
import fastgd._config  # noqa: F401
sys.path.insert(0, sys.argv[1])
import racy
stats = racy.twice.stats
print(racy.twice(np.float64(1.25)), racy.twice(np.int64(3)), sum(stats.cache_hits.values()),
      sum(stats.cache_misses.values()))
"""


def test_two_signatures_saved_at_once_into_the_cache_both_load(tmp_path):
    (tmp_path / "racy.py").write_text(RACY_MODULE)
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    savers = [subprocess.Popen([sys.executable, "-c", RACY_SAVE, kind, str(tmp_path)], env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for kind in ("float", "int")]
    outputs = [saver.communicate(timeout=120) for saver in savers]
    assert [saver.returncode for saver in savers] == [0, 0], [error[-2000:] for _, error in outputs]
    assert [output.strip() for output, _ in outputs] == ["2.5", "6"]
    assert len(list((tmp_path / "cache").rglob("racy.twice*.nbc"))) == 2
    loaded = subprocess.run([sys.executable, "-c", RACY_LOAD, str(tmp_path)], env=environment, capture_output=True,
                            text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    # both signatures come from the cache, each its own: with the data files numbered alike, one would be
    # missing (a miss) or the other's machine code (a wrong result)
    assert loaded.stdout.split() == ["2.5", "6", "2", "0"], loaded.stdout


# -- divergence, mixed stores, writers and processes --------------------------------------------

GROWING = """
datasets = ["iris"]
rules = ["sgd"]
learning_rates = [3.0, 0.1]
batch_sizes = ["full"]
seeds = [0]
epochs = 30

[model]
hidden_layer_sizes = [8]
activation = "identity"

[targets]
iris = 0.1
"""


def test_a_finite_loss_growing_without_bound_is_stored_as_diverged_by_both_paths(tmp_path):
    # sgd at 3.0 on a linear network: the loss grows ten-thousand-fold within 11 epochs and stays
    # finite for longer; the compiled batched loop stops only at NaN, the summary applies the growth test
    growing = config(GROWING)
    sweep.run_sweep(growing, tmp_path / "batched.db", jobs=1, progress=False)
    sweep.run_sweep(growing, tmp_path / "alone.db", jobs=1, batched=False, progress=False)
    batched, alone = sweep.load_runs(tmp_path / "batched.db"), sweep.load_runs(tmp_path / "alone.db")
    pd.testing.assert_frame_equal(comparable(batched), comparable(alone))
    run = batched.set_index("learning_rate").loc[3.0]
    assert run["status"] == "diverged" and pd.isna(run["final_loss"])
    assert run["epochs_run"] == run["diverged_epoch"] - 1 < 29
    curve = sweep.load_curves(tmp_path / "batched.db").query("learning_rate == 3.0")["loss"].to_numpy()
    assert np.isfinite(curve).all() and curve.max() <= 1e4 * max(curve[0], 1.0) and len(curve) == run["epochs_run"]
    assert batched.set_index("learning_rate").loc[0.1, "status"] == "ok"


def test_runs_of_different_settings_are_not_averaged_as_seeds(tmp_path):
    store = tmp_path / "mixed.db"
    short = config(datasets=["iris"], targets={"iris": 0.5}, rules=["adam"], hyperparameters={},
                   learning_rates=[0.01], batch_sizes=[16], seeds=[0], epochs=3)
    longer = config(datasets=["iris"], targets={"iris": 0.5}, rules=["adam"], hyperparameters={},
                    learning_rates=[0.01], batch_sizes=[16], seeds=[0], epochs=5,
                    model={"hidden_layer_sizes": [4], "activation": "tanh"})
    sweep.run_sweep(short, store, jobs=1, progress=False)
    sweep.run_sweep(longer, store, jobs=1, progress=False)
    runs = sweep.load_runs(store)
    summary = sweep.summarize(runs)
    # every run is seed 0 of its own configuration: two rows of one seed each, not one row of "two seeds"
    assert len(runs) == 2 and len(summary) == 2 and (summary["n_seeds"] == 1).all()
    assert sorted(summary["n_epochs"]) == [3, 5]
    from fastgd.sweep.metrics import mixed_settings

    lines = mixed_settings(runs)
    assert len(lines) == 1 and lines[0].startswith("iris: the store mixes runs of different settings")
    assert "n_epochs 3, 5" in lines[0] and "hidden_layer_sizes [4], [8]" in lines[0]
    assert mixed_settings(runs[runs["n_epochs"] == 3]) == []


def test_runs_of_two_definitions_of_a_rule_are_not_averaged_as_seeds(tmp_path):
    from fastgd.sweep.metrics import mixed_settings

    one = config(datasets=["iris"], targets={"iris": 0.5}, rules=["adam", "sgd"], hyperparameters={},
                 learning_rates=[0.01], batch_sizes=[16], seeds=[0], epochs=3)
    sweep.run_sweep(one, tmp_path / "r.db", jobs=1, progress=False)
    runs = sweep.load_runs(tmp_path / "r.db")
    assert mixed_settings(runs) == []
    # the same adam run again, as an edited definition of adam stores it: another hash, another run id
    edited = runs[runs["rule"] == "adam"].assign(rule_hash="f" * 64, run_id="edited")
    both = pd.concat([runs, edited], ignore_index=True)
    summary = sweep.summarize(both)
    assert len(summary) == 3 and (summary["n_seeds"] == 1).all()
    lines = mixed_settings(both)
    adam_hash = runs.set_index("rule").loc["adam", "rule_hash"]
    assert len(lines) == 1 and "sgd" not in lines[0]
    assert f"rule adam in 2 definitions ({', '.join(sorted([adam_hash[:12], 'f' * 12]))})" in lines[0]


def test_the_report_says_which_commits_and_machines_a_store_mixes():
    from fastgd.sweep.metrics import mixed_provenance

    made = {"fastgd": "0.1.0", "git_commit": "a" * 40, "cpu": "Xeon", "cpu_count": 2, "host": "vm1"}
    sweeps = pd.DataFrame({"sweep_id": [1, 2, 3], "provenance": [made, dict(made, git_commit="b" * 40),
                                                                 dict(made, host="vm2")]})
    runs = pd.DataFrame({"sweep_id": [1, 1, 3]})
    assert mixed_provenance(runs, sweeps) == [
        "the store mixes runs made by 2 machines (Xeon × 2 on vm1: 2 runs; Xeon × 2 on vm2: 1 runs): timings and "
        "results may not be comparable across them"]
    runs = pd.DataFrame({"sweep_id": [1, 2, 2]})
    [line] = mixed_provenance(runs, sweeps)
    assert line.startswith(f"the store mixes runs made by 2 commits ({'a' * 10}: 1 runs; {'b' * 10}: 2 runs)")
    assert mixed_provenance(pd.DataFrame({"sweep_id": [1, 1]}), sweeps) == []
    # a run's own provenance before its sweep's: one sweep whose Dask workers ran on two machines
    runs = pd.DataFrame({"sweep_id": [1, 1, 1], "cpu": ["Xeon", "EPYC", None], "cpu_count": [2, 64, None]})
    assert mixed_provenance(runs, sweeps) == [
        "the store mixes runs made by 2 machines (EPYC × 64 on vm1: 1 runs; Xeon × 2 on vm1: 2 runs): timings and "
        "results may not be comparable across them"]


def test_a_run_another_sweep_stored_meanwhile_is_kept_and_counted_as_skipped(tmp_path, monkeypatch):
    # deterministic overlap: while this sweep trains its first chunk, another sweep runs all of it
    small = config(datasets=["iris"], targets={"iris": 0.5}, rules=["sgd", "adam"], hyperparameters={},
                   batch_sizes=[16])
    store = tmp_path / "r.db"
    original, others = runner.execute_chunk, []

    def execute_while_another_sweep_runs(chunk, batched=True, plugins=(), sources=None):
        if not others:
            others.append(None)
            others[0] = sweep.run_sweep(small, store, jobs=1, progress=False)
        return original(chunk, batched, plugins, sources)

    monkeypatch.setattr(runner, "execute_chunk", execute_while_another_sweep_runs)
    outcome = sweep.run_sweep(small, store, jobs=1, progress=False)
    total = len(sweep.runs(small))
    assert others[0].stored == total and outcome.stored == 0 and outcome.skipped == total
    runs = sweep.load_runs(store)
    assert len(runs) == total and runs["run_id"].is_unique and set(runs["sweep_id"]) == {2}


def test_two_sweeps_into_one_store_at_once_both_finish_and_store_every_run_once(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(SMALL.replace('datasets = ["iris", "diabetes"]', 'datasets = ["iris"]')
                    .replace("diabetes = 0.4\n", ""))
    store = tmp_path / "r.db"
    expected = len(sweep.runs(sweep.load_config(path)))
    arguments = [sys.executable, "-m", "fastgd.cli", "sweep", str(path), "--store", str(store), "--jobs", "1",
                 "--quiet"]
    writers = [subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    outputs = [writer.communicate(timeout=600) for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], [err[-2000:] for _, err in outputs]
    new = [int(re.search(r"(\d+) new", out).group(1)) for out, _ in outputs]
    assert sum(new) == expected
    with sweep.Store(store, mode="r") as reopened:
        assert reopened.integrity_check() == "ok"
        runs, curves, sweeps = reopened.runs_frame(), reopened.curves_frame(), reopened.sweeps_frame()
    assert len(runs) == expected and runs["run_id"].is_unique and len(sweeps) == 2
    assert (curves.groupby("run_id").size().reindex(runs["run_id"]).fillna(0).to_numpy()
            == runs["epochs_run"].to_numpy()).all()


LONG = """
name = "long"
datasets = ["digits"]
rules = ["sgd", "adam", "nadam", "rmsprop"]
learning_rates = [0.001, 0.01, 0.1, 0.3]
batch_sizes = [16]
seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
         24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47]
epochs = 100

[model]
hidden_layer_sizes = [16]

[targets]
digits = 0.05
"""


def start_long_sweep(tmp_path):
    """A sweep of sixteen chunks on two local workers, once its first chunk is stored: (process, store, stored).

    Long enough that it is still running well after its first chunk, on a loaded machine too: with
    compiles of a few seconds a shorter sweep could end before the signal reached it.

    Its stderr goes to ``tmp_path / "stderr.txt"``: a pipe would be held open by workers that outlive it.
    """
    path = tmp_path / "long.toml"
    path.write_text(LONG)
    store = tmp_path / "r.db"
    with open(tmp_path / "stderr.txt", "w") as stderr:
        # SIGINT as a terminal delivers it: a test run started in the background of a shell without job
        # control (nohup, `make test &`) passes its children SIGINT ignored, and Python then keeps it so
        process = subprocess.Popen([sys.executable, "-m", "fastgd.cli", "sweep", str(path), "--store", str(store),
                                    "--jobs", "2", "--quiet"], stdout=subprocess.DEVNULL, stderr=stderr,
                                   env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # SIGABRT prints its stacks
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    stored, deadline = 0, time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and stored == 0:
        if store.exists():
            with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30) as connection:
                try:
                    stored = connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
                except sqlite3.OperationalError:  # the schema is being created
                    pass
            connection.close()
        time.sleep(0.05)
    assert process.poll() is None, "the sweep finished before it could be stopped: make it longer"
    return process, store, stored


def assert_all_exit(psutil, processes):
    """Every process of ``processes`` exits (they are killed, and the test fails, if some do not)."""
    _, alive = psutil.wait_procs(processes, timeout=120)
    left = []
    for process in alive:
        try:
            left.append(" ".join(process.cmdline())[:80])
            process.kill()
        except psutil.NoSuchProcess:
            pass
    assert not left, f"left running: {left}"


def descendants(psutil, pid):
    """The sweep's worker processes and multiprocessing's resource tracker."""
    children = psutil.Process(pid).children(recursive=True)
    workers = []
    for child in children:
        try:
            if "--multiprocessing-fork" in child.cmdline():
                workers.append(child)
        except psutil.NoSuchProcess:
            pass
    assert len(workers) == 2
    return children


def test_killing_a_sweep_leaves_no_worker_or_resource_tracker_behind(tmp_path):
    psutil = pytest.importorskip("psutil")
    process, _, _ = start_long_sweep(tmp_path)
    children = descendants(psutil, process.pid)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    # the workers were training (a chunk each): they must notice that their parent is gone
    assert_all_exit(psutil, children)


@pytest.mark.parametrize("signal_number, status, word", [(signal.SIGINT, 130, "interrupted"),
                                                          (signal.SIGTERM, 143, "terminated")])
def test_a_stopped_sweep_keeps_what_finished_stops_its_workers_and_says_so(tmp_path, signal_number, status, word):
    psutil = pytest.importorskip("psutil")
    process, store, stored_before = start_long_sweep(tmp_path)
    children = descendants(psutil, process.pid)
    process.send_signal(signal_number)  # to the parent alone, as kill does
    try:
        process.wait(timeout=300)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)  # the faulthandler writes where each thread waits
        process.wait(timeout=60)
        pytest.fail("the stopped sweep did not exit; its threads:\n" + (tmp_path / "stderr.txt").read_text())
    assert_all_exit(psutil, children)
    err = (tmp_path / "stderr.txt").read_text()
    assert process.returncode == status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fastgd sweep: {word}: "), err
    with sweep.Store(store, mode="r") as reopened:
        assert reopened.integrity_check() == "ok"
        runs, curves = reopened.runs_frame(), reopened.curves_frame()
    assert len(runs) >= stored_before and f"{len(runs)} new runs stored" in lines[0]
    assert runs["run_id"].is_unique and len(curves) == runs["epochs_run"].sum()


def test_a_signal_held_while_the_parent_waits_is_raised_by_its_own_handler_at_the_next_safe_point():
    from fastgd.sweep.runner import _HeldSignals

    def terminated(number, frame):
        raise SystemExit(f"terminated by {number}")

    previous = signal.signal(signal.SIGTERM, terminated), signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with _HeldSignals() as held:
            held.raise_held()  # nothing arrived: nothing raised
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)  # both delivered, neither raised here
            assert [number for number, _ in held.held] == [signal.SIGINT, signal.SIGTERM]
            with pytest.raises(KeyboardInterrupt):  # the first, by Python's own SIGINT handler
                held.raise_held()
            held.raise_held()  # raised once: the rest were dropped with it
        assert signal.getsignal(signal.SIGTERM) is terminated and signal.getsignal(signal.SIGINT) is (
            signal.default_int_handler)
        with pytest.raises(SystemExit, match="terminated by 15"), _HeldSignals() as held:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
            held.raise_held()
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])


RUN_PROVENANCE_COLUMNS = ("git_commit", "fastgd_version", "numba_version", "numpy_version", "cpu", "cpu_count",
                          "numba_threads")


@pytest.mark.parametrize("version, dropped", [(1, ("rule_hash", "data_hash", *RUN_PROVENANCE_COLUMNS,
                                                   *PROTOCOL_COLUMNS, "model", "schedule")),
                                              (2, ("data_hash", *RUN_PROVENANCE_COLUMNS, *PROTOCOL_COLUMNS, "model",
                                                   "schedule")),
                                              (3, (*RUN_PROVENANCE_COLUMNS, *PROTOCOL_COLUMNS, "model", "schedule")),
                                              (4, (*PROTOCOL_COLUMNS, "model", "schedule")),
                                              (5, ("model", "schedule")), (6, ())])
def test_an_older_store_is_read_as_it_is_and_migrated_by_a_writer(tmp_path, version, dropped):
    # version 1 had neither hash, version 2 no data_hash, version 3 no run provenance and no artefacts table,
    # version 4 none of the tuning protocol's columns, version 5 no model (its runs are MLPs') and no schedule: a
    # reader sees the hashes, the protocol's columns and the model empty (split "test": every older run was tested
    # on the test rows; schedule "constant"), the provenance from the run's sweep row and no artefacts; a writer
    # adds them
    store_path = tmp_path / "old.db"
    one_run = config(datasets=["iris"], rules=["sgd"], learning_rates=[0.1], batch_sizes=[16], seeds=[0],
                     targets={"iris": 0.5}, hyperparameters={})
    sweep.run_sweep(one_run, store_path, jobs=1, progress=False)
    with sqlite3.connect(store_path) as connection:
        for column in dropped:
            connection.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        connection.execute("ALTER TABLE curves DROP COLUMN objective")  # schema 7 added it
        if version < 4:
            connection.execute("DROP TABLE artefacts")
        connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    connection.close()
    before = store_path.read_bytes()
    runs = sweep.load_runs(store_path)
    hashes = [column for column in dropped if column not in (*RUN_PROVENANCE_COLUMNS, "split", "schedule")]
    assert len(runs) == 1 and all(runs[column].isna().all() for column in hashes)
    assert runs["split"].tolist() == ["test"] and runs["test_metric"].notna().all()
    assert runs["schedule"].tolist() == ["constant"]  # every run before schema 6 had a constant learning rate
    made = machine.provenance()
    assert runs[list(RUN_PROVENANCE_COLUMNS)].iloc[0].tolist() == [
        made["git_commit"], made["fastgd"], made["numba"], made["numpy"], made["cpu"], made["cpu_count"],
        made["numba_threads"]]
    curves = sweep.load_curves(store_path)
    assert len(curves) > 0 and curves["objective"].isna().all()  # no objective before schema 7
    if version < 4:
        with sweep.Store(store_path, mode="r") as store:
            assert store.artefacts() == {}
    assert store_path.read_bytes() == before  # reading wrote nothing
    with sweep.Store(store_path) as store:
        assert all(store.runs_frame()[column].isna().all() for column in hashes)
        store.put_artefact("machine", {"cpu": "x"}, {"host": "h"})
        assert store.artefacts()["machine"]["content"] == {"cpu": "x"}
    with sqlite3.connect(store_path) as connection:
        assert connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION)
        # the migrated columns have the types of a new store's
        types = {row[1]: row[2] for row in connection.execute("PRAGMA table_info(runs)")}
        assert types["cpu_count"] == types["numba_threads"] == "INTEGER" and types["cpu"] == "TEXT"
        assert types["trial"] == "INTEGER" and types["validation_loss"] == "REAL" and types["phase"] == "TEXT"
        assert {row[1]: row[2] for row in connection.execute("PRAGMA table_info(curves)")}["objective"] == "REAL"
    connection.close()


def test_a_store_of_a_newer_schema_with_an_unknown_table_layout_is_refused(tmp_path):
    path = tmp_path / "r.db"
    sweep.Store(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("ALTER TABLE artefacts ADD COLUMN extra TEXT")
    connection.close()
    with pytest.raises(sweep.StoreError, match="its table 'artefacts' has the columns"):
        sweep.load_runs(path)


def test_the_commands_offer_the_presets_there_are():
    """fastgd sweep takes every preset; fastgd compare those it has throughput measurements for."""
    from fastgd import cli

    parser = cli.build_parser()
    commands = next(action for action in parser._actions if action.dest == "command").choices

    def preset_choices(command):
        return next(action for action in commands[command]._actions if action.dest == "preset").choices

    assert list(preset_choices("sweep")) == list(sweep.PRESETS)
    assert list(preset_choices("compare")) == list(cli.COMPARE_THROUGHPUT)
    assert set(cli.COMPARE_THROUGHPUT) == set(sweep.PRESETS) - {"full"}


def test_a_write_interrupted_before_its_commit_neither_lands_nor_blocks_the_next_write(tmp_path):
    """A stopped sweep's signal can land between a write's BEGIN and its COMMIT (inside the transaction's own
    __enter__ or __exit__, where no with-block cleans up): what that write did is not kept, and the next write (the
    sweep recording that it stopped) still goes through, instead of SQLite's "cannot start a transaction within a
    transaction" (seen once in CI's SIGTERM test)."""
    with sweep.Store(tmp_path / "s.db") as store:
        first = store.begin_sweep("one", {}, {})
        store._connection.execute("BEGIN IMMEDIATE")  # as if interrupted right after it
        store._connection.execute("DELETE FROM sweeps")  # ... and after part of its work
        second = store.begin_sweep("two", {}, {})
    with sqlite3.connect(tmp_path / "s.db") as connection:
        names = [name for (name,) in connection.execute("SELECT name FROM sweeps ORDER BY sweep_id")]
    connection.close()
    assert names == ["one", "two"] and second > first
