"""The results store: one SQLite file (standard library, WAL mode), schema version 7.

Tables:

``meta``      key/value: ``schema_version``.
``sweeps``    one row per invocation: the configuration (JSON) and provenance (JSON:
              fastgd version and git commit, numba/numpy/scikit-learn versions, CPU,
              threading layer, device, host).
``runs``      one row per run, keyed by ``run_id`` (:attr:`RunSpec.run_id`): what
              defines it (the rule's definition hash and the data set's content hash included), ``status``
              (ok, diverged, failed), ``error``, final and best
              training loss, test metric (accuracy or R²), epochs and seconds to the
              target loss, wall time, how it ran, and what made it: the commit,
              the fastgd, Numba and NumPy versions and the machine (CPU model,
              cores, Numba threads) of the process that trained it; where it belongs in
              the tuning protocol (:mod:`fastgd.sweep.plan`): ``phase`` ("tune",
              "final", or "grid" for a run of an ordinary grid), ``trial`` (the
              0-based index of a tuning trial; of the chosen one for a final run),
              ``budget``, ``split`` ("test", or "validation": trained on the
              training rows less ``validation_fraction`` of them), ``validation_loss``
              and ``validation_metric`` (on the validation rows, runs of that split)
              and ``test_loss`` (runs of the test split); ``model``, the run's declared network
              (:attr:`RunSpec.model`, JSON), empty for an MLP (``hidden_layer_sizes``, ``activation``
              and ``alpha``); ``schedule``, the learning-rate schedule's name
              (:data:`fastgd.training.SCHEDULES`).
``curves``    one row per (run, epoch): training loss (the mean of the epoch's batch losses, each taken before
              its update), seconds since the run began, and ``objective``: the full training objective (every
              training row, penalty included: what f* is the minimum of) at θ after the epoch, for a run whose
              spec asks (:attr:`RunSpec.track_objective`), else NULL.
``artefacts`` one row per named artefact: what ``fastgd compare`` measured and
              computed besides the runs (throughput and machine limits, the
              trajectories, a loss landscape per data set, the gradient checks,
              the machine, the asv history), as JSON, with when and where it was
              made. The report draws them and computes nothing.

Each run and its curve are written in one transaction, by one process (the
sweep's client), so a sweep killed at any moment leaves whole runs or none;
``run_id`` is the primary key and a run already stored is left as it is
(``INSERT OR IGNORE``), so two sweeps writing one store at once both finish
and every run is stored once. :func:`merge` writes several stores into a new
one (``fastgd merge``). A write SQLite cannot make (a full disk, an I/O error)
is rolled back whole and raised as a :class:`StoreError` in one line: the
store keeps what it held, and the same sweep run again resumes it.

A file is opened as a store only if it is one: an SQLite database holding
fastgd's tables with their columns and this schema version (or an older
one: version 1 lacks ``runs.rule_hash`` and ``runs.data_hash``, version 2 the
latter, version 3 the runs' provenance columns and the ``artefacts`` table,
version 4 the protocol's columns, version 5 ``runs.model`` and ``runs.schedule``, version 6
``curves.objective``; a writer adds them, a
reader sees the columns empty (an MLP's runs, for ``model``), the provenance columns filled from their sweep's
provenance, ``split`` as "test", ``schedule`` as "constant", and no artefacts). Anything
else (a text file, another program's database, a store of a newer fastgd) is
refused with a :class:`StoreError` before anything is written. A new store
is created only by a writer (``Store(path)``), in a file that does not exist
yet, is empty, or is an SQLite database without tables. Readers
(``Store(path, mode="r")``, :func:`load_runs`, :func:`load_curves`, the
report) never create or change a file.
"""

import contextlib
import json
import os
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["Store", "StoreError", "load_runs", "load_curves", "check_store_path", "new_store_file", "SCHEMA_VERSION",
           "PROTOCOL_COLUMNS"]

