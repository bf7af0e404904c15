"""The NASNet search space (Zoph et al., 2018): a normal and a reduction cell of B blocks each.

A block reads two hidden states, applies one of 13 operations to each and combines the results
by addition or concatenation. Hidden state 0 is the cell input h_{i-1} (the output of the cell two
back), 1 is h_i (the previous cell's output) and 2, 3, ... are the outputs of earlier blocks. The
cell's output concatenates the hidden states no block consumed, unless the genotype lists them
explicitly (NASNet-A as published also concatenates some consumed states).

Genotype string (the DARTS-style readable form; `+` adds, `&` concatenates; `-> 0,2,...` lists
the concatenated states when they differ from the default)::

    normal: sep_conv_5x5~1 + sep_conv_3x3~0 | ... ; reduce: sep_conv_5x5~1 + sep_conv_7x7~0 | ...

Networks are "N@F": three stages of N normal cells joined by reduction cells, F filters in the
penultimate layer (the last normal cell's output), with a CIFAR stem (3x3 conv) or an ImageNet
stem (stride-2 3x3 conv, then two reduction cells). The builder follows the TF-slim reference
implementation that the paper's parameter and multiply-add counts come from.
"""

import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasbox.errors import NasboxError
from nasbox.spaces.base import SearchSpace
from nasbox.train.drop_path import DropPath

OPS = (
    "identity",
    "conv_1x3_3x1",
    "conv_1x7_7x1",
    "dil_conv_3x3",
    "avg_pool_3x3",
    "max_pool_3x3",
    "max_pool_5x5",
    "max_pool_7x7",
    "conv_1x1",
    "conv_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
)
COMBINES = ("add", "concat")
_COMBINE_SYMBOL = {"add": "+", "concat": "&"}
_CELL_INPUTS = 2
NAMED_GENOTYPES: dict[str, "NASNetGenotype"] = {}
_INPUT_PATTERN = re.compile(r"^\s*(?P<op>[A-Za-z0-9_]+)\s*~\s*(?P<index>-?\d+)\s*$")


@dataclass(frozen=True)
class Block:
    """Two hidden states, the operation applied to each, and how the two results combine."""

    inputs: tuple[int, int]
    ops: tuple[str, str]
    combine: str = "add"


@dataclass(frozen=True)
class CellGenotype:
    """The blocks of one cell and the hidden states its output concatenates.

    `concat=None` means the default: every hidden state no block consumed. An explicit list equal
    to the default is stored as None, so equal cells compare and hash equal.
    """

    blocks: tuple[Block, ...]
    concat: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.concat is not None and tuple(self.concat) == self.unconsumed():
            object.__setattr__(self, "concat", None)

    def unconsumed(self) -> tuple[int, ...]:
        used = {index for block in self.blocks for index in block.inputs}
        states = range(_CELL_INPUTS + len(self.blocks))
        return tuple(index for index in states if index not in used)

    @property
    def outputs(self) -> tuple[int, ...]:
        return self.concat if self.concat is not None else self.unconsumed()


@dataclass(frozen=True)
class NASNetGenotype:
    """A normal cell and a reduction cell."""

    normal: CellGenotype
    reduce: CellGenotype

    def __str__(self) -> str:
        return f"normal: {_format_cell(self.normal)} ; reduce: {_format_cell(self.reduce)}"

    def to_json(self) -> dict:
        return {kind: _cell_to_json(getattr(self, kind)) for kind in ("normal", "reduce")}


def _format_cell(cell: CellGenotype) -> str:
    blocks = " | ".join(
        f"{b.ops[0]}~{b.inputs[0]} {_COMBINE_SYMBOL[b.combine]} {b.ops[1]}~{b.inputs[1]}"
        for b in cell.blocks
    )
    if cell.concat is None:
        return blocks
    return f"{blocks} -> {','.join(map(str, cell.concat))}"


def _cell_to_json(cell: CellGenotype) -> dict:
    return {
        "blocks": [
            {"inputs": list(b.inputs), "ops": list(b.ops), "combine": b.combine}
            for b in cell.blocks
        ],
        "concat": list(cell.outputs),
    }


