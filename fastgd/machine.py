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

__all__ = ["provenance", "physical_memory_bytes", "cpu_model", "describe_cpu", "idle_cores"]


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
    """The CPU's model name, with what tells processors of one name apart:
    ``"AMD EPYC (family 25 model 1; AVX2, no AVX-512)"``.

    A virtual machine may give one generic name ("AMD EPYC") to different processors: this project's machines
    gave it to a Zen 3 without AVX-512 (family 25, model 1) and to a Zen 4 with it, whose fastest passes and
    libraries differ. Figures name the CPU by this string, and calibrations (:mod:`fastgd.calibration`) are
    cached under it. Where there is no /proc/cpuinfo: the platform's processor name.
    """
    try:
        with open("/proc/cpuinfo") as info:
            text = info.read()
    except OSError:
        text = ""
    return describe_cpu(text) or platform.processor() or platform.machine()


def describe_cpu(cpuinfo):
    """:func:`cpu_model`'s string from the text of /proc/cpuinfo (its first processor's lines), or None where the
    text names no model."""
    fields = {}
    for line in cpuinfo.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name")
    if not name:
        return None
    flags = set(fields.get("flags", "").split())
    details = [f"family {fields['cpu family']} model {fields['model']}"] if "cpu family" in fields else []
    if flags:
        details.append("AVX-512" if "avx512f" in flags else "AVX2, no AVX-512" if "avx2" in flags else "no AVX2")
    return f"{name} ({'; '.join(details)})" if details else name


def idle_cores(samples=5, interval=0.02, runnable=None):
    """How many of this machine's cores run nothing now, this process's own work aside: the cores, less the tasks
    the kernel has runnable (the fourth field of /proc/loadavg, ``running/total``, this process included: it runs
    while it reads), the median of ``samples`` readings ``interval`` seconds apart. The load average lags by a
    minute, so that a phase that has just ended on every core would still count as load. Where there is no
    /proc/loadavg: the cores less the 1-minute load average. ``runnable``: a function giving the runnable count
    (tests give their own)."""
    import statistics
    import time

    cores = os.cpu_count() or 1
    if runnable is None:
        runnable = _runnable_tasks
    readings = []
    for index in range(samples):
        if index:
            time.sleep(interval)
        readings.append(runnable())
    return max(0, cores - round(statistics.median(readings)))


def _runnable_tasks():
    try:
        with open("/proc/loadavg") as load:
            return int(load.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return os.getloadavg()[0] + 1  # this process beside the load


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
