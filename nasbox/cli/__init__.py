"""The `nasbox` command line: search, score, bench (run, convert), train, describe, petri."""

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from nasbox import __version__
from nasbox.cli import bench, describe, petri, score, search, train
from nasbox.errors import NasboxError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nasbox", description="Neural architecture search that runs on a laptop CPU."
    )
    parser.add_argument("--version", action="version", version=f"nasbox {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for module in (search, score, bench, train, describe, petri):
        module.add_parser(commands)
    return parser


def _stop_on_sigterm(signum, frame) -> None:
    """A scheduler's or `kill`'s SIGTERM stops a command like Ctrl-C: finished work is kept."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if in_main_thread else None
    try:
        return args.handler(args)
    except NasboxError as err:
        print(f"nasbox: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nasbox: interrupted", file=sys.stderr)
        return 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
