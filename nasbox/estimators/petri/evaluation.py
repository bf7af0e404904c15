"""Label files, which motifs to fit on, encoding-based baselines and rank correlations."""

import csv
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from nasbox.checks import delimiter_hint
from nasbox.errors import NasboxError, counted, note
from nasbox.estimators.petri.motifs import MotifSpace

# Columns read as lower-is-better (perplexity, loss, bits per character) unless told otherwise.
MINIMIZED_SUFFIXES = ("_ppl", "_loss", "_bpc")
# Each motif space's ground-truth column: accuracies for slope and nb201, perplexity for rnn.
DEFAULT_COLUMNS = {"rnn": "valid_ppl"}

# The slope dish is fitted on slopes from the middle of the range, as in the paper (0.37..1.53).
SLOPE_FIT_RANGE = (0.36, 1.54)


@dataclass
class Labels:
    """Motifs with their ground-truth value (higher is better: minimised columns are negated)."""

    motifs: list[Hashable]
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.motifs)

    def subset(self, index: Sequence[int]) -> "Labels":
        return Labels([self.motifs[i] for i in index], self.values[np.asarray(index, dtype=int)])


def default_column(space: str) -> str:
    """The ground-truth column a motif space's label files hold by default."""
    return DEFAULT_COLUMNS.get(space, "valid_acc")


def is_minimized(column: str, minimize: bool = False) -> bool:
    """Whether lower values of `column` are better: told so, or a perplexity / loss / bpc."""
    return minimize or column.endswith(MINIMIZED_SUFFIXES)


