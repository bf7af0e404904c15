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

Two more parts separate the estimator from the machine. `copies`: `--copies` networks of the cell,
each built on its own, timed pass by pass in turn over many rounds, so that all see the same
moments; the spread of their medians is what building and timing the cell adds. `drift`: the cell
and both references timed pass by pass in turn, without pause, for `--drift-seconds`; the
medians of consecutive windows of 0.5 to 16 s show how far the machine's own speed moves between
two measurements of that length.

    python measurements/latency_repeatability.py --calls 8
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nasbox.cpu import keep_freed_memory
from nasbox.estimators import EstimatorContext, get_estimator
from nasbox.estimators.latency import WARMUP, median_milliseconds
from nasbox.spaces import get_space

CELL = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "nor_conv_3x3~2|"
)
NASBOX = Path(sys.executable).with_name("nasbox")
# `nasbox score` times the network its --data feeds (digits' 1x8x8 images without it); the CIFAR
# subset's 3x32x32 images give the network the in-process calls time (EstimatorContext without
# data).
CIFAR = Path(__file__).resolve().parents[1].parent / "shared/data/cifar10-subset.npz"


def fresh_processes(cell: str, calls: int, threads: int) -> list[float]:
    """`nasbox score --estimator latency` run `calls` times, each in a new process."""
    environment = os.environ | {"OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as folder:
        archs = Path(folder) / "cell.txt"
        archs.write_text(cell + "\n")
        command = [str(NASBOX), "score", "--estimator", "latency", "--archs", str(archs)]
        command += ["--data", f"npz:{CIFAR}"]
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


def matrix_products(n: int, rows: int, products: int) -> tuple[nn.Module, torch.Tensor]:
    x = torch.randn(rows, n, generator=torch.Generator().manual_seed(1))
    return MatrixProducts(n, products), x


def plain_convolutions() -> tuple[nn.Module, torch.Tensor]:
    """A plain ResNet-like stack of torch 3x3 convolutions (16, 32, 64 channels, 5 per stage,
    BN and ReLU) on one 32x32 image: convolutions like the cell's, with no nasbox code."""
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16)]
    channels = 16
    for stage, width in enumerate((16, 32, 64)):
        if stage:
            layers += [nn.ReLU(), nn.Conv2d(channels, width, 3, 2, 1), nn.BatchNorm2d(width)]
            channels = width
        for _ in range(5):
            layers += [nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width)]
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10)]
    return nn.Sequential(*layers, *head).eval(), torch.randn(1, 3, 32, 32)


#: Fixed workloads timed beside the cell: a compute-bound chain of products that stays in each
#: core's 2 MB cache; a memory-bound one that, like the cell's batch-1 pass over its 1.3M weights
#: (5 MB), reads more weights per pass than the cache holds, from memory the machine shares; and
#: plain torch convolutions.
REFERENCES = (
    ("in-cache 256 x 256 products", lambda: matrix_products(256, 256, 32)),
    ("memory-bound 4 MB of weights x 1 row", lambda: matrix_products(512, 1, 64)),
    ("plain torch convolutions", plain_convolutions),
)


def interleaved(cell: str, calls: int, threads: int) -> dict[str, list[float]]:
    """The estimator called `calls` times in this process, as a search calls it, each call
    followed by `median_milliseconds` of every reference, so that all see the same machine."""
    torch.set_num_threads(threads)
    space = get_space("nb201")
    latency = get_estimator("latency", EstimatorContext(space))
    workloads = [(name, *build()) for name, build in REFERENCES]
    values: dict[str, list[float]] = {"the cell": []} | {name: [] for name, *_ in REFERENCES}
    for _ in range(calls):
        values["the cell"].append(latency(space.parse(cell)))
        for name, workload, x in workloads:
            values[name].append(median_milliseconds(workload, x))
    return values


