"""`nasbox petri groundtruth | fit | evaluate`: the Synthetic Petri Dish."""

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from nasbox.checks import check_count, check_seed
from nasbox.cli.common import (
    add_command,
    add_overwrite_option,
    add_seed_option,
    check_csv_out,
    check_not_an_input,
    check_output_file,
)
from nasbox.errors import NasboxError, counted, note
from nasbox.runs import replaced_atomically

# `petri groundtruth` options only the rnn table reads (argparse attribute, option); their
# defaults are None so that one given for --space slope is refused rather than ignored.
RNN_ONLY_OPTIONS = (
    ("count", "--count"),
    ("train_seed", "--train-seed"),
    ("workers", "--workers"),
    ("hidden", "--hidden"),
    ("steps", "--steps"),
    ("batch_size", "--batch-size"),
    ("bptt", "--bptt"),
    ("valid_tokens", "--valid-tokens"),
    ("corpus", "--corpus"),
)


def _rnn_defaults() -> dict:
    """The rnn-only options' defaults: the documented protocol, 200 cells, 2 workers."""
    from nasbox.estimators.petri.rnn_groundtruth import DEFAULT_CORPUS, RNNProtocol

    protocol = RNNProtocol()
    return {
        "count": 200,
        "train_seed": protocol.seed,
        "workers": 2,
        "hidden": protocol.hidden,
        "steps": protocol.steps,
        "batch_size": protocol.batch_size,
        "bptt": protocol.bptt,
        "valid_tokens": protocol.valid_tokens,
        "corpus": DEFAULT_CORPUS,
    }


def _per_space_defaults(setting: str) -> str:
    """A dish setting's default in every motif space, for --help: "mse for slope, ..."."""
    from nasbox.estimators.petri.dish import DEFAULT_CONFIGS

    return ", ".join(
        f"{getattr(config, setting)} for {space}" for space, config in DEFAULT_CONFIGS.items()
    )


def _adopt_groundtruth_options(args: argparse.Namespace) -> None:
    """Refuse an rnn-only option given for the slope table (it was silently ignored); fill in
    the defaults for rnn."""
    if args.space != "rnn":
        for key, option in RNN_ONLY_OPTIONS:
            if getattr(args, key) is not None:
                raise NasboxError(
                    f"{option} applies to --space rnn, not to --space {args.space}: drop "
                    f"{option} (or give --space rnn)"
                )
        return
    for key, value in _rnn_defaults().items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def cmd_petri_groundtruth(args: argparse.Namespace) -> int:
    _adopt_groundtruth_options(args)
    check_seed(args.seed)
    default = f"measurements/results/{args.space}_groundtruth.csv"
    # an rnn table is continued where it stopped (or started again with --overwrite); the slope
    # table is written whole
    out = check_output_file(
        default if args.out is None else args.out, overwrite=args.overwrite or args.space == "rnn"
    )
    if args.space == "rnn":
        check_not_an_input(out, {"--corpus": args.corpus})
        return _rnn_groundtruth(args, out)
    from nasbox.estimators.petri.groundtruth import slope_groundtruth

    repeats = 10 if args.repeats is None else args.repeats
    out = slope_groundtruth(out, seed=args.seed, repeats=repeats, progress=not args.quiet)
    print(f"wrote the slope ground truth (100 slopes, validation accuracy in %) to {out}")
    return 0


def _rnn_groundtruth(args: argparse.Namespace, out: Path) -> int:
    from nasbox.estimators.petri.rnn_groundtruth import (
        RNNProtocol,
        read_table,
        rnn_groundtruth,
        sample_cells,
    )

    cells = sample_cells(args.count, args.seed)
    protocol = RNNProtocol(
        hidden=args.hidden,
        steps=args.steps,
        batch_size=args.batch_size,
        bptt=args.bptt,
        valid_tokens=args.valid_tokens,
        seed=args.train_seed,
        initialisations=RNNProtocol.initialisations if args.repeats is None else args.repeats,
    )
    try:
        rnn_groundtruth(
            out,
            cells,
            args.corpus,
            protocol,
            workers=args.workers,
            progress=not args.quiet,
            overwrite=args.overwrite,
        )
    except KeyboardInterrupt:
        finished = counted(len(read_table(out)), "cell")
        print(
            f"interrupted; what finished ({finished}) is in {out} (a rerun without --overwrite "
            "trains the rest)",
            file=sys.stderr,
        )
        return 130
    print(
        f"wrote the rnn ground truth ({args.count} cells, validation perplexity: lower is "
        f"better) to {out}"
    )
    return 0


