"""The machine a result was made on, and what it holds: versions, CPU, threads, memory.

:func:`provenance` is what every stored run, sweep and report says made it (``fastgd info`` prints it);
:func:`physical_memory_bytes` is what data sets and networks are sized against before they are made.
"""

import functools
import os
import platform
import subprocess
import sys

import numpy as np

__all__ = ["provenance", "physical_memory_bytes", "cpu_model"]


def provenance(device="cpu"):
    """Where and with what the results were made."""
    import numba

    return dict(_static_provenance(), threading_layer=_threading_layer(), numba_threads=numba.get_num_threads(),
                device=device)


@functools.cache
def _static_provenance():
    """What does not change while a process lives (asked once: git runs in a subprocess)."""
    import numba
    import sklearn

    import fastgd

    commit = None
    try:
        commit = subprocess.run(["git", "-C", os.path.dirname(fastgd.__file__), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    cpu = cpu_model()
    return {"fastgd": fastgd.__version__, "git_commit": commit, "numba": numba.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__, "python": sys.version.split()[0],
            "cpu": cpu, "cpu_count": os.cpu_count(), "host": platform.node()}


@functools.cache
def cpu_model():
    """The CPU's model name ("AMD EPYC 9R14 96-Core Processor"), from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _threading_layer():
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run in this process yet
        return numba.config.THREADING_LAYER


def physical_memory_bytes():
    """This machine's physical memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
