"""The `latency` estimator: median milliseconds of an evaluation-mode forward pass, with warm-up,
a stated number of repeats and `--latency-batch` images, in `score`, `search` and worker processes."""

import csv
import io

import pytest
import torch
from torch import nn

import nasbox.estimators.latency
from nasbox.cli import main
from nasbox.data import load_data
from nasbox.estimators import ESTIMATORS, EstimatorContext, get_estimator
from nasbox.estimators.latency import REPEATS, WARMUP, median_milliseconds
from nasbox.runs import EstimatorSpec
from nasbox.spaces import get_space

NONE_CELL = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
CONV_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


class Recorder(nn.Module):
    """Remembers how each forward pass was run."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[bool, bool, tuple[int, ...]]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_grad_enabled(), tuple(x.shape)))
        return x


@pytest.fixture
def few_passes(monkeypatch):
    """Plumbing tests need a number, not a good one: 1 warm-up and 3 timed passes."""
    monkeypatch.setattr(nasbox.estimators.latency, "WARMUP", 1)
    monkeypatch.setattr(nasbox.estimators.latency, "REPEATS", 3)


def test_timed_in_evaluation_mode_without_gradients_after_warm_up():
    network = Recorder().train()
    milliseconds = median_milliseconds(network, torch.zeros(2, 3, 8, 8))
    assert milliseconds >= 0
    assert network.calls == [(False, False, (2, 3, 8, 8))] * (WARMUP + REPEATS)


def test_the_cost_states_warm_up_and_repeats():
    cost = ESTIMATORS.get("latency").cost
    assert f"{WARMUP} + {REPEATS} forward passes" in cost


def test_latency_batch_sets_the_images_of_a_pass():
    space = get_space("nb201")
    context = EstimatorContext(space, load_data("digits"), latency_batch=4)
    estimator = get_estimator("latency", context)
    assert tuple(estimator.images.shape) == (4, 1, 8, 8)
    assert tuple(get_estimator("latency", EstimatorContext(space)).images.shape) == (1, 3, 32, 32)


def test_a_cell_of_convolutions_is_slower_than_an_empty_cell():
    torch.set_num_threads(1)  # two threads wait on each other when other processes hold a core
    space = get_space("nb201")
    options = {"cells_per_stage": 1, "channels": 16}
    context = EstimatorContext(space, build_options=options, latency_batch=4)
    latency = get_estimator("latency", context)
    assert latency(space.parse(CONV_CELL)) > 1.5 * latency(space.parse(NONE_CELL)) > 0


def test_score_takes_latency_batch(tmp_path, capsys, few_passes):
    archs = tmp_path / "cells.txt"
    archs.write_text(f"{NONE_CELL}\n{CONV_CELL}\n")
    args = ["score", "--estimator", "params,latency", "--archs", str(archs), "--quiet"]
    assert main([*args, "--latency-batch", "2"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["arch"] for row in rows] == [NONE_CELL, CONV_CELL]
    assert all(float(row["latency"]) > 0 for row in rows)
    assert main([*args, "--latency-batch", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "nasbox: error: --latency-batch must be at least 1, got 0\n"
    assert main([*args, "--latency-batch", "100000000"]) == 2  # its images asked for 1.2 TB
    err = capsys.readouterr().err
    assert err == (
        "nasbox: error: --latency-batch must be at most 1024 images per timed pass, got 100000000\n"
    )


def test_worker_processes_get_the_latency_batch():
    estimator = EstimatorSpec("nb201", "latency", latency_batch=3).build()
    assert estimator.images.shape[0] == 3


@pytest.mark.parametrize("workers", ["1", "2"])
def test_search_records_and_resumes_the_latency_batch(workers, tmp_path, capsys, few_passes):
    out = str(tmp_path / "run")
    args = ["search", "--estimator", "latency", "--samples", "2", "--out", out, "--quiet"]
    assert main([*args, "--latency-batch", "2", "--workers", workers]) == 0
    assert "best latency" in capsys.readouterr().out
    resumed = ["search", "--resume", out, "--samples", "3", "--quiet"]
    assert main([*resumed, "--latency-batch", "4"]) == 2
    assert "conflicts with the resumed run's --latency-batch 2" in capsys.readouterr().err
