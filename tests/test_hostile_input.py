"""Bad input, everywhere a user can type it or a file can hold it: refused in one line, before anything changes.

Each table runs the command line through ``cli_harness.assert_refused``: exit
status 2, one line on stderr naming the problem, and not a byte changed in the
working directory (no store, output folder or SQLite side file created, no
store or configuration written).
"""

import os
import sqlite3

import tomllib

import pytest

from cli_harness import TINY_SWEEP as GOOD, assert_refused, snapshot
from fastgd import sweep
from fastgd.sweep import runner
from fastgd.sweep.store import SCHEMA_VERSION, Store, StoreError


BAD_CONFIGURATIONS = {
    "repeated-rule.toml": GOOD.replace('rules = ["sgd"]', 'rules = ["sgd", "sgd"]'),
    "repeated-rate.toml": GOOD.replace("learning_rates = [0.1]", "learning_rates = [0.1, 1e-1]"),
    "repeated-seed.toml": GOOD.replace("seeds = [0]", "seeds = [3, 3]"),
    "huge-seed.toml": GOOD.replace("seeds = [0]", "seeds = [4294967296]"),
    "infinite-target.toml": GOOD.replace("iris = 0.5", "iris = inf"),
    "ignored-grid.toml": GOOD + "\n[hyperparameters.adam]\neps = [1e-3]\n",
    "unrunnable-dataset.toml": GOOD.replace('"iris"]', '"synthetic-classification-0x5"]').replace(
        "iris = 0.5", '"synthetic-classification-0x5" = 0.5'),
    "infinite-rate.toml": GOOD.replace("learning_rates = [0.1]", "learning_rates = [inf]"),
    "nan-rate.toml": GOOD.replace("learning_rates = [0.1]", "learning_rates = [nan]"),
    "astronomic.toml": GOOD.replace("learning_rates = [0.1]", f"learning_rates = {[0.1 + k for k in range(1000)]}")
                           .replace("seeds = [0]", f"seeds = {list(range(2000))}"),
}


def make_valid_store(path):
    """A fastgd store holding one (made-up) finished run."""
    spec = sweep.runs(sweep.parse(tomllib.loads(GOOD)))[0]
    with Store(path) as store:
        sweep_id = store.begin_sweep("tiny", {}, {})
        store.add(sweep_id, dict(spec=spec, status="ok", losses=[1.0, 0.5], seconds=[0.1, 0.2], epochs_run=2,
                                 final_loss=0.5, best_loss=0.5, test_metric=0.9, test_metric_name="accuracy"))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A working directory full of things that are not what they claim to be."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "good.toml").write_text(GOOD)
    for name, text in BAD_CONFIGURATIONS.items():
        (root / name).write_text(text)
    (root / "latin1.toml").write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    (root / "config-folder").mkdir()
    (root / "folder").mkdir()
    (root / "file.txt").write_text("a file, not a folder\n")
    (root / "text.db").write_text("these are not the runs you are looking for\n")
    (root / "random.db").write_bytes(os.urandom(4096))
    (root / "empty.db").write_bytes(b"")
    with sqlite3.connect(root / "foreign.db") as connection:  # another program's database, in WAL mode
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, distance REAL)")
        connection.execute("INSERT INTO runs (distance) VALUES (42.195)")
    connection.close()
    with sqlite3.connect(root / "no-tables.db") as connection:
        connection.execute("PRAGMA user_version = 7")
    connection.close()
    make_valid_store(root / "valid.db")
    make_valid_store(root / "newer.db")
    with sqlite3.connect(root / "newer.db") as connection:
        connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    connection.close()
    (root / "compare-out").mkdir()
    (root / "compare-out" / "sweep.db").write_text("not a store")
    assert not any(path.name.endswith(("-wal", "-shm")) for path in root.iterdir())
    return root


