"""The NASNet-style cell family: darts, amoeba, pnas, enas (and nasnet) as presets of one space."""

import csv

import numpy as np
import pytest
import torch

from nasbox.cli import main
from nasbox.errors import NasboxError
from nasbox.estimators.cost import count_parameters
from nasbox.spaces import get_space
from nasbox.spaces.cell_ops import (
    AMOEBA_OPERATIONS,
    DARTS_OPERATIONS,
    NASNET_OPERATIONS,
    make_op,
)
from nasbox.spaces.cells import DARTS_V2, CellSpace
from nasbox.spaces.nasnet import Block, stages_of
from tests.conftest import shared_file

PRESETS = ["nasnet", "darts", "amoeba", "pnas", "enas"]
DARTS = get_space("darts")
V2_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks run op by op: on busy cores, two threads wait for each other at every op."""
    torch.set_num_threads(1)


def test_darts_genotype_strings_print_exactly_as_darts_does():
    assert DARTS.format(DARTS_V2) == V2_TEXT
    assert DARTS.parse(V2_TEXT) == DARTS_V2 == DARTS.parse("DARTS_V2") == DARTS.parse("darts-v2")
    assert DARTS_V2.normal.blocks[3] == Block((0, 2), ("skip_connect", "dil_conv_3x3"))
    spread = V2_TEXT.replace("), (", "),\n    (").replace("Genotype(", "genotypes.Genotype(\n")
    assert DARTS.parse(spread) == DARTS_V2  # pasted from a genotypes.py over several lines


def test_concat_may_be_written_as_range():
    text = V2_TEXT.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)")
    assert DARTS.parse(text) == DARTS_V2
    assert DARTS.format(DARTS.parse(text)) == V2_TEXT


def test_rows_of_the_darts_sample_round_trip_exactly():
    with shared_file("darts-sample.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows[:20]:
        arch = DARTS.parse(row["genotype"])
        assert DARTS.format(arch) == row["genotype"]
        assert DARTS.from_decisions(DARTS.to_decisions(arch)) == arch


def _parameters_m(space: CellSpace, arch, cells: int, filters: int) -> float:
    options, built = space.network_options(arch, cells, filters)
    assert built == filters
    with torch.device("meta"):
        return count_parameters(space.build(arch, num_classes=10, **options)) / 1e6


@pytest.mark.parametrize(
    ("space_name", "arch", "published_m"),
    [
        ("darts", "darts-v1", 3.3),  # 20 cells (N=6), C=36
        ("darts", "darts-v2", 3.3),
        ("amoeba", "amoebanet-a", 3.2),  # N=6, F=36 (C=36)
        ("pnas", "pnasnet-5", 3.2),  # N=3, F=48: 9 cells, C=48
        ("nasnet", "nasnet-a", 3.3),  # 6@768
        pytest.param(
            "enas",
            "enas",
            4.6,  # the released configuration: 15 normal cells, C=36
            marks=pytest.mark.xfail(
                strict=True, reason="ENAS' published 4.6M is not reproduced (3.33M here)"
            ),
        ),
    ],
)
def test_named_genotypes_match_the_published_size_within_five_percent(
    space_name, arch, published_m
):
    """Counted without the auxiliary head, at each space's `published_size`, as DARTS counts."""
    space = get_space(space_name)
    genotype = space.parse(arch)
    params = _parameters_m(space, genotype, *space.published_size)
    assert params == pytest.approx(published_m, rel=0.05)


