"""A declared CNN's training epoch with its convolutions' products in groups of at least ``k`` samples, for each
``k`` of ``--groups``: ``fastgd.kernels.network.MIN_GROUP_SAMPLES`` set before each training is built (its
workspace, sized once, sets the groups; 1 is the rule before there was a minimum: as many samples as fit in
``COLUMNS_BUDGET`` elements, at least one).

    python benchmarks/scripts/cnn_group_size.py [--networks 2c2d 3c3d suite] [--groups 1 4] [--rows 512]
                                                [--rounds 5] [--out reports/cnn_group_size.md]

One thread (Numba and BLAS), float32, Adam, batches of 128 of synthetic data; each figure is the process's CPU
time of one epoch after one untimed epoch, a fresh training each time; the settings alternate round by round, and
each round's ratio (the first setting's time over each other's) is from the same minutes. ``suite`` is the
test-problem suite's 8/16-channel 2c2d (``cnn_layer_profile.py``'s ``suite_network``); other names are
``fastgd.networks.known``'s.
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("FASTGD_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "scripts"))
from benchmarks import common  # noqa: E402
from cnn_layer_profile import suite_network  # noqa: E402

from fastgd import machine, networks, optim, threads  # noqa: E402
from fastgd.kernels import network as kernels  # noqa: E402
from fastgd.training import Training  # noqa: E402

BATCH = 128


def epoch_seconds(net, theta, X, Y, groups):
    """CPU seconds of the second epoch of a fresh Adam training whose workspace takes groups of ``groups``."""
    kernels.MIN_GROUP_SAMPLES = groups
    run = Training(net, optim.Adam(theta.copy(), lr=1e-3), X, Y, BATCH, seed=0)
    run.run(1)
    start = time.process_time()
    run.run(1)
    return time.process_time() - start


def measure(name, groups, rows, rounds):
    net = suite_network() if name == "suite" else networks.known(name)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, *net.input_shape)).astype(np.float32)
    Y = np.eye(net.n_outputs, dtype=np.float32)[rng.integers(0, net.n_outputs, rows)]
    theta = net.init(random_state=0).astype(np.float32)
    seconds = {k: [] for k in groups}
    for round_ in range(rounds):
        for k in (groups if round_ % 2 == 0 else groups[::-1]):
            seconds[k].append(epoch_seconds(net, theta, X, Y, k))
    return net, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", nargs="+", default=["2c2d", "3c3d", "suite"])
    parser.add_argument("--groups", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out")
    arguments = parser.parse_args(argv)
    before = os.getloadavg()
    lines = ["# A CNN's epoch by the smallest group of samples its convolutions' products take", "",
             f"CPU: {machine.cpu_model()}; {threads.describe()}; float32, Adam, batches of {BATCH}, "
             f"{arguments.rows} rows; CPU seconds of one epoch, medians of {arguments.rounds} alternated rounds; "
             f"`python benchmarks/scripts/cnn_group_size.py {' '.join(sys.argv[1:])}`.", "",
             "| network | largest convolution's elements a sample | at least k samples | median ms / epoch | range | "
             f"× k = {arguments.groups[0]}, median of the rounds' ratios |", "|---|---|---|---|---|---|"]
    results = {}
    for name in arguments.networks:
        net, seconds = measure(name, arguments.groups, arguments.rows, arguments.rounds)
        largest = max((int(kernels._conv_sample_elements.py_func(i, d, c, p, False))
                       for i, d, p, c in (kernels._conv_sizes.py_func(layer) for layer in net._kernel_plan
                                          if layer[kernels.PLAN_KIND] == kernels.CONV)), default=0)
        first = seconds[arguments.groups[0]]
        for k in arguments.groups:
            ratios = [a / b for a, b in zip(first, seconds[k])]
            lines.append(f"| {name} | {largest:,} | {k} | {np.median(seconds[k]) * 1e3:.1f} | "
                         f"{min(seconds[k]) * 1e3:.1f}–{max(seconds[k]) * 1e3:.1f} | {np.median(ratios):.3f} "
                         f"({', '.join(f'{r:.2f}' for r in ratios)}) |")
        results[name] = {str(k): v for k, v in seconds.items()}
    after = os.getloadavg()
    lines += ["", f"Load average (1, 5, 15 min) before: {before[0]:.2f}, {before[1]:.2f}, {before[2]:.2f}; "
              f"after: {after[0]:.2f}, {after[1]:.2f}, {after[2]:.2f} (2 cores, shared)."]
    common.print_and_save(lines, results, arguments.out)


if __name__ == "__main__":
    main()
