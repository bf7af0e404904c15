import re
import time

import pandas as pd
import pytest

from nasbox.benchmarks import TabularBenchmark, write_table
from nasbox.benchmarks.compare import ScoreCache
from nasbox.cli import main
from nasbox.errors import NasboxError
from nasbox.estimators import EstimatorContext, get_estimator
from nasbox.spaces import get_space
from tests.conftest import shared_file

GOOD = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
EMPTY = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ABSENT = "|avg_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.fixture
def small_table(tmp_path):
    path = tmp_path / "bench.csv"
    pd.DataFrame(
        {"arch": [GOOD, EMPTY], "valid_acc": [91.0, 10.0], "test_acc": [94.0, 10.0]}
    ).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_round_trips_through_csv_and_parquet(tmp_path, suffix):
    frame = pd.DataFrame({"arch": [GOOD, EMPTY], "valid_acc": [91.0, 10.0]})
    bench = TabularBenchmark.from_file(write_table(frame, tmp_path / f"t{suffix}"))
    assert bench.archs == (GOOD, EMPTY) and bench.columns == ("valid_acc",)
    assert bench.lookup(GOOD, "valid_acc") == 91.0
    assert bench.best("valid_acc") == (GOOD, 91.0)


def test_table_estimator_looks_cells_up_and_rejects_absent_ones(small_table):
    space = get_space("nb201")
    context = EstimatorContext(space, benchmark=TabularBenchmark.from_file(small_table))
    estimator = get_estimator("table:test_acc", context)
    assert estimator(space.parse(GOOD)) == 94.0
    with pytest.raises(NasboxError, match="is not in the table"):
        estimator(space.parse(ABSENT))
    with pytest.raises(NasboxError, match="no column 'train_acc'; choose one of: valid_acc"):
        get_estimator("table:train_acc", context)
    with pytest.raises(NasboxError, match="needs a column"):
        get_estimator("table", context)
    with pytest.raises(NasboxError, match="pass --benchmark"):
        get_estimator("table:test_acc", EstimatorContext(space))


def test_a_lookup_of_a_parsed_cell_asks_for_its_string(small_table):
    # The cell, in the table as a string, was reported "not in the table".
    bench, cell = TabularBenchmark.from_file(small_table), get_space("nb201").parse(GOOD)
    with pytest.raises(NasboxError, match=r"takes a cell string, got NB201Cell: pass space.format"):
        bench.lookup(cell, "valid_acc")
    assert bench.lookup(get_space("nb201").format(cell), "valid_acc") == 91.0


@pytest.mark.parametrize("value", ["inf", "-inf"])
def test_table_estimator_refuses_an_infinite_value_before_any_lookup(tmp_path, value):
    path = tmp_path / "bench.csv"
    path.write_text(f"arch,valid_acc\n{GOOD},91\n{EMPTY},{value}\n")
    context = EstimatorContext(get_space("nb201"), benchmark=TabularBenchmark.from_file(path))
    message = (
        f"row 2 ({EMPTY}) has an infinite 'valid_acc' value (1 of 2 rows have one); "
        "table:valid_acc may look up any cell, so make them finite or choose another column"
    )
    with pytest.raises(NasboxError, match=re.escape(message)):
        get_estimator("table:valid_acc", context)


def test_table_estimator_refuses_a_missing_value_before_any_lookup(tmp_path, capsys):
    """`score` printed the cells before the one without a value, then stopped (a search stopped
    at whichever trial drew it)."""
    table = tmp_path / "bench.csv"
    table.write_text(f"arch,valid_acc,test_acc\n{GOOD},91,94\n{EMPTY},,10\n")
    archs = tmp_path / "archs.txt"
    archs.write_text(f"{GOOD}\n{EMPTY}\n")
    score = ["score", "--space", "nb201", "--benchmark", str(table), "--archs", str(archs)]
    assert main([*score, "--estimator", "table:valid_acc"]) == 2
    out, err = capsys.readouterr()
    message = (
        f"{table}: row 2 ({EMPTY}) has no 'valid_acc' value (1 of 2 rows have none); "
        "table:valid_acc may look up any cell, so fill them in or choose another column\n"
    )
    assert out == "" and err == f"nasbox: error: {message}"
    assert main([*score, "--estimator", "table:test_acc"]) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("cell,valid_acc\nx,1\n", "no 'arch' column"),
        (f"arch\n{GOOD}\n", "only an 'arch' column; a benchmark table needs numeric metric"),
        (f"arch,valid_acc\n{GOOD},1\n{GOOD},2\n", "appears more than once"),
        # empty cells read as NaN: 'architecture nan appears more than once'
        ("arch,valid_acc\nx,1\n,2\n ,3\n", "row 2 has an empty 'arch' \\(2 rows have none\\)"),
        ("arch,valid_acc\nx,1\n,2\n", "row 2 has an empty 'arch'; give each row its cell"),
        (f"arch,valid_acc\n{GOOD},high\n", "column 'valid_acc' is not numeric"),
    ],
)
def test_malformed_tables_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(NasboxError, match=message):
        TabularBenchmark.from_file(path)


