"""`nasbox train`: train an architecture (N@F) on a data set: an image classifier, or a language
model for spaces whose networks read text (`--space rnn --data text:FILE`)."""

import argparse
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from nasbox import __version__
from nasbox.checks import check_number
from nasbox.cli.common import (
    add_command,
    add_data_source_options,
    add_network_options,
    add_overwrite_option,
    add_seed_option,
    add_space_option,
    network_options,
    note,
    out_folder,
    read_arch,
    size_options,
    stem_options,
)
from nasbox.data import load_data, load_text_source
from nasbox.data.folder import TEST_FRACTION
from nasbox.data.text import check_tokens
from nasbox.errors import NasboxError
from nasbox.runs import COMMAND_RESULTS, RunFolder, write_json
from nasbox.spaces import SPACES, get_space
from nasbox.train import TrainConfig, train
from nasbox.train.language import LanguageConfig, train_language_model
from nasbox.train.trainer import check_same_settings, data_digest, load_checkpoint

# Files that mean "a run trained here before": refused unless --resume or --overwrite.
RESULTS = COMMAND_RESULTS["train"]


def _parameter_counts(network) -> str:
    """Parameters with and without the auxiliary head, which `nasbox describe` leaves out."""
    from nasbox.estimators.cost import count_parameters

    total = count_parameters(network)
    auxiliary = getattr(network, "auxiliary", None)
    if auxiliary is None:
        return f"{total / 1e6:.3f} M parameters"
    without = total - count_parameters(auxiliary)
    return (
        f"{total / 1e6:.3f} M parameters with the auxiliary head, {without / 1e6:.3f} M "
        "without it as `nasbox describe` counts"
    )


# Options of one kind of network only: (option, attribute); given for the other kind, an error.
IMAGE_OPTIONS = (
    ("--momentum", "momentum"),
    ("--cutout", "cutout"),
    ("--drop-path", "drop_path"),
    ("--aux-weight", "aux_weight"),
    ("--data-dir", "data_dir"),
    ("--image-size", "image_size"),
)
TEXT_OPTIONS = (
    ("--tokens", "tokens"),
    ("--bptt", "bptt"),
    ("--steps", "steps"),
    ("--dropout-input", "dropout_input"),
    ("--dropout-hidden", "dropout_hidden"),
)
# Options of cell networks only (spaces with `has_auxiliary_head`): the other image spaces build
# no drop path, auxiliary head or classifier dropout, so a value there would be recorded but never
# applied. A zero value changes nothing and is accepted.
CELL_OPTIONS = (
    ("--drop-path", "drop_path"),
    ("--aux-weight", "aux_weight"),
    ("--dropout", "dropout"),
)
# Up to this many hidden units a cell's matrices are so small that a second thread only adds
# synchronisation: 128 units ran 0.11 s per batch on one thread and on two of an idle 2-core CPU,
# and 3 to 10 times slower on two when another process used the cores.
ONE_THREAD_HIDDEN = 256
# Defaults that differ: images (the NASNet recipe), text (`nasbox.train.language`).
IMAGE_DEFAULTS = {
    "lr": 0.025,
    "weight_decay": 3e-4,
    "momentum": 0.9,
    "drop_path": 0.2,
    "aux_weight": 0.4,
}
TEXT_DEFAULTS = {
    "lr": 0.01,
    "weight_decay": 0.0,
    "tokens": "char",
    "bptt": 35,
    "steps": 200,
    "dropout_input": 0.0,
    "dropout_hidden": 0.0,
}


@dataclass
class _Training:
    """What one kind of training needs from the shared part of `cmd_train`."""

    announce: str
    used: dict
    trainer: Callable[..., list[dict]]  # `train` or `train_language_model`
    network: object
    data: object
    config: object
    description: str
    last_line: Callable[[dict], str]


