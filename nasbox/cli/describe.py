"""`nasbox describe`: parameters and multiply-adds of an N@F network."""

import argparse

from nasbox.checks import check_count
from nasbox.cli.common import (
    add_command,
    add_network_options,
    add_space_option,
    network_options,
    read_arch,
)
from nasbox.errors import NasboxError
from nasbox.spaces import get_space

# The widest --input counted: a side of about 3 * 10**9 overflowed PyTorch's tensor sizes even on
# the meta device, with a traceback; 2**16 is counted in seconds by every space at its largest.
MAX_INPUT = 2**16
WHY = "far past any image a network takes (sides of 3 * 10**9 overflow PyTorch's tensor sizes)"


def _describe_network(space, arch, options: dict, classes: int, channels: int, size: int):
    import torch

    from nasbox.estimators.cost import count_multiply_adds, count_parameters

    with torch.device("meta"):
        network = space.build(arch, num_classes=classes, in_channels=channels, **options)
    return count_parameters(network), count_multiply_adds(network, (channels, size, size))


def _describe_language_model(space, arch, options: dict, vocabulary: int) -> tuple[int, int]:
    import torch

    from nasbox.estimators.cost import count_parameters

    with torch.device("meta"):
        network = space.build(arch, num_classes=vocabulary, **options)
    return count_parameters(network), network.multiply_adds_per_token()


def cmd_describe(args: argparse.Namespace) -> int:
    check_count(args.classes, "--classes", minimum=2)
    space = get_space(args.space)
    text = space.modality == "text"
    if text and args.input is not None:
        raise NasboxError(
            f"--input is the image side; space {space.name} builds language models, which read "
            "one token at a time (leave --input out)"
        )
    size = 32 if args.input is None else check_count(args.input, "--input", 8, MAX_INPUT, WHY)
    arch = read_arch(space, args.arch)
    options = network_options(args, space, arch, size, "published_size")
    if text:
        params, madds = _describe_language_model(space, arch, options, args.classes)
    else:
        params, madds = _describe_network(space, arch, options, args.classes, 3, size)
    print(f"space       {args.space}")
    print(f"arch        {space.format(arch)}")
    sizes = ", ".join(f"{key}={value}" for key, value in options.items())
    print(f"network     {sizes or 'as the architecture sets it'}")
    if text:
        print(f"input       one token at a time, a vocabulary of {args.classes:,} tokens")
    else:
        print(f"input       3x{size}x{size}, {args.classes} classes")
    head = " without an auxiliary head" if space.has_auxiliary_head else ""
    print(f"parameters  {params / 1e6:.3f} M ({params:,}){head}")
    per = " per token" if text else ""
    print(f"mult-adds   {madds / 1e6:.1f} M ({madds:,}){per}")
    return 0


def add_parser(commands) -> None:
    parser = add_command(commands, "describe", "parameters and multiply-adds of N@F")
    add_space_option(parser)
    add_network_options(parser, "published_size")
    parser.add_argument(
        "--input", type=int, help="input side in pixels (default: 32; not for text spaces)"
    )
    parser.add_argument(
        "--classes",
        type=int,
        default=1000,
        help="classes of the classifier (the published ImageNet counts use 1001); text spaces: "
        "the vocabulary size",
    )
    parser.set_defaults(handler=cmd_describe)
