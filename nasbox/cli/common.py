"""Options and helpers that several commands share."""

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path

from nasbox.benchmarks import TabularBenchmark
from nasbox.checks import check_count, check_seed, first_repeated
from nasbox.data import DATA_SOURCES, ImageData, load_for
from nasbox.errors import NasboxError, note
from nasbox.estimators import ESTIMATORS, EstimatorContext
from nasbox.estimators.objectives import split_specs
from nasbox.runs import EstimatorSpec, check_output_path
from nasbox.spaces import SPACES, read_elsewhere
from nasbox.strategies import STRATEGIES, uses_prescore

DEFAULT_SPACE = "nb201"


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to options that have a default; flags and unset options stay bare."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def add_command(commands, name: str, help: str) -> argparse.ArgumentParser:
    """A subcommand whose --help shows every option's default."""
    return commands.add_parser(
        name, help=help, description=help, formatter_class=DefaultsHelpFormatter
    )


def data_help() -> str:
    return "; ".join(f"{syntax}: {summary}" for syntax, summary, _ in DATA_SOURCES)


def estimator_help() -> str:
    names = ", ".join(ESTIMATORS.get(name).syntax() for name in ESTIMATORS.names())
    return f"comma-separated, from: {names} (`nasbox list` says what each one does)"


# Serving batches stay far below this; a larger one measures throughput, and its images alone
# (allocated before the first pass) exhaust memory: 10^8 of 32x32 asked for 1.2 TB.
MAX_LATENCY_BATCH = 1024


def add_data_options(parser: argparse.ArgumentParser) -> None:
    add_data_source_options(parser)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=128,
        help="minibatch of training-free scores and of train:EPOCHS (at most the training images)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="NASWOT's forward pass: fp32, bf16 (bfloat16 autocast; same ranking, faster on "
        "CPUs with bf16 instructions) or auto (bf16 where the CPU has them)",
    )
    parser.add_argument(
        "--latency-batch",
        type=int,
        default=1,
        help=f"images per forward pass of the latency estimator (at most {MAX_LATENCY_BATCH})",
    )
    add_seed_option(parser)


PRECISIONS = ("fp32", "bf16", "auto")


def resolve_precision(precision: str) -> str:
    """`auto` is bf16 where the CPU has fast bf16 instructions (oneDNN says so), else fp32."""
    if precision != "auto":
        return precision
    import torch

    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "bf16"
    note("this CPU has no fast bf16 instructions; NASWOT runs in fp32 (--precision auto)")
    return "fp32"


def add_data_source_options(parser: argparse.ArgumentParser) -> None:
    """--data, --data-dir and --image-size: where the images come from and their size."""
    parser.add_argument("--data", default="digits", help=data_help())
    parser.add_argument("--data-dir", help="folder of the CIFAR-10 python batches")
    parser.add_argument(
        "--image-size",
        type=int,
        metavar="N",
        help="folder:DIR only: resize images to N x N (default: keep their size if all share "
        "one, else 32)",
    )


def add_seed_option(parser: argparse.ArgumentParser, help: str = "seed for every random choice"):
    parser.add_argument("--seed", type=int, default=0, help=f"{help} (0 .. 2**32-1)")


def add_overwrite_option(parser: argparse.ArgumentParser, what: str = "--out") -> None:
    parser.add_argument(
        "--overwrite", action="store_true", help=f"replace the results already in {what}"
    )


def add_prescore_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prescore",
        default="naswot",
        help="training-free estimator for strategies that pre-score cells (area)",
    )


def option_given(argv: Sequence[str], option: str) -> bool:
    """Whether the command line names `option` (not merely leaves it at its default)."""
    return any(token == option or token.startswith(option + "=") for token in argv)


