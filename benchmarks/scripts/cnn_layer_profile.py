"""Where a declared CNN's pass spends its time: :func:`fastgd.kernels.network.loss_and_gradient` layer by layer,
against torch's forward + backward on the same θ, one thread each.

    python benchmarks/scripts/cnn_layer_profile.py [--repeats 15] [--batch 128] [--baseline OLD_network.py]
                                                   [--network suite|KNOWN] [--rows N] [--dtypes float64,float32]
                                                   [--out reports/cnn_layer_profile.md]
    python benchmarks/scripts/cnn_layer_profile.py --network digits_cnn --batch 64 --rows 1797 --dtypes float32 \
        --out reports/cnn_layer_profile_digits.md

The network is, by default (``suite``), the test-problem suite's ``mnist5k_2c2d`` (:mod:`fastgd.problems`):
Conv2D(8, 5, same) → ReLU → MaxPool2D(2) → Conv2D(16, 5, same) → ReLU → MaxPool2D(2) → Flatten → Dense(128) → ReLU
→ Dense(10) on (1, 28, 28); ``--network`` names any other :func:`fastgd.networks.known` one (the benchmarks' MLPs
too, e.g. ``mlp_100_256_256_10``). Inputs are standard
normal with random one-hot labels (the data's meaning does not change the work). For each dtype it times,
alternating the implementations within each repetition:

- the whole pass, ``loss_and_gradient`` (fastgd), torch's ``cross_entropy(module(X)).backward()`` from the same θ,
  and, with ``--baseline``, the same kernel from another copy of ``fastgd/kernels/network.py`` (e.g. the commit
  before a change, copied to /tmp) loaded as its own module, so that before and after come from one run;
- each layer's forward and backward alone: small compiled wrappers call the kernel module's own per-layer
  functions (``_forward_layer``, ``_backward_layer``) on workspaces a full pass has filled, so the split adds
  no instrumentation to the kernel (each layer alone: where the pass takes a convolution and the ReLU after it as
  one layer, the table shows them apart, so the sum can exceed the pass);
- with ``--rows``, the epoch (Adam, ``fastgd.training.Training`` on ``--rows`` rows in batches of ``--batch``) and
  what it is made of: the same number of passes alone (``loss_and_gradient`` on batches gathered beforehand, from
  one compiled loop), the rule's compiled step alone (as many steps), the gathers of the batches alone; what the
  epoch takes beyond those is the per-batch call of the pass's callback and the epoch's own loop.

Medians over ``--repeats`` repetitions of wall time (``--clock cpu``: the process's CPU time, for a busy machine);
the report names the CPU and the load (``os.getloadavg``) before and after.
"""

import argparse
import importlib.util
import os
import pathlib
import platform
import statistics
import sys
import time

import numpy as np
from numba import njit

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fastgd import networks, optim, threads  # noqa: E402
from fastgd.kernels import network as kernels  # noqa: E402
from fastgd.kernels.train import _gather_rows  # noqa: E402
from fastgd.networks import Conv2D, Dense, Flatten, MaxPool2D, Network, ReLU  # noqa: E402
from fastgd.training import Training  # noqa: E402
from network_cases import torch_module  # noqa: E402


def suite_network():
    """``mnist5k_2c2d``'s network, as :mod:`fastgd.problems` declares it."""
    return Network([Conv2D(8, 5, padding="same"), ReLU(), MaxPool2D(2), Conv2D(16, 5, padding="same"), ReLU(),
                    MaxPool2D(2), Flatten(), Dense(128), ReLU(), Dense(10)], input_shape=(1, 28, 28),
                   loss="cross_entropy")


