"""The rnn ground-truth protocol's training step against its matrix-product floor, one thread.

Why the 200-cell table takes more than an hour (README, "Recurrent cells"): a training step of
the protocol (`RNNProtocol`: 64 hidden units, 128 streams x 20 steps) is timed through the real
training (`train_cell` on `--steps` chunks of the corpus, validation included) for DARTS V2 and
`--cells` seeded random cells, and compared with the floor: the time of the cell's matrix
products alone at the protocol's shapes. Per time step, the cell's 1 + 8 weights (W0's
hidden half and one per node) each take a forward product, an input-gradient product and a
weight-gradient product; whatever an implementation does around them, a step cannot take less.

    python measurements/rnn_step.py --cells 3
"""

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from nasbox.cpu import single_thread
from nasbox.data.text import load_text
from nasbox.estimators.petri.rnn_groundtruth import RNNProtocol, train_cell
from nasbox.spaces.rnn import DARTS_V2, RNNSpace

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
REPEATS = 20


def matmul_floor_ms(protocol: RNNProtocol, nodes: int) -> float:
    """Milliseconds of the cell's matrix products in one training step (median of REPEATS)."""
    hidden, rows = protocol.hidden, protocol.batch_size
    state, gates = torch.randn(rows, hidden), torch.randn(rows, 2 * hidden)
    weight = torch.randn(2 * hidden, hidden)
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(protocol.bptt * (nodes + 1)):
            state @ weight.t()
            gates @ weight
            gates.t() @ state
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=3, help="random cells besides DARTS V2")
    parser.add_argument("--steps", type=int, default=200, help="chunks trained per cell")
    args = parser.parse_args()
    if not CORPUS.exists():
        raise SystemExit(f"{CORPUS} is missing: this measurement trains on the shared corpus")
    protocol = RNNProtocol()
    short = replace(protocol, steps=args.steps, initialisations=1, valid_tokens=2000)
    data = load_text(str(CORPUS))
    space = RNNSpace()
    cells = [DARTS_V2] + [space.sample(np.random.default_rng(seed)) for seed in range(args.cells)]
    with single_thread():
        floor = matmul_floor_ms(protocol, space.nodes)
        print(f"floor: the cell's matrix products, {floor:.1f} ms a step\n")
        print("| cell | ms a step | x floor |\n| --- | ---: | ---: |")
        steps = []
        for cell in cells:
            started = time.perf_counter()
            train_cell(cell, data, short)
            step = 1000 * (time.perf_counter() - started) / args.steps
            steps.append(step)
            print(f"| `{cell}` | {step:.1f} | {step / floor:.2f} |")
    trainings = 200 * protocol.initialisations * protocol.steps
    for name, ms in (("measured", float(np.median(steps))), ("floor", floor)):
        hours = trainings * ms / 1000 / 3600 / 2
        print(f"\n200-cell table at the {name} step, 2 workers: {hours:.2f} h of training")


if __name__ == "__main__":
    main()
