"""The `nasbox` command line: search, score, petri."""

import argparse
import csv
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from nasbox import __version__
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


def _context(args: argparse.Namespace, space, estimators: Sequence[str]) -> EstimatorContext:
    data_needed = any(name.split(":")[0] in {"naswot", "jacov"} for name in estimators)
    data = load_data(args.data, args.data_dir) if data_needed or args.data != "digits" else None
    return EstimatorContext(space, data, seed=args.seed, batch_size=args.batch_size)


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
    )
    dish = PetriDish(space, config, seed=args.seed)
    losses = dish.fit(fit_on.motifs, fit_on.values, progress=not args.quiet)
    path = dish.save(args.out)
    print(
        f"fitted a {args.space} dish on {len(fit_on)} motifs in {dish.fit_seconds:.1f} s "
        f"(outer loss {losses[0]:.4f} -> best {min(losses):.4f}); saved {path}"
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
    groundtruth.add_argument("--repeats", type=int, default=3, help="initialisations averaged")
    groundtruth.add_argument("--quiet", action="store_true", help="no progress bar")
    groundtruth.set_defaults(handler=cmd_petri_groundtruth)

    fit = actions.add_parser("fit", help="learn synthetic data on K labelled motifs")
    fit.add_argument("--space", default="slope", help="motif space: slope or nb201")
    fit.add_argument("--labels", required=True, help="CSV with columns arch and --column")
    fit.add_argument("--column", default="valid_acc", help="ground-truth column (higher=better)")
    fit.add_argument("--k", type=int, default=18, help="labelled motifs to fit on")
    fit.add_argument("--seed", type=int, default=0, help="seed for every random choice")
    fit.add_argument("--loss", default="mse", choices=["mse", "rank"], help="outer loss")
    fit.add_argument("--outer-steps", type=int, help="override the space's default")
    fit.add_argument("--inner-steps", type=int, help="override the space's default")
    fit.add_argument("--samples", type=int, help="synthetic train (and val) inputs")
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
    _add_data_options(search)
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
    score.add_argument("--out", help="CSV file to write (default: standard output)")
    score.add_argument("--quiet", action="store_true", help="no progress bar")
    score.set_defaults(handler=cmd_score)

    _add_petri_parser(commands)
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
