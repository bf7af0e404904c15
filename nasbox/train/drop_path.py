"""ScheduledDropPath (Zoph et al., 2018): drop whole paths of a cell per sample during training.

Each path (an operation inside a cell) is zeroed for a sample with probability p and otherwise
divided by the keep probability 1 - p, so its expected value is unchanged. p grows linearly from
0 to its final value over training; at evaluation nothing is dropped.
"""

import torch
from torch import nn


class DropPath(nn.Module):
    """Zeroes each sample with probability `p` (training only) and rescales the others."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty(x.shape[0], *([1] * (x.dim() - 1)), device=x.device, dtype=x.dtype)
        return x * mask.bernoulli_(keep).div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ScheduledDropPath:
    """The drop probability after `step` of `total_steps`: final_prob * step / total_steps."""

    def __init__(self, final_prob: float, total_steps: int) -> None:
        if not 0.0 <= final_prob < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {final_prob}")
        self.final_prob = final_prob
        self.total_steps = max(1, total_steps)

    def probability(self, step: int) -> float:
        return self.final_prob * min(max(step, 0), self.total_steps) / self.total_steps

    def apply(self, network: nn.Module, step: int) -> float:
        """Set every `DropPath` of `network` to the probability for `step`; return it."""
        p = self.probability(step)
        for module in network.modules():
            if isinstance(module, DropPath):
                module.p = p
        return p
