"""Seconds per training epoch: fastgd against scikit-learn's MLP and a plain PyTorch CPU loop.

    python benchmarks/scripts/training_speed.py [--epochs 30] [--out reports/training_speed.md]

All in one run, medians over epochs, on the digits training split (1,347 x 64,
standardised):
  * a 64-32-10 ReLU MLP, Adam, lr 1e-3, batch 32 (the small-model regime where
    per-step overhead decides), float64 (scikit-learn's precision) and float32;
  * 64-256-10, batch 256, where matrix products decide, with the achieved
    FLOP rate of the epoch's matrix products against the machine's matrix-
    multiply peak (a large square GEMM through NumPy's BLAS, same dtype);
  * the final training loss after the same number of epochs against
    scikit-learn's;
  * the cold start of a first fit in a fresh process with an empty Numba
    cache, import included, and the same with the cache filled.
PyTorch rows are left out when torch is not installed.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

from fastgd import MLP, datasets, optim
from fastgd.training import Training

LEARNING_RATE = 1e-3


def fastgd_epochs(data, hidden, batch_size, n_epochs, dtype):
    net = MLP([data.n_features, hidden, data.n_outputs], "relu", "softmax", alpha=1e-4, dtype=dtype)
    training = Training(net, optim.Adam(net.init(random_state=0), lr=LEARNING_RATE), data.X_train, data.Y_train,
                        batch_size, seed=0)
    training.epoch()  # compile (or load from the cache) outside the timing
    start = training.history.seconds[-1]
    history = training.run(n_epochs - 1)
    seconds = np.diff([start, *history.seconds[1:]])
    return float(np.median(seconds)), history.loss[-1]


def sklearn_epochs(data, hidden, batch_size, n_epochs):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(hidden,), solver="adam", learning_rate_init=LEARNING_RATE,
                        batch_size=batch_size, max_iter=n_epochs, tol=0.0, n_iter_no_change=n_epochs + 1,
                        alpha=1e-4, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        clf.fit(data.X_train, data.y_train)
    return (time.perf_counter() - start) / clf.n_iter_, clf.loss_curve_[-1]


def torch_epochs(data, hidden, batch_size, n_epochs):
    import torch

    torch.manual_seed(0)
    X = torch.tensor(data.X_train, dtype=torch.float32)
    y = torch.tensor(data.y_train)
    model = torch.nn.Sequential(torch.nn.Linear(data.n_features, hidden), torch.nn.ReLU(),
                                torch.nn.Linear(hidden, data.n_outputs))
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_function = torch.nn.CrossEntropyLoss()
    seconds = []
    for _ in range(n_epochs):
        start = time.perf_counter()
        order = torch.randperm(len(X))
        for first in range(0, len(X), batch_size):
            rows = order[first:first + batch_size]
            optimizer.zero_grad()
            loss = loss_function(model(X[rows]), y[rows])
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds[1:]))


def gemm_peak(dtype, size=2048, repeats=5):
    a = np.random.default_rng(0).random((size, size)).astype(dtype)
    b = a.copy()
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / float(np.median(times))


def epoch_matmul_flops(n_samples, sizes):
    """FLOPs of an epoch's matrix products: forward X·W, backward Aᵀ·δ and δ·Wᵀ (not for the input layer)."""
    flops = 0
    for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        flops += 2 * n_samples * n_in * n_out * (3 if layer > 0 else 2)
    return flops


def start_time(cache_dir):
    code = (
        "import time; start = time.perf_counter()\n"
        "from fastgd import MLPClassifier, datasets\n"
        "data = datasets.load('digits')\n"
        "MLPClassifier(hidden_layer_sizes=(32,), batch_size=32, max_iter=1).fit(data.X_train, data.y_train)\n"
        "print(time.perf_counter() - start)\n"
    )
    environment = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONWARNINGS="ignore")
    output = subprocess.run([sys.executable, "-c", code], env=environment, check=True, capture_output=True, text=True)
    return float(output.stdout.strip())


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
            config[f"peak_{name}"] = gemm_peak(dtype)
        config["sklearn"], config["sklearn_loss"] = sklearn_epochs(data, hidden, batch_size, n_epochs)
        if have_torch:
            config["torch"] = torch_epochs(data, hidden, batch_size, n_epochs)
        config["matmul_flops"] = epoch_matmul_flops(data.X_train.shape[0], [data.n_features, hidden, data.n_outputs])
        results["configs"].append(config)
    with tempfile.TemporaryDirectory() as cache_dir:
        results["cold_start_seconds"] = start_time(cache_dir)
        results["warm_start_seconds"] = start_time(cache_dir)

    lines = report(results)
    print("\n".join(lines))
    if arguments.out:
        with open(arguments.out, "w") as markdown:
            markdown.write("\n".join(lines) + "\n")
        with open(os.path.splitext(arguments.out)[0] + ".json", "w") as raw:
            json.dump(results, raw, indent=2)


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
