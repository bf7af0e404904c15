"""Synthetic Petri Dish on recurrent cells (`rnn`): ground-truth checks, predictors and search.

Parts (`--parts`, comma-separated; each appends its rows to a CSV under measurements/results/):
- `protocol`: the ground-truth protocol's stability and the published cells: the first
  `--stable` cells of the table trained again from the next initialisation seeds (2 and 3 for
  the default protocol's 0 and 1; Spearman and Kendall against the table), and darts-v1,
  darts-v2 and enas under both against the median random cell (the table; the `--stable` cells);
- `anatomy`: what in a cell goes with its perplexity under the protocol, from the table alone:
  the Spearman correlation of each activation's count with `valid_ppl`, and the cells grouped by
  node 1's activation, with where each published cell stands in its group;
- `predictors`: held-out Spearman / Kendall of the dish and the encoding predictors (MLP,
  gradient-boosted trees) fitted on K labelled cells of the table, K in `--k`, `--seeds` seeds;
- `search`: `petri-evolution` (as it comes, and `petri-evolution-random`: start=random,
  explore=1), `random` and `evolution` with `--budget` ground-truth trainings each, `--seeds`
  seeds: the best validation perplexity found (mean +- standard error), the trainings evolution
  needs to match each petri-evolution's mean, a markdown table and an anytime plot.

The table comes from `nasbox petri groundtruth --space rnn` (built here if missing; `search`
alone does not need it). Every
ground-truth training is cached by (cell, protocol) in `--cache` (the table's rows count as the
default protocol's), so a cell is trained once however many searches propose it; a protocol of
several initialisations is the geometric mean of its one-initialisation trainings, each cached
on its own, so trainings made for another protocol of the same seeds count too. Searches run
in `--workers` one-thread processes; a search already complete in the runs file is not rerun.

    python measurements/petri_rnn.py --parts protocol,predictors,search --seeds 5 --budget 30
"""

import argparse
import csv
import math
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from nasbox.benchmarks.compare import save_anytime
from nasbox.data.text import load_text
from nasbox.estimators.petri import PetriDish, default_config, get_motif_space
from nasbox.estimators.petri.evaluation import compare_predictors, load_labels
from nasbox.estimators.petri.rnn_groundtruth import (
    DEFAULT_CORPUS,
    RNNProtocol,
    geometric_mean,
    read_table,
    rnn_groundtruth,
    sample_cells,
    train_cell,
    train_cells,
)
from nasbox.spaces.rnn import ACTIVATIONS, NAMED, RNNSpace
from nasbox.strategies import get_strategy
from nasbox.strategies.petri_evolution import FIRST_LOOP

RESULTS = Path(__file__).resolve().parent / "results"
# The searches compared: a label, the strategy and its options. `petri-evolution-random` is the
# first version's loop: the dish's evolution from random cells, one random cell per round besides.
STRATEGIES = {
    "petri-evolution": ("petri-evolution", {}),
    "petri-evolution-random": ("petri-evolution", FIRST_LOOP),
    "random": ("random", {}),
    "evolution": ("evolution", {}),
}
CACHE_COLUMNS = ["protocol", "arch", "valid_ppl", "seconds"]


class TrainingCache:
    """Validation perplexities by (protocol, cell), in memory and appended to a CSV file."""

    def __init__(self, path: Path, table: Path) -> None:
        self.path = path
        self.values: dict[tuple[str, str], float] = {}
        default = RNNProtocol().key()
        if table.is_file():
            for arch, value in read_table(table).items():
                self.values[(default, arch)] = value
        self.reload()

    def reload(self) -> None:
        """Read the cells other processes trained since the last look."""
        if self.path.is_file():
            with self.path.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    self.values[(row["protocol"], row["arch"])] = float(row["valid_ppl"])

    def get(self, protocol: RNNProtocol, arch: str) -> float | None:
        """The cached value, or the geometric mean of the protocol's cached single trainings."""
        value = self.values.get((protocol.key(), arch))
        if value is not None or protocol.initialisations == 1:
            return value
        singles = [self.get(single, arch) for single in singles_of(protocol)]
        return None if None in singles else geometric_mean(singles)

    def add(self, protocol: RNNProtocol, arch: str, value: float, seconds: float) -> None:
        self.values[(protocol.key(), arch)] = value
        fresh = not self.path.is_file()
        with self.path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if fresh:
                writer.writerow(CACHE_COLUMNS)
            writer.writerow([protocol.key(), arch, repr(value), f"{seconds:.1f}"])


