"""`nasbox describe`: parameters and multiply-adds of an N@F network."""

import argparse

from nasbox.cli.common import (
    add_network_options,
    add_space_option,
    network_options,
    read_arch,
)
from nasbox.errors import NasboxError
from nasbox.spaces import get_space


def _describe_network(space, arch, options: dict, classes: int, channels: int, size: int):
    import torch

    from nasbox.estimators.cost import count_multiply_adds, count_parameters

    with torch.device("meta"):
        network = space.build(arch, num_classes=classes, in_channels=channels, **options)
    return count_parameters(network), count_multiply_adds(network, (channels, size, size))


def cmd_describe(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    arch = read_arch(space, args.arch)
    if args.input < 8:
        raise NasboxError(f"--input must be at least 8 pixels, got {args.input}")
    options = network_options(args, args.input)
    params, madds = _describe_network(space, arch, options, args.classes, 3, args.input)
    print(f"space       {args.space}")
    print(f"arch        {space.format(arch)}")
    print(f"network     {', '.join(f'{key}={value}' for key, value in options.items())}")
    print(f"input       3x{args.input}x{args.input}, {args.classes} classes (no auxiliary head)")
    print(f"parameters  {params / 1e6:.3f} M ({params:,})")
    print(f"mult-adds   {madds / 1e6:.1f} M ({madds:,})")
    return 0


def add_parser(commands) -> None:
    describe = commands.add_parser("describe", help="parameters and multiply-adds of N@F")
    add_space_option(describe)
    add_network_options(describe)
    describe.add_argument("--input", type=int, default=32, help="input side in pixels")
    describe.add_argument("--classes", type=int, default=1000)
    describe.set_defaults(handler=cmd_describe)