def timed_in_turn(networks: list[nn.Module], inputs: list[torch.Tensor], passes: int) -> np.ndarray:
    """Milliseconds of `passes` rounds in which each network runs once, in turn: one row per
    network, one column per round."""
    times = np.empty((len(networks), passes))
    with torch.no_grad():
        for network, x in zip(networks, inputs, strict=True):
            for _ in range(WARMUP):
                network.eval()(x)
        for column in range(passes):
            for row, (network, x) in enumerate(zip(networks, inputs, strict=True)):
                start = time.perf_counter()
                network(x)
                times[row, column] = time.perf_counter() - start
    return 1000 * times


def cell_and_input(cell: str) -> tuple[nn.Module, torch.Tensor]:
    """A freshly built network of the cell and the estimator's seeded batch of one image."""
    space = get_space("nb201")
    latency = get_estimator("latency", EstimatorContext(space))
    return latency.context.build(space.parse(cell)), latency.images


def copies_in_turn(cell: str, copies: int, passes: int) -> list[float]:
    """Median milliseconds of each of `copies` separately built networks of the cell."""
    networks, inputs = zip(*(cell_and_input(cell) for _ in range(copies)), strict=True)
    return list(np.median(timed_in_turn(list(networks), list(inputs), passes), axis=1))


def drift(cell: str, seconds: float) -> list[str]:
    """The cell and the references in turn for about `seconds`; per window length, the max / min
    and coefficient of variation of each series' medians over consecutive windows."""
    networks, inputs = zip(cell_and_input(cell), *(build() for _, build in REFERENCES), strict=True)
    round_seconds = timed_in_turn(networks, inputs, 20).sum(axis=0).mean() / 1000
    times = timed_in_turn(networks, inputs, int(seconds / round_seconds))
    lines = []
    for window in (0.5, 1, 2, 4, 8, 16):
        width = max(1, round(window / round_seconds))
        count = times.shape[1] // width
        if count < 2:
            break
        windows = times[:, : count * width].reshape(len(networks), count, width)
        medians = np.median(windows, axis=2)
        spread = [f"{m.max() / m.min():.3f} (cv {m.std() / m.mean():.1%})" for m in medians]
        lines.append(f"| {window:g} s | {count} | {' | '.join(spread)} |")
    return lines


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
    parser.add_argument(
        "--parts", default="processes,calls,copies,drift", help="comma-separated parts to run"
    )
    parser.add_argument("--copies", type=int, default=6, help="copies of the cell, in turn")
    parser.add_argument("--drift-seconds", type=float, default=64.0)
    args = parser.parse_args()
    keep_freed_memory()  # as the `nasbox` command does at start-up, for the calls in this process
    threads = [int(part) for part in args.threads.split(",")]
    parts = args.parts.split(",")
    print(f"cell {args.cell}, batch 1, load average {os.getloadavg()[0]:.2f}")
    print("| setting | milliseconds | median | max / min | largest deviation from the median |")
    print("| --- | --- | ---: | ---: | ---: |")
    for count in threads if "processes" in parts else ():
        values = fresh_processes(args.cell, args.calls, count)
        print(report(f"{args.calls} processes, {count} thread(s)", values), flush=True)
    for count in threads if "calls" in parts else ():
        values = interleaved(args.cell, args.calls, count)
        setting = f"{args.calls} calls in one process, {count} thread(s)"
        for name, series in values.items():
            print(report(f"{setting}: {name}", series), flush=True)
        for name, *_ in REFERENCES:
            ratios = [a / b for a, b in zip(values["the cell"], values[name], strict=True)]
            print(report(f"{setting}: the cell / {name}", ratios), flush=True)
    torch.set_num_threads(1)
    if "copies" in parts:
        values = copies_in_turn(args.cell, args.copies, passes=500)
        setting = f"{args.copies} copies of the cell in turn, 500 passes each, 1 thread"
        print(report(setting, values), flush=True)
    if "drift" in parts:
        print(
            f"\nthe cell and the references in turn for {args.drift_seconds:g} s, 1 thread: "
            "max / min of the medians of consecutive windows\n\n"
            f"| window | windows | the cell | {' | '.join(name for name, *_ in REFERENCES)} |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: |"
        )
        print("\n".join(drift(args.cell, args.drift_seconds)), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
