"""`nasbox bench run | convert`: compare strategies on a benchmark table; convert official files."""

import argparse
import sys
from pathlib import Path

from tqdm.auto import tqdm

from nasbox import __version__
from nasbox.benchmarks import TabularBenchmark
from nasbox.benchmarks.table import check_table_path
from nasbox.checks import check_count, check_seed, first_repeated
from nasbox.cli.common import (
    add_benchmark_option,
    add_command,
    add_data_options,
    add_overwrite_option,
    add_prescore_option,
    add_space_option,
    check_output_file,
    check_prescore,
    estimator_context,
    out_folder,
    split_names,
)
from nasbox.errors import NasboxError, counted
from nasbox.estimators import EstimatorContext, get_estimator
from nasbox.estimators.objectives import Objective, parse_objectives
from nasbox.runs import COMMAND_RESULTS, RunFolder, replaced_atomically, write_json
from nasbox.spaces import get_space
from nasbox.strategies import STRATEGIES

RESULTS = COMMAND_RESULTS["bench run"]
# Memory a run keeps per query until the summary: its cell's string and values (about 250 bytes,
# measured with tracemalloc on nb201 runs of random and evolution), rounded up.
BYTES_PER_QUERY = 300
# Read only to pre-score cells with --prescore; strategies that do not pre-score look up the table.
PRESCORE_OPTIONS = (
    "--data",
    "--data-dir",
    "--image-size",
    "--batch-size",
    "--precision",
    "--latency-batch",
)


def _budgets(text: str) -> list[int]:
    values = split_names(text, "--budget")
    try:
        budgets = [int(value) for value in values]
    except ValueError:
        raise NasboxError(f"--budget takes whole numbers, e.g. 50,100,200; got {text!r}") from None
    twice = first_repeated(budgets)
    if twice is not None:  # written two ways, e.g. 5,05
        raise NasboxError(f"--budget names {twice} twice; give each value once")
    budgets.sort()
    if budgets[0] < 1:
        raise NasboxError(f"--budget must be at least 1, got {budgets[0]}")
    return budgets


def _objectives(args: argparse.Namespace) -> list[Objective]:
    """--objectives, or [] for a --metric run (then --metric and --report get their defaults).

    Refused where a hypervolume would mean nothing, or where an option would be ignored.
    """
    if not args.objectives:
        args.metric = args.metric or "valid_acc"
        args.report = args.report or "test_acc"
        return []
    if args.metric or args.report:
        option = "--metric" if args.metric else "--report"
        raise NasboxError(
            f"{option} is for single-objective runs and --objectives replaces it; give one of them"
        )
    objectives = parse_objectives(args.objectives)
    if len(objectives) < 2:
        raise NasboxError(
            f"--objectives {args.objectives}: bench run compares fronts by hypervolume, which "
            "needs at least two objectives (e.g. valid_acc,-params_m); for one, use --metric"
        )
    return objectives


def _check_prescore_is_not_the_table(args: argparse.Namespace) -> None:
    """A `table:` pre-score reads the benchmark's own ground truth (`table:test_acc`, the very
    column reported): AREA pre-ranked its cells by the answer at no counted query, and its rows
    looked like a win over strategies that pay for every lookup."""
    spec = args.prescore.strip()
    if spec.partition(":")[0].strip() == "table":
        raise NasboxError(
            f"--prescore {spec} reads the benchmark table, whose accuracies bench run makes "
            "strategies pay for by the query: AREA would pre-rank cells by the answer for free "
            "and its rows would not compare; give a training-free estimator such as naswot, "
            "jacov or params"
        )