def _adopt_defaults(args: argparse.Namespace, space) -> None:
    """Refuse the other kind's options; fill in this kind's defaults."""
    text = space.modality == "text"
    for option, key in IMAGE_OPTIONS if text else TEXT_OPTIONS:
        if getattr(args, key) is not None:
            kind = "image networks" if text else "language models (--space rnn)"
            raise NasboxError(f"{option} applies to {kind}, not to space {space.name}")
    defaults = TEXT_DEFAULTS if text else IMAGE_DEFAULTS
    if not text and not space.has_auxiliary_head:
        for option, key in CELL_OPTIONS:
            if getattr(args, key):
                cell_spaces = [
                    name for name in SPACES.names() if SPACES.get(name).has_auxiliary_head
                ]
                raise NasboxError(
                    f"{option} applies to the cell spaces ({', '.join(cell_spaces)}); {space.name} "
                    "networks have no drop path, auxiliary head or classifier dropout, so leave "
                    f"{option} out"
                )
        defaults = defaults | {"drop_path": 0.0, "aux_weight": 0.0}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)


# Memory one parameter takes in training: its weight, gradient and SGD momentum, and the copy
# torch.save serialises for the checkpoint (float32 each).
TRAINING_BYTES_PER_PARAMETER = 16
# Memory one logit of a language model's training batch takes: the logits, their log-softmax and
# the gradients of both (float32 each; a step's peak grew by 4.0 times the logits, measured).
TRAINING_BYTES_PER_LOGIT = 16


def _check_fits_memory(
    build: Callable[[], object], logits: int = 0, logits_are: str = "", fewer_logits: str = ""
) -> None:
    """Refuse, before allocating anything, a network whose parameters (and a language model's
    `logits` per batch) would not fit in memory while it trains: its weights ran out of memory
    with a traceback half-way through their initialisation (or got the process killed), and a
    word vocabulary of 10**5 words or more needs gigabytes of logits. `build` is counted on the
    meta device; `logits_are` says what the batch is and `fewer_logits` how to shrink it."""
    from nasbox.cpu import check_fits_memory, gib
    from nasbox.estimators.cost import count_parameters_unbuilt

    parameters = count_parameters_unbuilt(build)
    weights = parameters * TRAINING_BYTES_PER_PARAMETER
    outputs = logits * TRAINING_BYTES_PER_LOGIT
    if outputs > weights:
        needs, advice = f"training on {logits_are} ({gib(outputs)} of logits)", fewer_logits
    else:
        needs = f"training the network ({parameters / 1e6:,.1f} M parameters)"
        advice = "use fewer --cells or --filters (`nasbox describe` counts a network's parameters)"
    check_fits_memory(weights + outputs, needs, advice)


def _image_training(args: argparse.Namespace, space, arch) -> _Training:
    import torch

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
    config.check()
    check_number(args.dropout, "--dropout", 0.0, 1.0)
    options = size_options(args, space, arch, "laptop_size")
    data = load_data(args.data, args.data_dir, args.image_size)
    if data.x_test is None:
        fix = (
            f"add DIR/test/<class>/ images, or {round(1 / TEST_FRACTION)} or more images per "
            "class so that some are held out"
            if args.data.startswith("folder:")
            else "add x_test and y_test to the .npz file"
        )
        raise NasboxError(f"data set {data.name!r} has no test split; training needs one ({fix})")
    used = config.for_data(data)
    if used.batch_size < config.batch_size:
        note(
            f"--batch-size {config.batch_size} is more than the {used.batch_size} training "
            f"images of {data.name}; using {used.batch_size}"
        )
    options |= stem_options(args, space, data.image_size[0])
    if space.has_auxiliary_head:
        options.update(auxiliary=args.aux_weight > 0, dropout=args.dropout)
    build = partial(
        space.build, arch, num_classes=data.num_classes, in_channels=data.in_channels, **options
    )
    _check_fits_memory(build)
    torch.manual_seed(args.seed)
    network = build()
    # The data set is part of what --resume must find unchanged: another one of the same image
    # shape and classes fits the checkpoint, and its epochs would continue a run on the first.
    channels, height, width = data.x_train.shape[1:]
    description = (
        f"{args.space} {space.format(arch)} {options} on {data.name} ({len(data.x_train):,} "
        f"training and {len(data.x_test):,} test images of {channels}x{height}x{width})"
    )
    return _Training(
        f"training {description} ({_parameter_counts(network)}; cutout {used.cutout}, batch "
        f"{used.batch_size})",
        {
            "options": options,
            "used": asdict(used),
            # what the images were normalised with, which `nasbox export`'s network expects too
            "normalisation": {"mean": list(data.mean), "std": list(data.std)},
            # which output is which class (folder names), for the same reader
            "classes": list(data.classes),
        },
        train,
        network,
        data,
        config,
        description,
        lambda last: (
            f"epoch {last['epoch']}: test accuracy {last['test_acc']:.2f}% "
            f"(test loss {last['test_loss']:.3f})"
        ),
    )


