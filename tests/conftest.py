"""The suite's settings, made before fastgd is imported: the epochs keep the pass they start on.

A training that adapts its pass to the load (``FASTGD_ADAPT``, :class:`fastgd.calibration.PassAdaptation`) may
switch passes after a slow epoch, and the passes agree only up to rounding: a test comparing two runs' bits would
then depend on what else the machine ran. The tests of the adaptation switch it on themselves.
"""

import os

os.environ.setdefault("FASTGD_ADAPT", "0")


import pytest  # noqa: E402 - after the environment above, which fastgd reads when imported


@pytest.fixture(scope="session", autouse=True)
def _quick_report_started_early(request, tmp_path_factory):
    """Where the session's tests ask for test_report.py's ``quick_report`` (80 s of ``fastgd compare``), start it
    in the background at the session's first test (tests/quick_report.py), so that it is made beside the tests
    rather than while one of them waits."""
    import quick_report

    if any(quick_report.USERS in getattr(item, "fixturenames", ()) for item in request.session.items):
        quick_report.start(tmp_path_factory)
