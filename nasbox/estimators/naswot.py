"""NASWOT (Mellor et al., 2021): log|K_H| of the Hamming kernel of ReLU activation codes.

For each ReLU, c is the binary code (input > 0) of every sample; K_H adds c c^T + (1-c)(1-c)^T,
i.e. the number of units on which two samples agree. Expanded, that is D - r_i - r_j + 2 c_i.c_j
(r the row sums of c, the diagonal of c c^T): one integer matrix product per ReLU, not two. ReLUs
that read the same tensor (several ops on one cell node) give the same codes, so each distinct
input is multiplied out once and counted as often as it is read. The score equals the per-ReLU
definition, computed in one no-grad forward pass.
"""

import math
import weakref
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from nasbox.estimators.base import MinibatchEstimator


def _flat_view(tensor: torch.Tensor) -> torch.Tensor:
    """Samples as rows without copying; the order of units within a row does not matter."""
    if tensor.dim() == 4 and not tensor.is_contiguous():
        tensor = tensor.permute(0, 2, 3, 1)
    return tensor.reshape(tensor.shape[0], -1)


# Integers as wide as each float type: a float is > 0 exactly when its bits, read as a signed
# integer, are (the sign bit makes negatives and -0.0 negative), NaN excepted.
_SAME_WIDTH_INT = {
    torch.float32: torch.int32,
    torch.bfloat16: torch.int16,
    torch.float16: torch.int16,
}


def active_codes(activations: torch.Tensor) -> torch.Tensor:
    """The binary codes x > 0, compared as same-width integers (about 1.5x faster on CPU than
    a float comparison; NaN would read as active, and `naswot_score` rejects NaN outputs)."""
    integer = _SAME_WIDTH_INT.get(activations.dtype)
    return (activations.view(integer) if integer is not None else activations) > 0


def _overlap(codes: torch.Tensor) -> torch.Tensor:
    """c c^T for a boolean matrix, as exact integers.

    An int8 product (`torch._int_mm`) reads the booleans in place and is about 5x faster on CPU
    than converting to float; shapes or builds it does not support take the float path.
    """
    try:
        as_bytes = codes.view(torch.int8)
        return torch._int_mm(as_bytes, as_bytes.T).long()
    except (AttributeError, RuntimeError):
        as_floats = codes.float()
        return (as_floats @ as_floats.T).long()


class HammingKernel:
    """Accumulates K_H over the ReLUs of a network during one forward pass.

    Summed over ReLUs, K_H = sum(D) - R_i - R_j + 2 G with G the summed overlaps c c^T and R its
    diagonal, so only G and sum(D) are accumulated; the kernel is formed once at the end.
    """

    def __init__(self, batch_size: int, device: str | torch.device) -> None:
        self.overlap = torch.zeros(batch_size, batch_size, dtype=torch.int64, device=device)
        self.units = 0
        self._seen: dict[int, tuple[weakref.ref, torch.Tensor]] = {}

    def add(self, activations: torch.Tensor) -> None:
        key = id(activations)
        seen = self._seen.get(key)
        if seen is not None and seen[0]() is activations:
            overlap = seen[1]
        else:
            overlap = _overlap(_flat_view(active_codes(activations)))
            self._seen[key] = (weakref.ref(activations), overlap)
        self.overlap += overlap
        self.units += activations[0].numel()

    @property
    def kernel(self) -> torch.Tensor:
        """K_H: for each pair of samples, the number of units whose codes agree."""
        overlap = self.overlap.double()
        ones = overlap.diagonal()
        return (2 * overlap - ones[:, None] - ones[None, :]) + self.units

    def log_determinant(self) -> float:
        sign, logdet = torch.linalg.slogdet(self.kernel)
        value = float(logdet)
        return value if float(sign) > 0 and math.isfinite(value) else -math.inf


@contextmanager
def batch_statistics_only(network: nn.Module) -> Iterator[None]:
    """BatchNorm in training mode without updating its running averages.

    The outputs are the same (training mode normalises by the batch's own statistics), and a
    scored network, which may be the caller's, is left as it was. Skipping the update saves
    little time (0 to 2 % of an NB201 NASWOT score here).
    """
    layers = [
        module
        for module in network.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats
    ]
    for layer in layers:
        layer.track_running_stats = False
    try:
        yield
    finally:
        for layer in layers:
            layer.track_running_stats = True


def naswot_score(network: nn.Module, images: torch.Tensor) -> float:
    """log|K_H| of `network` (in training mode, as at initialisation) on `images`; -inf for a
    network whose output is not finite (its codes would mean nothing)."""
    kernel = HammingKernel(images.shape[0], images.device)
    handles = [
        module.register_forward_pre_hook(lambda _module, inputs: kernel.add(inputs[0]))
        for module in network.modules()
        if isinstance(module, nn.ReLU)
    ]
    try:
        network.train()
        with torch.no_grad(), batch_statistics_only(network):
            output = network(images)
    finally:
        for handle in handles:
            handle.remove()
    if not torch.isfinite(output).all():
        return -math.inf
    return kernel.log_determinant()


class NASWOT(MinibatchEstimator):
    """Score at initialisation from how well ReLU codes separate a minibatch (higher is better)."""

    name = "naswot"
    cost = "one forward pass of a minibatch per arch"

    def __call__(self, arch: Hashable) -> float:
        network = self.context.build(arch)
        with self.context.autocast():
            return naswot_score(network, self.images)
