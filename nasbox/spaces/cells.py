"""NASNet-style cell spaces: one family (`CellSpace`) and its presets.

A preset fixes the operations, the number of blocks per cell (DARTS calls them intermediate
nodes), how a block combines its two results, and what the cell outputs: the states no block
consumed ("loose ends") or every block. The presets are the NDS design spaces (Radosavovic et
al., 2019, Table 1; pycls' `nas` models) with the published cells of their papers:

=======  ===============  ======  ===========  ==========  =====================
space    operations       blocks  combination  output      named genotypes
=======  ===============  ======  ===========  ==========  =====================
nasnet   13               5 (B)   add, concat  loose ends  nasnet-a
darts    8 (with `none`)  4       add          all blocks  darts-v1, darts-v2
amoeba   8                5       add          loose ends  amoebanet-a
pnas     8                5       add          all blocks  pnasnet-5
enas     5                5       add          loose ends  enas
=======  ===============  ======  ===========  ==========  =====================

Every preset builds the same network (`NASNetwork`) with its own op table (`cell_ops`), reads and
prints DARTS' `Genotype(...)` string (`darts_genotype`; nasnet prints its readable form and also
reads its JSON), and accepts its named genotypes in any case.
"""

import math
import sys
from collections.abc import Mapping, Sequence

import numpy as np

from nasbox.checks import check_arch, check_count, check_rng, check_text
from nasbox.errors import NasboxError
from nasbox.spaces.base import SearchSpace
from nasbox.spaces.cell_ops import (
    AMOEBA_OPERATIONS,
    DARTS_OPERATIONS,
    ENAS_OPERATIONS,
    NASNET_OPERATIONS,
    PNAS_OPERATIONS,
    OpFactory,
)
from nasbox.spaces.darts_genotype import SHAPE, format_genotype, looks_like_genotype, read_genotype
from nasbox.spaces.nasnet import (
    CELL_INPUTS,
    COMBINES,
    NASNET_A,
    Block,
    CellGenotype,
    NASNetGenotype,
    NASNetwork,
    channels_for,
    parse_genotype,
    stages_of,
    validate_cell,
)

LOOSE_ENDS, ALL_BLOCKS = "loose ends", "all blocks"


