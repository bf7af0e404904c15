"""Fair strategy comparisons on a tabular benchmark: seeded repeats, anytime curves, summaries.

Each run searches with `table:<metric>` as its only (costly) estimator and returns the cell with the
best observed metric; its `report` column (e.g. test accuracy) is read afterwards and never seen by
the strategy. One run of the largest budget serves every smaller budget: strategies do not know
their budget, so the incumbent after q queries is what a q-query run returns.
"""

import csv
import math
import statistics
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasbox.benchmarks.table import TabularBenchmark
from nasbox.checks import delimiter_hint
from nasbox.errors import NasboxError
from nasbox.estimators import EstimatorContext, get_estimator
from nasbox.runs import Trial, run_search
from nasbox.spaces import SearchSpace
from nasbox.strategies import get_strategy, uses_prescore


class ScoreCache:
    """Memoised training-free scores with the seconds each took, charged again on every reuse.

    Repeats of AREA pre-score overlapping cells; computing each once but charging its measured
    seconds each time keeps the reported pre-scoring cost honest. Without an estimator the cache
    only knows the cells it was loaded with (see `from_csv`).
    """

    def __init__(self, estimator: Callable[[Hashable], float] | None = None) -> None:
        self.estimator = estimator
        self.values: dict[Hashable, float] = {}
        self.seconds: dict[Hashable, float] = {}
        self.charged = 0.0

    @classmethod
    def from_csv(cls, path: str | Path, space: SearchSpace, column: str) -> "ScoreCache":
        """Scores from a CSV with `arch`, `column` and `seconds` columns (first row per cell)."""
        import pandas as pd

        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as err:
            raise NasboxError(f"{path}: cannot read the score cache ({err})") from None
        missing = {"arch", column, "seconds"} - set(frame.columns)
        if missing:
            raise NasboxError(
                f"{path}: score cache without column(s) {sorted(missing)}"
                + delimiter_hint(list(frame.columns))
            )
        cache = cls()
        for arch, value, seconds in frame[["arch", column, "seconds"]].itertuples(index=False):
            cell = space.parse(str(arch))
            if cell not in cache.values:
                cache.values[cell] = float(value)
                cache.seconds[cell] = float(seconds)
        return cache

    @property
    def cells(self) -> list[Hashable]:
        return list(self.values)

    def __call__(self, arch: Hashable) -> float:
        if arch not in self.values:
            if self.estimator is None:
                raise NasboxError(f"no cached score for {arch}; the cache holds only its pool")
            start = time.perf_counter()
            self.values[arch] = float(self.estimator(arch))
            self.seconds[arch] = time.perf_counter() - start
        self.charged += self.seconds[arch]
        return self.values[arch]


@dataclass
class BenchmarkRun:
    """One seeded search: each query in order with its metric, report value and cumulative time."""

    strategy: str
    run: int
    seed: int
    archs: list[str] = field(default_factory=list)
    metric: list[float] = field(default_factory=list)
    report: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    prescore_seconds: float = 0.0

    def incumbent(self, queries: int) -> int:
        """Index of the best-metric query among the first `queries` (ties: the earliest)."""
        return int(np.argmax(self.metric[:queries]))

    def result(self, queries: int) -> float:
        """The report value of the cell a `queries`-query run returns."""
        return self.report[self.incumbent(queries)]

    def anytime(self) -> np.ndarray:
        """The returned cell's report value after each query (one pass, same ties as `result`)."""
        metric = np.asarray(self.metric, dtype=float)
        improved = np.ones(len(metric), dtype=bool)
        improved[1:] = metric[1:] > np.maximum.accumulate(metric)[:-1]
        incumbents = np.maximum.accumulate(np.where(improved, np.arange(len(metric)), 0))
        return np.asarray(self.report, dtype=float)[incumbents]


def run_on_benchmark(
    benchmark: TabularBenchmark,
    space: SearchSpace,
    strategy: str,
    *,
    metric: str,
    report: str,
    budget: int,
    seed: int,
    run: int = 0,
    prescore: ScoreCache | None = None,
    pool: Sequence[Hashable] | None = None,
    options: dict | None = None,
) -> BenchmarkRun:
    """One search of `budget` queries of `metric`; `prescore`/`pool` go to strategies using them."""
    benchmark.require_column(metric)
    benchmark.require_column(report)
    options = dict(options or {})
    if uses_prescore(strategy):
        if prescore is None:
            raise NasboxError(f"strategy {strategy!r} needs a pre-scoring estimator (--prescore)")
        options.update(prescore=prescore, pool=pool)
        prescore.charged = 0.0
    searcher = get_strategy(strategy, space, seed=seed, **options)
    lookup = get_estimator(f"table:{metric}", EstimatorContext(space, benchmark=benchmark))
    result = BenchmarkRun(strategy, run, seed)
    start = time.perf_counter()

    def record(trial: Trial) -> None:
        key = space.format(trial.arch)
        result.archs.append(key)
        result.metric.append(trial.value)
        result.report.append(benchmark.lookup(key, report))
        result.seconds.append(time.perf_counter() - start)

    run_search(searcher, lookup, budget, on_trial=record, progress=False)
    if prescore is not None and uses_prescore(strategy):
        result.seconds = [s - searcher.prescore_seconds for s in result.seconds]
        result.prescore_seconds = prescore.charged
    return result