SWEEP_CASES = [
    # stores that are not fastgd's, or not files
    (["good.toml", "--store", "folder"], "--store: folder is a directory"),
    (["good.toml", "--store", "text.db"], "not a fastgd store: not an SQLite database"),
    (["good.toml", "--store", "random.db"], "not a fastgd store: not an SQLite database"),
    (["good.toml", "--store", "foreign.db"], "is an SQLite database but not a fastgd store (it has the tables runs"),
    (["good.toml", "--store", "newer.db"], f"written by a newer fastgd (store schema version {SCHEMA_VERSION + 1})"),
    (["good.toml", "--store", "missing/r.db"], "the directory"),
    (["good.toml", "--store", "file.txt/r.db"], "file.txt is not a directory"),
    (["good.toml", "--store", ""], "'' names no file"),
    (["good.toml", "--store", ":memory:"], "':memory:' names no file"),
    (["good.toml", "--store", "/dev/null"], "/dev/null is not a regular file"),
    # configurations that cannot be read
    (["config-folder", "--store", "r.db"], "config-folder is a directory, not a configuration file"),
    (["latin1.toml", "--store", "r.db"], "latin1.toml is not UTF-8 text"),
    (["missing.toml", "--store", "r.db"], "no such configuration file"),
    # configurations that read but could not run, or would mislead
    (["repeated-rule.toml", "--store", "r.db"], "'rules' lists 'sgd' twice"),
    (["repeated-rate.toml", "--store", "r.db"], "'learning_rates' lists 0.1 twice"),
    (["repeated-seed.toml", "--store", "r.db"], "'seeds' lists 3 twice"),
    (["huge-seed.toml", "--store", "r.db"], "seeds from 0 to 4294967295, got 4294967296"),
    (["infinite-target.toml", "--store", "r.db"], "target training loss for 'iris', got inf"),
    (["ignored-grid.toml", "--store", "r.db"], "[hyperparameters.adam] is for a rule not in 'rules'"),
    (["unrunnable-dataset.toml", "--store", "r.db"], "needs n_samples >= 8, got 0"),
    (["infinite-rate.toml", "--store", "r.db"], "learning rates, got inf"),
    (["nan-rate.toml", "--store", "r.db"], "learning rates, got nan"),
    (["astronomic.toml", "--store", "r.db"], "defines 2000000 runs, more than 1000000"),
    # the command line itself
    (["good.toml", "--preset", "quick", "--store", "r.db"], "give a CONFIG file or --preset, not both"),
    (["good.toml", "--store", "r.db", "--jobs", "0"], "argument --jobs: expected a positive integer"),
    (["good.toml", "--store", "r.db", "--jobs", "2", "--scheduler", "tcp://127.0.0.1:1"], "--jobs is for local"),
    (["good.toml", "--store", "r.db", "--scheduler", "nonsense::"], "cannot reach the Dask scheduler at nonsense::"),
    (["good.toml", "--preset", "huge", "--store", "r.db"], "argument --preset: invalid choice: 'huge'"),
    (["good.toml"], "the following arguments are required: --store"),
    (["--preset", "quick", "--target", "label", "--store", "r.db"],
     "--target is for a data file given with --dataset; without --dataset the preset runs on its own data sets"),
    (["good.toml", "--task", "regression", "--store", "r.db"], "--task is for a data file given with --dataset"),
    (["good.toml", "--categorical", "c", "--store", "r.db"], "--categorical is for a data file given with --dataset"),
]


@pytest.mark.parametrize("arguments, message", SWEEP_CASES, ids=[" ".join(a) for a, _ in SWEEP_CASES])
def test_sweep_refuses_bad_input_in_one_line_and_changes_nothing(hostile, arguments, message):
    assert_refused(["sweep", *arguments], hostile, message)


