"""Zero-cost proxies, shared computation and the label-free ensemble, on tiny networks and data."""

import math

import numpy as np
import pytest
import torch

from nasbox.cli import main
from nasbox.data import ImageData
from nasbox.errors import NasboxError
from nasbox.estimators import EstimatorContext, get_estimator
from nasbox.estimators.ensemble import format_members, parse_members
from nasbox.estimators.probe import (
    ProxyEstimator,
    count_distinct_rows,
    pack_patterns,
    score_together,
)
from nasbox.spaces import get_space

PROXIES = [
    "synflow",
    "snip",
    "grasp",
    "fisher",
    "grad_norm",
    "l2_norm",
    "epe_nas",
    "zen",
    "zico",
    "meco",
    "swap",
    "swap_reg",
]
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"
EMPTY = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
TINY = {"channels": 4, "cells_per_stage": 1}


def tiny_data(seed: int = 0) -> ImageData:
    rng = np.random.default_rng(seed)
    return ImageData(
        "tiny",
        rng.integers(0, 256, size=(24, 3, 8, 8), dtype=np.uint8),
        rng.integers(0, 4, size=24),
    )


def context(seed: int = 0) -> EstimatorContext:
    return EstimatorContext(
        get_space("nb201"), tiny_data(), seed=seed, batch_size=16, build_options=dict(TINY)
    )


@pytest.fixture(autouse=True)
def _one_thread():
    """Networks this small run faster on one thread, and far faster on a busy machine."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cell():
    return get_space("nb201").parse(CELL)


@pytest.mark.parametrize("name", PROXIES)
def test_each_proxy_is_a_finite_float_and_repeats_for_a_seed(name, cell):
    first = get_estimator(name, context())(cell)
    again = get_estimator(name, context())(cell)
    assert isinstance(first, float) and math.isfinite(first)
    assert first == again


@pytest.mark.parametrize("name", ["zen", "epe_nas"])
def test_a_cell_without_any_operation_scores_minus_infinity(name):
    """All-`none` cells give zero features (zen's log 0) and constant Jacobians (epe_nas)."""
    assert get_estimator(name, context())(get_space("nb201").parse(EMPTY)) == -math.inf


class Broken(ProxyEstimator):
    name = "broken"
    needs_data = False

    def __init__(self, context, outcome) -> None:
        super().__init__(context)
        self.outcome = outcome

    def score(self, probe):
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


@pytest.mark.parametrize(
    "outcome",
    [math.nan, math.inf, OverflowError("huge"), torch.linalg.LinAlgError("singular")],
    ids=["nan", "inf", "overflow", "singular"],
)
def test_numerical_breakdown_is_minus_infinity_not_an_exception(outcome, cell):
    assert Broken(context(), outcome)(cell) == -math.inf


def test_a_bug_is_still_an_exception(cell):
    with pytest.raises(KeyError):
        Broken(context(), KeyError("bug"))(cell)


def test_the_seed_changes_data_dependent_scores(cell):
    assert get_estimator("meco", context(0))(cell) != get_estimator("meco", context(1))(cell)


def test_scoring_together_equals_scoring_apart_and_builds_once(cell, monkeypatch):
    shared = context()
    names = [*PROXIES, "naswot", "jacov", "params", "flops", "ensemble:naswot+meco+swap"]
    estimators = [get_estimator(name, shared) for name in names]
    apart = [estimator(cell) for estimator in estimators]
    _ = estimators[-1].scale  # the ensemble's reference cells, computed once beforehand
    builds = []
    build = shared.build
    monkeypatch.setattr(shared, "build", lambda arch: builds.append(arch) or build(arch))
    together = score_together(estimators, cell)
    assert together == pytest.approx(apart, rel=1e-6)
    assert len(builds) == 1


def test_shared_naswot_keeps_the_context_precision(cell):
    shared = context()
    shared.precision = "bf16"
    estimators = [get_estimator(name, shared) for name in ("naswot", "swap")]
    assert score_together(estimators, cell) == [e(cell) for e in estimators]


def test_swap_counts_distinct_patterns_like_unique_on_signs():
    activations = torch.randn(70, 3, 2, 2)
    activations[:, 0] = activations[:, 1]  # duplicate units collapse
    codes = activations > 0
    expected = torch.unique(codes.reshape(70, -1).T, dim=0).shape[0]
    assert count_distinct_rows(pack_patterns(codes)) == expected < 12


def test_ensemble_scores_a_cell_alone_the_same_whatever_came_before(cell):
    space = get_space("nb201")
    rng = np.random.default_rng(5)
    others = [space.sample(rng) for _ in range(3)]
    fresh = get_estimator("ensemble:naswot+meco+params", context())
    alone = fresh(cell)
    used = get_estimator("ensemble:naswot+meco+params", context())
    for other in others:
        used(other)
    assert used(cell) == alone and math.isfinite(alone)


def test_ensemble_reference_is_seeded_and_computed_once(cell):
    ensemble = get_estimator("ensemble", context())
    scale = ensemble.scale
    assert ensemble.scale is scale
    again = get_estimator("ensemble", context()).scale
    assert all(np.array_equal(a, b) for a, b in zip(scale, again, strict=True))
    assert ensemble.names == ["meco", "synflow"]
    assert ensemble.weights.tolist() == [8 / 9, 1 / 9]


@pytest.mark.parametrize(
    "space, members",
    [
        ("nb101", ["naswot", "flops", "meco"]),
        ("darts", ["flops", "synflow", "zen"]),
        ("nats-size", ["meco", "synflow"]),  # no default of its own: NB201's
    ],
)
def test_default_ensemble_members_are_the_spaces_own(space, members):
    own = EstimatorContext(get_space(space), tiny_data(), seed=0, batch_size=16)
    assert get_estimator("ensemble", own).names == members


def test_ensemble_members_print_as_they_parse():
    spec = "naswot+flops*8+meco*0.5"
    assert format_members(*parse_members(spec)) == spec


def test_ensemble_weights_scale_the_members_z_scores(cell):
    weighted = get_estimator("ensemble:meco*3+params", context())
    probe = weighted.probe(cell)
    centre, spread = weighted.scale
    scores = weighted.member_scores(probe)
    z = (np.sign(scores) * np.log1p(np.abs(scores)) - centre) / spread
    assert weighted(cell) == pytest.approx(0.75 * z[0] + 0.25 * z[1])


def test_huge_weights_keep_their_ratio():
    """Their sum overflowed to infinity, which made every weight and every score 0."""
    ensemble = get_estimator("ensemble:meco*1e308+params*1e308+flops*5e307", context())
    assert ensemble.weights.tolist() == pytest.approx([0.4, 0.4, 0.2])


def test_few_label_fit_recovers_the_member_that_predicts_accuracy():
    ensemble = get_estimator("ensemble:meco+params", context())
    ensemble._scale = (np.zeros(2), np.ones(2))
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 5, size=(40, 2))
    accuracies = 90 + 2 * np.log1p(scores[:, 1])
    fitted = ensemble.fitted(scores, accuracies, ridge=1e-6)
    assert fitted.weights == pytest.approx([0.0, 2.0], abs=1e-4)
    assert ensemble.weights.tolist() == [0.5, 0.5]