SCHEMA_VERSION = 7
_SQLITE_HEADER = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sweeps (
    sweep_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    started_at TEXT NOT NULL,
    config TEXT NOT NULL,
    provenance TEXT NOT NULL
);
CREATE TABLE runs (
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
    data_hash TEXT,
    git_commit TEXT,
    fastgd_version TEXT,
    numba_version TEXT,
    numpy_version TEXT,
    cpu TEXT,
    cpu_count INTEGER,
    numba_threads INTEGER,
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
    finished_at TEXT NOT NULL,
    phase TEXT,
    trial INTEGER,
    budget TEXT,
    split TEXT,
    validation_fraction REAL,
    validation_loss REAL,
    validation_metric REAL,
    test_loss REAL,
    model TEXT,
    schedule TEXT
);
CREATE TABLE curves (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    epoch INTEGER NOT NULL,
    loss REAL NOT NULL,
    seconds REAL NOT NULL,
    objective REAL,
    PRIMARY KEY (run_id, epoch)
) WITHOUT ROWID;
CREATE TABLE artefacts (
    name TEXT PRIMARY KEY,
    made_at TEXT NOT NULL,
    provenance TEXT NOT NULL,
    content TEXT NOT NULL
);
"""

# where a run belongs in the tuning protocol (schema 5), and its scores on the rows it was not trained on
PROTOCOL_COLUMNS = ("phase", "trial", "budget", "split", "validation_fraction", "validation_loss",
                    "validation_metric", "test_loss")
_RUN_COLUMNS = ("run_id", "sweep_id", "dataset", "rule", "learning_rate", "hyperparameters", "batch_size", "seed",
                "n_epochs", "hidden_layer_sizes", "activation", "alpha", "dtype", "target_loss", "rule_hash",
                "data_hash", "git_commit", "fastgd_version", "numba_version", "numpy_version", "cpu", "cpu_count",
                "numba_threads", "status", "error", "final_loss", "best_loss", "test_metric", "test_metric_name",
                "epochs_run", "diverged_epoch", "epochs_to_target", "seconds_to_target", "train_seconds",
                "wall_seconds", "batched", "finished_at", *PROTOCOL_COLUMNS, "model", "schedule")
# each run's provenance: its column, and the key of the same fact in a sweep's provenance (fastgd.machine.provenance)
RUN_PROVENANCE = {"git_commit": "git_commit", "fastgd_version": "fastgd", "numba_version": "numba",
                  "numpy_version": "numpy", "cpu": "cpu", "cpu_count": "cpu_count", "numba_threads": "numba_threads"}
# the columns each schema version adds to the one before (TEXT unless _COLUMN_TYPES says otherwise) and the
# tables it adds (as _SCHEMA makes them): a writer adds them, in order, to an older store
_ADDED_COLUMNS = {2: {"runs": ("rule_hash",)}, 3: {"runs": ("data_hash",)}, 4: {"runs": tuple(RUN_PROVENANCE)},
                  5: {"runs": PROTOCOL_COLUMNS}, 6: {"runs": ("model", "schedule")},
                  7: {"curves": ("objective",)}}
_ADDED_TABLES = {4: ("artefacts",)}
_COLUMN_TYPES = {"cpu_count": "INTEGER", "numba_threads": "INTEGER", "trial": "INTEGER",
                 "validation_fraction": "REAL", "validation_loss": "REAL", "validation_metric": "REAL",
                 "test_loss": "REAL", "objective": "REAL"}


_TABLE_COLUMNS = {
    "meta": ("key", "value"),
    "sweeps": ("sweep_id", "name", "started_at", "config", "provenance"),
    "runs": _RUN_COLUMNS,
    "curves": ("run_id", "epoch", "loss", "seconds", "objective"),
    "artefacts": ("name", "made_at", "provenance", "content"),
}


_NUMERIC_RUN_COLUMNS = ("learning_rate", "seed", "n_epochs", "alpha", "target_loss", "final_loss", "best_loss",
                        "test_metric", "epochs_run", "diverged_epoch", "epochs_to_target", "seconds_to_target",
                        "train_seconds", "wall_seconds", "cpu_count", "numba_threads", "trial",
                        "validation_fraction", "validation_loss", "validation_metric", "test_loss")


class StoreError(RuntimeError):
    """A file that cannot be used as a fastgd store; the message is one line naming it and why."""


def _tables_of_version(version):
    """The tables a store of schema version ``version`` has."""
    added = {table for later in range(version + 1, SCHEMA_VERSION + 1) for table in _ADDED_TABLES.get(later, ())}
    return [table for table in _TABLE_COLUMNS if table not in added]


def _columns_of_version(table, version):
    """The columns a table has in store schema version ``version``."""
    columns = _TABLE_COLUMNS[table]
    for later in range(version + 1, SCHEMA_VERSION + 1):
        columns = tuple(column for column in columns if column not in _ADDED_COLUMNS[later].get(table, ()))
    return columns


def _inspect(connection, path):
    """'new' for a database without tables, 'fastgd' for a store of this schema version, 'old' for an older one
    (see :data:`_ADDED_COLUMNS`); StoreError otherwise."""
    try:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.DatabaseError as error:
        raise StoreError(f"{path} is not a fastgd store: {error}") from None
    tables = {name for (name,) in rows}
    if not tables:
        return "new"
    missing = sorted(set(_tables_of_version(1)) - tables)
    if missing:
        raise StoreError(f"{path} is an SQLite database but not a fastgd store (it has the tables "
                         f"{', '.join(sorted(tables))}; a store has {', '.join(sorted(_TABLE_COLUMNS))})")
    row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = None if row is None else str(row[0])
    if version is None or not version.isdigit():
        raise StoreError(f"{path} is not a fastgd store: it records no schema version")
    if int(version) > SCHEMA_VERSION:
        raise StoreError(f"{path} was written by a newer fastgd (store schema version {version}); this fastgd reads "
                         f"version {SCHEMA_VERSION}: upgrade fastgd")
    if int(version) < 1:
        raise StoreError(f"{path} has store schema version {version}; this fastgd reads versions 1 to "
                         f"{SCHEMA_VERSION}")
    for table in _tables_of_version(int(version)):
        columns = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if columns != set(_columns_of_version(table, int(version))):
            raise StoreError(f"{path} is not a fastgd store of schema version {version}: its table {table!r} "
                             f"has the columns {', '.join(sorted(columns))}")
    return "fastgd" if int(version) == SCHEMA_VERSION else "old"


def _wal_mode_at_rest(path):
    """True for a WAL-mode database that no writer has open (a writer keeps the -wal file while it has)."""
    try:
        with open(path, "rb") as file:
            header = file.read(20)
    except OSError:
        return False
    return header[:16] == _SQLITE_HEADER and header[18:20] == b"\x02\x02" and not os.path.exists(f"{path}-wal")


def _read_only_connection(path, at_rest=None):
    """A connection that cannot write and creates no file.

    A reader of a WAL-mode database needs its -wal and -shm files, and SQLite creates them
    when they are missing; when they are (no writer has the store open), the file is read
    as it is instead (``immutable``). A database in rollback mode, such as a store being
    created, is read with SQLite's locks, which create nothing.
    """
    uri = Path(path).absolute().as_uri() + "?mode=ro"
    if _wal_mode_at_rest(path) if at_rest is None else at_rest:
        uri += "&immutable=1"
    return sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None)


def _inspect_read_only(path):
    """:func:`_inspect` through a read-only connection; once more with SQLite's locks if a writer started meanwhile."""
    for at_rest in (None, False):
        try:
            connection = _read_only_connection(path, at_rest)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the store {path}: {error}") from None
        try:
            return _inspect(connection, path)
        except StoreError:
            if at_rest is not None or not os.path.exists(f"{path}-wal"):
                raise
        finally:
            connection.close()