def _text_training(args: argparse.Namespace, space, arch) -> _Training:
    import torch

    config = LanguageConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        bptt=args.bptt,
        steps=args.steps,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
    )
    config.check()
    dropouts = {
        "dropout_input": args.dropout_input,
        "dropout_hidden": args.dropout_hidden,
        "dropout_output": args.dropout,
    }
    for key, value in dropouts.items():
        option = "--dropout" if key == "dropout_output" else "--" + key.replace("_", "-")
        check_number(value, option, 0.0, 1.0)
    check_tokens(args.tokens)
    options = network_options(args, space, arch, 0, "laptop_size") | dropouts
    data = load_text_source(args.data, args.tokens)
    data.check_batch(config.batch_size, config.bptt)
    build = partial(space.build, arch, num_classes=data.num_classes, **options)
    fewer = "pass a smaller --batch-size or --bptt"
    _check_fits_memory(
        build,
        config.batch_size * config.bptt * data.num_classes,
        f"{config.batch_size} streams x {config.bptt} steps over the vocabulary of "
        f"{data.num_classes:,} {data.unit}s",
        f"read characters (--tokens char) or {fewer}" if data.tokens == "word" else fewer,
    )
    if options["hidden"] <= ONE_THREAD_HIDDEN:
        torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    network = build()
    # The corpus is part of what --resume must find unchanged: another file of the same name
    # would continue the run on other text (and another vocabulary failed to load the weights).
    total = len(data.train) + len(data.valid) + len(data.test)
    description = (
        f"{args.space} {space.format(arch)} {options} on {data.name} ({total:,} {data.unit}s, "
        f"vocabulary {data.num_classes:,})"
    )
    steps = f"{config.steps} steps per epoch" if config.steps else "full epochs"
    return _Training(
        f"training {description} ({_parameter_counts(network)}) on {len(data.train):,} "
        f"training {data.unit}s, {config.batch_size} streams x {config.bptt} steps, {steps}",
        {"options": options, "used": asdict(config)},
        train_language_model,
        network,
        data,
        config,
        description,
        lambda last: (
            f"epoch {last['epoch']}: valid perplexity {last['valid_ppl']:.3f}, test "
            f"perplexity {last['test_ppl']:.3f}"
            + (f" ({last['test_bpc']:.3f} bits per character)" if data.tokens == "char" else "")
        ),
    )


def _stopped_before_first_epoch(out: Path) -> bool:
    """Whether `out` holds only the settings of a run that ended (interrupted or failed) before
    its first checkpoint: there is nothing to keep or resume, so it may start again there."""
    return (out / "settings.json").is_file() and not any(
        (out / name).exists() for name in ("checkpoint.pt", "history.csv")
    )


