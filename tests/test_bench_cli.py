import bz2
import csv
import json
import pickle

import pandas as pd
import pytest
import torch

from nasbox.benchmarks import TabularBenchmark
from nasbox.cli import main
from nasbox.spaces import get_space

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def synthetic_table(tmp_path_factory):
    """Every nb201 cell; accuracy grows with the number of 3x3 convolutions (plus a tie-breaker)."""
    space = get_space("nb201")
    archs = list(space)
    convs = [arch.ops.count("nor_conv_3x3") for arch in archs]
    skips = [arch.ops.count("skip_connect") for arch in archs]
    path = tmp_path_factory.mktemp("bench") / "synthetic.parquet"
    pd.DataFrame(
        {
            "arch": [space.format(arch) for arch in archs],
            "valid_acc": [80 + 2 * c + 0.1 * s for c, s in zip(convs, skips, strict=True)],
            "test_acc": [81 + 2 * c for c in convs],
        }
    ).to_parquet(path, index=False)
    return path


def _bench(table, out, *extra):
    return main(
        ["bench", "run", "--benchmark", str(table), "--out", str(out), "--quiet", "--seed", "3"]
        + list(extra)
    )


def test_bench_run_writes_table_trajectories_and_plot(synthetic_table, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--strategy", "random,evolution,reinforce", "--budget", "20,60", "--repeats", "3"]
    assert _bench(synthetic_table, out, *args) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 3 * 2  # header + one row per strategy and budget
    assert "| evolution | 60 | 3 |" in printed
    trajectories = list(csv.DictReader((out / "trajectories.csv").open()))
    assert len(trajectories) == 3 * 3 * 60
    first_run = [row for row in trajectories if row["strategy"] == "random" and row["run"] == "0"]
    for query, row in enumerate(first_run, start=1):  # the returned cell: best metric so far
        incumbent = max(first_run[:query], key=lambda r: float(r["metric"]))
        assert row["best_report"] == incumbent["report"]
    assert len({row["arch"] for row in first_run}) == 60
    assert (out / "anytime.png").stat().st_size > 5000
    assert (out / "summary.md").read_text().strip() in printed


def test_bench_run_help_says_what_reads_the_benchmark(capsys):
    """--benchmark's help said "for table:COLUMN", an estimator bench run does not take."""
    with pytest.raises(SystemExit):
        main(["bench", "run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "metric columns) for --metric and --report, or --objectives" in text
    assert "table:COLUMN" not in text


def test_bench_run_is_reproducible(synthetic_table, tmp_path):
    for name in ("a", "b"):
        _bench(synthetic_table, tmp_path / name, "--strategy", "reinforce", "--budget", "30")
    first, second = ((tmp_path / n / "trajectories.csv").read_text() for n in "ab")
    strip = lambda text: [line.rsplit(",", 1)[0] for line in text.splitlines()]  # noqa: E731
    assert strip(first) == strip(second)


def test_bench_run_area_reports_prescoring_separately(synthetic_table, tmp_path, capsys):
    args = ["--strategy", "area", "--prescore", "params", "--budget", "15", "--repeats", "2"]
    assert _bench(synthetic_table, tmp_path / "area", *args) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| area"))
    assert float(row.strip(" |").split("|")[-1]) > 0  # pre-scoring seconds
    trajectories = list(csv.DictReader((tmp_path / "area" / "trajectories.csv").open()))
    assert len(trajectories) == 2 * 15


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategy", "annealing"], "unknown strategy 'annealing'"),
        (["--metric", "train_acc"], "no column 'train_acc'"),
        (["--report", "flops"], "no column 'flops'"),
        (["--budget", "ten"], "--budget takes whole numbers"),
        (["--budget", "5,5"], "--budget names '5' twice; give each value once"),
        (["--budget", "5,05"], "--budget names 5 twice; give each value once"),
        (["--repeats", "0"], "--repeats must be at least 1"),
        # its list of jobs alone filled the memory before the first run
        (["--repeats", str(4 * 10**9)], "of 4,000,000,000 runs (--repeats 4,000,000,000) at --b"),
        (["--strategy", "area", "--prescore", "train:1"], "needs a training-free estimator"),
        # the benchmark's ground truth, read for free by AREA's pre-ranking
        (["--strategy", "area", "--prescore", "table:valid_acc"], "table:valid_acc reads the"),
        (["--strategy", "area", "--prescore", " table:test_acc"], "pre-rank cells by the answer"),
        (["--objectives", "valid_acc"], "needs at least two objectives"),
        (["--objectives", "valid_acc,-test_acc", "--metric", "valid_acc"], "--metric is for"),
        (["--objectives", "valid_acc,-test_acc", "--report", "test_acc"], "--report is for"),
    ],
)
def test_bench_run_bad_input(synthetic_table, tmp_path, capsys, extra, message):
    assert _bench(synthetic_table, tmp_path / "x", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "x").exists()


