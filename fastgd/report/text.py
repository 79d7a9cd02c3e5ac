"""The report's words: tables of text from a frame's columns, the line a section absent from the store gives, and
what the summary says of the measured throughput (speed-ups with their spread, shares of the machine's limits).

Shared by the page (:mod:`fastgd.report.build`) and its sections (:mod:`fastgd.report.sections`); it draws nothing.
"""

import math

import numpy as np

__all__ = ["positive_number", "plural", "implementation_label", "table_of", "missing_line", "threads_said",
           "throughput_lines", "training_ratio_lines", "step_ratio_lines", "step_ceiling_shares", "limit_lines"]


def positive_number(value):
    """Whether ``value`` is a number (not a bool) above zero."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0


def plural(count, word):
    """``count`` and ``word``, with an s unless the count is 1."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def implementation_label(implementation):
    """How the report names an implementation of the throughput tables (``numpy`` is "the NumPy reference")."""
    return {"numpy": "the NumPy reference", "sklearn": "scikit-learn's MLP", "torch": "PyTorch",
            "jax": "JAX + optax", "fastgd": "fastgd"}[implementation]


def table_of(frame, columns, formats=None):
    """``columns`` of ``frame`` as the page's table: {"columns", "rows"}, each cell text (``formats``: column →
    function; numbers to four significant digits, NaN as –)."""
    formats = formats or {}
    rows = []
    for record in frame[columns].to_dict("records"):
        rows.append([formats.get(column, _format)(record[column]) for column in columns])
    return {"columns": columns, "rows": rows}


def _format(value):
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def missing_line(section, how):
    """The line a section absent from the store gives: what is missing and ``how`` to make it."""
    return f"{section}: not in this store; {how}."


def threads_said(throughput, part):
    """How many threads every implementation had for ``part`` ("training" or "steps"), in a few words; '' for a
    throughput stored before it was recorded."""
    told = (throughput["machine"].get("threads") or {}).get(part) or {}
    if not told:
        return ""
    counts = {str(how).split(" ")[0] for how in told.values()}
    if len(counts) == 1 and next(iter(counts)).isdigit():
        return f"every implementation on {plural(int(next(iter(counts))), 'thread')}"
    return "threads: " + "; ".join(f"{implementation_label(implementation)} {how}"
                                   for implementation, how in told.items())


def training_ratio_lines(throughput):
    """fastgd's speed-up over each other implementation's training epoch: the median over data sets of the ratios
    whose repeats agree (:func:`fastgd.report.throughput.training_ratios`), each with its spread; the others named
    as unreliable, not quoted as a headline."""
    from fastgd.report.throughput import UNRELIABLE_SPREAD, training_ratios

    ratios = training_ratios(throughput)
    threads = threads_said(throughput, "training")
    lines = []
    for other in ("numpy", "sklearn", "torch", "jax"):
        of_other = ratios[ratios["other"] == other]
        if of_other.empty:
            continue
        held, noisy = of_other[of_other["reliable"]], of_other[~of_other["reliable"]]
        if len(held):
            each = ", ".join(f"{row.dataset} {row.ratio:.3g}x ({row.low:.3g}x to {row.high:.3g}x over "
                             f"{row.n_repeats} repeats)" for row in held.itertuples())
            lines.append(f"Training epochs: fastgd is {np.median(held['ratio']):.3g}x faster than "
                         f"{implementation_label(other)} (median over {plural(len(held), 'data set')}: {each}"
                         + (f"; {threads}" if threads else "") + ").")
        if len(noisy):
            each = ", ".join(
                f"{row.dataset} from {row.low:.3g}x to {row.high:.3g}x over {row.n_repeats} repeats"
                if math.isfinite(row.low) else f"{row.dataset} {row.ratio:.3g}x from one timing (no repeats stored)"
                for row in noisy.itertuples())
            # the threads are said here too: a reader told to measure again must know how it was measured, and a
            # report whose every ratio was noisy would otherwise say it nowhere
            lines.append(f"Unreliable, not quoted: fastgd against {implementation_label(other)} on "
                         f"{plural(len(noisy), 'data set')} ({each}" + (f"; {threads}" if threads else "")
                         + f"): repeats that disagree by more than "
                         f"{UNRELIABLE_SPREAD:g}x, or none, say the machine was busy; measure again on a quiet one.")
    return lines


