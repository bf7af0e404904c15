"""`nasbox score`: score listed architectures with one or more estimators."""

import argparse
import csv
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from nasbox.cli.common import (
    add_benchmark_option,
    add_data_options,
    add_space_option,
    estimator_context,
)
from nasbox.errors import NasboxError
from nasbox.estimators import ESTIMATORS, get_estimator
from nasbox.spaces import get_space


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
    context = estimator_context(args, space, names)
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


def add_parser(commands) -> None:
    score = commands.add_parser("score", help="score listed architectures with estimators")
    add_space_option(score)
    score.add_argument(
        "--estimator",
        default="naswot",
        help=f"comma-separated, from: {', '.join(ESTIMATORS.names())}",
    )
    score.add_argument("--archs", required=True, help="file with one architecture per line")
    add_data_options(score)
    add_benchmark_option(score)
    score.add_argument("--out", help="CSV file to write (default: standard output)")
    score.add_argument("--quiet", action="store_true", help="no progress bar")
    score.set_defaults(handler=cmd_score)
