"""The comparison report, used as a person would: the README's main command, then the page in a browser."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cli_harness import run_command
from fastgd import rules, sweep
from rule_cases import readme_plugin

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FIGURES = ["convergence", "learning_rate_sensitivity", "time_to_target", "intervals", "critical_difference",
           "performance_profile", "runtime_overhead", "throughput", "trajectories", "landscape"]


def fastgd_command(*arguments, cwd=None):
    return subprocess.run([sys.executable, "-m", "fastgd.cli", *arguments], capture_output=True, text=True,
                          timeout=900, cwd=cwd)


@pytest.fixture(scope="session")
def quick_report(tmp_path_factory):
    """The README's main command (fastgd compare), on the quick preset, with the README's own rule as a plugin.

    Made once per test session (about 80 s), in a background process from the session's first test on, and shared
    by pytest-xdist's workers (tests/quick_report.py). Every test only reads the folder; a test that changes a
    report works on its own copy (``shutil.copytree``).
    """
    import quick_report as made_once

    out, result, plugin = made_once.wait(tmp_path_factory)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result, plugin


def test_main_command_writes_every_figure_with_its_data(quick_report):
    out, result, _ = quick_report
    assert f"report: {out / 'index.html'}" in result.stdout
    for stem in FIGURES:
        for suffix in ("png", "svg", "csv"):
            path = out / f"{stem}.{suffix}"
            assert path.exists() and path.stat().st_size > 0, path
    assert (out / "sweep.db").exists() and (out / "runs.csv").exists()
    html = (out / "index.html").read_text()
    for stem in FIGURES:
        assert f'src="{stem}.png"' in html
    assert "Summary" in html and "Gradient checks" in html and "Machine and versions" in html
    # long steps say what they are doing
    assert "1/4 sweep" in result.stderr and "4/4 report" in result.stderr


def test_summary_gives_each_winner_with_its_test_and_the_speed_ups(quick_report):
    import html as markup

    import pandas as pd

    from fastgd.sweep import stats

    out, _, _ = quick_report
    html = (out / "index.html").read_text()
    runs = sweep.load_runs(out / "sweep.db")
    finished = runs[runs["status"] != "failed"]
    for row in stats.winners(finished).itertuples():
        assert markup.escape(row.verdict) in html
        # which pairs differ over seeds, which do not
        assert f"{row.dataset}, epochs to target (Mann-Whitney U over seeds, Holm-corrected): " in html
    assert "fastest to the target" not in html.split('id="convergence"')[0]  # no winner without its test
    assert "Across data sets, ranks on epochs to target: " in html
    from fastgd import baselines

    # each peer's speed-up is quoted with its spread over repeats, or named unreliable where the repeats disagree
    for label, installed in (("the NumPy reference", True), ("scikit-learn", True),
                             ("JAX + optax", baselines.jax_available())):
        said = f"faster than {label}" in html or f"Unreliable, not quoted: fastgd against {label}" in html
        assert said == installed, label
    assert "every implementation on 1 thread" in html
    repeats = pd.read_csv(out / "throughput_training_repeats.csv")
    assert (repeats.groupby(["dataset", "implementation"]).size() == 3).all()  # the quick preset's three repeats
    # bandwidth shares are of a ceiling measured at the steps' own size, not of main memory's triad
    machine = json.loads((out / "throughput_machine.json").read_text())
    steps = pd.read_csv(out / "throughput_steps.csv")
    assert machine["in_place_parameters"] == steps["parameters"].max()
    assert f"Update steps at {steps['parameters'].max():,} float32 parameters move data at" in html


@pytest.mark.parametrize("cache, where", [(64 * 2 ** 20, "fits the 64 MiB last-level cache"),
                                          (2 ** 20, "exceeds the 1 MiB last-level cache: main memory"),
                                          (None, None)])
def test_the_steps_shares_say_where_their_references_stream_from(cache, where):
    import pandas as pd

    from fastgd.report.text import limit_lines

    steps = pd.DataFrame([dict(rule="sgd", parameters=10 ** 6, implementation="fastgd", bytes_per_second=9e10,
                               arrays_written=1),
                          dict(rule="adam", parameters=10 ** 6, implementation="fastgd", bytes_per_second=4.5e10,
                               arrays_written=3)])
    machine = {"in_place_bytes_per_second": {"1": 1e11, "3": 9e10}, "in_place_parameters": 10 ** 6,
               "last_level_cache_bytes": cache, "triad_bytes_per_second": 3e10, "gemm_flops_float64": 1.5e11,
               "gemm_flops_at_network_sizes": {"float64": {"64-32-10/32": 6e9}}}
    steps_line, gemm_line = limit_lines({"steps": steps, "machine": machine, "training": pd.DataFrame()})
    assert "at 50% (adam) to 90% (sgd) of the in-place read-modify-write bandwidth" in steps_line
    assert "1 array 100 GB/s, 3 arrays 90 GB/s" in steps_line and "triad" in steps_line and "30 GB/s" in steps_line
    assert (where in steps_line) if where else "last-level cache" not in steps_line
    assert "2048² is float64 150 GFLOP/s" in gemm_line and "64-32-10/32 float64 6.0" in gemm_line
    assert "above 100%" not in steps_line
    # a step faster than its own reference: the reference was measured low, and the line says the shares bound nothing
    busy = dict(machine, in_place_bytes_per_second={"1": 6e10, "3": 9e10})
    busy_line, _ = limit_lines({"steps": steps, "machine": busy, "training": pd.DataFrame()})
    assert "to 150% (sgd) of the in-place" in busy_line
    assert "a share above 100% means the reference was measured below what a step reached" in busy_line


def test_figure_data_is_what_the_figures_claim(quick_report):
    import pandas as pd

    out, _, _ = quick_report
    profile = pd.read_csv(out / "performance_profile.csv")
    assert profile["share"].between(0, 1).all() and (profile["tau"] >= 1).all()
    throughput = pd.read_csv(out / "throughput_training.csv")
    from fastgd import baselines

    installed = {implementation for implementation in baselines.IMPLEMENTATIONS if baselines.available(implementation)}
    assert set(throughput["implementation"]) == installed >= {"fastgd", "numpy", "sklearn"}
    assert (throughput["samples_per_second"] > 0).all()
    trajectories = pd.read_csv(out / "trajectories.csv")
    assert set(trajectories["function"]) == {"rosenbrock", "beale", "saddle"}


def test_running_compare_again_resumes_the_sweep(quick_report, tmp_path):
    out, _, plugin = quick_report
    copy = tmp_path / "again"
    shutil.copytree(out, copy)
    result = fastgd_command("compare", "--preset", "quick", "--out", str(copy), "--jobs", "1", "--skip-throughput",
                            "--plugin", str(plugin))
    assert result.returncode == 0, result.stderr[-3000:]
    n_rules = sum(rules.is_builtin(name) for name in rules.RULES) + 1  # the built-ins and the README's rule
    assert f"0 new runs, {8 * n_rules} already stored" in result.stderr  # 8 runs each
    # the throughput measured by the first compare stays, and says when and with what it was measured
    assert "3/4 throughput: not measured (the report keeps the throughput stored before: measured " in result.stderr
    html = (copy / "index.html").read_text()
    assert html.count("<p>Measured ") == 1 and "measures it again" not in html  # same code, same machine


def test_the_landscape_command_draws_what_the_report_stores(tmp_path, monkeypatch):
    """fastgd landscape trains and samples as fastgd.landscape.trained_landscape (the report's artefact) does, with
    its budgets: the same losses on the same grid, and it says what was trained."""
    pytest.importorskip("seaborn", reason="the report extra is not installed")
    import pandas as pd

    from fastgd import cli, datasets, landscape

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(landscape, "TRAINING_BUDGET", 1)  # any set: the epochs are cut to the fewest
    cli.main(["landscape", "--dataset", "iris", "--epochs", "30", "--hidden", "5", "--seed", "3", "--out", "land"])
    expected = landscape.trained_landscape(datasets.load("iris"), (5,), "relu", 1e-4, "adam", 3e-3, 30, 32, 1.0, 3)
    assert expected["n_epochs"] == landscape.MIN_EPOCHS < 30
    drawn = pd.read_csv(tmp_path / "land" / "landscape.csv")
    assert sorted(drawn["alpha"].unique()) == pytest.approx(expected["grid_alphas"])
    plane = np.asarray(expected["plane"])
    for row in drawn.sample(20, random_state=0).itertuples():
        i, j = expected["grid_alphas"].index(row.alpha), expected["grid_betas"].index(row.beta)
        assert row.loss == pytest.approx(plane[j, i], rel=1e-12)


def test_the_landscape_command_draws_a_known_networks_landscape(tmp_path, monkeypatch, capsys):
    """fastgd landscape --network trains the declared network as trained_landscape does and draws its losses; the
    MLP's options are refused beside it, in one line."""
    pytest.importorskip("seaborn", reason="the report extra is not installed")
    import pandas as pd

    from fastgd import cli, datasets, landscape, networks

    monkeypatch.chdir(tmp_path)
    for name, value in [("TRAINING_BUDGET", 1), ("LANDSCAPE_ROWS", 100), ("PLANE_POINTS", 3),
                        ("MIN_PLANE_POINTS", 3)]:
        monkeypatch.setattr(landscape, name, value)
    assert cli.main(["landscape", "--dataset", "digits", "--network", "digits_cnn", "--seed", "2", "--out",
                     "land"]) == 0
    assert "trained digits_cnn (6,090 parameters) on 100 of the" in capsys.readouterr().out
    expected = landscape.trained_landscape(datasets.load("digits"), optimizer="adam", lr=3e-3, seed=2,
                                           network=networks.known("digits_cnn"), model="digits_cnn")
    drawn = pd.read_csv(tmp_path / "land" / "landscape.csv")
    assert len(drawn) == 9 and sorted(drawn["loss"]) == pytest.approx(sorted(np.ravel(expected["plane"])),
                                                                      rel=1e-12)
    assert cli.main(["landscape", "--dataset", "digits", "--network", "digits_cnn", "--hidden", "4"]) != 0
    assert "--hidden is for the MLP; --network digits_cnn declares its own layers" in capsys.readouterr().err


def test_stored_throughput_says_when_and_with_what_it_was_measured():
    from fastgd.report.sections import MACHINE, THROUGHPUT, throughput_provenance

    here = dict(fastgd="0.1.0", git_commit="a" * 40, host="box", cpu="Xeon", cpu_count=2)
    artefacts = {THROUGHPUT: dict(content={}, made_at="2026-11-01T10:00:00", provenance=here),
                 MACHINE: dict(content={}, made_at="2026-11-30T10:00:00", provenance=dict(here, numba_threads=1))}
    line, warning = throughput_provenance(artefacts)
    assert line == "Measured 2026-11-01T10:00:00 by fastgd 0.1.0 at commit aaaaaaaaaa on Xeon × 2 (box)."
    assert warning is None  # same code on the same machine: comparable
    for key, value in (("git_commit", "b" * 40), ("host", "other"), ("cpu_count", 8)):
        artefacts[MACHINE]["provenance"] = dict(here, **{key: value})
        _, warning = throughput_provenance(artefacts)
        assert warning.startswith("the throughput was measured 2026-11-01T10:00:00 by fastgd 0.1.0 at commit "
                                  "aaaaaaaaaa on Xeon × 2 (box), the store's other measurements 2026-11-30T10:00:00")
        assert warning.endswith("fastgd compare without --skip-throughput measures it again")
    del artefacts[MACHINE]
    assert throughput_provenance(artefacts)[1] is None
    assert throughput_provenance({}) == (None, None)


def test_a_users_rule_joins_every_figure_in_its_own_colour(quick_report):
    import pandas as pd

    out, _, _ = quick_report
    html = (out / "index.html").read_text()
    assert "signum" in html
    for stem in ("convergence", "learning_rate_sensitivity", "trajectories"):
        assert "signum" in set(pd.read_csv(out / f"{stem}.csv")["rule"]), stem
    runs = sweep.load_runs(out / "sweep.db")
    assert (runs["rule"] == "signum").sum() == 8 and runs.loc[runs["rule"] == "signum", "rule_hash"].nunique() == 1


def test_report_renders_in_a_headless_browser(quick_report, tmp_path):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    playwright = pytest.importorskip("playwright.sync_api")
    out, _, _ = quick_report
    console_errors, requests = [], []
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
        page.on("pageerror", lambda error: console_errors.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto((out / "index.html").as_uri(), wait_until="load")
        widths = page.evaluate("Array.from(document.images).map(image => [image.getAttribute('src'), "
                               "image.complete, image.naturalWidth])")
        title = page.title()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert len(widths) == len(FIGURES)
    assert all(complete and width > 0 for _, complete, width in widths), widths
    assert console_errors == []
    assert all(url.startswith("file://") for url in requests), "the page fetched something from the network"
    assert title == "fastgd: optimizer comparison"
    assert (tmp_path / "report.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def mixed_report(tmp_path_factory):
    """``fastgd report`` over a store of two sweeps of iris: a hostile sweep name, and different epoch counts."""
    pytest.importorskip("seaborn")
    root = tmp_path_factory.mktemp("mixed")
    for name, epochs in (("<script>alert('x')</script>", 3), ("longer", 5)):
        config = sweep.parse(dict(name=name, datasets=["iris"], rules=["sgd", "adam"], learning_rates=[0.1],
                                  seeds=[0], epochs=epochs, targets={"iris": 0.5}))
        sweep.run_sweep(config, root / "s.db", jobs=1, progress=False)
    before = {path.name: path.read_bytes() for path in root.iterdir()}
    result = fastgd_command("report", "--store", str(root / "s.db"), "--out", str(root / "out"))
    assert result.returncode == 0, result.stderr[-3000:]
    after = {path.name: path.read_bytes() for path in root.iterdir() if path.name != "out"}
    return (root / "out" / "index.html").read_text(), result, before == after


def _refuse(what):
    def refuse(*args, **kwargs):
        raise AssertionError(f"the report computed {what}")

    return refuse


def test_a_store_copied_elsewhere_gives_the_same_report_and_computes_nothing(quick_report, tmp_path, monkeypatch):
    import platform

    import pandas as pd

    import fastgd.machine
    import fastgd.baselines.throughput
    import fastgd.sweep.measure
    from fastgd import datasets, functions, landscape, training

    out, _, _ = quick_report
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(out / "sweep.db", elsewhere / "sweep.db")  # the store alone: no throughput files beside it
    for owner, name in [(training.Training, "run"), (functions, "trajectory"), (functions, "best_learning_rate"),
                        (functions, "value_and_gradient"), (fastgd.sweep.measure, "gradient_checks"),
                        (landscape, "trained_landscape"), (landscape, "line"), (landscape, "plane"),
                        (fastgd.baselines.throughput, "measure"),
                        (fastgd.machine, "provenance"), (fastgd.sweep.measure, "describe_machine"),
                        (platform, "platform")]:
        monkeypatch.setattr(owner, name, _refuse(f"{owner.__name__}.{name}"))
    code, stdout, stderr = run_command(["report", "--store", elsewhere / "sweep.db", "--out", elsewhere / "report"],
                                       tmp_path)
    assert code == 0, stderr
    report = elsewhere / "report"
    html = (report / "index.html").read_text()
    for stem in FIGURES:
        assert f'src="{stem}.png"' in html
    # the same data behind every figure as in the report compare wrote where it measured
    for stem in ("throughput", "trajectories", "landscape"):
        pd.testing.assert_frame_equal(pd.read_csv(report / f"{stem}.csv"), pd.read_csv(out / f"{stem}.csv"))
    assert set(pd.read_csv(report / "landscape.csv")["dataset"]) == {"iris", "wine"}  # a landscape per data set
    rows = datasets.load("iris").X_train.shape[0]
    assert f"iris: 4-16-3 relu, 20 epochs of adam on {rows} rows" in html  # the sweep's network
    assert "signum" in set(pd.read_csv(report / "trajectories.csv")["rule"])  # its plugin is not loaded here
    assert html.count('class="pass"') + html.count('class="fail"') == 12  # every activation × output
    with sweep.Store(elsewhere / "sweep.db", mode="r") as store:
        machine = store.artefacts()["machine"]
    assert f"<dd>{machine['content']['platform']}</dd>" in html and f"<dd>{machine['made_at']}</dd>" in html
    assert "Not in this store." not in html and "missing:" not in stderr
    assert "Made by <code>fastgd</code> from the sweep store alone" in html


def test_a_store_without_the_artefacts_says_what_is_missing(mixed_report):
    page, result, _ = mixed_report
    for line in ["Throughput: not in this store; fastgd compare measures and stores it",
                 "Trajectories on the test functions: not in this store; fastgd compare stores them.",
                 "Loss landscape of iris: not in this store; fastgd compare stores one for each data set",
                 "Gradient checks: not in this store; fastgd compare stores them.",
                 "Machine description: not in this store; fastgd compare stores it."]:
        assert line in page and f"missing: {line}" in result.stderr
    assert 'src="trajectories.png"' not in page and 'src="landscape.png"' not in page
    assert "The machine fastgd compare ran on is not in\nthis store" in page


def test_a_landscape_of_a_large_set_is_made_on_a_sample_and_a_coarser_grid(monkeypatch):
    import numpy as np

    from fastgd import datasets, landscape

    data = datasets.load("synthetic-classification-3000x20")
    # as a large network would pass the real budgets
    monkeypatch.setattr(landscape, "LANDSCAPE_BUDGET", 1e8)
    monkeypatch.setattr(landscape, "TRAINING_BUDGET", 1.0)
    made = landscape.trained_landscape(data, hidden_layer_sizes=(16,), n_epochs=20)
    assert made["rows"] == landscape.LANDSCAPE_ROWS < made["training_rows"] == data.X_train.shape[0]
    assert made["n_epochs"] == landscape.MIN_EPOCHS
    assert len(made["grid_alphas"]) == landscape.MIN_PLANE_POINTS and len(made["alphas"]) == 21
    plane = np.array(made["plane"])
    assert plane.shape == (11, 11) and np.isfinite(plane).all() and made["line"][10] == plane[5, 5]
    monkeypatch.setattr(landscape, "LANDSCAPE_BUDGET", 1e12)
    assert len(landscape.trained_landscape(data, hidden_layer_sizes=(16,), n_epochs=1)["grid_betas"]) == 31


def test_text_from_the_store_is_escaped(mixed_report):
    page, _, _ = mixed_report
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page


def test_a_report_over_a_mixed_store_says_so(mixed_report):
    page, result, _ = mixed_report
    warning = "iris: the store mixes runs of different settings (n_epochs 3, 5)"
    assert "Mixed store." in page and warning in page
    assert f"warning: {warning}" in result.stderr
    # each configuration is its own row: one seed each, never "2 seeds" made of two settings
    assert "mean over 2 seeds" not in page
    # a verdict over one seed, or none where the best runs' budgets differ and one of them missed the target
    apart = "iris: no winner is named: the rules&#39; best runs were measured against different epoch budgets 3 and 5"
    assert ("mean over 1 seed)" in page) != (apart in page)


def test_a_report_writes_nothing_into_its_store(mixed_report):
    _, _, unchanged = mixed_report
    assert unchanged


def test_report_command_refuses_a_missing_store(tmp_path):
    result = fastgd_command("report", "--store", str(tmp_path / "none.db"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"fastgd report: error: --store: no fastgd store at {tmp_path / 'none.db'} " \
                                    "(no such file)"
    assert not (tmp_path / "out").exists()


def write_asv_result(directory, commit, date, value):
    machine = directory / "machine-a"
    machine.mkdir(parents=True, exist_ok=True)
    content = {"commit_hash": commit, "date": date, "version": 2, "result_columns": ["result", "params", "version"],
               "results": {"bench_step.TimeStep.time_step": [[value, 2 * value, None], [["1"]], "v"],
                           "bench_train.Track.track_loss": [[0.5], [], "v"]}}
    (machine / f"{commit[:8]}-env.json").write_text(json.dumps(content))
    (machine / "machine.json").write_text(json.dumps({"machine": "a"}))


def test_history_over_commits_from_asv_results(tmp_path):
    from fastgd.report.history import load_history

    results = tmp_path / "results"
    write_asv_result(results, "a" * 40, 1000, 1.0)
    write_asv_result(results, "b" * 40, 2000, 0.5)
    # files that are not asv results, or damaged ones, are skipped
    for name, content in (("list.json", []), ("numbers.json", {"commit_hash": 7, "results": {}}),
                          ("results-list.json", {"commit_hash": "c" * 40, "results": [1, 2]})):
        (results / "machine-a" / name).write_text(json.dumps(content))
    (results / "machine-a" / "binary.json").write_bytes(b"\xff\xfe\x00")
    history = load_history(results)
    step = history[history["benchmark"] == "bench_step.TimeStep.time_step"].sort_values("commit_order")
    # geometric mean over the parameter grid: sqrt(1 * 2) then sqrt(0.5 * 1); relative to the first commit
    assert step["value"].tolist() == pytest.approx([2**0.5, 0.5**0.5])
    assert step["relative"].tolist() == pytest.approx([1.0, 0.5])
    assert load_history(tmp_path / "empty").empty


def test_the_asv_history_is_stored_and_drawn_from_the_store_without_its_files(tmp_path):
    pytest.importorskip("seaborn")
    from fastgd.report.build import build_report
    from fastgd.report.sections import record_artefacts

    results = tmp_path / "results"
    write_asv_result(results, "a" * 40, 1000, 1.0)
    write_asv_result(results, "b" * 40, 2000, 0.8)
    config = sweep.parse(dict(name="tiny", datasets=["iris"], rules=["sgd"], learning_rates=[0.1], seeds=[0],
                              epochs=2, targets={"iris": 5.0}))
    sweep.run_sweep(config, tmp_path / "s.db", jobs=1, progress=False)
    record_artefacts(tmp_path / "s.db", asv_results=results)  # no configuration: no landscapes
    shutil.rmtree(results)
    # a later sweep into the store adds a rule whose trajectories were not made
    sweep.run_sweep(sweep.parse(dict(config.source, rules=["adam"])), tmp_path / "s.db", jobs=1, progress=False)
    html = build_report(tmp_path / "out", tmp_path / "s.db").read_text()
    assert 'src="history.png"' in html and f"2 commits with asv results in {results}." in html
    assert 'src="trajectories.png"' in html and "Loss landscape of iris: not in this store" in html
    assert "Trajectories of adam: not in this store; fastgd compare stores them" in html


@pytest.mark.parametrize("name, content, message", [
    ("landscape:iris", {"alphas": [0.0, 1.0], "line": [1.0], "grid_alphas": [0.0], "grid_betas": [0.0],
                        "plane": [[1.0]]}, "'landscape:iris' holds its losses do not match its coordinates"),
    ("trajectories", {"functions": {}, "paths": []}, "'trajectories' holds not functions and paths"),
    ("gradient_checks", [{"activation": "relu"}], "'gradient_checks' holds not rows of gradient checks"),
    ("throughput", {"frames": {"training": []}, "values": {}}, "'throughput' holds not throughput tables"),
])
def test_a_damaged_artefact_is_refused_in_one_line_before_anything_is_written(tmp_path, name, content, message):
    from cli_harness import assert_refused

    config = sweep.parse(dict(name="tiny", datasets=["iris"], rules=["sgd"], learning_rates=[0.1], seeds=[0],
                              epochs=2, targets={"iris": 5.0}))
    sweep.run_sweep(config, tmp_path / "s.db", jobs=1, progress=False)
    with sweep.Store(tmp_path / "s.db") as store:
        store.put_artefact(name, content, {})
    assert_refused(["report", "--store", "s.db", "--out", "out"], tmp_path,
                   f"--store: the store s.db is damaged: its artefact {message}")


def test_every_rule_keeps_one_distinct_look_however_many_there_are():
    pytest.importorskip("seaborn", reason="the report extra is not installed")
    from matplotlib.colors import to_rgb

    from fastgd import optim
    from fastgd.report import figures

    unknown = [f"rule_from_a_plugin_not_loaded_{i:02d}" for i in range(25)]
    styles = figures.rule_styles(unknown)
    from fastgd.sweep.solvers import SOLVERS

    # the registry's order, the whole-batch solvers (lbfgs), then the others by name
    assert list(styles) == list(optim.OPTIMIZERS) + list(SOLVERS) + unknown
    looks = [(tuple(style.colour), style.marker, style.dashes) for style in styles.values()]
    assert len(set(looks)) == len(looks)
    # in grey print, or to a reader who cannot tell the colours apart, marker and dashes alone tell 36 rules apart
    assert len({look[1:] for look in looks[:36]}) == 36
    assert figures.rule_styles()["adam"] == styles["adam"]  # a rule's look does not depend on who else is drawn
    assert figures.palette(unknown) == {rule: style.colour for rule, style in styles.items()}
    # the three: Signum, Adam and RAdam differ in marker or dashes, not only in a shade
    trio = [styles[rule] for rule in ("adam", "radam", "signum") if rule in styles]
    assert len({(style.marker, style.dashes) for style in trio}) == len(trio)
    # the colours are seaborn's colour-blind palette
    import seaborn as sns

    assert {to_rgb(style.colour) for style in styles.values()} <= {to_rgb(c) for c in sns.color_palette("colorblind")}


def test_every_figure_draws_a_rule_in_its_one_look(tmp_path, monkeypatch):
    """The lines of each rule in the figures carry its marker and dashes from rule_styles, not only its colour."""
    pytest.importorskip("seaborn")
    import matplotlib.figure
    from matplotlib.colors import to_rgb

    from fastgd.report import figures

    seen = []
    savefig = matplotlib.figure.Figure.savefig

    def saving(figure, *args, **kwargs):
        seen.extend(line for ax in figure.axes for line in ax.get_lines() if len(line.get_xdata()) > 1)
        return savefig(figure, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", saving)
    render(tmp_path, synthetic_frames({"adam": 5, "sgd": 30, "momentum": 12}, n_seeds=2))
    styles = figures.rule_styles()
    by_colour = {to_rgb(style.colour): style for rule, style in styles.items() if rule in ("adam", "sgd", "momentum")}
    drawn = [line for line in seen if to_rgb(line.get_color()) in by_colour]
    assert len(drawn) >= 3 * 4 * 2  # convergence: three rules on four data sets, against epochs and seconds
    for line in drawn:
        style = by_colour[to_rgb(line.get_color())]
        assert line.get_marker() == style.marker
        assert (line.get_linestyle() == "-") == (not style.dashes)


def test_a_pool_of_processes_draws_the_figures_drawn_here(tmp_path):
    """A report drawn by worker processes (``workers``) is the report drawn in turn here: the same page, the same data
    behind each figure and the same pixels, a rule of a plugin loaded only here in its own look."""
    pytest.importorskip("seaborn")
    from fastgd.report.build import render_report

    rules.load_plugins([rules.resolve_plugin(str(readme_plugin(tmp_path)))])
    try:
        runs, curves, sweeps = synthetic_frames({"signum": 12, "sgd": 30}, n_seeds=2, tuning=True)
        pages = [render_report(tmp_path / str(workers), runs, curves, sweeps, {}, workers=workers).read_text()
                 for workers in (1, 2)]
    finally:
        rules.unregister("signum")
    assert pages[0] == pages[1] and 'src="tuning.png"' in pages[0]
    files = sorted(path.name for path in (tmp_path / "1").iterdir() if path.suffix != ".svg")
    assert files == sorted(path.name for path in (tmp_path / "2").iterdir() if path.suffix != ".svg")
    assert len([name for name in files if name.endswith(".png")]) == 9
    for name in files:  # SVGs name their elements at random; PNGs carry no date
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes(), name


def test_figures_are_drawn_by_two_processes_only_where_a_core_is_idle(monkeypatch):
    # on the 2-core AMD EPYC a pool of two drew the lecture report in 0.64x the time quiet and 1.17x at load 2-3
    from fastgd import machine
    from fastgd.report.figures import drawing_workers

    monkeypatch.setattr(machine.os, "cpu_count", lambda: 2)
    readings = iter([1, 3, 1, 1, 2])  # this process alone, but for a moment: the median is taken
    assert machine.idle_cores(interval=0, runnable=lambda: next(readings)) == 1
    assert machine.idle_cores(interval=0, runnable=lambda: 2) == 0
    assert machine.idle_cores(interval=0, runnable=lambda: 7) == 0
    assert [drawing_workers(idle) for idle in (0, 1, 5)] == [1, 2, 2]
    assert machine.idle_cores(samples=1) in (0, 1)  # this machine's own reading, from /proc/loadavg


def test_a_report_draws_a_rule_whose_plugin_is_not_loaded_and_the_asv_history_when_results_exist(quick_report,
                                                                                                   tmp_path):
    """The quick report's store holds the README's rule: a report made without its plugin still draws it. One
    report (a fresh process draws the whole page, the longest part of each) checks the asv history figure too."""
    out, _, _ = quick_report
    copy = tmp_path / "with-history"
    shutil.copytree(out, copy)
    results = tmp_path / "results"
    write_asv_result(results, "a" * 40, 1000, 1.0)
    write_asv_result(results, "b" * 40, 2000, 0.8)
    result = fastgd_command("report", "--store", str(copy / "sweep.db"), "--out", str(tmp_path / "again"),
                            "--throughput", str(out), "--asv-results", str(results))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rules not registered here: signum" in result.stderr
    html = (tmp_path / "again" / "index.html").read_text()
    assert "Rules from plugins not loaded" in html and "signum" in html
    assert (tmp_path / "again" / "history.png").exists() and 'src="history.png"' in html


# --- the statistics in the page, on runs made to order -------------------------------------------------------------

SYNTHETIC_DATASETS = ["a", "b", "c", "d"]
TUNING_TRIALS = 6


def synthetic_frames(epochs, n_seeds=10, twins=(), tuning=False, phase_columns=True):
    """Runs, curves and sweeps frames as a store gives them: rule → epochs to the target loss 0.1 (±1 over seeds)
    on every data set, one learning rate, ``n_seeds`` seeds; each ``twins`` pair (rule, name) is the rule's runs
    again under a second name. ``tuning``: each rule also has tuning trials (phase "tune") that reach the target
    in one epoch and would win if the report counted them. ``phase_columns``: the columns tuning runs bring (a
    store from before them has none)."""
    import math

    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    runs, curves = [], []

    def add(row, epochs_to_target, seconds_per_epoch):
        run_id = len(runs) + 1
        rate = math.log(10.0 / 0.1) / epochs_to_target  # loss 10 at epoch 0, the target 0.1 at epochs_to_target
        losses = [10.0 * math.exp(-rate * epoch) for epoch in range(1, 51)]
        runs.append(dict(row, run_id=run_id, epochs_to_target=epochs_to_target,
                         seconds_to_target=epochs_to_target * seconds_per_epoch, final_loss=losses[-1],
                         best_loss=losses[-1]))
        curves.extend(dict(run_id=run_id, dataset=row["dataset"], rule=row["rule"],
                           learning_rate=row["learning_rate"], batch_size=32, seed=row["seed"], hyperparameters={},
                           epoch=epoch, loss=loss, seconds=epoch * seconds_per_epoch)
                      for epoch, loss in enumerate(losses, start=1))

    common = dict(sweep_id=1, batch_size=32, n_epochs=50, hidden_layer_sizes=[16], activation="relu", alpha=1e-4,
                  dtype="float64", target_loss=0.1, status="ok", test_metric_name="accuracy")
    for dataset in SYNTHETIC_DATASETS:
        for rule, mean_epochs in epochs.items():
            for seed in range(n_seeds):
                row = dict(common, dataset=dataset, rule=rule, learning_rate=0.1, hyperparameters={}, seed=seed,
                           test_metric=0.9 + 0.001 * rng.random(), rule_hash=rule, data_hash=dataset)
                if phase_columns:
                    row.update(phase="final", trial=None, budget=None, split="test", validation_loss=None,
                               validation_metric=None)
                add(row, float(mean_epochs + rng.integers(-1, 2)), 1e-3 * (1 + 0.1 * rng.random()))
                for original, twin in twins:
                    if rule == original:
                        add(dict(row, rule=twin, rule_hash=twin), runs[-1]["epochs_to_target"],
                            runs[-1]["seconds_to_target"] / runs[-1]["epochs_to_target"])
            for trial in range(1, TUNING_TRIALS + 1) if tuning else ():
                row = dict(common, dataset=dataset, rule=rule, learning_rate=10.0 ** -trial, hyperparameters={},
                           seed=100, test_metric=None, rule_hash=rule, data_hash=dataset, phase="tune",
                           trial=trial - 1,  # counted from 0, as the store does
                           budget="small", split="validation", validation_loss=1.0 / trial + 0.1 * rng.random(),
                           validation_metric=0.5)
                add(row, 1.0, 1e-4)
    sweeps = pd.DataFrame([dict(sweep_id=1, name="synthetic", started_at="", config={}, provenance={})])
    return pd.DataFrame(runs), pd.DataFrame(curves), sweeps


def render(tmp_path, frames):
    pytest.importorskip("seaborn")
    from fastgd.report.build import render_report

    runs, curves, sweeps = frames
    return render_report(tmp_path / "report", runs, curves, sweeps, {}).read_text()


def summary_of(page):
    return page.split('<h2 id="summary">')[1].split("</div>")[0]


def test_one_rule_under_two_names_is_found_no_different(tmp_path):
    page = render(tmp_path, synthetic_frames({"adam": 5, "sgd": 30}, twins=[("adam", "adam_twin")]))
    summary = summary_of(page)
    for dataset in SYNTHETIC_DATASETS:
        assert (f"<li>{dataset}: adam and adam_twin: no significant difference in seconds to target "
                "(Holm-corrected p = 1)") in summary
    assert "adam better than adam_twin" not in summary and "adam_twin better than adam" not in summary
    # both are significantly better than sgd on every data set, and the summary says so
    assert summary.count("adam better than sgd") == summary.count("adam_twin better than sgd") == 4
    assert "2 of 3 pairs not significantly different" not in summary and "1 of 3 pairs not significantly" in summary
    assert summary.count("Not significantly different from adam on epochs to target: adam_twin.") == 4
    assert "no difference over seeds can be significant" not in summary  # ten seeds can separate rules


def test_a_clear_winner_is_named_and_its_lead_is_significant(tmp_path):
    import pandas as pd

    # tuning trials reach the target in one epoch: counted, each would be its rule's best configuration (one seed,
    # no significant lead anywhere)
    page = render(tmp_path, synthetic_frames({"adam": 5, "momentum": 15, "sgd": 30}, tuning=True))
    summary = summary_of(page)
    for dataset in SYNTHETIC_DATASETS:
        assert f"<li>{dataset}: adam wins on epochs to target over momentum (" in summary
        line = summary.split(f"<li>{dataset}: adam wins")[1].split("</li>")[0]
        assert "p = 0.000" in line and "95% interval [" in line and "mean over 10 seeds" in line
        assert f"{dataset}, epochs to target (Mann-Whitney U over seeds, Holm-corrected): significant: " in summary
    assert "the rules differ (Friedman p = 0.0183) over 4 data sets" in summary
    assert "adam ahead of sgd" in summary and "adam ahead of momentum" not in summary  # the CD (1.66) decides
    assert summary.count("Every other rule is significantly behind adam.") == 4
    pairs = pd.read_csv(tmp_path / "report" / "pairwise.csv")
    assert len(pairs) == 3 * len(SYNTHETIC_DATASETS) and pairs["significant"].all()
    assert '<a href="pairwise.csv">pairwise.csv</a>' in page
    assert "epochs 1" not in summary and "at learning rate 0.1:" in summary


def test_the_statistics_sections_and_the_tuning_section_when_tuning_trials_exist(tmp_path):
    import numpy as np
    import pandas as pd

    page = render(tmp_path, synthetic_frames({"adam": 5, "momentum": 15, "sgd": 30}, tuning=True))
    report = tmp_path / "report"
    for stem in ("intervals", "critical_difference", "tuning", "performance_profile"):
        assert f'src="{stem}.png"' in page and (report / f"{stem}.csv").stat().st_size > 0
    # intervals: loss and test metric side by side, and epochs, of the final runs only (10 seeds)
    intervals = pd.read_csv(report / "intervals.csv")
    assert set(intervals["measure"]) == {"final_loss", "test_metric", "epochs_to_target"}
    assert (intervals["n_seeds"] == 10).all()
    assert "<th>final training loss</th><th>test metric</th><th>epochs to target</th>" in page
    assert page.count("<td>10</td></tr>") >= 12  # every data set × rule row counts its 10 seeds
    assert "AlgoPerf score, epochs to target" in page and "<td class=\"text\">adam</td><td>1.000</td>" in page
    # the score on seconds is the drawn profile integrated from τ = 1 to 4, over 3
    profile = pd.read_csv(report / "performance_profile.csv")
    table = page.split("<th>AlgoPerf score, seconds to target</th>")[1].split("</table>")[0]
    for rule, group in profile.groupby("rule"):
        taus = np.clip(np.append(group["tau"].to_numpy(), 4.0), 1.0, 4.0)
        area = float(np.sum(np.diff(taus) * group["share"].to_numpy())) / 3
        score = table.split(f'<td class="text">{rule}</td><td>')[1].split("</td><td>")[1].split("</td>")[0]
        assert float(score) == pytest.approx(area, abs=1e-3), rule
    # tuning: best-so-far validation loss per data set and rule after 1, 2, … trials, non-increasing
    tuning = pd.read_csv(report / "tuning.csv")
    assert len(tuning) == len(SYNTHETIC_DATASETS) * 3 * TUNING_TRIALS
    for _, group in tuning.groupby(["dataset", "rule"]):
        assert group["best_so_far"].is_monotonic_decreasing and group["trials"].tolist() == [1, 2, 3, 4, 5, 6]
    assert "<th>best validation loss</th>" in page and "Tuning budgets: not in this store" not in page
    assert f"{len(SYNTHETIC_DATASETS) * 3 * TUNING_TRIALS} of them tuning trials" in page


@pytest.mark.parametrize("phase_columns", [False, True], ids=["an older store", "no tuning trials"])
def test_without_tuning_trials_the_tuning_section_says_so(tmp_path, phase_columns):
    page = render(tmp_path, synthetic_frames({"adam": 5, "sgd": 30}, n_seeds=3, phase_columns=phase_columns))
    assert 'src="tuning.png"' not in page and not (tmp_path / "report" / "tuning.csv").exists()
    assert "Tuning budgets: not in this store; a tuning sweep" in page
    # three seeds cannot separate two rules (Mann-Whitney's smallest two-sided p is then 0.1): the summary says so
    assert "With 3 seeds per configuration at most, no difference over seeds can be significant" in page
    assert "adam better than sgd" not in page
    assert 'src="intervals.png"' in page and 'src="critical_difference.png"' in page


def test_a_store_of_tuning_trials_alone_is_refused():
    from fastgd.report.build import check_reportable

    runs, _, _ = synthetic_frames({"adam": 5, "sgd": 30}, n_seeds=1, tuning=True)
    with pytest.raises(ValueError, match="holds only tuning trials"):
        check_reportable(runs[runs["phase"] == "tune"], "s.db")


def figure_blocks(page):
    import re

    return re.findall(r"<figure>(.*?)</figure>", page, re.S)


def assert_every_figure_has_a_how_to_read_line(page):
    import re

    blocks = figure_blocks(page)
    assert len(blocks) == page.count("<img ")
    for block in blocks:
        line = re.search(r'<span class="how-to-read"><strong>How to read it:</strong> ([^<]+)</span>', block)
        assert line and len(line.group(1).split()) >= 8, block


def test_every_figure_has_a_how_to_read_line(tmp_path, quick_report):
    page = render(tmp_path, synthetic_frames({"adam": 5, "sgd": 30}, tuning=True))
    # convergence, rates, the trials' rates, time, overhead, intervals, ranks, profile, tuning
    assert len(figure_blocks(page)) == 9
    assert_every_figure_has_a_how_to_read_line(page)
    out, _, _ = quick_report
    assert_every_figure_has_a_how_to_read_line((out / "index.html").read_text())


def test_a_store_of_the_tuning_protocol_draws_its_trials_and_compares_the_final_runs_only(tmp_path):
    import pandas as pd

    pytest.importorskip("seaborn")
    from fastgd.report.build import build_report

    config = sweep.parse(dict(name="tiny-protocol", datasets=["iris"], rules=["sgd", "adam", "momentum"],
                              batch_sizes=[32], epochs=5, targets={"iris": 0.5},
                              tuning=dict(budget="small", final_seeds=10)))
    sweep.run_sweep(config, tmp_path / "s.db", jobs=1, progress=False)
    runs = sweep.load_runs(tmp_path / "s.db")
    assert set(runs["phase"]) == {"tune", "final"}
    page = build_report(tmp_path / "out", tmp_path / "s.db").read_text()
    tuning = pd.read_csv(tmp_path / "out" / "tuning.csv")
    assert len(tuning) == 3 * 8 and set(tuning["trials"]) == set(range(1, 9))
    # the intervals, the summary and the best settings are of the final runs: ten seeds, the chosen setting each
    intervals = pd.read_csv(tmp_path / "out" / "intervals.csv")
    assert (intervals["n_seeds"] == 10).all() and set(intervals["rule"]) == {"sgd", "adam", "momentum"}
    assert "mean over 10 seeds" in page or "iris: no rule reached" in page
    assert "24 of them tuning trials" in page


def test_the_line_on_pairs_lists_the_few_and_counts_the_many():
    import math

    import pandas as pd

    from fastgd.report.build import pairs_line

    def pairwise(significant):
        # held: True (significant), False (not), None (nothing to compare: both missed the target on every seed)
        return pd.DataFrame([dict(dataset="iris", rule_a=f"r{i}", rule_b=f"s{i}",
                                  pvalue=math.nan if held is None else 0.01 if held else 0.5,
                                  pvalue_holm=math.nan if held is None else 0.01 if held else 0.5,
                                  significant=bool(held), better=f"r{i}" if held else None)
                             for i, held in enumerate(significant)])

    few = pairs_line(pairwise([True] * 2 + [False] * 20), "iris")
    assert few.endswith("significant: r0 better than s0 (p = 0.01); r1 better than s1 (p = 0.01); 20 of 22 pairs not "
                        "significantly different.")
    most = pairs_line(pairwise([True] * 20 + [False] * 2), "iris")
    assert most.endswith("20 of 22 pairs differ significantly; not significantly different: r20 and s20 (p = 0.5); "
                         "r21 and s21 (p = 0.5).")
    many = pairs_line(pairwise([True] * 20 + [False] * 20), "iris")
    assert many.endswith("20 of 40 pairs differ significantly, 20 do not (every pair in pairwise.csv).")
    assert pairs_line(pairwise([False] * 3), "iris").endswith("no significant difference between any of the 3 "
                                                              "comparable pairs of rules.")
    # pairs of rules that both never reached the target are neither different nor alike: nothing to compare
    mixed = pairs_line(pairwise([True, False, None, None]), "iris")
    assert mixed.endswith("significant: r0 better than s0 (p = 0.01); 1 of 4 pairs not significantly different. 2 "
                          "pairs of rules that both missed the target on every seed: nothing to compare.")
    assert pairs_line(pairwise([None] * 3), "iris").endswith("nothing to compare: no rule reached the target on any "
                                                             "seed.")


def test_a_section_declared_once_is_stored_checked_and_drawn(tmp_path, monkeypatch):
    """A new report section is one Section in the registry: record_artefacts stores what it measures, the check
    refuses its content malformed, and the page draws it (or says it is not in the store), nothing else edited."""
    pytest.importorskip("seaborn")
    from fastgd.report import sections
    from fastgd.report.build import build_report

    def count_runs(measuring):
        return {"runs": int(len(measuring.runs)), "rules": sorted(set(measuring.runs["rule"]))}

    def problem(content):
        return None if isinstance(content.get("runs"), int) else "not a count of runs"

    def draw(page, content):
        if content is None:
            page.lack("Run count", "fastgd compare stores it")
            return
        page.add_text("run_count", "Run count", note=f"{content['runs']} runs of {', '.join(content['rules'])}.")

    run_count = sections.Section("run_count", measure=count_runs, problem=problem, draw=draw,
                                 measuring="counting the runs")
    config = sweep.parse(dict(name="tiny", datasets=["iris"], rules=["sgd", "adam"], learning_rates=[0.1],
                              seeds=[0], epochs=2, targets={"iris": 5.0}))
    store = tmp_path / "s.db"
    sweep.run_sweep(config, store, jobs=1, progress=False)

    declared = [*sections.SECTIONS, run_count]  # as if added to the registry's list
    monkeypatch.setattr(sections, "SECTIONS", declared)
    absent = build_report(tmp_path / "before", store).read_text()
    assert "Run count: not in this store; fastgd compare stores it." in absent and 'id="run_count"' not in absent

    said = []
    # measured alone: the other sections' measurements (gradient checks, trajectories) are not this test's
    monkeypatch.setattr(sections, "SECTIONS", [run_count])
    sections.record_artefacts(store, progress=said.append)
    assert said == ["counting the runs"]
    with sweep.Store(store, mode="r") as opened:
        stored = opened.artefacts()
    assert set(stored) == {"run_count"} and stored["run_count"]["content"] == {"runs": 2, "rules": ["adam", "sgd"]}

    monkeypatch.setattr(sections, "SECTIONS", declared)
    page = build_report(tmp_path / "after", store).read_text()
    assert '<a href="#run_count">Run count</a>' in page
    assert '<h2 id="run_count">Run count</h2>' in page and "2 runs of adam, sgd." in page
    assert "Run count: not in this store" not in page

    with sweep.Store(store) as opened:
        opened.put_artefact("run_count", {"runs": "two"}, {})
    with pytest.raises(ValueError, match=f"the store {store} is damaged: its artefact 'run_count' holds not a count "
                                         "of runs"):
        build_report(tmp_path / "damaged", store)
    with sweep.Store(store) as opened:
        opened.put_artefact("run_count", ["not", "a", "mapping"], {})  # problem() raises AttributeError on it
    with pytest.raises(ValueError, match="its artefact 'run_count' holds values of the wrong kind"):
        build_report(tmp_path / "damaged", store)
    assert not (tmp_path / "damaged").exists()
