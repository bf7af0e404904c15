"""NAS-Bench-101: cells of up to 7 vertices and 9 edges, each inner vertex one of 3 ops.

A cell is a DAG from `input` to `output`: inner vertices sum their inputs and apply their op, the
output concatenates the vertices that feed it. Its string form lists the inner ops, then the
edges, with vertex 0 the input and the last vertex the output::

    conv3x3-bn-relu,conv1x1-bn-relu,maxpool3x3 | 0>1 0>2 1>3 2>3 3>4

`parse` also reads the benchmark's JSON spec (`{"matrix": [[0, 1, ...], ...], "ops": ["input",
..., "output"]}`) and its CSV form (`0010000/0001000/... input,conv3x3-bn-relu,...,output`).

Vertices on no input-to-output path are pruned, as the benchmark's ModelSpec does. Isomorphic
cells are one architecture: a cell is stored in the vertex order NAS-Bench-101's own enumeration
met first (the smallest edge bitmask, then the smallest op labels), the order in which the
benchmark generated, stored and trained it. The builder reproduces the benchmark's network (the
PyTorch port NASLib uses) exactly for the vertex order it is given; as the output's channels are
split with the remainder going to the first vertices, another order of the same cell can differ
in parameter count (by under 1% in a 60-cell sample).
"""

import itertools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nasbox.checks import check_arch, check_count, check_rng, check_text
from nasbox.errors import NasboxError
from nasbox.spaces.base import SearchSpace

#: Inner-vertex ops in the benchmark's label order (its canonical order depends on it).
OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
INPUT, OUTPUT = "input", "output"
MAX_VERTICES = 7
MAX_EDGES = 9
#: Unique cells up to isomorphism, as counted by the benchmark (Ying et al., 2019); too many to
#: enumerate cheaply, so it is a constant.
NUM_CELLS = 423_624
# The upper triangle of the 7x7 matrix, row by row: the edge bits of the decision view.
DECISION_EDGES = tuple(
    (source, target) for source in range(MAX_VERTICES) for target in range(source + 1, MAX_VERTICES)
)
_EDGE_PATTERN = re.compile(r"^(\d+)>(\d+)$")
_CSV_PATTERN = re.compile(r'^(?P<rows>[01]+(?:/[01]+)*)[\s,]+"?(?P<ops>[^"]*)"?$')

Matrix = tuple[tuple[int, ...], ...]


def _reachable(matrix: Sequence[Sequence[int]], start: int, forward: bool) -> set[int]:
    size = len(matrix)
    seen, frontier = {start}, [start]
    while frontier:
        vertex = frontier.pop()
        for other in range(size):
            edge = matrix[vertex][other] if forward else matrix[other][vertex]
            if edge and other not in seen:
                seen.add(other)
                frontier.append(other)
    return seen


def live_vertices(matrix: Sequence[Sequence[int]]) -> list[int]:
    """Vertices on some input-to-output path, in order; empty when the output is unreachable."""
    output = len(matrix) - 1
    from_input = _reachable(matrix, 0, forward=True)
    if output not in from_input:
        return []
    return sorted(from_input & _reachable(matrix, output, forward=False))


def _check_spec(matrix: Sequence[Sequence], ops: Sequence[str]) -> Matrix:
    """The matrix as 0/1 tuples, or a `NasboxError` naming what breaks the benchmark's rules."""
    if not isinstance(ops, Sequence) or not all(isinstance(op, str) for op in ops):
        raise NasboxError(f"nb101 cell: ops must be a list of op names, got {ops!r}")
    try:
        matrix = [list(row) for row in matrix]
    except TypeError:
        matrix = None
    if matrix is None or any(isinstance(entry, str) for row in matrix for entry in row):
        raise NasboxError("nb101 cell: matrix must be a list of rows of 0/1 numbers")
    size = len(matrix)
    for number, row in enumerate(matrix):
        if len(row) != size:
            raise NasboxError(
                f"nb101 cell: matrix is not square: row {number} has {len(row)} entries, "
                f"expected {size}"
            )
    if size != len(ops):
        raise NasboxError(
            f"nb101 cell: matrix has {size} rows but ops names {len(ops)} vertices; "
            "give one op per vertex, input and output included"
        )
    if size < 2:
        raise NasboxError("nb101 cell: needs at least 2 vertices, the input and the output")
    for source, row in enumerate(matrix):
        for target, entry in enumerate(row):
            if entry not in (0, 1):
                raise NasboxError(
                    f"nb101 cell: matrix entry [{source}][{target}] is {entry!r}; use 0 or 1"
                )
            if entry and target <= source:
                raise NasboxError(
                    f"nb101 cell: edge {source}>{target} goes backwards; the matrix must be "
                    "upper triangular (edges from lower to higher vertices, so no cycles)"
                )
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        raise NasboxError(
            f"nb101 cell: the first op must be {INPUT!r} and the last {OUTPUT!r}, got "
            f"{ops[0]!r} and {ops[-1]!r}"
        )
    for vertex, op in enumerate(ops[1:-1], start=1):
        if op not in OPS:
            raise NasboxError(
                f"nb101 cell: unknown op {op!r} at vertex {vertex}; choose one of: {', '.join(OPS)}"
            )
    return tuple(tuple(int(entry) for entry in row) for row in matrix)


