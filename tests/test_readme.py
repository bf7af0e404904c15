"""Every `nasbox` command in README.md runs as written and prints what the README says (issue 11).

The README's ```bash blocks are parsed; every `nasbox ...` command in them must have an entry in
`COMMANDS` below, classed quick (run here, as written, and its output checked against the
README's words) or slow (with the reason it is not run here). A new README command fails
`test_every_readme_command_is_classified` until it is classified.

Quick commands run in-process, in one scratch folder `work/` beside a link `shared` to the real
`../shared`, so the README's `../shared/data/...` paths resolve as on a development machine.
A command that reads what an earlier README command writes (a run folder, a dish) first runs a
cheap form of that command (fewer samples or steps, same output path); files a user brings
(`cells.txt`) or that only a slow command makes (the slope ground truth) are written as stand-ins.

The ```python blocks likewise: each has an entry in `PYTHON_BLOCKS`, quick (run as written in the
same scratch folder, every `expression  # value` line's value checked against its comment) or slow.
"""

import ast
import csv
import io
import re
import shlex
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from nasbox.cli import build_parser, main
from tests.conftest import SHARED

README = Path(__file__).resolve().parents[1] / "README.md"

# One NAS-Bench-201 cell without skip_connect (so its parameter count is the benchmark's
# exactly), between a comment and a blank line that `--archs` skips.
CELL = "|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|avg_pool_3x3~2|"
CELLS_TXT = f"# cells to score\n{CELL}\n\n"
# The slope ground truth has the format of `nasbox petri groundtruth` (100 slopes in
# [0.01, 2.01]); the real one takes 1-2 minutes, so a smooth stand-in with a peak near c = 0.8.
SLOPES = np.linspace(0.01, 2.01, 100).tolist()
SLOPE_LABELS = "arch,valid_acc\n" + "".join(
    f"{c},{97.4 - 3 * (c - 0.8) ** 2 - 40 * np.exp(-30 * c):.4f}\n" for c in SLOPES
)
STAND_INS = {"cells.txt": CELLS_TXT, "measurements/results/slope_groundtruth.csv": SLOPE_LABELS}

# Cheap forms of README commands whose output a quick command reads (same output paths).
TINY_SEARCH = (
    "nasbox search --space nb201 --strategy random --estimator naswot --samples 3 "
    "--data npz:../shared/data/cifar10-subset.npz --seed 0 --out runs/naswot-cifar --quiet"
)
TINY_SHARED_DB_SEARCH = (
    "nasbox search --samples 2 --data npz:../shared/data/cifar10-subset.npz --seed 0 "
    "--storage all.db --out shared-runs/naswot-cifar --quiet"
)
TINY_NB201_DISH = (
    "nasbox petri fit --space nb201 --labels ../shared/data/nb201-cifar10.csv --k 5 --seed 0 "
    "--outer-steps 1 --inner-steps 1 --out dishes/nb201-k50.pt --quiet"
)
TINY_DIGITS_RUN = (
    "nasbox train --data digits --cells 1 --filters 8 --epochs 1 --out runs/digits --quiet"
)
TINY_SLOPE_DISH = (
    "nasbox petri fit --space slope --labels measurements/results/slope_groundtruth.csv --k 18 "
    "--seed 0 --outer-steps 1 --inner-steps 5 --restarts 1 --out dishes/slope.pt --quiet"
)