def test_an_unreachable_scheduler_is_refused_before_the_store_is_created(hostile, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(runner, "SCHEDULER_TIMEOUT_SECONDS", 1)
    assert_refused(["sweep", "good.toml", "--store", "r.db", "--scheduler", "tcp://127.0.0.1:1"], hostile,
                   "cannot reach the Dask scheduler at tcp://127.0.0.1:1")


REPORT_CASES = [
    (["--store", "text.db"], "not an SQLite database"),
    (["--store", "random.db"], "not an SQLite database"),
    (["--store", "foreign.db"], "not a fastgd store"),
    (["--store", "newer.db"], "written by a newer fastgd"),
    (["--store", "empty.db"], "empty.db is empty: not a fastgd store"),
    (["--store", "no-tables.db"], "an SQLite database without tables"),
    (["--store", "typo.db"], "no fastgd store at typo.db"),
    (["--store", "folder"], "folder is a directory"),
    (["--store", "valid.db", "--out", "file.txt"], "--out file.txt exists and is not a directory"),
    (["--store", "valid.db", "--out", "file.txt/report"], "file.txt is not a directory"),
    (["--store", "valid.db", "--throughput", "missing"], "--throughput: no directory at missing"),
    (["--store", "valid.db", "--throughput", "folder"], "--throughput: no throughput measurements in folder"),
    (["--store", "valid.db", "--asv-results", "missing"], "--asv-results: no asv results directory at missing"),
]


@pytest.mark.parametrize("arguments, message", REPORT_CASES, ids=[" ".join(a) for a, _ in REPORT_CASES])
def test_report_refuses_bad_input_in_one_line_and_changes_nothing(hostile, arguments, message):
    if "--out" not in arguments:
        arguments = [*arguments, "--out", "report"]
    assert_refused(["report", *arguments], hostile, message)


TRAIN_CASES = [
    (["--lr", "inf"], "argument --lr: expected a finite number, got 'inf'"),
    (["--lr", "nan"], "argument --lr: expected a finite number"),
    (["--lr", "-0.1"], "argument --lr: expected a positive number"),
    (["--lr", "0"], "argument --lr: expected a positive number"),
    (["--lr", "fast"], "argument --lr: expected a number, got 'fast'"),
    (["--alpha", "-1"], "argument --alpha: expected a number >= 0"),
    (["--alpha", "inf"], "argument --alpha: expected a finite number"),
    (["--clip-norm", "0"], "argument --clip-norm: expected a positive number"),
    (["--seed", "-1"], "argument --seed: expected a seed from 0 to 4294967295, got -1"),
    (["--seed", str(2 ** 32)], "argument --seed: expected a seed from 0 to 4294967295"),
    (["--epochs", "0"], "argument --epochs: expected a positive integer"),
    (["--batch-size", "-3"], "argument --batch-size: expected a positive integer"),
    (["--hidden", "0"], "argument --hidden: expected a positive integer"),
    (["--hidden", "100000000000", "100000000000"], "--hidden: a network of layer sizes"),
    (["--dataset", "mnist"], "--dataset: unknown dataset 'mnist'"),
    (["--dataset", "synthetic-classification-0x5"], "--dataset: a synthetic classification set needs n_samples"),
    (["--dataset", "synthetic-regression-99999999999x99999"], "GiB to make; this machine has"),
    (["--optimizer", "adamm"], "--optimizer: unknown optimizer 'adamm'"),
    (["--drop", "petal"], "--drop is for a data file; 'iris' is a data set fastgd knows by name"),
    (["--schedule", "warp"], "--schedule: schedule must be one of"),
    (["--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
    (["--activation", "softmax"], "--activation: unknown activation 'softmax'"),
    (["--colour", "blue"], "unrecognized arguments: --colour blue"),
]


@pytest.mark.parametrize("arguments, message", TRAIN_CASES, ids=[" ".join(a) for a, _ in TRAIN_CASES])
def test_train_refuses_bad_input_in_one_line(hostile, arguments, message):
    assert_refused(["train", "--dataset", "iris", "--epochs", "1", *arguments], hostile, message)


LANDSCAPE_CASES = [
    (["--optimizer", "adamm"], "--optimizer: unknown optimizer 'adamm'"),
    (["--lr", "-1"], "argument --lr: expected a positive number"),
    (["--lr", "nan"], "argument --lr: expected a finite number"),
    (["--extent", "nan"], "argument --extent: expected a finite number"),
    (["--extent", "0"], "argument --extent: expected a positive number"),
    (["--seed", "-1"], "argument --seed: expected a seed from 0"),
    (["--dataset", "imagenet"], "--dataset: unknown dataset 'imagenet'"),
    (["--hidden", "100000000000", "100000000000"], "--hidden: a network of layer sizes"),
    (["--out", "file.txt"], "--out file.txt exists and is not a directory"),
    (["--out", "file.txt/figures"], "cannot create --out file.txt/figures: "),
]


@pytest.mark.parametrize("arguments, message", LANDSCAPE_CASES, ids=[" ".join(a) for a, _ in LANDSCAPE_CASES])
def test_landscape_refuses_bad_input_in_one_line_and_creates_no_folder(hostile, arguments, message):
    if "--out" not in arguments:
        arguments = [*arguments, "--out", "landscape-out"]
    assert_refused(["landscape", "--dataset", "iris", "--epochs", "1", *arguments], hostile, message)


GRADCHECK_CASES = [
    (["--optimizer", "adamm"], "--optimizer: unknown optimizer 'adamm'"),
    (["--steps", "20000"], "argument --steps: expected a number of steps from 0 to 10000, got 20000"),
    (["--steps", "-1"], "argument --steps: expected a number of steps from 0 to 10000, got -1"),
    (["--steps", "many"], "argument --steps: expected an integer number of steps, got 'many'"),
    (["--lr", "inf"], "argument --lr: expected a finite number, got 'inf'"),
    (["--lr", "0"], "argument --lr: expected a positive number"),
    (["--network", "mnist_2c2d"], "--network: mnist_2c2d has 3,274,634 parameters; a gradient check takes six "
                                  "passes for each, so it takes networks of at most 20,000"),
    (["--network", "lenet"], "--network: no known network 'lenet'"),
]


@pytest.mark.parametrize("arguments, message", GRADCHECK_CASES, ids=[" ".join(a) for a, _ in GRADCHECK_CASES])
def test_gradcheck_refuses_bad_input_in_one_line(hostile, arguments, message):
    assert_refused(["gradcheck", *arguments], hostile, message)


COMPARE_CASES = [
    (["--out", "file.txt"], "--out file.txt exists and is not a directory"),
    (["--out", "compare-out"], "--out: compare-out/sweep.db is not a fastgd store"),
    (["--preset", "full"], "argument --preset: invalid choice: 'full'"),
    (["--jobs", "x"], "argument --jobs: expected a positive integer, got 'x'"),
    (["--preset", "quick", "--target", "label"], "--target is for a data file given with --dataset"),
]


@pytest.mark.parametrize("arguments, message", COMPARE_CASES, ids=[" ".join(a) for a, _ in COMPARE_CASES])
def test_compare_refuses_bad_input_in_one_line_and_changes_nothing(hostile, arguments, message):
    assert_refused(["compare", *arguments], hostile, message)


# plugins whose rules break the rule API's promises: refused when registered, before any data is read
_PLUGIN_HEAD = "import numpy as np\nfrom fastgd import rules\nTABLE = {'scale': 1.0}\n"
_PLUGIN_RULE = ("rules.register(rules.Rule('broken', element=element, hyperparameters={'lr': rules.LearningRate(0.1)}"
                "{extra}))\n")
BROKEN_PLUGINS = {
    "float_literal.py": ("def element(param, grad, lr):\n    return param - 0.5 * lr * grad\n", "",
                         "has the float literal 0.5 in `0.5 * lr`"),
    "numpy_call.py": ("def element(param, grad, lr):\n    return param - lr * np.sign(grad)\n", "",
                      "calls `np.sign` in `np.sign(grad)`"),
    "dict_global.py": ("def element(param, grad, lr):\n    return param - lr * grad * TABLE['scale']\n", "",
                       "reads the global 'TABLE', a dict"),
    "reserved_slot.py": ("def element(param, grad, hyper, lr):\n    return param - lr * grad, hyper\n",
                         ", state={'hyper': rules.State()}", "'hyper' is a name the generated code uses"),
    "exits.py": ("import sys\nsys.exit(0)\ndef element(param, grad, lr):\n    return param\n", "",
                 "called sys.exit(0): a plugin registers rules and returns"),
}


@pytest.mark.parametrize("name", BROKEN_PLUGINS)
def test_a_plugin_breaking_the_rule_api_is_refused_in_one_line(tmp_path, name):
    body, extra, message = BROKEN_PLUGINS[name]
    (tmp_path / name).write_text(_PLUGIN_HEAD + body + _PLUGIN_RULE.replace("{extra}", extra))
    assert_refused(["train", "--plugin", name, "--optimizer", "broken", "--epochs", "1"], tmp_path, message)
    from fastgd import rules

    assert "broken" not in rules.RULES


@pytest.mark.parametrize("arguments, message", [
    ([], "the following arguments are required: COMMAND"),
    (["fly"], "argument COMMAND: invalid choice: 'fly'"),
])
def test_top_level_errors_are_one_line(hostile, arguments, message):
    assert_refused(arguments, hostile, message)


@pytest.mark.parametrize("env, message", [
    ({"FASTGD_CACHE": "2"}, "environment: FASTGD_CACHE must be 0 or 1, got '2'"),
    ({"FASTGD_FASTMATH": "maybe"}, "environment: FASTGD_FASTMATH must be 0 or 1"),
    ({"FASTGD_PARALLEL_THRESHOLD": "lots"}, "environment: FASTGD_PARALLEL_THRESHOLD must be a positive integer"),
    ({"FASTGD_PARALLEL_THRESHOLD": "0"}, "FASTGD_PARALLEL_THRESHOLD must be an integer from 1 to"),
    ({"FASTGD_CUDA_BLOCK_SIZE": "4096"}, "FASTGD_CUDA_BLOCK_SIZE must be an integer from 1 to 1024, got 4096"),
    ({"FASTGD_CUDA_MAX_BLOCKS": "-5"}, "FASTGD_CUDA_MAX_BLOCKS must be a positive integer"),
    ({"FASTGD_PLUGINS": "/no/such/rules.py"}, "environment: FASTGD_PLUGINS: plugin file not found: /no/such/rules.py"),
    ({"FASTGD_PLUGINS": "no_such_module_of_rules"},
     "FASTGD_PLUGINS: plugin module 'no_such_module_of_rules' not found"),
    ({"FASTGD_NUM_THREADS": "zero"}, "environment: FASTGD_NUM_THREADS must be a positive integer, got 'zero'"),
    ({"FASTGD_NUM_THREADS": "100000"}, "environment: FASTGD_NUM_THREADS must be an integer from 1 to"),
    ({"FASTGD_NUM_THREAD": "1"}, "environment: FASTGD_NUM_THREAD is not a fastgd setting (did you mean "
                                 "FASTGD_NUM_THREADS?)"),
    ({"FASTGD_GENERATED_DIR": "file.txt"}, "environment: FASTGD_GENERATED_DIR: file.txt is not a directory"),
    ({"FASTGD_GENERATED_DIR": "file.txt/rules"}, "FASTGD_GENERATED_DIR: file.txt/rules cannot be made: "),
])
def test_bad_environment_settings_are_refused_in_one_line(hostile, env, message):
    assert_refused(["train", "--dataset", "iris", "--epochs", "1"], hostile, message, env=env, in_process=False)


def test_the_installed_command_prints_one_line_for_argparse_errors_too(hostile):
    line = assert_refused(["train", "--lr", "inf"], hostile, "argument --lr", in_process=False)
    assert line == "fastgd train: error: argument --lr: expected a finite number, got 'inf' (see fastgd train --help)"


# -- reading never writes ---------------------------------------------------------------------

@pytest.mark.parametrize("name, message", [
    ("typo.db", "no fastgd store at"),
    ("empty.db", "is empty: not a fastgd store"),
    ("foreign.db", "not a fastgd store"),
    ("text.db", "not an SQLite database"),
    ("newer.db", "newer fastgd"),
])
def test_loading_a_store_that_is_not_one_creates_and_changes_nothing(hostile, name, message):
    before = snapshot(hostile)
    for load in (sweep.load_runs, sweep.load_curves):
        with pytest.raises(StoreError, match=message):
            load(hostile / name)
    assert snapshot(hostile) == before


def test_reading_a_store_writes_nothing(hostile):
    before = snapshot(hostile)
    runs = sweep.load_runs(hostile / "valid.db")
    curves = sweep.load_curves(hostile / "valid.db")
    assert len(runs) == 1 and len(curves) == 2
    assert snapshot(hostile) == before  # not even SQLite's -wal and -shm files


def test_a_foreign_database_is_left_exactly_as_it_was(hostile):
    before = snapshot(hostile)
    with pytest.raises(StoreError, match="not a fastgd store"):
        Store(hostile / "foreign.db")
    with sqlite3.connect(f"file:{hostile / 'foreign.db'}?mode=ro&immutable=1", uri=True) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] != "memory"
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    connection.close()
    assert tables == {"runs"}
    assert snapshot(hostile) == before


@pytest.mark.parametrize("prepare", [
    lambda path: path.write_bytes(b""),
    lambda path: sqlite3.connect(path).execute("PRAGMA user_version = 1").connection.close(),
], ids=["empty-file", "database-without-tables"])
def test_a_writer_makes_a_store_of_an_empty_file(tmp_path, prepare):
    path = tmp_path / "r.db"
    prepare(path)
    with Store(path) as store:
        assert store.run_ids() == set() and store.integrity_check() == "ok"
    with Store(path, mode="r") as store:
        assert store.runs_frame().empty


@pytest.mark.parametrize("column, value, message", [
    ("hyperparameters", "{not json", "runs.hyperparameters is not JSON"),
    ("final_loss", "low", "runs.final_loss is not a number"),
])
def test_a_store_with_damaged_values_is_refused_in_one_line(tmp_path, column, value, message):
    make_valid_store(tmp_path / "r.db")
    with sqlite3.connect(tmp_path / "r.db") as connection:
        connection.execute(f"UPDATE runs SET {column} = ?", (value,))
    connection.close()
    assert_refused(["report", "--store", "r.db", "--out", "out"], tmp_path, message)


def test_storing_a_run_twice_stores_it_once(tmp_path):
    make_valid_store(tmp_path / "r.db")
    spec = sweep.runs(sweep.parse(tomllib.loads(GOOD)))[0]
    with Store(tmp_path / "r.db") as store:
        # another sweep's result for the same run: the stored one is kept, its curve too
        assert store.add(1, dict(spec=spec, status="failed", losses=[3.0], seconds=[1.0])) is False
        runs, curves = store.runs_frame(), store.curves_frame()
    assert list(runs["status"]) == ["ok"] and list(curves["loss"]) == [1.0, 0.5]
