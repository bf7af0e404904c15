"""Latency: how long this machine's CPU takes for one forward pass, in milliseconds."""

import statistics
import time
from collections.abc import Hashable

import torch
from torch import nn

from nasbox.estimators.base import Estimator, EstimatorContext

#: Untimed passes first (oneDNN picks and caches its kernels on the first ones), then timed ones.
WARMUP, REPEATS = 10, 50


def median_milliseconds(
    network: nn.Module, images: torch.Tensor, warmup: int = WARMUP, repeats: int = REPEATS
) -> float:
    """Median wall-clock milliseconds of `network(images)` in evaluation mode, without gradients.

    The median, not the mean, so that passes another process interrupted do not count.
    """
    network.eval()
    with torch.no_grad():
        for _ in range(warmup):
            network(images)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            network(images)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


class Latency(Estimator):
    """Median milliseconds of a forward pass of --latency-batch images on this machine's CPU.

    Timed over REPEATS passes after WARMUP untimed ones, in evaluation mode, with torch's current
    thread count (set it, e.g. with OMP_NUM_THREADS, as the deployment will run). The images
    have the data's shape (3x32x32 without data) and the layout of the other estimators. Like
    `params` and `flops` the value is a cost, reported as it is: higher is slower.
    """

    name = "latency"
    positive = True
    cost = f"builds the network and times {WARMUP} + {REPEATS} forward passes per arch"

    def __init__(self, context: EstimatorContext) -> None:
        super().__init__(context)
        generator = torch.Generator().manual_seed(context.seed)
        images = torch.randn(context.latency_batch, *context.image_shape, generator=generator)
        self.images = images.to(memory_format=context.memory_format)

    def __call__(self, arch: Hashable) -> float:
        return median_milliseconds(self.context.build(arch).cpu(), self.images, WARMUP, REPEATS)
