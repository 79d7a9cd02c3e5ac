"""What the comparison report reads from a measured throughput (:func:`fastgd.baselines.throughput.measure`'s
dict, as measured, stored or read from its files): the training ratios with their spread over repeats
(:func:`training_ratios`) and each step's share of the in-place reference for its number of arrays
(:func:`ceiling_shares`). Nothing here measures.
"""

import math

import numpy as np

__all__ = ["training_ratios", "ceiling_shares", "UNRELIABLE_SPREAD"]

# a ratio whose repeats disagree by more than this factor is named unreliable, not quoted
UNRELIABLE_SPREAD = 2.0


def training_ratios(throughput, spread_limit=UNRELIABLE_SPREAD):
    """Per implementation other than fastgd and data set: how many times longer its epoch took than fastgd's.

    Columns: other, dataset, ratio (the median of the per-repeat ratios: each repeat's two timings were
    made in the same turn), low, high (the least and greatest of them), n_repeats, reliable (high / low
    at most ``spread_limit``: the repeats agree). A throughput stored without its repeats gives each
    ratio from the medians alone, with no spread (NaN) and not reliable: nothing says how noisy it was.
    """
    import pandas as pd

    timings = throughput.get("training_repeats")
    records = []
    if timings is not None and len(timings):
        table = timings.pivot_table(index=["dataset", "repeat"], columns="implementation", values="seconds_per_epoch")
    else:
        table = throughput["training"].pivot_table(index="dataset", columns="implementation",
                                                   values="seconds_per_epoch")
    if "fastgd" not in table:
        return pd.DataFrame(columns=["other", "dataset", "ratio", "low", "high", "n_repeats", "reliable"])
    for other in (column for column in table.columns if column != "fastgd"):
        ratios = (table[other] / table["fastgd"]).dropna()
        for dataset, values in ratios.groupby(level="dataset", sort=True):
            values = values.to_numpy()
            if timings is not None and len(timings):
                low, high = float(values.min()), float(values.max())
                reliable = len(values) > 1 and high <= spread_limit * low
            else:
                low = high = math.nan
                reliable = False
            records.append((other, dataset, float(np.median(values)), low, high, len(values), bool(reliable)))
    return pd.DataFrame(records, columns=["other", "dataset", "ratio", "low", "high", "n_repeats", "reliable"])


def ceiling_shares(throughput, implementation="fastgd"):
    """Each rule's ``implementation`` step at the largest size over the in-place reference for as many arrays,
    ascending (a Series by rule); None where the machine has no reference at that size.

    Not STREAM's triad: a share of the steps' own access pattern above about 1 means the
    reference is wrong, not that the step is fast.
    """
    steps, machine = throughput["steps"], throughput["machine"]
    largest = steps["parameters"].max()
    references = machine.get("in_place_bytes_per_second")
    if "arrays_written" not in steps or not references or machine.get("in_place_parameters") != largest:
        return None
    chosen = steps[(steps["implementation"] == implementation) & (steps["parameters"] == largest)]
    reference = chosen["arrays_written"].astype(str).map(references)
    return (chosen["bytes_per_second"] / reference).set_axis(chosen["rule"]).dropna().sort_values()
