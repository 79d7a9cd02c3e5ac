"""fastgd's hand-written compiled kernels: pure ``@njit`` functions over arrays and scalars.

:mod:`.updates` holds the built-in rules' element and per-step functions; :mod:`.mlp`, :mod:`.train`,
:mod:`.schedules` the networks and training loops (:mod:`.network` a declared network's passes, whose layers
compiled code calls by symbol through :mod:`.linking`); :mod:`.blas` and :mod:`.mkl` the matrix products;
:mod:`.tables` the data sets' standardisation; :mod:`.floors` and :mod:`.memory` what the benchmarks
measure against. Each is callable from Python and from your own ``@njit`` code.

The vector kernels generated from each registered rule (``adam``, ``adam_parallel``, ...) are in
:mod:`fastgd.rules.kernels`: they are derived from the rules' declarations, which sit above this package.
"""
