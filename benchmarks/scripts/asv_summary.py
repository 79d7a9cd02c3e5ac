"""The headline ratios of the asv suite, as markdown: fastgd against NumPy, scikit-learn, PyTorch and the machine.

    python benchmarks/scripts/asv_summary.py --run            # asv run --python=same, then the summary
    python benchmarks/scripts/asv_summary.py --run --quick    # every benchmark once: proves the suite, no figures
    python benchmarks/scripts/asv_summary.py [--commit REV]   # the summary of results already stored

``--run`` records this machine for asv if it is new (``asv machine --yes``), then runs
``asv run --python=same --set-commit-hash HEAD`` with this checkout first on the path
(``ASV_PYTHONPATH``), so the fastgd measured is the one beside this script whatever is
installed. The summary goes to ``reports/asv_summary.md``, the numbers it used beside it
as ``.json``; the goals of the core issues are marked met or not met.
"""

import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys

from asv.benchmarks import Benchmarks
from asv.config import Config
from asv.machine import Machine
from asv.results import iter_results_for_machine_and_hash

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_convergence, bench_training  # noqa: E402
from fastgd import _config, baselines, datasets, optim  # noqa: E402

LARGE, SMALL = 10_000_000, 1_000


def git(*arguments):
    return subprocess.run(["git", *arguments], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def run_asv(commit, quick, bench):
    subprocess.run([sys.executable, "-m", "asv", "machine", "--yes"], cwd=ROOT, check=True)
    command = [sys.executable, "-m", "asv", "run", "--python=same", f"--set-commit-hash={commit}", "--show-stderr"]
    command += ["--quick"] if quick else []
    command += [f"--bench={pattern}" for pattern in bench]
    environment = dict(os.environ, ASV_PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                                                os.environ.get("PYTHONPATH")])))
    return subprocess.run(command, cwd=ROOT, env=environment).returncode


class Results:
    """The stored results of one commit on this machine: ``get(name, param=value, ...)``."""

    def __init__(self, commit):
        config = Config.load(str(ROOT / "asv.conf.json"))
        self.benchmarks = Benchmarks.load(config)
        self.machine = Machine.get_unique_machine_name()
        self.values = {}
        self.most_samples = 0  # of any time benchmark: 1 after asv run --quick
        for results in iter_results_for_machine_and_hash(config.results_dir, self.machine, commit):
            self.params = results.params
            for name in results.get_all_result_keys():
                params = results.get_result_params(name)
                values = results.get_result_value(name, params)
                if self.benchmarks[name]["type"] == "time":
                    self.most_samples = max([self.most_samples] + [stats["repeat"] for stats in
                                                                   results.get_result_stats(name, params) if stats])
                combinations = [()]
                for values_of_one in params:
                    combinations = [(*done, value) for done in combinations for value in values_of_one]
                self.values[name] = dict(zip(combinations, values))
        if not self.values:
            raise SystemExit(f"no asv results for commit {commit} on machine {self.machine}: run with --run")

    def get(self, name, **params):
        """The value, or None where the benchmark failed, was skipped, or did not run."""
        if name not in self.values:
            return None
        key = tuple(repr(params[parameter]) for parameter in self.benchmarks[name]["param_names"])
        value = self.values[name].get(key)
        return None if value is None or value != value else value


def ratio(numerator, denominator):
    return None if numerator is None or denominator is None else numerator / denominator


def cell(value, form="{:.2f}", missing="n/a"):
    return missing if value is None else form.format(value)


def seconds(value):
    if value is None:
        return "n/a"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value * 1e9:.3g} ns"


def verdict(value, met):
    return "n/a" if value is None else ("**met**" if met(value) else "**not met**")


def step_seconds(r, rule, n_params, implementation, dtype="float32"):
    """Seconds of one step in a running loop: the bytes it moves over ``track_bandwidth``.

    The track times batches of steps (``baselines.seconds_per_call``), as the comparison report does.
    """
    rate = r.get("bench_optim.UpdateStep.track_bandwidth", rule=rule, n_params=n_params, dtype=dtype,
                 implementation=implementation)
    return ratio(baselines.bytes_per_step(rule, n_params, dtype) / 1e9, rate)


