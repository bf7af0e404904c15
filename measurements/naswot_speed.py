"""NASWOT at the machine's limit: seconds per NAS-Bench-201 cell against the compute floor.

On N seeded NB201 cells at batch 128 of `cifar10-subset.npz`, measured in one run:

1. The floor: 2 x the cells' mean multiply-adds / the peak of a 4096^2 float32 matrix product
   on all cores (and the bfloat16 one, for reference).
2. A plain no-grad forward pass per cell (network built beforehand), fp32 and bf16.
3. NASWOT throughput (build + score, start-up and one warm-up cell excluded) for each setting:
   precision x (processes, threads per process), as seconds per cell and as a ratio to the floor.
4. The ranking check: Spearman between bf16 and fp32 scores of `--rank-cells` seeded cells, and
   each one's Kendall tau against the benchmark's `valid_acc` (scores cached as CSV).
5. The same per space (bf16 against fp32, best process layout), and the wall time of a real
   `nasbox search --samples 100 --workers 2` from the shell, start-up included.

    python measurements/naswot_speed.py --cells 100 --rank-cells 500
"""

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from nasbox.cpu import keep_freed_memory
from nasbox.data import load_data
from nasbox.estimators import EstimatorContext, get_estimator
from nasbox.estimators.cost import count_multiply_adds
from nasbox.spaces import get_space
from nasbox.strategies import get_strategy

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CORES = os.cpu_count() or 1
BATCH = 128


def seeded_cells(space_name: str, count: int, seed: int) -> list[str]:
    """`count` distinct cells, as the random strategy draws them from `seed`."""
    space = get_space(space_name)
    strategy = get_strategy("random", space, seed=seed)
    return [space.format(strategy.ask()) for _ in range(count)]


def context_for(space_name: str, data_path: str, precision: str) -> EstimatorContext:
    data = load_data(f"npz:{data_path}")
    return EstimatorContext(get_space(space_name), data, batch_size=BATCH, precision=precision)


