"""Recurrent cells for language modelling: the DARTS / ENAS cell of N nodes, each one activation.

The cell (Liu et al., 2019, DARTS' `rnn/model.py` `DARTSCell`) turns the input x_t and the previous
hidden state h_{t-1} into h_t through a highway of gated updates:

    c0, h0 = split(W0 [x_t; h_{t-1}])    s0 = h_{t-1} + sigmoid(c0) * (tanh(h0) - h_{t-1})
    c_i, h_i = split(W_i s_j)            s_i = s_j + sigmoid(c_i) * (act_i(h_i) - s_j)
    h_t = mean(s_1, ..., s_N)

An architecture chooses, for each intermediate node i = 1..N, the earlier state j < i it reads
(state 0 is s0) and its activation (tanh, relu, sigmoid or identity): with N = 8, 4^8 x 8! = 2.6e9
cells. Its string lists the nodes in order as `activation~j` joined by `|`, e.g. DARTS V2 is
`sigmoid~0|relu~1|relu~1|identity~1|tanh~2|sigmoid~5|tanh~3|relu~5`. `parse` also reads DARTS'
`Genotype(recurrent=[('sigmoid', 0), ...], concat=range(1, 9))` and the names of the published
cells: `darts-v1` and `darts-v2` (DARTS' `genotypes.py`) and `enas` (below). Strings may hold any
number of nodes (the ENAS cell has 11); sampling, mutation and the decision view use the space's N.

The network (`RNNLanguageModel`) embeds tokens, runs `layers` such cells over time and decodes
with the embedding's weights (tied, so the embedding has `hidden` units), as DARTS' `RNNModel`.
Its dropouts are DARTS': `dropout_input` masks x_t entering the cell (DARTS' dropoutx),
`dropout_hidden` masks h_{t-1} and every node's input (dropouth) and `dropout_output` the cell's
outputs before the decoder (dropout); each mask is drawn once per sequence chunk and reused at
every step (variational dropout). DARTS' embedding dropouts (dropouti, dropoute) are left out.
Weights are uniform in +-0.1 up to 300 hidden units, +-0.05 up to 400 and +-0.04 above (ENAS;
DARTS' 850 units use 0.04), the embedding in +-0.1.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nasbox.checks import check_arch, check_count, check_rng, check_text
from nasbox.errors import NasboxError
from nasbox.spaces.base import SearchSpace
from nasbox.spaces.darts_genotype import looks_like_genotype, read_recurrent_genotype

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}
# Far more nodes than any published cell; a longer string is a mistake, not a cell.
MAX_NODES = 64
_NODE_PATTERN = re.compile(r"^(?P<activation>[A-Za-z_]+)~(?P<source>\d+)$")


@dataclass(frozen=True)
class RNNCell:
    """The intermediate nodes in order: (activation, the state it reads; 0 is s0)."""

    nodes: tuple[tuple[str, int], ...]

    def __str__(self) -> str:
        return "|".join(f"{activation}~{source}" for activation, source in self.nodes)


def validate_cell(nodes: Sequence[tuple[str, int]], what: str = "rnn cell") -> RNNCell:
    """An `RNNCell` of `nodes`; an unknown activation or a state not yet computed is an error."""
    if not 1 <= len(nodes) <= MAX_NODES:
        raise NasboxError(f"{what} has {len(nodes)} nodes; give 1 to {MAX_NODES}")
    for number, (activation, source) in enumerate(nodes, start=1):
        if activation not in ACTIVATIONS:
            raise NasboxError(
                f"unknown activation {activation!r} in {what} (node {number}); choose one of: "
                f"{', '.join(ACTIVATIONS)}"
            )
        if not 0 <= source < number:
            raise NasboxError(
                f"{what}: node {number} reads state {source}; node i reads one of the states "
                f"0 (s0, from x_t and h_t-1) to i-1"
            )
    return RNNCell(tuple((activation, source) for activation, source in nodes))


def parse_cell(text: str) -> RNNCell:
    """Read `activation~j|activation~j|...` (node 1 first) or DARTS' recurrent Genotype."""
    text = text.strip()
    if looks_like_genotype(text):
        pairs, concat = read_recurrent_genotype(text)
        averaged = tuple(range(1, len(pairs) + 1))
        if tuple(sorted(concat)) != averaged:
            raise NasboxError(
                f"rnn genotype averages states {list(concat)}; this space averages every "
                f"intermediate node (concat=range(1, {len(pairs) + 1}))"
            )
        return validate_cell(pairs, "rnn genotype")
    nodes = []
    for number, part in enumerate(text.split("|"), start=1):
        match = _NODE_PATTERN.match(part.strip())
        if match is None:
            shown = text if len(text) <= 40 else text[:37] + "..."
            raise NasboxError(
                f"malformed rnn cell {shown!r}: node {number} part {part.strip()!r} must look like "
                "'tanh~0' (activation~state), nodes joined by '|'"
            )
        nodes.append((match["activation"], int(match["source"])))
    return validate_cell(nodes)


