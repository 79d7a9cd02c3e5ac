"""fastgd's CUDA path on a real NVIDIA GPU: run its tests there, measure it, write JSON and markdown.

    python benchmarks/gpu/run_gpu_checks.py [--out reports/gpu] [--smoke]

Needs a GPU, numba-cuda (with NVVM) and PyTorch built with CUDA; installs
nothing and uses no network. In order, in one run:

1. the CUDA tests for real (simulator off): ``tests/cuda`` and
   ``tests/test_cuda_ptx.py``;
2. the device-to-device copy bandwidth (``cuMemcpyDtoD``: 2 × 4 bytes per
   float32 element) at 1e6, 1e7 and 1e8 elements;
3. every rule of ``fastgd.optim.OPTIMIZERS`` (default hyperparameters): one
   ``opt.step`` on 1e6, 1e7 and 1e8 float32 parameters, and its effective
   bandwidth, counting what the kernel reads and writes (θ and g read, θ
   written, every state array read and written: Adam 28 bytes per
   parameter); ``torch.optim.Adam(fused=True)`` on the same sizes;
4. the MLP's matrix products (forward, weight gradient, backward δ, each at
   the network's shapes and at 4096³) against ``torch.matmul`` in FP32 with
   TF32 off, and whole training epochs of the network on a synthetic set
   (1,000,000 × 784, 10 classes, batch 256) against the same network, start
   and batches in PyTorch.

Goals checked in the summary (measured, not asserted): at 1e8 parameters
every rule at ≥ 85 % of the copy bandwidth and Adam no slower than torch's
fused Adam; the products at ≥ 50 % of cuBLAS FP32. Times are medians of
CUDA-event timings. The exit status is that of the tests.

``--smoke`` runs the whole script end to end with tiny sizes under Numba's
CUDA simulator (and PyTorch on the CPU where it has no CUDA): a check that
the script works, not a measurement.
"""

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# (paths, whether the simulator may run them, seconds allowed): the whole script stays under 8 minutes
TEST_RUNS = [(["tests/cuda"], True, 210), (["tests/test_cuda_ptx.py"], False, 90)]

FULL = dict(rule_sizes=[10**6, 10**7, 10**8], repeats=20, n_samples=1_000_000, n_features=784, n_classes=10,
            hidden=(512, 512), batch_size=256, n_epochs=2, square=4096)
SMOKE = dict(rule_sizes=[1000, 3000], repeats=2, n_samples=72, n_features=12, n_classes=3, hidden=(8,),
             batch_size=32, n_epochs=2, square=16)


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join("reports", "gpu"),
                        help="directory for gpu_checks.json and gpu_checks.md (default: reports/gpu)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes under the CUDA simulator: checks that the script runs, measures nothing")
    return parser.parse_args()


# -- 1. the tests -------------------------------------------------------------------------------

def run_tests(smoke, cache_directory):
    """The CUDA test files in their own processes: tests/cuda (simulator only if --smoke), then the PTX checks."""
    results = []
    # pytest-xdist, where installed, spreads the kernels' compilation over the cores
    workers = ["-n", "2" if smoke else "4"] if importlib.util.find_spec("xdist") else []
    for paths, may_simulate, timeout in TEST_RUNS:
        simulator = smoke and may_simulate
        environment = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(cache_directory, "sim" if simulator else "gpu"))
        environment.pop("NUMBA_ENABLE_CUDASIM", None)
        if simulator:
            environment["NUMBA_ENABLE_CUDASIM"] = "1"
        command = [sys.executable, "-m", "pytest", *paths, *workers, "-q", "-p", "no:cacheprovider", "-rs"]
        start = time.perf_counter()
        try:
            finished = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True, text=True,
                                      timeout=timeout)
            status, output = finished.returncode, finished.stdout + finished.stderr
        except subprocess.TimeoutExpired as expired:
            status, output = "timed out", f"{expired.stdout or ''}{expired.stderr or ''}"
        lines = [line for line in output.strip().splitlines() if line.strip()]
        results.append(dict(command=" ".join(command[1:]), simulator=simulator, exit_status=status,
                            seconds=round(time.perf_counter() - start, 1), summary=lines[-1] if lines else "",
                            output_tail=lines[-40:]))
    return results


# -- timing -------------------------------------------------------------------------------------

