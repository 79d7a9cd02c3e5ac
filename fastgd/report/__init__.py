"""Comparison reports: seaborn figures and tables in one HTML page that opens offline.

    fastgd compare --out reports/latest            # sweep + throughput + report, the main job
    fastgd report --store results.db --out DIR     # a report from an existing sweep store

See :func:`fastgd.report.build.build_report`. Needs the ``report`` extra.
"""

from fastgd.report.build import build_report, load_throughput, save_throughput

__all__ = ["build_report", "load_throughput", "save_throughput"]