class CellSpace(SearchSpace):
    """Normal and reduction cells of `blocks` blocks; architectures are `NASNetGenotype` values.

    Decisions, per block of the normal then the reduction cell: first input, second input,
    first op, second op and, where the preset has more than one, the combination.
    """

    #: The preset: operations (their order is the decision order), blocks, combinations, output.
    operations: Mapping[str, OpFactory]
    default_blocks: int
    combines: tuple[str, ...] = ("add",)
    output: str = LOOSE_ENDS
    #: Published cells by lower-case name.
    named: Mapping[str, NASNetGenotype]
    #: Whether strings may hold cells of any number of blocks (decisions still need `blocks`).
    any_block_count = False
    #: N and first-stage C of the network `build` makes without size options. Training-free
    #: scores (NASWOT) build one per architecture, so it is small.
    scoring_size: tuple[int, int] = (1, 8)
    has_auxiliary_head = True

    def __init__(self, blocks: int | None = None) -> None:
        blocks = self.default_blocks if blocks is None else blocks
        if blocks < 1:
            raise NasboxError(f"a {self.name} cell needs at least 1 block, got {blocks}")
        self.blocks = blocks

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(self.operations)

    def __len__(self) -> int:
        """The number of decision sequences, capped at `sys.maxsize` (the most `len` allows)."""
        return min(math.prod(self.decision_sizes()), sys.maxsize)

    def network_options(self, arch: NASNetGenotype, cells: int, filters: int) -> tuple[dict, int]:
        """F = 4 x C x the normal cell's concatenated states, for a whole C of at least 2."""
        self._check_genotype(arch, "network_options")
        built = 4 * len(arch.normal.outputs) * channels_for(arch, filters)
        return {"cells": cells, "filters": filters}, built

    def _block_sizes(self, number: int) -> list[int]:
        states = CELL_INPUTS + number
        sizes = [states, states, len(self.operations), len(self.operations)]
        return sizes + [len(self.combines)] if len(self.combines) > 1 else sizes

    def decision_sizes(self) -> list[int]:
        return [
            size
            for _cell in range(2)
            for number in range(self.blocks)
            for size in self._block_sizes(number)
        ]

    def _check_genotype(self, arch: object, method: str, exact_blocks: bool = False) -> None:
        """`arch` must be this preset's genotype: its operations, and its number of blocks where
        the preset's strings fix it or decisions need it (`exact_blocks`). All presets share
        `NASNetGenotype`, so another preset's genotype passed `check_arch`: format printed it,
        build built it or failed on its first op, mutate failed without naming the space."""
        what = f"{self.name} {method}"
        check_arch(arch, NASNetGenotype, what)
        cells = {"normal": arch.normal, "reduce": arch.reduce}
        ops = (op for cell in cells.values() for block in cell.blocks for op in block.ops)
        unknown = dict.fromkeys(op for op in ops if op not in self.ops)
        counts = dict.fromkeys(len(cell.blocks) for cell in cells.values())
        problems = (
            [f"operations {self.name} does not have ({', '.join(unknown)})"] if unknown else []
        )
        if list(counts) != [self.blocks] and (exact_blocks or not self.any_block_count):
            blocks = " and ".join(map(str, counts))
            problems.append(f"{blocks} blocks per cell where {self.name} has {self.blocks}")
        if problems:
            raise NasboxError(
                f"{what} got a genotype with {' and '.join(problems)}: pass an architecture of "
                "this space (space.sample or space.parse)"
            )
        for kind, cell in cells.items():
            try:
                validate_cell(cell, kind, self.ops, self.combines)
            except NasboxError as err:
                raise NasboxError(f"{what}: {err}") from None

    def to_decisions(self, arch: NASNetGenotype) -> list[int]:
        self._check_genotype(arch, "to_decisions", exact_blocks=True)
        decisions = []
        for cell in (arch.normal, arch.reduce):
            for block in cell.blocks:
                decisions += [*block.inputs, *(self.ops.index(op) for op in block.ops)]
                if len(self.combines) > 1:
                    decisions.append(self.combines.index(block.combine))
        return decisions

    def from_decisions(self, decisions: Sequence[int]) -> NASNetGenotype:
        sizes = self.decision_sizes()
        if len(decisions) != len(sizes) or not all(
            0 <= int(d) < size for d, size in zip(decisions, sizes, strict=True)
        ):
            raise NasboxError(
                f"a {self.name} genotype with {self.blocks} blocks per cell needs {len(sizes)} "
                f"decisions within {sizes}, got {list(decisions)}"
            )
        per_block = len(self._block_sizes(0))
        values = iter(int(d) for d in decisions)
        cells = []
        for _cell in range(2):
            blocks = []
            for _number in range(self.blocks):
                a, b, op_a, op_b, *combine = (next(values) for _ in range(per_block))
                ops = (self.ops[op_a], self.ops[op_b])
                blocks.append(Block((a, b), ops, self.combines[combine[0] if combine else 0]))
            cells.append(CellGenotype(tuple(blocks), self._default_concat()))
        return NASNetGenotype(*cells)

    def _default_concat(self) -> tuple[int, ...] | None:
        """None (loose ends, the cell's default) or every block's state."""
        if self.output == LOOSE_ENDS:
            return None
        return tuple(range(CELL_INPUTS, CELL_INPUTS + self.blocks))

    def sample(self, rng: np.random.Generator) -> NASNetGenotype:
        check_rng(rng, f"{self.name} sample")
        return self.from_decisions([int(rng.integers(size)) for size in self.decision_sizes()])

    def mutate(self, arch: NASNetGenotype, rng: np.random.Generator) -> NASNetGenotype:
        self._check_genotype(arch, "mutate", exact_blocks=True)
        check_rng(rng, f"{self.name} mutate")
        decisions = self.to_decisions(arch)
        sizes = self.decision_sizes()
        position = int(rng.integers(len(sizes)))
        choices = [value for value in range(sizes[position]) if value != decisions[position]]
        decisions[position] = choices[int(rng.integers(len(choices)))]
        return self.from_decisions(decisions)

    def parse(self, text: str) -> NASNetGenotype:
        """A named genotype, a Genotype string, or a form of the preset's own."""
        check_text(text, f"{self.name} parse")
        name = text.strip().lower().replace("_", "-")
        if name in self.named:
            return self.named[name]
        if looks_like_genotype(text):
            genotype = read_genotype(text, f"{self.name} genotype")
        else:
            genotype = self._parse_own_form(text)
        for kind in ("normal", "reduce"):
            cell = getattr(genotype, kind)
            if not self.any_block_count and len(cell.blocks) != self.blocks:
                raise NasboxError(
                    f"{kind} cell has {len(cell.blocks)} blocks; a {self.name} cell has "
                    f"{self.blocks} (two (op, input) pairs each)"
                )
            validate_cell(cell, kind, self.ops, self.combines)
        return genotype

    def _parse_own_form(self, text: str) -> NASNetGenotype:
        shown = text.strip() if len(text.strip()) <= 40 else text.strip()[:37] + "..."
        raise NasboxError(
            f"malformed {self.name} genotype {shown!r}: expected {SHAPE} or a name "
            f"({', '.join(self.named)})"
        )

    def format(self, arch: NASNetGenotype) -> str:
        self._check_genotype(arch, "format")
        return format_genotype(arch)

    def build(
        self,
        arch: NASNetGenotype,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        cells: int | None = None,
        layers: int | None = None,
        filters: int | None = None,
        channels: int | None = None,
        stem: str = "cifar",
        stem_multiplier: int | None = None,
        auxiliary: bool = False,
        dropout: float = 0.0,
    ) -> NASNetwork:
        """N@F with N=`cells`; F=`filters` when given, else first-stage width `channels`.

        `layers` counts the cells as DARTS and PNAS do instead (`stages_of`: 20 layers are
        N=6). Without sizes it builds the small `scoring_size` network. The stem has
        `stem_multiplier` x C filters (CIFAR) or `stem_multiplier` x 32 (ImageNet); by default 3,
        except 1 for ImageNet-stem networks narrower than C=64, as in NASNet's Mobile (C=44) and
        Large (C=168) models.
        """
        self._check_genotype(arch, "build")
        check_count(num_classes, f"{self.name} build num_classes")
        check_count(in_channels, f"{self.name} build in_channels")
        cells = self.scoring_size[0] if cells is None else cells
        channels = self.scoring_size[1] if channels is None else channels
        if cells < 1:
            raise NasboxError(f"--cells must be at least 1, got {cells}")
        if layers is not None and layers < 3:
            raise NasboxError(f"a network needs at least 3 layers (two reduce), got {layers}")
        if channels < 2:
            raise NasboxError(f"{self.name} cells need at least 2 channels, got {channels}")
        if filters is not None:
            if filters < 1:
                raise NasboxError(f"--filters must be positive, got {filters}")
            channels = channels_for(arch, filters)
        if stem_multiplier is None:
            stem_multiplier = 1 if stem == "imagenet" and channels < 64 else 3
        return NASNetwork(
            arch,
            operations=self.operations,
            stage_cells=(cells,) * 3 if layers is None else stages_of(layers),
            channels=channels,
            num_classes=num_classes,
            in_channels=in_channels,
            stem=stem,
            stem_multiplier=stem_multiplier,
            auxiliary=auxiliary,
            dropout=dropout,
        )


