"""An RNN controller (Zoph et al., 2018) trained with PPO or REINFORCE on any decision space.

The controller is a one-layer LSTM (100 units, weights uniform in [-0.1, 0.1]) that emits the
space's decision sequence one choice at a time, feeding each choice back (through an embedding)
as the next input. It knows nothing about the space beyond `decision_sizes`, so it runs on
nasnet, nb201 or any other space alike.

Learning: children are collected into minibatches (20 by default); each full minibatch updates
the controller with the clipped PPO objective (or plain REINFORCE) using Adam at 0.00035 and an
entropy bonus of 1e-5. The advantage is the reward minus an exponential moving average of
previous rewards (weight 0.95), divided by the minibatch's reward spread so the same settings
work for accuracies in [0, 100] and NASWOT scores in the thousands. Results may come back in any
order (asynchronous workers): each told child is matched to the decisions and log-probability
recorded when it was asked.
"""

import math
from collections import defaultdict
from collections.abc import Hashable

import numpy as np
import torch
from torch import nn

from nasbox.checks import check_count, check_number
from nasbox.cpu import single_thread
from nasbox.spaces import SearchSpace
from nasbox.strategies.base import Strategy

MAX_REDRAWS = 100
# The LSTM cell holds 8 hidden^2 weights: at 1024 units, with their gradients and Adam's two
# moments, 130 MB, and each update already takes seconds on one core. A larger controller only
# exhausts memory (1e8 units asked torch for exabytes) or time; the paper's has 100 units.
MAX_HIDDEN = 1024
# Each minibatch runs this many passes over it; more only stalls the search at its first update.
MAX_PPO_EPOCHS = 1000


