import csv
import json

import numpy as np
import pytest
import torch

from nasbox.cli import main
from nasbox.errors import NasboxError
from nasbox.spaces import NB101Cell, get_space
from nasbox.spaces.nb101 import MAX_EDGES, MAX_VERTICES
from tests.conftest import shared_file

C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
# Two branches (a 3x3 conv and a max-pool) that meet in a 1x1 conv; the input also feeds the output.
EXAMPLE = f"{C3},{MP},{C1} | 0>1 0>2 0>4 1>3 2>3 3>4"


@pytest.fixture
def space():
    return get_space("nb101")


def spec_json(matrix, ops) -> str:
    return json.dumps({"matrix": matrix, "ops": ops})


def test_parse_and_format_round_trip(space):
    cell = space.parse(EXAMPLE)
    assert cell.ops == ("input", C3, MP, C1, "output")
    assert space.format(cell) == EXAMPLE
    assert space.parse(space.format(cell)) == cell
    assert space.format(space.parse(space.default_arch)) == space.default_arch


def test_benchmark_json_and_csv_specs_are_accepted(space):
    matrix = [[0, 1, 1, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0] * 5]
    ops = ["input", C3, MP, C1, "output"]
    assert space.parse(spec_json(matrix, ops)) == space.parse(EXAMPLE)
    rows = "/".join("".join(map(str, row)) for row in matrix)
    assert space.parse(f"{rows} {','.join(ops)}") == space.parse(EXAMPLE)
    assert space.parse(f'{rows},"{",".join(ops)}"') == space.parse(EXAMPLE)


