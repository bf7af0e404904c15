"""Motif spaces: how a motif lives inside a tiny petri-dish network.

A motif space builds one network's initial weights (shared by every motif, so scores differ only
because the motifs differ) and a *batched functional* forward pass: weights carry a leading motif
dimension and one call runs M motifs' networks on the same synthetic inputs. That lets the inner
loop train a whole batch of motifs with one autograd graph.
"""

import numbers
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nasbox.checks import check_arch
from nasbox.errors import NasboxError
from nasbox.registry import Registry
from nasbox.spaces import SPACES
from nasbox.spaces.nb201 import EDGES, OPS, NB201Cell, NB201Space
from nasbox.spaces.rnn import ACTIVATIONS, RNNCell, RNNSpace

Weights = dict[str, torch.Tensor]
# The largest float32: the dish's tensors, and the baselines' trees, hold slopes in float32.
MAX_SLOPE = float(np.finfo(np.float32).max)


class MotifSpace(ABC):
    """What the dish needs to know about a family of motifs."""

    name: str
    input_shape: tuple[int, ...]
    num_outputs: int
    # "bce": binary labels per output unit (the paper's slope dish); "ce": one class per sample.
    label_kind: str
    #: What `parse` and `sample` return; `check_motif` refuses anything else.
    motif_type: type

    @abstractmethod
    def parse(self, text: str) -> Hashable:
        """Read a motif from its string form; raise `NasboxError` naming the bad part."""

    @abstractmethod
    def format(self, motif: Hashable) -> str:
        """The canonical string form of `motif`."""

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Hashable:
        """A random motif (for evolution)."""

    @abstractmethod
    def mutate(self, motif: Hashable, rng: np.random.Generator) -> Hashable:
        """A neighbouring motif (for evolution)."""

    @abstractmethod
    def encode(self, motifs: Sequence[Hashable]) -> np.ndarray:
        """Features of the motif encoding alone, for the baseline predictors (rows = motifs)."""

    @abstractmethod
    def init_weights(self, generator: torch.Generator) -> Weights:
        """One petri-dish network's initial weights (no motif dimension)."""

    @abstractmethod
    def forward(
        self, weights: Weights, motifs: Sequence[Hashable], x: torch.Tensor
    ) -> torch.Tensor:
        """Outputs (M, N, num_outputs) of M motifs' networks (weights with leading dim M) on x."""

    def options(self) -> dict:
        """Constructor arguments, stored in a dish file so `load` rebuilds the same space."""
        return {}

    def check_motif(self, motif: object, method: str) -> None:
        """`motif` must be one of this space's (`method` names who needs it): another space's
        motif, or its string, failed deep inside with an AttributeError or TypeError."""
        check_arch(motif, self.motif_type, f"{self.name} motif {method}")

    def check_motifs(self, motifs: Sequence[object], method: str) -> None:
        for motif in motifs:
            self.check_motif(motif, method)

    def parse_many(
        self,
        lines: Sequence[str],
        source: str = "input",
        line_numbers: Sequence[int] | None = None,
    ) -> list[Hashable]:
        """Parse one motif per line; the error names the line (`line_numbers`, else 1, 2, ...)."""
        motifs = []
        numbers = range(1, len(lines) + 1) if line_numbers is None else line_numbers
        for number, line in zip(numbers, lines, strict=True):
            try:
                motifs.append(self.parse(line))
            except NasboxError as err:
                raise NasboxError(f"{source}, line {number}: {err}") from None
        return motifs


