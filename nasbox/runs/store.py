"""Where results go: one folder per run with a CSV row per evaluation, a summary and a plot."""

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nasbox.runs.folder import replaced_atomically
from nasbox.runs.loop import Trial
from nasbox.spaces import SearchSpace


class TrialWriter:
    """Appends each trial to `trials.csv` the moment it finishes (flushed, so nothing is lost)."""

    columns = ("number", "arch", "value", "seconds")

    def __init__(self, path: Path, space: SearchSpace) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.space = space
        self._file = path.open("w", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(self.columns)
        self._file.flush()

    def __call__(self, trial: Trial) -> None:
        self._writer.writerow(
            (trial.number, self.space.format(trial.arch), repr(trial.value), f"{trial.seconds:.4f}")
        )
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


def plot_trials(path: Path, trials: Sequence[Trial], label: str) -> None:
    """Each trial's value and the best so far against the trial number."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numbers = [trial.number + 1 for trial in trials]
    values = [trial.value if math.isfinite(trial.value) else math.nan for trial in trials]
    best, running = [], -math.inf
    for trial in trials:
        running = max(running, trial.value)
        best.append(running if math.isfinite(running) else math.nan)
    figure, axis = plt.subplots(figsize=(6, 4), dpi=120)
    axis.scatter(numbers, values, s=10, alpha=0.6, label="evaluated")
    axis.plot(numbers, best, color="C3", label="best so far")
    axis.set_xlabel("evaluations")
    axis.set_ylabel(label)
    axis.legend(loc="lower right")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    with replaced_atomically(path) as temporary:
        figure.savefig(temporary)
    plt.close(figure)
