"""The loop that joins a strategy to an estimator: ask, evaluate, tell, record."""

import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from tqdm.auto import tqdm

from nasbox.strategies import Strategy


@dataclass(frozen=True)
class Trial:
    """One evaluation: which architecture, its value (higher is better) and the seconds it took."""

    number: int
    arch: Hashable
    value: float
    seconds: float


def run_search(
    strategy: Strategy,
    evaluate: Callable[[Hashable], float],
    budget: int,
    *,
    on_trial: Callable[[Trial], None] | None = None,
    progress: bool = True,
    description: str = "search",
) -> list[Trial]:
    """Evaluate `budget` architectures proposed by `strategy`; NaN values count as `-inf`.

    `on_trial` sees each trial as soon as it is told, so a caller can persist results as they come
    and an interruption loses at most the evaluation in flight.
    """
    trials: list[Trial] = []
    best = -math.inf
    with tqdm(total=budget, desc=description, unit="arch", disable=not progress) as bar:
        for number in range(budget):
            arch = strategy.ask()
            start = time.perf_counter()
            value = float(evaluate(arch))
            seconds = time.perf_counter() - start
            value = -math.inf if math.isnan(value) else value
            strategy.tell(arch, value)
            trial = Trial(number, arch, value, seconds)
            trials.append(trial)
            if on_trial is not None:
                on_trial(trial)
            best = max(best, value)
            bar.set_postfix(best=f"{best:.4g}")
            bar.update()
    return trials
