import argparse
import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from nasbox.cli import build_parser, main
from nasbox.spaces import get_space
from nasbox.startup import wants_worker_processes

CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
]


def test_search_prints_best_last_and_saves_everything(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--samples", "6", "--seed", "3", "--out", str(out), "--quiet"]) == 0
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads((out / "summary.json").read_text())
    assert last_line.endswith(summary["best_arch"]) and "naswot" in last_line
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 6 and {"arch", "value", "seconds"} <= rows[0].keys()
    assert max(float(r["value"]) for r in rows) == summary["best_value"]
    assert (out / "trials.png").stat().st_size > 1000


def test_a_search_of_one_architecture_says_so_in_the_singular(tmp_path, capsys):
    """It said "evaluated 1 architectures"."""
    assert main(["search", "--samples", "1", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert "evaluated 1 architecture in " in capsys.readouterr().out


def test_the_command_line_starts_without_the_heavy_optional_libraries():
    """pandas, scipy and matplotlib add about a second to the start of every command; only the
    commands that read tables, fit predictors or plot import them."""
    heavy = ("pandas", "scipy", "matplotlib")
    code = f"import sys, nasbox.cli; print([m for m in {heavy!r} if m in sys.modules])"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_plots_leave_the_users_matplotlib_backend_alone(tmp_path):
    """A search called from a notebook draws its trials plot without switching the notebook's
    backend or creating pyplot figures there."""
    out = tmp_path / "run"
    code = (
        "import sys, matplotlib; matplotlib.use('svg'); from nasbox.cli import main; "
        f"assert main(['search', '--samples', '3', '--out', {str(out)!r}, '--quiet']) == 0; "
        "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split()[-2:] == ["svg", "False"]
    assert (out / "trials.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["search", "--workers", "2"], True),
        (["score", "--archs", "a.txt", "--workers=4"], True),
        (["search", "--workers", "1"], False),
        (["search"], False),
        (["search", "--workers", "2", "--executor", "ray"], False),
        (["train", "--workers", "2"], False),
        (["search", "--workers"], False),
        (["search", "--workers", "two"], False),
    ],
)
def test_the_worker_server_starts_early_only_for_local_worker_processes(argv, expected):
    assert wants_worker_processes(argv) is expected


def test_search_is_reproducible(tmp_path):
    for name in ("a", "b"):
        main(["search", "--samples", "4", "--seed", "5", "--out", str(tmp_path / name), "--quiet"])
    values = [
        [r["value"] for r in csv.DictReader((tmp_path / n / "trials.csv").open())] for n in "ab"
    ]
    assert values[0] == values[1]


def test_score_writes_one_column_per_estimator(tmp_path, tiny_npz, capsys):
    archs = tmp_path / "cells.txt"
    archs.write_text("\n".join(CELLS) + "\n")
    out = tmp_path / "not" / "yet" / "scores.csv"  # missing folders are created
    args = ["score", "--estimator", "naswot,params,flops", "--data", f"npz:{tiny_npz}"]
    assert main([*args, "--archs", str(archs), "--out", str(out), "--quiet"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["arch", "naswot", "params", "flops", "seconds"]
    assert [r["arch"] for r in rows] == CELLS
    assert float(rows[0]["params"]) > float(rows[1]["params"])
    # --batch-size 128 is cut to the 40 images once, by the CLI, not again by EstimatorContext
    assert capsys.readouterr().err.count("is more than the 40 training images") == 1


def test_costs_are_measured_on_the_data_whatever_estimators_run_beside_them(tmp_path, capsys):
    """params and flops alone built the network for 3x32x32 images, though --data is digits
    (1x8x8): the same cell's flops were 121.8 scored alone or searched with random, 7.6 beside
    naswot or searched with area (which loads the data to pre-score)."""
    archs = tmp_path / "cells.txt"
    archs.write_text(CELLS[0] + "\n")
    columns = {}
    for estimators in ("params,flops", "params,flops,naswot"):
        assert main(["score", "--estimator", estimators, "--archs", str(archs), "--quiet"]) == 0
        (row,) = csv.DictReader(capsys.readouterr().out.splitlines())
        columns[estimators] = (row["params"], row["flops"])
    assert columns["params,flops"] == columns["params,flops,naswot"]


def test_list_states_each_space_size_once(capsys):
    """nb101 and nb201 read "... 3 ops (423,624) [423,624 architectures]": the size was in the
    description too."""
    assert main(["list"]) == 0
    spaces = capsys.readouterr().out.split("\n\n")[0].splitlines()[1:]
    for line in spaces:
        size = line[line.rindex("[") + 1 :].split()[0]
        assert line.count(size) == 1, line


def test_list_describes_each_controller_on_its_own_line(capsys):
    """lstm-reinforce read "The same controller trained with REINFORCE", listed above ppo, the
    controller it meant; neither line said the controller is an LSTM."""
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in ("ppo", "lstm-reinforce"):
        (line,) = [line for line in lines if line.startswith(f"  {name} ")]
        assert "LSTM controller" in line and "The same" not in line, line


def test_list_gives_the_image_size_flops_are_counted_at(tmp_path, capsys):
    """`nasbox list` said flops counted 32x32 images without data, but every command loads
    --data, digits by default, and counts its 1x8x8 images."""
    from nasbox.estimators.cost import count_multiply_adds
    from nasbox.spaces import get_space

    assert main(["list"]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "  flops " in line]
    assert "(digits: 1x8x8)" in line and "32x32" not in line
    archs = tmp_path / "cells.txt"
    archs.write_text(CELLS[0] + "\n")
    assert main(["score", "--estimator", "flops", "--archs", str(archs), "--quiet"]) == 0
    (row,) = csv.DictReader(capsys.readouterr().out.splitlines())
    space = get_space("nb201")
    network = space.build(space.parse(CELLS[0]), num_classes=10, in_channels=1)
    assert float(row["flops"]) == count_multiply_adds(network, (1, 8, 8)) / 1e6


@pytest.mark.parametrize("interrupt_at", [1, 2])
def test_score_interrupted_keeps_what_it_scored_and_never_empties_an_earlier_out(
    tmp_path, monkeypatch, capsys, interrupt_at
):
    """Ctrl-C keeps the rows scored so far; before the first, an earlier --out stays whole
    (--overwrite replaced it with a header alone)."""
    import nasbox.cli.score as score_command

    archs, out = tmp_path / "cells.txt", tmp_path / "scores.csv"
    archs.write_text("\n".join(CELLS) + "\n")
    out.write_text("earlier scores\n")
    score, calls = score_command.score_together, []

    def interrupt(estimators, arch):
        calls.append(arch)
        if len(calls) == interrupt_at:
            raise KeyboardInterrupt
        return score(estimators, arch)

    monkeypatch.setattr(score_command, "score_together", interrupt)
    args = ["score", "--estimator", "params", "--archs", str(archs), "--quiet"]
    assert main([*args, "--out", str(out), "--overwrite"]) == 130
    err = capsys.readouterr().err
    if interrupt_at == 1:
        assert out.read_text() == "earlier scores\n" and f"{out} is as it was" in err
    else:
        assert [row["arch"] for row in csv.DictReader(out.open())] == CELLS[:1]
        assert "interrupted; 1 architecture scored so far" in err


def test_score_with_worker_processes_keeps_the_file_order_and_the_values(tmp_path, tiny_npz):
    archs = tmp_path / "cells.txt"
    cells = [
        *CELLS,
        "|skip_connect~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|none~0|none~1|nor_conv_3x3~2|",
    ]
    archs.write_text("\n".join(cells) + "\n")
    args = ["score", "--estimator", "naswot,params", "--data", f"npz:{tiny_npz}", "--quiet"]
    rows = {}
    for workers in ("1", "2"):
        out = tmp_path / f"scores-{workers}.csv"
        assert main([*args, "--archs", str(archs), "--out", str(out), "--workers", workers]) == 0
        rows[workers] = list(csv.DictReader(out.open()))
    assert [r["arch"] for r in rows["2"]] == cells
    for one, two in zip(rows["1"], rows["2"], strict=True):
        assert float(two["params"]) == float(one["params"])
        # one thread per worker instead of two rounds bf16 convolutions a little differently
        assert float(two["naswot"]) == pytest.approx(float(one["naswot"]), rel=1e-3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "--strategy", "annealing"], "unknown strategy 'annealing'"),
        (["search", "--data", "npz:/nonexistent/x.npz"], "/nonexistent/x.npz: file not found"),
        (["search", "--space", "resnet"], "unknown search space 'resnet'"),
        (["search", "--samples", "0"], "--samples must be at least 1"),
        (["score", "--archs", "cells.txt", "--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys):
    assert main([*args, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_score_names_the_bad_line(tmp_path, capsys):
    archs = tmp_path / "cells.txt"
    archs.write_text(CELLS[0] + "\n|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|\n")
    assert main(["score", "--estimator", "params", "--archs", str(archs), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "line 2" in err and "bogus" in err and len(err.splitlines()) == 1


def test_score_names_every_bad_line_at_once(tmp_path, capsys):
    """Only the first bad line was named: fixing a file of thousands took one run per line."""
    archs = tmp_path / "cells.txt"
    archs.write_text("\n".join([CELLS[0], "bogus", CELLS[1], *["oops"] * 12]) + "\n")
    assert main(["score", "--estimator", "params", "--archs", str(archs), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "line 2: malformed nb201 cell 'bogus'" in err and len(err.splitlines()) == 1
    assert err.endswith("(13 bad lines in all; the others: 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, ...)")


def test_score_says_which_space_reads_another_spaces_architectures(tmp_path, capsys):
    """A file of DARTS genotypes given to --space nb201 was refused by line number only, not
    with the --space that reads it; an ENAS-like genotype parses in several cell spaces."""
    enas = get_space("enas")
    archs = tmp_path / "genotypes.txt"
    archs.write_text(enas.format(enas.sample(np.random.default_rng(0))) + "\n")
    assert main(["score", "--estimator", "params", "--archs", str(archs), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "line 1: malformed nb201 cell" in err and len(err.splitlines()) == 1
    assert err.endswith("; it reads as --space amoeba, enas or pnas")
    assert main(["score", "--estimator", "params", "--arch", "nasnet-a", "--quiet"]) == 2
    assert capsys.readouterr().err.strip().endswith("; it reads as --space nasnet")
    assert main(["describe", "--space", "darts", "--arch", CELLS[0]]) == 2
    assert capsys.readouterr().err.strip().endswith("; it reads as --space nb201")


def test_a_benchmark_no_estimator_reads_is_noted(tmp_path, capsys):
    """--benchmark without a table:COLUMN estimator was loaded and silently unused."""
    table = tmp_path / "table.csv"
    table.write_text(f"arch,valid_acc\n{CELLS[0]},90\n")
    args = ["--benchmark", str(table), "--quiet"]
    assert main(["score", "--arch", CELLS[0], "--estimator", "params", *args]) == 0
    assert capsys.readouterr().err == (
        f"nasbox: note: --benchmark {table} is not read: only table:COLUMN in --estimator "
        "looks it up\n"
    )
    assert main(["score", "--arch", CELLS[0], "--estimator", "params,table:valid_acc", *args]) == 0
    assert capsys.readouterr().err == ""
    out = ["--out", str(tmp_path / "run"), "--samples", "2"]
    assert main(["search", "--estimator", "params", *out, *args]) == 0
    assert "is not read: only table:COLUMN in --estimator, --objectives or --constraint" in (
        capsys.readouterr().err
    )


def test_score_takes_one_architecture_with_arch(tmp_path, capsys):
    """`--arch CELL`, as train, describe and export take it, was read as an abbreviation of
    --archs: "CELL: file not found"; beside --archs FILE, the later of the two was used."""
    args = ["score", "--estimator", "params", "--quiet"]
    assert main([*args, "--arch", CELLS[0]]) == 0
    (row,) = csv.DictReader(capsys.readouterr().out.splitlines())
    assert row["arch"] == CELLS[0] and float(row["params"]) > 1
    archs = tmp_path / "cells.txt"
    archs.write_text(CELLS[1] + "\n")
    with pytest.raises(SystemExit) as stop:  # argparse ends usage errors so
        main([*args, "--archs", str(archs), "--arch", CELLS[0]])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "not allowed with argument" in err and len(err.splitlines()) == 1


def test_ctrl_c_while_the_command_starts_is_one_line():
    """Ctrl-C in the second or two the command spends importing torch ended in a 30-line
    traceback from inside torch's imports."""
    code = (
        "import os, signal, sys; from nasbox.startup import run\n"
        # as a terminal has it: a shell's background job (nohup, `&`) starts with SIGINT ignored
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "class CtrlC:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'nasbox.cli': os.kill(os.getpid(), signal.SIGINT)\n"
        "sys.meta_path.insert(0, CtrlC()); sys.argv = ['nasbox', 'list']; sys.exit(run())"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (run.returncode, run.stderr) == (130, "nasbox: interrupted\n")


def test_sigterm_stops_a_search_and_keeps_its_trials(tmp_path):
    import subprocess
    import sys
    import time

    trials = tmp_path / "run" / "trials.csv"
    command = [sys.executable, "-m", "nasbox.cli", "search", "--samples", "10000", "--quiet"]
    process = subprocess.Popen(
        [*command, "--out", str(tmp_path / "run")], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        trials.exists() and trials.read_text().count("\n") >= 3
    ):
        time.sleep(0.1)
    process.terminate()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("interrupted; what finished (") and "--resume" in last_line
    assert len(list(csv.DictReader(trials.open()))) >= 2
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and (tmp_path / "run" / "trials.png").is_file()


def _parsers(parser):
    """`parser` and every subcommand's parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def test_help_states_each_default_once():
    """--help appends "(default: X)" to options with a default; one written into the text too
    showed twice (score --workers; petri groundtruth --space: "(default slope) (default: slope)")."""
    for parser in _parsers(build_parser()):
        for action in parser._actions:
            if action.help and action.default not in (None, False):
                assert "(default" not in action.help, (parser.prog, action.option_strings)


def test_help_shows_no_empty_default():
    """runs list, show and export said "(default: None)" under --storage and --out, and
    "(default: False)" under --overwrite."""
    for parser in _parsers(build_parser()):
        text = parser.format_help()
        assert "(default: None)" not in text and "(default: False)" not in text, parser.prog
