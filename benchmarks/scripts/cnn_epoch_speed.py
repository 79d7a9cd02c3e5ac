"""Seconds per epoch of a declared CNN: fastgd's compiled epoch against a plain PyTorch loop and JAX + optax's
jitted epoch, same threads.

    python benchmarks/scripts/cnn_epoch_speed.py [--rounds 7] [--epochs 3] [--threads 1] [--batch-size 32]
                                                 [--out FILE.md]
    python benchmarks/scripts/cnn_epoch_speed.py --network 2c2d --rows 512 --out reports/cnn_epoch_speed_2c2d.md

The network is ``fastgd.networks.known(--network)``, by default ``"digits_cnn"`` on scikit-learn's 8×8
digits (all 1,797 rows, pixels / 16); any other known network trains on ``--rows`` rows of standard
normal inputs with random labels (a speed measurement: the data's meaning does not change the work).
Batches of ``--batch-size`` (32), Adam (lr 1e-3), float32, cross-entropy. Both implementations start from
the same θ and take the same batches in the same order (fastgd's SplitMix64 shuffle, drawn for every epoch
before the timing). fastgd runs ``fastgd.training.Training``, one compiled call an epoch
(:func:`fastgd.kernels.train.train_epoch`); PyTorch runs ``nn.Sequential`` with ``torch.optim.Adam`` over the
batches, the way its users train; JAX runs :class:`fastgd.baselines.JaxNetworkTraining`, the layers as
``jax.lax`` convolutions and windows, a whole epoch in one ``jax.jit`` with ``lax.scan`` over the batches and
``optax.adam``, compiled before the timing; ``jax_steps`` the same with one jitted step a batch called from
Python (XLA's CPU backend runs a convolution's gradient far slower inside ``lax.scan``'s loop). All use
``--threads`` threads (``fastgd.threads`` for Numba and BLAS, ``torch.set_num_threads``, ``XLA_FLAGS`` set
before JAX is imported: with one thread ``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``).

``--clock cpu`` times each epoch in the process's CPU seconds (``time.process_time``) rather than wall seconds: on a
busy machine, the time each implementation computed rather than the time it waited for a core.

Before timing, a parity check: fresh copies of each implementation train ``PARITY_EPOCHS`` epochs from the same θ over
the same batches; the report gives each epoch's loss and the largest difference of θ from fastgd's after them,
and the script stops if PyTorch's or JAX's loss is not fastgd's to ``PARITY_TOLERANCE`` (float32 rounding), so
that the timings compare the same work. Each round times ``--epochs`` epochs of each implementation in turn,
rotating which goes first; the figures are medians over rounds and the ratios compare medians of this run.
The report goes to ``reports/cnn_epoch_speed.md`` unless ``--out`` names another file.
"""

import argparse
import os
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

SEED, LEARNING_RATE = 0, 1e-3
PARITY_EPOCHS = 2
PARITY_TOLERANCE = 1e-4  # relative, on an epoch's mean loss in float32


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
    def __init__(self, net, theta, X, Y, orders, batch_size):
        self.training = Training(net, optim.Adam(theta, lr=LEARNING_RATE), X, Y, batch_size, seed=SEED)

    def epoch(self):
        return self.training.epoch()

    def theta(self):
        return self.training.theta


class TorchEpochs:
    def __init__(self, net, theta, X, Y, orders, batch_size):
        import torch

        self.torch = torch
        self.module = torch_module(net, theta)
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=LEARNING_RATE)
        self.X, self.Y = torch.from_numpy(X), torch.from_numpy(Y)
        self.orders = [torch.from_numpy(order) for order in orders]
        self.batch_size, self.epochs_done = batch_size, 0

    def theta(self):
        return np.concatenate([p.detach().numpy().ravel() for p in self.module.parameters()])

    def epoch(self):
        torch, n = self.torch, self.X.shape[0]
        order = self.orders[self.epochs_done]
        total = 0.0
        for start in range(0, n, self.batch_size):
            rows = order[start:start + self.batch_size]
            self.optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.module(self.X[rows]), self.Y[rows])
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach()) * len(rows)
        self.epochs_done += 1
        return total / n


class JaxEpochs:
    per_step = False

    def __init__(self, net, theta, X, Y, orders, batch_size):
        from fastgd.baselines import JaxNetworkTraining

        self.training = JaxNetworkTraining(net, theta, X, Y, LEARNING_RATE, batch_size, per_step=self.per_step)
        self.orders, self.epochs_done = orders, 0

    def epoch(self):
        loss = self.training.epoch(self.orders[self.epochs_done])
        self.epochs_done += 1
        return loss

    def theta(self):
        return self.training.theta()


class JaxStepEpochs(JaxEpochs):
    per_step = True


IMPLEMENTATIONS = {"fastgd": FastgdEpochs, "torch": TorchEpochs, "jax": JaxEpochs, "jax_steps": JaxStepEpochs}