class LSTMPolicy(nn.Module):
    """Autoregressive distribution over decision sequences with per-decision output layers."""

    def __init__(self, sizes: list[int], hidden: int = 100, init_range: float = 0.1) -> None:
        super().__init__()
        self.sizes = sizes
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.embeddings = nn.ModuleList(nn.Embedding(size, hidden) for size in sizes)
        self.heads = nn.ModuleList(nn.Linear(hidden, size) for size in sizes)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -init_range, init_range)

    def _steps(self, count: int):
        hidden = cell = torch.zeros(count, self.lstm.hidden_size)
        inputs = self.start.expand(count, -1)
        for step in range(len(self.sizes)):
            hidden, cell = self.lstm(inputs, (hidden, cell))
            chosen = yield torch.log_softmax(self.heads[step](hidden), dim=-1)
            inputs = self.embeddings[step](chosen)

    def sample(self, generator: torch.Generator) -> tuple[list[int], float]:
        """One decision sequence and its log-probability under the current policy."""
        decisions, log_prob = [], 0.0
        with torch.no_grad():
            steps = self._steps(1)
            log_probs = next(steps)
            while True:
                choice = torch.multinomial(log_probs.exp(), 1, generator=generator)[:, 0]
                decisions.append(int(choice))
                log_prob += float(log_probs[0, choice])
                try:
                    log_probs = steps.send(choice)
                except StopIteration:
                    return decisions, log_prob

    def evaluate(self, decisions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability and entropy of each row of `decisions` (count x steps)."""
        log_prob = torch.zeros(len(decisions))
        entropy = torch.zeros(len(decisions))
        steps = self._steps(len(decisions))
        log_probs = next(steps)
        for step in range(len(self.sizes)):
            chosen = decisions[:, step]
            log_prob = log_prob + log_probs.gather(1, chosen[:, None])[:, 0]
            entropy = entropy - (log_probs.exp() * log_probs).sum(dim=1)
            try:
                log_probs = steps.send(chosen)
            except StopIteration:
                break
        return log_prob, entropy


class ControllerStrategy(Strategy):
    """Ask/tell wrapper around `LSTMPolicy`; subclasses choose the policy-gradient objective."""

    name = "controller"
    objective = "ppo"

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        *,
        minibatch: int = 20,
        learning_rate: float = 0.00035,
        entropy_weight: float = 1e-5,
        baseline_decay: float = 0.95,
        clip: float = 0.2,
        ppo_epochs: int = 10,
        hidden: int = 100,
        distinct: bool = True,
    ) -> None:
        super().__init__(space, seed)
        # checked here: a bad value would otherwise break the first update, mid-run
        check_count(minibatch, f"{self.name} minibatch")
        check_count(
            ppo_epochs,
            f"{self.name} ppo_epochs",
            maximum=MAX_PPO_EPOCHS,
            why="each minibatch is trained on that many times, so more only stalls the search "
            "(default 10)",
        )
        check_count(
            hidden,
            f"{self.name} hidden",
            maximum=MAX_HIDDEN,
            why="a larger controller exhausts memory (default 100)",
        )
        check_number(learning_rate, f"{self.name} learning_rate", 0, math.inf, include_low=False)
        check_number(entropy_weight, f"{self.name} entropy_weight", 0, math.inf)
        check_number(baseline_decay, f"{self.name} baseline_decay", 0, 1)
        check_number(clip, f"{self.name} clip", 0, 1, include_low=False)
        self.sizes = space.decision_sizes()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.policy = LSTMPolicy(self.sizes, hidden)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=learning_rate)
        self.generator = torch.Generator().manual_seed(seed)
        self.minibatch = minibatch
        self.entropy_weight = entropy_weight
        self.baseline_decay = baseline_decay
        self.clip = clip
        self.ppo_epochs = ppo_epochs
        self.distinct = distinct
        self.baseline: float | None = None
        self.minibatch_rewards: list[float] = []
        self._samples: dict[Hashable, list[tuple[list[int], float]]] = defaultdict(list)
        self._batch: list[tuple[list[int], float, float]] = []
        self._lowest_reward = math.inf

    def ask(self) -> Hashable:
        """Sample from the controller; with `distinct`, never propose an architecture twice.

        A repeat is redrawn (up to `MAX_REDRAWS` times), then replaced by a uniform unseen
        sample whose log-probability under the policy is recorded, so no query is wasted.
        """
        with single_thread():
            return self._ask()

    def _ask(self) -> Hashable:
        for _ in range(MAX_REDRAWS):
            decisions, log_prob = self.policy.sample(self.generator)
            arch = self.space.from_decisions(decisions)
            if not self.distinct or arch not in self._proposed:
                break
        else:
            arch = self._unseen_sample()
            decisions = self.space.to_decisions(arch)
            with torch.no_grad():
                log_prob = float(self.policy.evaluate(torch.tensor([decisions]))[0][0])
        self._samples[arch].append((decisions, log_prob))
        return self._propose(arch)

    def tell(self, arch: Hashable, value: float) -> None:
        super().tell(arch, value)
        decisions, log_prob = self._samples[arch].pop(0)
        if not self._samples[arch]:
            del self._samples[arch]
        reward = self.history[-1][1]
        if math.isfinite(reward):
            self._lowest_reward = min(self._lowest_reward, reward)
        else:  # unusable children get the worst reward seen so far
            reward = self._lowest_reward if math.isfinite(self._lowest_reward) else 0.0
        self._batch.append((decisions, log_prob, reward))
        if len(self._batch) >= self.minibatch:
            with single_thread():
                self._update()

    def _update(self) -> None:
        decisions = torch.tensor([d for d, _, _ in self._batch], dtype=torch.long)
        old_log_prob = torch.tensor([p for _, p, _ in self._batch])
        rewards = np.array([r for _, _, r in self._batch])
        self._batch = []
        self.minibatch_rewards.append(float(rewards.mean()))
        if self.baseline is None:
            self.baseline = float(rewards.mean())
        scale = float(rewards.std()) or 1.0
        advantages = torch.tensor((rewards - self.baseline) / scale, dtype=torch.float32)
        for reward in rewards:
            self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
        epochs = self.ppo_epochs if self.objective == "ppo" else 1
        for _ in range(epochs):
            log_prob, entropy = self.policy.evaluate(decisions)
            if self.objective == "ppo":
                ratio = torch.exp(log_prob - old_log_prob)
                clipped = ratio.clamp(1 - self.clip, 1 + self.clip)
                gain = torch.minimum(ratio * advantages, clipped * advantages)
            else:
                gain = log_prob * advantages
            loss = -gain.mean() - self.entropy_weight * entropy.mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()


class PPOController(ControllerStrategy):
    """An LSTM controller over the decisions, trained with the clipped PPO objective (NASNet)."""

    name = "ppo"
    objective = "ppo"


class ReinforceController(ControllerStrategy):
    """ppo's LSTM controller trained with REINFORCE: one policy-gradient step per minibatch."""

    name = "lstm-reinforce"
    objective = "reinforce"

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        *,
        minibatch: int = 20,
        learning_rate: float = 0.00035,
        entropy_weight: float = 1e-5,
        baseline_decay: float = 0.95,
        hidden: int = 100,
        distinct: bool = True,
    ) -> None:
        """The controller's options less ppo's `clip` and `ppo_epochs`: one REINFORCE step per
        minibatch uses neither, and both were taken and ignored."""
        super().__init__(
            space,
            seed,
            minibatch=minibatch,
            learning_rate=learning_rate,
            entropy_weight=entropy_weight,
            baseline_decay=baseline_decay,
            hidden=hidden,
            distinct=distinct,
        )