def pruned_spec(matrix: Sequence[Sequence], ops: Sequence[str]) -> tuple[Matrix, tuple[str, ...]]:
    """Check a spec and drop the vertices off input-to-output paths, keeping the vertex order."""
    checked = _check_spec(matrix, ops)
    live = live_vertices(checked)
    if not live:
        raise NasboxError(
            f"nb101 cell: the output (vertex {len(checked) - 1}) is not reachable from the input "
            "(vertex 0); add edges that connect them"
        )
    pruned = tuple(tuple(checked[a][b] for b in live) for a in live)
    edges = sum(map(sum, pruned))
    if len(live) > MAX_VERTICES:
        raise NasboxError(
            f"nb101 cell: {len(live)} vertices lie on input-to-output paths; NAS-Bench-101 allows "
            f"at most {MAX_VERTICES}, remove some"
        )
    if edges > MAX_EDGES:
        raise NasboxError(
            f"nb101 cell: {edges} edges lie on input-to-output paths; NAS-Bench-101 allows at "
            f"most {MAX_EDGES}, remove some"
        )
    return pruned, tuple(ops[vertex] for vertex in live)


def _canonical(matrix: Matrix, ops: tuple[str, ...]) -> tuple[Matrix, tuple[str, ...]]:
    """The isomorphic copy the benchmark's enumeration meets first: least edge bits, then labels.

    Input and output stay in place; every topological order of the inner vertices is tried.
    """
    size = len(matrix)
    edges = [(a, b) for a in range(size) for b in range(a + 1, size) if matrix[a][b]]
    best_key, best_order = None, None
    for inner in itertools.permutations(range(1, size - 1)):
        order = (0, *inner, size - 1)
        position = {vertex: place for place, vertex in enumerate(order)}
        if any(position[a] > position[b] for a, b in edges):
            continue
        bits = sum(1 << (position[a] + position[b] * (position[b] - 1) // 2) for a, b in edges)
        key = (bits, tuple(OPS.index(ops[vertex]) for vertex in inner))
        if best_key is None or key < best_key:
            best_key, best_order = key, order
    ordered = tuple(tuple(matrix[a][b] for b in best_order) for a in best_order)
    return ordered, tuple(ops[vertex] for vertex in best_order)


@dataclass(frozen=True, eq=False)
class NB101Cell:
    """A pruned cell; isomorphic specs are equal and hash alike (one architecture).

    The vertex order given is kept for printing and building: NAS-Bench-101 gives an output's
    leftover channels to its first feeders, so the benchmark's own order is what reproduces its
    parameter counts. Construct it from any valid spec (lists or tuples, pruned or not).
    """

    matrix: Matrix
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        matrix, ops = pruned_spec(self.matrix, self.ops)
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "ops", ops)
        object.__setattr__(self, "canonical", _canonical(matrix, ops))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NB101Cell) and self.canonical == other.canonical

    def __hash__(self) -> int:
        return hash(self.canonical)

    @property
    def edges(self) -> list[tuple[int, int]]:
        size = len(self.ops)
        return [(a, b) for a in range(size) for b in range(a + 1, size) if self.matrix[a][b]]

    def __str__(self) -> str:
        edges = " ".join(f"{a}>{b}" for a, b in self.edges)
        return f"{','.join(self.ops[1:-1])} | {edges}".strip()


def _parse_json(text: str) -> NB101Cell:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise NasboxError(f"malformed nb101 JSON spec: {err}") from None
    if not isinstance(value, dict) or {"matrix", "ops"} - value.keys():
        raise NasboxError(
            'nb101 JSON spec must be an object {"matrix": [[0, 1, ...], ...], "ops": '
            '["input", ..., "output"]}'
        )
    if not isinstance(value["matrix"], list) or not isinstance(value["ops"], list):
        raise NasboxError("nb101 JSON spec: 'matrix' and 'ops' must be lists")
    return NB101Cell(value["matrix"], value["ops"])


