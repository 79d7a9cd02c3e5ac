"""The ``fastgd`` command.

    fastgd info                      versions, CPU, Numba threading layer and cache, CUDA
    fastgd sweep [CONFIG] --store results.db [--preset quick|default|full] [--jobs N] [--scheduler ADDRESS]

``fastgd <command> --help`` describes each. Bad input gives one line on stderr
and exit status 2; nothing runs before the input has been checked.
"""

import argparse
import os
import sys

__all__ = ["main"]


class CommandError(Exception):
    """A problem with the user's input: reported as one line, exit status 2."""


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def command_info(arguments):
    import numba
    import numpy as np

    import fastgd
    from fastgd import _config
    from fastgd.sweep.runner import provenance

    facts = provenance()
    cpu_features = numba.config.CPU_FEATURES or "detected by LLVM at compile time"
    cache_dir = numba.config.CACHE_DIR or "next to each module (__pycache__)"
    lines = [
        f"fastgd {fastgd.__version__} (git {facts['git_commit'] or 'unknown'})",
        f"python {facts['python']}, numpy {np.__version__}, numba {numba.__version__}, "
        f"scikit-learn {facts['scikit-learn']}",
        f"cpu: {facts['cpu']}, {facts['cpu_count']} cores; features: {cpu_features}",
        f"llvm target: {_llvm_host()}",
        f"numba threading layer: {facts['threading_layer']}, threads: {facts['numba_threads']}",
        f"numba cache: {'on' if _config.CACHE else 'off'}, directory: {cache_dir}",
        f"fastmath: {_config.FASTMATH}, parallel threshold: {_config.PARALLEL_THRESHOLD} parameters",
        f"cuda: {_cuda_status()}",
    ]
    print("\n".join(lines))


def _llvm_host():
    import llvmlite.binding as llvm

    return f"{llvm.get_process_triple()} {llvm.get_host_cpu_name()}"


def _cuda_status():
    try:
        from fastgd import cuda
    except ImportError:
        return "unavailable (fastgd.cuda missing)"
    try:
        return cuda.describe()
    except AttributeError:
        return "available" if cuda.is_available() else "unavailable"


def command_sweep(arguments):
    from fastgd.sweep import SweepConfigError, load_config, load_preset, run_sweep

    if arguments.config and arguments.preset:
        raise CommandError("give a CONFIG file or --preset, not both")
    try:
        config = load_config(arguments.config) if arguments.config else load_preset(arguments.preset or "default")
    except SweepConfigError as error:
        raise CommandError(str(error)) from None
    store_dir = os.path.dirname(os.path.abspath(arguments.store))
    if not os.path.isdir(store_dir):
        raise CommandError(f"the directory of --store does not exist: {store_dir}")
    if arguments.scheduler and arguments.jobs:
        raise CommandError("--jobs is for local runs; with --scheduler the cluster's workers run the sweep")
    outcome = run_sweep(config, arguments.store, jobs=arguments.jobs, scheduler=arguments.scheduler,
                        batched=not arguments.one_at_a_time, retry_failed=arguments.retry_failed,
                        progress=not arguments.quiet)
    print(f"{config.name}: {outcome.total} runs, {outcome.skipped} already stored, {outcome.stored} new "
          f"({outcome.diverged} diverged, {outcome.failed} failed) in {outcome.seconds:.1f} s -> {arguments.store}")


def build_parser():
    parser = argparse.ArgumentParser(prog="fastgd", description="Gradient-descent optimizers compiled with Numba: "
                                     "sweeps, comparisons and reports.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    info = commands.add_parser("info", help="versions, CPU features, Numba threading layer and cache, CUDA",
                               description="Print what fastgd runs on.")
    info.set_defaults(handler=command_info)

    sweep = commands.add_parser(
        "sweep", help="train every rule over data sets, learning rates and seeds into a SQLite store",
        description="Run a sweep (a TOML CONFIG or a preset) into a SQLite store. Runs already in the store are "
                    "skipped, so running the same sweep again resumes it.")
    sweep.add_argument("config", nargs="?", help="sweep configuration (TOML); see fastgd.sweep.config")
    sweep.add_argument("--preset", choices=["quick", "default", "full"],
                       help="a configuration shipped with fastgd (default: default)")
    sweep.add_argument("--store", required=True, help="SQLite file to write (created if missing)")
    sweep.add_argument("--jobs", type=_positive_int, help="local worker processes (default: all cores)")
    sweep.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on an existing Dask cluster, e.g. tcp://127.0.0.1:8786")
    sweep.add_argument("--one-at-a-time", action="store_true",
                       help="train runs one by one instead of many in one compiled call")
    sweep.add_argument("--retry-failed", action="store_true", help="run again the runs stored as failed")
    sweep.add_argument("--quiet", action="store_true", help="no progress output")
    sweep.set_defaults(handler=command_sweep)
    return parser


def main(argv=None):
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        arguments.handler(arguments)
    except CommandError as error:
        print(f"fastgd {arguments.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastgd {arguments.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
