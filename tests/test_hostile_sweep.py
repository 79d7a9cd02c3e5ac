"""Sweeps under hostile conditions: a shared store, too many workers, a full disk, bad settings, a scheduler
that is not one. Each ends in one clear line before anything is created or changed, or in correct behaviour.
"""

import http.server
import logging
import os
import pathlib
import re
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib

import numpy as np
import pandas as pd
import pytest

from cli_harness import assert_refused, run_command, snapshot
from fastgd import _config, sweep
from fastgd.sweep import runner
from fastgd.sweep.store import Store

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


# -- 6, 9. settings: misspelt names, a generated directory that cannot be written ---------------

def test_every_setting_fastgd_reads_is_known_and_a_misspelt_one_names_the_nearest():
    sources = pathlib.Path(_config.__file__).parent.rglob("*.py")
    read = {name for path in sources for name in re.findall(r"[\"'](FASTGD_[A-Z0-9_]+)[\"']", path.read_text())}
    assert read == set(_config.SETTINGS)
    assert _config.unknown_settings({"FASTGD_NUM_THREAD": "2", "FASTGD_CACHE": "1", "NUMBA_CACHE_DIR": "x"}) == [
        "FASTGD_NUM_THREAD is not a fastgd setting (did you mean FASTGD_NUM_THREADS?)"]
    [line] = _config.unknown_settings({"FASTGD_XYZZY_QWERTY": "1"})
    assert line.startswith("FASTGD_XYZZY_QWERTY is not a fastgd setting; the settings are FASTGD_CACHE,")
    with pytest.raises(_config.SettingError, match="^FASTGD_FAST_MATH is not a fastgd setting"):
        _config.check_setting_names({"FASTGD_FAST_MATH": "1"})


def test_importing_fastgd_warns_once_about_a_misspelt_setting(tmp_path):
    environment = dict(os.environ, FASTGD_FASTMAT="1")
    result = subprocess.run([sys.executable, "-c", "import fastgd._config, fastgd.optim"], env=environment,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "SettingWarning" in line]
    assert warned == [line for line in warned if "FASTGD_FASTMAT is not a fastgd setting (did you mean "
                      "FASTGD_FASTMATH?)" in line] and len(warned) == 1


def test_a_generated_directory_that_cannot_be_written_is_refused(tmp_path, monkeypatch):
    (tmp_path / "rules").mkdir()
    monkeypatch.setenv("FASTGD_GENERATED_DIR", str(tmp_path / "rules"))
    _config._check_generated_dir()  # writable: accepted
    monkeypatch.setenv("FASTGD_GENERATED_DIR", str(tmp_path / "new" / "rules"))
    _config._check_generated_dir()  # can be made: accepted, and not made here
    assert not (tmp_path / "new").exists()
    # as a user without write permission sees it (the tests may run as root, who may write anywhere)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    for value, message in ((tmp_path / "rules", "the directory .*/rules is not writable"),
                           (tmp_path / "new" / "rules", ".*new/rules cannot be made: .* is not writable")):
        monkeypatch.setenv("FASTGD_GENERATED_DIR", str(value))
        with pytest.raises(_config.SettingError, match=f"^FASTGD_GENERATED_DIR: {message}"):
            _config._check_generated_dir()


# -- 10. --jobs far above the cores -----------------------------------------------------------

