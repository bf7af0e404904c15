import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from nasbox.cli import main
from nasbox.errors import NasboxError, counted
from nasbox.estimators import EstimatorContext, get_estimator
from nasbox.estimators.petri import DishConfig, PetriDish, get_motif_space
from nasbox.estimators.petri.dish import outer_loss
from nasbox.estimators.petri.evaluation import load_labels
from nasbox.runs import run_search
from nasbox.spaces import get_space
from nasbox.strategies import get_strategy

SLOPES = [0.4, 0.6, 0.8, 1.0, 1.2, 1.4]
TINY = DishConfig(samples=4, inner_steps=5, inner_lr=0.05, outer_steps=6, outer_lr=0.1)


def tiny_slope_dish(seed: int = 0, **overrides) -> PetriDish:
    space = get_motif_space("slope", sizes=(4, 1, 1, 3))
    config = DishConfig(**{**TINY.__dict__, **overrides})
    return PetriDish(space, config, seed=seed)


def tiny_nb201_dish(seed: int = 0) -> PetriDish:
    space = get_motif_space("nb201", channels=2, image_size=4)
    config = DishConfig(samples=4, inner_steps=2, outer_steps=2, batch=4)
    return PetriDish(space, config, seed=seed)


def write_labels(path, rows):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", "valid_acc"])
        writer.writerows(rows)
    return path


def test_inner_loop_is_differentiable_and_matches_finite_differences():
    torch.set_default_dtype(torch.float64)
    try:
        dish = tiny_slope_dish()
        x_train = dish.x_train.double().clone().requires_grad_(True)
        x_val = dish.x_val.double()

        def score_sum(x):
            return dish._scores(SLOPES[:3], x, x_val, grad=True).sum()

        (gradient,) = torch.autograd.grad(score_sum(x_train), x_train)
        assert gradient.abs().max() > 1e-6
        direction = torch.randn(x_train.shape, generator=torch.Generator().manual_seed(1))
        step = 1e-5
        with torch.no_grad():
            numeric = (
                score_sum(x_train.detach() + step * direction)
                - score_sum(x_train.detach() - step * direction)
            ) / (2 * step)
        assert float((gradient * direction).sum()) == pytest.approx(float(numeric), rel=1e-4)
    finally:
        torch.set_default_dtype(torch.float32)


def test_nb201_dish_gradient_is_finite_and_non_zero():
    dish = tiny_nb201_dish()
    space = dish.space
    cells = [space.sample(np.random.default_rng(i)) for i in range(3)]
    x_train = dish.x_train.clone().requires_grad_(True)
    scores = dish._scores(cells, x_train, dish.x_val, grad=True)
    (gradient,) = torch.autograd.grad(scores.sum(), x_train)
    assert torch.isfinite(gradient).all() and gradient.abs().max() > 0


def test_batched_motifs_are_trained_independently():
    dish = tiny_slope_dish()
    together = dish.predict(SLOPES[:3])
    alone = np.array([dish.predict([slope])[0] for slope in SLOPES[:3]])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_outer_steps_reduce_the_outer_loss_on_a_toy_problem():
    dish = tiny_slope_dish(outer_steps=15)
    labels = [1.0, 3.0, 2.0, 6.0, 4.0, 5.0]
    losses = dish.fit(SLOPES, labels, progress=False)
    assert min(losses[-3:]) < 0.85 * losses[0]


def test_restarts_keep_the_fit_with_the_lowest_outer_loss(tmp_path):
    labels = [1.0, 3.0, 2.0, 6.0, 4.0, 5.0]
    single = tiny_slope_dish(seed=2)
    single.fit(SLOPES, labels, progress=False)
    dish = tiny_slope_dish(seed=2, restarts=4)
    dish.fit(SLOPES, labels, progress=False)
    # restart 0 is the single fit; later restarts start elsewhere and reach other losses
    assert dish.restart_losses[0] == min(single.losses)
    assert len(set(dish.restart_losses)) == 4
    assert min(dish.losses) == min(dish.restart_losses) <= min(single.losses)
    assert dish.restart == int(np.argmin(dish.restart_losses))
    loaded = PetriDish.load(dish.save(tmp_path / "dish.pt"))
    assert loaded.restart == dish.restart and loaded.restart_losses == dish.restart_losses
    np.testing.assert_array_equal(loaded.predict([0.3, 1.7]), dish.predict([0.3, 1.7]))


def test_refit_warm_starts_from_the_learned_inputs():
    dish = tiny_slope_dish(outer_steps=8)
    labels = [1.0, 3.0, 2.0, 6.0, 4.0, 5.0]
    first = dish.fit(SLOPES, labels, progress=False)
    second = dish.fit(SLOPES, labels, progress=False)
    assert second[0] == pytest.approx(min(first), rel=1e-5)


def test_rank_loss_is_lower_for_the_right_order():
    truth = torch.tensor([1.0, 2.0, 3.0])
    right = outer_loss(torch.tensor([0.1, 0.2, 0.3]), truth, "rank")
    wrong = outer_loss(torch.tensor([0.3, 0.2, 0.1]), truth, "rank")
    assert right < wrong


def test_fitted_dish_round_trips_through_its_file(tmp_path):
    dish = tiny_slope_dish(seed=3)
    dish.fit(SLOPES, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], progress=False)
    loaded = PetriDish.load(dish.save(tmp_path / "dish.pt"))
    assert loaded.labelled == SLOPES and loaded.config == dish.config
    np.testing.assert_array_equal(loaded.predict([0.3, 1.7]), dish.predict([0.3, 1.7]))


def test_same_seed_same_dish():
    first, second = tiny_slope_dish(seed=5), tiny_slope_dish(seed=5)
    for dish in (first, second):
        dish.fit(SLOPES, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], progress=False)
    np.testing.assert_array_equal(first.predict([0.5]), second.predict([0.5]))


