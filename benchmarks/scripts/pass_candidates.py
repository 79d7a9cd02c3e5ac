"""Every pass an MLP epoch can take, forced one by one, against the one fastgd chooses by itself (issue 29).

    python benchmarks/scripts/pass_candidates.py [--rounds 5] [--block 1.0] [--out reports/pass_candidates.md]

Issue 29's goal: at any size, the chosen candidate within 5% of the fastest candidate measured in the same run.
For each float32 network of ``common.NETWORKS`` (100-256-256-10/64, 256-512-512-10/256, 256-1024-1024-10/1024;
Adam, 20,000 synthetic rows), fastgd's epoch is timed in a fresh process per measurement
(``network_speed.py``'s worker: the trainer built and warmed, then about ``--block`` seconds of epochs) under
each setting of ``FASTGD_PASS``: ``auto`` (what a user gets: the cached calibration or the fixed bounds, adapting
to the load) and every pass that can run here, forced (``FASTGD_ADAPT=0``). The settings take turns round by
round, each figure is the median over rounds, and the ratio is the chosen epoch's over the fastest forced pass's.
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

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks import common  # noqa: E402
from fastgd import _config, threads  # noqa: E402
from fastgd.machine import cpu_model  # noqa: E402

NETWORK_SPEED = ROOT / "benchmarks" / "scripts" / "network_speed.py"
LABELS = [label for label, network in common.NETWORKS.items() if network.dtype == "float32"]


def runnable_passes():
    """The passes FASTGD_PASS may force here (``whole_batch_mkl`` only where MKL loads)."""
    from fastgd.kernels import mkl

    return [name for name in _config.PASSES if name != "auto" and (name != "whole_batch_mkl" or mkl.available())]


def epoch_seconds(label, setting, block, data_dir):
    """``(seconds per epoch, the pass that ran)`` of fastgd under ``FASTGD_PASS=setting``, in a fresh process."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("FASTGD_")
                   or key in ("FASTGD_GENERATED_DIR", "FASTGD_NUM_THREADS")}
    environment.update(FASTGD_PASS=setting, PYTHONWARNINGS="ignore")
    if setting != "auto":
        environment["FASTGD_ADAPT"] = "0"
    output = subprocess.run([sys.executable, str(NETWORK_SPEED), "--worker", label, "fastgd", str(block), data_dir],
                            check=True, capture_output=True, text=True, env=environment)
    seconds, ran = json.loads(output.stdout.strip().splitlines()[-1])
    return seconds, ran


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block", type=float, default=1.0, help="seconds each setting trains per round")
    parser.add_argument("--out", help="write a markdown summary here")
    arguments = parser.parse_args()
    settings = ["auto", *runnable_passes()]
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as data_dir:
        for label in LABELS:
            common.load_network_data(label, data_dir)
            times = {setting: [] for setting in settings}
            chosen = set()
            for round_index in range(arguments.rounds):
                turn = round_index % len(settings)
                for setting in settings[turn:] + settings[:turn]:
                    seconds, ran = epoch_seconds(label, setting, arguments.block, data_dir)
                    times[setting].append(seconds)
                    if setting == "auto":
                        chosen.add(ran)
            medians = {setting: float(np.median(values)) for setting, values in times.items()}
            fastest = min((setting for setting in settings if setting != "auto"), key=medians.get)
            rows.append((label, medians, times, sorted(chosen), fastest))
            print(f"{label}: " + ", ".join(f"{setting} {medians[setting] * 1e3:.1f} ms" for setting in settings)
                  + f"; auto ran {sorted(chosen)}", file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    lines = [
        "# Each pass forced, against the pass fastgd chooses (issue 29)",
        "",
        f"One run of `benchmarks/scripts/pass_candidates.py --rounds {arguments.rounds} --block {arguments.block}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. CPU: {cpu_model()}, {os.cpu_count()} cores, "
        f"{threads.describe()}; load average (1, 5, 15 min) {', '.join(f'{v:.2f}' for v in load_before)} before, "
        f"{', '.join(f'{v:.2f}' for v in load_after)} after. Float32, Adam; median seconds per epoch over the "
        "rounds, each measurement a fresh process; `auto` is what a user gets (FASTGD_PASS=auto, adapting), the "
        "others forced (FASTGD_ADAPT=0). The goal: auto within 5% of the fastest forced pass.",
        "",
        "| network/batch | " + " | ".join(settings) + " | auto ran | auto / fastest | within 5% |",
        "|---|" + "---|" * (len(settings) + 3),
    ]
    for label, medians, times, chosen, fastest in rows:
        ratio = medians["auto"] / medians[fastest]
        cells = [f"{medians[setting] * 1e3:.1f} ms" + (" (fastest)" if setting == fastest else "")
                 for setting in settings]
        lines.append(f"| {label} | {' | '.join(cells)} | {', '.join(chosen)} | {ratio:.3f} | "
                     f"{'yes' if ratio <= 1.05 else 'no'} |")
    lines += ["", "Each round's seconds per epoch (ms), in the order of the columns above:", ""]
    for label, medians, times, chosen, fastest in rows:
        lines.append(f"- {label}: " + "; ".join(
            f"{setting} " + ", ".join(f"{value * 1e3:.1f}" for value in times[setting]) for setting in settings))
    common.print_and_save(lines, {label: {"seconds": times, "auto_ran": chosen, "fastest": fastest}
                                  for label, _, times, chosen, fastest in rows}, arguments.out)


if __name__ == "__main__":
    main()
