"""NAS-Bench-201: a 4-node cell with 6 edges, each one of 5 operations.

The network builder reproduces the benchmark's `TinyNetwork` exactly (its parameter counts match the
published table for every cell), so scores computed here are comparable with the literature.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nasbox.checks import check_arch, check_count, check_rng, check_text
from nasbox.errors import NasboxError
from nasbox.spaces.base import SearchSpace
from nasbox.spaces.layers import AveragePool, ReLUConvBN

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4
# Edge k connects node EDGES[k][0] (source) to node EDGES[k][1] (target), in string order.
EDGES = tuple((source, target) for target in range(1, NUM_NODES) for source in range(target))
_EDGE_PATTERN = re.compile(r"^(?P<op>[A-Za-z0-9_]+)~(?P<source>\d+)$")


@dataclass(frozen=True)
class NB201Cell:
    """One cell: the operation on each of the 6 edges, in the benchmark's string order."""

    ops: tuple[str, ...]

    def __str__(self) -> str:
        nodes = []
        for target in range(1, NUM_NODES):
            edges = [f"{self.ops[k]}~{s}" for k, (s, t) in enumerate(EDGES) if t == target]
            nodes.append("|" + "|".join(edges) + "|")
        return "+".join(nodes)


def parse_cell(text: str) -> NB201Cell:
    """Parse the benchmark's cell string, e.g. `|nor_conv_3x3~0|+|...~0|...~1|+|...|`."""
    text = text.strip()
    groups = text.split("+")
    if len(groups) != NUM_NODES - 1:
        raise NasboxError(
            f"malformed nb201 cell {text!r}: expected {NUM_NODES - 1} node groups joined by '+', "
            f"found {len(groups)}"
        )
    ops = []
    for target, group in enumerate(groups, start=1):
        if not (group.startswith("|") and group.endswith("|")) or len(group) < 2:
            raise NasboxError(
                f"malformed nb201 cell: node {target} part {group!r} must look like '|op~0|...|'"
            )
        edges = group[1:-1].split("|")
        if len(edges) != target:
            raise NasboxError(
                f"malformed nb201 cell: node {target} part {group!r} must have {target} "
                f"edge(s), found {len(edges)}"
            )
        for expected_source, edge in enumerate(edges):
            match = _EDGE_PATTERN.match(edge)
            if match is None:
                raise NasboxError(
                    f"malformed nb201 cell: edge {edge!r} of node {target} must look like 'op~N'"
                )
            if match["op"] not in OPS:
                raise NasboxError(
                    f"unknown operation {match['op']!r} in nb201 cell (edge {edge!r}); "
                    f"choose one of: {', '.join(OPS)}"
                )
            if int(match["source"]) != expected_source:
                raise NasboxError(
                    f"malformed nb201 cell: edge {edge!r} of node {target} must come from node "
                    f"{expected_source}"
                )
            ops.append(match["op"])
    return NB201Cell(tuple(ops))