def validate_cell(cell: CellGenotype, kind: str) -> CellGenotype:
    """Raise `NasboxError` naming the cell and block of the first problem; return `cell`."""
    if not cell.blocks:
        raise NasboxError(f"{kind} cell has no blocks; a cell needs at least one")
    for number, block in enumerate(cell.blocks, start=1):
        where = f"{kind} cell, block {number}"
        available = _CELL_INPUTS + number - 1
        for index in block.inputs:
            if not 0 <= index < available:
                raise NasboxError(
                    f"{where}: hidden state {index} out of range; block {number} may read "
                    f"0..{available - 1} (0 = h_i-1, 1 = h_i, 2.. = earlier blocks)"
                )
        for op in block.ops:
            if op not in OPS:
                raise NasboxError(
                    f"{where}: unknown operation {op!r}; choose one of: {', '.join(OPS)}"
                )
        if block.combine not in COMBINES:
            raise NasboxError(f"{where}: unknown combination {block.combine!r}; use add or concat")
    states = _CELL_INPUTS + len(cell.blocks)
    if cell.concat is not None:
        if not cell.concat:
            raise NasboxError(f"{kind} cell: the output must concatenate at least one state")
        bad = [index for index in cell.concat if not 0 <= index < states]
        if bad:
            raise NasboxError(
                f"{kind} cell: output state {bad[0]} out of range; use 0..{states - 1}"
            )
        if len(set(cell.concat)) != len(cell.concat):
            raise NasboxError(f"{kind} cell: output states {list(cell.concat)} repeat a state")
    return cell


def _parse_cell(text: str, kind: str) -> CellGenotype:
    body, arrow, concat_text = text.partition("->")
    concat = None
    if arrow:
        try:
            concat = tuple(int(part) for part in concat_text.split(","))
        except ValueError:
            raise NasboxError(
                f"{kind} cell: output list {concat_text.strip()!r} must be integers like 0,2,3"
            ) from None
    blocks = []
    for number, block_text in enumerate(body.split("|"), start=1):
        symbols = [symbol for symbol in ("+", "&") if symbol in block_text]
        if len(symbols) != 1 or block_text.count(symbols[0]) != 1:
            raise NasboxError(
                f"{kind} cell, block {number}: {block_text.strip()!r} must look like "
                "'op~i + op~j' ('&' instead of '+' to concatenate)"
            )
        combine = "add" if symbols[0] == "+" else "concat"
        parts = []
        for side in block_text.split(symbols[0]):
            match = _INPUT_PATTERN.match(side)
            if match is None:
                raise NasboxError(
                    f"{kind} cell, block {number}: {side.strip()!r} must look like 'op~i' "
                    "(an operation and a hidden-state index)"
                )
            parts.append((match["op"], int(match["index"])))
        blocks.append(Block((parts[0][1], parts[1][1]), (parts[0][0], parts[1][0]), combine))
    return validate_cell(CellGenotype(tuple(blocks), concat), kind)


def _cell_from_json(value, kind: str) -> CellGenotype:
    if not isinstance(value, dict) or not isinstance(value.get("blocks"), list):
        raise NasboxError(f"{kind} cell: JSON must be an object with a 'blocks' list")
    blocks = []
    for number, block in enumerate(value["blocks"], start=1):
        try:
            inputs = tuple(int(i) for i in block["inputs"])
            ops = tuple(str(op) for op in block["ops"])
            combine = str(block.get("combine", "add"))
        except (KeyError, TypeError, ValueError):
            raise NasboxError(
                f"{kind} cell, block {number}: JSON must be "
                '{"inputs": [i, j], "ops": [op, op], "combine": "add"}'
            ) from None
        if len(inputs) != 2 or len(ops) != 2:
            raise NasboxError(f"{kind} cell, block {number}: needs exactly two inputs and ops")
        blocks.append(Block(inputs, ops, combine))
    concat = value.get("concat")
    try:
        concat = tuple(int(i) for i in concat) if concat is not None else None
    except (TypeError, ValueError):
        raise NasboxError(f"{kind} cell: 'concat' must be a list of integers") from None
    return validate_cell(CellGenotype(tuple(blocks), concat), kind)


