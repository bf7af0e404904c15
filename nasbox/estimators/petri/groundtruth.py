"""Ground truth for the slope motif space: real MLPs with activation sigmoid(c z) on digits.

Protocol (seeded, all slopes trained together as one batched network):
- data: scikit-learn's digits (1,797 8x8 images, pixel intensities 0..16 as shipped), split by a
  seeded permutation into 1,000 training and 797 validation images. Unscaled intensities make
  large slopes saturate the hidden units, so accuracy peaks inside the range (near c = 0.8) and
  falls on both sides; with pixels / 16 it only rises with c and the best slope is the largest;
- network: 64 -> 100 -> 100 -> 10, both hidden layers use sigmoid(c z), softmax output;
  PyTorch's default uniform(+-1/sqrt(fan_in)) initialisation, the *same* initial weights and
  minibatch order for every slope (so differences come from the slope alone);
- training: Adam, learning rate 0.01, minibatch 50, 20 epochs, cross-entropy;
- value: validation accuracy, averaged over `repeats` initialisations (seed, seed + 1, ...); one
  initialisation varies by about 0.8 points (median over slopes), so the default 10 brings the
  noise of the mean to about 0.25 points.
"""

import csv
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from nasbox.errors import NasboxError

SLOPES = np.linspace(0.01, 2.01, 100)
HIDDEN = 100
TRAIN_SIZE = 1000
EPOCHS = 20
BATCH = 50
LR = 0.01


def _digits(seed: int) -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    train, valid = order[:TRAIN_SIZE], order[TRAIN_SIZE:]
    return x[train], y[train], x[valid], y[valid]


def _forward(weights: list[torch.Tensor], slopes: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    hidden = x.expand(len(slopes), *x.shape)
    for layer in range(0, len(weights), 2):
        z = hidden @ weights[layer] + weights[layer + 1].unsqueeze(1)
        if layer == len(weights) - 2:
            return z
        hidden = torch.sigmoid(slopes.view(-1, 1, 1) * z)
    raise AssertionError("unreachable")


def train_slopes(slopes: np.ndarray, seed: int, data_seed: int = 0) -> np.ndarray:
    """Validation accuracy of one seeded initialisation, for every slope at once."""
    x_train, y_train, x_valid, y_valid = _digits(data_seed)
    generator = torch.Generator().manual_seed(seed)
    count = len(slopes)
    weights = []
    for fan_in, fan_out in ((64, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, 10)):
        bound = 1.0 / fan_in**0.5
        w = (torch.rand(fan_in, fan_out, generator=generator) * 2 - 1) * bound
        b = (torch.rand(fan_out, generator=generator) * 2 - 1) * bound
        weights += [w.expand(count, -1, -1).clone(), b.expand(count, -1).clone()]
    for tensor in weights:
        tensor.requires_grad_(True)
    slope_tensor = torch.tensor(slopes, dtype=torch.float32)
    optimizer = torch.optim.Adam(weights, lr=LR)
    for _ in range(EPOCHS):
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), BATCH):
            index = order[start : start + BATCH]
            logits = _forward(weights, slope_tensor, x_train[index])
            loss = F.cross_entropy(
                logits.reshape(-1, 10), y_train[index].repeat(count), reduction="sum"
            ) / len(index)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        predicted = _forward(weights, slope_tensor, x_valid).argmax(dim=-1)
    return (predicted == y_valid).float().mean(dim=1).double().numpy()


def slope_groundtruth(
    out: str | Path, seed: int = 0, repeats: int = 10, progress: bool = True
) -> Path:
    """Train the 100 slope MLPs `repeats` times and write `arch,valid_acc` (percent) to `out`."""
    if repeats < 1:
        raise NasboxError(f"--repeats must be at least 1, got {repeats}")
    accuracies = [
        train_slopes(SLOPES, seed + repeat)
        for repeat in tqdm(range(repeats), desc="slope MLPs", unit="repeat", disable=not progress)
    ]
    mean = 100.0 * np.mean(accuracies, axis=0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", "valid_acc"])
        for slope, accuracy in zip(SLOPES, mean, strict=True):
            writer.writerow([repr(float(slope)), f"{accuracy:.4f}"])
    return out
