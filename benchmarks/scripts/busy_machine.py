"""fastgd on a busy machine: the pass adapting to the load (issue 29) against one thread and the threaded pass forced.

    python benchmarks/scripts/busy_machine.py [--epochs 12] [--forced-epochs 3] [--rounds 3] [--out ...]

100-256-256-10, batch 64, Adam (lr 1e-3), float32, 20,000 random rows of 10 classes, while one busy
process (a Python loop) runs beside it, started here and stopped at the end. Three settings, each
training in a fresh process (the settings are read at import), alternated round by round so that
all three see the same minutes:

* ``default``: FASTGD_PASS=auto, FASTGD_ADAPT=1 (what a user gets): the calibrated or fixed threaded
  pass, adapting to the load (``fastgd.calibration.PassAdaptation``);
* ``one thread``: FASTGD_NUM_THREADS=1;
* ``threaded, forced``: FASTGD_PASS set to the pass ``auto`` chooses on two threads (FASTGD_ADAPT=0);
* ``jax``: JAX + optax (``baselines.JaxTraining``: a whole epoch under one ``jax.jit``, XLA's own threads),
  the issue's peer, on the same rows, network, batches and initial weights.

The forced threaded pass runs ``--forced-epochs`` epochs a run (on a busy machine each of its epochs
takes many of the others'). Each run reports its epochs' seconds (compilation excluded: the kernels
are loaded before the first epoch's clock starts, and a first unmeasured run per setting fills the
Numba cache) and, for the default, which pass each epoch took. The report gives per setting the
median epoch after the first, the median of the runs' whole training seconds, and the machine's load
(``os.getloadavg``) before and after.
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
LAYERS = (100, 256, 256, 10)
BATCH, ROWS = 64, 20_000
JAX = "BUSY_MACHINE_JAX"  # a setting's marker: its worker trains JAX + optax, not fastgd


def _rows():
    """The training rows every setting trains on: random features, labels from a random linear teacher."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((ROWS, LAYERS[0])).astype(np.float32)
    teacher = rng.standard_normal((LAYERS[0], LAYERS[-1]))
    Y = np.eye(LAYERS[-1], dtype=np.float32)[(X @ teacher).argmax(axis=1)]
    return X, Y


def jax_worker(n_epochs):
    """JAX + optax on the same rows and network: one jitted epoch per call, compiled before the clock starts."""
    sys.path.insert(0, str(ROOT))
    from fastgd import MLP
    from fastgd.baselines.trainers import JaxTraining

    X, Y = _rows()
    net = MLP(list(LAYERS), "relu", "softmax", 1e-4, np.float32)
    coefs, intercepts = net.unpack(net.init(random_state=0))
    # compiled for these shapes as it is built; alpha as fastgd's network has it
    training = JaxTraining(coefs, intercepts, X, Y.argmax(axis=1), True, "adam", 1e-3, BATCH, alpha=1e-4)
    seconds, loss = [], None
    start = time.perf_counter()
    for _ in range(n_epochs):
        before = time.perf_counter()
        loss = training.epoch()
        seconds.append(time.perf_counter() - before)
    print(json.dumps({"seconds": seconds, "passes": ["xla"] * n_epochs, "changes": [], "chosen": "xla (jitted epoch)",
                      "threads": "XLA's", "wall": time.perf_counter() - start, "loss": float(loss)}))


def worker(n_epochs):
    """Train once in this process with the environment's settings; print one JSON line."""
    sys.path.insert(0, str(ROOT))
    from fastgd import MLP, optim, threads
    from fastgd.training import Training

    X, Y = _rows()
    net = MLP(list(LAYERS), "relu", "softmax", 1e-4, np.float32)
    training = Training(net, optim.Adam(net.init(random_state=0), lr=1e-3), X, Y, BATCH, seed=0)
    chosen = training.pass_name
    start = time.perf_counter()
    history = training.run(n_epochs)
    print(json.dumps({"seconds": np.diff([0.0] + history.seconds).tolist(), "passes": history.passes,
                      "changes": history.pass_changes, "chosen": chosen, "threads": threads.get_num_threads(),
                      "wall": time.perf_counter() - start, "loss": history.loss[-1]}))


