"""PSGD-Kron speed: one step of fastgd's ``psgd_kron`` against ``pytorch_optimizer.Kron``, float32.

    python benchmarks/scripts/kron_speed.py [--repeats 3] [--threads 1] [--update-probability P] [--out ...]

Issue 28's goal: a step ≥ 3× faster than pytorch-optimizer's on the same thread count, on the layouts of the
MLP 256-512-512-10 and of DeepOBS's 2c2d (``fastgd.networks.known("2c2d").layout``: kernels as (out,
in·kh·kw)). Both with their defaults, so every step of the first 500 updates the factors; float32 (Kron's own
preconditioner dtype). One gradient per layout, fixed; the two implementations alternate within each repeat,
each measurement is one step after a warm-up of two, and the ratio is of the medians. ``--threads`` is
fastgd's (Numba and BLAS) and torch's.

``--update-probability P`` gives both ``pre_conditioner_update_probability=P`` in place of the schedule: the factors
update once the step counter reaches 1/P, so a P of 1e-9 times the steps that only precondition the gradient
(Q_Lᵀ Q_L G Q_Rᵀ Q_R), most of a long training's steps after the schedule's first 500 (its probability decays to
0.03).

Beside each layout, the step's floor (:mod:`preconditioner_floors`: its unavoidable arithmetic at the best product
rate measured in the same run) and pytorch-optimizer's time over it, the most any implementation could gain here.
"""

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import preconditioner_floors  # noqa: E402
from fastgd import optim, threads  # noqa: E402
from fastgd.machine import cpu_model  # noqa: E402
from fastgd.networks import known  # noqa: E402
from fastgd.reference import mlp_layout  # noqa: E402

LAYOUTS = {"MLP 256-512-512-10": mlp_layout([256, 512, 512, 10]), "2c2d": known("2c2d").layout}


def _pair(layout, torch, pytorch_optimizer, probability=None):
    size = sum(int(np.prod(shape)) for shape in layout)
    rng = np.random.default_rng(0)
    start = rng.normal(0, 0.05, size).astype(np.float32)
    gradient = rng.normal(0, 1e-2, size).astype(np.float32)
    ours = optim.OPTIMIZERS["psgd_kron"](start.copy(), layout=layout, pre_conditioner_update_probability=probability)
    tensors, offset = [], 0
    for shape in layout:
        n = int(np.prod(shape))
        tensor = torch.tensor(start[offset:offset + n].reshape(shape), requires_grad=True)
        tensor.grad = torch.tensor(gradient[offset:offset + n].reshape(shape))
        tensors.append(tensor)
        offset += n
    theirs = pytorch_optimizer.Kron(tensors, pre_conditioner_update_probability=probability)
    return (lambda: ours.step(gradient)), theirs.step


def _seconds(function):
    began = time.perf_counter()
    function()
    return time.perf_counter() - began


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--update-probability", type=float, default=None,
                        help="both sides' pre_conditioner_update_probability (default: the schedule)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    import pytorch_optimizer
    import torch

    torch.set_num_threads(args.threads)
    threads.set_num_threads(args.threads)
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")),
                 cpu_model())
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    rows = []
    for name, layout in LAYOUTS.items():
        ours, theirs = _pair(layout, torch, pytorch_optimizer, args.update_probability)
        for _ in range(2):  # compilation and first calls stay out of the timings
            ours(), theirs()
        times = {"fastgd": [], "pytorch_optimizer": []}
        for _ in range(args.repeats):
            times["fastgd"].append(_seconds(ours))
            times["pytorch_optimizer"].append(_seconds(theirs))
        ours_median, theirs_median = (statistics.median(times[key]) for key in ("fastgd", "pytorch_optimizer"))
        rows.append((name, ours_median, theirs_median))
        print(f"{name}: fastgd {ours_median * 1e3:.1f} ms, pytorch_optimizer {theirs_median * 1e3:.1f} ms, "
              f"{theirs_median / ours_median:.2f}x", flush=True)
    machine = preconditioner_floors.MachineLimits(torch)
    kind = "Kron, update" if args.update_probability is None else "Kron, precondition only"
    floors = {name: preconditioner_floors.floor_seconds(layout, kind, machine) for name, layout in LAYOUTS.items()}
    load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lines = ["# PSGD-Kron step speed: fastgd `psgd_kron` vs `pytorch_optimizer.Kron`", "",
             f"Measured by `benchmarks/scripts/kron_speed.py --repeats {args.repeats} --threads {args.threads}"
             + ("" if args.update_probability is None else f" --update-probability {args.update_probability:g}")
             + "`: one step "
             + ("with the defaults (every step of the first 500 updates the factors)" if args.update_probability is None
                else "that preconditions without updating the factors (both given the update probability "
                     f"{args.update_probability:g})")
             + ", float32, medians of alternated repetitions after two warm-up steps. Goal (issue 28): ≥ 3×.", "",
             f"CPU: {model}, {os.cpu_count()} logical CPUs; threads: {args.threads} (fastgd's Numba and BLAS, "
             "torch's).", f"Load before: `{load_before}`", f"Load after: `{load_after}`", "",
             preconditioner_floors.describe(machine), "",
             "| layout | fastgd (ms) | pytorch-optimizer (ms) | ratio | floor (ms) | most possible here: "
             "pytorch-optimizer / floor |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {name} | {ours * 1e3:.1f} | {theirs * 1e3:.1f} | {theirs / ours:.2f}× | {floors[name] * 1e3:.1f} "
              f"| {theirs / floors[name]:.2f}× |" for name, ours, theirs in rows]
    lines += ["", f"The floor ({kind}): the step's arithmetic that no implementation can skip at the fastest product "
              "rate measured (`benchmarks/scripts/preconditioner_floors.py` counts it); under 3× in the last column, "
              "no implementation reaches the goal on this machine."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
