"""Output folders that keep results safe: no silent overwrite, one process at a time, atomic writes.

A command claims its `--out` folder before it writes anything. The claim fails with one clear line
when the folder already holds results (unless the user resumes or asks to overwrite), when another
process holds the folder, or when the path cannot be a folder. The lock is an OS file lock
(`flock`), so a process killed with SIGKILL releases it with its file descriptors.
"""

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from filelock import FileLock, Timeout

try:
    import fcntl
except ImportError:  # Windows: whether a folder is held cannot be told without taking it
    fcntl = None

from nasbox.errors import NasboxError

LOCK_NAME = ".nasbox.lock"
# What each command leaves in its folder: a folder holding another command's results is refused,
# even with --overwrite, so `search --out` never mixes into (or deletes) a training run.
COMMAND_RESULTS = {
    "search": ("trials.csv", "summary.json", "trials.png", "nasbox.db", "pareto.csv", "pareto.png"),
    "train": ("checkpoint.pt", "history.csv", "history.png", "settings.json"),
    "bench run": ("trajectories.csv", "summary.md", "summary.json", "anytime.png"),
}


def check_output_path(path: str | Path, option: str = "--out", named: Path | None = None) -> None:
    """Fail early, before any compute, when `path` cannot become (or be) a writable folder;
    errors name `named` (the file to be written in it) where given. `path` as typed: an empty
    one is refused, where `Path("")` would quietly be the current folder."""
    if not str(path).strip():
        raise NasboxError(f"{option} is empty; give a folder path")
    path = Path(path)
    shown = path if named is None else named
    try:
        if named is None and path.exists() and not path.is_dir():
            raise NasboxError(f"{option} {path} is a file, not a folder; give a folder path")
        existing = path
        while not existing.exists():
            existing = existing.parent
    except PermissionError:
        raise NasboxError(f"{option} {shown}: cannot reach it (permission denied)") from None
    if not existing.is_dir():
        raise NasboxError(f"{option} {shown}: {existing} is a file, so no folder can be made there")
    try:  # a real file, not os.access: root passes that check where it still cannot write (/proc)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError:
        raise NasboxError(
            f"{option} {shown}: {existing} is not writable; choose another folder"
        ) from None


