"""Several objectives: Pareto fronts, hypervolume, NSGA-II, constraints and `search --objectives`."""

import csv
import itertools
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from nasbox.cli import main
from nasbox.errors import NasboxError
from nasbox.estimators import EstimatorContext, get_estimator
from nasbox.estimators.objectives import parse_objectives
from nasbox.pareto import crowding_distance, hypervolume, non_dominated_fronts, pareto_front
from nasbox.runs import StoredTrial, write_pareto
from nasbox.runs.report import best_so_far
from nasbox.spaces import get_space
from nasbox.strategies import get_strategy


def brute_force_front(points: np.ndarray) -> set[int]:
    return {
        i for i, p in enumerate(points) if not any(np.all(q >= p) and np.any(q > p) for q in points)
    }


def test_fronts_partition_the_points_by_dominance():
    points = np.random.default_rng(0).integers(0, 6, size=(60, 3)).astype(float)
    fronts = non_dominated_fronts(points)
    assert sorted(np.concatenate(fronts).tolist()) == list(range(60))
    assert set(fronts[0].tolist()) == brute_force_front(points) == set(pareto_front(points))
    rest = np.setdiff1d(np.arange(60), fronts[0])
    second = {int(rest[i]) for i in brute_force_front(points[rest])}
    assert set(fronts[1].tolist()) == second


def test_hypervolume_of_known_shapes():
    reference = np.zeros(2)
    assert hypervolume(np.array([[1.0, 1.0]]), reference) == 1.0
    staircase = np.array([[3.0, 1.0], [2.0, 2.0], [1.0, 3.0], [0.5, 0.5]])
    assert hypervolume(staircase, reference) == pytest.approx(6.0)
    assert hypervolume(np.array([[-1.0, 5.0]]), reference) == 0.0, "not beyond the reference"
    cubes = np.array([[1.0, 1.0, 1.0], [2.0, 0.5, 0.5]])
    assert hypervolume(cubes, np.zeros(3)) == pytest.approx(1.0 + 0.25)


def test_hypervolume_in_three_objectives_matches_a_grid_count():
    points = np.random.default_rng(1).integers(1, 5, size=(8, 3)).astype(float)
    cells = itertools.product(np.arange(0.5, 5, 1.0), repeat=3)
    covered = sum(any(np.all(p >= c) for p in points) for c in map(np.array, cells))
    assert hypervolume(points, np.zeros(3)) == pytest.approx(covered)


def test_crowding_keeps_the_extremes():
    front = np.array([[0.0, 4.0], [1.0, 3.0], [1.1, 2.9], [4.0, 0.0]])
    distance = crowding_distance(front)
    assert np.isinf(distance[[0, 3]]).all()
    assert distance[1] > 0 and distance[2] > 0


def test_a_run_s_hypervolume_is_measured_from_its_worst_finite_values(tmp_path):
    """A cell at -inf in one objective (NASWOT's singular cell) set the reference point to -inf,
    and the run reported a hypervolume of inf."""
    values = [(3.0, 3.0), (2.0, 2.0), (1.0, 1.0), (-np.inf, 0.5)]
    trials = [
        StoredTrial(number, f"cell{number}", "complete", metrics={"acc": acc, "size": size})
        for number, (acc, size) in enumerate(values)
    ]
    summary = write_pareto(tmp_path, trials, parse_objectives("acc,-size"))
    assert summary["hypervolume"] == pytest.approx(1.0)
    assert summary["hypervolume_reference"] == {"acc": 1.0, "size": 3.0}
    assert [point["arch"] for point in summary["pareto_front"]] == [f"cell{n}" for n in range(4)]


def test_the_trials_plot_of_a_minimised_first_objective_follows_its_lowest_value():
    """trials.png of `--objectives=-params,...` drew the largest parameter count so far as the
    best so far."""
    values = [np.nan, 3.0, 1.0, np.nan, 2.0]
    np.testing.assert_equal(best_so_far(values, minimize=True), [np.nan, 3.0, 1.0, 1.0, 1.0])
    np.testing.assert_equal(best_so_far(values), [np.nan, 3.0, 3.0, 3.0, 3.0])


