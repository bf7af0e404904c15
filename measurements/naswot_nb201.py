"""NASWOT on NAS-Bench-201 / CIFAR-10: rank correlation, speed, and simulated search.

Scores K seeded random cells on a minibatch of real CIFAR-10 training images, joins them with the
benchmark's accuracies and prints Kendall tau / Spearman rho, the median seconds per cell (beside
one plain forward pass and the paper's hook-based reference implementation), and the test accuracy
of the cell NASWOT picks from N random cells (N = 10, 100, 1000), over R repeats drawn from the
scored pool. Scores are appended to a CSV as they are computed and reused on the next run.

    python measurements/naswot_nb201.py --cells 2000 --repeats 100
"""

import argparse
import csv
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn
from tqdm.auto import tqdm

from nasbox.cli.common import PRECISIONS, resolve_precision
from nasbox.cpu import keep_freed_memory
from nasbox.data import load_data
from nasbox.estimators import EstimatorContext, get_estimator
from nasbox.estimators.naswot import naswot_score
from nasbox.runs import run_search
from nasbox.spaces import get_space
from nasbox.strategies import get_strategy

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def reference_naswot(network: nn.Module, images: torch.Tensor) -> float:
    """The paper's released recipe: forward + backward (Jacobian), then a hooked forward pass
    that adds c c^T + (1-c)(1-c)^T for every ReLU, accumulated in numpy."""
    kernel = np.zeros((len(images), len(images)))

    def hook(_module, inputs, _output):
        codes = (inputs[0].view(inputs[0].size(0), -1) > 0).float()
        overlap = codes @ codes.t() + (1.0 - codes) @ (1.0 - codes.t())
        kernel[:] += overlap.detach().cpu().numpy()

    network.train()
    network.zero_grad()
    inputs = images.clone().requires_grad_(True)
    network(inputs).sum().backward()
    handles = [m.register_forward_hook(hook) for m in network.modules() if isinstance(m, nn.ReLU)]
    network(images.clone())
    for handle in handles:
        handle.remove()
    sign, logdet = np.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else -np.inf


def score_pool(args, space, estimator) -> pd.DataFrame:
    """Score `args.cells` distinct seeded random cells, resuming from the cache file."""
    cache = Path(args.scores)
    done = pd.read_csv(cache) if cache.is_file() else pd.DataFrame(columns=["arch", "naswot"])
    strategy = get_strategy("random", space, seed=args.seed)
    cells = [strategy.ask() for _ in range(args.cells)]
    scored = set(done["arch"])
    todo = [cell for cell in cells if space.format(cell) not in scored]
    cache.parent.mkdir(parents=True, exist_ok=True)
    new_file = not cache.is_file()
    with cache.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(["arch", "naswot", "seconds"])
        for cell in tqdm(todo, desc="naswot", unit="cell"):
            start = time.perf_counter()
            value = estimator(cell)
            writer.writerow([space.format(cell), repr(value), f"{time.perf_counter() - start:.4f}"])
            handle.flush()
    scores = pd.read_csv(cache)
    wanted = {space.format(cell) for cell in cells}
    return scores[scores["arch"].isin(wanted)].drop_duplicates("arch")


def timed(function, *args) -> tuple[object, float]:
    """`function(*args)` and the seconds it took."""
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


@torch.no_grad()
def forward(network: nn.Module, images: torch.Tensor) -> None:
    network(images)


def speed_comparison(args, space, context, images) -> dict[str, float]:
    """Median seconds of plain forward passes (nasbox's channels-last layout and PyTorch's
    default), nasbox's NASWOT and the reference implementation (fp32, as published), on the
    same cells; nasbox's passes run in the context's precision."""
    rng = np.random.default_rng(args.seed + 1)
    plain, plain_default, fast, reference, fast_total, diffs = [], [], [], [], [], []
    estimator = get_estimator("naswot", context)
    contiguous = images.contiguous()
    for _ in tqdm(range(args.speed_cells), desc="speed", unit="cell"):
        cell = space.sample(rng)
        fast_total.append(timed(estimator, cell)[1])
        network = context.build(cell).train()
        with context.autocast():
            plain.append(timed(forward, network, images)[1])
            value, seconds = timed(naswot_score, network, images)
        fast.append(seconds)
        network = network.to(memory_format=torch.contiguous_format)
        plain_default.append(timed(forward, network, contiguous)[1])
        expected, seconds = timed(reference_naswot, network, contiguous)
        reference.append(seconds)
        diffs.append(abs(value - expected))
    return {
        "forward": statistics.median(plain),
        "forward_default_layout": statistics.median(plain_default),
        "naswot": statistics.median(fast),
        "naswot_with_build": statistics.median(fast_total),
        "reference": statistics.median(reference),
        "ratio_to_forward": statistics.median(np.array(fast) / np.array(plain)),
        "max_abs_score_difference": max(diffs),
    }