def check_store_path(path, mode="w"):
    """Check ``path`` as a store for writing (``"w"``) or reading (``"r"``), creating and changing nothing.

    Returns ``"fastgd"`` (an existing store) or ``"new"`` (a writer will create it); raises
    :class:`StoreError` with a one-line message otherwise.
    """
    path = str(path)
    if path in ("", ":memory:"):
        # SQLite would open a temporary database: every run would be lost when the sweep ends
        raise StoreError(f"{path!r} names no file: give the path of a store file")
    if os.path.isdir(path):
        raise StoreError(f"{path} is a directory, not a store file")
    if not os.path.exists(path):
        if mode == "r":
            raise StoreError(f"no fastgd store at {path} (no such file)")
        directory = os.path.dirname(os.path.abspath(path))
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise StoreError(f"cannot create the store {path}: {directory} is not a directory")
        if not os.path.isdir(directory):
            raise StoreError(f"cannot create the store {path}: the directory {directory} does not exist")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise StoreError(f"cannot create the store {path}: the directory {directory} is not writable")
        return "new"
    if not os.path.isfile(path):  # a device or a pipe: opening it could block or read forever
        raise StoreError(f"{path} is not a regular file")
    try:
        with open(path, "rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as error:
        raise StoreError(f"cannot read the store {path}: {error.strerror or error}") from None
    if not header:
        if mode == "r":
            raise StoreError(f"{path} is empty: not a fastgd store (run fastgd sweep first)")
        kind = "new"
    elif header != _SQLITE_HEADER:
        raise StoreError(f"{path} is not a fastgd store: not an SQLite database")
    else:
        kind = _inspect_read_only(path)
        kind = "fastgd" if kind == "old" else kind
        if kind == "new" and mode == "r":
            raise StoreError(f"{path} is an SQLite database without tables: not a fastgd store")
    if mode != "r" and not os.access(path, os.W_OK):
        raise StoreError(f"the store {path} is not writable")
    return kind


class Store:
    """An open results store. Use as a context manager, or call :meth:`close`.

    ``mode="w"`` (the default) opens a store for writing, creating it where
    :func:`check_store_path` allows; ``mode="r"`` opens an existing store read-only.
    """

    def __init__(self, path, mode="w"):
        if mode not in ("r", "w"):
            raise ValueError(f"mode must be 'r' or 'w', got {mode!r}")
        self.path = str(path)
        self.mode = mode
        check_store_path(self.path, mode)
        if mode == "r":
            self._connection = _read_only_connection(self.path)
            try:
                _inspect(self._connection, self.path)  # the file may have changed since the check
            except BaseException:
                self._connection.close()
                raise
            return
        try:
            # isolation_level=None: transactions are explicit (BEGIN ... COMMIT) below
            self._connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the store {self.path}: {error}") from None
        try:
            self._create_or_check()
            self._set_pragmas()
        except sqlite3.Error as error:
            self._connection.close()
            raise StoreError(f"cannot open the store {self.path}: {error}") from None
        except BaseException:
            self._connection.close()
            raise

    def _create_or_check(self):
        # inside one write transaction: a second writer creating the same store waits, then finds it made
        with self._transaction():
            kind = _inspect(self._connection, self.path)
            if kind == "new":
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._connection.execute(statement)
                self._connection.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif kind == "old":
                version = int(self._connection.execute("SELECT value FROM meta WHERE key = 'schema_version'")
                              .fetchone()[0])
                for later in range(version + 1, SCHEMA_VERSION + 1):
                    for table, columns in _ADDED_COLUMNS[later].items():
                        for column in columns:
                            self._connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} "
                                                     f"{_COLUMN_TYPES.get(column, 'TEXT')}")
                    for table in _ADDED_TABLES.get(later, ()):
                        self._connection.execute(_table_statement(table))
                self._connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                                         (str(SCHEMA_VERSION),))

    def _set_pragmas(self):
        for attempt in range(600):
            try:
                self._connection.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as error:
                # switching to WAL needs a moment alone with the file: wait for another writer's transaction
                if "locked" not in str(error) or attempt == 599:
                    raise
                time.sleep(0.1)
        # NORMAL in WAL mode: a committed transaction survives the process being killed
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute("PRAGMA foreign_keys=ON")

    def _transaction(self):
        connection = self._connection

        class Transaction:
            def __enter__(self):
                if connection.in_transaction:
                    # a write that a signal (a stopped sweep's SIGTERM) interrupted between its BEGIN and its
                    # COMMIT or ROLLBACK left its transaction open: none of it was committed, so it goes
                    connection.execute("ROLLBACK")
                connection.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind, value, traceback):
                if kind is None:
                    connection.execute("COMMIT")
                    return False
                try:
                    connection.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite has rolled back already (a full disk, an I/O error): the error raised says why
                return False

        return Transaction()

    @contextlib.contextmanager
    def _writing(self):
        """A write transaction whose SQLite error (a full disk, an I/O error) is a StoreError in one line.

        The transaction is rolled back whole, so the store keeps every run committed before it.
        """
        try:
            with self._transaction():
                yield
        except sqlite3.Error as error:
            reason = " ".join(str(error).split()) or type(error).__name__
            raise StoreError(f"cannot write to the store {self.path}: {reason} (is its disk full?); what it held "
                             "before is kept: run the same command again to resume once it can be written") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._connection.close()

    def begin_sweep(self, name, config, provenance):
        """Record one invocation; returns its sweep_id."""
        with self._writing():
            cursor = self._connection.execute(
                "INSERT INTO sweeps (name, started_at, config, provenance) VALUES (?, ?, ?, ?)",
                (name, _now(), json.dumps(config, sort_keys=True), json.dumps(provenance, sort_keys=True)))
        return cursor.lastrowid

    def run_ids(self, status=None):
        """The run_ids stored (with this status, if given)."""
        if status is None:
            rows = self._reading("SELECT run_id FROM runs")
        else:
            rows = self._reading("SELECT run_id FROM runs WHERE status = ?", (status,))
        return {row[0] for row in rows}

    def statuses(self, sweep_id):
        """{run_id: status} of the runs that sweep ``sweep_id`` stored."""
        return dict(self._reading("SELECT run_id, status FROM runs WHERE sweep_id = ?", (sweep_id,)))

    def _reading(self, query, parameters=()):
        """The rows of ``query``; an SQLite error (an I/O error, a file damaged meanwhile) as a StoreError."""
        try:
            return self._connection.execute(query, parameters).fetchall()
        except sqlite3.Error as error:
            raise StoreError(f"cannot read the store {self.path}: {' '.join(str(error).split())}") from None

    def forget(self, run_ids):
        """Delete runs (and their curves), e.g. failed ones to run again."""
        with self._writing():
            for run_id in run_ids:
                self._connection.execute("DELETE FROM curves WHERE run_id = ?", (run_id,))
                self._connection.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

    def add(self, sweep_id, result):
        """Store one finished run and its curve in one transaction; False if the store already held the run.

        Another sweep writing the same store may have stored it meanwhile: that row is kept as it is.
        """
        spec = result["spec"]
        row = dict(
            run_id=spec.run_id, sweep_id=sweep_id, dataset=spec.dataset, rule=spec.rule,
            learning_rate=spec.learning_rate, hyperparameters=json.dumps(dict(spec.hyperparameters), sort_keys=True),
            batch_size=str(spec.batch_size), seed=spec.seed, n_epochs=spec.n_epochs,
            hidden_layer_sizes=json.dumps(list(spec.hidden_layer_sizes)), activation=spec.activation,
            alpha=spec.alpha, dtype=spec.dtype, target_loss=spec.target_loss, rule_hash=spec.rule_hash,
            data_hash=spec.data_hash,
            **{column: result.get("provenance", {}).get(key) for column, key in RUN_PROVENANCE.items()},
            finished_at=_now(), phase=spec.phase, trial=spec.trial, budget=spec.budget, split=spec.split,
            validation_fraction=spec.validation_fraction, model=getattr(spec, "model", None),
            schedule=spec.schedule,
            **{key: result.get(key) for key in ("status", "error", "final_loss", "best_loss", "test_metric",
                                                "test_metric_name", "epochs_run", "diverged_epoch",
                                                "epochs_to_target", "seconds_to_target", "train_seconds",
                                                "wall_seconds", "validation_loss", "validation_metric",
                                                "test_loss")},
            batched=int(result.get("batched", False)))
        with self._writing():
            cursor = self._connection.execute(
                f"INSERT OR IGNORE INTO runs ({', '.join(_RUN_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_RUN_COLUMNS))})", [row[column] for column in _RUN_COLUMNS])
            if cursor.rowcount == 0:
                return False
            losses, seconds = result.get("losses", ()), result.get("seconds", ())
            objectives = result.get("objectives") or [None] * len(losses)
            self._connection.executemany(
                "INSERT INTO curves (run_id, epoch, loss, seconds, objective) VALUES (?, ?, ?, ?, ?)",
                [(spec.run_id, epoch + 1, float(loss), float(second), None if objective is None else float(objective))
                 for epoch, (loss, second, objective) in enumerate(zip(losses, seconds, objectives))])
        return True

    def _frame(self, query):
        import pandas as pd

        try:
            return pd.read_sql_query(query, self._connection)
        except (sqlite3.Error, pd.errors.DatabaseError) as error:
            # e.g. a file changed under a reader, or damaged: one line, not pandas' traceback
            raise StoreError(f"cannot read the store {self.path}: {' '.join(str(error).split())}") from None

    def runs_frame(self):
        frame = self._frame("SELECT * FROM runs ORDER BY dataset, rule, learning_rate, seed")
        # in this schema's order: an older store, read as it is, lacks columns (they read empty), and one a
        # writer migrated has them last
        frame = frame.reindex(columns=list(_RUN_COLUMNS))
        frame["hyperparameters"] = self._parsed(frame["hyperparameters"], "runs.hyperparameters")
        if frame[list(RUN_PROVENANCE)].isna().any().any():
            # runs stored before schema 4: what their sweep's provenance says (the sweep's client, which for local
            # workers is the same machine and code)
            made_by = self.sweeps_frame().set_index("sweep_id")["provenance"]
            provenances = frame["sweep_id"].map(made_by)
            for column, key in RUN_PROVENANCE.items():
                recorded = provenances.map(lambda provenance: provenance.get(key)
                                           if isinstance(provenance, dict) else None)
                frame[column] = frame[column].where(frame[column].notna(), recorded)
        # runs stored before schema 5 were all trained on the training rows and tested on the test rows
        frame["split"] = frame["split"].where(frame["split"].notna(), "test")
        # and before schema 6 with a constant learning rate
        frame["schedule"] = frame["schedule"].where(frame["schedule"].notna(), "constant")
        for column in _NUMERIC_RUN_COLUMNS:
            # SQLite stores what it is given: text in a number's column is damage, not a result
            if not frame[column].map(lambda value: value is None or (isinstance(value, (int, float))
                                                                     and not isinstance(value, bool))).all():
                raise StoreError(f"{self.path} is damaged: a value of runs.{column} is not a number")
        return frame

    def curves_frame(self):
        """One row per (run, epoch): the run's data set, rule, learning rate, batch size, seed and hyperparameters,
        the epoch, its loss, seconds and ``objective`` (NaN where not recorded, and in a store older than schema 7
        read as it is)."""
        columns = {row[1] for row in self._reading("PRAGMA table_info(curves)")}
        objective = "c.objective" if "objective" in columns else "NULL AS objective"
        frame = self._frame(
            "SELECT c.run_id, r.dataset, r.rule, r.learning_rate, r.batch_size, r.seed, r.hyperparameters, "
            f"c.epoch, c.loss, c.seconds, {objective} FROM curves c JOIN runs r USING (run_id) "
            "ORDER BY c.run_id, c.epoch")
        frame["objective"] = frame["objective"].astype(float)
        return frame

    def sweeps_frame(self):
        frame = self._frame("SELECT * FROM sweeps ORDER BY sweep_id")
        for column in ("config", "provenance"):
            frame[column] = self._parsed(frame[column], f"sweeps.{column}")
        return frame

    def put_artefact(self, name, content, provenance):
        """Store (or replace) the artefact ``name``: ``content`` and ``provenance`` JSON-serialisable."""
        if self.mode != "w":
            raise StoreError(f"the store {self.path} is open for reading: artefacts are written by a writer")
        try:
            text = json.dumps(content, sort_keys=True, default=_plain)
        except (TypeError, ValueError) as error:
            raise ValueError(f"artefact {name!r} cannot be stored as JSON: {error}") from None
        with self._writing():
            self._connection.execute("INSERT OR REPLACE INTO artefacts (name, made_at, provenance, content) "
                                     "VALUES (?, ?, ?, ?)", (name, _now(), json.dumps(provenance, sort_keys=True),
                                                             text))

    def artefacts(self):
        """{name: {"content", "made_at", "provenance"}} of the stored artefacts; empty for a store of schema 3 or
        older (read as it is, it has no such table)."""
        has_table = self._connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'artefacts'").fetchone()
        if not has_table:
            return {}
        frame = self._frame("SELECT * FROM artefacts ORDER BY name")
        contents = self._parsed(frame["content"], "artefacts.content")
        provenances = self._parsed(frame["provenance"], "artefacts.provenance")
        return {name: {"content": content, "made_at": made_at, "provenance": provenance}
                for name, content, made_at, provenance in zip(frame["name"], contents, frame["made_at"],
                                                              provenances)}

    def _parsed(self, column, name):
        """A column of JSON text as Python objects; StoreError naming the column when one is not JSON."""
        try:
            return column.map(json.loads)
        except (TypeError, ValueError):
            raise StoreError(f"{self.path} is damaged: a value of {name} is not JSON") from None

    def integrity_check(self):
        return self._connection.execute("PRAGMA integrity_check").fetchone()[0]


