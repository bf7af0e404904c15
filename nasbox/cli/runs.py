"""`nasbox runs list | show | export`: what the experiment store holds."""

import argparse
import json
import os
import statistics
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from nasbox.benchmarks.table import check_table_path
from nasbox.cli.common import DefaultsHelpFormatter, check_output_file
from nasbox.errors import NasboxError, counted
from nasbox.estimators.objectives import Objective, parse_objectives
from nasbox.runs import (
    DATABASE,
    RunStore,
    StoredRun,
    StoredTrial,
    best_trial,
    folder_holds_run,
    folder_in_use,
    locate_run,
    pareto_trials,
    replaced_atomically,
)

#: Pareto-front architectures `runs show` prints, as `nasbox search` does.
FRONT_SHOWN = 5

#: The narrowest column of `runs show`'s labels (`best arch`, `batch_size`, ...).
LABEL_WIDTH = 11


def _databases(path: Path) -> list[Path]:
    """A database file itself, or every run folder's database under a folder."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise NasboxError(f"{path}: no such database file or folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise NasboxError(f"{path}: cannot read the folder (permission denied)")
    found = sorted(path.glob(DATABASE)) + sorted(path.glob(f"*/{DATABASE}"))
    summaries = sorted(path.glob("summary.json")) + sorted(path.glob("*/summary.json"))
    found += [database for summary in summaries if (database := _named_database(summary))]
    by_file: dict[Path, Path] = {}  # each file once, where it was first found
    for database in found:
        by_file.setdefault(database.resolve(), database)
    return list(by_file.values())


def _named_database(summary: Path) -> Path | None:
    """The database a run folder's summary names: a `--storage` file beside or outside the run
    folders holds their runs too. None for a summary that names none that exists."""
    try:
        database = summary.parent / json.loads(summary.read_text())["storage"]
    except (ValueError, KeyError, TypeError, OSError):
        return None
    return database if database.is_file() else None


def _open(args: argparse.Namespace) -> tuple[RunStore, StoredRun, Path | None]:
    """The run's store, the run, and the folder it is in now (see `_folder`)."""
    database, name, located = locate_run(args.run, args.storage, "RUN")
    store = RunStore(database, create=False)
    run = store.find_run(name)
    if run is None:
        store.close()
        raise NasboxError(f"{database}: no run named {name!r}")
    return store, run, _folder(database, run, located)


def _folder(database: Path, run: StoredRun, found_in: Path) -> Path | None:
    """The run's folder: the one the store recorded, unless the run folder was moved or copied
    since (the store records the new one only on --resume), where `found_in`, the folder its
    database was found in, holds the run. A moved run killed with SIGKILL said `running` forever,
    as no process held its recorded, missing folder."""
    recorded = Path(run.folder) if run.folder else None
    if recorded is not None and folder_holds_run(recorded, database, run.name):
        return recorded
    if folder_holds_run(found_in, database, run.name):
        return found_in.resolve()
    return recorded


#: The status of a run its store calls `running` while no process holds its folder.
GONE = "interrupted"


def _status(store: RunStore, run: StoredRun, folder: Path | None) -> str:
    """The stored status, except for a `running` run whose folder no live process holds: a
    search killed with SIGKILL (or on a machine that went down) could not record its end, and
    its run said `running` forever. Only read; `search --resume` writes the new status."""
    if run.status != "running" or folder is None or folder_in_use(folder) is not False:
        return run.status
    # read again after the lock: a search that just ended wrote its status before releasing it
    now = store.find_run(run.name)
    return GONE if now is not None and now.status == "running" else (now or run).status


def _objectives(run: StoredRun) -> list[Objective]:
    """A multi-objective run's objectives; its `estimator` setting is then an unused default and
    its trials' `value` only the first objective's, which may be minimised."""
    text = run.settings.get("objectives")
    return parse_objectives(text) if text else []


