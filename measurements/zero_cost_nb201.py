"""Zero-cost proxies and their label-free ensemble on NAS-Bench-201 / CIFAR-10.

Scores K seeded random cells with every proxy (one shared probe per cell) on a minibatch of real
CIFAR-10 training images, joins them with the benchmark's accuracies and prints, per proxy,
Kendall tau and Spearman rho against `valid_acc` and `test_acc`, the median seconds per cell
(each proxy timed alone on `--speed-cells` cells), the test accuracy of the cell each proxy picks
from N = 10, 100, 1000 cells drawn from the scored pool (as measurements/naswot_nb201.py does),
and saves a heat map of the Spearman correlations between proxies. The ensemble column is the
`ensemble` estimator's own combination of its members' cached scores (its reference cells are
scored once, with the estimator). Scores are appended to CSV shards as they are computed and
reused on the next run; `--shard I/N` scores every N-th cell from the I-th, for parallel runs.

    python measurements/zero_cost_nb201.py --cells 1000 --proxies naswot,meco,swap,synflow,params
"""

import argparse
import csv
import itertools
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm.auto import tqdm

from nasbox.data import load_data
from nasbox.estimators import EstimatorContext, get_estimator
from nasbox.estimators.ensemble import robust_scale, squash
from nasbox.estimators.probe import score_together
from nasbox.runs import run_search
from nasbox.spaces import get_space
from nasbox.strategies import get_strategy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from naswot_nb201 import simulate  # noqa: E402  (the NASWOT benchmark's search simulation)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
ALL_PROXIES = (
    "naswot,jacov,params,flops,synflow,snip,grasp,fisher,grad_norm,l2_norm,epe_nas,zen,zico,"
    "meco,swap,swap_reg"
)


def pool(args, space) -> list:
    strategy = get_strategy("random", space, seed=args.pool_seed)
    return [strategy.ask() for _ in range(args.cells)]


def written(folder: Path, pattern: str) -> list[Path]:
    """The score shards in `folder` with at least their header (a shard run started at the same
    moment may have created its file and not yet written to it)."""
    return [path for path in sorted(folder.glob(pattern)) if path.stat().st_size > 0]


def score_pool(args, space, estimators, names) -> pd.DataFrame:
    """Score this shard's cells that its cache lacks; return every shard's rows for the pool."""
    cells = pool(args, space)
    index, count = args.shard
    cache = Path(f"{args.scores}.shard{index}")
    shards = f"{Path(args.scores).name}.shard*"
    done = {arch for path in written(cache.parent, shards) for arch in pd.read_csv(path)["arch"]}
    todo = [c for c in cells[index::count] if space.format(c) not in done]
    new_file = not cache.is_file()
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(["arch", *names, "seconds"])
        for cell in tqdm(todo, desc=f"shard {index}/{count}", unit="cell"):
            start = time.perf_counter()
            values = score_together(estimators, cell)
            seconds = time.perf_counter() - start
            writer.writerow([space.format(cell), *map(repr, values), f"{seconds:.4f}"])
            handle.flush()
    frames = [pd.read_csv(path) for path in written(cache.parent, shards)]
    scores = pd.concat(frames).drop_duplicates("arch")
    wanted = {space.format(cell) for cell in cells}
    return scores[scores["arch"].isin(wanted)]


def speed(args, space, context, names) -> dict[str, float]:
    """Median seconds per cell of each estimator alone (build included), same cells for all."""
    rng = np.random.default_rng(args.pool_seed + 1)
    cells = [space.sample(rng) for _ in range(args.speed_cells)]
    seconds = {}
    for name in names:
        estimator = get_estimator(name, context)
        if name.startswith("ensemble"):
            _ = estimator.scale  # the one-off reference cells are not part of a cell's cost
        times = []
        for cell in cells:
            start = time.perf_counter()
            estimator(cell)
            times.append(time.perf_counter() - start)
        seconds[name] = statistics.median(times)
    return seconds


