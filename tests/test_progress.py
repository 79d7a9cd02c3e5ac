"""The sweep's progress line: an ETA only when enough runs past the first chunk tell the rate."""

import io

import pytest

from fastgd.sweep import progress as progress_module


@pytest.fixture
def now(monkeypatch):
    """The progress line's clock, set by the test: ``now[0]`` seconds."""
    clock = [0.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    return clock


def line_bar(total, **settings):
    """(a Progress writing a plain line at every update, the text it wrote)."""
    log = io.StringIO()
    bar = progress_module.Progress(total, label="s", stream=log, **settings)
    bar.LINE_EVERY_SECONDS = 0.0
    return bar, log


def test_the_sweeps_eta_waits_for_runs_past_the_first_and_leaves_their_compile_out(now):
    bar, log = line_bar(100)
    now[0] = 60.0  # the first chunk of 4 runs: a minute, mostly compiling
    bar.update(4)
    now[0] = 61.0  # one more run a second later: too few to tell
    bar.update(1)
    now[0] = 63.0  # two more: three runs in three seconds since the first chunk, 93 left
    bar.update(2)
    lines = log.getvalue().splitlines()
    assert lines[0] == "s: 4/100 done" and lines[1] == "s: 5/100 done"
    # a second a run over the 93 left: 0:01:33, not the 25 minutes the first chunk's rate (15 s a run) would give
    assert lines[2] == "s: 7/100 done, ETA 0:01:33"


def test_with_work_per_item_the_eta_is_of_work_not_of_items(now):
    # 10 cheap items (1 unit each) then 2 costly ones (45 units each): 100 units in all
    bar, log = line_bar(12, work=100.0)
    now[0] = 30.0
    bar.update(2, work=2.0)  # the first chunk: compiling, left out of the rate
    now[0] = 38.0
    bar.update(8, work=8.0)  # 8 units in 8 s; 90 left, and only 2 items
    assert log.getvalue().splitlines()[-1] == "s: 10/12 done, ETA 0:01:30"  # by items it would say 0:00:02


def test_with_the_items_own_seconds_the_eta_models_them_and_the_compiling_still_to_come(now):
    # 5 rules of 12 runs each (4 chunks of 3), on 2 workers side by side
    bar, log = line_bar(60, work=600.0, groups=5, workers=2)
    # chunks cost 0.5 s a run plus 0.1 s a unit of work, and a rule's first chunk 20 s more of compiling
    cost = dict(items=0.5, work=0.1)

    def chunk(work, compiling, new_groups, wall_per_second=1.0):
        seconds = cost["items"] * 3 + cost["work"] * work + compiling
        now[0] += seconds / 2 * wall_per_second  # the two workers side by side
        bar.update(3, work=work, compile_seconds=compiling, new_groups=new_groups, seconds=seconds)

    chunk(30.0, 20.0, 1)
    chunk(10.0, 0.0, 0)
    assert log.getvalue().splitlines()[-1] == "s: 6/60 done"  # two chunks: too few to tell
    chunk(50.0, 0.0, 0)
    chunk(30.0, 20.0, 1)
    # left: 48 runs (24 s), 480 units of work (48 s), 3 rules' compiling (60 s): 132 s on 2 workers
    assert log.getvalue().splitlines()[-1] == "s: 12/60 done, ETA 0:01:06"
    # a chunk whose wall time is four times what its own seconds say (storing, traffic): the ETA stretches
    chunk(20.0, 0.0, 0, wall_per_second=4.0)
    # since the start, 36 s of wall (12.25 + 1.25 + 3.25 + 12.25 + 7) for 30.75 s of the chunks' (61.5 s on 2
    # workers); left: 45 runs (22.5 s), 460 units (46 s), 60 s of compiling: 128.5 s / 2 × 36 / 30.75 = 75.2 s
    assert log.getvalue().splitlines()[-1] == "s: 15/60 done, ETA 0:01:15"


def test_a_runs_work_is_its_epochs_rows_and_multiply_adds():
    from fastgd import datasets
    from fastgd.kernels.network import multiply_adds_per_sample
    from fastgd.networks import known
    from fastgd.sweep import load_preset, plan
    from fastgd.sweep.runner import run_work

    config = load_preset("suite", problem_names=["logreg_digits", "digits_cnn"])
    specs = plan.runs(config)
    work = run_work(config, specs)
    logreg = next(spec for spec in specs if spec.dataset == "logreg_digits")
    cnn = next(spec for spec in specs if spec.dataset == "digits_cnn")
    rows = int(datasets.load("digits").X_train.shape[0] * (1 - logreg.validation_fraction))
    # full batches of a 64-10 linear model: 640 multiply-adds a sample, one step over its 650 parameters an epoch
    assert work[logreg.run_id] == logreg.n_epochs * (3.0 * rows * 640 + 650)
    # digits_cnn: conv 16·9·64, relu 16·64, pool (its 16·64 inputs), conv 32·144·16, relu 32·16, pool 32·16,
    # flatten 128, dense 128·10
    assert multiply_adds_per_sample(known("digits_cnn").plan) == (
        16 * 9 * 64 + 16 * 64 + 16 * 64 + 32 * 144 * 16 + 32 * 16 + 32 * 16 + 128 + 128 * 10)
    assert work[cnn.run_id] / cnn.n_epochs > 50 * work[logreg.run_id] / logreg.n_epochs


def test_while_every_chunk_has_the_same_work_a_run_the_eta_takes_the_work_at_the_prior_cost(now):
    # 10 small runs (100 units each), then 10 of 1e9 units each: one worker
    bar, log = line_bar(20, work=10 * 100.0 + 10 * 1e9)
    for _ in range(5):
        now[0] += 1.0
        bar.update(2, work=200.0, seconds=1.0)  # half a second a run, whatever its work: the fit cannot tell
    # 10 runs at 0.5 s, and 1e10 units at the prior's nanosecond (not 1e10 × 1 s / 200 units)
    assert log.getvalue().splitlines()[-1] == "s: 10/20 done, ETA 0:00:15"


def test_while_every_chunk_has_the_same_work_a_run_the_prior_cost_is_at_most_what_the_chunks_cost(now):
    # the suite's final runs, largest first: 20 runs of 2.4e10 units at 1.7 s each (7e-11 s a unit, far below the
    # prior's nanosecond), then 100 runs of 1e6 units; one worker
    bar, log = line_bar(120, work=20 * 2.4e10 + 100 * 1e6)
    for _ in range(5):
        now[0] += 3.4
        bar.update(2, work=2 * 2.4e10, seconds=3.4)
    # the 10 large runs left at 1.7 s (17 s) and the small ones' 1e8 units at the same rate (7 ms), not 10 × 24 s
    # at the prior's nanosecond a unit
    assert log.getvalue().splitlines()[-1] == "s: 10/120 done, ETA 0:00:17"


def test_the_workers_start_before_the_first_chunk_does_not_stretch_the_eta(now):
    # make demo's final runs: the workers took seconds to start, then the chunks raced; the first ETA said 3:29
    # for the 6 s left
    bar, log = line_bar(500, workers=2)
    now[0] += 8.0  # the worker processes start: imports, data; no chunk yet
    for _ in range(3):
        now[0] += 0.65  # chunks of 10 runs, 1.3 s each, two side by side
        bar.update(10, seconds=1.3)
    # since the first chunk began (8.65 - 1.3 s): 2.6 s of wall for 1.95 s of the chunks' (on 2 workers); left:
    # 470 runs at 0.13 s on 2 workers, × 2.6 / 1.95: 40.7 s (the phase's start would have made it 155 s)
    assert log.getvalue().splitlines()[-1] == "s: 30/500 done, ETA 0:00:41"