def cmd_bench_run(args: argparse.Namespace) -> int:
    from nasbox.benchmarks.compare import (
        ScoreCache,
        TrajectoryWriter,
        markdown_table,
        plot_anytime,
        run_on_benchmark,
        summarize,
    )

    check_seed(args.seed)
    check_count(args.repeats, "--repeats")
    check_seed(args.seed + args.repeats - 1, "--seed + --repeats - 1")
    space = get_space(args.space)
    strategies = split_names(args.strategy, "--strategy")
    for name in strategies:
        STRATEGIES.get(name)
    prescored = check_prescore(args, space, strategies, read_by_prescore=PRESCORE_OPTIONS)
    if prescored:
        _check_prescore_is_not_the_table(args)
    objectives = _objectives(args)
    budgets = _budgets(args.budget)
    _check_fits_memory(len(strategies), args.repeats, budgets[-1])
    out = out_folder(args.out, "bench")
    folder = RunFolder(
        out,
        RESULTS,
        overwrite=args.overwrite,
        way_on="choose a new --out, or pass --overwrite to replace them",
    )
    folder.check()
    columns = [o.estimator.removeprefix("table:") for o in objectives] or [args.metric, args.report]
    benchmark = _complete_table(args, space, budgets, columns)
    if objectives:
        return _bench_fronts(args, space, benchmark, objectives, strategies, budgets, folder)
    prescore = None
    if prescored:
        prescore = ScoreCache(
            get_estimator(args.prescore, estimator_context(args, space, [args.prescore]))
        )
    jobs = [(name, repeat) for name in strategies for repeat in range(args.repeats)]
    with folder:
        writer = TrajectoryWriter(out / "trajectories.csv")

        def run_one(name: str, repeat: int):
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
            return run

        try:
            runs, interrupted = _run_jobs(jobs, run_one, args.quiet)
        finally:
            writer.close()
        if interrupted and not runs:
            return _interrupted(out, runs, jobs)
        rows = summarize(runs, budgets)
        table = markdown_table(rows, args.report)
        with replaced_atomically(out / "summary.md") as temporary:
            temporary.write_text(table + "\n")
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
                "finished_runs": len(runs),
                "interrupted": interrupted,
                "rows": [row.__dict__ for row in rows],
            },
        )
        with replaced_atomically(out / "anytime.png") as temporary:
            plot_anytime(temporary, runs, args.report, title=Path(args.benchmark).name)
    if interrupted:
        return _interrupted(out, runs, jobs)
    print(table)
    print(f"search signal {args.metric}, reported {args.report}; results in {out}/")
    return 0


def _check_fits_memory(strategies: int, repeats: int, budget: int) -> None:
    """Refuse, before the list of jobs is made, runs whose queries would not fit in memory: each
    run's queries are kept for the summary, and --repeats 10**9 filled the memory with its list
    of jobs (or got the process killed) before the first run."""
    from nasbox.cpu import check_fits_memory

    check_fits_memory(
        strategies * repeats * budget * BYTES_PER_QUERY,
        f"keeping the queries of {counted(strategies * repeats, 'run')} (--repeats {repeats:,}) "
        f"at --budget {budget:,} for the summary",
        "use fewer --repeats",
    )


def _run_jobs(jobs: list[tuple[str, int]], run_one, quiet: bool) -> tuple[list, bool]:
    """`run_one(strategy, repeat)` of each job in turn: the runs finished, and whether Ctrl-C
    stopped them (those runs are still summarised and plotted)."""
    runs = []
    try:
        for name, repeat in tqdm(jobs, desc="bench", unit="run", disable=quiet):
            runs.append(run_one(name, repeat))
    except KeyboardInterrupt:
        return runs, True
    return runs, False


def _interrupted(out: Path, runs: list, jobs: list) -> int:
    """Say what an interrupted bench run left in `out`; the exit status of an interruption."""
    if runs:
        print(
            f"interrupted after {len(runs)} of {len(jobs)} runs; their trajectories, summary and "
            f"plot are in {out}/ (to finish, run again with --overwrite)",
            file=sys.stderr,
        )
    else:
        print(f"interrupted before the first run finished; nothing in {out}/", file=sys.stderr)
    return 130


