"""Where results go: one folder per run with a CSV row per evaluation, a summary and a plot."""

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nasbox.runs.folder import replaced_atomically
from nasbox.runs.store import StoredTrial

TRIAL_COLUMNS = ("number", "arch", "state", "value", "seconds", "worker", "error")


def _row(trial: StoredTrial) -> tuple:
    value = "" if trial.value is None else repr(trial.value)
    seconds = "" if trial.seconds is None else f"{trial.seconds:.4f}"
    return (
        trial.number,
        trial.arch,
        trial.state,
        value,
        seconds,
        trial.worker or "",
        trial.error or "",
    )


def write_trials_csv(path: Path, trials: Sequence[StoredTrial]) -> None:
    """`trials.csv` from the store, in trial-number order (replaced in one rename)."""
    with replaced_atomically(path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TRIAL_COLUMNS)
        writer.writerows(_row(trial) for trial in trials)


class TrialAppender:
    """Appends each finished trial to an existing `trials.csv` at once (flushed), in finish order.

    The file is rewritten from the store, in number order, when the run ends or resumes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("a", newline="")
        self._writer = csv.writer(self._file)

    def __call__(self, trial: StoredTrial) -> None:
        self._writer.writerow(_row(trial))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """JSON with non-finite floats written as strings ("-inf"), so any reader can load it."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [clean(item) for item in value]
        return value

    with replaced_atomically(path) as temporary:
        temporary.write_text(json.dumps(clean(payload), indent=2) + "\n")


def plot_trials(path: Path, trials: Sequence[StoredTrial], label: str) -> None:
    """Each trial's value and the best so far against the trial number; failures marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = sorted(trials, key=lambda trial: trial.number)
    numbers = [trial.number + 1 for trial in trials]
    values = [
        trial.value if trial.value is not None and math.isfinite(trial.value) else math.nan
        for trial in trials
    ]
    best, running = [], -math.inf
    for value in values:
        running = running if math.isnan(value) else max(running, value)
        best.append(running if math.isfinite(running) else math.nan)
    failed = [trial.number + 1 for trial in trials if trial.state == "failed"]
    figure, axis = plt.subplots(figsize=(6, 4), dpi=120)
    axis.scatter(numbers, values, s=10, alpha=0.6, label="evaluated")
    axis.plot(numbers, best, color="C3", label="best so far")
    if failed:  # drawn along the bottom edge: a failed trial has no value
        from matplotlib.transforms import blended_transform_factory

        bottom = blended_transform_factory(axis.transData, axis.transAxes)
        axis.scatter(
            failed,
            [0.03] * len(failed),
            transform=bottom,
            marker="x",
            color="k",
            s=16,
            label="failed",
        )
    axis.set_xlabel("trial")
    axis.set_ylabel(label)
    axis.legend(loc="best")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    with replaced_atomically(path) as temporary:
        figure.savefig(temporary)
    plt.close(figure)
