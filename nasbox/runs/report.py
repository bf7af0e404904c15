"""Where results go: one folder per run with a CSV row per evaluation, a summary and a plot."""

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasbox.estimators.objectives import Objective
from nasbox.pareto import hypervolume, pareto_front
from nasbox.runs.folder import replaced_atomically
from nasbox.runs.store import StoredTrial

TRIAL_COLUMNS = ("number", "arch", "state", "value", "seconds", "worker", "error")


def _row(trial: StoredTrial, metrics: Sequence[str]) -> tuple:
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
        *(repr(trial.metrics[name]) if name in trial.metrics else "" for name in metrics),
    )


def write_trials_csv(
    path: Path, trials: Sequence[StoredTrial], metrics: Sequence[str] = ()
) -> None:
    """`trials.csv` from the store, in trial-number order (replaced in one rename).

    `metrics` adds a column per extra metric, e.g. one per objective of a multi-objective run.
    """
    with replaced_atomically(path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow((*TRIAL_COLUMNS, *metrics))
        writer.writerows(_row(trial, metrics) for trial in trials)


class TrialAppender:
    """Appends each finished trial to an existing `trials.csv` at once (flushed), in finish order.

    The file is rewritten from the store, in number order, when the run ends or resumes.
    """

    def __init__(self, path: Path, metrics: Sequence[str] = ()) -> None:
        self.path = path
        self.metrics = metrics
        self._file = path.open("a", newline="")
        self._writer = csv.writer(self._file)

    def __call__(self, trial: StoredTrial) -> None:
        self._writer.writerow(_row(trial, self.metrics))
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


def best_so_far(values: Sequence[float], minimize: bool = False) -> list[float]:
    """The best value up to each trial, the lowest for a minimised objective (a run whose
    first objective is `-params` stores parameter counts); NaN values are skipped, and NaN
    stands where no finite value came yet."""
    pick, running = (min, math.inf) if minimize else (max, -math.inf)
    best = []
    for value in values:
        running = running if math.isnan(value) else pick(running, value)
        best.append(running if math.isfinite(running) else math.nan)
    return best


def plot_trials(
    path: Path, trials: Sequence[StoredTrial], label: str, minimize: bool = False
) -> None:
    """Each trial's value and the best so far against the trial number; failures marked."""
    from nasbox.plotting import new_figure

    figure, axis = new_figure((6, 4))
    draw_trials(axis, trials, label, minimize)
    _save(figure, axis, path)


def draw_trials(axis, trials: Sequence[StoredTrial], label: str, minimize: bool = False) -> None:
    """`plot_trials` on `axis`: the axis spans every trial, failed ones too, so a run whose
    trials all failed shows its crosses (the axis followed the values alone)."""
    trials = sorted(trials, key=lambda trial: trial.number)
    numbers = [trial.number + 1 for trial in trials]
    values = [
        trial.value if trial.value is not None and math.isfinite(trial.value) else math.nan
        for trial in trials
    ]
    best = best_so_far(values, minimize)
    failed = [trial.number + 1 for trial in trials if trial.state == "failed"]
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
    axis.update_datalim([(number, 0) for number in numbers], updatey=False)
    axis.autoscale_view()
    if all(math.isnan(value) for value in values):  # no value: the y ticks would be made up
        axis.set_yticks([])
    axis.set_xlabel("trial")
    axis.set_ylabel(f"{label} (min)" if minimize else label)


def _pareto(
    complete: Sequence[StoredTrial], objectives: Sequence[Objective]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw values, the signs that make every objective maximised, the front's indices with the
    best first objective first) of `complete` trials."""
    raw = np.array([[t.metrics[o.estimator] for o in objectives] for t in complete], dtype=float)
    signs = np.array([-1.0 if o.minimize else 1.0 for o in objectives])
    points = raw * signs
    front = pareto_front(points)
    return raw, signs, front[np.argsort(-points[front, 0], kind="stable")]


def pareto_trials(
    trials: Sequence[StoredTrial], objectives: Sequence[Objective]
) -> list[StoredTrial]:
    """The complete trials on the Pareto front of `objectives`, best first objective first."""
    complete = [t for t in trials if t.state == "complete"]
    return [complete[i] for i in _pareto(complete, objectives)[2]] if complete else []


def write_pareto(
    out: Path, trials: Sequence[StoredTrial], objectives: Sequence[Objective]
) -> dict[str, Any]:
    """`pareto.csv` and `pareto.png` for the complete trials; returns the summary's entries.

    The hypervolume is measured from the worst finite value of each objective among the
    complete trials, so it grows as the front improves on what the search saw first; a cell at
    -inf (NASWOT's singular one) would make every volume infinite.
    """
    complete = [t for t in trials if t.state == "complete"]
    names = [o.estimator for o in objectives]
    if not complete:
        return {"pareto_front": [], "hypervolume": None}
    raw, signs, front = _pareto(complete, objectives)
    points = raw * signs
    reference = points.min(axis=0, where=np.isfinite(points), initial=np.inf)
    with (
        replaced_atomically(out / "pareto.csv") as temporary,
        temporary.open("w", newline="") as handle,
    ):
        writer = csv.writer(handle)
        writer.writerow(("arch", *names))
        writer.writerows((complete[i].arch, *map(repr, raw[i].tolist())) for i in front)
    _plot_pareto(out / "pareto.png", raw, front, [str(o) for o in objectives])
    return {
        "pareto_front": [
            {"arch": complete[i].arch, **dict(zip(names, raw[i].tolist(), strict=True))}
            for i in front
        ],
        "hypervolume": hypervolume(points, reference),
        "hypervolume_reference": dict(zip(names, (reference * signs).tolist(), strict=True)),
    }


def _save(figure, axis, path: Path) -> None:
    """Legend, grid, and the file replaced in one rename."""
    axis.legend(loc="best")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    with replaced_atomically(path) as temporary:
        figure.savefig(temporary)


def _plot_pareto(path: Path, raw: np.ndarray, front: np.ndarray, labels: Sequence[str]) -> None:
    """Every complete trial in the first two objectives, the front joined as a staircase."""
    from nasbox.plotting import new_figure

    figure, axis = new_figure((6, 4))
    x, y = raw[:, 0], raw[:, 1] if raw.shape[1] > 1 else np.zeros(len(raw))
    axis.scatter(x, y, s=10, alpha=0.4, label="evaluated")
    order = front[np.argsort(x[front])]
    axis.step(x[order], y[order], where="post", color="C3", alpha=0.6)
    axis.scatter(x[order], y[order], s=24, color="C3", label="Pareto front")
    axis.set_xlabel(f"{labels[0]} ({'min' if labels[0].startswith('-') else 'max'})")
    if raw.shape[1] > 1:
        axis.set_ylabel(f"{labels[1]} ({'min' if labels[1].startswith('-') else 'max'})")
    if raw.shape[1] > 2:
        axis.set_title(f"first two of {len(labels)} objectives")
    _save(figure, axis, path)
