"""What recording the full training objective costs a sweep's runs (``RunSpec.track_objective``, issue 27).

    python benchmarks/scripts/objective_overhead.py [--repeats 5] [--dataset digits] [--hidden 0] [--untracked-only]

One chunk of runs (``--runs`` SGD runs of the linear model, or of an MLP with ``--hidden`` units, batch 32,
``--epochs`` epochs) trained as a sweep trains it, in one compiled call
(:func:`fastgd.sweep.runner.execute_chunk`, batched), after one warm-up call that compiles: runs that do not ask
and the same runs asking, alternated within each repeat; medians and their ratio. ``--untracked-only`` times the
runs that do not ask alone, so that the script also runs on a tree from before ``track_objective`` (the cost to
runs that do not ask: run it there and here in turn).
"""

import argparse
import dataclasses
import os
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from fastgd import sweep  # noqa: E402
from fastgd.machine import cpu_model  # noqa: E402
from fastgd.sweep import runner  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--hidden", type=int, default=0)
    parser.add_argument("--untracked-only", action="store_true")
    arguments = parser.parse_args()
    config = sweep.parse(dict(name="overhead", datasets=[arguments.dataset], rules=["sgd"], learning_rates=[0.05],
                              batch_sizes=[32], seeds=list(range(arguments.runs)), epochs=arguments.epochs,
                              targets={arguments.dataset: 1e-6},
                              model={"hidden_layer_sizes": [arguments.hidden] if arguments.hidden else [],
                                     "alpha": 1e-4}))
    plain = sweep.runs(config)
    kinds = {"untracked": plain}
    if not arguments.untracked_only:
        kinds["tracked"] = [dataclasses.replace(spec, track_objective=True) for spec in plain]
    for specs in kinds.values():
        runner.execute_chunk(specs)  # compiles (or loads) the epoch
    times = {kind: [] for kind in kinds}
    for _ in range(arguments.repeats):
        for kind, specs in kinds.items():
            start = time.perf_counter()
            results = runner.execute_chunk(specs)
            times[kind].append(time.perf_counter() - start)
            assert all(result["status"] == "ok" for result in results)
    print(f"{cpu_model()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; {arguments.runs} runs of "
          f"{arguments.dataset} (hidden {arguments.hidden or 'none'}), {arguments.epochs} epochs, batch 32; "
          f"tree {pathlib.Path(sweep.__file__).resolve().parents[2]}")
    for kind, values in times.items():
        print(f"{kind}: median {np.median(values) * 1e3:.1f} ms over {len(values)} "
              f"({', '.join(f'{value * 1e3:.0f}' for value in values)})")
    if "tracked" in times:
        print(f"tracked / untracked: {np.median(times['tracked']) / np.median(times['untracked']):.3f}")


if __name__ == "__main__":
    main()