def load_runs(path):
    """Every stored run as a pandas DataFrame, one row per run."""
    with Store(path, mode="r") as store:
        return store.runs_frame()


def load_curves(path):
    """Every stored curve point as a pandas DataFrame, one row per (run, epoch)."""
    with Store(path, mode="r") as store:
        return store.curves_frame()


def _plain(value):
    """A NumPy scalar or array as the Python number or list JSON takes."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _table_statement(table):
    """The CREATE TABLE statement of ``table`` in :data:`_SCHEMA`."""
    return next(statement for statement in _SCHEMA.split(";") if f"CREATE TABLE {table} (" in statement)


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# what a run gave, compared when two stores hold the same run_id: the same run must have given the same; its
# seconds, provenance and finish time are where and when it ran, and may differ
RESULT_COLUMNS = ("status", "final_loss", "best_loss", "test_metric", "test_metric_name", "epochs_run",
                  "diverged_epoch", "epochs_to_target", "validation_loss", "validation_metric", "test_loss")
# losses agree to this relative difference: another machine's BLAS may round the last bits differently
MERGE_RTOL = 1e-9


def _same_result(mine, theirs):
    """True when two values of a result column (or two curves' losses) agree, NaN and None each equal to itself."""
    if isinstance(mine, float) or isinstance(theirs, float):
        if mine is None or theirs is None:
            return mine is theirs
        if mine != mine or theirs != theirs:  # NaN
            return mine != mine and theirs != theirs
        return abs(mine - theirs) <= MERGE_RTOL * max(abs(mine), abs(theirs))
    return mine == theirs


def _store_version(connection, path):
    return int(connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])