def readme_commands(text: str) -> list[str]:
    """The `nasbox` command lines of the ```bash blocks, continuations joined, comments cut."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        for line in re.sub(r"[ \t]*\\\n\s*", " ", block).splitlines():
            line = re.sub(r"(^|\s)#.*", "", line).strip()
            if line.startswith("nasbox "):
                commands.append(line)
    return commands


# --- what the README says each quick command prints -------------------------------------------


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def check_list(out: str, work: Path) -> None:
    # "Lists the search spaces (with their size), estimators, strategies and data sources, each
    # with the syntax you type ... and what it costs (e.g. ...)"
    for heading in ("spaces", "estimators", "strategies", "data"):
        assert re.search(rf"^{heading} \(", out, flags=re.MULTILINE), heading
    assert "15,625" in out
    for syntax in ("table:COLUMN", "petri:FILE", "train:EPOCHS", "npz:FILE"):
        assert re.search(rf"^  {re.escape(syntax)} ", out, flags=re.MULTILINE), syntax
    for cost in (
        "instant: a lookup in --benchmark",
        "one forward pass of a minibatch per arch",
        "trains the network for EPOCHS epochs per arch (minutes)",
    ):
        assert cost in out


def check_describe(out: str, work: Path) -> None:
    # "prints, among other lines, `parameters  5.288 M (5,288,133) without an auxiliary head`
    # and `mult-adds   557.7 M (557,703,328)`"
    lines = out.splitlines()
    assert "parameters  5.288 M (5,288,133) without an auxiliary head" in lines
    assert "mult-adds   557.7 M (557,703,328)" in lines


def check_describe_rnn(out: str, work: Path) -> None:
    # "the third command prints `parameters  22.960 M (22,960,000)`, DARTS' published 23M"
    assert "parameters  22.960 M (22,960,000)" in out.splitlines()


def check_export_checkpoint(out: str, work: Path) -> None:
    # "prints, among other lines, `input       N x 1 x H x W ...; 10 classes`, `normalise   ...`,
    # `wrote       digits.onnx (ONNX opset 17, ...)` and `check       onnx.checker passed; ...`"
    lines = out.splitlines()
    assert (
        "input       N x 1 x H x W (any N, H, W), normalised like the training data; 10 classes"
        in lines
    )
    normalise = "(pixels / 255 - mean) / std per channel; mean (0.305435), std (0.375342)"
    assert f"normalise   {normalise}" in lines
    assert re.search(r"^wrote       digits\.onnx \(ONNX opset 17, [\d.]+ [kM]B\)$", out, re.M)
    check = re.search(r"^check       onnx\.checker passed; .* max difference (\S+)$", out, re.M)
    assert float(check.group(1)) <= 1e-4
    assert (work / "digits.onnx").is_file()


def check_export_fresh(out: str, work: Path) -> None:
    # "writes a freshly initialised NASNet-A 2@96 (`--seed`) as TorchScript"
    assert "weights     freshly initialised (seed 0)" in out.splitlines()
    assert re.search(r"^wrote       nasnet-a\.pt \(TorchScript, ", out, re.M)
    assert (work / "nasnet-a.pt").is_file()


def check_score(out: str, work: Path) -> None:
    # "The CSV has the columns `arch`, one per estimator (named as given) and `seconds`";
    # blank lines and `#` comments are skipped; `params` in millions.
    rows = _csv((work / "scores.csv").read_text())
    assert list(rows[0]) == ["arch", "naswot", "jacov", "params", "flops", "seconds"]
    assert [row["arch"] for row in rows] == [CELL]
    benchmark = _csv((SHARED / "nb201-cifar10.csv").read_text())
    params_m = next(float(row["params_m"]) for row in benchmark if row["arch"] == CELL)
    assert float(rows[0]["params"]) == pytest.approx(params_m, abs=5e-7)


def check_petri_score(out: str, work: Path) -> None:
    # "Without `--out` the CSV goes to standard output"; columns named as given.
    rows = _csv(out)
    assert list(rows[0]) == ["arch", "petri:dishes/nb201-k50.pt", "seconds"]
    assert [row["arch"] for row in rows] == [CELL]


def check_runs_list(out: str, work: Path) -> None:
    # "every run under a folder"
    header, *rows = out.splitlines()
    assert header.split()[:2] == ["run", "status"]
    assert [row.split()[0] for row in rows] == ["naswot-cifar"]


def check_runs_show(out: str, work: Path) -> None:
    # "settings, trial counts, failures by error, the best"
    assert "estimator     naswot" in out
    assert "trials        3 complete, 0 failed\n" in out
    assert re.search(r"^best arch     \|\S+\|$", out, flags=re.MULTILINE)


def check_runs_export(out: str, work: Path) -> None:
    import pandas as pd

    trials = pd.read_parquet(work / "trials.parquet")
    assert len(trials) == 3
    assert {"number", "arch", "state", "value", "seconds", "worker", "error"} <= set(trials)


def check_resumed_search(out: str, work: Path) -> None:
    # "prints the best one (in the benchmark's cell-string format) with its score on the last
    # line"; the run folder holds the files of the table.
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(
        r"best naswot -?\d+\.\d+: (\|[a-z_0-9]+~\d)+\|(\+(\|[a-z_0-9]+~\d)+\|)+", last
    )
    for name in ("nasbox.db", "trials.csv", "summary.json", "trials.png"):
        assert (work / "runs/naswot-cifar" / name).is_file(), name
    header = (work / "runs/naswot-cifar/trials.csv").read_text().splitlines()[0]
    assert header == "number,arch,state,value,seconds,worker,error"


def check_resumed_shared_db(out: str, work: Path) -> None:
    assert out.strip().splitlines()[-1].startswith("best naswot ")


def check_slope_evaluate(out: str, work: Path) -> None:
    # "prints Spearman rho and Kendall tau ... next to an MLP regressor and gradient-boosted
    # trees ... Slopes are also split into interpolation ... and extrapolation"
    rows = {tuple(line.split()[:2]) for line in out.splitlines()}
    for predictor in ("petri", "mlp", "gbt"):
        for motifs in ("all", "interpolation", "extrapolation"):
            assert (predictor, motifs) in rows
    assert "spearman" in out and "kendall" in out


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quick:
    check: Callable[[str, Path], None]
    before: tuple[str, ...] = ()  # cheap forms of earlier README commands it reads the output of
    files: tuple[str, ...] = ()  # stand-ins from STAND_INS


@dataclass(frozen=True)
class Slow:
    reason: str
    template: bool = False  # holds placeholders (`HEAD`, `...`), so not even parsed


@dataclass
class Workspace:
    work: Path
    done: set[str] = field(default_factory=set)


# Every `nasbox` command of the README, by a prefix that matches exactly one of them.
COMMANDS: dict[str, Quick | Slow] = {
    "nasbox search --space nb201 --strategy random --estimator naswot --samples 100": Slow(
        "100 NASWOT cells on CIFAR (its output is checked on a 3-cell run by the resume entry)"
    ),
    "nasbox search --resume runs/naswot-cifar": Quick(check_resumed_search, (TINY_SEARCH,)),
    "nasbox search --resume naswot-cifar --storage all.db": Quick(
        check_resumed_shared_db, (TINY_SHARED_DB_SEARCH,)
    ),
    "nasbox search --space nb201 --strategy nsga2 --objectives naswot,-params": Slow(
        "100 NASWOT cells on CIFAR (tests/test_multi_objective.py runs 6 on tiny data)"
    ),
    "nasbox search --estimator train:2 --workers 2": Slow("trains 20 networks in 2 processes"),
    "nasbox search --executor ray --samples 200": Slow("starts Ray and scores 200 cells"),
    "nasbox search --executor ray --ray-address HEAD:6379": Slow(
        "a template: needs a Ray cluster's head address and the elided options", template=True
    ),
    "nasbox runs list runs/": Quick(check_runs_list, (TINY_SEARCH,)),
    "nasbox runs show runs/naswot-cifar": Quick(check_runs_show, (TINY_SEARCH,)),
    "nasbox runs export runs/naswot-cifar --out trials.parquet": Quick(
        check_runs_export, (TINY_SEARCH,)
    ),
    "nasbox score --space nb201 --estimator naswot,jacov,params,flops": Quick(
        check_score, files=("cells.txt",)
    ),
    "nasbox bench run": Slow("4 strategies x 50 runs of 500 queries, AREA pre-scores 1,000 cells"),
    "nasbox bench convert NAS-Bench-201-v1_1-096897.pth": Slow(
        "needs the official NAS-Bench-201 .pth (not in ../shared)"
    ),
    "nasbox bench convert NATS-tss-v1_0-3ffb9-simple/": Slow(
        "needs the official NATS-Bench topology folder (not in ../shared)"
    ),
    "nasbox search --space nasnet --strategy ppo": Slow("300 NASNet children: minutes"),
    "nasbox search --data folder:photos": Slow(
        "needs the user's image folder (tests/test_image_folder.py searches a generated one)"
    ),
    "nasbox train --data digits": Slow("trains for 10 epochs: 20 to 80 s"),
    "nasbox train --space nasnet": Slow("trains NASNet-A 2@96 on CIFAR for minutes"),
    "nasbox train --space nb201": Slow("trains nb201 5@64 on CIFAR for minutes"),
    "nasbox train --space rnn --data text:../shared/data/tinyshakespeare.txt": Slow(
        "trains a language model for about 25 s (tests/test_text.py trains on a tiny corpus)"
    ),
    "nasbox train --space rnn --arch": Slow("needs the user's corpus.txt"),
    "nasbox search --space rnn --data text:../shared/data/tinyshakespeare.txt": Slow(
        "trains 100 language models for about 30 s each (tests/test_lm_estimator.py searches a "
        "tiny corpus)"
    ),
    "nasbox describe --space rnn": Quick(check_describe_rnn),
    "nasbox describe --space nasnet --arch nasnet-a --cells 4 --filters 1056": Quick(
        check_describe
    ),
    "nasbox export --checkpoint runs/digits --out digits.onnx": Quick(
        check_export_checkpoint, (TINY_DIGITS_RUN,)
    ),
    "nasbox export --space nasnet --arch nasnet-a --cells 2 --filters 96": Quick(
        check_export_fresh
    ),
    "nasbox petri groundtruth --out": Slow("trains 100 MLPs x 10 repeats: 1-2 minutes"),
    "nasbox petri groundtruth --space rnn": Slow(
        "trains 200 language models: about 50 minutes (tests/test_petri.py runs it on a tiny "
        "corpus)"
    ),
    "nasbox petri fit --space slope": Slow("fits 4 restarts: about 2 minutes"),
    "nasbox petri evaluate dishes/slope.pt": Quick(
        check_slope_evaluate, (TINY_SLOPE_DISH,), ("measurements/results/slope_groundtruth.csv",)
    ),
    "nasbox petri fit --space nb201": Slow("fits on 50 cells: about 1 minute"),
    "nasbox petri evaluate dishes/nb201-k50.pt": Slow("predicts 1,000 held-out cells: ~1 minute"),
    "nasbox petri fit --space rnn": Slow("needs the 200-cell rnn ground truth (50 minutes)"),
    "nasbox petri evaluate dishes/rnn-k50.pt": Slow("needs the rnn ground truth and its dish"),
    "nasbox score --space nb201 --estimator petri:dishes/nb201-k50.pt": Quick(
        check_petri_score, (TINY_NB201_DISH,), ("cells.txt",)
    ),
    "nasbox list": Quick(check_list),
}


def entries_of(command: str) -> list[str]:
    return [key for key in COMMANDS if command == key or command.startswith(key + " ")]


COMMAND_LINES = readme_commands(README.read_text())


def test_the_readme_has_commands():
    assert len(COMMAND_LINES) >= 20
    assert "nasbox list" in COMMAND_LINES


def test_every_readme_command_is_classified():
    keys = []
    for command in COMMAND_LINES:
        matches = entries_of(command)
        assert len(matches) == 1, f"README command {command!r} matches {matches or 'no'} entries"
        keys += matches
    stale = set(COMMANDS) - set(keys)
    assert not stale, f"COMMANDS entries that match no README command: {sorted(stale)}"


@pytest.mark.parametrize("command", COMMAND_LINES, ids=lambda c: " ".join(c.split()[1:4]))
def test_every_readme_command_parses(command):
    """Slow commands too: their options exist and their values have the right types."""
    entries = entries_of(command)
    if len(entries) == 1 and getattr(COMMANDS[entries[0]], "template", False):
        pytest.skip("a template with placeholders")
    build_parser().parse_args(shlex.split(command)[1:])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    root = tmp_path_factory.mktemp("readme")
    (root / "shared").symlink_to(SHARED.parent, target_is_directory=True)
    (root / "work").mkdir()
    return Workspace(root / "work")


QUICK = [
    pytest.param(command, COMMANDS[keys[0]], id=keys[0].removeprefix("nasbox "))
    for command in COMMAND_LINES
    if len(keys := entries_of(command)) == 1 and isinstance(COMMANDS[keys[0]], Quick)
]


@pytest.mark.parametrize(("command", "quick"), QUICK)
def test_quick_readme_command_runs_as_written(command, quick, workspace, monkeypatch, capsys):
    if any("../shared" in line for line in (command, *quick.before)) and not SHARED.is_dir():
        pytest.skip(f"reference data {SHARED} is absent (../shared is not beside the checkout)")
    monkeypatch.chdir(workspace.work)
    for name in quick.files:
        path = workspace.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(STAND_INS[name])
    for line in quick.before:
        if line not in workspace.done:
            assert main(shlex.split(line)[1:]) == 0, line
            workspace.done.add(line)
    capsys.readouterr()
    code = main(shlex.split(command)[1:])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    quick.check(captured.out, workspace.work)


# --- the ```python blocks ---------------------------------------------------------------------


@dataclass(frozen=True)
class QuickBlock:
    """Run as written; the value of each `expression  # comment` line must read as its comment
    (the value's repr, `...` standing for elided text)."""


# Every ```python block of the README, by a text that is in exactly one of them.
PYTHON_BLOCKS: dict[str, QuickBlock | Slow] = {
    'TabularBenchmark.from_file("../shared/data/nb201-cifar10.csv")': QuickBlock(),
    'get_strategy("petri-evolution", space, seed=0)': Slow(
        "30 queries, each after the first 10 refitting the dish and evolving on it: 3-4 "
        "minutes (tests/test_petri.py runs petri-evolution with a tiny dish)"
    ),
    'get_estimator("naswot", EstimatorContext(space, load_data("digits"), seed=0))': QuickBlock(),
}


def readme_python_blocks(text: str) -> list[tuple[int, str]]:
    """The ```python blocks, each with the README line number of its first line."""
    return [
        (text.count("\n", 0, match.start(1)) + 1, match.group(1))
        for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    ]


def block_entries(block: str) -> list[str]:
    return [key for key in PYTHON_BLOCKS if key in block]


def run_block(block: str, line: int) -> list[tuple[int, str, object, str]]:
    """Runs a block statement by statement (tracebacks name README lines); returns each
    commented expression statement's README line, text, value and comment."""
    comments = {
        token.start[0]: token.string.removeprefix("#").strip()
        for token in tokenize.generate_tokens(io.StringIO(block).readline)
        if token.type == tokenize.COMMENT
    }
    namespace: dict[str, object] = {}
    stated = []
    for statement in ast.parse(block).body:
        source = ast.get_source_segment(block, statement)
        comment = comments.get(statement.end_lineno)
        ast.increment_lineno(statement, line - 1)
        if isinstance(statement, ast.Expr):
            expression = ast.Expression(statement.value)
            value = eval(compile(expression, str(README), "eval"), namespace)
            if comment is not None:
                stated.append((statement.end_lineno, source, value, comment))
        else:
            exec(compile(ast.Module([statement], []), str(README), "exec"), namespace)
    return stated


PYTHON_BLOCK_LINES = readme_python_blocks(README.read_text())


def block_param(line: int, block: str):
    return pytest.param(line, block, id=f"README.md:{line}")


def test_the_readme_has_python_blocks():
    assert len(PYTHON_BLOCK_LINES) >= 3


def test_every_readme_python_block_is_classified():
    keys = []
    for line, block in PYTHON_BLOCK_LINES:
        matches = block_entries(block)
        assert len(matches) == 1, f"README.md:{line} python block matches {matches or 'no'} entries"
        keys += matches
    stale = set(PYTHON_BLOCKS) - set(keys)
    assert not stale, f"PYTHON_BLOCKS entries that match no README block: {sorted(stale)}"


@pytest.mark.parametrize(
    ("line", "block"), [block_param(line, block) for line, block in PYTHON_BLOCK_LINES]
)
def test_every_readme_python_block_compiles_and_imports(line, block):
    """Slow blocks too: their syntax is valid and the names they import exist."""
    tree = ast.increment_lineno(ast.parse(block), line - 1)
    imports = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    exec(compile(ast.Module(imports, []), str(README), "exec"), {})


QUICK_BLOCKS = [
    block_param(line, block)
    for line, block in PYTHON_BLOCK_LINES
    if len(keys := block_entries(block)) == 1 and isinstance(PYTHON_BLOCKS[keys[0]], QuickBlock)
]


@pytest.mark.parametrize(("line", "block"), QUICK_BLOCKS)
def test_quick_readme_python_block_runs_as_written(line, block, workspace, monkeypatch):
    if "../shared" in block and not SHARED.is_dir():
        pytest.skip(f"reference data {SHARED} is absent (../shared is not beside the checkout)")
    monkeypatch.chdir(workspace.work)
    for stated_line, expression, value, comment in run_block(block, line):
        pattern = ".*".join(map(re.escape, comment.split("...")))
        assert re.fullmatch(pattern, repr(value), flags=re.DOTALL), (
            f"README.md:{stated_line}: {expression} is {value!r}, the README says {comment}"
        )