def _best(trials: list[StoredTrial], objectives: list[Objective]) -> str:
    """The best value, or the size of the Pareto front of a multi-objective run."""
    if objectives:
        front = pareto_trials(trials, objectives)
        return f"front of {len(front)}" if front else "-"
    best = best_trial(trials)
    return f"{best.value:.4g}" if best else "-"


def _listing(database: Path) -> list[tuple[str, ...]]:
    """One row per run in `database`: name, status, settings, trials done and failed, best."""
    rows = []
    with RunStore(database, create=False) as store:
        for run in store.runs():
            trials = store.trials(run)
            counts = Counter(t.state for t in trials)
            settings = run.settings
            folder = _folder(database, run, database.parent)
            scored_by = settings.get("objectives") or settings.get("estimator")
            rows.append(
                (
                    run.name,
                    _status(store, run, folder),
                    f"{settings.get('space')}/{settings.get('strategy')}/{scored_by}",
                    f"{counts['complete'] + counts['failed']}/{settings.get('samples', '?')}",
                    str(counts["failed"]),
                    _best(trials, _objectives(run)),
                    str(folder or database),
                )
            )
    return rows


def cmd_list(args: argparse.Namespace) -> int:
    if args.storage and args.path != "runs":
        raise NasboxError("give the database as PATH or as --storage, not both")
    path = Path(args.storage or args.path)
    if path.is_file():
        rows = _listing(path)  # the one database asked for: unreadable is an error
    else:  # one damaged run folder must not hide the others
        rows, unreadable = [], 0
        for database in _databases(path):
            try:
                rows += _listing(database)
            except NasboxError as err:
                unreadable += 1
                print(
                    f"nasbox: warning: {err}; its runs are not listed (move or restore it)",
                    file=sys.stderr,
                )
        if unreadable and not rows:
            raise NasboxError(
                f"{path}: no run database under it could be read (see the warnings above); "
                "move or restore them"
            )
    if not rows:
        print(f"no runs in {path}")
        return 0
    header = ("run", "status", "space/strategy/estimator", "done", "failed", "best", "folder")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store, run, folder = _open(args)
    trials = store.trials(run)
    complete = [t for t in trials if t.state == "complete"]
    failed = [t for t in trials if t.state == "failed"]
    objectives = _objectives(run)
    settings = {
        key: value
        for key, value in run.settings.items()
        if value not in (None, [], "") and not (objectives and key == "estimator")
    }
    # the labels' column is as wide as the longest setting's name (latency_batch, ...)
    width = max([LABEL_WIDTH, *map(len, settings)])

    def show(label: str, value: object) -> None:
        print(f"{label:<{width}} {value}")

    status = _status(store, run, folder)
    if status == GONE and run.status == "running":
        status = f"{GONE}: its process is gone; continue with nasbox search --resume {folder}"
    show("run", f"{run.name} ({status})")
    show("folder", folder)
    show("database", store.path)
    for key, value in settings.items():
        show(key, value)
    show("trials", _trial_counts(status, trials))
    finite = [t.value for t in complete if t.value is not None and abs(t.value) != float("inf")]
    if finite and not objectives:
        show(
            "values",
            f"median {statistics.median(finite):.4g}, best {max(finite):.4g}, "
            f"worst {min(finite):.4g}",
        )
    if complete:
        show("seconds", f"median {statistics.median(t.seconds for t in complete):.4f} per trial")
    for error, count in Counter(t.error for t in failed).most_common(5):
        show("failed", f"{count} x {error}")
    if objectives:
        _show_front(pareto_trials(trials, objectives), objectives, show)
    elif (best := best_trial(trials)) is not None:
        show("best", f"{best.value:.4f} (trial {best.number})")
        show("best arch", best.arch)
    store.close()
    return 0