def goals(r):
    adam = {n: {implementation: step_seconds(r, "adam", n, implementation)
                for implementation in ("fastgd_serial", "fastgd_parallel", "torch_fused")} for n in (SMALL, LARGE)}
    small_speedup = ratio(adam[SMALL]["torch_fused"], adam[SMALL][baselines.users_step_implementation(SMALL)])
    large_speedup = ratio(adam[LARGE]["torch_fused"], adam[LARGE][baselines.users_step_implementation(LARGE)])
    ceiling = in_place_ceiling(r, "adam")
    adam_bandwidth = r.get("bench_optim.UpdateStep.track_bandwidth", rule="adam", n_params=LARGE, dtype="float32",
                           implementation=baselines.users_step_implementation(LARGE))
    bandwidth_share = ratio(adam_bandwidth, ceiling)
    cold = r.get("bench_compile.ColdStart.track_cold_start", workload="adam_step")
    warm = r.get("bench_compile.WarmStart.track_warm_start", workload="adam_step")

    rate = "bench_training.Epoch.track_samples_per_second"
    digits = dict(dataset="digits", batch_size=32, rule="adam")
    versus_sklearn = ratio(r.get(rate, **digits, dtype="float64", implementation="fastgd"),
                           r.get(rate, **digits, dtype="float64", implementation="sklearn"))
    versus_torch = ratio(r.get(rate, **digits, dtype="float32", implementation="fastgd"),
                         r.get(rate, **digits, dtype="float32", implementation="torch"))
    losses = [r.get(convergence_name("final_loss", implementation), rule="adam", dataset="digits",
                    implementation=implementation) for implementation in ("fastgd", "sklearn")]
    loss_gap = None if None in losses else losses[0] / losses[1] - 1
    matmul_shares = {dtype: ratio(r.get("bench_training.EpochMatmulRate.track_matmul_rate", dtype=dtype),
                                  r.get("bench_machine.MatmulPeak.track_gemm", dtype=dtype))
            for dtype in ("float32", "float64")}
    budget = bench_convergence.TARGETS["digits"][1]

    rows = [
        ("Adam step, 1,000 float32 params, `opt.step`, against `torch.optim.Adam(fused=True)`",
         f"{cell(small_speedup, '{:.1f}x')} faster "
         f"({seconds(adam[SMALL][baselines.users_step_implementation(SMALL)])} against "
         f"{seconds(adam[SMALL]['torch_fused'])})", "≥ 5x", verdict(small_speedup, lambda v: v >= 5)),
        ("Adam step, 10⁷ float32 params, against torch fused",
         f"{cell(large_speedup, '{:.2f}x')} "
         f"({seconds(adam[LARGE][baselines.users_step_implementation(LARGE)])} against "
         f"{seconds(adam[LARGE]['torch_fused'])})", "≥ 1x", verdict(large_speedup, lambda v: v >= 1)),
        ("Adam step, 10⁷ float32 params, 28 bytes/param, against the same traffic alone (three arrays of 10⁷ "
         "float32 updated in place from a fourth) in the same run",
         f"{cell(adam_bandwidth, '{:.1f}')} GB/s = {cell(bandwidth_share, '{:.0%}')} of {cell(ceiling, '{:.1f}')} GB/s",
         "≥ 80%", verdict(bandwidth_share, lambda v: v >= 0.8)),
        ("Cold start: import and first `opt.step`, empty Numba cache", seconds(cold), "< 2 s",
         verdict(cold, lambda v: v < 2)),
        ("Warm start: import and first `opt.step`, cache filled", seconds(warm), "< 0.3 s",
         verdict(warm, lambda v: v < 0.3)),
        ("digits, 64-32-10 ReLU, Adam, batch 32: per epoch against scikit-learn's MLPClassifier (float64)",
         f"{cell(versus_sklearn, '{:.1f}x')} faster", "≥ 10x", verdict(versus_sklearn, lambda v: v >= 10)),
        ("the same against a plain PyTorch CPU loop (float32)", f"{cell(versus_torch, '{:.1f}x')} faster", "≥ 20x",
         verdict(versus_torch, lambda v: v >= 20)),
        (f"the same, float64: final training loss after {budget} epochs against scikit-learn's",
         f"{cell(losses[0], '{:.4g}')} against {cell(losses[1], '{:.4g}')} ({cell(loss_gap, '{:+.1%}')})",
         "within 5%", verdict(loss_gap, lambda v: abs(v) <= 0.05)),
    ]
    for dtype, share in matmul_shares.items():
        rows.append((f"digits, 64-256-10, Adam, batch 256, {dtype}: matrix-product FLOP rate of an epoch against "
                     "the GEMM peak", cell(share, "{:.0%}"), "≥ 50%", verdict(share, lambda v: v >= 0.5)))
    lines = ["## Goals of the core issues", "", "| goal | measured | target | |", "|---|---|---|---|"]
    lines += [f"| {goal} | {measured} | {target} | {mark} |" for goal, measured, target, mark in rows]
    numbers = {"adam_step_seconds": adam, "adam_bandwidth_gb_s": adam_bandwidth, "in_place_gb_s": ceiling,
               "cold_start_s": cold, "warm_start_s": warm, "digits_adam_b32_vs_sklearn": versus_sklearn,
               "digits_adam_b32_vs_torch": versus_torch, "digits_adam_final_losses": losses,
               "matmul_shares": matmul_shares}
    return lines, numbers


