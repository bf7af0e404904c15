"""NSGA-II (Deb et al., 2002) for several objectives, with the space's mutation as variation.

The population is the best `population_size` of all told cells by NSGA-II's environmental
selection: non-dominated rank first, then crowding distance, so the spread of the front is kept.
Each proposal mutates the winner of a binary tournament on (rank, crowding); the first
`population_size` proposals are uniform random cells. Selecting from every told cell rather than
from the last generation keeps the strategy asynchronous: a tell never has to wait for a
generation to finish, and with one worker it is the steady-state form of NSGA-II.
"""

import math
from collections.abc import Hashable, Sequence

import numpy as np

from nasbox.checks import check_count
from nasbox.pareto import crowding_distance, non_dominated_fronts
from nasbox.spaces import SearchSpace
from nasbox.strategies.base import Strategy
from nasbox.strategies.evolution import MAX_REDRAWS


class NSGA2(Strategy):
    """NSGA-II: evolve a Pareto front by non-dominated rank and crowding (tuples, maximised)."""

    name = "nsga2"
    multi_objective = True

    def __init__(self, space: SearchSpace, seed: int = 0, population_size: int = 20) -> None:
        super().__init__(space, seed)
        check_count(population_size, "nsga2 population_size", minimum=2)
        self.population_size = population_size
        self._population: list[int] | None = None  # indices into history, rebuilt after tells
        self._rank = np.zeros(0, dtype=int)
        self._crowding = np.zeros(0)

    def ask(self) -> Hashable:
        if len(self.history) < self.population_size:
            return self._propose(self._unseen_sample())
        for _ in range(MAX_REDRAWS):
            child = self.space.mutate(self._tournament_winner(), self.rng)
            if child not in self._proposed:
                return self._propose(child)
        return self._propose(self._unseen_sample())

    def tell(self, arch: Hashable, value: float | Sequence[float]) -> None:
        super().tell(arch, value)
        self._population = None

    def _select(self) -> None:
        """Environmental selection over every told cell: fill by fronts, cut by crowding."""
        chosen: list[int] = []
        ranks: list[int] = []
        crowding: list[float] = []
        for rank, front in enumerate(self._fronts()):
            distance = crowding_distance(self._values(front))
            room = self.population_size - len(chosen)
            keep = np.argsort(-distance, kind="stable")[:room]
            chosen += front[keep].tolist()
            ranks += [rank] * len(keep)
            crowding += distance[keep].tolist()
            if len(chosen) >= self.population_size:
                break
        self._population = chosen
        self._rank = np.asarray(ranks)
        self._crowding = np.asarray(crowding)

    def _fronts(self) -> list[np.ndarray]:
        """`non_dominated_fronts` of the told cells, with those at -inf in every objective
        (failed, or rejected by a constraint) as the last front, unsorted: every other cell
        dominates them. A tight constraint rejects thousands, and sorting them all on each ask
        made a run quadratic (minutes for a hundred trials)."""
        worst = np.array([_worst(value) for _, value in self.history])
        others = np.flatnonzero(~worst)
        values = self._values(others) if len(others) else np.zeros((0, 1))
        fronts = [others[front] for front in non_dominated_fronts(values)]
        return [*fronts, np.flatnonzero(worst)] if worst.any() else fronts

    def _tournament_winner(self) -> Hashable:
        """The better of two population members: lower rank, then larger crowding distance."""
        if self._population is None:
            self._select()
        a, b = self.rng.choice(len(self._population), size=2, replace=False)
        key_a = (self._rank[a], -self._crowding[a])
        key_b = (self._rank[b], -self._crowding[b])
        winner = a if key_a <= key_b else b
        return self.history[self._population[winner]][0]


def _worst(value: float | tuple[float, ...]) -> bool:
    """Whether a told value is -inf in every objective."""
    return all(part == -math.inf for part in (value if isinstance(value, tuple) else (value,)))
