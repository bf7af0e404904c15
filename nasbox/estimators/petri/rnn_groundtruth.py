"""Ground truth for recurrent cells: a short, fixed language-model training per cell.

Protocol (`RNNProtocol`, seeded; `nasbox petri groundtruth --space rnn`):
- data: a character corpus (`text:FILE`, by default tiny-shakespeare), split 90/5/5 by position;
- network: embedding, one cell of `hidden` units, decoder tied to the embedding
  (`RNNLanguageModel`, no dropout), initialised from `seed`, the same for every cell;
- training: `train_language_model` for `steps` chunks of `batch_size` streams x `bptt` steps from
  the start of the training split, Adam `learning_rate` with a cosine schedule, clip 0.25;
- value: the perplexity on the first `valid_tokens` characters of the validation split
  (`valid_ppl`; lower is better), on one thread: the geometric mean of the perplexities of
  `initialisations` (2) such trainings, from seeds `seed`, `seed + 1`, ...

About 28 s per initialisation on one thread. One initialisation ranks cells only roughly (seeds
agree at Spearman 0.600 to 0.827 on the table's first 60 cells); the geometric mean of two ranks
them at 0.809 to 0.872 against that of two others (README, "Recurrent cells").

The table has columns `arch,valid_ppl,seconds`. It is appended to as cells finish, so an
interrupted run loses nothing and a rerun with the same file trains only the missing cells. The
protocol and the corpus's content it was made with are recorded beside it, in `TABLE.json`
(`table_settings`); a rerun under other settings is refused, as its rows would not compare with
the table's. Which cells are sampled (`--seed`, `--count`) is not recorded: any cell's row compares.
Searches maximise, so they are told minus the perplexity (as `measurements/petri_rnn.py` does).
"""

import contextlib
import csv
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from nasbox.checks import check_count, check_seed
from nasbox.cpu import single_thread
from nasbox.data.text import TextData, load_text
from nasbox.errors import NasboxError, note
from nasbox.spaces.rnn import RNNCell, RNNSpace

COLUMNS = ("arch", "valid_ppl", "seconds")
# The cell's ten hidden x 2 hidden matrices hold 20 hidden^2 weights: at 2048 units, with their
# gradients and Adam's two moments, 1.3 GB; 3.2 GB at peak in training on the protocol's chunks
# (DARTS' cells have 850 units, the protocol's 64).
MAX_HIDDEN = 2048
# Each cell trains for about a minute on one core (README: 200 cells, 1.5 h on 2 cores), so this
# many is some 70 core-days; a count of 1e8 sampled cells for tens of minutes (and gigabytes of
# strings) before the first one trained, and one beyond the space's cells never stopped.
MAX_GROUNDTRUTH_CELLS = 100_000
DEFAULT_CORPUS = "../shared/data/tinyshakespeare.txt"
# The settings a table's rows share (`table_settings`), with the option that sets each.
SETTING_OPTIONS = {
    "hidden": "--hidden",
    "steps": "--steps",
    "batch_size": "--batch-size",
    "bptt": "--bptt",
    "learning_rate": "learning rate",
    "valid_tokens": "--valid-tokens",
    "seed": "--train-seed",
    "initialisations": "--repeats",
    "corpus_sha256": "--corpus",
}


@dataclass(frozen=True)
class RNNProtocol:
    """The fixed training of one ground-truth cell (see the module docstring)."""

    hidden: int = 64
    steps: int = 800
    batch_size: int = 128
    bptt: int = 20
    learning_rate: float = 0.01
    valid_tokens: int = 20000
    seed: int = 0
    initialisations: int = 2

    def check(self) -> None:
        for name in ("steps", "batch_size", "bptt"):
            check_count(getattr(self, name), "--" + name.replace("_", "-"))
        check_count(
            self.hidden,
            "--hidden",
            maximum=MAX_HIDDEN,
            why="larger cells exhaust memory (the protocol has 64)",
        )
        # A perplexity needs one input character and the one that follows it.
        check_count(self.valid_tokens, "--valid-tokens", minimum=2)
        check_count(self.initialisations, "--repeats")
        check_seed(self.seed, "--train-seed")
        check_seed(self.last_seed(), "--train-seed + --repeats - 1")

    def last_seed(self) -> int:
        """The seed of the last initialisation: numpy and torch take at most `MAX_SEED`."""
        return self.seed + self.initialisations - 1

    def single(self, index: int) -> "RNNProtocol":
        """The one-initialisation training behind the `index`-th of this protocol's."""
        return replace(self, seed=self.seed + index, initialisations=1)

    def key(self) -> str:
        """A string naming the protocol, for caches of trainings. One initialisation is left
        out of it, so that caches written before the field existed still match."""
        fields = asdict(self)
        if self.initialisations == 1:
            del fields["initialisations"]
        return ",".join(f"{name}={value}" for name, value in fields.items())


def train_cell(cell: RNNCell, data: TextData, protocol: RNNProtocol) -> float:
    """The validation perplexity of `cell` after the protocol's training (inf if it diverged);
    over several initialisations, the geometric mean (their logs ranked cells more steadily)."""
    singles = [protocol.single(index) for index in range(protocol.initialisations)]
    return geometric_mean([_train_once(cell, data, single) for single in singles])


