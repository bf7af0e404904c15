"""Gradient- and weight-based zero-cost proxies, as each paper defines them.

The pruning-at-initialisation saliencies (grad_norm, snip, grasp, fisher, synflow) follow
Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS" (ICLR 2021): a per-weight saliency of
every convolution and linear layer, summed over the network. Loss-based ones use cross-entropy on
the first 64 images of the seeded minibatch and its labels, network in training mode.
"""

import math

import numpy as np
import torch
from torch import nn

from nasbox.estimators.probe import GRADIENT_BATCH, Probe, ProxyEstimator, weighted_layers

JACOBIAN_EPSILON = 1e-5  # k of EPE-NAS (as in jacov)


class GradNorm(ProxyEstimator):
    """Sum over layers of ||dL/dW||_2 (Abdelfattah et al., 2021); needs labels."""

    name = "grad_norm"
    needs_labels = True
    cost = "one forward and backward pass of 64 images per arch (shared with snip, fisher)"

    def score(self, probe: Probe) -> float:
        return sum(float(g.norm()) for g in probe.loss_pass().weight_gradients)


class Snip(ProxyEstimator):
    """Sum of |W * dL/dW| (SNIP, Lee et al. 2019; Abdelfattah et al. 2021); needs labels."""

    name = "snip"
    needs_labels = True
    cost = "one forward and backward pass of 64 images per arch (shared with grad_norm, fisher)"

    def score(self, probe: Probe) -> float:
        loss = probe.loss_pass()
        return sum(
            float((layer.weight.detach() * g).abs().sum())
            for layer, g in zip(loss.layers, loss.weight_gradients, strict=True)
        )


class Fisher(ProxyEstimator):
    """Fisher saliency of channels (Turner et al. 2020; Abdelfattah et al. 2021); needs labels.

    Sum over conv/linear outputs a and channels of 0.5 * mean_n (sum_hw a * dL/da)^2.
    """

    name = "fisher"
    needs_labels = True
    cost = "one forward and backward pass of 64 images per arch (shared with grad_norm, snip)"

    def score(self, probe: Probe) -> float:
        return sum(probe.loss_pass().fisher_terms)


class Grasp(ProxyEstimator):
    """-sum W * (H g), g = dL/dW (GraSP, Wang et al. 2020; Abdelfattah et al. 2021); needs labels.

    A second forward pass with a differentiable gradient, then a Hessian-vector product.
    """

    name = "grasp"
    needs_labels = True
    cost = "two forward and three backward passes of 64 images per arch"

    def score(self, probe: Probe) -> float:
        gradients = probe.loss_pass().weight_gradients
        network = probe.network
        weights = [layer.weight for layer in weighted_layers(network)]
        batch = slice(0, GRADIENT_BATCH)
        network.train()
        loss = nn.functional.cross_entropy(network(probe.images[batch]), probe.labels[batch])
        differentiable = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
        z = sum(
            (d * g).sum() for d, g in zip(differentiable, gradients, strict=True) if d is not None
        )
        if not torch.is_tensor(z) or not z.requires_grad:
            return 0.0
        hessian_g = torch.autograd.grad(z, weights, allow_unused=True)
        return -sum(
            float((w.detach() * hg).sum())
            for w, hg in zip(weights, hessian_g, strict=True)
            if hg is not None
        )


class Synflow(ProxyEstimator):
    """Synaptic flow sum |W * dR/dW| (Tanaka et al. 2020; Abdelfattah et al. 2021); data-free.

    R is the output sum of the network with |W| fed an all-ones input in double precision.

    The paper's NB201 runs drop BatchNorm; here BN stays but in eval mode with its fresh running
    statistics (mean 0, variance 1) and |weight| = 1, bias 0, which is the identity up to
    1/sqrt(1 + eps): any space's network works unchanged.
    """

    name = "synflow"
    needs_data = False
    cost = "one forward and backward pass of one image (float64) per arch"

    def score(self, probe: Probe) -> float:
        network = probe.fresh().double().eval()
        with torch.no_grad():
            for tensor in network.state_dict().values():
                if tensor.is_floating_point():
                    tensor.abs_()
        ones = torch.ones(1, *self.context.image_shape, dtype=torch.float64)
        ones = ones.to(self.context.device)
        layers = weighted_layers(network)
        weights = [layer.weight for layer in layers]
        gradients = torch.autograd.grad(network(ones).sum(), weights, allow_unused=True)
        return sum(
            float((w.detach() * g).abs().sum())
            for w, g in zip(weights, gradients, strict=True)
            if g is not None
        )


class L2Norm(ProxyEstimator):
    """Sum of conv/linear ||W||_2 at initialisation (NAS-Bench-Suite-Zero, 2022); data-free."""

    name = "l2_norm"
    needs_data = False
    cost = "builds the network per arch"

    def score(self, probe: Probe) -> float:
        return sum(float(layer.weight.detach().norm()) for layer in weighted_layers(probe.built))


class Zico(ProxyEstimator):
    """Inverse coefficient of variation of gradients (ZiCo, Li et al. 2023); needs labels.

    Sum over layers of log(sum_w mean|g_w| / std(g_w)), mean and std over minibatches: the two
    halves of the 64-image batch, as NASLib splits it. Weights whose gradient does not vary are
    skipped, as in the paper's code.
    """

    name = "zico"
    needs_labels = True
    cost = "two forward and backward passes of 32 images per arch"
    splits = 2

    def score(self, probe: Probe) -> float:
        network = probe.network
        layers = weighted_layers(network)
        weights = [layer.weight for layer in layers]
        per_split: list[list[torch.Tensor]] = []
        network.train()
        for part in torch.arange(min(GRADIENT_BATCH, len(probe.images))).chunk(self.splits):
            loss = nn.functional.cross_entropy(network(probe.images[part]), probe.labels[part])
            gradients = torch.autograd.grad(loss, weights, allow_unused=True)
            per_split.append(
                [
                    torch.zeros_like(w) if g is None else g
                    for w, g in zip(weights, gradients, strict=True)
                ]
            )
        total = 0.0
        for index in range(len(weights)):
            stacked = torch.stack([split[index].flatten() for split in per_split]).double()
            std = stacked.std(0, unbiased=False)
            varies = std != 0
            ratio = float((stacked.abs().mean(0)[varies] / std[varies]).sum())
            if ratio != 0:
                total += math.log(ratio)
        return total


class EpeNas(ProxyEstimator):
    """Per-class Jacobian correlation (EPE-NAS, Lopes et al. 2021); needs labels.

    Sum over classes c of |sum_ij log(|C_c(i, j)| + k)|, C_c the correlation of the input
    Jacobians of the class's samples (k = 1e-5; NASLib's form for up to 100 classes), on the
    whole minibatch.
    """

    name = "epe_nas"
    needs_labels = True
    cost = "one forward and backward pass of the minibatch per arch"

    def score(self, probe: Probe) -> float:
        network = probe.network
        network.train()
        inputs = probe.images.clone().requires_grad_(True)
        (jacobian,) = torch.autograd.grad(network(inputs).sum(), inputs)
        jacobians = jacobian.reshape(len(inputs), -1).double().cpu().numpy()
        labels = probe.labels.cpu().numpy()
        total = 0.0
        for label in np.unique(labels):
            rows = jacobians[labels == label]
            correlation = np.corrcoef(rows) if len(rows) > 1 else np.ones((1, 1))
            if not np.all(np.isfinite(correlation)):
                return -math.inf
            total += abs(float(np.sum(np.log(np.abs(correlation) + JACOBIAN_EPSILON))))
        return total
