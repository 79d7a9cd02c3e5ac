"""fastgd's compiled kernels: pure ``@njit`` functions over arrays and scalars.

Callable from Python and from your own ``@njit`` code; see
:mod:`fastgd.kernels.updates` for the update rules and an example.
"""

from fastgd.kernels.updates import *  # noqa: F401,F403
from fastgd.kernels.updates import __all__  # noqa: F401