def in_place_ceiling(r, rule):
    """GB/s of the traffic of a step of ``rule`` at 10⁷ float32 alone: its ceiling (None past the suite's 4 arrays)."""
    return r.get("bench_machine.InPlaceBandwidth.track_in_place_update", n_params=LARGE,
                 arrays=baselines.arrays_written(rule))


def update_steps(r):
    lines = ["## One update step (float32)", "",
             "fastgd is `opt.step` in the form it takes at that size (serial below "
             f"{_config.PARALLEL_THRESHOLD:,} parameters, `prange` from there on); the next columns say how many "
             "times longer the baselines' step takes, then how many times faster the `prange` form is than the "
             "serial one. Bandwidth: the bytes a step must move (θ, g and the state read, θ and the state "
             "written) per second and, at 10⁷, its share of its ceiling: as many arrays updated in place from one "
             "read-only vector, over as many elements, in the same run (at 1,000 the call, not memory, decides).",
             ""]
    for n in (SMALL, LARGE):
        form = baselines.users_step_implementation(n)
        lines += [f"**{n:,} parameters**", "",
                  "| rule | fastgd | ×numpy | ×torch | ×torch fused | parallel speed-up | GB/s | share of ceiling |",
                  "|---|---|---|---|---|---|---|---|"]
        for rule in optim.OPTIMIZERS:
            time = {implementation: step_seconds(r, rule, n, implementation)
                    for implementation in ("fastgd_serial", "fastgd_parallel", "numpy", "torch", "torch_fused")}
            rate = r.get("bench_optim.UpdateStep.track_bandwidth", rule=rule, n_params=n, dtype="float32",
                         implementation=form)
            lines.append(f"| {rule} | {seconds(time[form])} | {cell(ratio(time['numpy'], time[form]), '{:.1f}')} "
                         f"| {cell(ratio(time['torch'], time[form]), '{:.1f}')} "
                         f"| {cell(ratio(time['torch_fused'], time[form]), '{:.1f}')} "
                         f"| {cell(ratio(time['fastgd_serial'], time['fastgd_parallel']), '{:.2f}')} "
                         f"| {cell(rate, '{:.1f}')} "
                         f"| {cell(ratio(rate, in_place_ceiling(r, rule)), '{:.0%}') if n == LARGE else '—'} |")
        lines.append("")
    return lines


