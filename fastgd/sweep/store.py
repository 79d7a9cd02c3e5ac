"""The results store: one SQLite file (standard library, WAL mode), schema version 2.

Tables:

``meta``      key/value: ``schema_version``.
``sweeps``    one row per invocation: the configuration (JSON) and provenance (JSON:
              fastgd version and git commit, numba/numpy/scikit-learn versions, CPU,
              threading layer, device, host).
``runs``      one row per run, keyed by ``run_id`` (:attr:`RunSpec.run_id`): what
              defines it (the rule's definition hash included), ``status`` (ok, diverged, failed), ``error``, final and best
              training loss, test metric (accuracy or R²), epochs and seconds to the
              target loss, wall time, how it ran.
``curves``    one row per (run, epoch): training loss and seconds since the run began.

Each run and its curve are written in one transaction, by one process (the
sweep's client), so a sweep killed at any moment leaves whole runs or none;
``run_id`` is the primary key, so no run is stored twice.
"""

import json
import sqlite3
from datetime import datetime, timezone

__all__ = ["Store", "load_runs", "load_curves", "SCHEMA_VERSION"]

SCHEMA_VERSION = 2
# what each version adds to the one before, applied in order when an older store is opened
_MIGRATIONS = {2: "ALTER TABLE runs ADD COLUMN rule_hash TEXT"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sweeps (
    sweep_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    started_at TEXT NOT NULL,
    config TEXT NOT NULL,
    provenance TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    sweep_id INTEGER NOT NULL REFERENCES sweeps(sweep_id),
    dataset TEXT NOT NULL,
    rule TEXT NOT NULL,
    learning_rate REAL NOT NULL,
    hyperparameters TEXT NOT NULL,
    batch_size TEXT NOT NULL,
    seed INTEGER NOT NULL,
    n_epochs INTEGER NOT NULL,
    hidden_layer_sizes TEXT NOT NULL,
    activation TEXT NOT NULL,
    alpha REAL NOT NULL,
    dtype TEXT NOT NULL,
    target_loss REAL NOT NULL,
    rule_hash TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'diverged', 'failed')),
    error TEXT,
    final_loss REAL,
    best_loss REAL,
    test_metric REAL,
    test_metric_name TEXT,
    epochs_run INTEGER,
    diverged_epoch INTEGER,
    epochs_to_target INTEGER,
    seconds_to_target REAL,
    train_seconds REAL,
    wall_seconds REAL,
    batched INTEGER NOT NULL,
    finished_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS curves (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    epoch INTEGER NOT NULL,
    loss REAL NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY (run_id, epoch)
) WITHOUT ROWID;
"""

_RUN_COLUMNS = ("run_id", "sweep_id", "dataset", "rule", "learning_rate", "hyperparameters", "batch_size", "seed",
                "n_epochs", "hidden_layer_sizes", "activation", "alpha", "dtype", "target_loss", "rule_hash", "status",
                "error",
                "final_loss", "best_loss", "test_metric", "test_metric_name", "epochs_run", "diverged_epoch",
                "epochs_to_target", "seconds_to_target", "train_seconds", "wall_seconds", "batched", "finished_at")


class StoreError(RuntimeError):
    pass


class Store:
    """An open results store. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path):
        self.path = str(path)
        # isolation_level=None: transactions are explicit (BEGIN ... COMMIT) below
        self._connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed transaction survives the process being killed
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute("PRAGMA foreign_keys=ON")
        # CREATE ... IF NOT EXISTS: idempotent, and SQLite serialises concurrent creators
        self._connection.executescript(_SCHEMA)
        with self._transaction():
            row = self._connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                self._connection.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise StoreError(f"{self.path} has schema version {row[0]}; this fastgd reads up to version "
                                 f"{SCHEMA_VERSION}")
            elif int(row[0]) < SCHEMA_VERSION:
                for version in range(int(row[0]) + 1, SCHEMA_VERSION + 1):
                    self._connection.execute(_MIGRATIONS[version])
                self._connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                                         (str(SCHEMA_VERSION),))

    def _transaction(self):
        connection = self._connection

        class Transaction:
            def __enter__(self):
                connection.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind, value, traceback):
                connection.execute("COMMIT" if kind is None else "ROLLBACK")
                return False

        return Transaction()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._connection.close()

    def begin_sweep(self, name, config, provenance):
        """Record one invocation; returns its sweep_id."""
        with self._transaction():
            cursor = self._connection.execute(
                "INSERT INTO sweeps (name, started_at, config, provenance) VALUES (?, ?, ?, ?)",
                (name, _now(), json.dumps(config, sort_keys=True), json.dumps(provenance, sort_keys=True)))
        return cursor.lastrowid

    def run_ids(self, status=None):
        """The run_ids stored (with this status, if given)."""
        if status is None:
            rows = self._connection.execute("SELECT run_id FROM runs")
        else:
            rows = self._connection.execute("SELECT run_id FROM runs WHERE status = ?", (status,))
        return {row[0] for row in rows}

    def forget(self, run_ids):
        """Delete runs (and their curves), e.g. failed ones to run again."""
        with self._transaction():
            for run_id in run_ids:
                self._connection.execute("DELETE FROM curves WHERE run_id = ?", (run_id,))
                self._connection.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

    def add(self, sweep_id, result):
        """Store one finished run and its curve in one transaction."""
        spec = result["spec"]
        row = dict(
            run_id=spec.run_id, sweep_id=sweep_id, dataset=spec.dataset, rule=spec.rule,
            learning_rate=spec.learning_rate, hyperparameters=json.dumps(dict(spec.hyperparameters), sort_keys=True),
            batch_size=str(spec.batch_size), seed=spec.seed, n_epochs=spec.n_epochs,
            hidden_layer_sizes=json.dumps(list(spec.hidden_layer_sizes)), activation=spec.activation,
            alpha=spec.alpha, dtype=spec.dtype, target_loss=spec.target_loss, rule_hash=spec.rule_hash,
            finished_at=_now(),
            **{key: result.get(key) for key in ("status", "error", "final_loss", "best_loss", "test_metric",
                                                "test_metric_name", "epochs_run", "diverged_epoch",
                                                "epochs_to_target", "seconds_to_target", "train_seconds",
                                                "wall_seconds")},
            batched=int(result.get("batched", False)))
        with self._transaction():
            self._connection.execute(
                f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) VALUES ({', '.join('?' * len(_RUN_COLUMNS))})",
                [row[column] for column in _RUN_COLUMNS])
            self._connection.executemany(
                "INSERT INTO curves (run_id, epoch, loss, seconds) VALUES (?, ?, ?, ?)",
                [(spec.run_id, epoch + 1, float(loss), float(seconds))
                 for epoch, (loss, seconds) in enumerate(zip(result.get("losses", ()), result.get("seconds", ())))])

    def runs_frame(self):
        import pandas as pd

        frame = pd.read_sql_query("SELECT * FROM runs ORDER BY dataset, rule, learning_rate, seed", self._connection)
        frame["hyperparameters"] = frame["hyperparameters"].map(json.loads)
        return frame

    def curves_frame(self):
        import pandas as pd

        return pd.read_sql_query(
            "SELECT c.run_id, r.dataset, r.rule, r.learning_rate, r.batch_size, r.seed, r.hyperparameters, "
            "c.epoch, c.loss, c.seconds FROM curves c JOIN runs r USING (run_id) ORDER BY c.run_id, c.epoch",
            self._connection)

    def sweeps_frame(self):
        import pandas as pd

        frame = pd.read_sql_query("SELECT * FROM sweeps ORDER BY sweep_id", self._connection)
        for column in ("config", "provenance"):
            frame[column] = frame[column].map(json.loads)
        return frame

    def integrity_check(self):
        return self._connection.execute("PRAGMA integrity_check").fetchone()[0]


def load_runs(path):
    """Every stored run as a pandas DataFrame, one row per run."""
    with Store(path) as store:
        return store.runs_frame()


def load_curves(path):
    """Every stored curve point as a pandas DataFrame, one row per (run, epoch)."""
    with Store(path) as store:
        return store.curves_frame()


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
