"""Where a cold first fit's compile time goes: each compiled function, its signatures, and its seconds split
into Numba's type inference, lowering and LLVM's optimisation, linking and machine-code generation (issue 26).

    python benchmarks/scripts/compile_profile.py [--estimator digits_cnn] [--top 25]

Runs, in a fresh interpreter with an empty Numba cache and generated-code directory (``NUMBA_CACHE_DIR``,
``FASTGD_GENERATED_DIR`` in a temporary directory), the first fit and first predict of
``benchmarks/scripts/cnn_first_fit_memory.py``'s estimator, with Numba's compiler wrapped in timers:
``Dispatcher.compile`` and ``CFunc.compile`` name what is compiling; inside them, the type inference pass,
Numba's inlining of ``inline="always"`` functions and overloads, its other passes, the lowering pass, LLVM's
function passes (at lowering), the final module's linking of its callees' modules (each callee's whole
optimised module is linked into its caller, then optimised and compiled to machine code again: ``finalize``),
the final module's optimisation, its machine code, and the on-disk cache's loads and saves. Each timer's own
seconds are its time less that of the timers inside it, charged to the innermost function compiling; all are
CPU seconds of the process (``time.process_time``: a compile runs on one thread), so that a busy machine's
waits are left out. A second table lists, for each library finalised, the callees' modules it linked in: how
many times each function's code is optimised and emitted again. Only timing: no result changes.
"""

import argparse
import collections
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "scripts"))

from cnn_first_fit_memory import ESTIMATORS  # noqa: E402

CATEGORIES = ("typeinfer", "inlining", "other passes", "lowering", "llvm_function_passes", "link", "llvm_module_opt",
              "codegen", "cache_load", "cache_save", "other")
# Numba's passes by name: type inference, the inlining of inline="always" functions and overloads, the rest
PASS_CATEGORIES = {"nopython_type_inference": "typeinfer", "inline_inlinables": "inlining",
                   "inline_overloads": "inlining", "native_lowering": "lowering", "native_parfor_lowering": "lowering"}


def install():
    """Wrap Numba's compiler in timers; return (per-function seconds by category, signatures, links)."""
    from numba.core import caching, codegen, compiler_machinery, dispatcher
    from numba.core.ccallback import CFunc

    seconds = collections.defaultdict(lambda: collections.defaultdict(float))
    signatures = collections.defaultdict(list)
    links = []
    stack = []  # [name, category, child seconds]

    def current_name():
        for name, category, _ in reversed(stack):
            if category == "function":
                return name
        return "(outside any compile)"

    def timed(category, function, name_of=None):
        def wrapper(*args, **kwargs):
            name = name_of(*args, **kwargs) if name_of else None
            stack.append([name, category, 0.0])
            started = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.process_time() - started
                frame = stack.pop()
                owner = frame[0] if category == "function" else current_name()
                seconds[owner]["other" if category == "function" else category] += spent - frame[2]
                if stack:
                    stack[-1][2] += spent
        return wrapper

    def dispatcher_name(self, sig):
        name = f"{self.py_func.__module__}.{self.py_func.__qualname__}"
        signatures[name].append(str(sig))
        return name

    def cfunc_name(self):
        name = f"cfunc {self._pyfunc.__module__}.{self._pyfunc.__qualname__}"
        signatures[name].append(str(self._sig))
        return name

    original_finalize = codegen.CPUCodeLibrary.finalize

    def finalize(self):
        names = []
        for library in self._linking_libraries:
            if library.name not in names:
                names.append(library.name)
        links.append((self.name, names))
        return original_finalize(self)

    dispatcher.Dispatcher.compile = timed("function", dispatcher.Dispatcher.compile, dispatcher_name)
    CFunc.compile = timed("function", CFunc.compile, cfunc_name)
    run_pass = compiler_machinery.PassManager._runPass

    def run_named_pass(self, index, compiler_pass, state):
        return timed("pass " + compiler_pass.name(), run_pass)(self, index, compiler_pass, state)

    compiler_machinery.PassManager._runPass = run_named_pass
    codegen.CPUCodeLibrary._optimize_functions = timed("llvm_function_passes",
                                                       codegen.CPUCodeLibrary._optimize_functions)
    codegen.CPUCodeLibrary.finalize = timed("link", finalize)
    codegen.CPUCodeLibrary._optimize_final_module = timed("llvm_module_opt",
                                                          codegen.CPUCodeLibrary._optimize_final_module)
    codegen.JITCodeLibrary._finalize_specific = timed("codegen", codegen.JITCodeLibrary._finalize_specific)
    caching.Cache.load_overload = timed("cache_load", caching.Cache.load_overload)
    caching.Cache.save_overload = timed("cache_save", caching.Cache.save_overload)
    return seconds, signatures, links