def cmd_petri_fit(args: argparse.Namespace) -> int:
    from nasbox.estimators.petri import PetriDish, default_config, get_motif_space
    from nasbox.estimators.petri.evaluation import choose_labelled, default_column, load_labels

    check_seed(args.seed)
    out = check_output_file(args.out, args.overwrite)
    check_not_an_input(out, {"--labels": args.labels})
    space = get_motif_space(args.space)
    labels = load_labels(
        args.labels, space, args.column or default_column(args.space), args.minimize
    )
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
    dish.check_fits_memory(len(fit_on))
    try:
        losses = dish.fit(fit_on.motifs, fit_on.values, progress=not args.quiet)
    except KeyboardInterrupt:
        finished = len(dish.restart_losses)
        if not finished:
            raise
        with replaced_atomically(out) as temporary:
            dish.save(temporary)
        print(
            f"interrupted; saved the best of the {finished} of {config.restarts} restarts that "
            f"finished (outer loss {dish.restart_losses[dish.restart]:.4f}) to {out}",
            file=sys.stderr,
        )
        return 130
    with replaced_atomically(out) as temporary:
        dish.save(temporary)
    restarts = (
        f"; best of {len(dish.restart_losses)} restarts, whose best losses were "
        + ", ".join(f"{loss:.4f}" for loss in dish.restart_losses)
        if len(dish.restart_losses) > 1
        else ""
    )
    print(
        f"fitted a {args.space} dish on {len(fit_on)} motifs in {dish.fit_seconds:.1f} s "
        f"(outer loss {losses[0]:.4f} -> best {min(losses):.4f}{restarts}); saved {out}"
        if losses
        else f"saved an unfitted {args.space} dish to {out}"
    )
    return 0


def cmd_petri_evaluate(args: argparse.Namespace) -> int:
    from nasbox.estimators.petri import PetriDish
    from nasbox.estimators.petri.evaluation import (
        Labels,
        compare_predictors,
        default_column,
        held_out_motifs,
        is_minimized,
        load_labels,
        motif_groups,
        unranked_groups,
    )

    check_seed(args.seed)
    check_count(args.held_out, "--held-out", minimum=0)
    if args.held_out == 1:
        raise NasboxError("--held-out 1: a rank correlation needs 2 motifs or more (0 = all)")
    out = check_output_file(args.out, args.overwrite) if args.out is not None else None
    if out is not None:
        check_not_an_input(out, {"the dish": args.dish, "--labels": args.labels})
        check_csv_out(out, "petri evaluate")
    dish = PetriDish.load(args.dish)
    if not dish.labelled:
        raise NasboxError(f"{args.dish}: the dish was never fitted; run `nasbox petri fit`")
    column = args.column or default_column(dish.space.name)
    labels = load_labels(args.labels, dish.space, column, args.minimize)
    sign = -1.0 if is_minimized(column, args.minimize) else 1.0
    held_out = args.held_out if args.held_out else None
    test = held_out_motifs(labels, dish.labelled, held_out, args.seed)
    started = time.perf_counter()
    scores = dish.predict(test.motifs, progress=not args.quiet)
    seconds = (time.perf_counter() - started) / len(test)
    train = Labels(dish.labelled, np.asarray(dish.labels, dtype=float))
    results = compare_predictors(dish.space, train, test, {"petri": scores}, args.seed)
    versus = f"minus {column} (lower is better)" if sign < 0 else column
    print(f"{len(test)} held-out motifs; the dish was fitted on {len(train)}; ranks vs {versus}")
    print(f"{'predictor':<10} {'motifs':<14} {'spearman':>9} {'kendall':>9}")
    for method, groups in results.items():
        for group, values in groups.items():
            print(f"{method:<10} {group:<14} {values['spearman']:>9.3f} {values['kendall']:>9.3f}")
    print(f"dish prediction: {seconds:.4f} s per motif (batched)")
    unranked = unranked_groups(motif_groups(dish.space, train, test), test)
    if unranked:
        groups = "; ".join(f"{group} ({why})" for group, why in unranked.items())
        note(
            f"{groups}: the ground truth ranks no motifs there, so every predictor's rank "
            "correlations are undefined (shown as nan)"
        )
    _note_predictors_without_ranking(results, set(unranked))
    if out is not None:
        with replaced_atomically(out) as temporary, temporary.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["arch", column, "petri"])
            for motif, value, score in zip(test.motifs, test.values, scores, strict=True):
                writer.writerow([dish.space.format(motif), sign * value, repr(float(score))])
        print(f"wrote the predictions to {out}")
    return 0


def _note_predictors_without_ranking(results: dict, unranked: set[str]) -> None:
    """One note for the correlations shown as nan because a predictor gave every motif of a
    group the same score (scipy printed its raw ConstantInputWarning instead); groups whose
    ground truth ranks nothing (`unranked`) are noted already."""
    same = {
        method: [
            group
            for group, values in groups.items()
            if values["all_same"] and group not in unranked
        ]
        for method, groups in results.items()
    }
    same = {method: groups for method, groups in same.items() if groups}
    if not same:
        return
    named = ", ".join(f"{method} ({', '.join(groups)})" for method, groups in same.items())
    dish = "; the dish is unfitted or has collapsed to one score" if "petri" in same else ""
    note(
        f"{named}: every prediction is the same, so the rank correlations are undefined (shown "
        f"as nan){dish}"
    )


