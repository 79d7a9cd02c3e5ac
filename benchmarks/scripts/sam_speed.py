"""Seconds per compiled epoch of SAM-SGD against SGD's, on the same network, data, batches and threads.

    python benchmarks/scripts/sam_speed.py [--rounds 7] [--threads 1] [--out reports/sam_speed.md]

SAM evaluates each batch's gradient twice (at θ and at θ + ρg/‖g‖, :class:`fastgd.rules.Closure`), so its epoch
costs two model passes a batch against SGD's one, plus the closure's sum over θ and its ascent (one pass that
reads θ and the gradient and writes the point): the goal is at most 2.1× SGD's epoch. The floor is SGD's epoch
plus one more model pass a batch, measured alone (the same compiled pass over the epoch's batches of rows,
nothing else): what SAM's epoch would cost if its sum and ascent were free.

Two cases, float32, batches of 64, lr 0.01 (SAM's ρ 0.05): an MLP
100-256-256-10 on 20,000 rows of standard normal inputs with random labels, and scikit-learn's digits (1,797 rows,
pixels / 16) through 64-100-10. Both run ``fastgd.training.Training``, one compiled call an epoch, from the same θ
and over the same batches; each round times a few epochs of each (one of the MLP, twenty of digits), alternating
which goes first; the figures are medians over rounds (wall-clock, and the CPU time of the thread that runs the
epoch: the work alone where the machine is loaded) and the ratio compares the medians of this run. The pass
column names the model pass the epochs took (``Training.pass_name``: with more threads on a loaded machine the
training may keep to ``one_thread``). The report
names the CPU (``lscpu``) and the load (``uptime``) before and after.
"""

import argparse
import contextlib
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import numba
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fastgd import MLP, optim, threads  # noqa: E402
from fastgd.training import Training  # noqa: E402

BATCH_SIZE, LEARNING_RATE, RHO, GOAL = 64, 0.01, 0.05, 2.1


def cases():
    """(name, layer sizes, X, Y, epochs a measurement) of the two measured cases, float32."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 100), dtype=np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 20_000)]
    from sklearn.datasets import load_digits

    digits = load_digits()
    return [("MLP 100-256-256-10, 20,000 rows", [100, 256, 256, 10], X, Y, 1),
            ("digits, MLP 64-100-10, 1,797 rows", [64, 100, 10], (digits.data / 16.0).astype(np.float32),
             np.eye(10, dtype=np.float32)[digits.target], 20)]


@numba.njit(cache=True)
def _passes(model, theta, X, Y, structure, code, second_code, alpha, grad, activations, deltas, batch_size):
    """One model pass (forward and backward) on each batch of ``batch_size`` consecutive rows; the losses' sum."""
    total = 0.0
    for start in range(0, X.shape[0], batch_size):
        stop = min(start + batch_size, X.shape[0])
        total += model(theta, X[start:stop], Y[start:stop], structure, code, second_code, alpha, grad, activations,
                       deltas)
    return total


def pass_alone(training):
    """A callable running the model's pass that ``training``'s epochs take (on as many threads) over as many batches
    as an epoch has, nothing else (no gathering, no step): the one pass a batch that SAM adds to SGD's epoch."""
    net, dtype, batch_size = training.net, training.dtype, training.batch_size
    places = net.epoch_pass(dtype, batch_size, training._epochs.blocks())
    workspaces = training._epochs
    theta = training.theta.copy()
    arguments = (places[0], theta, training.X, training.Y, *places[1:], workspaces.grad, workspaces.activations,
                 workspaces.deltas, batch_size)
    # the one_thread pass is the serial one with the threads limited to one, as Training runs it
    limit = (lambda: threads.limit(1)) if training.pass_name == "one_thread" else contextlib.nullcontext

    def run():
        with limit():
            return _passes(*arguments)

    run()
    return run


def trainings(sizes, X, Y):
    """SGD's and SAM-SGD's Training from the same θ, each past one epoch (compiled, warm)."""
    net = MLP(sizes, "relu", "softmax", dtype=np.float32)
    theta = net.init(random_state=0)
    made = {"sgd": Training(net, optim.SGD(theta.copy(), lr=LEARNING_RATE), X, Y, BATCH_SIZE, seed=0),
            "sam_sgd": Training(net, optim.OPTIMIZERS["sam_sgd"](theta.copy(), lr=LEARNING_RATE, rho=RHO), X, Y,
                                BATCH_SIZE, seed=0)}
    for training in made.values():
        training.epoch()
    return made