@dataclass(frozen=True)
class SummaryRow:
    strategy: str
    queries: int
    runs: int
    mean: float
    std: float
    seconds: float
    prescore_seconds: float


def summarize(runs: Iterable[BenchmarkRun], budgets: Sequence[int]) -> list[SummaryRow]:
    """Mean and (population) std of the returned cells' report values per strategy and budget."""
    by_strategy: dict[str, list[BenchmarkRun]] = {}
    for run in runs:
        by_strategy.setdefault(run.strategy, []).append(run)
    rows = []
    for strategy, group in by_strategy.items():
        for queries in budgets:
            values = [run.result(queries) for run in group]
            rows.append(
                SummaryRow(
                    strategy,
                    queries,
                    len(group),
                    statistics.fmean(values),
                    statistics.pstdev(values),
                    statistics.fmean(run.seconds[queries - 1] for run in group),
                    statistics.fmean(run.prescore_seconds for run in group),
                )
            )
    return rows


def markdown_table(rows: Sequence[SummaryRow], report: str) -> str:
    lines = [
        f"| strategy | queries | runs | {report} (mean +- std) | search s | pre-scoring s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row.strategy} | {row.queries} | {row.runs} | {row.mean:.2f} +- {row.std:.2f} | "
            f"{row.seconds:.3f} | {row.prescore_seconds:.1f} |"
        )
    return "\n".join(lines)


class TrajectoryWriter:
    """Appends every query of every run to one CSV as each run finishes (flushed)."""

    columns = ("strategy", "run", "seed", "query", "arch", "metric", "report", "best_report", "s")

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("w", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(self.columns)

    def __call__(self, run: BenchmarkRun) -> None:
        best = run.anytime()
        for query, (arch, metric, report) in enumerate(
            zip(run.archs, run.metric, run.report, strict=True)
        ):
            self._writer.writerow(
                (run.strategy, run.run, run.seed, query + 1, arch, repr(metric), repr(report))
                + (repr(float(best[query])), f"{run.seconds[query]:.5f}")
            )
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def plot_anytime(path: Path, runs: Iterable[BenchmarkRun], report: str, title: str = "") -> None:
    """Returned cell's `report` value vs queries: mean line and +-1 std band per strategy."""
    from nasbox.plotting import new_figure

    curves: dict[str, list[np.ndarray]] = {}
    for run in runs:
        curves.setdefault(run.strategy, []).append(run.anytime())
    figure, axis = new_figure((6.5, 4.2))
    bottom, top = math.inf, -math.inf
    for strategy, group in curves.items():
        length = min(len(curve) for curve in group)
        stacked = np.stack([curve[:length] for curve in group])
        queries = np.arange(1, length + 1)
        mean, std = stacked.mean(axis=0), stacked.std(axis=0)
        (line,) = axis.plot(queries, mean, label=f"{strategy} ({len(group)} runs)")
        axis.fill_between(queries, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        # The first few queries are random cells far below the rest; zoom on the search itself.
        early = min(9, length - 1)
        bottom = min(bottom, mean[early] - std[early])
        top = max(top, float(np.max(mean[early:] + std[early:])))
    if math.isfinite(bottom) and math.isfinite(top):
        margin = 0.05 * max(top - bottom, 1e-9)
        axis.set_ylim(bottom - margin, top + margin)
    save_anytime(figure, axis, path, f"{report} of the returned cell (mean +- 1 std)", title)


def save_anytime(
    figure, axis, path: Path, ylabel: str, title: str, legend: str = "lower right"
) -> None:
    """An anytime plot's common dress (log queries, labels, grid, legend at `legend`), saved;
    curves of a minimised value want the legend at the top."""
    axis.set_xscale("log")
    axis.set_xlabel("queries")
    axis.set_ylabel(ylabel)
    if title:
        axis.set_title(title)
    axis.grid(alpha=0.3, which="both")
    axis.legend(loc=legend)
    figure.tight_layout()
    figure.savefig(path)
