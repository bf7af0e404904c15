import math
import re

import numpy as np
import pytest
import torch

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
    with pytest.raises(
        NasboxError, match="unknown strategy 'annealing'; choose one of: area, evolution"
    ):
        get_strategy("annealing", get_space("nb201"))


def _ops(edge_op: str) -> str:
    return "|" + edge_op + "~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def test_aging_evolution_drops_the_oldest_even_if_it_is_the_best():
    space = get_space("nb201")
    strategy = get_strategy("evolution", space, seed=0, population_size=3, tournament_size=2)
    values = [100.0, 1.0, 2.0, 3.0]
    told = []
    for value in values:
        arch = strategy.ask()
        strategy.tell(arch, value)
        told.append(arch)
    assert [arch for arch, _ in strategy.population] == told[1:]
    assert strategy.best == (told[0], 100.0)  # gone from the population, not from the history


def test_tournament_picks_the_best_of_its_draw_and_children_are_one_mutation_away():
    space = get_space("nb201")
    strategy = get_strategy("evolution", space, seed=1, population_size=5, tournament_size=5)
    for value in range(5):
        strategy.tell(strategy.ask(), float(value))
    best_member = strategy.population[-1]
    assert strategy.tournament_winner() == best_member  # S = P: the tournament sees everyone
    for _ in range(20):
        child = strategy.ask()
        strategy.tell(child, -1.0)
    first_child = strategy.history[5][0]
    differences = sum(a != b for a, b in zip(first_child.ops, best_member[0].ops, strict=True))
    assert differences == 1


def test_tournament_draws_without_replacement():
    space = get_space("nb201")
    strategy = get_strategy("evolution", space, seed=2, population_size=4, tournament_size=4)
    for value in (5.0, 1.0, 2.0, 3.0):
        strategy.tell(strategy.ask(), value)
    # With replacement, 4 draws would miss the best member about 30% of the time.
    assert all(strategy.tournament_winner()[1] == 5.0 for _ in range(50))


@pytest.mark.parametrize("name", ["random", "evolution", "reinforce"])
def test_strategies_are_seeded_and_never_query_a_cell_twice(name):
    space = get_space("nb201")

    def run(seed):
        strategy = get_strategy(name, space, seed=seed)
        # A landscape with few distinct values makes evolution and the policy revisit cells.
        run_search(
            strategy, lambda arch: float(arch.ops.count("nor_conv_3x3")), 300, progress=False
        )
        return [arch for arch, _ in strategy.history]

    first = run(4)
    assert len(set(first)) == 300
    assert run(4) == first and run(5) != first


def test_area_seeds_the_population_with_the_best_prescored_cells():
    space = get_space("nb201")
    pool = list(space)[:100]
    prescore = {arch: float(i) for i, arch in enumerate(pool)}.__getitem__
    strategy = get_strategy(
        "area",
        space,
        seed=0,
        population_size=4,
        tournament_size=2,
        candidates=20,
        prescore=prescore,
        pool=pool,
    )
    first = [strategy.ask() for _ in range(4)]
    scores = [prescore(arch) for arch in first]
    assert scores == sorted(scores, reverse=True)
    candidates = {arch for arch in pool if prescore(arch) >= min(scores)}
    assert len(candidates) > 4  # the pool held better cells, but only 20 were pre-scored
    assert strategy.prescore_seconds >= 0
    with pytest.raises(NasboxError, match="area needs a training-free estimator"):
        get_strategy("area", space)


def test_reinforce_policy_moves_towards_a_rewarded_choice():
    space = get_space("nb201")
    strategy = get_strategy("reinforce", space, seed=0, learning_rate=0.2)
    before = strategy.probabilities()[0][space.ops.index("nor_conv_3x3")]
    for _ in range(150):
        arch = strategy.ask()
        strategy.tell(arch, 1.0 if arch.ops[0] == "nor_conv_3x3" else 0.0)
    probabilities = strategy.probabilities()
    assert before == pytest.approx(0.2)
    rewarded = probabilities[0][space.ops.index("nor_conv_3x3")]
    assert rewarded > 0.8
    assert all(p.max() < rewarded - 0.1 for p in probabilities[1:])  # only noise moves the others


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("evolution", "0.9", "evolution was told '0.9', which is not a number"),
        ("reinforce", None, "reinforce was told None, which is not a number"),
        ("random", np.array([1.0, 2.0]), "random was told array"),
        ("evolution", (1.0, 2.0), "evolution takes one number per architecture, got"),
        ("nsga2", (1.0, 2.0, 3.0), "nsga2 was told a tuple of 3 values after a tuple of 2"),
        ("nsga2", 0.5, "nsga2 was told a single number after a tuple of 2"),
        ("nsga2", (), "nsga2 was told an empty tuple"),
    ],
)
def test_a_bad_value_is_refused_and_leaves_the_cell_pending(name, value, message):
    strategy = get_strategy(name, get_space("nb201"), seed=0)
    strategy.tell(strategy.ask(), (1.0, 2.0) if name == "nsga2" else 1.0)
    arch = strategy.ask()
    with pytest.raises(NasboxError, match=re.escape(message)):
        strategy.tell(arch, value)
    # The cell was not recorded, so a corrected tell is taken and the strategy goes on.
    strategy.tell(arch, (0.0, 0.0) if name == "nsga2" else np.float32(0.5))
    strategy.tell(strategy.ask(), -math.inf)
    assert len(strategy.history) == 3 and not strategy.pending


