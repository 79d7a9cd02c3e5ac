"""The sweep's progress line: an ETA only when enough runs past the first chunk tell the rate."""


def test_the_sweeps_eta_waits_for_runs_past_the_first_and_leaves_their_compile_out(monkeypatch):
    import io

    from fastgd.sweep import progress as progress_module

    now = [0.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: now[0])
    log = io.StringIO()
    bar = progress_module.Progress(100, label="s", stream=log)
    bar.LINE_EVERY_SECONDS = 0.0
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
