"""The `nasbox` command line: search, score, bench (run, convert)."""

import argparse
import csv
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from nasbox import __version__
from nasbox.benchmarks import TabularBenchmark
from nasbox.data import load_data
from nasbox.errors import NasboxError
from nasbox.estimators import ESTIMATORS, EstimatorContext, get_estimator
from nasbox.runs import TrialWriter, plot_trials, run_search, write_json
from nasbox.spaces import SPACES, get_space
from nasbox.strategies import STRATEGIES, get_strategy, uses_prescore


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default="digits",
        help="digits (bundled, default), cifar10 (with --data-dir) or npz:FILE",
    )
    parser.add_argument("--data-dir", help="folder of the CIFAR-10 python batches")
    parser.add_argument(
        "--batch-size", type=int, default=128, help="minibatch for training-free scores"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for every random choice")


def _add_space_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", default="nb201", help=f"one of: {', '.join(SPACES.names())}")


def _add_benchmark_option(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--benchmark",
        required=required,
        help="benchmark table (CSV or Parquet: arch + metric columns) for table:<column>",
    )


def _context(args: argparse.Namespace, space, estimators: Sequence[str]) -> EstimatorContext:
    data_needed = any(name.split(":")[0] in {"naswot", "jacov"} for name in estimators)
    data = load_data(args.data, args.data_dir) if data_needed or args.data != "digits" else None
    benchmark_file = getattr(args, "benchmark", None)
    benchmark = TabularBenchmark.from_file(benchmark_file) if benchmark_file else None
    return EstimatorContext(
        space, data, seed=args.seed, batch_size=args.batch_size, benchmark=benchmark
    )


def _default_out(command: str) -> Path:
    return Path("runs") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_search(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    prescored = uses_prescore(args.strategy)
    context = _context(args, space, [args.estimator] + ([args.prescore] if prescored else []))
    options = {"prescore": get_estimator(args.prescore, context)} if prescored else {}
    strategy = get_strategy(args.strategy, space, seed=args.seed, **options)
    estimator = get_estimator(args.estimator, context)
    if args.samples < 1:
        raise NasboxError(f"--samples must be at least 1, got {args.samples}")
    out = Path(args.out) if args.out else _default_out("search")
    writer = TrialWriter(out / "trials.csv", space)
    started = time.perf_counter()
    try:
        trials = run_search(
            strategy, estimator, args.samples, on_trial=writer, progress=not args.quiet
        )
    except KeyboardInterrupt:
        print(f"interrupted; the trials finished so far are in {writer.path}", file=sys.stderr)
        return 130
    finally:
        writer.close()
    elapsed = time.perf_counter() - started
    best_arch, best_value = strategy.best
    summary = {
        "command": "search",
        "version": __version__,
        "space": args.space,
        "strategy": args.strategy,
        "estimator": args.estimator,
        "data": args.data,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "samples": len(trials),
        "best_arch": space.format(best_arch),
        "best_value": best_value,
        "seconds_total": round(elapsed, 3),
        "seconds_median": round(statistics.median(t.seconds for t in trials), 4),
    }
    write_json(out / "summary.json", summary)
    plot_trials(out / "trials.png", trials, args.estimator)
    print(
        f"evaluated {len(trials)} architectures in {elapsed:.1f} s "
        f"(median {summary['seconds_median']:.3f} s each); results in {out}/"
    )
    print(f"best {args.estimator} {best_value:.4f}: {space.format(best_arch)}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    names = [name.strip() for name in args.estimator.split(",") if name.strip()]
    if not names:
        raise NasboxError("--estimator needs at least one name, e.g. naswot,params")
    archs_path = Path(args.archs)
    if not archs_path.is_file():
        raise NasboxError(f"{archs_path}: file not found (expected one architecture per line)")
    archs = space.parse_many(archs_path.read_text().splitlines(), source=str(archs_path))
    if not archs:
        raise NasboxError(f"{archs_path}: no architectures in the file")
    context = _context(args, space, names)
    estimators = [get_estimator(name, context) for name in names]
    out_file = open(args.out, "w", newline="") if args.out else sys.stdout  # noqa: SIM115
    try:
        writer = csv.writer(out_file)
        writer.writerow(["arch", *names, "seconds"])
        for arch in tqdm(archs, desc="score", unit="arch", disable=args.quiet):
            start = time.perf_counter()
            values = [estimator(arch) for estimator in estimators]
            seconds = time.perf_counter() - start
            writer.writerow([space.format(arch), *map(repr, values), f"{seconds:.4f}"])
            out_file.flush()
    finally:
        if out_file is not sys.stdout:
            out_file.close()
    if args.out:
        print(f"scored {len(archs)} architectures with {', '.join(names)}; wrote {args.out}")
    return 0


def _names(text: str, what: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise NasboxError(f"{what} needs at least one value")
    return names


def _budgets(text: str) -> list[int]:
    try:
        budgets = sorted({int(value) for value in _names(text, "--budget")})
    except ValueError:
        raise NasboxError(f"--budget takes whole numbers, e.g. 50,100,200; got {text!r}") from None
    if budgets[0] < 1:
        raise NasboxError(f"--budget must be at least 1, got {budgets[0]}")
    return budgets


def cmd_bench_run(args: argparse.Namespace) -> int:
    from nasbox.benchmarks.compare import (
        ScoreCache,
        TrajectoryWriter,
        markdown_table,
        plot_anytime,
        run_on_benchmark,
        summarize,
    )

    space = get_space(args.space)
    strategies = _names(args.strategy, "--strategy")
    for name in strategies:
        STRATEGIES.get(name)
    budgets = _budgets(args.budget)
    if args.repeats < 1:
        raise NasboxError(f"--repeats must be at least 1, got {args.repeats}")
    benchmark = TabularBenchmark.from_file(args.benchmark)
    benchmark.require_column(args.metric)
    benchmark.require_column(args.report)
    prescore = None
    if any(uses_prescore(name) for name in strategies):
        prescore = ScoreCache(get_estimator(args.prescore, _context(args, space, [args.prescore])))
    out = Path(args.out) if args.out else _default_out("bench")
    writer = TrajectoryWriter(out / "trajectories.csv")
    runs = []
    jobs = [(name, repeat) for name in strategies for repeat in range(args.repeats)]
    try:
        for name, repeat in tqdm(jobs, desc="bench", unit="run", disable=args.quiet):
            run = run_on_benchmark(
                benchmark,
                space,
                name,
                metric=args.metric,
                report=args.report,
                budget=budgets[-1],
                seed=args.seed + repeat,
                run=repeat,
                prescore=prescore,
            )
            writer(run)
            runs.append(run)
    except KeyboardInterrupt:
        print(f"interrupted; the finished runs are in {writer.path}", file=sys.stderr)
        return 130
    finally:
        writer.close()
    rows = summarize(runs, budgets)
    table = markdown_table(rows, args.report)
    (out / "summary.md").write_text(table + "\n")
    write_json(
        out / "summary.json",
        {
            "command": "bench run",
            "version": __version__,
            "benchmark": str(args.benchmark),
            "space": args.space,
            "metric": args.metric,
            "report": args.report,
            "repeats": args.repeats,
            "seed": args.seed,
            "prescore": args.prescore if prescore is not None else None,
            "rows": [row.__dict__ for row in rows],
        },
    )
    plot_anytime(out / "anytime.png", runs, args.report, title=Path(args.benchmark).name)
    print(table)
    print(f"search signal {args.metric}, reported {args.report}; results in {out}/")
    return 0


def cmd_bench_convert(args: argparse.Namespace) -> int:
    from nasbox.benchmarks.convert import PICKLE_WARNING, convert

    print(f"warning: {PICKLE_WARNING.format(path=args.source)}", file=sys.stderr)
    frame = convert(args.source, args.out, dataset=args.dataset, progress=not args.quiet)
    print(f"wrote {len(frame)} cells with columns {', '.join(frame.columns)} to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nasbox", description="Neural architecture search that runs on a laptop CPU."
    )
    parser.add_argument("--version", action="version", version=f"nasbox {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    search = commands.add_parser(
        "search", help="search a space with a strategy and an estimator; keep the best"
    )
    _add_space_option(search)
    search.add_argument(
        "--strategy", default="random", help=f"one of: {', '.join(STRATEGIES.names())}"
    )
    search.add_argument(
        "--estimator", default="naswot", help=f"one of: {', '.join(ESTIMATORS.names())}"
    )
    search.add_argument(
        "--samples", "--budget", type=int, default=100, help="architectures to evaluate"
    )
    search.add_argument(
        "--prescore",
        default="naswot",
        help="training-free estimator for strategies that pre-score cells (area)",
    )
    _add_data_options(search)
    _add_benchmark_option(search)
    search.add_argument("--out", help="results folder (default: runs/search-TIMESTAMP)")
    search.add_argument("--quiet", action="store_true", help="no progress bar")
    search.set_defaults(handler=cmd_search)

    score = commands.add_parser("score", help="score listed architectures with estimators")
    _add_space_option(score)
    score.add_argument(
        "--estimator",
        default="naswot",
        help=f"comma-separated, from: {', '.join(ESTIMATORS.names())}",
    )
    score.add_argument("--archs", required=True, help="file with one architecture per line")
    _add_data_options(score)
    _add_benchmark_option(score)
    score.add_argument("--out", help="CSV file to write (default: standard output)")
    score.add_argument("--quiet", action="store_true", help="no progress bar")
    score.set_defaults(handler=cmd_score)

    bench = commands.add_parser("bench", help="tabular benchmarks: compare strategies, convert")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True, metavar="COMMAND")
    run = bench_commands.add_parser(
        "run", help="seeded repeats of strategies on a benchmark table; table, trajectories, plot"
    )
    _add_benchmark_option(run, required=True)
    _add_space_option(run)
    run.add_argument(
        "--strategy",
        default="random",
        help=f"comma-separated, from: {', '.join(STRATEGIES.names())}",
    )
    run.add_argument("--metric", default="valid_acc", help="column the strategies search on")
    run.add_argument("--report", default="test_acc", help="column reported for the returned cell")
    run.add_argument(
        "--budget", default="100", help="queries of --metric; comma-separated for several"
    )
    run.add_argument("--repeats", type=int, default=10, help="seeded runs per strategy")
    run.add_argument(
        "--prescore",
        default="naswot",
        help="training-free estimator for strategies that pre-score cells (area)",
    )
    _add_data_options(run)
    run.add_argument("--out", help="results folder (default: runs/bench-TIMESTAMP)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=cmd_bench_run)

    conv = bench_commands.add_parser(
        "convert",
        help="write a nasbox table from NAS-Bench-201 (.pth) or NATS-Bench topology files "
        "(pickles: loading runs code from the file)",
    )
    conv.add_argument("source", help=".pth, .pickle.pbz2 or NATS-Bench fast-mode folder")
    conv.add_argument("--out", required=True, help="table to write (.csv or .parquet)")
    conv.add_argument(
        "--dataset", default="cifar10", help="cifar10 (default), cifar100 or ImageNet16-120"
    )
    conv.add_argument("--quiet", action="store_true", help="no progress bar")
    conv.set_defaults(handler=cmd_bench_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except NasboxError as err:
        print(f"nasbox: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