@pytest.mark.parametrize("name", ["random", "evolution", "reinforce", "ppo", "nsga2"])
def test_plus_infinity_is_refused_not_taken_as_the_best(name):
    strategy = get_strategy(name, get_space("nb201"), seed=0)
    arch = strategy.ask()
    with pytest.raises(NasboxError, match=r"told \+inf, which cannot be ranked"):
        strategy.tell(arch, (1.0, math.inf) if name == "nsga2" else np.float64("inf"))
    strategy.tell(arch, -math.inf)
    assert not strategy.pending


def test_search_loop_fails_a_trial_whose_estimator_returns_plus_infinity():
    strategy = get_strategy("evolution", get_space("nb201"), seed=0)
    values = iter([1.0, math.inf, 3.0])
    trials = run_search(strategy, lambda arch: next(values), 3, progress=False)
    assert [t.state for t in trials] == ["complete", "failed", "complete"]
    assert trials[1].error == "the estimator returned +inf"
    assert strategy.best[1] == 3.0


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        (-1, "evolution seed must be at least 0, got -1"),
        (2**32, "evolution seed must be at most 4,294,967,295, got 4,294,967,296"),
        (1.5, "evolution seed must be a whole number, got 1.5 (float): pass an int"),
        ("3", "evolution seed must be a whole number, got '3' (str): pass an int"),
        (None, "evolution seed must be a whole number, got None (NoneType): pass an int"),
        (True, "evolution seed must be a whole number, got True (bool): pass an int"),
    ],
)
def test_a_bad_seed_is_named(seed, message):
    with pytest.raises(NasboxError, match=re.escape(message)):
        get_strategy("evolution", get_space("nb201"), seed=seed)
    assert get_strategy("random", get_space("nb201"), seed=np.int64(3)).ask()
    assert get_strategy("random", get_space("nb201"), seed=2**32 - 1).ask()


@pytest.mark.parametrize("name", ["random", "evolution", "reinforce", "nsga2"])
def test_a_space_name_instead_of_a_space_is_refused_at_creation(name):
    with pytest.raises(NasboxError, match=re.escape("got 'nb201' (str): pass get_space('nb201')")):
        get_strategy(name, "nb201")
    with pytest.raises(NasboxError, match=r"needs a SearchSpace, got None \(NoneType\)"):
        get_strategy(name, None)


@pytest.mark.parametrize(
    ("name", "option"),
    [
        ("evolution", "population_size"),
        ("evolution", "tournament_size"),
        ("area", "candidates"),
        ("nsga2", "population_size"),
        ("petri-evolution", "population"),
        ("ppo", "minibatch"),
    ],
)
@pytest.mark.parametrize("value", [2.5, "10", None, True])
def test_an_integer_option_that_is_not_a_whole_number_is_refused(name, option, value):
    options = {"prescore": lambda arch: 0.0} if name == "area" else {}
    with pytest.raises(
        NasboxError,
        match=re.escape(f"{name} {option} must be a whole number, got {value!r}")
        + r" \(\w+\): pass an int",
    ):
        get_strategy(name, get_space("nb201"), **{option: value}, **options)
    assert get_strategy("evolution", get_space("nb201"), population_size=np.int64(6)).ask()


