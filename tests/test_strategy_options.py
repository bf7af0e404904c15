"""`nasbox search --strategy-option KEY=VALUE`: a value of the wrong type or out of range is one
line and exit status 2 before the run folder exists, never a traceback or a run that dies later."""

from pathlib import Path

import pytest

from nasbox.cli import main
from nasbox.cli.search import _strategy_options
from nasbox.errors import NasboxError

SEARCH = ["search", "--samples", "3", "--quiet", "--out", "run"]

WRONG = [
    ("ppo", "learning_rate=-1", "ppo learning_rate must be a number in (0, inf), got -1"),
    ("ppo", "learning_rate=inf", "ppo's learning_rate takes a finite number"),
    ("lstm-reinforce", "entropy_weight=nan", "entropy_weight takes a finite number"),
    ("lstm-reinforce", "baseline_decay=1", "baseline_decay must be a number in [0, 1)"),
    ("ppo", "clip=nan", "ppo's clip takes a finite number (default clip=0.2)"),
    ("ppo", "clip=1.5", "ppo clip must be a number in (0, 1), got 1.5"),
    ("ppo", "hidden=0", "ppo hidden must be at least 1, got 0"),
    (
        "ppo",
        "hidden=100000000",
        "ppo hidden must be at most 1,024, got 100,000,000: a larger controller exhausts memory",
    ),
    ("lstm-reinforce", "hidden=1025", "lstm-reinforce hidden must be at most 1,024, got 1,025"),
    (
        "ppo",
        "ppo_epochs=1000000000",
        "ppo ppo_epochs must be at most 1,000, got 1,000,000,000: each minibatch",
    ),
    ("ppo", "minibatch=2.5", "minibatch=2.5: ppo's minibatch takes a whole number"),
    ("ppo", "ppo_epochs=-1", "ppo ppo_epochs must be at least 1, got -1"),
    ("ppo", "distinct=maybe", "ppo's distinct takes true or false"),
    ("reinforce", "learning_rate=nan", "reinforce's learning_rate takes a finite number"),
    ("reinforce", "baseline_momentum=1", "reinforce baseline_momentum must be a number in [0, 1)"),
    ("evolution", "population_size=abc", "population_size=abc: evolution's population_size takes"),
    ("evolution", "population_size=None", "population_size takes a whole number"),
    ("evolution", "population_size=5.5", "population_size takes a whole number"),
    ("evolution", "tournament_size=20", "1 <= tournament_size <= population_size, got"),
    ("area", "population_size=3", "area needs population_size >= 1 and 1 <= tournament_size"),
    ("nsga2", "population_size=1", "nsga2 population_size must be at least 2, got 1"),
    ("petri-evolution", "children=0", "petri-evolution children must be at least 1, got 0"),
    (
        "petri-evolution",
        "start=top",
        "petri-evolution start must be one of: random, best; got 'top'",
    ),
    (
        "petri-evolution",
        "dish=",
        "--strategy-option dish= gives petri-evolution's dish an empty value; give dish=FILE "
        "(a dish made with `nasbox petri fit`), or leave the option out",
    ),
    ("petri-evolution", "dish= ", "dish an empty value; give dish=FILE"),
    (
        "evolution",
        "population_size=",
        "give population_size=VALUE (a whole number), or leave the option out for the default "
        "population_size=10",
    ),
    ("petri-evolution", "explore=-1", "petri-evolution explore must be at least 0, got -1"),
    (
        "petri-evolution",
        "refit_steps=1000000000000",
        "petri-evolution refit_steps must be at most 10,000, got 1,000,000,000,000: each refit",
    ),
    ("random", "population_size=5", "random takes no options; drop --strategy-option"),
    # ppo's options were taken by lstm-reinforce and never used
    (
        "lstm-reinforce",
        "clip=0.3",
        "'clip=0.3': clip is an option of ppo; lstm-reinforce does not use it: drop it (or give "
        "--strategy ppo)",
    ),
    ("lstm-reinforce", "ppo_epochs=3", "ppo_epochs is an option of ppo; lstm-reinforce does not"),
    ("ppo", "population_size=5", "population_size is an option of area, evolution, nsga2; ppo"),
    # the search gives every strategy its seed: not an option of the others either
    ("ppo", "seed=3", "'seed=3': ppo takes KEY=VALUE with KEY one of: minibatch"),
]


