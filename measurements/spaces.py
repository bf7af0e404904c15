"""The search spaces of the NASWOT paper: published cells' sizes, NASWOT speed, NASWOT ranking.

1. Parameters of the named cells at their papers' CIFAR-10 configurations (each space's
   `published_size`), counted on the `meta` device without the auxiliary head, as DARTS counts,
   beside the published figures; and the NAS-Bench-101 builder against all 60 reference cells.
2. NASWOT seconds per cell for every space at batch 128 (build + one forward pass, 2 torch
   threads), on the network each space scores at (its `build` defaults), over seeded cells: the
   wall time, and the CPU time of all threads, which a busy machine inflates far less.
3. NASWOT's Kendall tau and Spearman rho against the reference samples' validation accuracy, with
   95 % bootstrap intervals: `nb101-sample.csv` (60 cells) and `darts-sample.csv` (200 genotypes).

    python measurements/spaces.py --cells 20 --resamples 2000
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from nasbox.data import ImageData, load_data
from nasbox.estimators import EstimatorContext, get_estimator
from nasbox.estimators.cost import count_parameters
from nasbox.spaces import SPACES, get_space

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
# space, named cell, published parameters (M), source
PUBLISHED = (
    ("nasnet", "nasnet-a", 3.3, "Zoph et al. 2018, Table 1 (6@768)"),
    ("darts", "darts-v1", 3.3, "Liu et al. 2019, Table 1 (first order)"),
    ("darts", "darts-v2", 3.3, "Liu et al. 2019, Table 1 (second order)"),
    ("amoeba", "amoebanet-a", 3.2, "Real et al. 2019 (N=6, F=36)"),
    ("pnas", "pnasnet-5", 3.2, "Liu et al. 2018 (N=3, F=48)"),
    ("enas", "enas", 4.6, "Pham et al. 2018, Table 2"),
)


def parameters_m(space, arch) -> tuple[float, str]:
    cells, filters = space.published_size
    options, built = space.network_options(arch, cells, filters)
    with torch.device("meta"):
        network = space.build(arch, num_classes=10, **options)
    return count_parameters(network) / 1e6, f"{cells}@{built}"


def nb101_spec(adjacency: str, ops: str) -> str:
    matrix = [[int(bit) for bit in row] for row in adjacency.split("/")]
    return json.dumps({"matrix": matrix, "ops": ops.split(",")})


def published_counts() -> None:
    print("| space | cell | N@F | parameters (M) | published (M) | difference | source |")
    print("| --- | --- | --- | ---: | ---: | ---: | --- |")
    for name, cell, paper, source in PUBLISHED:
        space = get_space(name)
        params, size = parameters_m(space, space.parse(cell))
        print(
            f"| {name} | {cell} | {size} | {params:.3f} | {paper} | "
            f"{(params - paper) / paper:+.1%} | {source} |"
        )
    sample = SHARED / "nb101-sample.csv"
    if sample.is_file():
        space = get_space("nb101")
        frame = pd.read_csv(sample)
        exact = 0
        for adjacency, ops, expected in frame[["adjacency", "ops", "params"]].itertuples(False):
            arch = space.parse(nb101_spec(adjacency, ops))
            with torch.device("meta"):
                network = space.build(arch, num_classes=10, stem_channels=128, cells_per_stack=3)
            exact += count_parameters(network) == expected
        print(f"\nnb101: {exact} of {len(frame)} reference cells have the benchmark's exact count")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f}")


def naswot_speed(data: ImageData, cells: int) -> None:
    print(
        "\n| space | scoring network (median parameters) | NASWOT s per cell (median wall) "
        "| CPU s per cell (median, all threads) | cells |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in SPACES.names():
        space = get_space(name)
        if space.modality != "image":
            continue  # NASWOT reads an image network's ReLUs; rnn cells have no image network
        shared = EstimatorContext(space, data, seed=0, batch_size=128)
        naswot = get_estimator("naswot", shared)
        rng = np.random.default_rng(0)
        archs = [space.sample(rng) for _ in range(cells)]
        naswot(archs[0])  # warm-up: first-call allocations
        seconds, cpu, sizes = [], [], []
        for arch in archs:
            start, start_cpu = time.perf_counter(), time.process_time()
            naswot(arch)
            seconds.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            sizes.append(count_parameters(shared.build(arch)) / 1e6)
        print(
            f"| {name} | {statistics.median(sizes):.3f} M | {statistics.median(seconds):.3f} | "
            f"{statistics.median(cpu):.3f} | {cells} |"
        )


def correlation(scores: np.ndarray, accuracy: np.ndarray, resamples: int) -> str:
    finite = np.isfinite(scores)
    scores, accuracy = scores[finite], accuracy[finite]
    parts = []
    for label, measure in (("Kendall", stats.kendalltau), ("Spearman", stats.spearmanr)):
        value = measure(scores, accuracy).statistic
        interval = stats.bootstrap(
            (scores, accuracy),
            lambda x, y, measure=measure: measure(x, y).statistic,
            paired=True,
            vectorized=False,
            n_resamples=resamples,
            random_state=0,
        ).confidence_interval
        parts.append(f"{label} {value:.3f} [{interval.low:.3f}, {interval.high:.3f}]")
    return f"{', '.join(parts)} ({len(scores)} cells)"


def naswot_ranking(data: ImageData, resamples: int) -> None:
    samples = (
        ("nb101", "nb101-sample.csv", lambda row: nb101_spec(row.adjacency, row.ops)),
        ("darts", "darts-sample.csv", lambda row: row.genotype),
    )
    for name, file, text in samples:
        path = SHARED / file
        if not path.is_file():
            print(f"\n{name}: {path} is absent; skipped")
            continue
        frame = pd.read_csv(path)
        space = get_space(name)
        naswot = get_estimator("naswot", EstimatorContext(space, data, seed=0, batch_size=128))
        scores = np.array([naswot(space.parse(text(row))) for row in frame.itertuples()])
        accuracy = frame["valid_acc"].to_numpy()
        print(f"\nNASWOT on {file}: {correlation(scores, accuracy, resamples)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20, help="seeded cells per space for speed")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    args = parser.parse_args()
    torch.set_num_threads(2)
    published_counts()
    data = load_data(f"npz:{SHARED / 'cifar10-subset.npz'}")  # read once, scored by both
    naswot_speed(data, args.cells)
    naswot_ranking(data, args.resamples)


if __name__ == "__main__":
    main()
