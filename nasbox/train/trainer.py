"""Train a network on an `ImageData` set: the NASNet recipe, scaled to a laptop.

SGD with momentum and weight decay, a cosine learning-rate schedule (per step), random crops and
flips plus cutout, an auxiliary-head loss when the network has one, and ScheduledDropPath. After
every epoch the test accuracy is measured, a row is appended to `history.csv`, `history.png` is
redrawn and `checkpoint.pt` is written, so an interrupted run resumes from its last epoch.
"""

import csv
import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from nasbox.checks import check_count, check_number, check_seed
from nasbox.data import ImageData
from nasbox.data.text import TextData
from nasbox.errors import NasboxError, error_reason
from nasbox.tensor_files import load_failure, load_tensors
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


def check_shared_settings(config) -> None:
    """The settings image and language-model training share, named by their CLI options."""
    check_count(config.epochs, "--epochs")
    check_count(config.batch_size, "--batch-size")
    check_number(config.learning_rate, "--lr", 0.0, 10.0, include_low=False, include_high=True)
    check_number(config.weight_decay, "--weight-decay", 0.0, 1.0, include_high=True)
    check_number(config.grad_clip, "gradient clipping", 0.0, math.inf, include_low=False)
    check_seed(config.seed)


@dataclass
class TrainConfig:
    """Training settings; `cutout=None` means "scaled to the image" (see `default_cutout`)."""

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 3e-4
    cutout: int | None = None
    drop_path: float = 0.2
    aux_weight: float = 0.4
    grad_clip: float = 5.0
    seed: int = 0

    def check(self) -> None:
        """Every setting in its sensible range, named by its CLI option."""
        check_shared_settings(self)
        check_number(self.momentum, "--momentum", 0.0, 1.0)
        if self.cutout is not None:
            check_count(self.cutout, "--cutout", minimum=0)
        check_number(self.drop_path, "--drop-path", 0.0, 1.0)
        check_number(self.aux_weight, "--aux-weight", 0.0, 10.0, include_high=True)

    def for_data(self, data: ImageData) -> "TrainConfig":
        """The settings actually used on `data`: cutout resolved, batch size at most the data."""
        self.check()
        side = min(data.image_size)
        if self.cutout is not None and self.cutout >= side:
            raise NasboxError(
                f"--cutout {self.cutout} would erase most of every {side}x{side} image of "
                f"{data.name}; use less than {side} (or 0 for none; the default is "
                f"{default_cutout(side)})"
            )
        return replace(
            self,
            cutout=default_cutout(side) if self.cutout is None else self.cutout,
            batch_size=min(self.batch_size, len(data.x_train)),
        )