def test_bench_run_refuses_an_empty_out(synthetic_table, tmp_path, capsys, monkeypatch):
    """--out "" (an unset shell variable) ran into runs/bench-TIMESTAMP, a folder nobody asked
    for; the other commands refuse it."""
    monkeypatch.chdir(tmp_path)
    assert _bench(synthetic_table, "x", "--budget", "2", "--out", "") == 2
    assert capsys.readouterr().err == "nasbox: error: --out is empty; give a folder path\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("arch", "garbage", "row 6, column 'arch': 'garbage' is not a nb201 cell"),
        ("arch", CELL[:-1], "is not a nb201 cell"),
        ("valid_acc", float("nan"), "has no 'valid_acc' value (1 of 15,625 rows have none)"),
        ("test_acc", float("nan"), "has no 'test_acc' value"),
        ("valid_acc", float("inf"), "has an infinite 'valid_acc' value (1 of 15,625 rows"),
        ("test_acc", float("-inf"), "has an infinite 'test_acc' value"),
    ],
)
def test_bench_run_checks_every_row_before_running(
    synthetic_table, tmp_path, capsys, column, value, message
):
    """A bad row a strategy may draw later is refused before anything is written."""
    frame = pd.read_parquet(synthetic_table)
    frame[column] = frame[column].astype(object)
    frame.loc[5, column] = value
    table = tmp_path / "b.parquet"
    frame.to_parquet(table, index=False)
    assert _bench(table, tmp_path / "x", "--budget", "15", "--repeats", "1") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and str(table) in err
    assert "row 6" in err and not (tmp_path / "x").exists()


def test_bench_run_cell_missing_from_table_and_malformed_file(tmp_path, capsys):
    small = tmp_path / "small.csv"
    small.write_text(f"arch,valid_acc,test_acc\n{CELL},90,93\n")
    assert _bench(small, tmp_path / "x", "--budget", "5") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not in the table" in err
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 garbage")
    assert _bench(broken, tmp_path / "y") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot read benchmark table" in err


# --- converters: fixtures with the published structure of the official files -------------------

ARCHS = [CELL, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]


def _trial(epochs, accuracies, params=1.5, flop=200.0):
    """A ResultsCount state dict: eval_acc1es keyed '<set>@<epoch>'."""
    acc = {
        f"{name}@{epoch}": value for name, value in accuracies.items() for epoch in range(epochs)
    }
    acc.update({f"{name}@{epochs - 1}": value + 1 for name, value in accuracies.items()})
    return {
        "name": "x",
        "net_state_dict": None,
        "params": params,
        "flop": flop,
        "seed": 0,
        "epochs": epochs,
        "eval_names": list(accuracies),
        "eval_acc1es": acc,
        "eval_losses": dict.fromkeys(acc, 0.1),
        "train_acc1es": {},
        "train_losses": {},
    }


def _arch_results(index, epochs, base):
    """An ArchResults state dict with two seeds on cifar10-valid and one on cifar10."""
    all_results = {
        ("cifar10-valid", 777): _trial(epochs, {"x-valid": base, "ori-test": base + 3}),
        ("cifar10-valid", 888): _trial(epochs, {"x-valid": base + 2, "ori-test": base + 3}),
        ("cifar10", 777): _trial(epochs, {"ori-test": base + 5}),
    }
    return {
        "arch_index": index,
        "arch_str": ARCHS[index],
        "all_results": all_results,
        "dataset_seed": {"cifar10-valid": [777, 888], "cifar10": [777]},
        "clear_net_done": True,
    }


def _infos(keys):
    return {
        index: {
            keys[0]: _arch_results(index, 12, 50.0 + index),
            keys[1]: _arch_results(index, 200, 80.0 + index),
        }
        for index in range(len(ARCHS))
    }


def _check_converted(path):
    table = TabularBenchmark.from_file(path)
    assert table.archs == tuple(ARCHS)
    # 200 epochs: mean over seeds of the last epoch (which the fixture sets one higher).
    assert table.lookup(CELL, "valid_acc") == pytest.approx(82.0)
    assert table.lookup(CELL, "test_acc") == pytest.approx(86.0)
    assert table.lookup(ARCHS[1], "valid_acc_12ep") == pytest.approx(53.0)
    assert table.lookup(CELL, "params_m") == 1.5