def parse_genotype(text: str) -> NASNetGenotype:
    """Read a genotype: a name (`nasnet-a`), the readable string, or its JSON form."""
    text = text.strip()
    if text.lower() in NAMED_GENOTYPES:
        return NAMED_GENOTYPES[text.lower()]
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise NasboxError(f"malformed nasnet genotype JSON: {err}") from None
        if not isinstance(value, dict) or {"normal", "reduce"} - value.keys():
            raise NasboxError("nasnet genotype JSON needs 'normal' and 'reduce' cells")
        return NASNetGenotype(
            _cell_from_json(value["normal"], "normal"), _cell_from_json(value["reduce"], "reduce")
        )
    cells = {}
    for part in text.split(";"):
        kind, colon, body = part.partition(":")
        kind = kind.strip()
        if not colon or kind not in ("normal", "reduce"):
            raise NasboxError(
                f"malformed nasnet genotype near {part.strip()[:40]!r}: expected "
                "'normal: BLOCKS ; reduce: BLOCKS' or a name (nasnet-a)"
            )
        if kind in cells:
            raise NasboxError(f"nasnet genotype gives the {kind} cell twice")
        cells[kind] = _parse_cell(body, kind)
    missing = [kind for kind in ("normal", "reduce") if kind not in cells]
    if missing:
        raise NasboxError(f"nasnet genotype has no {missing[0]} cell")
    return NASNetGenotype(cells["normal"], cells["reduce"])


# NASNet-A (Zoph et al., 2018, Figure 4), as in TF-slim's nasnet_utils and DARTS' genotypes.py.
# The published cells concatenate h_i-1 (normal) and block 2 (reduction) although blocks read them.
NASNET_A = parse_genotype(
    "normal: sep_conv_5x5~1 + sep_conv_3x3~0 | sep_conv_5x5~0 + sep_conv_3x3~0 "
    "| avg_pool_3x3~1 + identity~0 | avg_pool_3x3~0 + avg_pool_3x3~0 "
    "| sep_conv_3x3~1 + identity~1 -> 0,2,3,4,5,6 ; "
    "reduce: sep_conv_5x5~1 + sep_conv_7x7~0 | max_pool_3x3~1 + sep_conv_7x7~0 "
    "| avg_pool_3x3~1 + sep_conv_5x5~0 | identity~3 + avg_pool_3x3~2 "
    "| sep_conv_3x3~2 + max_pool_3x3~1 -> 3,4,5,6"
)
NAMED_GENOTYPES["nasnet-a"] = NASNET_A


# ---------------------------------------------------------------------------------------------
# Operations. Every hidden state inside a cell has C channels; ops keep C and apply `stride`.


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel, stride=1, padding=0, dilation=1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out),
        )


class FactorizedConv(nn.Sequential):
    """ReLU, 1xk conv, kx1 conv, BN: a kxk receptive field for 2k weights per channel pair."""

    def __init__(self, channels: int, kernel: int, stride: int) -> None:
        pad = kernel // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(channels, channels, (1, kernel), (1, stride), (0, pad), bias=False),
            nn.Conv2d(channels, channels, (kernel, 1), (stride, 1), (pad, 0), bias=False),
            nn.BatchNorm2d(channels),
        )


class SeparableConv(nn.Sequential):
    """Depthwise-separable convolution applied twice (ReLU, depthwise, pointwise, BN; twice)."""

    def __init__(self, channels: int, kernel: int, stride: int) -> None:
        layers: list[nn.Module] = []
        for repeat in range(2):
            layers += [
                nn.ReLU(inplace=False),
                nn.Conv2d(
                    channels,
                    channels,
                    kernel,
                    stride if repeat == 0 else 1,
                    kernel // 2,
                    groups=channels,
                    bias=False,
                ),
                nn.Conv2d(channels, channels, 1, bias=False),
                nn.BatchNorm2d(channels),
            ]
        super().__init__(*layers)