def merge(inputs, out):
    """Write the stores ``inputs`` merged into a new store ``out``; returns what was merged (see below).

    Every sweep, run (with its curve and its provenance) and artefact of each input is copied; a sweep or run
    stored in two inputs (the same ``run_id``, the same sweep row) is kept once, as the first input holds it;
    an artefact of the same name with different content is kept as the first input holds it and named in the
    result's ``artefacts_kept_first``. Refused with a one-line :class:`StoreError` before ``out`` exists: an input
    that is not a store, inputs of different schema versions, ``out`` existing already, the same run with
    different results in two inputs (its status, losses, metrics or curve: numbers to :data:`MERGE_RTOL`). The
    merged store is written to a temporary file beside ``out`` and linked to ``out`` at the end, never over a file.

    Returns ``{"runs": n, "sweeps": n, "artefacts": n, "duplicate_runs": n, "artefacts_kept_first": [names]}``.
    """
    inputs = [str(path) for path in inputs]
    out = str(out)
    if len(inputs) < 2:
        raise StoreError(f"merge takes two stores or more, got {len(inputs)}")
    if os.path.lexists(out):
        raise StoreError(f"{out} exists: the merged store is written to a new file, never over one")
    check_store_path(out)
    versions = {}
    for path in inputs:
        check_store_path(path, "r")
        connection = _read_only_connection(path)
        try:
            _inspect(connection, path)
            versions[path] = _store_version(connection, path)
        finally:
            connection.close()
    if len(set(versions.values())) > 1:
        described = ", ".join(f"{path} version {version}" for path, version in versions.items())
        raise StoreError(f"cannot merge stores of different schema versions ({described}): open the older ones "
                         f"with this fastgd's sweep first, which upgrades them to version {SCHEMA_VERSION}")
    with new_store_file(out, "merging", f"{out} exists: the merged store is written to a new file, never over "
                                         "one") as temporary:
        with Store(temporary) as merged:
            summary = _merge_into(merged, inputs, versions)
            merged._connection.execute("PRAGMA journal_mode=DELETE")  # one file to link: no -wal beside it
    return summary