def test_petri_estimator_and_evolution_on_nb201(tmp_path):
    dish = tiny_nb201_dish()
    space = get_space("nb201")
    cells = [space.sample(np.random.default_rng(i)) for i in range(4)]
    dish.fit(cells, [1.0, 2.0, 3.0, 4.0], progress=False)
    path = dish.save(tmp_path / "cells.pt")
    estimator = get_estimator(f"petri:{path}", EstimatorContext(space))
    assert estimator(cells[0]) == pytest.approx(float(dish.predict([cells[0]])[0]))

    strategy = get_strategy(
        "petri-evolution", space, seed=0, initial=3, population=4, tournament=2,
        generations=1, children=3, refit_steps=1, dish=str(path),
    )  # fmt: skip
    params = get_estimator("params", EstimatorContext(space))
    trials = run_search(strategy, params, 6, progress=False)
    assert len({t.arch for t in trials}) == 6 and strategy.dish.labelled


def test_a_dish_fitted_with_0_outer_steps_is_noted_wherever_it_is_loaded(tmp_path, capsys):
    """`petri fit --outer-steps 0` saves the initialisation; evaluate, petri:DISH and
    petri-evolution used it as a fitted dish without a word."""
    labels = write_labels(tmp_path / "slopes.csv", [[s, s] for s in SLOPES])
    dish = tmp_path / "dish.pt"
    fit = ["petri", "fit", "--labels", str(labels), "--k", "4", "--restarts", "1"]
    fit += ["--inner-steps", "2"]
    assert main([*fit, "--outer-steps", "0", "--out", str(dish), "--quiet"]) == 0
    assert "saved an unfitted slope dish" in capsys.readouterr().out
    assert main(["petri", "evaluate", str(dish), "--labels", str(labels), "--quiet"]) == 0
    note = f"nasbox: note: {dish}: the dish was never fitted (0 outer steps on its 4 labelled"
    assert capsys.readouterr().err.startswith(note)

    cells = tiny_nb201_dish()
    cells.config.outer_steps = 0
    space = get_space("nb201")
    cells.fit([space.sample(np.random.default_rng(i)) for i in range(2)], [1, 2], progress=False)
    path = cells.save(tmp_path / "cells.pt")
    get_estimator(f"petri:{path}", EstimatorContext(space))
    get_strategy("petri-evolution", space, dish=str(path))
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("the dish was never fitted" in line for line in err)
    assert main([*fit, "--outer-steps", "1", "--out", str(dish), "--overwrite", "--quiet"]) == 0
    assert main(["petri", "evaluate", str(dish), "--labels", str(labels), "--quiet"]) == 0
    assert "never fitted" not in capsys.readouterr().err


