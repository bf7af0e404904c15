"""Regularised (aging) evolution (Real et al., 2019) and its training-free-assisted variant AREA.

Evolution keeps a population of the last P evaluated cells. Each proposal mutates one edge of the
best of S population members drawn without replacement; the child joins the population and the
oldest member leaves, however good it is (aging). AREA (Mellor et al., 2021) starts the population
from the best P of M random cells ranked by a cheap training-free score instead of from random
cells; the pre-scoring time is reported separately (`prescore_seconds`) as it is not a query.

With parallel workers the population holds completed (told) cells only, as in Real et al.'s
asynchronous workers: until P cells are told, every proposal is an initial cell, so tournaments
never see a pending cell and a burst of asks before any tell never lacks a parent.
"""

import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Protocol

from nasbox.checks import check_count
from nasbox.errors import NasboxError
from nasbox.spaces import SearchSpace
from nasbox.strategies.base import Strategy

# How often to redraw a tournament and mutation whose child was already queried before falling
# back to a fresh random cell; no query is ever spent twice on one cell.
MAX_REDRAWS = 100


class RegularizedEvolution(Strategy):
    """Aging evolution with population `population_size` and tournaments of `tournament_size`.

    P=10 follows the NAS-Bench-201 paper's REA; its S=3 is slower to exploit a good cell than S=5
    in short searches (on the NAS-Bench-201 table, seeds 1000-1029, `valid_acc` as the signal:
    mean test accuracy 93.99 vs 94.15 at 100 queries), hence S=5 by default.
    """

    name = "evolution"

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        population_size: int = 10,
        tournament_size: int = 5,
    ) -> None:
        super().__init__(space, seed)
        check_count(population_size, f"{self.name} population_size")
        check_count(tournament_size, f"{self.name} tournament_size")
        if tournament_size > population_size:  # each is at least 1 (check_count)
            raise NasboxError(
                f"{self.name} needs population_size >= 1 and 1 <= tournament_size <= "
                f"population_size, got population_size={population_size}, "
                f"tournament_size={tournament_size}"
            )
        self.population_size = population_size
        self.tournament_size = tournament_size
        self.population: deque[tuple[Hashable, float]] = deque()

    def initial_cell(self) -> Hashable:
        """A cell proposed while the population fills; evolution uses uniform random cells."""
        return self._unseen_sample()

    def ask(self) -> Hashable:
        if len(self.population) < self.population_size:
            return self._propose(self.initial_cell())
        for _ in range(MAX_REDRAWS):
            child = self.space.mutate(self.tournament_winner()[0], self.rng)
            if child not in self._proposed:
                return self._propose(child)
        return self._propose(self._unseen_sample())

    def tournament_winner(self) -> tuple[Hashable, float]:
        """The best of `tournament_size` members drawn without replacement (ties: the oldest)."""
        size = min(self.tournament_size, len(self.population))
        chosen = sorted(self.rng.choice(len(self.population), size=size, replace=False))
        return max((self.population[i] for i in chosen), key=lambda member: member[1])

    def tell(self, arch: Hashable, value: float) -> None:
        super().tell(arch, value)
        self.population.append(self.history[-1])
        if len(self.population) > self.population_size:
            self.population.popleft()


class BatchScorer(Protocol):
    """Scores many cells in one call, e.g. by spreading them over a search's workers."""

    def many(self, cells: Sequence[Hashable]) -> Sequence[float]: ...


class AssistedEvolution(RegularizedEvolution):
    """AREA: evolution whose first population is the best P of M pre-scored random cells.

    `prescore` is any cheap estimator (NASWOT by default on the command line): a per-cell
    callable, or a `BatchScorer` whose `many` scores all M candidates at once. `pool`, when
    given, restricts the M candidates to those cells, e.g. cells whose scores are cached. When
    parallel workers ask for more than P cells before the population fills, the next-ranked
    candidates follow the best P, then random unseen cells.
    """

    name = "area"
    uses_prescore = True

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        population_size: int = 10,
        tournament_size: int = 5,
        candidates: int = 20,
        prescore: Callable[[Hashable], float] | BatchScorer | None = None,
        pool: Sequence[Hashable] | None = None,
    ) -> None:
        super().__init__(space, seed, population_size, tournament_size)
        if prescore is None:
            raise NasboxError("area needs a training-free estimator to pre-score cells (naswot)")
        check_count(candidates, "area candidates")
        available = len(pool) if pool is not None else len(space)
        if not population_size <= candidates <= available:
            raise NasboxError(
                f"area pre-scores M cells and keeps the best P: need P <= M <= {available}, got "
                f"P={population_size}, M={candidates}"
            )
        self.candidates = candidates
        self.prescore = prescore
        self.pool = pool
        self.prescore_seconds = 0.0
        self._ranked: list[Hashable] | None = None

    def _ranked_candidates(self) -> list[Hashable]:
        """All M candidates, best pre-score first (ties keep the draw order)."""
        if self.pool is not None:
            picks = self.rng.choice(len(self.pool), size=self.candidates, replace=False)
            cells = [self.pool[int(i)] for i in picks]
        else:
            cells = []
            while len(cells) < self.candidates:
                cell = self.space.sample(self.rng)
                if cell not in cells:
                    cells.append(cell)
        start = time.perf_counter()
        scores = [float(score) for score in self._prescore_all(cells)]
        self.prescore_seconds += time.perf_counter() - start
        scores = [-math.inf if math.isnan(score) else score for score in scores]
        order = sorted(range(len(cells)), key=scores.__getitem__, reverse=True)
        return [cells[i] for i in order]

    def _prescore_all(self, cells: list[Hashable]) -> Sequence[float]:
        """The M scores from one `many` call when `prescore` has it, so they can run in parallel."""
        many = getattr(self.prescore, "many", None)
        if many is None:
            return [self.prescore(cell) for cell in cells]
        scores = many(cells)
        if len(scores) != len(cells):
            raise NasboxError(
                f"area's batch pre-scorer returned {len(scores)} scores for {len(cells)} cells"
            )
        return scores

    def initial_cell(self) -> Hashable:
        if self._ranked is None:
            self._ranked = self._ranked_candidates()
        return self._ranked.pop(0) if self._ranked else self._unseen_sample()
