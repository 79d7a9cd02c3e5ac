"""How long the ``suite`` preset's sweep takes for a few rules, problem by problem and worker by worker (issue 27).

    python benchmarks/scripts/suite_time.py [--rules adam] [--problems NAME ...] [--jobs 2] [--store FILE]
                                            [--json FILE]

Runs the ``suite`` preset (:mod:`fastgd.problems`: every problem of the small set, the small tuning budget, ten
final seeds) for ``--rules`` alone, into ``--store`` (a new temporary file by default: nothing is skipped),
through :func:`fastgd.sweep.run_sweep` as ``fastgd compare`` runs it, with every chunk of runs timed where it
runs: its worker process, when it started and ended, its wall and CPU seconds (the worker's CPU time: a busy
machine stretches the wall clock, less the CPU time) and its seconds of compiling (or loading compiled code).
Prints, per problem and phase, those seconds; per worker, how long it was busy in each phase and how long it sat
idle while the other finished; and the sweep's wall time. The issue's unit is one rule on the whole small set (126
runs): the suite is about that times the number of rules, plus each rule's first compile.

Cold: give the run an empty Numba cache and generated-rules folder, as a fresh clone has::

    NUMBA_CACHE_DIR=$(mktemp -d) FASTGD_GENERATED_DIR=$(mktemp -d) python benchmarks/scripts/suite_time.py

The machine's load (``/proc/loadavg``) is printed when the sweep starts and ends.
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

# where a worker appends one JSON line per chunk it trained (read by the parent)
LOG_VARIABLE = "SUITE_TIME_LOG"
# the runner's own execute_chunk, in the process that replaced it (a worker imports its own, untouched)
_ORIGINAL = {}


def timed_chunk(specs, *arguments, **keywords):
    """:func:`fastgd.sweep.runner.execute_chunk`, its wall and CPU seconds appended to the log as one JSON line."""
    execute_chunk = _ORIGINAL.get("execute_chunk")
    if execute_chunk is None:
        from fastgd.sweep.runner import execute_chunk

    started, cpu = time.time(), time.process_time()
    results = execute_chunk(specs, *arguments, **keywords)
    line = dict(dataset=specs[0].dataset, phase=specs[0].phase, runs=len(specs), epochs=specs[0].n_epochs,
                dtype=specs[0].dtype, rule=specs[0].rule, pid=os.getpid(), start=started, end=time.time(),
                cpu=time.process_time() - cpu, compile=sum(result.get("compile_seconds", 0.0) for result in results),
                failed=sum(result["status"] == "failed" for result in results))
    with open(os.environ[LOG_VARIABLE], "a") as log:
        log.write(json.dumps(line) + "\n")
    return results


def suite_config(rules, problems=None, dtype=None):
    """The ``suite`` preset for ``rules`` alone (and ``problems``, default all of them; ``dtype``, every problem's
    instead of its own)."""
    import tomllib
    from importlib import resources

    from fastgd.sweep.config import parse

    raw = tomllib.loads(resources.files("fastgd.sweep").joinpath("presets", "suite.toml").read_text())
    raw["rules"] = list(rules)
    if problems:
        raw["problems"] = list(problems)
    if dtype:
        from fastgd import problems as known

        raw["dtype"] = dtype
        # each problem's table with this dtype, where a problem has one of its own (which overrides the top level)
        raw["datasets"] = {name: dict(known.as_dataset_table(name), **(
            {"dtype": dtype} if "dtype" in known.as_dataset_table(name) else {})) for name in raw["problems"]}
        raw["targets"] = {name: known.get(name).target for name in raw.pop("problems")}
    return parse(raw)


def load():
    with open("/proc/loadavg") as file:
        return " ".join(file.read().split()[:3])


def summarise(lines, started, ended):
    """Text: per problem and phase, per worker and phase, and in all."""
    out = [f"{'problem':<16} {'phase':<6} {'runs':>4} {'wall s':>8} {'cpu s':>8} {'compile s':>9}  worker"]
    pids = sorted({line["pid"] for line in lines})
    for line in sorted(lines, key=lambda line: (line["phase"] != "tune", line["start"])):
        out.append(f"{line['dataset']:<16} {line['phase']:<6} {line['runs']:>4} {line['end'] - line['start']:>8.1f} "
                   f"{line['cpu']:>8.1f} {line['compile']:>9.1f}  {pids.index(line['pid'])}")
    for phase in ("tune", "final"):
        chunks = [line for line in lines if line["phase"] == phase]
        if not chunks:
            continue
        first, last = min(line["start"] for line in chunks), max(line["end"] for line in chunks)
        out.append(f"{phase}: {last - first:.1f} s from its first chunk's start to its last chunk's end")
        for pid in pids:
            mine = [line for line in chunks if line["pid"] == pid]
            busy = sum(line["end"] - line["start"] for line in mine)
            done = max((line["end"] for line in mine), default=first)
            out.append(f"    worker {pids.index(pid)}: {len(mine)} chunks, busy {busy:.1f} s, cpu "
                       f"{sum(line['cpu'] for line in mine):.1f} s, idle {last - done:.1f} s at the end")
    per_problem = {}
    for line in lines:
        per_problem[line["dataset"]] = per_problem.get(line["dataset"], 0.0) + line["end"] - line["start"]
    out.append("per problem, both phases (wall s of its chunks): " + ", ".join(
        f"{name} {seconds:.1f}" for name, seconds in sorted(per_problem.items(), key=lambda item: -item[1])))
    out.append(f"sweep: {ended - started:.1f} s wall; chunks' CPU {sum(line['cpu'] for line in lines):.1f} s, "
               f"compile {sum(line['compile'] for line in lines):.1f} s")
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", nargs="+", default=["adam"])
    parser.add_argument("--problems", nargs="+")
    parser.add_argument("--dtype", choices=["float32", "float64"], help="every problem in this dtype")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--store", help="the store to write (default: a new temporary file)")
    parser.add_argument("--json", help="write the chunks' timings here")
    arguments = parser.parse_args(argv)

    imported = time.perf_counter()
    from fastgd.sweep import runner

    config = suite_config(arguments.rules, arguments.problems, arguments.dtype)
    folder = tempfile.mkdtemp(prefix="suite_time_")
    store = arguments.store or os.path.join(folder, "sweep.db")
    os.environ[LOG_VARIABLE] = log = os.path.join(folder, "chunks.jsonl")
    _ORIGINAL["execute_chunk"] = runner.execute_chunk
    runner.execute_chunk = timed_chunk  # the pool submits the name the runner's module holds
    print(f"imports and the preset: {time.perf_counter() - imported:.1f} s; load {load()} at the start; "
          f"NUMBA_CACHE_DIR={os.environ.get('NUMBA_CACHE_DIR')}", flush=True)
    started = time.time()
    outcome = runner.run_sweep(config, store, jobs=arguments.jobs, progress=False)
    ended = time.time()
    lines = [json.loads(line) for line in pathlib.Path(log).read_text().splitlines()]
    print(f"{outcome.stored} runs stored, {outcome.failed} failed, {outcome.diverged} diverged; load {load()} at "
          "the end")
    print(summarise(lines, started, ended))
    if arguments.json:
        pathlib.Path(arguments.json).write_text(json.dumps(dict(lines=lines, started=started, ended=ended), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