def geometric_mean(perplexities: list[float]) -> float:
    """exp of the mean log perplexity; inf if any training diverged."""
    return math.exp(sum(map(math.log, perplexities)) / len(perplexities))


def _train_once(cell: RNNCell, data: TextData, protocol: RNNProtocol) -> float:
    from nasbox.train.language import LanguageConfig, train_language_model
    from nasbox.train.trainer import NonFiniteLoss

    torch.manual_seed(protocol.seed)
    network = RNNSpace(len(cell.nodes)).build(
        cell, num_classes=data.num_classes, hidden=protocol.hidden
    )
    config = LanguageConfig(
        epochs=1,
        batch_size=protocol.batch_size,
        bptt=protocol.bptt,
        steps=protocol.steps,
        learning_rate=protocol.learning_rate,
        seed=protocol.seed,
    )
    valid = replace(data, valid=data.valid[: protocol.valid_tokens])
    try:
        history = train_language_model(network, valid, config, progress=False, test=False)
    except NonFiniteLoss:
        return math.inf
    return float(history[-1]["valid_ppl"])


@dataclass(frozen=True)
class CellTraining:
    """The protocol's training of cell strings, as a recipe that worker processes build
    (`ProcessExecutor`): the corpus is read once per process."""

    corpus: str
    protocol: RNNProtocol

    def build(self) -> Callable[[str], float]:
        return partial(_train_text, data=load_text(self.corpus), protocol=self.protocol)


def _train_text(text: str, data: TextData, protocol: RNNProtocol) -> float:
    return train_cell(RNNSpace().parse(text), data, protocol)


def train_cells(
    cells: Iterable[str], corpus: str | Path, protocol: RNNProtocol, workers: int = 1
) -> Iterator[tuple[str, float, float]]:
    """(cell, valid_ppl, seconds) for each cell string as it finishes, in `workers` one-thread
    processes (in this process with one worker). Closing the iterator (an interrupt) stops the
    workers; they also exit if this process dies."""
    # here: nasbox.runs imports the estimators, and so this module
    from nasbox.runs import InlineExecutor, ProcessExecutor, evaluations_as_finished

    training = CellTraining(str(corpus), protocol)
    with single_thread():
        executor = (
            InlineExecutor(training.build())
            if workers == 1
            else ProcessExecutor(training, workers, threads=1)
        )
        with executor:
            for evaluation in evaluations_as_finished(executor, list(cells)):
                if evaluation.failed:
                    raise NasboxError(
                        f"training cell {evaluation.arch} failed ({evaluation.error}); the cells "
                        "finished before it are kept"
                    )
                yield evaluation.arch, evaluation.value, evaluation.seconds


def check_cell_count(count: int, nodes: int = 8) -> int:
    """`--count` must be drawable (distinct cells) and trainable in a lifetime (at most
    `MAX_GROUNDTRUTH_CELLS`): a larger one sampled for hours, or forever, before any training."""
    distinct = math.prod(RNNSpace(nodes).decision_sizes())
    why = (
        f"the rnn space of {nodes} nodes has only {distinct:,} distinct cells"
        if distinct < MAX_GROUNDTRUTH_CELLS
        else "each cell trains for about a minute on one core, so that many already take "
        "some 70 core-days (a rerun with another --seed adds other cells to the table)"
    )
    return check_count(count, "--count", maximum=min(distinct, MAX_GROUNDTRUTH_CELLS), why=why)


def sample_cells(count: int, seed: int, nodes: int = 8) -> list[str]:
    """`count` distinct random cells of the rnn space, seeded (see `check_cell_count`)."""
    check_cell_count(count, nodes)
    space, rng, cells = RNNSpace(nodes), np.random.default_rng(seed), {}
    while len(cells) < count:
        cell = space.format(space.sample(rng))
        cells[cell] = None
    return list(cells)


def read_table(path: Path) -> dict[str, float]:
    """The cells already in a ground-truth table and their perplexities; a row that cannot be
    read is an error naming its line (the table is continued, so a guess would spread)."""
    if not path.is_file():
        return {}
    try:
        lines = path.read_bytes().splitlines()
    except OSError as err:
        raise NasboxError(f"{path}: cannot read it ({err.strerror})") from None
    texts = []
    for number, line in enumerate(lines, start=1):
        try:
            texts.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise NasboxError(
                f"{path}, line {number}: not UTF-8 text; correct or delete the line"
            ) from None
    reader = csv.reader(texts)
    header = next(reader, [])
    if texts and not set(COLUMNS) <= set(header):
        raise NasboxError(f"{path}: not an rnn ground-truth table (columns {', '.join(COLUMNS)})")
    table = {}
    for row in reader:
        if not row:
            continue
        fields = dict(zip(header, row, strict=False))
        arch, value = fields.get("arch", ""), fields.get("valid_ppl", "")
        try:
            table[arch] = float(value)
        except ValueError:
            wrong = f"valid_ppl {value!r} is not a number" if value else "no valid_ppl value"
            raise NasboxError(
                f"{path}, line {reader.line_num}: {wrong}; correct or delete the line"
            ) from None
    return table


