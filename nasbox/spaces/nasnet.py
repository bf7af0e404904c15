"""NASNet cells (Zoph et al., 2018): their genotype, its readable string, and the network.

A cell has B blocks. A block reads two hidden states, applies an operation to each and combines
the results by addition or concatenation. Hidden state 0 is the cell input h_{i-1} (the output of
the cell two back), 1 is h_i (the previous cell's output) and 2, 3, ... are the outputs of earlier
blocks. The cell's output concatenates the hidden states no block consumed, unless the genotype
lists them explicitly (NASNet-A as published also concatenates some consumed states). Every
NASNet-style family (`nasbox.spaces.cells`: nasnet, darts, amoeba, pnas, enas) uses this
genotype and this network; families differ in their operations and rules.

Readable string of the `nasnet` space (`+` adds, `&` concatenates; `-> 0,2,...` lists the
concatenated states when they differ from the default)::

    normal: sep_conv_5x5~1 + sep_conv_3x3~0 | ... ; reduce: sep_conv_5x5~1 + sep_conv_7x7~0 | ...

Networks are "N@F": three stages of N normal cells joined by reduction cells, F filters in the
penultimate layer (the last normal cell's output), with a CIFAR stem (3x3 conv) or an ImageNet
stem (stride-2 3x3 conv, then two reduction cells). The builder follows the TF-slim reference
implementation that the paper's parameter and multiply-add counts come from; DARTS' `model.py`
builds the same network (20 cells = 6@F with its two reduction cells).
"""

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nasbox.errors import NasboxError
from nasbox.spaces.cell_ops import NASNET_OPERATIONS, FactorizedReduction, OpFactory, make_op
from nasbox.spaces.layers import ReLUConvBN

#: The 13 operations of the NASNet space, in decision order.
OPS = tuple(NASNET_OPERATIONS)
COMBINES = ("add", "concat")
_COMBINE_SYMBOL = {"add": "+", "concat": "&"}
CELL_INPUTS = 2
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
        states = range(CELL_INPUTS + len(self.blocks))
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


def validate_cell(
    cell: CellGenotype,
    kind: str,
    ops: Sequence[str] = OPS,
    combines: Sequence[str] = COMBINES,
) -> CellGenotype:
    """Raise `NasboxError` naming the cell and block of the first problem; return `cell`.

    `ops` and `combines` are what the cell's family allows (by default, the NASNet space's).
    """
    if not cell.blocks:
        raise NasboxError(f"{kind} cell has no blocks; a cell needs at least one")
    for number, block in enumerate(cell.blocks, start=1):
        where = f"{kind} cell, block {number}"
        available = CELL_INPUTS + number - 1
        for index in block.inputs:
            if not 0 <= index < available:
                raise NasboxError(
                    f"{where}: hidden state {index} out of range; block {number} may read "
                    f"0..{available - 1} (0 = h_i-1, 1 = h_i, 2.. = earlier blocks)"
                )
        for op in block.ops:
            if op not in ops:
                raise NasboxError(
                    f"{where}: unknown operation {op!r}; choose one of: {', '.join(ops)}"
                )
        if block.combine not in combines:
            raise NasboxError(
                f"{where}: unknown combination {block.combine!r}; use {' or '.join(combines)}"
            )
    states = CELL_INPUTS + len(cell.blocks)
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
    """Read a genotype from the readable string or its JSON form."""
    text = text.strip()
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


class NASNetCell(nn.Module):
    """One cell: adapt both inputs to C channels, run the blocks, concatenate the outputs.

    `operations` is the cell family's op table: the same name may build different ops.
    """

    def __init__(
        self,
        cell: CellGenotype,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        prev_is_larger: bool,
        operations: Mapping[str, OpFactory],
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
                stride = 2 if reduction and index < CELL_INPUTS else 1
                self.ops.append(make_op(operations, op, channels, stride))
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
                if reduction and index < CELL_INPUTS
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
    """Stem, three stages of normal cells joined by reduction cells, pooling, linear.

    `stage_cells` gives the normal cells of each stage: (N, N, N) for N@F; DARTS' and PNAS'
    networks of L cells put their two reduction cells at L//3 and 2L//3 instead (`stages_of`).
    In training mode with `auxiliary=True` the forward pass returns (logits, auxiliary logits).
    """

    def __init__(
        self,
        genotype: NASNetGenotype,
        *,
        operations: Mapping[str, OpFactory],
        stage_cells: Sequence[int],
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
                width = max(2, channels // scale)
                cell = NASNetCell(genotype.reduce, c_pp, c_p, width, True, prev_larger, operations)
                layers.append(cell)
                c_pp, c_p, prev_larger = c_p, cell.out_channels, True
        else:
            raise NasboxError(f"unknown stem {stem!r}; use cifar or imagenet")
        self.aux_after = None
        width = channels
        for stage, cells in enumerate(stage_cells):
            if stage > 0:
                width *= 2
                cell = NASNetCell(genotype.reduce, c_pp, c_p, width, True, prev_larger, operations)
                layers.append(cell)
                c_pp, c_p, prev_larger = c_p, cell.out_channels, True
            for _ in range(cells):
                cell = NASNetCell(genotype.normal, c_pp, c_p, width, False, prev_larger, operations)
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


def stages_of(layers: int) -> tuple[int, int, int]:
    """Normal cells per stage of a network of `layers` cells counted as DARTS and PNAS do.

    Two of the cells reduce, at layers//3 and 2*layers//3: 20 cells are 6@F, and PNASNet-5's 9
    cells (its N=3) are 3, 2 and 2 normal cells.
    """
    first, second = layers // 3, 2 * layers // 3
    return first, second - first - 1, layers - second - 1


def channels_for(genotype: NASNetGenotype, filters: int) -> int:
    """First-stage C (at least 2) such that the last normal cell outputs about `filters`."""
    return max(2, round(filters / (4 * len(genotype.normal.outputs))))