def real_searches(args, space, data, table: pd.DataFrame) -> list[tuple[float, float]]:
    """`nasbox search` with the ensemble end to end, one seed per run: (test_acc, seconds)."""
    test_acc = dict(zip(table["arch"], table["test_acc"], strict=True))
    results = []
    seeds = range(args.search_first, args.search_first + args.search_runs)
    for run in tqdm(seeds, desc=f"search N={args.search_size}", unit="run"):
        start = time.perf_counter()
        context = EstimatorContext(space, data, seed=run, batch_size=args.batch_size)
        strategy = get_strategy(args.search_strategy, space, seed=run)
        run_search(
            strategy, get_estimator(args.ensemble, context), args.search_size, progress=False
        )
        results.append((test_acc[space.format(strategy.best[0])], time.perf_counter() - start))
        tqdm.write(f"search seed {run}: test_acc {results[-1][0]:.2f}, {results[-1][1]:.0f} s")
    return results


def report_searches(args, space, data) -> None:
    runs = real_searches(args, space, data, pd.read_csv(args.table))
    found = np.array([acc for acc, _ in runs])
    last = args.search_first + args.search_runs - 1
    print(
        f"\nreal {args.search_strategy} searches with {args.ensemble}, N={args.search_size}, seeds "
        f"{args.search_first}..{last}: test_acc {found.mean():.2f} +- {found.std():.2f} "
        f"({', '.join(f'{acc:.2f}' for acc in found)}); seconds per run: median "
        f"{np.median([s for _, s in runs]):.0f}"
    )


def few_label(args, context, joined: pd.DataFrame, names: list[str]) -> None:
    """Ridge weights over every scored proxy fitted on K labelled cells (valid_acc), ranked on
    the other cells of the pool; the label-free default ensemble on the same cells beside it."""
    members = [name for name in names if name != "flops"]  # flops ranks NB201 cells as params
    full = get_estimator("ensemble:" + "+".join(members), context)
    default = joined[args.ensemble].to_numpy(dtype=float)
    scores = joined[members].to_numpy(dtype=float)
    accuracy = joined["valid_acc"].to_numpy()
    print(
        f"\nfew labels: ridge weights over {', '.join(members)} from K labelled cells, "
        f"{args.few_label_seeds} seeds; Spearman / Kendall vs valid_acc on the other cells"
        "\n| K | fitted | label-free ensemble, same cells |\n| ---: | --- | --- |"
    )
    for k in (10, 20, 50, 100):
        if k >= len(joined):
            continue
        fitted_rho, fitted_tau, fixed_rho, fixed_tau = [], [], [], []
        for seed in range(args.few_label_seeds):
            labelled = np.random.default_rng(seed).choice(len(joined), size=k, replace=False)
            rest = np.setdiff1d(np.arange(len(joined)), labelled)
            fitted = full.fitted(scores[labelled], accuracy[labelled])
            predicted = [fitted.combine(row) for row in scores[rest]]
            fitted_rho.append(stats.spearmanr(predicted, accuracy[rest]).statistic)
            fitted_tau.append(stats.kendalltau(predicted, accuracy[rest]).statistic)
            fixed_rho.append(stats.spearmanr(default[rest], accuracy[rest]).statistic)
            fixed_tau.append(stats.kendalltau(default[rest], accuracy[rest]).statistic)
        print(
            f"| {k} | {np.mean(fitted_rho):.3f} +- {np.std(fitted_rho):.3f} / "
            f"{np.mean(fitted_tau):.3f} | {np.mean(fixed_rho):.3f} / {np.mean(fixed_tau):.3f} |"
        )


def spearman(scores: np.ndarray, accuracy: np.ndarray) -> float:
    return stats.spearmanr(scores, accuracy).statistic


def bootstrap(statistic, columns: tuple, resamples: int):
    """scipy's paired bootstrap over cells (BCa), seeded as measurements/spaces.py seeds it."""
    return stats.bootstrap(
        columns, statistic, paired=True, vectorized=False, n_resamples=resamples, random_state=0
    )


