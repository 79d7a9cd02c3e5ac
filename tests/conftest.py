"""The suite's settings, made before fastgd is imported: the epochs keep the pass they start on.

A training that adapts its pass to the load (``FASTGD_ADAPT``, :class:`fastgd.calibration.PassAdaptation`) may
switch passes after a slow epoch, and the passes agree only up to rounding: a test comparing two runs' bits would
then depend on what else the machine ran. The tests of the adaptation switch it on themselves.
"""

import os

os.environ.setdefault("FASTGD_ADAPT", "0")
