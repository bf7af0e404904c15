"""Options and helpers that several commands share."""

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from nasbox.benchmarks import TabularBenchmark
from nasbox.data import load_data
from nasbox.errors import NasboxError
from nasbox.estimators import EstimatorContext
from nasbox.spaces import SPACES


def add_data_options(parser: argparse.ArgumentParser) -> None:
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


def add_prescore_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prescore",
        default="naswot",
        help="training-free estimator for strategies that pre-score cells (area)",
    )


def add_space_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", default="nb201", help=f"one of: {', '.join(SPACES.names())}")


def add_benchmark_option(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--benchmark",
        required=required,
        help="benchmark table (CSV or Parquet: arch + metric columns) for table:<column>",
    )


def estimator_context(
    args: argparse.Namespace, space, estimators: Sequence[str]
) -> EstimatorContext:
    data_needed = any(name.split(":")[0] in {"naswot", "jacov"} for name in estimators)
    data = load_data(args.data, args.data_dir) if data_needed or args.data != "digits" else None
    benchmark_file = getattr(args, "benchmark", None)
    benchmark = TabularBenchmark.from_file(benchmark_file) if benchmark_file else None
    return EstimatorContext(
        space, data, seed=args.seed, batch_size=args.batch_size, benchmark=benchmark
    )


def default_out(command: str) -> Path:
    return Path("runs") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"


def split_names(text: str, what: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise NasboxError(f"{what} needs at least one value")
    return names


def network_options(args: argparse.Namespace, input_size: int) -> dict:
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


def read_arch(space, text: str):
    path = Path(text)
    if path.suffix in {".txt", ".json"} and path.is_file():
        text = path.read_text()
    return space.parse(text)


def add_network_options(parser: argparse.ArgumentParser) -> None:
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
