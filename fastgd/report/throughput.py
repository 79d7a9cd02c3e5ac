"""Throughput of fastgd against the baselines, measured here and now, for the comparison report.

Two tables (pandas DataFrames) and the machine's limits:

* ``training``: seconds per epoch and samples per second of one training epoch
  (MLP with 32 ReLU units, Adam, batch 32, float64) on each data set, for
  fastgd, the NumPy reference, scikit-learn's MLP, PyTorch (float32) and JAX + optax (each when installed);
* ``steps``: seconds and effective bandwidth of one update-rule step, every
  rule, float32, over parameter counts, for fastgd, NumPy and torch.optim
  (fused where torch has it);
* ``machine``: the steps' ceilings at the largest size (bytes/s of 1 to 4
  float32 arrays updated in place from one more, keyed by that number: a
  step's traffic alone), STREAM-triad bandwidth (main memory) and GEMM peak
  (FLOP/s).
"""

import numpy as np

from fastgd import baselines, datasets, optim
from fastgd.kernels.memory import MAX_STREAMS

__all__ = ["measure", "PARAMETER_COUNTS"]

PARAMETER_COUNTS = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
EPOCH_SETTINGS = dict(hidden=32, batch_size=32, rule="adam", lr=1e-3)


def measure(dataset_names=tuple(datasets.BUNDLED), parameter_counts=PARAMETER_COUNTS, rules=None, repeats=5,
            progress=None):
    """Run every measurement; ``progress(message)`` is called before each group."""
    import pandas as pd

    say = progress or (lambda message: None)
    rules = list(optim.OPTIMIZERS) if rules is None else list(rules)
    implementations = [i for i in baselines.IMPLEMENTATIONS if baselines.available(i)]

    say("machine: memory bandwidth and matrix-multiply peak")
    written = {rule: baselines.arrays_written(rule) for rule in rules}

    def ceilings():
        return {str(arrays): baselines.in_place_bandwidth(max(parameter_counts), np.float32, arrays, repeats)
                for arrays in sorted(set(written.values())) if arrays <= MAX_STREAMS}

    machine = {"in_place_bytes_per_second": ceilings(),
               "in_place_parameters": max(parameter_counts),
               "triad_bytes_per_second": baselines.triad_bandwidth(),
               "gemm_flops_float64": baselines.gemm_peak(np.float64),
               "gemm_flops_float32": baselines.gemm_peak(np.float32)}

    training = []
    for name in dataset_names:
        say(f"training throughput on {name}")
        data = datasets.load(name)
        for implementation in implementations:
            make_epoch = getattr(baselines, f"{implementation}_epoch")
            dtype = np.float32 if implementation == "torch" else np.float64
            seconds = baselines.median_seconds(make_epoch(data, dtype=dtype, **EPOCH_SETTINGS), repeats=repeats)
            training.append(dict(dataset=name, implementation=implementation, dtype=np.dtype(dtype).name,
                                 seconds_per_epoch=seconds, samples_per_second=data.X_train.shape[0] / seconds))

    steps = []
    for size in parameter_counts:
        say(f"update-rule steps on {size:,} parameters")
        for rule in rules:
            moved = baselines.bytes_moved(written[rule], np.float32, size)
            for implementation in ("fastgd", "numpy", "torch"):
                if implementation == "torch" and (not baselines.torch_available()
                                                  or rule not in baselines.TORCH_OPTIMIZERS):
                    continue
                if implementation == "numpy" and size > 1_000_000 and rule != "adam":
                    continue  # slow and says nothing new: the NumPy reference is far from the bus at every size
                number = max(1, 200_000 // size)
                seconds = baselines.median_seconds(baselines.optimizer_step(rule, size, np.float32, implementation),
                                                   repeats=repeats, number=number)
                steps.append(dict(rule=rule, parameters=size, implementation=implementation, seconds=seconds,
                                  bytes_per_second=moved / seconds, arrays_written=written[rule]))
    # the ceilings once more after the steps, keeping the better: the load of a shared machine drifts
    machine["in_place_bytes_per_second"] = {arrays: max(before, after) for (arrays, before), after in zip(
        machine["in_place_bytes_per_second"].items(), ceilings().values())}
    return {"training": pd.DataFrame(training), "steps": pd.DataFrame(steps), "machine": machine}
