"""`table:<column>`: look an architecture up in a tabular benchmark (no network is built)."""

from collections.abc import Hashable

from nasbox.estimators.base import Estimator, EstimatorContext


class TableLookup(Estimator):
    """The benchmark's recorded `column` for a cell; a cell missing from the table is an error."""

    name = "table"

    def __init__(self, context: EstimatorContext, column: str) -> None:
        super().__init__(context)
        self.benchmark = context.require_benchmark(f"table:{column}")
        self.benchmark.require_column(column)
        self.column = column

    def __call__(self, arch: Hashable) -> float:
        return self.benchmark.lookup(self.context.space.format(arch), self.column)
