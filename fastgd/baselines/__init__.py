"""The one measurement layer: the baselines fastgd is compared with, the timer, and the machine's limits.

The comparison report (:mod:`.throughput`, which it reads), the asv suite (``benchmarks/``, whose
``common.py`` keeps only asv's glue: parameter grids, the Numba cache lock, data files generated
once per run) and the speed scripts all measure through this package, so that they quote the
same numbers for the same thing.

* MLP training (:data:`TRAINERS`, one :class:`Trainer` class each, with what it needs and why it
  is skipped where it cannot run): fastgd's compiled epoch, the NumPy reference network and rule
  (its optimizer state kept from epoch to epoch), scikit-learn's MLP, a plain PyTorch loop and
  JAX + optax with a jitted whole epoch, all with the same network (ReLU hidden layers; softmax
  output with cross-entropy, or identity output with half the squared error), the same
  Glorot-uniform weights (scikit-learn's draw for :data:`SEED`, zero biases), no L2 penalty and
  the same learning rate per rule (:func:`learning_rate`). :meth:`Trainer.seconds_per_epoch`
  times them, :meth:`fastgd.datasets.Dataset.test_metric` scores them.
* One update step over a flat vector (:data:`STEP_IMPLEMENTATIONS`): fastgd's ``opt.step`` with
  its serial or its ``prange`` kernel, the NumPy rules of :mod:`fastgd.reference`, and
  ``torch.optim`` (its default loop, and its fused kernel where torch has one).
* The machine: the in-place streams that bound a step (:class:`InPlaceStreams`, the steps'
  own access pattern), STREAM's triad (:class:`StreamTriad`, main memory), and the matrix-product
  rate through NumPy's BLAS at 2048² and at a network's own shapes (:func:`gemm_rate`,
  :func:`network_gemm_rate`), MKL's at 2048² (:func:`mkl_gemm_rate`), and the higher of the two
  (:func:`peak_gemm_rate`), the peak a GEMM share is measured against.
* One timer, :func:`seconds_per_call`: the median (a ceiling: the least) per-call time of
  batches of calls over a budget of seconds.

Its modules: :mod:`.trainers` (the peers' MLP training, one class each), :mod:`.steps` (one update
step), :mod:`.limits` (the machine's bandwidth and matrix-product rates) and :mod:`.timer`. Every
public name of each is here too, as ``fastgd.baselines.NAME``.

Data sets are named as :func:`dataset` reads them: a bundled set's name, or
``synthetic-classification-<rows>x<features>[-<k>classes]`` for a generated one
(:func:`fastgd.datasets.synthetic_name`).

Nothing here compiles ahead: the first call of a fastgd callable compiles (or loads) its
kernels, so warm up before timing (``benchmarks/common.py`` does it under a lock).
"""

from fastgd.baselines import limits, steps, timer, trainers
from fastgd.baselines.limits import *  # noqa: F401,F403
from fastgd.baselines.steps import *  # noqa: F401,F403
from fastgd.baselines.timer import *  # noqa: F401,F403
from fastgd.baselines.trainers import *  # noqa: F401,F403

__all__ = [*trainers.__all__, *steps.__all__, *limits.__all__, *timer.__all__]