def test_the_trials_plot_of_a_run_whose_trials_all_failed_shows_them():
    """trials.png of a run whose every trial failed was empty: the x axis followed the values
    alone, -0.05 to 0.05, so the crosses at trials 1 to 4 fell outside it."""
    from nasbox.plotting import new_figure
    from nasbox.runs.report import draw_trials

    _, axis = new_figure((6, 4))
    draw_trials(axis, [StoredTrial(n, f"cell{n}", "failed", error="no") for n in range(4)], "v")
    low, high = axis.get_xlim()
    assert low < 1 and high > 4 and list(axis.get_yticks()) == []


WEIGHTS = np.random.default_rng(7).normal(size=(2, 6, 5))


def two_objectives(space, arch) -> tuple[float, float]:
    """A trade-off on nb201: each edge's op adds to 'accuracy' and, correlated, to 'size'."""
    choices = space.to_decisions(arch)
    accuracy = sum(WEIGHTS[0, edge, op] for edge, op in enumerate(choices))
    size = sum(
        0.8 * WEIGHTS[0, edge, op] + 0.6 * WEIGHTS[1, edge, op] for edge, op in enumerate(choices)
    )
    return float(accuracy), -float(size)


def front_volume(strategy: str, seed: int, budget: int) -> float:
    space = get_space("nb201")
    search = get_strategy(strategy, space, seed=seed)
    values = []
    for _ in range(budget):
        arch = search.ask()
        values.append(two_objectives(space, arch))
        search.tell(arch, values[-1])
    return hypervolume(np.array(values), np.array([-8.0, -8.0]))


def test_nsga2_finds_a_better_front_than_random_search():
    wins = [
        front_volume("nsga2", seed, 120) > front_volume("random", seed, 120) for seed in range(5)
    ]
    assert sum(wins) >= 4


def test_nsga2_puts_cells_rejected_everywhere_last_without_sorting_them():
    """Each rejected cell is told -inf; nsga2 sorted every told cell again on each ask, so 1500
    asks took about a minute (about 2 s since). Cells at -inf in every objective are now its
    last front, as a full sort makes them, without sorting them."""
    strategy = get_strategy("nsga2", get_space("nb201"), seed=0)
    rng = np.random.default_rng(0)
    for number in range(300):
        arch = strategy.ask()
        strategy.tell(arch, tuple(rng.normal(size=2)) if number % 30 == 0 else -np.inf)
    fronts = non_dominated_fronts(strategy._values(range(300)))
    assert [front.tolist() for front in strategy._fronts()] == [f.tolist() for f in fronts]


def test_nsga2_treats_a_failed_cell_as_worst_in_every_objective():
    space = get_space("nb201")
    search = get_strategy("nsga2", space, seed=0, population_size=4)
    for number in range(12):
        arch = search.ask()
        search.tell(arch, -np.inf if number % 3 == 0 else two_objectives(space, arch))
    assert all(np.isfinite(values).all() for _, values in search.front)


@pytest.mark.parametrize("name", ["nsga2", "random"])
@pytest.mark.parametrize("failure_first", [False, True])
def test_best_refuses_told_tuples_and_points_to_front(name, failure_first):
    strategy = get_strategy(name, get_space("nb201"), seed=0)
    values = [(1.0, 5.0), (3.0, 2.0), (2.0, 1.0)]
    if failure_first:
        values.insert(0, -np.inf)  # a failure among tuples made best raise TypeError
    told = []
    for value in values:
        arch = strategy.ask()
        strategy.tell(arch, value)
        told.append((arch, value))
    with pytest.raises(NasboxError, match=rf"{name} was told a tuple of 2 values per .*front"):
        _ = strategy.best
    assert strategy.front == told[-3:-1]


