"""The `nasbox` command line: search, runs, score, bench, train, describe, export, petri, list."""

import argparse
import os
import select
import signal
import sys
import threading
from collections.abc import Sequence

from nasbox import __version__
from nasbox.cli import bench, describe, export, petri, runs, score, search, train
from nasbox.cli import list as list_command
from nasbox.cpu import keep_freed_memory
from nasbox.errors import NasboxError


class OneLineErrorParser(argparse.ArgumentParser):
    """Usage mistakes (an unknown option, `--epochs abc`) end like every other error: one line
    naming the problem and where to look, exit status 2. Subcommand parsers inherit it.

    Each parser records itself in the arguments it parses (the innermost subcommand's last), so
    that an option it does not know is reported by that command, with its own --help.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.set_defaults(command_parser=self)

    def one_line(self, message: str) -> str:
        return f"nasbox: error: {self.prog}: {message} (see: {self.prog} --help)"

    def error(self, message: str):
        if message.endswith("expected one argument"):  # `--objectives -params,naswot`
            option = message.removeprefix("argument ").partition(":")[0].split("/")[0]
            message += f"; give a value (one that starts with '-' as {option}=VALUE)"
        self.exit(2, self.one_line(message) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="nasbox", description="Neural architecture search that runs on a laptop CPU."
    )
    parser.add_argument("--version", action="version", version=f"nasbox {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for module in (search, runs, score, bench, train, describe, export, petri, list_command):
        module.add_parser(commands)
    return parser


# Exit statuses of an interrupted command, by the shell's convention (128 + signal number); a
# reader that closed standard output early (`| head`) ends a command as SIGPIPE ends Unix tools.
INTERRUPTED, TERMINATED, READER_GONE = 130, 143, 128 + signal.SIGPIPE


class _Signals:
    """Whether the current command was stopped by SIGTERM (exit 143) rather than Ctrl-C (130)."""

    terminated = False


def _stop_on_sigterm(signum, frame) -> None:
    """A scheduler's or `kill`'s SIGTERM stops a command like Ctrl-C: finished work is kept."""
    _Signals.terminated = True
    raise KeyboardInterrupt


def _stdout_reader_gone() -> bool:
    """Whether standard output is a pipe whose reader has closed it: only then is a broken pipe
    the user's `| head` (one to a worker process is still an error worth a line)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no file (captured output)
        return False


def _quiet_stdout() -> None:
    """Send what is left of standard output nowhere, so that Python's last flush at exit cannot
    fail on the closed pipe (Python's documented way, see the `signal` module's SIGPIPE note)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [*argv]
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        message = f"unrecognized arguments: {' '.join(unknown)}"
        print(args.command_parser.one_line(message), file=sys.stderr)
        return 2
    args.argv = argv
    keep_freed_memory()
    _Signals.terminated = False
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if in_main_thread else None
    try:
        code = args.handler(args)
        sys.stdout.flush()  # here, not at exit: a reader gone (`| head -1`) is then found below
    except BrokenPipeError as err:
        if not _stdout_reader_gone():
            print(f"nasbox: error: {err.strerror or err}", file=sys.stderr)
            return 2
        _quiet_stdout()
        return READER_GONE
    except NasboxError as err:
        print(f"nasbox: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a path the checks could not foresee (permissions, a full disk)
        where = f"{err.filename}: " if err.filename else ""
        print(f"nasbox: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nasbox: interrupted", file=sys.stderr)
        code = INTERRUPTED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return TERMINATED if code == INTERRUPTED and _Signals.terminated else code


if __name__ == "__main__":
    sys.exit(main())
