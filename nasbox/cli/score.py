"""`nasbox score`: score listed architectures with one or more estimators.

Training-free estimators of one architecture share its network and passes (`score_together`).
"""

import argparse
import contextlib
import csv
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from nasbox.cli.common import (
    add_benchmark_option,
    add_command,
    add_data_options,
    add_overwrite_option,
    add_space_option,
    check_output_file,
    estimator_context,
    estimator_help,
    read_text_lines,
    split_names,
)
from nasbox.errors import NasboxError
from nasbox.estimators import get_estimator
from nasbox.estimators.probe import score_together
from nasbox.runs import replaced_atomically
from nasbox.spaces import get_space


@contextlib.contextmanager
def _csv_target(out: Path | None):
    """Standard output, or a temporary file that replaces `out` when scoring ends."""
    if out is None:
        yield sys.stdout
        return
    with replaced_atomically(out) as temporary, temporary.open("w", newline="") as handle:
        yield handle


def cmd_score(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    names = split_names(args.estimator, "--estimator")
    out = check_output_file(args.out, args.overwrite) if args.out is not None else None
    archs_path = Path(args.archs)
    lines = read_text_lines(archs_path, "one architecture per line")
    archs = space.parse_many(lines, source=str(archs_path))
    if not archs:
        raise NasboxError(f"{archs_path}: no architectures in the file")
    context = estimator_context(args, space, names)
    estimators = [get_estimator(name, context) for name in names]
    scored = 0
    with _csv_target(out) as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", *names, "seconds"])
        try:
            for arch in tqdm(archs, desc="score", unit="arch", disable=args.quiet):
                start = time.perf_counter()
                values = score_together(estimators, arch)
                seconds = time.perf_counter() - start
                writer.writerow([space.format(arch), *map(repr, values), f"{seconds:.4f}"])
                handle.flush()
                scored += 1
        except KeyboardInterrupt:
            where = out or "standard output"
            print(
                f"interrupted; the {scored} architectures scored so far are in {where}",
                file=sys.stderr,
            )
            return 130
    if out is not None:
        print(f"scored {len(archs)} architectures with {', '.join(names)}; wrote {out}")
    return 0


def add_parser(commands) -> None:
    parser = add_command(commands, "score", "score listed architectures with estimators")
    add_space_option(parser)
    parser.add_argument("--estimator", default="naswot", help=estimator_help())
    parser.add_argument(
        "--archs", required=True, help="UTF-8 text file with one architecture per line"
    )
    add_data_options(parser)
    add_benchmark_option(parser)
    parser.add_argument("--out", help="CSV file to write (default: standard output)")
    add_overwrite_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=cmd_score)