def test_pnas_counts_its_reduction_cells_among_the_n_of_a_stage():
    pnas = get_space("pnas")
    options, _ = pnas.network_options(pnas.parse("pnasnet-5"), 3, 960)
    assert options == {"layers": 9, "filters": 960}
    assert stages_of(9) == (3, 2, 2) and stages_of(20) == (6, 6, 6)
    network = pnas.build(pnas.parse("pnasnet-5"), channels=4, layers=9)
    assert len(network.cells) == 9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            V2_TEXT.replace("'dil_conv_3x3'", "'conv_9x9'"),
            "normal cell, block 4: unknown operation",
        ),
        (V2_TEXT.replace("('max_pool_3x3', 1)]", "('max_pool_3x3', 6)]"), "reduce cell, block 4: "),
        (V2_TEXT.replace("('skip_connect', 0), ('dil_conv_3x3', 2)", ""), "has 3 blocks; a darts"),
        (V2_TEXT.replace("('dil_conv_3x3', 2)", ""), "lists 7 (op, input) pairs"),
        (V2_TEXT.split(", reduce=")[0] + ")", "darts genotype has no reduce"),
        (V2_TEXT.replace("[2, 3, 4, 5])", "[2, 3, 9])"), "reduce cell: output state 9"),
        (V2_TEXT.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range('x')"), "range(2, 6)"),
        (V2_TEXT.replace("('sep_conv_3x3', 0)", "'sep_conv_3x3'", 1), "must be a list of ('op'"),
        (V2_TEXT.replace("normal=", "normals="), "unknown field 'normals'"),
        (V2_TEXT[:-9], "malformed darts genotype"),
        ("banana", "malformed darts genotype 'banana': expected Genotype(normal="),
        ("Genotype(" * 300, "malformed darts genotype"),
    ],
)
def test_malformed_genotypes_are_one_line_naming_the_problem(text, message):
    with pytest.raises(NasboxError) as err:
        DARTS.parse(text)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_genotype_on_the_command_line_is_one_line_and_status_2(capsys):
    arch = V2_TEXT.replace("'skip_connect', 0)", "'warp', 0)", 1)
    assert main(["describe", "--space", "darts", "--arch", arch]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown operation 'warp'" in err


@pytest.mark.parametrize("name", PRESETS)
def test_decisions_sample_and_mutation_follow_the_preset(name):
    space = get_space(name)
    sizes = space.decision_sizes()
    per_block = 5 if name == "nasnet" else 4  # only nasnet chooses how a block combines
    assert len(sizes) == 2 * space.blocks * per_block
    assert sizes[:4] == [2, 2, len(space.ops), len(space.ops)]
    rng = np.random.default_rng(0)
    arch = space.sample(rng)
    assert space.parse(space.format(arch)) == arch
    all_blocks = tuple(range(2, 2 + space.blocks))
    consumed = {index for block in arch.normal.blocks for index in block.inputs}
    if name in ("darts", "pnas"):
        assert arch.normal.outputs == arch.reduce.outputs == all_blocks
    else:  # the loose ends: every state no block reads
        assert set(arch.normal.outputs) == set(range(2 + space.blocks)) - consumed
    for _ in range(10):
        child = space.mutate(arch, rng)
        before, after = space.to_decisions(arch), space.to_decisions(child)
        assert sum(a != b for a, b in zip(before, after, strict=True)) == 1
        arch = child


def test_every_decision_sequence_within_the_sizes_is_an_architecture():
    space = get_space("amoeba")
    largest = [size - 1 for size in space.decision_sizes()]
    arch = space.from_decisions(largest)
    assert arch.normal.blocks[-1] == Block((5, 5), ("conv_7x1_1x7", "conv_7x1_1x7"))
    assert space.parse(space.format(arch)) == arch
    with pytest.raises(NasboxError, match="needs 40 decisions"):
        space.from_decisions(largest[:-1])


@pytest.mark.parametrize("name", PRESETS)
def test_tiny_networks_run_for_every_preset(name):
    space = get_space(name)
    torch.manual_seed(0)
    for arch in (space.parse(space.default_arch), space.sample(np.random.default_rng(1))):
        network = space.build(arch, num_classes=5, in_channels=1, channels=4, auxiliary=True)
        logits, aux = network(torch.randn(2, 1, 12, 12))
        assert logits.shape == aux.shape == (2, 5)


def test_ops_mean_what_their_family_means():
    """DARTS' dil_conv is a dilated separable conv, NASNet's a full one; `none` is zeros."""

    def parameters(operations, op: str) -> int:
        return count_parameters(make_op(operations, op, 16, 1))

    separable = 16 * 9 + 16 * 16 + 2 * 16  # depthwise, pointwise, BN
    assert parameters(DARTS_OPERATIONS, "dil_conv_3x3") == separable
    assert parameters(NASNET_OPERATIONS, "dil_conv_3x3") == 16 * 16 * 9 + 2 * 16
    assert parameters(AMOEBA_OPERATIONS, "dil_sep_conv_3x3") == 2 * separable
    zero = make_op(DARTS_OPERATIONS, "none", 16, 2)  # in a reduction cell it halves the size
    assert torch.equal(zero(torch.ones(1, 16, 8, 8)), torch.zeros(1, 16, 4, 4))


def test_nasnet_also_reads_genotype_strings_in_its_own_vocabulary():
    nasnet = get_space("nasnet")
    text = (
        "Genotype(normal=[('sep_conv_3x3', 0), ('identity', 1)], normal_concat=[2], "
        "reduce=[('max_pool_3x3', 0), ('conv_1x1', 1)], reduce_concat=[2])"
    )
    readable = "normal: sep_conv_3x3~0 + identity~1 ; reduce: max_pool_3x3~0 + conv_1x1~1"
    assert nasnet.format(nasnet.parse(text)) == readable
    with pytest.raises(NasboxError, match="unknown operation 'skip_connect'"):
        nasnet.parse(text.replace("identity", "skip_connect"))
