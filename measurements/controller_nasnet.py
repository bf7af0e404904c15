"""PPO controller vs random sampling on the nasnet space with the NASWOT reward.

For each seed the controller proposes `--children` cells (scored small: 1 normal cell per stage,
C=8, on one minibatch of `--data`), and random sampling scores `--random` cells with the same
estimator. Prints the mean reward of the controller's last 100 children and of the random cells,
per seed and overall; saves every reward to CSV and a reward-curve PNG (controller mean per
minibatch against random sampling's mean per block of the same size).

    python measurements/controller_nasnet.py --seeds 5 --children 300 --random 100
"""

import argparse
import csv
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from nasbox.data import load_data
from nasbox.estimators import EstimatorContext, get_estimator
from nasbox.runs import run_search
from nasbox.spaces import get_space
from nasbox.strategies import get_strategy

ROOT = Path(__file__).resolve().parents[1]


def finite_mean(values) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.mean(finite) if finite else -math.inf


def block_means(values, size: int) -> list[float]:
    return [finite_mean(values[i : i + size]) for i in range(0, len(values) - size + 1, size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=f"npz:{ROOT.parent / 'shared/data/cifar10-subset.npz'}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--children", type=int, default=300)
    parser.add_argument("--random", type=int, default=100)
    parser.add_argument("--last", type=int, default=100, help="controller children compared")
    parser.add_argument("--strategy", default="ppo")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", default=str(ROOT / "measurements/results"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space = get_space("nasnet")
    data = load_data(args.data)
    rows, curves = [], []
    for seed in range(args.seeds):
        context = EstimatorContext(space, data, seed=seed, batch_size=args.batch_size)
        naswot = get_estimator("naswot", context)
        runs = {}
        for name, budget in ((args.strategy, args.children), ("random", args.random)):
            strategy = get_strategy(name, space, seed=seed)
            start = time.perf_counter()
            trials = run_search(strategy, naswot, budget, description=f"{name} seed {seed}")
            runs[name] = [t.value for t in trials]
            seconds = time.perf_counter() - start
            for t in trials:
                rows.append((seed, name, t.number, repr(t.value), f"{t.seconds:.3f}"))
            print(f"seed {seed} {name}: {budget} children in {seconds:.0f} s", flush=True)
        controller, random = runs[args.strategy], runs["random"]
        last = finite_mean(controller[-args.last :])
        baseline = finite_mean(random)
        print(
            f"seed {seed}: controller last {args.last} mean {last:.2f}, random mean "
            f"{baseline:.2f}, difference {last - baseline:+.2f}",
            flush=True,
        )
        curves.append((controller, random, last, baseline))
    lasts = [c[2] for c in curves]
    baselines = [c[3] for c in curves]
    wins = sum(a > b for a, b in zip(lasts, baselines, strict=True))
    print(
        f"over {args.seeds} seeds: controller last-{args.last} mean {statistics.mean(lasts):.2f}"
        f", random mean {statistics.mean(baselines):.2f}; controller higher in {wins}/"
        f"{args.seeds} seeds"
    )
    with (out / "controller_nasnet.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("seed", "strategy", "number", "naswot", "seconds"))
        writer.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minibatch = 20
    figure, axis = plt.subplots(figsize=(6.5, 4), dpi=120)
    controller_curve = np.nanmean([block_means(c[0], minibatch) for c in curves], axis=0)
    random_level = np.mean([finite_mean(c[1]) for c in curves])
    steps = np.arange(1, len(controller_curve) + 1) * minibatch
    axis.plot(steps, controller_curve, "o-", label=f"{args.strategy} controller (minibatch mean)")
    random_curve = np.nanmean([block_means(c[1], minibatch) for c in curves], axis=0)
    axis.plot(np.arange(1, len(random_curve) + 1) * minibatch, random_curve, "s--", label="random")
    axis.axhline(random_level, color="C1", alpha=0.4)
    axis.set_xlabel("children")
    axis.set_ylabel(f"NASWOT reward (mean over {args.seeds} seeds)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "controller_nasnet.png")
    print(f"wrote {out / 'controller_nasnet.csv'} and {out / 'controller_nasnet.png'}")


if __name__ == "__main__":
    main()
