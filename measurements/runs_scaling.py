"""How nasbox runs scale: each measurement is one function, selected by a flag.

`--simulate`: a simulated cluster. Regularised evolution (REA) and random search run through the
real search loop (`run_search`) with a `SimulatedExecutor` of 1, 8, 64 and 256 asynchronous
workers on the NAS-Bench-201 CIFAR-10 table: the search signal is `valid_acc`, the reported
quality the `test_acc` of the best-by-`valid_acc` cell found so far, and each evaluation takes a
virtual time proportional to the cell's `params_m` (the table has no time or FLOPs column; in
NAS-Bench-201 both grow with the cell's convolutions). One time unit is the training of a cell
of the table's mean size. The target is the mean quality sequential REA reaches after 200
queries. Each seeded search reaches it at some virtual time and query count (or not within its
budget); the table gives their medians over seeds, the speed-up of the median time over one
worker (ideal: the worker count), and the mean quality after 200 queries, which shows where
asynchrony starts to cost quality.

`--overhead`: the per-trial cost of the search loop and the experiment store with an instant
estimator (`table:valid_acc`), in this process, with 2 local worker processes and through a local
Ray instance. Each executor runs a short and a long random search; the per-trial cost is the
difference in time over the difference in trials, so starting workers is reported apart.

`--throughput`: NASWOT cells scored per second (CIFAR-10 subset, batch 128) by 1 worker in this
process, 2 local worker processes (1 torch thread each) and 2 Ray tasks, the same way.

    python measurements/runs_scaling.py --simulate
    python measurements/runs_scaling.py --overhead --throughput
"""

import argparse
import math
import tempfile
import time
from collections.abc import Hashable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from nasbox.runs import (  # noqa: E402
    EstimatorSpec,
    InlineExecutor,
    ProcessExecutor,
    RunStore,
    SimulatedExecutor,
    StoreRecorder,
    TrialAppender,
    run_search,
)
from nasbox.spaces import get_space  # noqa: E402
from nasbox.strategies import get_strategy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
# label: (strategy, options, which budget flag applies)
SEARCHES = {
    "REA (P=10, S=5)": ("evolution", {}, "budget"),
    "REA (P=50, S=10)": ("evolution", {"population_size": 50, "tournament_size": 10}, "budget"),
    "Random search": ("random", {}, "random_budget"),
}


@dataclass(frozen=True)
class Cell:
    valid_acc: float
    test_acc: float
    duration: float  # virtual time units: params_m over the table's mean params_m


def load_cells(path: Path) -> dict[Hashable, Cell]:
    """Every NAS-Bench-201 cell with its accuracies and simulated training time."""
    space = get_space("nb201")
    frame = pd.read_csv(path)[["arch", "valid_acc", "test_acc", "params_m"]]
    mean_params = frame["params_m"].mean()
    return {
        space.parse(arch): Cell(valid, test, params / mean_params)
        for arch, valid, test, params in frame.itertuples(index=False)
    }


@dataclass
class SimulatedRun:
    """One seeded search: virtual time and incumbent test accuracy after each told query."""

    times: np.ndarray
    quality: np.ndarray

    def reaching(self, target: float) -> tuple[float, float]:
        """(virtual time, queries) when the incumbent first reaches `target`; inf if never."""
        reached = np.flatnonzero(self.quality >= target)
        if not len(reached):
            return math.inf, math.inf
        return float(self.times[reached[0]]), float(reached[0] + 1)


def simulate_searches(
    table: str, label: str, workers: int, seeds: range, budget: int
) -> list[SimulatedRun]:
    """One seeded search of `SEARCHES[label]` per seed on `workers` virtual workers."""
    strategy, options, _ = SEARCHES[label]
    cells = load_cells(Path(table))
    return [simulate_search(strategy, options, workers, seed, cells, budget) for seed in seeds]


def simulate_search(
    strategy: str,
    options: dict,
    workers: int,
    seed: int,
    cells: dict[Hashable, Cell],
    budget: int,
) -> SimulatedRun:
    """`budget` queries of `strategy` on `workers` virtual workers, through the real loop."""
    executor = SimulatedExecutor(
        lambda arch: cells[arch].valid_acc, lambda arch: cells[arch].duration, workers
    )
    times, quality = [], []
    best_valid, best_test = -math.inf, math.nan

    def record(trial) -> None:
        nonlocal best_valid, best_test
        if trial.value > best_valid:
            best_valid, best_test = trial.value, cells[trial.arch].test_acc
        times.append(executor.now)
        quality.append(best_test)

    searcher = get_strategy(strategy, get_space("nb201"), seed=seed, **options)
    run_search(searcher, executor, budget, on_trial=record, progress=False)
    return SimulatedRun(np.array(times), np.array(quality))


