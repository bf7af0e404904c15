"""Train a network on an `ImageData` set: the NASNet recipe, scaled to a laptop.

SGD with momentum and weight decay, a cosine learning-rate schedule (per step), random crops and
flips plus cutout, an auxiliary-head loss when the network has one, and ScheduledDropPath. After
every epoch the test accuracy is measured, a row is appended to `history.csv`, `history.png` is
redrawn and `checkpoint.pt` is written, so an interrupted run resumes from its last epoch.
"""

import csv
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from nasbox.data import ImageData
from nasbox.errors import NasboxError
from nasbox.train.drop_path import ScheduledDropPath

HISTORY_COLUMNS = (
    "epoch",
    "lr",
    "drop_path",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "seconds",
)


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 3e-4
    cutout: int = 16
    drop_path: float = 0.2
    aux_weight: float = 0.4
    grad_clip: float = 5.0
    seed: int = 0

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise NasboxError("--epochs and --batch-size must be at least 1")
        if not 0.0 <= self.drop_path < 1.0:
            raise NasboxError(f"--drop-path must be in [0, 1), got {self.drop_path}")
        if self.learning_rate <= 0 or self.cutout < 0 or self.weight_decay < 0:
            raise NasboxError("--lr must be positive; --cutout and --weight-decay not negative")


def cutout(images: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one `length` x `length` square per image, centred anywhere (clipped at the border)."""
    if length <= 0:
        return images
    count, _, height, width = images.shape
    centre_y = torch.randint(height, (count, 1, 1), generator=generator)
    centre_x = torch.randint(width, (count, 1, 1), generator=generator)
    rows = torch.arange(height).view(1, -1, 1) - centre_y + length // 2
    cols = torch.arange(width).view(1, 1, -1) - centre_x + length // 2
    inside = (rows >= 0) & (rows < length) & (cols >= 0) & (cols < length)
    return images * (~inside).unsqueeze(1).to(images.dtype)


def augment(images: torch.Tensor, generator: torch.Generator, cutout_length: int) -> torch.Tensor:
    """Random crop (4-pixel zero padding) and horizontal flip per image, then cutout."""
    count, _, height, width = images.shape
    padded = F.pad(images, (4, 4, 4, 4))
    offsets = torch.randint(9, (count, 2), generator=generator).tolist()
    crops = torch.stack(
        [padded[i, :, y : y + height, x : x + width] for i, (y, x) in enumerate(offsets)]
    )
    flip = torch.rand(count, generator=generator) < 0.5
    crops = torch.where(flip.view(-1, 1, 1, 1), crops.flip(3), crops)
    return cutout(crops, cutout_length, generator)


def evaluate(network: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean loss and accuracy (%) in evaluation mode (no drop path, no auxiliary head)."""
    network.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(images), 256):
            logits = network(images[start : start + 256])
            target = labels[start : start + 256]
            loss += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(1) == target).sum())
    return loss / len(images), 100.0 * correct / len(images)


def _write_history(out: Path, history: list[dict]) -> None:
    with (out / "history.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(history)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, acc_axis) = plt.subplots(1, 2, figsize=(9, 3.5), dpi=120)
    for split in ("train", "test"):
        loss_axis.plot(epochs, [row[f"{split}_loss"] for row in history], "o-", label=split)
        acc_axis.plot(epochs, [row[f"{split}_acc"] for row in history], "o-", label=split)
    loss_axis.set(xlabel="epoch", ylabel="loss")
    acc_axis.set(xlabel="epoch", ylabel="accuracy (%)")
    for axis in (loss_axis, acc_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(out / "history.png")
    plt.close(figure)


def train(
    network: nn.Module,
    data: ImageData,
    config: TrainConfig,
    out: Path,
    *,
    resume: bool = False,
    progress: bool = True,
    description: str = "",
) -> list[dict]:
    """Train `network` for `config.epochs` epochs; return one history row per epoch.

    With `resume`, training continues after the last epoch saved in `out/checkpoint.pt`.
    """
    config.check()
    if data.x_test is None:
        raise NasboxError(f"data set {data.name!r} has no test split; training needs one")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    train_x, train_y = data.normalize(data.x_train), torch.from_numpy(data.y_train).long()
    test_x, test_y = data.normalize(data.x_test), torch.from_numpy(data.y_test).long()
    steps_per_epoch = math.ceil(len(train_x) / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    optimizer = torch.optim.SGD(
        network.parameters(),
        lr=config.learning_rate,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    drop_path = ScheduledDropPath(config.drop_path, total_steps)
    history: list[dict] = []
    checkpoint_path = out / "checkpoint.pt"
    if resume and checkpoint_path.is_file():
        state = torch.load(checkpoint_path, weights_only=False)
        if state["config"] != asdict(config) or state["description"] != description:
            raise NasboxError(
                f"{checkpoint_path} was written with other settings or another architecture; "
                "use a new --out folder or the same options"
            )
        network.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history = state["history"]
    for epoch in range(len(history) + 1, config.epochs + 1):
        started = time.perf_counter()
        network.train()
        order = torch.randperm(len(train_x), generator=generator)
        loss_sum, correct = 0.0, 0
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch}/{config.epochs}",
            unit="batch",
            disable=not progress,
            leave=False,
        )
        for step in bar:
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            images = augment(train_x[index], generator, config.cutout)
            target = train_y[index]
            drop_path.apply(network, (epoch - 1) * steps_per_epoch + step)
            output = network(images)
            logits, aux_logits = output if isinstance(output, tuple) else (output, None)
            loss = F.cross_entropy(logits, target)
            if aux_logits is not None:
                loss = loss + config.aux_weight * F.cross_entropy(aux_logits, target)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), config.grad_clip)
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(index)
            correct += int((logits.argmax(1) == target).sum())
            bar.set_postfix(loss=f"{loss.item():.3f}")
        test_loss, test_acc = evaluate(network, test_x, test_y)
        history.append(
            {
                "epoch": epoch,
                "lr": round(schedule.get_last_lr()[0], 6),
                "drop_path": round(drop_path.probability(epoch * steps_per_epoch), 4),
                "train_loss": round(loss_sum / len(train_x), 4),
                "train_acc": round(100.0 * correct / len(train_x), 2),
                "test_loss": round(test_loss, 4),
                "test_acc": round(test_acc, 2),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        _write_history(out, history)
        torch.save(
            {
                "network": network.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "history": history,
                "config": asdict(config),
                "description": description,
            },
            checkpoint_path,
        )
        if progress:
            row = history[-1]
            tqdm.write(
                f"epoch {epoch}: train loss {row['train_loss']:.3f} acc {row['train_acc']:.1f}%, "
                f"test loss {row['test_loss']:.3f} acc {row['test_acc']:.1f}% "
                f"({row['seconds']:.0f} s)"
            )
    return history
