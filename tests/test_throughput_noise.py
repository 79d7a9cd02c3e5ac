"""Throughput ratios with their noise: every implementation on the same threads, each ratio's spread over its
repeats, and a ratio whose repeats disagree by more than 2x shown as unreliable, not as a headline."""

import numpy as np
import pandas as pd
import pytest

from fastgd import baselines
from fastgd.report.build import summary_lines
from fastgd.report.throughput import training_ratios

MACHINE = {"triad_bytes_per_second": 3e10, "threads": {"training": {"fastgd": "1 (Numba and BLAS)",
                                                                    "numpy": "1 (BLAS)",
                                                                    "torch": "1 (torch.set_num_threads)"}}}


def throughput_of(seconds):
    """A throughput as measure() gives it from ``seconds``: implementation → seconds per epoch of each repeat."""
    timings = pd.DataFrame([dict(dataset="iris", implementation=implementation, repeat=repeat,
                                 seconds_per_epoch=value)
                            for implementation, values in seconds.items() for repeat, value in enumerate(values)])
    training = pd.DataFrame([dict(dataset="iris", implementation=implementation, dtype="float64",
                                  seconds_per_epoch=float(np.median(values)),
                                  samples_per_second=112 / float(np.median(values)), repeats=len(values), threads=1)
                             for implementation, values in seconds.items()])
    steps = pd.DataFrame(columns=["rule", "implementation", "parameters", "seconds", "bytes_per_second"])
    return {"training": training, "training_repeats": timings, "steps": steps, "machine": MACHINE}


def test_a_ratio_whose_repeats_disagree_is_unreliable_and_not_a_headline():
    # the PyTorch: 650 samples/s in one repeat and 64,481 in another, fastgd steady
    fastgd = [1e-4, 1.1e-4, 1e-4, 0.9e-4]
    throughput = throughput_of({"fastgd": fastgd, "numpy": [1e-3, 1.05e-3, 1.1e-3, 0.95e-3],
                                "torch": [112 / 650, 112 / 64481, 112 / 30000, 112 / 650]})
    ratios = training_ratios(throughput).set_index("other")
    # each ratio pairs the timings of one repeat: NumPy's per-repeat ratios by hand
    by_hand = np.array([1e-3, 1.05e-3, 1.1e-3, 0.95e-3]) / np.array(fastgd)
    assert ratios.loc["numpy", "ratio"] == pytest.approx(np.median(by_hand))
    assert (ratios.loc["numpy", "low"], ratios.loc["numpy", "high"]) == pytest.approx((by_hand.min(), by_hand.max()))
    assert ratios.loc["numpy", "reliable"] and not ratios.loc["torch", "reliable"]
    assert ratios.loc["torch", "high"] / ratios.loc["torch", "low"] > 2
    lines = [line for line in summary_lines(pd.DataFrame(columns=RUN_COLUMNS), throughput) if "fastgd" in line]
    numpy_line = next(line for line in lines if "NumPy" in line)
    assert numpy_line.startswith(f"Training epochs: fastgd is {np.median(by_hand):.3g}x faster than the NumPy "
                                 "reference (median over 1 data set: iris")
    assert f"({by_hand.min():.3g}x to {by_hand.max():.3g}x over 4 repeats" in numpy_line
    assert "every implementation on 1 thread" in numpy_line
    torch_lines = [line for line in lines if "PyTorch" in line]
    assert len(torch_lines) == 1 and torch_lines[0].startswith("Unreliable, not quoted: fastgd against PyTorch")
    # how it was measured is said beside an unreliable ratio too (a report whose every ratio is noisy says it there)
    assert "every implementation on 1 thread): repeats that disagree" in torch_lines[0]
    assert "faster than PyTorch" not in " ".join(lines)


def test_a_throughput_stored_without_repeats_quotes_no_ratio():
    throughput = throughput_of({"fastgd": [1e-4], "torch": [1e-3]})
    del throughput["training_repeats"]
    ratios = training_ratios(throughput)
    assert ratios["ratio"].item() == pytest.approx(10) and not ratios["reliable"].item()
    line = " ".join(summary_lines(pd.DataFrame(columns=RUN_COLUMNS), throughput))
    assert "iris 10x from one timing (no repeats stored)" in line and "faster than PyTorch" not in line


RUN_COLUMNS = ["dataset", "rule", "status", "best_loss", "final_loss", "test_metric", "epochs_to_target",
               "seconds_to_target", "learning_rate", "seed"]


def test_every_implementation_gets_the_same_threads_and_gets_its_own_back():
    import numba
    from threadpoolctl import threadpool_info

    torch = pytest.importorskip("torch")
    before = (numba.get_num_threads(), torch.get_num_threads())
    with baselines.same_threads(1) as told:
        assert numba.get_num_threads() == 1 and torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
        assert told["fastgd"].startswith("1 ") and told["torch"].startswith("1 ") and told["sklearn"].startswith("1 ")
    assert (numba.get_num_threads(), torch.get_num_threads()) == before


def _adam_step_summary(timings):
    """The report's summary, as one string, of Adam steps timed as ``timings``: (implementation, parameters,
    seconds, seconds_low, seconds_high) each."""
    throughput = throughput_of({"fastgd": [1e-4]})
    steps = [dict(rule="adam", implementation=implementation, parameters=size, seconds=seconds, seconds_low=low,
                  seconds_high=high, bytes_per_second=1.0)
             for implementation, size, seconds, low, high in timings]
    throughput["steps"] = pd.DataFrame(steps)
    return " ".join(summary_lines(pd.DataFrame(columns=RUN_COLUMNS), throughput))


def test_an_update_step_ratio_carries_the_range_its_timings_allow():
    text = _adam_step_summary((("fastgd", 1000, 1e-6, 0.9e-6, 1.1e-6), ("torch", 1000, 1e-5, 0.95e-5, 1.2e-5),
                               ("fastgd", 10 ** 7, 1e-3, 0.5e-3, 3e-3), ("torch", 10 ** 7, 2e-3, 1.9e-3, 2.1e-3)))
    # at 1,000: 10x, from 0.95e-5 / 1.1e-6 = 8.64x to 1.2e-5 / 0.9e-6 = 13.3x; at 10^7 the range spans 1.9e-3 / 3e-3
    # = 0.633x to 2.1e-3 / 0.5e-3 = 4.2x: unreliable
    assert ("Adam step: fastgd is faster than PyTorch by 10x at 1,000 parameters (8.64x to 13.3x over its middle "
            "timings).") in text
    assert "Unreliable, not quoted: fastgd's Adam step against PyTorch, 2x at 10,000,000 parameters (0.633x to 4.2x" \
        in text


def test_an_update_step_ratio_below_one_is_not_called_faster():
    # the quick report under CI's load: "fastgd is faster than PyTorch by 38.2x ... and 0.722x", slower at the second
    text = _adam_step_summary((("fastgd", 1000, 1e-6, 0.9e-6, 1.1e-6), ("torch", 1000, 1e-5, 0.95e-5, 1.2e-5),
                               ("fastgd", 10 ** 5, 2e-4, 1.9e-4, 2.1e-4), ("torch", 10 ** 5, 1e-4, 0.95e-4, 1.05e-4)))
    assert "faster than PyTorch" not in text
    assert ("Adam step, PyTorch's time over fastgd's (below 1: fastgd slower): 10x at 1,000 parameters (8.64x to "
            "13.3x over its middle timings) and 0.5x at 100,000 parameters") in text