def training(r):
    rate = "bench_training.Epoch.track_samples_per_second"
    lines = ["## Training throughput (Adam, 32 hidden units)", "",
             "fastgd's training samples per second, and how many times as many as each other implementation, "
             "each timed in a fit of about half a second the way its users train (scikit-learn in one `fit`). "
             "NumPy and scikit-learn in float64.", "",
             "| data set | batch | fastgd float64 | ×numpy | ×scikit-learn | ×torch float64 | fastgd float32 "
             "| ×torch float32 |", "|---|---|---|---|---|---|---|---|"]
    for dataset in bench_training.Epoch.params[0]:
        for batch_size in bench_training.BATCH_SIZES:
            # batch 32 on every set (Epoch); the other sizes on a few (EpochBatchSize, float64)
            name = rate if batch_size == 32 else rate.replace(".Epoch.", ".EpochBatchSize.")
            per_second = {(implementation, dtype): r.get(name, dataset=dataset, batch_size=batch_size, rule="adam",
                                                         dtype=dtype, implementation=implementation)
                          for implementation in ("fastgd", "numpy", "sklearn", "torch")
                          for dtype in ("float32", "float64")}
            if all(value is None for value in per_second.values()):
                continue  # a batch as large as the set: the "full" row has it

            def faster(baseline, dtype):
                return cell(ratio(per_second["fastgd", dtype], per_second[baseline, dtype]), "{:.1f}")

            lines.append(
                f"| {dataset} | {batch_size} | {cell(per_second['fastgd', 'float64'], '{:,.0f}')} "
                f"| {faster('numpy', 'float64')} | {faster('sklearn', 'float64')} | {faster('torch', 'float64')} "
                f"| {cell(per_second['fastgd', 'float32'], '{:,.0f}')} | {faster('torch', 'float32')} |")
    return lines + [""]


def convergence_name(metric, implementation):
    """The asv name of a convergence track: fastgd's in ``Convergence``, scikit-learn's in ``SklearnConvergence``."""
    cls = "Convergence" if implementation == "fastgd" else "SklearnConvergence"
    return f"bench_convergence.{cls}.track_{metric}"


def convergence(r):
    sets = list(datasets.BUNDLED)
    lines = ["## Convergence (fastgd, float64, batch 32)", "",
             "Epochs to the data set's target training loss (NaN: not within the budget), then the final training "
             "loss; scikit-learn's in brackets where it has the rule.", "",
             "| rule | " + " | ".join(f"{dataset} (target {bench_convergence.TARGETS[dataset][0]}, "
                                      f"{bench_convergence.TARGETS[dataset][1]} epochs)" for dataset in sets) + " |",
             "|---|" + "---|" * len(sets)]
    for rule in optim.OPTIMIZERS:
        cells = []
        for dataset in sets:
            epochs, final = (r.get(convergence_name(metric, "fastgd"), rule=rule, dataset=dataset,
                                   implementation="fastgd") for metric in ("epochs_to_target", "final_loss"))
            text = f"{cell(epochs, '{:.0f}', 'NaN')}, {cell(final, '{:.3g}')}"
            sklearn = [r.get(convergence_name(metric, "sklearn"), rule=rule, dataset=dataset,
                             implementation="sklearn") for metric in ("epochs_to_target", "final_loss")]
            if sklearn[1] is not None:
                text += f" ({cell(sklearn[0], '{:.0f}', 'NaN')}, {cell(sklearn[1], '{:.3g}')})"
            cells.append(text)
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return lines + [""]


