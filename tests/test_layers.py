"""Shared layers give the numbers of the PyTorch layers they replace."""

import pytest
import torch
from torch import nn

from nasbox.spaces.layers import AveragePool


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(1, 1), (2, 3), (7, 8), (16, 16)])
def test_average_pool_matches_avgpool2d_without_counting_padding(kernel, stride, size):
    x = torch.randn(2, 4, *size, requires_grad=True)
    reference = nn.AvgPool2d(kernel, stride, padding=kernel // 2, count_include_pad=False)
    expected = reference(x)
    pooled = AveragePool(4, kernel, stride)(x)
    torch.testing.assert_close(pooled, expected)
    (expected_grad,) = torch.autograd.grad(expected.square().sum(), x)
    (grad,) = torch.autograd.grad(pooled.square().sum(), x)
    torch.testing.assert_close(grad, expected_grad)


def test_average_pool_in_channels_last_bfloat16_is_within_rounding():
    x = torch.randn(4, 8, 12, 12).to(memory_format=torch.channels_last)
    expected = nn.AvgPool2d(3, 1, padding=1, count_include_pad=False)(x)
    pooled = AveragePool(8)(x.bfloat16()).float()
    torch.testing.assert_close(pooled, expected, atol=0.02, rtol=0.02)


def test_average_pool_adds_nothing_to_the_state_dict():
    assert AveragePool(8).state_dict() == {}
