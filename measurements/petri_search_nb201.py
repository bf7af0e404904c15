"""petri-evolution's two starts vs regularised evolution on the NAS-Bench-201 table.

The ground truth is the table's `valid_acc` (instant), so what costs is the dish: each search of
`--budget` queries refits it once per dish proposal. Prints, per strategy, the best validation
accuracy found and that cell's test accuracy (mean +- standard error over `--seeds` seeds), the
seconds per search, and each strategy's difference from the first, paired by seed. One process
per strategy (`--workers`, one thread each).

    python measurements/petri_search_nb201.py --budget 30 --seeds 10
"""

import argparse
import math
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import torch

from nasbox.runs import run_search
from nasbox.spaces import get_space
from nasbox.strategies import get_strategy
from nasbox.strategies.petri_evolution import FIRST_LOOP

# A label, the strategy and its options; petri-evolution-random is the first version's loop.
STRATEGIES = {
    "petri-evolution": ("petri-evolution", {}),
    "petri-evolution-random": ("petri-evolution", FIRST_LOOP),
    "evolution": ("evolution", {}),
}


def searches(job: tuple[str, str, int, int]) -> list[tuple[float, float, float]]:
    """(best valid_acc, its test_acc, seconds) of each seed's search with strategy `label`."""
    label, table_path, budget, seeds = job
    torch.set_num_threads(1)
    space = get_space("nb201")
    table = pd.read_csv(table_path)
    cells = list(map(space.parse, table.arch))
    valid = dict(zip(cells, table.valid_acc, strict=True))
    test = dict(zip(cells, table.test_acc, strict=True))
    name, options = STRATEGIES[label]
    results = []
    for seed in range(seeds):
        started = time.perf_counter()
        strategy = get_strategy(name, space, seed=seed, **options)
        trials = run_search(strategy, valid.__getitem__, budget=budget, progress=False)
        best = max(trials, key=lambda trial: trial.value)
        results.append((best.value, test[best.arch], time.perf_counter() - started))
        print(f"{label} seed {seed}: best valid_acc {best.value:.2f}", flush=True)
    return results


def mean_error(values: np.ndarray) -> str:
    return f"{values.mean():.2f} +- {values.std(ddof=1) / math.sqrt(len(values)):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="../shared/data/nb201-cifar10.csv")
    parser.add_argument("--budget", type=int, default=30, help="queries per search")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="one-thread processes")
    args = parser.parse_args()
    jobs = [(label, args.table, args.budget, args.seeds) for label in STRATEGIES]
    with ProcessPoolExecutor(args.workers) as pool:
        found = dict(zip(STRATEGIES, map(np.asarray, pool.map(searches, jobs)), strict=True))
    first = next(iter(found))
    print(f"\n{args.seeds} seeds, {args.budget} queries, valid_acc as the signal")
    print(f"| strategy | best valid_acc | its test_acc | seconds a search | vs {first} (valid) |")
    print("| --- | --- | --- | --- | --- |")
    for label, rows in found.items():
        difference = rows[:, 0] - found[first][:, 0]
        paired = "" if label == first else mean_error(difference)
        print(f"| {label} | {mean_error(rows[:, 0])} | {mean_error(rows[:, 1])} | "
              f"{np.median(rows[:, 2]):.0f} | {paired} |")  # fmt: skip


if __name__ == "__main__":
    main()
