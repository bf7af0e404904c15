"""Train a language model on `TextData`: truncated BPTT, Adam, gradient clipping, perplexity.

The recipe, chosen to rank cells after minutes on a laptop rather than to reach DARTS' published
perplexities after days: Adam (`learning_rate` 0.01, no weight decay by default) with a per-step
cosine schedule to zero, the gradient norm clipped to 0.25 (DARTS' value), `batch_size` streams
read `bptt` = 35 steps at a time (DARTS' length, fixed rather than DARTS' random lengths), the
hidden state carried from chunk to chunk and reset at the start of every epoch. Plain SGD with
learning rate 20 (DARTS' search) needs far more steps than a laptop epoch gives.

An epoch is `steps` chunks (0: one pass over the training split). Successive epochs read on
where the last one stopped, wrapping around to the start, so with the default cap the corpus is
still read in order, just across several epochs. After each epoch the whole valid and test splits
are evaluated (in up to `batch_size` streams, without dropout) and the history row gets the mean
loss per token (nats), the perplexity exp(loss) and, for characters, bits per character
(loss / ln 2). With an output folder, history.csv, history.png and checkpoint.pt are written as
for image training (`nasbox.train.trainer`), and a run resumes from its last epoch.
"""

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from nasbox.checks import check_count
from nasbox.data.text import TextData, batchify, bptt_chunks
from nasbox.train.trainer import (
    check_shared_settings,
    checkpoint_state,
    data_digest,
    restore,
    resumed_state,
    save_epoch,
    save_history,
    stop_diverged,
)

PANELS = (
    (
        "loss (nats per token)",
        (("train", "train_loss"), ("valid", "valid_loss"), ("test", "test_loss")),
    ),
    ("perplexity", (("valid", "valid_ppl"), ("test", "test_ppl"))),
)


@dataclass
class LanguageConfig:
    """Language-model training settings (see the module docstring for the recipe)."""

    epochs: int = 10
    batch_size: int = 64
    bptt: int = 35
    steps: int = 200
    learning_rate: float = 0.01
    weight_decay: float = 0.0
    grad_clip: float = 0.25
    seed: int = 0

    def check(self) -> None:
        """Every setting in its sensible range, named by its CLI option."""
        check_shared_settings(self)
        check_count(self.bptt, "--bptt")
        check_count(self.steps, "--steps", minimum=0)


def history_columns(data: TextData) -> tuple[str, ...]:
    """history.csv's columns: bits per character only for character-level data."""
    per_split = ("loss", "ppl", "bpc") if data.tokens == "char" else ("loss", "ppl")
    return (
        "epoch",
        "lr",
        "train_loss",
        "train_ppl",
        *(f"{split}_{value}" for split in ("valid", "test") for value in per_split),
        "seconds",
    )


def perplexity(loss: float) -> float:
    """exp(loss), infinite where that overflows."""
    return math.exp(loss) if loss < 700 else math.inf