def _trial_counts(status: str, trials: list[StoredTrial]) -> str:
    """Trials by state; a stopped run's `running` trials are unfinished, evaluated again by
    --resume."""
    counts = Counter(t.state for t in trials)
    parts = [f"{counts['complete']} complete", f"{counts['failed']} failed"]
    if counts["rejected"]:
        parts.append(f"{counts['rejected']} rejected by the constraints")
    if counts["running"]:
        still = "running" if status == "running" else "unfinished (--resume evaluates them)"
        parts.append(f"{counts['running']} {still}")
    return ", ".join(parts)


def _show_front(
    front: list[StoredTrial], objectives: list[Objective], show: Callable[[str, object], None]
) -> None:
    """A multi-objective run has no one best: its Pareto front, in each objective's units."""
    if not front:
        return
    shown = ",".join(str(o) for o in objectives)
    show("front", f"{counted(len(front), 'architecture')} on the Pareto front of {shown}")
    for trial in front[:FRONT_SHOWN]:
        values = ", ".join(f"{o.estimator} {trial.metrics[o.estimator]:.4g}" for o in objectives)
        print(f"  {values}: {trial.arch} (trial {trial.number})")
    if len(front) > FRONT_SHOWN:
        print(f"  ... and {len(front) - FRONT_SHOWN} more")


def cmd_export(args: argparse.Namespace) -> int:
    import pandas as pd

    out = check_output_file(args.out, args.overwrite)  # first: Path("") would be "."
    check_table_path(out)  # .csv, or .parquet / .pq as the tables read them
    store, run, _ = _open(args)
    trials = store.trials(run)
    store.close()
    # the columns are named even for a run without trials: a header-only file, not a traceback
    fixed = [field.name for field in fields(StoredTrial) if field.name != "metrics"]
    metrics = list(dict.fromkeys(name for t in trials for name in t.metrics))
    frame = pd.DataFrame(
        [{**{name: getattr(t, name) for name in fixed}, **t.metrics} for t in trials],
        columns=[*fixed, *metrics],
    )
    # an unfinished trial has no tell yet: a nullable integer keeps the others whole (not 2.0)
    frame = frame.astype({"told_after": "Int64", "tell_order": "Int64"})
    with replaced_atomically(out) as temporary:
        if out.suffix.lower() == ".csv":
            frame.to_csv(temporary, index=False)
        else:
            frame.to_parquet(temporary, index=False)
    print(f"wrote {counted(len(frame), 'trial')} of run {run.name} to {out}")
    return 0


def add_parser(commands) -> None:
    runs = commands.add_parser("runs", help="list, show and export the runs in an experiment store")
    actions = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    formatter = DefaultsHelpFormatter

    listing = actions.add_parser(
        "list",
        help="every run: status, trials done and failed, best",
        description="List every run in a database file, or in the run folders under a folder "
        "(their nasbox.db, or the --storage file their summary.json names). "
        "Under a folder, a database that cannot be read is named on a warning line and skipped; "
        "the exit status is 0 when any run is listed and 2 when every database is unreadable.",
        formatter_class=formatter,
    )
    listing.add_argument(
        "path", nargs="?", default="runs", help="a database file, or a folder of run folders"
    )
    listing.add_argument("--storage", help="a database file (the same as giving it as PATH)")
    listing.set_defaults(handler=cmd_list)

    run_help = "a run folder, or a run name with --storage"
    show = actions.add_parser(
        "show", help="a run's settings, best architecture and trials", formatter_class=formatter
    )
    show.add_argument("run", help=run_help)
    show.add_argument("--storage", help="database file holding the run")
    show.set_defaults(handler=cmd_show)

    export = actions.add_parser(
        "export", help="a run's trials as CSV or Parquet", formatter_class=formatter
    )
    export.add_argument("run", help=run_help)
    export.add_argument("--storage", help="database file holding the run")
    export.add_argument("--out", required=True, help="file to write: .csv or .parquet")
    export.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    export.set_defaults(handler=cmd_export)