def test_best_still_ranks_single_numbers_on_a_multi_objective_strategy():
    strategy = get_strategy("random", get_space("nb201"), seed=0)
    told = []
    for value in [-np.inf, 2.0, 5.0, 1.0]:
        arch = strategy.ask()
        strategy.tell(arch, value)
        told.append(arch)
    assert strategy.best == (told[2], 5.0)
    assert strategy.front == [(told[2], 5.0)]


@pytest.fixture(scope="module")
def synthetic_table(tmp_path_factory) -> Path:
    """Every nb201 cell with a made-up accuracy and size, so table searches run without ../shared."""
    space = get_space("nb201")
    path = tmp_path_factory.mktemp("table") / "nb201-synthetic.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", "acc", "size"])
        for arch in space:
            accuracy, size = two_objectives(space, arch)
            writer.writerow([space.format(arch), accuracy, -size])
    return path


def search(table: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "search",
            "--space",
            "nb201",
            "--benchmark",
            str(table),
            "--objectives",
            "table:acc,-table:size",
            "--quiet",
            "--out",
            str(out),
            *extra,
        ]
    )


def test_a_constrained_two_objective_search_writes_its_front(tmp_path, synthetic_table):
    out = tmp_path / "run"
    args = ["--strategy", "nsga2", "--samples", "40", "--constraint", "table:size<=-1.5"]
    assert search(synthetic_table, out, *args) == 0
    with (out / "trials.csv").open() as handle:
        trials = list(csv.DictReader(handle))
    complete = [t for t in trials if t["state"] == "complete"]
    rejected = [t for t in trials if t["state"] == "rejected"]
    assert len(complete) == 40 and rejected, "rejected cells do not use up the budget"
    assert all(float(t["table:size"]) <= -1.5 for t in complete)
    assert all(t["table:size"] == "" and "breaks table:size<=-1.5" in t["error"] for t in rejected)
    with (out / "pareto.csv").open() as handle:
        front = list(csv.DictReader(handle))
    points = np.array([[float(t["table:acc"]), -float(t["table:size"])] for t in complete])
    expected = {complete[i]["arch"] for i in pareto_front(points)}
    assert {row["arch"] for row in front} == expected
    summary = json.loads((out / "summary.json").read_text())
    assert summary["hypervolume"] > 0 and summary["rejected"] == len(rejected)
    assert (out / "pareto.png").stat().st_size > 0


def test_a_multi_objective_run_extended_by_resume_equals_a_longer_one(tmp_path, synthetic_table):
    args = ["--strategy", "nsga2", "--constraint", "table:size<=-1.0", "--seed", "3"]
    assert search(synthetic_table, tmp_path / "straight", *args, "--samples", "30") == 0
    assert search(synthetic_table, tmp_path / "short", *args, "--samples", "12") == 0
    resume = ["search", "--resume", str(tmp_path / "short"), "--samples", "30", "--quiet"]
    assert main(resume) == 0
    straight = (tmp_path / "straight" / "trials.csv").read_text().splitlines()
    resumed = (tmp_path / "short" / "trials.csv").read_text().splitlines()
    assert [line.split(",")[:4] for line in resumed] == [line.split(",")[:4] for line in straight]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategy", "evolution"], "needs a strategy that handles several objectives"),
        (["--estimator", "params"], "--objectives replaces --estimator"),
        (["--objectives", "table:acc"], "is one objective to maximise; use --estimator"),
        (["--constraint", "params=1"], "must look like ESTIMATOR<=NUMBER"),
        (  # a non-finite bound was "must look like ESTIMATOR<=NUMBER", which it does
            ["--constraint", "params<=inf"],
            "--constraint 'params<=inf': the bound must be a finite number (every value is <= "
            "inf: it constrains nothing); give one such as params<=1.0, or drop the constraint",
        ),
        (["--constraint", "params>=1e999"], "(no value is >= inf: it would reject every"),
        (["--constraint", "params<=nan"], "(nan compares false with every value: it would"),
        (["--constraint", "nonsense<=1"], "unknown estimator 'nonsense'"),
        # rejected cell after cell (latency timing each) until 100 per trial of the budget
        (["--constraint", "latency<=0"], "--constraint latency<=0 can never hold: latency is"),
        (["--constraint", "params<-1"], "--constraint params<-1 can never hold: params is"),
    ],
)
def test_bad_multi_objective_input_is_one_line(tmp_path, synthetic_table, capsys, extra, message):
    assert search(synthetic_table, tmp_path / "bad", *extra) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_resume_compares_constraints_by_value_not_text(tmp_path, synthetic_table, capsys):
    """`--constraint table:size<=-.5` on the resume of a run made with table:size<=-0.5 was
    refused as a conflict: the constraints were compared as text."""
    out = tmp_path / "run"
    args = ["--strategy", "nsga2", "--constraint", "table:size<=-0.5", "--samples", "4"]
    assert search(synthetic_table, out, *args) == 0
    resume = ["search", "--resume", str(out), "--quiet"]
    assert main([*resume, "--constraint", " table:size <= -.5 ", "--samples", "6"]) == 0
    assert main([*resume, "--constraint", "table:size<=-0.4", "--samples", "8"]) == 2
    assert "conflicts with the resumed run's --constraint" in capsys.readouterr().err