def evaluate_language_model(network: nn.Module, ids, batch_size: int, bptt: int) -> float:
    """Mean loss per token (nats) over a split, in evaluation mode, in up to `batch_size`
    streams (fewer where the split is short)."""
    source = batchify(ids, max(1, min(batch_size, len(ids) // 2)))
    network.eval()
    total, count, hidden = 0.0, 0, None
    with torch.no_grad():
        for inputs, targets in bptt_chunks(source, bptt):
            logits, hidden = network(inputs, hidden)
            total += float(
                F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")
            )
            count += targets.numel()
    return total / count


def _split_values(data: TextData, split: str, loss: float) -> dict:
    values = {f"{split}_loss": round(loss, 4), f"{split}_ppl": round(perplexity(loss), 3)}
    if data.tokens == "char":
        values[f"{split}_bpc"] = round(loss / math.log(2), 4)
    return values


def train_language_model(
    network: nn.Module,
    data: TextData,
    config: LanguageConfig,
    out: Path | str | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    description: str = "",
    test: bool = True,
) -> list[dict]:
    """Train `network` (an `RNNLanguageModel`) for `config.epochs` epochs; one row per epoch.

    With `out`, every epoch rewrites history.csv, history.png and checkpoint.pt there; with
    `out=None` nothing is written (a library call: `history[-1]["valid_ppl"]` is the validation
    perplexity). `test=False` skips the test split (its columns stay empty). With `resume`,
    training continues after the last epoch saved in `out/checkpoint.pt`. A non-finite loss
    stops training with `NonFiniteLoss` before that epoch is saved.
    """
    out = None if out is None else Path(out)
    config.check()
    data.check_batch(config.batch_size, config.bptt)
    digest = data_digest(data) if out is not None else ""  # only checkpoints keep it
    state = resumed_state(out, resume, asdict(config), description, digest, data.name)
    torch.manual_seed(config.seed)
    stream = batchify(data.train, config.batch_size)
    chunks = math.ceil((len(stream) - 1) / config.bptt)
    steps = config.steps or chunks
    optimizer = torch.optim.Adam(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps)
    history: list[dict] = []
    if state is not None:
        history = restore(state, out, network, optimizer, schedule, None)
        save_history(out, history, history_columns(data), PANELS)
    for epoch in range(len(history) + 1, config.epochs + 1):
        started = time.perf_counter()
        network.train()
        loss_sum, tokens, hidden = 0.0, 0, None
        bar = tqdm(
            range(steps),
            desc=f"epoch {epoch}/{config.epochs}",
            unit="batch",
            disable=not progress,
            leave=False,
        )
        for step in bar:
            chunk = ((epoch - 1) * steps + step) % chunks
            if chunk == 0:
                hidden = None
            row = chunk * config.bptt
            inputs, targets = next(bptt_chunks(stream[row : row + config.bptt + 1], config.bptt))
            logits, hidden = network(inputs, hidden)
            hidden = hidden.detach()
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
            value = loss.item()
            if not math.isfinite(value):
                stop_diverged(value, epoch, step, config, out)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), config.grad_clip)
            optimizer.step()
            schedule.step()
            loss_sum += value * targets.numel()
            tokens += targets.numel()
            bar.set_postfix(loss=f"{value:.3f}")
        row = {"epoch": epoch, "lr": round(schedule.get_last_lr()[0], 7)}
        train_loss = loss_sum / tokens
        row |= {"train_loss": round(train_loss, 4), "train_ppl": round(perplexity(train_loss), 3)}
        for split, ids in (("valid", data.valid), ("test", data.test)):
            if split == "test" and not test:
                continue
            loss = evaluate_language_model(network, ids, config.batch_size, config.bptt)
            if not math.isfinite(loss):
                stop_diverged(loss, epoch, steps - 1, config, out)
            row |= _split_values(data, split, loss)
        row["seconds"] = round(time.perf_counter() - started, 1)
        history.append(row)
        if out is not None:
            saved = checkpoint_state(
                network,
                optimizer,
                schedule,
                None,
                history,
                asdict(config),
                description,
                digest,
            )
            save_epoch(out, history, saved, history_columns(data), PANELS)
        if progress:
            tqdm.write(_epoch_line(row, data))
    return history


def _epoch_line(row: dict, data: TextData) -> str:
    """`epoch 3: train ppl 5.12, valid ppl 5.60 (2.485 bpc), test ppl ... (12 s)`."""
    parts = [f"epoch {row['epoch']}: train ppl {row['train_ppl']:.2f}"]
    for split in ("valid", "test"):
        if f"{split}_ppl" in row:
            bpc = f" ({row[f'{split}_bpc']:.3f} bpc)" if data.tokens == "char" else ""
            parts.append(f"{split} ppl {row[f'{split}_ppl']:.2f}{bpc}")
    return ", ".join(parts) + f" ({row['seconds']:.0f} s)"
