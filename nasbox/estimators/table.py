"""`table:<column>`: look an architecture up in a tabular benchmark (no network is built)."""

from collections.abc import Hashable

import numpy as np

from nasbox.errors import NasboxError
from nasbox.estimators.base import Estimator, EstimatorContext


class TableLookup(Estimator):
    """The benchmark's recorded `column` for a cell; a cell missing from the table is an error."""

    name = "table"
    argument = "COLUMN"
    argument_hint = "a column, e.g. table:valid_acc"
    cost = "instant: a lookup in --benchmark"
    modality = None  # reads a table, not a network

    def __init__(self, context: EstimatorContext, column: str) -> None:
        super().__init__(context)
        self.benchmark = context.require_benchmark(f"table:{column}")
        if np.isnan(self.benchmark.require_column(column)).all():
            raise NasboxError(
                f"{self.benchmark.source}: column {column!r} holds no values; choose another "
                f"of: {', '.join(self.benchmark.columns)}"
            )
        # A row without a value stopped a search or score at the first lookup of it, after
        # other work: every row is checked here, before any.
        self.benchmark.require_values(column, f"table:{column}")
        self.column = column
        first = self.benchmark.archs[0]
        try:
            context.space.parse(first)
        except NasboxError:
            raise NasboxError(
                f"{self.benchmark.source}: row 1 holds {first!r}, not a {context.space.name} "
                "architecture; pass the table's --space or a table of this space"
            ) from None

    def __call__(self, arch: Hashable) -> float:
        return self.benchmark.lookup(self.context.space.format(arch), self.column)