def singles_of(protocol: RNNProtocol) -> list[RNNProtocol]:
    return [protocol.single(index) for index in range(protocol.initialisations)]


def trained(cache: TrainingCache, protocol: RNNProtocol, cells: list[str], args) -> list[float]:
    """Validation perplexities of `cells`, training (in `--workers` processes) the uncached
    single initialisations."""
    for single in singles_of(protocol):
        todo = [cell for cell in dict.fromkeys(cells) if cache.get(protocol, cell) is None]
        todo = [cell for cell in todo if cache.get(single, cell) is None]
        for cell, value, seconds in train_cells(todo, args.corpus, single, args.workers):
            cache.add(single, cell, value, seconds)
    return [cache.get(protocol, cell) for cell in cells]


def run_protocol(args, cache: TrainingCache) -> None:
    table = read_table(Path(args.labels))
    cells = list(table)[: args.stable]
    started = time.perf_counter()
    default = RNNProtocol()
    other = replace(default, seed=default.seed + default.initialisations)
    again = trained(cache, other, cells, args)
    first = [table[cell] for cell in cells]
    rho = stats.spearmanr(first, again).statistic
    tau = stats.kendalltau(first, again).statistic
    print(f"{len(cells)} cells, {describe(default)} vs {describe(other)}: Spearman {rho:.3f}, "
          f"Kendall {tau:.3f} ({time.perf_counter() - started:.0f} s)")  # fmt: skip
    named = {name: str(cell) for name, cell in NAMED.items()}
    for protocol, random_values in ((default, list(table.values())), (other, again)):
        random_values = np.array(random_values)
        values = trained(cache, protocol, list(named.values()), args)
        median = float(np.median(random_values))
        print(f"{describe(protocol)}: {len(random_values)} random cells, median valid ppl "
              f"{median:.3f}, best {random_values.min():.3f}, worst "
              f"{random_values.max():.3f}")  # fmt: skip
        for name, value in zip(named, values, strict=True):
            share = float((random_values < value).mean())
            print(f"  {name}: valid ppl {value:.3f} ({share:.0%} of those cells are better)")


def run_anatomy(args, cache: TrainingCache) -> None:
    """Why a cell ranks where it does: activation counts and node 1's activation against the
    table's perplexities (no training; the published cells' values come from the cache)."""
    table = read_table(Path(args.labels))
    space = RNNSpace()
    cells = [space.parse(arch) for arch in table]
    values = np.array(list(table.values()))
    print(f"{len(cells)} cells of the table; Spearman of each activation's count with valid ppl")
    print("| activation | Spearman |\n| --- | ---: |")
    for name in ACTIVATIONS:
        counts = [[activation for activation, _ in cell.nodes].count(name) for cell in cells]
        print(f"| {name} | {stats.spearmanr(counts, values).statistic:+.3f} |")
    first = np.array([cell.nodes[0][0] for cell in cells])
    print("\n| node 1 | cells | median valid ppl | best |\n| --- | ---: | ---: | ---: |")
    for name in ACTIVATIONS:
        group = values[first == name]
        print(f"| {name} | {len(group)} | {np.median(group):.3f} | {group.min():.3f} |")
    published = trained(cache, RNNProtocol(), [str(cell) for cell in NAMED.values()], args)
    for (name, cell), value in zip(NAMED.items(), published, strict=True):
        group = values[first == cell.nodes[0][0]]
        print(f"{name} (node 1 {cell.nodes[0][0]}): valid ppl {value:.3f}; better: "
              f"{(group < value).mean():.0%} of its group, {(values < value).mean():.0%} of "
              "the table")  # fmt: skip


def describe(protocol: RNNProtocol) -> str:
    seeds = [single.seed for single in singles_of(protocol)]
    return f"initialisation seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}"


