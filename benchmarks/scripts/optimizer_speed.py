"""Speed of one optimizer step: fastgd against torch.optim on the CPU, and against the memory bus.

    python benchmarks/scripts/optimizer_speed.py [--out reports/optimizer_speed.md]

Measures, in one run, medians over repeats:
  * an Adam step on 1,000 float32 parameters through ``opt.step`` (per-call
    overhead decides) against ``torch.optim.Adam(fused=True)``;
  * an Adam step on 10,000,000 float32 parameters against torch's fused Adam
    and against the same memory traffic alone, its ceiling: three arrays of
    10,000,000 float32 updated in place from a fourth, measured here; Adam
    moves 28 bytes per parameter (reads θ, g, m, v; writes θ, m, v). The
    STREAM triad (main memory) is reported beside it, not as the ceiling: its
    working set outgrows the L3 cache where the step's does not;
  * every rule of ``fastgd.optim.OPTIMIZERS`` at both sizes, beside the NumPy
    reference;
  * the cold start (first ``opt.step`` in a fresh process with an empty Numba
    cache, import included) and the warm start (same, cache filled).
torch rows are left out when torch is not installed.
"""

import argparse
import os
import pathlib
import sys
import tempfile

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from benchmarks import common  # noqa: E402
from fastgd import baselines, optim  # noqa: E402

ADAM_BYTES_PER_PARAMETER = baselines.bytes_per_parameter("adam", np.float32)  # 28: reads θ, g, m, v; writes θ, m, v


def seconds(implementation, name, size, repeats):
    """Median seconds of one step (``baselines.seconds_per_call``, at least ``repeats`` batches), after a warm-up."""
    call = baselines.step_callable(name, size, np.float32, implementation)
    call()
    return baselines.seconds_per_call(call, budget_seconds=0.0, min_repeats=repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write a markdown summary here (and the numbers beside it as .json)")
    parser.add_argument("--repeats", type=int, default=15)
    arguments = parser.parse_args()

    try:
        import torch
    except ImportError:
        torch = None

    results = {"small": {}, "large": {}}
    small, large = 1_000, 10_000_000
    results["in_place_bytes_per_second"] = baselines.in_place_bandwidth(large, np.float32,
                                                                        baselines.arrays_written("adam"))
    results["triad_bytes_per_second"] = baselines.triad_bandwidth()

    for name in optim.OPTIMIZERS:
        for size, key in ((small, "small"), (large, "large")):
            results[key][name] = {
                "fastgd": seconds(baselines.users_step_implementation(size), name, size, arguments.repeats),
                "numpy": seconds("numpy", name, size, arguments.repeats if size == small else 3),
            }
    if torch is not None:
        for implementation in ("torch", "torch_fused"):
            for size, key in ((small, "small"), (large, "large")):
                results[key]["adam"][implementation] = seconds(implementation, "adam", size, arguments.repeats)
        results["torch_threads"] = torch.get_num_threads()

    with tempfile.TemporaryDirectory() as cache_dir:
        results["cold_start_seconds"] = common.start_seconds("adam_step", cache_dir)
        results["warm_start_seconds"] = common.start_seconds("adam_step", cache_dir)

    lines = report(results, small, large)
    common.print_and_save(lines, results, arguments.out)


def report(results, small, large):
    adam_small, adam_large = results["small"]["adam"], results["large"]["adam"]
    bandwidth = results["in_place_bytes_per_second"]
    adam_bandwidth = ADAM_BYTES_PER_PARAMETER * large / adam_large["fastgd"]
    lines = [
        "# Optimizer step speed",
        "",
        f"Machine: {os.cpu_count()} CPUs; median of repeats, all figures from one run of "
        "`benchmarks/scripts/optimizer_speed.py`.",
        "",
        "## Goals of the core issue",
        "",
        "| measure | fastgd | baseline | ratio | goal |",
        "|---|---|---|---|---|",
    ]
    if "torch_fused" in adam_small:
        lines.append(f"| Adam step, {small:,} float32 | {adam_small['fastgd'] * 1e6:.2f} µs | torch fused "
                     f"{adam_small['torch_fused'] * 1e6:.2f} µs | "
                     f"{adam_small['torch_fused'] / adam_small['fastgd']:.1f}x "
                     "faster | ≥ 5x |")
        lines.append(f"| Adam step, {large:,} float32 | {adam_large['fastgd'] * 1e3:.2f} ms | torch fused "
                     f"{adam_large['torch_fused'] * 1e3:.2f} ms | "
                     f"{adam_large['torch_fused'] / adam_large['fastgd']:.2f}x "
                     "faster | ≥ 1x |")
    lines.append(f"| Adam bandwidth, {large:,} float32 (28 B/param) | {adam_bandwidth / 1e9:.1f} GB/s | its traffic "
                 f"alone {bandwidth / 1e9:.1f} GB/s | {adam_bandwidth / bandwidth:.0%} | ≥ 80% |")
    lines.append(f"| cold start (import + first step, empty cache) | {results['cold_start_seconds']:.2f} s | | "
                 "| < 2 s |")
    lines.append(f"| warm start (import + first step, cache filled) | {results['warm_start_seconds']:.2f} s | | "
                 "| < 0.3 s |")
    lines += ["", f"STREAM triad over {large:,} float64 in the same run (main memory, not a step's ceiling): "
              f"{results['triad_bytes_per_second'] / 1e9:.1f} GB/s.", "", "## Every rule (float32)", "",
              f"| rule | {small:,}: fastgd | {small:,}: numpy | speed-up | {large:,}: fastgd | {large:,}: numpy "
              "| speed-up |",
              "|---|---|---|---|---|---|---|"]
    for name in results["small"]:
        small_run, large_run = results["small"][name], results["large"][name]
        lines.append(f"| {name} | {small_run['fastgd'] * 1e6:.2f} µs | {small_run['numpy'] * 1e6:.1f} µs | "
                     f"{small_run['numpy'] / small_run['fastgd']:.0f}x | {large_run['fastgd'] * 1e3:.2f} ms | "
                     f"{large_run['numpy'] * 1e3:.1f} ms | {large_run['numpy'] / large_run['fastgd']:.0f}x |")
    if "torch" in adam_small:
        lines += ["", f"torch.optim.Adam (foreach, not fused), {results['torch_threads']} threads: "
                  f"{adam_small['torch'] * 1e6:.1f} µs at {small:,}, {adam_large['torch'] * 1e3:.2f} ms at {large:,}."]
    return lines


if __name__ == "__main__":
    main()