def start_and_memory(r):
    lines = ["## Start-up and memory", "", "| workload | cold start | warm start |", "|---|---|---|"]
    for workload in ("adam_step", "classifier_fit"):
        lines.append(f"| {workload} | {seconds(r.get('bench_compile.ColdStart.track_cold_start', workload=workload))}"
                     f" | {seconds(r.get('bench_compile.WarmStart.track_warm_start', workload=workload))} |")
    lines += ["", "Peak resident memory of a process that trains one epoch on the large synthetic set "
              "(75,000 × 100, batch 256, Adam), imports and data included:", "",
              "| implementation | float32 | float64 |", "|---|---|---|"]
    for implementation in bench_training.FitMemory.params[0]:
        peaks = [r.get("bench_training.FitMemory.peakmem_fit", implementation=implementation, dtype=dtype)
                 for dtype in ("float32", "float64")]
        lines.append(f"| {implementation} | " + " | ".join(cell(peak and peak / 2**20, "{:.0f} MiB")
                                                         for peak in peaks) + " |")
    gemm = [r.get("bench_machine.MatmulPeak.track_gemm", dtype=dtype) for dtype in ("float32", "float64")]
    in_place = [r.get("bench_machine.InPlaceBandwidth.track_in_place_update", n_params=LARGE, arrays=arrays)
                for arrays in (1, 2, 3, 4)]
    triad = r.get("bench_machine.MemoryBandwidth.track_stream_triad")
    lines += ["", "Machine, same run: 1 to 4 arrays of 10⁷ float32 updated in place (steps' ceilings) "
              f"{', '.join(cell(rate, '{:.1f}') for rate in in_place)} GB/s; STREAM triad {cell(triad)} "
              f"GB/s (main memory); GEMM peak {cell(gemm[0], '{:.1f}')} GFLOP/s float32, "
              f"{cell(gemm[1], '{:.1f}')} GFLOP/s float64.",
              ""]
    return lines


def summary(commit, described):
    r = Results(commit)
    quick = r.most_samples == 1
    goal_lines, numbers = goals(r)
    info = r.params
    header = ["# Benchmark summary", "",
              f"`asv run --python=same` of commit `{described}` on machine `{r.machine}` ({info.get('cpu', '?')}, "
              f"{info.get('num_cpu', '?')} CPUs, {info.get('ram', '?')} bytes RAM), Python {info.get('python', '?')}; "
              f"written {datetime.date.today().isoformat()} by `benchmarks/scripts/asv_summary.py`. Every figure comes "
              "from that one run, and from asv's tracks, which time batches of calls in a running loop (step "
              "times are bytes over `UpdateStep.track_bandwidth`); the `time_` benchmarks, which time one call "
              "after a fresh setup, are in asv (`asv publish`, `asv preview`)."]
    if quick:
        header += ["", "**Quick run (`--quick`): each `time_` benchmark ran once, which proves the suite runs. The "
                   "tracks below were measured as in a full run, but on a machine shared with other work: not "
                   "figures to publish.**"]
    lines = header + [""] + goal_lines + [""] + update_steps(r) + training(r) + convergence(r) + start_and_memory(r)
    return "\n".join(lines), numbers


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run the suite (asv run --python=same) first")
    parser.add_argument("--quick", action="store_true", help="with --run: asv's --quick (time benchmarks once)")
    parser.add_argument("--bench", action="append", default=[], help="with --run: only benchmarks matching this "
                        "regular expression (repeatable)")
    parser.add_argument("--commit", default="HEAD", help="without --run: the commit whose stored results to "
                        "summarise (default HEAD)")
    parser.add_argument("--out", default=str(ROOT / "reports" / "asv_summary.md"))
    arguments = parser.parse_args()
    if arguments.run and arguments.commit != "HEAD":
        parser.error("--run measures the checkout as it is: --commit goes without it")
    commit = git("rev-parse", arguments.commit)
    described = git("describe", "--always", "--dirty") if arguments.run else git("describe", "--always", commit)
    status = run_asv(commit, arguments.quick, arguments.bench) if arguments.run else 0
    text, numbers = summary(commit, described)
    pathlib.Path(arguments.out).write_text(text + "\n")
    with open(os.path.splitext(arguments.out)[0] + ".json", "w") as raw:
        json.dump({"commit": commit, **numbers}, raw, indent=2)
    print(text)
    if status:
        print(f"\nasv run exited with {status}: some benchmarks failed (n/a above)", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