def run_predictors(args) -> None:
    space = get_motif_space("rnn")
    labels = load_labels(args.labels, space, "valid_ppl")
    out = RESULTS / "petri_rnn_predictors.csv"
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["k", "seed", "predictor", "spearman", "kendall", "fit_seconds"])
        table = defaultdict(list)
        for seed in range(args.seeds):
            order = np.random.default_rng(seed).permutation(len(labels))
            for k in args.k:
                train, test = labels.subset(order[:k]), labels.subset(order[k:])
                dish = PetriDish(space, default_config("rnn"), seed=seed)
                started = time.perf_counter()
                dish.fit(train.motifs, train.values, progress=False)
                fit_seconds = time.perf_counter() - started
                scores = dish.predict(test.motifs)
                results = compare_predictors(space, train, test, {"petri": scores}, seed)
                for method, groups in results.items():
                    values = groups["all"]
                    writer.writerow([k, seed, method, values["spearman"], values["kendall"],
                                     f"{fit_seconds:.1f}"])  # fmt: skip
                    table[(k, method)].append((values["spearman"], values["kendall"]))
                handle.flush()
                petri = results["petri"]["all"]
                print(f"K={k} seed {seed}: petri Spearman {petri['spearman']:.3f}, mlp "
                      f"{results['mlp']['all']['spearman']:.3f}, gbt "
                      f"{results['gbt']['all']['spearman']:.3f} (fit {fit_seconds:.0f} s)",
                      flush=True)  # fmt: skip
    print(f"\nheld-out rank correlation with -valid_ppl, mean +- std over {args.seeds} seeds")
    print("| K | predictor | Spearman | Kendall |\n| --- | --- | --- | --- |")
    for (k, method), values in table.items():
        rho, tau = np.array(values).T
        print(f"| {k} | {method} | {rho.mean():.3f} +- {rho.std():.3f} | "
              f"{tau.mean():.3f} +- {tau.std():.3f} |")  # fmt: skip


def one_search(job: tuple[str, int, int, str, str, str]) -> list[tuple[str, float]]:
    """One search (strategy, seed) of `budget` trainings, on one thread: (cell, valid_ppl)."""
    label, seed, budget, corpus, cache_path, labels = job
    torch.set_num_threads(1)
    data, protocol = load_text(corpus), RNNProtocol()
    cache = TrainingCache(Path(cache_path), Path(labels))
    space = RNNSpace()
    strategy_name, options = STRATEGIES[label]
    strategy = get_strategy(strategy_name, space, seed=seed, **options)
    trajectory = []
    for _ in range(budget):
        arch = strategy.ask()
        text = space.format(arch)
        cache.reload()
        for single in singles_of(protocol):
            if cache.get(protocol, text) is None and cache.get(single, text) is None:
                started = time.perf_counter()
                value = train_cell(arch, data, single)
                cache.add(single, text, value, time.perf_counter() - started)
        value = cache.get(protocol, text)
        strategy.tell(arch, -value)
        trajectory.append((text, value))
    return trajectory


def run_search(args) -> None:
    out = RESULTS / "petri_rnn_search.csv"
    runs: dict[tuple[str, int], list[float]] = defaultdict(list)
    if out.is_file():
        with out.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if int(row["budget"]) == args.budget and int(row["seed"]) < args.seeds:
                    runs[(row["strategy"], int(row["seed"]))].append(float(row["valid_ppl"]))
    # Strategies of one seed share their first random cells: pairs of seeds, strategy by strategy,
    # keep the two workers on different seeds, so one trains those cells and the next finds them.
    order = [
        (name, seed)
        for first in range(0, args.seeds, 2)
        for name in STRATEGIES
        for seed in range(first, min(first + 2, args.seeds))
    ]
    jobs = [
        (name, seed, args.budget, args.corpus, str(args.cache), args.labels)
        for name, seed in order
        if len(runs[(name, seed)]) != args.budget
    ]
    for key in [(name, seed) for name, seed, *_ in jobs]:
        runs.pop(key, None)
    fresh = not out.is_file() or out.stat().st_size == 0  # a run killed before its first row
    with out.open("a", newline="") as handle, ProcessPoolExecutor(args.workers) as pool:
        writer = csv.writer(handle)
        if fresh:
            writer.writerow(["strategy", "seed", "budget", "query", "arch", "valid_ppl"])
            handle.flush()
        for job, trajectory in zip(jobs, pool.map(one_search, jobs), strict=True):
            name, seed = job[:2]
            for query, (arch, value) in enumerate(trajectory, start=1):
                writer.writerow([name, seed, args.budget, query, arch, repr(value)])
            handle.flush()
            runs[(name, seed)] = [value for _, value in trajectory]
            print(f"{name} seed {seed}: best valid ppl {min(runs[(name, seed)]):.3f}", flush=True)
    summarise_search(runs, args.budget)


