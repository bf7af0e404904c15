"""Checks against the NAS-Bench-201 ground truth in ../shared (skipped when it is absent)."""

from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest
import torch

from nasbox.spaces import get_space
from tests.conftest import shared_file

pytestmark = pytest.mark.integration

# NAS-Bench-201 reports, for 204 of its 15,625 cells (all containing skip_connect), a parameter
# count averaged over training records of differently sized but equivalent cells: 199 of those
# values are not whole numbers of parameters, so no single network can match them.
TABLE_AVERAGED_ROWS = 204


def _count(cells: list[str]) -> list[int]:
    torch.set_num_threads(1)
    space = get_space("nb201")
    with torch.device("meta"):
        return [sum(p.numel() for p in space.build(space.parse(c)).parameters()) for c in cells]


def test_every_cell_has_the_benchmarks_parameter_count():
    table = pd.read_csv(shared_file("nb201-cifar10.csv"))
    chunks = np.array_split(table["arch"].to_numpy(), 8)
    with ProcessPoolExecutor(2) as pool:
        counts = np.concatenate(list(pool.map(_count, [list(c) for c in chunks])))
    expected = table["params_m"].to_numpy() * 1e6
    mismatch = np.abs(counts - expected) > 0.5
    assert len(counts) == 15625
    assert mismatch.sum() == TABLE_AVERAGED_ROWS
    assert table["arch"][mismatch].str.contains("skip_connect").all()
    whole = np.abs(expected - np.round(expected)) < 1e-3
    assert (~whole).sum() == 199 and mismatch[~whole].all()


def test_naswot_ranks_real_cifar10_cells_like_the_benchmark():
    from scipy.stats import kendalltau

    from nasbox.data import load_data
    from nasbox.estimators import EstimatorContext, get_estimator

    table = pd.read_csv(shared_file("nb201-cifar10.csv")).sample(24, random_state=0)
    data = load_data(f"npz:{shared_file('cifar10-subset.npz')}")
    space = get_space("nb201")
    naswot = get_estimator("naswot", EstimatorContext(space, data, seed=0, batch_size=64))
    scores = [naswot(space.parse(arch)) for arch in table["arch"]]
    assert kendalltau(scores, table["valid_acc"]).statistic > 0.3