def test_a_resume_counts_the_trials_from_before_it_without_the_rejected(
    tmp_path, synthetic_table, capsys
):
    """Rejected trials were counted as resumed but not as evaluated: "(-1 new, 6 from before
    the resume)"."""
    with synthetic_table.open() as handle:
        median = float(np.median([float(row["size"]) for row in csv.DictReader(handle)]))
    out = tmp_path / "run"
    args = ["--strategy", "random", "--constraint", f"table:size<={median}", "--samples", "4"]
    assert search(synthetic_table, out, *args) == 0
    assert "rejected by the constraints" in capsys.readouterr().out  # some were rejected
    assert main(["search", "--resume", str(out), "--quiet", "--samples", "6"]) == 0
    assert "evaluated 6 architectures" in (report := capsys.readouterr().out)
    assert "(2 new, 4 from before the resume)" in report


def test_a_first_objective_to_minimise_is_told_to_follow_an_equals_sign(capsys):
    """argparse takes `-params,naswot` for an option, and said only "expected one argument"."""
    with pytest.raises(SystemExit) as stop:
        main(["search", "--objectives", "-params,naswot", "--strategy", "nsga2"])
    error = capsys.readouterr().err
    assert stop.value.code == 2 and len(error.splitlines()) == 1
    assert "expected one argument; give a value (one that starts with '-' as --objectives=" in error


def test_a_budget_beyond_the_cells_that_keep_the_constraints_says_so(
    tmp_path, synthetic_table, capsys
):
    """random ended with "random has proposed all 15625 architectures of the space", naming
    neither the constraint that rejected them nor the budget that would do."""
    with synthetic_table.open() as handle:
        sizes = sorted(float(row["size"]) for row in csv.DictReader(handle))
    kept = sum(size <= sizes[49] for size in sizes)
    args = ["--strategy", "random", "--samples", "160", "--constraint", f"table:size<={sizes[49]}"]
    assert search(synthetic_table, tmp_path / "run", *args) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert f"only {kept} keep the constraints; loosen them, or lower the budget to {kept}" in error


