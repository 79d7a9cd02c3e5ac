"""Loading and preparing a table: ``fastgd.datasets.read`` against ``pandas.read_csv`` alone, in one run.

    python benchmarks/scripts/dataset_loading.py [--rows 1000000] [--features 100] [--repeats 3]
                                                 [--out reports/dataset_loading.md]

The CSV is made once and kept in the temporary directory (its name says its
size): ``make_classification`` rows of ``--features`` numeric columns written
with six significant digits, and a ``label`` column of 10 classes. Each repeat
times, in turn:

* ``pandas.read_csv(path)`` alone: the goal's yardstick;
* ``fastgd.datasets.read(path, target="label")`` from a cold cache: the same
  read, then the checks (every column finite, the labels), the stratified split,
  the training rows' mean and deviation, and the standardised rows written into
  the read-only arrays (a table of numbers alone skips the ``ColumnTransformer``:
  ``fastgd.kernels.tables``);
* the data set's ``content_hash`` (SHA-256 of the prepared arrays), computed when
  first asked for.

Medians over the repeats, and each repeat's own ratio (the machine may be
shared: a ratio taken within one repeat moves less than either time); the goal:
load and prepare within 2x ``read_csv``.
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from fastgd import datasets  # noqa: E402

GOAL_RATIO = 2.0


def table_path(n_rows, n_features):
    """The benchmark's CSV, written the first time it is asked for."""
    import pandas as pd
    from sklearn.datasets import make_classification

    path = pathlib.Path(tempfile.gettempdir()) / "fastgd-benchmark-data" / f"table-{n_rows}x{n_features}.csv"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        X, y = make_classification(n_samples=n_rows, n_features=n_features, n_informative=n_features // 2,
                                   n_classes=10, random_state=0)
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(n_features)])
        frame["label"] = y
        partial = path.with_suffix(".partial")
        frame.to_csv(partial, index=False, float_format="%.6g")
        os.replace(partial, path)  # a run killed while writing leaves no half table behind
    return path


def measure(path, repeats):
    import pandas as pd

    read_seconds, prepare_seconds, hash_seconds, data = [], [], [], None
    for _ in range(repeats):
        start = time.perf_counter()
        frame = pd.read_csv(path)
        read_seconds.append(time.perf_counter() - start)
        del frame
        datasets._make.cache_clear()  # a cold read, not the cached Dataset
        data = None  # and the last one freed first: one table in memory at a time
        start = time.perf_counter()
        data = datasets.read(path, target="label")
        prepare_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        data.content_hash
        hash_seconds.append(time.perf_counter() - start)
    ratios = [prepare / read for prepare, read in zip(prepare_seconds, read_seconds)]
    return (float(np.median(read_seconds)), float(np.median(prepare_seconds)), float(np.median(hash_seconds)),
            ratios, data)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="reports/dataset_loading.md")
    arguments = parser.parse_args(argv)

    path = table_path(arguments.rows, arguments.features)
    read, prepare, digest, ratios, data = measure(path, arguments.repeats)
    ratio = prepare / read
    lines = [
        "# Loading and preparing a table",
        "",
        f"`benchmarks/scripts/dataset_loading.py`: a {arguments.rows:,} x {arguments.features} CSV of numbers "
        f"and a 10-class label ({path.stat().st_size / 2 ** 20:,.0f} MiB), medians of {arguments.repeats} repeats, "
        f"{os.cpu_count()} cores.",
        "",
        "| step | seconds | against read_csv |",
        "|---|---:|---:|",
        f"| `pandas.read_csv(path)` alone | {read:.2f} | 1.00x |",
        f"| `fastgd.datasets.read(path, target=\"label\")`: read, check, split, standardise | {prepare:.2f} | "
        f"{ratio:.2f}x |",
        f"| `content_hash` (when first asked for) | {digest:.2f} | {digest / read:.2f}x |",
        "",
        f"Goal: load and prepare within {GOAL_RATIO:g}x `read_csv` alone: "
        f"{'met' if ratio <= GOAL_RATIO else 'NOT met'} ({ratio:.2f}x; {(prepare + digest) / read:.2f}x with the "
        f"hash). Each repeat's ratio: {', '.join(f'{each:.2f}x' for each in ratios)}. Prepared: {data!r}.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = pathlib.Path(arguments.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