def mean_by_time(runs: list[SimulatedRun]) -> tuple[np.ndarray, np.ndarray]:
    """The mean (over runs) incumbent quality as a step function of virtual time.

    Before its first result a run counts as 0, so the curve is exact at every step: each run
    contributes its quality changes as events at the times they happened.
    """
    times = np.concatenate([run.times for run in runs])
    steps = np.concatenate([np.diff(run.quality, prepend=0.0) for run in runs])
    order = np.argsort(times, kind="stable")
    return times[order], np.cumsum(steps[order]) / len(runs)


def simulate_cluster(args: argparse.Namespace) -> None:
    """REA and random search with 1-256 asynchronous workers on a virtual clock."""
    seeds = range(args.seed, args.seed + args.seeds)
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = {
            (label, workers): pool.submit(
                simulate_searches, args.table, label, workers, seeds, getattr(args, budget)
            )
            for label, (_, _, budget) in SEARCHES.items()
            for workers in args.workers
        }
        runs = {key: future.result() for key, future in futures.items()}
    seconds = time.perf_counter() - started
    reference = args.target_queries
    sequential_rea = next(iter(SEARCHES))
    target = np.mean([run.quality[reference - 1] for run in runs[sequential_rea, 1]])
    print(
        f"{len(runs) * args.seeds} simulated searches in {seconds:.0f} s ({args.jobs} processes); "
        f"target: {target:.2f}% test accuracy, the mean that sequential {sequential_rea} reaches "
        f"after {reference} queries ({args.seeds} seeds)\n"
    )
    print(
        "| search | workers | budget | seeds reaching target | median queries to target | "
        "median virtual time to target | speed-up (ideal = workers) | speed-up / workers | "
        f"mean test acc after {reference} queries |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    figure, axes = plt.subplots(1, len(SEARCHES), figsize=(5 * len(SEARCHES), 4), sharey=True)
    for axis, (label, (_, _, budget)) in zip(axes, SEARCHES.items(), strict=True):
        sequential = math.nan
        for workers in args.workers:
            group = runs[label, workers]
            reached_at = np.array([run.reaching(target) for run in group])
            reach_time, reach_queries = np.median(reached_at, axis=0)
            if workers == 1:
                sequential = reach_time
            speedup = sequential / reach_time
            at_reference = np.mean([run.quality[reference - 1] for run in group])
            print(
                f"| {label} | {workers} | {getattr(args, budget)} | "
                f"{np.isfinite(reached_at[:, 0]).mean():.0%} | {reach_queries:.0f} | "
                f"{reach_time:.1f} | {speedup:.1f} | {speedup / workers:.2f} | "
                f"{at_reference:.2f} |"
            )
            clock, quality = mean_by_time(group)
            axis.step(
                clock, quality, where="post", label=f"{workers} worker{'s' if workers > 1 else ''}"
            )
        axis.axhline(target, color="grey", linestyle="--", linewidth=1)
        axis.set_xscale("log")
        axis.set_title(label)
        axis.set_xlabel("virtual time (trainings of a mean-size cell)")
        axis.legend()
    axes[0].set_ylabel("mean test accuracy of the best-by-valid cell (%)")
    axes[0].set_ylim(target - 3, target + 0.5)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    print(f"\nplot: {out}")


def timed_search(make_executor, trials: int, seed: int, folder: Path | None) -> float:
    """Seconds of one random search of `trials` trials (with the store and CSV in `folder`)."""
    space = get_space("nb201")
    strategy = get_strategy("random", space, seed=seed)
    recorder = appender = store = None
    if folder is not None:
        store = RunStore(folder / f"{seed}-{trials}.db")
        run = store.create_run("measure", {}, str(folder), "measure")
        appender = TrialAppender(folder / f"{seed}-{trials}.csv")
        recorder = StoreRecorder(store, run, space, on_finished=appender)
    started = time.perf_counter()
    with make_executor() as executor:
        run_search(strategy, executor, trials, recorder=recorder, progress=False)
    seconds = time.perf_counter() - started
    if store is not None:
        appender.close()
        store.close()
    return seconds


def per_trial(make_executor, short: int, long: int, folder: Path | None) -> tuple[float, float]:
    """(start-up seconds, seconds per trial) from a short and a long search.

    A first, untimed search starts what is started once per process (the fork server, Ray).
    """
    if folder is not None:
        folder = Path(tempfile.mkdtemp(dir=folder))
    timed_search(make_executor, 2, 2, folder)
    first = timed_search(make_executor, short, 0, folder)
    second = timed_search(make_executor, long, 1, folder)
    each = (second - first) / (long - short)
    return max(0.0, first - short * each), each


def executors(spec: EstimatorSpec, estimator, ray: bool) -> dict:
    """The executors compared, by label; each call builds a fresh one."""
    made = {
        "1 worker (in process)": lambda: InlineExecutor(estimator),
        "2 local worker processes": lambda: ProcessExecutor(spec, 2),
    }
    if ray:
        from nasbox.runs.ray_executor import RayExecutor

        made["Ray, local instance (2 tasks in flight)"] = lambda: RayExecutor(spec, workers=2)
    return made


def loop_overhead(args: argparse.Namespace) -> None:
    from nasbox.benchmarks import TabularBenchmark
    from nasbox.estimators import EstimatorContext, get_estimator

    space = get_space("nb201")
    lookup = get_estimator(
        "table:valid_acc",
        EstimatorContext(space, benchmark=TabularBenchmark.from_file(args.table)),
    )
    spec = EstimatorSpec("nb201", "table:valid_acc", benchmark=str(Path(args.table).resolve()))
    print("\nLoop and store overhead, table:valid_acc (instant), random search on nb201:\n")
    print("| executor | store | start-up (s) | ms per trial |")
    print("| --- | --- | ---: | ---: |")
    with tempfile.TemporaryDirectory() as folder:
        start, each = per_trial(lambda: InlineExecutor(lookup), 200, 2000, None)
        print(f"| 1 worker (in process) | none (bare loop) | {start:.2f} | {1000 * each:.3f} |")
        for label, make in executors(spec, lookup, args.ray).items():
            trials = (200, 2000) if "in process" in label else (50, 1000)
            start, each = per_trial(make, *trials, Path(folder))
            print(f"| {label} | SQLite + trials.csv | {start:.2f} | {1000 * each:.3f} |")


def naswot_throughput(args: argparse.Namespace) -> None:
    from nasbox.data import load_data
    from nasbox.estimators import EstimatorContext, get_estimator

    space = get_space("nb201")
    data_spec = f"npz:{args.data}"
    context = EstimatorContext(space, load_data(data_spec), seed=0, batch_size=128)
    naswot = get_estimator("naswot", context)
    spec = EstimatorSpec("nb201", "naswot", data=data_spec, seed=0, batch_size=128)
    print("\nNASWOT throughput, CIFAR-10 subset, batch 128, random nb201 cells:\n")
    print("| executor | start-up (s) | s per cell | cells per second |")
    print("| --- | ---: | ---: | ---: |")
    for label, make in executors(spec, naswot, args.ray).items():
        start, each = per_trial(make, args.cells // 4, args.cells, None)
        print(f"| {label} | {start:.2f} | {each:.3f} | {1 / each:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--simulate", action="store_true", help="the simulated cluster")
    parser.add_argument("--overhead", action="store_true", help="loop and store cost per trial")
    parser.add_argument("--throughput", action="store_true", help="NASWOT cells per second")
    parser.add_argument("--no-ray", dest="ray", action="store_false", help="skip Ray")
    parser.add_argument("--cells", type=int, default=60, help="cells per throughput search")
    parser.add_argument("--data", default=str(SHARED / "cifar10-subset.npz"))
    parser.add_argument("--table", default=str(SHARED / "nb201-cifar10.csv"))
    parser.add_argument("--seeds", type=int, default=100, help="seeded searches per setting")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--budget", type=int, default=3000, help="queries per REA search")
    parser.add_argument(
        "--random-budget", type=int, default=10000, help="queries per random search"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8, 64, 256])
    parser.add_argument("--target-queries", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2, help="processes simulating searches")
    parser.add_argument(
        "--out", default=str(ROOT / "measurements/results/runs_scaling_simulated.png")
    )
    args = parser.parse_args()
    if not (args.simulate or args.overhead or args.throughput):
        parser.error("choose measurements: --simulate, --overhead, --throughput")
    if args.workers[0] != 1 or min(args.budget, args.random_budget) < args.target_queries:
        parser.error("--workers must start with 1 and the budgets be at least --target-queries")
    if args.overhead:
        loop_overhead(args)
    if args.throughput:
        naswot_throughput(args)
    if args.simulate:
        simulate_cluster(args)


if __name__ == "__main__":
    main()