def load_labels(
    path: str | Path, space: MotifSpace, column: str = "valid_acc", minimize: bool = False
) -> Labels:
    """A CSV with an `arch` column (the motif's string form) and a value column.

    Values of a minimised column (`is_minimized`) are negated, so higher is better in `Labels`.
    """
    path = Path(path)
    if not path.is_file():
        missing = "is a folder, not a label file" if path.is_dir() else "label file not found"
        raise NasboxError(f"{path}: {missing} (a CSV with columns arch,{column})")
    overlong = _first_overlong_row(path)
    if overlong is not None:
        line, fields, header = overlong
        raise NasboxError(
            f"{path}, line {line}: {fields} fields but the header names {len(header)}; remove the "
            f"extra fields or name their columns in the header{delimiter_hint(header)}"
        )
    import pandas as pd  # here, not at the top: it adds 0.4 s to every command

    try:
        table = pd.read_csv(path, dtype={"arch": str}, skip_blank_lines=False, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise NasboxError(f"{path}: not a readable CSV ({type(err).__name__})") from None
    except OSError as err:
        raise NasboxError(f"{path}: cannot read it ({err.strerror})") from None
    missing = {"arch", column} - set(table.columns)
    if missing:
        raise NasboxError(
            f"{path}: missing column(s) {', '.join(sorted(missing))}; "
            f"found {', '.join(map(str, table.columns))}{delimiter_hint(list(table.columns))}"
        )
    # blank lines were kept as empty rows so that row i is line i + 2 of the file (header: 1)
    written = table.notna().any(axis=1).to_numpy()
    table = table[written]
    if table.empty:
        raise NasboxError(f"{path}: no labelled motifs in the file")
    lines = (np.flatnonzero(written) + 2).tolist()
    values = pd.to_numeric(table[column], errors="coerce")
    for name, absent in (("arch", table["arch"].isna()), (f"numeric {column}", values.isna())):
        if absent.any():
            line = lines[int(absent.to_numpy().argmax())]
            raise NasboxError(f"{path}, line {line}: no {name} value")
    motifs = space.parse_many(table["arch"].tolist(), source=str(path), line_numbers=lines)
    first_lines: dict[Hashable, int] = {}
    for line, motif in zip(lines, motifs, strict=True):
        first = first_lines.setdefault(motif, line)
        if first != line:
            shown = space.format(motif)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise NasboxError(
                f"{path}: arch {shown!r} is listed twice (lines {first} and {line}); "
                "give each arch once"
            )
    values = values.to_numpy(dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        # `petri groundtruth` writes inf for a diverged training: no value to regress on.
        note(
            f"{path}: left out {int((~finite).sum())} motif(s) whose {column} is "
            f"not finite (e.g. diverged trainings); {int(finite.sum())} remain"
        )
        motifs = [motif for motif, keep in zip(motifs, finite, strict=True) if keep]
        values = values[finite]
    if len(values) < 2 or values.min() == values.max():
        raise NasboxError(
            f"{path}: {len(values)} finite {column} value(s), all equal; ranking motifs needs "
            "labels that differ"
        )
    sign = -1.0 if is_minimized(column, minimize) else 1.0
    return Labels(motifs, sign * values)


def _first_overlong_row(path: Path) -> tuple[int, int, list[str]] | None:
    """(line, fields, header) of the first row with more fields than the header, or None.

    pandas reads such rows with their first field(s) as an index, silently shifting every value
    one column. A semicolon export with decimal commas (`arch;valid_acc`, `0.5;93,5`) is such a
    file. A file the csv module cannot read is left to pandas to report.
    """
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            for row in reader:
                if len(row) > len(header):
                    return reader.line_num, len(row), header
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    return None


def choose_labelled(
    space: MotifSpace, labels: Labels, k: int, seed: int
) -> tuple[list[int], list[int]]:
    """Indices of the K motifs to fit on and of the remaining ones.

    Slopes: K random slopes from the middle of the range (`SLOPE_FIT_RANGE`); other spaces: K
    random motifs. Seeded.
    """
    if k < 2:
        raise NasboxError(f"--k must be at least 2 labelled motifs, got {k}")
    rng = np.random.default_rng(seed)
    if space.name == "slope":
        low, high = SLOPE_FIT_RANGE
        candidates = [i for i, m in enumerate(labels.motifs) if low <= m <= high]
    else:
        candidates = list(range(len(labels)))
    if k > len(candidates):
        where = (
            f" (the labelled slopes in {low:g} .. {high:g}, the range the dish is fitted on)"
            if space.name == "slope"
            else ""
        )
        raise NasboxError(
            f"--k {k} is more than the {len(candidates)} motifs available to fit on{where}; "
            "give a smaller --k or label more motifs"
        )
    chosen = sorted(rng.choice(candidates, size=k, replace=False).tolist())
    chosen_set = set(chosen)
    return chosen, [i for i in range(len(labels)) if i not in chosen_set]


def all_same(values: Sequence[float]) -> bool:
    """Whether 2 or more values are all equal: no ranking, so no rank correlation."""
    values = np.asarray(values, dtype=float)
    return len(values) >= 2 and bool(np.all(values == values[0]))


def rank_correlations(predicted: Sequence[float], truth: Sequence[float]) -> dict[str, float]:
    """Spearman's and Kendall's; nan (undefined) for fewer than 2 motifs or either side all the
    same, where scipy printed a raw ConstantInputWarning (callers say why: see `all_same`)."""
    predicted, truth = np.asarray(predicted, dtype=float), np.asarray(truth, dtype=float)
    if len(truth) < 2 or all_same(predicted) or all_same(truth):
        return {"spearman": float("nan"), "kendall": float("nan")}
    return {
        "spearman": float(stats.spearmanr(predicted, truth).statistic),
        "kendall": float(stats.kendalltau(predicted, truth).statistic),
    }


def encoding_baselines(seed: int) -> dict:
    """Predictors that read the motif encoding alone (fitted on the same labelled motifs)."""
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "mlp": make_pipeline(
            StandardScaler(),
            MLPRegressor(hidden_layer_sizes=(64, 64), max_iter=2000, random_state=seed),
        ),
        "gbt": GradientBoostingRegressor(n_estimators=100, max_depth=2, random_state=seed),
    }


def baseline_predictions(
    space: MotifSpace, train: Labels, test_motifs: Sequence[Hashable], seed: int
) -> dict[str, np.ndarray]:
    """Each encoding baseline's predictions for `test_motifs` (targets z-scored for the MLP)."""
    x_train, x_test = space.encode(train.motifs), space.encode(test_motifs)
    y = (train.values - train.values.mean()) / (train.values.std() + 1e-12)
    return {
        name: model.fit(x_train, y).predict(x_test)
        for name, model in encoding_baselines(seed).items()
    }


def held_out_motifs(
    labels: Labels, labelled: Sequence[Hashable], held_out: int | None, seed: int
) -> Labels:
    """The labelled file's motifs the dish was not fitted on (a seeded sample of `held_out`)."""
    fitted = set(labelled)
    rest = [i for i, motif in enumerate(labels.motifs) if motif not in fitted]
    if len(rest) < 2:
        raise NasboxError(
            f"the label file holds {len(rest)} motif(s) the dish was not fitted on; a rank "
            "correlation needs 2 or more: label more motifs, or fit with a smaller --k"
        )
    if held_out is not None and held_out < len(rest):
        rest = sorted(np.random.default_rng(seed).choice(rest, size=held_out, replace=False))
    return labels.subset(rest)


def motif_groups(space: MotifSpace, train: Labels, test: Labels) -> dict[str, np.ndarray]:
    """Masks of `test` ranked apart: `all`; for slopes also `interpolation` (inside the range
    of the fitted slopes) and `extrapolation` (outside it)."""
    groups = {"all": np.ones(len(test), dtype=bool)}
    if space.name == "slope":
        low, high = min(train.motifs), max(train.motifs)
        inside = np.array([low <= m <= high for m in test.motifs], dtype=bool)
        groups.update(interpolation=inside, extrapolation=~inside)
    return groups


def unranked_groups(groups: dict[str, np.ndarray], test: Labels) -> dict[str, str]:
    """Why the ground truth ranks no motifs of a group (fewer than 2, or all with one value),
    by group: every predictor's correlations there are nan."""
    why = {}
    for group, mask in groups.items():
        count = int(mask.sum())
        if count < 2:
            why[group] = counted(count, "held-out motif")
        elif all_same(test.values[mask]):
            why[group] = f"{count} held-out motifs, all with the same value"
    return why


def compare_predictors(
    space: MotifSpace,
    train: Labels,
    test: Labels,
    predictions: dict[str, np.ndarray],
    seed: int,
) -> dict[str, dict[str, dict[str, float]]]:
    """Rank correlations on `test` of the given predictions and of the encoding baselines.

    Groups: `motif_groups`. Each group's `all_same` says whether the method gave its
    motifs one and the same score (its correlations are then nan).
    """
    predictions = {**predictions, **baseline_predictions(space, train, test.motifs, seed)}
    groups = motif_groups(space, train, test)
    return {
        method: {
            group: {
                **rank_correlations(values[mask], test.values[mask]),
                "all_same": all_same(values[mask]),
            }
            for group, mask in groups.items()
        }
        for method, values in predictions.items()
    }