def step_ratio_lines(throughput):
    """fastgd's Adam step against PyTorch's and NumPy's at the smallest and largest sizes, each ratio with the range
    its timings allow (one's first quartile over batches against the other's third, and the reverse) where stored;
    a ratio whose range spans more than the unreliable spread is named so, not quoted."""
    from fastgd.report.throughput import UNRELIABLE_SPREAD

    steps = throughput["steps"]
    adam = steps[steps["rule"] == "adam"].set_index(["parameters", "implementation"])
    threads = threads_said(throughput, "steps")
    lines = []
    for other in ("torch", "numpy"):
        if other not in set(adam.index.get_level_values("implementation")):
            continue
        quoted, noisy, slower = [], [], False
        for size in sorted({adam.index.get_level_values("parameters").min(),
                            adam.index.get_level_values("parameters").max()}):
            if (size, other) not in adam.index or (size, "fastgd") not in adam.index:
                continue
            mine, theirs = adam.loc[(size, "fastgd")], adam.loc[(size, other)]
            ratio = theirs["seconds"] / mine["seconds"]
            if "seconds_low" in adam and math.isfinite(mine.get("seconds_low", math.nan)):
                low, high = theirs["seconds_low"] / mine["seconds_high"], theirs["seconds_high"] / mine["seconds_low"]
                text = f"{ratio:.3g}x at {size:,} parameters ({low:.3g}x to {high:.3g}x over its middle timings)"
                if high <= UNRELIABLE_SPREAD * low:
                    quoted.append(text)
                    slower = slower or ratio < 1
                else:
                    noisy.append(text)
            else:
                noisy.append(f"{ratio:.3g}x at {size:,} parameters from medians alone (no spread stored)")
        if quoted:
            # a ratio below 1 is fastgd slower: the sentence then gives the ratios without calling them faster
            lead = (f"Adam step, {implementation_label(other)}'s time over fastgd's (below 1: fastgd slower): "
                    if slower else f"Adam step: fastgd is faster than {implementation_label(other)} by ")
            lines.append(lead + " and ".join(quoted) + (f"; {threads}" if threads else "") + ".")
        if noisy:
            lines.append(f"Unreliable, not quoted: fastgd's Adam step against {implementation_label(other)}, "
                         + " and ".join(noisy) + f" (timings that disagree by more than {UNRELIABLE_SPREAD:g}x, or "
                         "no spread, say the machine was busy).")
    return lines


def step_ceiling_shares(throughput):
    """Each rule's fastgd step at the largest size over the in-place reference for as many arrays, ascending
    (:func:`fastgd.report.throughput.ceiling_shares`); None without one."""
    from fastgd.report.throughput import ceiling_shares

    return ceiling_shares(throughput)


def limit_lines(throughput):
    """The steps' shares of their in-place references, where those stream from, and the matrix-multiply peaks."""
    lines = []
    steps, machine = throughput["steps"], throughput["machine"]
    share = step_ceiling_shares(throughput)
    if share is not None and not share.empty:
        largest = int(steps["parameters"].max())
        line = (f"Update steps at {largest:,} float32 parameters move data at {share.iloc[0]:.0%} "
                f"({share.index[0]}) to {share.iloc[-1]:.0%} ({share.index[-1]}) of the in-place "
                "read-modify-write bandwidth for as many arrays (the steps' own access pattern, best of repeats, "
                "all cores, same run)")
        if share.iloc[-1] > 1:
            # a step cannot move data faster than the reference for its own access pattern: the reference was
            # measured low (a busy machine), so the shares bound nothing
            line += ("; a share above 100% means the reference was measured below what a step reached (a busy "
                     "machine): these shares are not limits; measure again on a quiet one")
        references = machine.get("in_place_bytes_per_second", {})
        cache = machine.get("last_level_cache_bytes")
        if references and positive_number(cache):
            arrays = sorted(int(key) for key in references)
            # the working set of a reference: its arrays and the vector they are updated from
            sets = [(n + 1) * 4 * largest for n in arrays]
            if max(sets) <= cache:
                where = (f"every working set ({sets[0] / 1e6:.0f} to {sets[-1] / 1e6:.0f} MB) fits the "
                         f"{cache / 2 ** 20:.0f} MiB last-level cache, so steps and references stream from the "
                         "cache, not from main memory")
            elif min(sets) > cache:
                where = f"every working set exceeds the {cache / 2 ** 20:.0f} MiB last-level cache: main memory"
            else:
                where = (f"working sets of {sets[0] / 1e6:.0f} to {sets[-1] / 1e6:.0f} MB, about the "
                         f"{cache / 2 ** 20:.0f} MiB last-level cache: partly from the cache")
            line += f"; {where}"
        rates = ", ".join(f"{int(key)} array{'s' if int(key) > 1 else ''} {value / 1e9:.0f} GB/s"
                          for key, value in sorted(references.items(), key=lambda item: int(item[0])))
        lines.append(f"{line}. The references: {rates}; STREAM's triad, main memory's bandwidth and not a step's "
                     f"limit, {machine['triad_bytes_per_second'] / 1e9:.0f} GB/s.")
    peaks = [f"{dtype} {machine[f'gemm_flops_{dtype}'] / 1e9:.0f}" for dtype in ("float64", "float32")
             if positive_number(machine.get(f"gemm_flops_{dtype}"))]
    at_networks = machine.get("gemm_flops_at_network_sizes") or {}
    if peaks:
        line = f"Matrix products: the BLAS's peak at 2048² is {' and '.join(peaks)} GFLOP/s"
        shown = [f"{label} {dtype} {rate / 1e9:.1f}" for dtype, networks in sorted(at_networks.items()) if isinstance(
                 networks, dict) for label, rate in sorted(networks.items()) if positive_number(rate)]
        if shown:
            line += f"; at the training networks' own products (layer sizes/batch, GFLOP/s): {', '.join(shown)}"
        lines.append(line + ".")
    return lines


def throughput_lines(throughput):
    """What the summary says of ``throughput`` (:func:`fastgd.baselines.throughput.measure`'s dict): the training
    speed-ups, the Adam step's, and the steps' and products' shares of the machine's limits."""
    return training_ratio_lines(throughput) + step_ratio_lines(throughput) + limit_lines(throughput)
