"""fastgd.threads: one thread count for Numba's prange loops and the BLAS pools, from code or FASTGD_NUM_THREADS."""

import json
import os
import subprocess
import sys

import numba
import pytest
import threadpoolctl

from fastgd import threads
from fastgd.kernels import mkl

HIGHEST = numba.config.NUMBA_NUM_THREADS


def blas_threads():
    """The thread count of every BLAS pool threadpoolctl finds, e.g. [2, 2] (NumPy's and SciPy's OpenBLAS)."""
    return [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]


@pytest.fixture(autouse=True)
def restore_thread_counts():
    """Numba's count and every BLAS pool's as they were before the test (threadpoolctl restores on exit)."""
    from numba.np.linalg import ensure_blas

    ensure_blas()  # SciPy's BLAS, which fastgd's compiled products call: loaded before its count is saved
    before = numba.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=None):
        yield
    numba.set_num_threads(before)


@pytest.mark.parametrize("n_threads", sorted({1, max(1, HIGHEST // 2), HIGHEST}))
def test_set_then_get(n_threads):
    threads.set_num_threads(n_threads)
    assert threads.get_num_threads() == n_threads == numba.get_num_threads()


def test_limit_restores_the_count_before_it():
    before = HIGHEST
    threads.set_num_threads(before)
    with threads.limit(1):
        assert threads.get_num_threads() == 1
    assert threads.get_num_threads() == before


def test_limit_restores_the_count_after_an_exception():
    before = threads.get_num_threads()
    with pytest.raises(RuntimeError, match="inside"):
        with threads.limit(1):
            assert threads.get_num_threads() == 1
            raise RuntimeError("inside the block")
    assert threads.get_num_threads() == before


def test_nested_limits_unwind_in_order():
    threads.set_num_threads(HIGHEST)
    with threads.limit(1):
        with threads.limit(HIGHEST):
            assert threads.get_num_threads() == HIGHEST
        assert threads.get_num_threads() == 1
    assert threads.get_num_threads() == HIGHEST


@pytest.mark.parametrize("bad", [0, -1, 1.5, 2.0, True, "2", None, HIGHEST + 1],
                         ids=lambda value: repr(value))
def test_bad_counts_raise_naming_n_threads(bad):
    before = threads.get_num_threads()
    with pytest.raises(ValueError, match=f"n_threads must be an integer from 1 to {HIGHEST}"):
        threads.set_num_threads(bad)
    with pytest.raises(ValueError, match="n_threads"):
        with threads.limit(bad):
            pytest.fail("the block ran with a bad count")
    assert threads.get_num_threads() == before


def test_blas_threads_follow():
    before = blas_threads()
    assert before, "threadpoolctl finds no BLAS, not even the one fastgd's matrix products call"
    with threads.limit(1):
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before
    threads.set_num_threads(1)
    assert blas_threads() == [1] * len(before)


LOADED_LATER = """
import json, threadpoolctl
from fastgd import threads
with threads.limit(1):  # the pools found once, before MKL is loaded
    pass
from fastgd.kernels import mkl
mkl.load()
def counts():
    return {pool["internal_api"]: pool["num_threads"] for pool in threadpoolctl.threadpool_info()
            if pool["user_api"] == "blas"}
before = counts()
with threads.limit(1):
    inside = counts()
    found = sorted(pool["internal_api"] for pool in threads._pools().info() if pool["user_api"] == "blas")
print(json.dumps({"before": before, "inside": inside, "after": counts(), "found": found}))
"""


@pytest.mark.skipif(not mkl.available(), reason="MKL is not installed (pip install 'fastgd[mkl]')")
def test_a_blas_loaded_after_the_first_limit_is_limited_too():
    # the pools are found once and kept until a shared library is loaded: MKL, loaded later, must not be missed
    result = subprocess.run([sys.executable, "-c", LOADED_LATER], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, FASTGD_NUM_THREADS=str(HIGHEST)))
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    # the pools the limit set include MKL, each on one thread inside, each back to its count after
    assert "mkl" in found["found"] and set(found["inside"].values()) == {1}, found
    assert found["after"] == found["before"], found


def test_the_pools_are_found_again_only_when_a_library_was_loaded(tmp_path):
    import ctypes
    import shutil

    import _ctypes

    pools = threads._pools()
    if threads._controller["fingerprint"] is None:
        # where the loader keeps no load counts (not glibc), the pools are found again on every call
        assert threads._pools() is not pools
        return
    assert threads._pools() is pools  # nothing loaded in between: the same controller
    # a copy of a loaded extension module under a new path is a new shared library, loaded now
    copy = tmp_path / "fastgd_test_copy.so"
    shutil.copyfile(_ctypes.__file__, copy)
    ctypes.CDLL(str(copy))
    assert threads._pools() is not pools


def test_describe_names_both_pools():
    line = threads.describe()
    assert "\n" not in line
    assert f"{threads.get_num_threads()} Numba threads" in line and "BLAS threads" in line
    assert f"({numba.threading_layer()} layer)" in line  # the layer is chosen, not left "not chosen yet"


def run_python(code, value):
    environment = dict(os.environ, FASTGD_NUM_THREADS=value)
    return subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=120)


def test_the_environment_sets_the_count_at_import():
    code = ("import json, threadpoolctl\n"
            "from fastgd import threads\n"
            "print(json.dumps([threads.get_num_threads(), "
            "[pool['num_threads'] for pool in threadpoolctl.threadpool_info() if pool['user_api'] == 'blas']]))\n")
    result = run_python(code, "1")
    assert result.returncode == 0, result.stderr
    count, blas = json.loads(result.stdout)
    assert count == 1
    assert set(blas) <= {1}  # every BLAS pool loaded by then (NumPy's, where threadpoolctl sees it) follows


@pytest.mark.parametrize("value", ["zero", "0", "1.5", str(HIGHEST + 1)])
def test_a_bad_environment_value_is_a_one_line_setting_error(value):
    code = ("import sys\n"
            "from fastgd._config import SettingError\n"
            "try:\n"
            "    import fastgd.threads\n"
            "except SettingError as error:\n"
            "    print(error)\n"
            "    sys.exit(3)\n")
    result = run_python(code, value)
    assert result.returncode == 3, (result.stdout, result.stderr)
    message = result.stdout.strip()
    assert "\n" not in message and message.startswith("FASTGD_NUM_THREADS must be")
    assert repr(value) in message or value in message


def test_blas_limit_sets_blas_only_and_restores():
    """Every BLAS pool but MKL's where fastgd runs MKL on Numba's OpenMP threads (its threaded passes need them)."""
    from fastgd.kernels import mkl

    threads.set_num_threads(HIGHEST)
    before = blas_threads()
    with threads.blas_limit(1):
        pools = [pool for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]
        assert {pool["num_threads"] for pool in pools if pool["internal_api"] != "mkl"} == {1}
        for pool in pools:
            if pool["internal_api"] == "mkl":
                assert pool["num_threads"] == (HIGHEST if mkl.shares_numbas_threads() else 1)
        assert threads.get_num_threads() == HIGHEST
    assert blas_threads() == before
    with pytest.raises(ValueError, match="n_threads must be an integer"):
        threads.blas_limit(0)