@contextlib.contextmanager
def new_store_file(out, doing, exists_message):
    """A temporary file beside ``out`` to write a whole store into, linked to ``out`` when the block ends without
    an error, never over a file (a :class:`StoreError` of ``exists_message`` where ``out`` appeared meanwhile);
    the temporary file and its journals are removed in any case. ``doing`` names it (``.<doing>-*.db``)."""
    import tempfile

    handle, temporary = tempfile.mkstemp(prefix=f".{doing}-", suffix=".db", dir=os.path.dirname(os.path.abspath(out)))
    os.close(handle)
    try:
        yield temporary
        try:
            os.link(temporary, out)
        except FileExistsError:
            raise StoreError(exists_message) from None
    finally:
        for leftover in (temporary, temporary + "-wal", temporary + "-shm", temporary + "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)


def _merge_into(merged, inputs, versions):
    connection = merged._connection
    summary = {"runs": 0, "sweeps": 0, "artefacts": 0, "duplicate_runs": 0, "artefacts_kept_first": []}
    origin = {}  # run_id -> the input that gave it
    sweep_ids = {}  # a sweep row's content -> its sweep_id in the merged store
    with merged._writing():
        for path in inputs:
            source = _read_only_connection(path)
            try:
                version = versions[path]
                renumbered = {}
                for sweep_id, *content in source.execute(
                        "SELECT sweep_id, name, started_at, config, provenance FROM sweeps ORDER BY sweep_id"):
                    key = tuple(content)
                    if key not in sweep_ids:
                        sweep_ids[key] = connection.execute(
                            "INSERT INTO sweeps (name, started_at, config, provenance) VALUES (?, ?, ?, ?)",
                            key).lastrowid
                        summary["sweeps"] += 1
                    renumbered[sweep_id] = sweep_ids[key]
                columns = _columns_of_version("runs", version)
                curve_columns = [column for column in _columns_of_version("curves", version) if column != "run_id"]
                for values in source.execute(f"SELECT {', '.join(columns)} FROM runs ORDER BY run_id").fetchall():
                    row = dict(zip(columns, values))
                    curve = source.execute(f"SELECT {', '.join(curve_columns)} FROM curves WHERE run_id = ? "
                                           "ORDER BY epoch", (row["run_id"],)).fetchall()
                    if row["run_id"] in origin:
                        _check_same_run(connection, row, curve, origin[row["run_id"]], path)
                        summary["duplicate_runs"] += 1
                        continue
                    origin[row["run_id"]] = path
                    row["sweep_id"] = renumbered[row["sweep_id"]]
                    connection.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                                       list(row.values()))
                    connection.executemany(f"INSERT INTO curves (run_id, {', '.join(curve_columns)}) "
                                           f"VALUES (?, {', '.join('?' * len(curve_columns))})",
                                           [(row["run_id"], *point) for point in curve])
                    summary["runs"] += 1
                if "artefacts" in _tables_of_version(version):
                    for name, made_at, provenance, content in source.execute(
                            "SELECT name, made_at, provenance, content FROM artefacts ORDER BY name"):
                        held = connection.execute("SELECT content FROM artefacts WHERE name = ?", (name,)).fetchone()
                        if held is None:
                            connection.execute("INSERT INTO artefacts VALUES (?, ?, ?, ?)",
                                               (name, made_at, provenance, content))
                            summary["artefacts"] += 1
                        elif held[0] != content and name not in summary["artefacts_kept_first"]:
                            summary["artefacts_kept_first"].append(name)
            except sqlite3.Error as error:
                raise StoreError(f"cannot read the store {path}: {' '.join(str(error).split())}") from None
            finally:
                source.close()
    return summary


