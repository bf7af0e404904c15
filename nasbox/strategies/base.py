"""What a search strategy is: an ask/tell object that proposes architectures and learns from scores.

Strategies never evaluate anything themselves, so the same strategy runs with a table lookup, a
training-free score or a cluster of trainers. Higher values are better; `-inf` is the worst.
"""

import math
from abc import ABC, abstractmethod
from collections.abc import Hashable

import numpy as np

from nasbox.spaces import SearchSpace


class Strategy(ABC):
    """Ask for an architecture, evaluate it however you like, tell the strategy its value."""

    name: str

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space = space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.history: list[tuple[Hashable, float]] = []

    @abstractmethod
    def ask(self) -> Hashable:
        """Propose the next architecture to evaluate."""

    def tell(self, arch: Hashable, value: float) -> None:
        """Record the value of an architecture returned by `ask` (NaN counts as `-inf`)."""
        self.history.append((arch, -math.inf if math.isnan(value) else float(value)))

    @property
    def best(self) -> tuple[Hashable, float] | None:
        """The best (architecture, value) told so far; ties go to the earliest."""
        if not self.history:
            return None
        return max(self.history, key=lambda item: item[1])