def cmd_train(args: argparse.Namespace) -> int:
    if args.resume and args.overwrite:
        raise NasboxError("--resume and --overwrite contradict each other; pass one of them")
    if args.resume and args.out is None:  # the default --out is a new, empty folder
        raise NasboxError("--resume continues the run in --out; pass --out FOLDER of that run")
    space = get_space(args.space)
    _adopt_defaults(args, space)
    arch = read_arch(space, args.arch)
    out = out_folder(args.out, "train")
    folder = RunFolder(
        out,
        RESULTS,
        resume=args.resume,
        overwrite=args.overwrite or _stopped_before_first_epoch(out),
        way_on=f"continue with --resume --out {out}, choose a new --out, or pass --overwrite to "
        "replace them",
    )
    folder.check()
    checkpoint = out / "checkpoint.pt"
    # Missing or corrupt: fail before any work; other settings or data: before anything is written.
    state = load_checkpoint(checkpoint) if args.resume else None
    prepare = _text_training if space.modality == "text" else _image_training
    training = prepare(args, space, arch)
    done = 0
    if state is not None:
        check_same_settings(
            state,
            checkpoint,
            training.used["used"],
            training.description,
            data_digest(training.data),
            f"--data {args.data}",
        )
        done = len(state["history"])
        del state  # the trainer reads it again; its weights need not stay in memory meanwhile
    if done >= args.epochs:
        complete = f"epoch {done} of {args.epochs}"
        print(f"the run in {out}/ is complete ({complete}): nothing left to train")
    else:
        resuming = f" (resuming after epoch {done} of {args.epochs})" if done else ""
        print(f"{training.announce}; results in {out}/{resuming}")
    with folder:
        # A resumed run keeps the record of the run it continues: its settings are the same, and
        # a resume that fails on the checkpoint must not leave the refused ones in their place.
        if not args.resume or not (out / "settings.json").exists():
            settings = {
                key: value
                for key, value in vars(args).items()
                if key not in ("handler", "command_parser")
            }
            write_json(
                out / "settings.json",
                {"version": __version__, **settings, "arch": space.format(arch), **training.used},
            )
        try:
            history = training.trainer(
                training.network,
                training.data,
                training.config,
                out,
                resume=args.resume,
                progress=not args.quiet,
                description=training.description,
            )
        except KeyboardInterrupt:
            if (out / "checkpoint.pt").exists():
                print(
                    f"interrupted; finished epochs are in {out}/history.csv; continue with "
                    f"--resume --out {out}",
                    file=sys.stderr,
                )
            else:
                print(
                    "interrupted before the first epoch ended; nothing to resume: run the same "
                    "command again to start over",
                    file=sys.stderr,
                )
            return 130
        except (MemoryError, RuntimeError) as err:  # torch's CPU allocator raises RuntimeError
            if not isinstance(err, MemoryError) and "can't allocate memory" not in str(err):
                raise
            where = f" in a new --out ({checkpoint} keeps the finished epochs)"
            smaller = "--batch-size or --bptt" if space.modality == "text" else "--batch-size"
            raise NasboxError(
                f"training ran out of memory; start again{where if checkpoint.exists() else ''} "
                f"with a smaller {smaller}, or fewer --cells or --filters"
            ) from None
    print(f"{training.last_line(history[-1])}; history in {out}/history.csv")
    return 0


def add_parser(commands) -> None:
    parser = add_command(commands, "train", "train an architecture (N@F) on a data set")
    add_space_option(parser)
    add_network_options(parser, "laptop_size")
    add_data_source_options(parser)
    parser.add_argument(
        "--epochs",
        type=int,
        default=10,
        help="passes over the training images; text: epochs of --steps batches",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="minibatch (at most the training images); text: parallel streams",
    )
    parser.add_argument(
        "--lr", type=float, help="initial learning rate, (0, 10] (default: 0.025; text: 0.01)"
    )
    parser.add_argument("--momentum", type=float, help="SGD momentum, [0, 1) (default: 0.9)")
    parser.add_argument(
        "--weight-decay", type=float, help="L2 penalty, [0, 1] (default: 3e-4; text: 0)"
    )
    parser.add_argument(
        "--cutout",
        type=int,
        help="side of the square cut out of each training image; 0: off "
        "(default: half the image side, 16 on 32x32; off below 16 pixels)",
    )
    parser.add_argument(
        "--drop-path",
        type=float,
        help="final ScheduledDropPath probability, [0, 1) (cell spaces such as nasnet and darts; "
        "default: 0.2)",
    )
    parser.add_argument(
        "--aux-weight",
        type=float,
        help="auxiliary-head loss weight (cell spaces; 0: no head) (default: 0.4)",
    )
    parser.add_argument(
        "--dropout",
        type=float,
        default=0.0,
        help="dropout before the classifier (cell spaces; text: before the decoder), [0, 1)",
    )
    parser.add_argument(
        "--tokens", help="text: char (default) or word (whitespace-separated, <eos> per line)"
    )
    parser.add_argument("--bptt", type=int, help="text: steps of truncated BPTT (default: 35)")
    parser.add_argument(
        "--steps",
        type=int,
        help="text: batches per epoch, 0: a full pass over the training split (default: 200)",
    )
    parser.add_argument(
        "--dropout-input", type=float, help="text: dropout of the cell's input x_t (default: 0)"
    )
    parser.add_argument(
        "--dropout-hidden",
        type=float,
        help="text: dropout of h_t-1 and of every node's input (default: 0)",
    )
    add_seed_option(parser)
    parser.add_argument("--out", help="results folder (default: runs/train-TIMESTAMP)")
    parser.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    add_overwrite_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=cmd_train)