def default_cutout(side: int) -> int:
    """Half the image side (16 on 32x32, as in the NASNet recipe); off below 16 pixels, where
    a square that large would hide most of what there is to recognise."""
    return side // 2 if side >= 16 else 0


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
    """Random crop and horizontal flip per image, then cutout.

    The crop pads by an eighth of the side (4 pixels on 32x32, as in the NASNet recipe; 1 on
    8x8, where 4 would shift half of a digit out of the image).
    """
    count, _, height, width = images.shape
    pad = max(1, min(height, width) // 8)
    padded = F.pad(images, (pad, pad, pad, pad))
    offsets = torch.randint(2 * pad + 1, (count, 2), generator=generator).tolist()
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


# Panels of history.png: (y label, ((legend, history column), ...)).
IMAGE_PANELS = (
    ("loss", (("train", "train_loss"), ("test", "test_loss"))),
    ("accuracy (%)", (("train", "train_acc"), ("test", "test_acc"))),
)


def save_epoch(
    out: Path,
    history: list[dict],
    checkpoint: dict,
    columns: Sequence[str] = HISTORY_COLUMNS,
    panels: Sequence[tuple[str, Sequence[tuple[str, str]]]] = IMAGE_PANELS,
) -> None:
    """checkpoint.pt, history.csv (`columns`) and history.png (`panels`), each replaced in one
    rename. The checkpoint first: a run stopped between the files can always be resumed, and
    resuming rewrites the other two from the checkpoint's history (`save_history`)."""
    from nasbox.runs.folder import replaced_atomically  # nasbox.runs imports the strategies

    with replaced_atomically(out / "checkpoint.pt") as temporary:
        torch.save(checkpoint, temporary)
    save_history(out, history, columns, panels)


def save_history(
    out: Path,
    history: list[dict],
    columns: Sequence[str] = HISTORY_COLUMNS,
    panels: Sequence[tuple[str, Sequence[tuple[str, str]]]] = IMAGE_PANELS,
) -> None:
    """history.csv and history.png of `history`, each replaced in one rename. A resumed run
    writes them first: one stopped after its last epoch's checkpoint, before these, had nothing
    left to train, and its history.csv lacked that epoch (history.png was missing) for good."""
    from nasbox.runs.folder import replaced_atomically

    with (
        replaced_atomically(out / "history.csv") as temporary,
        temporary.open("w", newline="") as handle,
    ):
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(history)
    from nasbox.plotting import new_figure

    epochs = [row["epoch"] for row in history]
    figure, axes = new_figure((4.5 * len(panels), 3.5), columns=len(panels))
    for axis, (label, lines) in zip(axes, panels, strict=True):
        for legend, column in lines:
            axis.plot(epochs, [row[column] for row in history], "o-", label=legend)
        axis.set(xlabel="epoch", ylabel=label)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    with replaced_atomically(out / "history.png") as temporary:
        figure.savefig(temporary)


CHECKPOINT_KEYS = (
    "network",
    "optimizer",
    "schedule",
    "generator",
    "torch_rng",
    "history",
    "config",
    "description",
)  # and "data_digest" (`data_digest`), which checkpoints written before it lack


def data_digest(data: ImageData | TextData) -> str:
    """A short digest of the training split's content: other data of the same name and shapes
    fits the checkpoint and passes the description, and resuming on it would train on it."""
    arrays = (data.x_train, data.y_train) if isinstance(data, ImageData) else (data.train,)
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array))
    return digest.hexdigest()[:16]


def load_checkpoint(path: Path) -> dict:
    """The saved training state; a missing, corrupt or foreign file is one clear error.
    Loaded with `weights_only` (a checkpoint holds only tensors and plain data), so a planted
    file cannot run code; one that pickles other objects is refused as such."""
    if not path.is_file():
        raise NasboxError(
            f"{path} not found: there is nothing to resume in {path.parent}; start without --resume"
        )
    try:
        state = load_tensors(path)
    except Exception as err:  # torch and pickle raise many types for a corrupt file
        raise NasboxError(
            f"{path}: not a readable nasbox checkpoint ({load_failure(err)}); "
            "start again with --overwrite or a new --out"
        ) from None
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise NasboxError(
            f"{path}: not a nasbox training checkpoint (no {missing[0]!r}); "
            "start again with --overwrite or a new --out"
        )
    return state


class NonFiniteLoss(NasboxError):
    """Training diverged; the last good checkpoint (if any) is left as it was."""


def resumed_state(
    out: Path | None, resume: bool, config: dict, description: str, digest: str, data: str
) -> dict | None:
    """The checkpoint in `out` to continue from (None without `resume`); it must have been
    written with the same `config` (a dict) and `description`, on data of the same `digest`
    (`data` names it)."""
    if not resume:
        return None
    if out is None:
        raise NasboxError("resuming needs the folder that holds checkpoint.pt")
    path = out / "checkpoint.pt"
    state = load_checkpoint(path)
    check_same_settings(state, path, config, description, digest, data)
    return state


def check_same_settings(
    state: dict, path: Path, config: dict, description: str, digest: str, data: str
) -> None:
    """Refuse to continue checkpoint `state` (read from `path`) with another `config` (a dict),
    network `description` or training data: `digest` (`data_digest`) of what `data` names.
    A checkpoint without a digest (written before they were stored) resumes as it did."""
    if state["config"] != config or state["description"] != description:
        stored = state["config"]
        changed = [
            f"{key} {stored.get(key)} -> {config.get(key)}"
            for key in sorted(set(stored) | set(config))
            if stored.get(key) != config.get(key)
        ]
        if state["description"] != description:
            changed.append(f"network {state['description']!r} -> {description!r}")
        raise NasboxError(
            f"{path} was written with other settings ({'; '.join(changed)}); "
            "use a new --out folder or the same options"
        )
    if state.get("data_digest", digest) != digest:
        raise NasboxError(
            f"{path} was trained on other data than {data} (same shape, other content); pass "
            "the data it was trained on, or start again with --overwrite or a new --out"
        )


