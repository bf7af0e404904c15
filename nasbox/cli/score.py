"""`nasbox score`: score listed architectures with one or more estimators.

Training-free estimators of one architecture share its network and passes (`score_together`).
With `--workers N`, N local processes score architectures at once; rows keep the file's order.
"""

import argparse
import contextlib
import csv
import functools
import sys
import time
from collections.abc import Hashable, Iterator
from pathlib import Path

from tqdm.auto import tqdm

from nasbox.cli.common import (
    add_benchmark_option,
    add_command,
    add_data_options,
    add_overwrite_option,
    add_space_option,
    check_csv_out,
    check_local_workers,
    check_not_an_input,
    check_output_file,
    estimator_context,
    estimator_help,
    estimator_spec,
    note,
    note_unread_benchmark,
    read_arch,
    read_text_lines,
    split_names,
)
from nasbox.errors import NasboxError, counted
from nasbox.estimators import get_estimator
from nasbox.estimators.probe import score_together
from nasbox.runs import (
    EstimatorSpec,
    ProcessExecutor,
    evaluations_in_order,
    replaced_atomically,
)
from nasbox.spaces import get_space, read_elsewhere


@contextlib.contextmanager
def _csv_target(out: Path | None):
    """Standard output, or a temporary file that replaces `out` when scoring ends."""
    if out is None:
        yield sys.stdout
        return
    with replaced_atomically(out) as temporary, temporary.open("w", newline="") as handle:
        yield handle


def _scored_in_process(estimators, archs: list[Hashable]) -> Iterator[tuple]:
    for arch in archs:
        start = time.perf_counter()
        values = score_together(estimators, arch)
        yield arch, values, time.perf_counter() - start, None


def _scored_by_workers(spec: EstimatorSpec, workers: int, archs: list[Hashable]) -> Iterator[tuple]:
    """(arch, values or None, seconds, error) in the order of `archs`, scored by `workers`
    processes; a refused setting stops scoring, any other failure fails only its row."""
    with ProcessExecutor(spec, workers) as executor:
        for evaluation in evaluations_in_order(executor, archs):
            if evaluation.bad_input:
                raise NasboxError(evaluation.error)
            value = evaluation.value
            values = (
                None if evaluation.failed else list(value if isinstance(value, tuple) else [value])
            )
            yield evaluation.arch, values, evaluation.seconds, evaluation.error


def cmd_score(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    names = split_names(args.estimator, "--estimator", estimators=True)
    check_local_workers(args.workers)
    out = check_output_file(args.out, args.overwrite) if args.out is not None else None
    if out is not None:
        check_csv_out(out, "score")
        check_not_an_input(out, {"--archs": args.archs} if args.archs else {})
    if args.arch is not None:
        archs = [read_arch(space, args.arch)]
    else:
        if not args.archs.strip():  # an unset shell variable: read as ".", "is a folder"
            raise NasboxError("--archs is empty; give a text file with one architecture per line")
        lines = read_text_lines(Path(args.archs), "one architecture per line")
        hint = functools.partial(read_elsewhere, space)
        archs = space.parse_many(lines, source=args.archs, hint=hint)
        if not archs:
            raise NasboxError(f"{args.archs}: no architectures in the file")
    note_unread_benchmark(args, names, "--estimator")
    context = estimator_context(args, space, names)
    estimators = [get_estimator(name, context) for name in names]
    workers = min(args.workers, len(archs))
    rows = (
        _scored_in_process(estimators, archs)
        if workers == 1
        else _scored_by_workers(estimator_spec(args, context, ",".join(names)), workers, archs)
    )
    scored, failures, stopped = 0, [], None
    where = out or "standard output"
    try:
        with _csv_target(out) as handle:
            writer = csv.writer(handle)
            writer.writerow(["arch", *names, "seconds"])
            try:
                for arch, values, seconds, error in tqdm(
                    rows, total=len(archs), desc="score", unit="arch", disable=args.quiet
                ):
                    if values is None:
                        failures.append(f"{space.format(arch)}: {error}")
                        values = [""] * len(names)
                    else:
                        values = [repr(float(value)) for value in values]
                    writer.writerow([space.format(arch), *values, f"{seconds:.4f}"])
                    handle.flush()
                    scored += 1
            except KeyboardInterrupt:
                if not scored:
                    raise  # nothing to keep: leaving the block unfinished keeps an earlier --out
                so_far = counted(scored, "architecture")
                print(f"interrupted; {so_far} scored so far in {where}", file=sys.stderr)
                return 130
            except NasboxError as err:  # a refused setting: keep the rows scored before it
                stopped = err
    except KeyboardInterrupt:
        kept = f"; {out} is as it was" if out is not None and out.exists() else ""
        print(f"interrupted before any architecture was scored{kept}", file=sys.stderr)
        return 130
    if stopped is not None:
        before = counted(scored, "architecture")
        raise NasboxError(f"{stopped} ({before} scored before it in {where})")
    if failures:
        note(
            f"{len(failures)} of {len(archs)} architectures failed and have empty values in "
            f"{where}; the first: {failures[0]}"
        )
    if out is not None:
        print(f"scored {counted(len(archs), 'architecture')} with {', '.join(names)}; wrote {out}")
    return 0


def add_parser(commands) -> None:
    parser = add_command(commands, "score", "score listed architectures with estimators")
    add_space_option(parser)
    parser.add_argument("--estimator", default="naswot", help=estimator_help())
    archs = parser.add_mutually_exclusive_group(required=True)
    archs.add_argument("--archs", help="UTF-8 text file with one architecture per line")
    archs.add_argument("--arch", help="one architecture: a string, a name or a .txt/.json file")
    add_data_options(parser)
    add_benchmark_option(parser)
    parser.add_argument("--out", help="CSV file to write (default: standard output)")
    add_overwrite_option(parser)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local processes scoring at once, threads shared out so workers x threads = cores "
        "(on 2 cores, 2 score NASWOT about 1.2x faster)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=cmd_score)