def ensemble_above_best(joined: pd.DataFrame, columns: list[str], ensemble: str) -> None:
    """The ensemble's Spearman rho vs `valid_acc` minus the best single proxy's, with a paired
    bootstrap over cells (2,000 resamples)."""
    valid = joined["valid_acc"].to_numpy()
    singles = [column for column in columns if column != ensemble]
    best = max(singles, key=lambda column: spearman(joined[column].astype(float), valid))
    pair = joined[ensemble].to_numpy(dtype=float), joined[best].to_numpy(dtype=float), valid
    gain = bootstrap(lambda e, b, y: spearman(e, y) - spearman(b, y), pair, 2000)
    low, high = gain.confidence_interval
    print(
        f"{ensemble} rho - {best} rho (the best single proxy), paired bootstrap over cells: "
        f"{spearman(pair[0], valid) - spearman(pair[1], valid):+.4f} [{low:+.4f}, {high:+.4f}], "
        f"P(> 0) = {np.mean(gain.bootstrap_distribution > 0):.3f}"
    )


def weightings(args, joined: pd.DataFrame, members: list[str], top: int = 10) -> None:
    """Every weighting of `members` (weights 0, 1, 2, 4 or 8 each) ranked by Spearman rho vs
    `valid_acc`, the pool's own medians and ranges as scales. This is how the default ensemble
    was chosen, on a development pool (`--pool-seed 1 --seed 1`) that no reported figure uses."""
    squashed = np.vectorize(squash)(joined[members].to_numpy(dtype=float))
    centre, spread = robust_scale(squashed)
    z = (squashed - centre) / spread
    rows = []
    for weights in itertools.product((0, 1, 2, 4, 8), repeat=len(members)):
        if not any(weights) or math.gcd(*weights) != 1:
            continue
        used = [index for index, weight in enumerate(weights) if weight]
        combined = z[:, used] @ np.array([weights[index] for index in used], dtype=float)
        rho = spearman(combined, joined["valid_acc"])
        named = (f"{members[index]}*{weights[index]}" for index in used)
        spec = "+".join(name.removesuffix("*1") for name in named)
        rows.append((rho, spec, combined))
    rows.sort(key=lambda row: -row[0])
    print(
        f"\n{len(rows)} weightings of {', '.join(members)}, the {top} that rank best"
        "\n| weighting | Spearman valid | N=100 |\n| --- | ---: | ---: |"
    )
    for rho, spec, combined in rows[:top]:
        pick = simulate(joined.assign(naswot=combined), [100], args.repeats, args.seed)[100][0]
        print(f"| {spec} | {rho:.3f} | {pick:.2f} |")


