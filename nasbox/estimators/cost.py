"""Cost of a network: parameters and multiply-adds, both in millions."""

from collections.abc import Callable, Hashable

import torch
from torch import nn

from nasbox.estimators.base import Estimator, EstimatorContext


def count_parameters(network: nn.Module) -> int:
    return sum(parameter.numel() for parameter in network.parameters())


def count_parameters_unbuilt(build: Callable[[], nn.Module]) -> int:
    """Parameters of the network `build()` makes, counted on the meta device: no weight is
    allocated, so a network too large for memory can be refused before it is built."""
    with torch.device("meta"):
        return count_parameters(build())


def count_multiply_adds(network: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of convolutions and linear layers for one input of shape (C, H, W).

    Runs on the network's device: a network built on the `meta` device is counted from shapes
    alone, without allocating weights or computing anything.
    """
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kernel = module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * (module.in_channels // module.groups) * kernel

    def linear_hook(module: nn.Linear, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    was_training = network.training
    try:
        network.eval()
        with torch.no_grad():
            device = next(network.parameters(), torch.empty(0)).device
            network(torch.zeros(1, *input_shape, device=device))
    finally:
        network.train(was_training)
        for handle in handles:
            handle.remove()
    return total


class Parameters(Estimator):
    """Trainable parameters in millions (a strong size-based baseline)."""

    name = "params"
    positive = True
    cost = "builds the network per arch (milliseconds)"

    def __call__(self, arch: Hashable) -> float:
        return count_parameters(self.context.build(arch)) / 1e6


class MultiplyAdds(Estimator):
    """Multiply-adds for one input in millions, at --data's image size (digits: 1x8x8).

    From Python, a context without data counts one 3x32x32 CIFAR image.
    """

    name = "flops"
    positive = True
    cost = "builds the network and runs one image per arch"

    def __init__(self, context: EstimatorContext) -> None:
        super().__init__(context)
        self.input_shape = context.image_shape

    def __call__(self, arch: Hashable) -> float:
        return count_multiply_adds(self.context.build(arch).cpu(), self.input_shape) / 1e6
