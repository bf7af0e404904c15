"""PPO controller vs random search on the NAS-Bench-201 table (valid_acc as reward).

Each repeat searches with `table:valid_acc` for `--queries` lookups and returns the cell with the
best validation accuracy; its test accuracy is read afterwards. Prints mean +- std of test accuracy
per strategy, and the difference with a Mann-Whitney U test.

    python measurements/controller_nb201.py --repeats 50 --queries 500
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
from scipy.stats import mannwhitneyu
from tqdm import tqdm

from nasbox.benchmarks import TabularBenchmark
from nasbox.benchmarks.compare import run_on_benchmark
from nasbox.spaces import get_space

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=str(ROOT.parent / "shared/data/nb201-cifar10.csv"))
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--strategies", default="ppo,random")
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = TabularBenchmark.from_file(args.table)
    space = get_space("nb201")
    results: dict[str, list[float]] = {}
    for strategy in args.strategies.split(","):
        start = time.perf_counter()
        finals = []
        for repeat in tqdm(range(args.repeats), desc=strategy):
            run = run_on_benchmark(
                table,
                space,
                strategy,
                metric="valid_acc",
                report="test_acc",
                budget=args.queries,
                seed=repeat,
                run=repeat,
            )
            finals.append(run.result(args.queries))
        results[strategy] = finals
        print(
            f"{strategy:>15}: test_acc {statistics.mean(finals):.3f} +- "
            f"{statistics.stdev(finals):.3f} over {args.repeats} repeats of {args.queries} "
            f"queries ({time.perf_counter() - start:.0f} s)"
        )
    names = list(results)
    if len(names) == 2:
        a, b = names
        p = mannwhitneyu(results[a], results[b], alternative="greater").pvalue
        diff = statistics.mean(results[a]) - statistics.mean(results[b])
        print(f"{a} - {b}: {diff:+.3f} points (one-sided Mann-Whitney p = {p:.3g})")


if __name__ == "__main__":
    main()
