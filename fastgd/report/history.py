"""asv's results over commits, read straight from its JSON files (format version 2).

One number per benchmark and commit: the geometric mean of the benchmark's
finite results over its parameter grid, so a benchmark with many parameters
still gives one line; divided by the value at the oldest commit.
"""

import json
from pathlib import Path

import numpy as np

__all__ = ["load_history"]

MAX_BENCHMARKS = 10


def _flatten(values):
    if isinstance(values, list):
        for value in values:
            yield from _flatten(value)
    elif isinstance(values, (int, float)) and np.isfinite(values) and values > 0:
        yield float(values)


def load_history(results_dir):
    """DataFrame (commit, commit_order, date, benchmark, value, relative); empty when there are no results."""
    import pandas as pd

    records = []
    for path in sorted(Path(results_dir).glob("*/*.json")):
        if path.name == "machine.json":
            continue
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        # files of another format, or damaged ones, are skipped rather than trusted
        if not (isinstance(content, dict) and isinstance(content.get("results"), dict)
                and isinstance(content.get("commit_hash"), str)):
            continue
        columns = content.get("result_columns", ["result"])
        where = columns.index("result") if isinstance(columns, list) and "result" in columns else 0
        date = content.get("date", 0)
        date = date if isinstance(date, (int, float)) and not isinstance(date, bool) else 0
        for benchmark, entry in content["results"].items():
            result = entry[where] if isinstance(entry, list) and len(entry) > where else entry
            values = list(_flatten(result))
            if values:
                records.append(dict(commit=content["commit_hash"], date=date, benchmark=benchmark,
                                    value=float(np.exp(np.mean(np.log(values))))))
    history = pd.DataFrame(records, columns=["commit", "date", "benchmark", "value"])
    if history.empty:
        return history.assign(commit_order=[], relative=[])
    history = history.groupby(["commit", "date", "benchmark"], as_index=False)["value"].mean()
    order = history.drop_duplicates("commit").sort_values("date")["commit"].tolist()
    history["commit_order"] = history["commit"].map({commit: index for index, commit in enumerate(order)})
    kept = history.groupby("benchmark")["commit"].nunique().sort_values(ascending=False).index[:MAX_BENCHMARKS]
    history = history[history["benchmark"].isin(kept)].sort_values(["benchmark", "commit_order"])
    history["relative"] = history["value"] / history.groupby("benchmark")["value"].transform("first")
    return history.reset_index(drop=True)
