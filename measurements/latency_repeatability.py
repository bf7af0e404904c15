"""How much the `latency` estimator of one cell varies between repeated measurements.

The issue's target: repeated measurements of one cell vary by at most 10 %. Each setting times
the same NB201 cell `--calls` times, either as a user would (`nasbox score --estimator latency`
in a fresh process each time, `OMP_NUM_THREADS` set) or as a search does (the estimator called
again in one process). Printed per setting: the values, their median, max / min and the largest
deviation from the median, with the load average before and after (other jobs on the machine
move the figures more than anything in nasbox).

In one process each call of the estimator is followed by timings of the machine itself, with no
nasbox code: fixed chains of matrix products, each pass about as long as the cell's, timed by the
same `median_milliseconds`. One stays in the core's cache; the other reads as many weight bytes
per pass as the cell does, from the memory this virtual machine shares. Interleaved, they see the
same moments of the machine as the cell: where a reference varies as much as the cell, the spread
is the machine's, and the ratio of the cell to a reference shows what is left.

    python measurements/latency_repeatability.py --calls 8
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from nasbox.cpu import keep_freed_memory
from nasbox.estimators import EstimatorContext, get_estimator
from nasbox.estimators.latency import median_milliseconds
from nasbox.spaces import get_space

CELL = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "nor_conv_3x3~2|"
)
NASBOX = Path(sys.executable).with_name("nasbox")


def fresh_processes(cell: str, calls: int, threads: int) -> list[float]:
    """`nasbox score --estimator latency` run `calls` times, each in a new process."""
    environment = os.environ | {"OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as folder:
        archs = Path(folder) / "cell.txt"
        archs.write_text(cell + "\n")
        command = [str(NASBOX), "score", "--estimator", "latency", "--archs", str(archs)]
        values = []
        for _ in range(calls):
            output = subprocess.run(
                [*command, "--quiet"], env=environment, capture_output=True, text=True, check=True
            ).stdout
            values.append(float(output.splitlines()[1].split(",")[1]))
    return values


class MatrixProducts(nn.Module):
    """A fixed workload without nasbox code: `products` products with 4 seeded n x n matrices."""

    def __init__(self, n: int, products: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.products = products
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(n, n, generator=generator) / n**0.5) for _ in range(4)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index in range(self.products):
            x = x @ self.weights[index % 4]
        return x


#: (name, n, rows of x, products): a compute-bound chain that stays in each core's 2 MB cache,
#: and a memory-bound one that, like the cell's batch-1 pass over its 1.3M weights (5 MB), reads
#: more weights per pass than the cache holds, from memory the machine shares.
REFERENCES = (
    ("in-cache 256 x 256 products", 256, 256, 32),
    ("memory-bound 4 MB of weights x 1 row", 512, 1, 64),
)


def interleaved(cell: str, calls: int, threads: int) -> dict[str, list[float]]:
    """The estimator called `calls` times in this process, as a search calls it, each call
    followed by `median_milliseconds` of every reference, so that all see the same machine."""
    torch.set_num_threads(threads)
    space = get_space("nb201")
    latency = get_estimator("latency", EstimatorContext(space))
    workloads = [
        (
            name,
            MatrixProducts(n, products),
            torch.randn(rows, n, generator=torch.Generator().manual_seed(1)),
        )
        for name, n, rows, products in REFERENCES
    ]
    values: dict[str, list[float]] = {"the cell": []} | {name: [] for name, *_ in REFERENCES}
    for _ in range(calls):
        values["the cell"].append(latency(space.parse(cell)))
        for name, workload, x in workloads:
            values[name].append(median_milliseconds(workload, x))
    return values


def report(setting: str, values: list[float]) -> str:
    median = statistics.median(values)
    spread = max(values) / min(values)
    deviation = max(abs(value / median - 1) for value in values)
    listed = ", ".join(f"{value:.2f}" for value in values)
    return f"| {setting} | {listed} | {median:.2f} | {spread:.3f} | {deviation:.1%} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default=CELL)
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    args = parser.parse_args()
    keep_freed_memory()  # as the `nasbox` command does at start-up, for the calls in this process
    threads = [int(part) for part in args.threads.split(",")]
    print(f"cell {args.cell}, batch 1, load average {os.getloadavg()[0]:.2f}")
    print("| setting | milliseconds | median | max / min | largest deviation from the median |")
    print("| --- | --- | ---: | ---: | ---: |")
    for count in threads:
        values = fresh_processes(args.cell, args.calls, count)
        print(report(f"{args.calls} processes, {count} thread(s)", values), flush=True)
    for count in threads:
        values = interleaved(args.cell, args.calls, count)
        setting = f"{args.calls} calls in one process, {count} thread(s)"
        for name, series in values.items():
            print(report(f"{setting}: {name}", series), flush=True)
        for name, *_ in REFERENCES:
            ratios = [a / b for a, b in zip(values["the cell"], values[name], strict=True)]
            print(report(f"{setting}: the cell / {name}", ratios), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