def _complete_table(
    args: argparse.Namespace, space, budgets: list[int], columns: list[str]
) -> TabularBenchmark:
    """The --benchmark table, refused unless it has `columns`, every cell, room for the budget.

    A run looks up whichever cells its strategy draws, so a bad row would stop it midway, with
    part of its results written: every row and value it could need is checked first (~0.1 s;
    the values, empty or infinite, by the `table:` estimator).
    """
    benchmark = TabularBenchmark.from_file(args.benchmark)
    for column in columns:
        get_estimator(f"table:{column}", EstimatorContext(space, None, benchmark=benchmark))
    if budgets[-1] > len(space):
        raise NasboxError(
            f"--budget {budgets[-1]} is more than the {len(space):,} architectures of the "
            f"{args.space} space; no strategy queries one twice"
        )
    if len(benchmark) < len(space):
        raise NasboxError(
            f"{args.benchmark}: the table has {len(benchmark):,} of the {len(space):,} "
            f"{args.space} cells; a cell that is not in the table stops a run, so bench run "
            "needs a table of every cell (is it the right --space?)"
        )
    # Only spaces small enough to tabulate get here, so enumerating them is cheap.
    cells = {space.format(arch) for arch in space}
    row = next((r for r, arch in enumerate(benchmark.archs) if arch not in cells), None)
    if row is not None:
        arch = benchmark.archs[row]
        try:
            reason = f"the form {space.format(space.parse(arch))!r} is expected"
        except NasboxError as err:
            reason = str(err)
        raise NasboxError(
            f"{args.benchmark}: row {row + 1}, column 'arch': {arch!r} is not a {args.space} "
            f"cell ({reason}); fix or remove the row (is it the right --space?)"
        )
    return benchmark


def _bench_fronts(
    args: argparse.Namespace,
    space,
    benchmark: TabularBenchmark,
    objectives: list[Objective],
    strategies: list[str],
    budgets: list[int],
    folder: RunFolder,
) -> int:
    """`bench run --objectives`: hypervolume per budget against the table's true front."""
    from nasbox.benchmarks.fronts import (
        TrueFront,
        fronts_table,
        plot_fronts,
        run_front_search,
        summarize_fronts,
        write_front_trajectories,
    )

    objectives = [
        Objective(f"table:{o.estimator.removeprefix('table:')}", o.minimize) for o in objectives
    ]
    single = [name for name in strategies if not STRATEGIES.get(name).multi_objective]
    if single:
        raise NasboxError(
            f"--objectives needs strategies that handle several objectives; {single[0]} "
            "optimises one --metric"
        )
    out = folder.path
    front = TrueFront.of(benchmark, objectives)
    jobs = [(name, repeat) for name in strategies for repeat in range(args.repeats)]
    with folder:

        def run_one(name: str, repeat: int):
            return run_front_search(
                benchmark,
                space,
                name,
                objectives,
                budget=budgets[-1],
                seed=args.seed + repeat,
                run=repeat,
            )

        runs, interrupted = _run_jobs(jobs, run_one, args.quiet)
        if interrupted and not runs:
            return _interrupted(out, runs, jobs)
        rows = summarize_fronts(runs, budgets, front)
        table = fronts_table(rows)
        with replaced_atomically(out / "trajectories.csv") as temporary:
            write_front_trajectories(temporary, runs, objectives)
        with replaced_atomically(out / "summary.md") as temporary:
            temporary.write_text(table + "\n")
        reference = [o.maximised(v) for o, v in zip(objectives, front.reference, strict=True)]
        write_json(
            out / "summary.json",
            {
                "command": "bench run",
                "version": __version__,
                "benchmark": str(args.benchmark),
                "space": args.space,
                "objectives": [str(o) for o in objectives],
                "true_front_size": len(front.points),
                "reference_point": reference,
                "true_hypervolume": front.volume,
                "repeats": args.repeats,
                "seed": args.seed,
                "finished_runs": len(runs),
                "interrupted": interrupted,
                "rows": [row.__dict__ for row in rows],
            },
        )
        with replaced_atomically(out / "anytime.png") as temporary:
            plot_fronts(temporary, runs, front, title=Path(args.benchmark).name)
    if interrupted:
        return _interrupted(out, runs, jobs)
    print(table)
    nadir = ", ".join(f"{o.estimator} {v:.4g}" for o, v in zip(objectives, reference, strict=True))
    print(
        f"true front: {len(front.points)} cells, reference (its nadir) {nadir}; results in {out}/"
    )
    return 0


