"""Seconds per epoch of a declared CNN: fastgd's compiled epoch against a plain PyTorch loop, same threads.

    python benchmarks/scripts/cnn_epoch_speed.py [--rounds 7] [--epochs 3] [--threads 1] [--out FILE.md]
    python benchmarks/scripts/cnn_epoch_speed.py --network 2c2d --rows 512 --out reports/cnn_epoch_speed_2c2d.md

The network is ``fastgd.networks.known(--network)``, by default ``"digits_cnn"`` on scikit-learn's 8×8
digits (all 1,797 rows, pixels / 16); any other known network trains on ``--rows`` rows of standard
normal inputs with random labels (a speed measurement: the data's meaning does not change the work).
Batches of 32, Adam (lr 1e-3), float32, cross-entropy. Both implementations start from
the same θ and take the same batches in the same order (fastgd's SplitMix64 shuffle). fastgd runs
``fastgd.training.Training``, one compiled call an epoch (:func:`fastgd.kernels.train.train_epoch`); PyTorch runs
``nn.Sequential`` with ``torch.optim.Adam`` over the batches, the way its users train. Both use
``--threads`` threads (``fastgd.threads`` for Numba and BLAS, ``torch.set_num_threads``). Each round
times ``--epochs`` epochs of one implementation and then of the other, alternating which goes first;
the figures are medians over rounds and the ratio compares medians of this run. The report goes to
``reports/cnn_epoch_speed.md`` unless ``--out`` names another file.
"""

import argparse
import pathlib
import platform
import statistics
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fastgd import networks, optim, threads  # noqa: E402
from fastgd.reference import splitmix64_permutation  # noqa: E402
from fastgd.training import Training  # noqa: E402
from network_cases import torch_module  # noqa: E402

BATCH_SIZE, SEED, LEARNING_RATE = 32, 0, 1e-3


def training_set(net, name, n_rows):
    """Digits for the digits CNN, else ``n_rows`` rows of standard normal inputs with random one-hot labels."""
    if name == "digits_cnn":
        from sklearn.datasets import load_digits

        data = load_digits()
        return (data.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8), np.eye(10, dtype=np.float32)[data.target]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_rows,) + net.input_shape, dtype=np.float32)
    return X, np.eye(net.n_outputs, dtype=np.float32)[rng.integers(0, net.n_outputs, n_rows)]


class FastgdEpochs:
    def __init__(self, net, theta, X, Y):
        self.training = Training(net, optim.Adam(theta, lr=LEARNING_RATE), X, Y, BATCH_SIZE, seed=SEED)

    def epoch(self):
        return self.training.epoch()


class TorchEpochs:
    def __init__(self, net, theta, X, Y):
        import torch

        self.torch = torch
        self.module = torch_module(net, theta)
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=LEARNING_RATE)
        self.X, self.Y = torch.from_numpy(X), torch.from_numpy(Y)
        self.epochs_done = 0

    def epoch(self):
        torch, n = self.torch, self.X.shape[0]
        order = torch.from_numpy(splitmix64_permutation(n, SEED, self.epochs_done))
        total = 0.0
        for start in range(0, n, BATCH_SIZE):
            rows = order[start:start + BATCH_SIZE]
            self.optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.module(self.X[rows]), self.Y[rows])
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach()) * len(rows)
        self.epochs_done += 1
        return total / n


def seconds_per_epoch(trainer, n_epochs):
    start = time.perf_counter()
    for _ in range(n_epochs):
        loss = trainer.epoch()
        if not np.isfinite(loss):
            raise RuntimeError("training diverged")
    return (time.perf_counter() - start) / n_epochs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--network", default="digits_cnn")
    parser.add_argument("--rows", type=int, default=512, help="rows of synthetic data (networks other than digits)")
    parser.add_argument("--out", default=str(ROOT / "reports" / "cnn_epoch_speed.md"))
    arguments = parser.parse_args()
    import torch

    threads.set_num_threads(arguments.threads)
    torch.set_num_threads(arguments.threads)
    net = networks.known(arguments.network)
    X, Y = training_set(net, arguments.network, arguments.rows)
    theta = net.init(random_state=0, dtype=np.float32)
    trainers = {"fastgd": FastgdEpochs(net, theta.copy(), X, Y), "torch": TorchEpochs(net, theta.copy(), X, Y)}
    first = {name: trainer.epoch() for name, trainer in trainers.items()}  # compiles and warms up
    seconds = {name: [] for name in trainers}
    for round_index in range(arguments.rounds):
        names = list(trainers) if round_index % 2 == 0 else list(trainers)[::-1]
        for name in names:
            seconds[name].append(seconds_per_epoch(trainers[name], arguments.epochs))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if pathlib.Path("/proc/cpuinfo").exists() else platform.processor()
    data = "scikit-learn's digits" if arguments.network == "digits_cnn" else "synthetic data"
    lines = [
        "# A declared CNN's epoch: fastgd against PyTorch",
        "",
        f"`known(\"{arguments.network}\")` ({net.n_params} parameters) on {data} ({X.shape[0]} rows), batches of "
        f"{BATCH_SIZE}, Adam, float32, same θ and batches; {arguments.threads} thread(s) each; {cpu}; one run of "
        f"`benchmarks/scripts/cnn_epoch_speed.py`, {arguments.rounds} alternated rounds of {arguments.epochs} epochs.",
        f"First epoch's loss: fastgd {first['fastgd']:.6f}, PyTorch {first['torch']:.6f}.",
        "",
        "| implementation | median s/epoch | range over rounds | × fastgd |",
        "|---|---|---|---|",
    ]
    for name in trainers:
        values = seconds[name]
        lines.append(f"| {name} | {medians[name] * 1e3:.2f} ms | {min(values) * 1e3:.2f}–{max(values) * 1e3:.2f} ms | "
                     f"{medians[name] / medians['fastgd']:.2f} |")
    text = "\n".join(lines) + "\n"
    pathlib.Path(arguments.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
