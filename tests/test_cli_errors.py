"""Wrong invocations of train, describe, score, bench, petri and list: exit 2, one line, nothing
written. Each runs in a folder of prepared inputs whose contents must not change."""

import bz2
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nasbox.cli import main

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _images(rng, count, side=8):
    return rng.integers(0, 256, size=(count, 3, side, side), dtype=np.uint8)


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch) -> Path:
    """A working folder holding one file for each kind of bad input."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=40)
    np.savez(tmp_path / "good.npz", x_train=_images(rng, 40), y_train=labels)
    np.save(tmp_path / "array.npy", _images(rng, 4))
    np.savez(
        tmp_path / "unseen.npz",
        x_train=_images(rng, 40),
        y_train=labels,
        x_test=_images(rng, 5),
        y_test=np.full(5, 7),
    )
    np.savez(  # y_test's label 1 lies within y_train's 0..2, yet no training image has it
        tmp_path / "gap.npz",
        x_train=_images(rng, 40),
        y_train=labels // 2 * 2,
        x_test=_images(rng, 5),
        y_test=np.array([0, 1, 2, 0, 2]),
    )
    np.savez(tmp_path / "one-class.npz", x_train=_images(rng, 4), y_train=np.array([2, 2, 2, 2]))
    np.savez(tmp_path / "huge.npz", x_train=_images(rng, 4), y_train=np.array([0, 1, 2, 10**12]))
    np.savez(
        tmp_path / "constant.npz", x_train=np.full((4, 3, 8, 8), 9, np.uint8), y_train=[0, 1, 0, 1]
    )
    (tmp_path / "cells.txt").write_text(CELL + "\n")
    (tmp_path / "cells.csv").write_text(CELL + "\n")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    (tmp_path / "table.csv").write_text(f"arch,valid_acc,empty\n{CELL},90,\n")
    (tmp_path / "labels.csv").write_text(
        "arch,valid_acc\n"
        + "".join(f"{slope},{slope * 10}\n" for slope in (0.4, 0.6, 0.8, 1.0, 1.2))
    )
    (tmp_path / "twice.csv").write_text("arch,valid_acc\n0.4,4\n0.6,6\n0.40,5\n")
    (tmp_path / "scores.csv").write_text("earlier results\n")
    (tmp_path / "corrupt.pt").write_bytes(b"not a torch file")
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "earlier" / "history.csv").write_text("epoch\n1\n")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "trajectories.csv").write_text("strategy\n")
    (tmp_path / "empty-run").mkdir()
    with bz2.open(tmp_path / "other.pickle.pbz2", "wb") as handle:  # cifar100 results only
        results = {"dataset_seed": {"cifar100": [1]}, "all_results": {}}
        pickle.dump({"meta_archs": [CELL], "arch2infos": {0: {"200": results}}}, handle)
    torch.save({"format": "nasbox-petri-dish", "version": 1}, tmp_path / "dish.pt")
    monkeypatch.chdir(tmp_path)
    return tmp_path


TRAIN = ["train", "--quiet", "--out", "run"]
NPZ = ["--data", "npz:good.npz", "--batch-size", "8"]
SCORE = ["score", "--quiet", "--archs", "cells.txt", "--estimator", "params"]
BENCH = ["bench", "run", "--quiet", "--benchmark", "table.csv", "--report", "valid_acc"]
BENCH += ["--out", "bench-out"]
PETRI_FIT = ["petri", "fit", "--quiet", "--labels", "labels.csv", "--out", "dish-out.pt"]
RNN_TRUTH = ["petri", "groundtruth", "--space", "rnn", "--quiet", "--out", "truth.csv"]

WRONG = [
    ([*RNN_TRUTH, "--count", "0"], "--count must be at least 1"),
    ([*RNN_TRUTH, "--repeats", "0"], "--repeats must be at least 1"),
    ([*RNN_TRUTH, "--workers", "0"], "--workers must be at least 1"),
    ([*RNN_TRUTH, "--hidden", "0"], "--hidden must be at least 1"),
    ([*RNN_TRUTH, "--valid-tokens", "1"], "--valid-tokens must be at least 2, got 1"),
    ([*RNN_TRUTH, "--train-seed", str(2**32)], "--train-seed must be a whole number from 0"),
    ([*RNN_TRUTH, "--train-seed", str(2**32 - 1)], "--train-seed + --repeats - 1 must be"),
    ([*RNN_TRUTH, "--hidden", "100000"], "--hidden must be at most 2,048"),
    ([*RNN_TRUTH, "--corpus", "binary.txt"], "binary.txt"),
    ([*RNN_TRUTH, "--corpus", "cells.txt"], "too few for one batch"),
    ([*PETRI_FIT, "--space", "rnn"], "missing column(s) valid_ppl"),
    (["score", "--archs", ""], "--archs is empty; give a text file"),  # was ". is a folder"
    ([*TRAIN, "--seed", "-1"], "--seed must be a whole number from 0 to 4294967295"),
    ([*TRAIN, "--seed", str(2**32)], "--seed must be"),
    ([*TRAIN, "--epochs", "0"], "--epochs must be at least 1"),
    ([*TRAIN, "--batch-size", "-3"], "--batch-size must be at least 1"),
    ([*TRAIN, "--lr", "1e6"], "--lr must be a number in (0, 10]"),
    ([*TRAIN, "--lr", "nan"], "--lr must be a number in (0, 10]"),
    ([*TRAIN, "--momentum", "1"], "--momentum must be a number in [0, 1)"),
    ([*TRAIN, "--weight-decay", "inf"], "--weight-decay must be"),
    ([*TRAIN, "--space", "darts", "--drop-path", "1.5"], "--drop-path must be"),
    ([*TRAIN, "--space", "darts", "--dropout", "-0.1"], "--dropout must be"),
    ([*TRAIN, "--drop-path", "0.3"], "--drop-path applies to the cell spaces (amoeba, darts,"),
    ([*TRAIN, "--space", "nb101", "--aux-weight", "1"], "nb101 networks have no drop path"),
    ([*TRAIN, "--space", "nats-size", "--dropout", "0.5"], "so leave --dropout out"),
    ([*TRAIN, "--cutout", "-2"], "--cutout must be at least 0"),
    ([*TRAIN, "--cutout", "16"], "--cutout 16 would erase most of every 8x8 image"),
    ([*TRAIN, "--cells", "0"], "--cells must be at least 1"),
    ([*TRAIN, "--filters", "4"], "--filters must be at least 8"),
    ([*TRAIN, "--resume"], "nothing to resume in run; start without --resume"),
    ([*TRAIN, "--resume", "--overwrite"], "contradict each other"),
    (["train", "--quiet", "--resume"], "--resume continues the run in --out; pass --out FOLDER"),
    ([*TRAIN, "--data", "npz:array.npy"], "error: array.npy: a single .npy array, not an .npz"),
    ([*TRAIN, "--data", "npz:"], "--data npz: needs a file, e.g. --data npz:images.npz"),
    ([*TRAIN, "--data-dir", "."], "--data-dir is read only with --data cifar10"),
    ([*TRAIN, *NPZ, "--data-dir", "."], "--data npz:good.npz does not use it"),
    ([*TRAIN, "--data", "npz:unseen.npz"], "y_test holds label 7, a class no training image has"),
    (
        [*TRAIN, "--data", "npz:gap.npz"],
        "y_test holds label 1, a class no training image has (y_train holds 2 of the labels 0..2)",
    ),
    ([*TRAIN, "--data", "npz:one-class.npz"], "every y_train label is 2; a classifier needs"),
    ([*TRAIN, "--data", "npz:huge.npz"], "y_train holds label 1000000000000"),
    ([*TRAIN, "--data", "npz:constant.npz"], "constant images carry nothing"),
    ([*TRAIN, "--arch", "binary.txt"], "binary.txt: not a UTF-8 text file"),
    ([*TRAIN, "--arch", "empty.txt"], "empty.txt: the file is empty; write the architecture in"),
    (["describe", "--arch", "empty.txt"], "empty.txt: the file is empty"),
    (["train", "--quiet", "--out", "cells.txt"], "is a file, not a folder"),
    (["train", "--quiet", "--out", "cells.txt/run"], "cells.txt is a file"),
    (
        ["train", "--quiet", "--out", "earlier"],
        "already holds results (checkpoint.pt, history.csv)",
    ),
    (["train", "--quiet", "--out", "earlier", "--resume"], "not a readable nasbox checkpoint"),
    (["describe", "--classes", "0"], "--classes must be at least 2"),
    (["describe", "--classes", "-5"], "--classes must be at least 2"),
    (["describe", "--input", "4"], "--input must be at least 8"),
    (["describe", "--space", "resnet"], "unknown search space 'resnet'"),
    ([*SCORE, "--seed", "-1"], "--seed must be"),
    ([*SCORE, "--archs", "binary.txt"], "not a UTF-8 text file"),
    ([*SCORE, "--archs", "missing.txt"], "missing.txt: file not found"),
    ([*SCORE, "--out", "scores.csv"], "scores.csv already exists; choose another file name"),
    ([*SCORE, "--out", "empty-run"], "is a folder; give a file name"),
    ([*SCORE, "--estimator", " , "], "--estimator needs at least one value"),
    ([*SCORE, "--estimator", "train:x", *NPZ], "takes a whole number of epochs"),
    ([*SCORE, "--estimator", "train:0", *NPZ], "train:EPOCHS must be at least 1"),
    ([*SCORE, "--estimator", "train"], "needs an epoch count, e.g. train:2"),
    ([*SCORE, "--estimator", "table:empty", "--benchmark", "table.csv"], "holds no values"),
    ([*SCORE, "--estimator", "table:arch", "--benchmark", "table.csv"], "no column 'arch'"),
    ([*SCORE, "--estimator", "naswot", *NPZ, "--batch-size", "0"], "--batch-size must be"),
    (
        [*SCORE, "--estimator", "naswot", *NPZ, "--batch-size", "1"],
        "--batch-size must be at least 2",
    ),
    ([*BENCH, "--repeats", "0"], "--repeats must be at least 1"),
    ([*BENCH, "--seed", str(2**32 - 2), "--repeats", "3"], "--seed + --repeats - 1 must be"),
    ([*BENCH, "--budget", "20000"], "more than the 15,625 architectures"),
    ([*BENCH, "--out", "bench"], "already holds results (trajectories.csv)"),
    (["bench", "convert", "nothing.pth", "--out", "t.csv"], "nothing.pth: file not found"),
    (["bench", "convert", "other.pickle.pbz2", "--out", "scores.csv"], "already exists"),
    (["bench", "convert", "other.pickle.pbz2", "--out", "t.json"], "unknown table format"),
    ([*PETRI_FIT, "--k", "1"], "--k must be at least 2"),
    ([*PETRI_FIT, "--labels", "empty-run"], "empty-run: is a folder, not a label file"),
    (["petri", "evaluate", "empty-run", "--labels", "labels.csv"], "is a folder, not a dish file"),
    ([*PETRI_FIT, "--seed", "-4"], "--seed must be"),
    ([*PETRI_FIT, "--out", "scores.csv"], "already exists"),
    (["petri", "evaluate", "corrupt.pt", "--labels", "labels.csv"], "not a readable petri dish"),
    (["petri", "evaluate", "dish.pt", "--labels", "labels.csv"], "a damaged petri dish file"),
    (["petri", "evaluate", "dish.pt", "--labels", "labels.csv", "--held-out", "-1"], "--held-out"),
    (["petri", "evaluate", "dish.pt", "--labels", "labels.csv", "--out", "scores.csv"], "exists"),
    # found by a hunt for wrong inputs nobody had tried (issue 11)
    ([*SCORE, "--estimator", "params,params"], "--estimator names 'params' twice"),
    ([*SCORE, "--out", ""], "--out is empty; give a file name"),
    ([*SCORE, "--out", "scores.json"], "--out scores.json: score writes CSV; give a path ending"),
    ([*SCORE, "--out", "scores.csv.txt"], "score writes CSV"),
    (
        [*SCORE, "--archs", "cells.csv", "--out", "./cells.csv", "--overwrite"],
        "--out cells.csv is the same file as --archs cells.csv; writing it would replace",
    ),
    ([*PETRI_FIT, "--labels", "twice.csv"], "arch '0.4' is listed twice (lines 2 and 4); give"),
    ([*BENCH, "--strategy", "random,random"], "--strategy names 'random' twice"),
    ([*BENCH, "--budget", "5"], "bench run needs a table of every cell"),
    ([*BENCH, "--metric", "empty"], "column 'empty' holds no values"),
    (
        ["search", "--quiet", "--space", "nasnet", "--estimator", "table:valid_acc"]
        + ["--benchmark", "table.csv", "--samples", "2", "--out", "search-out"],
        "not a nasnet architecture",
    ),
    (["bench", "convert", "cells.txt", "--out", "t.csv"], "it is not a NAS-Bench-201 .pth"),
    (["bench", "convert", "empty-run", "--out", "t.csv"], "meta.pickle.pbz2: file not found"),
    (
        ["bench", "convert", "other.pickle.pbz2", "--out", "t.csv", "--dataset", "cifar1000"],
        "unknown dataset 'cifar1000'",
    ),
    ([*TRAIN, *NPZ], "data set 'good' has no test split"),
    (["describe", "--filters", str(10**9)], "--filters must be at most 10000"),
    (["describe", "--cells", str(10**6)], "--cells must be at most 100"),
    # a traceback: PyTorch's tensor sizes overflowed, even on the meta device
    (["describe", "--input", str(10**12)], "--input must be at most 65,536, got 1,000,000,000,000"),
    (["petri", "evaluate", "dish.pt", "--labels", "labels.csv", "--out", ""], "--out is empty"),
    (
        ["runs", "list", "--bogus"],
        "nasbox runs list: unrecognized arguments: --bogus (see: nasbox runs list --help)",
    ),
    ([*SCORE, "--samples", "3"], "nasbox score: unrecognized arguments: --samples 3 (see: nasbox"),
    (["runs", "list", "a.db", "--storage", "b.db"], "as PATH or as --storage, not both"),
    (
        ["search", "--resume", "naswot-cifar", "--storage", "all.db"],
        "--storage all.db: file not found; give the database file that holds run naswot-cifar",
    ),
    (["describe", "--arch", "nofile.txt"], "nofile.txt: file not found (expected an arch"),
    ([*SCORE, "--archs", "empty-run"], "empty-run is a folder; give a text file"),
    (["search", "--objectives", "", "--strategy", "nsga2", "--out", "s"], "--objectives is empty"),
    (
        ["petri", "groundtruth", "--quiet", "--out", "labels.csv"],
        "labels.csv already exists; choose another file name or pass --overwrite",
    ),
    ([*SCORE, "--estimator", "params,,flops"], "'params,,flops' has an empty value; remove"),
    ([*SCORE, "--estimator", "params,"], "--estimator 'params,' has an empty value"),
    (
        ["search", "--estimator", "naswot,params", "--out", "s"],
        "a search optimises one, or several with --objectives (e.g. --objectives naswot,-params",
    ),
    (
        ["search", "--space", "rnn", "--strategy", "area", "--out", "s"],
        "--prescore naswot (the default) scores image networks and space rnn builds text "
        "networks; give --prescore lm:STEPS or petri:FILE or table:COLUMN",
    ),
    (
        ["search", "--space", "rnn", "--strategy", "area", "--prescore", "jacov", "--out", "s"],
        "--prescore jacov scores image networks",
    ),
    (
        ["search", "--prescore", "jacov", "--samples", "2", "--quiet", "--out", "s"],
        "--strategy random does not use it: drop --prescore",
    ),
    ([*BENCH, "--strategy", "random,evolution", "--prescore", "params"], "drop --prescore"),
    # read only to pre-score cells: a missing file or a negative batch went unnoticed
    ([*BENCH, "--data", "npz:missing.npz"], "--data is read by strategies that pre-score cells"),
    ([*BENCH, "--batch-size", "-3"], "only looks up the table: drop --batch-size"),
    # N@F needs no data: it was refused only after the data had loaded (or failed to)
    (
        [*TRAIN, "--space", "nats-size", "--cells", "3", "--data", "npz:missing.npz"],
        "nats-size networks have one cell per stage; drop --cells 3",
    ),
    (
        [*TRAIN, "--space", "rnn", "--cells", "0", "--data", "text:missing.txt"],
        "--cells must be at least 1",
    ),
]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "--quiet", "--data", "digits", "--epochs", "1", "--cells", "1"]
            + ["--filters", "8"],
            "--out is empty; give a folder path",
        ),
        ([*RNN_TRUTH[:-2], "--count", "1"], "--out is empty; give a file name"),
        (PETRI_FIT[:-2], "--out is empty; give a file name"),
        (["runs", "export", "run"], "--out is empty; give a file name"),
        (["bench", "convert", "other.pickle.pbz2"], "--out is empty; give a file name"),
    ],
    ids=["train", "petri groundtruth", "petri fit", "runs export", "bench convert"],
)
def test_an_empty_out_is_refused_not_replaced(inputs, capsys, argv, message):
    """--out "" (an unset shell variable): train wrote runs/train-TIMESTAMP and petri groundtruth
    measurements/results/..., folders nobody asked for; petri fit and runs export took it as
    the current folder ("--out . is a folder", bench convert ".: unknown table format"). search, score and export refused it already."""
    before = sorted(path.name for path in inputs.iterdir())
    assert main([*argv, "--out", ""]) == 2
    assert capsys.readouterr().err == f"nasbox: error: {message}\n"
    assert sorted(path.name for path in inputs.iterdir()) == before


def test_an_output_that_is_not_a_regular_file_is_refused(inputs, capsys):
    """--overwrite renames the new file over the old one: over a pipe or device (/dev/null as
    root) that would replace it."""
    os.mkfifo(inputs / "pipe.csv")
    assert main([*SCORE, "--out", "pipe.csv", "--overwrite"]) == 2
    assert "--out pipe.csv is not a regular file" in capsys.readouterr().err
    assert not (inputs / "pipe.csv").is_file()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize(("argv", "message"), WRONG, ids=[" ".join(a) for a, _ in WRONG])
def test_wrong_invocation_is_one_line_exit_2_and_writes_nothing(inputs, capsys, argv, message):
    before = _snapshot(inputs)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nasbox: error: "), err
    assert message in err and "Traceback" not in err
    assert _snapshot(inputs) == before
    assert sorted(p.name for p in inputs.iterdir()) == sorted(
        p.name for p in inputs.iterdir() if str(p) in before or p.is_dir()
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes past file modes")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*SCORE, "--out", "locked/scores.csv"], "--out locked/scores.csv: cannot reach it"),
        ([*PETRI_FIT, "--labels", "unreadable.csv"], "unreadable.csv: cannot read it"),
        (["bench", "convert", "unreadable.csv", "--out", "t.csv"], "cannot read it"),
    ],
)
def test_unreadable_paths_are_one_line(inputs, capsys, argv, message):
    (inputs / "unreadable.csv").write_text("arch,valid_acc\n")
    (inputs / "unreadable.csv").chmod(0)
    (inputs / "locked").mkdir()
    (inputs / "locked").chmod(0)
    try:
        assert main(argv) == 2
    finally:
        (inputs / "locked").chmod(0o755)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--quiet", "--out", "/proc/nasbox-run"],
        [*SCORE, "--out", "/proc/scores.csv"],
        ["petri", "evaluate", "dish.pt", "--labels", "labels.csv", "--out", "/proc/e.csv"],
    ],
)
def test_an_output_folder_nobody_can_write_is_refused_before_the_work(inputs, capsys, argv):
    """/proc passes os.access for root but takes no files: the work used to run, then fail."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/proc is not writable; choose another folder" in err


