"""The suite's settings, made before fastgd is imported: the epochs keep the pass they start on; and the tests
that share one expensive build go to one pytest-xdist worker.

A training that adapts its pass to the load (``FASTGD_ADAPT``, :class:`fastgd.calibration.PassAdaptation`) may
switch passes after a slow epoch, and the passes agree only up to rounding: a test comparing two runs' bits would
then depend on what else the machine ran. The tests of the adaptation switch it on themselves.
"""

import os

import pytest

os.environ.setdefault("FASTGD_ADAPT", "0")


# Module-scoped fixtures that run a sweep, a report or a whole `fastgd compare` (a minute of compiling and sweeping
# for test_report's `quick_report`): under pytest-xdist each worker that runs one of their tests builds the fixture
# again. With `--dist loadgroup` (the Makefile's), the tests of one such fixture go to one worker and share one build.
# (Not the hostile-input files' fixtures: they are quick, and each holds a hundred or more tests, which one worker
# would then run alone.)
SHARED_BUILDS = ("quick_report", "mixed_report", "stores", "swept", "tuned", "noisy_regression", "built", "cnn_store",
                 "user_rules")


def pytest_collection_modifyitems(config, items):
    for item in items:
        fixture = next((name for name in SHARED_BUILDS if name in getattr(item, "fixturenames", ())), None)
        if fixture is not None:  # one group per module and fixture: two modules have a fixture named `stores`
            item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}.{fixture}"))
