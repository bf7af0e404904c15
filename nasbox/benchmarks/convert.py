"""Convert the official NAS-Bench-201 and NATS-Bench (topology) files to nasbox's table format.

Supported inputs, following their published structure (the `nas_201_api` / `nats_bench` packages):

- NAS-Bench-201 v1.0 / v1.1 (`NAS-Bench-201-v1_*.pth`): a `torch.save`d dict with `meta_archs`
  (cell strings by index) and `arch2infos[index] = {"less": ..., "full": ...}` (12 and 200 epochs);
- NATS-Bench topology, one file (`NATS-tss-v1_0-3ffb9.pickle.pbz2`, a bz2-compressed pickle of the
  same dict with `arch2infos[index] = {"12": ..., "200": ...}`) or the fast-mode folder
  (`NATS-tss-v1_0-3ffb9-simple/`: `meta.pickle.pbz2` plus one `NNNNNN.pickle.pbz2` per cell).

Each `...` is an `ArchResults` state dict: `dataset_seed[dataset] = [seeds]` and
`all_results[(dataset, seed)]`, a `ResultsCount` state dict with `params`, `flop`, `epochs` and
`eval_acc1es["<set>@<epoch>"]`. Accuracies are averaged over seeds at the last epoch, as the
official APIs do with `is_random=False`.

SECURITY: all of these files are Python pickles. Loading one runs any code it contains, so only
convert files you trust; nasbox loads them only in `nasbox bench convert`, never implicitly.
"""

import bz2
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from nasbox.benchmarks.table import check_table_path, write_table
from nasbox.errors import NasboxError, error_reason

if TYPE_CHECKING:  # pandas is imported where used: at the top it adds 0.4 s to every command
    import pandas as pd

PICKLE_WARNING = (
    "{path} is a Python pickle: loading it runs any code it contains; convert only files you trust"
)
# Where each table column comes from: (training setting, evaluation set) per target dataset.
SOURCES = {
    "cifar10": {"valid_acc": ("cifar10-valid", "x-valid"), "test_acc": ("cifar10", "ori-test")},
    "cifar100": {"valid_acc": ("cifar100", "x-valid"), "test_acc": ("cifar100", "x-test")},
    "ImageNet16-120": {
        "valid_acc": ("ImageNet16-120", "x-valid"),
        "test_acc": ("ImageNet16-120", "x-test"),
    },
}
# The columns of a converted table, in this order (the 12-epoch ones where the file has them).
COLUMNS = (
    "index",
    "arch",
    "params_m",
    "flops_m",
    "valid_acc",
    "test_acc",
    "valid_acc_12ep",
    "test_acc_12ep",
)
# NAS-Bench-201 names its two training schedules "less" (12 epochs) and "full" (200 epochs).
SCHEDULES = {"less": "12", "full": "200"}


# What a reader failure tells the user to do: these files are large downloads, often cut short.
FIX = "convert takes the official NAS-Bench-201 .pth or NATS-Bench topology files, unmodified"


def _load(path: Path):
    """Unpickle one official file (bz2 pickle or torch.save); any failure names the file."""
    try:
        if path.suffix == ".pbz2":
            with bz2.open(path, "rb") as handle:
                return pickle.load(handle)  # noqa: S301 - documented: only on explicit conversion
        import torch

        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise NasboxError(f"{path}: file not found ({FIX})") from None
    except Exception as err:  # a damaged bz2 stream or pickle raises almost any type
        reason = error_reason(err)
        raise NasboxError(
            f"{path}: cannot read the benchmark file ({reason}): expected a complete pickle; "
            "download it again if it is damaged"
        ) from None


def _not_benchmark(path: Path, found: str) -> NasboxError:
    return NasboxError(
        f"{path}: not the expected benchmark structure ({found}; expected a dict with "
        f"'meta_archs', a list of cell strings, and 'arch2infos'); {FIX}"
    )


def _archs(path: Path, data) -> list[str]:
    """`meta_archs` of a loaded file, checked, since every row's cell string comes from it."""
    if not isinstance(data, dict) or "meta_archs" not in data:
        found = (
            "no 'meta_archs'" if isinstance(data, dict) else f"{type(data).__name__}, not a dict"
        )
        raise _not_benchmark(path, found)
    archs = data["meta_archs"]
    if not isinstance(archs, list | tuple) or not all(isinstance(a, str) for a in archs):
        raise _not_benchmark(path, "'meta_archs' is not a list of cell strings")
    return list(archs)


