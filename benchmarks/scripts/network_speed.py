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
whole epoch under ``jax.jit``. Each measurement runs in a fresh process of its own (data from
files written once, the trainer built and warmed, then about ``--block`` seconds of epochs):
PyTorch's OpenMP threads, XLA's and the BLAS threads of each would otherwise spin beside one
another on two cores and stall whoever runs next. Rounds alternate the implementations, and
the machine's GEMM peak (a 2048² matrix product, same dtype, through NumPy's BLAS and MKL where
installed: the higher, ``baselines.peak_gemm_rate``) is measured in every round, and so is fastgd's
floor (below); each figure is the median over rounds, and every ratio compares figures of this run.

The GEMM share is the epoch's matrix-product FLOPs (forward, and both backward products)
over fastgd's seconds per epoch, against the highest of the run's peaks of that dtype (each
network's median peak over its rounds; they drift, and a share against a low one overstates
itself).

The floor: what fastgd's epoch cannot go below with these products and this rule on this machine,
its batches' matrix products alone plus its rule's steps alone, each with the pass, BLAS and threads
its epochs take (``FastgdTrainer.floor_seconds``, :mod:`fastgd.kernels.floors`). From it, the
highest GEMM share and the highest ratio to the faster peer (the faster of PyTorch and JAX) an
epoch could reach that updates after each batch's products, as every pass here does: everything
else it does (activations, softmax and loss, gathering a batch, bias gradients) taken as free.