DARTS_V1 = parse_cell("relu~0|relu~1|tanh~2|relu~3|relu~4|identity~1|relu~5|relu~1")
DARTS_V2 = parse_cell("sigmoid~0|relu~1|relu~1|identity~1|tanh~2|sigmoid~5|tanh~3|relu~5")
# ENAS' PTB cell (Pham et al., 2018, Figure 6) as its authors' scripts/ptb_final.sh gives it:
# `0 0 0 1 1 2 1 2 0 2 0 5 1 1 0 6 1 8 1 8 1 8 1`: the first node's activation (0, tanh: s0, as
# here), then (state read, activation) for 11 more nodes, with ENAS' activation codes 0 tanh,
# 1 relu, 2 identity, 3 sigmoid. ENAS' first node is this space's s0 exactly and its other nodes
# are the same gated updates; the one difference is the output: ENAS averages the 6 nodes no
# other node reads (3, 4, 7, 9, 10, 11), this space all 11.
ENAS = parse_cell("tanh~0|relu~1|relu~2|tanh~2|tanh~2|relu~5|tanh~1|relu~6|relu~8|relu~8|relu~8")
NAMED = {"darts-v1": DARTS_V1, "darts-v2": DARTS_V2, "enas": ENAS}


def _init_range(hidden: int) -> float:
    """ENAS' uniform initialisation range by hidden size (DARTS uses 0.04 at 850 units)."""
    if hidden <= 300:
        return 0.1
    return 0.05 if hidden <= 400 else 0.04


def _dropout_mask(like: torch.Tensor, probability: float) -> torch.Tensor | None:
    """A (batch, units) mask of kept units scaled by 1 / keep, or None without dropout."""
    if probability <= 0.0:
        return None
    keep = 1.0 - probability
    return like.new_empty(like.shape).bernoulli_(keep).div_(keep)


