"""Seconds per epoch at real network sizes: fastgd against scikit-learn, PyTorch and JAX + optax.

    python benchmarks/scripts/network_speed.py [--rounds 5] [--block 0.5] [--out reports/network_speed.md]

The workloads of issue 15 (``common.NETWORKS``, which asv's ``bench_training.NetworkEpoch`` runs too), all in one run:
  * synthetic classification data (``make_classification``, 10 classes, 20,000 training
    rows, standardised), ReLU MLPs 100-256-256-10 (batch 64), 256-512-512-10 (batch 256) and
    256-1024-1024-10 (batch 1024), Adam, float32;
  * digits (1,347 training rows), 64-32-10, batch 32, float64.
Every implementation trains the same network from the same initial weights with the same loss
(``benchmarks/common.py``'s trainers): fastgd's compiled epoch, scikit-learn's MLP (timed as one
``fit`` of several epochs, as its users train), a plain PyTorch loop, and JAX + optax with a
whole epoch under ``jax.jit``. Rounds alternate the implementations, and the machine's GEMM
peak (a 2048² matrix product through NumPy's BLAS, same dtype) is measured in every round;
each figure is the median over rounds, and every ratio compares figures of this run.

The GEMM share is the epoch's matrix-product FLOPs (forward, and both backward products)
over fastgd's seconds per epoch, against that peak.

Then the fixed cost of a whole ``MLPClassifier.fit`` on digits (20 epochs, against 20 of its
epochs run alone), and the warm start: ``import fastgd`` and a first ``opt.step`` against
``import numba`` alone, and a first fit beyond its imports, in fresh processes with the cache
filled.
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from benchmarks import common  # noqa: E402
from fastgd import MLP, MLPClassifier, datasets, optim, threads  # noqa: E402
from fastgd.training import Training  # noqa: E402

IMPLEMENTATIONS = ("fastgd", "sklearn", "torch", "jax")
NETWORKS = list(common.NETWORKS)  # labels "layer sizes/batch size", the table asv's NetworkEpoch runs too
FIT_EPOCHS = 20


def block_seconds(trainer, implementation, n_epochs):
    """Seconds per epoch of ``n_epochs`` epochs, trained the way users of ``implementation`` do."""
    if implementation == "sklearn":
        return trainer.fit_seconds(n_epochs) / n_epochs
    start = time.perf_counter()
    for _ in range(n_epochs):
        common.finite(trainer.epoch())
    return (time.perf_counter() - start) / n_epochs


def measure_network(label, rounds, block):
    network = common.NETWORKS[label]
    hidden, batch_size, dtype = network.hidden, network.batch_size, network.dtype
    data = common.load_network_data(label)
    trainers, epochs_per_block = {}, {}
    for implementation in IMPLEMENTATIONS:
        try:
            trainers[implementation] = common.warmed_trainer(implementation, data, "adam", hidden, batch_size, dtype)
        except NotImplementedError as missing:
            print(f"{label}: {implementation} left out ({missing})", file=sys.stderr)
            continue
        first = block_seconds(trainers[implementation], implementation, 1)  # also pays a first call's costs
        epochs_per_block[implementation] = max(1, round(block / first))
    seconds = {implementation: [] for implementation in trainers}
    peaks = []
    for round_index in range(rounds):
        order = list(trainers)
        order = order[round_index % len(order):] + order[:round_index % len(order)]
        for implementation in order:
            seconds[implementation].append(block_seconds(trainers[implementation], implementation,
                                                         epochs_per_block[implementation]))
        peaks.append(common.gemm_rate(dtype, budget_seconds=0.3))
    layer_sizes = [data.n_features, *hidden, data.n_outputs]
    result = {"label": f"{label}, {dtype}", "dtype": np.dtype(dtype).name, "n_train": int(data.X_train.shape[0]),
              "layer_sizes": layer_sizes, "batch_size": batch_size,
              "seconds": {implementation: float(np.median(values)) for implementation, values in seconds.items()},
              "spread": {implementation: [float(min(values)), float(max(values))]
                         for implementation, values in seconds.items()},
              "peak_flops": float(np.median(peaks)),
              "matmul_flops": common.epoch_matmul_flops(data.X_train.shape[0], layer_sizes)}
    result["gemm_share"] = result["matmul_flops"] / result["seconds"]["fastgd"] / result["peak_flops"]
    return result


def fit_fixed_cost(n_repeats=7):
    """(median seconds of a 20-epoch ``MLPClassifier.fit`` on digits, median seconds of 20 epochs of the same
    network, rule and data trained by a ``Training`` alone), alternated."""
    data = datasets.load("digits")
    settings = dict(hidden_layer_sizes=(32,), batch_size=32, max_iter=FIT_EPOCHS, tol=0.0,
                    n_iter_no_change=FIT_EPOCHS + 1, random_state=common.SEED)
    MLPClassifier(**settings).fit(data.X_train, data.y_train)  # compile or load outside the timing
    net = MLP([data.n_features, 32, data.n_outputs], "relu", "softmax", alpha=1e-4, dtype=np.float64)
    fits, epochs = [], []
    for _ in range(n_repeats):
        start = time.perf_counter()
        MLPClassifier(**settings).fit(data.X_train, data.y_train)
        fits.append(time.perf_counter() - start)
        training = Training(net, optim.Adam(net.init(common.SEED), lr=1e-3), data.X_train, data.Y_train, 32,
                            seed=common.SEED)
        start = time.perf_counter()
        for _ in range(FIT_EPOCHS):
            training.epoch()
        epochs.append(time.perf_counter() - start)
    return float(np.median(fits)), float(np.median(epochs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block", type=float, default=0.5, help="seconds each implementation trains per round")
    parser.add_argument("--networks", default=",".join(str(k) for k in range(len(NETWORKS))),
                        help="indices of the networks to run (comma-separated)")
    parser.add_argument("--out", help="write a markdown summary here (and the numbers beside it as .json)")
    arguments = parser.parse_args()
    results = {"cpus": os.cpu_count(), "threads": threads.describe(), "networks": []}
    for index in map(int, arguments.networks.split(",")):
        results["networks"].append(measure_network(NETWORKS[index], arguments.rounds, arguments.block))
        print(f"{NETWORKS[index]}: done", file=sys.stderr)
    results["fit_seconds"], results["fit_epochs_seconds"] = fit_fixed_cost()
    with tempfile.TemporaryDirectory() as cache_dir:
        common.start_seconds("adam_step", cache_dir)  # fills the cache
        results["import_numba_seconds"] = float(np.median([common.start_seconds("import_numba", cache_dir)
                                                           for _ in range(3)]))
        results["adam_step_seconds"] = float(np.median([common.start_seconds("adam_step", cache_dir)
                                                        for _ in range(3)]))
        common.warm_first_fit_seconds(cache_dir)  # fills the cache
        results["warm_fit_seconds"] = float(np.median([common.warm_first_fit_seconds(cache_dir) for _ in range(3)]))
    common.print_and_save(report(results), results, arguments.out)


def _times(seconds):
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def report(results):
    lines = ["# Training speed at real network sizes", "",
             f"Adam, ReLU, median seconds per epoch over rounds that alternate the implementations; one run of "
             f"`benchmarks/scripts/network_speed.py` on {results['cpus']} CPUs ({results['threads']}). "
             "Ratios are the other implementation's time over fastgd's, from this run.", "",
             "| network/batch, dtype | fastgd s/epoch | × scikit-learn | × PyTorch | × JAX + optax | GEMM share |",
             "|---|---|---|---|---|---|"]
    for network in results["networks"]:
        seconds = network["seconds"]
        ratios = [f"{seconds[name] / seconds['fastgd']:.2f}" if name in seconds else "n/a"
                  for name in ("sklearn", "torch", "jax")]
        lines.append(f"| {network['label']} | {_times(seconds['fastgd'])} | {' | '.join(ratios)} | "
                     f"{network['gemm_share']:.0%} of {network['peak_flops'] / 1e9:.0f} GFLOP/s |")
    lines += ["", "Seconds per epoch of each implementation (median, and the range over rounds):", "",
              "| network/batch, dtype | " + " | ".join(IMPLEMENTATIONS) + " |", "|---|" + "---|" * len(IMPLEMENTATIONS)]
    for network in results["networks"]:
        cells = [f"{_times(network['seconds'][name])} ({_times(network['spread'][name][0])}–"
                 f"{_times(network['spread'][name][1])})" if name in network["seconds"] else "n/a"
                 for name in IMPLEMENTATIONS]
        lines.append(f"| {network['label']} | {' | '.join(cells)} |")
    fixed = results["fit_seconds"] - results["fit_epochs_seconds"]
    lines += ["", f"A {FIT_EPOCHS}-epoch `MLPClassifier.fit` on digits: {_times(results['fit_seconds'])}, of which "
              f"{_times(fixed)} ({fixed / results['fit_seconds']:.1%}) is not its epochs.", "",
              f"Warm start (fresh processes, cache filled, medians of 3): `import numba` "
              f"{results['import_numba_seconds']:.2f} s; `import fastgd` and a first `opt.step` "
              f"{results['adam_step_seconds']:.2f} s (+{results['adam_step_seconds'] - results['import_numba_seconds']:.2f} s); "
              f"a first fit beyond its imports {results['warm_fit_seconds']:.2f} s."]
    return lines


if __name__ == "__main__":
    main()
