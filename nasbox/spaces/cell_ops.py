"""The operations of NASNet-style cells, and which operations each cell family offers.

Every hidden state inside a cell has C channels; an operation keeps C and applies `stride` (2 on
the cell inputs of a reduction cell). Families share most operations but not all names: NASNet's
`dil_conv_3x3` is a full dilated convolution, while DARTS' and PNAS' `dil_conv_3x3/5x5` are
dilated *separable* convolutions (ReLU, dilated depthwise, pointwise, BN; once), and AmoebaNet's
`dil_sep_conv_3x3` is the dilated separable convolution applied twice. Op sets follow the DARTS
repository (`operations.py`, `genotypes.py`) and pycls' NDS `nas` models (Radosavovic et al.,
2019).
"""

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from nasbox.errors import NasboxError
from nasbox.spaces.layers import AveragePool, ReLUConvBN
from nasbox.train.drop_path import DropPath

#: Builds an operation from (channels, stride).
OpFactory = Callable[[int, int], nn.Module]


class FactorizedConv(nn.Sequential):
    """ReLU, 1xk conv, kx1 conv, BN: a kxk receptive field for 2k weights per channel pair."""

    def __init__(self, channels: int, kernel: int, stride: int) -> None:
        pad = kernel // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(channels, channels, (1, kernel), (1, stride), (0, pad), bias=False),
            nn.Conv2d(channels, channels, (kernel, 1), (stride, 1), (pad, 0), bias=False),
            nn.BatchNorm2d(channels),
        )


class SeparableConv(nn.Sequential):
    """(ReLU, depthwise, pointwise, BN) `repeats` times; only the first depthwise conv strides.

    Twice is NASNet's and DARTS' `sep_conv`; once with dilation 2 is DARTS' `dil_conv`.
    """

    def __init__(
        self, channels: int, kernel: int, stride: int, dilation: int = 1, repeats: int = 2
    ) -> None:
        layers: list[nn.Module] = []
        for repeat in range(repeats):
            layers += [
                nn.ReLU(inplace=False),
                nn.Conv2d(
                    channels,
                    channels,
                    kernel,
                    stride if repeat == 0 else 1,
                    dilation * (kernel // 2),
                    dilation=dilation,
                    groups=channels,
                    bias=False,
                ),
                nn.Conv2d(channels, channels, 1, bias=False),
                nn.BatchNorm2d(channels),
            ]
        super().__init__(*layers)


class FactorizedReduction(nn.Module):
    """Halve the resolution without losing half the pixels: two strided 1x1 convs, one shifted.

    As in TF-slim, the shifted path pads on the bottom/right, so odd sizes round up like the
    strided convolutions of the cell do.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.path1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.path2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.path1(x), self.path2(shifted)], dim=1))


class Zero(nn.Module):
    """DARTS' `none`: an edge that contributes nothing, at the resolution `stride` gives."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x[:, :, :: self.stride, :: self.stride])


def skip(channels: int, stride: int) -> nn.Module:
    """Identity, or a factorized reduction where the cell halves the resolution."""
    return nn.Identity() if stride == 1 else FactorizedReduction(channels, channels)


def zero(_channels: int, stride: int) -> nn.Module:
    return Zero(stride)


def avg_pool(kernel: int) -> OpFactory:
    """Average pooling without BN (as in DARTS' final networks), padding not counted."""
    return lambda c, stride: AveragePool(c, kernel, stride)


def max_pool(kernel: int) -> OpFactory:
    return lambda _c, stride: nn.MaxPool2d(kernel, stride, padding=kernel // 2)


def conv(kernel: int, dilation: int = 1) -> OpFactory:
    return lambda c, stride: ReLUConvBN(
        c, c, kernel, stride, padding=dilation * (kernel // 2), dilation=dilation
    )


def factorized_conv(kernel: int) -> OpFactory:
    return lambda c, stride: FactorizedConv(c, kernel, stride)


def separable_conv(kernel: int, dilation: int = 1, repeats: int = 2) -> OpFactory:
    return lambda c, stride: SeparableConv(c, kernel, stride, dilation, repeats)


NASNET_OPERATIONS: dict[str, OpFactory] = {
    "identity": skip,
    "conv_1x3_3x1": factorized_conv(3),
    "conv_1x7_7x1": factorized_conv(7),
    "dil_conv_3x3": conv(3, dilation=2),
    "avg_pool_3x3": avg_pool(3),
    "max_pool_3x3": max_pool(3),
    "max_pool_5x5": max_pool(5),
    "max_pool_7x7": max_pool(7),
    "conv_1x1": conv(1),
    "conv_3x3": conv(3),
    "sep_conv_3x3": separable_conv(3),
    "sep_conv_5x5": separable_conv(5),
    "sep_conv_7x7": separable_conv(7),
}

#: DARTS' and pycls' vocabulary (`operations.py`): what each name means in every family but NASNet.
DARTS_VOCABULARY: dict[str, OpFactory] = {
    "none": zero,
    "skip_connect": skip,
    "avg_pool_3x3": avg_pool(3),
    "max_pool_3x3": max_pool(3),
    "sep_conv_3x3": separable_conv(3),
    "sep_conv_5x5": separable_conv(5),
    "sep_conv_7x7": separable_conv(7),
    "dil_conv_3x3": separable_conv(3, dilation=2, repeats=1),
    "dil_conv_5x5": separable_conv(5, dilation=2, repeats=1),
    "dil_sep_conv_3x3": separable_conv(3, dilation=2),
    "conv_7x1_1x7": factorized_conv(7),
}


def _pick(*names: str) -> dict[str, OpFactory]:
    return {name: DARTS_VOCABULARY[name] for name in names}


# Each family's operations in its papers' order (the decision order).
DARTS_OPERATIONS = _pick(
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
AMOEBA_OPERATIONS = _pick(
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
    "avg_pool_3x3",
    "max_pool_3x3",
    "dil_sep_conv_3x3",
    "conv_7x1_1x7",
)
PNAS_OPERATIONS = _pick(
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
    "conv_7x1_1x7",
    "skip_connect",
    "avg_pool_3x3",
    "max_pool_3x3",
    "dil_conv_3x3",
)
ENAS_OPERATIONS = _pick(
    "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3"
)


def make_op(
    operations: Mapping[str, OpFactory], name: str, channels: int, stride: int
) -> nn.Module:
    """Operation `name` of a family; all but skip and `none` end with a `DropPath`.

    Skip paths are never dropped (as in NASNet), and dropping `none` would change nothing.
    """
    factory = operations.get(name)
    if factory is None:
        raise NasboxError(f"unknown operation {name!r}; choose one of: {', '.join(operations)}")
    op = factory(channels, stride)
    if factory in (skip, zero):
        return op
    return nn.Sequential(op, DropPath())
