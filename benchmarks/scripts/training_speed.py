"""Seconds per training epoch: fastgd against scikit-learn's MLP and a plain PyTorch CPU loop.

    python benchmarks/scripts/training_speed.py [--epochs 30] [--out reports/training_speed.md]

All in one run, medians over epochs, on the digits training split (1,347 x 64,
standardised), with the asv suite's trainers (``benchmarks/common.py``: same
network, same initial weights, no L2 penalty):
  * a 64-32-10 ReLU MLP, Adam, lr 1e-3, batch 32 (the small-model regime where
    per-step overhead decides), float64 (scikit-learn's precision) and float32;
  * 64-256-10, batch 256, where matrix products decide, with the achieved
    FLOP rate of the epoch's matrix products against the machine's matrix-
    multiply peak (a large square GEMM through NumPy's BLAS, same dtype);
  * the final training loss after the same number of epochs against
    scikit-learn's (one ``fit`` of that many epochs, timed as a whole);
  * the cold start of a first fit in a fresh process with an empty Numba
    cache, import included, and the same with the cache filled.
PyTorch rows are left out when torch is not installed.
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
from fastgd import baselines, datasets  # noqa: E402

LEARNING_RATE = baselines.LEARNING_RATES["adam"]


def epoch_seconds(trainer, n_epochs):
    """(median seconds of the epochs after the first, the last epoch's loss)."""
    seconds, loss = [], None
    for _ in range(n_epochs):
        start = time.perf_counter()
        loss = trainer.epoch()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds[1:])), loss


def fastgd_epochs(data, hidden, batch_size, n_epochs, dtype):
    return epoch_seconds(common.warmed_trainer("fastgd", data, "adam", hidden, batch_size, dtype), n_epochs)


def sklearn_epochs(data, hidden, batch_size, n_epochs):
    trainer = baselines.SklearnTrainer(data, "adam", hidden, batch_size, np.float64)
    start = time.perf_counter()
    losses = trainer.fit(n_epochs)
    return (time.perf_counter() - start) / len(losses), losses[-1]


def torch_epochs(data, hidden, batch_size, n_epochs):
    return epoch_seconds(baselines.TorchTrainer(data, "adam", hidden, batch_size, np.float32), n_epochs)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", help="write a markdown summary here (and the numbers beside it as .json)")
    arguments = parser.parse_args()
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False

    data = datasets.load("digits")
    n_epochs = arguments.epochs
    results = {"n_train": data.X_train.shape[0], "epochs": n_epochs, "configs": []}
    for hidden, batch_size in [(32, 32), (256, 256)]:
        config = {"hidden": hidden, "batch_size": batch_size}
        for name, dtype in [("float64", np.float64), ("float32", np.float32)]:
            config[f"fastgd_{name}"], config[f"fastgd_{name}_loss"] = fastgd_epochs(data, hidden, batch_size,
                                                                                    n_epochs, dtype)
            config[f"peak_{name}"] = baselines.gemm_rate(dtype, budget_seconds=1.0)
        config["sklearn"], config["sklearn_loss"] = sklearn_epochs(data, hidden, batch_size, n_epochs)
        if have_torch:
            config["torch"] = torch_epochs(data, hidden, batch_size, n_epochs)
        config["matmul_flops"] = baselines.epoch_matmul_flops(data.X_train.shape[0],
                                                           [data.n_features, hidden, data.n_outputs])
        results["configs"].append(config)
    with tempfile.TemporaryDirectory() as cache_dir:
        results["cold_start_seconds"] = common.start_seconds("classifier_fit", cache_dir)
        results["warm_start_seconds"] = common.start_seconds("classifier_fit", cache_dir)

    lines = report(results)
    common.print_and_save(lines, results, arguments.out)


def report(results):
    lines = ["# Training speed", "",
             f"digits training split ({results['n_train']} samples), Adam lr {LEARNING_RATE}, ReLU, "
             f"{results['epochs']} epochs, median seconds per epoch; one run of "
             "`benchmarks/scripts/training_speed.py`, {os.cpu_count()} CPUs.".replace("{os.cpu_count()}",
                                                                                      str(os.cpu_count())),
             "",
             "| network, batch | fastgd float64 | fastgd float32 | scikit-learn (float64) | PyTorch (float32) "
             "| vs scikit-learn | vs PyTorch | final loss fastgd / scikit-learn |",
             "|---|---|---|---|---|---|---|---|"]
    for c in results["configs"]:
        torch_cell = f"{c['torch'] * 1e3:.2f} ms" if "torch" in c else "n/a"
        versus_torch = f"{c['torch'] / c['fastgd_float32']:.1f}x (float32)" if "torch" in c else "n/a"
        lines.append(
            f"| 64-{c['hidden']}-10, {c['batch_size']} | {c['fastgd_float64'] * 1e3:.2f} ms | "
            f"{c['fastgd_float32'] * 1e3:.2f} ms | {c['sklearn'] * 1e3:.2f} ms | {torch_cell} | "
            f"{c['sklearn'] / c['fastgd_float64']:.1f}x (float64) | {versus_torch} | "
            f"{c['fastgd_float64_loss']:.4f} / {c['sklearn_loss']:.4f} "
            f"({c['fastgd_float64_loss'] / c['sklearn_loss'] - 1:+.1%}) |")
    lines += ["", "Matrix products against the machine's GEMM peak (2048² NumPy matmul, same run):", "",
              "| network, batch | dtype | epoch GEMM FLOP rate | peak | share |", "|---|---|---|---|---|"]
    for c in results["configs"]:
        for name in ("float64", "float32"):
            rate = c["matmul_flops"] / c[f"fastgd_{name}"]
            lines.append(f"| 64-{c['hidden']}-10, {c['batch_size']} | {name} | {rate / 1e9:.1f} GFLOP/s | "
                         f"{c[f'peak_{name}'] / 1e9:.1f} GFLOP/s | {rate / c[f'peak_{name}']:.0%} |")
    lines += ["", "(The rate counts only the matrix products but divides by the whole epoch: shuffling, "
              "activations, loss and the update are in the time too.)", "",
              f"Cold start, first `MLPClassifier.fit` in a fresh process with an empty Numba cache, import included: "
              f"{results['cold_start_seconds']:.1f} s; with the cache filled: {results['warm_start_seconds']:.2f} s."]
    return lines


if __name__ == "__main__":
    main()