def _last_line_unterminated(path: Path) -> bool:
    """Whether the file's last line lacks its line end, as after an edit that dropped it."""
    with path.open("rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) not in b"\r\n"


def settings_file(table: Path) -> Path:
    """Where a table's settings are recorded: TABLE.json beside it."""
    return table.with_name(table.name + ".json")


def table_settings(corpus: str | Path, protocol: RNNProtocol) -> dict:
    """What rows must share to compare: the protocol and the corpus's content (by its SHA-256;
    the path is kept for messages only, so a moved corpus still matches)."""
    digest = hashlib.sha256(Path(corpus).read_bytes()).hexdigest()
    return {**asdict(protocol), "corpus": str(corpus), "corpus_sha256": digest}


def _shown(settings: dict, name: str) -> str:
    """A setting as its option gives it: `--hidden 64`, `--corpus FILE`."""
    value = settings.get("corpus" if name == "corpus_sha256" else name)
    return f"{SETTING_OPTIONS[name]} {value}"


def check_table_settings(table: Path, settings: dict) -> None:
    """Refuse to add rows made under other settings than those recorded for `table`'s rows.

    A table from before settings were recorded is taken to have this run's, with a note."""
    path = settings_file(table)
    if not path.exists():
        note(
            f"{table} has no record of its settings; taking this run's "
            f"(recorded in {path} from now on)"
        )
        return
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    if not isinstance(recorded, dict):
        raise NasboxError(
            f"{path}: not a readable record of {table.name}'s settings; pass --overwrite to start "
            "the table again, or give another --out"
        )
    differing = [name for name in SETTING_OPTIONS if recorded.get(name) != settings[name]]
    if differing:
        made = ", ".join(_shown(recorded, name) for name in differing)
        asked = ", ".join(_shown(settings, name) for name in differing)
        raise NasboxError(
            f"{table} was made with {made}, this run asks for {asked}: its rows would not "
            "compare; rerun with the table's settings to continue it, pass --overwrite to "
            "replace it, or give another --out"
        )


def rnn_groundtruth(
    out: str | Path,
    cells: list[str],
    corpus: str | Path = DEFAULT_CORPUS,
    protocol: RNNProtocol = RNNProtocol(),
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Train the `cells` not yet in `out` and append `arch,valid_ppl,seconds` rows as they end
    (with `overwrite`, `out` is started again); `out`'s settings are recorded beside it."""
    protocol.check()
    check_count(workers, "--workers")
    load_text(corpus).check_batch(protocol.batch_size, protocol.bptt)
    out = Path(out)
    settings = table_settings(corpus, protocol)
    with _only_writer(out):
        _continue_table(out, cells, corpus, protocol, settings, workers, progress, overwrite)
    return out


@contextlib.contextmanager
def _only_writer(table: Path) -> Iterator[None]:
    """Hold `table` for this process: two runs on one table trained the same missing cells,
    hours of work done twice, and wrote each row twice, which `petri fit` refuses. An OS file
    lock beside it (`.TABLE.lock`), so a process killed with SIGKILL releases it."""
    from nasbox.runs.folder import held_lock  # here: nasbox.runs imports the strategies

    try:
        table.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise NasboxError(f"{table}: cannot lock it ({err.strerror})") from None
    lock = held_lock(
        table.with_name(f".{table.name}.lock"),
        busy=f"{table} is being written by another nasbox process; wait for it to finish (a "
        "rerun then trains only the cells still missing) or give another --out",
        locked=str(table),
    )
    try:
        yield
    finally:
        lock.release()


def _continue_table(
    out: Path,
    cells: list[str],
    corpus: str | Path,
    protocol: RNNProtocol,
    settings: dict,
    workers: int,
    progress: bool,
    overwrite: bool,
) -> None:
    """Append the rows of the `cells` not yet in `out` (all of them, and a new header, with
    `overwrite`), under `out`'s lock."""
    from nasbox.runs import write_json  # here, as in `train_cells`

    done = {} if overwrite else read_table(out)
    if done:
        check_table_settings(out, settings)
    todo = [cell for cell in cells if cell not in done]
    write_json(settings_file(out), settings)
    # an empty file is a run killed before its header was written: start it afresh
    fresh = overwrite or not out.is_file() or out.stat().st_size == 0
    unterminated = not fresh and _last_line_unterminated(out)
    with out.open("w" if overwrite else "a", newline="") as handle:
        writer = csv.writer(handle)
        if fresh:
            writer.writerow(COLUMNS)
            handle.flush()
        elif unterminated:
            handle.write("\r\n")  # else the first new row would continue the table's last one
        bar = tqdm(total=len(todo), desc="rnn cells", unit="cell", disable=not progress)
        for cell, value, seconds in train_cells(todo, corpus, protocol, workers):
            writer.writerow([cell, repr(value), f"{seconds:.1f}"])
            handle.flush()
            bar.update()
        bar.close()