def best_so_far(values: list[float]) -> np.ndarray:
    return np.minimum.accumulate(np.asarray(values, dtype=float))


def summarise_search(runs: dict[tuple[str, int], list[float]], budget: int) -> None:
    """The markdown table, the trainings evolution needs, and the anytime plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {
        name: np.stack([best_so_far(v) for (s, _), v in sorted(runs.items()) if s == name])
        for name in STRATEGIES
        if any(s == name for s, _ in runs)
    }
    print(f"\nbest validation perplexity found with {budget} ground-truth trainings")
    print("| strategy | runs | best valid ppl (mean +- s.e.) |\n| --- | --- | --- |")
    for name, stacked in curves.items():
        best = stacked[:, -1]
        error = best.std(ddof=1) / math.sqrt(len(best)) if len(best) > 1 else math.nan
        print(f"| {name} | {len(best)} | {best.mean():.3f} +- {error:.3f} |")
    petris = [name for name in curves if name.startswith("petri")] if "evolution" in curves else []
    for petri in petris:
        target = curves[petri][:, -1].mean()
        reached = np.flatnonzero(curves["evolution"].mean(axis=0) <= target)
        needed = f"{reached[0] + 1}" if len(reached) else f"more than {budget}"
        print(f"evolution's mean best reaches {petri}'s {target:.3f} after {needed} trainings")
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, stacked in curves.items():
        queries = np.arange(1, stacked.shape[1] + 1)
        mean = stacked.mean(axis=0)
        error = stacked.std(axis=0, ddof=1) / math.sqrt(len(stacked)) if len(stacked) > 1 else 0
        (line,) = axis.plot(queries, mean, label=f"{name} ({len(stacked)} runs)")
        axis.fill_between(queries, mean - error, mean + error, color=line.get_color(), alpha=0.2)
    path = RESULTS / "petri_rnn_search.png"
    title = "rnn cells, best valid perplexity so far (mean +- s.e.)"
    ylabel = "validation perplexity (lower is better)"
    save_anytime(figure, axis, path, ylabel, title, legend="upper right")
    print(f"anytime plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="protocol,predictors,search", help="comma-separated")
    parser.add_argument("--labels", default=str(RESULTS / "rnn_groundtruth.csv"))
    parser.add_argument("--cache", default=str(RESULTS / "rnn_trainings.csv"))
    parser.add_argument("--corpus", default=DEFAULT_CORPUS)
    parser.add_argument("--count", type=int, default=200, help="cells in a table built here")
    parser.add_argument("--stable", type=int, default=30, help="cells trained with two seeds")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--k", default="10,20,50", help="labelled cells, comma-separated")
    parser.add_argument("--budget", type=int, default=30, help="ground-truth trainings")
    parser.add_argument("--workers", type=int, default=2, help="one-thread processes")
    args = parser.parse_args()
    args.k = [int(k) for k in args.k.split(",") if k]
    torch.set_num_threads(1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    if {"protocol", "anatomy", "predictors"} & set(parts) and not Path(args.labels).is_file():
        print(f"no rnn ground truth at {args.labels}; building it ({args.count} cells)")
        rnn_groundtruth(args.labels, sample_cells(args.count, 0), args.corpus,
                        workers=args.workers)  # fmt: skip
    cache = TrainingCache(Path(args.cache), Path(args.labels))
    if "protocol" in parts:
        run_protocol(args, cache)
    if "anatomy" in parts:
        run_anatomy(args, cache)
    if "predictors" in parts:
        run_predictors(args)
    if "search" in parts:
        run_search(args)


if __name__ == "__main__":
    main()
