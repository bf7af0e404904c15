"""A tabular benchmark: every cell of a space with its measured metrics, looked up in microseconds.

nasbox's own format is a CSV or Parquet file with an `arch` column (the space's cell string) and
any number of numeric metric columns, e.g. `../shared/data/nb201-cifar10.csv`:

    index,arch,params_m,test_acc,valid_acc
    0,|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|...|,0.129306,85.8633,81.9827

Usage:

    bench = TabularBenchmark.from_file("../shared/data/nb201-cifar10.csv")
    bench.columns                      # ('index', 'params_m', 'test_acc', 'valid_acc')
    bench.archs                        # every cell string, in file order
    bench.lookup(cell_string, "test_acc")
"""

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nasbox.checks import check_path, delimiter_hint
from nasbox.errors import NasboxError, error_reason

if TYPE_CHECKING:  # pandas is imported where used: at the top it adds 0.4 s to every command
    import pandas as pd

ARCH_COLUMN = "arch"


class TabularBenchmark:
    """Metric columns indexed by architecture string; a missing cell or value is an error."""

    def __init__(self, frame: "pd.DataFrame", source: str = "table") -> None:
        import pandas as pd

        self.source = source
        if ARCH_COLUMN not in frame.columns:
            found = ", ".join(map(str, frame.columns))
            raise NasboxError(
                f"{source}: no {ARCH_COLUMN!r} column (found: {found}); a benchmark table needs "
                f"an {ARCH_COLUMN!r} column plus numeric metric columns"
                + delimiter_hint(list(frame.columns))
            )
        if len(frame.columns) == 1:  # every lookup would fail naming no column to choose instead
            raise NasboxError(
                f"{source}: only an {ARCH_COLUMN!r} column; a benchmark table needs numeric metric "
                "columns beside it"
            )
        column = frame[ARCH_COLUMN]
        # An empty cell reads as NaN, which str() made the architecture 'nan': two empty rows
        # were reported as a cell called nan appearing twice.
        empty = column.isna().to_numpy() | (column.astype(str).str.strip() == "").to_numpy()
        if empty.any():
            rows = np.flatnonzero(empty)
            more = f" ({len(rows):,} rows have none)" if len(rows) > 1 else ""
            raise NasboxError(
                f"{source}: row {rows[0] + 1} has an empty {ARCH_COLUMN!r}{more}; give each row "
                "its cell string or delete the row"
            )
        archs = column.astype(str).str.strip()
        duplicated = archs[archs.duplicated()]
        if len(duplicated):
            raise NasboxError(
                f"{source}: architecture {duplicated.iloc[0]!r} appears more than once; "
                "each cell must have exactly one row"
            )
        self._archs: tuple[str, ...] = tuple(archs)
        self._row = {arch: row for row, arch in enumerate(self._archs)}
        self._values: dict[str, np.ndarray] = {}
        for column in frame.columns:
            if column == ARCH_COLUMN:
                continue
            values = pd.to_numeric(frame[column], errors="coerce")
            bad = values.isna() & frame[column].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise NasboxError(
                    f"{source}: column {column!r} is not numeric (row {row + 1} holds "
                    f"{frame[column].iloc[row]!r}); metric columns must hold numbers"
                )
            self._values[str(column)] = values.to_numpy(dtype=np.float64)

    @classmethod
    def from_file(cls, path: str | Path) -> "TabularBenchmark":
        """Read a `.csv` or `.parquet` table written in nasbox's format."""
        import pandas as pd

        path = check_path(path, "TabularBenchmark.from_file")
        if not path.is_file():
            raise NasboxError(f"{path}: file not found (expected a CSV or Parquet benchmark table)")
        suffix = path.suffix.lower()
        try:
            if suffix == ".csv":
                frame = pd.read_csv(path)
            elif suffix in {".parquet", ".pq"}:
                frame = pd.read_parquet(path)
            else:
                raise NasboxError(
                    f"{path}: unknown table format {suffix!r}; use .csv or .parquet "
                    "(convert official NAS-Bench-201/NATS-Bench files with `nasbox bench convert`)"
                )
        except NasboxError:
            raise
        except Exception as err:  # pandas/pyarrow raise many types for a corrupt file
            reason = error_reason(err)
            raise NasboxError(f"{path}: cannot read benchmark table ({reason})") from None
        return cls(frame, source=str(path))

    @property
    def archs(self) -> tuple[str, ...]:
        """Every architecture string, in the table's row order."""
        return self._archs

    @property
    def columns(self) -> tuple[str, ...]:
        """The metric columns (everything but `arch`)."""
        return tuple(self._values)

    def __len__(self) -> int:
        return len(self._archs)

    def __contains__(self, arch: str) -> bool:
        return arch in self._row

    def require_column(self, column: str) -> np.ndarray:
        """All values of `column` in row order; a clear error names the columns there are."""
        try:
            return self._values[column]
        except KeyError:
            raise NasboxError(
                f"{self.source}: no column {column!r}; choose one of: {', '.join(self.columns)}"
            ) from None

    def require_values(self, column: str, reader: str) -> np.ndarray:
        """`column`'s values, refused naming the first missing or infinite one.

        `reader` may look up any cell: a missing value would stop it midway and an infinite one
        would rank its cell best (or never), so the whole column is checked before the first
        lookup.
        """
        values = self.require_column(column)
        for bad, problem, rows_are, fix in (
            (np.isnan(values), "no", "have none", "fill them in"),
            (np.isinf(values), "an infinite", "have one", "make them finite"),
        ):
            found = np.flatnonzero(bad)
            if found.size:
                row = int(found[0])
                raise NasboxError(
                    f"{self.source}: row {row + 1} ({self._archs[row]}) has {problem} {column!r} "
                    f"value ({found.size:,} of {len(self):,} rows {rows_are}); {reader} may look "
                    f"up any cell, so {fix} or choose another column"
                )
        return values

    def lookup(self, arch: str, column: str) -> float:
        """The value of `column` for the cell string `arch`."""
        if not isinstance(arch, str):  # a parsed cell was called "not in the table"
            raise NasboxError(
                f"{self.source}: lookup takes a cell string, got {type(arch).__name__}: pass "
                "space.format(arch)"
            )
        values = self.require_column(column)
        row = self._row.get(arch)
        if row is None:
            raise NasboxError(
                f"{self.source}: architecture {arch!r} is not in the table "
                f"({len(self)} cells); is it the right benchmark for this space?"
            )
        value = float(values[row])
        if np.isnan(value):
            raise NasboxError(f"{self.source}: architecture {arch!r} has no {column!r} value")
        return value

    def lookup_many(self, archs: Iterable[str], column: str) -> np.ndarray:
        return np.array([self.lookup(arch, column) for arch in archs], dtype=np.float64)

    def best(self, column: str) -> tuple[str, float]:
        """The cell with the highest `column` value (ties to the first row) and that value."""
        values = self.require_column(column)
        row = int(np.nanargmax(values))
        return self._archs[row], float(values[row])


def check_table_path(path: str | Path) -> Path:
    """A table file name nasbox can write: the suffix picks CSV or Parquet."""
    path = Path(path)
    if path.suffix.lower() not in {".csv", ".parquet", ".pq"}:
        raise NasboxError(f"{path}: unknown table format; use a .csv or .parquet file name")
    return path


def write_table(frame: "pd.DataFrame", path: str | Path) -> Path:
    """Write a table in nasbox's format; the suffix picks CSV or Parquet."""
    path = check_table_path(path)
    TabularBenchmark(frame, source=str(path))  # validate before writing anything
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path
