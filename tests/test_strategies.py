import math

import pytest

from nasbox.errors import NasboxError
from nasbox.runs import run_search
from nasbox.spaces import get_space
from nasbox.strategies import get_strategy


def test_random_search_never_repeats_and_is_seeded():
    space = get_space("nb201")
    first = get_strategy("random", space, seed=7)
    proposals = [first.ask() for _ in range(500)]
    assert len(set(proposals)) == 500
    again = get_strategy("random", space, seed=7)
    assert [again.ask() for _ in range(500)] == proposals


def test_search_loop_keeps_the_best_and_treats_nan_as_worst():
    space = get_space("nb201")
    strategy = get_strategy("random", space, seed=0)
    values = iter([1.0, math.nan, 3.0, -math.inf, 2.0])
    trials = run_search(strategy, lambda arch: next(values), 5, progress=False)
    assert [t.value for t in trials][:2] == [1.0, -math.inf]
    best_arch, best_value = strategy.best
    assert best_value == 3.0 and best_arch == trials[2].arch


def test_random_search_reports_an_exhausted_space():
    space = get_space("nb201")
    strategy = get_strategy("random", space, seed=0)
    strategy._proposed = set(space)
    with pytest.raises(NasboxError, match="all 15625"):
        strategy.ask()


def test_unknown_strategy():
    with pytest.raises(NasboxError, match="unknown strategy 'annealing'; choose one of: .*random"):
        get_strategy("annealing", get_space("nb201"))