def heat_map(correlation: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 8), dpi=120)
    image = axis.imshow(correlation.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    axis.set_xticks(range(len(correlation)), correlation.columns, rotation=60, ha="right")
    axis.set_yticks(range(len(correlation)), correlation.index)
    for i in range(len(correlation)):
        for j in range(len(correlation)):
            value = correlation.iat[i, j]
            axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
    figure.colorbar(image, label="Spearman rho")
    axis.set_title("Spearman correlation between proxies, NAS-Bench-201 cells")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1000, help="random cells to score (K)")
    parser.add_argument("--pool-seed", type=int, default=0, help="seed of the cell pool")
    parser.add_argument("--seed", type=int, default=0, help="minibatch and initialisation seed")
    parser.add_argument("--proxies", default=ALL_PROXIES, help="comma-separated estimators")
    parser.add_argument("--ensemble", default="ensemble", help="ensemble spec ('': none)")
    parser.add_argument("--shard", default="0/1", help="I/N: score cells I, I+N, ... only")
    parser.add_argument("--join", help="another score cache prefix to add (its cells in common)")
    parser.add_argument("--score-only", action="store_true", help="score the shard and stop")
    parser.add_argument("--repeats", type=int, default=500, help="simulated searches per N")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--speed-cells", type=int, default=10, help="cells for the speed table")
    parser.add_argument("--search-runs", type=int, default=0, help="real seeded searches")
    parser.add_argument("--search-first", type=int, default=0, help="seed of the first search")
    parser.add_argument("--searches-only", action="store_true", help="run the searches only")
    parser.add_argument("--few-label-seeds", type=int, default=0, help="seeds per K (0: skip)")
    parser.add_argument("--weigh", help="comma-separated proxies: rank weightings of them")
    parser.add_argument("--search-size", type=int, default=100, help="cells per real search")
    parser.add_argument("--search-strategy", default="random", help="strategy of the real searches")
    parser.add_argument("--data", default=str(SHARED / "cifar10-subset.npz"))
    parser.add_argument("--table", default=str(SHARED / "nb201-cifar10.csv"))
    parser.add_argument("--out", default=str(ROOT / "measurements" / "results"))
    parser.add_argument("--scores", help="score cache prefix (default: OUT/zero_cost_nb201.csv)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.scores = args.scores or str(out / "zero_cost_nb201.csv")
    args.shard = tuple(int(part) for part in args.shard.split("/"))
    for path in (args.data, args.table):
        if not Path(path).is_file():
            raise SystemExit(f"{path}: not found; this benchmark needs ../shared reference data")

    space = get_space("nb201")
    data = load_data(f"npz:{args.data}")
    context = EstimatorContext(space, data, seed=args.seed, batch_size=args.batch_size)
    names = args.proxies.split(",")
    estimators = [get_estimator(name, context) for name in names]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}")
    if args.searches_only:
        report_searches(args, space, data)
        return
    scores = score_pool(args, space, estimators, names)
    if args.score_only:
        return
    ensemble = get_estimator(args.ensemble, context) if args.ensemble else None
    if args.join:
        other = Path(args.join)
        extra = pd.concat(pd.read_csv(p) for p in sorted(other.parent.glob(f"{other.name}.shard*")))
        extra = extra.drop(columns="seconds").drop_duplicates("arch")
        scores = scores.merge(extra, on="arch", how="inner")
        names = [*names, *(c for c in extra.columns if c != "arch" and c not in names)]
    columns = list(names)
    if ensemble is not None:
        missing = [name for name in ensemble.names if name not in scores.columns]
        if missing:
            raise SystemExit(f"the cache lacks ensemble members {missing}; add them to --proxies")
        members = scores[ensemble.names].to_numpy(dtype=float)
        scores[args.ensemble] = [ensemble.combine(row) for row in members]
        columns.append(args.ensemble)
    joined = scores.merge(pd.read_csv(args.table), on="arch", how="inner")
    print(f"\n{len(joined)} cells (pool seed {args.pool_seed}, minibatch/init seed {args.seed})")
    if ensemble is not None:
        print(f"ensemble {args.ensemble}: members {', '.join(ensemble.names)}")
    seconds = speed(args, space, context, columns) if args.speed_cells else {}
    print(
        "\n| proxy | Spearman valid | Kendall valid | Spearman test | Kendall test | -inf cells |"
        " N=10 | N=100 | N=1000 |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for column in columns:
        values = joined[column].astype(float)
        figures = []
        for target in ("valid_acc", "test_acc"):
            figures.append(stats.spearmanr(values, joined[target]).statistic)
            figures.append(stats.kendalltau(values, joined[target]).statistic)
        picks = simulate(joined.assign(naswot=values), [10, 100, 1000], args.repeats, args.seed)
        search = [f"{picks[n][0]:.2f}" if n in picks else "-" for n in (10, 100, 1000)]
        cells = [f"{figure:.3f}" for figure in figures]
        infinite = int(np.isinf(values).sum())
        print(f"| {column} | {' | '.join(cells)} | {infinite} | {' | '.join(search)} |")
    accuracy = joined["test_acc"]
    print(f"random cell: {accuracy.mean():.2f}; best in pool: {accuracy.max():.2f}")
    if ensemble is not None:
        ensemble_above_best(joined, columns, args.ensemble)
    together = joined["seconds"].median()
    print(f"median seconds per cell while scoring all proxies together: {together:.2f}")
    for name, value in seconds.items():
        print(f"median seconds per cell, {name} alone ({args.speed_cells} cells): {value:.3f}")
    if ensemble is not None and seconds and "naswot" in seconds:
        print(f"ensemble / naswot: {seconds[args.ensemble] / seconds['naswot']:.2f}x")
    correlation = joined[columns].astype(float).replace(-np.inf, np.nan).corr(method="spearman")
    figure = out / f"{Path(args.scores).stem}_correlation.png"
    heat_map(correlation, figure)
    if args.weigh:
        weightings(args, joined, args.weigh.split(","))
    if args.few_label_seeds and ensemble is not None:
        few_label(args, context, joined, names)
    if args.search_runs:
        report_searches(args, space, data)
    print(f"\nscores: {args.scores}.shard*\nheat map: {figure}")


if __name__ == "__main__":
    main()