def _parse_string(text: str) -> NB101Cell:
    ops_text, bar, edges_text = text.partition("|")
    if not bar:
        raise NasboxError(
            f"malformed nb101 cell {text!r}: expected 'OPS | EDGES' like "
            "'conv3x3-bn-relu,maxpool3x3 | 0>1 1>2 2>3', a JSON spec or the CSV form"
        )
    inner = [op.strip() for op in ops_text.split(",")] if ops_text.strip() else []
    size = len(inner) + 2
    matrix = [[0] * size for _ in range(size)]
    for token in edges_text.split():
        match = _EDGE_PATTERN.match(token)
        if match is None:
            raise NasboxError(
                f"nb101 cell: edge {token!r} must look like 'SOURCE>TARGET', e.g. 0>1"
            )
        source, target = int(match[1]), int(match[2])
        if max(source, target) >= size:
            raise NasboxError(
                f"nb101 cell: edge {token!r} names a vertex past {size - 1}, the output "
                f"(the cell lists {len(inner)} inner ops)"
            )
        matrix[source][target] = 1
    return NB101Cell(matrix, [INPUT, *inner, OUTPUT])


def parse_cell(text: str) -> NB101Cell:
    """Read a cell from its string form, the benchmark's JSON spec or its CSV form."""
    text = text.strip()
    if text.startswith("{"):
        return _parse_json(text)
    csv_form = _CSV_PATTERN.match(text)
    if csv_form is not None:
        rows = [[int(bit) for bit in row] for row in csv_form["rows"].split("/")]
        ops = [op for op in re.split(r"[\s,]+", csv_form["ops"]) if op]
        return NB101Cell(rows, ops)
    return _parse_string(text)


class ConvBnRelu(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        )


def make_op(name: str, channels: int) -> nn.Module:
    """An inner-vertex op; all keep channels and resolution."""
    if name == "conv3x3-bn-relu":
        return ConvBnRelu(channels, channels, 3)
    if name == "conv1x1-bn-relu":
        return ConvBnRelu(channels, channels, 1)
    if name == "maxpool3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    raise NasboxError(f"unknown nb101 op {name!r}; choose one of: {', '.join(OPS)}")


def vertex_channels(c_in: int, c_out: int, matrix: Matrix) -> list[int]:
    """The benchmark's widths: the output's channels split over the vertices that feed it (the
    first ones get the remainder); every other vertex as wide as the widest vertex it feeds."""
    size = len(matrix)
    output = size - 1
    channels = [c_in] + [0] * (size - 2) + [c_out]
    feeders = [v for v in range(1, output) if matrix[v][output]]
    if not feeders:
        return channels
    share, remainder = divmod(c_out, len(feeders))
    for rank, vertex in enumerate(feeders):
        channels[vertex] = share + (rank < remainder)
    for vertex in range(output - 1, 0, -1):
        if not matrix[vertex][output]:
            channels[vertex] = max(
                channels[t] for t in range(vertex + 1, output) if matrix[vertex][t]
            )
    return channels