def test_jobs_far_above_the_cores_start_at_most_two_workers_per_core_and_say_so(tmp_path, monkeypatch):
    started = []

    def in_this_process(chunks, batched, workers, store_results, plugins=(), sources=None, pool=None):
        started.append(workers)
        for chunk in chunks:
            store_results(runner.execute_chunk(chunk, batched, plugins, runner._sources_of(chunk, sources)))

    monkeypatch.setattr(runner, "_run_in_processes", in_this_process)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    text = TINY.format(name="many", seeds=[0]).replace('rules = ["sgd"]', 'rules = ["sgd", "adam", "nadam"]')
    (tmp_path / "many.toml").write_text(text)  # three rules: three chunks of runs
    code, out, err = run_command(["sweep", "many.toml", "--store", "r.db", "--jobs", "1000", "--quiet"], tmp_path)
    assert code == 0, err
    assert "--jobs 1000: at most 2 worker processes (2 per core on 1), and no more than there are chunks" in err
    assert started == [2] and len(sweep.load_runs(tmp_path / "r.db")) == 3
    assert runner.local_workers(1000, 3) == 2 and runner.local_workers(None, 1) == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert runner.local_workers(1000, 3) == 3 and runner.local_workers(5, 40) == 5
    assert runner.local_workers(None, 9) == 9


# -- 12. a full disk --------------------------------------------------------------------------

class DiskFullAtRuns:
    """An SQLite connection whose run inserts fail as on a full disk (SQLite's own error), everything else real."""

    def __init__(self, connection):
        self._connection = connection

    def execute(self, statement, *parameters):
        if statement.startswith("INSERT OR IGNORE INTO runs"):
            raise sqlite3.OperationalError("database or disk is full")
        return self._connection.execute(statement, *parameters)

    def __getattr__(self, name):
        return getattr(self._connection, name)


def test_a_full_disk_ends_the_sweep_in_one_line_and_the_store_resumes_intact(tmp_path, monkeypatch):
    (tmp_path / "tiny.toml").write_text(TINY.format(name="tiny", seeds=[0, 1]))
    arguments = ["sweep", "tiny.toml", "--store", "r.db", "--jobs", "1", "--quiet"]
    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *args, **kwargs: DiskFullAtRuns(real_connect(*args, **kwargs)))
    code, out, err = run_command(arguments, tmp_path)
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("fastgd sweep: error: --store: cannot write to the store r.db: database or disk is full")
    assert "run the same command again to resume" in err
    monkeypatch.setattr(sqlite3, "connect", real_connect)
    with sweep.Store(tmp_path / "r.db") as store:
        assert store.integrity_check() == "ok" and store.run_ids() == set()
    code, out, err = run_command(arguments, tmp_path)
    assert code == 0, err
    assert set(sweep.load_runs(tmp_path / "r.db")["status"]) == {"ok"} and "2 new" in out


# -- 11. schedulers that are not one, have no workers, or go away; data files that go away -------

@pytest.fixture
def distributed():
    return pytest.importorskip("distributed")


def test_a_server_that_is_not_a_dask_scheduler_is_refused_within_the_time_limit(tmp_path, distributed, monkeypatch):
    # an HTTP server waits for the client to speak first; Dask's client waits for the scheduler's handshake
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(runner, "SCHEDULER_TIMEOUT_SECONDS", 1)
    (tmp_path / "tiny.toml").write_text(TINY.format(name="tiny", seeds=[0]))
    address = f"tcp://127.0.0.1:{server.server_address[1]}"
    try:
        assert_refused(["sweep", "tiny.toml", "--store", "r.db", "--scheduler", address], tmp_path,
                       f"cannot reach the Dask scheduler at {address}: something listens there that is not a Dask "
                       "scheduler (it sent nothing in 1 s)")
    finally:
        server.shutdown()
        server.server_close()


def test_a_scheduler_without_workers_is_waited_for_with_a_limit_before_the_store_is_created(tmp_path, distributed,
                                                                                          monkeypatch):
    monkeypatch.setattr(runner, "WORKER_WAIT_SECONDS", 1)
    (tmp_path / "tiny.toml").write_text(TINY.format(name="tiny", seeds=[0]))
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None, protocol="tcp") as cluster:
        address = cluster.scheduler_address
        no_workers = (f"the Dask scheduler at {address} has no workers (none joined in 1 s): start some (dask worker "
                      f"{address}) and run the same command again")
        assert_refused(["sweep", "tiny.toml", "--store", "r.db", "--scheduler", address, "--quiet"], tmp_path,
                       no_workers)
        before = snapshot(tmp_path)
        code, out, err = run_command(["sweep", "tiny.toml", "--store", "r.db", "--scheduler", address], tmp_path)
    assert code == 2 and err.splitlines() == [
        f"[fastgd] the Dask scheduler at {address} has no workers: waiting up to 1 s for one",
        f"fastgd sweep: error: {no_workers}"]
    assert snapshot(tmp_path) == before