def simulate(joined: pd.DataFrame, sizes: list[int], repeats: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    results = {}
    for size in sizes:
        if size > len(joined):
            continue
        picks = []
        for _ in range(repeats):
            sample = joined.iloc[rng.choice(len(joined), size=size, replace=False)]
            picks.append(float(sample.loc[sample["naswot"].idxmax(), "test_acc"]))
        results[size] = (float(np.mean(picks)), float(np.std(picks)))
    return results


def real_searches(args, space, data, table: pd.DataFrame) -> list[tuple[float, float]]:
    """`nasbox search` end to end, one seed per run: (test_acc of the chosen cell, seconds)."""
    test_acc = dict(zip(table["arch"], table["test_acc"], strict=True))
    results = []
    for run in tqdm(range(args.search_runs), desc=f"search N={args.search_size}", unit="run"):
        start = time.perf_counter()
        context = EstimatorContext(
            space, data, seed=run, batch_size=args.batch_size, precision=args.precision
        )
        strategy = get_strategy("random", space, seed=run)
        run_search(strategy, get_estimator("naswot", context), args.search_size, progress=False)
        seconds = time.perf_counter() - start
        results.append((test_acc[space.format(strategy.best[0])], seconds))
    return results


def plot(joined: pd.DataFrame, tau: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = joined[np.isfinite(joined["naswot"])]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120, sharex=True)
    for axis, column in zip(axes, ["valid_acc", "test_acc"], strict=True):
        axis.scatter(finite["naswot"], finite[column], s=6, alpha=0.5)
        axis.set_xlabel("NASWOT score (log|K_H|)")
        axis.set_ylabel(f"{column} (%)")
        axis.set_ylim(max(finite[column].min(), 40), 95)
        axis.grid(alpha=0.3)
    axes[0].set_title(f"{len(joined)} NAS-Bench-201 cells, CIFAR-10 (Kendall tau {tau:.3f})")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1000, help="random cells to score (K)")
    parser.add_argument("--repeats", type=int, default=100, help="simulated searches per N (R)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--speed-cells", type=int, default=20, help="cells for the speed table")
    parser.add_argument("--search-runs", type=int, default=0, help="real seeded searches")
    parser.add_argument("--search-size", type=int, default=100, help="cells per real search")
    parser.add_argument("--data", default=str(SHARED / "cifar10-subset.npz"))
    parser.add_argument("--table", default=str(SHARED / "nb201-cifar10.csv"))
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="NASWOT's forward pass, as `nasbox search --precision` (default: auto)",
    )
    parser.add_argument("--out", default=str(ROOT / "measurements" / "results"))
    parser.add_argument(
        "--scores", help="score cache (default: OUT/naswot_nb201_scores_PRECISION.csv)"
    )
    args = parser.parse_args()
    args.precision = resolve_precision(args.precision)
    out = Path(args.out)
    args.scores = args.scores or str(out / f"naswot_nb201_scores_{args.precision}.csv")
    for path in (args.data, args.table):
        if not Path(path).is_file():
            raise SystemExit(f"{path}: not found; this benchmark needs ../shared reference data")

    keep_freed_memory()
    space = get_space("nb201")
    data = load_data(f"npz:{args.data}")
    context = EstimatorContext(
        space, data, seed=args.seed, batch_size=args.batch_size, precision=args.precision
    )
    estimator = get_estimator("naswot", context)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
        f"{args.precision}"
    )

    speed = speed_comparison(args, space, context, estimator.images) if args.speed_cells else {}
    scores = score_pool(args, space, estimator)
    table = pd.read_csv(args.table)
    joined = scores.merge(table, on="arch", how="inner")
    infinite = int(np.isinf(joined["naswot"]).sum())
    print(f"\n{len(joined)} cells scored (seed {args.seed}); {infinite} scored -inf")
    print("| accuracy | Kendall tau | Spearman rho |\n| --- | --- | --- |")
    tau_valid = 0.0
    for column in ["valid_acc", "test_acc"]:
        tau = stats.kendalltau(joined["naswot"], joined[column]).statistic
        rho = stats.spearmanr(joined["naswot"], joined[column]).statistic
        tau_valid = tau if column == "valid_acc" else tau_valid
        print(f"| {column} | {tau:.3f} | {rho:.3f} |")
    print(f"\nmedian seconds per cell while scoring the pool: {joined['seconds'].median():.3f}")
    if speed:
        print(f"speed on {args.speed_cells} cells (median seconds):")
        print(f"  plain forward pass, channels-last   {speed['forward']:.3f}")
        print(f"  plain forward pass, default layout  {speed['forward_default_layout']:.3f}")
        print(f"  nasbox NASWOT (scoring only)        {speed['naswot']:.3f}")
        print(f"  nasbox NASWOT (build + scoring)     {speed['naswot_with_build']:.3f}")
        print(f"  reference hooks, fwd+bwd+fwd        {speed['reference']:.3f}")
        print(f"  NASWOT / channels-last forward      {speed['ratio_to_forward']:.2f}x")
        print(f"  reference / nasbox                  {speed['reference'] / speed['naswot']:.2f}x")
        print(f"  max |score difference|              {speed['max_abs_score_difference']:.2e}")
    print(f"\nsimulated NASWOT search ({args.repeats} repeats, cells drawn from the scored pool):")
    print("| N | test_acc of chosen cell |\n| --- | --- |")
    for size, (mean, std) in simulate(joined, [10, 100, 1000], args.repeats, args.seed).items():
        note = " (N = pool size: every repeat sees the same cells)" if size == len(joined) else ""
        print(f"| {size} | {mean:.2f} +- {std:.2f}{note} |")
    accuracy = joined["test_acc"]
    print(f"random cell: {accuracy.mean():.2f}; best in pool: {accuracy.max():.2f}")
    if args.search_runs:
        runs = real_searches(args, space, data, table)
        accuracy = np.array([acc for acc, _ in runs])
        seconds = np.array([sec for _, sec in runs])
        print(
            f"\nreal searches, N={args.search_size}, seeds 0..{args.search_runs - 1} (each its "
            f"own minibatch and initialisation): test_acc {accuracy.mean():.2f} +- "
            f"{accuracy.std():.2f}; seconds per run: median {np.median(seconds):.1f}, "
            f"max {seconds.max():.1f}"
        )
    figure = out / "naswot_nb201.png"
    plot(joined, tau_valid, figure)
    print(f"\nscores: {args.scores}\nplot: {figure}")


if __name__ == "__main__":
    main()
