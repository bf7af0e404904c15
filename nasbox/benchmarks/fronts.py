"""Multi-objective strategy comparisons on a table: hypervolume against the table's true front.

The reference point is the true front's own nadir (its worst value in each objective): a looser
point credits every method with the volume that any cell dominates, and random search then looks
almost perfect. A run's score after q queries is the hypervolume of the cells it has queried,
divided by the true front's.
"""

import csv
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasbox.benchmarks.compare import save_anytime
from nasbox.benchmarks.table import TabularBenchmark
from nasbox.estimators import EstimatorContext
from nasbox.estimators.objectives import Objective, ObjectiveVector
from nasbox.pareto import hypervolume, pareto_front
from nasbox.runs import Trial, run_search
from nasbox.spaces import SearchSpace
from nasbox.strategies import get_strategy


@dataclass(frozen=True)
class TrueFront:
    """The table's Pareto front (maximised values), its nadir and hypervolume."""

    points: np.ndarray
    reference: np.ndarray
    volume: float

    @classmethod
    def of(cls, benchmark: TabularBenchmark, objectives: Sequence[Objective]) -> "TrueFront":
        points = np.stack(
            [
                o.maximised(benchmark.require_column(o.estimator.removeprefix("table:")))
                for o in objectives
            ],
            axis=1,
        )
        front = points[pareto_front(points)]
        reference = front.min(axis=0)
        return cls(front, reference, hypervolume(front, reference))

    def ratio(self, points: np.ndarray) -> float:
        return hypervolume(points, self.reference) / self.volume if self.volume > 0 else 0.0


@dataclass
class FrontRun:
    """One seeded search: each query's architecture and maximised objective values."""

    strategy: str
    run: int
    seed: int
    archs: list[str] = field(default_factory=list)
    points: list[tuple[float, ...]] = field(default_factory=list)

    def ratio(self, queries: int, front: TrueFront) -> float:
        return front.ratio(np.asarray(self.points[:queries], dtype=float))


def run_front_search(
    benchmark: TabularBenchmark,
    space: SearchSpace,
    strategy: str,
    objectives: Sequence[Objective],
    *,
    budget: int,
    seed: int,
    run: int = 0,
) -> FrontRun:
    """One search of `budget` queries, every objective read from the table."""
    searcher = get_strategy(strategy, space, seed=seed)
    evaluate = ObjectiveVector(list(objectives), EstimatorContext(space, benchmark=benchmark))
    result = FrontRun(strategy, run, seed)

    def record(trial: Trial) -> None:
        result.archs.append(space.format(trial.arch))
        result.points.append(trial.value)

    run_search(searcher, evaluate, budget, on_trial=record, progress=False)
    return result


@dataclass(frozen=True)
class FrontRow:
    strategy: str
    queries: int
    runs: int
    mean: float
    std: float
    beats_random: float | None  # share of seeds whose ratio beats random search's


def summarize_fronts(
    runs: Iterable[FrontRun], budgets: Sequence[int], front: TrueFront
) -> list[FrontRow]:
    by_strategy: dict[str, dict[int, FrontRun]] = {}
    for run in runs:
        by_strategy.setdefault(run.strategy, {})[run.seed] = run
    random_runs = by_strategy.get("random", {})
    rows = []
    for strategy, group in by_strategy.items():
        for queries in budgets:
            ratios = {seed: run.ratio(queries, front) for seed, run in group.items()}
            paired = [
                ratios[seed] > random_runs[seed].ratio(queries, front)
                for seed in ratios
                if seed in random_runs
            ]
            beats = statistics.fmean(paired) if paired and strategy != "random" else None
            values = list(ratios.values())
            rows.append(
                FrontRow(
                    strategy,
                    queries,
                    len(values),
                    statistics.fmean(values),
                    statistics.pstdev(values),
                    beats,
                )
            )
    return rows


def fronts_table(rows: Sequence[FrontRow]) -> str:
    lines = [
        "| strategy | queries | runs | hypervolume / true front's (mean +- std) | "
        "beats random (share of seeds) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        beats = "" if row.beats_random is None else f"{row.beats_random:.0%}"
        lines.append(
            f"| {row.strategy} | {row.queries} | {row.runs} | {row.mean:.4f} +- {row.std:.4f} "
            f"| {beats} |"
        )
    return "\n".join(lines)


def write_front_trajectories(
    path: Path, runs: Iterable[FrontRun], objectives: Sequence[Objective]
) -> None:
    """Every query of every run with its objective values in their own units."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("strategy", "run", "seed", "query", "arch", *map(str, objectives)))
        for run in runs:
            for query, (arch, point) in enumerate(zip(run.archs, run.points, strict=True)):
                values = [o.maximised(v) for o, v in zip(objectives, point, strict=True)]
                writer.writerow((run.strategy, run.run, run.seed, query + 1, arch, *values))


def plot_fronts(path: Path, runs: Iterable[FrontRun], front: TrueFront, title: str = "") -> None:
    """Hypervolume ratio against queries: mean line and +-1 std band per strategy."""
    from nasbox.plotting import new_figure

    runs = list(runs)
    longest = max(len(run.points) for run in runs)
    grid = np.unique(np.geomspace(1, longest, num=40).astype(int))
    figure, axis = new_figure((6.5, 4.2))
    for strategy in dict.fromkeys(run.strategy for run in runs):
        curves = np.array(
            [[run.ratio(q, front) for q in grid] for run in runs if run.strategy == strategy]
        )
        mean, std = curves.mean(axis=0), curves.std(axis=0)
        (line,) = axis.plot(grid, mean, label=f"{strategy} ({len(curves)} runs)")
        axis.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    axis.set_ylim(bottom=max(0.0, axis.get_ylim()[0]), top=1.005)
    save_anytime(figure, axis, path, "hypervolume / true front's (mean +- 1 std)", title)