def _check_same_run(connection, row, curve, first, path):
    """StoreError naming the run when ``row`` (from ``path``) gave other results than the copy from ``first``."""
    present = [column for column in RESULT_COLUMNS if column in row]
    held = dict(zip(present, connection.execute(f"SELECT {', '.join(present)} FROM runs WHERE run_id = ?",
                                                (row["run_id"],)).fetchone()))
    held_curve = connection.execute("SELECT epoch, loss, objective FROM curves WHERE run_id = ? ORDER BY epoch",
                                    (row["run_id"],)).fetchall()
    differing = [column for column in present if not _same_result(held[column], row[column])]
    # a curve point is (epoch, loss, seconds[, objective]): schema 7's objective, compared where both recorded it
    if len(held_curve) != len(curve) or not all(
            epoch == other[0] and _same_result(loss, other[1])
            and (objective is None or len(other) < 4 or other[3] is None or _same_result(objective, other[3]))
            for (epoch, loss, objective), other in zip(held_curve, curve)):
        differing.append("curve")
    if differing:
        raise StoreError(f"run {row['run_id']} ({row['rule']} on {row['dataset']}, learning rate "
                         f"{row['learning_rate']:g}, seed {row['seed']}) is stored in {first} and {path} with "
                         f"different results ({', '.join(differing)}): not merged")
