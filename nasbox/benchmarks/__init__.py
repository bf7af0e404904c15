"""Tabular benchmarks: measured metrics of every cell of a space, for fast, fair comparisons.

`TabularBenchmark.from_file(path)` reads nasbox's format (CSV or Parquet, an `arch` column plus
metric columns); `lookup(arch_string, column)` returns one value and raises `NasboxError` for a cell
or column that is not there. The estimator `table:<column>` wraps a lookup for search strategies.
`nasbox.benchmarks.convert` writes the format from the official NAS-Bench-201 and NATS-Bench files.
"""

from nasbox.benchmarks.table import ARCH_COLUMN, TabularBenchmark, write_table

__all__ = ["ARCH_COLUMN", "TabularBenchmark", "write_table"]
