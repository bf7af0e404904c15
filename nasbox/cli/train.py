"""`nasbox train`: train an architecture (N@F) on a data set."""

import argparse
import sys
from pathlib import Path

from nasbox import __version__
from nasbox.cli.common import (
    add_network_options,
    add_space_option,
    default_out,
    network_options,
    read_arch,
)
from nasbox.data import load_data
from nasbox.runs import write_json
from nasbox.spaces import get_space
from nasbox.train import TrainConfig, train


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from nasbox.estimators.cost import count_parameters

    space = get_space(args.space)
    arch = read_arch(space, args.arch)
    data = load_data(args.data, args.data_dir)
    options = network_options(args, data.image_size[0])
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
    out = Path(args.out) if args.out else default_out("train")
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


def add_parser(commands) -> None:
    train_parser = commands.add_parser("train", help="train an architecture (N@F) on a data set")
    add_space_option(train_parser)
    add_network_options(train_parser)
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