def matmul_peak(dtype: torch.dtype, size: int = 4096, repeats: int = 5) -> float:
    """GFLOP/s of the fastest of `repeats` square matrix products."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = min(_seconds(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _seconds(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _score_share(space_name, data_path, precision, threads, cells, barrier, results) -> None:
    """One scoring process: set up, score one warm-up cell, wait for the others, then time."""
    torch.set_num_threads(threads)
    keep_freed_memory()
    context = context_for(space_name, data_path, precision)
    space = context.space
    naswot = get_estimator("naswot", context)
    archs = [space.parse(text) for text in cells]
    naswot(archs[0])
    barrier.wait()
    start = time.perf_counter()
    scores = [naswot(arch) for arch in archs]
    results.put((start, time.perf_counter(), cells, scores))


def throughput(space_name, data_path, cells, precision, processes, threads) -> tuple[float, dict]:
    """Seconds per cell of `processes` scoring processes together, and every cell's score."""
    mp = multiprocessing.get_context("spawn")
    barrier, results = mp.Barrier(processes), mp.Queue()
    shares = [cells[index::processes] for index in range(processes)]
    workers = [
        mp.Process(
            target=_score_share,
            args=(space_name, data_path, precision, threads, share, barrier, results),
        )
        for share in shares
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    span = max(end for _, end, _, _ in outcomes) - min(start for start, _, _, _ in outcomes)
    scores = {}
    for _, _, names, values in outcomes:
        scores.update(zip(names, values, strict=True))
    return span / len(cells), scores


def floor_and_forward(args, cells: list[str]) -> dict:
    """Multiply-adds, matrix-product peaks and plain forward passes, all in this process."""
    torch.set_num_threads(CORES)
    keep_freed_memory()
    context = context_for("nb201", args.data, "fp32")
    space = context.space
    images = get_estimator("naswot", context).images
    archs = [space.parse(text) for text in cells[: args.forward_cells]]
    networks = [context.build(arch).train() for arch in archs]
    shape = tuple(images.shape[1:])
    macs = float(np.mean([BATCH * count_multiply_adds(network, shape) for network in networks]))
    peaks = {
        name: matmul_peak(dtype)
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
    }
    forward = {}
    for precision in ("fp32", "bf16"):
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
        with torch.no_grad(), autocast:
            networks[0](images)
            forward[precision] = float(np.mean([_seconds(lambda n=n: n(images)) for n in networks]))
    return {"macs": macs, "peaks": peaks, "forward": forward}


def speed_table(args, cells: list[str], measured: dict) -> dict:
    floor = 2 * measured["macs"] / (measured["peaks"]["fp32"] * 1e9)
    print(
        f"\nNB201, batch {BATCH}, {args.cells} cells; {measured['macs'] / 1e9:.2f} G multiply-adds "
        f"per cell; matrix-product peak {measured['peaks']['fp32']:.0f} GFLOP/s fp32, "
        f"{measured['peaks']['bf16']:.0f} bf16 ({CORES} threads); floor {floor:.4f} s per cell\n"
    )
    print("| setting | seconds per cell | x floor |")
    print("| --- | ---: | ---: |")
    print(f"| floor (2 x multiply-adds / fp32 peak) | {floor:.4f} | 1.00 |")
    for precision in ("fp32", "bf16"):
        seconds = measured["forward"][precision]
        setting = f"plain forward, {precision}, 1 x {CORES} threads"
        print(f"| {setting} | {seconds:.4f} | {seconds / floor:.2f} |")
    settings = [(1, CORES), (CORES, 1)] if CORES > 1 else [(1, 1)]
    scored = {}
    for precision in ("fp32", "bf16"):
        for processes, threads in settings:
            seconds, scores = throughput("nb201", args.data, cells, precision, processes, threads)
            scored[(precision, processes)] = (seconds, scores)
            print(
                f"| NASWOT {precision}, {processes} process(es) x {threads} thread(s) "
                f"| {seconds:.4f} | {seconds / floor:.2f} |"
            )
    return scored


def ranking_check(args) -> None:
    """bf16 against fp32 on `--rank-cells` cells, both scored by CORES one-thread processes."""
    cache = Path(args.scores)
    cells = seeded_cells("nb201", args.rank_cells, args.seed)
    known = (
        pd.read_csv(cache) if cache.is_file() else pd.DataFrame(columns=["arch", "fp32", "bf16"])
    )
    known = known[known["arch"].isin(cells)]
    todo = [cell for cell in cells if cell not in set(known["arch"])]
    if todo:
        columns = {}
        for precision in ("fp32", "bf16"):
            _, scores = throughput("nb201", args.data, todo, precision, CORES, 1)
            columns[precision] = [scores[cell] for cell in todo]
        known = pd.concat([known, pd.DataFrame({"arch": todo, **columns})], ignore_index=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        known.to_csv(cache, index=False)
    known = known.astype({"fp32": float, "bf16": float})
    table = pd.read_csv(args.table)[["arch", "valid_acc"]]
    joined = known.merge(table, on="arch")
    finite = joined[np.isfinite(joined["fp32"]) & np.isfinite(joined["bf16"])]
    rho = stats.spearmanr(finite["fp32"], finite["bf16"]).statistic
    taus = {p: stats.kendalltau(joined[p], joined["valid_acc"]).statistic for p in ("fp32", "bf16")}
    singular = {p: int((~np.isfinite(joined[p])).sum()) for p in ("fp32", "bf16")}
    print(
        f"\nranking, {len(joined)} seeded cells: Spearman(bf16, fp32) {rho:.5f} over "
        f"{len(finite)} finite pairs; -inf scores fp32 {singular['fp32']}, bf16 "
        f"{singular['bf16']}; Kendall vs valid_acc fp32 {taus['fp32']:.4f}, bf16 "
        f"{taus['bf16']:.4f} (difference {abs(taus['fp32'] - taus['bf16']):.4f}); largest "
        f"score difference {np.max(np.abs(finite['fp32'] - finite['bf16'])):.3f}"
    )


def per_space(args) -> None:
    print("\n| space | cells | fp32 s per cell | bf16 s per cell | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for space_name in args.spaces:
        cells = seeded_cells(space_name, args.space_cells, args.seed)
        fp32, _ = throughput(space_name, args.data, cells, "fp32", CORES, 1)
        bf16, _ = throughput(space_name, args.data, cells, "bf16", CORES, 1)
        print(f"| {space_name} | {len(cells)} | {fp32:.3f} | {bf16:.3f} | {fp32 / bf16:.2f}x |")


def end_to_end(args) -> None:
    """A real search from the shell, start-up included, `--workers CORES`."""
    nasbox = Path(sys.executable).with_name("nasbox")
    with tempfile.TemporaryDirectory() as folder:
        command = [
            str(nasbox),
            "search",
            "--space",
            "nb201",
            "--estimator",
            "naswot",
            "--samples",
            str(args.search_samples),
            "--data",
            f"npz:{args.data}",
            "--seed",
            str(args.seed),
            "--workers",
            str(CORES),
            "--out",
            folder,
            "--overwrite",
            "--quiet",
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        seconds = time.perf_counter() - start
    print(
        f"\n`nasbox search --samples {args.search_samples} --workers {CORES}` (bf16 by "
        f"--precision auto where the CPU has it): {seconds:.1f} s wall, start-up included"
    )


def compiled_block(args) -> None:
    """torch.compile against eager on NB201's commonest op, ReLU-Conv3x3-BN at 16 channels, as
    NASWOT runs it: batch 128 of 32x32 in channels-last, bf16 autocast, no gradients, BatchNorm
    on batch statistics, one thread. Inductor could fuse the ReLU and the BatchNorm around the
    convolution; whether that pays for its compile time is what this prints."""
    from nasbox.estimators.naswot import batch_statistics_only
    from nasbox.spaces.layers import ReLUConvBN

    torch.set_num_threads(1)
    block = ReLUConvBN(16, 16, 3, 1, 1).to(memory_format=torch.channels_last).train()
    x = torch.randn(128, 16, 32, 32, generator=torch.Generator().manual_seed(args.seed))
    x = x.to(memory_format=torch.channels_last)

    def milliseconds(function, passes: int = 200) -> float:
        for _ in range(5):
            function(x)
        start = time.perf_counter()
        for _ in range(passes):
            function(x)
        return 1000 * (time.perf_counter() - start) / passes

    autocast = torch.autocast("cpu", dtype=torch.bfloat16)
    with torch.no_grad(), autocast, batch_statistics_only(block):
        start = time.perf_counter()
        compiled = torch.compile(block, dynamic=False)
        compiled(x)
        print(f"\ntorch.compile of ReLU-Conv3x3-BN: first call {time.perf_counter() - start:.1f} s")
        for _ in range(3):
            print(f"eager {milliseconds(block):.2f} ms, compiled {milliseconds(compiled):.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=100, help="cells per throughput setting")
    parser.add_argument("--forward-cells", type=int, default=20, help="cells for the floor")
    parser.add_argument("--rank-cells", type=int, default=500)
    parser.add_argument("--space-cells", type=int, default=20)
    parser.add_argument(
        "--spaces", nargs="*", default=["nb201", "nats-size", "nb101", "nasnet", "darts"]
    )
    parser.add_argument("--search-samples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=str(SHARED / "cifar10-subset.npz"))
    parser.add_argument("--table", default=str(SHARED / "nb201-cifar10.csv"))
    parser.add_argument(
        "--scores", default=str(ROOT / "measurements" / "results" / "naswot_speed_scores.csv")
    )
    parser.add_argument(
        "--parts",
        nargs="*",
        default=["speed", "ranking", "spaces", "search"],
        help="which parts to run (and compile: torch.compile on one block)",
    )
    args = parser.parse_args()
    for path in (args.data, args.table):
        if not Path(path).is_file():
            raise SystemExit(f"{path}: not found; this measurement needs ../shared reference data")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    if "speed" in args.parts:
        cells = seeded_cells("nb201", args.cells, args.seed)
        speed_table(args, cells, floor_and_forward(args, cells))
    if "ranking" in args.parts:
        ranking_check(args)
    if "spaces" in args.parts:
        per_space(args)
    if "search" in args.parts:
        end_to_end(args)
    if "compile" in args.parts:
        compiled_block(args)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
