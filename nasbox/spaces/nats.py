"""NATS-Bench size space: one fixed cell, the channels of the network's 5 layers searched.

Each layer (cell, residual reduction, cell, residual reduction, cell) takes one of 8 widths,
8 to 64, so there are 8^5 = 32,768 architectures, written as `8:16:32:64:64`. The network is the
benchmark's `DynamicShapeTinyNet`: the NAS-Bench-201 topology with the best CIFAR-100 validation
accuracy in every cell, edges leaving a cell's input changing the width where the layer does.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nasbox.checks import check_arch, check_count, check_rng, check_text
from nasbox.errors import NasboxError
from nasbox.spaces.base import SearchSpace
from nasbox.spaces.nb201 import Cell, ResidualReduction, parse_cell

WIDTHS = (8, 16, 24, 32, 40, 48, 56, 64)
LAYERS = 5
REDUCTION_LAYERS = (1, 3)
CELL = parse_cell(
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "nor_conv_3x3~2|"
)


@dataclass(frozen=True)
class NATSSizeArch:
    """The output channels of each of the 5 layers."""

    channels: tuple[int, ...]

    def __str__(self) -> str:
        return ":".join(map(str, self.channels))


def parse_widths(text: str) -> NATSSizeArch:
    """Read `8:16:32:64:64`: five widths from 8, 16, ..., 64."""
    parts = text.strip().split(":")
    if len(parts) != LAYERS:
        raise NasboxError(
            f"malformed nats-size architecture {text.strip()!r}: expected {LAYERS} widths "
            "joined by ':' like 8:16:32:64:64"
        )
    channels = []
    for layer, part in enumerate(parts, start=1):
        try:
            width = int(part)
        except ValueError:
            width = None
        if width not in WIDTHS:
            raise NasboxError(
                f"nats-size layer {layer}: width {part.strip()!r} is not one of "
                f"{', '.join(map(str, WIDTHS))}"
            )
        channels.append(width)
    return NATSSizeArch(tuple(channels))


class NATSSizeNetwork(nn.Module):
    """Stem, cell, reduction, cell, reduction, cell, BN-ReLU, pooling, linear."""

    def __init__(self, arch: NATSSizeArch, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        first = arch.channels[0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, first, 3, padding=1, bias=False), nn.BatchNorm2d(first)
        )
        layers: list[nn.Module] = []
        previous = first
        for layer, width in enumerate(arch.channels):
            if layer in REDUCTION_LAYERS:
                layers.append(ResidualReduction(previous, width))
            else:
                layers.append(Cell(CELL, width, in_channels=previous))
            previous = width
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(previous), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(previous, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(self.cells(self.stem(x)))
        return self.classifier(self.pool(features).flatten(1))


class NATSSizeSpace(SearchSpace):
    """The NATS-Bench size space; architectures are `NATSSizeArch` values."""

    name = "nats-size"
    default_arch = "64:64:64:64:64"
    published_size = (1, 64)  # the benchmark's networks have one cell per stage
    laptop_size = (1, 64)

    def sample(self, rng: np.random.Generator) -> NATSSizeArch:
        check_rng(rng, f"{self.name} sample")
        return self.from_decisions(rng.integers(len(WIDTHS), size=LAYERS).tolist())

    def mutate(self, arch: NATSSizeArch, rng: np.random.Generator) -> NATSSizeArch:
        check_arch(arch, NATSSizeArch, f"{self.name} mutate")
        check_rng(rng, f"{self.name} mutate")
        decisions = self.to_decisions(arch)
        layer = int(rng.integers(LAYERS))
        choices = [index for index in range(len(WIDTHS)) if index != decisions[layer]]
        decisions[layer] = choices[int(rng.integers(len(choices)))]
        return self.from_decisions(decisions)

    def parse(self, text: str) -> NATSSizeArch:
        check_text(text, f"{self.name} parse")
        return parse_widths(text)

    def format(self, arch: NATSSizeArch) -> str:
        check_arch(arch, NATSSizeArch, f"{self.name} format")
        return str(arch)

    def build(
        self, arch: NATSSizeArch, *, num_classes: int = 10, in_channels: int = 3
    ) -> NATSSizeNetwork:
        check_arch(arch, NATSSizeArch, f"{self.name} build")
        check_count(num_classes, f"{self.name} build num_classes")
        check_count(in_channels, f"{self.name} build in_channels")
        return NATSSizeNetwork(arch, num_classes, in_channels)

    def network_options(self, arch: NATSSizeArch, cells: int, filters: int) -> tuple[dict, int]:
        """The architecture itself sets every width, so F is its last layer's."""
        check_arch(arch, NATSSizeArch, f"{self.name} network_options")
        if cells != 1:
            raise NasboxError(f"nats-size networks have one cell per stage; drop --cells {cells}")
        return {}, arch.channels[-1]

    def decision_sizes(self) -> list[int]:
        return [len(WIDTHS)] * LAYERS

    def to_decisions(self, arch: NATSSizeArch) -> list[int]:
        check_arch(arch, NATSSizeArch, f"{self.name} to_decisions")
        return [WIDTHS.index(width) for width in arch.channels]

    def from_decisions(self, decisions: Sequence[int]) -> NATSSizeArch:
        if len(decisions) != LAYERS or not all(0 <= d < len(WIDTHS) for d in decisions):
            raise NasboxError(
                f"a nats-size architecture needs {LAYERS} decisions in 0..{len(WIDTHS) - 1}, "
                f"got {list(decisions)}"
            )
        return NATSSizeArch(tuple(WIDTHS[int(d)] for d in decisions))
