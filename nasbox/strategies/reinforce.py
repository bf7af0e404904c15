"""REINFORCE (Williams, 1992) with one categorical policy per decision: NAS-Bench-201's RL baseline.

The policy holds independent logits for each decision of the space (6 edges x 5 ops for nb201).
After each value it takes one gradient-ascent step on (value - baseline) * log p(arch), where the
baseline is an exponential moving average of the values. The advantage is divided by a moving
average of its own magnitude, so one learning rate suits accuracies in percent and NASWOT scores
in the thousands alike. With parallel workers each value updates the policy when it arrives, in
whatever order; failed evaluations (`-inf`) leave the policy alone.
"""

import math
from collections.abc import Hashable

import numpy as np

from nasbox.checks import check_number
from nasbox.spaces import SearchSpace
from nasbox.strategies.base import Strategy

# Policy samples drawn at once; when all were queried before, one random unseen cell is proposed.
MAX_REDRAWS = 64


class Reinforce(Strategy):
    """Categorical policy per decision, trained with REINFORCE and a moving-average baseline.

    No query is spent twice: a proposal is the first of `MAX_REDRAWS` policy samples that was not
    queried before (sampling from the policy restricted to new cells), or a random new cell when
    the policy has converged onto cells it already knows.
    """

    name = "reinforce"

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        learning_rate: float = 0.1,
        baseline_momentum: float = 0.9,
    ) -> None:
        super().__init__(space, seed)
        check_number(learning_rate, "reinforce learning_rate", 0, math.inf, include_low=False)
        check_number(baseline_momentum, "reinforce baseline_momentum", 0, 1)
        self.learning_rate = learning_rate
        self.baseline_momentum = baseline_momentum
        self.logits = [np.zeros(size) for size in space.decision_sizes()]
        self.baseline: float | None = None
        self._scale: float | None = None

    def probabilities(self) -> list[np.ndarray]:
        """The policy: for each decision, the probability of each option."""
        out = []
        for logits in self.logits:
            weights = np.exp(logits - logits.max())
            out.append(weights / weights.sum())
        return out

    def sample(self, count: int = 1) -> list[Hashable]:
        """`count` independent architectures drawn from the policy."""
        columns = []
        for probs in self.probabilities():
            cumulative = np.cumsum(probs)
            draws = np.searchsorted(cumulative, self.rng.random(count) * cumulative[-1], "right")
            columns.append(np.minimum(draws, len(probs) - 1))
        rows = np.stack(columns, axis=1).tolist()
        return [self.space.from_decisions(row) for row in rows]

    def ask(self) -> Hashable:
        for arch in self.sample(MAX_REDRAWS):
            if arch not in self._proposed:
                return self._propose(arch)
        return self._propose(self._unseen_sample())

    def tell(self, arch: Hashable, value: float) -> None:
        super().tell(arch, value)
        self.update(arch, self.history[-1][1])

    def update(self, arch: Hashable, reward: float) -> None:
        """One REINFORCE step towards (or away from) `arch`; non-finite rewards are skipped."""
        if not math.isfinite(reward):
            return
        if self.baseline is None:
            self.baseline = reward
        advantage = reward - self.baseline
        momentum = self.baseline_momentum
        self.baseline = momentum * self.baseline + (1 - momentum) * reward
        if advantage == 0:
            return
        magnitude = abs(advantage)
        self._scale = (
            magnitude
            if self._scale is None
            else momentum * self._scale + (1 - momentum) * magnitude
        )
        step = self.learning_rate * advantage / self._scale
        for logits, probs, choice in zip(
            self.logits, self.probabilities(), self.space.to_decisions(arch), strict=True
        ):
            gradient = -probs
            gradient[choice] += 1.0
            logits += step * gradient