def test_bench_convert_refuses_a_file_without_the_dataset(inputs, capsys):
    """The warning that the pickle is loaded comes first; then one error, and no table."""
    argv = ["bench", "convert", "other.pickle.pbz2", "--out", "t.csv", "--quiet"]
    assert main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no cell has results of the 'cifar10-valid' setting" in last
    assert not (inputs / "t.csv").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--lr", "nan", "--out", "run"],
        ["describe", "--classes", "-5"],
    ],
)
def test_wrong_invocation_in_a_real_process(inputs, argv):
    done = subprocess.run(
        [sys.executable, "-m", "nasbox.cli", *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (inputs / "run").exists()


def test_architecture_files_saved_with_a_byte_order_mark_are_read(tmp_path, capsys):
    """Some editors start UTF-8 files with a BOM; it used to become part of the first cell."""
    archs = tmp_path / "cells.txt"
    archs.write_text("\ufeff" + CELL + "\n", encoding="utf-8")
    assert main(["score", "--quiet", "--archs", str(archs), "--estimator", "params"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split(",")[0] == CELL


def test_constraints_that_reject_every_cell_say_how_to_start_again(tmp_path, capsys):
    """The run folder already exists when the constraints turn out impossible; the message
    must say how to reuse it (a plain rerun is refused as 'already holds results')."""
    out = tmp_path / "run"
    argv = ["search", "--constraint", "params<=0.001", "--samples", "2", "--out", str(out)]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the constraints rejected" in err[0] and "--overwrite" in err[0]
    assert main([*argv[:2], "params<=1", *argv[3:], "--overwrite", "--quiet"]) == 0