def run(settings, n_epochs):
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("FASTGD_") or key == "FASTGD_GENERATED_DIR"}
    environment.update(settings)
    worker_flag = "--jax-worker" if settings.get(JAX) else "--worker"
    result = subprocess.run([sys.executable, __file__, worker_flag, "--epochs", str(n_epochs)], env=environment,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the worker with {settings} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _timed(result):
    """A run's epochs after the first, or its one epoch."""
    return result["seconds"][1:] or result["seconds"]


def threaded_pass():
    """The pass auto chooses for this network on two threads, as a fresh process sees it."""
    code = ("import sys; sys.path.insert(0, %r); from fastgd import calibration; "
            "print(calibration.training_pass(%r, %d, 'float32', 2)[0])" % (str(ROOT), list(LAYERS), BATCH))
    environment = {key: value for key, value in os.environ.items() if not key.startswith("FASTGD_PASS")}
    return subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True,
                          check=True).stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--forced-epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "reports" / "busy_machine.md"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--jax-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-jax", action="store_true", help="leave JAX + optax out")
    arguments = parser.parse_args()
    if arguments.worker:
        return worker(arguments.epochs)
    if arguments.jax_worker:
        return jax_worker(arguments.epochs)

    sys.path.insert(0, str(ROOT))
    from fastgd.machine import cpu_model

    forced = threaded_pass()
    settings = {"default": {"FASTGD_ADAPT": "1"}, "one thread": {"FASTGD_NUM_THREADS": "1"},
                "threaded, forced": {"FASTGD_PASS": forced, "FASTGD_ADAPT": "0"}}
    if not arguments.no_jax:
        settings["jax"] = {JAX: "1"}
    for name, setting in settings.items():  # fill the Numba cache; not measured
        run(setting, 1)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        load_before = os.getloadavg()
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        results = {name: [] for name in settings}
        for index in range(arguments.rounds):
            for name, setting in settings.items():
                n_epochs = arguments.forced_epochs if name == "threaded, forced" else arguments.epochs
                results[name].append(run(setting, n_epochs))
                print(f"round {index + 1} {name}: median epoch {np.median(_timed(results[name][-1])):.3f} s,"
                      f" passes {results[name][-1]['passes']}", flush=True)
        load_after = os.getloadavg()
    finally:
        busy.terminate()
        busy.wait()

    rows = []
    medians = {}
    for name, runs in results.items():
        epochs = [seconds for result in runs for seconds in _timed(result)]
        firsts = [result["seconds"][0] for result in runs]
        totals = [sum(result["seconds"]) for result in runs]
        medians[name] = float(np.median(totals))
        rows.append((name, runs[0]["chosen"], runs[0]["threads"], float(np.median(epochs)), min(epochs), max(epochs),
                     float(np.median(firsts)), medians[name]))
    lines = [
        "# fastgd on a busy machine: adapting to the load (issue 29)",
        "",
        f"Written by `benchmarks/scripts/busy_machine.py --epochs {arguments.epochs} --forced-epochs "
        f"{arguments.forced_epochs} --rounds {arguments.rounds}`, "
        f"{started}. CPU: {cpu_model()}, {os.cpu_count()} cores. Load average (1, 5, 15 min) before: "
        f"{', '.join(f'{value:.2f}' for value in load_before)}; after: "
        f"{', '.join(f'{value:.2f}' for value in load_after)}, with one busy process (a Python loop) started by "
        "the script beside the other work of the machine.",
        "",
        f"{'-'.join(map(str, LAYERS))}, batch {BATCH}, Adam, float32, {ROWS:,} rows, {arguments.epochs} epochs a run "
        f"({arguments.forced_epochs} for the forced threaded pass), {arguments.rounds} runs a setting, the "
        f"{len(settings)} settings alternated run by run (each a fresh process).",
        "",
        "| setting | pass at the start | threads | median epoch after the first (s; of a one-epoch run, its epoch) "
        "| fastest–slowest (s) "
        "| first epoch, median (s) | whole run, median (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, chosen, n_threads, median, low, high, first, total in rows:
        lines.append(f"| {name} | {chosen} | {n_threads} | {median:.3f} | {low:.3f}–{high:.3f} | {first:.3f} | "
                     f"{total:.2f} |")
    per_epoch = {row[0]: row[3] for row in rows}  # the median epoch after the first
    lines += ["", "Ratios: whole runs, default / one thread "
              f"{medians['default'] / medians['one thread']:.2f}; median epochs after the first, default / one "
              f"thread {per_epoch['default'] / per_epoch['one thread']:.2f}, threaded forced / one thread "
              f"{per_epoch['threaded, forced'] / per_epoch['one thread']:.2f}"
              + (f"; JAX + optax / default {per_epoch['jax'] / per_epoch['default']:.2f} (above 1: fastgd is "
                 "faster)" if "jax" in per_epoch else "") + ".", "",
              "What the default runs did (`history.passes`, `history.pass_changes`):", ""]
    for index, result in enumerate(results["default"]):
        changes = "; ".join(result["changes"]) or "no switch"
        lines.append(f"- run {index + 1}: {changes}; passes {', '.join(result['passes'])}")
    text = "\n".join(lines) + "\n"
    pathlib.Path(arguments.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
