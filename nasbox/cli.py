"""The `nasbox` command line: search, score."""

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
from nasbox.strategies import STRATEGIES, get_strategy


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
    strategy = get_strategy(args.strategy, space, seed=args.seed)
    estimator = get_estimator(args.estimator, _context(args, space, [args.estimator]))
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
