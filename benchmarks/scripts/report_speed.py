"""How long the report phase of ``fastgd compare`` takes on a stored sweep, by how many processes draw its figures.

    python benchmarks/scripts/report_speed.py STORE [--workers 1 2] [--repeats 3] [--out DIR] [--profile FILE]
                                              [--tree OTHER_CHECKOUT]
    python benchmarks/scripts/report_speed.py --same DIR_A DIR_B

The first form draws the report of ``STORE`` (e.g. ``reports/latest/sweep.db`` of ``fastgd compare --preset
lecture``) with :func:`fastgd.report.build.build_report`, each time in a new process that has first imported what
``fastgd compare`` holds by its fourth phase (fastgd's sweep and statistics, pandas, SciPy): the time counted is
the report's own, matplotlib's import included, as the demo pays it; beside it, the CPU seconds of that process
and of every process it started (its imports included), which a busy machine changes less than it changes the
wall clock. The worker counts alternate within each repeat, and with ``--tree`` (another checkout of fastgd, e.g.
``git archive`` of an older commit, drawn with one process) that checkout's report too; medians and their ratio
to the first. ``--profile FILE`` writes cProfile's statistics of one
report drawn with the first worker count (its own process's functions only) and prints the 25 costliest by
cumulative time.

The second form compares two reports' folders: every CSV and JSON file must be byte for byte the same (the
figures' data, ``pairwise.csv``, ``runs.csv``), and the pages the same but for what is made at random (none).
"""

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]

# run in a new process: imports made before the clock starts, then the report, then its seconds on stdout
CHILD = """
import sys, time
import pandas, scipy.stats, fastgd.sweep, fastgd.sweep.stats  # what fastgd compare has imported by then
from fastgd.report.build import build_report
store, out, workers, profile = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if profile:
    import cProfile
    profiler = cProfile.Profile()
    profiler.enable()
started = time.perf_counter()
build_report(out, store, **(dict(workers=workers) if workers > 1 else {}))
seconds = time.perf_counter() - started
if profile:
    profiler.disable()
    profiler.dump_stats(profile)
print(seconds)
"""


def draw(store, out, workers, profile="", tree=ROOT):
    """(seconds of the report, CPU seconds of its process and those it started) of one report of ``store``
    drawn by the fastgd of ``tree`` in a new process, with ``workers`` drawing processes."""
    import resource

    environment = dict(os.environ, PYTHONPATH=str(tree) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # run with -c: the drawing processes, spawned, have no main file to import again
    # in the checkout's folder: python -c puts the working directory first on the path
    result = subprocess.run([sys.executable, "-c", CHILD, str(pathlib.Path(store).resolve()),
                             str(pathlib.Path(out).resolve()), str(workers), profile],
                            capture_output=True, text=True, env=environment, check=False, cwd=tree)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"the report failed:\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(result.stdout.split()[-1]), cpu


def same(first, second):
    """Lines naming each CSV or JSON file that differs between report folders ``first`` and ``second``."""
    first, second = pathlib.Path(first), pathlib.Path(second)
    names = sorted({path.name for folder in (first, second) for path in folder.iterdir()
                    if path.suffix in (".csv", ".json")})
    problems = []
    for name in names:
        if not ((first / name).is_file() and (second / name).is_file()):
            problems.append(f"{name}: in one folder only")
        elif (first / name).read_bytes() != (second / name).read_bytes():
            problems.append(f"{name}: differs")
    page = [(folder / "index.html").read_text(encoding="utf-8") for folder in (first, second)]
    if page[0] != page[1]:
        problems.append("index.html: differs")
    return names, problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", nargs="?")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="where the reports go (one folder per worker count)")
    parser.add_argument("--profile", default="")
    parser.add_argument("--same", nargs=2, metavar="DIR")
    parser.add_argument("--tree", default=None, help="another checkout of fastgd, its report timed alongside")
    arguments = parser.parse_args()
    if arguments.same:
        names, problems = same(*arguments.same)
        print(f"{len(names)} CSV and JSON files compared, and index.html: "
              + ("; ".join(problems) if problems else "all the same"))
        return 1 if problems else 0
    if not arguments.store:
        parser.error("give a STORE or --same DIR_A DIR_B")
    from fastgd.machine import cpu_model

    out = pathlib.Path(arguments.out or tempfile.mkdtemp(prefix="report_speed_"))
    if arguments.profile:
        profile = str(pathlib.Path(arguments.profile).resolve())
        seconds, _ = draw(arguments.store, out / "profiled", arguments.workers[0], profile)
        print(f"profiled report: {seconds:.1f} s (under cProfile)")
        import pstats

        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    candidates = [(f"this checkout, {workers} drawing process{'es' if workers > 1 else ''}", workers, ROOT,
                   out / f"workers_{workers}") for workers in arguments.workers]
    if arguments.tree:
        candidates.append((f"{arguments.tree}, 1 drawing process", 1, pathlib.Path(arguments.tree).resolve(),
                           out / "tree"))
    times = {label: [] for label, *_ in candidates}
    loads = [os.getloadavg()[0]]
    for _ in range(arguments.repeats):
        for label, workers, tree, folder in candidates:
            times[label].append(draw(arguments.store, folder, workers, tree=tree))
            loads.append(os.getloadavg()[0])
    print(f"{cpu_model()}, {os.cpu_count()} cores; 1-minute load average {min(loads):.2f} to {max(loads):.2f}; "
          f"{arguments.repeats} repeats, the candidates alternated")
    print("| report drawn by | median s | each repeat (s) | / the first | median CPU s (all processes) |")
    print("|---|---|---|---|---|")
    first = statistics.median(seconds for seconds, _ in times[candidates[0][0]])
    for label, measured in times.items():
        median = statistics.median(seconds for seconds, _ in measured)
        cpu = statistics.median(cpu for _, cpu in measured)
        print(f"| {label} | {median:.1f} | {', '.join(f'{s:.1f}' for s, _ in measured)} | {median / first:.2f} "
              f"| {cpu:.1f} |")
    print(f"reports in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
