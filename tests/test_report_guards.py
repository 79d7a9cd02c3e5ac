"""What fastgd report and compare refuse: a store where every run failed, and an output folder holding other
files than an earlier fastgd report (one line on stderr, exit status 2, nothing changed)."""

import pytest

from cli_harness import assert_refused
from fastgd import cli, sweep


def store_with_runs(path, statuses):
    """A store of a tiny sweep whose runs are stored with ``statuses`` ("failed" or a real run)."""
    config = sweep.parse(dict(name="tiny", datasets=["iris"], rules=["sgd", "adam"], learning_rates=[0.1],
                              seeds=[0], epochs=2, targets={"iris": 0.5}))
    specs = sweep.runs(config)
    with sweep.Store(path) as store:
        sweep_id = store.begin_sweep(config.name, dict(config.source, rules=list(config.rules)), {})
        for spec, status in zip(specs, statuses):
            if status == "failed":
                store.add(sweep_id, dict(spec=spec, status="failed", error=f"RuntimeError: {spec.rule} broke",
                                         losses=[], seconds=[], epochs_run=0, test_metric_name=None))
            else:
                store.add(sweep_id, sweep.execute_chunk([spec], batched=False)[0])
    return path


def test_a_store_where_every_run_failed_is_refused_in_one_line(tmp_path):
    store = store_with_runs(tmp_path / "s.db", ["failed", "failed"])
    assert_refused(["report", "--store", str(store), "--out", str(tmp_path / "out")], tmp_path,
                   f"every run in the store {store} failed, 2 of 2 (the first: RuntimeError: ")
    assert not (tmp_path / "out").exists()


def test_a_folder_of_other_files_is_not_written_into(tmp_path):
    from pathlib import Path

    store = store_with_runs(tmp_path / "s.db", ["ok", "ok"])
    folder = tmp_path / "users_folder"
    folder.mkdir()
    (folder / "index.html").write_text("<html>my own page</html>")
    (folder / "runs.csv").write_text("mine\n")
    for command in (["report", "--store", str(store), "--out", str(folder)],
                    ["compare", "--preset", "quick", "--out", str(folder)]):
        assert_refused(command, tmp_path, f"--out {folder} is a folder with other files in it and no earlier "
                                          "fastgd report")
    # the root folder is such a folder (checked directly: were the check to fail, a report would be written there)
    with pytest.raises(cli.CommandError, match="--out / is a folder with other files in it"):
        cli._check_report_directory(Path("/"), "--out")


def test_an_earlier_report_is_replaced(tmp_path):
    pytest.importorskip("seaborn")
    store = store_with_runs(tmp_path / "s.db", ["ok", "ok"])
    out = tmp_path / "out"
    assert cli.main(["report", "--store", str(store), "--out", str(out)]) == 0
    first = (out / "index.html").read_text()
    (out / "index.html").write_text(first.replace("Summary", "Summary (old)"))
    assert cli.main(["report", "--store", str(store), "--out", str(out)]) == 0
    assert "Summary (old)" not in (out / "index.html").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["report", "--store", str(store), "--out", str(empty)]) == 0
