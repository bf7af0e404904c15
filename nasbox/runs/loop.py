"""The loop that joins a strategy to an executor: ask, evaluate (maybe in parallel), tell, record.

The loop keeps `executor.capacity` evaluations in flight, so strategies are asked while earlier
proposals are still pending and told results in the order they finish. A failed evaluation is
told as `-inf` and counted; the search goes on. Every ask and tell is reported to a `Recorder`
(the experiment store) with the position it had in the sequence, so that a resumed run can replay
the same asks and tells (`history`) and continue exactly where the interrupted one stopped.
"""

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from tqdm.auto import tqdm

from nasbox.checks import check_count
from nasbox.errors import NasboxError, counted
from nasbox.runs.executors import Evaluation, Executor, InlineExecutor
from nasbox.strategies import Strategy


@dataclass(frozen=True)
class Trial:
    """One evaluation: its architecture, value (higher is better; `-inf` if it failed) and time.

    With several objectives the value is a tuple. A trial `rejected` by the constraints was
    never evaluated: its strategy was told `-inf` and it does not count towards the budget.
    `told_after` is how many trials had been asked when this one was told to the strategy and
    `tell_order` its rank among tells: together they fix the sequence a resume replays.
    """

    number: int
    arch: Hashable
    value: float | tuple[float, ...]
    seconds: float
    state: str = "complete"
    error: str | None = None
    worker: str = ""
    told_after: int = 0
    tell_order: int = 0


class Recorder(Protocol):
    """Where the loop reports each trial as it starts and ends (the experiment store)."""

    def started(self, number: int, arch: Hashable) -> None: ...

    def finished(self, trial: Trial) -> None: ...


def _postfix(best: float, failures: int, rejected: int) -> dict[str, object]:
    """The progress bar's postfix; rejections only appear where constraints reject some."""
    shown: dict[str, object] = {"best": f"{best:.4g}", "failed": failures}
    return shown | ({"rejected": rejected} if rejected else {})


class TooManyFailures(NasboxError):
    """Raised when `max_failures` trials have failed; finished trials are already recorded."""


# Rejections allowed per trial of the budget before the constraints are called unsatisfiable.
REJECTIONS_PER_TRIAL = 100


def _check_arguments(strategy, evaluate, recorder, on_trial, admissible) -> None:
    """Each argument has the methods the loop calls: a wrong one failed with an AttributeError,
    or, for `evaluate`, failed every trial with "TypeError: ... is not callable"."""
    if not (callable(getattr(strategy, "ask", None)) and callable(getattr(strategy, "tell", None))):
        raise NasboxError(
            f"run_search needs a strategy with ask() and tell(arch, value), got "
            f"{type(strategy).__name__}: pass get_strategy(name, space) from nasbox.strategies"
        )
    if not (isinstance(evaluate, Executor) or callable(evaluate)):
        hint = (
            "its __getitem__" if isinstance(evaluate, Mapping) else "get_estimator(name, context)"
        )
        raise NasboxError(
            f"run_search needs evaluate to be a function of an architecture or an Executor, got "
            f"{type(evaluate).__name__}: pass {hint}"
        )
    for name, value in (("on_trial", on_trial), ("admissible", admissible)):
        if value is not None and not callable(value):
            raise NasboxError(
                f"run_search needs {name} to be a function or None, got {type(value).__name__}"
            )
    if recorder is not None and not all(
        callable(getattr(recorder, method, None)) for method in ("started", "finished")
    ):
        raise NasboxError(
            f"run_search needs recorder to have started(number, arch) and finished(trial), got "
            f"{type(recorder).__name__}: pass a StoreRecorder, or None"
        )


