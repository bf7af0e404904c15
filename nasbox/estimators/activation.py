"""Activation-based zero-cost proxies: MeCo, SWAP (plain and size-regularised) and Zen-score."""

import math

import numpy as np
import torch
from torch import nn

from nasbox.errors import NasboxError
from nasbox.estimators.base import EstimatorContext
from nasbox.estimators.cost import count_parameters
from nasbox.estimators.probe import Probe, ProxyEstimator

ZEN_MIXUP = 1e-2  # the perturbation scale of Zen-NAS
ZEN_BATCH = 64
REFERENCE_CELLS = 32  # seeded cells that set swap_reg's default size prior


class Meco(ProxyEstimator):
    """Minimum eigenvalue of feature-map correlations (MeCo, Jiang et al. 2023); one image.

    Sum over every module's output of the smallest eigenvalue of the channel-by-channel Pearson
    correlation of one image's feature map, with nan and inf correlations set to 0 and
    non-finite layer values left out, as in the paper's code.

    One image (the seeded minibatch's first), one forward pass in training mode. A module whose
    output is another's (a Sequential and its last layer) counts twice, as hooks on both would.
    """

    name = "meco"
    cost = "one forward pass of one image per arch"

    def score(self, probe: Probe) -> float:
        network = probe.network
        seen: dict[int, list] = {}

        def read(_module: nn.Module, _inputs, output) -> None:
            if not torch.is_tensor(output):
                return
            entry = seen.get(id(output))
            if entry is None:
                seen[id(output)] = [output, 1]
            else:
                entry[1] += 1

        handles = [module.register_forward_hook(read) for module in network.modules()]
        try:
            network.train()
            with torch.no_grad():
                network(probe.images[:1])
        finally:
            for handle in handles:
                handle.remove()
        total = 0.0
        for output, count in seen.values():
            value = smallest_correlation_eigenvalue(output[0])
            if math.isfinite(value):
                total += count * value
        return total


def smallest_correlation_eigenvalue(feature: torch.Tensor) -> float:
    """lambda_min of the row correlation of `feature` reshaped to (first dim, rest)."""
    rows = feature.reshape(feature.shape[0], -1).double()
    if rows.shape[0] < 2 or rows.shape[1] < 2:
        return math.nan  # a correlation of nan only: the paper's code adds 0
    correlation = torch.corrcoef(rows)
    correlation = torch.nan_to_num(correlation, nan=0.0, posinf=0.0, neginf=0.0)
    return float(torch.linalg.eigvalsh(correlation)[0])


class Swap(ProxyEstimator):
    """Distinct sample-wise activation patterns (SWAP, Peng et al. 2024); images, no labels.

    The number of distinct binary vectors (unit active on each sample) over all ReLU units.

    Read from the same forward pass as NASWOT's codes (the whole seeded minibatch).
    """

    name = "swap"
    cost = "one forward pass of the minibatch per arch (shared with naswot)"

    def score(self, probe: Probe) -> float:
        return float(probe.relu_pass().distinct_patterns())


class SwapRegularised(Swap):
    """SWAP times a model-size prior exp(-(P - mu)^2 / sigma) (Peng et al. 2024).

    P is the parameter count in thousands.

    `swap_reg:MU,SIGMA` sets the prior; plain `swap_reg` takes it from REFERENCE_CELLS seeded cells
    of the space, without accuracy labels: mu their largest size, sigma twice their variance.
    """

    name = "swap_reg"
    argument = "MU,SIGMA"
    argument_hint = "a size prior MU,SIGMA in thousands of parameters, e.g. swap_reg:1500,200000"

    def __init__(self, context: EstimatorContext, prior: str | None = None) -> None:
        super().__init__(context)
        self.mu, self.sigma = parse_prior(prior) if prior is not None else reference_prior(context)

    @classmethod
    def from_spec(cls, context: EstimatorContext, argument: str | None) -> "SwapRegularised":
        return cls(context, argument)

    def score(self, probe: Probe) -> float:
        thousands = count_parameters(probe.built) / 1e3
        return super().score(probe) * math.exp(-((thousands - self.mu) ** 2) / self.sigma)


def parse_prior(text: str) -> tuple[float, float]:
    try:
        mu, sigma = (float(part) for part in text.split(","))
    except ValueError:
        raise NasboxError(f"swap_reg needs MU,SIGMA as two numbers, got {text!r}") from None
    if not (math.isfinite(mu) and math.isfinite(sigma) and sigma > 0):
        raise NasboxError(f"swap_reg needs a finite MU and a SIGMA > 0, got {text!r}")
    return mu, sigma


def reference_prior(context: EstimatorContext) -> tuple[float, float]:
    rng = np.random.default_rng(context.seed)
    sizes = np.array(
        [
            count_parameters(context.build(context.space.sample(rng))) / 1e3
            for _ in range(REFERENCE_CELLS)
        ]
    )
    return float(sizes.max()), float(max(2 * sizes.var(), 1.0))


class Zen(ProxyEstimator):
    """Zen-score (Lin et al., Zen-NAS 2021); data-free.

    log E||f(x) - f(x + 0.01 e)||_1 + sum over BN layers of log sqrt(mean running_var),
    f the features before global pooling, x and e Gaussian, weights redrawn N(0, 1) and BN in
    training mode (Lin et al., "Zen-NAS", ICCV 2021). Data-free: 64 Gaussian images of the data's
    shape, drawn from the seed. Features are the input of the last AdaptiveAvgPool2d (the
    network's global pooling), else of its last linear layer.
    """

    name = "zen"
    needs_data = False
    cost = "two forward passes of 64 Gaussian images per arch"

    def score(self, probe: Probe) -> float:
        network = probe.fresh()
        generator = torch.Generator().manual_seed(self.context.seed)
        with torch.no_grad():
            for module in network.modules():
                if isinstance(module, nn.Conv2d | nn.Linear):
                    module.weight.normal_(generator=generator)
                    if module.bias is not None:
                        module.bias.zero_()
                elif isinstance(module, nn.BatchNorm2d) and module.affine:
                    module.weight.fill_(1.0)
                    module.bias.zero_()
        shape = (ZEN_BATCH, *self.context.image_shape)
        x = torch.randn(shape, generator=generator)
        mixed = x + ZEN_MIXUP * torch.randn(shape, generator=generator)
        device = self.context.device
        features = pre_pooling_features(network, torch.cat([x, mixed]).to(device), split=ZEN_BATCH)
        if features is None:
            return -math.inf
        difference = (features[0] - features[1]).abs().reshape(ZEN_BATCH, -1).sum(1).mean()
        log_bn = sum(
            np.log(np.sqrt(float(m.running_var.mean())))
            for m in network.modules()
            if isinstance(m, nn.BatchNorm2d) and m.running_var is not None
        )
        return float(np.log(float(difference)) + log_bn)


def pre_pooling_features(
    network: nn.Module, inputs: torch.Tensor, split: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The global-pooling input for inputs[:split] and inputs[split:], run as two batches so
    BatchNorm sees each batch alone (as Zen-NAS's two forward passes do)."""
    pools = [m for m in network.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    target = (
        pools[-1]
        if pools
        else next((m for m in reversed(list(network.modules())) if isinstance(m, nn.Linear)), None)
    )
    if target is None:
        return None
    captured: list[torch.Tensor] = []
    handle = target.register_forward_pre_hook(lambda _m, i: captured.append(i[0]))
    try:
        network.train()
        with torch.no_grad():
            network(inputs[:split])
            network(inputs[split:])
    finally:
        handle.remove()
    return captured[0], captured[1]