@pytest.mark.parametrize(("delimiter", "name"), [(";", "semicolons"), ("\t", "tabs")])
def test_a_table_with_another_delimiter_is_named_as_such(tmp_path, capsys, delimiter, name):
    """A spreadsheet's semicolon export said only "no 'arch' column (found: index;arch;...)"."""
    table = tmp_path / "t.csv"
    table.write_text(
        delimiter.join(["index", "arch", "valid_acc"]) + f"\n0{delimiter}{GOOD}{delimiter}91\n"
    )
    archs = tmp_path / "archs.txt"
    archs.write_text(GOOD + "\n")
    score = ["score", "--estimator", "table:valid_acc", "--benchmark", str(table)]
    assert main([*score, "--archs", str(archs)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no 'arch' column" in err
    hint = (
        f"the file seems to separate its fields with {name}, and nasbox reads comma-separated CSV"
    )
    assert hint in err
    labels = tmp_path / "labels.csv"
    labels.write_text(f"arch{delimiter}valid_acc\n0.5{delimiter}90\n0.7{delimiter}80\n")
    fit = ["petri", "fit", "--labels", str(labels), "--out", str(tmp_path / "d.pt"), "--quiet"]
    assert main(fit) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing column(s) arch, valid_acc" in err and hint in err
    with pytest.raises(NasboxError, match=f"without column.*separate its fields with {name}"):
        ScoreCache.from_csv(labels, get_space("nb201"), "valid_acc")


def test_a_semicolon_table_with_decimal_commas_is_named_as_such(tmp_path, capsys):
    """A European spreadsheet's export (`0.5;93,5`) reads as rows longer than the header: the
    label files said "2 fields but the header names 1" without the delimiter hint."""
    labels = tmp_path / "labels.csv"
    labels.write_text("arch;valid_acc\n0.5;93,5\n0.7;80,25\n")
    fit = ["petri", "fit", "--labels", str(labels), "--out", str(tmp_path / "d.pt"), "--quiet"]
    assert main(fit) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 2: 2 fields but the header names 1" in err
    assert "the file seems to separate its fields with semicolons" in err
    table = tmp_path / "t.csv"
    table.write_text(f"arch;valid_acc\n{GOOD};93,5\n")
    with pytest.raises(NasboxError, match="separate its fields with semicolons"):
        TabularBenchmark.from_file(table)


def test_a_comma_table_without_arch_gets_no_delimiter_hint(tmp_path):
    (tmp_path / "t.csv").write_text("cell;x,valid_acc\nx,1\n")
    with pytest.raises(NasboxError) as error:
        TabularBenchmark.from_file(tmp_path / "t.csv")
    assert "no 'arch' column" in str(error.value) and "delimiter" not in str(error.value)
    assert "separate its fields" not in str(error.value)


def test_unreadable_files_are_clear_errors(tmp_path):
    corrupt = tmp_path / "bad.parquet"
    corrupt.write_bytes(b"not parquet at all")
    with pytest.raises(NasboxError, match="cannot read benchmark table"):
        TabularBenchmark.from_file(corrupt)
    text = tmp_path / "x.txt"
    text.write_text("arch\n")
    with pytest.raises(NasboxError, match="unknown table format '.txt'"):
        TabularBenchmark.from_file(text)
    with pytest.raises(NasboxError, match="file not found"):
        TabularBenchmark.from_file(tmp_path / "missing.csv")


@pytest.mark.parametrize("path", [None, 3, b"t.csv"])
def test_a_path_that_is_not_a_path_is_one_line(path):
    with pytest.raises(NasboxError, match=r"from_file needs path to be a path \(a str or Path\)"):
        TabularBenchmark.from_file(path)


def test_search_with_a_table_estimator(small_table, tmp_path, capsys):
    args = ["search", "--estimator", "table:valid_acc", "--benchmark", str(small_table)]
    assert main([*args, "--samples", "3", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "need a table of every one" in err
    assert not (tmp_path / "r").exists()  # refused before the run folder is made


@pytest.mark.integration
def test_full_nb201_table_loads_fast():
    path = shared_file("nb201-cifar10.csv")
    start = time.perf_counter()
    bench = TabularBenchmark.from_file(path)
    assert time.perf_counter() - start < 5  # the target (< 1 s) is measured in measurements/
    assert len(bench) == 15625
    assert bench.best("test_acc")[1] == pytest.approx(94.3733)
    space = get_space("nb201")
    assert all(space.format(space.parse(arch)) == arch for arch in bench.archs[:200])


def test_score_cache_computes_once_and_charges_every_use(tmp_path):
    space = get_space("nb201")
    calls = []
    cache = ScoreCache(lambda arch: calls.append(arch) or 1.5)
    cell = space.parse(GOOD)
    assert cache(cell) == cache(cell) == 1.5
    assert calls == [cell] and cache.charged == pytest.approx(2 * cache.seconds[cell])
    path = tmp_path / "scores.csv"
    path.write_text(f"arch,naswot,seconds\n{GOOD},12.5,0.3\n{GOOD},99,9\n{EMPTY},-inf,0.2\n")
    loaded = ScoreCache.from_csv(path, space, "naswot")
    assert loaded(cell) == 12.5 and loaded.charged == pytest.approx(0.3)
    with pytest.raises(NasboxError, match="no cached score"):
        loaded(space.parse(ABSENT))
    with pytest.raises(NasboxError, match="without column"):
        ScoreCache.from_csv(path, space, "jacov")