def parity(net, theta, X, Y, orders, batch_size):
    """Each implementation's first PARITY_EPOCHS losses from θ, and the largest |θ - fastgd's θ| after each."""
    trainers = {name: make(net, theta.copy(), X, Y, orders, batch_size) for name, make in IMPLEMENTATIONS.items()}
    losses, apart = {name: [] for name in trainers}, {name: [] for name in trainers}
    for _ in range(PARITY_EPOCHS):
        for name, trainer in trainers.items():
            losses[name].append(trainer.epoch())
        for name, trainer in trainers.items():
            apart[name].append(float(np.abs(trainer.theta() - trainers["fastgd"].theta()).max()))
    for name in trainers:
        gap = max(abs(a - b) / abs(b) for a, b in zip(losses[name], losses["fastgd"]))
        if gap > PARITY_TOLERANCE:
            raise SystemExit(f"{name}'s losses {losses[name]} are not fastgd's {losses['fastgd']} to "
                             f"{PARITY_TOLERANCE:g}: the timings would not compare the same work")
    return losses, apart


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def seconds_per_epoch(trainer, n_epochs, clock=time.perf_counter):
    start = clock()
    for _ in range(n_epochs):
        loss = trainer.epoch()
        if not np.isfinite(loss):
            raise RuntimeError("training diverged")
    return (clock() - start) / n_epochs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--network", default="digits_cnn")
    parser.add_argument("--rows", type=int, default=512, help="rows of synthetic data (networks other than digits)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall seconds, or the process's CPU seconds (a busy machine's fairer share; every "
                             "implementation runs one thread)")
    parser.add_argument("--out", default=str(ROOT / "reports" / "cnn_epoch_speed.md"))
    arguments = parser.parse_args()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    # XLA reads its flags once, when JAX first computes: set before jax is imported
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""),
                                        f"--xla_cpu_multi_thread_eigen={'false' if arguments.threads == 1 else 'true'}",
                                        f"intra_op_parallelism_threads={arguments.threads}"]).strip()
    import torch

    threads.set_num_threads(arguments.threads)
    torch.set_num_threads(arguments.threads)
    net = networks.known(arguments.network)
    X, Y = training_set(net, arguments.network, arguments.rows)
    theta = net.init(random_state=0, dtype=np.float32)
    n_epochs = max(PARITY_EPOCHS, 1 + arguments.rounds * arguments.epochs)
    orders = [splitmix64_permutation(X.shape[0], SEED, epoch) for epoch in range(n_epochs)]
    batch_size = arguments.batch_size
    losses, apart = parity(net, theta, X, Y, orders, batch_size)
    trainers = {name: make(net, theta.copy(), X, Y, orders, batch_size) for name, make in IMPLEMENTATIONS.items()}
    for trainer in trainers.values():
        trainer.epoch()  # compiles (or loads) and warms up
    seconds = {name: [] for name in trainers}
    for round_index in range(arguments.rounds):
        shift = round_index % len(trainers)
        names = list(trainers)[shift:] + list(trainers)[:shift]
        for name in names:
            seconds[name].append(seconds_per_epoch(trainers[name], arguments.epochs, CLOCKS[arguments.clock]))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    load_after = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if pathlib.Path("/proc/cpuinfo").exists() else platform.processor()
    data = "scikit-learn's digits" if arguments.network == "digits_cnn" else "synthetic data"
    import jax
    import optax

    versions = f"torch {torch.__version__}, jax {jax.__version__}, optax {optax.__version__}"
    lines = [
        "# A declared CNN's epoch: fastgd against PyTorch and JAX + optax",
        "",
        f"`known(\"{arguments.network}\")` ({net.n_params} parameters) on {data} ({X.shape[0]} rows), batches of "
        f"{batch_size}, Adam, float32, same θ and batches; {arguments.threads} thread(s) each (JAX: XLA_FLAGS "
        f"`{os.environ['XLA_FLAGS']}`); {cpu}, load average {load} when the run began; {versions}; one run of "
        f"`benchmarks/scripts/cnn_epoch_speed.py`, {arguments.rounds} rounds of {arguments.epochs} epochs, the order "
        f"rotated each round; {'the process' + chr(39) + 's CPU time' if arguments.clock == 'cpu' else 'wall time'}"
        f" (`--clock {arguments.clock}`); load average {load_after} when it ended.",
        "",
        f"Parity from the same θ over the same batches ({PARITY_EPOCHS} epochs, "
        f"{PARITY_EPOCHS * -(-X.shape[0] // batch_size)} Adam steps): each epoch's loss, and the largest "
        "|θ − fastgd's θ| after it:",
        "",
        "| implementation | " + " | ".join(f"epoch {e + 1} loss | max abs Δθ" for e in range(PARITY_EPOCHS)) + " |",
        "|---|" + "---|---|" * PARITY_EPOCHS,
        *[f"| {name} | " + " | ".join(f"{loss:.7f} | {gap:.2g}" for loss, gap in zip(losses[name], apart[name]))
          + " |" for name in IMPLEMENTATIONS],
        "",
        "The losses are the check (the script stops where one is not fastgd's to "
        f"{PARITY_TOLERANCE:g}). θ may separate in a few coordinates whose gradient is near zero: Adam's step "
        "m̂/(√v̂ + ε) is about ±lr there whatever the gradient's size, so float32 rounding differences in such a "
        "gradient (a different order of the sums) become whole steps.",
        "",
        f"| implementation | median s/epoch ({arguments.clock}) | range over rounds | × fastgd |",
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
