"""Zero-cost proxies and their label-free ensemble on the NAS-Bench-101 and DARTS reference samples.

Scores every cell of `nb101-sample.csv` (60 cells) and `darts-sample.csv` (200 genotypes) with
each proxy (one shared probe per cell) on the seeded minibatch of real CIFAR-10 training images
(batch 128; the gradient proxies read its first 64) and on the network each space scores at (its
`build` defaults, as `EstimatorContext` builds it), and prints per space Spearman rho with a 95 %
bootstrap interval (cells resampled, as measurements/spaces.py) and Kendall tau against
`valid_acc`, the cells at -inf (ranked last) and the median seconds per cell of each estimator
alone (zero_cost_nb201.py's timing, on `--speed-cells` seeded cells of the space). The ensemble
column is the default `ensemble` estimator's own combination of its members' cached scores (its 32
reference cells are scored once); below each table: whether it ranks above the best single proxy
and above `params`, and the paired bootstrap probability that its Spearman rho beats the best
single proxy's. Scores are cached in OUT/zero_cost_spaces_<space>.csv and reused on the next run.

Each space's default ensemble is chosen on half of its sample and reported on the other half: a
seeded permutation (`--split-seed`) splits the cells; `--choose` ranks every weighting of one to
three CANDIDATES (weights 1, 2, 4, 8) by Spearman rho on the development half and prints the best;
without it the tables cover the report half only, which the choice never saw.

    python measurements/zero_cost_spaces.py --choose   # development half: the best weightings
    python measurements/zero_cost_spaces.py            # report half: proxies and the default
"""

import argparse
import csv
import itertools
import os
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
from nasbox.estimators.ensemble import format_members
from nasbox.estimators.probe import score_together
from nasbox.spaces import get_space

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zero_cost_nb201 import bootstrap, spearman, speed  # noqa: E402  (shared with NB201)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PROXIES = "naswot,params,flops,synflow,l2_norm,meco,zen,swap_reg,jacov,snip,grad_norm,fisher,zico"
#: The members an ensemble is chosen from: the proxies NB201's weighing scored on all its cells.
CANDIDATES = ("naswot", "params", "flops", "synflow", "l2_norm", "meco", "zen", "swap_reg")
WEIGHTS = (1, 2, 4, 8)
# space: reference sample, and each row's architecture as the space parses it
SAMPLES = {
    "nb101": ("nb101-sample.csv", lambda frame: frame["adjacency"] + " " + frame["ops"]),
    "darts": ("darts-sample.csv", lambda frame: frame["genotype"]),
}


def cached_scores(space, estimators, names, archs: pd.Series, cache: Path) -> pd.DataFrame:
    """Every proxy's score of every arch, the ones the cache lacks computed and appended."""
    if cache.is_file() and list(pd.read_csv(cache, nrows=0).columns) != ["arch", *names]:
        raise SystemExit(f"{cache} holds other proxies than {names}; move it away to rescore")
    done = set(pd.read_csv(cache)["arch"]) if cache.is_file() else set()
    todo = [arch for arch in archs.unique() if arch not in done]
    new_file = not cache.is_file()
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(["arch", *names])
        for arch in tqdm(todo, desc=cache.stem, unit="cell"):
            writer.writerow([arch, *map(repr, score_together(estimators, space.parse(arch)))])
            handle.flush()
    return pd.read_csv(cache).drop_duplicates("arch")