def worker(estimator):
    """In a fresh process: the first fit and predict of ``ESTIMATORS[estimator]`` with the timers on; print JSON."""
    import warnings

    warnings.simplefilter("ignore")
    seconds, signatures, links = install()
    from sklearn.datasets import load_digits

    from fastgd import MLPClassifier, NetworkClassifier  # noqa: F401 (named by ESTIMATORS' code)

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    phases = {}
    model = eval(ESTIMATORS[estimator])  # noqa: S307 (this script's own table)
    started, cpu = time.perf_counter(), time.process_time()
    model.fit(X, y)
    phases["fit"], phases["fit cpu"] = time.perf_counter() - started, time.process_time() - cpu
    fit_seconds = {name: dict(row) for name, row in seconds.items()}
    started, cpu = time.perf_counter(), time.process_time()
    model.predict(X)
    phases["predict"], phases["predict cpu"] = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"phases": phases, "fit": fit_seconds,
                      "all": {name: dict(row) for name, row in seconds.items()},
                      "signatures": signatures, "links": links}))


def _by_category(row):
    """A function's seconds by :data:`CATEGORIES` (its Numba passes' by name gathered)."""
    grouped = collections.Counter()
    for name, value in row.items():
        grouped[PASS_CATEGORIES.get(name[5:], "other passes") if name.startswith("pass ") else name] += value
    return grouped


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimator", default="digits_cnn", choices=sorted(ESTIMATORS))
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        sys.path.insert(0, str(ROOT))
        return worker(arguments.estimator)
    with tempfile.TemporaryDirectory() as cache:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("FASTGD_")}
        environment.update(NUMBA_CACHE_DIR=os.path.join(cache, "numba"),
                           FASTGD_GENERATED_DIR=os.path.join(cache, "generated"), PYTHONWARNINGS="ignore",
                           PYTHONPATH=str(ROOT))
        result = subprocess.run([sys.executable, __file__, "--worker", "--estimator", arguments.estimator],
                                env=environment, capture_output=True, text=True, check=False, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"the profiled fit failed:\n{result.stderr[-3000:]}")
    data = json.loads(result.stdout.strip().splitlines()[-1])
    if arguments.json:
        pathlib.Path(arguments.json).write_text(json.dumps(data, indent=1))
    phases = data["phases"]
    print(f"load {', '.join(f'{value:.2f}' for value in os.getloadavg())}; fit {phases['fit']:.2f} s "
          f"({phases['fit cpu']:.2f} s of CPU), first predict {phases['predict']:.2f} s ({phases['predict cpu']:.2f} s "
          "of CPU)")
    for phase in ("fit", "all"):
        rows = {name: _by_category(row) for name, row in data[phase].items()}
        total = collections.Counter()
        for row in rows.values():
            total.update(row)
        print(f"\n## {'the fit' if phase == 'fit' else 'the fit and the first predict'}: "
              f"{sum(total.values()):.2f} s in the compiler; by category: "
              + ", ".join(f"{name} {total[name]:.2f}" for name in CATEGORIES if total[name] >= 0.005))
        print(f"{'function':<62} {'sigs':>4} {'total':>6} " + " ".join(f"{name[:9]:>9}" for name in CATEGORIES))
        ordered = sorted(rows.items(), key=lambda item: -sum(item[1].values()))
        for name, row in ordered[:arguments.top]:
            print(f"{name[-62:]:<62} {len(set(data['signatures'].get(name, []))):>4} {sum(row.values()):>6.2f} "
                  + " ".join(f"{row.get(category, 0.0):>9.2f}" for category in CATEGORIES))
    passes = collections.Counter()
    for row in data["all"].values():
        passes.update({name[5:]: value for name, value in row.items() if name.startswith("pass ")})
    print("\nNumba's passes, all functions: "
          + ", ".join(f"{name} {value:.2f}" for name, value in passes.most_common(12)))
    counts = collections.Counter(name for _, names in data["links"] for name in names)
    print("\n## libraries linked into others (each time: optimised and compiled again in its caller)")
    for library, names in data["links"]:
        if names:
            print(f"{library[-60:]:<60} <- {', '.join(sorted(n.rsplit('.', 1)[-1] for n in names))}")
    print("\ntimes linked: " + ", ".join(f"{name.rsplit('.', 1)[-1]} {count}" for name, count in counts.most_common()))
    print("\nsignatures of functions compiled more than once: " + json.dumps(
        {name: sorted(set(sigs)) for name, sigs in data["signatures"].items() if len(set(sigs)) > 1}, indent=1))


if __name__ == "__main__":
    main()
