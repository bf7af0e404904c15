"""Training keeps results safe (no overwrite, divergence stops cleanly), the train:EPOCHS estimator,
and `nasbox list`."""

import argparse
import csv
import json
import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from nasbox.cli import list as list_command
from nasbox.cli import main
from nasbox.data import load_npz
from nasbox.errors import NasboxError
from nasbox.estimators import ESTIMATORS, EstimatorContext, get_estimator
from nasbox.spaces import get_space
from nasbox.train import TrainConfig, train
from nasbox.train.trainer import CHECKPOINT_KEYS

CELL = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|"


def _train_args(tiny_npz, out, *extra):
    args = ["train", "--arch", CELL, "--cells", "1", "--filters", "16", "--epochs", "1"]
    return [*args, "--data", f"npz:{tiny_npz}", "--out", str(out), "--quiet", *extra]


def test_train_refuses_earlier_results_and_records_what_it_used(tmp_path, tiny_npz, capsys):
    out = tmp_path / "run"
    assert main(_train_args(tiny_npz, out, "--batch-size", "64")) == 0
    captured = capsys.readouterr()
    assert "--batch-size 64 is more than the 40 training images" in captured.err
    used = json.loads((out / "settings.json").read_text())["used"]
    assert used["batch_size"] == 40 and used["cutout"] == 0  # 8x8 images: cutout off
    assert used["drop_path"] == used["aux_weight"] == 0  # nb201 networks have neither
    assert {row["drop_path"] for row in csv.DictReader((out / "history.csv").open())} == {"0.0"}
    first = (out / "checkpoint.pt").read_bytes()
    assert main(_train_args(tiny_npz, out, "--seed", "3")) == 2
    assert "--resume --out" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == first
    assert main(_train_args(tiny_npz, out, "--seed", "3", "--overwrite")) == 0
    assert (out / "checkpoint.pt").read_bytes() != first


