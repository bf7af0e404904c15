"""Layers that several spaces share, written for speed on a CPU."""

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn


@lru_cache(maxsize=256)
def _edge_corrections(size: int, kernel: int, stride: int) -> tuple[tuple[int, float], ...]:
    """(output index, k / window length) for the outputs whose window runs over the padding."""
    pad = kernel // 2
    length = (size + 2 * pad - kernel) // stride + 1
    corrections = []
    for index in range(length):
        centre = index * stride
        inside = min(centre + pad, size - 1) - max(centre - pad, 0) + 1
        if inside < kernel:
            corrections.append((index, kernel / inside))
    return tuple(corrections)


class AveragePool(nn.Module):
    """k x k average pooling, padding k // 2, padded zeros not counted (`count_include_pad=False`).

    Computed as a depthwise convolution with weights 1/k^2 whose edge rows and columns are then
    rescaled to their true window size: the same numbers as `nn.AvgPool2d` up to rounding, about
    4x faster forward and backward on a CPU in channels-last memory, where oneDNN has a fast
    depthwise convolution and PyTorch's pooling does not. Traced graphs (ONNX and TorchScript
    export) use the pooling op itself, whose output size follows any input size.
    """

    def __init__(self, channels: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        weight = torch.full((channels, 1, kernel, kernel), 1.0 / kernel**2)
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            # Exported graphs keep ONNX's own pooling op, valid for every image size.
            return F.avg_pool2d(
                x, self.kernel, self.stride, self.kernel // 2, count_include_pad=False
            )
        weight = self.weight.to(x.dtype)
        pooled = F.conv2d(
            x, weight, stride=self.stride, padding=self.kernel // 2, groups=len(weight)
        )
        for row, factor in _edge_corrections(x.shape[2], self.kernel, self.stride):
            pooled[:, :, row].mul_(factor)
        for column, factor in _edge_corrections(x.shape[3], self.kernel, self.stride):
            pooled[:, :, :, column].mul_(factor)
        return pooled


class ReLUConvBN(nn.Sequential):
    """ReLU, convolution, BatchNorm: the pre-activation op of NB201 and the DARTS-family cells."""

    def __init__(self, c_in: int, c_out: int, kernel, stride=1, padding=0, dilation=1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out),
        )