def test_bad_input_is_a_one_line_error(tmp_path, capsys):
    empty = write_labels(tmp_path / "empty.csv", [])
    assert main(["petri", "fit", "--labels", str(empty), "--out", str(tmp_path / "d.pt")]) == 2
    assert "no labelled motifs" in capsys.readouterr().err

    good = write_labels(tmp_path / "good.csv", [[s, s] for s in SLOPES])
    args = ["petri", "fit", "--labels", str(good), "--k", "3", "--restarts", "0"]
    assert main([*args, "--out", str(tmp_path / "d.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--restarts must be at least 1, got 0" in err

    bad = write_labels(tmp_path / "bad.csv", [["0.5", 90.0], ["fast", 80.0]])
    with pytest.raises(NasboxError, match="line 3.*'fast'"):
        load_labels(bad, get_motif_space("slope"))
    with pytest.raises(NasboxError, match="unknown motif space 'darts'"):
        get_motif_space("darts")

    slope_file = tiny_slope_dish().save(tmp_path / "slope.pt")
    with pytest.raises(NasboxError, match="fitted on 'slope' motifs"):
        get_estimator(f"petri:{slope_file}", EstimatorContext(get_space("nb201")))
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    for path in (foreign, tmp_path / "missing.pt"):
        args = ["petri", "evaluate", str(path), "--labels", str(bad), "--quiet"]
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(path) in err


def test_petri_estimator_on_a_space_without_a_dish_names_the_spaces_it_takes(tmp_path, capsys):
    """`score --space darts --estimator petri:nb201.pt` advised `nasbox petri fit --space
    darts`, which is refused: darts is no motif space."""
    dish = tiny_nb201_dish()
    dish.fit([dish.space.sample(np.random.default_rng(i)) for i in range(2)], [1, 2], False)
    path = dish.save(tmp_path / "nb201.pt")
    archs = tmp_path / "archs.txt"
    archs.write_text("darts-v2\n")
    score = ["score", "--space", "darts", "--estimator", f"petri:{path}", "--archs", str(archs)]
    assert main([*score, "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"nasbox: error: petri:{path}: there is no petri dish for space 'darts'; use it with "
        "--space nb201 or rnn, or choose another --estimator\n"
    )


def test_petri_evolution_on_another_space_names_the_spaces_search_takes(tmp_path, capsys):
    """The refusal listed slope, a motif space of `nasbox petri` only: `--space slope` was then
    refused as an unknown search space."""
    search = ["search", "--strategy", "petri-evolution", "--space", "nb101", "--samples", "3"]
    assert main([*search, "--quiet", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "nasbox: error: petri-evolution has no petri dish for space 'nb101'; use it with "
        "--space nb201 or rnn, or choose another --strategy"
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ({"space_options": {"channels": 4, "image_size": 4}}, "init_weights.stem is (2, 3, 3, 3)"),
        ({"x_train": torch.zeros(3)}, "x_train is (3,), expected (4, 3, 4, 4)"),
        ({"labels": [1.0]}, "1 labels for 2 labelled motifs"),
    ],
)
def test_a_dish_file_whose_parts_do_not_fit_together_is_refused(damage, message, tmp_path):
    """Tensors of other shapes than the stored settings give (an edited or pieced-together file)
    loaded, and prediction ended in a torch traceback."""
    dish = tiny_nb201_dish()
    cells = [dish.space.sample(np.random.default_rng(seed)) for seed in (0, 1)]
    dish.fit(cells, [1.0, 2.0], progress=False)
    path = dish.save(tmp_path / "dish.pt")
    torch.save({**torch.load(path, weights_only=True), **damage}, path)
    with pytest.raises(
        NasboxError, match=re.escape(f"damaged petri dish file (ValueError: {message}")
    ):
        PetriDish.load(path)


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        (lambda data: bytes(range(1, 101)), "UnpicklingError"),
        (lambda data: data[: len(data) // 2], "RuntimeError"),
        (lambda data: b"", "EOFError"),
    ],
)
def test_a_garbage_or_cut_dish_file_is_called_damaged(tmp_path, damage, error):
    """Random bytes in a dish file were refused as 'it pickles Python objects, which could run
    code'; a cut or empty one named only torch's error type."""
    path = tiny_slope_dish().save(tmp_path / "dish.pt")
    path.write_bytes(damage(path.read_bytes()))
    message = f"not a readable petri dish file (damaged, or not written by torch.save: {error})"
    with pytest.raises(NasboxError, match=re.escape(message)):
        PetriDish.load(path)


def test_labels_refuse_an_arch_listed_twice(tmp_path, capsys):
    """A repeated arch was read silently; `petri fit` and `petri evaluate` both refuse it."""
    nb201 = get_motif_space("nb201", channels=2, image_size=4)
    cells = [nb201.format(nb201.sample(np.random.default_rng(seed))) for seed in (0, 1)]
    twice = write_labels(tmp_path / "cells.csv", [[cells[0], 90], [cells[1], 80], [cells[0], 70]])
    shown = f"{cells[0][:37]}...' is listed twice (lines 2 and 4); give each arch once"
    with pytest.raises(NasboxError, match=re.escape(shown)):
        load_labels(twice, nb201)

    spaced = tmp_path / "spaced.csv"
    spaced.write_text("arch,valid_acc\n\n0.5,90\n\n\n1.5,80\nfast,70\n0.50,60\n")
    with pytest.raises(NasboxError, match="line 7.*'fast'"):
        load_labels(spaced, get_motif_space("slope"))
    spaced.write_text(spaced.read_text().replace("fast,70\n", ""))
    with pytest.raises(NasboxError, match=re.escape("'0.5' is listed twice (lines 3 and 7)")):
        load_labels(spaced, get_motif_space("slope"))

    dish = tiny_slope_dish()
    dish.fit(SLOPES, [1.0, 3.0, 2.0, 6.0, 4.0, 5.0], progress=False)
    path = dish.save(tmp_path / "slope.pt")
    slopes = write_labels(tmp_path / "slopes.csv", [["0.5", 90], ["1.5", 80], ["0.50", 70]])
    assert main(["petri", "evaluate", str(path), "--labels", str(slopes), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "arch '0.5' is listed twice (lines 2 and 4)" in err


def test_cli_fit_and_evaluate_slopes(tmp_path, capsys):
    slopes = np.linspace(0.01, 2.01, 30)
    labels = write_labels(
        tmp_path / "slopes.csv", [[repr(float(s)), 90 - (s - 0.5) ** 2] for s in slopes]
    )
    dish = tmp_path / "dish.pt"
    fit = ["petri", "fit", "--labels", str(labels), "--k", "6", "--outer-steps", "2"]
    assert main([*fit, "--inner-steps", "5", "--out", str(dish), "--quiet"]) == 0
    assert main(["petri", "evaluate", str(dish), "--labels", str(labels), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "24 held-out motifs" in out
    for row in ("petri      extrapolation", "mlp        interpolation", "gbt        all"):
        assert row in out


def test_fit_says_which_slopes_a_too_large_k_is_counted_from(tmp_path, capsys):
    """With 30 labelled slopes, --k 18 said 'more than the 17 motifs available' without saying
    that only those in the middle of the range count."""
    slopes = np.linspace(0.01, 2.01, 30)
    labels = write_labels(tmp_path / "slopes.csv", [[repr(float(s)), s] for s in slopes])
    fit = ["petri", "fit", "--labels", str(labels), "--k", "18", "--quiet"]
    assert main([*fit, "--out", str(tmp_path / "dish.pt")]) == 2
    assert capsys.readouterr().err == (
        "nasbox: error: --k 18 is more than the 17 motifs available to fit on (the labelled "
        "slopes in 0.36 .. 1.54, the range the dish is fitted on); give a smaller --k or label "
        "more motifs\n"
    )


@pytest.mark.parametrize("interrupt_at", [1, 3])
def test_fit_interrupted_keeps_the_best_finished_restart(
    tmp_path, monkeypatch, capsys, interrupt_at
):
    """Ctrl-C in a fit of several restarts lost the finished ones (a slope fit takes minutes)."""
    labels = write_labels(tmp_path / "slopes.csv", [[s, s] for s in SLOPES])
    fit_once, calls = PetriDish._fit_once, []

    def interrupt(self, *args):
        calls.append(1)
        if len(calls) == interrupt_at:
            raise KeyboardInterrupt
        return fit_once(self, *args)

    monkeypatch.setattr(PetriDish, "_fit_once", interrupt)
    dish = tmp_path / "dish.pt"
    fit = ["petri", "fit", "--labels", str(labels), "--k", "4", "--restarts", "3"]
    fit += ["--outer-steps", "2", "--inner-steps", "2", "--out", str(dish), "--quiet"]
    assert main(fit) == 130
    err = capsys.readouterr().err
    if interrupt_at == 1:
        assert not dish.exists() and "interrupted" in err
    else:
        assert "saved the best of the 2 of 3 restarts that finished" in err
        assert len(PetriDish.load(dish).restart_losses) == 2


def test_outputs_never_replace_an_input_even_with_overwrite(tmp_path, capsys):
    """--out naming the label file, the dish or the corpus, with --overwrite, replaced it with
    the command's output: the labels, the fitted dish or the text were lost."""
    labels = write_labels(tmp_path / "slopes.csv", [[s, s] for s in SLOPES])
    dish = tiny_slope_dish()
    dish.fit(SLOPES[:3], [1.0, 3.0, 2.0], progress=False)
    dish_file = dish.save(tmp_path / "dish.pt")
    command, _ = tiny_rnn_truth(tmp_path)
    corpus = command[command.index("--corpus") + 1]
    evaluate = ["petri", "evaluate", str(dish_file), "--labels", str(labels), "--quiet"]
    for args, replaced in (
        (["petri", "fit", "--labels", str(labels), "--k", "3", "--out", str(labels)], labels),
        ([*evaluate, "--out", str(labels)], labels),
        ([*evaluate, "--out", str(dish_file)], dish_file),
        ([*command, "--count", "1", "--out", corpus], Path(corpus)),
    ):
        before = replaced.read_bytes()
        assert main([*args, "--overwrite"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "is the same file as" in err, err
        assert replaced.read_bytes() == before


@pytest.mark.parametrize("slope", ["1e300", "-4e38"])
def test_evaluate_refuses_a_slope_too_large_for_float32(tmp_path, capsys, slope):
    """A held-out slope beyond float32 ended in a traceback from scikit-learn's trees."""
    dish = tiny_slope_dish()
    dish.fit(SLOPES[:3], [1.0, 3.0, 2.0], progress=False)
    dish_file = str(dish.save(tmp_path / "dish.pt"))
    labels = write_labels(tmp_path / "slopes.csv", [*([s, s] for s in SLOPES), [slope, 2.5]])
    assert main(["petri", "evaluate", dish_file, "--labels", str(labels), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "slopes.csv, line 8: a slope motif must be at most 3.4e+38 in size" in err
    assert f"got '{slope}'" in err


def test_evaluate_refuses_fewer_than_two_held_out_motifs(tmp_path, capsys):
    """One held-out motif printed NaN for every predictor and exited 0."""
    dish = tiny_slope_dish()
    dish.fit(SLOPES[:3], [1.0, 3.0, 2.0], progress=False)
    dish_file = str(dish.save(tmp_path / "dish.pt"))
    all_labels = write_labels(tmp_path / "all.csv", [[s, s] for s in SLOPES])
    one_left = write_labels(tmp_path / "one.csv", [[s, s] for s in SLOPES[:4]])
    for labels, extra, message in (
        (all_labels, ["--held-out", "1"], "--held-out 1: a rank correlation needs 2 motifs"),
        (one_left, [], "holds 1 motif(s) the dish was not fitted on"),
    ):
        assert main(["petri", "evaluate", dish_file, "--labels", str(labels), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


def test_fitting_in_several_batches_matches_one_batch():
    labels = [1.0, 3.0, 2.0, 6.0, 4.0, 5.0]
    whole, split = tiny_slope_dish(outer_steps=3), tiny_slope_dish(outer_steps=3, batch=4)
    np.testing.assert_allclose(
        whole.fit(SLOPES, labels, progress=False),
        split.fit(SLOPES, labels, progress=False),
        rtol=1e-4,
    )
    torch.testing.assert_close(whole.x_train, split.x_train, rtol=1e-4, atol=1e-5)


def test_slope_groundtruth_peaks_inside_the_range():
    """The protocol makes the best slope an interior one, so searching for it is not trivial."""
    from nasbox.estimators.petri.groundtruth import train_slopes

    low, middle, high = train_slopes(np.array([0.01, 0.8, 2.01]), seed=0)
    assert middle > low + 0.3
    assert middle > high + 0.01


def tiny_rnn_dish(seed: int = 0) -> PetriDish:
    space = get_motif_space("rnn", hidden=4, steps=3, features=4, classes=2)
    return PetriDish(space, DishConfig(samples=4, inner_steps=2, outer_steps=2, batch=4), seed)


def test_rnn_dish_runs_the_cell_of_the_rnn_space():
    """The batched, masked cell computes what `RecurrentCell` computes for each motif alone."""
    from nasbox.spaces.rnn import RecurrentCell

    dish = tiny_rnn_dish()
    space, weights = dish.space, dish.init_weights
    cells = [get_space("rnn").sample(np.random.default_rng(i)) for i in range(3)]
    x = dish.x_train
    batched = space.forward(
        {name: value.expand(3, *value.shape) for name, value in weights.items()}, cells, x
    )
    for cell, logits in zip(cells, batched, strict=True):
        reference = RecurrentCell(cell, hidden=4)
        with torch.no_grad():
            reference.input_weight.weight.copy_(weights["input"].T)
            reference.state_weight.weight.copy_(weights["state"].T)
            for node, linear in enumerate(reference.node_weights):
                linear.weight.copy_(weights["nodes"][node].T)
            _, h = reference(x.transpose(0, 1), torch.zeros(len(x), 4), 0.0, 0.0)
        expected = h @ weights["fc_w"] + weights["fc_b"]
        torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)


def test_rnn_dish_fits_and_encodes_cells(tmp_path):
    dish = tiny_rnn_dish()
    cells = [get_space("rnn").sample(np.random.default_rng(i)) for i in range(6)]
    losses = dish.fit(cells, [9.0, 9.5, 10.0, 9.2, 9.8, 9.1], progress=False)
    assert len(losses) == 2 and all(np.isfinite(losses))
    loaded = PetriDish.load(dish.save(tmp_path / "rnn.pt"))
    np.testing.assert_allclose(loaded.predict(cells), dish.predict(cells), rtol=1e-6)
    assert dish.space.encode(cells).shape == (6, 8 * (8 + 4))
    with pytest.raises(NasboxError, match="this space has 8"):
        dish.space.parse("tanh~0|relu~1")


def test_an_rnn_dish_scores_cells_of_the_rnn_space(tmp_path, capsys):
    """petri:FILE was refused on the rnn space as an image-only estimator; the dish itself
    records the space it was fitted on, and that decides."""
    dish = tiny_rnn_dish()
    cells = [get_space("rnn").sample(np.random.default_rng(i)) for i in range(3)]
    path = dish.save(tmp_path / "rnn.pt")
    archs = tmp_path / "cells.txt"
    archs.write_text("".join(get_space("rnn").format(cell) + "\n" for cell in cells))
    score = ["score", "--archs", str(archs), "--estimator", f"petri:{path}", "--quiet"]
    assert main([*score, "--space", "rnn"]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    scores = [float(row[f"petri:{path}"]) for row in rows]
    np.testing.assert_allclose(scores, dish.predict(cells), rtol=1e-6)
    with pytest.raises(NasboxError, match="fitted on 'rnn' motifs but the search space is 'nb"):
        get_estimator(f"petri:{path}", EstimatorContext(get_space("nb201")))


def test_minimised_columns_are_negated(tmp_path):
    space = get_motif_space("slope")
    path = tmp_path / "labels.csv"
    path.write_text("arch,valid_ppl,error\n0.5,9.0,0.1\n0.7,8.0,0.2\n")
    np.testing.assert_array_equal(load_labels(path, space, "valid_ppl").values, [-9.0, -8.0])
    np.testing.assert_array_equal(load_labels(path, space, "error").values, [0.1, 0.2])
    np.testing.assert_array_equal(load_labels(path, space, "error", True).values, [-0.1, -0.2])


def tiny_rnn_truth(tmp_path: Path) -> tuple[list[str], Path]:
    """A `petri groundtruth --space rnn` command line that trains a cell in a fraction of a
    second, and the table it writes."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question.\n" * 40)
    truth = tmp_path / "truth.csv"
    command = ["petri", "groundtruth", "--space", "rnn", "--corpus", str(corpus), "--quiet"]
    command += ["--hidden", "4", "--steps", "2", "--batch-size", "4", "--bptt", "5"]
    command += ["--valid-tokens", "50", "--workers", "1", "--out", str(truth)]
    return command, truth


def test_rnn_groundtruth_fit_and_evaluate_on_the_command_line(tmp_path, capsys):
    command, truth = tiny_rnn_truth(tmp_path)
    assert main([*command, "--count", "2"]) == 0
    assert main([*command, "--count", "6"]) == 0  # trains the 4 cells not yet in the table
    rows = list(csv.DictReader(truth.open()))
    assert len(rows) == 6 and all(float(row["valid_ppl"]) > 1 for row in rows)
    dish = tmp_path / "dish.pt"
    fit = ["petri", "fit", "--space", "rnn", "--labels", str(truth), "--k", "4"]
    fit += ["--outer-steps", "1", "--inner-steps", "2", "--samples", "4", "--quiet"]
    assert main([*fit, "--out", str(dish)]) == 0
    assert main(["petri", "evaluate", str(dish), "--labels", str(truth), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 held-out motifs" in out and "minus valid_ppl (lower is better)" in out
    assert "best of 3 restarts" in out  # the rnn dish's default: one fit's ranking swings


def test_list_says_petri_evolution_proposals_cost_a_refit(capsys):
    """`nasbox list` called a proposal instant; each one after the first `initial` refits the
    dish and runs an evolution on its scores, 11 to 18 s on nb201."""
    assert main(["list"]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "petri-evolution " in line]
    assert "[instant]" not in line and "dish refit" in line


def test_fit_help_states_every_motif_space_default(capsys):
    """--help gave --restarts and --loss defaults for slope and nb201 only; rnn fits 3 restarts."""
    with pytest.raises(SystemExit):
        main(["petri", "fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 4 for slope, 1 for nb201, 3 for rnn)" in text
    assert "mse for slope, rank for nb201, rank for rnn" in text


def test_rnn_groundtruth_starts_an_empty_table_afresh(tmp_path, monkeypatch):
    """A run killed before its header reached the file left an empty one; rows were appended to
    it without a header."""
    from nasbox.estimators.petri import rnn_groundtruth

    command, truth = tiny_rnn_truth(tmp_path)
    truth.write_bytes(b"")
    on_disk_at_the_first_cell = []

    def train_cells(*args, **kwargs):
        on_disk_at_the_first_cell.append(truth.read_text().splitlines())
        yield from original(*args, **kwargs)

    original = rnn_groundtruth.train_cells
    monkeypatch.setattr(rnn_groundtruth, "train_cells", train_cells)
    assert main([*command, "--count", "2"]) == 0
    assert on_disk_at_the_first_cell == [["arch,valid_ppl,seconds"]]
    rows = list(csv.DictReader(truth.open()))
    assert len(rows) == 2 and all(float(row["valid_ppl"]) > 1 for row in rows)


def test_rnn_groundtruth_refuses_to_mix_protocols(tmp_path, capsys):
    """A rerun with other settings appended rows that do not compare to the table's."""
    command, truth = tiny_rnn_truth(tmp_path)
    assert main([*command, "--count", "2"]) == 0
    before = truth.read_bytes()
    assert main([*command, "--count", "3", "--hidden", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "made with --hidden 4, this run asks for --hidden 5" in err
    assert "--overwrite" in err and truth.read_bytes() == before
    corpus = Path(command[command.index("--corpus") + 1])
    corpus.write_text(corpus.read_text() + "a different corpus\n")
    assert main([*command, "--count", "3"]) == 2
    assert "--corpus" in capsys.readouterr().err and truth.read_bytes() == before
    assert main([*command, "--count", "1", "--hidden", "5", "--overwrite"]) == 0
    assert len(list(csv.DictReader(truth.open()))) == 1
    assert json.loads(Path(f"{truth}.json").read_text())["hidden"] == 5


def test_rnn_groundtruth_takes_a_table_without_settings_as_made_with_this_run(tmp_path, capsys):
    command, truth = tiny_rnn_truth(tmp_path)
    assert main([*command, "--count", "1"]) == 0
    Path(f"{truth}.json").unlink()  # as a table written before settings were recorded
    assert main([*command, "--count", "2"]) == 0
    assert "has no record of its settings" in capsys.readouterr().err
    assert len(list(csv.DictReader(truth.open()))) == 2 and Path(f"{truth}.json").is_file()


@pytest.mark.parametrize("line_end", [b"\r\n", b"\n"])
def test_rnn_groundtruth_continues_a_table_whose_last_line_end_was_removed(tmp_path, line_end):
    """A table saved without its final line end (an editor, after deleting a bad row as the
    error says) got the next cell's row glued onto its last one: that cell was lost, and the
    table had a 5-field row that `petri fit` refused."""
    command, truth = tiny_rnn_truth(tmp_path)
    assert main([*command, "--count", "2"]) == 0
    table = truth.read_bytes()
    truth.write_bytes(table.replace(b"\r\n", line_end).removesuffix(line_end))
    assert main([*command, "--count", "3"]) == 0
    rows = list(csv.reader(truth.open(newline="")))
    assert [len(row) for row in rows] == [3] * 4
    assert load_labels(truth, get_motif_space("rnn"), "valid_ppl").motifs == [
        get_motif_space("rnn").parse(row[0]) for row in rows[1:]
    ]


def nasbox_process(command: list[str]) -> subprocess.Popen:
    """A real `nasbox` process, which a signal reaches as a user's `kill` does."""
    return subprocess.Popen(
        [sys.executable, "-m", "nasbox.cli", *command], stderr=subprocess.PIPE, text=True
    )


def running_processes() -> dict[int, tuple[int, float]]:
    """The parent and CPU seconds of each process that runs (zombies left out), from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended meanwhile
        if fields[0] != "Z":
            ticks = int(fields[11]) + int(fields[12])  # user and system time
            found[int(stat.parent.name)] = (int(fields[1]), ticks / os.sysconf("SC_CLK_TCK"))
    return found


def descendants(pid: int) -> dict[int, tuple[int, float]]:
    """The running processes below `pid`, with their parent and CPU seconds: for a `--workers`
    command, its fork server (and resource tracker) and the workers forked by the server."""
    processes, found, frontier = running_processes(), {}, {pid}
    while frontier:
        frontier = {child for child, (parent, _) in processes.items() if parent in frontier}
        frontier -= found.keys()
        found.update({child: processes[child] for child in frontier})
    return found


def wait_for(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_rnn_groundtruth_workers_end_with_the_command(tmp_path):
    """SIGTERM waited for the running cells and wrote rows only in the order of the cells (a
    slow first one held back those finished after it); SIGKILL left the workers training,
    orphaned."""
    command, truth = tiny_rnn_truth(tmp_path)
    command += ["--workers", "2", "--repeats", "1"]

    def rows() -> int:
        return len(list(csv.DictReader(truth.open()))) if truth.is_file() else 0

    process = nasbox_process([*command, "--steps", "500", "--count", "4"])
    wait_for(lambda: rows() >= 1, "the first cell")
    below = descendants(process.pid).keys()
    process.terminate()
    _, err = process.communicate(timeout=30)
    assert process.returncode == 143
    assert err.splitlines() == [
        f"interrupted; what finished ({counted(rows(), 'cell')}) is in {truth} (a rerun "
        "without --overwrite trains the rest)"
    ]
    wait_for(lambda: not below & running_processes().keys(), "the workers to end", 10)

    slow = ["--steps", "100000", "--out", str(tmp_path / "killed.csv")]  # minutes a cell
    process = nasbox_process([*command, *slow])

    def training() -> bool:  # two workers forked by the fork server, past their start-up
        below = descendants(process.pid).values()
        return sum(parent != process.pid and cpu > 1.5 for parent, cpu in below) == 2

    wait_for(training, "two workers training")
    below = descendants(process.pid).keys()
    process.kill()
    process.wait()
    try:
        wait_for(lambda: not below & running_processes().keys(), "the orphaned workers to end", 10)
    finally:  # orphans would train for minutes
        for pid in below & running_processes().keys():
            os.kill(pid, signal.SIGKILL)


def test_rnn_groundtruth_refuses_a_table_another_process_writes(tmp_path, capsys):
    """A second run on the table of a running one (a user taking it for dead: "a rerun trains
    only the missing cells") trained the same cells again and wrote every row twice."""
    command, truth = tiny_rnn_truth(tmp_path)
    process = nasbox_process([*command, "--steps", "100000", "--count", "1"])  # minutes a cell
    try:
        wait_for(lambda: truth.is_file() and truth.read_text() != "", "the table's header")
        assert main([*command, "--count", "2"]) == 2
    finally:
        process.kill()
        process.wait()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is being written by another nasbox process" in err, err
    assert truth.read_text().splitlines() == ["arch,valid_ppl,seconds"]
    assert main([*command, "--count", "2"]) == 0  # SIGKILL released the lock
    assert len(list(csv.DictReader(truth.open()))) == 2


RELU_CELL = "|".join(["relu~0"] * 8)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (f"{RELU_CELL},abc,1.0\n".encode(), "line 2: valid_ppl 'abc' is not a number"),
        (f"{RELU_CELL},9.0,1.0\n".encode() + b"\xff\xfe,3,3\n", "line 3: not UTF-8 text"),
        (f"\n{RELU_CELL}\n".encode(), "line 3: no valid_ppl value"),
    ],
)
def test_rnn_groundtruth_refuses_unreadable_rows(tmp_path, capsys, rows, message):
    """A table continued with a row it cannot read ended in a traceback."""
    command, truth = tiny_rnn_truth(tmp_path)
    truth.write_bytes(b"arch,valid_ppl,seconds\n" + rows)
    before = truth.read_bytes()
    assert main([*command, "--count", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"truth.csv, {message}; correct or delete the line" in err
    assert truth.read_bytes() == before


def one_edge_from_best(strategy, cell, count: int) -> bool:
    """Whether `cell` differs in one edge from one of the best `count` told cells."""
    best = sorted(strategy.history, key=lambda item: item[1], reverse=True)[:count]
    return any(
        sum(a != b for a, b in zip(cell.ops, told.ops, strict=True)) == 1 for told, _ in best
    )


@pytest.mark.parametrize(("start", "explore", "local"), [("best", 0, True), ("random", 1, False)])
def test_petri_evolution_from_the_best_cells_proposes_their_mutations(start, explore, local):
    """`start="best"` evolves in the dish from the best evaluated cells, so with one generation
    every proposal is a mutation of one of them; `explore=0` proposes no random cells besides."""
    space = get_space("nb201")
    strategy = get_strategy(
        "petri-evolution", space, seed=0, initial=4, population=2, tournament=1,
        generations=1, children=5, start=start, explore=explore,
    )  # fmt: skip
    strategy.dish = tiny_nb201_dish()
    near = []
    for query in range(10):
        cell = strategy.ask()
        if query >= 4:
            near.append(one_edge_from_best(strategy, cell, 2))
        strategy.tell(cell, float(sum(op == "nor_conv_3x3" for op in cell.ops)))
    assert all(near) if local else not all(near)


def test_petri_evolution_searches_rnn_cells():
    space = get_space("rnn")
    strategy = get_strategy(
        "petri-evolution", space, seed=0, initial=3, population=4, tournament=2,
        generations=1, children=3, refit_steps=1,
    )  # fmt: skip
    strategy.dish = tiny_rnn_dish()
    for _ in range(5):
        cell = strategy.ask()
        strategy.tell(cell, -sum(activation == "relu" for activation, _ in cell.nodes))
    assert len({cell for cell, _ in strategy.history}) == 5 and strategy.dish.labelled


def test_labels_leave_out_diverged_motifs_and_refuse_equal_ones(tmp_path, capsys):
    """`petri groundtruth` writes inf for a diverged training; fitting on it gave a NaN dish."""
    space = get_motif_space("slope")
    path = tmp_path / "labels.csv"
    path.write_text("arch,valid_ppl\n0.5,9.0\n0.6,inf\n0.7,8.0\n")
    labels = load_labels(path, space, "valid_ppl")
    assert labels.motifs == [0.5, 0.7]
    np.testing.assert_array_equal(labels.values, [-9.0, -8.0])
    assert "left out 1 motif(s)" in capsys.readouterr().err
    path.write_text("arch,valid_acc\n0.5,50\n0.6,50\n0.7,inf\n")
    with pytest.raises(NasboxError, match="all equal"):
        load_labels(path, space)


@pytest.mark.parametrize(
    ("rows", "line"),
    [("0.4,4,40\n0.6,6,60\n0.8,8,80\n", 2), ("0.4,4\n\n0.6,6,60\n0.8,8\n", 4)],
)
def test_labels_refuse_rows_longer_than_the_header(tmp_path, rows, line):
    """pandas read a first field too many as an index: every value moved one column, silently."""
    path = tmp_path / "labels.csv"
    path.write_text("arch,valid_acc\n" + rows)
    message = f"labels.csv, line {line}: 3 fields but the header names 2"
    with pytest.raises(NasboxError, match=message):
        load_labels(path, get_motif_space("slope"))


def test_rnn_groundtruth_refuses_a_count_it_cannot_draw_or_train(tmp_path, capsys):
    """`--count 100000000` printed nothing for minutes: sampling so many distinct cells took
    tens of minutes and gigabytes, and a count beyond the space's cells never ended."""
    from nasbox.estimators.petri.rnn_groundtruth import sample_cells

    command, truth = tiny_rnn_truth(tmp_path)
    started = time.perf_counter()
    assert main([*command, "--count", "100000000"]) == 2
    assert time.perf_counter() - started < 5
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "--count must be at most 100,000, got 100,000,000: each cell trains" in err
    )
    assert not truth.exists()
    assert len(set(sample_cells(4, seed=0, nodes=1))) == 4
    with pytest.raises(NasboxError, match="at most 4, got 5: .* only 4 distinct cells"):
        sample_cells(5, seed=0, nodes=1)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--restarts", "0", "--restarts must be at least 1, got 0"),
        ("--samples", "0", "--samples must be at least 1, got 0"),
        ("--inner-steps", "0", "--inner-steps must be at least 1, got 0"),
        ("--outer-steps", "-1", "--outer-steps must be at least 0, got -1"),
        (
            "--samples",
            "100000000",
            "--samples must be at most 10,000, got 100,000,000: every motif trains",
        ),
        ("--inner-steps", "100000000", "--inner-steps must be at most 10,000, got 100,000,000"),
        (
            "--restarts",
            "100000000",
            "--restarts must be at most 1,000, got 100,000,000: each restart is a whole fit",
        ),
        (
            "--outer-steps",
            "1000000000000",
            "--outer-steps must be at most 10,000, got 1,000,000,000,000: each outer step runs",
        ),
    ],
)
def test_fit_names_the_dish_option_out_of_range(tmp_path, capsys, option, value, message):
    """Counts below 1 said 'dish samples, inner steps, batch and restarts must be >= 1' without
    naming the option; --samples 1e8 was killed for memory, --inner-steps 1e8 ran for days and
    --outer-steps 1e12 for ever."""
    good = write_labels(tmp_path / "good.csv", [[s, s] for s in SLOPES])
    args = ["petri", "fit", "--labels", str(good), "--k", "3", option, value, "--quiet"]
    assert main([*args, "--out", str(tmp_path / "d.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "d.pt").exists()


def test_fit_refuses_an_unrolled_training_too_large_for_memory(tmp_path, capsys):
    """Both at their limits, the nb201 dish's unrolled inner training needs petabytes."""
    nb201 = get_motif_space("nb201")
    cells = [nb201.format(nb201.sample(np.random.default_rng(seed))) for seed in (0, 1, 2)]
    good = write_labels(tmp_path / "good.csv", [[cell, 90 + i] for i, cell in enumerate(cells)])
    args = ["petri", "fit", "--space", "nb201", "--labels", str(good), "--k", "3", "--quiet"]
    args += ["--samples", "10000", "--inner-steps", "10000", "--out", str(tmp_path / "d.pt")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--samples 10000 and --inner-steps 10000 needs about" in err
    assert "GiB of memory is available" in err and not (tmp_path / "d.pt").exists()


def test_evaluate_writes_its_predictions_only_under_a_csv_name(tmp_path, capsys):
    """`--out pred.pt` wrote a CSV under a .pt name, as `score` refuses to."""
    dish = tiny_slope_dish()
    dish.fit(SLOPES[:3], [1.0, 3.0, 2.0], progress=False)
    dish_file = str(dish.save(tmp_path / "dish.pt"))
    labels = write_labels(tmp_path / "all.csv", [[s, s] for s in SLOPES])
    evaluate = ["petri", "evaluate", dish_file, "--labels", str(labels), "--quiet", "--out"]
    assert main([*evaluate, str(tmp_path / "pred.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "petri evaluate writes CSV; give a path ending in .csv" in err
    assert not (tmp_path / "pred.pt").exists()
    assert main([*evaluate, str(tmp_path / "pred.CSV")]) == 0
    assert (tmp_path / "pred.CSV").read_text().startswith("arch,valid_acc,petri")


@pytest.mark.parametrize(
    ("option", "value"),
    [("--hidden", "5"), ("--count", "200"), ("--workers", "1"), ("--corpus", "x.txt")],
)
def test_groundtruth_refuses_an_rnn_option_for_the_slope_table(tmp_path, capsys, option, value):
    """`--space slope --hidden 5` trained the slope table and ignored --hidden (and every other
    rnn-only option, even at its default value)."""
    out = tmp_path / "s.csv"
    args = ["petri", "groundtruth", "--space", "slope", option, value, "--out", str(out)]
    assert main([*args, "--repeats", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{option} applies to --space rnn, not to --space slope: drop {option}" in err
    assert not out.exists()


def test_evaluate_reports_a_dish_that_scores_every_motif_the_same(tmp_path, capsys, monkeypatch):
    """A dish (or baseline) with one score for every motif let scipy print its raw
    'ConstantInputWarning: An input array is constant' under the table."""
    dish = tiny_slope_dish()
    dish.fit(SLOPES[:3], [1.0, 3.0, 2.0], progress=False)
    dish_file = str(dish.save(tmp_path / "dish.pt"))
    labels = write_labels(tmp_path / "all.csv", [[s, s] for s in SLOPES])
    monkeypatch.setattr(PetriDish, "predict", lambda self, motifs, progress: np.full(3, -0.5))
    evaluate = ["petri", "evaluate", dish_file, "--labels", str(labels), "--quiet"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(evaluate) == 0
    out, err = capsys.readouterr()
    petri = [line.split() for line in out.splitlines() if line.startswith("petri ")]
    assert petri[0] == ["petri", "all", "nan", "nan"]
    # the 3 held-out slopes lie outside the fitted ones: no interpolation group (a note of its own)
    assert err.count("\n") == 2 and "\nnasbox: note: petri (all, extrapolation" in err
    assert "every prediction is the same, so the rank correlations are undefined" in err
    assert "the dish is unfitted or has collapsed to one score" in err


def test_evaluate_notes_groups_whose_ground_truth_ranks_nothing(tmp_path, capsys):
    """Held-out motifs all with one value, or a slope group of under 2 motifs, printed nan for
    every predictor without a word."""
    dish = tiny_slope_dish()
    dish.fit(SLOPES[:3], [1.0, 3.0, 2.0], progress=False)
    dish_file = str(dish.save(tmp_path / "dish.pt"))
    equal = [[s, 7.0] for s in (0.1, 0.2, 1.7, 1.9)]
    labels = write_labels(tmp_path / "equal.csv", [[0.4, 1.0], [0.6, 3.0], [0.8, 2.0], *equal])
    assert main(["petri", "evaluate", dish_file, "--labels", str(labels), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert ["petri", "all", "nan", "nan"] in [line.split() for line in out.splitlines()]
    assert err == (
        "nasbox: note: all (4 held-out motifs, all with the same value); interpolation (0 "
        "held-out motifs); extrapolation (4 held-out motifs, all with the same value): the ground truth ranks no motifs there, so every predictor's rank "
        "correlations are undefined (shown as nan)\n"
    )
