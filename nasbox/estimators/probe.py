"""Shared computation for training-free proxies: one cell's network, built once, and its passes.

Several proxies of one cell read the same things: the seeded network, the seeded minibatch, the
ReLU codes of one forward pass (NASWOT and SWAP), the loss gradients of one forward and backward
pass (grad_norm, snip, fisher, grasp). A `Probe` builds the network once and memoises each pass,
so `score_together` (used by `nasbox score --estimator a,b,c` and by the ensemble) pays for each
pass once however many proxies read it. Proxies that change weights (synflow, zen) work on a
fresh copy of the untouched network, so every proxy sees the network exactly as built.
"""

import copy
import math
from collections.abc import Callable, Hashable, Sequence

import numpy as np
import torch
from torch import nn

from nasbox.estimators.base import Estimator, EstimatorContext
from nasbox.estimators.cost import MultiplyAdds, Parameters, count_multiply_adds, count_parameters
from nasbox.estimators.jacov import JacobianCovariance, jacov_score
from nasbox.estimators.naswot import NASWOT, HammingKernel, active_codes, batch_statistics_only

# Images of the loss-gradient pass: the zero-cost-nas and NASLib scripts score NB201 at batch 64.
GRADIENT_BATCH = 64
# Errors that mean "this cell's numbers broke down" (a singular matrix, an overflow), not a bug.
NUMERICAL_ERRORS = (ArithmeticError, np.linalg.LinAlgError, torch.linalg.LinAlgError)