def measure(made, rounds, epochs):
    """Median seconds of ``epochs`` epochs of each, and of the pass alone (:func:`pass_alone`, ``"pass"``), wall-clock
    and the main thread's CPU time, alternating the order each round: ``{name: (wall, cpu)}``, per epoch."""
    runs = {name: training.epoch for name, training in made.items()}
    runs["pass"] = pass_alone(made["sgd"])
    seconds = {name: ([], []) for name in runs}
    names = list(runs)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            wall, cpu = time.perf_counter(), time.thread_time()
            for _ in range(epochs):
                runs[name]()
            seconds[name][0].append((time.perf_counter() - wall) / epochs)
            seconds[name][1].append((time.thread_time() - cpu) / epochs)
    return {name: (statistics.median(wall), statistics.median(cpu)) for name, (wall, cpu) in seconds.items()}


def _command(arguments):
    try:
        return subprocess.run(arguments, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unavailable"


def cpu_name():
    for line in _command(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "reports" / "sam_speed.md"))
    arguments = parser.parse_args()
    load_before = _command(["uptime"])
    rows = []
    with threads.limit(arguments.threads):
        for name, sizes, X, Y, epochs in cases():
            made = trainings(sizes, X, Y)
            medians = measure(made, arguments.rounds, epochs)
            passes = "/".join(sorted({training.pass_name for training in made.values()}))
            (sgd_wall, sgd_cpu), (sam_wall, sam_cpu) = medians["sgd"], medians["sam_sgd"]
            pass_cpu = medians["pass"][1]
            rows.append((name, passes, epochs, sgd_wall, sam_wall, sgd_cpu, sam_cpu, pass_cpu))
            print(f"{name} ({passes} pass): wall SGD {sgd_wall * 1e3:.2f} ms, SAM-SGD {sam_wall * 1e3:.2f} ms, ratio "
                  f"{sam_wall / sgd_wall:.2f}; CPU SGD {sgd_cpu * 1e3:.2f} ms, SAM-SGD {sam_cpu * 1e3:.2f} ms, ratio "
                  f"{sam_cpu / sgd_cpu:.2f} (goal <= {GOAL}); CPU pass alone {pass_cpu * 1e3:.2f} ms, floor "
                  f"{(sgd_cpu + pass_cpu) / sgd_cpu:.2f}x SGD", flush=True)
    load_after = _command(["uptime"])
    lines = ["# SAM's compiled epoch against SGD's", "",
             f"`python benchmarks/scripts/sam_speed.py --rounds {arguments.rounds} --threads {arguments.threads}`: "
             f"one compiled epoch (`fastgd.training.Training`) of SAM-SGD (ρ {RHO}) and of SGD, float32, batches "
             f"of {BATCH_SIZE}, lr {LEARNING_RATE}, the same θ and batches; medians of {arguments.rounds} "
             "alternated rounds. SAM evaluates each batch twice: the goal is at most "
             f"{GOAL}× SGD's epoch.", "",
             f"CPU: {cpu_name()}, {arguments.threads} thread(s). Load (`uptime`) before: `{load_before}`; after: "
             f"`{load_after}`.", "",
             "Per epoch, medians over rounds of the epochs each round times; wall-clock, and the CPU time of the "
             "thread that runs the epoch (`time.thread_time`: on a loaded machine the scheduler's pauses land on "
             "either side at random, and the CPU time is the work itself). The floor: SGD's epoch plus one model pass "
             "a batch measured alone (CPU time), what SAM's epoch would cost if its sum over θ and its ascent were "
             "free.", "",
             "| case | pass | epochs a round | SGD wall (ms) | SAM-SGD wall (ms) | wall ratio | SGD CPU (ms) | "
             "SAM-SGD CPU (ms) | CPU ratio | within 2.1× (CPU) | pass alone CPU (ms) | floor / SGD | SAM / floor |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    lines += [f"| {name} | {passes} | {epochs} | {sgd_wall * 1e3:.2f} | {sam_wall * 1e3:.2f} | "
              f"{sam_wall / sgd_wall:.2f} | "
              f"{sgd_cpu * 1e3:.2f} | {sam_cpu * 1e3:.2f} | {sam_cpu / sgd_cpu:.2f} | "
              f"{'yes' if sam_cpu / sgd_cpu <= GOAL else 'no'} | {pass_cpu * 1e3:.2f} | "
              f"{(sgd_cpu + pass_cpu) / sgd_cpu:.2f} | {sam_cpu / (sgd_cpu + pass_cpu):.3f} |"
              for name, passes, epochs, sgd_wall, sam_wall, sgd_cpu, sam_cpu, pass_cpu in rows]
    pathlib.Path(arguments.out).write_text("\n".join(lines) + "\n")
    print(f"written {arguments.out}")


if __name__ == "__main__":
    main()