def halves(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cells split by a seeded permutation: (development half, report half)."""
    order = np.random.default_rng(seed).permutation(len(frame))
    middle = len(frame) // 2
    return frame.iloc[order[:middle]], frame.iloc[order[middle:]]


def weightings(count: int):
    """Every (members, weights) of one to three of `count` candidates, the smallest weight 1."""
    for size in (1, 2, 3):
        for members in itertools.combinations(range(count), size):
            for weights in itertools.product(WEIGHTS, repeat=size):
                if min(weights) == 1:
                    yield list(members), np.array(weights, dtype=float)


def choose(context, development: pd.DataFrame, top: int = 5) -> None:
    """Print the `top` weightings of CANDIDATES by Spearman rho on the development cells, each
    on the reference-cell scale the ensemble estimator itself uses."""
    reference = get_estimator("ensemble:" + "+".join(CANDIDATES), context)
    z = reference.z_scores(development[list(CANDIDATES)].to_numpy(dtype=float))
    accuracy = development["valid_acc"].to_numpy()
    ranked = sorted(
        (
            (spearman(z[:, members] @ weights, accuracy), len(members), members, weights)
            for members, weights in weightings(len(CANDIDATES))
        ),
        key=lambda row: (-row[0], row[1]),
    )
    print(f"\nbest of {len(ranked)} weightings on {len(development)} development cells:")
    for rho, _, members, weights in ranked[:top]:
        print(f"  {rho:.3f}  {format_members([CANDIDATES[m] for m in members], weights)}")


def report(space_name: str, frame: pd.DataFrame, columns: list[str], seconds, resamples) -> None:
    accuracy = frame["valid_acc"].to_numpy()
    print(
        f"\n{space_name}: {len(frame)} report cells, vs valid_acc\n\n"
        "| proxy | Spearman [95% bootstrap] | Kendall | -inf cells | s/cell alone |\n"
        "| --- | --- | ---: | ---: | ---: |"
    )
    rho, tau = {}, {}
    for column in columns:
        values = frame[column].to_numpy(dtype=float)
        rho[column] = spearman(values, accuracy)
        tau[column] = stats.kendalltau(values, accuracy).statistic
        low, high = bootstrap(spearman, (values, accuracy), resamples).confidence_interval
        alone = f"{seconds[column]:.3f}" if column in seconds else "-"
        print(
            f"| {column} | {rho[column]:.3f} [{low:.3f}, {high:.3f}] | {tau[column]:.3f} | "
            f"{int(np.isinf(values).sum())} | {alone} |"
        )
    ensemble, singles = columns[-1], columns[:-1]
    best = max(singles, key=rho.get)
    for label, rival in ((f"the best single proxy ({best})", best), ("params", "params")):
        above = f"Spearman {rho[ensemble] > rho[rival]}, Kendall {tau[ensemble] > tau[rival]}"
        print(f"{ensemble} above {label}: {above}")
    pair = frame[ensemble].to_numpy(dtype=float), frame[best].to_numpy(dtype=float), accuracy
    gain = bootstrap(lambda e, b, y: spearman(e, y) - spearman(b, y), pair, resamples)
    low, high = gain.confidence_interval
    print(
        f"paired bootstrap over cells ({resamples} resamples): {ensemble} rho - {best} rho = "
        f"{rho[ensemble] - rho[best]:+.3f} [{low:+.3f}, {high:+.3f}], "
        f"P(> 0) = {np.mean(gain.bootstrap_distribution > 0):.3f}\n"
        f"load average: {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", default="nb101,darts", help="comma-separated: nb101, darts")
    parser.add_argument("--proxies", default=PROXIES, help="comma-separated single proxies")
    parser.add_argument("--ensemble", default="ensemble", help="its members must be proxies")
    parser.add_argument("--seed", type=int, default=0, help="minibatch and initialisation seed")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--speed-cells", type=int, default=10, help="cells per speed (0: none)")
    parser.add_argument("--split-seed", type=int, default=0, help="development / report halves")
    parser.add_argument("--choose", action="store_true", help="weigh on the development half")
    parser.add_argument("--data", default=str(SHARED / "cifar10-subset.npz"))
    parser.add_argument("--out", default=str(ROOT / "measurements" / "results"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # the machine's 2 cores are shared; seconds are one thread's
    for path in (args.data, *(SHARED / file for file, _ in SAMPLES.values())):
        if not Path(path).is_file():
            raise SystemExit(f"{path}: not found; this measurement needs ../shared reference data")
    data = load_data(f"npz:{args.data}")
    names = args.proxies.split(",")
    print(f"torch {torch.__version__}, 1 thread, seed {args.seed}")
    for space_name in args.spaces.split(","):
        file, archs_of = SAMPLES[space_name]
        sample = pd.read_csv(SHARED / file)
        sample["arch"] = archs_of(sample)
        space = get_space(space_name)
        context = EstimatorContext(space, data, seed=args.seed)  # batch 128
        estimators = [get_estimator(name, context) for name in names]
        cache = Path(args.out) / f"zero_cost_spaces_{space_name}.csv"
        start = time.perf_counter()
        scores = cached_scores(space, estimators, names, sample["arch"], cache)
        joined = sample[["arch", "valid_acc"]].merge(scores, on="arch")  # not the sample's params
        development, held_out = halves(joined, args.split_seed)
        if args.choose:
            choose(context, development)
            continue
        ensemble = get_estimator(args.ensemble, context)
        held_out = held_out.assign(
            **{args.ensemble: [ensemble.combine(row) for row in held_out[ensemble.names].values]}
        )
        columns = [*names, args.ensemble]
        timing = argparse.Namespace(pool_seed=args.seed, speed_cells=args.speed_cells)
        seconds = speed(timing, space, context, columns) if args.speed_cells else {}
        report(space_name, held_out, columns, seconds, args.resamples)
        print(
            f"{space_name}: {time.perf_counter() - start:.0f} s (scoring, reference cells, speed)"
        )


if __name__ == "__main__":
    main()