class FactorizedReduction(nn.Module):
    """Halve the resolution without losing half the pixels: two strided 1x1 convs, one shifted.

    As in TF-slim, the shifted path pads on the bottom/right, so odd sizes round up like the
    strided convolutions of the cell do.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.path1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.path2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.path1(x), self.path2(shifted)], dim=1))


def make_op(name: str, channels: int, stride: int) -> nn.Module:
    """One of the 13 operations; every op but identity ends with a `DropPath`."""
    if name == "identity":
        return nn.Identity() if stride == 1 else FactorizedReduction(channels, channels)
    if name.startswith("sep_conv_"):
        op: nn.Module = SeparableConv(channels, int(name[-1]), stride)
    elif name == "conv_1x3_3x1":
        op = FactorizedConv(channels, 3, stride)
    elif name == "conv_1x7_7x1":
        op = FactorizedConv(channels, 7, stride)
    elif name == "dil_conv_3x3":
        op = ReLUConvBN(channels, channels, 3, stride, padding=2, dilation=2)
    elif name == "conv_1x1":
        op = ReLUConvBN(channels, channels, 1, stride)
    elif name == "conv_3x3":
        op = ReLUConvBN(channels, channels, 3, stride, padding=1)
    elif name == "avg_pool_3x3":
        op = nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)
    elif name.startswith("max_pool_"):
        kernel = int(name[-1])
        op = nn.MaxPool2d(kernel, stride, padding=kernel // 2)
    else:
        raise NasboxError(f"unknown nasnet operation {name!r}; choose one of: {', '.join(OPS)}")
    return nn.Sequential(op, DropPath())


class NASNetCell(nn.Module):
    """One cell: adapt both inputs to C channels, run the blocks, concatenate the outputs."""

    def __init__(
        self,
        cell: CellGenotype,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        prev_is_larger: bool,
    ) -> None:
        super().__init__()
        if prev_is_larger:
            self.preprocess0: nn.Module = FactorizedReduction(c_prev_prev, channels)
        elif c_prev_prev != channels:
            self.preprocess0 = ReLUConvBN(c_prev_prev, channels, 1)
        else:
            self.preprocess0 = nn.Identity()
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1)
        self.blocks = cell.blocks
        self.ops = nn.ModuleList()
        self.projections = nn.ModuleList()
        for block in cell.blocks:
            for op, index in zip(block.ops, block.inputs, strict=True):
                stride = 2 if reduction and index < _CELL_INPUTS else 1
                self.ops.append(make_op(op, channels, stride))
            concat = block.combine == "concat"
            self.projections.append(
                ReLUConvBN(2 * channels, channels, 1) if concat else nn.Identity()
            )
        self.outputs = cell.outputs
        # In a reduction cell, cell inputs that reach the output must be reduced too.
        self.output_reductions = nn.ModuleDict(
            {
                str(index): FactorizedReduction(channels, channels)
                for index in self.outputs
                if reduction and index < _CELL_INPUTS
            }
        )
        self.out_channels = channels * len(self.outputs)

    def forward(self, prev_prev: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(prev_prev), self.preprocess1(prev)]
        for number, block in enumerate(self.blocks):
            first = self.ops[2 * number](states[block.inputs[0]])
            second = self.ops[2 * number + 1](states[block.inputs[1]])
            if block.combine == "add":
                states.append(first + second)
            else:
                states.append(self.projections[number](torch.cat([first, second], dim=1)))
        outputs = [
            self.output_reductions[str(i)](states[i])
            if str(i) in self.output_reductions
            else states[i]
            for i in self.outputs
        ]
        return torch.cat(outputs, dim=1)


class AuxiliaryHead(nn.Module):
    """The auxiliary classifier after the second stage (its loss helps the lower cells train)."""

    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(c_in, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=False),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class NASNetwork(nn.Module):
    """N@F: stem, three stages of N normal cells joined by reduction cells, pooling, linear.

    In training mode with `auxiliary=True` the forward pass returns (logits, auxiliary logits).
    """

    def __init__(
        self,
        genotype: NASNetGenotype,
        *,
        cells: int,
        channels: int,
        num_classes: int = 10,
        in_channels: int = 3,
        stem: str = "cifar",
        stem_multiplier: int = 3,
        auxiliary: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[NASNetCell] = []
        if stem == "cifar":
            c_stem = stem_multiplier * channels
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem)
            )
            c_pp, c_p, prev_larger = c_stem, c_stem, False
        elif stem == "imagenet":
            c_stem = 32 * stem_multiplier
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, c_stem, 3, stride=2, bias=False), nn.BatchNorm2d(c_stem)
            )
            c_pp, c_p, prev_larger = c_stem, c_stem, False
            for scale in (4, 2):
                cell = NASNetCell(
                    genotype.reduce, c_pp, c_p, max(2, channels // scale), True, prev_larger
                )
                layers.append(cell)
                c_pp, c_p, prev_larger = c_p, cell.out_channels, True
        else:
            raise NasboxError(f"unknown stem {stem!r}; use cifar or imagenet")
        self.aux_after = None
        width = channels
        for stage in range(3):
            if stage > 0:
                width *= 2
                cell = NASNetCell(genotype.reduce, c_pp, c_p, width, True, prev_larger)
                layers.append(cell)
                c_pp, c_p, prev_larger = c_p, cell.out_channels, True
            for _ in range(cells):
                cell = NASNetCell(genotype.normal, c_pp, c_p, width, False, prev_larger)
                layers.append(cell)
                c_pp, c_p, prev_larger = c_p, cell.out_channels, False
            if stage == 1:
                self.aux_after = len(layers) - 1
                c_aux = c_p
        self.cells = nn.ModuleList(layers)
        self.auxiliary = AuxiliaryHead(c_aux, num_classes) if auxiliary else None
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c_p, num_classes)
        self.penultimate_filters = c_p

    def forward(self, x: torch.Tensor):
        prev_prev = prev = self.stem(x)
        aux_logits = None
        for number, cell in enumerate(self.cells):
            prev_prev, prev = prev, cell(prev_prev, prev)
            if number == self.aux_after and self.auxiliary is not None and self.training:
                aux_logits = self.auxiliary(prev)
        features = self.pool(F.relu(prev)).flatten(1)
        logits = self.classifier(self.dropout(features))
        return (logits, aux_logits) if aux_logits is not None else logits


def channels_for(genotype: NASNetGenotype, filters: int) -> int:
    """First-stage C (at least 2) such that the last normal cell outputs about `filters`."""
    return max(2, round(filters / (4 * len(genotype.normal.outputs))))


class NASNetSpace(SearchSpace):
    """Cells of `blocks` blocks; architectures are `NASNetGenotype` values.

    Decisions, per block of the normal then the reduction cell: first input, second input,
    first op, second op, combination (2 x 5B in all).
    """

    name = "nasnet"
    ops = OPS
    default_arch = "nasnet-a"
    published_size = (6, 768)  # NASNet-A 6@768, the paper's CIFAR-10 model
    laptop_size = (2, 96)
    has_auxiliary_head = True

    def __init__(self, blocks: int = 5) -> None:
        if blocks < 1:
            raise NasboxError(f"a nasnet cell needs at least 1 block, got {blocks}")
        self.blocks = blocks

    def __len__(self) -> int:
        """The number of decision sequences, capped at `sys.maxsize` (the most `len` allows)."""
        return min(math.prod(self.decision_sizes()), sys.maxsize)

    def network_options(
        self, arch: NASNetGenotype, cells: int, filters: int
    ) -> tuple[dict, int]:
        """F = 4 x C x the normal cell's concatenated states, for a whole C of at least 2."""
        built = 4 * len(arch.normal.outputs) * channels_for(arch, filters)
        return {"cells": cells, "filters": filters}, built

    def decision_sizes(self) -> list[int]:
        sizes = []
        for _cell in range(2):
            for number in range(self.blocks):
                states = _CELL_INPUTS + number
                sizes += [states, states, len(OPS), len(OPS), len(COMBINES)]
        return sizes

    def to_decisions(self, arch: NASNetGenotype) -> list[int]:
        decisions = []
        for kind, cell in (("normal", arch.normal), ("reduce", arch.reduce)):
            if len(cell.blocks) != self.blocks:
                raise NasboxError(
                    f"{kind} cell has {len(cell.blocks)} blocks; this space has {self.blocks}"
                )
            for block in cell.blocks:
                decisions += [*block.inputs, *(OPS.index(op) for op in block.ops)]
                decisions.append(COMBINES.index(block.combine))
        return decisions

    def from_decisions(self, decisions: Sequence[int]) -> NASNetGenotype:
        sizes = self.decision_sizes()
        if len(decisions) != len(sizes) or not all(
            0 <= int(d) < size for d, size in zip(decisions, sizes, strict=True)
        ):
            raise NasboxError(
                f"a nasnet genotype with {self.blocks} blocks per cell needs {len(sizes)} "
                f"decisions within {sizes}, got {list(decisions)}"
            )
        cells = []
        per_cell = 5 * self.blocks
        for start in (0, per_cell):
            blocks = []
            for number in range(self.blocks):
                a, b, op_a, op_b, combine = (int(d) for d in decisions[start + 5 * number :][:5])
                blocks.append(Block((a, b), (OPS[op_a], OPS[op_b]), COMBINES[combine]))
            cells.append(CellGenotype(tuple(blocks)))
        return NASNetGenotype(*cells)

    def sample(self, rng: np.random.Generator) -> NASNetGenotype:
        return self.from_decisions([int(rng.integers(size)) for size in self.decision_sizes()])

    def mutate(self, arch: NASNetGenotype, rng: np.random.Generator) -> NASNetGenotype:
        decisions = self.to_decisions(arch)
        sizes = self.decision_sizes()
        position = int(rng.integers(len(sizes)))
        choices = [value for value in range(sizes[position]) if value != decisions[position]]
        decisions[position] = choices[int(rng.integers(len(choices)))]
        return self.from_decisions(decisions)

    def parse(self, text: str) -> NASNetGenotype:
        return parse_genotype(text)

    def format(self, arch: NASNetGenotype) -> str:
        return str(arch)

    def build(
        self,
        arch: NASNetGenotype,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        cells: int = 1,
        filters: int | None = None,
        channels: int = 8,
        stem: str = "cifar",
        stem_multiplier: int | None = None,
        auxiliary: bool = False,
        dropout: float = 0.0,
    ) -> NASNetwork:
        """N@F with N=`cells`; F=`filters` when given, else first-stage width `channels`.

        The defaults (1@F with C=8) are small on purpose: training-free scores of a cell need
        only a small network. The stem has `stem_multiplier` x C filters (CIFAR) or
        `stem_multiplier` x 32 (ImageNet); by default 3, except 1 for ImageNet-stem networks
        narrower than C=64, as in the paper's Mobile (C=44) and Large (C=168) models.
        """
        if cells < 1:
            raise NasboxError(f"--cells must be at least 1, got {cells}")
        if channels < 2:
            raise NasboxError(f"nasnet cells need at least 2 channels, got {channels}")
        if filters is not None:
            if filters < 1:
                raise NasboxError(f"--filters must be positive, got {filters}")
            channels = channels_for(arch, filters)
        if stem_multiplier is None:
            stem_multiplier = 1 if stem == "imagenet" and channels < 64 else 3
        return NASNetwork(
            arch,
            cells=cells,
            channels=channels,
            num_classes=num_classes,
            in_channels=in_channels,
            stem=stem,
            stem_multiplier=stem_multiplier,
            auxiliary=auxiliary,
            dropout=dropout,
        )