@pytest.mark.parametrize(
    ("budget", "max_failures", "message"),
    [
        (2.5, None, "budget must be a whole number, got 2.5 (float)"),
        (True, None, "budget must be a whole number, got True (bool)"),
        (math.nan, None, "budget must be a whole number, got nan (float)"),
        (0, None, "budget must be at least 1, got 0"),
        (
            10**30,
            None,
            "budget must be at most 15,625, got 1,000,000,000,000,000,000,000,000,000,000: the nb201 space holds 15,625",
        ),
        (3, 0, "max_failures must be at least 1, got 0"),
        (3, "2", "max_failures must be a whole number, got '2' (str)"),
    ],
)
def test_search_loop_refuses_a_bad_budget_before_evaluating_anything(budget, max_failures, message):
    strategy = get_strategy("random", get_space("nb201"), seed=0)
    evaluated = []
    with pytest.raises(NasboxError, match=re.escape(message)):
        run_search(strategy, evaluated.append, budget, max_failures=max_failures, progress=False)
    assert not evaluated and not strategy.pending
    trials = run_search(
        strategy, lambda arch: 1.0, np.int64(2), max_failures=np.int64(1), progress=False
    )
    assert len(trials) == 2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"strategy": "random"},
            "run_search needs a strategy with ask() and tell(arch, value), got str",
        ),
        (
            {"evaluate": 5},
            "needs evaluate to be a function of an architecture or an Executor, got int",
        ),
        ({"evaluate": {}}, "got dict: pass its __getitem__"),
        ({"on_trial": "log"}, "run_search needs on_trial to be a function or None, got str"),
        ({"admissible": 1.0}, "run_search needs admissible to be a function or None, got float"),
        ({"recorder": []}, "run_search needs recorder to have started(number, arch) and finished"),
    ],
)
def test_search_loop_refuses_arguments_it_cannot_call(arguments, message):
    strategy = get_strategy("random", get_space("nb201"), seed=0)
    given = {"strategy": strategy, "evaluate": lambda arch: 1.0, "budget": 2} | arguments
    with pytest.raises(NasboxError, match=re.escape(message)):
        run_search(**given, progress=False)
    assert not strategy.pending


@pytest.mark.parametrize("answer", [True, False, 0])
def test_search_loop_refuses_an_admissible_that_answers_yes_or_no(answer):
    # True read as "keeps the constraints" was taken as a reason to reject every architecture.
    strategy = get_strategy("random", get_space("nb201"), seed=0)
    with pytest.raises(NasboxError, match=re.escape(f"admissible returned {answer!r}")):
        run_search(strategy, lambda arch: 1.0, 2, admissible=lambda arch: answer, progress=False)
    strategy = get_strategy("random", get_space("nb201"), seed=0)
    trials = run_search(strategy, lambda arch: 1.0, 2, admissible=lambda arch: None, progress=False)
    assert [t.state for t in trials] == ["complete", "complete"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "the estimator returned None (NoneType), which is not a number"),
        ("0.9", "the estimator returned '0.9' (str), which is not a number"),
        (np.array([0.9]), "the estimator returned array([0.9]) (ndarray)"),
        ((1.0, [2.0]), "the estimator returned (1.0, [2.0]) (tuple)"),
    ],
)
def test_search_loop_stops_at_an_estimator_that_returns_no_number(value, message):
    # Each trial failed with a TypeError from float(), or '0.9' was taken as 0.9.
    strategy = get_strategy("random", get_space("nb201"), seed=0)
    with pytest.raises(NasboxError, match=re.escape(message)):
        run_search(strategy, lambda arch: value, 3, progress=False)
    assert len(strategy.history) == 1 and strategy.history[0][1] == -math.inf
    numbers = iter([np.float32(0.5), np.int64(2), torch.tensor(1.5)])
    trials = run_search(strategy, lambda arch: next(numbers), 3, progress=False)
    assert [t.value for t in trials] == [0.5, 2.0, 1.5]


@pytest.mark.parametrize(
    ("name", "near"),
    [("evolutoin", " (did you mean 'evolution'?)"), ("PPO", " (did you mean 'ppo'?)"), ("rea", "")],
)
def test_an_unknown_strategy_names_the_one_meant(name, near):
    with pytest.raises(NasboxError, match=re.escape(f"unknown strategy {name!r}{near}; choose")):
        get_strategy(name, get_space("nb201"))


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("evolution", {"popsize": 10}, "evolution takes no option 'popsize'; its options: "),
        ("reinforce", {"lr": 0.1}, "its options: learning_rate, baseline_momentum"),
        ("random", {"population_size": 10}, "random takes no option 'population_size'; it takes"),
    ],
)
def test_an_unknown_strategy_option_is_named_with_those_it_takes(name, options, message):
    # It was a TypeError about RegularizedEvolution.__init__'s unexpected keyword argument.
    with pytest.raises(NasboxError, match=re.escape(message)):
        get_strategy(name, get_space("nb201"), **options)
    assert get_strategy("evolution", get_space("nb201"), population_size=np.int64(5)).ask()


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        (
            "reinforce",
            {"learning_rate": "0.1"},
            "reinforce learning_rate must be a number, got '0.1'",
        ),
        ("ppo", {"clip": None}, "ppo clip must be a number, got None (NoneType)"),
        ("reinforce", {"baseline_momentum": True}, "baseline_momentum must be a number, got True"),
    ],
)
def test_a_strategy_rate_that_is_not_a_number_is_one_line(name, options, message):
    # It was a TypeError: '>' not supported between instances of 'str' and 'int'.
    with pytest.raises(NasboxError, match=re.escape(message)):
        get_strategy(name, get_space("nb201"), **options)
    assert get_strategy(name, get_space("nb201"), learning_rate=np.float32(0.1)).ask()