def restore(
    state: dict, out: Path, network: nn.Module, optimizer, schedule, generator=None
) -> list:
    """Load a checkpoint's network, optimiser, schedule and random states (of `generator` too,
    for training that draws from its own); return its history."""
    try:
        network.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        if generator is not None:
            generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        reason = error_reason(err)
        raise NasboxError(
            f"{out / 'checkpoint.pt'}: does not fit this network ({reason}); "
            "start again with --overwrite or a new --out"
        ) from None
    return list(state["history"])


def checkpoint_state(
    network: nn.Module,
    optimizer,
    schedule,
    generator,
    history,
    config: dict,
    description: str,
    digest: str,
) -> dict:
    """What `checkpoint.pt` holds (`CHECKPOINT_KEYS` and the training data's `digest`) after an
    epoch."""
    return {
        "network": network.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "generator": None if generator is None else generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": history,
        "config": config,
        "description": description,
        "data_digest": digest,
    }


def train(
    network: nn.Module,
    data: ImageData,
    config: TrainConfig,
    out: Path | str | None,
    *,
    resume: bool = False,
    progress: bool = True,
    description: str = "",
) -> list[dict]:
    """Train `network` for `config.epochs` epochs; return one history row per epoch.

    `config` is resolved for `data` first (`TrainConfig.for_data`). With `out`, every epoch
    rewrites `history.csv`, `history.png` and `checkpoint.pt` there; with `out=None` nothing is
    written (searches that train candidates). With `resume`, training continues after the last
    epoch saved in `out/checkpoint.pt`, which must exist. A non-finite loss stops training with
    `NonFiniteLoss` before that epoch is saved.
    """
    out = None if out is None else Path(out)
    config = config.for_data(data)
    if data.x_test is None:
        raise NasboxError(f"data set {data.name!r} has no test split; training needs one")
    digest = data_digest(data) if out is not None else ""  # only checkpoints keep it
    state = resumed_state(
        out, resume, asdict(config), description, digest, f"data set {data.name!r}"
    )
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
    if state is not None:
        history = restore(state, out, network, optimizer, schedule, generator)
        save_history(out, history)
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
            value = loss.item()
            if not math.isfinite(value):
                stop_diverged(value, epoch, step, config, out)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), config.grad_clip)
            optimizer.step()
            schedule.step()
            loss_sum += value * len(index)
            correct += int((logits.argmax(1) == target).sum())
            bar.set_postfix(loss=f"{value:.3f}")
        test_loss, test_acc = evaluate(network, test_x, test_y)
        if not math.isfinite(test_loss):
            stop_diverged(test_loss, epoch, steps_per_epoch, config, out)
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
        if out is not None:
            saved = checkpoint_state(
                network,
                optimizer,
                schedule,
                generator,
                history,
                asdict(config),
                description,
                digest,
            )
            save_epoch(out, history, saved)
        if progress:
            row = history[-1]
            tqdm.write(
                f"epoch {epoch}: train loss {row['train_loss']:.3f} acc {row['train_acc']:.1f}%, "
                f"test loss {row['test_loss']:.3f} acc {row['test_acc']:.1f}% "
                f"({row['seconds']:.0f} s)"
            )
    return history


def stop_diverged(value: float, epoch: int, step: int, config, out: Path | None):
    """Raise `NonFiniteLoss` for a loss of `value`, saying which checkpoint is kept."""
    kept = (
        f"; the checkpoint of epoch {epoch - 1} in {out} is kept (--resume continues from it)"
        if out is not None and epoch > 1
        else ""
    )
    raise NonFiniteLoss(
        f"training diverged: the loss became {value} in epoch {epoch}, step {step + 1}{kept}; "
        f"try a lower --lr (now {config.learning_rate:g})"
    )