class Cell(nn.Module):
    """Inner vertices add their (truncated) inputs and a 1x1 projection of the cell input; the
    output concatenates its feeders and adds a projection when the input feeds it too."""

    def __init__(self, matrix: Matrix, ops: Sequence[str], c_in: int, c_out: int) -> None:
        super().__init__()
        self.matrix = matrix
        self.channels = vertex_channels(c_in, c_out, matrix)
        output = len(matrix) - 1
        self.ops = nn.ModuleList(
            make_op(op, width) for op, width in zip(ops[1:-1], self.channels[1:-1], strict=True)
        )
        self.projections = nn.ModuleDict(
            {
                str(target): ConvBnRelu(c_in, self.channels[target], 1)
                for target in range(1, output + 1)
                if matrix[0][target]
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = len(self.matrix) - 1
        values = [x]
        for vertex in range(1, output):
            width = self.channels[vertex]
            incoming = [values[s][:, :width] for s in range(1, vertex) if self.matrix[s][vertex]]
            if self.matrix[0][vertex]:
                incoming.append(self.projections[str(vertex)](x))
            values.append(self.ops[vertex - 1](sum(incoming[1:], incoming[0])))
        feeders = [values[v] for v in range(1, output) if self.matrix[v][output]]
        projected = self.projections[str(output)](x) if self.matrix[0][output] else None
        if not feeders:
            return projected
        result = feeders[0] if len(feeders) == 1 else torch.cat(feeders, dim=1)
        return result if projected is None else result + projected


class NB101Network(nn.Module):
    """Stem conv, three stacks of cells with 2x2 max-pooling (and doubled width) between them,
    global average pooling and a linear classifier, as in the benchmark."""

    def __init__(
        self,
        matrix: Matrix,
        ops: Sequence[str],
        num_classes: int = 10,
        in_channels: int = 3,
        stem_channels: int = 128,
        cells_per_stack: int = 3,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBnRelu(in_channels, stem_channels, 3)]
        width = previous = stem_channels
        for stack in range(3):
            if stack > 0:
                # ceil_mode: odd sizes round up, like the benchmark's 'same' padding.
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                width *= 2
            for _ in range(cells_per_stack):
                layers.append(Cell(matrix, ops, previous, width))
                previous = width
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.layers(x).mean(dim=(2, 3)))


def _needs_repair(matrix: Sequence[Sequence[int]]) -> bool:
    live = live_vertices(matrix)
    return not live or sum(matrix[a][b] for a in live for b in live) > MAX_EDGES


def _live_without(matrix: Sequence[Sequence[int]], edge: tuple[int, int]) -> list[int]:
    copy = [list(row) for row in matrix]
    copy[edge[0]][edge[1]] = 0
    return live_vertices(copy)


def _repair(matrix: list[list[int]]) -> None:
    """Make any 7x7 upper-triangular matrix a valid cell, in place and deterministically.

    When the output is unreachable, each inner vertex without inputs gets an edge from the input
    and each one without outputs an edge to the output (then every vertex is on a path). While
    more than 9 edges lie on input-to-output paths, the live edge latest in decision order is
    removed whose removal keeps every live vertex on a path; failing that, the latest that keeps
    the output reachable (one always exists: a path needs at most 6 edges).
    """
    output = MAX_VERTICES - 1
    if not live_vertices(matrix):
        for vertex in range(1, output):
            if not any(matrix[source][vertex] for source in range(vertex)):
                matrix[0][vertex] = 1
            if not any(matrix[vertex][target] for target in range(vertex + 1, MAX_VERTICES)):
                matrix[vertex][output] = 1
    while _needs_repair(matrix):
        live = live_vertices(matrix)
        edges = [(a, b) for a, b in reversed(DECISION_EDGES) if matrix[a][b] and {a, b} <= {*live}]
        a, b = next((e for e in edges if _live_without(matrix, e) == live), None) or next(
            e for e in edges if _live_without(matrix, e)
        )
        matrix[a][b] = 0


class NB101Space(SearchSpace):
    """The NAS-Bench-101 cell space; architectures are `NB101Cell` values.

    Decisions: the 21 edge bits of a 7x7 upper-triangular matrix (row by row), then the op of
    inner vertices 1..5. A cell with fewer vertices fills the first inner slots, its output goes
    to vertex 6 and unused slots take op 0. Sequences that break the rules are repaired (see
    `_repair`), so every sequence is a cell.
    """

    name = "nb101"
    ops = OPS
    # The best cell of a 60-cell sample of the benchmark (94.3% validation accuracy).
    default_arch = "conv1x1-bn-relu,conv3x3-bn-relu | 0>1 0>3 1>2 2>3"
    published_size = (3, 512)  # the benchmark's network: stem 128, 3 cells per stack
    laptop_size = (1, 64)

    def __len__(self) -> int:
        return NUM_CELLS

    def __iter__(self) -> Iterator[NB101Cell]:
        raise NasboxError(f"nb101 has {NUM_CELLS:,} cells, too many to enumerate; sample them")

    def sample(self, rng: np.random.Generator) -> NB101Cell:
        """The benchmark's random cell: each edge with p=0.5, random ops, redrawn until valid
        (uniform over specs, not over the unique cells)."""
        check_rng(rng, f"{self.name} sample")
        while True:
            decisions = [int(rng.integers(size)) for size in self.decision_sizes()]
            matrix, ops = self._spec(decisions)
            if not _needs_repair(matrix):
                return NB101Cell(matrix, ops)

    def mutate(self, arch: NB101Cell, rng: np.random.Generator) -> NB101Cell:
        """Flip one edge or change one op, redrawn until the cell is valid and new.

        The input-to-output-only cell has no such neighbour; it grows one inner vertex.
        """
        check_arch(arch, NB101Cell, f"{self.name} mutate")
        check_rng(rng, f"{self.name} mutate")
        if len(arch.ops) == 2:
            op = OPS[int(rng.integers(len(OPS)))]
            return NB101Cell([[0, 1, 1], [0, 0, 1], [0, 0, 0]], [INPUT, op, OUTPUT])
        decisions = self.to_decisions(arch)
        sizes = self.decision_sizes()
        while True:
            changed = list(decisions)
            position = int(rng.integers(len(sizes)))
            choices = [value for value in range(sizes[position]) if value != changed[position]]
            changed[position] = choices[int(rng.integers(len(choices)))]
            matrix, ops = self._spec(changed)
            if not _needs_repair(matrix):
                child = NB101Cell(matrix, ops)
                if child != arch:
                    return child

    def parse(self, text: str) -> NB101Cell:
        check_text(text, f"{self.name} parse")
        return parse_cell(text)

    def format(self, arch: NB101Cell) -> str:
        check_arch(arch, NB101Cell, f"{self.name} format")
        return str(arch)

    def build(
        self,
        arch: NB101Cell,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        stem_channels: int = 32,
        cells_per_stack: int = 1,
    ) -> NB101Network:
        """The benchmark's network; the benchmark trained stem_channels=128, cells_per_stack=3.

        The small defaults are what training-free scores run on. On 60 benchmark cells, NASWOT
        (batch 128, 2 CPU cores) took under 1 s per cell here against about 11 s for the full
        network, and ranked the cells better (Kendall tau 0.27 against 0.24).
        """
        check_arch(arch, NB101Cell, f"{self.name} build")
        check_count(num_classes, f"{self.name} build num_classes")
        check_count(in_channels, f"{self.name} build in_channels")
        check_count(stem_channels, f"{self.name} build stem_channels")
        if cells_per_stack < 1:
            raise NasboxError(f"nb101 needs at least 1 cell per stack, got {cells_per_stack}")
        feeders = _output_feeders(arch)
        if stem_channels < max(feeders, 1):
            raise NasboxError(
                f"nb101 stem_channels must be at least {max(feeders, 1)} (the output splits its "
                f"channels over {feeders} vertices), got {stem_channels}"
            )
        return NB101Network(
            arch.matrix, arch.ops, num_classes, in_channels, stem_channels, cells_per_stack
        )

    def network_options(self, arch: NB101Cell, cells: int, filters: int) -> tuple[dict, int]:
        """N cells per stack; F = 4 x the stem's channels, the width after the last stack."""
        check_arch(arch, NB101Cell, f"{self.name} network_options")
        stem, feeders = max(filters // 4, 1), max(_output_feeders(arch), 1)
        if stem < feeders:
            raise NasboxError(
                f"--filters {filters} is too few for this nb101 cell: its output splits the "
                f"channels over {feeders} vertices, so it needs --filters {4 * feeders} or more"
            )
        return {"cells_per_stack": cells, "stem_channels": stem}, 4 * stem

    def decision_sizes(self) -> list[int]:
        return [2] * len(DECISION_EDGES) + [len(OPS)] * (MAX_VERTICES - 2)

    def to_decisions(self, arch: NB101Cell) -> list[int]:
        check_arch(arch, NB101Cell, f"{self.name} to_decisions")
        size = len(arch.ops)
        slot = list(range(size - 1)) + [MAX_VERTICES - 1]
        edges = {(slot[a], slot[b]) for a, b in arch.edges}
        ops = [OPS.index(op) for op in arch.ops[1:-1]]
        return [int(edge in edges) for edge in DECISION_EDGES] + ops + [0] * (MAX_VERTICES - size)

    def from_decisions(self, decisions: Sequence[int]) -> NB101Cell:
        matrix, ops = self._spec(decisions)
        _repair(matrix)
        return NB101Cell(matrix, ops)

    def _spec(self, decisions: Sequence[int]) -> tuple[list[list[int]], list[str]]:
        """The raw 7x7 spec a decision sequence spells, before pruning or repair."""
        sizes = self.decision_sizes()
        if len(decisions) != len(sizes) or not all(
            0 <= int(d) < size for d, size in zip(decisions, sizes, strict=True)
        ):
            raise NasboxError(
                f"an nb101 cell needs {len(sizes)} decisions: {len(DECISION_EDGES)} edge bits "
                f"(0/1) then {MAX_VERTICES - 2} ops (0..{len(OPS) - 1}), got {list(decisions)}"
            )
        matrix = [[0] * MAX_VERTICES for _ in range(MAX_VERTICES)]
        for (a, b), bit in zip(DECISION_EDGES, decisions, strict=False):
            matrix[a][b] = int(bit)
        inner = [OPS[int(d)] for d in decisions[len(DECISION_EDGES) :]]
        return matrix, [INPUT, *inner, OUTPUT]


def _output_feeders(arch: NB101Cell) -> int:
    """The inner vertices the output concatenates, which share its channels."""
    return sum(arch.matrix[v][-1] for v in range(1, len(arch.ops) - 1))
