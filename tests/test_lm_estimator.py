"""`lm:STEPS`: recurrent cells scored by a short language-model training, in score and search."""

import csv
import json
from dataclasses import replace

import pytest

from nasbox.cli import main
from nasbox.data import load_text
from nasbox.estimators import EstimatorContext, get_estimator
from nasbox.estimators.petri.rnn_groundtruth import RNNProtocol, train_cell
from nasbox.spaces import get_space

SMALL = ["--batch-size", "4"]  # streams per chunk: the tiny corpus holds a few batches only


def test_lm_is_minus_the_ground_truth_perplexity_of_the_same_training(corpus):
    space, data = get_space("rnn"), load_text(corpus)
    cell = space.parse("darts-v2")
    lm = get_estimator("lm:3", EstimatorContext(space, data, seed=1, batch_size=4))
    protocol = replace(RNNProtocol(), steps=3, batch_size=4, seed=1)
    assert lm(cell) == -train_cell(cell, data, protocol) < -1.0


def test_several_initialisations_give_the_geometric_mean_of_their_perplexities(corpus):
    cell, data = get_space("rnn").parse("darts-v2"), load_text(corpus)
    one = replace(RNNProtocol(), steps=3, batch_size=4, seed=1, initialisations=1)
    singles = [train_cell(cell, data, replace(one, seed=seed)) for seed in (1, 2)]
    two = replace(one, initialisations=2)
    assert two.single(1) == replace(one, seed=2)
    averaged = train_cell(cell, data, two)
    assert singles[0] != singles[1]
    assert averaged == pytest.approx((singles[0] * singles[1]) ** 0.5, rel=1e-12)
    assert "initialisations" not in one.key()  # caches of one-initialisation tables still match
    assert replace(one, initialisations=2).key() == one.key() + ",initialisations=2"


def test_search_with_lm_keeps_the_lowest_perplexity_and_workers_agree(corpus, tmp_path, capsys):
    args = ["search", "--space", "rnn", "--data", f"text:{corpus}", "--estimator", "lm:2"]
    args += [*SMALL, "--strategy", "evolution", "--samples", "4", "--quiet"]
    values = {}
    for workers in ("1", "2"):
        out = tmp_path / f"workers-{workers}"
        assert main([*args, "--workers", workers, "--out", str(out)]) == 0
        rows = list(csv.DictReader((out / "trials.csv").open()))
        values[workers] = [float(row["value"]) for row in rows]
        summary = json.loads((out / "summary.json").read_text())
        assert summary["best_value"] == max(values[workers]) < -1.0
    assert values["1"] == values["2"]
    assert "best lm:2 -" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--space", "nb201", "--estimator", "lm:2"], "use it with --space rnn"),
        (["--space", "rnn", "--estimator", "lm:2"], "--data text:FILE"),
        (["--space", "rnn", "--estimator", "lm:two", "--data", "text:CORPUS"], "e.g. lm:800"),
        (["--space", "rnn", "--estimator", "naswot", "--data", "text:CORPUS"], "lm:STEPS"),
        (
            ["--space", "rnn", "--estimator", f"lm:{2**64}", "--data", "text:CORPUS"],
            "lm:STEPS must be at most 9,223,372,036,854,775,807",
        ),
        (
            [
                "--space",
                "rnn",
                "--estimator",
                "lm:1",
                "--data",
                "text:CORPUS",
                "--seed",
                "4294967295",
            ],
            "--seed + 1 (lm trains from --seed to --seed + 1) must be a whole number from 0 to",
        ),
    ],
)
def test_bad_lm_settings_are_one_line(corpus, tmp_path, capsys, argv, message):
    """The last seed's check came only when the first cell trained, after the run folder was
    made, and blamed --seed for a value (seed + 1) the user never gave."""
    argv = [part.replace("CORPUS", str(corpus)) for part in argv]
    out = ["--out", str(tmp_path / "run"), "--samples", "2", "--quiet"]
    assert main(["search", *argv, *SMALL, *out]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()