def test_convert_nas_bench_201_pth(tmp_path, capsys):
    source = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    torch.save(
        {"meta_archs": ARCHS, "arch2infos": _infos(("less", "full")), "evaluated_indexes": {0, 1}},
        source,
    )
    out = tmp_path / "nb201.csv"
    assert main(["bench", "convert", str(source), "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "runs any code" in captured.err and "wrote 2 cells" in captured.out
    _check_converted(out)


def test_convert_nats_bench_file_and_fast_mode_folder(tmp_path):
    data = {"meta_archs": ARCHS, "arch2infos": _infos(("12", "200")), "evaluated_indexes": [0, 1]}
    single = tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2"
    with bz2.open(single, "wb") as handle:
        pickle.dump(data, handle)
    assert (
        main(["bench", "convert", str(single), "--out", str(tmp_path / "a.parquet"), "--quiet"])
        == 0
    )
    _check_converted(tmp_path / "a.parquet")

    folder = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    folder.mkdir()
    with bz2.open(folder / "meta.pickle.pbz2", "wb") as handle:
        pickle.dump({"meta_archs": ARCHS}, handle)
    for index, info in data["arch2infos"].items():
        with bz2.open(folder / f"{index:06d}.pickle.pbz2", "wb") as handle:
            pickle.dump(info, handle)
    assert main(["bench", "convert", str(folder), "--out", str(tmp_path / "b.csv"), "--quiet"]) == 0
    _check_converted(tmp_path / "b.csv")


def test_convert_rejects_malformed_files(tmp_path, capsys):
    not_a_pickle = tmp_path / "x.pickle.pbz2"
    not_a_pickle.write_bytes(b"hello")
    wrong_dict = tmp_path / "y.pth"
    torch.save({"something": 1}, wrong_dict)
    for source, message in [
        (not_a_pickle, "cannot read the benchmark file"),
        (wrong_dict, "not the expected benchmark structure (no 'meta_archs'"),
        (tmp_path / "missing.pth", "file not found"),
    ]:
        assert (
            main(["bench", "convert", str(source), "--out", str(tmp_path / "o.csv"), "--quiet"])
            == 2
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("nasbox: error:") and message in err[-1]


def _bz2_pickle(path, value):
    with bz2.open(path, "wb") as handle:
        pickle.dump(value, handle)


def _damaged_sources(tmp_path):
    """(source, the file the error must name, what it must say) for damaged official files."""
    cases = []
    for name, cell_bytes, message in [
        ("cut", bz2.compress(pickle.dumps({"200": {}}))[:20], "cannot read the benchmark file"),
        ("text", bz2.compress(b"not a pickle"), "cannot read the benchmark file"),
        ("raw", b"not bz2", "cannot read the benchmark file"),
        ("int", bz2.compress(pickle.dumps(5)), "cell 0 is not the expected benchmark structure"),
    ]:
        folder = tmp_path / name
        folder.mkdir()
        _bz2_pickle(folder / "meta.pickle.pbz2", {"meta_archs": ARCHS})
        (folder / "000000.pickle.pbz2").write_bytes(cell_bytes)
        cases.append((folder, folder / "000000.pickle.pbz2", message))
    for name, data, message in [
        ("strkeys", {"meta_archs": ARCHS, "arch2infos": {"x": {}}}, "key 'x' is not a cell index"),
        ("list", [1, 2], "(list, not a dict"),
        ("values", {"meta_archs": ARCHS, "arch2infos": [{}]}, "'arch2infos' is a list"),
        ("meta", {"meta_archs": 5, "arch2infos": {}}, "'meta_archs' is not a list"),
        ("cell", {"meta_archs": ARCHS, "arch2infos": {0: 5}}, "cell 0 is not the expected"),
        ("range", {"meta_archs": ARCHS, "arch2infos": {7: {}}}, "key 7 is not one of 2 cells"),
    ]:
        torch.save(data, tmp_path / f"{name}.pth")
        cases.append((tmp_path / f"{name}.pth", tmp_path / f"{name}.pth", message))
    return cases


def test_convert_damaged_files_are_one_line_naming_the_file(tmp_path, capsys):
    for source, named, message in _damaged_sources(tmp_path):
        out = tmp_path / "o.csv"
        assert main(["bench", "convert", str(source), "--out", str(out), "--quiet"]) == 2, source
        err = capsys.readouterr().err.strip().splitlines()
        assert err[0].startswith("nasbox: warning:") and len(err) == 2, err  # the pickle warning
        assert err[1].startswith(f"nasbox: error: {named}: ") and message in err[1], err
        assert ("download it again" in err[1]) or ("convert takes the official" in err[1])
        assert not out.exists()


@pytest.mark.parametrize(
    ("module", "search", "options"),
    [
        ("compare", "run_on_benchmark", []),
        # Ctrl-C in a run of several objectives lost every finished run
        ("fronts", "run_front_search", ["--objectives", "valid_acc,-test_acc"]),
    ],
)
def test_an_interrupted_bench_run_summarises_and_plots_its_finished_runs(
    module, search, options, synthetic_table, tmp_path, capsys, monkeypatch
):
    import importlib

    searches = importlib.import_module(f"nasbox.benchmarks.{module}")
    run_search, calls = getattr(searches, search), []

    def ctrl_c_in_the_third_run(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return run_search(*args, **kwargs)

    monkeypatch.setattr(searches, search, ctrl_c_in_the_third_run)
    out = tmp_path / "run"
    assert _bench(synthetic_table, out, "--budget", "20", "--repeats", "5", *options) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("interrupted after 2 of 5 runs") and "--overwrite" in err[-1]
    assert len(list(csv.DictReader((out / "trajectories.csv").open()))) == 2 * 20
    assert "| random | 20 | 2 |" in (out / "summary.md").read_text()
    assert (out / "anytime.png").stat().st_size > 5000
    assert json.loads((out / "summary.json").read_text())["finished_runs"] == 2