class SlopeMotifs(MotifSpace):
    """The paper's motivating experiment: the motif is the slope c of the activation sigmoid(c z).

    The dish is the paper's MLP with layer sizes [10, 1, 1, 10]: two hidden units with the motif's
    activation and sigmoid outputs trained against fixed random binary labels.
    """

    name = "slope"
    label_kind = "bce"
    motif_type = float

    def __init__(
        self, sizes: Sequence[int] = (10, 1, 1, 10), low: float = 0.01, high: float = 2.01
    ):
        if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
            raise NasboxError(f"slope dish layer sizes must be >= 1, got {list(sizes)}")
        self.sizes = tuple(int(s) for s in sizes)
        self.low, self.high = float(low), float(high)
        self.input_shape = (self.sizes[0],)
        self.num_outputs = self.sizes[-1]

    def options(self) -> dict:
        return {"sizes": list(self.sizes), "low": self.low, "high": self.high}

    def parse(self, text: str) -> float:
        try:
            slope = float(str(text).strip())
        except ValueError:
            raise NasboxError(f"a slope motif must be a number, got {text!r}") from None
        if not np.isfinite(slope):
            raise NasboxError(f"a slope motif must be finite, got {text!r}")
        if abs(slope) > MAX_SLOPE:  # it would be infinite in the dish and in the baselines
            raise NasboxError(
                f"a slope motif must be at most {MAX_SLOPE:.3g} in size (the dish computes in "
                f"float32), got {text!r}; the ground truth's slopes lie in {self.low:g} .. "
                f"{self.high:g}"
            )
        return slope

    def check_motif(self, motif: object, method: str) -> None:
        """A slope is any real number: `dish.predict([0.5, 1])` or numpy's floats are slopes."""
        if not isinstance(motif, numbers.Real):
            super().check_motif(motif, method)

    def format(self, motif: float) -> str:
        self.check_motif(motif, "format")
        return repr(float(motif))

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))

    def mutate(self, motif: float, rng: np.random.Generator) -> float:
        self.check_motif(motif, "mutate")
        step = 0.1 * (self.high - self.low) * float(rng.standard_normal())
        return float(np.clip(motif + step, self.low, self.high))

    def encode(self, motifs: Sequence[float]) -> np.ndarray:
        self.check_motifs(motifs, "encode")
        return np.asarray(motifs, dtype=np.float64).reshape(-1, 1)

    def init_weights(self, generator: torch.Generator) -> Weights:
        weights = {}
        for layer, (fan_in, fan_out) in enumerate(
            zip(self.sizes[:-1], self.sizes[1:], strict=True)
        ):
            weights[f"w{layer}"] = torch.randn(fan_in, fan_out, generator=generator)
            weights[f"b{layer}"] = torch.randn(fan_out, generator=generator)
        return weights

    def forward(self, weights: Weights, motifs: Sequence[float], x: torch.Tensor) -> torch.Tensor:
        self.check_motifs(motifs, "forward")
        slopes = torch.tensor([float(m) for m in motifs], dtype=x.dtype).view(-1, 1, 1)
        hidden = x.expand(len(motifs), *x.shape)
        layers = len(self.sizes) - 1
        for layer in range(layers):
            z = hidden @ weights[f"w{layer}"] + weights[f"b{layer}"].unsqueeze(1)
            if layer == layers - 1:
                return z  # logits; the dish applies the sigmoid inside its BCE loss
            hidden = torch.sigmoid(slopes * z)
        raise AssertionError("unreachable")


def _batch_norm(x: torch.Tensor) -> torch.Tensor:
    """Batch statistics, no affine part, no running averages (the dish is always training)."""
    return F.batch_norm(x, None, None, training=True, eps=1e-5)