class DeviceClock:
    """Seconds per call of a function that launches device work: CUDA events on a GPU, wall clock otherwise."""

    def __init__(self, cuda, simulated):
        self.cuda, self.simulated = cuda, simulated

    def seconds_per_call(self, function, repeats, rounds=5):
        function()  # warm-up: compiles, allocates
        self.cuda.synchronize()
        times = []
        for _ in range(rounds):
            if self.simulated:
                start = time.perf_counter()
                for _ in range(repeats):
                    function()
                times.append((time.perf_counter() - start) / repeats)
                continue
            begin, end = self.cuda.event(), self.cuda.event()
            begin.record()
            for _ in range(repeats):
                function()
            end.record()
            end.synchronize()
            times.append(self.cuda.event_elapsed_time(begin, end) / 1e3 / repeats)
        return sorted(times)[len(times) // 2]


class TorchClock:
    """The same for PyTorch work, with torch's own events (or the wall clock on its CPU)."""

    def __init__(self, torch, device):
        self.torch, self.device = torch, device

    def seconds_per_call(self, function, repeats, rounds=5):
        function()
        self.synchronize()
        times = []
        for _ in range(rounds):
            if self.device == "cpu":
                start = time.perf_counter()
                for _ in range(repeats):
                    function()
                times.append((time.perf_counter() - start) / repeats)
                continue
            begin, end = self.torch.cuda.Event(enable_timing=True), self.torch.cuda.Event(enable_timing=True)
            begin.record()
            for _ in range(repeats):
                function()
            end.record()
            end.synchronize()
            times.append(begin.elapsed_time(end) / 1e3 / repeats)
        return sorted(times)[len(times) // 2]

    def synchronize(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()


# -- 2. and 3. copy bandwidth and the update rules ---------------------------------------------

def measure_rules(sizes, repeats, clock, torch, torch_clock):
    import numpy as np
    from numba import cuda

    from fastgd import optim

    rng = np.random.default_rng(0)
    copies, rules, torch_adam = {}, [], {}
    for size in sizes:
        host = rng.standard_normal(size, dtype=np.float32)
        source, target = cuda.to_device(host), cuda.device_array(size, dtype=np.float32)
        seconds = clock.seconds_per_call(lambda: target.copy_to_device(source), repeats)
        copies[size] = dict(seconds=seconds, bytes_per_second=2 * 4 * size / seconds)
        grad = cuda.to_device(0.01 * host)
        for name, cls in optim.OPTIMIZERS.items():
            params = cuda.to_device(host)
            optimizer = cls(params)
            n_state_arrays = sum(1 for value in optimizer.state.values() if hasattr(value, "copy_to_host"))
            bytes_per_parameter = 4 * (3 + 2 * n_state_arrays)
            seconds = clock.seconds_per_call(lambda: optimizer.step(grad), repeats)
            rules.append(dict(rule=name, size=size, seconds=seconds, bytes_per_parameter=bytes_per_parameter,
                              bytes_per_second=bytes_per_parameter * size / seconds,
                              fraction_of_copy=bytes_per_parameter * size / seconds / copies[size]["bytes_per_second"]))
            params = optimizer = None  # the device arrays go before the next rule's
        source = target = grad = None  # and before the next size's
        if torch is not None:
            parameter = torch.tensor(host, device=torch_clock.device, requires_grad=True)
            parameter.grad = 0.01 * parameter.detach().clone()
            adam = torch.optim.Adam([parameter], lr=1e-3, fused=True)
            seconds = torch_clock.seconds_per_call(adam.step, repeats)
            torch_adam[size] = dict(seconds=seconds, bytes_per_second=28 * size / seconds)
            del parameter, adam
    return copies, rules, torch_adam


# -- 4. the MLP -----------------------------------------------------------------------------------

def product_cases(layer_sizes, batch_size, square):
    """(kind, rows M, depth K, columns N) of every product one training step of the network launches."""
    cases = []
    for layer, (n_in, n_out) in enumerate(zip(layer_sizes, layer_sizes[1:])):
        cases.append(("forward", batch_size, n_in, n_out))
        cases.append(("weight_gradient", n_in, batch_size, n_out))
        if layer > 0:
            cases.append(("backward_delta", batch_size, n_out, n_in))
    cases.append(("forward", square, square, square))
    return cases


def measure_products(layer_sizes, batch_size, square, repeats, clock, torch, torch_clock):
    import numpy as np
    from numba import cuda

    from fastgd.cuda import mlp
    from fastgd.kernels.mlp import RELU

    rng = np.random.default_rng(1)
    rows = []
    for kind, m, k, n in product_cases(layer_sizes, batch_size, square):
        def matrix(shape):
            return rng.uniform(-1, 1, shape).astype(np.float32)

        if kind == "forward":
            A, W, bias = cuda.to_device(matrix((m, k))), cuda.to_device(matrix((k, n))), cuda.to_device(matrix(n))
            out = cuda.device_array((m, n), dtype=np.float32)
            launch = mlp.product_shape(m, n)
            ours = lambda: mlp.forward_layer[launch](A, W, bias, out, RELU)  # noqa: E731
            operands = ((m, k), (k, n), "a @ b")
        elif kind == "weight_gradient":  # ∇W (m × n) = inputsᵀ δ: inputs k × m, δ k × n
            inputs, delta = cuda.to_device(matrix((k, m))), cuda.to_device(matrix((k, n)))
            W, grad_W = cuda.to_device(matrix((m, n))), cuda.device_array((m, n), dtype=np.float32)
            grad_b, status = cuda.device_array(n, dtype=np.float32), cuda.to_device(np.zeros(mlp.STATUS_SIZE))
            launch = mlp.product_shape(m, n)
            ours = lambda: mlp.weight_gradient[launch](inputs, delta, W, np.float32(1e-4), grad_W, grad_b,  # noqa
                                                       status, True)
            operands = ((k, m), (k, n), "a.T @ b")
        else:  # δ_prev (m × n) = δ (m × k) Wᵀ, W is n × k
            delta, W = cuda.to_device(matrix((m, k))), cuda.to_device(matrix((n, k)))
            below, previous = cuda.to_device(matrix((m, n))), cuda.device_array((m, n), dtype=np.float32)
            launch = mlp.product_shape(m, n)
            ours = lambda: mlp.backward_delta[launch](delta, W, below, previous, RELU)  # noqa: E731
            operands = ((m, k), (n, k), "a @ b.T")
        seconds = clock.seconds_per_call(ours, repeats)
        row = dict(kind=kind, m=m, k=k, n=n, seconds=seconds, flops_per_second=2.0 * m * n * k / seconds)
        if torch is not None:
            a = torch.rand(operands[0], device=torch_clock.device)
            b = torch.rand(operands[1], device=torch_clock.device)
            expression = {"a @ b": lambda: torch.matmul(a, b), "a.T @ b": lambda: torch.matmul(a.T, b),
                          "a @ b.T": lambda: torch.matmul(a, b.T)}[operands[2]]
            torch_seconds = torch_clock.seconds_per_call(expression, repeats)
            row.update(torch_seconds=torch_seconds, torch_flops_per_second=2.0 * m * n * k / torch_seconds,
                       fraction_of_torch=torch_seconds / seconds)
        rows.append(row)
    return rows


def synthetic_set(torch, device, n_samples, n_features, n_classes):
    """X standard normal, labels from a random linear teacher with noise; generated where torch computes."""
    generator = torch.Generator(device=device).manual_seed(0)
    X = torch.randn(n_samples, n_features, device=device, generator=generator)
    teacher = torch.randn(n_features, n_classes, device=device, generator=generator) / n_features ** 0.5
    logits = X @ teacher + 0.5 * torch.randn(n_samples, n_classes, device=device, generator=generator)
    labels = logits.argmax(dim=1)
    return X, labels, torch.nn.functional.one_hot(labels, n_classes).float()


def measure_training(config, torch, torch_device):
    """Epochs of the same network, start and batches with fastgd on the device and with PyTorch."""
    import numpy as np
    from numba import cuda

    from fastgd import MLP, optim
    from fastgd.kernels.shuffle import shuffle_for_epoch
    from fastgd.training import Training

    layer_sizes = [config["n_features"], *config["hidden"], config["n_classes"]]
    X, labels, Y = synthetic_set(torch, torch_device, config["n_samples"], config["n_features"],
                                 config["n_classes"])
    # on a GPU fastgd reads torch's memory in place (__cuda_array_interface__); torch on a CPU hands over NumPy
    X_data, Y_data = (X, Y) if torch_device == "cuda" else (X.numpy(), Y.numpy())
    net = MLP(layer_sizes, "relu", "softmax", alpha=0.0, dtype=np.float32)
    theta = net.init(random_state=0)
    batch_size, seed = config["batch_size"], 0

    warm_up = Training(net, optim.Adam(cuda.to_device(theta), lr=1e-3), X_data[:2 * batch_size + 3],
                       Y_data[:2 * batch_size + 3], batch_size, seed=seed)
    warm_up.epoch()  # compiles every kernel of the epoch
    training = Training(net, optim.Adam(cuda.to_device(theta), lr=1e-3), X_data, Y_data, batch_size, seed=seed)
    ours = []
    for _ in range(config["n_epochs"]):
        start = time.perf_counter()
        loss = training.epoch()
        ours.append(dict(seconds=time.perf_counter() - start, loss=loss))

    coefs, _ = net.unpack(theta)
    layers = []
    for index, coef in enumerate(coefs):
        linear = torch.nn.Linear(coef.shape[0], coef.shape[1], device=torch_device)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(coef.T.copy()))
            linear.bias.zero_()
        layers += [linear] + ([torch.nn.ReLU()] if index < len(coefs) - 1 else [])
    model = torch.nn.Sequential(*layers)
    adam = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    criterion = torch.nn.CrossEntropyLoss()
    order = np.empty(config["n_samples"], dtype=np.int64)
    theirs = []
    for epoch in range(config["n_epochs"]):
        shuffle_for_epoch(order, seed, epoch)  # fastgd's batches, epoch for epoch
        if torch_device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        device_order = torch.from_numpy(order).to(torch_device)
        total = torch.zeros((), device=torch_device)
        for first in range(0, config["n_samples"], batch_size):
            rows = device_order[first:first + batch_size]
            loss = criterion(model(X.index_select(0, rows)), labels.index_select(0, rows))
            adam.zero_grad(set_to_none=True)
            loss.backward()
            adam.step()
            total += loss.detach() * rows.numel()
        epoch_loss = float(total) / config["n_samples"]  # the epoch's one synchronisation, as fastgd's
        theirs.append(dict(seconds=time.perf_counter() - start, loss=epoch_loss))
    n_batches = -(-config["n_samples"] // batch_size)
    return dict(layer_sizes=layer_sizes, n_samples=config["n_samples"], batch_size=batch_size, n_batches=n_batches,
                fastgd=ours, torch=theirs)


# -- the report -----------------------------------------------------------------------------------

def goals(rules, torch_adam, products, sizes):
    largest = max(sizes)
    at_largest = [row for row in rules if row["size"] == largest]
    adam = next(row for row in at_largest if row["rule"] == "adam")
    network_products = [row for row in products[:-1] if "fraction_of_torch" in row]
    return {
        "every rule >= 85% of the copy bandwidth at the largest size": all(
            row["fraction_of_copy"] >= 0.85 for row in at_largest),
        "adam at least as fast as torch's fused Adam at the largest size": (
            largest in torch_adam and adam["seconds"] <= torch_adam[largest]["seconds"]),
        "MLP products >= 50% of cuBLAS FP32 (every product of the network)": bool(network_products) and all(
            row["fraction_of_torch"] >= 0.5 for row in network_products),
    }


def markdown(report):
    lines = [f"# fastgd on {report['device']}", "",
             f"{report['when']}; {report['versions']}; {report['total_seconds']:.0f} s in all"
             + (" — SMOKE RUN under the CUDA simulator: the numbers measure nothing" if report["smoke"] else ""),
             "", "## Tests (simulator off unless smoke)", ""]
    for run in report["tests"]:
        lines.append(f"- `{run['command']}`: {run['summary']} (exit {run['exit_status']}, {run['seconds']} s)")
    lines += ["", "## Goals", ""]
    lines += [f"- {'met' if met else 'NOT met'}: {goal}" for goal, met in report["goals"].items()]
    lines += ["", "## Copy bandwidth and update rules (float32, one step)", "",
              "| parameters | copy GB/s | torch fused Adam µs | torch Adam GB/s |", "|---|---|---|---|"]
    for size, copy in report["copy"].items():
        torch_adam = report["torch_adam"].get(size)
        lines.append(f"| {int(size):,} | {copy['bytes_per_second'] / 1e9:.0f} | "
                     + (f"{torch_adam['seconds'] * 1e6:.1f} | {torch_adam['bytes_per_second'] / 1e9:.0f} |"
                        if torch_adam else "– | – |"))
    lines += ["", "| rule | parameters | bytes/param | µs | GB/s | of copy |", "|---|---|---|---|---|---|"]
    for row in report["rules"]:
        lines.append(f"| {row['rule']} | {row['size']:,} | {row['bytes_per_parameter']} | {row['seconds'] * 1e6:.1f} | "
                     f"{row['bytes_per_second'] / 1e9:.0f} | {row['fraction_of_copy']:.0%} |")
    lines += ["", "## MLP matrix products (float32; torch.matmul with TF32 off)", "",
              "| product | M | K | N | fastgd GFLOP/s | torch GFLOP/s | fastgd / torch |",
              "|---|---|---|---|---|---|---|"]
    for row in report["products"]:
        lines.append(f"| {row['kind']} | {row['m']} | {row['k']} | {row['n']} | {row['flops_per_second'] / 1e9:.0f} | "
                     + (f"{row['torch_flops_per_second'] / 1e9:.0f} | {row['fraction_of_torch']:.0%} |"
                        if "torch_seconds" in row else "– | – |"))
    training = report["training"]
    if training is None:
        return "\n".join(lines + ["", "MLP training: not measured (PyTorch is not installed)"]) + "\n"
    lines += ["", f"## MLP training: {training['layer_sizes']}, {training['n_samples']:,} samples, batch "
                  f"{training['batch_size']} ({training['n_batches']} steps per epoch), Adam, same start and batches",
              "", "| epoch | fastgd s | fastgd loss | torch s | torch loss |", "|---|---|---|---|---|"]
    for epoch, (ours, theirs) in enumerate(zip(training["fastgd"], training["torch"]), 1):
        lines.append(f"| {epoch} | {ours['seconds']:.2f} | {ours['loss']:.5f} | {theirs['seconds']:.2f} | "
                     f"{theirs['loss']:.5f} |")
    return "\n".join(lines) + "\n"


def main():
    arguments = parse_arguments()
    config = SMOKE if arguments.smoke else FULL
    if arguments.smoke:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # before Numba is imported, below
        os.environ.setdefault("FASTGD_CUDA_BLOCK_SIZE", "4")
        os.environ.setdefault("FASTGD_CUDA_MAX_BLOCKS", "2")
    else:
        os.environ.pop("NUMBA_ENABLE_CUDASIM", None)
    sys.path.insert(0, REPOSITORY)
    started = time.perf_counter()
    os.makedirs(arguments.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fastgd-gpu-cache-") as cache_directory:
        # read when Numba is imported; shared with the GPU test run, which compiles the same kernels first
        os.environ["NUMBA_CACHE_DIR"] = os.path.join(cache_directory, "gpu")

        import numba
        from numba import cuda

        import fastgd.cuda as fastgd_cuda

        fastgd_cuda.require("benchmarks/gpu/run_gpu_checks.py")
        tests = run_tests(arguments.smoke, cache_directory)
        try:
            import torch
        except ImportError:
            torch = None
        torch_device = "cuda" if torch is not None and torch.cuda.is_available() else "cpu"
        if torch is not None:
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            torch.set_float32_matmul_precision("highest")
        if not arguments.smoke and torch_device != "cuda":
            print("warning: PyTorch has no CUDA here: its rows are measured on the CPU", file=sys.stderr)
        clock = DeviceClock(cuda, simulated=arguments.smoke)
        torch_clock = TorchClock(torch, torch_device) if torch is not None else None

        copies, rules, torch_adam = measure_rules(config["rule_sizes"], config["repeats"], clock, torch, torch_clock)
        layer_sizes = [config["n_features"], *config["hidden"], config["n_classes"]]
        products = measure_products(layer_sizes, config["batch_size"], config["square"], config["repeats"], clock,
                                    torch, torch_clock)
        training = measure_training(config, torch, torch_device) if torch is not None else None

    device = "CUDA simulator" if arguments.smoke else cuda.get_current_device().name
    if isinstance(device, bytes):
        device = device.decode()
    report = dict(
        device=device, smoke=arguments.smoke, when=time.strftime("%Y-%m-%d %H:%M:%S"),
        versions=f"Python {platform.python_version()}, numba {numba.__version__}, numba-cuda "
                 f"{importlib.metadata.version('numba-cuda')}, "
                 f"torch {torch.__version__ if torch is not None else 'absent'}",
        config={key: list(value) if isinstance(value, tuple) else value for key, value in config.items()},
        tests=tests, copy={str(size): value for size, value in copies.items()}, rules=rules,
        torch_adam={str(size): value for size, value in torch_adam.items()}, products=products, training=training,
        goals=goals(rules, torch_adam, products, config["rule_sizes"]),
    )
    report["total_seconds"] = time.perf_counter() - started
    with open(os.path.join(arguments.out, "gpu_checks.json"), "w") as file:
        json.dump(report, file, indent=1)
    with open(os.path.join(arguments.out, "gpu_checks.md"), "w") as file:
        file.write(markdown(report))
    print(markdown(report))
    failed = [run for run in tests if run["exit_status"] != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
