"""``solver="lbfgs"`` fits, fastgd's against scikit-learn's, each implementation alone in its own process, at one and
at several BLAS threads.

    python benchmarks/scripts/lbfgs_fit_alone.py [--threads 1 2] [--repeats 5] [--block 0.5] [--out reports/...]

The fits are ``lbfgs_speed.py``'s (its ``_fit_pair``: hidden layer 32, max_iter=200, both from scikit-learn's
initial weights, so both take the same iterations). There the two alternate in one process, which is fair with one
thread each. With more, the threads one library leaves spinning after its last call (OpenBLAS's, the OpenMP
threads of Numba) would take the cores from the other's next call, so here every measurement is a fresh process
that builds the pair, warms both fits up and then times only one of them for about ``--block`` seconds. Rounds
alternate the two implementations and the thread counts; each figure is the median over ``--repeats`` rounds of
that process's mean wall-clock seconds per fit, and each ratio (scikit-learn's over fastgd's) is of medians from
this run. The thread count is set for every BLAS and for Numba (``fastgd.threads.set_num_threads``).
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks import common  # noqa: E402

IMPLEMENTATIONS = ("fastgd", "sklearn")


def _one(name, implementation, n_threads, block):
    """In this process: ``implementation``'s fit on bundled set ``name`` at ``n_threads``; prints its seconds."""
    from fastgd import datasets, threads

    sys.path.insert(0, str(ROOT / "benchmarks" / "scripts"))
    import lbfgs_speed

    threads.set_num_threads(n_threads)
    ours, theirs, fit = lbfgs_speed._fit_pair(datasets.load(name))
    fit(ours), fit(theirs)  # compiled code loaded and first calls made for both, whichever is timed
    estimator = ours if implementation == "fastgd" else theirs
    (wall, cpu), _ = lbfgs_speed._block(lambda: fit(estimator), block)
    print(json.dumps({"wall": wall, "cpu": cpu, "iterations": int(estimator.n_iter_)}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--block", type=float, default=0.5, help="seconds of fits per process")
    parser.add_argument("--sets", nargs="+", default=None, help="bundled sets (default: all)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", nargs=4, metavar=("SET", "IMPLEMENTATION", "THREADS", "BLOCK"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        name, implementation, n_threads, block = args.one
        return _one(name, implementation, int(n_threads), float(block))

    from fastgd import datasets
    from fastgd.machine import cpu_model

    names = args.sets or list(datasets.BUNDLED)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    seconds = {(name, n, impl): [] for name in names for n in args.threads for impl in IMPLEMENTATIONS}
    iterations = {}
    started = time.perf_counter()
    for repeat in range(args.repeats):
        for name in names:
            for n_threads in args.threads:
                # the order rotates with the round, so neither implementation always follows the other
                for implementation in IMPLEMENTATIONS[repeat % 2:] + IMPLEMENTATIONS[:repeat % 2]:
                    out = subprocess.run([sys.executable, __file__, "--one", name, implementation, str(n_threads),
                                          str(args.block)], capture_output=True, text=True, check=True).stdout
                    measured = json.loads(out.strip().splitlines()[-1])
                    seconds[name, n_threads, implementation].append(measured["wall"])
                    iterations[name, implementation] = measured["iterations"]
    load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    medians = {key: float(np.median(values)) for key, values in seconds.items()}
    results = {"cpu": cpu_model(), "cpus": os.cpu_count(), "load_before": load, "load_after": load_after,
               "threads": args.threads, "repeats": args.repeats,
               "fit": {f"{name}/{n}/{impl}": {"median": medians[name, n, impl], "each": seconds[name, n, impl]}
                       for name, n, impl in seconds}}
    header = "| set | iterations fastgd / scikit-learn | " + " | ".join(
        f"fastgd, {n} thread(s) | scikit-learn, {n} | × scikit-learn at {n}" for n in args.threads) + " |"
    rows = []
    for name in names:
        cells = [f"{iterations[name, 'fastgd']} / {iterations[name, 'sklearn']}"]
        for n in args.threads:
            ours, theirs = medians[name, n, "fastgd"], medians[name, n, "sklearn"]
            cells += [f"{1e3 * ours:.2f} ms", f"{1e3 * theirs:.2f} ms", f"**{theirs / ours:.1f}×**"]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    lines = ["# L-BFGS fits, each implementation alone in its process, by thread count", "",
             f"One run of `benchmarks/scripts/lbfgs_fit_alone.py --threads {' '.join(map(str, args.threads))} "
             f"--repeats {args.repeats} --block {args.block}` on {results['cpu']} ({results['cpus']} CPUs), "
             f"{time.perf_counter() - started:.0f} s. Load: `{load}` before, `{load_after}` after. Medians over "
             f"{args.repeats} rounds of wall-clock seconds per fit (each a process's mean over about {args.block} s "
             "of fits); ratios are scikit-learn's over fastgd's, from this run.", "",
             header, "|---|---|" + "---|---|---|" * len(args.threads), *rows, ""]
    common.print_and_save(lines, results, args.out)


if __name__ == "__main__":
    main()
