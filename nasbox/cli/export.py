"""`nasbox export`: write a trained or freshly initialised network as ONNX or TorchScript."""

import argparse
from functools import partial
from pathlib import Path

from nasbox.checks import check_count, check_seed
from nasbox.cli.common import (
    DEFAULT_SPACE,
    add_command,
    add_network_options,
    add_overwrite_option,
    add_seed_option,
    add_space_option,
    check_not_an_input,
    check_output_file,
    network_options,
    read_arch,
    require_images,
)
from nasbox.errors import NasboxError, counted
from nasbox.export import (
    CHECK_BATCH,
    FORMATS,
    OPSET,
    Checkpoint,
    check_export_size,
    export_format,
    export_network,
    require_onnx,
)
from nasbox.runs import COMMAND_RESULTS
from nasbox.spaces import get_space

MAX_CHECK_SIDE = 1024


def _adopt_run_settings(args: argparse.Namespace, checkpoint: Checkpoint) -> None:
    """Options not given on the command line come from the run's settings.json."""
    settings = checkpoint.settings
    defaults = {
        "space": settings.get("space"),
        "arch": settings.get("arch"),
        "cells": settings.get("cells"),
        "filters": settings.get("filters"),
        "stem": (settings.get("options") or {}).get("stem"),
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def _check_not_the_run(out: Path, checkpoint: Checkpoint) -> None:
    """Refuse, even with --overwrite, an --out that is one of the run folder's files: writing
    over checkpoint.pt replaced the trained weights (and settings.json the record export and
    --resume read) with the exported network, and the training could not be resumed."""
    run_files = {"--checkpoint": checkpoint.path}
    run_files |= {
        f"the run's {name}": checkpoint.path.parent / name for name in COMMAND_RESULTS["train"]
    }
    check_not_an_input(out, run_files)


def _file_size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from nasbox.estimators.cost import count_parameters_unbuilt

    out = check_output_file(args.out, args.overwrite)
    fmt = export_format(out, args.format)
    if fmt == "onnx":
        require_onnx()
    if args.input > MAX_CHECK_SIDE:
        raise NasboxError(
            f"--input must be at most {MAX_CHECK_SIDE}, got {args.input}: it is only the side of "
            "the check's images (larger ones may not fit in memory); the exported network takes "
            "any H and W"
        )
    check_count(args.input, "--input", minimum=8)
    check_seed(args.seed)
    if args.checkpoint is not None and not args.checkpoint.strip():
        raise NasboxError(
            "--checkpoint is empty; give a `nasbox train` run folder or its checkpoint.pt, or "
            "leave it out for a freshly initialised network"
        )
    checkpoint = Checkpoint.read(Path(args.checkpoint)) if args.checkpoint else None
    if checkpoint is not None:
        _check_not_the_run(out, checkpoint)
        _adopt_run_settings(args, checkpoint)
    space_name = args.space or DEFAULT_SPACE
    if checkpoint is not None:
        checkpoint.check_space(space_name)
    space = get_space(space_name)
    require_images(space, "nasbox export")
    arch = read_arch(space, args.arch)
    if checkpoint is not None:
        checkpoint.check_architecture(space_name, space.format(arch))
    options = network_options(args, space, arch, args.input, "laptop_size")
    channels, classes = checkpoint.channels_and_classes() if checkpoint else (3, 10)
    if args.in_channels is not None:
        channels = check_count(args.in_channels, "--in-channels")
    if args.classes is not None:
        classes = check_count(args.classes, "--classes", minimum=2)
    input_shape = (channels, args.input, args.input)
    build = partial(space.build, arch, num_classes=classes, in_channels=channels, **options)
    params = count_parameters_unbuilt(build)
    check_export_size(params, input_shape, fmt)
    torch.manual_seed(args.seed)
    network = build()
    if checkpoint is not None:
        checkpoint.load_into(network)
    difference = export_network(network, out, fmt, input_shape, args.seed)
    print(f"space       {space_name}")
    print(f"arch        {space.format(arch)}")
    print(f"network     {', '.join(f'{key}={value}' for key, value in options.items()) or '-'}")
    if checkpoint is not None:
        epochs = counted(checkpoint.epochs, "epoch")
        if checkpoint.still_training:
            epochs += " so far; the run is still training"
        print(f"weights     {checkpoint.path} (trained {epochs})")
    else:
        print(f"weights     freshly initialised (seed {args.seed})")
    trained = ", normalised like the training data" if checkpoint is not None else ""
    print(f"input       N x {channels} x H x W (any N, H, W){trained}; {classes} classes")
    normalisation = checkpoint.normalisation() if checkpoint is not None else None
    if normalisation is not None:
        print(f"normalise   {normalisation}")
    names = checkpoint.class_names() if checkpoint is not None else None
    if names is not None:
        print(f"outputs     {names}")
    head = ", without an auxiliary head" if space.has_auxiliary_head else ""
    print(f"parameters  {params / 1e6:.3f} M ({params:,}){head}")
    written = f"ONNX opset {OPSET}" if fmt == "onnx" else "TorchScript"
    print(f"wrote       {out} ({written}, {_file_size(out.stat().st_size)})")
    checked = "onnx.checker passed; onnxruntime" if fmt == "onnx" else "torch.jit.load"
    print(
        f"check       {checked} vs PyTorch on {CHECK_BATCH}x{channels}x{args.input}x{args.input} "
        f"random images: max difference {difference:.2g}"
    )
    return 0


def add_parser(commands) -> None:
    parser = add_command(
        commands, "export", "write a trained or new network as ONNX or TorchScript"
    )
    parser.add_argument(
        "--checkpoint",
        help="a `nasbox train` run folder or its checkpoint.pt; the run's settings.json gives "
        f"--space, --arch, --cells, --filters and --stem unless they are given (default: a "
        f"freshly initialised network, {DEFAULT_SPACE} unless --space says otherwise)",
    )
    add_space_option(parser)
    parser.set_defaults(space=None)  # a checkpoint's run may name it
    add_network_options(parser, "laptop_size")
    parser.add_argument(
        "--input", type=int, default=32, help="image side of the check (any side runs)"
    )
    parser.add_argument(
        "--classes", type=int, help="classifier outputs (default: the checkpoint's, else 10)"
    )
    parser.add_argument(
        "--in-channels", type=int, help="image channels (default: the checkpoint's, else 3)"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="file format (default: by --out's suffix: .onnx is onnx, .pt torchscript)",
    )
    parser.add_argument("--out", required=True, help="file to write")
    add_overwrite_option(parser)
    add_seed_option(parser, "seed of a fresh network's weights and of the check's images")
    parser.set_defaults(handler=cmd_export)
