import numpy as np
import pytest
import torch

from nasbox.errors import NasboxError
from nasbox.spaces import NB201Cell, get_space

EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.fixture
def space():
    return get_space("nb201")


def test_parse_and_format_round_trip(space):
    cell = space.parse(EXAMPLE)
    assert cell.ops == ("nor_conv_3x3",) * 3 + ("skip_connect", "nor_conv_3x3", "nor_conv_3x3")
    assert space.format(cell) == EXAMPLE


@pytest.mark.parametrize(
    ("text", "bad_part"),
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "3 node groups"),
        ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "conv_5x5"),
        ("|none~0|+|none~1|none~1|+|none~0|none~1|none~2|", "none~1"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "none0"),
    ],
)
def test_malformed_cells_name_the_bad_part(space, text, bad_part):
    with pytest.raises(NasboxError, match=bad_part):
        space.parse(text)


def test_enumerates_every_cell_once(space):
    cells = list(space)
    assert len(cells) == len(space) == 15625
    assert len(set(cells)) == 15625
    assert all(space.parse(space.format(cell)) == cell for cell in cells[::997])


def test_sampling_is_seeded_and_covers_all_ops(space):
    first = [space.sample(np.random.default_rng(3)) for _ in range(5)]
    again = [space.sample(np.random.default_rng(3)) for _ in range(5)]
    assert first == again
    rng = np.random.default_rng(0)
    ops = [op for _ in range(2000) for op in space.sample(rng).ops]
    counts = np.array([ops.count(op) for op in space.ops])
    assert counts.min() > 0.17 * len(ops)


def test_mutation_changes_exactly_one_edge(space):
    rng = np.random.default_rng(0)
    for _ in range(50):
        cell = space.sample(rng)
        child = space.mutate(cell, rng)
        assert sum(a != b for a, b in zip(cell.ops, child.ops, strict=True)) == 1


def test_decisions_round_trip(space):
    cell = space.parse(EXAMPLE)
    assert space.decision_sizes() == [5] * 6
    assert space.from_decisions(space.to_decisions(cell)) == cell
    with pytest.raises(NasboxError):
        space.from_decisions([0, 1, 7, 0, 0, 0])


def test_network_any_input_size_channels_and_classes(space):
    cell = space.parse(EXAMPLE)
    network = space.build(cell, num_classes=7, in_channels=1, channels=8, cells_per_stage=1)
    assert network(torch.randn(2, 1, 8, 8)).shape == (2, 7)
    assert network(torch.randn(2, 1, 13, 21)).shape == (2, 7)


@pytest.mark.parametrize(
    ("text", "params_m"),
    [
        (EXAMPLE, 1.288506),
        (
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
            0.802426,
        ),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", 0.073306),
    ],
)
def test_parameter_count_matches_the_benchmark(space, text, params_m):
    network = space.build(space.parse(text))
    assert sum(p.numel() for p in network.parameters()) == round(params_m * 1e6)


def test_cells_are_hashable_values():
    assert NB201Cell(("none",) * 6) == NB201Cell(("none",) * 6)
    assert len({NB201Cell(("none",) * 6), NB201Cell(("none",) * 6)}) == 1


def test_none_edges_add_nothing_and_an_all_none_node_is_zeros():
    from nasbox.spaces.nb201 import EDGES, Cell, parse_cell

    cell = parse_cell("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|")
    torch.manual_seed(0)
    module = Cell(cell, channels=4).train()
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        nodes = [x]
        for target in range(1, 4):
            incoming = [module.ops[k](nodes[s]) for k, (s, t) in enumerate(EDGES) if t == target]
            nodes.append(sum(incoming[1:], incoming[0]))  # every edge, zeros included
        torch.testing.assert_close(module(x), nodes[-1])
    assert not nodes[2].any()