def test_a_cluster_lost_mid_sweep_ends_in_one_line_and_the_sweep_resumes_exactly(tmp_path, distributed, monkeypatch):
    text = TINY.format(name="lost", seeds=[0]).replace('rules = ["sgd"]', 'rules = ["sgd", "adam", "nadam"]')
    (tmp_path / "lost.toml").write_text(text)  # three chunks, one per rule
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=3, processes=False, dashboard_address=None)
    add, execute = Store.add, runner.execute_chunk

    def held_but_the_first(specs, *arguments, **options):
        # the adam and nadam chunks finish only after the cluster has begun to close: the loss is not a race
        if specs[0].rule != "sgd":
            time.sleep(3)
        return execute(specs, *arguments, **options)

    def add_then_lose_the_cluster(store, sweep_id, result):
        stored = add(store, sweep_id, result)
        threading.Thread(target=cluster.close).start()  # after the first run is stored
        return stored

    class Kept(logging.Handler):
        """Dask's log records: its handlers write to the real stderr, past the harness's redirection."""

        def emit(self, record):
            logged.append(record)

    logged, kept = [], Kept(logging.WARNING)
    monkeypatch.setattr(Store, "add", add_then_lose_the_cluster)
    monkeypatch.setattr(runner, "execute_chunk", held_but_the_first)
    logging.getLogger("distributed").addHandler(kept)
    try:
        code, out, err = run_command(["sweep", "lost.toml", "--store", "r.db", "--scheduler",
                                      cluster.scheduler_address, "--quiet"], tmp_path)
    finally:
        logging.getLogger("distributed").removeHandler(kept)
        cluster.close()
    monkeypatch.setattr(Store, "add", add)
    monkeypatch.setattr(runner, "execute_chunk", execute)
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not logged, [record.getMessage() for record in logged]
    assert f"the Dask cluster at {cluster.scheduler_address} failed mid-sweep (FutureCancelledError: " in err
    assert list(sweep.load_runs(tmp_path / "r.db")["rule"]) == ["sgd"]
    assert "1 new run was stored in r.db: run the same command again to resume" in err
    resumed = sweep.run_sweep(sweep.load_config(tmp_path / "lost.toml"), tmp_path / "r.db", jobs=1, progress=False)
    assert (resumed.skipped, resumed.stored, resumed.failed) == (1, 2, 0)


def test_a_data_file_deleted_during_a_sweep_fails_its_runs_and_the_sweep_goes_on(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40), "label": np.arange(40) % 2})
    table.to_csv(tmp_path / "table.csv", index=False)
    text = TINY.format(name="file", seeds=[0]).replace('datasets = ["iris"]\n', "").replace("iris = 0.5", "table = 0.5")
    (tmp_path / "file.toml").write_text(text + '\n[datasets.table]\npath = "table.csv"\ntarget = "label"\n')
    config = sweep.load_config(tmp_path / "file.toml")
    specs = sweep.runs(config)  # the sweep plans its runs, the data's hash in each
    (tmp_path / "table.csv").unlink()  # after the sweep checked it, before a worker reads it
    results = runner.execute_chunk(specs, batched=True, sources=config.sources)
    assert [result["status"] for result in results] == ["failed"]
    assert results[0]["error"].startswith("DatasetError: ") and results[0]["error"].endswith("table.csv: no such file")