def test_vertices_off_input_output_paths_are_pruned(space):
    # Vertex 2 is fed by the input but feeds nothing; vertex 3 feeds the output but nothing feeds it.
    matrix = [
        [0, 1, 1, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
    ]
    cell = space.parse(spec_json(matrix, ["input", C1, C3, MP, "output"]))
    assert cell.ops == ("input", C1, "output")
    assert space.format(cell) == f"{C1} | 0>1 1>2"


def test_isomorphic_specs_are_one_architecture(space):
    swapped = space.parse(f"{MP},{C3},{C1} | 0>1 0>2 0>4 1>3 2>3 3>4")
    original = space.parse(EXAMPLE)
    assert swapped == original
    assert hash(swapped) == hash(original)
    assert space.parse(space.format(swapped)) == original, "each keeps its order in print"
    assert len({swapped, original, space.parse(f"{C1},{C3},{C1} | 0>1 0>2 0>4 1>3 2>3 3>4")}) == 2


def _random_topological_order(cell: NB101Cell, rng: np.random.Generator) -> list[int]:
    """The vertices of `cell` in a random order that keeps every edge pointing forward."""
    output = len(cell.ops) - 1
    order = [0]
    while len(order) < output:
        ready = [
            vertex
            for vertex in range(1, output)
            if vertex not in order and all(a in order for a, b in cell.edges if b == vertex)
        ]
        order.append(int(rng.choice(ready)))
    return order + [output]


def test_every_topological_relabelling_gives_the_same_cell(space):
    rng = np.random.default_rng(5)
    relabelled = 0
    for _ in range(40):
        cell = space.sample(rng)
        order = _random_topological_order(cell, rng)
        position = {vertex: place for place, vertex in enumerate(order)}
        size = len(order)
        matrix = [[0] * size for _ in range(size)]
        for a, b in cell.edges:
            matrix[position[a]][position[b]] = 1
        ops = [cell.ops[vertex] for vertex in order]
        assert NB101Cell(matrix, ops) == cell
        relabelled += order != sorted(order)
    assert relabelled >= 5


def _chain(length: int) -> tuple[list[list[int]], list[str]]:
    """A straight input -> conv -> ... -> output path of `length` vertices."""
    matrix = [[int(b == a + 1) for b in range(length)] for a in range(length)]
    return matrix, ["input"] + [C3] * (length - 2) + ["output"]


def _too_many_edges() -> str:
    matrix = [[int(b > a) for b in range(5)] for a in range(5)]  # 10 edges, all on paths
    return spec_json(matrix, ["input", C3, C3, C3, "output"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (spec_json([[0, 1, 0], [0, 0, 1], [0, 1, 0]], ["input", C3, "output"]), "upper triangular"),
        (spec_json([[0, 1, 0], [0, 1, 1], [0, 0, 0]], ["input", C3, "output"]), "edge 1>1"),
        (f"{C3},{C3} | 0>1 2>1 1>3", "edge 2>1 goes backwards"),
        (_too_many_edges(), f"10 edges .* at most {MAX_EDGES}"),
        (spec_json(*_chain(8)), f"8 vertices .* at most {MAX_VERTICES}"),
        (f"{C3},conv5x5 | 0>1 1>2 2>3", "unknown op 'conv5x5' at vertex 2"),
        (spec_json([[0, 1], [0, 0]], [C3, "output"]), "first op must be 'input'"),
        (spec_json([[0, 1], [0, 0]], ["input", "input"]), "last 'output'"),
        (spec_json([[0, 1, 0], [0, 0], [0, 0, 0]], ["input", C3, "output"]), "not square"),
        (spec_json([[0, 1], [0, 0]], ["input", C3, "output"]), "2 rows but ops names 3"),
        (f"{C3},{C3} | 0>1 2>3", "output .* not reachable from the input"),
        (spec_json([[0, 2], [0, 0]], ["input", "output"]), r"entry \[0\]\[1\] is 2"),
        ('{"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"]', "malformed nb101 JSON"),
        ('{"matrix": [[0, 1], [0, 0]]}', '"ops"'),
        (spec_json([0, 1], ["input", "output"]), "rows of 0/1"),
        (f"{C3} 0>1 1>2", "expected 'OPS | EDGES'"),
        (f"{C3} | 0>1 1-2", "edge '1-2'"),
        (f"{C3} | 0>1 1>3", "past 2, the output"),
    ],
)
def test_malformed_cells_name_the_problem(space, text, message):
    with pytest.raises(NasboxError, match=message) as caught:
        space.parse(text)
    assert "\n" not in str(caught.value)


def _assert_valid(cell: NB101Cell) -> None:
    assert len(cell.ops) <= MAX_VERTICES
    assert sum(map(sum, cell.matrix)) <= MAX_EDGES
    assert NB101Cell(cell.matrix, cell.ops) == cell


def test_sample_and_mutate_are_valid_and_seeded(space):
    def draw(seed: int) -> list[NB101Cell]:
        rng = np.random.default_rng(seed)
        cells = [space.sample(rng) for _ in range(15)]
        return cells + [space.mutate(cell, rng) for cell in cells]

    cells = draw(7)
    assert cells == draw(7)
    assert cells != draw(8)
    for cell in cells:
        _assert_valid(cell)
    for parent, child in zip(cells[:15], cells[15:], strict=True):
        assert child != parent


def test_the_input_output_cell_mutates_into_a_new_cell(space):
    bare = space.parse("| 0>1")
    child = space.mutate(bare, np.random.default_rng(0))
    assert child != bare
    _assert_valid(child)


def test_decisions_round_trip(space):
    assert space.decision_sizes() == [2] * 21 + [3] * 5
    rng = np.random.default_rng(2)
    for cell in [space.parse(EXAMPLE), space.parse("| 0>1")] + [
        space.sample(rng) for _ in range(20)
    ]:
        assert space.from_decisions(space.to_decisions(cell)) == cell


def test_any_decision_sequence_is_repaired_into_the_same_valid_cell(space):
    rng = np.random.default_rng(3)
    for _ in range(50):
        decisions = [int(rng.integers(size)) for size in space.decision_sizes()]
        cell = space.from_decisions(decisions)
        _assert_valid(cell)
        assert space.from_decisions(decisions) == cell
    # No edges: every inner vertex is wired between input and output, then the last is trimmed.
    assert space.format(space.from_decisions([0] * 26)) == (
        f"{C3},{C3},{C3},{C3} | 0>1 0>2 0>3 0>4 1>5 2>5 3>5 4>5"
    )
    full = space.from_decisions([1] * 21 + [2] * 5)
    assert (len(full.ops), sum(map(sum, full.matrix))) == (MAX_VERTICES, MAX_EDGES)


@pytest.mark.parametrize("decisions", [[0] * 25, [0] * 27, [2] + [0] * 25, [0] * 25 + [3]])
def test_decisions_out_of_range_are_refused(space, decisions):
    with pytest.raises(NasboxError, match="26 decisions"):
        space.from_decisions(decisions)


def test_size_is_the_benchmark_count_and_is_not_enumerated(space):
    assert len(space) == 423_624
    with pytest.raises(NasboxError, match="too many to enumerate"):
        iter(space)


def test_network_forward_any_input_size(space):
    cell = space.parse(EXAMPLE)
    torch.manual_seed(0)
    network = space.build(cell, num_classes=7, in_channels=1, stem_channels=8, cells_per_stack=1)
    assert network(torch.randn(2, 1, 8, 8)).shape == (2, 7)
    assert network(torch.randn(2, 1, 13, 21)).shape == (2, 7)
    bare = space.build(space.parse("| 0>1"), stem_channels=4, cells_per_stack=2)
    assert bare(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_too_narrow_a_stem_is_refused(space):
    cell = space.parse(f"{C3},{C3},{C3} | 0>1 0>2 0>3 1>4 2>4 3>4")
    with pytest.raises(NasboxError, match="stem_channels must be at least 3"):
        space.build(cell, stem_channels=2)


def test_too_few_filters_name_the_option(space, capsys):
    """The CLI's --filters sets the stem (F / 4): too few for the cell named stem_channels, an
    option the CLI does not have."""
    cell = f"{C3},{C3},{C3} | 0>1 0>2 0>3 1>4 2>4 3>4"
    assert main(["describe", "--space", "nb101", "--arch", cell, "--filters", "8"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "--filters 8 is too few for this nb101 cell: its output splits the channels over 3 "
            "vertices, so it needs --filters 12 or more"
        )
    )
    assert main(["describe", "--space", "nb101", "--arch", cell, "--filters", "12"]) == 0


def test_output_channels_split_with_the_remainder_first(space):
    cell = space.parse(f"{C3},{C1},{MP} | 0>1 0>2 0>3 1>4 2>4 3>4")
    with torch.device("meta"):
        network = space.build(cell, stem_channels=8, cells_per_stack=1)
    assert network.layers[1].channels == [8, 3, 3, 2, 8]


def _parameters(network: torch.nn.Module) -> int:
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


@pytest.mark.integration
def test_parameter_counts_match_the_benchmark(space):
    """Every reference cell, read as the benchmark recorded it, has the benchmark's count."""
    with shared_file("nb101-sample.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 60
    for row in rows:
        cell = space.parse(f"{row['adjacency']} {row['ops']}")
        with torch.device("meta"):
            built = space.build(cell, stem_channels=128, cells_per_stack=3)
        assert _parameters(built) == int(row["params"]), row["adjacency"]