def run_search(
    strategy: Strategy,
    evaluate: Executor | Callable[[Hashable], float],
    budget: int,
    *,
    recorder: Recorder | None = None,
    on_trial: Callable[[Trial], None] | None = None,
    history: Sequence[Trial] = (),
    running: Sequence[tuple[int, Hashable]] = (),
    max_failures: int | None = None,
    admissible: Callable[[Hashable], str | None] | None = None,
    progress: bool = True,
    description: str = "search",
) -> list[Trial]:
    """Finish `budget` trials (complete or failed) proposed by `strategy`, returned in tell order.

    `evaluate` is an executor or a plain function (run in this process). `history` holds the
    finished trials of an interrupted run and `running` the (number, arch) of its trials that
    were asked but never finished: they are replayed into the strategy, not evaluated again,
    except the unfinished ones, which are evaluated again. `admissible` says why a proposal
    breaks the constraints (None if it keeps them); such a proposal is rejected, not evaluated.
    """
    _check_arguments(strategy, evaluate, recorder, on_trial, admissible)
    if isinstance(strategy, Strategy):  # more than the space holds fails only once it is used up
        size = f"the {strategy.space.name} space holds {len(strategy.space):,} architectures"
        check_count(budget, "budget", maximum=len(strategy.space), why=size)
    else:
        check_count(budget, "budget")
    if max_failures is not None:
        check_count(max_failures, "max_failures")
    executor = evaluate if isinstance(evaluate, Executor) else InlineExecutor(evaluate)
    recorded = {trial.number: trial.arch for trial in history}
    recorded.update(running)
    trials: list[Trial] = []
    asked = 0

    def ask() -> Hashable:
        nonlocal asked
        arch = strategy.ask()
        expected = recorded.get(asked, arch)
        if arch != expected:
            raise NasboxError(
                f"cannot resume: trial {asked} was {expected} but the strategy now proposes "
                f"{arch}; the run was made with other settings or another nasbox version"
            )
        asked += 1
        return arch

    for trial in sorted(history, key=lambda trial: trial.tell_order):
        while asked < trial.told_after:
            ask()
        strategy.tell(trial.arch, trial.value)
        trials.append(trial)
    resubmit = sorted(number for number in dict(running) if number < asked)
    while asked < len(recorded):
        resubmit.append(asked)
        ask()

    failures = sum(trial.state == "failed" for trial in trials)
    rejected = sum(trial.state == "rejected" for trial in trials)
    scalar = [t.value for t in trials if not isinstance(t.value, tuple)]
    best = max(scalar, default=-math.inf)
    in_flight: dict[int, Hashable] = {}

    def submit(number: int, arch: Hashable) -> None:
        if recorder is not None:
            recorder.started(number, arch)
        executor.submit(number, arch)
        in_flight[number] = arch

    def finish(evaluation: Evaluation) -> Trial:
        del in_flight[evaluation.number]
        value = -math.inf if evaluation.failed else evaluation.value
        strategy.tell(evaluation.arch, value)
        trial = Trial(
            evaluation.number,
            evaluation.arch,
            value,
            evaluation.seconds,
            "failed" if evaluation.failed else "complete",
            evaluation.error,
            evaluation.worker,
            told_after=asked,
            tell_order=len(trials),
        )
        trials.append(trial)
        if recorder is not None:
            recorder.finished(trial)
        if on_trial is not None:
            on_trial(trial)
        return trial

    def reject(number: int, arch: Hashable, reason: str) -> None:
        strategy.tell(arch, -math.inf)
        trial = Trial(number, arch, -math.inf, 0.0, "rejected", reason, "main", asked, len(trials))
        trials.append(trial)
        if recorder is not None:
            recorder.started(number, arch)
            recorder.finished(trial)
        if on_trial is not None:
            on_trial(trial)

    with tqdm(
        total=budget,
        initial=len(trials) - rejected,
        desc=description,
        unit="arch",
        disable=not progress,
    ) as bar:
        try:
            while True:
                while resubmit and len(in_flight) < executor.capacity:
                    number = resubmit.pop(0)
                    submit(number, recorded[number])
                while len(in_flight) < executor.capacity and asked - rejected < budget:
                    try:
                        number, arch = asked, ask()
                    except NasboxError as err:  # the space is used up, mostly by rejections
                        if not rejected or asked < len(strategy.space):
                            raise
                        kept = asked - rejected
                        raise NasboxError(
                            f"{err}, and only {kept} keep the constraints; loosen them, or lower "
                            f"the budget to {kept}"
                        ) from None
                    reason = admissible(arch) if admissible is not None else None
                    if not isinstance(reason, str | None):  # True read as "keeps them" rejected all
                        raise NasboxError(
                            f"admissible returned {reason!r} ({type(reason).__name__}); return "
                            "None to keep an architecture, or a string saying why it is rejected"
                        )
                    if reason is None:
                        submit(number, arch)
                        continue
                    reject(number, arch, reason)
                    rejected += 1
                    bar.set_postfix(_postfix(best, failures, rejected))
                    if rejected > REJECTIONS_PER_TRIAL * budget:
                        raise NasboxError(
                            f"the constraints rejected {rejected} architectures ({reason}); "
                            "loosen them"
                        )
                if not in_flight:
                    break
                for evaluation in executor.wait():
                    trial = finish(evaluation)
                    if evaluation.bad_input:
                        raise NasboxError(evaluation.error)
                    if not isinstance(trial.value, tuple):
                        best = max(best, trial.value)
                    failures += trial.state == "failed"
                    bar.set_postfix(_postfix(best, failures, rejected))
                    bar.update()
                    if max_failures is not None and failures >= max_failures:
                        raise TooManyFailures(
                            f"{counted(failures, 'trial')} failed (--max-failures {max_failures})"
                            f"; the last: {trial.error}"
                        )
        finally:
            if executor is not evaluate:
                executor.close()
    return trials
