"""Check the honest limit: no rule's update step moves data faster than its own access pattern alone.

    python benchmarks/scripts/step_ceiling_check.py [--parameters 10000000] [--limit 1.05]

Measures, as the comparison report does (``fastgd.baselines.throughput.measure``, the steps and
the references alone: no training), every rule's fastgd step at ``--parameters`` float32
parameters (median time) and the in-place read-modify-write bandwidth of as many arrays over
as many elements (best time, all cores, before and after the steps), and prints each rule's
share of it beside the STREAM triad's. Exits 1 when a share passes ``--limit``: the reference
would then be wrong, not the step fast. A measurement, not a unit test: run it on a quiet
machine (a loaded one lowers the shares, never raises them past the reference measured
around them).
"""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from fastgd.baselines.throughput import measure  # noqa: E402
from fastgd.report.throughput import ceiling_shares  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parameters", type=int, default=10_000_000)
    parser.add_argument("--limit", type=float, default=1.05)
    parser.add_argument("--budget", type=float, default=0.2, help="seconds of timing per measurement")
    arguments = parser.parse_args()

    throughput = measure(dataset_names=(), parameter_counts=(arguments.parameters,),
                         budget_seconds=arguments.budget, progress=lambda message: print(message, file=sys.stderr))
    machine, steps = throughput["machine"], throughput["steps"]
    shares = ceiling_shares(throughput)
    fastgd = steps[steps["implementation"] == "fastgd"].set_index("rule")
    triad = machine["triad_bytes_per_second"]
    print(f"| rule | arrays | GB/s | share of in-place | share of triad ({triad / 1e9:.1f} GB/s) |")
    print("|---|---|---|---|---|")
    for rule, share in shares.items():
        rate = fastgd.loc[rule, "bytes_per_second"]
        print(f"| {rule} | {fastgd.loc[rule, 'arrays_written']} | {rate / 1e9:.1f} | {share:.0%} "
              f"| {rate / triad:.0%} |")
    references = ", ".join(f"{arrays} arrays {rate / 1e9:.1f}" for arrays, rate in
                           machine["in_place_bytes_per_second"].items())
    print(f"\nin-place references at {arguments.parameters:,} float32 (GB/s): {references}")
    unchecked = sorted(set(fastgd.index) - set(shares.index))
    if unchecked:
        print(f"no reference (more arrays than the kernel streams): {', '.join(unchecked)}")
    over = shares[shares > arguments.limit]
    if not over.empty:
        print(f"FAIL: shares above {arguments.limit}: "
              + ", ".join(f"{rule} {share:.2f}" for rule, share in over.items()))
        return 1
    print(f"OK: every share at most {arguments.limit} (largest {shares.max():.2f}, {shares.idxmax()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
