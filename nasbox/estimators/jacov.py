"""Jacobian covariance (Mellor et al., 2020, first version of "NAS without training").

Networks whose input Jacobians are less correlated across samples train better. The score is
-sum(log(l + k) + 1 / (l + k)) over the eigenvalues l of the per-sample Jacobians' correlation
matrix, k = 1e-5.
"""

import math
from collections.abc import Hashable

import numpy as np
import torch
from torch import nn

from nasbox.estimators.base import MinibatchEstimator

EPSILON = 1e-5


def jacov_score(network: nn.Module, images: torch.Tensor) -> float:
    """The Jacobian-covariance score of `network` on `images` (one forward, one backward).

    Only the input gradient is taken: the weights' gradients, which the score never reads, are
    not computed (about a third of the backward pass).
    """
    network.train()
    inputs = images.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(network(inputs).sum(), inputs)
    jacobians = gradient.reshape(len(inputs), -1).double().cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = np.corrcoef(jacobians)
    if not np.all(np.isfinite(correlation)):
        return -math.inf
    eigenvalues = np.clip(np.linalg.eigvalsh(correlation), 0.0, None)
    value = -float(np.sum(np.log(eigenvalues + EPSILON) + 1.0 / (eigenvalues + EPSILON)))
    return value if math.isfinite(value) else -math.inf


class JacobianCovariance(MinibatchEstimator):
    """Score from the correlation of input Jacobians across a minibatch (higher is better)."""

    name = "jacov"
    cost = "one forward and backward pass of a minibatch per arch"

    def __call__(self, arch: Hashable) -> float:
        return jacov_score(self.context.build(arch), self.images)
