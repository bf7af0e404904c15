"""--precision: NASWOT's forward pass in bfloat16 keeps the float32 ranking."""

import numpy as np
import pytest
import torch
from scipy import stats

from nasbox.cli import main
from nasbox.data import load_data
from nasbox.estimators import EstimatorContext, get_estimator
from nasbox.spaces import get_space


def naswot_scores(precision: str, count: int = 10) -> list[float]:
    space = get_space("nb201")
    context = EstimatorContext(
        space, load_data("digits"), seed=0, batch_size=32, precision=precision
    )
    context.build_options = {"cells_per_stage": 1}  # one cell per stage: quick, same ops
    naswot = get_estimator("naswot", context)
    rng = np.random.default_rng(4)
    return [naswot(space.sample(rng)) for _ in range(count)]


@pytest.mark.skipif(
    not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no fast bf16"
)
def test_bf16_ranks_cells_as_fp32_does():
    full, half = naswot_scores("fp32"), naswot_scores("bf16")
    assert full != half, "bf16 must really change the arithmetic"
    finite = np.isfinite(full) & np.isfinite(half)
    assert finite.sum() >= 8
    assert stats.spearmanr(np.array(full)[finite], np.array(half)[finite]).statistic > 0.95


def test_precision_is_a_choice(capsys):
    args = ["search", "--estimator", "params", "--samples", "2", "--precision", "fp16"]
    with pytest.raises(SystemExit):
        main(args)
    assert "invalid choice: 'fp16'" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_active_codes_are_x_greater_than_zero_for_every_sign_and_special_value(dtype):
    from nasbox.estimators.naswot import active_codes

    values = [0.0, -0.0, 1e-30, -1e-30, 1e-40, -1e-40, 2.5, -2.5, float("inf"), float("-inf")]
    x = torch.tensor(values).to(dtype).reshape(1, -1)
    assert torch.equal(active_codes(x), x > 0)


def test_a_network_with_non_finite_outputs_scores_minus_infinity():
    from nasbox.estimators.naswot import naswot_score

    network = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(3, 2))
    with torch.no_grad():
        network[1].weight.fill_(float("inf"))
    assert naswot_score(network, torch.randn(4, 3)) == -np.inf
