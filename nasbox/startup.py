"""The `nasbox` command's first steps, taken before it imports torch.

A search or score with `--workers N` evaluates in processes forked from a fork server, which
imports torch and nasbox once (about 1.2 s). Started here, from the command line as typed, that
import runs on the second core while this process makes its own, instead of after it. The guess
reads the arguments loosely: a wrong guess only starts an idle server or misses the head start;
argparse still checks everything.
"""

import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import sys
from collections.abc import Sequence


def worker_context() -> multiprocessing.context.ForkServerContext:
    """The fork-server context worker processes come from; the server imports nasbox's worker
    code and torch once, before it forks any worker (`ProcessExecutor` uses this)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["nasbox.runs.executors", "torch"])
    return context


def start_worker_server() -> None:
    """Start the fork server of worker processes, without waiting for its imports."""
    worker_context()
    multiprocessing.forkserver.ensure_running()


def wants_worker_processes(argv: Sequence[str]) -> bool:
    """Whether the command line asks `search` or `score` for more than one local process."""
    if not argv or argv[0] not in ("search", "score") or "ray" in argv:
        return False
    for index, word in enumerate(argv):
        value = None
        if word == "--workers" and index + 1 < len(argv):
            value = argv[index + 1]
        elif word.startswith("--workers="):
            value = word.partition("=")[2]
        if value is not None:
            return value.isdigit() and int(value) > 1
    return False


def run() -> int:
    """The `nasbox` console script."""
    try:
        if wants_worker_processes(sys.argv[1:]):
            start_worker_server()
        from nasbox.cli import main
    except KeyboardInterrupt:  # Ctrl-C while torch loads (a second or two): nothing ran yet
        print("nasbox: interrupted", file=sys.stderr)
        return 130
    return main()