# How the official files begin: bzip2 (.pickle.pbz2), a zip archive or a bare pickle (.pth).
MAGIC = {".pbz2": (b"BZh",), ".pth": (b"PK\x03\x04", b"\x80")}


def _check_source(source: Path) -> None:
    """What can be checked without unpickling: the file (or folder's meta file) and its start."""
    expected = "expected a .pth, .pickle.pbz2 or NATS-Bench fast-mode folder"
    path = source / "meta.pickle.pbz2" if source.is_dir() else source
    if not path.is_file():
        raise NasboxError(f"{path}: file not found ({expected})")
    try:
        with path.open("rb") as handle:
            start = handle.read(4)
    except OSError as err:
        raise NasboxError(f"{path}: cannot read it ({err.strerror})") from None
    magic = MAGIC.get(path.suffix)
    if magic is None or not start.startswith(magic):
        raise NasboxError(
            f"{path}: cannot read the benchmark file: it is not a NAS-Bench-201 .pth or a "
            "NATS-Bench .pickle.pbz2 file (convert takes the official files)"
        )


def cmd_bench_convert(args: argparse.Namespace) -> int:
    from nasbox.benchmarks.convert import PICKLE_WARNING, SOURCES, convert

    if args.dataset not in SOURCES:
        raise NasboxError(f"unknown dataset {args.dataset!r}; choose one of: {', '.join(SOURCES)}")
    out = check_table_path(check_output_file(args.out, args.overwrite))  # first: "" is not "."
    _check_source(Path(args.source))
    print(f"nasbox: warning: {PICKLE_WARNING.format(path=args.source)}", file=sys.stderr)
    with replaced_atomically(out) as temporary:
        frame = convert(args.source, temporary, dataset=args.dataset, progress=not args.quiet)
    print(f"wrote {len(frame)} cells with columns {', '.join(frame.columns)} to {args.out}")
    return 0


def add_parser(commands) -> None:
    bench = add_command(commands, "bench", "tabular benchmarks: compare strategies, convert")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True, metavar="COMMAND")
    run = add_command(
        bench_commands,
        "run",
        "seeded repeats of strategies on a benchmark table; table, trajectories, plot",
    )
    add_benchmark_option(run, required=True, read_by="--metric and --report, or --objectives")
    add_space_option(run)
    run.add_argument(
        "--strategy",
        default="random",
        help=f"comma-separated, from: {', '.join(STRATEGIES.names())}",
    )
    run.add_argument(
        "--metric",
        help="column the strategies search on (default: valid_acc; not with --objectives)",
    )
    run.add_argument(
        "--objectives",
        help="two or more columns to optimise at once instead of --metric, e.g. "
        "valid_acc,-params_m (a leading '-' minimises); reports hypervolume against the table's "
        "true front",
    )
    run.add_argument(
        "--report",
        help="column reported for the returned cell (default: test_acc; not with --objectives)",
    )
    run.add_argument(
        "--budget", default="100", help="queries of --metric; comma-separated for several"
    )
    run.add_argument(
        "--repeats", type=int, default=10, help="seeded runs per strategy (seeds --seed, +1, ...)"
    )
    add_prescore_option(run)
    add_data_options(run)
    run.add_argument("--out", help="results folder (default: runs/bench-TIMESTAMP)")
    add_overwrite_option(run)
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=cmd_bench_run)

    conv = add_command(
        bench_commands,
        "convert",
        "write a nasbox table from NAS-Bench-201 (.pth) or NATS-Bench topology files "
        "(pickles: loading runs code from the file)",
    )
    conv.add_argument("source", help=".pth, .pickle.pbz2 or NATS-Bench fast-mode folder")
    conv.add_argument("--out", required=True, help="table to write (.csv or .parquet)")
    add_overwrite_option(conv)
    conv.add_argument("--dataset", default="cifar10", help="cifar10, cifar100 or ImageNet16-120")
    conv.add_argument("--quiet", action="store_true", help="no progress bar")
    conv.set_defaults(handler=cmd_bench_convert)