def load_module_copy(path):
    """Another copy of the kernel module (its imports are absolute, so it loads from anywhere) under its own name."""
    spec = importlib.util.spec_from_file_location("network_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Numba's on-disk cache finds a function's module by name
    spec.loader.exec_module(module)
    return module


def layer_timers(module):
    """Compiled wrappers that run one layer's forward or backward of ``module`` ``times`` times."""
    forward_layer, backward_layer = module._forward_layer, module._backward_layer

    @njit
    def forward(theta, layer, n_rows, activations, columns, times):
        for _ in range(times):
            forward_layer(theta, layer, n_rows, activations, columns)

    @njit
    def backward(theta, layer, n_rows, activations, deltas, grad, columns, input_deltas, times):
        for _ in range(times):
            backward_layer(theta, layer, n_rows, activations, deltas, grad, columns, input_deltas)

    return forward, backward


CLOCK = time.perf_counter  # --clock cpu: time.process_time, this process's CPU seconds (a busy machine's share)


@njit
def _passes(module_pass, theta, inputs, targets, n_rows, n_batches, plan, loss, grad, activations, deltas, columns):
    in_size, out_size = inputs.size // n_rows, targets.size // n_rows
    total = 0.0
    for b in range(n_batches):
        # the batches follow one another in X (the epoch gathers them in another order: the same work)
        start = (b * n_rows) % (inputs.size // in_size - n_rows + 1)
        total += module_pass(theta, inputs[start * in_size:(start + n_rows) * in_size],
                             targets[start * out_size:(start + n_rows) * out_size], n_rows, plan, loss, grad,
                             activations, deltas, columns)
    return total


@njit
def _steps(step, n_batches, theta, grad, states, aux, hyper, counters, layout):
    for _ in range(n_batches):
        step(theta, grad, states, aux, hyper, counters, layout)


@njit
def _gathers(X, Y, order, batch, batch_X, batch_Y):
    total = 0.0
    for start in range(0, X.shape[0], batch):
        stop = min(start + batch, X.shape[0])
        total += _gather_rows(X, order, start, stop, batch_X)[0, 0] + _gather_rows(Y, order, start, stop, batch_Y)[0, 0]
    return total


def epoch_breakdown(implementations, net, dtype, n_rows, batch, repeats):
    """({part: median seconds an epoch}, batches an epoch): the whole epoch (this tree's kernels), the passes alone
    (each implementation's), the rule's steps alone, the gathers alone."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n_rows,) + net.input_shape).astype(dtype)
    Y = np.eye(net.n_outputs, dtype=dtype)[rng.integers(0, net.n_outputs, n_rows)]
    theta = net.init(random_state=0, dtype=dtype)
    training = Training(net, optim.Adam(theta.copy(), lr=1e-3), X, Y, batch, seed=0)
    n_batches = -(-n_rows // batch)
    work = {}
    for name, module in implementations.items():
        blocks, columns = module.workspace_elements(net.plan, batch)
        work[name] = (np.zeros_like(theta), np.zeros(blocks, dtype), np.zeros(blocks, dtype), np.zeros(columns, dtype))
    flat_X, flat_Y = X.reshape(-1), Y.reshape(-1)
    optimizer = optim.Adam(theta.copy(), lr=1e-3)
    packed, zero_grad = optimizer.packed(), np.zeros_like(theta)
    order = np.random.default_rng(2).permutation(n_rows).astype(np.int64)
    X2, Y2 = X.reshape(n_rows, -1), Y
    batch_X, batch_Y = np.empty(batch * X2.shape[1], dtype), np.empty(batch * Y2.shape[1], dtype)
    loss = kernels.LOSSES[net.loss_name]
    def passes(name):
        return lambda: _passes(implementations[name].loss_and_gradient, theta, flat_X, flat_Y, batch, n_batches,
                               net.plan, loss, *work[name])

    parts = {
        "epoch": lambda: training.epoch(),
        **{f"{name} passes": passes(name) for name in implementations},
        "steps": lambda: _steps(packed.function, n_batches, optimizer.params, zero_grad, packed.states, packed.aux,
                                packed.hyper, packed.counters, packed.layout),
        "gathers": lambda: _gathers(X2, Y2, order, batch, batch_X, batch_Y),
    }
    for call in parts.values():
        call()  # compiles and warms up
    seconds = {name: [] for name in parts}
    for repeat in range(repeats):
        for name in (list(parts) if repeat % 2 == 0 else list(parts)[::-1]):
            start = CLOCK()
            parts[name]()
            seconds[name].append(CLOCK() - start)
    return {name: statistics.median(values) for name, values in seconds.items()}, n_batches


def median_seconds(call, repeats, inner=1):
    values = []
    for _ in range(repeats):
        start = CLOCK()
        call()
        values.append((CLOCK() - start) / inner)
    return statistics.median(values)


class Pass:
    """One kernel module's whole pass and per-layer pieces on one network, batch and dtype."""

    def __init__(self, module, net, theta, X, Y):
        self.module, self.net, self.theta = module, net, theta
        self.n_rows = X.shape[0]
        self.inputs, self.targets = X.reshape(-1), Y.reshape(-1)
        blocks, columns = module.workspace_elements(net.plan, self.n_rows)
        self.activations, self.deltas = np.zeros(blocks, theta.dtype), np.zeros(blocks, theta.dtype)
        self.columns, self.grad = np.zeros(columns, theta.dtype), np.zeros_like(theta)
        self.forward, self.backward = layer_timers(module)

    def run(self):
        return self.module.loss_and_gradient(self.theta, self.inputs, self.targets, self.n_rows, self.net.plan,
                                             kernels.LOSSES[self.net.loss_name], self.grad, self.activations,
                                             self.deltas, self.columns)

    def layer_seconds(self, repeats):
        """[(forward s, backward s)] per layer, on workspaces a full pass has just filled."""
        self.run()
        plan, out = self.net.plan, []
        for index in range(plan.shape[0]):
            row = plan[index]
            self.forward(self.theta, row, self.n_rows, self.activations, self.columns, 1)
            self.backward(self.theta, row, self.n_rows, self.activations, self.deltas, self.grad, self.columns,
                          index > 0, 1)
            inner = 3
            forward = median_seconds(lambda: self.forward(self.theta, row, self.n_rows, self.activations,
                                                          self.columns, inner), repeats, inner)
            backward = median_seconds(lambda: self.backward(self.theta, row, self.n_rows, self.activations,
                                                            self.deltas, self.grad, self.columns, index > 0, inner),
                                      repeats, inner)
            out.append((forward, backward))
        self.run()  # the workspaces as a pass leaves them
        return out


class TorchPass:
    def __init__(self, net, theta, X, Y):
        import torch

        self.torch = torch
        self.module = torch_module(net, theta)
        if theta.dtype == np.float64:
            self.module = self.module.double()
        self.X, self.Y = torch.from_numpy(X), torch.from_numpy(Y)

    def run(self):
        self.module.zero_grad(set_to_none=True)
        loss = self.torch.nn.functional.cross_entropy(self.module(self.X), self.Y)
        loss.backward()
        return float(loss.detach())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--baseline", help="another copy of fastgd/kernels/network.py to time beside this one")
    parser.add_argument("--columns-budget", type=int, help="this run's COLUMNS_BUDGET (elements of ``columns``)")
    parser.add_argument("--network", default="suite", help="'suite' (mnist5k_2c2d's network) or a known name")
    parser.add_argument("--rows", type=int, default=0, help="rows of an epoch to break down (0: no epoch)")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall seconds, or this process's CPU seconds (every thread: run with one)")
    parser.add_argument("--out", default=str(ROOT / "reports" / "cnn_layer_profile.md"))
    arguments = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if arguments.clock == "cpu" else time.perf_counter
    if arguments.columns_budget:
        kernels.COLUMNS_BUDGET = arguments.columns_budget
    import torch

    threads.set_num_threads(1)
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    if arguments.network == "suite":
        net, label = suite_network(), "mnist5k_2c2d`'s network"
    else:
        try:
            net, label = networks.known(arguments.network), f"known(\"{arguments.network}\")`"
        except networks.NetworkError as error:
            parser.error(str(error))
    rng = np.random.default_rng(0)
    X64 = rng.standard_normal((arguments.batch,) + net.input_shape)
    Y64 = np.eye(net.n_outputs)[rng.integers(0, net.n_outputs, arguments.batch)]
    names = [f"{i} {type(layer).__name__}" for i, layer in enumerate(net.layers)]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if pathlib.Path("/proc/cpuinfo").exists() else platform.processor()
    lines = [f"# Where a CNN's pass spends its time: {arguments.network}", "",
             f"`{label} ({net.n_params} parameters), batch {arguments.batch}, one "
             f"`loss_and_gradient` (forward, loss, backward); 1 thread each; {cpu}; COLUMNS_BUDGET "
             f"{kernels.COLUMNS_BUDGET}; one run of "
             f"`benchmarks/scripts/cnn_layer_profile.py`, medians of {arguments.repeats} alternated repetitions, "
             f"{'CPU' if arguments.clock == 'cpu' else 'wall'} time.", ""]
    implementations = {"fastgd": kernels}
    if arguments.baseline:
        implementations = {"baseline": load_module_copy(arguments.baseline), "fastgd": kernels}
    for dtype in [np.dtype(name).type for name in arguments.dtypes.split(",")]:
        theta = net.init(random_state=0, dtype=dtype)
        X, Y = X64.astype(dtype), Y64.astype(dtype)
        passes = {name: Pass(module, net, theta, X, Y) for name, module in implementations.items()}
        passes["torch"] = TorchPass(net, theta, X, Y)
        losses = {name: p.run() for name, p in passes.items()}  # compiles and warms up
        grads = {name: p.grad.copy() for name, p in passes.items() if name != "torch"}
        seconds = {name: [] for name in passes}
        order = list(passes)
        for repeat in range(arguments.repeats):
            for name in (order if repeat % 2 == 0 else order[::-1]):
                start = CLOCK()
                passes[name].run()
                seconds[name].append(CLOCK() - start)
        medians = {name: statistics.median(values) for name, values in seconds.items()}
        label = np.dtype(dtype).name
        lines += [f"## {label}", "",
                  "Losses: " + ", ".join(f"{name} {value:.12g}" for name, value in losses.items()) + "."]
        if "baseline" in grads:
            difference = np.max(np.abs(grads["baseline"] - grads["fastgd"])) / np.max(np.abs(grads["baseline"]))
            lines.append(f"Largest gradient difference, baseline against fastgd, relative to the largest entry: "
                         f"{difference:.2g}.")
        lines += ["", "| implementation | median ms / pass | range | × fastgd |", "|---|---|---|---|"]
        for name, values in seconds.items():
            lines.append(f"| {name} | {medians[name] * 1e3:.2f} | {min(values) * 1e3:.2f}–{max(values) * 1e3:.2f} | "
                         f"{medians[name] / medians['fastgd']:.2f} |")
        per_layer = {name: passes[name].layer_seconds(arguments.repeats) for name in implementations}
        header = " | ".join(f"{name} fwd ms | {name} bwd ms" for name in implementations)
        lines += ["", f"Per layer ({label}, each layer alone, medians):", "", f"| layer | {header} |",
                  "|---|" + "---|" * (2 * len(implementations))]
        for index, layer_name in enumerate(names):
            cells = " | ".join(f"{per_layer[name][index][0] * 1e3:.3f} | {per_layer[name][index][1] * 1e3:.3f}"
                               for name in implementations)
            lines.append(f"| {layer_name} | {cells} |")
        totals = " | ".join(f"{sum(f for f, _ in per_layer[name]) * 1e3:.2f} | "
                            f"{sum(b for _, b in per_layer[name]) * 1e3:.2f}" for name in implementations)
        lines += [f"| sum | {totals} |", ""]
        if arguments.rows:
            parts, n_batches = epoch_breakdown(implementations, net, dtype, arguments.rows, arguments.batch,
                                               arguments.repeats)
            lines += [f"An epoch ({label}, {arguments.rows} rows, {n_batches} batches of {arguments.batch}, Adam) and "
                      "its parts, each alone, medians:", "", "| part | ms / epoch | µs / batch |", "|---|---|---|"]
            lines += [f"| {name} | {value * 1e3:.2f} | {value / n_batches * 1e6:.1f} |"
                      for name, value in parts.items()]
            rest = parts["epoch"] - parts["fastgd passes"] - parts["steps"] - parts["gathers"]
            lines += [f"| epoch − fastgd passes − steps − gathers | {rest * 1e3:.2f} | {rest / n_batches * 1e6:.1f} |",
                      ""]
    load_after = os.getloadavg()
    lines.append(f"Load average (1, 5, 15 min) before: {', '.join(f'{v:.2f}' for v in load_before)}; after: "
                 f"{', '.join(f'{v:.2f}' for v in load_after)} (2 cores, shared).")
    text = "\n".join(lines) + "\n"
    pathlib.Path(arguments.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
