"""The CUDA tests: under the simulator (``NUMBA_ENABLE_CUDASIM=1``, CI) or on a GPU (benchmarks/gpu).

They need their own pytest run: the simulator must be switched on before
Numba is imported, and the normal run (``make test``) leaves this directory
out. Under the simulator every thread is a Python thread (about 0.2 ms
each), so the launch shapes and the matrix-product tiles are shrunk to a few
threads; on a GPU the kernels run with their real shapes, as compiled.
"""

import os
import sys
import threading

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))  # rule_cases

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _thread_safe_shared_arrays():
    """Make the simulator's ``cuda.shared.array`` one array per block, whatever the thread scheduling.

    The simulator keys a block's shared arrays by the calling line and
    creates them on first use without a lock: two threads that reach the line
    together can each get an array of their own, and a reduction or a tile
    then silently reads another thread's copy. Same lookup, under a lock.
    """
    from numba.cuda import types
    from numba.cuda.np import numpy_support
    from numba.cuda.simulator.kernelapi import FakeCUDAShared

    lock = threading.Lock()
    unsafe_array = FakeCUDAShared.array

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:
            return unsafe_array(self, shape, dtype, alignment)  # dynamic shared memory: not used by fastgd
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            if key not in self._allocations:
                if isinstance(dtype, types.Type):
                    dtype = numpy_support.as_dtype(dtype)
                self._allocations[key] = np.empty(shape, dtype)
            return self._allocations[key]

    FakeCUDAShared.array = array


if SIMULATOR:
    _thread_safe_shared_arrays()
    # The simulator's block manager polls its threads; with CPython's default
    # 5 ms switch interval every barrier waits that long.
    sys.setswitchinterval(1e-4)


def _why_not_runnable():
    if SIMULATOR:
        return None
    from fastgd import cuda as fastgd_cuda

    reason = fastgd_cuda.unavailable_reason()
    if reason is None:
        return None
    return f"needs NUMBA_ENABLE_CUDASIM=1 (make test runs it so) or a GPU: {reason}"


def pytest_collection_modifyitems(config, items):
    reason = _why_not_runnable()
    if reason is not None:
        here = os.path.dirname(__file__)
        for item in items:
            if str(item.fspath).startswith(here):
                item.add_marker(pytest.mark.skip(reason=reason))


def _shrink_tiles(monkeypatch, block_m, block_n, block_k, thread_m, thread_n):
    """Give fastgd.cuda.mlp another tile shape, with every constant derived from it as the module derives them."""
    from fastgd.cuda import mlp

    row_threads, column_threads = block_m // thread_m, block_n // thread_n
    for name, value in dict(BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, THREAD_M=thread_m,
                            THREAD_N=thread_n, ROW_THREADS=row_threads, COLUMN_THREADS=column_threads,
                            BLOCK_THREADS=row_threads * column_threads, A_TILE_COLUMNS=block_m + 1,
                            B_TILE_COLUMNS=block_n + 1).items():
        monkeypatch.setattr(mlp, name, value)


@pytest.fixture(autouse=True)
def small_launches(monkeypatch):
    """Under the simulator: 2 blocks of 4 threads, 4-thread reductions, 4 × 4 tiles of 2 × 2 per thread.

    On a GPU nothing changes: tile shapes are compiled in, and the tests
    then check the shapes that run in production.
    """
    if not SIMULATOR:
        return
    from fastgd import _config
    from fastgd.cuda import arrays

    monkeypatch.setattr(_config, "CUDA_BLOCK_SIZE", 4)
    monkeypatch.setattr(_config, "CUDA_MAX_BLOCKS", 2)
    monkeypatch.setattr(arrays, "REDUCTION_THREADS", 4)
    _shrink_tiles(monkeypatch, block_m=4, block_n=4, block_k=2, thread_m=2, thread_n=2)
