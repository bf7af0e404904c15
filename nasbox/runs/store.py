"""The experiment store: every run and every trial in one SQLite file, one transaction per change.

A run is its settings, status and times; a trial is one evaluation (`running`, then `complete` or
`failed`) with its value, extra metrics, seconds, worker and error. Each state change is committed
on its own, in WAL mode, so a process killed at any moment leaves a consistent database that
`nasbox search --resume` continues from. One file may hold many runs (`--storage FILE`).

A trial also records when it was told to the strategy (`told_after`: how many trials had been
asked by then; `tell_order`: its rank among tells), so a resumed run can replay the exact sequence
of asks and tells and rebuild the strategy's state without evaluating anything again.
"""

import difflib
import json
import math
import sqlite3
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasbox.errors import NasboxError
from nasbox.estimators.objectives import Objective
from nasbox.runs.executors import INFINITE_VALUE, holds_inf
from nasbox.runs.loop import Trial
from nasbox.spaces import SearchSpace

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    settings TEXT NOT NULL,
    folder TEXT,
    version TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    run_id INTEGER NOT NULL REFERENCES runs (run_id),
    number INTEGER NOT NULL,
    arch TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'complete', 'failed', 'rejected')),
    value REAL,
    metrics TEXT,
    seconds REAL,
    worker TEXT,
    error TEXT,
    started REAL NOT NULL,
    ended REAL,
    told_after INTEGER,
    tell_order INTEGER,
    PRIMARY KEY (run_id, number)
);
"""

DATABASE = "nasbox.db"  # the store's file name inside a run folder, unless --storage

# How many run names (or folders) an error about a missing run names at most.
NAMES_SHOWN = 5

# How long to wait for another process's write before calling the database locked.
BUSY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class StoredTrial:
    """A trial as the store holds it; `arch` is the space's string form."""

    number: int
    arch: str
    state: str
    value: float | None = None
    seconds: float | None = None
    worker: str | None = None
    error: str | None = None
    started: float | None = None
    ended: float | None = None
    told_after: int | None = None
    tell_order: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def to_trial(
        self, parse: Callable[[str], Hashable], objectives: Sequence[Objective] = ()
    ) -> Trial:
        """The finished trial as the loop replays it."""
        return Trial(
            self.number,
            parse(self.arch),
            self.told_value(objectives),
            self.seconds or 0.0,
            self.state,
            self.error,
            self.worker or "",
            self.told_after or 0,
            self.tell_order or 0,
        )

    def told_value(self, objectives: Sequence[Objective] = ()) -> float | tuple[float, ...]:
        """What the strategy is told: `-inf` for a failure (whatever value it kept), and one
        maximised value per objective where there are several."""
        if self.state != "complete":
            return -math.inf
        if objectives:
            return tuple(o.maximised(self.metrics[o.estimator]) for o in objectives)
        return -math.inf if self.value is None else self.value


@dataclass(frozen=True)
class StoredRun:
    run_id: int
    name: str
    status: str
    settings: dict[str, Any]
    folder: str | None
    version: str | None
    created: float
    updated: float


def _value(value: float | None) -> float | None:
    """SQLite keeps +-inf but turns NaN into NULL; keep NaN out explicitly."""
    return None if value is None or math.isnan(value) else float(value)


