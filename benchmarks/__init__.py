"""fastgd's airspeed velocity suite: speed and convergence, side by side with the baselines.

    asv run --python=same                             # this environment, as it is
    python benchmarks/scripts/asv_summary.py --run    # the same, then reports/asv_summary.md

``bench_optim`` (one update step), ``bench_training`` (epochs and peak memory),
``bench_convergence``, ``bench_compile`` (cold and warm start) and ``bench_machine``
(memory bandwidth, matrix-multiply peak) hold the benchmarks; ``common`` what they share.
``scripts/`` has no ``__init__.py``: asv never imports it.

Importing this package points Numba's on-disk cache at a directory of the suite's own,
named after a hash of fastgd's sources, Numba's version and every ``NUMBA_*`` and
``FASTGD_*`` setting. Numba keys its cache on each function's own file, not on the files
it inlined nor on flags such as ``NUMBA_BOUNDSCHECK``: a cache shared with test runs or
with an older checkout could hand a benchmark machine code that is stale or compiled
differently. It has to happen before numba is first imported, hence here.
"""

import hashlib
import importlib.metadata
import os
import pathlib
import sys
import tempfile


def _suite_cache_dir():
    import fastgd  # the package itself is lazy: this does not import numba

    key = hashlib.sha1()
    package = pathlib.Path(fastgd.__path__[0])
    for source in sorted(package.rglob("*.py")):
        key.update(source.relative_to(package).as_posix().encode())
        key.update(source.read_bytes())
    key.update(importlib.metadata.version("numba").encode())
    key.update(sys.version.encode())
    for name, value in sorted(os.environ.items()):
        if name.startswith(("NUMBA_", "FASTGD_")) and name != "NUMBA_CACHE_DIR":
            key.update(f"{name}={value}\n".encode())
    return os.path.join(tempfile.gettempdir(), "fastgd-benchmarks-numba", key.hexdigest()[:16])


NUMBA_CACHE_DIR = _suite_cache_dir()
os.environ["NUMBA_CACHE_DIR"] = NUMBA_CACHE_DIR