class Zero(nn.Module):
    """The `none` op: zeros with `channels` channels (NATS size cells change the width)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == self.channels:
            return x.mul(0.0)
        return x.new_zeros((x.shape[0], self.channels, *x.shape[2:]))


def make_op(name: str, channels: int, in_channels: int | None = None) -> nn.Module:
    """A cell operation at stride 1 from `in_channels` (default: `channels`) to `channels`.

    Only NATS-Bench size cells change the width, on the edges that leave the cell input; there a
    skip is a 1x1 convolution with BN and a pooling is preceded by a 1x1 ReLU-conv-BN, as in the
    benchmark's code.
    """
    c_in = channels if in_channels is None else in_channels
    if name == "none":
        return Zero(channels)
    if name == "skip_connect":
        if c_in == channels:
            return nn.Identity()
        return nn.Sequential(nn.Conv2d(c_in, channels, 1, bias=False), nn.BatchNorm2d(channels))
    if name == "nor_conv_1x1":
        return ReLUConvBN(c_in, channels, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c_in, channels, 3, 1, 1)
    if name == "avg_pool_3x3":
        if c_in == channels:
            return AveragePool(channels)
        return nn.Sequential(ReLUConvBN(c_in, channels, 1, 1, 0), AveragePool(channels))
    raise NasboxError(f"unknown nb201 operation {name!r}; choose one of: {', '.join(OPS)}")


class Cell(nn.Module):
    """Node j is the sum of the ops on its incoming edges; the cell outputs the last node.

    `none` edges add zeros, so they are left out of the sums (a node whose edges are all `none`
    is their zeros); the result is the same, with less work.
    """

    def __init__(self, cell: NB201Cell, channels: int, in_channels: int | None = None) -> None:
        super().__init__()
        self.ops = nn.ModuleList(
            make_op(op, channels, in_channels if source == 0 else None)
            for op, (source, _) in zip(cell.ops, EDGES, strict=True)
        )
        self.incoming = []
        for target in range(1, NUM_NODES):
            edges = [k for k, (_, edge_target) in enumerate(EDGES) if edge_target == target]
            live = [k for k in edges if not isinstance(self.ops[k], Zero)]
            self.incoming.append([(k, EDGES[k][0]) for k in live or edges[:1]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for edges in self.incoming:
            node = None
            for k, source in edges:
                out = self.ops[k](nodes[source])
                node = out if node is None else node + out
            nodes.append(node)
        return nodes[-1]


class ResidualReduction(nn.Module):
    """The benchmark's stride-2 ResNet basic block between stages (doubles the channels).

    The shortcut's pooling rounds up, so odd input sizes line up with the strided convolution.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0, ceil_mode=True),
            nn.Conv2d(c_in, c_out, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """Stem, three stages of N cells joined by residual reductions, BN-ReLU, pooling, linear."""

    def __init__(
        self,
        cell: NB201Cell,
        channels: int = 16,
        cells_per_stage: int = 5,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        layers: list[nn.Module] = []
        width = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(width, width * 2))
                width *= 2
            layers.extend(Cell(cell, width) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(self.cells(self.stem(x)))
        return self.classifier(self.pool(features).flatten(1))


class NB201Space(SearchSpace):
    """The NAS-Bench-201 cell space; architectures are `NB201Cell` values."""

    name = "nb201"
    ops = OPS
    # The best CIFAR-10 cell that uses only 3x3 convolutions and skips.
    default_arch = (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
        "nor_conv_3x3~2|"
    )
    published_size = (5, 64)  # the benchmark's network: C=16, N=5
    laptop_size = (1, 64)

    def sample(self, rng: np.random.Generator) -> NB201Cell:
        check_rng(rng, f"{self.name} sample")
        return NB201Cell(tuple(OPS[i] for i in rng.integers(len(OPS), size=len(EDGES))))

    def mutate(self, arch: NB201Cell, rng: np.random.Generator) -> NB201Cell:
        check_arch(arch, NB201Cell, f"{self.name} mutate")
        check_rng(rng, f"{self.name} mutate")
        edge = int(rng.integers(len(EDGES)))
        choices = [op for op in OPS if op != arch.ops[edge]]
        ops = list(arch.ops)
        ops[edge] = choices[int(rng.integers(len(choices)))]
        return NB201Cell(tuple(ops))

    def parse(self, text: str) -> NB201Cell:
        check_text(text, f"{self.name} parse")
        return parse_cell(text)

    def format(self, arch: NB201Cell) -> str:
        check_arch(arch, NB201Cell, f"{self.name} format")
        return str(arch)

    def build(
        self,
        arch: NB201Cell,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        channels: int = 16,
        cells_per_stage: int = 5,
    ) -> NB201Network:
        check_arch(arch, NB201Cell, f"{self.name} build")
        check_count(num_classes, f"{self.name} build num_classes")
        check_count(in_channels, f"{self.name} build in_channels")
        check_count(channels, f"{self.name} build channels")
        check_count(cells_per_stage, f"{self.name} build cells_per_stage")
        return NB201Network(arch, channels, cells_per_stage, num_classes, in_channels)

    def network_options(self, arch: NB201Cell, cells: int, filters: int) -> tuple[dict, int]:
        """N cells per stage; F = 4C, the channels after the last stage."""
        check_arch(arch, NB201Cell, f"{self.name} network_options")
        return {"cells_per_stage": cells, "channels": filters // 4}, filters // 4 * 4

    def decision_sizes(self) -> list[int]:
        return [len(OPS)] * len(EDGES)

    def to_decisions(self, arch: NB201Cell) -> list[int]:
        check_arch(arch, NB201Cell, f"{self.name} to_decisions")
        return [OPS.index(op) for op in arch.ops]

    def from_decisions(self, decisions: Sequence[int]) -> NB201Cell:
        if len(decisions) != len(EDGES) or not all(0 <= d < len(OPS) for d in decisions):
            raise NasboxError(
                f"an nb201 cell needs {len(EDGES)} decisions in 0..{len(OPS) - 1}, "
                f"got {list(decisions)}"
            )
        return NB201Cell(tuple(OPS[d] for d in decisions))