@pytest.mark.parametrize(
    ("strategy", "option", "message"), WRONG, ids=[f"{s}-{o}" for s, o, _ in WRONG]
)
def test_a_bad_strategy_option_is_one_line_before_the_run(
    tmp_path: Path, monkeypatch, capsys, strategy, option, message
):
    monkeypatch.chdir(tmp_path)
    assert main([*SEARCH, "--strategy", strategy, "--strategy-option", option]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nasbox: error: "), err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_strategy_option_given_twice_is_refused(tmp_path: Path, monkeypatch, capsys):
    """The last one was used without a word, while --objectives naming a value twice is refused."""
    monkeypatch.chdir(tmp_path)
    twice = ["--strategy-option", "population_size=5", "--strategy-option", "population_size=20"]
    assert main([*SEARCH, "--strategy", "evolution", *twice]) == 2
    err = capsys.readouterr().err
    assert err == (
        "nasbox: error: --strategy-option names 'population_size' twice "
        "(population_size=5 and population_size=20); give each key once\n"
    )
    assert not (tmp_path / "run").exists()


def test_a_resume_compares_strategy_options_by_value_in_any_order(
    tmp_path: Path, monkeypatch, capsys
):
    """The options were compared as the text typed: the run's own options in another order, or
    population_size=04, were refused as a conflict with ['population_size=4', ...]."""
    monkeypatch.chdir(tmp_path)
    options = ["--strategy-option", "population_size=4", "--strategy-option", "tournament_size=2"]
    assert main([*SEARCH, "--strategy", "evolution", "--estimator", "params", *options]) == 0
    resume = ["search", "--resume", "run", "--quiet"]
    assert main([*resume, "--samples", "4", *options[2:], *options[:2]]) == 0
    assert main([*resume, "--samples", "5", "--strategy-option", "population_size=04"]) == 0
    capsys.readouterr()
    assert main([*resume, "--samples", "6", "--strategy-option", "tournament_size=3"]) == 2
    assert capsys.readouterr().err == (
        "nasbox: error: --strategy-option tournament_size=3 conflicts with the resumed run's "
        "tournament_size=2; drop it or start a new run\n"
    )


def test_a_mistyped_strategy_option_is_reported_before_the_data_is_read(
    tmp_path: Path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    argv = [*SEARCH, "--strategy", "evolution", "--data", "npz:missing.npz"]
    assert main([*argv, "--strategy-option", "population_size=abc"]) == 2
    err = capsys.readouterr().err
    assert "population_size takes a whole number" in err and "missing.npz" not in err


def test_valid_strategy_options_are_converted_and_used(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    options = ["minibatch=2", "learning_rate=1e-3", "hidden=8", "distinct=false"]
    argv = [*SEARCH, "--strategy", "ppo", "--estimator", "params"]
    assert main([*argv, *(f"--strategy-option={option}" for option in options)]) == 0
    assert "evaluated 3 architectures" in capsys.readouterr().out


def test_values_take_the_type_of_the_constructor_parameter():
    options = _strategy_options(
        "ppo", ["minibatch=4", "learning_rate=1e-3", "clip=1", "distinct=False"]
    )
    assert options == {"minibatch": 4, "learning_rate": 1e-3, "clip": 1.0, "distinct": False}
    assert type(options["minibatch"]) is int and type(options["clip"]) is float
    assert _strategy_options("petri-evolution", ["dish=my.pt"]) == {"dish": "my.pt"}


def test_an_empty_dish_is_refused_by_the_strategy_itself():
    """`dish=""` is the current folder to the file system: refused as empty, not as a folder."""
    from nasbox.spaces import get_space
    from nasbox.strategies import get_strategy

    with pytest.raises(NasboxError, match="petri-evolution dish is empty; give a dish file"):
        get_strategy("petri-evolution", get_space("nb201"), dish="")
