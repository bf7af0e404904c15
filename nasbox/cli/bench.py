"""`nasbox bench run | convert`: compare strategies on a benchmark table; convert official files."""

import argparse
import sys
from pathlib import Path

from tqdm.auto import tqdm

from nasbox import __version__
from nasbox.benchmarks import TabularBenchmark
from nasbox.cli.common import (
    add_benchmark_option,
    add_data_options,
    add_prescore_option,
    add_space_option,
    default_out,
    estimator_context,
    split_names,
)
from nasbox.errors import NasboxError
from nasbox.estimators import get_estimator
from nasbox.runs import write_json
from nasbox.spaces import get_space
from nasbox.strategies import STRATEGIES, uses_prescore


def _budgets(text: str) -> list[int]:
    try:
        budgets = sorted({int(value) for value in split_names(text, "--budget")})
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
    strategies = split_names(args.strategy, "--strategy")
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
        prescore = ScoreCache(
            get_estimator(args.prescore, estimator_context(args, space, [args.prescore]))
        )
    out = Path(args.out) if args.out else default_out("bench")
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


def add_parser(commands) -> None:
    bench = commands.add_parser("bench", help="tabular benchmarks: compare strategies, convert")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True, metavar="COMMAND")
    run = bench_commands.add_parser(
        "run", help="seeded repeats of strategies on a benchmark table; table, trajectories, plot"
    )
    add_benchmark_option(run, required=True)
    add_space_option(run)
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
    add_prescore_option(run)
    add_data_options(run)
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
