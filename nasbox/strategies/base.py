"""What a search strategy is: an ask/tell object that proposes architectures and learns from scores.

Strategies never evaluate anything themselves, so the same strategy runs with a table lookup, a
training-free score or a cluster of trainers. Higher values are better; `-inf` is the worst (a
failed evaluation is told as `-inf` or NaN); `+inf` is refused.

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

from nasbox.checks import MAX_SEED, check_count
from nasbox.errors import NasboxError, counted, shown
from nasbox.pareto import pareto_front
from nasbox.spaces import SearchSpace


class Strategy(ABC):
    """Ask for an architecture, evaluate it however you like, tell the strategy its value."""

    name: str
    #: Whether `tell` takes one value per objective (a tuple) as well as a single number.
    multi_objective: bool = False

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        if not isinstance(space, SearchSpace):  # a name would fail only at the first ask
            hint = f"get_space({space!r})" if isinstance(space, str) else "get_space(name)"
            raise NasboxError(
                f"{self.name} needs a SearchSpace, got {shown(space)} "
                f"({type(space).__name__}): pass {hint} from nasbox.spaces"
            )
        self.space = space
        self.seed = seed
        # same seed, same proposals: None (fresh entropy) or a float would not repeat a run
        check_count(seed, f"{self.name} seed", minimum=0, maximum=MAX_SEED)
        self.rng = np.random.default_rng(seed)
        self.history: list[tuple[Hashable, float]] = []
        self._proposed: set[Hashable] = set()
        self.pending: Counter[Hashable] = Counter()  # asked and not yet told
        self._width: int | None = None  # values per tell: 0 for a number, k for a k-tuple

    @abstractmethod
    def ask(self) -> Hashable:
        """Propose the next architecture to evaluate."""

    def tell(self, arch: Hashable, value: float | Sequence[float]) -> None:
        """Record the value of a pending architecture returned by `ask` (NaN counts as `-inf`).

        Strategies with `multi_objective = True` are told a tuple, one value per objective.
        A value that is not a number (or such a tuple) is refused before anything changes, so
        `arch` stays pending and can be told again with the right value.
        """
        if not self.pending[arch]:
            raise NasboxError(
                f"told a value for an architecture {self.name} did not ask, or told it twice: "
                f"{arch}"
            )
        told = self._told_value(value)
        self.pending[arch] -= 1
        if not self.pending[arch]:
            del self.pending[arch]
        self.history.append((arch, told))

    def _told_value(self, value: object) -> float | tuple[float, ...]:
        """`value` as a float (NaN as `-inf`) or a tuple of them, shaped like the earlier ones.

        A string, None or a mistaken tuple would otherwise be recorded and break the strategy
        at a later ask or at `best`, far from the tell that caused it.
        """
        if not isinstance(value, Sequence) or isinstance(value, str | bytes):
            told = _number(value, self.name)
            if told != -math.inf:  # a failure fits any number of objectives
                self._check_width(0)
            return told
        if not self.multi_objective:
            raise NasboxError(
                f"{self.name} takes one number per architecture, got {shown(value)}; "
                "nsga2 takes a tuple with one value per objective"
            )
        told = tuple(_number(part, self.name) for part in value)
        if not told:
            raise NasboxError(f"{self.name} was told an empty tuple: give one value per objective")
        self._check_width(len(told))
        return told

    def _check_width(self, width: int) -> None:
        """Every value has the shape of the first: a number, or a tuple of one length."""
        if self._width is None:
            self._width = width
        if width == self._width:
            return
        raise NasboxError(
            f"{self.name} was told {_width_words(width)} after {_width_words(self._width)} "
            "for earlier architectures: tell every architecture one value per objective "
            "(a failed one may be told -inf)"
        )

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
        """The best (architecture, value) told so far; ties go to the earliest.

        Only for single numbers: once tuples were told (several objectives) there is no single
        best, and comparing tuples would rank by the first objective alone (or fail on a
        failure told as one `-inf`), so it raises and points to `front`.
        """
        if self._width:
            raise NasboxError(
                f"{self.name} was told {_width_words(self._width)} per architecture, so there "
                "is no single best: use strategy.front, the non-dominated (architecture, "
                "values) told so far"
            )
        if not self.history:
            return None
        return max(self.history, key=lambda item: item[1])

    @property
    def front(self) -> list[tuple[Hashable, float | tuple[float, ...]]]:
        """The non-dominated (architecture, value or values) told so far, in tell order."""
        if not self.history:
            return []
        return [self.history[i] for i in pareto_front(self._values(range(len(self.history))))]

    def _values(self, indices) -> np.ndarray:
        """Told values as rows; a failure told as one `-inf` is worst in every objective."""
        rows = [np.atleast_1d(np.asarray(self.history[i][1], dtype=float)) for i in indices]
        width = max(len(row) for row in rows)
        return np.array([np.resize(row, width) for row in rows])


def _number(value: object, name: str) -> float:
    """A told value as a float (a numpy scalar or 0-d tensor will do); NaN becomes `-inf`."""
    try:
        number = None if isinstance(value, str | bytes) else float(value)
    except (TypeError, ValueError, RuntimeError):
        number = None
    if number is None:
        raise NasboxError(
            f"{name} was told {shown(value)}, which is not a number: tell a float (higher "
            "is better; -inf or NaN for a failed evaluation)"
        )
    if number == math.inf:  # evolution would keep it as the best forever, controllers as worst
        raise NasboxError(
            f"{name} was told +inf, which cannot be ranked (an overflow?): tell -inf or NaN "
            "if the evaluation failed"
        )
    return -math.inf if math.isnan(number) else number


def _width_words(width: int) -> str:
    return "a single number" if not width else f"a tuple of {counted(width, 'value')}"