def _grouped_conv(x: torch.Tensor, weight: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Each motif's conv on its own channel block: weight (M, out, in, k, k) -> groups=M."""
    motifs, c_out, c_in, k, _ = weight.shape
    return F.conv2d(
        x, weight.reshape(motifs * c_out, c_in, k, k), stride=stride, padding=k // 2, groups=motifs
    )


class NB201Motifs(MotifSpace):
    """NAS-Bench-201 cells in a tiny network: C channels, one cell per stage, small images.

    All motifs of a batch share one graph: stage activations are (N, M*C, H, W), convolutions are
    grouped by motif, and each edge sums the ops selected by the motifs (a one-hot mask per motif),
    computing an op only if some motif of the batch uses it on that edge.
    """

    name = "nb201"
    label_kind = "ce"
    motif_type = NB201Cell

    def __init__(
        self, channels: int = 4, image_size: int = 8, in_channels: int = 3, classes: int = 10
    ):
        if channels < 1 or image_size < 4 or in_channels < 1 or classes < 2:
            raise NasboxError(
                "nb201 dish needs channels >= 1, image_size >= 4, in_channels >= 1, classes >= 2"
            )
        self.channels, self.image_size = int(channels), int(image_size)
        self.in_channels, self.classes = int(in_channels), int(classes)
        self.input_shape = (self.in_channels, self.image_size, self.image_size)
        self.num_outputs = self.classes
        self._space = NB201Space()

    def options(self) -> dict:
        return {
            "channels": self.channels,
            "image_size": self.image_size,
            "in_channels": self.in_channels,
            "classes": self.classes,
        }

    def parse(self, text: str) -> NB201Cell:
        return self._space.parse(text)

    def format(self, motif: NB201Cell) -> str:
        self.check_motif(motif, "format")
        return self._space.format(motif)

    def sample(self, rng: np.random.Generator) -> NB201Cell:
        return self._space.sample(rng)

    def mutate(self, motif: NB201Cell, rng: np.random.Generator) -> NB201Cell:
        self.check_motif(motif, "mutate")
        return self._space.mutate(motif, rng)

    def encode(self, motifs: Sequence[NB201Cell]) -> np.ndarray:
        """One-hot operation per edge (6 x 5 = 30 features)."""
        self.check_motifs(motifs, "encode")
        features = np.zeros((len(motifs), len(EDGES) * len(OPS)))
        for row, cell in enumerate(motifs):
            for edge, op in enumerate(cell.ops):
                features[row, edge * len(OPS) + OPS.index(op)] = 1.0
        return features

    def _widths(self) -> list[int]:
        return [self.channels * 2**stage for stage in range(3)]

    def init_weights(self, generator: torch.Generator) -> Weights:
        def conv(c_out: int, c_in: int, k: int) -> torch.Tensor:
            std = (2.0 / (c_in * k * k)) ** 0.5
            return torch.randn(c_out, c_in, k, k, generator=generator) * std

        widths = self._widths()
        weights = {"stem": conv(widths[0], self.in_channels, 3)}
        for stage, width in enumerate(widths):
            if stage > 0:
                previous = widths[stage - 1]
                weights[f"red{stage}_a"] = conv(width, previous, 3)
                weights[f"red{stage}_b"] = conv(width, width, 3)
                weights[f"red{stage}_short"] = conv(width, previous, 1)
            for edge in range(len(EDGES)):
                weights[f"cell{stage}_e{edge}_1x1"] = conv(width, width, 1)
                weights[f"cell{stage}_e{edge}_3x3"] = conv(width, width, 3)
        bound = 1.0 / widths[-1] ** 0.5
        weights["fc_w"] = (
            torch.rand(widths[-1], self.classes, generator=generator) * 2 - 1
        ) * bound
        weights["fc_b"] = torch.zeros(self.classes)
        return weights

    def _cell(
        self, x: torch.Tensor, weights: Weights, stage: int, masks: torch.Tensor, width: int
    ) -> torch.Tensor:
        nodes = [x]
        for target in range(1, 4):
            total = torch.zeros_like(x)
            for edge, (source, edge_target) in enumerate(EDGES):
                if edge_target != target:
                    continue
                for op_index, op in enumerate(OPS):
                    selected = masks[:, edge, op_index]
                    if op == "none" or not bool(selected.any()):
                        continue
                    inp = nodes[source]
                    if op == "skip_connect":
                        out = inp
                    elif op == "avg_pool_3x3":
                        out = F.avg_pool2d(inp, 3, stride=1, padding=1, count_include_pad=False)
                    else:
                        kernel = "1x1" if op == "nor_conv_1x1" else "3x3"
                        out = _batch_norm(
                            _grouped_conv(F.relu(inp), weights[f"cell{stage}_e{edge}_{kernel}"])
                        )
                    scale = selected.to(x.dtype).repeat_interleave(width).view(1, -1, 1, 1)
                    total = total + out * scale
            nodes.append(total)
        return nodes[-1]

    def forward(
        self, weights: Weights, motifs: Sequence[NB201Cell], x: torch.Tensor
    ) -> torch.Tensor:
        self.check_motifs(motifs, "forward")
        count = len(motifs)
        masks = torch.from_numpy(self.encode(motifs)).bool().view(count, len(EDGES), len(OPS))
        stem = weights["stem"]
        h = _batch_norm(F.conv2d(x, stem.reshape(-1, *stem.shape[2:]), padding=1))
        for stage, width in enumerate(self._widths()):
            if stage > 0:
                a = _batch_norm(_grouped_conv(F.relu(h), weights[f"red{stage}_a"], stride=2))
                b = _batch_norm(_grouped_conv(F.relu(a), weights[f"red{stage}_b"]))
                pooled = F.avg_pool2d(h, 2, stride=2, ceil_mode=True)
                h = b + _grouped_conv(pooled, weights[f"red{stage}_short"])
            h = self._cell(h, weights, stage, masks, width)
        features = F.relu(_batch_norm(h)).mean(dim=(2, 3))  # (N, M * width)
        features = features.view(x.shape[0], count, -1).transpose(0, 1)  # (M, N, width)
        return features @ weights["fc_w"] + weights["fc_b"].unsqueeze(1)


class RNNMotifs(MotifSpace):
    """Recurrent cells (`rnn` space) in a tiny recurrent classifier of synthetic sequences.

    A synthetic input is a sequence of `steps` vectors of `features` numbers; the network runs
    the cell with `hidden` units over it (DARTS' gated highway nodes, as `RecurrentCell`) and
    classifies the last hidden state into `classes`. All motifs of a batch share one graph: each
    node gathers the state it reads with a one-hot mask per motif and mixes the four activations
    with another, so M cells cost one batched computation.
    """

    name = "rnn"
    label_kind = "ce"
    motif_type = RNNCell

    def __init__(
        self, nodes: int = 8, hidden: int = 8, steps: int = 5, features: int = 4, classes: int = 4
    ):
        if min(nodes, hidden, steps, features) < 1 or classes < 2:
            raise NasboxError(
                "rnn dish needs nodes, hidden, steps and features >= 1 and classes >= 2"
            )
        self.nodes, self.hidden, self.steps = int(nodes), int(hidden), int(steps)
        self.features, self.classes = int(features), int(classes)
        self.input_shape = (self.steps, self.features)
        self.num_outputs = self.classes
        self._space = RNNSpace(self.nodes)

    def options(self) -> dict:
        return {
            "nodes": self.nodes,
            "hidden": self.hidden,
            "steps": self.steps,
            "features": self.features,
            "classes": self.classes,
        }

    def parse(self, text: str) -> RNNCell:
        cell = self._space.parse(text)
        self._space.to_decisions(cell)  # a cell of another size is an error here
        return cell

    def check_motif(self, motif: object, method: str) -> None:
        """Also the number of nodes: the dish has weights for `nodes` nodes, so a smaller cell
        was scored with zeros for its missing nodes, a larger one failed with an IndexError."""
        super().check_motif(motif, method)
        if len(motif.nodes) != self.nodes:
            raise NasboxError(
                f"{self.name} motif {method} got a cell of {len(motif.nodes)} nodes; this dish's "
                f"cells have {self.nodes}: pass a cell of this space (space.sample or space.parse)"
            )

    def format(self, motif: RNNCell) -> str:
        self.check_motif(motif, "format")
        return self._space.format(motif)

    def sample(self, rng: np.random.Generator) -> RNNCell:
        return self._space.sample(rng)

    def mutate(self, motif: RNNCell, rng: np.random.Generator) -> RNNCell:
        self.check_motif(motif, "mutate")
        return self._space.mutate(motif, rng)

    def _masks(self, motifs: Sequence[RNNCell]) -> tuple[torch.Tensor, torch.Tensor]:
        """One-hot (M, nodes, nodes) state read and (M, nodes, activations) activation."""
        reads = torch.zeros(len(motifs), self.nodes, self.nodes)
        activations = torch.zeros(len(motifs), self.nodes, len(ACTIVATIONS))
        names = list(ACTIVATIONS)
        for row, cell in enumerate(motifs):
            for node, (activation, source) in enumerate(cell.nodes):
                reads[row, node, source] = 1.0
                activations[row, node, names.index(activation)] = 1.0
        return reads, activations

    def encode(self, motifs: Sequence[RNNCell]) -> np.ndarray:
        """One-hot state read and activation per node (8 x (8 + 4) = 96 features)."""
        self.check_motifs(motifs, "encode")
        reads, activations = self._masks(motifs)
        return torch.cat([reads, activations], dim=2).flatten(1).double().numpy()

    def init_weights(self, generator: torch.Generator) -> Weights:
        def uniform(*shape: int) -> torch.Tensor:
            bound = 1.0 / shape[-2] ** 0.5
            return (torch.rand(*shape, generator=generator) * 2 - 1) * bound

        return {
            "input": uniform(self.features, 2 * self.hidden),
            "state": uniform(self.hidden, 2 * self.hidden),
            "nodes": uniform(self.nodes, self.hidden, 2 * self.hidden),
            "fc_w": uniform(self.hidden, self.classes),
            "fc_b": torch.zeros(self.classes),
        }

    def forward(self, weights: Weights, motifs: Sequence[RNNCell], x: torch.Tensor) -> torch.Tensor:
        self.check_motifs(motifs, "forward")
        reads, activations = self._masks(motifs)
        reads, activations = reads.to(x.dtype), activations.to(x.dtype)
        count = len(motifs)
        x_gates = torch.einsum("ntf,mfg->mtng", x, weights["input"])
        h = x.new_zeros(count, x.shape[0], self.hidden)
        for t in range(self.steps):
            gate, candidate = (x_gates[:, t] + h @ weights["state"]).chunk(2, dim=-1)
            states = [torch.lerp(h, torch.tanh(candidate), torch.sigmoid(gate))]
            for node in range(self.nodes):
                stacked = torch.stack(states, dim=1)  # (M, states, N, hidden)
                read = reads[:, node, : len(states)]
                previous = torch.einsum("ms,msnh->mnh", read, stacked)
                gate, candidate = (previous @ weights["nodes"][:, node]).chunk(2, dim=-1)
                options = torch.stack([act(candidate) for act in ACTIVATIONS.values()], dim=1)
                mixed = torch.einsum("ma,manh->mnh", activations[:, node], options)
                states.append(previous + torch.sigmoid(gate) * (mixed - previous))
            h = torch.stack(states[1:]).mean(0)
        return h @ weights["fc_w"] + weights["fc_b"].unsqueeze(1)


MOTIF_SPACES: Registry[MotifSpace] = Registry("motif space")
MOTIF_SPACES.register("slope")(SlopeMotifs)
MOTIF_SPACES.register("nb201")(NB201Motifs)
MOTIF_SPACES.register("rnn")(RNNMotifs)


def get_motif_space(name: str, **options) -> MotifSpace:
    return MOTIF_SPACES.create(name, **options)


def searchable_motif_spaces() -> list[str]:
    """The motif spaces that are search spaces too: slope is a space of `nasbox petri` alone,
    so it is no --space to suggest to `search` or `score`."""
    return [name for name in MOTIF_SPACES.names() if name in SPACES]