class RunStore:
    """A connection to one SQLite experiment database (created on first use)."""

    def __init__(self, path: str | Path, create: bool = True) -> None:
        """`create=False` only reads runs: a file without nasbox's tables (an empty one) is
        refused rather than made a nasbox database."""
        self.path = Path(path)
        if self.path.is_dir():
            raise NasboxError(f"--storage {self.path} is a folder; give a database file")
        if not create and not self.path.exists():  # sqlite would make an empty file there
            raise NasboxError(f"{self.path}: no such database file")
        try:
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}
            if not tables and not create:
                self._db.close()
                raise NasboxError(
                    f"{self.path}: an empty database, without runs; give a file that "
                    "`nasbox search` wrote"
                )
            if tables and not {"runs", "trials"} <= tables:
                raise NasboxError(
                    f"{self.path}: a database of another program (tables: "
                    f"{', '.join(sorted(tables)[:5])}); give nasbox its own --storage file"
                )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._check_schema()
        except sqlite3.DatabaseError as err:
            raise self._error(err) from None

    def _check_schema(self) -> None:
        columns = [row[1] for row in self._db.execute("PRAGMA table_info(trials)")]
        if "told_after" not in columns:
            raise NasboxError(f"{self.path}: a database without nasbox's trials table")
        (table,) = self._db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'trials'"
        ).fetchone()
        if "'rejected'" not in table:
            self._allow_rejected_trials(columns)

    def _allow_rejected_trials(self, columns: list[str]) -> None:
        """Stores written before constraints existed refuse the state 'rejected'. SQLite cannot
        change a CHECK in place, so the trials table is rebuilt, in one transaction."""
        listed = ", ".join(columns)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("ALTER TABLE trials RENAME TO trials_before_rejected")
            self._db.execute(SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS trials") :])
            self._db.execute(
                f"INSERT INTO trials ({listed}) SELECT {listed} FROM trials_before_rejected"
            )
            self._db.execute("DROP TABLE trials_before_rejected")
        except sqlite3.Error:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _error(self, err: sqlite3.Error) -> NasboxError:
        message = str(err)
        if "locked" in message or "busy" in message:
            return NasboxError(
                f"{self.path}: the database is locked by another process; wait for it or use "
                "another --storage"
            )
        return NasboxError(f"{self.path}: not a usable nasbox database ({message})")

    def _write(self, sql: str, parameters: tuple = ()) -> sqlite3.Cursor:
        """One statement in its own committed transaction."""
        try:
            return self._db.execute(sql, parameters)
        except sqlite3.Error as err:
            raise self._error(err) from None

    def _read(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        try:
            return self._db.execute(sql, parameters).fetchall()
        except sqlite3.Error as err:
            raise self._error(err) from None

    def check_writable(self) -> None:
        """Take and release the write lock, so a locked database is refused before any work."""
        self._write("BEGIN IMMEDIATE")
        self._write("ROLLBACK")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # runs

    def create_run(
        self, name: str, settings: dict[str, Any], folder: str | None, version: str
    ) -> StoredRun:
        if self.find_run(name) is not None:
            raise NasboxError(
                f"{self.path} already holds a run named {name!r}; resume it with --resume {name} "
                "or choose another name"
            )
        now = time.time()
        self._write(
            "INSERT INTO runs (name, status, settings, folder, version, created, updated) "
            "VALUES (?, 'running', ?, ?, ?, ?, ?)",
            (name, json.dumps(settings), folder, version, now, now),
        )
        return self.find_run(name)

    def _run(self, row: tuple) -> StoredRun:
        run_id, name, status, settings, folder, version, created, updated = row
        return StoredRun(
            run_id, name, status, json.loads(settings), folder, version, created, updated
        )

    def find_run(self, name: str) -> StoredRun | None:
        rows = self._read("SELECT * FROM runs WHERE name = ?", (name,))
        return self._run(rows[0]) if rows else None

    def runs(self) -> list[StoredRun]:
        return [self._run(row) for row in self._read("SELECT * FROM runs ORDER BY run_id")]

    def delete_run(self, name: str) -> None:
        """Forget run `name` and its trials (for --overwrite); nothing happens if it is absent."""
        run = self.find_run(name)
        if run is not None:
            self._write("BEGIN IMMEDIATE")
            self._write("DELETE FROM trials WHERE run_id = ?", (run.run_id,))
            self._write("DELETE FROM runs WHERE run_id = ?", (run.run_id,))
            self._write("COMMIT")

    def set_status(self, run: StoredRun, status: str, settings: dict | None = None) -> None:
        if settings is None:
            self._write(
                "UPDATE runs SET status = ?, updated = ? WHERE run_id = ?",
                (status, time.time(), run.run_id),
            )
        else:
            self._write(
                "UPDATE runs SET status = ?, settings = ?, updated = ? WHERE run_id = ?",
                (status, json.dumps(settings), time.time(), run.run_id),
            )

    def set_folder(self, run: StoredRun, folder: str) -> None:
        """Record the run's folder anew (the folder was moved or copied and resumed there)."""
        self._write(
            "UPDATE runs SET folder = ?, updated = ? WHERE run_id = ?",
            (folder, time.time(), run.run_id),
        )

    # trials

    def trial_started(self, run: StoredRun, number: int, arch: str, worker: str = "") -> None:
        """Record an asked trial; a trial re-run after a resume replaces its `running` row."""
        self._write(
            "INSERT OR REPLACE INTO trials (run_id, number, arch, state, worker, started) "
            "VALUES (?, ?, ?, 'running', ?, ?)",
            (run.run_id, number, arch, worker, time.time()),
        )

    def trial_finished(
        self,
        run: StoredRun,
        number: int,
        *,
        state: str,
        value: float | None,
        seconds: float,
        worker: str,
        error: str | None,
        told_after: int,
        tell_order: int,
        metrics: dict[str, float] | None = None,
    ) -> None:
        self._write(
            "UPDATE trials SET state = ?, value = ?, seconds = ?, worker = ?, error = ?, "
            "ended = ?, told_after = ?, tell_order = ?, metrics = ? "
            "WHERE run_id = ? AND number = ?",
            (
                state,
                _value(value),
                seconds,
                worker,
                error,
                time.time(),
                told_after,
                tell_order,
                json.dumps(metrics) if metrics else None,
                run.run_id,
                number,
            ),
        )

    def trials(self, run: StoredRun) -> list[StoredTrial]:
        """Every trial of `run` in the order they were asked."""
        rows = self._read(
            "SELECT number, arch, state, value, seconds, worker, error, started, ended, "
            "told_after, tell_order, metrics FROM trials WHERE run_id = ? ORDER BY number",
            (run.run_id,),
        )
        return [
            StoredTrial(*row[:11], metrics=json.loads(row[11]) if row[11] else {}) for row in rows
        ]

    def fail_infinite_trials(
        self, run: StoredRun, objectives: Sequence[Objective] = ()
    ) -> list[int]:
        """Record as failed, as a run now fails them, the complete trials holding +inf, which
        older versions kept and strategies now refuse; their numbers. The value stays stored."""
        numbers = [
            trial.number for trial in self.trials(run) if holds_inf(trial.told_value(objectives))
        ]
        if numbers:
            self._write("BEGIN IMMEDIATE")
            for number in numbers:
                self._write(
                    "UPDATE trials SET state = 'failed', error = ? WHERE run_id = ? AND number = ?",
                    (INFINITE_VALUE, run.run_id, number),
                )
            self._write("COMMIT")
        return numbers

    def counts(self, run: StoredRun) -> dict[str, int]:
        rows = self._read(
            "SELECT state, COUNT(*) FROM trials WHERE run_id = ? GROUP BY state", (run.run_id,)
        )
        return {"running": 0, "complete": 0, "failed": 0, **dict(rows)}


class StoreRecorder:
    """The search loop's recorder: each trial start and end becomes a committed row."""

    def __init__(
        self,
        store: RunStore,
        run: StoredRun,
        space: SearchSpace,
        on_finished: Callable[[StoredTrial], None] | None = None,
        objectives: Sequence[Objective] = (),
    ) -> None:
        self.store, self.run, self.space = store, run, space
        self.on_finished = on_finished
        self.objectives = objectives

    def started(self, number: int, arch: Hashable) -> None:
        self.store.trial_started(self.run, number, self.space.format(arch))

    def finished(self, trial: Trial) -> None:
        """Several objectives go to `metrics` in their own units; `value` holds the first."""
        value, metrics = (None if trial.state != "complete" else trial.value), {}
        if isinstance(value, tuple):
            metrics = {
                o.estimator: o.maximised(part)
                for o, part in zip(self.objectives, value, strict=True)
            }
            value = metrics[self.objectives[0].estimator]
        self.store.trial_finished(
            self.run,
            trial.number,
            state=trial.state,
            value=value,
            seconds=trial.seconds,
            worker=trial.worker,
            error=trial.error,
            told_after=trial.told_after,
            tell_order=trial.tell_order,
            metrics=metrics,
        )
        if self.on_finished is not None:
            arch = self.space.format(trial.arch)
            self.on_finished(
                StoredTrial(
                    trial.number,
                    arch,
                    trial.state,
                    value,
                    trial.seconds,
                    trial.worker,
                    trial.error,
                    metrics=metrics,
                )
            )


def best_trial(trials: list[StoredTrial]) -> StoredTrial | None:
    """The complete trial with the highest value; ties go to the earliest."""
    complete = [t for t in trials if t.state == "complete"]
    return max(complete, key=lambda t: (t.value, -t.number), default=None)


def locate_run(target: str, storage: str | None, option: str) -> tuple[Path, str, Path]:
    """(database, run name, run folder) for a run given as its folder or its name in `storage`.

    A name found in an explicit `storage` wins over a same-named folder that happens to be in
    the current folder: `--storage` says where the user means to look.
    """
    if not target.strip():
        raise NasboxError(f"{option} is empty; give a run folder or a run name")
    folder = Path(target)
    names = unusable = None
    if storage and Path(storage).is_file():
        try:
            with RunStore(storage, create=False) as store:
                run = store.find_run(target)
                names = _runs_named([r.name for r in store.runs()], target, storage)
        except NasboxError as err:  # a run folder given as the target is the better report
            if not folder.is_dir():
                raise
            run, unusable = None, err
        if run is not None:
            own = run.folder and folder.is_dir() and Path(run.folder).resolve() == folder.resolve()
            return Path(storage), run.name, folder if own else Path(run.folder or ".")
    if folder.is_dir():
        found = _run_in_folder(folder, option)
        if found is None and unusable is not None:
            raise unusable
        if found is None and names is not None:
            raise NasboxError(
                f"{option} {target}: no such run in {storage} ({names}), and the folder "
                f"{folder} holds no nasbox search run"
            )
        if found is None:
            raise NasboxError(f"{option} {folder}: the folder holds no nasbox search run")
        database, name = found
        if storage and Path(storage).resolve() != database.resolve():
            raise NasboxError(
                f"--storage {storage} is not the database of run folder {folder} ({database}); "
                "leave --storage out"
            )
        return database, name, folder
    if storage:
        if names is None:
            raise NasboxError(
                f"--storage {storage}: file not found; give the database file that holds run "
                f"{target} (or, without --storage, the run's folder)"
            )
        raise NasboxError(f"{option} {target}: no such run in {storage} ({names})")
    if folder.is_file():  # its database, say: "no such run folder" sent the user looking for it
        raise NasboxError(
            f"{option} {target} is a file, not a run folder; give the run folder that holds it, "
            "or a run name with --storage DATABASE"
        )
    raise NasboxError(
        f"{option} {target}: no such run folder ({_near_folders(folder)}to name a run in a "
        "database, add --storage FILE)"
    )


def _runs_named(names: list[str], target: str, storage: str) -> str:
    """The runs an error about a missing run `target` names: all of a few; of many (one line of
    hundreds of names hid the one meant), those whose names are near `target`'s."""
    if len(names) <= NAMES_SHOWN:
        return f"runs: {', '.join(names) or 'none'}"
    near = difflib.get_close_matches(target, names, n=NAMES_SHOWN)
    if not near:
        return f"{len(names)} runs, none named like it; `nasbox runs list {storage}` names them"
    return f"{len(names)} runs; near names: {', '.join(near)}"


def _near_folders(folder: Path) -> str:
    """'near names: A, B; ' for the folders beside a missing run `folder` whose names are close
    to its own (a typo), or ''."""
    try:
        beside = [path.name for path in folder.parent.iterdir() if path.is_dir()]
    except OSError:
        return ""
    near = difflib.get_close_matches(folder.name, beside, n=NAMES_SHOWN)
    return f"near names: {', '.join(str(folder.parent / name) for name in near)}; " if near else ""


def folder_holds_run(folder: Path, database: Path, name: str) -> bool:
    """Whether `folder` is a run folder of run `name` in `database` (its summary or its own
    database says so), whatever folder the store recorded when the run was made."""
    try:
        found = _run_in_folder(folder, "--resume")
    except NasboxError:
        return False
    if found is None:
        return False
    found_database, found_name = found
    return found_name == name and found_database.resolve() == Path(database).resolve()


def _run_in_folder(folder: Path, option: str) -> tuple[Path, str] | None:
    """(database, run name) of a search run folder, from its summary or its own database; None
    when the folder holds no run."""
    summary_file = folder / "summary.json"
    if summary_file.is_file():
        try:
            summary = json.loads(summary_file.read_text())
            database, name = folder / summary["storage"], summary["run"]
        except (ValueError, KeyError, TypeError, OSError):
            raise NasboxError(f"{summary_file}: not a nasbox search summary") from None
        _check_run_database(database, folder, option)
        return database, name
    if (folder / DATABASE).is_file():
        with RunStore(folder / DATABASE, create=False) as store:
            runs = store.runs()
        if len(runs) == 1:
            return folder / DATABASE, runs[0].name
    return None


def _check_run_database(database: Path, folder: Path, option: str) -> None:
    """The database a run folder's summary names must still be there: opening a missing one
    would make an empty database in its place and report the run as absent from it."""
    if not database.exists():
        raise NasboxError(
            f"{option} {folder}: the run's database {database} is missing (moved or deleted); "
            "put it back there to use this run"
        )
