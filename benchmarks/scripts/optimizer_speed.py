"""Speed of one optimizer step: fastgd against torch.optim on the CPU, and against the memory bus.

    python benchmarks/scripts/optimizer_speed.py [--out reports/optimizer_speed.md]

Measures, in one run, medians over repeats:
  * an Adam step on 1,000 float32 parameters through ``opt.step`` (per-call
    overhead decides) against ``torch.optim.Adam(fused=True)``;
  * an Adam step on 10,000,000 float32 parameters against torch's fused Adam
    and against the machine's memory bandwidth, measured here by a STREAM-style
    triad; Adam moves 28 bytes per parameter (reads θ, g, m, v; writes θ, m, v);
  * every rule of ``fastgd.optim.OPTIMIZERS`` at both sizes, beside the NumPy
    reference;
  * the cold start (first ``opt.step`` in a fresh process with an empty Numba
    cache, import included) and the warm start (same, cache filled).
torch rows are left out when torch is not installed.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from numba import njit, prange

from fastgd import optim, reference

ADAM_BYTES_PER_PARAMETER = 28  # float32: read θ, g, m, v and write θ, m, v
TRIAD_ARRAYS = 3


@njit(parallel=True, cache=True)
def _triad(a, b, c, scalar):
    for i in prange(a.size):
        a[i] = b[i] + scalar * c[i]


def median_seconds(function, repeats, number):
    """Median over ``repeats`` of the mean time of ``number`` calls."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            function()
        times.append((time.perf_counter() - start) / number)
    return float(np.median(times))


def triad_bandwidth(size, repeats):
    """STREAM triad a = b + s·c over float64 arrays: bytes counted as STREAM does (24 per element)."""
    a, b, c = np.zeros(size), np.ones(size), np.full(size, 2.0)
    seconds = median_seconds(lambda: _triad(a, b, c, 3.0), repeats, 1)
    return TRIAD_ARRAYS * 8 * size / seconds


def fastgd_step(name, size, dtype=np.float32):
    rng = np.random.default_rng(0)
    optimizer = optim.OPTIMIZERS[name](rng.standard_normal(size).astype(dtype))
    grad = rng.standard_normal(size).astype(dtype)
    return lambda: optimizer.step(grad)


def reference_step(name, size, dtype=np.float32):
    rng = np.random.default_rng(0)
    optimizer = reference.ReferenceOptimizer(name, rng.standard_normal(size).astype(dtype))
    grad = rng.standard_normal(size).astype(dtype)
    return lambda: optimizer.step(grad)


def torch_adam_step(size, fused):
    import torch

    param = torch.randn(size, dtype=torch.float32, requires_grad=True)
    param.grad = torch.randn(size, dtype=torch.float32)
    optimizer = torch.optim.Adam([param], lr=1e-3, fused=fused)
    return optimizer.step


def start_time(cache_dir):
    """Seconds from before ``import`` to after the first Adam step, in a fresh process."""
    code = (
        "import time; start = time.perf_counter()\n"
        "import numpy as np\n"
        "from fastgd import optim\n"
        "opt = optim.Adam(np.zeros(1000, np.float32))\n"
        "opt.step(np.ones(1000, np.float32))\n"
        "print(time.perf_counter() - start)\n"
    )
    environment = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    output = subprocess.run([sys.executable, "-c", code], env=environment, check=True, capture_output=True, text=True)
    return float(output.stdout.strip())


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
    bandwidth = triad_bandwidth(large, arguments.repeats)
    results["triad_bytes_per_second"] = bandwidth

    for name in optim.OPTIMIZERS:
        results["small"][name] = {
            "fastgd": median_seconds(fastgd_step(name, small), arguments.repeats, 2000),
            "numpy": median_seconds(reference_step(name, small), arguments.repeats, 200),
        }
        results["large"][name] = {
            "fastgd": median_seconds(fastgd_step(name, large), arguments.repeats, 1),
            "numpy": median_seconds(reference_step(name, large), max(3, arguments.repeats // 3), 1),
        }
    if torch is not None:
        for fused in (False, True):
            key = "torch_fused" if fused else "torch"
            results["small"]["adam"][key] = median_seconds(torch_adam_step(small, fused), arguments.repeats, 2000)
            results["large"]["adam"][key] = median_seconds(torch_adam_step(large, fused), arguments.repeats, 1)
        results["torch_threads"] = torch.get_num_threads()

    with tempfile.TemporaryDirectory() as cache_dir:
        results["cold_start_seconds"] = start_time(cache_dir)
        results["warm_start_seconds"] = start_time(cache_dir)

    lines = report(results, small, large)
    print("\n".join(lines))
    if arguments.out:
        with open(arguments.out, "w") as markdown:
            markdown.write("\n".join(lines) + "\n")
        with open(os.path.splitext(arguments.out)[0] + ".json", "w") as raw:
            json.dump(results, raw, indent=2)


def report(results, small, large):
    adam_small, adam_large = results["small"]["adam"], results["large"]["adam"]
    bandwidth = results["triad_bytes_per_second"]
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
                     f"{adam_small['torch_fused'] * 1e6:.2f} µs | {adam_small['torch_fused'] / adam_small['fastgd']:.1f}x "
                     "faster | ≥ 5x |")
        lines.append(f"| Adam step, {large:,} float32 | {adam_large['fastgd'] * 1e3:.2f} ms | torch fused "
                     f"{adam_large['torch_fused'] * 1e3:.2f} ms | {adam_large['torch_fused'] / adam_large['fastgd']:.2f}x "
                     "faster | ≥ 1x |")
    lines.append(f"| Adam bandwidth, {large:,} float32 (28 B/param) | {adam_bandwidth / 1e9:.1f} GB/s | triad "
                 f"{bandwidth / 1e9:.1f} GB/s | {adam_bandwidth / bandwidth:.0%} | ≥ 80% |")
    lines.append(f"| cold start (import + first step, empty cache) | {results['cold_start_seconds']:.2f} s | | | < 2 s |")
    lines.append(f"| warm start (import + first step, cache filled) | {results['warm_start_seconds']:.2f} s | | | < 0.3 s |")
    lines += ["", "## Every rule (float32)", "",
              f"| rule | {small:,}: fastgd | {small:,}: numpy | speed-up | {large:,}: fastgd | {large:,}: numpy | speed-up |",
              "|---|---|---|---|---|---|---|"]
    for name in results["small"]:
        s, l = results["small"][name], results["large"][name]
        lines.append(f"| {name} | {s['fastgd'] * 1e6:.2f} µs | {s['numpy'] * 1e6:.1f} µs | {s['numpy'] / s['fastgd']:.0f}x "
                     f"| {l['fastgd'] * 1e3:.2f} ms | {l['numpy'] * 1e3:.1f} ms | {l['numpy'] / l['fastgd']:.0f}x |")
    if "torch" in adam_small:
        lines += ["", f"torch.optim.Adam (foreach, not fused), {results['torch_threads']} threads: "
                  f"{adam_small['torch'] * 1e6:.1f} µs at {small:,}, {adam_large['torch'] * 1e3:.2f} ms at {large:,}."]
    return lines


if __name__ == "__main__":
    main()