class NASNetSpace(CellSpace):
    """NASNet (Zoph et al., 2018): 13 operations, blocks that add or concatenate, loose ends.

    Its own string form is the readable one (`nasnet.parse_genotype`, with a JSON variant); its
    strings may hold cells of any number of blocks.
    """

    name = "nasnet"
    summary = (
        "The NASNet search space (Zoph et al., 2018): a normal and a reduction cell of B blocks "
        "each"
    )
    operations = NASNET_OPERATIONS
    default_blocks = 5
    combines = COMBINES
    named = {"nasnet-a": NASNET_A}
    any_block_count = True
    default_arch = "nasnet-a"
    published_size = (6, 768)  # NASNet-A 6@768, the paper's CIFAR-10 model
    laptop_size = (2, 96)

    def __init__(self, blocks: int = 5) -> None:
        super().__init__(blocks)

    def _parse_own_form(self, text: str) -> NASNetGenotype:
        return parse_genotype(text)

    def format(self, arch: NASNetGenotype) -> str:
        self._check_genotype(arch, "format")
        return str(arch)


# Published cells, as DARTS' `genotypes.py` (DARTS V1/V2, AmoebaNet-A, PNASNet-5) and GDAS'
# (ENAS, Pham et al., 2018, Figure 7; other transcriptions differ in one reduction op) write
# them. ENAS' code concatenates the loose ends, so its reduction cell outputs states 2, 3 and 6
# (GDAS lists all blocks).
DARTS_V1 = read_genotype(
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])"
)
DARTS_V2 = read_genotype(
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
AMOEBANET_A = read_genotype(
    "Genotype(normal=[('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('avg_pool_3x3', 3), ('sep_conv_3x3', 1), "
    "('skip_connect', 1), ('skip_connect', 0), ('avg_pool_3x3', 1)], normal_concat=[4, 5, 6], "
    "reduce=[('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 0), "
    "('sep_conv_7x7', 2), ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('conv_7x1_1x7', 0), ('sep_conv_3x3', 5)], reduce_concat=[3, 4, 6])"
)
PNASNET_5 = read_genotype(
    "Genotype(normal=[('sep_conv_5x5', 0), ('max_pool_3x3', 0), ('sep_conv_7x7', 1), "
    "('max_pool_3x3', 1), ('sep_conv_5x5', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 4), "
    "('max_pool_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 1)], "
    "normal_concat=[2, 3, 4, 5, 6], reduce=[('sep_conv_5x5', 0), ('max_pool_3x3', 0), "
    "('sep_conv_7x7', 1), ('max_pool_3x3', 1), ('sep_conv_5x5', 1), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 4), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 1)], "
    "reduce_concat=[2, 3, 4, 5, 6])"
)
ENAS = read_genotype(
    "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 1), ('sep_conv_5x5', 1), "
    "('skip_connect', 0), ('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('avg_pool_3x3', 1), ('sep_conv_5x5', 1), ('avg_pool_3x3', 0)], "
    "normal_concat=[2, 3, 4, 5, 6], reduce=[('sep_conv_5x5', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('avg_pool_3x3', 1), ('sep_conv_3x3', 1), ('avg_pool_3x3', 1), "
    "('avg_pool_3x3', 1), ('sep_conv_5x5', 4), ('sep_conv_3x3', 5), ('sep_conv_5x5', 0)], "
    "reduce_concat=[2, 3, 6])"
)


class DartsSpace(CellSpace):
    """DARTS' space (`genotypes.PRIMITIVES`); `none` lets a node ignore one of its inputs."""

    name = "darts"
    summary = "The DARTS search space (Liu et al., 2019): 4 nodes, 8 operations, all concatenated"
    operations = DARTS_OPERATIONS
    default_blocks = 4
    output = ALL_BLOCKS
    named = {"darts-v1": DARTS_V1, "darts-v2": DARTS_V2}
    default_arch = "darts-v2"
    published_size = (6, 576)  # DARTS' 20 cells with C=36 (3.3M parameters)
    laptop_size = (2, 128)


class AmoebaSpace(CellSpace):
    """AmoebaNet's space as NDS defines it, with `dil_sep_conv_3x3` and `conv_7x1_1x7`."""

    name = "amoeba"
    summary = "The AmoebaNet search space (Real et al., 2019): 5 blocks, 8 operations, loose ends"
    operations = AMOEBA_OPERATIONS
    default_blocks = 5
    named = {"amoebanet-a": AMOEBANET_A}
    default_arch = "amoebanet-a"
    published_size = (6, 432)  # AmoebaNet-A N=6, F=36 (3.2M parameters)
    laptop_size = (2, 96)


class PNASSpace(CellSpace):
    """PNAS' space as NDS defines it; its networks count reduction cells among a stage's N."""

    name = "pnas"
    summary = "The PNAS search space (Liu et al., 2018): 5 blocks, 8 operations, all concatenated"
    operations = PNAS_OPERATIONS
    default_blocks = 5
    output = ALL_BLOCKS
    named = {"pnasnet-5": PNASNET_5}
    default_arch = "pnasnet-5"
    published_size = (3, 960)  # PNASNet-5 N=3, F=48: 9 cells (3.2M parameters)
    laptop_size = (2, 160)

    def network_options(self, arch: NASNetGenotype, cells: int, filters: int) -> tuple[dict, int]:
        """PNAS' N counts a stage's reduction cell: its N@F network has 3N cells (`layers`)."""
        options, built = super().network_options(arch, cells, filters)
        return {"layers": 3 * options.pop("cells"), **options}, built


class ENASSpace(CellSpace):
    """ENAS' micro space as NDS defines it: separable convs, pools and skips only."""

    name = "enas"
    summary = "The ENAS search space (Pham et al., 2018): 5 blocks, 5 operations, loose ends"
    operations = ENAS_OPERATIONS
    default_blocks = 5
    named = {"enas": ENAS}
    default_arch = "enas"
    published_size = (5, 720)  # ENAS' released 15 normal cells, C=36 (the paper: 4.6M)
    laptop_size = (2, 160)