def check_prescore(
    args: argparse.Namespace, space, strategies: Sequence[str], read_by_prescore: Sequence[str] = ()
) -> bool:
    """Whether one of `strategies` pre-scores cells (AREA does), with a `--prescore` that fits
    `space`; `--prescore` (and `read_by_prescore`, options read only to pre-score) given to
    strategies that ignore it is refused, as strategy options are.
    """
    if not any(uses_prescore(name) for name in strategies):
        users = ", ".join(name for name in STRATEGIES.names() if uses_prescore(name))
        chosen = ",".join(strategies)
        if option_given(args.argv, "--prescore"):
            raise NasboxError(
                f"--prescore is read by strategies that pre-score cells ({users}); --strategy "
                f"{chosen} does not use it: drop --prescore"
            )
        given = next(
            (option for option in read_by_prescore if option_given(args.argv, option)), None
        )
        if given is not None:
            raise NasboxError(
                f"{given} is read by strategies that pre-score cells ({users}) with --prescore; "
                f"--strategy {chosen} only looks up the table: drop {given}"
            )
        return False
    name = args.prescore.split(":")[0].strip()
    if name == "train":  # training every candidate it considers defeats the point of it
        raise NasboxError(
            f"--prescore {args.prescore} trains every candidate; pre-scoring needs a "
            "training-free estimator such as naswot or jacov"
        )
    modality = ESTIMATORS.get(name).modality
    if modality not in (None, space.modality):
        fitting = [
            ESTIMATORS.get(other).syntax()
            for other in ESTIMATORS.names()
            if ESTIMATORS.get(other).modality in (None, space.modality) and other != "train"
        ]
        default = "" if option_given(args.argv, "--prescore") else " (the default)"
        raise NasboxError(
            f"--prescore {args.prescore}{default} scores {modality} networks and space "
            f"{space.name} builds {space.modality} networks; give --prescore "
            f"{' or '.join(fitting)}"
        )
    return True


def add_space_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--space", default=DEFAULT_SPACE, help=f"one of: {', '.join(SPACES.names())}"
    )


def add_benchmark_option(
    parser: argparse.ArgumentParser, required: bool = False, read_by: str = "table:COLUMN"
) -> None:
    parser.add_argument(
        "--benchmark",
        required=required,
        help=f"benchmark table (CSV or Parquet: arch + metric columns) for {read_by}",
    )


def note_unread_benchmark(args: argparse.Namespace, estimators: Sequence[str], where: str) -> None:
    """A --benchmark that none of `estimators` looks up (no table:COLUMN) was loaded and then
    silently unused; a note says so and which option (`where`) reads it. An --import may
    register an estimator that reads it itself."""
    reads = any(spec.split(":")[0].strip() == "table" for spec in estimators)
    if args.benchmark and not reads and not getattr(args, "imports", None):
        note(f"--benchmark {args.benchmark} is not read: only table:COLUMN in {where} looks it up")


def require_images(space, what: str) -> None:
    """Refuse a space whose networks are not image classifiers for `what` (image-only work)."""
    if space.modality != "image":
        raise NasboxError(
            f"space {space.name} scores {space.modality}: its networks are language models, and "
            f"{what} works on image networks; score its cells with lm:STEPS (--data text:FILE) "
            f"or table:COLUMN (--benchmark), or train one with nasbox train --space {space.name}"
        )


def check_modality(space, name: str) -> None:
    """Estimator `name` must read what the space's networks read (images or text)."""
    modality = ESTIMATORS.get(name).modality
    if modality is None or modality == space.modality:
        return
    if modality == "image":
        require_images(space, f"estimator {name!r}")
    raise NasboxError(
        f"estimator {name!r} scores {modality} networks and space {space.name} builds "
        f"{space.modality} networks; use it with --space rnn"
    )


def estimator_context(
    args: argparse.Namespace, space, estimators: Sequence[str]
) -> EstimatorContext:
    """The context for `estimators`; an image space always gets its --data (digits by default),
    so that params, flops and latency measure the network the data feeds, whichever other
    estimators run beside them; a text space loads it when an estimator reads it or it is given.

    `batch_size` is the size actually used: at most the number of training images. A space
    whose networks read text takes text estimators and table lookups (`check_modality`).
    """
    for spec in estimators:
        check_modality(space, spec.split(":")[0].strip())
    check_seed(args.seed)
    check_count(args.batch_size, "--batch-size", minimum=2)  # scores compare images in a batch
    check_count(args.latency_batch, "--latency-batch")
    if args.latency_batch > MAX_LATENCY_BATCH:
        raise NasboxError(
            f"--latency-batch must be at most {MAX_LATENCY_BATCH} images per timed pass, got "
            f"{args.latency_batch}"
        )
    data_needed = any(ESTIMATORS.get(name.split(":")[0].strip()).needs_data for name in estimators)
    load = (
        data_needed
        or space.modality != "text"
        or args.data != "digits"
        or args.image_size is not None
    )
    data = load_for(space.modality, args.data, args.data_dir, args.image_size) if load else None
    batch_size = args.batch_size
    if isinstance(data, ImageData) and batch_size > len(data.x_train):
        batch_size = len(data.x_train)
        note(
            f"--batch-size {args.batch_size} is more than the {batch_size} training images of "
            f"{data.name}; using {batch_size}"
        )
    benchmark_file = getattr(args, "benchmark", None)
    benchmark = TabularBenchmark.from_file(benchmark_file) if benchmark_file else None
    return EstimatorContext(
        space,
        data,
        seed=args.seed,
        batch_size=batch_size,
        benchmark=benchmark,
        latency_batch=args.latency_batch,
        precision=resolve_precision(args.precision),
    )


