"""``fastgd merge``: stores of several machines in one, each run once with its provenance; refusals write nothing."""

import shutil
import sqlite3

import pytest

from cli_harness import assert_refused, run_command
from fastgd import sweep
from fastgd.sweep.store import PROTOCOL_COLUMNS, SCHEMA_VERSION, StoreError, merge

TINY = dict(name="tiny", datasets=["iris"], rules=["sgd"], learning_rates=[0.1], batch_sizes=[16], epochs=2,
            targets={"iris": 0.5}, model={"hidden_layer_sizes": [4], "activation": "tanh"})


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A (seeds 0, 1) and B (seeds 1, 2): the seed-1 run is in both, trained twice the same way."""
    made = tmp_path_factory.mktemp("stores")
    for name, seeds in (("A.db", [0, 1]), ("B.db", [1, 2])):
        sweep.run_sweep(sweep.parse(dict(TINY, seeds=seeds)), made / name, jobs=1, progress=False)
    return made


@pytest.fixture
def copies(stores, tmp_path):
    for name in ("A.db", "B.db"):
        shutil.copy(stores / name, tmp_path / name)
    return tmp_path / "A.db", tmp_path / "B.db"


def execute(path, *statements):
    connection = sqlite3.connect(path)
    with connection:
        for statement, *parameters in statements:
            connection.execute(statement, *parameters)
    connection.close()


def test_merge_keeps_each_run_once_with_its_own_provenance(copies, tmp_path):
    a, b = copies
    execute(b, ("UPDATE runs SET cpu = 'the other machine', git_commit = 'abc123'",))
    with sweep.Store(a) as store:
        store.put_artefact("machine", {"cpu": "here"}, {"made": "A"})
        store.put_artefact("gradient_checks", {"ok": True}, {"made": "A"})
    with sweep.Store(b) as store:
        store.put_artefact("machine", {"cpu": "there"}, {"made": "B"})
        store.put_artefact("landscape", [1, 2], {"made": "B"})
    code, out, err = run_command(["merge", str(a), str(b), "--out", str(tmp_path / "C.db")], tmp_path)
    assert code == 0, err
    assert "3 runs (1 stored twice, kept once), 2 sweeps, 3 artefacts from 2 stores" in out
    assert "artefacts that differ, kept as the first store holds them: machine" in out

    runs = sweep.load_runs(tmp_path / "C.db").set_index("seed")
    runs_a, runs_b = (sweep.load_runs(path).set_index("seed") for path in (a, b))
    assert sorted(runs.index) == [0, 1, 2] and runs["run_id"].is_unique
    assert runs.loc[1, "run_id"] == runs_a.loc[1, "run_id"] == runs_b.loc[1, "run_id"]
    # each run as its store held it (the shared one as the first store did), its provenance included
    for seed, origin in ((0, runs_a), (1, runs_a), (2, runs_b)):
        for column in ("run_id", "final_loss", "test_metric", "cpu", "git_commit", "fastgd_version", "finished_at"):
            assert runs.loc[seed, column] == origin.loc[seed, column], (seed, column)
    assert runs.loc[2, "cpu"] == "the other machine" and runs.loc[1, "cpu"] != "the other machine"
    # each run points at the sweep that made it, renumbered in the merged store
    sweeps = sweep.Store(tmp_path / "C.db", mode="r").sweeps_frame().set_index("sweep_id")
    started = {seed: sweeps.loc[runs.loc[seed, "sweep_id"], "config"]["seeds"] for seed in (0, 1, 2)}
    assert started == {0: [0, 1], 1: [0, 1], 2: [1, 2]}
    curves = sweep.load_curves(tmp_path / "C.db")
    expected = sweep.load_curves(a)
    shared = curves[curves["run_id"] == runs.loc[1, "run_id"]]["loss"].tolist()
    assert shared == expected[expected["run_id"] == runs.loc[1, "run_id"]]["loss"].tolist() and len(shared) == 2
    assert len(curves) == 6
    with sweep.Store(tmp_path / "C.db", mode="r") as store:
        artefacts = store.artefacts()
        assert store.integrity_check() == "ok"
    assert artefacts["machine"]["content"] == {"cpu": "here"} and artefacts["landscape"]["content"] == [1, 2]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["A.db", "B.db", "C.db"]  # no temporary left


def test_a_store_merged_with_itself_is_itself(copies, tmp_path):
    a, _ = copies
    summary = merge([a, a], tmp_path / "C.db")
    assert summary == {"runs": 2, "sweeps": 1, "artefacts": 0, "duplicate_runs": 2, "artefacts_kept_first": []}
    columns = ["run_id", "final_loss", "cpu", "finished_at", "split"]
    assert (sweep.load_runs(tmp_path / "C.db")[columns].values.tolist()
            == sweep.load_runs(a)[columns].values.tolist())


def test_older_stores_of_one_version_merge_into_this_version(copies, tmp_path):
    for path in copies:
        execute(path, *[(f"ALTER TABLE runs DROP COLUMN {column}",)
                         for column in (*PROTOCOL_COLUMNS, "model", "schedule")],
                ("ALTER TABLE curves DROP COLUMN objective",),
                ("UPDATE meta SET value = '4' WHERE key = 'schema_version'",))
    merge(copies, tmp_path / "C.db")
    runs = sweep.load_runs(tmp_path / "C.db")
    assert len(runs) == 3 and runs["split"].tolist() == ["test"] * 3 and runs["phase"].isna().all()
    assert runs["schedule"].tolist() == ["constant"] * 3
    with sqlite3.connect(tmp_path / "C.db") as connection:
        version = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    connection.close()
    assert version == str(SCHEMA_VERSION)


def test_the_same_run_with_different_results_is_refused_and_nothing_is_written(copies, tmp_path):
    a, b = copies
    shared = sweep.load_runs(a).set_index("seed").loc[1, "run_id"]
    execute(b, ("UPDATE runs SET final_loss = final_loss * 1.001 WHERE run_id = ?", (shared,)))
    assert_refused(["merge", str(a), str(b), "--out", str(tmp_path / "C.db")], tmp_path,
                   f"run {shared} (sgd on iris, learning rate 0.1, seed 1) is stored in {a} and {b} with different "
                   "results (final_loss)")
    execute(b, ("UPDATE runs SET final_loss = final_loss / 1.001 WHERE run_id = ?", (shared,)),
            ("UPDATE curves SET loss = loss + 1 WHERE run_id = ? AND epoch = 2", (shared,)))
    assert_refused(["merge", str(a), str(b), "--out", str(tmp_path / "C.db")], tmp_path, "different results (curve)")
    # seconds are where a run ran: they may differ
    execute(b, ("UPDATE curves SET loss = loss - 1, seconds = seconds * 3 WHERE run_id = ? AND epoch = 2", (shared,)),
            ("UPDATE runs SET wall_seconds = 99.0 WHERE run_id = ?", (shared,)))
    assert merge([a, b], tmp_path / "C.db")["duplicate_runs"] == 1


def test_unmergeable_stores_are_refused_in_one_line(copies, tmp_path):
    a, b = copies
    out = str(tmp_path / "C.db")
    assert_refused(["merge", str(a), str(b), "--out", str(a)], tmp_path, f"{a} exists: the merged store is written "
                   "to a new file, never over one")
    assert_refused(["merge", str(a), "--out", out], tmp_path, "merge takes two stores or more, got 1")
    (tmp_path / "notes.txt").write_text("not a store")
    assert_refused(["merge", str(a), str(tmp_path / "notes.txt"), "--out", out], tmp_path,
                   "notes.txt is not a fastgd store")
    assert_refused(["merge", str(a), str(tmp_path / "missing.db"), "--out", out], tmp_path, "no fastgd store at")
    assert_refused(["merge", str(a), str(b), "--out", str(tmp_path / "nowhere" / "C.db")], tmp_path,
                   "does not exist")
    execute(b, *[(f"ALTER TABLE runs DROP COLUMN {column}",) for column in (*PROTOCOL_COLUMNS, "model", "schedule")],
            ("ALTER TABLE curves DROP COLUMN objective",),
            ("UPDATE meta SET value = '4' WHERE key = 'schema_version'",))
    assert_refused(["merge", str(a), str(b), "--out", out], tmp_path,
                   f"cannot merge stores of different schema versions ({a} version {SCHEMA_VERSION}, {b} version 4)")
    with pytest.raises(StoreError, match="different schema versions"):
        merge([a, b], out)
