"""`nasbox train`: train an architecture (N@F) on a data set."""

import argparse
import sys
from dataclasses import asdict
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
    default_out,
    network_options,
    note,
    read_arch,
)
from nasbox.data import load_data
from nasbox.errors import NasboxError
from nasbox.runs import COMMAND_RESULTS, RunFolder, write_json
from nasbox.spaces import get_space
from nasbox.train import TrainConfig, train
from nasbox.train.trainer import load_checkpoint

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


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    if args.resume and args.overwrite:
        raise NasboxError("--resume and --overwrite contradict each other; pass one of them")
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
    space = get_space(args.space)
    arch = read_arch(space, args.arch)
    out = Path(args.out) if args.out else default_out("train")
    folder = RunFolder(
        out,
        RESULTS,
        resume=args.resume,
        overwrite=args.overwrite,
        way_on=f"continue with --resume --out {out}, choose a new --out, or pass --overwrite to "
        "replace them",
    )
    folder.check()
    if args.resume:
        load_checkpoint(out / "checkpoint.pt")  # missing or corrupt: fail before any work
    data = load_data(args.data, args.data_dir, args.image_size)
    if data.x_test is None:
        raise NasboxError(
            f"data set {data.name!r} has no test split; training needs one (add x_test and "
            "y_test to the .npz file)"
        )
    used = config.for_data(data)
    if used.batch_size < config.batch_size:
        note(
            f"--batch-size {config.batch_size} is more than the {used.batch_size} training "
            f"images of {data.name}; using {used.batch_size}"
        )
    options = network_options(args, space, arch, data.image_size[0], "laptop_size")
    if space.has_auxiliary_head:
        options.update(auxiliary=args.aux_weight > 0, dropout=args.dropout)
    torch.manual_seed(args.seed)
    network = space.build(
        arch, num_classes=data.num_classes, in_channels=data.in_channels, **options
    )
    description = f"{args.space} {space.format(arch)} {options}"
    print(
        f"training {description} ({_parameter_counts(network)}) on {data.name} "
        f"(cutout {used.cutout}, batch {used.batch_size}); results in {out}/"
    )
    with folder:
        settings = {key: value for key, value in vars(args).items() if key != "handler"}
        write_json(
            out / "settings.json",
            {
                "version": __version__,
                **settings,
                "arch": space.format(arch),
                "options": options,
                "used": asdict(used),
            },
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
            print(
                f"interrupted; finished epochs are in {out}/history.csv; continue with "
                f"--resume --out {out}",
                file=sys.stderr,
            )
            return 130
    last = history[-1]
    print(
        f"epoch {last['epoch']}: test accuracy {last['test_acc']:.2f}% "
        f"(test loss {last['test_loss']:.3f}); history in {out}/history.csv"
    )
    return 0


def add_parser(commands) -> None:
    parser = add_command(commands, "train", "train an architecture (N@F) on a data set")
    add_space_option(parser)
    add_network_options(parser, "laptop_size")
    add_data_source_options(parser)
    parser.add_argument("--epochs", type=int, default=10, help="passes over the training images")
    parser.add_argument(
        "--batch-size", type=int, default=64, help="minibatch (at most the training images)"
    )
    parser.add_argument("--lr", type=float, default=0.025, help="initial learning rate, (0, 10]")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum, [0, 1)")
    parser.add_argument("--weight-decay", type=float, default=3e-4, help="L2 penalty, [0, 1]")
    parser.add_argument(
        "--cutout",
        type=int,
        help="side of the square cut out of each training image; 0: off "
        "(default: half the image side, 16 on 32x32; off below 16 pixels)",
    )
    parser.add_argument(
        "--drop-path", type=float, default=0.2, help="final ScheduledDropPath probability, [0, 1)"
    )
    parser.add_argument(
        "--aux-weight",
        type=float,
        default=0.4,
        help="auxiliary-head loss weight (nasnet; 0: no head)",
    )
    parser.add_argument(
        "--dropout", type=float, default=0.0, help="dropout before the classifier, [0, 1)"
    )
    add_seed_option(parser)
    parser.add_argument("--out", help="results folder (default: runs/train-TIMESTAMP)")
    parser.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    add_overwrite_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=cmd_train)