def test_bench_run_reports_hypervolume_against_the_true_front(tmp_path, synthetic_table, capsys):
    out = tmp_path / "bench"
    args = ["bench", "run", "--benchmark", str(synthetic_table), "--objectives", "acc,-size"]
    args += ["--strategy", "nsga2,random", "--budget", "10,40", "--repeats", "3", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = {(row["strategy"], row["queries"]): row for row in summary["rows"]}
    assert set(rows) == {(s, q) for s in ("nsga2", "random") for q in (10, 40)}
    assert all(0 < row["mean"] <= 1 for row in rows.values())
    assert rows["random", 40]["mean"] >= rows["random", 10]["mean"], "volume never shrinks"
    assert rows["random", 10]["beats_random"] is None
    assert 0 <= rows["nsga2", 40]["beats_random"] <= 1
    with (out / "trajectories.csv").open() as handle:
        assert sum(1 for _ in csv.DictReader(handle)) == 2 * 3 * 40
    assert "true front" in capsys.readouterr().out
    assert main([*args, "--strategy", "evolution", "--out", str(tmp_path / "bad")]) == 2


def test_a_constrained_naswot_search_never_scores_a_cell_over_the_limit(tmp_path, tiny_npz):
    out = tmp_path / "run"
    args = ["search", "--estimator", "naswot", "--data", f"npz:{tiny_npz}", "--batch-size", "8"]
    args += ["--constraint", "params<=0.5", "--samples", "6", "--quiet", "--out", str(out)]
    assert main(args) == 0
    with (out / "trials.csv").open() as handle:
        trials = list(csv.DictReader(handle))
    space = get_space("nb201")
    count = get_estimator("params", EstimatorContext(space))
    complete = [t for t in trials if t["state"] == "complete"]
    rejected = [t for t in trials if t["state"] == "rejected"]
    assert len(complete) == 6 and rejected
    assert all(count(space.parse(t["arch"])) <= 0.5 for t in complete)
    assert all(count(space.parse(t["arch"])) > 0.5 for t in rejected)
    assert all(t["value"] == "" and float(t["seconds"]) == 0 for t in rejected), "never scored"
    best = json.loads((out / "summary.json").read_text())["best_arch"]
    assert best in {t["arch"] for t in complete}


def test_naswot_and_size_as_two_objectives(tmp_path, tiny_npz):
    out = tmp_path / "run"
    args = ["search", "--objectives", "naswot,-params", "--strategy", "nsga2", "--samples", "6"]
    args += ["--data", f"npz:{tiny_npz}", "--batch-size", "8", "--quiet", "--out", str(out)]
    assert main(args) == 0
    with (out / "pareto.csv").open() as handle:
        front = list(csv.DictReader(handle))
    assert front and set(front[0]) == {"arch", "naswot", "params"}
    values = [(float(row["naswot"]), float(row["params"])) for row in front]
    assert values == sorted(values, reverse=True), "best NASWOT first; larger, since a front"


def test_a_run_made_before_objectives_existed_refuses_them_on_resume(tmp_path, capsys):
    out = tmp_path / "old"
    assert (
        main(["search", "--estimator", "params", "--samples", "3", "--quiet", "--out", str(out)])
        == 0
    )
    with sqlite3.connect(out / "nasbox.db") as database:  # as an older nasbox stored it
        (text,) = database.execute("SELECT settings FROM runs").fetchone()
        settings = {
            k: v for k, v in json.loads(text).items() if k not in ("objectives", "constraints")
        }
        database.execute("UPDATE runs SET settings = ?", (json.dumps(settings),))
    resume = ["search", "--resume", str(out), "--samples", "5", "--quiet"]
    assert main([*resume, "--constraint", "params<=1"]) == 2
    assert "made before --constraint existed" in capsys.readouterr().err
    assert main(resume) == 0


def test_runs_show_and_list_give_a_multi_objective_run_s_front(tmp_path, capsys):
    """The stored value is the first objective's, here minimised: its largest is the worst
    architecture, and the run's `estimator` setting is an unused default."""
    out = tmp_path / "run"
    args = ["search", "--objectives=-params,-flops", "--strategy", "nsga2", "--samples", "5"]
    assert main([*args, "--quiet", "--out", str(out)]) == 0
    with (out / "pareto.csv").open() as handle:
        front = list(csv.DictReader(handle))
    capsys.readouterr()
    assert main(["runs", "show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "estimator" not in shown and "best arch" not in shown
    assert f"front         {len(front)} architecture" in shown
    assert all(f": {row['arch']} (trial " in shown for row in front)
    assert main(["runs", "list", str(out)]) == 0
    listed = capsys.readouterr().out.splitlines()[1]
    assert "nb201/nsga2/-params,-flops" in listed and f"front of {len(front)}" in listed