def test_a_network_too_large_for_memory_is_refused_before_it_is_built(tmp_path, tiny_npz, capsys):
    """--cells 100 --filters 10000 (133 billion parameters) ended in a memory traceback."""
    out = tmp_path / "run"
    assert main(_train_args(tiny_npz, out, "--cells", "100", "--filters", "10000")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(
        "nasbox: error: training the network (133,007.2 M parameters) needs about"
    )
    assert "of memory is available; use fewer --cells or --filters" in err
    assert not out.exists()


# `nasbox train` in a process whose address space may grow by only 512 MiB past what it has
# mapped once torch is imported: a batch's activations then fail to allocate, as a batch too
# large for the machine's memory does.
MEMORY_LIMITED = """
import resource, sys

import torch

from nasbox.cli import main

with open("/proc/self/status") as handle:
    size = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (size + 2**29, resource.RLIM_INFINITY))
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(not pathlib.Path("/proc/self/status").is_file(), reason="needs Linux's /proc")
def test_a_batch_that_does_not_fit_in_memory_is_one_line(tmp_path):
    """torch's "DefaultCPUAllocator: can't allocate memory" ended training in a traceback."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 3, 512, 512), dtype=np.uint8)
    labels = np.array([0, 1] * 5)
    big = tmp_path / "big.npz"
    np.savez(big, x_train=images[:8], y_train=labels[:8], x_test=images[8:], y_test=labels[8:])
    out = tmp_path / "run"
    argv = ["train", "--arch", CELL, "--cells", "1", "--filters", "64", "--epochs", "1"]
    argv += ["--data", f"npz:{big}", "--batch-size", "8", "--out", str(out), "--quiet"]
    process = subprocess.run(
        [sys.executable, "-c", MEMORY_LIMITED, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert process.returncode == 2, process.stderr
    assert process.stderr == (
        "nasbox: error: training ran out of memory; start again with a smaller --batch-size, "
        "or fewer --cells or --filters\n"
    )
    assert not (out / "checkpoint.pt").exists()


class DivergesAfter(nn.Module):
    """A linear classifier whose training logits turn NaN after `steps` steps."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * 8 * 8, 4)
        self.steps, self.calls = steps, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.linear(x.flatten(1))
        if self.training:
            self.calls += 1
            if self.calls > self.steps:
                return logits * float("nan")
        return logits


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_npz):
    data = load_npz(tiny_npz)
    config = TrainConfig(epochs=3, batch_size=16, seed=0)  # 3 steps per epoch
    with pytest.raises(NasboxError, match="loss became nan in epoch 2, step 2.*epoch 1"):
        train(DivergesAfter(4), data, config, tmp_path, progress=False)
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert len(rows) == 1
    assert len(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["history"]) == 1


def test_train_takes_its_output_folder_as_a_string(tmp_path, tiny_npz, corpus):
    """train(network, data, config, "runs/x") failed with TypeError "unsupported operand type(s)
    for /: 'str' and 'str'", as did train_language_model."""
    from nasbox.data.text import load_text
    from nasbox.train.language import LanguageConfig, train_language_model

    config = TrainConfig(epochs=1, batch_size=16)
    train(DivergesAfter(100), load_npz(tiny_npz), config, str(tmp_path / "a"), progress=False)
    assert len(list(csv.DictReader((tmp_path / "a" / "history.csv").open()))) == 1
    text, space = load_text(corpus), get_space("rnn")
    network = space.build(space.parse("tanh~0"), num_classes=text.num_classes, hidden=8)
    language = LanguageConfig(epochs=1, batch_size=2, bptt=5, steps=1)
    train_language_model(network, text, language, str(tmp_path / "b"), progress=False)
    assert (tmp_path / "b" / "checkpoint.pt").is_file()


class RunsCode:
    """Unpickling this creates `marker`: what a planted checkpoint could do instead."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


@pytest.mark.parametrize(
    ("save", "why"),
    [
        (torch.save, "(it pickles Python objects, which could run code and were not loaded)"),
        (
            lambda state, path: path.write_bytes(pickle.dumps(state)),
            "(damaged, or not written by torch.save: UnpicklingError)",
        ),
    ],
)
def test_a_checkpoint_that_would_run_code_is_refused_unloaded(
    tmp_path, tiny_npz, capsys, save, why
):
    """train --resume loaded checkpoint.pt with weights_only=False: a planted file (torch.save or
    a bare pickle) ran its code before the keys were checked. export and petri dishes loaded
    with weights_only but let torch's warning about a bare pickle through, three lines in all."""
    out, marker = tmp_path / "run", tmp_path / "code-ran"
    out.mkdir()
    checkpoint = out / "checkpoint.pt"
    save({key: RunsCode(marker) for key in CHECKPOINT_KEYS}, checkpoint)
    labels = tmp_path / "labels.csv"
    labels.write_text("arch,valid_acc\n0.4,4\n0.6,6\n0.8,8\n")
    for argv in (
        _train_args(tiny_npz, out, "--resume"),
        ["export", "--checkpoint", str(out), "--out", str(tmp_path / "net.pt")],
        ["petri", "evaluate", str(checkpoint), "--labels", str(labels)],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("nasbox: error: ")
        assert f"{checkpoint}: not a readable " in err[0]
        assert why in err[0]
    assert not marker.exists() and not (tmp_path / "net.pt").exists()


def test_train_estimator_scores_validation_accuracy_without_writing(
    tmp_path, tiny_npz, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    space = get_space("nb201")
    context = EstimatorContext(
        space,
        load_npz(tiny_npz),
        seed=2,
        batch_size=16,
        build_options={"cells_per_stage": 1, "channels": 4},
    )
    estimator = get_estimator("train:1", context)
    cell = space.parse(CELL)
    value = estimator(cell)
    assert 0.0 <= value <= 100.0 and value == estimator(cell)
    held_out, kept = len(estimator.data.x_test), len(estimator.data.x_train)
    assert held_out + kept == 40 and 4 <= held_out <= 8  # a fifth of each class, rounded down
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.npz"]
    with pytest.raises(NasboxError, match="needs data"):
        get_estimator("train:1", EstimatorContext(space))


def test_list_names_every_component_with_its_syntax(capsys):
    parser = argparse.ArgumentParser()
    list_command.add_parser(parser.add_subparsers())
    args = parser.parse_args(["list"])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    for syntax in ("table:COLUMN", "petri:FILE", "train:EPOCHS", "npz:FILE", "nb201", "area"):
        assert f"  {syntax} " in out
    for name in ESTIMATORS.names():
        assert ESTIMATORS.get(name).cost in out