class RunFolder:
    """Exclusive use of an output folder for the lifetime of one command (a context manager).

    `results` are the file names that mean "an earlier run left results here". Without `resume`
    or `overwrite` such a folder is refused with `way_on` (the ways this command offers, by
    default a search's); with `overwrite` those files are deleted once the lock is held; with
    `resume` they are kept for the command to continue.
    """

    def __init__(
        self,
        path: Path,
        results: Sequence[str],
        *,
        resume: bool = False,
        overwrite: bool = False,
        option: str = "--out",
        way_on: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.results = tuple(results)
        self.resume = resume
        self.overwrite = overwrite
        self.option = option
        self.way_on = way_on or (
            f"continue with --resume {self.path}, choose a new {option}, "
            "or pass --overwrite to replace them"
        )
        self._lock: FileLock | None = None

    def existing_results(self) -> list[str]:
        return [name for name in self.results if (self.path / name).exists()]

    def check(self) -> None:
        """Everything that can be checked without creating the folder."""
        check_output_path(self.path, self.option)
        if folder_in_use(self.path):  # before any work: the lock is only taken on entering
            raise NasboxError(self._busy())
        for command, names in COMMAND_RESULTS.items():
            foreign = [n for n in names if n not in self.results and (self.path / n).exists()]
            if foreign:
                raise NasboxError(
                    f"{self.option} {self.path} holds the results of `nasbox {command}` "
                    f"({', '.join(foreign)}); choose another {self.option}"
                )
        found = self.existing_results()
        if found and not (self.resume or self.overwrite):
            raise NasboxError(
                f"{self.option} {self.path} already holds results ({', '.join(found)}); "
                f"{self.way_on}"
            )

    def __enter__(self) -> "RunFolder":
        self.check()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise NasboxError(
                f"{self.option} {self.path}: cannot create it ({err.strerror})"
            ) from None
        self._lock = held_lock(
            self.path / LOCK_NAME,
            busy=self._busy(),
            locked=f"{self.option} {self.path}",
        )
        remove_stale_temporaries(self.path, self.results)
        if self.overwrite and not self.resume:
            for name in self.existing_results():
                target = self.path / name
                if target.is_dir():
                    raise NasboxError(f"{target} is a folder; remove it by hand to overwrite")
                target.unlink()
        return self

    def _busy(self) -> str:
        return (
            f"{self.option} {self.path} is in use by another nasbox process; wait for it to "
            "finish" + ("" if self.resume else f" or choose another {self.option}")
        )

    def __exit__(self, *exc_info) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def held_lock(path: Path, busy: str, locked: str) -> FileLock:
    """An OS lock on file `path` (`flock`: a process killed with SIGKILL releases it with its
    file descriptors), or one line: `busy` when another process holds it, else that `locked`
    (what the lock guards) cannot be locked."""
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise NasboxError(busy) from None
    except OSError as err:
        raise NasboxError(f"{locked}: cannot lock it ({err.strerror})") from None
    return lock


def folder_in_use(path: Path) -> bool | None:
    """Whether a live process holds run folder `path` (True or False), or None where that cannot
    be told (no lock file, no folder, no `flock`).

    Only reads: a run that was never stopped cleanly (SIGKILL, a crashed machine) still says
    `running` in its store, and `nasbox runs` must not write there to find it out. The lock file
    is opened read-only and never created; a shared lock taken for an instant is given back.
    """
    if fcntl is None:
        return None
    try:
        descriptor = os.open(Path(path) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(descriptor)  # gives back the shared lock, if it was taken
    return False


def _temporary_name(path: Path, pid: int | str) -> str:
    """The name `replaced_atomically` writes `path` under in process `pid`."""
    return f".{path.stem}.tmp-{pid}{path.suffix}"


def _process_is_gone(pid: int) -> bool:
    """Whether no process `pid` exists; an unknown answer counts as alive, so nothing of a
    running process is ever removed."""
    if os.name != "posix" or pid <= 0:  # Windows' os.kill would end the process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # another user's process (EPERM), or no such PID number
        return False
    return False


def remove_stale_temporaries(folder: Path, names: Sequence[str]) -> list[Path]:
    """Delete the temporaries `replaced_atomically` left beside `names` in `folder` when its
    process was killed mid-write (SIGKILL skips the cleanup): only files of exactly its name
    pattern whose process no longer exists. Returns what was removed. Only tidies: what cannot
    be listed or removed (a folder without read permission, another user's file) is left."""
    patterns = []
    for name in names:
        prefix, suffix = _temporary_name(Path(name), "|").split("|")
        patterns.append(re.compile(re.escape(prefix) + "([0-9]{1,10})" + re.escape(suffix)))
    try:
        candidates = sorted(Path(folder).iterdir())
    except OSError:
        return []
    removed = []
    for candidate in candidates:
        found = next(filter(None, (p.fullmatch(candidate.name) for p in patterns)), None)
        if found and candidate.is_file() and _process_is_gone(int(found[1])):
            with contextlib.suppress(OSError):
                candidate.unlink(missing_ok=True)
                removed.append(candidate)
    return removed


@contextlib.contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    Readers (and a crash at any moment) see either the old file or the new one, never half.
    The temporary name keeps the suffix so writers that go by it (matplotlib) still work.
    Missing parent folders are created, as for run folders. Temporaries of `path` that a killed
    process left (SIGKILL skips the cleanup below) are removed first, so a rerun tidies up.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, [path.name])
    temporary = path.with_name(_temporary_name(path, os.getpid()))
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