def add_column_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--column",
        help="ground-truth column (default: valid_ppl for rnn, valid_acc for the others)",
    )
    parser.add_argument(
        "--minimize",
        action="store_true",
        help="lower values of --column are better (implied for *_ppl, *_loss, *_bpc columns)",
    )


def add_parser(commands) -> None:
    from nasbox.estimators.petri.rnn_groundtruth import MAX_GROUNDTRUTH_CELLS, MAX_HIDDEN

    petri = add_command(
        commands, "petri", "Synthetic Petri Dish: fit learned data that ranks motifs, evaluate it"
    )
    actions = petri.add_subparsers(dest="petri_command", required=True, metavar="ACTION")

    groundtruth = add_command(
        actions,
        "groundtruth",
        "train the 100 sigmoid-slope MLPs on digits, or a sample of rnn cells on text; write the "
        "label CSV",
    )
    groundtruth.add_argument(
        "--space", choices=["slope", "rnn"], default="slope", help="motif space"
    )
    groundtruth.add_argument(
        "--out",
        help="CSV to write (default measurements/results/SPACE_groundtruth.csv); rnn: the "
        "settings below and the corpus's content are recorded in OUT.json, and a rerun continues "
        "the table only under the same ones",
    )
    add_seed_option(groundtruth, "seed of the first repeat (slope) or of the cell sample (rnn)")
    groundtruth.add_argument(
        "--repeats",
        type=int,
        help="initialisations averaged (slope: default 10; rnn: default 2, the geometric mean "
        "of the perplexities from --train-seed, --train-seed + 1, ...)",
    )
    defaults = _rnn_defaults()
    groundtruth.add_argument(
        "--count",
        type=int,
        help=f"rnn: cells sampled, at most {MAX_GROUNDTRUTH_CELLS:,} (about a minute each; "
        f"default: {defaults['count']})",
    )
    groundtruth.add_argument(
        "--train-seed",
        type=int,
        help=f"rnn: seed of the networks' initialisation (default: {defaults['train_seed']})",
    )
    groundtruth.add_argument(
        "--workers",
        type=int,
        help=f"rnn: one-thread training processes (default: {defaults['workers']})",
    )
    for option, help_text in (
        ("hidden", f"rnn: hidden units, at most {MAX_HIDDEN}"),
        ("steps", "rnn: training chunks"),
        ("batch_size", "rnn: streams per chunk"),
        ("bptt", "rnn: time steps per chunk"),
        ("valid_tokens", "rnn: validation characters read, at least 2"),
    ):
        groundtruth.add_argument(
            "--" + option.replace("_", "-"),
            type=int,
            help=f"{help_text} (default: {defaults[option]}; other values change the documented "
            "protocol)",
        )
    groundtruth.add_argument(
        "--corpus", help=f"rnn: the text corpus (default: {defaults['corpus']})"
    )
    add_overwrite_option(groundtruth, "--out (an rnn table is otherwise continued)")
    groundtruth.add_argument("--quiet", action="store_true", help="no progress bar")
    groundtruth.set_defaults(handler=cmd_petri_groundtruth)

    fit = add_command(actions, "fit", "learn synthetic data on K labelled motifs")
    fit.add_argument("--space", default="slope", help="motif space: slope, nb201 or rnn")
    fit.add_argument("--labels", required=True, help="CSV with columns arch and --column")
    add_column_options(fit)
    fit.add_argument("--k", type=int, default=18, help="labelled motifs to fit on")
    add_seed_option(fit)
    fit.add_argument(
        "--loss",
        choices=["mse", "rank"],
        help=f"outer loss (default: the space's; {_per_space_defaults('loss')})",
    )
    fit.add_argument("--outer-steps", type=int, help="override the space's default")
    fit.add_argument("--inner-steps", type=int, help="override the space's default")
    fit.add_argument("--samples", type=int, help="synthetic train (and val) inputs")
    fit.add_argument(
        "--restarts",
        type=int,
        help="fits from fresh initialisations, lowest outer loss kept (default: "
        f"{_per_space_defaults('restarts')})",
    )
    fit.add_argument("--out", required=True, help="dish file to write (e.g. dish.pt)")
    add_overwrite_option(fit)
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    fit.set_defaults(handler=cmd_petri_fit)

    evaluate = add_command(
        actions, "evaluate", "rank correlations on the motifs not used for fitting, with baselines"
    )
    evaluate.add_argument("dish", help="dish file from `nasbox petri fit`")
    evaluate.add_argument("--labels", required=True, help="CSV with columns arch and --column")
    add_column_options(evaluate)
    evaluate.add_argument(
        "--held-out", type=int, default=1000, help="sample this many held-out motifs (0 = all)"
    )
    add_seed_option(evaluate, "seed of the held-out sample")
    evaluate.add_argument("--out", help="CSV of the dish's predictions (a path ending in .csv)")
    add_overwrite_option(evaluate)
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(handler=cmd_petri_evaluate)