def default_out(command: str) -> Path:
    return Path("runs") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"


def out_folder(out: str | None, command: str) -> Path:
    """--out, or `default_out` where it is left out. An empty --out (an unset shell variable) is
    refused as every other command refuses it, not taken as left out: that wrote a new
    runs/COMMAND-TIMESTAMP folder the user did not ask for."""
    if out is None:
        return default_out(command)
    check_output_path(out)
    return Path(out)


def split_names(text: str, what: str, estimators: bool = False) -> list[str]:
    """Comma-separated values, each once; `estimators` keeps `swap_reg:MU,SIGMA` whole."""
    parts = split_specs(text) if estimators else text.split(",")
    names = [name.strip() for name in parts]
    if not any(names):
        raise NasboxError(f"{what} needs at least one value")
    if not all(names):
        raise NasboxError(f"{what} {text!r} has an empty value; remove the extra comma")
    twice = first_repeated(names)
    if twice is not None:
        raise NasboxError(f"{what} names {twice!r} twice; give each value once")
    return names


def check_csv_out(path: Path, command: str) -> Path:
    """A CSV output must be named .csv: one written under another name (pred.pt) was taken for
    what the name says by the next program that opened it."""
    if path.suffix.lower() != ".csv":
        raise NasboxError(f"--out {path}: {command} writes CSV; give a path ending in .csv")
    return path


def check_output_file(path: str | Path, overwrite: bool) -> Path:
    """Refuse, before any compute, a file path that cannot be written or holds earlier results."""
    if not str(path).strip():
        raise NasboxError("--out is empty; give a file name")
    path = Path(path)
    try:
        is_dir = path.is_dir()
    except OSError as err:
        raise NasboxError(f"--out {path}: cannot reach it ({err.strerror})") from None
    if is_dir:
        raise NasboxError(f"--out {path} is a folder; give a file name")
    check_output_path(path.parent, named=path)
    if path.exists() and not path.is_file():  # --overwrite would rename a file over a device
        raise NasboxError(
            f"--out {path} is not a regular file (a device or pipe); give a file name"
        )
    if path.exists() and not overwrite:
        raise NasboxError(
            f"--out {path} already exists; choose another file name or pass --overwrite"
        )
    return path


def check_not_an_input(out: Path, inputs: dict[str, str | Path]) -> None:
    """Refuse an output file that is one of the command's inputs, even with --overwrite: writing
    it would destroy what the command reads."""
    for input_option, path in inputs.items():
        if out.exists() and Path(path).exists() and out.samefile(path):
            raise NasboxError(
                f"--out {out} is the same file as {input_option} {path}; writing it would "
                f"replace {input_option}, so give --out another file name"
            )


def read_text_lines(path: Path, what: str) -> list[str]:
    """The lines of a UTF-8 text file (a byte-order mark, as some editors write, is dropped);
    a missing, binary or folder path is one clear error."""
    if path.is_dir():
        raise NasboxError(f"{path} is a folder; give a text file ({what})")
    if not path.is_file():
        raise NasboxError(f"{path}: file not found (expected {what})")
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise NasboxError(f"{path}: not a UTF-8 text file (expected {what})") from None
    except OSError as err:
        raise NasboxError(f"{path}: cannot read it ({err.strerror})") from None


# Far above every published network; larger ones exhaust memory or take hours to build.
MAX_CELLS, MAX_FILTERS = 100, 10000


def network_options(args: argparse.Namespace, space, arch, input_size: int, size: str) -> dict:
    """Build options for `--cells N --filters F` (N@F) and the stem for `input_size`."""
    return size_options(args, space, arch, size) | stem_options(args, space, input_size)