def _infos(path: Path, data: dict, count: int) -> dict[int, dict]:
    """`arch2infos` by integer cell index, checked against the `count` cell strings."""
    infos = data.get("arch2infos")
    if not isinstance(infos, dict):
        raise _not_benchmark(path, f"'arch2infos' is a {type(infos).__name__}, not a dict")
    by_index = {}
    for key, value in infos.items():
        try:
            index = int(key)
        except (TypeError, ValueError):
            raise _not_benchmark(path, f"'arch2infos' key {key!r} is not a cell index") from None
        if not 0 <= index < count:
            raise _not_benchmark(path, f"'arch2infos' key {index} is not one of {count} cells")
        by_index[index] = value
    return dict(sorted(by_index.items()))


def _read_archive(path: Path) -> tuple[list[str], Iterator[tuple[int, Path, object]]]:
    """The cell strings and an iterator of (index, file it came from, {schedule: ArchResults})."""
    if path.is_dir():
        meta_file = path / "meta.pickle.pbz2"
        archs = _archs(meta_file, _load(meta_file))

        def per_cell() -> Iterator[tuple[int, Path, object]]:
            for index in range(len(archs)):
                cell_file = path / f"{index:06d}.pickle.pbz2"
                if cell_file.is_file():
                    yield index, cell_file, _load(cell_file)

        return archs, per_cell()
    data = _load(path)
    archs = _archs(path, data)
    infos = _infos(path, data, len(archs))
    return archs, ((index, path, info) for index, info in infos.items())


def _last_epoch_accuracy(results: dict, dataset: str, eval_set: str) -> float:
    seeds = results["dataset_seed"].get(dataset, [])
    values = []
    for seed in seeds:
        trial = results["all_results"][(dataset, seed)]
        values.append(trial["eval_acc1es"][f"{eval_set}@{trial['epochs'] - 1}"])
    return float(np.mean(values)) if values else float("nan")


def _cost(results: dict, dataset: str, key: str) -> float:
    seeds = results["dataset_seed"].get(dataset, [])
    values = [results["all_results"][(dataset, seed)][key] for seed in seeds]
    return float(np.mean(values)) if values else float("nan")


def _row(index: int, arch: str, schedules, dataset: str) -> dict:
    """One table row from a cell's results; raises what a malformed state dict gives."""
    if not isinstance(schedules, dict):
        raise TypeError(f"{type(schedules).__name__}, not a dict")
    by_epochs = {SCHEDULES.get(str(key), str(key)): value for key, value in schedules.items()}
    full = by_epochs["200"]
    row = {
        "index": index,
        "arch": arch,
        "params_m": _cost(full, SOURCES[dataset]["test_acc"][0], "params"),
        "flops_m": _cost(full, SOURCES[dataset]["test_acc"][0], "flop"),
    }
    for column, (setting, eval_set) in SOURCES[dataset].items():
        row[column] = _last_epoch_accuracy(full, setting, eval_set)
        if "12" in by_epochs:
            row[f"{column}_12ep"] = _last_epoch_accuracy(by_epochs["12"], setting, eval_set)
    return row


def convert(
    source: str | Path, out: str | Path, dataset: str = "cifar10", progress: bool = True
) -> "pd.DataFrame":
    """Write `out` (CSV or Parquet) from an official benchmark file; returns the table.

    Columns: `index`, `arch`, `params_m`, `flops_m`, `valid_acc`, `test_acc` (200 epochs) and,
    where the file has them, `valid_acc_12ep`, `test_acc_12ep` (the 12-epoch schedule).
    """
    if dataset not in SOURCES:
        raise NasboxError(f"unknown dataset {dataset!r}; choose one of: {', '.join(SOURCES)}")
    check_table_path(out)
    source = Path(source)
    if not source.exists():
        raise NasboxError(f"{source}: file not found (expected a .pth, .pickle.pbz2 or folder)")
    archs, cells = _read_archive(source)
    rows = []
    cells = tqdm(cells, total=len(archs), desc="convert", disable=not progress)
    for index, where, schedules in cells:
        try:
            rows.append(_row(index, archs[index], schedules, dataset))
        except (KeyError, TypeError, IndexError, AttributeError, ValueError) as err:
            found = f"no key {err}" if isinstance(err, KeyError) else str(err).splitlines()[0]
            raise NasboxError(
                f"{where}: cell {index} is not the expected benchmark structure ({found}; "
                "expected a dict of schedules, '200' or 'full', of ArchResults state dicts); " + FIX
            ) from None
    if not rows:
        raise NasboxError(f"{source}: no evaluated cells found")
    import pandas as pd

    frame = pd.DataFrame(rows)
    for column, (setting, eval_set) in SOURCES[dataset].items():
        if frame[column].isna().all():
            raise NasboxError(
                f"{source}: no cell has results of the {setting!r} setting on {eval_set!r} "
                f"(needed for {column} of --dataset {dataset}); is --dataset right?"
            )
    frame = frame[[column for column in COLUMNS if column in frame.columns]]
    write_table(frame, out)
    return frame
