"""`nasbox search`: search a space with a strategy and an estimator."""

import argparse
import statistics
import sys
import time
from pathlib import Path

from nasbox import __version__
from nasbox.cli.common import (
    add_benchmark_option,
    add_data_options,
    add_prescore_option,
    add_space_option,
    default_out,
    estimator_context,
)
from nasbox.errors import NasboxError
from nasbox.estimators import ESTIMATORS, get_estimator
from nasbox.runs import TrialWriter, plot_trials, run_search, write_json
from nasbox.spaces import get_space
from nasbox.strategies import STRATEGIES, get_strategy, uses_prescore


def cmd_search(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    prescored = uses_prescore(args.strategy)
    context = estimator_context(
        args, space, [args.estimator] + ([args.prescore] if prescored else [])
    )
    options = {"prescore": get_estimator(args.prescore, context)} if prescored else {}
    strategy = get_strategy(args.strategy, space, seed=args.seed, **options)
    estimator = get_estimator(args.estimator, context)
    if args.samples < 1:
        raise NasboxError(f"--samples must be at least 1, got {args.samples}")
    out = Path(args.out) if args.out else default_out("search")
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


def add_parser(commands) -> None:
    search = commands.add_parser(
        "search", help="search a space with a strategy and an estimator; keep the best"
    )
    add_space_option(search)
    search.add_argument(
        "--strategy", default="random", help=f"one of: {', '.join(STRATEGIES.names())}"
    )
    search.add_argument(
        "--estimator", default="naswot", help=f"one of: {', '.join(ESTIMATORS.names())}"
    )
    search.add_argument(
        "--samples", "--budget", type=int, default=100, help="architectures to evaluate"
    )
    add_prescore_option(search)
    add_data_options(search)
    add_benchmark_option(search)
    search.add_argument("--out", help="results folder (default: runs/search-TIMESTAMP)")
    search.add_argument("--quiet", action="store_true", help="no progress bar")
    search.set_defaults(handler=cmd_search)
