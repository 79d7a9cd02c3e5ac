"""Device-array helpers shared by fastgd's CUDA kernels: launch shapes, new arrays, reductions."""

import math

import numpy as np
from numba import cuda

from fastgd import _config
from fastgd._config import cuda_jit

__all__ = ["REDUCTION_THREADS", "launch_shape", "reduction_shape", "full", "fill", "no_halt", "add_block_sum",
           "add_sum_of_squares", "add_scaled_and_sum_of_squares", "flag_nonfinite"]

# Threads per block of the reductions: fixed (not FASTGD_CUDA_BLOCK_SIZE)
# because their shared scratch array is sized at compile time, and Numba's
# cache would not notice a changed setting. A power of two.
REDUCTION_THREADS = 256


def launch_shape(n_elements):
    """(blocks, threads per block) of a grid-stride launch over ``n_elements``.

    Read from :mod:`fastgd._config` at every call, so that tests can shrink it.
    """
    threads = _config.CUDA_BLOCK_SIZE
    blocks = min(max(1, -(-n_elements // threads)), _config.CUDA_MAX_BLOCKS)
    return blocks, threads


@cuda_jit
def _fill(array, value):
    for i in range(cuda.grid(1), array.size, cuda.gridsize(1)):
        array[i] = value


def reduction_shape(n_elements):
    """(blocks, threads per block) of a launch of :func:`add_sum_of_squares`."""
    blocks = min(max(1, -(-n_elements // REDUCTION_THREADS)), _config.CUDA_MAX_BLOCKS)
    return blocks, REDUCTION_THREADS


def full(n_elements, value, dtype):
    """A new 1-D device array of ``n_elements`` set to ``value``, filled on the device."""
    return fill(cuda.device_array(n_elements, dtype=dtype), value)


def fill(array, value):
    """Set every element of the 1-D device array ``array`` to ``value`` on the device; returns it."""
    _fill[launch_shape(array.size)](array, array.dtype.type(value))
    return array


_NO_HALT = []


def no_halt():
    """The zero-length int32 ``halt`` flag of a rule kernel that nothing stops (see :mod:`.rules`)."""
    if not _NO_HALT:
        _NO_HALT.append(cuda.device_array(0, dtype=np.int32))
    return _NO_HALT[0]


@cuda_jit(device=True)
def add_block_sum(own, thread, partial, total, index):
    """Called by every thread of a block: ``total[index] += Σ own`` over the block, one atomic per block.

    ``thread`` is the thread's index in the block; ``partial`` a float64 shared array with one
    slot per thread of the block, a power of two, where the sum is a tree.
    """
    partial[thread] = own
    cuda.syncthreads()
    width = partial.shape[0] // 2
    while width > 0:
        if thread < width:
            partial[thread] += partial[thread + width]
        cuda.syncthreads()
        width //= 2
    if thread == 0:
        cuda.atomic.add(total, index, partial[0])


@cuda_jit
def add_sum_of_squares(values, total, index):
    """``total[index] += Σ values²`` in float64: a tree per block in shared memory, one atomic per block.

    Launch with :func:`reduction_shape`.
    """
    partial = cuda.shared.array(REDUCTION_THREADS, dtype=np.float64)
    own = 0.0
    for i in range(cuda.grid(1), values.size, cuda.gridsize(1)):
        value = float(values[i])
        own += value * value
    add_block_sum(own, cuda.threadIdx.x, partial, total, index)


@cuda_jit
def add_scaled_and_sum_of_squares(values, scale, target, total, index):
    """``target += scale · values`` element by element in their dtype, and ``total[index] += Σ values²`` in
    float64 (a tree per block, one atomic per block): an L2 penalty's gradient and its sum in one pass.

    Launch with :func:`reduction_shape`.
    """
    partial = cuda.shared.array(REDUCTION_THREADS, dtype=np.float64)
    own = 0.0
    for i in range(cuda.grid(1), values.size, cuda.gridsize(1)):
        value = values[i]
        target[i] += scale * value
        own += float(value) * float(value)
    add_block_sum(own, cuda.threadIdx.x, partial, total, index)


@cuda_jit
def flag_nonfinite(values, flags, index):
    """``flags[index] = 1`` when any of ``values`` is NaN or infinite (a race of equal writes is harmless)."""
    for i in range(cuda.grid(1), values.size, cuda.gridsize(1)):
        if not math.isfinite(values[i]):
            flags[index] = 1.0
