"""The `nasbox` command line: search, score, bench (run, convert), train, describe, petri."""

import argparse
import csv
import signal
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from nasbox import __version__
from nasbox.benchmarks import TabularBenchmark
from nasbox.data import load_data
from nasbox.errors import NasboxError
from nasbox.estimators import ESTIMATORS, EstimatorContext, get_estimator
from nasbox.runs import TrialWriter, plot_trials, run_search, write_json
from nasbox.spaces import SPACES, get_space
from nasbox.strategies import STRATEGIES, get_strategy, uses_prescore
from nasbox.train import TrainConfig, train


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


def _add_prescore_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prescore",
        default="naswot",
        help="training-free estimator for strategies that pre-score cells (area)",
    )


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


def _network_options(args: argparse.Namespace, input_size: int) -> dict:
    """Build options for `--cells N --filters F` (N@F) in the space's own terms."""
    if args.cells is not None and args.cells < 1:
        raise NasboxError(f"--cells must be at least 1, got {args.cells}")
    if args.filters is not None and args.filters < 8:
        raise NasboxError(f"--filters must be at least 8, got {args.filters}")
    if args.space == "nasnet":
        options = {"cells": args.cells or 6, "filters": args.filters or 768}
        stem = args.stem or ("imagenet" if input_size >= 128 else "cifar")
        options["stem"] = stem
        return options
    if args.space == "nb201":  # N cells per stage, F = 4C channels after the last stage
        return {"cells_per_stage": args.cells or 5, "channels": (args.filters or 64) // 4}
    raise NasboxError(f"--space {args.space} has no N@F network builder")


def _arch(space, text: str):
    path = Path(text)
    if path.suffix in {".txt", ".json"} and path.is_file():
        text = path.read_text()
    return space.parse(text)


def _describe_network(space, arch, options: dict, classes: int, channels: int, size: int):
    import torch

    from nasbox.estimators.cost import count_multiply_adds, count_parameters

    with torch.device("meta"):
        network = space.build(arch, num_classes=classes, in_channels=channels, **options)
    return count_parameters(network), count_multiply_adds(network, (channels, size, size))


def cmd_describe(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    arch = _arch(space, args.arch)
    if args.input < 8:
        raise NasboxError(f"--input must be at least 8 pixels, got {args.input}")
    options = _network_options(args, args.input)
    params, madds = _describe_network(space, arch, options, args.classes, 3, args.input)
    print(f"space       {args.space}")
    print(f"arch        {space.format(arch)}")
    print(f"network     {', '.join(f'{key}={value}' for key, value in options.items())}")
    print(f"input       3x{args.input}x{args.input}, {args.classes} classes (no auxiliary head)")
    print(f"parameters  {params / 1e6:.3f} M ({params:,})")
    print(f"mult-adds   {madds / 1e6:.1f} M ({madds:,})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from nasbox.estimators.cost import count_parameters

    space = get_space(args.space)
    arch = _arch(space, args.arch)
    data = load_data(args.data, args.data_dir)
    options = _network_options(args, data.image_size[0])
    if args.space == "nasnet":
        options.update(auxiliary=args.aux_weight > 0, dropout=args.dropout)
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        cutout=args.cutout,
        drop_path=args.drop_path,
        aux_weight=args.aux_weight,
        seed=args.seed,
    )
    torch.manual_seed(args.seed)
    network = space.build(
        arch, num_classes=data.num_classes, in_channels=data.in_channels, **options
    )
    out = Path(args.out) if args.out else _default_out("train")
    description = f"{args.space} {space.format(arch)} {options}"
    params = count_parameters(network) / 1e6
    print(f"training {description} ({params:.3f} M parameters) on {data.name}; results in {out}/")
    out.mkdir(parents=True, exist_ok=True)
    settings = {key: value for key, value in vars(args).items() if key != "handler"}
    write_json(
        out / "settings.json",
        {"version": __version__, **settings, "arch": space.format(arch), "options": options},
    )
    try:
        history = train(
            network,
            data,
            config,
            out,
            resume=args.resume,
            progress=not args.quiet,
            description=description,
        )
    except KeyboardInterrupt:
        print(f"interrupted; finished epochs are in {out}/history.csv", file=sys.stderr)
        return 130
    last = history[-1]
    print(
        f"epoch {last['epoch']}: test accuracy {last['test_acc']:.2f}% "
        f"(test loss {last['test_loss']:.3f}); history in {out}/history.csv"
    )
    return 0


def _add_network_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", required=True, help="genotype or cell string, name, or file")
    parser.add_argument(
        "--cells", type=int, help="N: normal cells per stage (nasnet 6, nb201 5 by default)"
    )
    parser.add_argument(
        "--filters", type=int, help="F: filters in the penultimate layer (768 / 64 by default)"
    )
    parser.add_argument(
        "--stem", choices=("cifar", "imagenet"), help="nasnet stem (default: by input size)"
    )


def cmd_petri_groundtruth(args: argparse.Namespace) -> int:
    from nasbox.estimators.petri.groundtruth import slope_groundtruth

    out = slope_groundtruth(args.out, seed=args.seed, repeats=args.repeats, progress=not args.quiet)
    print(f"wrote the slope ground truth (100 slopes, validation accuracy in %) to {out}")
    return 0


def cmd_petri_fit(args: argparse.Namespace) -> int:
    from nasbox.estimators.petri import PetriDish, default_config, get_motif_space
    from nasbox.estimators.petri.evaluation import choose_labelled, load_labels

    space = get_motif_space(args.space)
    labels = load_labels(args.labels, space, args.column)
    chosen, _ = choose_labelled(space, labels, args.k, args.seed)
    fit_on = labels.subset(chosen)
    config = default_config(
        args.space,
        loss=args.loss,
        outer_steps=args.outer_steps,
        inner_steps=args.inner_steps,
        samples=args.samples,
        restarts=args.restarts,
    )
    dish = PetriDish(space, config, seed=args.seed)
    losses = dish.fit(fit_on.motifs, fit_on.values, progress=not args.quiet)
    path = dish.save(args.out)
    restarts = (
        f"; best of {len(dish.restart_losses)} restarts, whose best losses were "
        + ", ".join(f"{loss:.4f}" for loss in dish.restart_losses)
        if len(dish.restart_losses) > 1
        else ""
    )
    print(
        f"fitted a {args.space} dish on {len(fit_on)} motifs in {dish.fit_seconds:.1f} s "
        f"(outer loss {losses[0]:.4f} -> best {min(losses):.4f}{restarts}); saved {path}"
        if losses
        else f"saved an unfitted {args.space} dish to {path}"
    )
    return 0


def cmd_petri_evaluate(args: argparse.Namespace) -> int:
    from nasbox.estimators.petri import PetriDish
    from nasbox.estimators.petri.evaluation import (
        Labels,
        compare_predictors,
        held_out_motifs,
        load_labels,
    )

    dish = PetriDish.load(args.dish)
    if not dish.labelled:
        raise NasboxError(f"{args.dish}: the dish was never fitted; run `nasbox petri fit`")
    labels = load_labels(args.labels, dish.space, args.column)
    held_out = args.held_out if args.held_out else None
    test = held_out_motifs(labels, dish.labelled, held_out, args.seed)
    started = time.perf_counter()
    scores = dish.predict(test.motifs, progress=not args.quiet)
    seconds = (time.perf_counter() - started) / len(test)
    train = Labels(dish.labelled, np.asarray(dish.labels, dtype=float))
    results = compare_predictors(dish.space, train, test, {"petri": scores}, args.seed)
    print(f"{len(test)} held-out motifs; the dish was fitted on {len(train)}")
    print(f"{'predictor':<10} {'motifs':<14} {'spearman':>9} {'kendall':>9}")
    for method, groups in results.items():
        for group, values in groups.items():
            print(f"{method:<10} {group:<14} {values['spearman']:>9.3f} {values['kendall']:>9.3f}")
    print(f"dish prediction: {seconds:.4f} s per motif (batched)")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["arch", args.column, "petri"])
            for motif, value, score in zip(test.motifs, test.values, scores, strict=True):
                writer.writerow([dish.space.format(motif), value, repr(float(score))])
        print(f"wrote the predictions to {out}")
    return 0


def _add_petri_parser(commands) -> None:
    petri = commands.add_parser(
        "petri", help="Synthetic Petri Dish: fit learned data that ranks motifs, evaluate it"
    )
    actions = petri.add_subparsers(dest="petri_command", required=True, metavar="ACTION")

    groundtruth = actions.add_parser(
        "groundtruth", help="train the 100 sigmoid-slope MLPs on digits; write the label CSV"
    )
    groundtruth.add_argument(
        "--out", default="benchmarks/results/slope_groundtruth.csv", help="CSV to write"
    )
    groundtruth.add_argument("--seed", type=int, default=0, help="seed of the first repeat")
    groundtruth.add_argument("--repeats", type=int, default=10, help="initialisations averaged")
    groundtruth.add_argument("--quiet", action="store_true", help="no progress bar")
    groundtruth.set_defaults(handler=cmd_petri_groundtruth)

    fit = actions.add_parser("fit", help="learn synthetic data on K labelled motifs")
    fit.add_argument("--space", default="slope", help="motif space: slope or nb201")
    fit.add_argument("--labels", required=True, help="CSV with columns arch and --column")
    fit.add_argument("--column", default="valid_acc", help="ground-truth column (higher=better)")
    fit.add_argument("--k", type=int, default=18, help="labelled motifs to fit on")
    fit.add_argument("--seed", type=int, default=0, help="seed for every random choice")
    fit.add_argument(
        "--loss",
        choices=["mse", "rank"],
        help="outer loss (default: the space's; mse for slope, rank for nb201)",
    )
    fit.add_argument("--outer-steps", type=int, help="override the space's default")
    fit.add_argument("--inner-steps", type=int, help="override the space's default")
    fit.add_argument("--samples", type=int, help="synthetic train (and val) inputs")
    fit.add_argument(
        "--restarts",
        type=int,
        help="fits from fresh initialisations, lowest outer loss kept (default: 4 slope, 1 nb201)",
    )
    fit.add_argument("--out", required=True, help="dish file to write (e.g. dish.pt)")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.set_defaults(handler=cmd_petri_fit)

    evaluate = actions.add_parser(
        "evaluate", help="rank correlations on the motifs not used for fitting, with baselines"
    )
    evaluate.add_argument("dish", help="dish file from `nasbox petri fit`")
    evaluate.add_argument("--labels", required=True, help="CSV with columns arch and --column")
    evaluate.add_argument("--column", default="valid_acc", help="ground-truth column")
    evaluate.add_argument(
        "--held-out", type=int, default=1000, help="sample this many held-out motifs (0 = all)"
    )
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the held-out sample")
    evaluate.add_argument("--out", help="CSV of the dish's predictions")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(handler=cmd_petri_evaluate)


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
    _add_prescore_option(search)
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
    _add_prescore_option(run)
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

    train_parser = commands.add_parser("train", help="train an architecture (N@F) on a data set")
    _add_space_option(train_parser)
    _add_network_options(train_parser)
    train_parser.add_argument("--data", default="digits", help="digits, cifar10 or npz:FILE")
    train_parser.add_argument("--data-dir", help="folder of the CIFAR-10 python batches")
    train_parser.add_argument("--epochs", type=int, default=10)
    train_parser.add_argument("--batch-size", type=int, default=64)
    train_parser.add_argument("--lr", type=float, default=0.025, help="initial learning rate")
    train_parser.add_argument("--momentum", type=float, default=0.9)
    train_parser.add_argument("--weight-decay", type=float, default=3e-4)
    train_parser.add_argument("--cutout", type=int, default=16, help="cutout side (0: off)")
    train_parser.add_argument(
        "--drop-path", type=float, default=0.2, help="final ScheduledDropPath probability"
    )
    train_parser.add_argument(
        "--aux-weight", type=float, default=0.4, help="auxiliary-head loss weight (0: no head)"
    )
    train_parser.add_argument("--dropout", type=float, default=0.0, help="before the classifier")
    train_parser.add_argument("--seed", type=int, default=0)
    train_parser.add_argument("--out", help="results folder (default: runs/train-TIMESTAMP)")
    train_parser.add_argument(
        "--resume", action="store_true", help="continue from --out/checkpoint.pt"
    )
    train_parser.add_argument("--quiet", action="store_true", help="no progress bars")
    train_parser.set_defaults(handler=cmd_train)

    describe = commands.add_parser("describe", help="parameters and multiply-adds of N@F")
    _add_space_option(describe)
    _add_network_options(describe)
    describe.add_argument("--input", type=int, default=32, help="input side in pixels")
    describe.add_argument("--classes", type=int, default=1000)
    describe.set_defaults(handler=cmd_describe)

    _add_petri_parser(commands)
    return parser


def _stop_on_sigterm(signum, frame) -> None:
    """A scheduler's or `kill`'s SIGTERM stops a command like Ctrl-C: finished work is kept."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if in_main_thread else None
    try:
        return args.handler(args)
    except NasboxError as err:
        print(f"nasbox: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nasbox: interrupted", file=sys.stderr)
        return 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
