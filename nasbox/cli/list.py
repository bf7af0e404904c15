"""`nasbox list`: the spaces, estimators, strategies and data sources, with syntax and cost.

Descriptions come from the registered classes (a `summary` attribute, else the class's docstring;
a space's module docstring) and costs from their `cost` attribute, so the list follows the code.
"""

import argparse
import sys

from nasbox.cli.common import add_command
from nasbox.data import DATA_SOURCES
from nasbox.estimators import ESTIMATORS
from nasbox.spaces import SPACES
from nasbox.strategies import STRATEGIES, uses_prescore


def first_line(*docs: str | None) -> str:
    """The first line of the first docstring given, without its trailing full stop."""
    for doc in docs:
        if doc and doc.strip():
            return doc.strip().splitlines()[0].rstrip(".")
    return ""


def _space_rows() -> list[tuple[str, str, str]]:
    rows = []
    for name in SPACES.names():
        space = SPACES.get(name)
        size = len(space())
        count = f"{size:,} architectures" if size < sys.maxsize else "more than 10^18 architectures"
        summary = first_line(getattr(space, "summary", None), sys.modules[space.__module__].__doc__)
        rows.append((name, summary, count))
    return rows


def _estimator_rows() -> list[tuple[str, str, str]]:
    return [
        (
            estimator.syntax(),
            first_line(getattr(estimator, "summary", None), estimator.__doc__),
            estimator.cost,
        )
        for estimator in map(ESTIMATORS.get, ESTIMATORS.names())
    ]


def _strategy_rows() -> list[tuple[str, str, str]]:
    rows = []
    for name in STRATEGIES.names():
        strategy = STRATEGIES.get(name)
        summary = first_line(
            getattr(strategy, "summary", None),
            strategy.__doc__,
            sys.modules[strategy.__module__].__doc__,
        )
        cost = getattr(strategy, "cost", None) or (
            "pre-scores cells with --prescore first" if uses_prescore(name) else "instant"
        )
        rows.append((name, summary, cost))
    return rows


SECTIONS = (
    ("spaces (--space)", "size", _space_rows),
    ("estimators (--estimator)", "cost", _estimator_rows),
    ("strategies (--strategy)", "cost per proposal", _strategy_rows),
    ("data (--data)", "cost", lambda: list(DATA_SOURCES)),
)


def cmd_list(args: argparse.Namespace) -> int:
    for number, (title, third, rows) in enumerate(SECTIONS):
        rows = rows()
        width = max(len(row[0]) for row in rows)
        print(("\n" if number else "") + f"{title} ({third} in brackets)")
        for syntax, summary, cost in rows:
            print(f"  {syntax:<{width}}  {summary} [{cost}]")
    return 0


def add_parser(commands) -> None:
    parser = add_command(
        commands, "list", "list spaces, estimators, strategies and data sources with their syntax"
    )
    parser.set_defaults(handler=cmd_list)