class RecurrentCell(nn.Module):
    """One cell unrolled over a chunk of time steps (DARTS' `DARTSCell` without its search
    mode). W0 is held as its x and h halves, so x_t's half runs once for the whole chunk."""

    def __init__(self, cell: RNNCell, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.reads = [source for _, source in cell.nodes]
        self.activations = [ACTIVATIONS[activation] for activation, _ in cell.nodes]
        self.input_weight = nn.Linear(hidden, 2 * hidden, bias=False)
        self.state_weight = nn.Linear(hidden, 2 * hidden, bias=False)
        self.node_weights = nn.ModuleList(
            nn.Linear(hidden, 2 * hidden, bias=False) for _ in cell.nodes
        )

    def step(self, x_gates: torch.Tensor, h: torch.Tensor, h_mask: torch.Tensor | None):
        """h_t from x_t's half of W0 [x_t; h_t-1] (already computed) and h_t-1."""
        masked = h if h_mask is None else h * h_mask
        gate, candidate = (x_gates + self.state_weight(masked)).chunk(2, dim=-1)
        states = [torch.lerp(h, torch.tanh(candidate), torch.sigmoid(gate))]
        for weight, source, activation in zip(
            self.node_weights, self.reads, self.activations, strict=True
        ):
            previous = states[source]
            masked = previous if h_mask is None else previous * h_mask
            gate, candidate = weight(masked).chunk(2, dim=-1)
            states.append(torch.lerp(previous, activation(candidate), torch.sigmoid(gate)))
        return torch.stack(states[1:]).mean(0)

    def forward(
        self, x: torch.Tensor, h: torch.Tensor, dropout_input: float, dropout_hidden: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs (time, batch, hidden) of a chunk and the last hidden state."""
        training = self.training
        x_mask = _dropout_mask(x[0], dropout_input) if training else None
        h_mask = _dropout_mask(h, dropout_hidden) if training else None
        x_gates = self.input_weight(x if x_mask is None else x * x_mask)
        outputs = []
        # unbind, not x_gates[t]: each indexing's backward would zero a chunk-sized gradient.
        for x_t in x_gates.unbind(0):
            h = self.step(x_t, h, h_mask)
            outputs.append(h)
        return torch.stack(outputs), h


class RNNLanguageModel(nn.Module):
    """Embedding, `layers` recurrent cells, decoder tied to the embedding (DARTS' `RNNModel`).

    `forward(tokens, hidden)` takes token ids (time, batch) and the hidden state (layers, batch,
    hidden units; None: zeros) and returns the logits (time, batch, vocabulary) and the new state.
    """

    def __init__(
        self,
        cell: RNNCell,
        vocabulary: int,
        hidden: int = 128,
        layers: int = 1,
        dropout_input: float = 0.0,
        dropout_hidden: float = 0.0,
        dropout_output: float = 0.0,
    ) -> None:
        super().__init__()
        self.hidden, self.layers = hidden, layers
        self.dropout_input, self.dropout_hidden = dropout_input, dropout_hidden
        self.dropout_output = dropout_output
        self.embedding = nn.Embedding(vocabulary, hidden)
        self.cells = nn.ModuleList(RecurrentCell(cell, hidden) for _ in range(layers))
        self.decoder = nn.Linear(hidden, vocabulary)
        self.decoder.weight = self.embedding.weight
        with torch.no_grad():
            self.embedding.weight.uniform_(-0.1, 0.1)
            self.decoder.bias.zero_()
            bound = _init_range(hidden)
            for recurrent in self.cells:
                for parameter in recurrent.parameters():
                    parameter.uniform_(-bound, bound)

    def initial_state(self, batch: int) -> torch.Tensor:
        weight = self.embedding.weight
        return weight.new_zeros((self.layers, batch, self.hidden))

    def forward(
        self, tokens: torch.Tensor, hidden: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if hidden is None:
            hidden = self.initial_state(tokens.shape[1])
        x = self.embedding(tokens)
        last = []
        for layer, recurrent in enumerate(self.cells):
            x, h = recurrent(x, hidden[layer], self.dropout_input, self.dropout_hidden)
            last.append(h)
        if self.training and self.dropout_output > 0:
            x = x * _dropout_mask(x[0], self.dropout_output)
        return self.decoder(x), torch.stack(last)

    def multiply_adds_per_token(self) -> int:
        """Multiply-adds of one time step: every cell's W0 and W_i and the decoder."""
        cell_weights = sum(
            weight.numel() for recurrent in self.cells for weight in recurrent.parameters()
        )
        return cell_weights + self.decoder.weight.numel()


class RNNSpace(SearchSpace):
    """DARTS' recurrent cell space; architectures are `RNNCell` values.

    Decisions, per node i = 1..N: the state it reads (0..i-1; node 1 can only read s0, so it has
    no such decision) and its activation, in the order of `ACTIVATIONS`.
    """

    name = "rnn"
    summary = (
        "DARTS' recurrent cell for language modelling (Liu et al., 2019): 8 nodes, each one of "
        "4 activations of one earlier node"
    )
    modality = "text"
    default_arch = "darts-v2"
    published_size = (1, 850)  # DARTS' PTB model: one cell, 850 units (23M parameters, 10k words)
    laptop_size = (1, 128)

    def __init__(self, nodes: int = 8) -> None:
        if not 1 <= nodes <= MAX_NODES:
            raise NasboxError(f"an rnn cell needs 1 to {MAX_NODES} nodes, got {nodes}")
        self.nodes = nodes

    def sample(self, rng: np.random.Generator) -> RNNCell:
        check_rng(rng, f"{self.name} sample")
        return self.from_decisions([int(rng.integers(size)) for size in self.decision_sizes()])

    def mutate(self, arch: RNNCell, rng: np.random.Generator) -> RNNCell:
        """Another activation of one node, or (from node 2 on) another state it reads."""
        check_arch(arch, RNNCell, f"{self.name} mutate")
        check_rng(rng, f"{self.name} mutate")
        options = [
            (number, field)
            for number in range(len(arch.nodes))
            for field in ("activation", "source")
            if field == "activation" or number > 0
        ]
        number, field = options[int(rng.integers(len(options)))]
        activation, source = arch.nodes[number]
        if field == "activation":
            choices = [name for name in ACTIVATIONS if name != activation]
            activation = choices[int(rng.integers(len(choices)))]
        else:
            choices = [state for state in range(number + 1) if state != source]
            source = choices[int(rng.integers(len(choices)))]
        nodes = list(arch.nodes)
        nodes[number] = (activation, source)
        return RNNCell(tuple(nodes))

    def parse(self, text: str) -> RNNCell:
        """A name (darts-v1, darts-v2, enas), a cell string or DARTS' recurrent Genotype."""
        check_text(text, f"{self.name} parse")
        name = text.strip().lower().replace("_", "-")
        return NAMED[name] if name in NAMED else parse_cell(text)

    def format(self, arch: RNNCell) -> str:
        check_arch(arch, RNNCell, f"{self.name} format")
        return str(arch)

    def build(
        self,
        arch: RNNCell,
        *,
        num_classes: int = 10000,
        in_channels: int = 1,
        layers: int = 1,
        hidden: int | None = None,
        dropout_input: float = 0.0,
        dropout_hidden: float = 0.0,
        dropout_output: float = 0.0,
    ) -> RNNLanguageModel:
        """A language model over `num_classes` tokens (the vocabulary); `in_channels` is part of
        the contract only (token ids have no channels). `hidden` defaults to the laptop size."""
        check_arch(arch, RNNCell, f"{self.name} build")
        check_count(num_classes, f"{self.name} build num_classes")
        check_count(in_channels, f"{self.name} build in_channels")
        check_count(layers, f"{self.name} build layers")
        if hidden is not None:
            check_count(hidden, f"{self.name} build hidden")
        return RNNLanguageModel(
            arch,
            num_classes,
            hidden=self.laptop_size[1] if hidden is None else hidden,
            layers=layers,
            dropout_input=dropout_input,
            dropout_hidden=dropout_hidden,
            dropout_output=dropout_output,
        )

    def network_options(self, arch: RNNCell, cells: int, filters: int) -> tuple[dict, int]:
        """N stacked cells; F hidden units, which are also the embedding's (tied decoder)."""
        check_arch(arch, RNNCell, f"{self.name} network_options")
        return {"layers": cells, "hidden": filters}, filters

    def decision_sizes(self) -> list[int]:
        return [
            size
            for number in range(1, self.nodes + 1)
            for size in ([number] if number > 1 else []) + [len(ACTIVATIONS)]
        ]

    def to_decisions(self, arch: RNNCell) -> list[int]:
        check_arch(arch, RNNCell, f"{self.name} to_decisions")
        if len(arch.nodes) != self.nodes:
            raise NasboxError(
                f"rnn cell {arch} has {len(arch.nodes)} nodes; this space has {self.nodes}"
            )
        names = list(ACTIVATIONS)
        return [
            value
            for number, (activation, source) in enumerate(arch.nodes, start=1)
            for value in ([source] if number > 1 else []) + [names.index(activation)]
        ]

    def from_decisions(self, decisions: Sequence[int]) -> RNNCell:
        sizes = self.decision_sizes()
        if len(decisions) != len(sizes) or not all(
            0 <= int(d) < size for d, size in zip(decisions, sizes, strict=True)
        ):
            raise NasboxError(
                f"an rnn cell of {self.nodes} nodes needs {len(sizes)} decisions within {sizes}, "
                f"got {list(decisions)}"
            )
        values = iter(int(d) for d in decisions)
        names = list(ACTIVATIONS)
        nodes = []
        for number in range(1, self.nodes + 1):
            source = next(values) if number > 1 else 0
            nodes.append((names[next(values)], source))
        return RNNCell(tuple(nodes))