def test_ensemble_is_minus_infinity_when_a_member_is(cell):
    ensemble = get_estimator("ensemble:zen+params", context())
    assert ensemble(get_space("nb201").parse(EMPTY)) == -math.inf


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ensemble:", "ensemble needs members joined by"),
        ("ensemble:naswot++meco", "ensemble needs members joined by"),
        ("ensemble:naswot+nope", "nope"),
        ("ensemble:naswot+naswot", "listed twice"),
        ("ensemble:naswot+latency", "not a training-free proxy"),
        ("ensemble:meco*0+naswot", "weight of 'meco' must be a number > 0"),
        ("ensemble:meco*x", "weight of 'meco' must be a number > 0"),
        ("ensemble:meco*1_0", "weight of 'meco' must be a number > 0, got '1_0'"),
        ("ensemble:meco*inf", "weight of 'meco' must be a number > 0"),
        ("ensemble:params+flops*1e308+meco*1e-308", "weight of 'meco' is too small beside"),
        ("ensemble:ensemble:params+flops", "'ensemble:params' is an ensemble itself"),
        ("swap_reg:1,0", "SIGMA > 0"),
        ("swap_reg:big", "two numbers"),
        ("swap_reg:", "two numbers"),
    ],
)
def test_bad_ensemble_and_prior_specs_are_one_line_errors(spec, message):
    with pytest.raises(NasboxError, match=message) as error:
        get_estimator(spec, context())
    assert "\n" not in str(error.value)


def test_cli_bad_ensemble_exits_2_with_one_line(tmp_path, capsys):
    archs = tmp_path / "cells.txt"
    archs.write_text(CELL + "\n")
    argv = ["score", "--space", "nb201", "--archs", str(archs), "--estimator", "ensemble:"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ensemble needs members" in err


def test_cli_scores_several_proxies_in_one_row(tmp_path, tiny_npz, capsys):
    archs = tmp_path / "cells.txt"
    archs.write_text(CELL + "\n")
    argv = ["score", "--space", "nb201", "--archs", str(archs), "--data", f"npz:{tiny_npz}"]
    argv += ["--estimator", "meco,synflow,ensemble:naswot+meco", "--batch-size", "8", "--quiet"]
    assert main(argv) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header == "arch,meco,synflow,ensemble:naswot+meco,seconds"
    assert all(math.isfinite(float(value)) for value in row.split(",")[1:])


def test_proxies_that_read_images_load_the_default_data(tmp_path, capsys):
    cells = tmp_path / "cells.txt"
    cells.write_text(get_space("nb201").default_arch + "\n")
    assert main(["score", "--estimator", "meco,zico", "--archs", str(cells), "--quiet"]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.startswith("arch,meco,zico") and "inf" not in row


def test_a_prior_with_a_comma_stays_one_estimator_on_the_command_line(tmp_path, capsys):
    """`swap_reg:MU,SIGMA` beside other estimators: its comma used to split it in two."""
    archs = tmp_path / "cells.txt"
    archs.write_text(CELL + "\n")
    argv = ["score", "--archs", str(archs), "--estimator", "swap_reg:1500,2e5,params", "--quiet"]
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines()[0] == 'arch,"swap_reg:1500,2e5",params,seconds'