def weighted_layers(network: nn.Module) -> list[nn.Module]:
    """Convolutions and linear layers: the layers whose weights the saliency proxies sum over."""
    return [m for m in network.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def finite_or_worst(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else -math.inf


class ReluPass:
    """One no-grad forward pass in training mode, reading every ReLU's input codes (x > 0).

    NASWOT's Hamming kernel and SWAP's distinct sample-wise patterns both come from these codes;
    ReLUs that read the same tensor are counted once for SWAP (their patterns are duplicates).
    """

    def __init__(self, network: nn.Module, images: torch.Tensor, precision: torch.autocast) -> None:
        self.kernel = HammingKernel(images.shape[0], images.device)
        self._patterns: list[torch.Tensor] = []
        seen: set[int] = set()
        keep: list[torch.Tensor] = []

        def read(_module: nn.Module, inputs: tuple) -> None:
            activations = inputs[0]
            self.kernel.add(activations)
            if activations.dim() == 4 and id(activations) not in seen:
                seen.add(id(activations))
                keep.append(activations)
                self._patterns.append(pack_patterns(active_codes(activations)))

        handles = [
            m.register_forward_pre_hook(read) for m in network.modules() if isinstance(m, nn.ReLU)
        ]
        try:
            network.train()
            with torch.no_grad(), precision, batch_statistics_only(network):
                self.finite_output = bool(torch.isfinite(network(images)).all())
        finally:
            for handle in handles:
                handle.remove()

    def naswot(self) -> float:
        return self.kernel.log_determinant() if self.finite_output else -math.inf

    def distinct_patterns(self) -> int:
        """SWAP: how many distinct binary patterns over the samples the ReLU units show."""
        if not self._patterns:
            return 0
        return count_distinct_rows(torch.cat(self._patterns))


def pack_patterns(codes: torch.Tensor) -> torch.Tensor:
    """(N, ...) booleans -> one row per unit holding its N-sample pattern as 64-bit words."""
    units = codes.reshape(codes.shape[0], -1)
    words = []
    for start in range(0, units.shape[0], 64):
        block = units[start : start + 64].to(torch.int64)
        bits = torch.ones(len(block), 1, dtype=torch.int64, device=codes.device)
        bits <<= torch.arange(len(block), device=codes.device)[:, None]
        words.append((block * bits).sum(0))
    return torch.stack(words, 1)


def count_distinct_rows(rows: torch.Tensor) -> int:
    """Distinct rows of an integer matrix: a lexicographic order from stable sorts, one per
    column, then the rows that differ from their predecessor (about 10x faster on CPU than
    `torch.unique(dim=0)`, which this equals)."""
    order = torch.arange(rows.shape[0], device=rows.device)
    for column in reversed(range(rows.shape[1])):
        order = order[torch.sort(rows[order, column], stable=True).indices]
    ordered = rows[order]
    return 1 + int((ordered[1:] != ordered[:-1]).any(1).sum()) if len(ordered) else 0


class LossPass:
    """Cross-entropy forward and backward on the first GRADIENT_BATCH images of the minibatch.

    Keeps the gradient of every conv/linear weight and, for Fisher, each such layer's output and
    its gradient reduced to per-sample, per-channel sums; `torch.autograd.grad` leaves `.grad`
    of the network untouched.
    """

    def __init__(self, network: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.layers = weighted_layers(network)
        outputs: dict[nn.Module, torch.Tensor] = {}
        handles = [
            layer.register_forward_hook(lambda m, _i, out: outputs.__setitem__(m, out))
            for layer in self.layers
        ]
        try:
            network.train()
            loss = nn.functional.cross_entropy(network(images), labels)
        finally:
            for handle in handles:
                handle.remove()
        weights = [layer.weight for layer in self.layers]
        activations = [outputs[layer] for layer in self.layers]
        gradients = torch.autograd.grad(loss, weights + activations, allow_unused=True)
        self.weight_gradients = [
            torch.zeros_like(w) if g is None else g
            for w, g in zip(weights, gradients[: len(weights)], strict=True)
        ]
        self.fisher_terms = []
        for activation, gradient in zip(activations, gradients[len(weights) :], strict=True):
            if gradient is None:
                self.fisher_terms.append(0.0)
                continue
            product = (activation.detach() * gradient).reshape(*activation.shape[:2], -1).sum(-1)
            self.fisher_terms.append(float(0.5 * product.pow(2).mean(0).sum()))


class Probe:
    """One cell of one context: the network built once, the minibatch, and memoised passes."""

    def __init__(
        self,
        context: EstimatorContext,
        arch: Hashable,
        images: torch.Tensor | None,
        labels: torch.Tensor | None,
    ) -> None:
        self.context = context
        self.arch = arch
        self.images = images
        self.labels = labels
        self._built: nn.Module | None = None
        self._network: nn.Module | None = None
        self._passes: dict[str, object] = {}

    @property
    def built(self) -> nn.Module:
        """The network as built from the seed; never run, never changed."""
        if self._built is None:
            self._built = self.context.build(self.arch)
        return self._built

    def fresh(self) -> nn.Module:
        """A copy of the untouched network, for a proxy that changes weights or precision."""
        return copy.deepcopy(self.built)

    @property
    def network(self) -> nn.Module:
        """The copy that the shared passes run (BN statistics and autograd may touch it)."""
        if self._network is None:
            self._network = self.fresh()
        return self._network

    def shared(self, key: str, compute: Callable[[], object]) -> object:
        if key not in self._passes:
            self._passes[key] = compute()
        return self._passes[key]

    def relu_pass(self) -> ReluPass:
        """NASWOT's forward pass, in the context's precision as NASWOT runs it alone."""
        autocast = self.context.autocast()
        return self.shared("relu", lambda: ReluPass(self.network, self.images, autocast))

    def loss_pass(self) -> LossPass:
        batch = slice(0, GRADIENT_BATCH)
        return self.shared(
            "loss", lambda: LossPass(self.network, self.images[batch], self.labels[batch])
        )


class ProxyEstimator(Estimator):
    """A training-free proxy scored from a `Probe`; -inf when its numbers break down.

    `needs_data`: reads the seeded minibatch of `--data` (else only its image shape);
    `needs_labels`: also its labels.
    """

    needs_data = True
    needs_labels = False
    cost = "one forward pass per arch"

    def __init__(self, context: EstimatorContext) -> None:
        super().__init__(context)
        self.images = self.labels = None
        if self.needs_data:
            data = context.require_data(self.name)
            images, labels = data.batch(context.batch_size, seed=context.seed)
            self.images = images.to(context.device, memory_format=context.memory_format)
            self.labels = labels.to(context.device)

    def probe(self, arch: Hashable) -> Probe:
        return Probe(self.context, arch, self.images, self.labels)

    def score(self, probe: Probe) -> float:
        """The proxy's value on `probe` (may raise a numerical error or return nan/inf)."""
        raise NotImplementedError

    def score_probe(self, probe: Probe) -> float:
        try:
            with np.errstate(all="ignore"):
                return finite_or_worst(self.score(probe))
        except NUMERICAL_ERRORS:
            return -math.inf

    def __call__(self, arch: Hashable) -> float:
        return self.score_probe(self.probe(arch))


def _adapted(estimator: Estimator) -> Callable[[Probe], float] | None:
    """How a pre-existing estimator scores from a probe, where it can share one."""
    if isinstance(estimator, NASWOT):
        return lambda probe: probe.relu_pass().naswot()
    if isinstance(estimator, JacobianCovariance):
        return lambda probe: jacov_score(probe.network, estimator.images)
    if isinstance(estimator, Parameters):
        return lambda probe: count_parameters(probe.built) / 1e6
    if isinstance(estimator, MultiplyAdds):
        shape = estimator.input_shape
        return lambda probe: count_multiply_adds(probe.fresh().cpu(), shape) / 1e6
    return None


def shares_probe(estimator: Estimator) -> bool:
    return hasattr(estimator, "score_probe") or _adapted(estimator) is not None


def score_on_probe(estimator: Estimator, probe: Probe) -> float:
    """`estimator`'s value for `probe.arch`, reusing whatever `probe` has already computed."""
    if hasattr(estimator, "score_probe"):
        return estimator.score_probe(probe)
    return _adapted(estimator)(probe)


def minibatch_of(estimators: Sequence[Estimator]) -> tuple[torch.Tensor | None, ...]:
    """The seeded minibatch (images, labels) that the estimators of one context share."""
    for estimator in estimators:
        if getattr(estimator, "labels", None) is not None:
            return estimator.images, estimator.labels
    for estimator in estimators:
        images = getattr(estimator, "images", None)
        if images is not None:
            return images, None
    return None, None


def score_together(estimators: Sequence[Estimator], arch: Hashable) -> list[float]:
    """Each estimator's value for `arch`; those that can share one probe per context do."""
    probes: dict[int, Probe] = {}
    values = []
    for estimator in estimators:
        if not shares_probe(estimator):
            values.append(estimator(arch))
            continue
        key = id(estimator.context)
        if key not in probes:
            same_context = [e for e in estimators if e.context is estimator.context]
            probes[key] = Probe(estimator.context, arch, *minibatch_of(same_context))
        values.append(score_on_probe(estimator, probes[key]))
    return values