Then the fixed cost of a whole ``MLPClassifier.fit`` on digits (``common.fit_fixed_cost``: 20
epochs, against 20 of its epochs run alone), and the warm start: ``import fastgd`` and a first ``opt.step`` against
``import numba`` alone and against the first call of a trivial cached ``@njit`` function (what
any Numba program pays: Numba loads its registries and SciPy's BLAS then), and a first fit
beyond its imports, in fresh processes with the cache filled.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from benchmarks import common  # noqa: E402
from fastgd import _config, baselines, threads  # noqa: E402
from fastgd.machine import cpu_model  # noqa: E402

IMPLEMENTATIONS = ("fastgd", "sklearn", "torch", "jax")
NETWORKS = list(common.NETWORKS)  # labels "layer sizes/batch size", the table asv's NetworkEpoch runs too


def block_seconds(trainer, implementation, n_epochs):
    """Seconds per epoch of ``n_epochs`` epochs, trained the way users of ``implementation`` do."""
    if implementation == "sklearn":
        return trainer.fit_seconds(n_epochs) / n_epochs
    start = time.perf_counter()
    for _ in range(n_epochs):
        baselines.finite(trainer.epoch())
    return (time.perf_counter() - start) / n_epochs


def worker(label, implementation, block, data_dir):
    """In a fresh process: build and warm ``implementation``'s trainer for ``NETWORKS[label]``, train about
    ``block`` seconds of epochs (at least two), print seconds per epoch. Instead, "peak": the GEMM peak and its
    BLAS; "floor": fastgd's floor, its products and its steps alone per epoch."""
    network = common.NETWORKS[label]
    if implementation == "peak":
        print(json.dumps(baselines.peak_gemm_rate(network.dtype, budget_seconds=0.3)))
        return
    data = common.load_network_data(label, data_dir)
    try:
        trainer = common.warmed_trainer("fastgd" if implementation == "floor" else implementation, data, "adam",
                                        network.hidden, network.batch_size, network.dtype)
    except NotImplementedError as missing:
        print(json.dumps(str(missing)))
        return
    if implementation == "floor":
        try:
            print(json.dumps(trainer.floor_seconds(block / 2)))
        except NotImplementedError as missing:
            print(json.dumps(str(missing)))
        return
    first = block_seconds(trainer, implementation, 1)  # pays what a first call costs
    seconds = block_seconds(trainer, implementation, max(2, round(block / first)))
    # fastgd's: which pass its epochs took (FASTGD_PASS, the cached calibration, or the fixed bounds)
    print(json.dumps([seconds, trainer.training.pass_name] if implementation == "fastgd" else seconds))


def _in_fresh_process(label, implementation, block, data_dir):
    output = subprocess.run([sys.executable, __file__, "--worker", label, implementation, str(block), data_dir],
                            check=True, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    return json.loads(output.stdout.strip().splitlines()[-1])


def measure_network(label, rounds, block, data_dir):
    network = common.NETWORKS[label]
    data = common.load_network_data(label, data_dir)
    seconds, peaks, floors, missing, passes = {}, [], [], {}, set()
    for round_index in range(rounds):
        order = [implementation for implementation in IMPLEMENTATIONS if implementation not in missing]
        order = order[round_index % len(order):] + order[:round_index % len(order)]
        for implementation in order:
            result = _in_fresh_process(label, implementation, block, data_dir)
            if isinstance(result, str):
                missing[implementation] = result
                print(f"{label}: {implementation} left out ({result})", file=sys.stderr)
            else:
                if implementation == "fastgd":
                    result, pass_name = result
                    passes.add(pass_name)
                seconds.setdefault(implementation, []).append(result)
        peaks.append(_in_fresh_process(label, "peak", block, data_dir))
        floors.append(_in_fresh_process(label, "floor", block, data_dir))
    layer_sizes = [data.n_features, *network.hidden, data.n_outputs]
    result = {"label": f"{label}, {network.dtype}", "dtype": network.dtype, "n_train": int(data.X_train.shape[0]),
              "layer_sizes": layer_sizes, "batch_size": network.batch_size, "fastgd_pass": sorted(passes),
              "seconds": {implementation: float(np.median(values)) for implementation, values in seconds.items()},
              "spread": {implementation: [float(min(values)), float(max(values))]
                         for implementation, values in seconds.items()},
              "row_peak_flops": float(np.median([rate for rate, _ in peaks])),
              "peak_blas": sorted({blas for _, blas in peaks}),
              "matmul_flops": baselines.epoch_matmul_flops(data.X_train.shape[0], layer_sizes)}
    if all(isinstance(floor, dict) for floor in floors):
        result["floor"] = {part: float(np.median([floor[part] for floor in floors])) for part in ("products", "steps")}
    else:
        why = next(floor for floor in floors if not isinstance(floor, dict))
        print(f"{label}: floor left out ({why})", file=sys.stderr)
    return result


def share_of_the_run_peak(networks):
    """Each network's GEMM share against the highest peak of its dtype in the run (``peak_flops``).

    The 2048² peak measured beside one network's rounds (``row_peak_flops``, their median) drifted
    from 209 to 306 GFLOP/s within one run on this project's VM, and a share against a low one
    overstates itself (92% of 233 GFLOP/s where the run reached 270).
    """
    highest = {}
    for network in networks:
        highest[network["dtype"]] = max(highest.get(network["dtype"], 0.0), network["row_peak_flops"])
    for network in networks:
        network["peak_flops"] = highest[network["dtype"]]
        network["gemm_share"] = network["matmul_flops"] / network["seconds"]["fastgd"] / network["peak_flops"]
        if "floor" in network:
            floor = network["floor"]
            floor["seconds"] = floor["products"] + floor["steps"]
            floor["products_share"] = network["matmul_flops"] / floor["products"] / network["peak_flops"]
            floor["highest_share"] = network["matmul_flops"] / floor["seconds"] / network["peak_flops"]
            peers = [network["seconds"][name] for name in ("torch", "jax") if name in network["seconds"]]
            if peers:
                floor["highest_peer_ratio"] = min(peers) / floor["seconds"]
    return networks


NUMBA_FLOOR = """
import time
start = time.perf_counter()
import numpy as np
import numba


@numba.njit(cache=True)
def increment(values):
    for k in range(values.size):
        values[k] += 1.0


increment(np.zeros(10))
print(time.perf_counter() - start)
"""


def numba_floor_seconds(cache_dir):
    """Seconds of ``import numba`` and the first call of a trivial cached ``@njit`` function, in a fresh process."""
    path = os.path.join(cache_dir, "numba_floor.py")  # a file: cache=True needs one
    with open(path, "w") as file:
        file.write(NUMBA_FLOOR)
    return float(common._fresh_python([path], cache_dir))  # as the workloads it is held against run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block", type=float, default=1.0, help="seconds each implementation trains per round")
    parser.add_argument("--networks", default=",".join(str(k) for k in range(len(NETWORKS))),
                        help="indices of the networks to run (comma-separated)")
    parser.add_argument("--out", help="write a markdown summary here (and the numbers beside it as .json)")
    parser.add_argument("--worker", nargs=4, metavar=("LABEL", "IMPLEMENTATION", "BLOCK", "DATA_DIR"),
                        help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        label, implementation, block, data_dir = arguments.worker
        worker(label, implementation, float(block), data_dir)
        return
    results = {"cpus": os.cpu_count(), "threads": threads.describe(), "networks": [], "cpu": cpu_model(),
               "fastgd_pass_setting": _config.PASS, "load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory() as data_dir:
        for label in NETWORKS:  # each set generated once, here, before the workers load it
            common.load_network_data(label, data_dir)
        for index in map(int, arguments.networks.split(",")):
            results["networks"].append(measure_network(NETWORKS[index], arguments.rounds, arguments.block, data_dir))
            print(f"{NETWORKS[index]}: done", file=sys.stderr)
    share_of_the_run_peak(results["networks"])
    results["fit_fixed_cost"] = common.fit_fixed_cost()
    with tempfile.TemporaryDirectory() as cache_dir:
        common.start_seconds("adam_step", cache_dir)  # fills the cache
        results["import_numba_seconds"] = float(np.median([common.start_seconds("import_numba", cache_dir)
                                                           for _ in range(3)]))
        numba_floor_seconds(cache_dir)  # fills the cache
        results["numba_floor_seconds"] = float(np.median([numba_floor_seconds(cache_dir) for _ in range(3)]))
        results["adam_step_seconds"] = float(np.median([common.start_seconds("adam_step", cache_dir)
                                                        for _ in range(3)]))
        common.warm_first_fit_seconds(cache_dir)  # fills the cache
        results["warm_fit_seconds"] = float(np.median([common.warm_first_fit_seconds(cache_dir) for _ in range(3)]))
    common.print_and_save(report(results), results, arguments.out)


def _times(seconds):
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _load(results):
    load = results.get("load_average")
    return " / ".join(f"{value:.1f}" for value in load) + " (1, 5, 15 min)" if load else "not recorded"


def report(results):
    lines = ["# Training speed at real network sizes", "",
             f"Adam, ReLU, median seconds per epoch over rounds that alternate the implementations, each "
             f"measurement in a fresh process; one run of "
             f"`benchmarks/scripts/network_speed.py` on {results['cpus']} CPUs, "
             f"{results.get('cpu', 'CPU not recorded')} ({results['threads']}; load average at the start "
             f"{_load(results)}). fastgd's pass "
             f"(FASTGD_PASS={results.get('fastgd_pass_setting', 'auto')}) is named beside its time. "
             "Ratios are the other implementation's time over fastgd's, from this run. The GEMM share is "
             "against the highest 2048² peak of the dtype in this run (through "
             f"{' and '.join(sorted({blas for network in results['networks'] for blas in network['peak_blas']}))}).",
             "",
             "| network/batch, dtype | fastgd s/epoch | × scikit-learn | × PyTorch | × JAX + optax | GEMM share |",
             "|---|---|---|---|---|---|"]
    for network in results["networks"]:
        seconds = network["seconds"]
        ratios = [f"{seconds[name] / seconds['fastgd']:.2f}" if name in seconds else "n/a"
                  for name in ("sklearn", "torch", "jax")]
        ran = ", ".join(network.get("fastgd_pass", [])) or "pass not recorded"
        lines.append(f"| {network['label']} | {_times(seconds['fastgd'])} ({ran}) | {' | '.join(ratios)} | "
                     f"{network['gemm_share']:.0%} of {network['peak_flops'] / 1e9:.0f} GFLOP/s "
                     f"(peak beside its rounds: {network['row_peak_flops'] / 1e9:.0f}) |")
    lines += ["", "Seconds per epoch of each implementation (median, and the range over rounds):", "",
              "| network/batch, dtype | " + " | ".join(IMPLEMENTATIONS) + " |", "|---|" + "---|" * len(IMPLEMENTATIONS)]
    for network in results["networks"]:
        cells = [f"{_times(network['seconds'][name])} ({_times(network['spread'][name][0])}–"
                 f"{_times(network['spread'][name][1])})" if name in network["seconds"] else "n/a"
                 for name in IMPLEMENTATIONS]
        lines.append(f"| {network['label']} | {' | '.join(cells)} |")
    lines += ["", "fastgd's floor: its batches' matrix products alone and its rule's steps alone, with the pass, BLAS "
              "and threads its epochs take, per epoch (medians over rounds). Everything else an epoch does taken as "
              "free, the floor gives the highest GEMM share and the highest ratio to the faster of PyTorch and JAX "
              "that an epoch could reach with these products and steps on this machine, updating after each "
              "batch's products.", "",
              "| network/batch, dtype | products alone (share) | steps alone | floor | fastgd's epoch / floor | "
              "highest share | highest × the faster peer |", "|---|---|---|---|---|---|---|"]
    for network in results["networks"]:
        floor = network.get("floor")
        if floor is None:
            lines.append(f"| {network['label']} | n/a | n/a | n/a | n/a | n/a | n/a |")
            continue
        peer = f"{floor['highest_peer_ratio']:.2f}" if "highest_peer_ratio" in floor else "n/a"
        lines.append(f"| {network['label']} | {_times(floor['products'])} ({floor['products_share']:.0%}) | "
                     f"{_times(floor['steps'])} | {_times(floor['seconds'])} | "
                     f"{network['seconds']['fastgd'] / floor['seconds']:.2f} | {floor['highest_share']:.0%} | {peer} |")
    costs = results["fit_fixed_cost"]
    lines += ["", f"A {common.FIT_EPOCHS}-epoch `MLPClassifier.fit` on digits: {_times(costs['fit'])}, of which "
              f"{_times(costs['fixed'])} ({costs['fixed'] / costs['fit']:.1%}) is not its epochs, against "
              f"{common.FIT_EPOCHS} epochs of a `Training` alone, and "
              f"{_times(costs['beyond_compiled'])} ({costs['beyond_compiled'] / costs['fit']:.1%}) is not its "
              "compiled epochs' own time (medians over alternated pairs).", "",
              f"Warm start (fresh processes, cache filled, medians of 3): `import numba` "
              f"{results['import_numba_seconds']:.2f} s; `import numba` and the first call of a trivial cached "
              f"`@njit` function {results['numba_floor_seconds']:.2f} s; `import fastgd` and a first `opt.step` "
              f"{results['adam_step_seconds']:.2f} s "
              f"(+{results['adam_step_seconds'] - results['numba_floor_seconds']:.2f} s over that); "
              f"a first fit beyond its imports {results['warm_fit_seconds']:.2f} s."]
    return lines


if __name__ == "__main__":
    main()