def size_options(args: argparse.Namespace, space, arch, size: str) -> dict:
    """Build options for `--cells N --filters F` (N@F) in the space's own terms; they need no
    data, so `train` refuses a wrong N@F before loading any.

    Without the options the space's `size` N@F is used: `published_size` (`describe`) or
    `laptop_size` (`train`). F is rounded to what the space can build; a note says so.
    """
    if args.cells is not None:
        check_count(args.cells, "--cells")
        if args.cells > MAX_CELLS:
            raise NasboxError(f"--cells must be at most {MAX_CELLS}, got {args.cells}")
    if args.filters is not None:
        check_count(args.filters, "--filters", minimum=8)
        if args.filters > MAX_FILTERS:
            raise NasboxError(
                f"--filters must be at most {MAX_FILTERS} (NASNet-A large has 4032), "
                f"got {args.filters}"
            )
    default_cells, default_filters = getattr(space, size)
    filters = args.filters or default_filters
    options, built = space.network_options(arch, args.cells or default_cells, filters)
    if args.filters is not None and built != filters:
        note(f"--filters {filters} builds {built} filters with this {space.name} architecture")
    return options


def stem_options(args: argparse.Namespace, space, input_size: int) -> dict:
    """The cell spaces' `--stem`, by default the one for images of side `input_size`."""
    if space.has_auxiliary_head:
        return {"stem": args.stem or ("imagenet" if input_size >= 128 else "cifar")}
    if args.stem:
        raise NasboxError(f"--stem applies to cell spaces like nasnet, not to {space.name}")
    return {}


def read_arch(space, text: str | None):
    """`--arch`: a string, a name or a .txt/.json file; the space's default when not given.
    An empty file is named as such: parsed, it was a "malformed cell ''". One of another space
    is refused with the --space that reads it."""
    if text is None:
        text = space.default_arch
    path = Path(text)
    if path.suffix in {".txt", ".json"}:  # no architecture string ends so: a file, or missing
        text = "\n".join(read_text_lines(path, "an architecture"))
        if not text.strip():
            what = "holds only whitespace" if text else "is empty"
            raise NasboxError(
                f"{path}: the file {what}; write the architecture in it, e.g. {space.default_arch}"
            )
    try:
        return space.parse(text)
    except NasboxError as err:
        raise NasboxError(f"{err}{read_elsewhere(space, text)}") from None


def add_network_options(parser: argparse.ArgumentParser, size: str) -> None:
    spaces = [(name, SPACES.get(name)) for name in SPACES.names()]
    defaults = "; ".join(f"{name} {space.default_arch}" for name, space in spaces)
    parser.add_argument(
        "--arch",
        help=f"cell string or genotype, a name, or a .txt/.json file (default: {defaults})",
    )
    by_space = {
        option: ", ".join(f"{name} {getattr(space, size)[index]}" for name, space in spaces)
        for index, option in enumerate(("cells", "filters"))
    }
    parser.add_argument(
        "--cells", type=int, help=f"N: normal cells per stage (default: {by_space['cells']})"
    )
    parser.add_argument(
        "--filters",
        type=int,
        help=f"F: filters in the penultimate layer (default: {by_space['filters']})",
    )
    parser.add_argument(
        "--stem", choices=("cifar", "imagenet"), help="nasnet stem (default: by input size)"
    )


#: Local worker processes allowed per core: more only queue for the cores and their memory.
WORKERS_PER_CORE = 8


def check_local_workers(workers: int, instead: str = "use fewer") -> None:
    check_count(workers, "--workers")
    most = WORKERS_PER_CORE * (os.cpu_count() or 1)
    if workers > most:
        raise NasboxError(
            f"--workers {workers} local processes is more than {most} ({WORKERS_PER_CORE} per "
            f"core); {instead}"
        )


def estimator_spec(
    args: argparse.Namespace, context: EstimatorContext, estimator: str
) -> EstimatorSpec:
    """The recipe from which worker processes rebuild `estimator` with `context`'s settings."""
    return EstimatorSpec(
        args.space,
        estimator,
        data=args.data if context.data is not None else None,
        data_dir=args.data_dir,
        image_size=args.image_size,
        benchmark=str(Path(args.benchmark).resolve()) if getattr(args, "benchmark", None) else None,
        seed=args.seed,
        batch_size=context.batch_size,
        latency_batch=args.latency_batch,
        precision=context.precision,
        imports=tuple(getattr(args, "imports", ())),
    )
