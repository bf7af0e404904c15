"""What a search strategy is: an ask/tell object that proposes architectures and learns from scores.

Strategies never evaluate anything themselves, so the same strategy runs with a table lookup, a
training-free score or a cluster of trainers. Higher values are better; `-inf` is the worst (a
failed evaluation is told as `-inf` or NaN).

Strategies are asynchronous: with parallel workers `ask` is called while earlier proposals are
still pending (asked, not yet told), and their values arrive in any order. A strategy never
proposes an architecture twice, pending or told. With one worker (ask, tell, ask, ...) and a
fixed seed a strategy makes the same proposals as it did before it handled pending ones.
"""

import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np

from nasbox.errors import NasboxError
from nasbox.spaces import SearchSpace


class Strategy(ABC):
    """Ask for an architecture, evaluate it however you like, tell the strategy its value."""

    name: str
    #: Whether `tell` takes one value per objective (a tuple) as well as a single number.
    multi_objective: bool = False

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space = space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.history: list[tuple[Hashable, float]] = []
        self._proposed: set[Hashable] = set()
        self.pending: Counter[Hashable] = Counter()  # asked and not yet told

    @abstractmethod
    def ask(self) -> Hashable:
        """Propose the next architecture to evaluate."""

    def tell(self, arch: Hashable, value: float | Sequence[float]) -> None:
        """Record the value of a pending architecture returned by `ask` (NaN counts as `-inf`).

        Strategies with `multi_objective = True` are told a tuple, one value per objective.
        """
        if not self.pending[arch]:
            raise NasboxError(
                f"told a value for an architecture {self.name} did not ask, or told it twice: "
                f"{arch}"
            )
        self.pending[arch] -= 1
        if not self.pending[arch]:
            del self.pending[arch]
        self.history.append((arch, _worst_if_nan(value)))

    def _propose(self, arch: Hashable) -> Hashable:
        """Hand `arch` out as pending; it is never proposed again (see `_reserve`)."""
        self._reserve(arch)
        self.pending[arch] += 1
        return arch

    def _reserve(self, arch: Hashable) -> None:
        """Keep `arch` from being sampled again before `ask` hands it out."""
        self._proposed.add(arch)

    def _unseen_sample(self) -> Hashable:
        """A uniform sample among the architectures not proposed yet."""
        if len(self._proposed) >= len(self.space):
            raise NasboxError(
                f"{self.name} has proposed all {len(self.space)} architectures of the space"
            )
        while True:
            arch = self.space.sample(self.rng)
            if arch not in self._proposed:
                return arch

    @property
    def best(self) -> tuple[Hashable, float] | None:
        """The best (architecture, value) told so far; ties go to the earliest."""
        if not self.history:
            return None
        return max(self.history, key=lambda item: item[1])


def _worst_if_nan(value: float | Sequence[float]) -> float | tuple[float, ...]:
    if isinstance(value, Sequence):
        return tuple(_worst_if_nan(part) for part in value)
    return -math.inf if math.isnan(value) else float(value)
